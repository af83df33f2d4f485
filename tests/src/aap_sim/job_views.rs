//! `jobs/` and `workflow_jobs/`: detail, list, cancel, stdout, delete.

use std::sync::Arc;

use axum::http::{HeaderValue, header};
use axum::response::Response;
use serde_json::{Value, json};
use tokio::time::Instant;

use super::clock::iso;
use super::config::{Access, JobKind};
use super::faults::Fault;
use super::jobs::Job;
use super::pyjson;
use super::query::{self, FieldValue, Model};
use super::responses;
use super::state::{Shared, State};

/// AWX refuses to render stdout over this size except as a download.
const MAX_DISPLAY_STDOUT: usize = 1_048_576;

const JOB: Model = Model {
    name: "Job",
    fields: &[
        "id",
        "name",
        "status",
        "failed",
        "created",
        "modified",
        "started",
        "finished",
        "canceled_on",
        "launch_type",
        "job_explanation",
        "unified_job_template",
        "job_template",
        "job_type",
    ],
    prevented: &["extra_vars"],
};

const WORKFLOW_JOB: Model = Model {
    name: "WorkflowJob",
    fields: &[
        "id",
        "name",
        "status",
        "failed",
        "created",
        "modified",
        "started",
        "finished",
        "canceled_on",
        "launch_type",
        "job_explanation",
        "unified_job_template",
        "workflow_job_template",
        "job_template",
    ],
    prevented: &["extra_vars"],
};

fn collection(kind: JobKind) -> &'static str {
    match kind {
        JobKind::Job => "jobs",
        JobKind::Workflow => "workflow_jobs",
    }
}

fn template_collection(kind: JobKind) -> &'static str {
    match kind {
        JobKind::Job => "job_templates",
        JobKind::Workflow => "workflow_job_templates",
    }
}

fn field(job: &Job, name: &str) -> Option<FieldValue> {
    let time = |t: Option<k8s_openapi::jiff::Timestamp>| FieldValue::Time(t);
    Some(match name {
        "id" => FieldValue::Int(Some(job.id)),
        "name" => FieldValue::Str(Some(job.template_name.clone())),
        "status" => FieldValue::Str(Some(job.status.as_str().to_owned())),
        "failed" => FieldValue::Bool(job.status.failed()),
        "created" => time(Some(job.created)),
        "modified" => time(Some(job.modified)),
        "started" => time(job.started),
        "finished" => time(job.finished),
        "canceled_on" => time(job.canceled_on),
        "launch_type" => FieldValue::Str(Some("manual".to_owned())),
        "job_type" => FieldValue::Str(Some("run".to_owned())),
        "job_explanation" => FieldValue::Str(Some(job.job_explanation.clone())),
        "unified_job_template" => FieldValue::Ref(Some(job.template_id)),
        "job_template" if job.kind == JobKind::Job => FieldValue::Ref(Some(job.template_id)),
        "job_template" => FieldValue::Ref(None),
        "workflow_job_template" => FieldValue::Ref(Some(job.template_id)),
        _ => return None,
    })
}

