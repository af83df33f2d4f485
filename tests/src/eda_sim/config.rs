//! What a test configures: which path runs which playbook, credentials, event
//! streams, playbook timing.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

/// The webhook path (`meta.endpoint`) [`EdaSimConfig::default`] maps to [`Playbook::Create`].
pub const PROVISION_PATH: &str = "provision";
/// The webhook path [`EdaSimConfig::default`] maps to [`Playbook::Delete`].
pub const DEPROVISION_PATH: &str = "deprovision";

/// What the rulebook runs for an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Playbook {
    /// Adds the `computeinstance-aap` finalizer, creates the VM and its VMI, then sets
    /// the reconciled-config-version annotation.
    Create,
    /// Deletes the VMI and the VM, then removes the `computeinstance-aap` finalizer.
    Delete,
}

/// How an HMAC signature is written (the webhook source's `hmac_format`, the event
/// stream credential's `signature_encoding`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HmacFormat {
    #[default]
    Hex,
    Base64,
}

/// How an event stream authenticates a post (its EDA credential).
#[derive(Clone, PartialEq, Eq)]
pub enum StreamAuth {
    /// `header` carries the token, with or without `Bearer `.
    Token { header: String, token: String },
    /// `header` carries `prefix` + the HMAC-SHA256 of the body in `format`.
    Hmac {
        header: String,
        secret: String,
        prefix: String,
        format: HmacFormat,
    },
}

impl StreamAuth {
    /// The request header this credential reads.
    pub fn header(&self) -> &str {
        match self {
            Self::Token { header, .. } | Self::Hmac { header, .. } => header,
        }
    }
}

impl std::fmt::Debug for StreamAuth {
    // Secrets stay out of debug output.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Token { header, .. } => f
                .debug_struct("Token")
                .field("header", header)
                .finish_non_exhaustive(),
            Self::Hmac {
                header,
                prefix,
                format,
                ..
            } => f
                .debug_struct("Hmac")
                .field("header", header)
                .field("prefix", prefix)
                .field("format", format)
                .finish_non_exhaustive(),
        }
    }
}

/// An EDA server event stream: `POST /api/eda/v1/external_event_stream/<uuid>/post/`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventStreamConfig {
    pub uuid: String,
    pub name: String,
    pub auth: StreamAuth,
    /// What the activation behind the stream runs; `None`: events are only recorded.
    pub playbook: Option<Playbook>,
}

impl EventStreamConfig {
    /// A stream whose credential is a bearer token in `Authorization`.
    pub fn token(uuid: impl Into<String>, name: impl Into<String>, token: &str) -> Self {
        Self {
            uuid: uuid.into(),
            name: name.into(),
            auth: StreamAuth::Token {
                header: "Authorization".to_owned(),
                token: token.to_owned(),
            },
            playbook: None,
        }
    }

    /// A stream whose credential is a GitHub-style `X-Hub-Signature-256: sha256=<hex>`.
    pub fn hmac(uuid: impl Into<String>, name: impl Into<String>, secret: &str) -> Self {
        Self {
            uuid: uuid.into(),
            name: name.into(),
            auth: StreamAuth::Hmac {
                header: "X-Hub-Signature-256".to_owned(),
                secret: secret.to_owned(),
                prefix: "sha256=".to_owned(),
                format: HmacFormat::Hex,
            },
            playbook: None,
        }
    }

    pub fn playbook(mut self, playbook: Playbook) -> Self {
        self.playbook = Some(playbook);
        self
    }
}

/// When a playbook's steps happen. Read again before every wait, so a test may
/// change it while a playbook runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Timing {
    /// From the event to the first step.
    pub start: Duration,
    /// Between two steps.
    pub between_steps: Duration,
}

impl Timing {
    pub fn new(start: Duration, between_steps: Duration) -> Self {
        Self {
            start,
            between_steps,
        }
    }
}

/// Everything [`super::EdaSimulator::start`] needs.
#[derive(Clone)]
pub struct EdaSimConfig {
    /// The webhook source's `token`: every webhook request needs `Authorization: Bearer <token>`.
    pub token: Option<String>,
    /// The webhook source's `hmac_secret`: every webhook request needs a signature.
    pub hmac_secret: Option<String>,
    pub hmac_format: HmacFormat,
    /// Webhook path (without the leading slash, as in `meta.endpoint`) → playbook. Other
    /// paths are accepted too (the source takes any path) but run nothing.
    pub webhooks: BTreeMap<String, Playbook>,
    pub streams: Vec<EventStreamConfig>,
    /// The cluster the playbooks act on; without one, runs are recorded as skipped.
    pub kube: Option<kube::Client>,
    pub timings: BTreeMap<Playbook, Timing>,
    /// One playbook at a time, in the order of the events (ansible-rulebook's
    /// `execution_strategy: sequential`); otherwise each event's playbook runs at once.
    pub sequential: bool,
}

impl Default for EdaSimConfig {
    /// `/provision` runs the create playbook, `/deprovision` the delete playbook; no
    /// credentials, no delays.
    fn default() -> Self {
        Self::empty()
            .webhook(PROVISION_PATH, Playbook::Create)
            .webhook(DEPROVISION_PATH, Playbook::Delete)
    }
}

impl std::fmt::Debug for EdaSimConfig {
    // Credentials stay out of debug output.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EdaSimConfig")
            .field("token", &self.token.is_some())
            .field("hmac_secret", &self.hmac_secret.is_some())
            .field("hmac_format", &self.hmac_format)
            .field("webhooks", &self.webhooks)
            .field("streams", &self.streams)
            .field("kube", &self.kube.is_some())
            .field("timings", &self.timings)
            .field("sequential", &self.sequential)
            .finish()
    }
}

impl EdaSimConfig {
    /// The default routes ([`PROVISION_PATH`], [`DEPROVISION_PATH`]).
    pub fn new() -> Self {
        Self::default()
    }

    /// No routes at all: every event is accepted and nothing runs.
    pub fn empty() -> Self {
        Self {
            token: None,
            hmac_secret: None,
            hmac_format: HmacFormat::Hex,
            webhooks: BTreeMap::new(),
            streams: Vec::new(),
            kube: None,
            timings: BTreeMap::new(),
            sequential: false,
        }
    }

    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    pub fn hmac(mut self, secret: impl Into<String>, format: HmacFormat) -> Self {
        self.hmac_secret = Some(secret.into());
        self.hmac_format = format;
        self
    }

    /// Events posted to `path` run `playbook` (a leading slash is ignored).
    pub fn webhook(mut self, path: &str, playbook: Playbook) -> Self {
        self.webhooks.insert(endpoint_key(path), playbook);
        self
    }

    pub fn event_stream(mut self, stream: EventStreamConfig) -> Self {
        self.streams.push(stream);
        self
    }

    pub fn kube(mut self, client: kube::Client) -> Self {
        self.kube = Some(client);
        self
    }

    pub fn timing(mut self, playbook: Playbook, timing: Timing) -> Self {
        self.timings.insert(playbook, timing);
        self
    }

    pub fn sequential(mut self, sequential: bool) -> Self {
        self.sequential = sequential;
        self
    }
}

/// A path as the rulebook names it: without the leading slash.
pub(crate) fn endpoint_key(path: &str) -> String {
    path.trim_start_matches('/').to_owned()
}
