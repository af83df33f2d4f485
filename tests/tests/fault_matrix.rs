//! The fault matrix: every provider failure a user can meet, on the real control plane
//! with the real runner process (lifecycle rule 7, docs/lifecycle-rules.md).
//!
//! For each row: the `Progressing` condition (status, reason, message) and the Kubernetes
//! Event (`events.k8s.io/v1`, `regarding` the instance) a user sees — each message one line
//! that names the cause — and recovery once the fault clears (the instance reaches Running).
//!
//! The rows are [`MATRIX`], the one list of them: each names the fault, what the job does
//! after it, the condition and Event reasons, what their messages name and how the user
//! recovers. The tests below run one scenario per row and
//! `the_matrix_has_one_test_per_row` checks that every row has one.
//!
//! "Failed": a permanent failure fails the job, which is retried with backoff (a person
//! must fix something first). "Pending": a transient failure keeps the intent, which is
//! launched again (after a lookup of the correlation key, so nothing is launched twice).

use std::net::SocketAddr;
use std::time::Duration;

use cloudkit_shared::conditions as cond;
use cloudkit_shared::{ComputeInstance, JobEntry, JobState, JobType, Phase, reasons};
use cloudkit_testbed::aap_sim::{Access, DEFAULT_TOKEN, Endpoint, Fault, JobStatus, Role};
use cloudkit_testbed::bed::{Bed, EDA_TOKEN, PROVISION_TEMPLATE, PROVISION_TEMPLATE_ID, quick_job};
use cloudkit_testbed::eda_sim::{
    self, EdaSimConfig, EdaSimulator, EventStreamConfig, Playbook, Scope,
};
use cloudkit_testbed::observe::{condition, jobs_of, running};
use cloudkit_testbed::wait::RUNNER as WAIT;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// What a job does after the fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum JobAfter {
    /// Failed at once (permanent); retried with backoff.
    Failed,
    /// Still Pending (transient); launched again.
    Pending,
}

/// One row of the matrix.
#[derive(Debug)]
struct Row {
    id: &'static str,
    fault: &'static str,
    job: JobAfter,
    /// Reason of the `Progressing` condition.
    reason: &'static str,
    /// Reason of the warning Event.
    event: &'static str,
    /// What the condition and Event messages must name (besides per-test values such as URLs).
    names: &'static [&'static str],
    recovery: &'static str,
}

