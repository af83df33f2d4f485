//! The HTTP side of the AAP client ([`Http`]): URLs under `/v2/`, one exchange with the
//! token and a permit, GET retries, and transport / TLS failures as [`AapError`]s. It knows
//! nothing of AAP's resources; `client.rs` does.

use std::error::Error as _;
use std::time::{Duration, Instant};

use prometheus_client::metrics::gauge::Gauge;
use reqwest::header::{ACCEPT, HeaderMap, HeaderValue, RETRY_AFTER};
use reqwest::{Method, StatusCode, Url};
use serde_json::Value;

use super::answer::Answer;
use super::config::{AapConfig, RetryPolicy};
use super::error::AapError;
use super::token::TokenCache;
use crate::secret::Secret;

/// The connection pool, the base URL, the token, the retry policy and the request limit
/// shared by every clone of the client.
#[derive(Debug)]
pub(super) struct Http {
    client: reqwest::Client,
    /// `{base_url}/v2/`.
    pub(super) api: Url,
    token: TokenCache,
    retry: RetryPolicy,
    /// Requests in flight, bounded: see [`AapConfig::max_concurrent_requests`].
    permits: tokio::sync::Semaphore,
    in_flight: Gauge,
}

impl Http {
    pub(super) fn new(config: &AapConfig) -> Result<Self, AapError> {
        let api = api_url(&config.base_url)?;
        if config.retry.attempts == 0 {
            return Err(AapError::Config("retry attempts must be at least 1".into()));
        }
        if config.max_concurrent_requests == 0 {
            return Err(AapError::Config(
                "at most 0 AAP requests in flight would send none: allow at least 1".into(),
            ));
        }
        Ok(Self {
            client: http_client(config, &api)?,
            api,
            token: TokenCache::new(config.token.clone()),
            retry: config.retry.clone(),
            permits: tokio::sync::Semaphore::new(config.max_concurrent_requests),
            in_flight: config.in_flight.clone(),
        })
    }
}

/// The connection pool for `api`: JSON answers, the configured timeouts and trust, no
/// redirects.
fn http_client(config: &AapConfig, api: &Url) -> Result<reqwest::Client, AapError> {
    let mut headers = HeaderMap::new();
    headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
    let mut builder = reqwest::Client::builder()
        .use_rustls_tls()
        .default_headers(headers)
        .user_agent(concat!("cloudkit-runner/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(config.connect_timeout)
        .timeout(config.request_timeout)
        // We always send the trailing slash; a redirect would mean a wrong prefix,
        // and following one turns a POST into a GET without its body.
        .redirect(reqwest::redirect::Policy::none());
    if let Some(path) = &config.ca_bundle {
        let pem = std::fs::read(path).map_err(|e| {
            AapError::Config(format!("cannot read CA bundle {}: {e}", path.display()))
        })?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
            AapError::Config(format!("CA bundle {} is not PEM: {e}", path.display()))
        })?;
        if certs.is_empty() {
            return Err(AapError::Config(format!(
                "CA bundle {} holds no certificate",
                path.display()
            )));
        }
        for cert in certs {
            builder = builder.add_root_certificate(cert);
        }
    }
    if config.insecure_skip_tls_verify {
        tracing::warn!(url = %api, "AAP TLS certificate verification is disabled");
        builder = builder.danger_accept_invalid_certs(true);
    }
    builder.build().map_err(|e| AapError::Tls {
        url: api.to_string(),
        cause: error_chain(&e),
    })
}

impl Http {
    /// `{api}{path}?{query}`; `path` is relative to `/v2/` and ends with a slash.
    pub(super) fn url(&self, path: &str, query: &[(&str, &str)]) -> Result<Url, AapError> {
        let mut url = self
            .api
            .join(path)
            .map_err(|e| AapError::Config(format!("bad AAP path {path:?}: {e}")))?;
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        Ok(url)
    }

    /// Joins a path from an answer (`next`, `Location`, `related.*`) to the host. A full
    /// URL naming another origin is refused: the token must not travel there.
    pub(super) fn resolve(&self, path: &str) -> Result<Url, AapError> {
        let api = &self.api;
        let url = api.join(path).map_err(|e| AapError::Decode {
            url: api.to_string(),
            cause: format!("bad link {path:?}: {e}"),
        })?;
        if url.origin() != api.origin() {
            return Err(AapError::Decode {
                url: api.to_string(),
                cause: format!("link {path:?} leaves the AAP host"),
            });
        }
        Ok(url)
    }

