//! Whether this replica is ready, for `/readyz`: a standby once it knows it does not lead,
//! the leader once its watch caches are synced. Shared by the leader loop, the cache
//! tracking and the HTTP server.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// Cheap to clone; clones share the state.
#[derive(Clone, Debug, Default)]
pub struct Readiness {
    /// Watch caches synced and leadership known.
    pub(crate) ready: Arc<AtomicBool>,
    /// A missing prerequisite that keeps the caches from syncing, written by the cache
    /// tracking (`caches.rs`).
    pub(crate) missing: Arc<Mutex<Option<String>>>,
}

impl Readiness {
    pub(crate) fn set(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }

    pub(crate) fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    /// The missing prerequisite, if the caches cannot sync for one.
    pub(crate) fn missing(&self) -> Option<String> {
        self.missing
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}