const MATRIX: &[Row] = &[
    Row {
        id: "aap-401",
        fault: "the runner's token revoked",
        job: JobAfter::Failed,
        reason: reasons::AUTH_REJECTED,
        event: reasons::AUTH_REJECTED,
        names: &["401", "Invalid token."],
        recovery: "token file rotated to an accepted token",
    },
    Row {
        id: "aap-403",
        fault: "a read-only token",
        job: JobAfter::Failed,
        reason: reasons::FORBIDDEN,
        event: reasons::FORBIDDEN,
        names: &["403", PROVISION_TEMPLATE],
        recovery: "the token gets write access",
    },
    Row {
        id: "aap-404-template",
        fault: "no template with the configured name",
        job: JobAfter::Failed,
        reason: reasons::TEMPLATE_NOT_FOUND,
        event: reasons::TEMPLATE_NOT_FOUND,
        names: &[RENAMED_TEMPLATE],
        recovery: "the template is renamed to that name",
    },
    Row {
        id: "aap-400-vars",
        fault: "template needs a survey variable",
        job: JobAfter::Failed,
        reason: reasons::LAUNCH_REJECTED,
        event: reasons::LAUNCH_REJECTED,
        names: &[
            "400",
            PROVISION_TEMPLATE,
            "variables_needed_to_start",
            "vm_flavor",
        ],
        recovery: "the survey variable is dropped",
    },
    Row {
        id: "aap-ignored",
        fault: "template does not prompt for variables",
        job: JobAfter::Failed,
        reason: reasons::VARIABLES_IGNORED,
        event: reasons::VARIABLES_IGNORED,
        names: &[PROVISION_TEMPLATE, "extra_vars", "Prompt on launch"],
        recovery: "\"Prompt on launch\" enabled",
    },
    Row {
        id: "aap-429",
        fault: "every launch answers 429, Retry-After: 3",
        job: JobAfter::Pending,
        reason: reasons::PROVIDER_UNREACHABLE,
        event: reasons::PROVIDER_UNREACHABLE,
        names: &["429", "retry after 3s"],
        recovery: "the gateway stops throttling",
    },
    Row {
        id: "aap-5xx",
        fault: "every launch answers 503 (a proxy's HTML)",
        job: JobAfter::Pending,
        reason: reasons::PROVIDER_UNREACHABLE,
        event: reasons::PROVIDER_UNREACHABLE,
        names: &["503"],
        recovery: "the proxy recovers",
    },
    Row {
        id: "aap-timeout",
        fault: "every launch hangs",
        job: JobAfter::Pending,
        reason: reasons::PROVIDER_UNREACHABLE,
        event: reasons::PROVIDER_UNREACHABLE,
        names: &["no answer"],
        recovery: "AAP answers again",
    },
    Row {
        id: "aap-refused",
        fault: "nothing listens at the AAP URL",
        job: JobAfter::Pending,
        reason: reasons::PROVIDER_UNREACHABLE,
        event: reasons::PROVIDER_UNREACHABLE,
        names: &["cannot connect", "refused"],
        recovery: "AAP listens again",
    },
    Row {
        id: "aap-malformed",
        fault: "the launch answer is cut short (job created)",
        job: JobAfter::Pending,
        reason: reasons::PROVIDER_UNREACHABLE,
        event: reasons::PROVIDER_UNREACHABLE,
        names: &["unreadable"],
        recovery: "the launched job is found and adopted",
    },
    Row {
        id: "aap-purged",
        fault: "the running job is purged (404)",
        job: JobAfter::Failed,
        reason: reasons::JOB_PURGED,
        event: reasons::JOB_PURGED,
        names: &["gone", "404"],
        recovery: "the next attempt is not purged",
    },
    Row {
        id: "eda-401",
        fault: "the runner's EDA token is wrong",
        job: JobAfter::Failed,
        reason: reasons::WEBHOOK_REJECTED,
        event: reasons::WEBHOOK_REJECTED,
        names: &["401", "CLOUDKIT_EDA_TOKEN"],
        recovery: "the receiver accepts that token",
    },
    Row {
        id: "eda-405",
        fault: "event stream URL without its trailing slash",
        job: JobAfter::Failed,
        reason: reasons::WEBHOOK_REJECTED,
        event: reasons::WEBHOOK_REJECTED,
        names: &["405", "method not allowed"],
        recovery: "the runner gets a webhook URL that works",
    },
    Row {
        id: "eda-5xx",
        fault: "every event answers 503",
        job: JobAfter::Pending,
        reason: reasons::PROVIDER_UNREACHABLE,
        event: reasons::PROVIDER_UNREACHABLE,
        names: &["503"],
        recovery: "the receiver recovers",
    },
    Row {
        id: "eda-refused",
        fault: "nothing listens at the webhook URL",
        job: JobAfter::Pending,
        reason: reasons::PROVIDER_UNREACHABLE,
        event: reasons::PROVIDER_UNREACHABLE,
        names: &["unreachable", "refused"],
        recovery: "the receiver listens again",
    },
];

const RENAMED_TEMPLATE: &str = "cloudkit-create-compute-instance-v2";

fn row(id: &str) -> &'static Row {
    MATRIX
        .iter()
        .find(|r| r.id == id)
        .unwrap_or_else(|| panic!("no matrix row {id}"))
}

// ---- what a user sees ------------------------------------------------------------------

fn provisions(ci: &ComputeInstance) -> Vec<JobEntry> {
    jobs_of(ci, JobType::Provision)
}

/// The Events recorded about `name`, oldest first.
async fn events_about(bed: &Bed, name: &str) -> anyhow::Result<Vec<Event>> {
    let api: Api<Event> = Api::namespaced(bed.client.clone(), &bed.namespace);
    let mut events: Vec<Event> = api
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter(|e| {
            e.regarding
                .as_ref()
                .is_some_and(|r| r.name.as_deref() == Some(name))
        })
        .collect();
    events.sort_by_key(|e| e.event_time.as_ref().map(|t| t.0));
    Ok(events)
}

fn assert_one_line(what: &str, message: &str) {
    assert!(!message.trim().is_empty(), "{what}: empty message");
    assert!(
        !message.contains(['\n', '\r']),
        "{what} is not one line: {message:?}"
    );
    assert!(
        message.len() <= 1100,
        "{what} is too long ({} bytes): {message}",
        message.len()
    );
}

