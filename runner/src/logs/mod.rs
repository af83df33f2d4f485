//! The job-logs API: an aggregated API (`logs.cloudkit.openshift.io/v1alpha1`) that
//! kube-apiserver authenticates and authorises, then proxies here over mTLS with its
//! front-proxy client certificate. The runner reads the AAP output with its own token,
//! so people read logs with Kubernetes rights only. docs/logs.md has the design.

mod bounds;
mod listener;
mod routes;
mod select;
mod trust;

use std::net::SocketAddr;

use crate::aap::AapClient;

/// Why the logs API could not start.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LogsError {
    #[error("{0}")]
    Setup(String),
    #[error("cannot listen on {addr} for the logs API (CLOUDKIT_LOGS_ADDR): {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// Sets up trust (front-proxy CA, serving certificate, APIService caBundle), then serves
/// until the process ends.
pub(crate) async fn serve(
    client: kube::Client,
    aap: Option<AapClient>,
    addr: SocketAddr,
) -> Result<(), LogsError> {
    let trust = trust::establish(&client).await?;
    let tcp = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| LogsError::Bind { addr, source })?;
    let local = tcp
        .local_addr()
        .map_err(|source| LogsError::Bind { addr, source })?;
    tracing::info!(addr = %local, "job-logs API listening (TLS, front-proxy client certificates only)");
    let listener = listener::TlsListener::start(tcp, trust.server_config, trust.allowed_names);
    let state = routes::LogsState {
        client,
        aap,
        user_headers: trust.user_headers,
    };
    axum::serve(listener, routes::router(state))
        .await
        .map_err(|source| LogsError::Bind { addr, source })
}

/// Serves the logs API for the life of the process; set-up problems (an APIService not
/// yet applied, missing RBAC) are logged and tried again, as they are fixed from outside.
pub async fn run(client: kube::Client, aap: Option<AapClient>, addr: SocketAddr) {
    let mut last = String::new();
    loop {
        match serve(client.clone(), aap.clone(), addr).await {
            // The same problem every 30s is said once.
            Err(LogsError::Setup(problem)) if problem == last => {
                tracing::debug!("job-logs API still not served: {problem}");
                tokio::time::sleep(std::time::Duration::from_secs(30)).await;
            }
            Err(LogsError::Setup(problem)) => {
                tracing::error!("job-logs API not served: {problem}; trying again every 30s");
                last = problem;
                tokio::time::sleep(std::time::Duration::from_secs(30)).await;
            }
            Err(e) => {
                tracing::error!("job-logs API not served: {e}");
                return;
            }
            Ok(()) => return,
        }
    }
}
