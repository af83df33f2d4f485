//! The small HTTP server: `/healthz`, `/readyz`, `/metrics`.

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

use crate::metrics::Metrics;
use crate::readiness::Readiness;

fn router(metrics: Metrics, readiness: Readiness) -> Router {
    let probes = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .with_state(readiness);
    Router::new()
        .route("/metrics", get(metrics_text))
        .with_state(metrics)
        .merge(probes)
}

async fn readyz(State(r): State<Readiness>) -> impl IntoResponse {
    if r.is_ready() {
        return (StatusCode::OK, "ready".to_string());
    }
    let body = match r.missing() {
        Some(problem) => format!("not ready: {problem}"),
        None => "not ready: watch caches syncing".into(),
    };
    (StatusCode::SERVICE_UNAVAILABLE, body)
}

async fn metrics_text(State(m): State<Metrics>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        m.encode(),
    )
}

/// Serves until `shutdown` resolves.
pub async fn serve(
    addr: std::net::SocketAddr,
    metrics: Metrics,
    readiness: Readiness,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, "health and metrics server listening");
    axum::serve(listener, router(metrics, readiness))
        .with_graceful_shutdown(shutdown)
        .await
}
