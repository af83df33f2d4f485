//! The validated high-level settings, from the typed arguments: the rules that involve
//! more than one argument, and what upstream accepted kept.

use std::path::PathBuf;
use std::time::Duration;

use cloudkit_shared::plan::{Policy, ProviderKind};
use cloudkit_shared::settings::parse_max_job_history;
use cloudkit_shared::signals::parse_duration;
use prometheus_client::metrics::gauge::Gauge;

use super::ConfigError;
use super::args::{Args, HmacFormat, LogsAddr, ProviderArg, name};

use crate::aap::{AapConfig, TokenSource};
use crate::secret::Secret;

/// Validated settings.
#[derive(Clone, Debug)]
pub struct Settings {
    pub(crate) policy: Policy,
    pub aap: Option<AapSettings>,
    pub(crate) eda: Option<EdaSettings>,
    pub(crate) eda_deadline: Duration,
    pub(crate) namespace: Option<String>,
    pub http_timeout: Duration,
    pub(crate) max_concurrent_reconciles: u16,
    pub metrics_addr: std::net::SocketAddr,
    /// The job-logs API's address; `None` when turned off.
    pub logs_addr: Option<std::net::SocketAddr>,
    pub(crate) leader: Option<LeaderSettings>,
    pub warnings: Vec<String>,
}

#[derive(Clone, Debug)]
pub(crate) struct LeaderSettings {
    pub lease_name: String,
    pub namespace: String,
    pub identity: String,
    pub duration_secs: u64,
}

#[derive(Clone, Debug)]
pub struct AapSettings {
    pub(crate) url: String,
    pub(crate) token: TokenSource,
    pub(crate) ca_file: Option<PathBuf>,
    pub(crate) insecure: bool,
    pub(crate) organization: Option<String>,
    /// How long a template id found by name is used before it is looked up again.
    pub(crate) template_refresh: Duration,
    pub(crate) provision_template: String,
    pub(crate) deprovision_template: String,
    /// Template of a job's UI page (`{id}`, `{type}`).
    pub(crate) ui_job_url: String,
    pub(crate) max_concurrent_requests: usize,
}

impl AapSettings {
    /// How the AAP client reaches AAP; `request_timeout` bounds every request.
    pub fn client_config(&self, request_timeout: Duration, in_flight: Gauge) -> AapConfig {
        let mut config = AapConfig::new(self.url.clone(), self.token.clone());
        config.ca_bundle = self.ca_file.clone();
        config.insecure_skip_tls_verify = self.insecure;
        config.organization = self.organization.clone();
        config.template_refresh = self.template_refresh;
        config.request_timeout = request_timeout;
        config.max_concurrent_requests = self.max_concurrent_requests;
        config.in_flight = in_flight;
        config.connect_timeout = config.connect_timeout.min(request_timeout);
        config
    }
}

/// `Debug` shows no secret: both are [`Secret`]s.
#[derive(Clone, Debug)]
pub struct EdaSettings {
    pub provision_url: String,
    pub deprovision_url: String,
    pub token: Option<Secret>,
    pub hmac_secret: Option<Secret>,
    pub hmac: HmacStyle,
}

/// How the HMAC signature is written; the defaults are GitHub's, which the rulebook
/// webhook source and EDA's GitHub credential type expect.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HmacStyle {
    pub header: reqwest::header::HeaderName,
    pub prefix: String,
    pub base64: bool,
}

impl Default for HmacStyle {
    fn default() -> Self {
        Self {
            header: reqwest::header::HeaderName::from_static("x-hub-signature-256"),
            prefix: "sha256=".into(),
            base64: false,
        }
    }
}

/// `value`, or the error that it is required `why`.
fn required(value: &Option<String>, long: &str, why: &str) -> Result<String, ConfigError> {
    value
        .clone()
        .filter(|v| !v.trim().is_empty())
        .ok_or_else(|| ConfigError(format!("{} is required {why}", name(long))))
}