    /// GET with retries after 5xx, timeouts, connection failures and short 429s.
    pub(super) async fn get(&self, url: &Url) -> Result<Answer, AapError> {
        let policy = &self.retry;
        let mut attempt = 1;
        loop {
            let last = attempt >= policy.attempts;
            let wait = match self.send(Method::GET, url, None).await {
                Err(e) if e.is_retryable() && !last => {
                    tracing::warn!(url = %url, attempt, error = %e, "AAP request failed; retrying");
                    policy.delay(attempt)
                }
                Ok(answer) if answer.status == StatusCode::TOO_MANY_REQUESTS && !last => {
                    match answer.retry_after {
                        Some(d) if d > policy.max_retry_after => return Ok(answer),
                        Some(d) => d,
                        None => policy.delay(attempt),
                    }
                }
                Ok(answer) if retryable_status(answer.status) && !last => {
                    tracing::warn!(url = %url, attempt, status = answer.status.as_u16(), "AAP answered an error; retrying");
                    policy.delay(attempt)
                }
                other => return other,
            };
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }

    /// One request with the current token. A 401 with a file token makes us read the
    /// file again; a changed token gets one more try (a 401 did nothing on the server).
    pub(super) async fn send(
        &self,
        method: Method,
        url: &Url,
        body: Option<&Value>,
    ) -> Result<Answer, AapError> {
        let token = self.token.current()?;
        let answer = self.send_with(method.clone(), url, body, &token).await?;
        if answer.status == StatusCode::UNAUTHORIZED && self.token.is_file() {
            let fresh = self.token.reload()?;
            if fresh != token {
                tracing::info!(url = %url, "AAP token rejected; retrying with the token file's new content");
                return self.send_with(method, url, body, &fresh).await;
            }
        }
        Ok(answer)
    }

    async fn send_with(
        &self,
        method: Method,
        url: &Url,
        body: Option<&Value>,
        token: &Secret,
    ) -> Result<Answer, AapError> {
        // One permit per exchange, never held across a retry's sleep: a slow or failing
        // instance cannot keep others waiting longer than one request. Tokio's semaphore
        // serves waiters first come, first served, so every instance's request gets its
        // turn in the order it asked.
        let _permit =
            self.permits.acquire().await.map_err(|_| {
                AapError::Config("the AAP client is closed: restart the runner".into())
            })?;
        let _counted = InFlight::enter(&self.in_flight);
        let started = Instant::now();
        // bearer_auth marks the header sensitive, so it stays out of hyper's debug output.
        let mut request = self
            .client
            .request(method.clone(), url.clone())
            .bearer_auth(token.expose());
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(|e| transport(url, &e))?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let body = response.bytes().await.map_err(|e| transport(url, &e))?;
        tracing::debug!(
            %method,
            url = %url,
            status = status.as_u16(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "AAP request"
        );
        Ok(Answer {
            status,
            url: url.to_string(),
            retry_after,
            body: body.to_vec(),
        })
    }
}

/// Counts one request in the in-flight gauge until dropped (also when the request is
/// abandoned mid-way).
struct InFlight<'a>(&'a Gauge);

impl<'a> InFlight<'a> {
    fn enter(gauge: &'a Gauge) -> Self {
        gauge.inc();
        Self(gauge)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// `{base_url}/v2/`, from what a person configured.
fn api_url(base: &str) -> Result<Url, AapError> {
    let trimmed = base.trim().trim_end_matches('/');
    // Forgiving of a base that already names the version.
    let trimmed = trimmed.strip_suffix("/v2").unwrap_or(trimmed);
    let url = Url::parse(&format!("{trimmed}/v2/"))
        .map_err(|e| AapError::Config(format!("AAP URL {base:?} is not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(AapError::Config(format!(
            "AAP URL {base:?} must be http(s)://host[:port]/prefix"
        )));
    }
    if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
        return Err(AapError::Config(format!(
            "AAP URL {base:?} must not carry a query, fragment or credentials"
        )));
    }
    Ok(url)
}

fn retryable_status(status: StatusCode) -> bool {
    matches!(status.as_u16(), 500 | 502 | 503 | 504)
}

/// Maps a failed exchange: TLS first (it also shows up as a connect error), then
/// timeouts, then everything else as a connection failure.
fn transport(url: &Url, e: &reqwest::Error) -> AapError {
    let url = url.to_string();
    if let Some(cause) = tls_cause(e) {
        return AapError::Tls { url, cause };
    }
    if e.is_timeout() {
        return AapError::Timeout { url };
    }
    if e.is_decode() {
        return AapError::Decode {
            url,
            cause: error_chain(e),
        };
    }
    AapError::Connect {
        url,
        cause: error_chain(e),
    }
}

/// The rustls error somewhere in the chain. `io::Error::source` skips the error it
/// wraps, so wrapped errors are looked into explicitly.
fn tls_cause(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut current = Some(e);
    while let Some(err) = current {
        if let Some(tls) = err.downcast_ref::<rustls::Error>() {
            return Some(tls.to_string());
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>()
            && let Some(inner) = io.get_ref()
            && let Some(found) = tls_cause(inner)
        {
            return Some(found);
        }
        current = err.source();
    }
    None
}

/// The causes of `e`, without reqwest's own first line (which repeats the URL).
fn error_chain(e: &reqwest::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut current = e.source();
    while let Some(err) = current {
        let text = err.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        current = err.source();
    }
    if parts.is_empty() {
        e.to_string()
    } else {
        parts.join(": ")
    }
}
