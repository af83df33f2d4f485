//! Configuration: the upstream `CLOUDKIT_*` environment variables, each also a flag.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use cloudkit_shared::plan::{Policy, ProviderKind};
use cloudkit_shared::settings::parse_max_job_history;
use cloudkit_shared::signals::parse_duration;

/// cloudkit-runner: provisions ComputeInstances through AAP or EDA and tracks their jobs.
#[derive(Parser, Debug, Clone)]
#[command(name = "cloudkit-runner", version, about)]
pub struct Args {
    /// Which provider new jobs use: `aap` (controller REST API) or `eda` (webhook). Unset:
    /// `eda` when only the webhooks are set, `aap` when only CLOUDKIT_AAP_URL is.
    #[arg(long, env = "CLOUDKIT_PROVISIONING_PROVIDER")]
    pub provider: Option<String>,

    /// AAP controller API prefix, e.g. https://aap.example.com/api/controller (the runner adds /v2/).
    #[arg(long, env = "CLOUDKIT_AAP_URL")]
    pub aap_url: Option<String>,

    /// AAP UI page of a job, with `{id}` (and optionally `{type}`: playbook or workflow);
    /// unset: derived from CLOUDKIT_AAP_URL (AAP 2.5+ gateway or AWX).
    #[arg(long, env = "CLOUDKIT_AAP_UI_JOB_URL")]
    pub aap_ui_job_url: Option<String>,

    /// AAP token (prefer --aap-token-file with a mounted Secret).
    #[arg(long, env = "CLOUDKIT_AAP_TOKEN", hide_env_values = true)]
    pub aap_token: Option<String>,

    /// File holding the AAP token; re-read when it changes.
    #[arg(long, env = "CLOUDKIT_AAP_TOKEN_FILE")]
    pub aap_token_file: Option<PathBuf>,

    /// PEM CA bundle to trust for AAP.
    #[arg(long, env = "CLOUDKIT_AAP_CA_FILE")]
    pub aap_ca_file: Option<PathBuf>,

    /// Skip TLS verification for AAP (never in production).
    #[arg(long, env = "CLOUDKIT_AAP_INSECURE_SKIP_TLS_VERIFY")]
    pub aap_insecure_skip_tls_verify: bool,

    /// AAP organization that owns the templates (names are unique only within one).
    #[arg(long, env = "CLOUDKIT_AAP_ORGANIZATION")]
    pub aap_organization: Option<String>,

    /// Job or workflow template that provisions an instance.
    #[arg(long, env = "CLOUDKIT_AAP_PROVISION_TEMPLATE")]
    pub aap_provision_template: Option<String>,

    /// Job or workflow template that deprovisions an instance.
    #[arg(long, env = "CLOUDKIT_AAP_DEPROVISION_TEMPLATE")]
    pub aap_deprovision_template: Option<String>,

    /// How often in-flight AAP jobs are polled (Go duration syntax: 30s, 1m30s, 500ms;
    /// invalid → 30s, as upstream).
    #[arg(long, env = "CLOUDKIT_AAP_STATUS_POLL_INTERVAL", default_value = "30s")]
    pub poll_interval: String,

    /// EDA webhook (or event stream) URL for provisioning.
    #[arg(long, env = "CLOUDKIT_COMPUTE_INSTANCE_PROVISION_WEBHOOK")]
    pub provision_webhook: Option<String>,

    /// EDA webhook (or event stream) URL for deprovisioning.
    #[arg(long, env = "CLOUDKIT_COMPUTE_INSTANCE_DEPROVISION_WEBHOOK")]
    pub deprovision_webhook: Option<String>,

    /// Bearer token for the EDA webhook.
    #[arg(long, env = "CLOUDKIT_EDA_TOKEN", hide_env_values = true)]
    pub eda_token: Option<String>,

    /// HMAC-SHA256 secret for the EDA webhook (`X-Hub-Signature-256`).
    #[arg(long, env = "CLOUDKIT_EDA_HMAC_SECRET", hide_env_values = true)]
    pub eda_hmac_secret: Option<String>,

    /// How the HMAC is written: `hex` or `base64` (the webhook source's `hmac_format`, an
    /// event stream credential's signature encoding).
    #[arg(long, env = "CLOUDKIT_EDA_HMAC_FORMAT", default_value = "hex")]
    pub eda_hmac_format: String,

    /// Text before the HMAC in the header (the credential's signature prefix).
    #[arg(long, env = "CLOUDKIT_EDA_HMAC_PREFIX", default_value = "sha256=")]
    pub eda_hmac_prefix: String,

