//! `OPTIONS`: the metadata DRF (with AWX's Metadata class) answers for a view — its
//! name, renderers and parsers, and for views with a serializer the fields per method
//! (`actions`), the types, search fields and the list page-size cap. awxkit's CLI builds
//! its commands and flags from it. DRF answers it without looking the object up, so a
//! detail path of an id that does not exist still answers 200.

use axum::response::Response;
use serde_json::{Map, Value, json};

use super::config::{Access, JobKind};
use super::query::MAX_PAGE_SIZE;
use super::responses;
use super::routes::Route;

/// `(name, type, filterable)`; the label is derived from the name as Django does from
/// a field's verbose name.
type Field = (&'static str, &'static str, bool);

const COMMON: &[Field] = &[
    ("id", "integer", true),
    ("type", "choice", true),
    ("url", "string", false),
    ("related", "object", false),
    ("summary_fields", "object", false),
    ("created", "datetime", true),
    ("modified", "datetime", true),
    ("name", "string", true),
    ("description", "string", true),
];

const TEMPLATE: &[Field] = &[
    ("organization", "id", true),
    ("extra_vars", "string", true),
    ("survey_enabled", "boolean", true),
    ("allow_simultaneous", "boolean", true),
    ("ask_variables_on_launch", "boolean", true),
    ("ask_inventory_on_launch", "boolean", true),
    ("ask_limit_on_launch", "boolean", true),
    ("ask_labels_on_launch", "boolean", true),
    ("ask_tags_on_launch", "boolean", true),
    ("ask_skip_tags_on_launch", "boolean", true),
    ("ask_scm_branch_on_launch", "boolean", true),
    ("last_job_run", "datetime", true),
    ("last_job_failed", "boolean", true),
    ("status", "choice", true),
];

const JOB_TEMPLATE: &[Field] = &[
    ("job_type", "choice", true),
    ("playbook", "string", true),
    ("ask_credential_on_launch", "boolean", true),
    ("ask_job_type_on_launch", "boolean", true),
    ("ask_verbosity_on_launch", "boolean", true),
    ("ask_diff_mode_on_launch", "boolean", true),
];

const JOB: &[Field] = &[
    ("unified_job_template", "id", true),
    ("launch_type", "choice", true),
    ("status", "choice", true),
    ("failed", "boolean", true),
    ("started", "datetime", true),
    ("finished", "datetime", true),
    ("canceled_on", "datetime", true),
    ("elapsed", "decimal", true),
    ("job_explanation", "string", true),
    ("launched_by", "field", false),
    ("work_unit_id", "string", true),
    ("extra_vars", "string", true),
];

const JOB_ONLY: &[Field] = &[
    ("job_template", "id", true),
    ("job_type", "choice", true),
    ("playbook", "string", true),
    ("execution_node", "string", true),
    ("controller_node", "string", true),
    ("artifacts", "json", false),
    ("job_slice_number", "integer", true),
    ("job_slice_count", "integer", true),
];

const WORKFLOW_JOB_ONLY: &[Field] = &[
    ("workflow_job_template", "id", true),
    ("job_template", "id", true),
    ("is_sliced_job", "boolean", true),
    ("allow_simultaneous", "boolean", true),
];

const ORGANIZATION: &[Field] = &[
    ("max_hosts", "integer", true),
    ("custom_virtualenv", "string", true),
    ("default_environment", "id", true),
];

const LAUNCH_GET: &[Field] = &[
    ("can_start_without_user_input", "boolean", false),
    ("passwords_needed_to_start", "field", false),
    ("ask_variables_on_launch", "boolean", false),
    ("survey_enabled", "boolean", false),
    ("variables_needed_to_start", "field", false),
    ("defaults", "field", false),
];

