//! The event a rulebook sees, built from a request as each receiver builds it.

use std::collections::BTreeMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};

use axum::http::HeaderMap;
use k8s_openapi::jiff::Timestamp;
use serde_json::{Map, Value, json};

/// The source name in the reference rulebook (`ansible/rulebooks/`), and its type.
pub(crate) const WEBHOOK_SOURCE_NAME: &str = "cloudkit";
pub(crate) const WEBHOOK_SOURCE_TYPE: &str = "eda.builtin.webhook";

/// The request headers whose names aiohttp (under the webhook source) spells its own way
/// whatever the sender wrote; every other name keeps the sender's spelling. The HTTP
/// server here sees names in lower case only, which is how cloudkit's runner (reqwest)
/// sends them, so for the runner's requests the result is what the real source shows.
const CANONICAL_HEADERS: &[&str] = &[
    "Accept",
    "Accept-Charset",
    "Accept-Encoding",
    "Accept-Language",
    "Authorization",
    "Cache-Control",
    "Connection",
    "Content-Encoding",
    "Content-Length",
    "Content-MD5",
    "Content-Type",
    "Cookie",
    "Date",
    "Digest",
    "Expect",
    "Forwarded",
    "From",
    "Host",
    "If-Match",
    "If-Modified-Since",
    "If-None-Match",
    "Keep-Alive",
    "Origin",
    "Pragma",
    "Range",
    "Referer",
    "TE",
    "Trailer",
    "Transfer-Encoding",
    "Upgrade",
    "User-Agent",
    "Via",
    "Warning",
];

fn header_name(name: &str) -> String {
    CANONICAL_HEADERS
        .iter()
        .find(|c| c.eq_ignore_ascii_case(name))
        .map_or_else(|| name.to_owned(), |c| (*c).to_owned())
}

/// Headers as a JSON object, without `drop` (case-insensitive); of repeated headers the
/// first wins, as in a Python `dict` made from aiohttp's headers.
fn headers_object(
    headers: &HeaderMap,
    drop: &str,
    name: impl Fn(&str) -> String,
) -> Map<String, Value> {
    let mut object = Map::new();
    for (key, value) in headers {
        if key.as_str().eq_ignore_ascii_case(drop) {
            continue;
        }
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        object
            .entry(name(key.as_str()))
            .or_insert(Value::String(value));
    }
    object
}

/// A random version-4 UUID, as the engine gives each event in `meta.uuid`.
fn uuid_v4() -> String {
    static COUNT: AtomicU64 = AtomicU64::new(0);
    // Randomly keyed hashes of a counter: unique per event, unpredictable across runs.
    let random = |salt: u64| {
        let mut h = std::hash::RandomState::new().build_hasher();
        h.write_u64(COUNT.fetch_add(1, Ordering::Relaxed) ^ salt);
        h.finish()
    };
    let bits = (u128::from(random(1)) << 64) | u128::from(random(2));
    let bits = (bits & !(0xf << 76)) | (0x4 << 76); // version 4
    let bits = (bits & !(0x3 << 62)) | (0x2 << 62); // RFC 4122 variant
    let hex = format!("{bits:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// `meta.received_at`: UTC, microseconds, `Z` (`2026-12-01T10:08:53.037226Z`).
fn received_at() -> String {
    Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%S%.6fZ")
        .to_string()
}

/// The webhook source's event: the path without its leading slash is the endpoint;
/// `Authorization` is left out of the headers; the engine adds `uuid`, `received_at`
/// and the `source` it came from.
pub(crate) fn webhook(endpoint: &str, headers: &HeaderMap, payload: Value) -> Value {
    json!({
        "payload": payload,
        "meta": {
            "endpoint": endpoint,
            "headers": headers_object(headers, "authorization", header_name),
            "uuid": uuid_v4(),
            "received_at": received_at(),
            "source": { "name": WEBHOOK_SOURCE_NAME, "type": WEBHOOK_SOURCE_TYPE },
        },
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
            "headers": headers_object(headers, credential_header, str::to_owned),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_are_version_4_and_distinct() {
        let (a, b) = (uuid_v4(), uuid_v4());
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
        assert!(matches!(&a[19..20], "8" | "9" | "a" | "b"), "{a}");
    }

    #[test]
    fn received_at_has_microseconds_and_z() {
        let t = received_at();
        assert_eq!(t.len(), "2026-12-01T10:08:53.037226Z".len(), "{t}");
        assert!(t.ends_with('Z') && t.as_bytes()[19] == b'.', "{t}");
    }

    #[test]
    fn known_header_names_are_canonical_others_kept() {
        assert_eq!(header_name("content-type"), "Content-Type");
        assert_eq!(header_name("te"), "TE");
        assert_eq!(header_name("x-hub-signature-256"), "x-hub-signature-256");
    }
}