    /// The header that carries the HMAC.
    #[arg(
        long,
        env = "CLOUDKIT_EDA_HMAC_HEADER",
        default_value = "X-Hub-Signature-256"
    )]
    pub eda_hmac_header: String,

    /// How long an EDA job may show no sign of progress before it fails.
    #[arg(long, env = "CLOUDKIT_EDA_DEADLINE", default_value = "30m")]
    pub eda_deadline: String,

    /// Job history kept per instance (invalid → 10).
    #[arg(long, env = "CLOUDKIT_MAX_JOB_HISTORY")]
    pub max_job_history: Option<String>,

    /// Only watch this namespace (default: all namespaces).
    #[arg(long, env = "CLOUDKIT_COMPUTE_INSTANCE_NAMESPACE")]
    pub namespace: Option<String>,

    /// First retry delay after a failed job; doubles up to --retry-max.
    #[arg(long, env = "CLOUDKIT_RETRY_BASE", default_value = "10s")]
    pub retry_base: String,

    /// Longest retry delay.
    #[arg(long, env = "CLOUDKIT_RETRY_MAX", default_value = "10m")]
    pub retry_max: String,

    /// How long a cancel may stay unconfirmed before it is reported and sent again.
    #[arg(long, env = "CLOUDKIT_CANCEL_DEADLINE", default_value = "2m")]
    pub cancel_deadline: String,

    /// How long a restart may take until a new VMI runs.
    #[arg(long, env = "CLOUDKIT_RESTART_DEADLINE", default_value = "5m")]
    pub restart_deadline: String,

    /// Failed deprovisions after which policy Proceed lets deletion finish.
    #[arg(long, env = "CLOUDKIT_DEPROVISION_ATTEMPTS", default_value_t = 3)]
    pub deprovision_attempts: u32,

    /// AAP / EDA request timeout.
    #[arg(long, env = "CLOUDKIT_HTTP_TIMEOUT", default_value = "30s")]
    pub http_timeout: String,

    /// Instances reconciled at once; the rest wait their turn (bounds memory and the
    /// request burst at start-up).
    #[arg(long, env = "CLOUDKIT_MAX_CONCURRENT_RECONCILES", default_value_t = 64,
          value_parser = clap::value_parser!(u16).range(1..))]
    pub max_concurrent_reconciles: u16,

    /// Address of the health and metrics server.
    #[arg(long, env = "CLOUDKIT_METRICS_ADDR", default_value = "0.0.0.0:8080")]
    pub metrics_addr: String,

    /// TLS address of the job-logs API that kube-apiserver proxies to (an aggregated API);
    /// `off` turns it off.
    #[arg(long, env = "CLOUDKIT_LOGS_ADDR", default_value = "0.0.0.0:8443")]
    pub logs_addr: String,

    /// Elect a leader with a Lease so that only one replica acts.
    #[arg(long, env = "CLOUDKIT_LEADER_ELECTION", default_value_t = true, action = clap::ArgAction::Set)]
    pub leader_election: bool,

    /// Name of the Lease used for leader election.
    #[arg(long, env = "CLOUDKIT_LEASE_NAME", default_value = "cloudkit-runner")]
    pub lease_name: String,

    /// Namespace of the Lease (default: POD_NAMESPACE, else the watched namespace, else default).
    #[arg(long, env = "CLOUDKIT_LEASE_NAMESPACE")]
    pub lease_namespace: Option<String>,

    /// How long a leader's lease lasts without renewal (whole seconds, e.g. 15s).
    #[arg(long, env = "CLOUDKIT_LEASE_DURATION", default_value = "15s")]
    pub lease_duration: String,

    /// Log filter (tracing env-filter syntax).
    #[arg(long, env = "CLOUDKIT_LOG", default_value = "info")]
    pub log: String,
}

/// Parses flags and environment; a bad value is one line that names its variable.
/// `--help` and `--version` print and exit as usual.
pub fn parse_args() -> Result<Args, String> {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    use clap::{CommandFactory, Parser};
    let e = match Args::try_parse() {
        Ok(args) => return Ok(args),
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => {
            e.exit()
        }
        Err(e) => e,
    };
    let text = |kind| match e.get(kind) {
        Some(ContextValue::String(s)) => Some(s.clone()),
        _ => None,
    };
    let first_line = e
        .to_string()
        .lines()
        .next()
        .unwrap_or_default()
        .trim_start_matches("error: ")
        .to_string();
    // clap names the flag as `--name <NAME>`; find its variable.
    let flag = text(ContextKind::InvalidArg).unwrap_or_default();
    let long = flag
        .trim_start_matches("--")
        .split([' ', '='])
        .next()
        .unwrap_or_default()
        .to_string();
    let env = Args::command()
        .get_arguments()
        .find(|a| a.get_long() == Some(long.as_str()))
        .and_then(|a| a.get_env().map(|v| v.to_string_lossy().into_owned()));
    Err(match env {
        Some(var) => format!("{var} (--{long}): {first_line}"),
        None => format!("{first_line} (see cloudkit-runner --help)"),
    })
}

