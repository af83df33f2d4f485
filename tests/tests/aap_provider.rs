//! The runner's AAP client against the AAP simulator, path by path: what the client
//! sends is what AWX serves (docs/providers.md), and what AWX answers becomes the right
//! result or error. The simulator's ledger counts the requests.

use std::time::{Duration, Instant};

use cloudkit_runner::aap::{
    AapClient, AapConfig, AapError, AapJobKind, CancelOutcome, Launched, RetryPolicy, Secret,
    TemplateRef, TokenSource,
};
use cloudkit_shared::JobState;
use cloudkit_shared::names::CORRELATION_EXTRA_VAR;
use cloudkit_shared::reasons;
use cloudkit_testbed::aap_sim::*;
use cloudkit_testbed::wait::SIMULATOR as WAIT;
use k8s_openapi::jiff::Timestamp;
use serde_json::{Value, json};

const PROVISION: u64 = 7;
const DEPROVISION: u64 = 8;
/// A workflow with the same name as the provision job template.
const SHADOWED_WORKFLOW: u64 = 9;
const UNPROMPTED: u64 = 10;
const WORKFLOW: u64 = 11;
const UNPROMPTED_WORKFLOW: u64 = 12;
const SURVEY: u64 = 13;
const ODD_NAME: u64 = 14;

const PROVISION_NAME: &str = "cloudkit provision";
const WORKFLOW_NAME: &str = "cloudkit provision (workflow)";
/// Every character here means something in a query string or a path.
const ODD: &str = "ops/provision & deprovision: 100% + ?extra=#1";

fn quick() -> JobBehavior {
    JobBehavior::uniform(Duration::from_millis(5))
}

fn sim_config() -> AapSimConfig {
    AapSimConfig::new()
        .template(
            TemplateConfig::job(PROVISION, PROVISION_NAME)
                .role(Role::Provision)
                .behavior(quick()),
        )
        .template(
            TemplateConfig::job(DEPROVISION, "cloudkit deprovision")
                .role(Role::Deprovision)
                .behavior(quick()),
        )
        .template(TemplateConfig::workflow(SHADOWED_WORKFLOW, PROVISION_NAME).behavior(quick()))
        .template(
            TemplateConfig::job(UNPROMPTED, "unprompted")
                .ask_variables_on_launch(false)
                .behavior(quick()),
        )
        .template(TemplateConfig::workflow(WORKFLOW, WORKFLOW_NAME).behavior(quick()))
        .template(
            TemplateConfig::workflow(UNPROMPTED_WORKFLOW, "unprompted workflow")
                .ask_variables_on_launch(false),
        )
        .template(TemplateConfig::job(SURVEY, "survey").needs_variables(&["vm_size"]))
        .template(TemplateConfig::workflow(ODD_NAME, ODD).behavior(quick()))
}

async fn sim() -> AapSimulator {
    AapSimulator::start(sim_config()).await.unwrap()
}

fn config(sim: &AapSimulator) -> AapConfig {
    let mut config = AapConfig::new(
        sim.base_url(),
        TokenSource::Static(Secret::new(DEFAULT_TOKEN.to_owned())),
    );
    config.request_timeout = Duration::from_secs(3);
    config.retry = RetryPolicy {
        attempts: 3,
        base_delay: Duration::from_millis(20),
        max_delay: Duration::from_millis(100),
        max_retry_after: Duration::from_secs(3),
    };
    config
}

fn client(sim: &AapSimulator) -> AapClient {
    AapClient::new(config(sim)).unwrap()
}

/// What the runner sends: the resource as the EDA event payload, and the correlation key.
fn vars(name: &str, key: &str) -> Value {
    json!({
        CORRELATION_EXTRA_VAR: key,
        "ansible_eda": { "event": { "payload": {
            "apiVersion": "cloudkit.openshift.io/v1alpha1",
            "kind": "ComputeInstance",
            "metadata": { "name": name, "namespace": "default" },
            "spec": { "templateID": "small" },
            "status": { "desiredConfigVersion": "abc123" }
        } } }
    })
}

