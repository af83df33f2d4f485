//! An AAP answer read in full, and what it means when it is not the one expected: the
//! decoded body, or the [`AapError`] for its status and body.

use std::time::Duration;

use reqwest::StatusCode;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::error::AapError;

/// Longest body excerpt kept in an error.
const MAX_EXCERPT: usize = 200;

/// An HTTP answer, read in full.
pub(super) struct Answer {
    pub(super) status: StatusCode,
    pub(super) url: String,
    pub(super) retry_after: Option<Duration>,
    pub(super) body: Vec<u8>,
}

pub(super) fn decode<T: DeserializeOwned>(answer: &Answer) -> Result<T, AapError> {
    serde_json::from_slice(&answer.body).map_err(|e| AapError::Decode {
        url: answer.url.clone(),
        cause: e.to_string(),
    })
}

/// The error for an answer the caller did not expect. `action` says what we tried
/// ("launch template \"x\""), for 403s.
pub(super) fn fail(answer: Answer, action: &str) -> AapError {
    let detail = detail(&answer);
    match answer.status.as_u16() {
        401 => AapError::Unauthorized { detail },
        403 => AapError::Forbidden {
            action: action.to_owned(),
            detail,
        },
        429 => AapError::RateLimited {
            url: answer.url,
            retry_after: answer.retry_after,
        },
        status @ 500..=599 => AapError::Server {
            status,
            url: answer.url,
            body_excerpt: detail,
        },
        status => AapError::Unexpected {
            status,
            url: answer.url,
            body_excerpt: detail,
        },
    }
}

/// DRF's `{"detail": "..."}`, else the start of the body on one line (a proxy's HTML).
fn detail(answer: &Answer) -> String {
    if let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(&answer.body)
        && let Some(Value::String(detail)) = map.get("detail")
    {
        return excerpt(detail);
    }
    let text = String::from_utf8_lossy(&answer.body);
    let text = excerpt(&text);
    if text.is_empty() {
        answer
            .status
            .canonical_reason()
            .unwrap_or("no body")
            .to_owned()
    } else {
        text
    }
}

fn excerpt(text: &str) -> String {
    let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut out: String = line.chars().take(MAX_EXCERPT).collect();
    if out.len() < line.len() {
        out.push('…');
    }
    out
}

/// A 400 body `{field: [messages]}` as pairs; anything else under `__all__`.
pub(super) fn rejected_fields(answer: &Answer) -> Vec<(String, Vec<String>)> {
    let messages = |value: &Value| -> Vec<String> {
        match value {
            Value::Array(items) => items
                .iter()
                .map(|item| match item {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect(),
            Value::String(s) => vec![s.clone()],
            other => vec![other.to_string()],
        }
    };
    match serde_json::from_slice::<Value>(&answer.body) {
        Ok(Value::Object(map)) if !map.is_empty() => {
            map.iter().map(|(k, v)| (k.clone(), messages(v))).collect()
        }
        _ => vec![("__all__".to_owned(), vec![detail(answer)])],
    }
}