/// Validated settings.
#[derive(Clone, Debug)]
pub struct Settings {
    pub policy: Policy,
    pub aap: Option<AapSettings>,
    pub eda: Option<EdaSettings>,
    pub eda_deadline: Duration,
    pub namespace: Option<String>,
    pub http_timeout: Duration,
    pub max_concurrent_reconciles: u16,
    pub metrics_addr: std::net::SocketAddr,
    /// The job-logs API's address; `None` when turned off.
    pub logs_addr: Option<std::net::SocketAddr>,
    pub leader: Option<LeaderSettings>,
    pub warnings: Vec<String>,
}

#[derive(Clone, Debug)]
pub struct LeaderSettings {
    pub lease_name: String,
    pub namespace: String,
    pub identity: String,
    pub duration_secs: u64,
}

#[derive(Clone, Debug)]
pub struct AapSettings {
    pub url: String,
    pub token: AapToken,
    pub ca_file: Option<PathBuf>,
    pub insecure: bool,
    pub organization: Option<String>,
    pub provision_template: String,
    pub deprovision_template: String,
    /// Template of a job's UI page (`{id}`, `{type}`).
    pub ui_job_url: String,
}

/// Where the AAP token comes from; `Debug` never shows it.
#[derive(Clone)]
pub enum AapToken {
    Value(String),
    File(PathBuf),
}

impl std::fmt::Debug for AapToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Value(_) => f.write_str("Value(***)"),
            Self::File(p) => write!(f, "File({})", p.display()),
        }
    }
}

#[derive(Clone)]
pub struct EdaSettings {
    pub provision_url: String,
    pub deprovision_url: String,
    pub token: Option<String>,
    pub hmac_secret: Option<String>,
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

impl std::fmt::Debug for EdaSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EdaSettings")
            .field("provision_url", &self.provision_url)
            .field("deprovision_url", &self.deprovision_url)
            .field("token", &self.token.as_ref().map(|_| "***"))
            .field("hmac_secret", &self.hmac_secret.as_ref().map(|_| "***"))
            .field("hmac", &self.hmac)
            .finish()
    }
}

/// One bad setting, named with its variable and flag.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct ConfigError(pub String);

fn duration(name: &str, flag: &str, raw: &str) -> Result<Duration, ConfigError> {
    parse_duration(raw).map_err(|_| {
        ConfigError(format!(
            "{name} (--{flag}) = {raw:?} is not a duration: use e.g. 30s, 5m or 1h"
        ))
    })
}

fn required(
    value: &Option<String>,
    name: &str,
    flag: &str,
    why: &str,
) -> Result<String, ConfigError> {
    value
        .clone()
        .filter(|v| !v.trim().is_empty())
        .ok_or_else(|| ConfigError(format!("{name} (--{flag}) is required {why}")))
}

fn url(name: &str, flag: &str, raw: String) -> Result<String, ConfigError> {
    match reqwest::Url::parse(&raw) {
        // Kept as given: an EDA event stream URL must keep its trailing slash (`.../post/`).
        Ok(u) if matches!(u.scheme(), "http" | "https") => Ok(raw),
        // The value is not repeated: a webhook URL may carry a token or user info.
        Ok(u) => Err(ConfigError(format!(
            "{name} (--{flag}) has scheme {:?}: use an http:// or https:// URL",
            u.scheme()
        ))),
        Err(e) => Err(ConfigError(format!(
            "{name} (--{flag}) is not a URL ({e}): use e.g. https://host/path"
        ))),
    }
}