fn requests(sim: &AapSimulator, endpoint: Endpoint) -> u64 {
    sim.counter(endpoint).requests
}

fn answered(sim: &AapSimulator, endpoint: Endpoint, status: u16) -> u64 {
    sim.counter(endpoint)
        .statuses
        .get(&status)
        .copied()
        .unwrap_or(0)
}

/// Every request had its trailing slash (no 301) and went to a numeric-id path.
fn assert_well_formed(sim: &AapSimulator) {
    for r in sim.requests() {
        assert!(r.path.ends_with('/'), "no trailing slash: {r:?}");
        assert_ne!(r.status, Some(301), "redirected: {r:?}");
        assert_ne!(r.endpoint, Endpoint::Other, "unknown path: {r:?}");
    }
}

async fn wait_status(sim: &AapSimulator, id: u64, status: JobStatus) -> JobRecord {
    sim.wait_for_job(id, WAIT, |j| j.status == status)
        .await
        .unwrap_or_else(|| panic!("job {id} never became {status:?}: {:?}", sim.job(id)))
}

// ---- lookup -----------------------------------------------------------------------

#[tokio::test]
async fn lookup_prefers_job_templates_then_workflows_and_escapes_names() {
    let sim = sim().await;
    let aap = client(&sim);

    // A job template and a workflow share the name: the job template wins, in one request.
    let found = aap.template(PROVISION_NAME).await.unwrap();
    assert_eq!(
        found,
        TemplateRef {
            kind: AapJobKind::Job,
            id: PROVISION
        }
    );
    assert_eq!(requests(&sim, Endpoint::TemplateLookup), 1);

    // Only a workflow: two requests.
    let found = aap.template(WORKFLOW_NAME).await.unwrap();
    assert_eq!(
        found,
        TemplateRef {
            kind: AapJobKind::Workflow,
            id: WORKFLOW
        }
    );
    assert_eq!(requests(&sim, Endpoint::TemplateLookup), 3);

    let found = aap.template(ODD).await.unwrap();
    assert_eq!(found.id, ODD_NAME);
    assert_eq!(requests(&sim, Endpoint::TemplateLookup), 5);

    // Cached from now on.
    for name in [PROVISION_NAME, WORKFLOW_NAME, ODD] {
        aap.template(name).await.unwrap();
    }
    assert_eq!(requests(&sim, Endpoint::TemplateLookup), 5);

    let e = aap.template("no such template").await.unwrap_err();
    assert!(matches!(e, AapError::TemplateNotFound { .. }), "{e}");
    assert_eq!(
        e.to_string(),
        "no job or workflow template named \"no such template\""
    );
    assert_eq!(e.reason(), reasons::TEMPLATE_NOT_FOUND);
    assert!(e.is_permanent());
    assert_well_formed(&sim);
}

#[tokio::test]
async fn lookup_within_an_organization() {
    let sim = AapSimulator::start(
        sim_config()
            .template(TemplateConfig::job(20, "shared name").organization("Ops"))
            .template(TemplateConfig::job(21, "shared name").organization("Dev")),
    )
    .await
    .unwrap();
    let e = client(&sim).template("shared name").await.unwrap_err();
    assert!(
        matches!(e, AapError::AmbiguousTemplate { count: 2, .. }),
        "{e}"
    );
    assert!(e.is_permanent());

    let mut config = config(&sim);
    config.organization = Some("Dev".into());
    let aap = AapClient::new(config).unwrap();
    assert_eq!(aap.template("shared name").await.unwrap().id, 21);
    // Templates of other organizations are not found.
    let e = aap.template(PROVISION_NAME).await.unwrap_err();
    assert_eq!(
        e.to_string(),
        "no job or workflow template named \"cloudkit provision\" in organization \"Dev\""
    );
}

