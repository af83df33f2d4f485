//! Jobs and their state machine: new → pending → waiting → running → successful |
//! failed | error, or canceled.

use std::sync::Arc;

use k8s_openapi::jiff::Timestamp;
use serde::Serialize;
use serde_json::{Map, Value, json};
use tokio::time::Instant;

use super::config::{JobBehavior, JobKind, Outcome, Role};
use super::effects;
use super::events::Callback;
use super::ledger::{EffectOutcome, EffectRecord};
use super::state::Shared;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    New,
    Pending,
    Waiting,
    Running,
    Successful,
    Failed,
    Error,
    Canceled,
}

impl JobStatus {
    pub const ALL: [JobStatus; 8] = [
        JobStatus::New,
        JobStatus::Pending,
        JobStatus::Waiting,
        JobStatus::Running,
        JobStatus::Successful,
        JobStatus::Failed,
        JobStatus::Error,
        JobStatus::Canceled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::New => "new",
            JobStatus::Pending => "pending",
            JobStatus::Waiting => "waiting",
            JobStatus::Running => "running",
            JobStatus::Successful => "successful",
            JobStatus::Failed => "failed",
            JobStatus::Error => "error",
            JobStatus::Canceled => "canceled",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// AWX's ACTIVE_STATES, which are also the cancelable ones.
    pub fn is_active(self) -> bool {
        matches!(
            self,
            JobStatus::New | JobStatus::Pending | JobStatus::Waiting | JobStatus::Running
        )
    }

    pub fn is_terminal(self) -> bool {
        !self.is_active()
    }

    /// The `failed` field: true for failed, error and canceled.
    pub fn failed(self) -> bool {
        matches!(
            self,
            JobStatus::Failed | JobStatus::Error | JobStatus::Canceled
        )
    }
}

/// The ComputeInstance a job acts on, from `extra_vars.ansible_eda.event.payload.metadata`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct InstanceRef {
    pub namespace: String,
    pub name: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StatusChange {
    pub status: JobStatus,
    pub at: Timestamp,
}

/// A job as tests see it in the ledger (purged jobs stay here).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct JobRecord {
    pub id: u64,
    pub kind: JobKind,
    pub template_id: u64,
    pub template_name: String,
    pub role: Option<Role>,
    /// From the submitted extra_vars, even when the template ignored them.
    pub instance: Option<InstanceRef>,
    /// `payload.status.desiredConfigVersion` of the extra_vars the playbook received.
    pub desired_config_version: Option<String>,
    pub status: JobStatus,
    pub history: Vec<StatusChange>,
    /// The extra_vars the playbook received (empty when ignored).
    pub extra_vars: Map<String, Value>,
    /// The extra_vars the launch request carried.
    pub submitted_extra_vars: Map<String, Value>,
    /// False when the template dropped the submitted extra_vars (`ignored_fields`).
    pub vars_reached_playbook: bool,
    pub cancel_requested_at: Option<Timestamp>,
    pub created: Timestamp,
    pub started: Option<Timestamp>,
    pub finished: Option<Timestamp>,
    pub purged: bool,
}

/// The live job.
#[derive(Clone, Debug)]
pub(crate) struct Job {
    pub(crate) id: u64,
    pub(crate) kind: JobKind,
    pub(crate) template_id: u64,
    pub(crate) template_name: String,
    pub(crate) role: Option<Role>,
    pub(crate) instance: Option<InstanceRef>,
    pub(crate) desired_config_version: Option<String>,
    pub(crate) extra_vars: Map<String, Value>,
    pub(crate) submitted_extra_vars: Map<String, Value>,
    pub(crate) vars_reached_playbook: bool,
    pub(crate) status: JobStatus,
    pub(crate) phase_since: Instant,
    pub(crate) created: Timestamp,
    pub(crate) modified: Timestamp,
    pub(crate) started: Option<Timestamp>,
    pub(crate) finished: Option<Timestamp>,
    pub(crate) canceled_on: Option<Timestamp>,
    /// An API cancel of a running job: it stops after the cancel delay.
    pub(crate) cancel_requested: Option<Instant>,
    pub(crate) job_explanation: String,
    pub(crate) result_traceback: String,
    pub(crate) stdout: String,
    pub(crate) events: Vec<super::events::JobEvent>,
    /// A workflow job's nodes.
    pub(crate) nodes: Vec<super::workflow_nodes::WorkflowNode>,
    pub(crate) history: Vec<StatusChange>,
    pub(crate) purged: bool,
    /// The template's behaviour at launch, used if the template is removed later.
    pub(crate) launch_behavior: JobBehavior,
}

