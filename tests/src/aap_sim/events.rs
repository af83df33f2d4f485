//! Job events and `jobs/{id}/job_events/`, as AWX's JobEventSerializer and
//! JobJobEventsList write them: one event per callback of the playbook run, a `counter`
//! in order, default order `start_line`, the usual list filters and paging.

use cloudkit_shared::text::strip_ansi;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::response::Response;
use k8s_openapi::jiff::Timestamp;
use serde_json::{Value, json};

use super::clock::iso;
use super::config::JobKind;
use super::jobs::Job;
use super::query::{self, FieldValue, Model};
use super::responses;
use super::state::Shared;

/// Event ids are global in AWX (one table for all jobs).
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

const JOB_EVENT: Model = Model {
    name: "JobEvent",
    fields: &[
        "id",
        "created",
        "modified",
        "job",
        "event",
        "counter",
        "failed",
        "changed",
        "uuid",
        "parent_uuid",
        "host_name",
        "playbook",
        "play",
        "task",
        "role",
        "stdout",
        "start_line",
        "end_line",
        "verbose",
    ],
    prevented: &[],
};

/// Events a failed host result raises; AWX marks them and their ancestors `failed`.
const FAILED_EVENTS: [&str; 3] = [
    "runner_on_failed",
    "runner_on_async_failed",
    "runner_on_unreachable",
];

#[derive(Clone, Debug)]
pub(crate) struct JobEvent {
    pub(crate) id: u64,
    pub(crate) counter: u64,
    pub(crate) event: &'static str,
    pub(crate) failed: bool,
    pub(crate) changed: bool,
    pub(crate) uuid: String,
    pub(crate) parent_uuid: String,
    pub(crate) host_name: String,
    pub(crate) play: String,
    pub(crate) task: String,
    pub(crate) stdout: String,
    pub(crate) start_line: u64,
    pub(crate) end_line: u64,
    pub(crate) event_data: Value,
    pub(crate) created: Timestamp,
}

/// What a callback reports: the event name, task and host (empty when not about one),
/// its stdout (with the colour codes ansible-playbook writes) and the module result.
pub(crate) struct Callback {
    pub(crate) event: &'static str,
    pub(crate) task: String,
    pub(crate) host: String,
    pub(crate) stdout: String,
    pub(crate) res: Option<Value>,
    pub(crate) changed: bool,
}

impl Callback {
    pub(crate) fn new(event: &'static str, stdout: impl Into<String>) -> Self {
        Self {
            event,
            task: String::new(),
            host: String::new(),
            stdout: stdout.into(),
            res: None,
            changed: false,
        }
    }

    pub(crate) fn task(mut self, task: &str) -> Self {
        self.task = task.to_owned();
        self
    }

    pub(crate) fn host(mut self, host: &str, res: Value) -> Self {
        self.host = host.to_owned();
        self.res = Some(res);
        self
    }

    pub(crate) fn changed(mut self) -> Self {
        self.changed = true;
        self
    }
}

fn level(event: &str) -> u8 {
    match event {
        "playbook_on_start" | "playbook_on_stats" => 0,
        "playbook_on_play_start" => 1,
        "playbook_on_task_start" => 2,
        _ => 3,
    }
}

fn display(event: &str) -> &'static str {
    match event {
        "playbook_on_start" => "Playbook Started",
        "playbook_on_play_start" => "Play Started",
        "playbook_on_task_start" => "Task Started",
        "runner_on_ok" => "Host OK",
        "runner_on_failed" => "Host Failed",
        "runner_on_unreachable" => "Host Unreachable",
        "runner_on_skipped" => "Host Skipped",
        "playbook_on_stats" => "Playbook Complete",
        _ => "Event",
    }
}