#[tokio::test]
async fn awx_prefix_works_too() {
    let sim = AapSimulator::start(sim_config().api_prefix("/api"))
        .await
        .unwrap();
    assert!(sim.base_url().ends_with("/api"));
    let aap = client(&sim);
    let launched = aap
        .launch(PROVISION_NAME, vars("vm-awx", "k-awx"))
        .await
        .unwrap();
    assert!(
        aap.get_job(launched.kind, launched.id)
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        sim.requests()
            .iter()
            .all(|r| r.path.starts_with("/api/v2/"))
    );
    assert_well_formed(&sim);
}

// ---- launch -----------------------------------------------------------------------

#[tokio::test]
async fn launch_job_template_201_then_poll_to_success() {
    let sim = sim().await;
    let aap = client(&sim);
    let launched = aap
        .launch(PROVISION_NAME, vars("vm-1", "key-1"))
        .await
        .unwrap();
    assert_eq!(launched.kind, AapJobKind::Job);
    assert_eq!(answered(&sim, Endpoint::Launch, 201), 1);

    let record = sim.job(launched.id).unwrap();
    assert_eq!(record.template_id, PROVISION);
    assert!(record.vars_reached_playbook);
    assert_eq!(record.extra_vars[CORRELATION_EXTRA_VAR], "key-1");
    let path = &sim
        .requests()
        .into_iter()
        .find(|r| r.endpoint == Endpoint::Launch)
        .unwrap()
        .path;
    assert_eq!(path, "/api/controller/v2/job_templates/7/launch/");

    sim.wait_for_terminal(launched.id, WAIT).await.unwrap();
    let job = aap
        .get_job(AapJobKind::Job, launched.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(job.status, "successful");
    assert_eq!(job.state, JobState::Succeeded);
    assert!(job.started.is_some() && job.finished.is_some());
    assert!(
        job.message().starts_with("successful after "),
        "{}",
        job.message()
    );
    assert_well_formed(&sim);
}

#[tokio::test]
async fn launch_workflow_201_and_poll_workflow_jobs() {
    let sim = sim().await;
    let aap = client(&sim);
    let launched = aap
        .launch(WORKFLOW_NAME, vars("vm-2", "key-2"))
        .await
        .unwrap();
    assert_eq!(launched.kind, AapJobKind::Workflow);
    let odd = aap.launch(ODD, vars("vm-3", "key-3")).await.unwrap();
    assert_eq!(odd.kind, AapJobKind::Workflow);
    assert_eq!(sim.job(odd.id).unwrap().template_id, ODD_NAME);

    sim.wait_for_terminal(launched.id, WAIT).await.unwrap();
    let polled = aap
        .poll(&[
            (AapJobKind::Workflow, launched.id),
            (AapJobKind::Workflow, odd.id),
        ])
        .await
        .unwrap();
    assert_eq!(
        polled[&(AapJobKind::Workflow, launched.id)].state,
        JobState::Succeeded
    );
    assert!(polled.contains_key(&(AapJobKind::Workflow, odd.id)));
    let lists: Vec<RequestRecord> = sim
        .requests()
        .into_iter()
        .filter(|r| r.endpoint == Endpoint::JobList)
        .collect();
    assert_eq!(lists.len(), 1);
    assert_eq!(lists[0].path, "/api/controller/v2/workflow_jobs/");
    assert_well_formed(&sim);
}

#[tokio::test]
async fn ignored_fields_are_variables_ignored() {
    let sim = sim().await;
    let e = client(&sim)
        .launch("unprompted", vars("vm-4", "key-4"))
        .await
        .unwrap_err();
    let AapError::VariablesIgnored {
        template,
        fields,
        job,
    } = &e
    else {
        panic!("{e}");
    };
    assert_eq!(template, "unprompted");
    assert_eq!(fields, &["extra_vars"]);
    // The job exists (201) but runs without our variables.
    let record = sim.job(job.id).unwrap();
    assert!(!record.vars_reached_playbook);
    assert_eq!(e.reason(), reasons::VARIABLES_IGNORED);
    assert!(e.is_permanent());
}

#[tokio::test]
async fn launch_400s_are_launch_rejected() {
    let sim = sim().await;
    let aap = client(&sim);

    let e = aap
        .launch("unprompted workflow", vars("vm-5", "key-5"))
        .await
        .unwrap_err();
    let AapError::LaunchRejected { template, fields } = &e else {
        panic!("{e}");
    };
    assert_eq!(template, "unprompted workflow");
    assert_eq!(fields.len(), 1, "{fields:?}");
    assert_eq!(fields[0].0, "extra_vars");
    assert!(fields[0].1[0].contains("not allowed on launch"), "{e}");
    assert_eq!(e.reason(), reasons::LAUNCH_REJECTED);
    assert!(e.is_permanent());

    let e = aap
        .launch("survey", vars("vm-6", "key-6"))
        .await
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("variables_needed_to_start: 'vm_size' value missing"),
        "{e}"
    );
    assert!(sim.jobs().is_empty(), "a 400 creates no job");
    assert_eq!(answered(&sim, Endpoint::Launch, 400), 2);
}

