//! The low-level arguments: the upstream `CLOUDKIT_*` environment variables, each also a
//! flag, parsed into typed values by clap. Cross-field rules live in `settings.rs`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use cloudkit_shared::signals::parse_duration;
use reqwest::header::HeaderName;

/// cloudkit-runner: provisions ComputeInstances through AAP or EDA and tracks their jobs.
#[derive(Parser, Debug, Clone)]
#[command(name = "cloudkit-runner", version, about)]
pub struct Args {
    /// Which provider new jobs use. Unset: `eda` when only the webhooks are set, `aap` when
    /// only CLOUDKIT_AAP_URL is.
    #[arg(long, env = "CLOUDKIT_PROVISIONING_PROVIDER", ignore_case = true)]
    pub(crate) provider: Option<ProviderArg>,

    /// AAP controller API prefix, e.g. https://aap.example.com/api/controller (the runner adds /v2/).
    #[arg(long, env = "CLOUDKIT_AAP_URL")]
    pub(crate) aap_url: Option<String>,

    /// AAP UI page of a job, with `{id}` (and optionally `{type}`: playbook or workflow);
    /// unset: derived from CLOUDKIT_AAP_URL (AAP 2.5+ gateway or AWX).
    #[arg(long, env = "CLOUDKIT_AAP_UI_JOB_URL")]
    pub(crate) aap_ui_job_url: Option<String>,

    /// AAP token (prefer --aap-token-file with a mounted Secret).
    #[arg(long, env = "CLOUDKIT_AAP_TOKEN", hide_env_values = true)]
    pub(crate) aap_token: Option<String>,

    /// File holding the AAP token; re-read when it changes.
    #[arg(long, env = "CLOUDKIT_AAP_TOKEN_FILE")]
    pub(crate) aap_token_file: Option<PathBuf>,

    /// PEM CA bundle to trust for AAP.
    #[arg(long, env = "CLOUDKIT_AAP_CA_FILE")]
    pub(crate) aap_ca_file: Option<PathBuf>,

    /// Skip TLS verification for AAP (never in production).
    #[arg(long, env = "CLOUDKIT_AAP_INSECURE_SKIP_TLS_VERIFY")]
    pub(crate) aap_insecure_skip_tls_verify: bool,

    /// AAP organization that owns the templates (names are unique only within one).
    #[arg(long, env = "CLOUDKIT_AAP_ORGANIZATION")]
    pub(crate) aap_organization: Option<String>,

    /// How long a template's id, found by name, is used before it is looked up again
    /// (a 404 on launch looks it up at once).
    #[arg(long, env = "CLOUDKIT_AAP_TEMPLATE_REFRESH", default_value = "5m", value_parser = duration)]
    pub(crate) aap_template_refresh: Duration,

    /// Job or workflow template that provisions an instance.
    #[arg(long, env = "CLOUDKIT_AAP_PROVISION_TEMPLATE")]
    pub(crate) aap_provision_template: Option<String>,

    /// Job or workflow template that deprovisions an instance.
    #[arg(long, env = "CLOUDKIT_AAP_DEPROVISION_TEMPLATE")]
    pub(crate) aap_deprovision_template: Option<String>,

    /// How often in-flight AAP jobs are polled (Go duration syntax: 30s, 1m30s, 500ms).
    /// Kept as text: an unusable value means 30s with a warning, as upstream.
    #[arg(long, env = "CLOUDKIT_AAP_STATUS_POLL_INTERVAL", default_value = "30s")]
    pub(crate) poll_interval: String,

    /// EDA webhook (or event stream) URL for provisioning.
    #[arg(long, env = "CLOUDKIT_COMPUTE_INSTANCE_PROVISION_WEBHOOK")]
    pub(crate) provision_webhook: Option<String>,

    /// EDA webhook (or event stream) URL for deprovisioning.
    #[arg(long, env = "CLOUDKIT_COMPUTE_INSTANCE_DEPROVISION_WEBHOOK")]
    pub(crate) deprovision_webhook: Option<String>,

