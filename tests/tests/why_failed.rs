//! Why a job failed, end to end on the real API server: an AAP template failing in a named
//! task shows that task and its message in `kubectl cloudkit jobs -o wide`, `describe`,
//! the instance's JSON and the Warning Event, with the AAP job page; older failed jobs keep
//! only their one-line message; a job that errs before its playbook runs is explained by
//! AAP's traceback; a failed workflow job by the job of its failed node. The AAP token
//! shows up in none of it.

use cloudkit_shared::{ComputeInstance, JobEntry, JobState, JobType, reasons};
use cloudkit_testbed::aap_sim::{
    DEFAULT_TOKEN, FailingTask, JobBehavior, Outcome, Role, TemplateConfig,
};
use cloudkit_testbed::bed::{Bed, PROVISION_TEMPLATE_ID, quick_job};
use cloudkit_testbed::kubectl;
use cloudkit_testbed::observe::{jobs_of, running};
use cloudkit_testbed::wait::RUNNER as WAIT;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams};

const TASK: &str = "Create the VirtualMachine";
const HOST: &str = "localhost";
const MESSAGE: &str = "spec.template.spec.domain: Required value";

fn provisions(ci: &ComputeInstance) -> Vec<JobEntry> {
    jobs_of(ci, JobType::Provision)
}

fn failed(ci: &ComputeInstance) -> Vec<JobEntry> {
    provisions(ci)
        .into_iter()
        .filter(|j| j.state == JobState::Failed)
        .collect()
}

fn failing_task() -> JobBehavior {
    JobBehavior {
        failing_task: Some(FailingTask::new(TASK, HOST, MESSAGE)),
        ..quick_job()
    }
}

/// `kubectl cloudkit ARGS -n NAMESPACE`, which must succeed.
async fn plugin(bed: &Bed, args: &[&str]) -> anyhow::Result<String> {
    let mut all = vec!["cloudkit"];
    all.extend_from_slice(args);
    all.extend(["-n", bed.namespace.as_str()]);
    kubectl::ok(bed.cp.kubeconfig_path(), &all).await
}

/// The notes of the Warning `JobFailed` Events about `name`.
async fn failure_events(bed: &Bed, name: &str) -> anyhow::Result<Vec<String>> {
    let api: Api<Event> = Api::namespaced(bed.client.clone(), &bed.namespace);
    Ok(api
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter(|e| {
            e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name)
                && e.reason.as_deref() == Some(reasons::JOB_FAILED)
                && e.type_.as_deref() == Some("Warning")
        })
        .filter_map(|e| e.note)
        .collect())
}