fn assert_names(what: &str, message: &str, needles: &[&str]) {
    for needle in needles {
        assert!(
            message.contains(needle),
            "{what} does not name {needle:?}: {message}"
        );
    }
    for secret in [DEFAULT_TOKEN, EDA_TOKEN, WRONG_EDA_TOKEN, URL_SECRET] {
        assert!(
            !message.contains(secret),
            "{what} shows a secret: {message}"
        );
    }
}

fn needles<'a>(row: &'a Row, extra: &[&'a str]) -> Vec<&'a str> {
    row.names
        .iter()
        .copied()
        .chain(extra.iter().copied())
        .collect()
}

/// Waits until the instance shows `row`'s failure in its `Progressing` condition, checks
/// it names the cause (`row.names` and `extra`), then does the same for the Event.
async fn sees(bed: &Bed, name: &str, row: &Row, extra: &[&str]) -> anyhow::Result<()> {
    let needles = needles(row, extra);
    let ci = bed
        .wait_for(
            name,
            &format!("{}: Progressing reason {}", row.id, row.reason),
            WAIT,
            |ci| {
                ci.and_then(|c| condition(c, cond::PROGRESSING))
                    .is_some_and(|c| c.reason == row.reason)
            },
        )
        .await?
        .expect("the instance exists");
    let progressing = condition(&ci, cond::PROGRESSING).expect("waited for it");
    let what = format!("{}: condition Progressing", row.id);
    assert_one_line(&what, &progressing.message);
    assert_names(&what, &progressing.message, &needles);
    let job = provisions(&ci).pop().expect("a provision job");
    let phase = ci.status.as_ref().and_then(|s| s.phase);
    match row.job {
        JobAfter::Failed => {
            assert_eq!(progressing.status, "False", "{what}: {progressing:?}");
            assert_eq!(phase, Some(Phase::Failed), "{}", row.id);
            assert_eq!(job.state, JobState::Failed, "{}: {job:?}", row.id);
        }
        JobAfter::Pending => {
            assert_eq!(progressing.status, "True", "{what}: {progressing:?}");
            assert_eq!(phase, Some(Phase::Starting), "{}", row.id);
            assert!(job.state.is_active(), "{}: {job:?}", row.id);
        }
    }
    assert_eq!(
        job.reason.as_deref(),
        Some(row.reason),
        "{}: {job:?}",
        row.id
    );
    let available = condition(&ci, cond::AVAILABLE).expect("Available is set");
    assert_eq!(available.status, "False", "{}: {available:?}", row.id);
    eprintln!(
        "[{}] condition Progressing={} reason={} message={:?}",
        row.id, progressing.status, progressing.reason, progressing.message
    );
    sees_event(bed, &ci, row, extra).await
}

/// Waits for a warning Event with `row.event` about the instance and checks its note.
async fn sees_event(
    bed: &Bed,
    ci: &ComputeInstance,
    row: &Row,
    extra: &[&str],
) -> anyhow::Result<()> {
    let name = ci.metadata.name.as_deref().expect("named");
    let deadline = std::time::Instant::now() + WAIT;
    let event = loop {
        let events = events_about(bed, name).await?;
        if let Some(e) = events
            .iter()
            .find(|e| e.reason.as_deref() == Some(row.event))
        {
            break e.clone();
        }
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "{}: no Event with reason {} about {name}; events: {:#?}",
            row.id,
            row.event,
            events
                .iter()
                .map(|e| (e.reason.clone(), e.note.clone()))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let what = format!("{}: Event {}", row.id, row.event);
    assert_eq!(event.type_.as_deref(), Some("Warning"), "{what}: {event:?}");
    let regarding = event.regarding.as_ref().expect("regarding");
    assert_eq!(regarding.kind.as_deref(), Some("ComputeInstance"));
    assert_eq!(regarding.uid, ci.metadata.uid, "{what}");
    let note = event.note.clone().unwrap_or_default();
    assert_one_line(&what, &note);
    assert_names(&what, &note, &needles(row, extra));
    eprintln!("[{}] event {} note={note:?}", row.id, row.event);
    Ok(())
}

/// Waits for Running after the fault cleared; the failure is no longer shown.
async fn recovers(bed: &Bed, name: &str, row: &Row) -> anyhow::Result<ComputeInstance> {
    let ci = bed
        .wait_for(
            name,
            &format!("{}: Running after {}", row.id, row.recovery),
            WAIT,
            running,
        )
        .await?
        .expect("running");
    let available = condition(&ci, cond::AVAILABLE).expect("Available");
    assert_eq!(available.status, "True", "{}: {available:?}", row.id);
    assert_eq!(available.reason, reasons::PROVISIONED);
    let progressing = condition(&ci, cond::PROGRESSING).expect("Progressing");
    assert_eq!(progressing.reason, reasons::PROVISIONED, "{}", row.id);
    let jobs = provisions(&ci);
    let last = jobs.last().expect("a provision job");
    assert_eq!(last.state, JobState::Succeeded, "{}: {jobs:?}", row.id);
    match row.job {
        // The same intent was launched again: one job, no duplicate.
        JobAfter::Pending => assert_eq!(jobs.len(), 1, "{}: {jobs:?}", row.id),
        // The failed attempt stays in the history.
        JobAfter::Failed => {
            assert!(jobs.len() >= 2, "{}: {jobs:?}", row.id);
            assert!(
                jobs[..jobs.len() - 1]
                    .iter()
                    .all(|j| j.state == JobState::Failed)
            );
        }
    }
    Ok(ci)
}

/// The runner's AAP launch URL of the provision template.
fn launch_url(bed: &Bed) -> String {
    format!(
        "{}job_templates/{PROVISION_TEMPLATE_ID}/launch/",
        bed.aap.api_url()
    )
}

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// A loopback port that refuses connections until opened; then it forwards them to a
/// server. The runner is configured with the port, so "the server is down" and "it is
/// back" happen without touching the runner.
struct Gate {
    port: u16,
    forwarder: Option<JoinHandle<()>>,
}

impl Gate {
    fn closed() -> anyhow::Result<Self> {
        let port = std::net::TcpListener::bind(("127.0.0.1", 0))?
            .local_addr()?
            .port();
        Ok(Self {
            port,
            forwarder: None,
        })
    }

    fn origin(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    async fn open(&mut self, target: SocketAddr) -> anyhow::Result<()> {
        let listener = TcpListener::bind(("127.0.0.1", self.port)).await?;
        self.forwarder = Some(tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        }));
        Ok(())
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        if let Some(f) = self.forwarder.take() {
            f.abort();
        }
    }
}

// ---- AAP rows ----------------------------------------------------------------------------

async fn aap_401_token_revoked(row: &'static Row) -> anyhow::Result<()> {
    let mut bed = Bed::without_runner("fm-401").await?;
    bed.aap.revoke_token(DEFAULT_TOKEN);
    bed.start_runner(vec![])?;
    bed.create_default("vm").await?;
    sees(&bed, "vm", row, &[]).await?;
    assert!(
        bed.aap.jobs().is_empty(),
        "a rejected token launched nothing"
    );
    // The Secret is rotated: the runner reads the file again after the 401.
    bed.aap.set_token("rotated-token-401", Access::ReadWrite);
    std::fs::write(bed.dir.path().join("aap-token"), "rotated-token-401\n")?;
    recovers(&bed, "vm", row).await?;
    Ok(())
}

async fn aap_403_read_only_token(row: &'static Row) -> anyhow::Result<()> {
    let mut bed = Bed::without_runner("fm-403").await?;
    let token_file = bed.dir.path().join("read-only-token");
    std::fs::write(&token_file, "read-only-token")?;
    bed.aap.set_token("read-only-token", Access::ReadOnly);
    bed.start_runner(env(&[(
        "CLOUDKIT_AAP_TOKEN_FILE",
        &token_file.display().to_string(),
    )]))?;
    bed.create_default("vm").await?;
    sees(&bed, "vm", row, &[]).await?;
    assert!(
        bed.aap.jobs().is_empty(),
        "a read-only token launched nothing"
    );
    bed.aap.set_token("read-only-token", Access::ReadWrite);
    recovers(&bed, "vm", row).await?;
    Ok(())
}

async fn aap_404_unknown_template(row: &'static Row) -> anyhow::Result<()> {
    let mut bed = Bed::without_runner("fm-404").await?;
    bed.start_runner(env(&[(
        "CLOUDKIT_AAP_PROVISION_TEMPLATE",
        RENAMED_TEMPLATE,
    )]))?;
    bed.create_default("vm").await?;
    sees(&bed, "vm", row, &[]).await?;
    bed.aap.update_template(PROVISION_TEMPLATE_ID, |t| {
        t.name = RENAMED_TEMPLATE.into();
    });
    recovers(&bed, "vm", row).await?;
    Ok(())
}

async fn aap_400_variables_needed_to_start(row: &'static Row) -> anyhow::Result<()> {
    let mut bed = Bed::without_runner("fm-400").await?;
    bed.aap.update_template(PROVISION_TEMPLATE_ID, |t| {
        t.variables_needed_to_start = vec!["vm_flavor".into()];
    });
    bed.start_runner(vec![])?;
    bed.create_default("vm").await?;
    sees(&bed, "vm", row, &[]).await?;
    bed.aap.update_template(PROVISION_TEMPLATE_ID, |t| {
        t.variables_needed_to_start.clear();
    });
    recovers(&bed, "vm", row).await?;
    Ok(())
}

async fn aap_ignored_fields(row: &'static Row) -> anyhow::Result<()> {
    let mut bed = Bed::without_runner("fm-ignored").await?;
    bed.aap.update_template(PROVISION_TEMPLATE_ID, |t| {
        t.ask_variables_on_launch = false;
    });
    bed.start_runner(vec![])?;
    bed.create_default("vm").await?;
    sees(&bed, "vm", row, &[]).await?;
    bed.aap.update_template(PROVISION_TEMPLATE_ID, |t| {
        t.ask_variables_on_launch = true;
    });
    recovers(&bed, "vm", row).await?;
    // The jobs that started without our variables were canceled, never left running.
    let blind: Vec<_> = bed
        .aap
        .jobs()
        .into_iter()
        .filter(|j| !j.vars_reached_playbook)
        .collect();
    assert!(!blind.is_empty());
    let requests = bed.aap.requests();
    for job in blind {
        assert_eq!(job.status, JobStatus::Canceled, "job {}: {job:?}", job.id);
        let cancel = format!("/jobs/{}/cancel/", job.id);
        assert!(
            requests
                .iter()
                .any(|r| r.method == "POST" && r.path.ends_with(&cancel)),
            "job {} was never canceled",
            job.id
        );
    }
    Ok(())
}

async fn aap_429_with_retry_after(row: &'static Row) -> anyhow::Result<()> {
    let mut bed = Bed::without_runner("fm-429").await?;
    bed.aap.update_faults(Endpoint::Launch, |f| {
        f.always = Some(Fault::TooManyRequests {
            retry_after_secs: 3,
        });
    });
    bed.start_runner(vec![])?;
    bed.create_default("vm").await?;
    let url = launch_url(&bed);
    sees(&bed, "vm", row, &[&url]).await?;
    bed.aap.clear_faults();
    recovers(&bed, "vm", row).await?;
    assert_eq!(bed.aap.jobs_of(&bed.namespace, "vm").len(), 1);
    Ok(())
}

/// A throttled launch is not tried again before the `Retry-After` AAP sent.
async fn aap_429_retry_after_is_honoured(row: &'static Row) -> anyhow::Result<()> {
    let mut bed = Bed::without_runner("fm-429-wait").await?;
    bed.aap.update_faults(Endpoint::Launch, |f| {
        f.always = Some(Fault::TooManyRequests {
            retry_after_secs: 3,
        });
    });
    bed.start_runner(vec![])?;
    bed.create_default("vm").await?;
    sees(&bed, "vm", row, &[]).await?;
    // AAP asked for 3 s between requests: wait for one more launch (the runner kept
    // trying), then check each came no sooner than 3 s after the answer before it.
    let launches = || {
        bed.aap
            .requests()
            .into_iter()
            .filter(|r| r.endpoint == Endpoint::Launch)
            .collect::<Vec<_>>()
    };
    let before = launches().len();
    let seen = bed
        .aap
        .wait_until(WAIT, || Some(launches()).filter(|l| l.len() > before))
        .await
        .ok_or_else(|| {
            anyhow::anyhow!("the runner launched no more than {before} times in {WAIT:?}")
        })?;
    for pair in seen.windows(2) {
        let answered = pair[0].answered_at.expect("a 429 is answered");
        let gap = pair[1].at.duration_since(answered);
        assert!(
            gap >= k8s_openapi::jiff::SignedDuration::from_secs(3),
            "launch {} came {gap:#} after the 429 before it, although AAP asked to wait 3 s",
            pair[1].seq
        );
    }
    Ok(())
}

async fn aap_5xx(row: &'static Row) -> anyhow::Result<()> {
    let mut bed = Bed::without_runner("fm-5xx").await?;
    bed.aap.update_faults(Endpoint::Launch, |f| {
        f.always = Some(Fault::Status(503));
    });
    bed.start_runner(vec![])?;
    bed.create_default("vm").await?;
    let url = launch_url(&bed);
    sees(&bed, "vm", row, &[&url, "503 Service Unavailable"]).await?;
    bed.aap.clear_faults();
    recovers(&bed, "vm", row).await?;
    assert_eq!(bed.aap.jobs_of(&bed.namespace, "vm").len(), 1);
    Ok(())
}

async fn aap_timeout(row: &'static Row) -> anyhow::Result<()> {
    let mut bed = Bed::without_runner("fm-timeout").await?;
    bed.aap
        .update_faults(Endpoint::Launch, |f| f.always = Some(Fault::Hang));
    bed.start_runner(env(&[("CLOUDKIT_HTTP_TIMEOUT", "2s")]))?;
    bed.create_default("vm").await?;
    let url = launch_url(&bed);
    sees(&bed, "vm", row, &[&url]).await?;
    bed.aap.clear_faults();
    recovers(&bed, "vm", row).await?;
    assert_eq!(bed.aap.jobs_of(&bed.namespace, "vm").len(), 1);
    Ok(())
}

async fn aap_connection_refused(row: &'static Row) -> anyhow::Result<()> {
    let mut bed = Bed::without_runner("fm-refused").await?;
    let mut gate = Gate::closed()?;
    let base = format!("{}/api/controller", gate.origin());
    bed.start_runner(env(&[("CLOUDKIT_AAP_URL", &base)]))?;
    bed.create_default("vm").await?;
    sees(&bed, "vm", row, &[&gate.origin()]).await?;
    gate.open(bed.aap.addr()).await?;
    recovers(&bed, "vm", row).await?;
    assert_eq!(bed.aap.jobs_of(&bed.namespace, "vm").len(), 1);
    Ok(())
}

/// The launch creates its job but its answer is cut short: the Event names the unreadable
/// answer; the runner then finds the job by its correlation key instead of launching
/// again. (The condition shows the adopted job, not the lost answer: see
/// `an_adopted_job_does_not_keep_the_launch_failure_reason`.)
async fn aap_malformed_launch_answer(row: &'static Row) -> anyhow::Result<()> {
    let mut bed = Bed::without_runner("fm-malformed").await?;
    bed.aap
        .push_faults(Endpoint::Launch, Fault::CommitThenMalformed, 1);
    bed.start_runner(vec![])?;
    let ci = bed.create_default("vm").await?;
    let url = launch_url(&bed);
    sees_event(&bed, &ci, row, &[&url]).await?;
    let ci = recovers(&bed, "vm", row).await?;
    let aap_jobs = bed.aap.jobs_of(&bed.namespace, "vm");
    assert_eq!(aap_jobs.len(), 1, "launched once: {aap_jobs:?}");
    assert_eq!(
        provisions(&ci)[0].job_id,
        Some(aap_jobs[0].id.to_string()),
        "the job AAP created is the one recorded"
    );
    Ok(())
}

/// Once the job of a lost launch answer is found, the condition no longer carries the
/// launch failure's reason while that job runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_adopted_job_does_not_keep_the_launch_failure_reason() -> anyhow::Result<()> {
    let mut bed = Bed::without_runner("fm-adopted").await?;
    bed.aap
        .push_faults(Endpoint::Launch, Fault::CommitThenMalformed, 1);
    bed.aap.set_instance_behavior(
        &bed.namespace,
        "vm",
        Some(Role::Provision),
        quick_job().running(Duration::from_secs(4)),
    );
    bed.start_runner(vec![])?;
    bed.create_default("vm").await?;
    bed.wait_for("vm", "the launched job found and Running", WAIT, |ci| {
        ci.and_then(|c| provisions(c).pop())
            .is_some_and(|j| j.job_id.is_some() && j.state == JobState::Running)
    })
    .await?;
    // The pass after the adoption plans the condition from the adopted job; wait for it
    // rather than for a fixed time.
    let ci = bed
        .wait_for(
            "vm",
            "Progressing planned from the adopted job",
            WAIT,
            |ci| {
                ci.and_then(|c| condition(c, cond::PROGRESSING))
                    .is_some_and(|p| p.reason != reasons::PROVIDER_UNREACHABLE)
            },
        )
        .await?
        .expect("exists");
    let job = provisions(&ci).pop().expect("a job");
    let progressing = condition(&ci, cond::PROGRESSING).expect("Progressing");
    assert!(job.state.is_active(), "{job:?}");
    assert_ne!(
        job.reason.as_deref(),
        Some(reasons::PROVIDER_UNREACHABLE),
        "{job:?}"
    );
    assert_eq!(progressing.reason, reasons::PROVISIONING, "{progressing:?}");
    Ok(())
}

