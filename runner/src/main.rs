//! cloudkit-runner entry point: configuration, logging, then the controller.

use clap::Parser;
use cloudkit_runner::config::Args;
use cloudkit_runner::{controller, http, metrics::Metrics};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() {
    let args = Args::parse();
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
        Err(e) => {
            eprintln!(
                "cloudkit-runner: cannot reach the Kubernetes API (in-cluster config or KUBECONFIG): {e}"
            );
            std::process::exit(1);
        }
    };
    let metrics = Metrics::default();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutdown requested");
        let _ = stop_tx.send(true);
    });
    let wait = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let server = tokio::spawn(http::serve(
        settings.metrics_addr,
        metrics.clone(),
        wait(stop_rx.clone()),
    ));
    let result = controller::run(client, settings, metrics, wait(stop_rx)).await;
    server.abort();
    if let Err(e) = result {
        eprintln!("cloudkit-runner: {e}");
        std::process::exit(1);
    }
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
