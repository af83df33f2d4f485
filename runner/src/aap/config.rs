//! How to reach AAP: base URL, token, TLS, timeouts, retries.

use std::path::PathBuf;
use std::time::Duration;

use prometheus_client::metrics::gauge::Gauge;

use super::token::TokenSource;

/// Default of `CLOUDKIT_AAP_MAX_CONCURRENT_REQUESTS`: enough to keep launches flowing
/// (a launch answers in well under a second), few enough that a burst of instances
/// does not turn into a burst of requests at the controller.
pub const DEFAULT_MAX_CONCURRENT_REQUESTS: u16 = 8;

/// Settings of an [`super::AapClient`]. Debug output shows no token.
#[derive(Clone, Debug)]
pub struct AapConfig {
    /// The API prefix, e.g. `https://aap.example.com/api/controller` (AAP 2.5+ gateway)
    /// or `https://awx.example.com/api` (AWX); the client appends `/v2/`.
    pub base_url: String,
    pub token: TokenSource,
    /// PEM file with the CA certificates that sign AAP's certificate, in addition to the
    /// built-in web PKI roots.
    pub ca_bundle: Option<PathBuf>,
    /// Accept any certificate. For a lab only; logged as a warning.
    pub insecure_skip_tls_verify: bool,
    pub connect_timeout: Duration,
    /// Whole request, answer included. A cancel POST may take ~5 s in AWX.
    pub request_timeout: Duration,
    /// Template names are unique only within an organization; set this when several
    /// organizations use the same names.
    pub organization: Option<String>,
    /// How long a template's id, found by name, is used before the name is looked up
    /// again (a template renamed or replaced); a 404 on launch looks it up at once.
    pub template_refresh: Duration,
    pub retry: RetryPolicy,
    /// AAP requests in flight at once, over all instances (launches, cancels, finds,
    /// polls, template lookups); the others wait in line.
    pub max_concurrent_requests: usize,
    /// Requests in flight now, for `/metrics`.
    pub in_flight: Gauge,
}

impl AapConfig {
    /// A configuration with production defaults: 5 s to connect, 30 s per request.
    pub fn new(base_url: impl Into<String>, token: TokenSource) -> Self {
        Self {
            base_url: base_url.into(),
            token,
            ca_bundle: None,
            insecure_skip_tls_verify: false,
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            organization: None,
            template_refresh: Duration::from_secs(300),
            retry: RetryPolicy::default(),
            max_concurrent_requests: usize::from(DEFAULT_MAX_CONCURRENT_REQUESTS),
            in_flight: Gauge::default(),
        }
    }
}

/// How GETs are repeated after 5xx answers, timeouts, connection failures and 429s.
/// POSTs are never repeated: a launch that failed in transit may have created its job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Tries in all, the first included.
    pub attempts: u32,
    /// Delay before the second try; doubles per try up to `max_delay`.
    pub base_delay: Duration,
    pub max_delay: Duration,
    /// A 429 asking for a longer wait than this is returned as
    /// [`super::AapError::RateLimited`] at once, so the caller requeues instead of
    /// holding a worker.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 3,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(2),
            max_retry_after: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    /// No retries at all.
    pub fn none() -> Self {
        Self {
            attempts: 1,
            ..Self::default()
        }
    }

    /// Delay after failed try number `attempt` (1-based).
    pub(crate) fn delay(&self, attempt: u32) -> Duration {
        let factor = 1u32
            .checked_shl(attempt.saturating_sub(1))
            .unwrap_or(u32::MAX);
        self.base_delay
            .checked_mul(factor)
            .unwrap_or(self.max_delay)
            .min(self.max_delay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let p = RetryPolicy::default();
        assert_eq!(p.delay(1), Duration::from_millis(200));
        assert_eq!(p.delay(2), Duration::from_millis(400));
        assert_eq!(p.delay(4), Duration::from_millis(1600));
        assert_eq!(p.delay(5), Duration::from_secs(2));
        assert_eq!(p.delay(64), Duration::from_secs(2));
    }
}
