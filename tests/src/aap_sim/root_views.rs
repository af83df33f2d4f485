//! The API roots, `ping/` and `config/`: what clients read before anything else (awxkit's
//! CLI follows `available_versions`, ansible-rulebook checks `config/` at start-up).

use axum::response::Response;
use serde_json::{Value, json};

use super::config::Access;
use super::responses;
use super::state::Shared;

/// The AWX release the simulator answers as, in `ping/`, `config/` and the
/// `X-API-Product-Version` header; the awx.awx collection compares it with its own.
pub(crate) const VERSION: &str = "24.6.1";
pub(crate) const PRODUCT: &str = "AWX";

/// `{prefix}/`: AWX's ApiRootView, with the versions under the prefix asked for.
pub(crate) fn api_root(prefix: &str) -> Response {
    let v2 = format!("{prefix}/v2/");
    responses::json(
        200,
        &json!({
            "description": "AWX REST API",
            "current_version": v2,
            "available_versions": { "v2": v2 },
            "custom_logo": "",
            "custom_login_info": "",
            "login_redirect_override": "",
        }),
    )
}

/// `{prefix}/v2/`: the resources the simulator serves, as AWX's ApiVersionRootView
/// names them.
pub(crate) fn version_root(shared: &Shared) -> Response {
    let mut root = serde_json::Map::new();
    for name in [
        "ping",
        "config",
        "organizations",
        "job_templates",
        "jobs",
        "unified_job_templates",
        "workflow_job_templates",
        "workflow_jobs",
    ] {
        root.insert(name.to_owned(), json!(shared.url(&format!("{name}/"))));
    }
    responses::json(200, &Value::Object(root))
}

pub(crate) fn ping() -> Response {
    responses::json(
        200,
        &json!({
            "ha": false,
            "version": VERSION,
            "active_node": "aap-sim",
            "install_uuid": "00000000-0000-4000-8000-000000000000",
            "instances": [{
                "node": "aap-sim", "node_type": "hybrid",
                "uuid": "00000000-0000-4000-8000-000000000001",
                "heartbeat": null, "capacity": 100, "version": VERSION
            }],
            "instance_groups": [{ "name": "default", "capacity": 100, "instances": ["aap-sim"] }],
        }),
    )
}

/// `config/`: any authenticated user may read it; an open-source AWX has the `open`
/// license and no EULA. Organization admins (here: read-write credentials) also see the
/// project paths.
pub(crate) fn config(access: Access) -> Response {
    let mut value = json!({
        "time_zone": "UTC",
        "license_info": {
            "license_type": "open",
            "valid_key": true,
            "subscription_name": "OPEN",
            "product_name": PRODUCT,
        },
        "version": VERSION,
        "eula": "",
        "analytics_status": "off",
        "analytics_collectors": {},
        "become_methods": [["sudo", "Sudo"], ["su", "Su"], ["pbrun", "Pbrun"],
            ["pfexec", "Pfexec"], ["dzdo", "DZDO"], ["pmrun", "Pmrun"], ["runas", "Runas"],
            ["enable", "Enable"], ["doas", "Doas"], ["ksu", "Ksu"], ["machinectl", "Machinectl"],
            ["sesu", "Sesu"]],
    });
    if access == Access::ReadWrite {
        value["project_base_dir"] = json!("/var/lib/awx/projects");
        value["project_local_paths"] = json!([]);
        value["custom_virtualenvs"] = json!([]);
    }
    responses::json(200, &value)
}