/// The job as AWX's JobSerializer / WorkflowJobSerializer writes it. List entries lack
/// `result_traceback` and `event_processing_finished` (AWX's list serializers drop
/// them), and workflow jobs never have `event_processing_finished`.
pub(crate) fn serialize(shared: &Shared, state: &State, job: &Job, list: bool) -> Value {
    let now = state.now();
    let url = shared.url(&format!("{}/{}/", collection(job.kind), job.id));
    let template_url = shared.url(&format!(
        "{}/{}/",
        template_collection(job.kind),
        job.template_id
    ));
    let template_summary = json!({
        "id": job.template_id,
        "name": job.template_name,
        "description": "",
    });
    let mut related = json!({
        "unified_job_template": template_url,
        "cancel": format!("{url}cancel/"),
        "relaunch": format!("{url}relaunch/"),
        "labels": format!("{url}labels/"),
    });
    let mut value = json!({
        "id": job.id,
        "url": url,
        "created": iso(job.created),
        "modified": iso(job.modified),
        "name": job.template_name,
        "description": "",
        "unified_job_template": job.template_id,
        "launch_type": "manual",
        "status": job.status.as_str(),
        "failed": job.status.failed(),
        "started": job.started.map(iso),
        "finished": job.finished.map(iso),
        "canceled_on": job.canceled_on.map(iso),
        "elapsed": job.elapsed(now),
        "job_explanation": job.job_explanation,
        "launched_by": { "id": 1, "name": "admin", "type": "user", "url": shared.url("users/1/") },
        "work_unit_id": null,
        "extra_vars": pyjson::dumps(&job.extra_vars),
    });
    let mut summary = json!({
        "unified_job_template": {
            "id": job.template_id,
            "name": job.template_name,
            "unified_job_type": match job.kind { JobKind::Job => "job", JobKind::Workflow => "workflow_job" },
        },
        "user_capabilities": { "delete": true, "start": true },
    });
    match job.kind {
        JobKind::Job => {
            value["type"] = json!("job");
            value["job_template"] = json!(job.template_id);
            value["job_type"] = json!("run");
            value["playbook"] = json!(format!(
                "{}.yml",
                job.template_name.to_lowercase().replace(' ', "_")
            ));
            value["execution_node"] = json!("aap-sim");
            value["controller_node"] = json!("aap-sim");
            value["passwords_needed_to_start"] = json!([]);
            value["artifacts"] = json!({});
            value["job_slice_number"] = json!(0);
            value["job_slice_count"] = json!(1);
            related["job_template"] = json!(template_url);
            related["stdout"] = json!(format!("{url}stdout/"));
            related["job_events"] = json!(format!("{url}job_events/"));
            summary["job_template"] = template_summary;
            if !list {
                value["result_traceback"] = json!(job.result_traceback);
                value["event_processing_finished"] = json!(job.status.is_terminal());
                value["job_args"] = json!("");
                value["job_cwd"] = json!("/runner/project");
                value["job_env"] = json!({});
            }
        }
        JobKind::Workflow => {
            value["type"] = json!("workflow_job");
            value["workflow_job_template"] = json!(job.template_id);
            value["job_template"] = Value::Null;
            value["is_sliced_job"] = json!(false);
            value["allow_simultaneous"] = json!(true);
            value["inventory"] = Value::Null;
            value["limit"] = Value::Null;
            value["scm_branch"] = Value::Null;
            related["workflow_job_template"] = json!(template_url);
            related["workflow_nodes"] = json!(format!("{url}workflow_nodes/"));
            summary["workflow_job_template"] = template_summary;
            if !list {
                value["result_traceback"] = json!(job.result_traceback);
            }
        }
    }
    value["related"] = related;
    value["summary_fields"] = summary;
    value
}

fn visible(state: &State, kind: JobKind, id: u64) -> Option<&Job> {
    state.jobs.get(&id).filter(|j| j.kind == kind && !j.purged)
}

pub(crate) fn detail(shared: &Shared, kind: JobKind, id: u64) -> Response {
    let state = shared.lock();
    match visible(&state, kind, id) {
        None => responses::not_found(),
        Some(job) => responses::json(200, &serialize(shared, &state, job, false)),
    }
}

/// `jobs/` (`template: None`) or a template's own job list, which answers 404 when the
/// template does not exist.
pub(crate) fn list(
    shared: &Shared,
    kind: JobKind,
    template: Option<u64>,
    params: &[(String, String)],
    path: &str,
) -> Response {
    let state = shared.lock();
    if let Some(id) = template
        && state.templates.get(&id).is_none_or(|t| t.kind != kind)
    {
        return responses::not_found();
    }
    let jobs: Vec<&Job> = state
        .jobs
        .values()
        .filter(|j| j.kind == kind && !j.purged && template.is_none_or(|t| j.template_id == t))
        .collect();
    let model = match kind {
        JobKind::Job => &JOB,
        JobKind::Workflow => &WORKFLOW_JOB,
    };
    match query::list(jobs, params, path, model, |j, name| field(j, name)) {
        Err(e) => e.response(),
        Ok(page) => page.response(|j| serialize(shared, &state, j, true)),
    }
}