impl Job {
    pub(crate) fn record(&self, clock: &super::clock::Clock) -> JobRecord {
        JobRecord {
            id: self.id,
            kind: self.kind,
            template_id: self.template_id,
            template_name: self.template_name.clone(),
            role: self.role,
            instance: self.instance.clone(),
            desired_config_version: self.desired_config_version.clone(),
            status: self.status,
            history: self.history.clone(),
            extra_vars: self.extra_vars.clone(),
            submitted_extra_vars: self.submitted_extra_vars.clone(),
            vars_reached_playbook: self.vars_reached_playbook,
            cancel_requested_at: self.cancel_requested.map(|i| clock.at(i)),
            created: self.created,
            started: self.started,
            finished: self.finished,
            purged: self.purged,
        }
    }

    /// Seconds between start and finish; while running, until now (as AWX's serializer).
    pub(crate) fn elapsed(&self, now: Timestamp) -> f64 {
        let Some(started) = self.started else {
            return 0.0;
        };
        let end = self.finished.unwrap_or(now);
        let micros = end.as_microsecond() - started.as_microsecond();
        let secs = micros.max(0) as f64 / 1e6;
        match self.finished {
            // AWX stores elapsed with three decimals once the job is done.
            Some(_) => (secs * 1000.0).round() / 1000.0,
            None => secs,
        }
    }

    pub(crate) fn log(&mut self, line: &str) {
        self.stdout.push_str(line);
        self.stdout.push('\n');
    }
}

/// What the driver does next for one job.
enum Step {
    Done,
    Wait(Option<Instant>),
    Advance(JobStatus),
    Finish(JobBehavior),
    CancelDone,
    Playbook(super::playbook::PlaybookRun),
}

fn next_step(shared: &Shared, id: u64) -> Step {
    let state = shared.lock();
    let Some(job) = state.jobs.get(&id) else {
        return Step::Done;
    };
    if job.purged || job.status.is_terminal() {
        return Step::Done;
    }
    let behavior = state.behavior_for(job);
    let now = Instant::now();
    if let Some(requested) = job.cancel_requested {
        return match requested.checked_add(behavior.cancel_delay) {
            Some(due) if due <= now => Step::CancelDone,
            due => Step::Wait(due),
        };
    }
    if job.status == JobStatus::Running
        && let Some(run) = state
            .templates
            .get(&job.template_id)
            .and_then(|t| t.playbook.clone())
    {
        return Step::Playbook(run);
    }
    let Some(duration) = behavior.phase(job.status) else {
        return Step::Done;
    };
    match job.phase_since.checked_add(duration) {
        Some(due) if due <= now => match job.status {
            JobStatus::New => Step::Advance(JobStatus::Pending),
            JobStatus::Pending => Step::Advance(JobStatus::Waiting),
            JobStatus::Waiting => Step::Advance(JobStatus::Running),
            JobStatus::Running => Step::Finish(behavior),
            _ => Step::Done,
        },
        due => Step::Wait(due),
    }
}

/// Runs one job to its end. Every change of the shared state wakes it, so behaviour
/// changes and cancels take effect at once.
pub(crate) async fn drive(shared: Arc<Shared>, id: u64) {
    let mut changes = shared.changes.subscribe();
    loop {
        // Mark the current version seen before reading state: a change after this
        // point wakes the wait below.
        changes.borrow_and_update();
        match next_step(&shared, id) {
            Step::Done => return,
            Step::Wait(due) => {
                let changed = match due {
                    Some(due) => tokio::select! {
                        _ = tokio::time::sleep_until(due) => Ok(()),
                        r = changes.changed() => r,
                    },
                    None => changes.changed().await,
                };
                if changed.is_err() {
                    return;
                }
            }
            Step::Advance(to) => shared.update(|state, now| {
                // A real playbook writes its own output.
                let simulated = state
                    .jobs
                    .get(&id)
                    .and_then(|j| state.templates.get(&j.template_id))
                    .is_none_or(|t| t.playbook.is_none());
                let at = state.clock.at(now);
                if let Some(job) = state.jobs.get_mut(&id)
                    && to == JobStatus::Running
                    && simulated
                {
                    running_banner(job, at);
                }
                state.set_status(id, to, now);
            }),
            Step::CancelDone => shared.update(|state, now| {
                state.set_status(id, JobStatus::Canceled, now);
            }),
            Step::Finish(behavior) => finish(&shared, id, behavior).await,
            Step::Playbook(run) => super::playbook::run(&shared, id, run).await,
        }
    }
}

const STARS: &str = "****************************************";

/// The events and output of a playbook's start: its play and fact gathering.
fn running_banner(job: &mut Job, now: Timestamp) {
    job.emit(now, Callback::new("playbook_on_start", ""));
    let play = format!("PLAY [{}] {STARS}\n", job.template_name);
    job.emit(now, Callback::new("playbook_on_play_start", play));
    let facts = "Gathering Facts";
    job.emit(
        now,
        Callback::new("playbook_on_task_start", format!("TASK [{facts}] {STARS}")).task(facts),
    );
    job.emit(
        now,
        Callback::new("runner_on_ok", "\u{1b}[0;32mok: [localhost]\u{1b}[0m")
            .task(facts)
            .host("localhost", json!({"changed": false})),
    );
    if !job.launch_behavior.stdout.is_empty() {
        let extra = job.launch_behavior.stdout.trim_end_matches('\n').to_owned();
        job.emit(now, Callback::new("verbose", extra));
    }
}