async fn aap_purged_job(row: &'static Row) -> anyhow::Result<()> {
    let mut bed = Bed::without_runner("fm-purged").await?;
    bed.aap.set_instance_behavior(
        &bed.namespace,
        "vm",
        Some(Role::Provision),
        quick_job().hold_running(),
    );
    // A long enough backoff that the failure stays visible before the next attempt.
    bed.start_runner(env(&[
        ("CLOUDKIT_RETRY_BASE", "5s"),
        ("CLOUDKIT_RETRY_MAX", "5s"),
    ]))?;
    bed.create_default("vm").await?;
    let ci = bed
        .wait_for("vm", "provision job Running", WAIT, |ci| {
            ci.and_then(|c| provisions(c).pop())
                .is_some_and(|j| j.state == JobState::Running)
        })
        .await?
        .expect("exists");
    let id: u64 = provisions(&ci)[0]
        .job_id
        .as_deref()
        .expect("launched")
        .parse()?;
    bed.aap
        .clear_instance_behavior(&bed.namespace, "vm", Some(Role::Provision));
    assert!(bed.aap.purge_job(id));
    let id_text = id.to_string();
    sees(&bed, "vm", row, &[&id_text]).await?;
    recovers(&bed, "vm", row).await?;
    Ok(())
}

// ---- EDA rows ----------------------------------------------------------------------------