impl Args {
    /// The provider, inferred from what is configured when the variable is unset.
    fn provider(&self) -> Result<ProviderKind, ConfigError> {
        let set = |v: &Option<String>| v.as_deref().is_some_and(|v| !v.trim().is_empty());
        let Some(raw) = self.provider.as_deref().filter(|p| !p.trim().is_empty()) else {
            let aap = set(&self.aap_url);
            let eda = set(&self.provision_webhook) || set(&self.deprovision_webhook);
            return match (aap, eda) {
                (false, true) => Ok(ProviderKind::Eda),
                (true, false) => Ok(ProviderKind::Aap),
                (true, true) => Err(ConfigError(
                    "CLOUDKIT_PROVISIONING_PROVIDER (--provider) is unset and both CLOUDKIT_AAP_URL and the EDA webhooks are set: set it to `aap` or `eda`".into(),
                )),
                (false, false) => Err(ConfigError(
                    "CLOUDKIT_PROVISIONING_PROVIDER (--provider) is unset and neither CLOUDKIT_AAP_URL nor CLOUDKIT_COMPUTE_INSTANCE_PROVISION_WEBHOOK is set: configure AAP or EDA".into(),
                )),
            };
        };
        match raw.trim().to_ascii_lowercase().as_str() {
            "aap" => Ok(ProviderKind::Aap),
            "eda" => Ok(ProviderKind::Eda),
            other => Err(ConfigError(format!(
                "CLOUDKIT_PROVISIONING_PROVIDER (--provider) = {other:?}: use `aap` or `eda`"
            ))),
        }
    }

    /// The upstream operator falls back to 30s on an unusable value; so does cloudkit, with
    /// a warning, so a setting it accepted keeps working.
    fn poll_interval(&self, warnings: &mut Vec<String>) -> Duration {
        parse_duration(&self.poll_interval).unwrap_or_else(|_| {
            warnings.push(format!(
                "CLOUDKIT_AAP_STATUS_POLL_INTERVAL={:?} is not a positive duration (e.g. 30s, 1m30s); using 30s",
                self.poll_interval
            ));
            Duration::from_secs(30)
        })
    }

    fn hmac_style(&self) -> Result<HmacStyle, ConfigError> {
        let base64 = match self.eda_hmac_format.trim().to_ascii_lowercase().as_str() {
            "hex" => false,
            "base64" => true,
            other => {
                return Err(ConfigError(format!(
                    "CLOUDKIT_EDA_HMAC_FORMAT (--eda-hmac-format) = {other:?}: use `hex` or `base64`"
                )));
            }
        };
        let header = reqwest::header::HeaderName::try_from(self.eda_hmac_header.trim())
            .map_err(|_| {
                ConfigError(format!(
                    "CLOUDKIT_EDA_HMAC_HEADER (--eda-hmac-header) = {:?} is not an HTTP header name: use e.g. X-Hub-Signature-256",
                    self.eda_hmac_header
                ))
            })?;
        Ok(HmacStyle {
            header,
            prefix: self.eda_hmac_prefix.clone(),
            base64,
        })
    }