    /// Bearer token for the EDA webhook.
    #[arg(long, env = "CLOUDKIT_EDA_TOKEN", hide_env_values = true)]
    pub(crate) eda_token: Option<String>,

    /// HMAC-SHA256 secret for the EDA webhook (`X-Hub-Signature-256`).
    #[arg(long, env = "CLOUDKIT_EDA_HMAC_SECRET", hide_env_values = true)]
    pub(crate) eda_hmac_secret: Option<String>,

    /// How the HMAC is written (the webhook source's `hmac_format`, an event stream
    /// credential's signature encoding).
    #[arg(
        long,
        env = "CLOUDKIT_EDA_HMAC_FORMAT",
        default_value = "hex",
        ignore_case = true
    )]
    pub(crate) eda_hmac_format: HmacFormat,

    /// Text before the HMAC in the header (the credential's signature prefix).
    #[arg(long, env = "CLOUDKIT_EDA_HMAC_PREFIX", default_value = "sha256=")]
    pub(crate) eda_hmac_prefix: String,

    /// The header that carries the HMAC.
    #[arg(long, env = "CLOUDKIT_EDA_HMAC_HEADER", default_value = "X-Hub-Signature-256",
          value_parser = header_name)]
    pub(crate) eda_hmac_header: HeaderName,

    /// How long an EDA job may show no sign of progress before it fails.
    #[arg(long, env = "CLOUDKIT_EDA_DEADLINE", default_value = "30m", value_parser = duration)]
    pub(crate) eda_deadline: Duration,

    /// Job history kept per instance (invalid → 10).
    #[arg(long, env = "CLOUDKIT_MAX_JOB_HISTORY")]
    pub(crate) max_job_history: Option<String>,

    /// Only watch this namespace (default: all namespaces).
    #[arg(long, env = "CLOUDKIT_COMPUTE_INSTANCE_NAMESPACE")]
    pub(crate) namespace: Option<String>,

    /// First retry delay after a failed job; doubles up to --retry-max.
    #[arg(long, env = "CLOUDKIT_RETRY_BASE", default_value = "10s", value_parser = duration)]
    pub(crate) retry_base: Duration,

    /// Longest retry delay.
    #[arg(long, env = "CLOUDKIT_RETRY_MAX", default_value = "10m", value_parser = duration)]
    pub(crate) retry_max: Duration,

    /// How long a cancel may stay unconfirmed before it is reported and sent again.
    #[arg(long, env = "CLOUDKIT_CANCEL_DEADLINE", default_value = "2m", value_parser = duration)]
    pub(crate) cancel_deadline: Duration,

    /// How long a restart may take until a new VMI runs.
    #[arg(long, env = "CLOUDKIT_RESTART_DEADLINE", default_value = "5m", value_parser = duration)]
    pub(crate) restart_deadline: Duration,

    /// Failed deprovisions after which policy Proceed lets deletion finish.
    #[arg(long, env = "CLOUDKIT_DEPROVISION_ATTEMPTS", default_value_t = 3,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) deprovision_attempts: u32,

    /// AAP / EDA request timeout.
    #[arg(long, env = "CLOUDKIT_HTTP_TIMEOUT", default_value = "30s", value_parser = duration)]
    pub(crate) http_timeout: Duration,

    /// Instances reconciled at once; the rest wait their turn (bounds memory and the
    /// request burst at start-up).
    #[arg(long, env = "CLOUDKIT_MAX_CONCURRENT_RECONCILES", default_value_t = 64,
          value_parser = clap::value_parser!(u16).range(1..))]
    pub(crate) max_concurrent_reconciles: u16,

    /// AAP requests in flight at once over all instances (launches, cancels, finds,
    /// polls); the rest wait their turn, first come first served.
    #[arg(long, env = "CLOUDKIT_AAP_MAX_CONCURRENT_REQUESTS",
          default_value_t = crate::aap::DEFAULT_MAX_CONCURRENT_REQUESTS,
          value_parser = clap::value_parser!(u16).range(1..))]
    pub(crate) aap_max_concurrent_requests: u16,

    /// Address of the health and metrics server (an IP address and a port).
    #[arg(long, env = "CLOUDKIT_METRICS_ADDR", default_value = "0.0.0.0:8080",
          value_parser = socket_addr)]
    pub(crate) metrics_addr: SocketAddr,

    /// TLS address of the job-logs API that kube-apiserver proxies to (an aggregated API);
    /// `off` turns it off.
    #[arg(long, env = "CLOUDKIT_LOGS_ADDR", default_value = "0.0.0.0:8443",
          value_parser = logs_addr)]
    pub(crate) logs_addr: LogsAddr,

    /// Elect a leader with a Lease so that only one replica acts.
    #[arg(long, env = "CLOUDKIT_LEADER_ELECTION", default_value_t = true, action = clap::ArgAction::Set)]
    pub(crate) leader_election: bool,

    /// Name of the Lease used for leader election.
    #[arg(long, env = "CLOUDKIT_LEASE_NAME", default_value = "cloudkit-runner")]
    pub(crate) lease_name: String,

    /// Namespace of the Lease (default: POD_NAMESPACE, else the watched namespace, else default).
    #[arg(long, env = "CLOUDKIT_LEASE_NAMESPACE")]
    pub(crate) lease_namespace: Option<String>,

    /// How long a leader's lease lasts without renewal (whole seconds, at least 2s).
    #[arg(long, env = "CLOUDKIT_LEASE_DURATION", default_value = "15s", value_parser = duration)]
    pub(crate) lease_duration: Duration,

    /// Log filter (tracing env-filter syntax).
    #[arg(long, env = "CLOUDKIT_LOG", default_value = "info")]
    pub log: String,

    /// The pod's name (downward API): the leader identity, kept across container restarts.
    #[arg(long, env = "POD_NAME", hide = true)]
    pub(crate) pod_name: Option<String>,

    /// The pod's namespace (downward API): the Lease's default namespace.
    #[arg(long, env = "POD_NAMESPACE", hide = true)]
    pub(crate) pod_namespace: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum ProviderArg {
    /// The AAP controller REST API.
    Aap,
    /// An EDA webhook or event stream.
    Eda,
}

