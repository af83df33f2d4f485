//! What the AAP client hands back, and the parts of AWX's JSON it reads.

use cloudkit_shared::{JobProvider, JobState};
use k8s_openapi::jiff::Timestamp;
use serde::Deserialize;
use serde_json::Value;

/// A job template launch (`/jobs/`) or a workflow job template launch (`/workflow_jobs/`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AapJobKind {
    Job,
    Workflow,
}

impl AapJobKind {
    pub const ALL: [AapJobKind; 2] = [AapJobKind::Job, AapJobKind::Workflow];

    /// The provider recorded in a job history entry.
    pub fn provider(self) -> JobProvider {
        match self {
            Self::Job => JobProvider::Aap,
            Self::Workflow => JobProvider::AapWorkflow,
        }
    }

    /// The kind a history entry's provider points to; `None` for non-AAP providers.
    pub fn from_provider(provider: JobProvider) -> Option<Self> {
        match provider {
            JobProvider::Aap => Some(Self::Job),
            JobProvider::AapWorkflow => Some(Self::Workflow),
            JobProvider::Eda | JobProvider::Kubevirt => None,
        }
    }

    /// Collection of the jobs of this kind, under `/v2/`.
    pub(crate) fn jobs_collection(self) -> &'static str {
        match self {
            Self::Job => "jobs",
            Self::Workflow => "workflow_jobs",
        }
    }

    /// Collection of the templates of this kind, under `/v2/`.
    pub(crate) fn templates_collection(self) -> &'static str {
        match self {
            Self::Job => "job_templates",
            Self::Workflow => "workflow_job_templates",
        }
    }

    /// The job field naming its template (a list filter).
    pub(crate) fn template_field(self) -> &'static str {
        match self {
            Self::Job => "job_template",
            Self::Workflow => "workflow_job_template",
        }
    }
}

impl std::fmt::Display for AapJobKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Job => "job",
            Self::Workflow => "workflow job",
        })
    }
}

/// A job AAP created for us.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Launched {
    pub id: u64,
    pub kind: AapJobKind,
}

/// Answer of a cancel request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CancelOutcome {
    /// AAP accepted the cancel (202); the job turns `canceled` asynchronously.
    Requested,
    /// The job can no longer be canceled: it has finished (or was purged, which AWX does
    /// to finished jobs only). Nothing was POSTed when `can_cancel` said so.
    AlreadyFinished,
}

/// A job as AAP reports it.
#[derive(Clone, Debug, PartialEq)]
pub struct AapJob {
    pub id: u64,
    pub kind: AapJobKind,
    /// AWX's own status word (`new`, `pending`, ..., `canceled`).
    pub status: String,
    pub state: JobState,
    pub started: Option<Timestamp>,
    pub finished: Option<Timestamp>,
    /// AWX's `elapsed`, seconds.
    pub elapsed: Option<f64>,
    pub job_explanation: String,
    /// Only in job details, not in lists.
    pub result_traceback: String,
    /// Where a failed job failed; filled by [`crate::aap::AapClient::failure`].
    pub failure: Option<Box<cloudkit_shared::JobFailure>>,
}

/// AWX's status word as a history state (docs/providers.md, "Job state").
pub fn job_state(status: &str) -> JobState {
    match status {
        "successful" => JobState::Succeeded,
        "failed" | "error" => JobState::Failed,
        "canceled" => JobState::Canceled,
        "new" | "pending" => JobState::Pending,
        "waiting" => JobState::Waiting,
        "running" => JobState::Running,
        _ => JobState::Unknown,
    }
}

/// Longest message kept in a status line.
const MAX_MESSAGE: usize = 300;

impl AapJob {
    /// One human line for the job history. Stable while the job stays in one status, so
    /// polling does not rewrite status for nothing.
    pub fn message(&self) -> String {
        let after = self
            .duration_secs()
            .map(|s| format!(" after {s:.1}s"))
            .unwrap_or_default();
        let explanation = one_line(&self.job_explanation);
        let line = match self.status.as_str() {
            "successful" => format!("successful{after}"),
            "failed" | "error" | "canceled" => {
                let cause = if explanation.is_empty() {
                    // AWX leaves the explanation empty for playbook failures; an error
                    // usually carries a traceback whose last line says what broke.
                    self.result_traceback
                        .lines()
                        .rev()
                        .map(str::trim)
                        .find(|l| !l.is_empty())
                        .map(one_line)
                        .unwrap_or_default()
                } else {
                    explanation
                };
                if cause.is_empty() {
                    format!("{}{after}", self.status)
                } else {
                    format!("{}{after}: {cause}", self.status)
                }
            }
            "new" | "pending" | "waiting" | "running" => self.status.clone(),
            other => format!("unknown AAP status {other:?}"),
        };
        truncate(line, MAX_MESSAGE)
    }

    fn duration_secs(&self) -> Option<f64> {
        if let (Some(start), Some(end)) = (self.started, self.finished) {
            let d = end.duration_since(start).as_secs_f64();
            if d >= 0.0 {
                return Some(d);
            }
        }
        self.elapsed.filter(|e| *e > 0.0 && self.finished.is_some())
    }

    pub(crate) fn from_wire(kind: AapJobKind, wire: JobWire) -> Self {
        Self {
            id: wire.id,
            kind,
            state: job_state(&wire.status),
            status: wire.status,
            started: wire.started.as_deref().and_then(parse_time),
            finished: wire.finished.as_deref().and_then(parse_time),
            elapsed: wire.elapsed,
            job_explanation: wire.job_explanation.unwrap_or_default(),
            result_traceback: wire.result_traceback.unwrap_or_default(),
            failure: None,
        }
    }
}