/// An http(s) URL, kept as given: an EDA event stream URL must keep its trailing slash
/// (`.../post/`). The value is never repeated: a webhook URL may carry a token or user info.
fn url(long: &str, raw: String) -> Result<String, ConfigError> {
    match reqwest::Url::parse(&raw) {
        Ok(u) if matches!(u.scheme(), "http" | "https") => Ok(raw),
        Ok(u) => Err(ConfigError(format!(
            "{} has scheme {:?}: use an http:// or https:// URL",
            name(long),
            u.scheme()
        ))),
        Err(e) => Err(ConfigError(format!(
            "{} is not a URL ({e}): use e.g. https://host/path",
            name(long)
        ))),
    }
}

fn is_set(v: &Option<String>) -> bool {
    v.as_deref().is_some_and(|v| !v.trim().is_empty())
}

fn secret(v: &Option<String>) -> Option<Secret> {
    v.clone().filter(|t| !t.is_empty()).map(Secret::from)
}

impl Args {
    /// The provider, inferred from what is configured when the variable is unset.
    fn provider(&self) -> Result<ProviderKind, ConfigError> {
        if let Some(p) = self.provider {
            return Ok(match p {
                ProviderArg::Aap => ProviderKind::Aap,
                ProviderArg::Eda => ProviderKind::Eda,
            });
        }
        let aap = is_set(&self.aap_url);
        let eda = is_set(&self.provision_webhook) || is_set(&self.deprovision_webhook);
        let (provider, aap_url, webhook) =
            (name("provider"), name("aap-url"), name("provision-webhook"));
        match (aap, eda) {
            (false, true) => Ok(ProviderKind::Eda),
            (true, false) => Ok(ProviderKind::Aap),
            (true, true) => Err(ConfigError(format!(
                "{provider} is unset and both {aap_url} and the EDA webhooks are set: set it to `aap` or `eda`"
            ))),
            (false, false) => Err(ConfigError(format!(
                "{provider} is unset and neither {aap_url} nor {webhook} is set: configure AAP or EDA"
            ))),
        }
    }

    /// The upstream operator falls back to 30s on an unusable value; so does cloudkit, with
    /// a warning, so a setting it accepted keeps working.
    fn poll_interval(&self, warnings: &mut Vec<String>) -> Duration {
        parse_duration(&self.poll_interval).unwrap_or_else(|_| {
            warnings.push(format!(
                "{} = {:?} is not a positive duration (e.g. 30s, 1m30s); using 30s",
                name("poll-interval"),
                self.poll_interval
            ));
            Duration::from_secs(30)
        })
    }

    fn aap(&self, provider: ProviderKind) -> Result<Option<AapSettings>, ConfigError> {
        if provider != ProviderKind::Aap && self.aap_url.is_none() {
            return Ok(None);
        }
        let why = "when the provider is aap";
        let url = url("aap-url", required(&self.aap_url, "aap-url", why)?)?;
        let token = match (&self.aap_token, &self.aap_token_file) {
            (_, Some(file)) => TokenSource::File(file.clone()),
            (Some(t), None) if !t.trim().is_empty() => TokenSource::Static(t.trim().into()),
            _ => {
                return Err(ConfigError(format!(
                    "{} or {} is required {why}",
                    name("aap-token-file"),
                    name("aap-token")
                )));
            }
        };
        let ui_job_url = match self.aap_ui_job_url.as_deref().map(str::trim) {
            Some(t) if !t.is_empty() && !t.contains("{id}") => {
                return Err(ConfigError(format!(
                    "{} = {t:?} lacks {{id}}: give a URL such as https://aap.example/execution/jobs/playbook/{{id}}/output, or unset it",
                    name("aap-ui-job-url")
                )));
            }
            Some(t) if !t.is_empty() => t.to_owned(),
            _ => crate::aap::ui_url::default_template(&url),
        };
        Ok(Some(AapSettings {
            ui_job_url,
            max_concurrent_requests: usize::from(self.aap_max_concurrent_requests),
            url,
            token,
            ca_file: self.aap_ca_file.clone(),
            insecure: self.aap_insecure_skip_tls_verify,
            organization: self.aap_organization.clone(),
            template_refresh: self.aap_template_refresh,
            provision_template: required(
                &self.aap_provision_template,
                "aap-provision-template",
                why,
            )?,
            deprovision_template: required(
                &self.aap_deprovision_template,
                "aap-deprovision-template",
                why,
            )?,
        }))
    }

