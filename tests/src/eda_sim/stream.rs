//! EDA server's external event streams:
//! `POST /api/eda/v1/external_event_stream/<uuid>/post/`, in the order Django and DRF
//! check things: slash redirect, method, stream, credential header, credential, body.

use axum::http::{HeaderMap, Method};
use serde_json::{Value, json};

use super::auth;
use super::event;
use super::ledger::{AuthCheck, Flavor};
use super::responses;
use super::server::{Taken, Verdict};
use super::state::Shared;

pub(crate) const PREFIX: &str = "/api/eda/v1/external_event_stream/";

/// The URL path of a stream's post endpoint.
pub(crate) fn path_of(uuid: &str) -> String {
    format!("{PREFIX}{uuid}/post/")
}

pub(crate) fn receive(
    shared: &Shared,
    method: &Method,
    path: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    body: &[u8],
) -> Verdict {
    let full_path = match query {
        Some(q) => format!("{path}?{q}"),
        None => path.to_owned(),
    };
    let rest = path.strip_prefix(PREFIX).unwrap_or_default();
    let uuid = match rest.split('/').collect::<Vec<_>>()[..] {
        [uuid, "post", ""] if !uuid.is_empty() => uuid,
        [uuid, "post"] if !uuid.is_empty() => {
            // APPEND_SLASH: the query goes along.
            let location = match query {
                Some(q) => format!("{path}/?{q}"),
                None => format!("{path}/"),
            };
            return Verdict::refused(
                crate::sim_server::redirect(&location),
                AuthCheck::NotChecked,
            );
        }
        _ => {
            return Verdict::refused(responses::text(404, "Not Found"), AuthCheck::NotChecked);
        }
    };
    if method == Method::OPTIONS {
        let metadata = json!({
            "name": "External Event Stream",
            "description": "External Event Stream View Set.",
            "renders": ["application/json"],
            "parses": ["application/json", "application/x-www-form-urlencoded", "multipart/form-data"],
        });
        return Verdict::refused(responses::json(200, &metadata), AuthCheck::NotChecked);
    }
    if method != Method::POST {
        let response = responses::detail(405, &format!("Method \"{method}\" not allowed."));
        return Verdict::refused(
            responses::allow(response, "POST, OPTIONS"),
            AuthCheck::NotChecked,
        );
    }
    let Some(stream) = shared.lock().streams.get(uuid).cloned() else {
        return Verdict::refused(
            responses::detail(400, "bad uuid specified"),
            AuthCheck::NotChecked,
        );
    };
    if let Err(refusal) = auth::stream(&stream.auth, headers, body) {
        return Verdict::refused(
            responses::detail(refusal.status, &refusal.message),
            refusal.check,
        );
    }
    let Some(data) = parse(body) else {
        let content_type = headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        return Verdict::refused(
            responses::detail(400, &format!("Invalid content. Type: {content_type}")),
            AuthCheck::Passed,
        );
    };
    Verdict::Taken(Taken {
        flavor: Flavor::EventStream,
        event: event::stream(
            &full_path,
            &stream.name,
            stream.auth.header(),
            headers,
            data,
        ),
        route: path.trim_start_matches('/').to_owned(),
        playbook: stream.playbook,
        auth: AuthCheck::Passed,
        ok: responses::empty(200),
    })
}

/// The server reads bodies as YAML, of which JSON is a subset; an empty body is null.
fn parse(body: &[u8]) -> Option<Value> {
    let text = std::str::from_utf8(body).ok()?;
    if text.trim().is_empty() {
        return Some(Value::Null);
    }
    serde_json::from_str(text)
        .ok()
        .or_else(|| serde_saphyr::from_str(text).ok())
}