#[tokio::test]
async fn launch_404_drops_the_cached_id_and_looks_up_again() {
    let sim = sim().await;
    let aap = client(&sim);
    let first = aap
        .launch(WORKFLOW_NAME, vars("vm-7", "key-7"))
        .await
        .unwrap();
    assert_eq!(first.kind, AapJobKind::Workflow);

    // The workflow was replaced by a job template (AWX's unified templates share one id
    // space): /workflow_job_templates/11/launch/ answers 404 now.
    assert!(sim.update_template(WORKFLOW, |t| t.kind = JobKind::Job));
    let lookups = requests(&sim, Endpoint::TemplateLookup);
    let launched = aap
        .launch(WORKFLOW_NAME, vars("vm-7", "key-7b"))
        .await
        .unwrap();
    assert_eq!(launched.kind, AapJobKind::Job);
    assert_eq!(requests(&sim, Endpoint::TemplateLookup), lookups + 1);
    let launches: Vec<(String, Option<u16>)> = sim
        .requests()
        .into_iter()
        .filter(|r| r.endpoint == Endpoint::Launch)
        .map(|r| (r.path, r.status))
        .collect();
    assert_eq!(
        launches,
        [
            (
                "/api/controller/v2/workflow_job_templates/11/launch/".to_owned(),
                Some(201)
            ),
            (
                "/api/controller/v2/workflow_job_templates/11/launch/".to_owned(),
                Some(404)
            ),
            (
                "/api/controller/v2/job_templates/11/launch/".to_owned(),
                Some(201)
            ),
        ]
    );
    assert_well_formed(&sim);
}

// ---- credentials ------------------------------------------------------------------

#[tokio::test]
async fn unauthorized_and_forbidden() {
    let sim = sim().await;
    sim.set_token("read-only", Access::ReadOnly);

    let mut bad = config(&sim);
    bad.token = TokenSource::Static(Secret::new("wrong".to_owned()));
    let e = AapClient::new(bad)
        .unwrap()
        .template(PROVISION_NAME)
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "AAP rejected the token (401): Invalid token."
    );
    assert_eq!(e.reason(), reasons::AUTH_REJECTED);
    assert!(e.is_permanent());
    assert_eq!(
        answered(&sim, Endpoint::TemplateLookup, 401),
        1,
        "a 401 is not retried"
    );

    let mut ro = config(&sim);
    ro.token = TokenSource::Static(Secret::new("read-only".to_owned()));
    let ro = AapClient::new(ro).unwrap();
    let e = ro
        .launch(PROVISION_NAME, vars("vm-8", "key-8"))
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "not allowed to launch template \"cloudkit provision\" (403): You do not have permission to perform this action."
    );
    assert_eq!(e.reason(), reasons::FORBIDDEN);
    assert!(e.is_permanent());

    sim.set_template_behavior(PROVISION, JobBehavior::default().hold_running());
    let launched = client(&sim)
        .launch(PROVISION_NAME, vars("vm-8", "key-8"))
        .await
        .unwrap();
    // Read-only may ask can_cancel but not POST.
    let e = ro.cancel(launched.kind, launched.id).await.unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "not allowed to cancel job {} (403): You do not have permission to perform this action.",
            launched.id
        )
    );

    // A revoked token mid-flight: the launch answers 401.
    let aap = client(&sim);
    aap.template(PROVISION_NAME).await.unwrap();
    sim.revoke_token(DEFAULT_TOKEN);
    let e = aap
        .launch(PROVISION_NAME, vars("vm-9", "key-9"))
        .await
        .unwrap_err();
    assert!(matches!(e, AapError::Unauthorized { .. }), "{e}");
}

