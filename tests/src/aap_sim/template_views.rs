//! `job_templates/` and `workflow_job_templates/`: lookup by name, detail, launch info.

use axum::response::Response;
use serde_json::{Value, json};

use super::clock::iso;
use super::config::{Access, JobKind, TemplateConfig};
use super::query::{self, FieldValue, Model};
use super::responses;
use super::state::{Shared, State};

const FIELDS: &[&str] = &[
    "id",
    "name",
    "description",
    "organization",
    "organization__name",
    "ask_variables_on_launch",
    "survey_enabled",
];

const JOB_TEMPLATE: Model = Model {
    name: "JobTemplate",
    fields: FIELDS,
    prevented: &["extra_vars"],
};

const WORKFLOW_JOB_TEMPLATE: Model = Model {
    name: "WorkflowJobTemplate",
    fields: FIELDS,
    prevented: &["extra_vars"],
};

const UNIFIED_JOB_TEMPLATE: Model = Model {
    name: "UnifiedJobTemplate",
    fields: FIELDS,
    prevented: &[],
};

fn type_name(kind: JobKind) -> &'static str {
    match kind {
        JobKind::Job => "job_template",
        JobKind::Workflow => "workflow_job_template",
    }
}

/// AWX's `type=a,b` filter (TypeFilterBackend): only those types; an unknown name
/// matches nothing.
fn type_matches(params: &[(String, String)], kind: JobKind) -> bool {
    params
        .iter()
        .filter(|(k, _)| k == "type")
        .all(|(_, v)| v.split(',').any(|t| t.trim() == type_name(kind)))
}

fn collection(kind: JobKind) -> &'static str {
    match kind {
        JobKind::Job => "job_templates",
        JobKind::Workflow => "workflow_job_templates",
    }
}

fn field(state: &State, t: &TemplateConfig, name: &str) -> Option<FieldValue> {
    Some(match name {
        "id" => FieldValue::Int(Some(t.id)),
        "name" => FieldValue::Str(Some(t.name.clone())),
        "description" => FieldValue::Str(Some(t.description.clone())),
        "organization" => FieldValue::Ref(state.organization_id_of(&t.organization)),
        "organization__name" => FieldValue::Str(Some(t.organization.clone())),
        "ask_variables_on_launch" => FieldValue::Bool(t.ask_variables_on_launch),
        "survey_enabled" => FieldValue::Bool(!t.variables_needed_to_start.is_empty()),
        _ => return None,
    })
}

pub(crate) fn serialize(
    shared: &Shared,
    state: &State,
    t: &TemplateConfig,
    access: Access,
) -> Value {
    let base = shared.url(&format!("{}/{}/", collection(t.kind), t.id));
    let org_id = state.organization_id_of(&t.organization);
    let created = iso(shared.clock.origin());
    let can_start = access == Access::ReadWrite;
    let last_job = state
        .jobs
        .values()
        .filter(|j| j.template_id == t.id && j.kind == t.kind && !j.purged)
        .max_by_key(|j| j.id);
    let mut related = json!({
        "launch": format!("{base}launch/"),
        "organization": shared.url(&format!("organizations/{}/", org_id.unwrap_or(0))),
    });
    let mut value = json!({
        "id": t.id,
        "url": base,
        "summary_fields": {
            "organization": { "id": org_id, "name": t.organization, "description": "" },
            "user_capabilities": {
                "edit": can_start, "delete": can_start, "start": can_start,
                "schedule": can_start, "copy": can_start
            }
        },
        "created": created,
        "modified": created,
        "name": t.name,
        "description": t.description,
        "extra_vars": "",
        "organization": org_id,
        "survey_enabled": !t.variables_needed_to_start.is_empty(),
        "allow_simultaneous": true,
        "ask_variables_on_launch": t.ask_variables_on_launch,
        "ask_inventory_on_launch": false,
        "ask_limit_on_launch": false,
        "ask_labels_on_launch": false,
        "ask_tags_on_launch": false,
        "ask_skip_tags_on_launch": false,
        "ask_scm_branch_on_launch": false,
        "last_job_run": last_job.and_then(|j| j.finished).map(iso),
        "last_job_failed": last_job.is_some_and(|j| j.status.failed()),
        "status": last_job.map_or("never updated", |j| j.status.as_str()),
    });
    match t.kind {
        JobKind::Job => {
            value["type"] = json!(type_name(t.kind));
            related["jobs"] = json!(format!("{base}jobs/"));
            value["job_type"] = json!("run");
            value["playbook"] = json!(format!("{}.yml", t.name.to_lowercase().replace(' ', "_")));
            value["ask_credential_on_launch"] = json!(false);
            value["ask_job_type_on_launch"] = json!(false);
            value["ask_verbosity_on_launch"] = json!(false);
            value["ask_diff_mode_on_launch"] = json!(false);
        }
        JobKind::Workflow => {
            value["type"] = json!(type_name(t.kind));
            related["workflow_jobs"] = json!(format!("{base}workflow_jobs/"));
            related["workflow_nodes"] = json!(format!("{base}workflow_nodes/"));
        }
    }
    value["related"] = related;
    value
}

