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
            _ => Duration::from_secs(5),
        }
    }

    /// Whether this is a real failure worth a warning in the log.
    pub fn is_failure(&self) -> bool {
        match self {
            Self::DeletionInProgress(_) => false,
            Self::Finalizer(inner) => match inner.as_ref() {
                kube::runtime::finalizer::Error::CleanupFailed(e)
                | kube::runtime::finalizer::Error::ApplyFailed(e) => e.is_failure(),
                _ => true,
            },
            _ => true,
        }
    }
}
