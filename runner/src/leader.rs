//! Leader election with a Lease (kube-lease-manager): only the holder runs the controller.

use kube_lease_manager::{LeaseManagerBuilder, LeaseParams};
use tokio::sync::watch;
use tracing::info;

use crate::config::LeaderSettings;

/// How long releasing the lease may take at shutdown.
const RELEASE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// Error in leader election.
#[derive(Debug, thiserror::Error)]
#[error("leader election with Lease {namespace}/{name}: {cause}")]
pub struct LeaderError {
    pub namespace: String,
    pub name: String,
    pub cause: String,
}

/// A running election: `is_leader` follows the lease.
pub struct Election {
    pub is_leader: watch::Receiver<bool>,
    task: tokio::task::JoinHandle<kube_lease_manager::Result<kube_lease_manager::LeaseManager>>,
}

pub async fn start(client: kube::Client, s: &LeaderSettings) -> Result<Election, LeaderError> {
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