/// `job_templates/` (`Some(Job)`), `workflow_job_templates/` (`Some(Workflow)`) or
/// `unified_job_templates/` (`None`: both kinds, each serialized as its own type).
pub(crate) fn list(
    shared: &Shared,
    kind: Option<JobKind>,
    params: &[(String, String)],
    path: &str,
    access: Access,
) -> Response {
    let state = shared.lock();
    // AWX orders templates by name.
    let mut templates: Vec<&TemplateConfig> = state
        .templates
        .values()
        .filter(|t| kind.is_none_or(|k| t.kind == k) && type_matches(params, t.kind))
        .collect();
    templates.sort_by(|a, b| a.name.cmp(&b.name).then(a.id.cmp(&b.id)));
    let model = match kind {
        Some(JobKind::Job) => &JOB_TEMPLATE,
        Some(JobKind::Workflow) => &WORKFLOW_JOB_TEMPLATE,
        None => &UNIFIED_JOB_TEMPLATE,
    };
    match query::list(templates, params, path, model, |t, name| {
        field(&state, t, name)
    }) {
        Err(e) => e.response(),
        Ok(page) => page.response(|t| serialize(shared, &state, t, access)),
    }
}

pub(crate) fn detail(shared: &Shared, kind: JobKind, id: u64, access: Access) -> Response {
    let state = shared.lock();
    match state.templates.get(&id).filter(|t| t.kind == kind) {
        None => responses::not_found(),
        Some(t) => responses::json(200, &serialize(shared, &state, t, access)),
    }
}

/// `GET .../launch/`: what a launch needs.
pub(crate) fn launch_info(shared: &Shared, kind: JobKind, id: u64) -> Response {
    let state = shared.lock();
    let Some(t) = state.templates.get(&id).filter(|t| t.kind == kind) else {
        return responses::not_found();
    };
    let can_start = t.variables_needed_to_start.is_empty()
        && t.passwords_needed_to_start.is_empty()
        && t.resources_needed_to_start.is_empty();
    let mut value = json!({
        "can_start_without_user_input": can_start,
        "passwords_needed_to_start": t.passwords_needed_to_start,
        "variables_needed_to_start": t.variables_needed_to_start,
        "ask_variables_on_launch": t.ask_variables_on_launch,
        "survey_enabled": !t.variables_needed_to_start.is_empty(),
        "defaults": { "extra_vars": "" },
    });
    match kind {
        JobKind::Job => {
            value["job_template_data"] =
                json!({ "name": t.name, "id": t.id, "description": t.description });
            value["credential_needed_to_start"] = json!(false);
            value["inventory_needed_to_start"] = json!(!t.resources_needed_to_start.is_empty());
        }
        JobKind::Workflow => {
            value["workflow_job_template_data"] =
                json!({ "name": t.name, "id": t.id, "description": t.description });
            value["node_templates_missing"] = json!([]);
            value["node_prompts_rejected"] = json!([]);
        }
    }
    responses::json(200, &value)
}