/// An address to serve on, or `off`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LogsAddr {
    Off,
    On(SocketAddr),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum HmacFormat {
    Hex,
    Base64,
}

fn duration(raw: &str) -> Result<Duration, String> {
    parse_duration(raw).map_err(|_| "not a duration: use e.g. 30s, 5m or 1h".into())
}

fn socket_addr(raw: &str) -> Result<SocketAddr, String> {
    raw.parse()
        .map_err(|_| "not an IP address and port: use e.g. 0.0.0.0:8080".into())
}

fn logs_addr(raw: &str) -> Result<LogsAddr, String> {
    match raw.trim() {
        "off" => Ok(LogsAddr::Off),
        addr => addr
            .parse()
            .map(LogsAddr::On)
            .map_err(|_| "not an IP address and port (e.g. 0.0.0.0:8443) or off".into()),
    }
}

fn header_name(raw: &str) -> Result<HeaderName, String> {
    HeaderName::try_from(raw.trim())
        .map_err(|_| "not an HTTP header name: use e.g. X-Hub-Signature-256".into())
}

/// How a variable is named in messages: `CLOUDKIT_X (--flag)`, from its one definition
/// above.
pub(crate) fn name(long: &str) -> String {
    use clap::CommandFactory;
    let env = Args::command()
        .get_arguments()
        .find(|a| a.get_long() == Some(long))
        .and_then(|a| a.get_env().map(|v| v.to_string_lossy().into_owned()));
    match env {
        Some(var) => format!("{var} (--{long})"),
        None => format!("--{long}"),
    }
}
