//! `POST .../{id}/launch/`: AWX's prompt rules. A job template drops what it does not
//! prompt for and lists it in `ignored_fields` (201); a workflow job template refuses
//! unprompted variables (400).

use std::sync::Arc;

use axum::response::Response;
use serde_json::{Map, Value, json};
use tokio::time::Instant;

use super::config::{Access, JobKind};
use super::effects;
use super::job_views;
use super::jobs::{Job, JobStatus, StatusChange};
use super::responses;
use super::state::Shared;

/// Launch-time fields a job template may prompt for; ours never do (besides extra_vars).
const JOB_PROMPTS: [&str; 16] = [
    "inventory",
    "credential",
    "credentials",
    "limit",
    "job_tags",
    "skip_tags",
    "job_type",
    "verbosity",
    "diff_mode",
    "scm_branch",
    "forks",
    "job_slice_count",
    "timeout",
    "instance_groups",
    "labels",
    "execution_environment",
];

const WORKFLOW_PROMPTS: [&str; 6] = [
    "inventory",
    "limit",
    "scm_branch",
    "labels",
    "job_tags",
    "skip_tags",
];

fn python_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "NoneType",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float",
        Value::Number(_) => "int",
        Value::String(_) => "str",
        Value::Array(_) => "list",
        Value::Object(_) => "dict",
    }
}

/// AWX's `parse_yaml_or_json`: a dict, or a string holding JSON or YAML of a dict.
fn parse_extra_vars(value: Option<&Value>) -> Result<Map<String, Value>, String> {
    let text = match value {
        None | Some(Value::Null) => return Ok(Map::new()),
        Some(Value::Object(map)) => return Ok(map.clone()),
        Some(Value::String(text)) => text,
        Some(other) => {
            return Err(format!(
                "Input type `{}` is not a dictionary",
                python_type(other)
            ));
        }
    };
    if text.trim().is_empty() {
        return Ok(Map::new());
    }
    let parsed = match serde_json::from_str::<Value>(text) {
        Ok(v) => v,
        Err(json_err) => match serde_saphyr::from_str::<Value>(text) {
            Ok(v) => v,
            Err(yaml_err) => {
                return Err(format!(
                    "Cannot parse as JSON (error: {json_err}) or YAML (error: {yaml_err})."
                ));
            }
        },
    };
    match parsed {
        Value::Object(map) => Ok(map),
        Value::Null => Ok(Map::new()),
        other => Err(format!(
            "Input type `{}` is not a dictionary",
            python_type(&other)
        )),
    }
}