const WRONG_EDA_TOKEN: &str = "eda-token-from-last-year";
const URL_SECRET: &str = "url-5ecret-query";

async fn eda_401_wrong_token(row: &'static Row) -> anyhow::Result<()> {
    let mut bed = Bed::without_runner("fm-eda-401").await?;
    let mut env = bed.start_eda().await?;
    env.push(("CLOUDKIT_EDA_TOKEN".into(), WRONG_EDA_TOKEN.into()));
    bed.start_runner(env)?;
    bed.create_default("vm").await?;
    let url = bed.eda.as_ref().unwrap().provision_url();
    sees(&bed, "vm", row, &[&url]).await?;
    bed.eda.as_ref().unwrap().set_token(Some(WRONG_EDA_TOKEN));
    recovers(&bed, "vm", row).await?;
    Ok(())
}

async fn eda_405_wrong_url(row: &'static Row) -> anyhow::Result<()> {
    let mut bed = Bed::without_runner("fm-eda-405").await?;
    let stream = "5f0c4c51-0a4e-4bb4-9a4f-9d2b1f0e4d11";
    let sim = EdaSimulator::start(
        EdaSimConfig::new()
            .token(EDA_TOKEN)
            .kube(bed.client.clone())
            .event_stream(
                EventStreamConfig::token(stream, "cloudkit", EDA_TOKEN).playbook(Playbook::Create),
            ),
    )
    .await?;
    // Copied from a browser without the trailing slash: Django redirects, the client
    // follows with a GET, and the view answers 405.
    let wrong = sim.stream_url(stream).trim_end_matches('/').to_owned();
    let configured = format!("{wrong}?secret={URL_SECRET}");
    let good = sim.provision_url();
    let deprovision = sim.deprovision_url();
    bed.eda = Some(sim);
    let eda_env = |provision: &str| {
        env(&[
            ("CLOUDKIT_PROVISIONING_PROVIDER", "eda"),
            ("CLOUDKIT_COMPUTE_INSTANCE_PROVISION_WEBHOOK", provision),
            (
                "CLOUDKIT_COMPUTE_INSTANCE_DEPROVISION_WEBHOOK",
                &deprovision,
            ),
            ("CLOUDKIT_EDA_TOKEN", EDA_TOKEN),
        ])
    };
    bed.start_runner(eda_env(&configured))?;
    bed.create_default("vm").await?;
    sees(&bed, "vm", row, &[&wrong]).await?;
    // The operator fixes the URL; the runner restarts with it.
    bed.runner().kill();
    bed.start_runner(eda_env(&good))?;
    recovers(&bed, "vm", row).await?;
    Ok(())
}

