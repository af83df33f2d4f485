//! EDA provider: POST the resource to a rulebook webhook or event stream.

use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use base64::Engine;

use crate::config::{EdaSettings, HmacStyle};

/// Why an event was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum EdaError {
    #[error("EDA webhook {url} rejected the event with {status}: {hint}")]
    Rejected {
        url: String,
        status: u16,
        hint: String,
    },
    #[error("EDA webhook {url} is unreachable: {cause}")]
    Unreachable { url: String, cause: String },
    #[error("cannot build the EDA client: {0}")]
    Client(String),
}

impl EdaError {
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Rejected { status, .. } if !self.is_permanent() && *status >= 408 => {
                cloudkit_shared::reasons::PROVIDER_UNREACHABLE
            }
            Self::Rejected { .. } | Self::Client(_) => cloudkit_shared::reasons::WEBHOOK_REJECTED,
            Self::Unreachable { .. } => cloudkit_shared::reasons::PROVIDER_UNREACHABLE,
        }
    }

    /// 5xx and connection problems may pass; a 4xx will not until configuration changes.
    pub fn is_permanent(&self) -> bool {
        match self {
            // 408 and 429 come from gateways in front of EDA: try again later.
            Self::Rejected { status, .. } => *status < 500 && *status != 408 && *status != 429,
            Self::Unreachable { .. } => false,
            Self::Client(_) => true,
        }
    }
}

/// Which webhook an event goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EdaAction {
    Provision,
    Deprovision,
}

pub struct EdaClient {
    http: reqwest::Client,
    settings: EdaSettings,
}

impl EdaClient {
    pub fn new(settings: EdaSettings, timeout: Duration) -> Result<Self, EdaError> {
        let http = reqwest::Client::builder()
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .timeout(timeout)
            .build()
            .map_err(|e| EdaError::Client(e.to_string()))?;
        Ok(Self { http, settings })
    }

    /// Sends `payload` (the whole resource) as the event body.
    pub async fn send(
        &self,
        action: EdaAction,
        payload: &serde_json::Value,
    ) -> Result<(), EdaError> {
        let url = match action {
            EdaAction::Provision => &self.settings.provision_url,
            EdaAction::Deprovision => &self.settings.deprovision_url,
        };
        let shown = redact(url);
        // Serialising a JSON value cannot fail.
        let body = serde_json::to_vec(payload).unwrap_or_default();
        let mut req = self
            .http
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json");
        if let Some(token) = &self.settings.token {
            req = req.bearer_auth(token.expose());
        }
        if let Some(secret) = &self.settings.hmac_secret {
            let style = &self.settings.hmac;
            req = req.header(
                style.header.clone(),
                signature(secret.expose(), style, &body),
            );
        }
        let resp = req
            .body(body)
            .send()
            .await
            .map_err(|e| EdaError::Unreachable {
                url: shown.clone(),
                cause: if e.is_timeout() {
                    "timed out".into()
                } else if e.is_connect() {
                    "connection refused or no route".into()
                } else {
                    "request failed".into()
                },
            })?;
        let status = resp.status().as_u16();
        if resp.status().is_success() {
            return Ok(());
        }
        let hint = match status {
            400 => {
                "the receiver did not accept the body as JSON (or a required auth header is missing)"
            }
            401 | 403 => {
                "bad or missing credentials: check CLOUDKIT_EDA_TOKEN / CLOUDKIT_EDA_HMAC_SECRET"
            }
            404 => "no such endpoint: check the webhook URL",
            405 => "method not allowed: usually a wrong URL (event streams end in /post/)",
            408 | 429 => "the receiver (or a gateway) asks to slow down; will retry",
            s if s >= 500 => "the EDA receiver failed; will retry",
            _ => "unexpected answer",
        };
        Err(EdaError::Rejected {
            url: shown,
            status,
            hint: hint.into(),
        })
    }
}

/// The prefix and the HMAC-SHA256 of the body in hex or base64 (by default `sha256=<hex>`,
/// as GitHub-style webhooks and the rulebook source expect).
pub fn signature(secret: &str, style: &HmacStyle, body: &[u8]) -> String {
    // HMAC accepts keys of any length.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let encoded = if style.base64 {
        base64::engine::general_purpose::STANDARD.encode(digest)
    } else {
        hex::encode(digest)
    };
    format!("{}{encoded}", style.prefix)
}

/// URL without user info or query (either may carry credentials).
pub fn redact(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.set_query(None);
            u.to_string()
        }
        Err(_) => "<invalid url>".into(),
    }
}
