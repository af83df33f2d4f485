//! cloudkit-runner entry point: configuration, logging, leader election, then the controller.

use std::future::Future;
use std::time::{Duration, Instant};

use cloudkit_runner::{controller, http, leader, metrics::Metrics};
use futures::FutureExt;
use tokio::sync::watch;
use tracing_subscriber::EnvFilter;

/// How long reconciles in flight may run on after a stop before they are dropped. Dropping
/// one is safe: an intent is written before its launch, so an unanswered launch is found
/// again by the next leader (lifecycle rule 2), and each status write is one atomic request.
const DRAIN: Duration = Duration::from_secs(3);

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

    let logs = settings.logs_addr.map(|addr| {
        let aap = settings.aap.as_ref().and_then(|a| {
            let config = a.client_config(
                settings.http_timeout,
                metrics.aap_requests_in_flight.clone(),
            );
            cloudkit_runner::aap::AapClient::new(config)
                .map_err(|e| tracing::error!("job-logs API has no AAP client: {e}"))
                .ok()
        });
        tokio::spawn(cloudkit_runner::logs::run(client.clone(), aap, addr))
    });

    let election = match &settings.leader {
        Some(l) => {
            let mut stop = stop_rx.clone();
            tokio::select! {
                started = leader::start(client.clone(), l) => match started {
                    Ok(e) => Some(e),
                    Err(e) => fail(e.to_string()),
                },
                // The API server may be unreachable at start-up: a stop still ends the process.
                _ = stop.wait_for(|s| *s) => std::process::exit(0),
            }
        }
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
                }
                .boxed()
                .shared();
                let run = controller::run(client, settings, metrics.clone(), shutdown.clone());
                if let Err(err) = bounded(run, shutdown).await {
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
            let stopped = until(stop_rx.clone(), true).boxed().shared();
            let run = controller::run(client, settings, metrics.clone(), stopped.clone());
            if let Err(e) = bounded(run, stopped).await {
                eprintln!("cloudkit-runner: {e}");
                code = 1;
            }
        }
    }
    let stopping = Instant::now();
    if let Some(e) = election {
        e.release().await;
    }
    server.abort();
    if let Some(logs) = logs {
        logs.abort();
    }
    tracing::info!(
        release_ms = stopping.elapsed().as_millis() as u64,
        code,
        "exiting"
    );
    std::process::exit(code);
}

/// Runs the controller; once `halt` resolves, reconciles in flight get [`DRAIN`] to finish
/// and are then dropped, so a stop never waits on a hung request or an unsynced cache.
async fn bounded<E>(
    run: impl Future<Output = Result<(), E>>,
    halt: impl Future<Output = ()>,
) -> Result<(), E> {
    tokio::select! {
        result = run => result,
        _ = async { halt.await; tokio::time::sleep(DRAIN).await } => {
            tracing::warn!(
                drain_secs = DRAIN.as_secs(),
                "reconciles still running after the stop; dropping them (an intent not yet launched is found again by the next leader)"
            );
            Ok(())
        }
    }
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