/// The right event stream URL (ending in `/post/`) provisions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eda_event_stream_url_keeps_its_trailing_slash() -> anyhow::Result<()> {
    let mut bed = Bed::without_runner("fm-eda-stream").await?;
    let stream = "0b9d3c5e-61a2-4f7e-8f0c-3c2a1e5d7b90";
    let sim = EdaSimulator::start(EdaSimConfig::new().kube(bed.client.clone()).event_stream(
        EventStreamConfig::token(stream, "cloudkit", EDA_TOKEN).playbook(Playbook::Create),
    ))
    .await?;
    let url = sim.stream_url(stream);
    assert!(url.ends_with("/post/"), "{url}");
    let deprovision = sim.deprovision_url();
    bed.eda = Some(sim);
    bed.start_runner(env(&[
        ("CLOUDKIT_PROVISIONING_PROVIDER", "eda"),
        ("CLOUDKIT_COMPUTE_INSTANCE_PROVISION_WEBHOOK", &url),
        (
            "CLOUDKIT_COMPUTE_INSTANCE_DEPROVISION_WEBHOOK",
            &deprovision,
        ),
        ("CLOUDKIT_EDA_TOKEN", EDA_TOKEN),
    ]))?;
    bed.create_default("vm").await?;
    let ci = bed.wait_for("vm", "Running", WAIT, running).await;
    let requests = bed.eda.as_ref().unwrap().requests();
    let seen: Vec<_> = requests
        .iter()
        .map(|r| format!("{} {} -> {:?}", r.method, r.path, r.status))
        .collect();
    ci.map_err(|e| anyhow::anyhow!("{e}\nEDA saw: {seen:#?}"))?;
    Ok(())
}