/// What a launch accepts: `extra_vars`, and the prompts a job template lists in
/// `ignored_fields` unless it asks for them.
const JOB_LAUNCH_POST: &[Field] = &[
    ("extra_vars", "json", false),
    ("inventory", "id", false),
    ("credentials", "list_of_ids", false),
    ("limit", "string", false),
    ("job_tags", "string", false),
    ("skip_tags", "string", false),
    ("job_type", "choice", false),
    ("verbosity", "choice", false),
    ("diff_mode", "boolean", false),
    ("scm_branch", "string", false),
    ("labels", "list_of_ids", false),
];

const WORKFLOW_LAUNCH_POST: &[Field] = &[
    ("extra_vars", "json", false),
    ("inventory", "id", false),
    ("limit", "string", false),
    ("scm_branch", "string", false),
    ("labels", "list_of_ids", false),
];

const UNIFIED_TEMPLATE_TYPES: [&str; 5] = [
    "project",
    "inventory_source",
    "job_template",
    "system_job_template",
    "workflow_job_template",
];

fn label(name: &str) -> String {
    if name == "id" {
        return "ID".to_owned();
    }
    let text = name.replace('_', " ");
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => text,
    }
}

fn fields(groups: &[&[Field]], for_get: bool) -> Value {
    let mut out = Map::new();
    for (name, kind, filterable) in groups.iter().flat_map(|g| g.iter()) {
        let mut info = json!({ "type": kind, "label": label(name) });
        if for_get {
            info["filterable"] = json!(filterable);
        } else {
            info["required"] = json!(false);
        }
        out.insert((*name).to_owned(), info);
    }
    Value::Object(out)
}

struct View {
    name: &'static str,
    get: Option<Vec<&'static [Field]>>,
    post: Option<&'static [Field]>,
    types: Option<Vec<&'static str>>,
    list: bool,
    roles: &'static [&'static str],
}

impl View {
    fn plain(name: &'static str) -> Self {
        Self {
            name,
            get: None,
            post: None,
            types: None,
            list: false,
            roles: &[],
        }
    }
}

fn template_fields(kind: JobKind) -> Vec<&'static [Field]> {
    match kind {
        JobKind::Job => vec![COMMON, TEMPLATE, JOB_TEMPLATE],
        JobKind::Workflow => vec![COMMON, TEMPLATE],
    }
}

fn job_fields(kind: JobKind) -> Vec<&'static [Field]> {
    match kind {
        JobKind::Job => vec![COMMON, JOB, JOB_ONLY],
        JobKind::Workflow => vec![COMMON, JOB, WORKFLOW_JOB_ONLY],
    }
}

fn template_roles(kind: JobKind) -> &'static [&'static str] {
    match kind {
        JobKind::Job => &["admin_role", "execute_role", "read_role"],
        JobKind::Workflow => &["admin_role", "execute_role", "read_role", "approval_role"],
    }
}

fn template_type(kind: JobKind) -> &'static str {
    match kind {
        JobKind::Job => "job_template",
        JobKind::Workflow => "workflow_job_template",
    }
}

fn job_type(kind: JobKind) -> &'static str {
    match kind {
        JobKind::Job => "job",
        JobKind::Workflow => "workflow_job",
    }
}