    fn eda(&self, provider: ProviderKind) -> Result<Option<EdaSettings>, ConfigError> {
        if provider != ProviderKind::Eda && self.provision_webhook.is_none() {
            return Ok(None);
        }
        let why = "when the provider is eda";
        Ok(Some(EdaSettings {
            provision_url: url(
                "provision-webhook",
                required(&self.provision_webhook, "provision-webhook", why)?,
            )?,
            deprovision_url: url(
                "deprovision-webhook",
                required(&self.deprovision_webhook, "deprovision-webhook", why)?,
            )?,
            token: secret(&self.eda_token),
            hmac_secret: secret(&self.eda_hmac_secret),
            hmac: HmacStyle {
                header: self.eda_hmac_header.clone(),
                prefix: self.eda_hmac_prefix.clone(),
                base64: self.eda_hmac_format == HmacFormat::Base64,
            },
        }))
    }

    fn leader(&self) -> Result<Option<LeaderSettings>, ConfigError> {
        if !self.leader_election {
            return Ok(None);
        }
        if self.lease_duration.as_secs() < 2 {
            return Err(ConfigError(format!(
                "{} must be at least 2s",
                name("lease-duration")
            )));
        }
        let namespace = [&self.lease_namespace, &self.pod_namespace, &self.namespace]
            .into_iter()
            .flatten()
            .find(|n| !n.is_empty())
            .cloned()
            .unwrap_or_else(|| "default".into());
        // A restarted container keeps its pod name, and so its lease.
        let identity = self
            .pod_name
            .clone()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| {
                let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
                format!("{}-{}", host.trim(), std::process::id())
            });
        Ok(Some(LeaderSettings {
            lease_name: self.lease_name.clone(),
            namespace,
            identity,
            duration_secs: self.lease_duration.as_secs(),
        }))
    }

    /// Checks every rule that involves more than one value; the first problem is returned
    /// as one line naming the fix.
    pub fn settings(&self) -> Result<Settings, ConfigError> {
        let mut warnings = Vec::new();
        let provider = self.provider()?;
        let history = parse_max_job_history(self.max_job_history.as_deref());
        warnings.extend(history.warning);
        if self.retry_max < self.retry_base {
            return Err(ConfigError(format!(
                "{} ({:?}) is shorter than {} ({:?}): raise it",
                name("retry-max"),
                self.retry_max,
                name("retry-base"),
                self.retry_base
            )));
        }
        let policy = Policy {
            provider,
            max_history: history.limit,
            poll_interval: self.poll_interval(&mut warnings),
            retry_base: self.retry_base,
            retry_max: self.retry_max,
            cancel_deadline: self.cancel_deadline,
            restart_deadline: self.restart_deadline,
            deprovision_attempts: self.deprovision_attempts,
        };
        Ok(Settings {
            leader: self.leader()?,
            policy,
            aap: self.aap(provider)?,
            eda: self.eda(provider)?,
            eda_deadline: self.eda_deadline,
            namespace: self.namespace.clone().filter(|n| !n.is_empty()),
            http_timeout: self.http_timeout,
            max_concurrent_reconciles: self.max_concurrent_reconciles,
            metrics_addr: self.metrics_addr,
            logs_addr: match self.logs_addr {
                LogsAddr::Off => None,
                LogsAddr::On(addr) => Some(addr),
            },
            warnings,
        })
    }
}