impl Job {
    /// Records a callback: the event, and its text (colour stripped) in the job's stdout.
    /// A failed host result marks its task, play and playbook events failed, as AWX does.
    pub(crate) fn emit(&mut self, now: Timestamp, cb: Callback) {
        let counter = self.events.len() as u64 + 1;
        let event_level = level(cb.event);
        // The parent is the newest event one level up.
        let parent_uuid = self
            .events
            .iter()
            .rev()
            .find(|e| event_level > 0 && level(e.event) + 1 == event_level)
            .map(|e| e.uuid.clone())
            .unwrap_or_default();
        let play = if cb.event == "playbook_on_start" || cb.event == "playbook_on_stats" {
            String::new()
        } else {
            self.template_name.clone()
        };
        let start_line = self.stdout.lines().count() as u64;
        let text = strip_ansi(&cb.stdout);
        if !text.is_empty() {
            self.log(&text);
        }
        let end_line = self.stdout.lines().count() as u64;
        let mut failed = FAILED_EVENTS.contains(&cb.event);
        if cb.event == "playbook_on_stats" {
            failed = self.events.iter().any(|e| e.failed);
        }
        if failed && level(cb.event) == 3 {
            let mut parent = parent_uuid.clone();
            while let Some(p) = self.events.iter_mut().find(|e| e.uuid == parent) {
                p.failed = true;
                parent = p.parent_uuid.clone();
            }
        }
        let mut event_data = json!({
            "playbook": self.playbook(),
            "playbook_uuid": self.events.first().map_or_else(|| uuid(self.id, counter), |e| e.uuid.clone()),
        });
        if !play.is_empty() {
            event_data["play"] = json!(play);
            event_data["play_pattern"] = json!("all");
        }
        if !cb.task.is_empty() {
            event_data["task"] = json!(&cb.task);
            event_data["task_action"] = json!("ansible.builtin.fail");
        }
        if !cb.host.is_empty() {
            event_data["host"] = json!(&cb.host);
            event_data["remote_addr"] = json!(&cb.host);
        }
        if let Some(res) = cb.res {
            event_data["res"] = res;
        }
        self.events.push(JobEvent {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            counter,
            event: cb.event,
            failed,
            changed: cb.changed,
            uuid: uuid(self.id, counter),
            parent_uuid,
            host_name: cb.host,
            play,
            task: cb.task,
            stdout: cb.stdout,
            start_line,
            end_line,
            event_data,
            created: now,
        });
    }

    pub(crate) fn playbook(&self) -> String {
        format!(
            "{}.yml",
            self.template_name.to_lowercase().replace(' ', "_")
        )
    }
}

fn uuid(job: u64, counter: u64) -> String {
    format!(
        "00000000-0000-4000-8000-{:06x}{counter:06x}",
        job % 0x100_0000
    )
}

fn field(job: &Job, e: &JobEvent, name: &str) -> Option<FieldValue> {
    let s = |v: &str| FieldValue::Str(Some(v.to_owned()));
    Some(match name {
        "id" => FieldValue::Int(Some(e.id)),
        "created" | "modified" => FieldValue::Time(Some(e.created)),
        "job" => FieldValue::Ref(Some(job.id)),
        "event" => s(e.event),
        "counter" => FieldValue::Int(Some(e.counter)),
        "failed" => FieldValue::Bool(e.failed),
        "changed" => FieldValue::Bool(e.changed),
        "uuid" => s(&e.uuid),
        "parent_uuid" => s(&e.parent_uuid),
        "host_name" => s(&e.host_name),
        "playbook" => s(&job.playbook()),
        "play" => s(&e.play),
        "task" => s(&e.task),
        "role" => s(""),
        "stdout" => s(&e.stdout),
        "start_line" => FieldValue::Int(Some(e.start_line)),
        "end_line" => FieldValue::Int(Some(e.end_line)),
        "verbose" => FieldValue::Bool(false),
        _ => return None,
    })
}

fn serialize(shared: &Shared, job: &Job, e: &JobEvent) -> Value {
    let job_url = shared.url(&format!("jobs/{}/", job.id));
    json!({
        "id": e.id,
        "type": "job_event",
        "url": shared.url(&format!("job_events/{}/", e.id)),
        "related": { "job": job_url, "children": shared.url(&format!("job_events/{}/children/", e.id)) },
        "summary_fields": {
            "job": {
                "id": job.id,
                "name": job.template_name,
                "status": job.status.as_str(),
                "failed": job.status.failed(),
                "elapsed": 0.0,
                "type": "job",
                "job_template_id": job.template_id,
                "job_template_name": job.template_name,
            },
            "role": {},
        },
        "created": iso(e.created),
        "modified": iso(e.created),
        "job": job.id,
        "event": e.event,
        "counter": e.counter,
        "event_display": display(e.event),
        "event_data": e.event_data,
        "event_level": level(e.event),
        "failed": e.failed,
        "changed": e.changed,
        "uuid": e.uuid,
        "parent_uuid": e.parent_uuid,
        "host": null,
        "host_name": e.host_name,
        "playbook": job.playbook(),
        "play": e.play,
        "task": e.task,
        "role": "",
        "stdout": e.stdout,
        "start_line": e.start_line,
        "end_line": e.end_line,
        "verbose": false,
    })
}

/// `GET jobs/{id}/job_events/`.
pub(crate) fn list(shared: &Shared, id: u64, params: &[(String, String)], path: &str) -> Response {
    let state = shared.lock();
    let Some(job) = state
        .jobs
        .get(&id)
        .filter(|j| j.kind == JobKind::Job && !j.purged)
    else {
        return responses::not_found();
    };
    let mut events: Vec<&JobEvent> = job.events.iter().collect();
    events.sort_by_key(|e| e.start_line);
    match query::list(events, params, path, &JOB_EVENT, |e, name| {
        field(job, e, name)
    }) {
        Err(e) => e.response(),
        Ok(page) => page.response(|e| serialize(shared, job, e)),
    }
}
