//! Credential checks, as each receiver does them: the webhook source's bearer token and
//! HMAC middlewares (401, a missing signature 400), and an event stream's credential
//! (missing header 400, mismatch 403).

use axum::http::HeaderMap;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::config::{HmacFormat, StreamAuth};
use super::ledger::AuthCheck;

/// A refused request: the status, the body text, and what the ledger says.
#[derive(Debug)]
pub(crate) struct Refusal {
    pub(crate) status: u16,
    pub(crate) message: String,
    pub(crate) check: AuthCheck,
}

fn refuse(status: u16, message: &str, check: AuthCheck) -> Refusal {
    Refusal {
        status,
        message: message.to_owned(),
        check,
    }
}

/// The HMAC-SHA256 of `body` under `secret`, written in `format`.
pub fn signature(secret: &str, body: &[u8], format: HmacFormat) -> String {
    // HMAC takes keys of any length.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    match format {
        HmacFormat::Hex => hex::encode(digest),
        HmacFormat::Base64 => base64::engine::general_purpose::STANDARD.encode(digest),
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    // A value that is not text cannot match anything; treat it as empty.
    headers.get(name).map(|v| v.to_str().unwrap_or(""))
}

/// The webhook source: the token middleware, then the HMAC middleware.
pub(crate) fn webhook(
    token: Option<&str>,
    hmac: Option<(&str, HmacFormat)>,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<AuthCheck, Refusal> {
    if token.is_none() && hmac.is_none() {
        return Ok(AuthCheck::NotChecked);
    }
    if let Some(token) = token {
        let Some(value) = header(headers, "authorization") else {
            return Err(refuse(
                401,
                "401: Missing authorization token",
                AuthCheck::Missing("authorization".to_owned()),
            ));
        };
        // "<scheme> <token>", split on single spaces: anything else is malformed.
        let parts: Vec<&str> = value.trim().split(' ').collect();
        let [scheme, given] = parts[..] else {
            return Err(refuse(
                401,
                "Invalid authorization token",
                AuthCheck::Rejected("malformed authorization header".to_owned()),
            ));
        };
        if scheme != "Bearer" {
            return Err(refuse(
                401,
                "Only Bearer type is accepted",
                AuthCheck::Rejected(format!("scheme {scheme:?}, not Bearer")),
            ));
        }
        if given != token {
            return Err(refuse(
                401,
                "Invalid authorization token",
                AuthCheck::Rejected("wrong bearer token".to_owned()),
            ));
        }
    }
    if let Some((secret, format)) = hmac {
        let Some(value) = header(headers, "x-hub-signature-256") else {
            return Err(refuse(
                400,
                "Signature header not found",
                AuthCheck::Missing("x-hub-signature-256".to_owned()),
            ));
        };
        let value = value.trim();
        let given = value.strip_prefix("sha256=").unwrap_or(value);
        if given != signature(secret, body, format) {
            return Err(refuse(
                401,
                "HMAC verification failed",
                AuthCheck::Rejected("signature mismatch".to_owned()),
            ));
        }
    }
    Ok(AuthCheck::Passed)
}

/// An event stream's credential.
pub(crate) fn stream(auth: &StreamAuth, headers: &HeaderMap, body: &[u8]) -> Result<(), Refusal> {
    let name = auth.header();
    let Some(value) = header(headers, name) else {
        return Err(refuse(
            400,
            &format!("{name} header is missing"),
            AuthCheck::Missing(name.to_ascii_lowercase()),
        ));
    };
    match auth {
        StreamAuth::Token { token, .. } => {
            let given = value.strip_prefix("Bearer ").unwrap_or(value);
            if given != token {
                return Err(refuse(
                    403,
                    "Token mismatch, check your token",
                    AuthCheck::Rejected("wrong token".to_owned()),
                ));
            }
        }
        StreamAuth::Hmac {
            secret,
            prefix,
            format,
            ..
        } => {
            // Compared whole, prefix included, with no trimming.
            if value != format!("{prefix}{}", signature(secret, body, *format)) {
                return Err(refuse(
                    403,
                    "Signature mismatch, check your payload and secret",
                    AuthCheck::Rejected("signature mismatch".to_owned()),
                ));
            }
        }
    }
    Ok(())
}