async fn eda_5xx(row: &'static Row) -> anyhow::Result<()> {
    let mut bed = Bed::without_runner("fm-eda-5xx").await?;
    let env = bed.start_eda().await?;
    let eda = bed.eda.as_ref().unwrap();
    eda.set_fault(Scope::Any, Some(eda_sim::Fault::Status(503)));
    let url = eda.provision_url();
    bed.start_runner(env)?;
    bed.create_default("vm").await?;
    sees(&bed, "vm", row, &[&url]).await?;
    bed.eda.as_ref().unwrap().clear_faults();
    recovers(&bed, "vm", row).await?;
    Ok(())
}

async fn eda_connection_refused(row: &'static Row) -> anyhow::Result<()> {
    let mut bed = Bed::without_runner("fm-eda-refused").await?;
    let mut env = bed.start_eda().await?;
    let mut gate = Gate::closed()?;
    let url = format!("{}/provision", gate.origin());
    env.push((
        "CLOUDKIT_COMPUTE_INSTANCE_PROVISION_WEBHOOK".into(),
        format!("{url}?token={URL_SECRET}"),
    ));
    bed.start_runner(env)?;
    bed.create_default("vm").await?;
    sees(&bed, "vm", row, &[&url]).await?;
    gate.open(bed.eda.as_ref().unwrap().addr()).await?;
    recovers(&bed, "vm", row).await?;
    Ok(())
}