#[tokio::test]
async fn a_rotated_token_file_is_picked_up() {
    let sim = sim().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("token");
    std::fs::write(&path, format!("{DEFAULT_TOKEN}\n")).unwrap();
    let mut config = config(&sim);
    config.token = TokenSource::File(path.clone());
    let aap = AapClient::new(config).unwrap();
    aap.template(PROVISION_NAME).await.unwrap();

    sim.set_token("rotated-token", Access::ReadWrite);
    sim.revoke_token(DEFAULT_TOKEN);
    let tmp = dir.path().join("token.tmp");
    std::fs::write(&tmp, "rotated-token").unwrap();
    std::fs::rename(&tmp, &path).unwrap();
    aap.launch(PROVISION_NAME, vars("vm-10", "key-10"))
        .await
        .unwrap();
    assert_eq!(answered(&sim, Endpoint::Launch, 401), 0);
}

// ---- faults -----------------------------------------------------------------------

#[tokio::test]
async fn rate_limits_honour_retry_after() {
    let sim = sim().await;
    let aap = client(&sim);
    let launched = aap
        .launch(PROVISION_NAME, vars("vm-11", "key-11"))
        .await
        .unwrap();

    sim.rate_limit_next(Endpoint::JobDetail, 1, 1);
    let started = Instant::now();
    assert!(
        aap.get_job(launched.kind, launched.id)
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After: 1 was honoured"
    );
    assert_eq!(answered(&sim, Endpoint::JobDetail, 429), 1);
    assert_eq!(answered(&sim, Endpoint::JobDetail, 200), 1);

    // Longer than the client waits by itself: the caller gets it.
    sim.rate_limit_next(Endpoint::JobList, 1, 60);
    let e = aap.poll(&[(launched.kind, launched.id)]).await.unwrap_err();
    assert_eq!(e.retry_after(), Some(Duration::from_secs(60)));
    assert!(!e.is_permanent());
    assert_eq!(requests(&sim, Endpoint::JobList), 1);

    // A launch is never repeated, not even after a 429.
    sim.rate_limit_next(Endpoint::Launch, 1, 1);
    let e = aap
        .launch(PROVISION_NAME, vars("vm-12", "key-12"))
        .await
        .unwrap_err();
    assert!(matches!(e, AapError::RateLimited { .. }), "{e}");
    assert_eq!(requests(&sim, Endpoint::Launch), 2);
}

#[tokio::test]
async fn server_errors_are_retried_for_reads_only() {
    let sim = sim().await;
    let aap = client(&sim);
    let launched = aap
        .launch(PROVISION_NAME, vars("vm-13", "key-13"))
        .await
        .unwrap();

    sim.fail_next(Endpoint::JobList, 2, 502);
    let polled = aap.poll(&[(launched.kind, launched.id)]).await.unwrap();
    assert_eq!(polled.len(), 1);
    assert_eq!(requests(&sim, Endpoint::JobList), 3);

    sim.fail_next(Endpoint::JobDetail, 5, 503);
    let e = aap.get_job(launched.kind, launched.id).await.unwrap_err();
    assert!(matches!(e, AapError::Server { status: 503, .. }), "{e}");
    assert!(!e.is_permanent());
    assert_eq!(e.reason(), reasons::PROVIDER_UNREACHABLE);
    assert_eq!(requests(&sim, Endpoint::JobDetail), 3, "three attempts");
    sim.clear_faults();

    sim.fail_next(Endpoint::Launch, 1, 500);
    let e = aap
        .launch(PROVISION_NAME, vars("vm-14", "key-14"))
        .await
        .unwrap_err();
    assert!(matches!(e, AapError::Server { status: 500, .. }), "{e}");
    assert_eq!(
        requests(&sim, Endpoint::Launch),
        2,
        "the failed launch was sent once"
    );
    assert_eq!(sim.jobs().len(), 1);
}

