//! Errors of one reconcile.

use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("finalizer: {0}")]
    Finalizer(Box<kube::runtime::finalizer::Error<Error>>),
    /// Deletion is still in progress (not a failure): come back after this long.
    #[error("deletion in progress")]
    DeletionInProgress(Duration),
    #[error("{0}")]
    Config(String),
    #[error(transparent)]
    Undecodable(#[from] crate::compact::Undecodable),
    /// The instance changed since the copy this pass was planned from: plan again.
    #[error("the instance changed since it was read; planning again on the new copy")]
    Conflict,
    /// This replica no longer holds the Lease: it performs no further effect.
    #[error("this replica no longer holds the Lease; leaving the instance to the leader")]
    NotLeader,
}

impl Error {
    /// How long to wait before trying again.
    pub fn requeue_after(&self) -> Duration {
        match self {
            Self::DeletionInProgress(d) => *d,
            Self::Finalizer(inner) => match inner.as_ref() {
                kube::runtime::finalizer::Error::CleanupFailed(e)
                | kube::runtime::finalizer::Error::ApplyFailed(e) => e.requeue_after(),
                _ => Duration::from_secs(5),
            },
            Self::Conflict => Duration::from_millis(200),
            _ => Duration::from_secs(5),
        }
    }

    /// Whether this is a real failure worth a warning in the log.
    pub fn is_failure(&self) -> bool {
        match self {
            Self::DeletionInProgress(_) | Self::Conflict | Self::NotLeader => false,
            Self::Finalizer(inner) => match inner.as_ref() {
                kube::runtime::finalizer::Error::CleanupFailed(e)
                | kube::runtime::finalizer::Error::ApplyFailed(e) => e.is_failure(),
                _ => true,
            },
            _ => true,
        }
    }
}