// ---- the tests: one per (scenario, row) pair of MATRIX --------------------------------------

/// Generates one test per entry, running the scenario with its row, and `TESTED`, the
/// rows the tests cover (checked against [`MATRIX`] below).
macro_rules! row_tests {
    ($($scenario:ident => $id:literal,)*) => {
        const TESTED: &[&str] = &[$($id),*];

        mod matrix {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() -> anyhow::Result<()> {
                    super::$scenario(super::row($id)).await
                }
            )*
        }
    };
}

row_tests! {
    aap_401_token_revoked => "aap-401",
    aap_403_read_only_token => "aap-403",
    aap_404_unknown_template => "aap-404-template",
    aap_400_variables_needed_to_start => "aap-400-vars",
    aap_ignored_fields => "aap-ignored",
    aap_429_with_retry_after => "aap-429",
    aap_429_retry_after_is_honoured => "aap-429",
    aap_5xx => "aap-5xx",
    aap_timeout => "aap-timeout",
    aap_connection_refused => "aap-refused",
    aap_malformed_launch_answer => "aap-malformed",
    aap_purged_job => "aap-purged",
    eda_401_wrong_token => "eda-401",
    eda_405_wrong_url => "eda-405",
    eda_5xx => "eda-5xx",
    eda_connection_refused => "eda-refused",
}

#[test]
fn the_matrix_has_one_test_per_row() {
    let mut ids = std::collections::BTreeSet::new();
    for row in MATRIX {
        assert!(ids.insert(row.id), "row {} twice", row.id);
        assert!(!row.fault.is_empty() && !row.recovery.is_empty());
        assert!(TESTED.contains(&row.id), "no test runs row {}", row.id);
    }
    for id in TESTED {
        assert!(
            ids.contains(id),
            "a test runs row {id}, which the matrix lacks"
        );
    }
}