pub(crate) fn launch(
    shared: &Arc<Shared>,
    kind: JobKind,
    template_id: u64,
    access: Access,
    body: &[u8],
) -> Response {
    let template = {
        let state = shared.lock();
        match state.templates.get(&template_id).filter(|t| t.kind == kind) {
            Some(t) => t.clone(),
            None => return responses::not_found(),
        }
    };
    if access != Access::ReadWrite {
        return responses::forbidden();
    }

    // A redirected POST arrives without a body: AWX launches with no variables.
    let request: Map<String, Value> = if body.iter().all(u8::is_ascii_whitespace) {
        Map::new()
    } else {
        match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(map)) => map,
            Ok(other) => {
                return responses::json(
                    400,
                    &json!({ "non_field_errors": [format!(
                        "Invalid data. Expected a dictionary, but got {}.",
                        python_type(&other)
                    )] }),
                );
            }
            Err(e) => return responses::detail(400, &format!("JSON parse error - {e}")),
        }
    };

    let submitted = match parse_extra_vars(request.get("extra_vars")) {
        Ok(vars) => vars,
        Err(message) => return responses::json(400, &json!({ "extra_vars": [message] })),
    };

    let mut errors = Map::new();
    let mut ignored = Map::new();
    let prompts: &[&str] = match kind {
        JobKind::Job => &JOB_PROMPTS,
        JobKind::Workflow => &WORKFLOW_PROMPTS,
    };
    for field in prompts {
        if let Some(value) = request.get(*field) {
            match kind {
                JobKind::Job => {
                    ignored.insert((*field).to_owned(), value.clone());
                }
                JobKind::Workflow => {
                    errors.insert(
                        (*field).to_owned(),
                        json!(["Field is not configured to prompt on launch."]),
                    );
                }
            }
        }
    }

    let accepted = if template.ask_variables_on_launch || submitted.is_empty() {
        submitted.clone()
    } else {
        match kind {
            JobKind::Job => {
                ignored.insert("extra_vars".to_owned(), Value::Object(submitted.clone()));
            }
            JobKind::Workflow => {
                let names: Vec<&str> = submitted.keys().map(String::as_str).collect();
                errors.insert(
                    "extra_vars".to_owned(),
                    json!([format!(
                        "Variables {} are not allowed on launch. Check the Prompt on Launch setting on the Workflow Job Template to include Extra Variables.",
                        names.join(", ")
                    )]),
                );
            }
        }
        Map::new()
    };

    let missing_vars: Vec<String> = template
        .variables_needed_to_start
        .iter()
        .filter(|v| !accepted.contains_key(*v))
        .map(|v| format!("'{v}' value missing"))
        .collect();
    if !missing_vars.is_empty() {
        errors.insert("variables_needed_to_start".to_owned(), json!(missing_vars));
    }
    let missing_passwords: Vec<&String> = template
        .passwords_needed_to_start
        .iter()
        .filter(|p| {
            request
                .get(*p)
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
        })
        .collect();
    if !missing_passwords.is_empty() {
        errors.insert(
            "passwords_needed_to_start".to_owned(),
            json!(missing_passwords),
        );
    }
    if !template.resources_needed_to_start.is_empty() {
        errors.insert(
            "resources_needed_to_start".to_owned(),
            json!(template.resources_needed_to_start),
        );
    }
    if !errors.is_empty() {
        return responses::json(400, &Value::Object(errors));
    }

    let now = Instant::now();
    let (id, body) = shared.update(|state, _| {
        let id = state.next_job_id;
        state.next_job_id += 1;
        let created = state.clock.at(now);
        let vars_reached_playbook = !ignored.contains_key("extra_vars");
        let job = Job {
            id,
            kind,
            template_id,
            template_name: template.name.clone(),
            role: template.role,
            instance: effects::instance_of(&submitted),
            desired_config_version: effects::desired_config_version_of(&accepted),
            extra_vars: accepted,
            submitted_extra_vars: submitted,
            vars_reached_playbook,
            status: JobStatus::New,
            phase_since: now,
            created,
            modified: created,
            started: None,
            finished: None,
            canceled_on: None,
            cancel_requested: None,
            job_explanation: String::new(),
            result_traceback: String::new(),
            stdout: String::new(),
            events: Vec::new(),
            nodes: Vec::new(),
            history: vec![StatusChange {
                status: JobStatus::New,
                at: created,
            }],
            purged: false,
            launch_behavior: template.behavior.clone(),
        };
        let instance = job.instance.clone();
        let starts_now = state.behavior_for(&job).new.is_zero();
        state.jobs.insert(id, job);
        if let Some(instance) = instance {
            state.ledger.check_overlap(&state.jobs, &instance, created);
        }
        // AWX's `signal_start` makes an API launch `pending` before it answers.
        if starts_now {
            state.set_status(id, JobStatus::Pending, now);
        }
        let mut body = Map::new();
        let key = match kind {
            JobKind::Job => "job",
            JobKind::Workflow => "workflow_job",
        };
        body.insert(key.to_owned(), json!(id));
        body.insert("ignored_fields".to_owned(), Value::Object(ignored));
        if let Value::Object(job) = job_views::serialize(shared, state, &state.jobs[&id], false) {
            body.extend(job);
        }
        (id, Value::Object(body))
    });
    shared.spawn_job(id);
    let location = body["url"].as_str().unwrap_or_default().to_owned();
    responses::created(&location, &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extra_vars_forms() {
        let obj = json!({"a": 1});
        assert_eq!(parse_extra_vars(Some(&obj)).unwrap()["a"], 1);
        assert_eq!(
            parse_extra_vars(Some(&json!("{\"a\": 1}"))).unwrap()["a"],
            1
        );
        assert_eq!(
            parse_extra_vars(Some(&json!("a: 1\nb: x\n"))).unwrap()["b"],
            "x"
        );
        assert!(parse_extra_vars(Some(&json!("[1, 2]"))).is_err());
        assert!(parse_extra_vars(Some(&json!(3))).is_err());
        assert!(parse_extra_vars(Some(&json!(""))).unwrap().is_empty());
    }
}
