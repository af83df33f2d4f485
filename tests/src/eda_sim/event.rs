//! The event a rulebook sees, built from a request as each receiver builds it.

use std::collections::BTreeMap;

use axum::http::HeaderMap;
use serde_json::{Map, Value, json};

/// Headers as a JSON object, without `drop` (case-insensitive); of repeated headers the
/// last wins, as in a Python `dict` of them.
fn headers_object(headers: &HeaderMap, drop: &str) -> Map<String, Value> {
    headers
        .iter()
        .filter(|(name, _)| !name.as_str().eq_ignore_ascii_case(drop))
        .map(|(name, value)| {
            let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
            (name.as_str().to_owned(), Value::String(value))
        })
        .collect()
}

/// The webhook source's event: the path without its leading slash is the endpoint;
/// `Authorization` is left out of the headers.
pub(crate) fn webhook(endpoint: &str, headers: &HeaderMap, payload: Value) -> Value {
    json!({
        "payload": payload,
        "meta": { "endpoint": endpoint, "headers": headers_object(headers, "authorization") },
    })
}

/// An event stream's event: a body that is not a mapping goes under `body`; the
/// endpoint is the full path; the credential header is left out.
pub(crate) fn stream(
    full_path: &str,
    stream_name: &str,
    credential_header: &str,
    headers: &HeaderMap,
    body: Value,
) -> Value {
    let payload = match body {
        Value::Object(_) => body,
        other => json!({ "body": other }),
    };
    json!({
        "payload": payload,
        "meta": {
            "endpoint": full_path,
            "eda_event_stream_name": stream_name,
            "headers": headers_object(headers, credential_header),
        },
    })
}

/// Headers for the ledger: credential values hidden, names kept.
pub(crate) fn redacted(headers: &HeaderMap, secret_headers: &[&str]) -> BTreeMap<String, String> {
    headers
        .iter()
        .map(|(name, value)| {
            let name = name.as_str().to_owned();
            let value = if secret_headers.iter().any(|s| s.eq_ignore_ascii_case(&name)) {
                "***".to_owned()
            } else {
                String::from_utf8_lossy(value.as_bytes()).into_owned()
            };
            (name, value)
        })
        .collect()
}
