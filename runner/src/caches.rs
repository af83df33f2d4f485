//! Whether the three watch caches (instances, VMs, VMIs) hold a full list yet.
//!
//! Tracked from the reflector streams' `InitDone` events rather than with
//! `Store::wait_until_ready`: that future wakes only the last of several waiters, and the
//! Controller already waits on the instance store.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use kube::runtime::watcher;
use tracing::warn;

#[derive(Default)]
pub struct Caches {
    instances: AtomicBool,
    vms: AtomicBool,
    vmis: AtomicBool,
}

#[derive(Clone, Copy, Debug)]
pub enum Cache {
    Instances,
    Vms,
    Vmis,
}

impl Caches {
    /// All three caches have applied their first full list.
    pub fn synced(&self) -> bool {
        [Cache::Instances, Cache::Vms, Cache::Vmis]
            .iter()
            .all(|c| self.flag(*c).load(Ordering::Relaxed))
    }

    fn flag(&self, cache: Cache) -> &AtomicBool {
        match cache {
            Cache::Instances => &self.instances,
            Cache::Vms => &self.vms,
            Cache::Vmis => &self.vmis,
        }
    }
}

/// For `.inspect()` after a reflector: marks `cache` synced on `InitDone` (the store has
/// applied the list by then), sets `ready` once all are, and says why a watch fails.
pub fn track<K>(
    caches: Arc<Caches>,
    cache: Cache,
    ready: Arc<AtomicBool>,
) -> impl FnMut(&Result<watcher::Event<K>, watcher::Error>) {
    move |event| match event {
        Ok(watcher::Event::InitDone) => {
            caches.flag(cache).store(true, Ordering::Relaxed);
            if caches.synced() && !ready.swap(true, Ordering::Relaxed) {
                tracing::info!("watch caches synced; ready");
            }
        }
        Ok(_) => {}
        Err(e) => warn!(cache = ?cache, error = %e, "watch failed; retrying with backoff"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cloudkit_shared::ComputeInstance;

    #[test]
    fn ready_only_after_all_three_lists() {
        let caches = Arc::new(Caches::default());
        let ready = Arc::new(AtomicBool::new(false));
        let mut inst = track::<ComputeInstance>(caches.clone(), Cache::Instances, ready.clone());
        let mut vms = track::<ComputeInstance>(caches.clone(), Cache::Vms, ready.clone());
        let mut vmis = track::<ComputeInstance>(caches.clone(), Cache::Vmis, ready.clone());
        inst(&Ok(watcher::Event::InitDone));
        vms(&Ok(watcher::Event::Init));
        vmis(&Ok(watcher::Event::InitDone));
        assert!(!caches.synced() && !ready.load(Ordering::Relaxed));
        vms(&Ok(watcher::Event::InitDone));
        assert!(caches.synced() && ready.load(Ordering::Relaxed));
    }
}
