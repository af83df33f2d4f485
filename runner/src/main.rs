//! cloudkit-runner entry point: configuration, logging, leader election, then the controller.

use cloudkit_runner::{controller, http, leader, metrics::Metrics};
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
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutdown requested");
        let _ = stop_tx.send(true);
    });
    let server = tokio::spawn(http::serve(
        settings.metrics_addr,
        metrics.clone(),
        until(stop_rx.clone(), true),
    ));

    let election = match &settings.leader {
        Some(l) => match leader::start(client.clone(), l).await {
            Ok(e) => Some(e),
            Err(e) => fail(e.to_string()),
        },
        None => None,
    };
    let mut code = 0;
    match &election {
        Some(e) => {
            let mut leading = e.is_leader.clone();
            // A standby is ready: it knows it does not lead.
            metrics
                .ready
                .store(true, std::sync::atomic::Ordering::Relaxed);
            let mut stop = stop_rx.clone();
            tokio::select! {
                _ = leading.wait_for(|l| *l) => {}
                _ = stop.wait_for(|s| *s) => {}
            }
            if !*stop_rx.borrow() {
                metrics
                    .ready
                    .store(false, std::sync::atomic::Ordering::Relaxed);
                metrics.leader.set(1);
                tracing::info!("acquired the lease; this replica leads");
                let lost = until(leading.clone(), false);
                let stopped = until(stop_rx.clone(), true);
                let mut lost_flag = leading.clone();
                let shutdown = async move {
                    tokio::select! { _ = lost => {}, _ = stopped => {} }
                };
                if let Err(err) = controller::run(client, settings, metrics.clone(), shutdown).await
                {
                    eprintln!("cloudkit-runner: {err}");
                    code = 1;
                }
                if !*lost_flag.borrow_and_update() && !*stop_rx.borrow() {
                    tracing::error!("lost the lease; exiting so a fresh start rejoins as standby");
                    code = 1;
                }
            }
        }
        None => {
            if let Err(e) = controller::run(
                client,
                settings,
                metrics.clone(),
                until(stop_rx.clone(), true),
            )
            .await
            {
                eprintln!("cloudkit-runner: {e}");
                code = 1;
            }
        }
    }
    if let Some(e) = election {
        e.release().await;
    }
    server.abort();
    std::process::exit(code);
}

fn fail(message: String) -> ! {
    eprintln!("cloudkit-runner: {message}");
    std::process::exit(1);
}

/// Resolves when the watched flag equals `value`.
async fn until(mut rx: watch::Receiver<bool>, value: bool) {
    let _ = rx.wait_for(|v| *v == value).await;
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