#[tokio::test]
async fn a_hung_request_times_out() {
    let sim = sim().await;
    let mut config = config(&sim);
    config.request_timeout = Duration::from_millis(300);
    let aap = AapClient::new(config).unwrap();
    let launched = aap
        .launch(PROVISION_NAME, vars("vm-15", "key-15"))
        .await
        .unwrap();

    // One hang: the retry answers.
    sim.hang_next(Endpoint::JobDetail, 1);
    assert!(
        aap.get_job(launched.kind, launched.id)
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(requests(&sim, Endpoint::JobDetail), 2);

    sim.hang_next(Endpoint::JobDetail, 3);
    let e = aap.get_job(launched.kind, launched.id).await.unwrap_err();
    assert!(matches!(e, AapError::Timeout { .. }), "{e}");
    assert!(
        e.to_string()
            .contains(&format!("/api/controller/v2/jobs/{}/", launched.id)),
        "{e}"
    );
    assert!(!e.is_permanent());

    sim.hang_next(Endpoint::Launch, 1);
    let e = aap
        .launch(PROVISION_NAME, vars("vm-16", "key-16"))
        .await
        .unwrap_err();
    assert!(matches!(e, AapError::Timeout { .. }), "{e}");
    assert_eq!(requests(&sim, Endpoint::Launch), 2);
}

#[tokio::test]
async fn a_launch_lost_in_a_502_is_found_by_its_correlation_key() {
    let sim = sim().await;
    let aap = client(&sim);
    let before = Timestamp::now();
    // Other launches of the same template, before and after.
    let other = aap
        .launch(PROVISION_NAME, vars("vm-17", "key-other"))
        .await
        .unwrap();

    sim.launch_then_fail_next(1, 502);
    let e = aap
        .launch(PROVISION_NAME, vars("vm-18", "key-lost"))
        .await
        .unwrap_err();
    assert!(matches!(e, AapError::Server { status: 502, .. }), "{e}");
    assert!(!e.is_permanent());
    aap.launch(PROVISION_NAME, vars("vm-19", "key-after"))
        .await
        .unwrap();

    let lost = sim
        .jobs()
        .into_iter()
        .find(|j| j.submitted_extra_vars[CORRELATION_EXTRA_VAR] == "key-lost")
        .expect("the 502 launch created its job");
    let found = aap
        .find_launch(PROVISION_NAME, "key-lost", before)
        .await
        .unwrap();
    assert_eq!(
        found,
        Some(Launched {
            id: lost.id,
            kind: AapJobKind::Job
        })
    );
    assert_ne!(lost.id, other.id);
    assert_eq!(
        aap.find_launch(PROVISION_NAME, "key-never", before)
            .await
            .unwrap(),
        None
    );
    // Asked for launches from an hour on (beyond the clock-skew margin): none.
    let later = Timestamp::now()
        .checked_add(k8s_openapi::jiff::SignedDuration::from_hours(1))
        .unwrap();
    assert_eq!(
        aap.find_launch(PROVISION_NAME, "key-lost", later)
            .await
            .unwrap(),
        None
    );
    let list = sim
        .requests()
        .into_iter()
        .find(|r| r.endpoint == Endpoint::JobList)
        .unwrap();
    let query = list.query.unwrap();
    assert!(query.contains("job_template=7"), "{query}");
    assert!(query.contains("order_by=-created"), "{query}");
    assert!(query.contains("created__gte="), "{query}");
    assert_well_formed(&sim);
}

#[tokio::test]
async fn a_lost_workflow_launch_is_found_under_workflow_jobs() {
    let sim = sim().await;
    let aap = client(&sim);
    let before = Timestamp::now();
    sim.launch_then_fail_next(1, 504);
    aap.launch(WORKFLOW_NAME, vars("vm-20", "wf-key"))
        .await
        .unwrap_err();
    let found = aap
        .find_launch(WORKFLOW_NAME, "wf-key", before)
        .await
        .unwrap()
        .expect("found");
    assert_eq!(found.kind, AapJobKind::Workflow);
    assert_eq!(sim.job(found.id).unwrap().kind, JobKind::Workflow);
    let list = sim
        .requests()
        .into_iter()
        .find(|r| r.endpoint == Endpoint::JobList)
        .unwrap();
    assert_eq!(list.path, "/api/controller/v2/workflow_jobs/");
    assert!(
        list.query
            .unwrap()
            .contains(&format!("workflow_job_template={WORKFLOW}"))
    );
}

// ---- polling ----------------------------------------------------------------------

#[tokio::test]
async fn polling_500_jobs_costs_three_list_requests() {
    let sim = sim().await;
    sim.set_template_behavior(PROVISION, JobBehavior::default().hold_running());
    let aap = client(&sim);
    let mut ids = Vec::new();
    for i in 0..500 {
        let launched = aap
            .launch(PROVISION_NAME, vars(&format!("vm-{i}"), &format!("k-{i}")))
            .await
            .unwrap();
        ids.push((launched.kind, launched.id));
    }
    let before = requests(&sim, Endpoint::JobList);
    let polled = aap.poll(&ids).await.unwrap();
    assert_eq!(requests(&sim, Endpoint::JobList) - before, 3);
    assert_eq!(polled.len(), 500);
    for job in polled.values() {
        assert!(job.state.is_active(), "{job:?}");
    }
    assert_eq!(requests(&sim, Endpoint::JobDetail), 0);

    // A purged job is simply absent; its detail answers 404.
    let (kind, purged) = ids[123];
    assert!(sim.purge_job(purged));
    let polled = aap.poll(&ids).await.unwrap();
    assert_eq!(polled.len(), 499);
    assert!(!polled.contains_key(&(kind, purged)));
    assert_eq!(aap.get_job(kind, purged).await.unwrap(), None);
    assert_eq!(
        aap.cancel(kind, purged).await.unwrap(),
        CancelOutcome::AlreadyFinished
    );
    assert_eq!(requests(&sim, Endpoint::Cancel), 0);
    assert_eq!(requests(&sim, Endpoint::JobList) - before, 6);
    assert_well_formed(&sim);
}

// ---- cancel -----------------------------------------------------------------------

#[tokio::test]
async fn cancel_is_202_then_canceled_later() {
    let sim = sim().await;
    sim.set_template_behavior(
        PROVISION,
        JobBehavior::default()
            .hold_running()
            .cancel_delay(Duration::from_millis(500)),
    );
    let aap = client(&sim);
    let launched = aap
        .launch(PROVISION_NAME, vars("vm-21", "key-21"))
        .await
        .unwrap();
    wait_status(&sim, launched.id, JobStatus::Running).await;

    assert_eq!(
        aap.cancel(launched.kind, launched.id).await.unwrap(),
        CancelOutcome::Requested
    );
    assert_eq!(answered(&sim, Endpoint::Cancel, 202), 1);
    // Asynchronous: still running right after the 202.
    let job = aap
        .get_job(launched.kind, launched.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(job.state, JobState::Running);

    wait_status(&sim, launched.id, JobStatus::Canceled).await;
    let job = aap
        .get_job(launched.kind, launched.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(job.state, JobState::Canceled);
    assert!(job.message().starts_with("canceled"), "{}", job.message());

    // Finished now: can_cancel is false and nothing is POSTed.
    assert_eq!(
        aap.cancel(launched.kind, launched.id).await.unwrap(),
        CancelOutcome::AlreadyFinished
    );
    assert_eq!(requests(&sim, Endpoint::Cancel), 1);
    assert_eq!(requests(&sim, Endpoint::CancelCheck), 2);
    assert_well_formed(&sim);
}

#[tokio::test]
async fn cancel_of_a_workflow_job() {
    let sim = sim().await;
    sim.set_template_behavior(WORKFLOW, JobBehavior::default().hold_running());
    let aap = client(&sim);
    let launched = aap
        .launch(WORKFLOW_NAME, vars("vm-22", "key-22"))
        .await
        .unwrap();
    assert_eq!(
        aap.cancel(launched.kind, launched.id).await.unwrap(),
        CancelOutcome::Requested
    );
    wait_status(&sim, launched.id, JobStatus::Canceled).await;
    let post = sim
        .requests()
        .into_iter()
        .find(|r| r.endpoint == Endpoint::Cancel)
        .unwrap();
    assert_eq!(
        post.path,
        format!("/api/controller/v2/workflow_jobs/{}/cancel/", launched.id)
    );
}

#[tokio::test]
async fn cancel_405_means_already_finished() {
    let sim = sim().await;
    sim.set_template_behavior(PROVISION, JobBehavior::default().hold_running());
    let aap = client(&sim);
    let launched = aap
        .launch(PROVISION_NAME, vars("vm-23", "key-23"))
        .await
        .unwrap();
    // The job ends between the check and the POST.
    sim.push_faults(Endpoint::Cancel, Fault::Status(405), 1);
    assert_eq!(
        aap.cancel(launched.kind, launched.id).await.unwrap(),
        CancelOutcome::AlreadyFinished
    );
    assert_eq!(answered(&sim, Endpoint::Cancel, 405), 1);
    assert_eq!(requests(&sim, Endpoint::Cancel), 1, "never repeated");
}

#[tokio::test]
async fn cancel_of_a_finished_job_posts_nothing() {
    let sim = sim().await;
    let aap = client(&sim);
    let launched = aap
        .launch(PROVISION_NAME, vars("vm-24", "key-24"))
        .await
        .unwrap();
    sim.wait_for_terminal(launched.id, WAIT).await.unwrap();
    assert_eq!(
        aap.cancel(launched.kind, launched.id).await.unwrap(),
        CancelOutcome::AlreadyFinished
    );
    assert_eq!(requests(&sim, Endpoint::CancelCheck), 1);
    assert_eq!(requests(&sim, Endpoint::Cancel), 0);
}

#[tokio::test]
async fn a_failed_cancel_post_is_not_repeated() {
    let sim = sim().await;
    sim.set_template_behavior(PROVISION, JobBehavior::default().hold_running());
    let aap = client(&sim);
    let launched = aap
        .launch(PROVISION_NAME, vars("vm-25", "key-25"))
        .await
        .unwrap();
    sim.fail_next(Endpoint::Cancel, 1, 503);
    let e = aap.cancel(launched.kind, launched.id).await.unwrap_err();
    assert!(matches!(e, AapError::Server { status: 503, .. }), "{e}");
    assert_eq!(requests(&sim, Endpoint::Cancel), 1);
}

#[tokio::test]
async fn failed_jobs_carry_their_explanation() {
    let sim = sim().await;
    sim.set_template_behavior(
        DEPROVISION,
        quick()
            .outcome(Outcome::Error)
            .explanation("Previous Task Failed: {\"job_type\": \"project_update\"}"),
    );
    let aap = client(&sim);
    let launched = aap
        .launch("cloudkit deprovision", vars("vm-26", "key-26"))
        .await
        .unwrap();
    sim.wait_for_terminal(launched.id, WAIT).await.unwrap();
    let polled = aap.poll(&[(launched.kind, launched.id)]).await.unwrap();
    let job = &polled[&(launched.kind, launched.id)];
    assert_eq!(job.status, "error");
    assert_eq!(job.state, JobState::Failed);
    assert!(
        job.message().starts_with("error after ")
            && job
                .message()
                .ends_with(": Previous Task Failed: {\"job_type\": \"project_update\"}"),
        "{}",
        job.message()
    );
}
