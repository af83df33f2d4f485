//! `organizations/`: the organizations the templates belong to (clients resolve an
//! organization's name to its id before looking a template up by it).

use axum::response::Response;
use serde_json::{Value, json};

use super::clock::iso;
use super::config::{Access, JobKind};
use super::query::{self, FieldValue, Model};
use super::responses;
use super::state::{Shared, State};

const ORGANIZATION: Model = Model {
    name: "Organization",
    fields: &[
        "id",
        "name",
        "description",
        "max_hosts",
        "created",
        "modified",
    ],
    prevented: &[],
};

/// An organization as the list views see it: id and name.
#[derive(Clone, Copy)]
struct Org<'a> {
    id: u64,
    name: &'a str,
}

fn organizations(state: &State) -> Vec<Org<'_>> {
    state
        .organizations
        .iter()
        .enumerate()
        .map(|(i, name)| Org {
            id: i as u64 + 1,
            name,
        })
        .collect()
}

fn field(shared: &Shared, org: &Org<'_>, name: &str) -> Option<FieldValue> {
    let created = shared.clock.origin();
    Some(match name {
        "id" => FieldValue::Int(Some(org.id)),
        "name" => FieldValue::Str(Some(org.name.to_owned())),
        "description" => FieldValue::Str(Some(String::new())),
        "max_hosts" => FieldValue::Int(Some(0)),
        "created" | "modified" => FieldValue::Time(Some(created)),
        _ => return None,
    })
}

/// AWX's OrganizationSerializer, with the counts of what the simulator holds.
fn serialize(shared: &Shared, state: &State, org: &Org<'_>, access: Access) -> Value {
    let url = shared.url(&format!("organizations/{}/", org.id));
    let created = iso(shared.clock.origin());
    let admin = access == Access::ReadWrite;
    let job_templates = state
        .templates
        .values()
        .filter(|t| t.kind == JobKind::Job && t.organization == org.name)
        .count();
    let related = |rest: &str| format!("{url}{rest}/");
    json!({
        "id": org.id,
        "type": "organization",
        "url": url,
        "related": {
            "job_templates": related("job_templates"),
            "workflow_job_templates": related("workflow_job_templates"),
            "projects": related("projects"),
            "inventories": related("inventories"),
            "users": related("users"),
            "admins": related("admins"),
            "teams": related("teams"),
            "credentials": related("credentials"),
            "activity_stream": related("activity_stream"),
            "object_roles": related("object_roles"),
            "access_list": related("access_list"),
            "instance_groups": related("instance_groups"),
        },
        "summary_fields": {
            "user_capabilities": { "edit": admin, "delete": admin },
            "related_field_counts": {
                "inventories": 0, "teams": 0, "users": 0, "admins": 0, "projects": 0,
                "hosts": 0, "job_templates": job_templates,
            },
        },
        "created": created,
        "modified": created,
        "name": org.name,
        "description": "",
        "max_hosts": 0,
        "custom_virtualenv": null,
        "default_environment": null,
    })
}

pub(crate) fn list(
    shared: &Shared,
    params: &[(String, String)],
    path: &str,
    access: Access,
) -> Response {
    let state = shared.lock();
    // AWX orders organizations by name.
    let mut orgs = organizations(&state);
    orgs.sort_by(|a, b| a.name.cmp(b.name).then(a.id.cmp(&b.id)));
    match query::list(orgs, params, path, &ORGANIZATION, |o, name| {
        field(shared, o, name)
    }) {
        Err(e) => e.response(),
        Ok(page) => page.response(|o| serialize(shared, &state, o, access)),
    }
}

pub(crate) fn detail(shared: &Shared, id: u64, access: Access) -> Response {
    let state = shared.lock();
    match organizations(&state).into_iter().find(|o| o.id == id) {
        None => responses::not_found(),
        Some(org) => responses::json(200, &serialize(shared, &state, &org, access)),
    }
}
