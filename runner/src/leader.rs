//! Leader election with a Lease (kube-lease-manager): only the holder runs the controller.

use std::future::Future;
use std::time::{Duration, Instant};

use futures::FutureExt;
use kube_lease_manager::{LeaseManagerBuilder, LeaseParams};
use tokio::sync::watch;
use tracing::info;

use crate::aap::AapClient;
use crate::config::{LeaderSettings, Settings};
use crate::controller;
use crate::metrics::Metrics;
use crate::readiness::Readiness;

/// How long reconciles in flight may run on after a stop before they are dropped. Dropping
/// one is safe: an intent is written before its launch, so an unanswered launch is found
/// again by the next leader (lifecycle rule 2), and each status write is one atomic request.
const DRAIN: Duration = Duration::from_secs(3);

/// How long releasing the lease may take at shutdown.
const RELEASE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// Error in leader election.
#[derive(Debug, thiserror::Error)]
#[error("leader election with Lease {namespace}/{name}: {cause}")]
pub(crate) struct LeaderError {
    pub namespace: String,
    pub name: String,
    pub cause: String,
}

/// A running election: `is_leader` follows the lease.
pub(crate) struct Election {
    pub is_leader: watch::Receiver<bool>,
    task: tokio::task::JoinHandle<kube_lease_manager::Result<kube_lease_manager::LeaseManager>>,
}

pub(crate) async fn start(
    client: kube::Client,
    s: &LeaderSettings,
) -> Result<Election, LeaderError> {
    let err = |cause: String| LeaderError {
        namespace: s.namespace.clone(),
        name: s.lease_name.clone(),
        cause,
    };
    let grace = (s.duration_secs / 3).max(1);
    let params = LeaseParams::new(s.identity.clone(), s.duration_secs, grace)
        .with_field_manager("cloudkit-runner-lease");
    let manager = LeaseManagerBuilder::new(client, s.lease_name.clone())
        .with_namespace(s.namespace.clone())
        .with_parameters(params)
        .build()
        .await
        .map_err(|e| err(e.to_string()))?;
    let (is_leader, task) = manager.watch().await;
    info!(identity = %s.identity, lease = %s.lease_name, namespace = %s.namespace, "leader election started");
    Ok(Election { is_leader, task })
}

impl Election {
    /// Stops renewing and frees the lease so a standby takes over at once. Bounded: with
    /// the API server unreachable the lease is left to expire by itself.
    pub async fn release(self) {
        drop(self.is_leader);
        let release = async {
            // The manager's task releases the lease itself once the channel closes.
            match self.task.await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(e)) => Err(e.to_string()),
                Err(e) => Err(e.to_string()),
            }
        };
        match tokio::time::timeout(RELEASE_TIMEOUT, release).await {
            Ok(Ok(())) => info!("lease released"),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "could not release the lease; it expires by itself")
            }
            Err(_) => tracing::warn!(
                timeout_secs = RELEASE_TIMEOUT.as_secs(),
                "could not release the lease in time (API server unreachable?); it expires by itself"
            ),
        }
    }
}

/// The process's life until `stop` turns true: with an election, a standby waits for the
/// Lease, leads once it holds it and ends when it loses it (a fresh start rejoins as a
/// standby); without one, the controller runs alone. Returns the exit code.
pub async fn run(
    client: kube::Client,
    settings: Settings,
    metrics: Metrics,
    readiness: Readiness,
    aap: Option<AapClient>,
    stop: watch::Receiver<bool>,
) -> i32 {
    let election = match &settings.leader {
        Some(l) => {
            let mut stopped = stop.clone();
            tokio::select! {
                started = start(client.clone(), l) => match started {
                    Ok(e) => Some(e),
                    Err(e) => {
                        eprintln!("cloudkit-runner: {e}");
                        return 1;
                    }
                },
                // The API server may be unreachable at start-up: a stop still ends the process.
                _ = stopped.wait_for(|s| *s) => return 0,
            }
        }
        None => None,
    };
    let Some(election) = election else {
        let stopped = until(stop, true).boxed().shared();
        let run = controller::run(client, settings, metrics, readiness, aap, stopped.clone());
        return match bounded(run, stopped).await {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("cloudkit-runner: {e}");
                1
            }
        };
    };
    let code = lead_when_elected(client, settings, metrics, readiness, aap, &election, stop).await;
    let releasing = Instant::now();
    election.release().await;
    info!(
        release_ms = releasing.elapsed().as_millis() as u64,
        "election over"
    );
    code
}

async fn lead_when_elected(
    client: kube::Client,
    settings: Settings,
    metrics: Metrics,
    readiness: Readiness,
    aap: Option<AapClient>,
    election: &Election,
    stop: watch::Receiver<bool>,
) -> i32 {
    let mut leading = election.is_leader.clone();
    // A standby is ready: it knows it does not lead.
    readiness.set(true);
    let mut stopped = stop.clone();
    tokio::select! {
        _ = leading.wait_for(|l| *l) => {}
        _ = stopped.wait_for(|s| *s) => {}
    }
    if *stop.borrow() {
        return 0;
    }
    readiness.set(false);
    metrics.leader.set(1);
    info!("acquired the lease; this replica leads");
    let lost = until(leading.clone(), false);
    let stopped = until(stop.clone(), true);
    let shutdown = async move {
        tokio::select! { _ = lost => {}, _ = stopped => {} }
    }
    .boxed()
    .shared();
    let mut code = 0;
    let run = controller::run(client, settings, metrics, readiness, aap, shutdown.clone());
    if let Err(err) = bounded(run, shutdown).await {
        eprintln!("cloudkit-runner: {err}");
        code = 1;
    }
    if !*leading.borrow_and_update() && !*stop.borrow() {
        tracing::error!("lost the lease; exiting so a fresh start rejoins as standby");
        code = 1;
    }
    code
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

/// Resolves when the watched flag equals `value`.
pub async fn until(mut rx: watch::Receiver<bool>, value: bool) {
    let _ = rx.wait_for(|v| *v == value).await;
}