    /// Checks every value; the first problem is returned as one line naming the fix.
    pub fn settings(&self) -> Result<Settings, ConfigError> {
        let mut warnings = Vec::new();
        let provider = self.provider()?;
        let history = parse_max_job_history(self.max_job_history.as_deref());
        warnings.extend(history.warning);

        let aap_wanted = provider == ProviderKind::Aap || self.aap_url.is_some();
        let aap = if aap_wanted {
            let why = "when the provider is aap";
            let url = url(
                "CLOUDKIT_AAP_URL",
                "aap-url",
                required(&self.aap_url, "CLOUDKIT_AAP_URL", "aap-url", why)?,
            )?;
            let token = match (&self.aap_token, &self.aap_token_file) {
                (_, Some(file)) => AapToken::File(file.clone()),
                (Some(t), None) if !t.trim().is_empty() => AapToken::Value(t.trim().to_string()),
                _ => {
                    return Err(ConfigError(
                        "CLOUDKIT_AAP_TOKEN_FILE (--aap-token-file) or CLOUDKIT_AAP_TOKEN is required when the provider is aap".into(),
                    ));
                }
            };
            let ui_job_url = match self.aap_ui_job_url.as_deref().map(str::trim) {
                Some(t) if !t.is_empty() && !t.contains("{id}") => {
                    return Err(ConfigError(format!(
                        "CLOUDKIT_AAP_UI_JOB_URL {t:?} lacks {{id}}: give a URL such as https://aap.example/execution/jobs/playbook/{{id}}/output, or unset it"
                    )));
                }
                Some(t) if !t.is_empty() => t.to_owned(),
                _ => crate::aap::ui_url::default_template(&url),
            };
            Some(AapSettings {
                ui_job_url,
                url,
                token,
                ca_file: self.aap_ca_file.clone(),
                insecure: self.aap_insecure_skip_tls_verify,
                organization: self.aap_organization.clone(),
                provision_template: required(
                    &self.aap_provision_template,
                    "CLOUDKIT_AAP_PROVISION_TEMPLATE",
                    "aap-provision-template",
                    why,
                )?,
                deprovision_template: required(
                    &self.aap_deprovision_template,
                    "CLOUDKIT_AAP_DEPROVISION_TEMPLATE",
                    "aap-deprovision-template",
                    why,
                )?,
            })
        } else {
            None
        };

        let eda_wanted = provider == ProviderKind::Eda || self.provision_webhook.is_some();
        let eda = if eda_wanted {
            let why = "when the provider is eda";
            Some(EdaSettings {
                provision_url: url(
                    "CLOUDKIT_COMPUTE_INSTANCE_PROVISION_WEBHOOK",
                    "provision-webhook",
                    required(
                        &self.provision_webhook,
                        "CLOUDKIT_COMPUTE_INSTANCE_PROVISION_WEBHOOK",
                        "provision-webhook",
                        why,
                    )?,
                )?,
                deprovision_url: url(
                    "CLOUDKIT_COMPUTE_INSTANCE_DEPROVISION_WEBHOOK",
                    "deprovision-webhook",
                    required(
                        &self.deprovision_webhook,
                        "CLOUDKIT_COMPUTE_INSTANCE_DEPROVISION_WEBHOOK",
                        "deprovision-webhook",
                        why,
                    )?,
                )?,
                token: self.eda_token.clone().filter(|t| !t.is_empty()),
                hmac_secret: self.eda_hmac_secret.clone().filter(|t| !t.is_empty()),
                hmac: self.hmac_style()?,
            })
        } else {
            None
        };

        let retry_base = duration("CLOUDKIT_RETRY_BASE", "retry-base", &self.retry_base)?;
        let retry_max = duration("CLOUDKIT_RETRY_MAX", "retry-max", &self.retry_max)?;
        if retry_max < retry_base {
            return Err(ConfigError(format!(
                "CLOUDKIT_RETRY_MAX ({}) is shorter than CLOUDKIT_RETRY_BASE ({}): raise it",
                self.retry_max, self.retry_base
            )));
        }
        let metrics_addr = self.metrics_addr.parse().map_err(|_| {
            ConfigError(format!(
                "CLOUDKIT_METRICS_ADDR (--metrics-addr) = {:?} is not host:port, e.g. 0.0.0.0:8080",
                self.metrics_addr
            ))
        })?;
        let policy = Policy {
            provider,
            max_history: history.limit,
            poll_interval: self.poll_interval(&mut warnings),
            retry_base,
            retry_max,
            cancel_deadline: duration(
                "CLOUDKIT_CANCEL_DEADLINE",
                "cancel-deadline",
                &self.cancel_deadline,
            )?,
            restart_deadline: duration(
                "CLOUDKIT_RESTART_DEADLINE",
                "restart-deadline",
                &self.restart_deadline,
            )?,
            deprovision_attempts: self.deprovision_attempts.max(1),
        };
        let leader = if self.leader_election {
            let duration = duration(
                "CLOUDKIT_LEASE_DURATION",
                "lease-duration",
                &self.lease_duration,
            )?;
            if duration.as_secs() < 2 {
                return Err(ConfigError(
                    "CLOUDKIT_LEASE_DURATION (--lease-duration) must be at least 2s".into(),
                ));
            }
            let namespace = self
                .lease_namespace
                .clone()
                .or_else(|| std::env::var("POD_NAMESPACE").ok())
                .or_else(|| self.namespace.clone())
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| "default".into());
            // A restarted container keeps its pod name, and so its lease.
            let identity = std::env::var("POD_NAME")
                .ok()
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| {
                    let host =
                        std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
                    format!("{}-{}", host.trim(), std::process::id())
                });
            Some(LeaderSettings {
                lease_name: self.lease_name.clone(),
                namespace,
                identity,
                duration_secs: duration.as_secs(),
            })
        } else {
            None
        };
        let logs_addr = match self.logs_addr.trim() {
            "off" | "" => None,
            addr => Some(addr.parse().map_err(|_| {
                ConfigError(format!(
                    "CLOUDKIT_LOGS_ADDR (--logs-addr) = {addr:?} is not host:port (e.g. 0.0.0.0:8443) or off"
                ))
            })?),
        };
        Ok(Settings {
            leader,
            logs_addr,
            policy,
            aap,
            eda,
            eda_deadline: duration("CLOUDKIT_EDA_DEADLINE", "eda-deadline", &self.eda_deadline)?,
            namespace: self.namespace.clone().filter(|n| !n.is_empty()),
            http_timeout: duration("CLOUDKIT_HTTP_TIMEOUT", "http-timeout", &self.http_timeout)?,
            max_concurrent_reconciles: self.max_concurrent_reconciles,
            metrics_addr,
            warnings,
        })
    }
}