fn assert_no_token(what: &str, text: &str) {
    assert!(
        !text.contains(DEFAULT_TOKEN),
        "{what} shows the AAP token: {text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_task_is_shown_everywhere_and_only_on_the_newest_failure() -> anyhow::Result<()> {
    let mut bed = Bed::without_runner("why-failed").await?;
    bed.aap
        .set_instance_behavior(&bed.namespace, "vm", Some(Role::Provision), failing_task());
    bed.start_runner(Vec::new())?;
    bed.create_default("vm").await?;
    let ci = bed
        .wait_for("vm", "two failed provisions", WAIT, |ci| {
            ci.is_some_and(|c| failed(c).len() >= 2)
        })
        .await?
        .expect("the instance exists");
    // Read as soon as the second failure is recorded, before another job is launched.
    let with_detail = failed(&ci).iter().filter(|j| j.failure.is_some()).count();
    assert_eq!(with_detail, 1, "{:#?}", failed(&ci));
    // The next attempt succeeds: the history stops changing once the instance runs.
    bed.aap
        .clear_instance_behavior(&bed.namespace, "vm", Some(Role::Provision));
    let ci = bed
        .wait_for("vm", "Running after the failures", WAIT, running)
        .await?
        .expect("the instance exists");

    let failures = failed(&ci);
    let (newest, older) = failures.split_last().expect("failed provisions");
    let detail = newest
        .failure
        .as_ref()
        .expect("the newest failure has detail");
    assert_eq!(
        (
            detail.task.as_str(),
            detail.host.as_str(),
            detail.message.as_str()
        ),
        (TASK, HOST, MESSAGE),
        "{newest:?}"
    );
    assert_eq!(
        detail.play, "cloudkit-create-compute-instance",
        "{newest:?}"
    );
    for old in older {
        assert_eq!(
            old.failure, None,
            "an older failure keeps only its message: {old:?}"
        );
        assert!(!old.message.is_empty(), "{old:?}");
    }
    let id = newest.job_id.clone().expect("launched");
    let url = format!("{}/execution/jobs/playbook/{id}/output", bed.aap.origin());
    assert_eq!(newest.url.as_deref(), Some(url.as_str()), "{newest:?}");
    for job in provisions(&ci) {
        let id = job.job_id.as_deref().expect("launched");
        assert!(
            job.url
                .as_deref()
                .is_some_and(|u| u.ends_with(&format!("/playbook/{id}/output")))
        );
    }

    let wide = plugin(&bed, &["jobs", "vm", "-o", "wide"]).await?;
    let line = wide
        .lines()
        .find(|l| l.split_whitespace().next() == Some(id.as_str()))
        .unwrap_or_else(|| panic!("no line for job {id}:\n{wide}"));
    assert!(
        line.contains(&format!("failed at task \"{TASK}\" on {HOST}: {MESSAGE}"))
            && line.contains(&url),
        "{line}"
    );
    for old in older {
        let old_id = old.job_id.as_deref().expect("launched");
        let old_line = wide
            .lines()
            .find(|l| l.split_whitespace().next() == Some(old_id))
            .unwrap_or_else(|| panic!("no line for job {old_id}:\n{wide}"));
        assert!(!old_line.contains("failed at"), "{old_line}");
    }

    let describe = plugin(&bed, &["describe", "vm"]).await?;
    assert!(
        describe.contains(&format!(
            "Failed at:     provision job {id}: task \"{TASK}\" on {HOST}: {MESSAGE}"
        )),
        "{describe}"
    );
    assert!(
        describe.contains(&format!("Job page:      {url}")),
        "{describe}"
    );
    assert_eq!(describe.matches("Failed at:").count(), 1, "{describe}");

    let json: serde_json::Value =
        serde_json::from_str(&plugin(&bed, &["jobs", "vm", "-o", "json"]).await?)?;
    let entry = json
        .as_array()
        .expect("a list of status.jobs entries")
        .iter()
        .find(|j| j["jobID"] == id.as_str())
        .expect("the newest failed job in the JSON")
        .clone();
    assert_eq!(entry["failure"]["task"], TASK, "{entry}");
    assert_eq!(entry["failure"]["host"], HOST, "{entry}");
    assert_eq!(entry["failure"]["message"], MESSAGE, "{entry}");
    assert_eq!(entry["url"], url.as_str(), "{entry}");

    // kube's event recorder folds later Events with the same reason about the same
    // instance into the first one's series: the first failure's note is the one shown.
    let events = failure_events(&bed, "vm").await?;
    let first = failures[0].job_id.as_deref().expect("launched");
    let note = events
        .iter()
        .find(|n| n.contains(&format!("provision job {first} is Failed")))
        .unwrap_or_else(|| panic!("no Warning JobFailed Event for job {first}: {events:#?}"));
    assert!(
        note.contains(&format!("failed at task \"{TASK}\" on {HOST}: {MESSAGE}")),
        "{note}"
    );

    for (what, text) in [
        ("jobs -o wide", wide.as_str()),
        ("describe", describe.as_str()),
        ("the instance JSON", &json.to_string()),
        ("the Events", &events.join("\n")),
    ] {
        assert_no_token(what, text);
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_before_the_playbook_ran_is_explained_by_the_traceback() -> anyhow::Result<()> {
    let mut bed = Bed::without_runner("why-error").await?;
    let error = JobBehavior {
        outcome: Outcome::Error,
        result_traceback: "Traceback (most recent call last):\n  File \"/usr/lib/python3/awx/main/tasks/jobs.py\", line 604, in run\nRuntimeError: Inventory not found.\n".into(),
        ..quick_job()
    };
    bed.aap
        .set_instance_behavior(&bed.namespace, "vm", Some(Role::Provision), error);
    bed.start_runner(Vec::new())?;
    bed.create_default("vm").await?;
    let ci = bed
        .wait_for("vm", "a failed provision with detail", WAIT, |ci| {
            ci.is_some_and(|c| failed(c).iter().any(|j| j.failure.is_some()))
        })
        .await?
        .expect("the instance exists");
    let job = failed(&ci)
        .into_iter()
        .find(|j| j.failure.is_some())
        .expect("found");
    let detail = job.failure.as_ref().expect("detail");
    assert_eq!(
        detail.message, "RuntimeError: Inventory not found.",
        "{job:?}"
    );
    assert_eq!(
        (detail.task.as_str(), detail.host.as_str()),
        ("", ""),
        "{job:?}"
    );
    let id = job.job_id.clone().expect("launched");
    let describe = plugin(&bed, &["describe", "vm"]).await?;
    assert!(
        describe.contains(&format!(
            "Failed at:     provision job {id}: RuntimeError: Inventory not found."
        )),
        "{describe}"
    );
    assert_no_token("describe", &describe);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_workflow_is_explained_by_its_failed_nodes_job() -> anyhow::Result<()> {
    const WORKFLOW: &str = "cloudkit-create-compute-instance-workflow";
    let mut bed = Bed::without_runner("why-workflow").await?;
    bed.aap.add_template(
        TemplateConfig::workflow(40, WORKFLOW)
            .role(Role::Provision)
            .node_template(PROVISION_TEMPLATE_ID)
            .behavior(failing_task()),
    );
    bed.start_runner(vec![(
        "CLOUDKIT_AAP_PROVISION_TEMPLATE".into(),
        WORKFLOW.into(),
    )])?;
    bed.create_default("vm").await?;
    bed.wait_for("vm", "a failed provision", WAIT, |ci| {
        ci.is_some_and(|c| !failed(c).is_empty())
    })
    .await?;
    // The next attempt succeeds: the history stops changing once the instance runs.
    assert!(bed.aap.set_template_behavior(40, quick_job()));
    let ci = bed
        .wait_for("vm", "Running after the failure", WAIT, running)
        .await?
        .expect("the instance exists");
    let job = failed(&ci).pop().expect("a failed provision");
    let detail = job.failure.as_ref().expect("the newest failure has detail");
    assert_eq!(
        (
            detail.task.as_str(),
            detail.host.as_str(),
            detail.message.as_str()
        ),
        (TASK, HOST, MESSAGE),
        "{job:?}"
    );
    let id = job.job_id.clone().expect("launched");
    let url = format!("{}/execution/jobs/workflow/{id}/output", bed.aap.origin());
    assert_eq!(job.url.as_deref(), Some(url.as_str()), "{job:?}");
    // The workflow job itself, not its node's job, is the one recorded.
    let record = bed
        .aap
        .job(id.parse()?)
        .expect("the simulator knows the job");
    assert_eq!(record.template_name, WORKFLOW);

    let wide = plugin(&bed, &["jobs", "vm", "-o", "wide"]).await?;
    assert!(
        wide.contains(&format!("failed at task \"{TASK}\" on {HOST}: {MESSAGE}"))
            && wide.contains(&url),
        "{wide}"
    );
    let events = failure_events(&bed, "vm").await?;
    assert!(
        events
            .iter()
            .any(|n| n.contains(&format!("provision job {id} is Failed"))
                && n.contains(&format!("failed at task \"{TASK}\""))),
        "{events:#?}"
    );
    assert_no_token("jobs -o wide", &wide);
    assert_no_token("the Events", &events.join("\n"));
    Ok(())
}
