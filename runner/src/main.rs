//! cloudkit-runner entry point: configuration, logging, the HTTP servers, then
//! [`leader::run`] until a stop.

use cloudkit_runner::aap::AapClient;
use cloudkit_runner::leader::{self, until};
use cloudkit_runner::{http, metrics::Metrics, readiness::Readiness};
use tokio::sync::watch;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() {
    let args = match cloudkit_runner::config::parse_args() {
        Ok(a) => a,
        Err(line) => {
            eprintln!("cloudkit-runner: {line}");
            std::process::exit(2);
        }
    };
    let settings = match args.settings() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("cloudkit-runner: {e}");
            std::process::exit(2);
        }
    };
    let filter = EnvFilter::try_new(&args.log).unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .json()
        .with_current_span(true)
        .with_env_filter(filter)
        .init();
    for warning in &settings.warnings {
        tracing::warn!("{warning}");
    }
    let client = match kube::Client::try_default().await {
        Ok(c) => c,
        Err(e) => fail(format!(
            "cannot reach the Kubernetes API (in-cluster config or KUBECONFIG): {e}"
        )),
    };
    let metrics = Metrics::default();
    let readiness = Readiness::default();
    // One AAP client for the process: the controller and the job-logs API share its
    // request limit (CLOUDKIT_AAP_MAX_CONCURRENT_REQUESTS), token and connection pool.
    let aap = settings.aap.as_ref().map(|a| {
        let config = a.client_config(
            settings.http_timeout,
            metrics.aap_requests_in_flight.clone(),
        );
        AapClient::new(config).unwrap_or_else(|e| fail(e.to_string()))
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutdown requested");
        let _ = stop_tx.send(true);
    });
    let server = tokio::spawn(http::serve(
        settings.metrics_addr,
        metrics.clone(),
        readiness.clone(),
        until(stop_rx.clone(), true),
    ));

    let logs = settings.logs_addr.map(|addr| {
        tokio::spawn(cloudkit_runner::logs::run(
            client.clone(),
            aap.clone(),
            addr,
        ))
    });

    let code = leader::run(client, settings, metrics, readiness, aap, stop_rx).await;
    server.abort();
    if let Some(logs) = logs {
        logs.abort();
    }
    tracing::info!(code, "exiting");
    std::process::exit(code);
}

fn fail(message: String) -> ! {
    eprintln!("cloudkit-runner: {message}");
    std::process::exit(1);
}

async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = term => {},
    }
}
