//! What happened, for tests to assert on: requests, events, playbook runs and their steps.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use serde::Serialize;
use serde_json::Value;

use super::config::Playbook;
use super::faults::Fault;
use crate::aap_sim::InstanceRef;

/// Which receiver a request went to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Flavor {
    /// ansible-rulebook's webhook source: any `POST /<path>`.
    Webhook,
    /// EDA server's `/api/eda/v1/external_event_stream/<uuid>/post/`.
    EventStream,
}

/// What the credential check made of a request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthCheck {
    /// Not checked: nothing configured, or the request was refused before.
    NotChecked,
    Passed,
    /// The header was missing; which one.
    Missing(String),
    /// Present but wrong; why.
    Rejected(String),
}

/// One HTTP request as the simulator saw it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RequestRecord {
    pub seq: u64,
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub flavor: Flavor,
    /// Names lower-cased; credential values (`authorization`, an event stream's token
    /// header) replaced by `***`. Signatures are kept: they are no secret.
    pub headers: BTreeMap<String, String>,
    pub body_bytes: usize,
    pub auth: AuthCheck,
    pub fault: Option<Fault>,
    /// `None` while unanswered.
    pub status: Option<u16>,
    /// The event the request delivered, if it was taken.
    pub event: Option<u64>,
    pub at: Timestamp,
    pub answered_at: Option<Timestamp>,
}

/// One event the rulebook received.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EventRecord {
    pub id: u64,
    pub request: u64,
    pub flavor: Flavor,
    /// `{"payload": <body>, "meta": {"endpoint": ..., "headers": {...}}}`.
    pub event: Value,
    /// From `payload.metadata`.
    pub instance: Option<InstanceRef>,
    /// What the route runs; `None` for a path no rule matches.
    pub playbook: Option<Playbook>,
    /// Lost by a [`Fault::Drop`].
    pub dropped: bool,
    pub run: Option<u64>,
    pub at: Timestamp,
}

impl EventRecord {
    pub fn payload(&self) -> &Value {
        &self.event["payload"]
    }

    pub fn endpoint(&self) -> Option<&str> {
        self.event["meta"]["endpoint"].as_str()
    }
}

/// The playbook steps, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    AddFinalizer,
    CreateVm,
    MarkReconciled,
    DeleteVm,
    RemoveFinalizer,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StepRecord {
    pub step: Step,
    pub started_at: Timestamp,
    pub finished_at: Option<Timestamp>,
    pub error: Option<String>,
}

impl StepRecord {
    pub fn duration(&self) -> Option<Duration> {
        let finished = self.finished_at?;
        Duration::try_from(finished.duration_since(self.started_at)).ok()
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Waiting for its start delay (or its turn, when sequential).
    Waiting,
    Running,
    /// Stopped by [`Fault::NeverFinish`]: will never end.
    Stalled,
    Successful,
    Failed(String),
    /// Not attempted; why (no Kubernetes client configured).
    Skipped(String),
}

impl RunStatus {
    /// Ended, one way or another (a stalled run never ends).
    pub fn is_terminal(&self) -> bool {
        matches!(self, Self::Successful | Self::Failed(_) | Self::Skipped(_))
    }
}

/// One playbook run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RunRecord {
    pub id: u64,
    pub event: u64,
    pub playbook: Playbook,
    pub instance: Option<InstanceRef>,
    /// `payload.status.desiredConfigVersion` of the event.
    pub desired_config_version: Option<String>,
    pub fault: Option<Fault>,
    pub status: RunStatus,
    pub steps: Vec<StepRecord>,
    /// What the playbook receives: `{"ansible_eda": {"event": <event>}}`.
    pub extra_vars: Value,
    pub queued_at: Timestamp,
    pub started_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
}

impl RunRecord {
    pub fn step(&self, step: Step) -> Option<&StepRecord> {
        self.steps.iter().find(|s| s.step == step)
    }

    /// The steps done without error, in order.
    pub fn steps_done(&self) -> Vec<Step> {
        self.steps
            .iter()
            .filter(|s| s.finished_at.is_some() && s.error.is_none())
            .map(|s| s.step)
            .collect()
    }
}

/// A copy of the ledger at one moment.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct LedgerSnapshot {
    pub requests: Vec<RequestRecord>,
    pub events: Vec<EventRecord>,
    pub runs: Vec<RunRecord>,
}

/// The ledger itself; ids are 1-based indexes.
#[derive(Debug, Default)]
pub(crate) struct Ledger {
    pub(crate) requests: Vec<RequestRecord>,
    pub(crate) events: Vec<EventRecord>,
    pub(crate) runs: Vec<RunRecord>,
}

impl Ledger {
    pub(crate) fn request_mut(&mut self, seq: u64) -> Option<&mut RequestRecord> {
        index(seq).and_then(|i| self.requests.get_mut(i))
    }

    pub(crate) fn run_mut(&mut self, id: u64) -> Option<&mut RunRecord> {
        index(id).and_then(|i| self.runs.get_mut(i))
    }

    pub(crate) fn run(&self, id: u64) -> Option<&RunRecord> {
        index(id).and_then(|i| self.runs.get(i))
    }

    pub(crate) fn next_request(&self) -> u64 {
        self.requests.len() as u64 + 1
    }

    pub(crate) fn next_event(&self) -> u64 {
        self.events.len() as u64 + 1
    }

    pub(crate) fn next_run(&self) -> u64 {
        self.runs.len() as u64 + 1
    }

    pub(crate) fn snapshot(&self) -> LedgerSnapshot {
        LedgerSnapshot {
            requests: self.requests.clone(),
            events: self.events.clone(),
            runs: self.runs.clone(),
        }
    }
}

fn index(id: u64) -> Option<usize> {
    usize::try_from(id.checked_sub(1)?).ok()
}