/// AWX timestamps are ISO-8601 UTC; an unparsable one is treated as unset rather than
/// failing the whole poll.
fn parse_time(text: &str) -> Option<Timestamp> {
    match text.parse::<Timestamp>() {
        Ok(ts) => Some(ts),
        Err(e) => {
            tracing::debug!(text, error = %e, "ignoring an unparsable AAP timestamp");
            None
        }
    }
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn truncate(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push('…');
    }
    text
}

// ---- AWX's JSON, as much of it as we read -------------------------------------------

/// A page of a list view; `next` is a path or null.
#[derive(Debug, Deserialize)]
pub(crate) struct PageWire<T> {
    #[serde(default)]
    pub(crate) count: Option<u64>,
    #[serde(default)]
    pub(crate) next: Option<String>,
    pub(crate) results: Vec<T>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct TemplateWire {
    pub(crate) id: u64,
    #[serde(default)]
    pub(crate) summary_fields: Option<Value>,
}

impl TemplateWire {
    pub(crate) fn organization(&self) -> String {
        self.summary_fields
            .as_ref()
            .and_then(|s| s.pointer("/organization/name"))
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_owned()
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct JobWire {
    pub(crate) id: u64,
    pub(crate) status: String,
    #[serde(default)]
    pub(crate) started: Option<String>,
    #[serde(default)]
    pub(crate) finished: Option<String>,
    #[serde(default)]
    pub(crate) elapsed: Option<f64>,
    #[serde(default)]
    pub(crate) job_explanation: Option<String>,
    #[serde(default)]
    pub(crate) result_traceback: Option<String>,
    /// A JSON string in AWX (an object in some proxies' rewrites); absent when a list
    /// view leaves it out.
    #[serde(default)]
    pub(crate) extra_vars: Option<Value>,
}

impl JobWire {
    /// The launch's extra_vars as an object, if the answer carried them.
    pub(crate) fn extra_vars_object(&self) -> Option<serde_json::Map<String, Value>> {
        match self.extra_vars.as_ref()? {
            Value::Object(map) => Some(map.clone()),
            Value::String(text) => match serde_json::from_str::<Value>(text) {
                Ok(Value::Object(map)) => Some(map),
                _ => None,
            },
            _ => None,
        }
    }
}

/// The 201 body of a launch: `job` (job templates) or `workflow_job` (workflows).
#[derive(Debug, Deserialize)]
pub(crate) struct LaunchWire {
    #[serde(default)]
    pub(crate) job: Option<u64>,
    #[serde(default)]
    pub(crate) workflow_job: Option<u64>,
    #[serde(default)]
    pub(crate) id: Option<u64>,
    #[serde(default)]
    pub(crate) ignored_fields: Option<serde_json::Map<String, Value>>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct CanCancelWire {
    pub(crate) can_cancel: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(status: &str) -> AapJob {
        AapJob {
            id: 1,
            kind: AapJobKind::Job,
            status: status.into(),
            state: job_state(status),
            started: None,
            finished: None,
            elapsed: None,
            job_explanation: String::new(),
            result_traceback: String::new(),
            failure: None,
        }
    }

    #[test]
    fn maps_every_status() {
        for (status, state) in [
            ("successful", JobState::Succeeded),
            ("failed", JobState::Failed),
            ("error", JobState::Failed),
            ("canceled", JobState::Canceled),
            ("new", JobState::Pending),
            ("pending", JobState::Pending),
            ("waiting", JobState::Waiting),
            ("running", JobState::Running),
            ("never updated", JobState::Unknown),
            ("", JobState::Unknown),
        ] {
            assert_eq!(job_state(status), state, "{status}");
        }
    }

    #[test]
    fn messages() {
        let mut j = job("successful");
        j.started = Some("2026-01-01T00:00:00.000000Z".parse().unwrap());
        j.finished = Some("2026-01-01T00:00:12.300000Z".parse().unwrap());
        assert_eq!(j.message(), "successful after 12.3s");

        let mut j = job("failed");
        j.job_explanation = "Job terminated\n due to timeout".into();
        assert_eq!(j.message(), "failed: Job terminated due to timeout");

        let mut j = job("error");
        j.result_traceback = "Traceback:\n  File x\nRuntimeError: boom\n\n".into();
        j.finished = Some("2026-01-01T00:00:12Z".parse().unwrap());
        j.elapsed = Some(2.0);
        assert_eq!(j.message(), "error after 2.0s: RuntimeError: boom");

        assert_eq!(job("canceled").message(), "canceled");
        assert_eq!(job("running").message(), "running");
        assert_eq!(job("weird").message(), "unknown AAP status \"weird\"");

        let mut j = job("failed");
        j.job_explanation = "é".repeat(400);
        assert!(j.message().len() <= MAX_MESSAGE + '…'.len_utf8());
    }

    #[test]
    fn extra_vars_string_or_object() {
        let wire: JobWire = serde_json::from_value(serde_json::json!({
            "id": 3, "status": "running",
            "extra_vars": "{\"cloudkit_correlation_key\": \"k\"}"
        }))
        .unwrap();
        assert_eq!(
            wire.extra_vars_object().unwrap()["cloudkit_correlation_key"],
            "k"
        );
        let wire: JobWire = serde_json::from_value(serde_json::json!({
            "id": 3, "status": "running", "extra_vars": ""
        }))
        .unwrap();
        assert!(wire.extra_vars_object().is_none());
        let wire: JobWire =
            serde_json::from_value(serde_json::json!({"id": 3, "status": "new"})).unwrap();
        assert!(wire.extra_vars.is_none());
    }

    #[test]
    fn kinds_and_providers() {
        for kind in AapJobKind::ALL {
            assert_eq!(AapJobKind::from_provider(kind.provider()), Some(kind));
        }
        assert_eq!(AapJobKind::from_provider(JobProvider::Eda), None);
    }
}