/// A failed host result as ansible-playbook prints it, in red.
fn fatal_line(host: &str, msg: &str) -> String {
    let res = json!({"changed": false, "msg": msg});
    format!("\u{1b}[0;31mfatal: [{host}]: FAILED! => {res}\u{1b}[0m")
}

/// The end of `running`: the outcome, with the playbook's effects just before success.
async fn finish(shared: &Arc<Shared>, id: u64, behavior: JobBehavior) {
    let outcome = behavior.outcome;
    let plan = {
        let state = shared.lock();
        let Some(job) = state.jobs.get(&id) else {
            return;
        };
        match (outcome, job.role) {
            (Outcome::Successful, Some(role)) => Some(effects::plan(job, role)),
            _ => None,
        }
    };
    let mut result = outcome;
    let mut lines: Vec<Callback> = Vec::new();
    if let Some(failing) = &behavior.failing_task {
        // The failing task runs before the one with the playbook's effects.
        result = Outcome::Failed;
        lines.push(
            Callback::new(
                "playbook_on_task_start",
                format!("TASK [{}] {STARS}", failing.task),
            )
            .task(&failing.task),
        );
        lines.push(
            Callback::new("runner_on_failed", fatal_line(&failing.host, &failing.msg))
                .task(&failing.task)
                .host(&failing.host, json!({"changed": false, "msg": failing.msg})),
        );
    } else if let Some(plan) = plan {
        let host = "localhost";
        match plan {
            Err(undefined) => {
                // The playbook reads its input from extra_vars; without it, it fails.
                result = Outcome::Failed;
                let msg = format!(
                    "The task includes an option with an undefined variable. The error was: {undefined}"
                );
                lines.push(
                    Callback::new("runner_on_failed", fatal_line(host, &msg))
                        .host(host, json!({"changed": false, "msg": msg})),
                );
            }
            Ok(target) => {
                let task = target.task_name();
                let (record_outcome, line) = match &shared.kube {
                    None => (
                        EffectOutcome::Skipped("no Kubernetes client configured".to_owned()),
                        Callback::new("runner_on_skipped", "skipping: [localhost]")
                            .task(&task)
                            .host(host, json!({"changed": false, "skipped": true})),
                    ),
                    Some(client) => {
                        match effects::apply(client, &target, shared.aap_finalizer).await {
                            Ok(done) => (
                                EffectOutcome::Applied,
                                Callback::new(
                                    "runner_on_ok",
                                    format!("changed: [localhost] => {done}"),
                                )
                                .task(&task)
                                .host(host, json!({"changed": true}))
                                .changed(),
                            ),
                            Err(err) => {
                                result = Outcome::Failed;
                                (
                                    EffectOutcome::Failed(err.clone()),
                                    Callback::new("runner_on_failed", fatal_line(host, &err))
                                        .task(&task)
                                        .host(host, json!({"changed": false, "msg": err})),
                                )
                            }
                        }
                    }
                };
                lines.push(
                    Callback::new("playbook_on_task_start", format!("TASK [{task}] {STARS}"))
                        .task(&task),
                );
                lines.push(line);
                let at = shared.clock.now();
                shared.lock().ledger.effects.push(EffectRecord {
                    job_id: id,
                    role: target.role,
                    instance: target.instance.clone(),
                    at,
                    outcome: record_outcome,
                });
            }
        }
    }
    shared.update(|state, now| {
        let Some(job) = state.jobs.get_mut(&id) else {
            return;
        };
        let at = state.clock.at(now);
        for line in lines {
            job.emit(at, line);
        }
        // A cancel that arrived while the effects ran wins; the driver handles it next.
        if job.purged || job.status != JobStatus::Running || job.cancel_requested.is_some() {
            return;
        }
        let failed = u8::from(result != Outcome::Successful);
        let recap = format!(
            "\nPLAY RECAP {STARS}\nlocalhost                  : ok=2    changed={}    unreachable=0    failed={failed}    skipped=0    rescued=0    ignored=0",
            u8::from(result == Outcome::Successful && job.role.is_some()),
        );
        job.emit(at, Callback::new("playbook_on_stats", recap));
        let status = match result {
            Outcome::Successful => JobStatus::Successful,
            Outcome::Failed => JobStatus::Failed,
            Outcome::Error => JobStatus::Error,
        };
        if status != JobStatus::Successful {
            job.job_explanation = behavior.job_explanation.clone();
        }
        if status == JobStatus::Error {
            job.result_traceback = behavior.result_traceback.clone();
        }
        state.set_status(id, status, now);
        state.finish_workflow_node(id, at);
    });
}