pub(crate) fn can_cancel(shared: &Shared, kind: JobKind, id: u64) -> Response {
    let state = shared.lock();
    match visible(&state, kind, id) {
        None => responses::not_found(),
        Some(job) => responses::json(200, &json!({ "can_cancel": job.status.is_active() })),
    }
}

/// `POST .../cancel/`: 202 while active, 405 once terminal (AWX's
/// `http_method_not_allowed`).
pub(crate) fn cancel(
    shared: &Arc<Shared>,
    kind: JobKind,
    id: u64,
    access: Access,
    fault: Option<&Fault>,
) -> Response {
    let active = {
        let state = shared.lock();
        match visible(&state, kind, id) {
            None => return responses::not_found(),
            Some(job) => job.status.is_active(),
        }
    };
    if access != Access::ReadWrite {
        return responses::forbidden();
    }
    if !active {
        return responses::method_not_allowed("POST", "GET, POST, HEAD, OPTIONS");
    }
    if fault != Some(&Fault::LostCancel) {
        shared.update(|state, now: Instant| state.cancel(id, now));
    }
    responses::empty(202)
}

/// `DELETE jobs/{id}/`: only a finished job may be deleted.
pub(crate) fn delete(shared: &Shared, kind: JobKind, id: u64, access: Access) -> Response {
    let active = {
        let state = shared.lock();
        match visible(&state, kind, id) {
            None => return responses::not_found(),
            Some(job) => job.status.is_active(),
        }
    };
    if access != Access::ReadWrite {
        return responses::forbidden();
    }
    if active {
        return responses::detail(403, "Cannot delete running job resource.");
    }
    shared.update(|state, _| {
        if let Some(job) = state.jobs.get_mut(&id) {
            job.purged = true;
        }
    });
    responses::empty(204)
}

pub(crate) fn stdout(shared: &Shared, id: u64, params: &[(String, String)]) -> Response {
    let (text, job_id) = {
        let state = shared.lock();
        match visible(&state, JobKind::Job, id) {
            None => return responses::not_found(),
            Some(job) => (job.stdout.clone(), job.id),
        }
    };
    let format = params
        .iter()
        .rev()
        .find(|(k, _)| k == "format")
        .map_or("json", |(_, v)| v.as_str());
    let download = matches!(format, "txt_download" | "ansi_download");
    if text.len() > MAX_DISPLAY_STDOUT && !download {
        let message = format!(
            "Standard Output too large to display ({} bytes), only download supported for sizes over {MAX_DISPLAY_STDOUT} bytes.",
            text.len()
        );
        return match format {
            "json" => responses::json(
                200,
                &json!({ "range": {"start": 0, "end": 1, "absolute_end": 1}, "content": message }),
            ),
            _ => responses::text(200, "text/plain; charset=utf-8", message),
        };
    }
    match format {
        "txt" | "ansi" => responses::text(200, "text/plain; charset=utf-8", text),
        "txt_download" | "ansi_download" => {
            let mut response = responses::text(200, "text/plain; charset=utf-8", text);
            let disposition = format!("attachment; filename=\"job_{job_id}.txt\"");
            if let Ok(value) = HeaderValue::from_str(&disposition) {
                response
                    .headers_mut()
                    .insert(header::CONTENT_DISPOSITION, value);
            }
            response
        }
        "html" => responses::text(
            200,
            "text/html; charset=utf-8",
            format!(
                "<pre>{}</pre>",
                text.replace('&', "&amp;").replace('<', "&lt;")
            ),
        ),
        "json" => {
            let lines = text.lines().count();
            responses::json(
                200,
                &json!({
                    "range": { "start": 0, "end": lines, "absolute_end": lines },
                    "content": text,
                }),
            )
        }
        // DRF's answer to a format no renderer has.
        _ => responses::not_found(),
    }
}