fn view(route: Route) -> View {
    let kind_name = |kind: JobKind, job: &'static str, workflow: &'static str| match kind {
        JobKind::Job => job,
        JobKind::Workflow => workflow,
    };
    match route {
        Route::ApiRoot => View::plain("REST API"),
        Route::Root => View::plain("Version 2"),
        Route::Ping => View::plain("Ping"),
        Route::Config => View::plain("Configuration"),
        Route::OrganizationList | Route::OrganizationDetail(_) => View {
            get: Some(vec![COMMON, ORGANIZATION]),
            types: Some(vec!["organization"]),
            list: route == Route::OrganizationList,
            roles: &[
                "admin_role",
                "execute_role",
                "project_admin_role",
                "inventory_admin_role",
                "credential_admin_role",
                "workflow_admin_role",
                "notification_admin_role",
                "job_template_admin_role",
                "execution_environment_admin_role",
                "auditor_role",
                "member_role",
                "read_role",
                "approval_role",
            ],
            ..View::plain(if route == Route::OrganizationList {
                "Organizations"
            } else {
                "Organization Detail"
            })
        },
        Route::UnifiedTemplateList => View {
            get: Some(vec![COMMON, TEMPLATE]),
            types: Some(UNIFIED_TEMPLATE_TYPES.to_vec()),
            list: true,
            ..View::plain("Unified Job Templates")
        },
        Route::TemplateList(kind) => View {
            get: Some(template_fields(kind)),
            types: Some(vec![template_type(kind)]),
            list: true,
            roles: template_roles(kind),
            ..View::plain(kind_name(kind, "Job Templates", "Workflow Job Templates"))
        },
        Route::TemplateDetail(kind, _) => View {
            get: Some(template_fields(kind)),
            types: Some(vec![template_type(kind)]),
            roles: template_roles(kind),
            ..View::plain(kind_name(
                kind,
                "Job Template Detail",
                "Workflow Job Template Detail",
            ))
        },
        Route::Launch(kind, _) => View {
            get: Some(vec![LAUNCH_GET]),
            post: Some(match kind {
                JobKind::Job => JOB_LAUNCH_POST,
                JobKind::Workflow => WORKFLOW_LAUNCH_POST,
            }),
            ..View::plain(kind_name(
                kind,
                "Job Template Launch",
                "Workflow Job Template Launch",
            ))
        },
        Route::JobList(kind) => View {
            get: Some(job_fields(kind)),
            types: Some(vec![job_type(kind)]),
            list: true,
            ..View::plain(kind_name(kind, "Jobs", "Workflow Jobs"))
        },
        Route::TemplateJobs(kind, _) => View {
            get: Some(job_fields(kind)),
            types: Some(vec![job_type(kind)]),
            list: true,
            ..View::plain(kind_name(
                kind,
                "Job Template Jobs List",
                "Workflow Job Template Workflow Jobs List",
            ))
        },
        Route::JobDetail(kind, _) => View {
            get: Some(job_fields(kind)),
            types: Some(vec![job_type(kind)]),
            ..View::plain(kind_name(kind, "Job Detail", "Workflow Job Detail"))
        },
        Route::Cancel(kind, _) => View {
            get: Some(vec![&[("can_cancel", "boolean", false)]]),
            // `can_cancel` is read-only: nothing to send.
            post: Some(&[]),
            ..View::plain(kind_name(kind, "Job Cancel", "Workflow Job Cancel"))
        },
        Route::Stdout(_) => View {
            get: Some(vec![&[("result_stdout", "string", false)]]),
            ..View::plain("Job Stdout")
        },
        Route::JobEvents(_) => View {
            types: Some(vec!["job_event"]),
            list: true,
            ..View::plain("Job Job Events List")
        },
        Route::WorkflowNodes(_) => View {
            types: Some(vec!["workflow_job_node"]),
            list: true,
            ..View::plain("Workflow Job Workflow Nodes List")
        },
    }
}

/// The OPTIONS answer for `route`. POST fields are listed only for credentials that
/// may POST, as DRF drops an action whose permission check fails.
pub(crate) fn options(route: Route, access: Access) -> Response {
    let view = view(route);
    let mut value = json!({
        "name": view.name,
        "description": "",
        "renders": ["application/json", "text/html"],
        "parses": ["application/json"],
    });
    let mut actions = Map::new();
    if let Some(get) = &view.get {
        actions.insert("GET".to_owned(), fields(get, true));
    }
    if let Some(post) = view.post
        && access == Access::ReadWrite
    {
        actions.insert("POST".to_owned(), fields(&[post], false));
    }
    if !actions.is_empty() {
        value["actions"] = Value::Object(actions);
    }
    if let Some(types) = view.types {
        value["types"] = json!(types);
    }
    if view.list {
        value["search_fields"] = json!(["description", "name"]);
        value["max_page_size"] = json!(MAX_PAGE_SIZE);
    }
    if !view.roles.is_empty() {
        value["object_roles"] = json!(view.roles);
    }
    responses::json(200, &value)
}
