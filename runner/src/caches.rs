//! Whether the three watch caches (instances, VMs, VMIs) hold a full list yet.
//!
//! Tracked from the reflector streams' `InitDone` events rather than with
//! `Store::wait_until_ready`: that future wakes only the last of several waiters, and the
//! Controller already waits on the instance store.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use kube::runtime::watcher;
use tracing::{debug, error, warn};

#[derive(Default)]
pub struct Caches {
    instances: AtomicBool,
    vms: AtomicBool,
    vmis: AtomicBool,
    /// Why a cache cannot sync, when it is a missing prerequisite (a resource not served,
    /// or not allowed to the runner): what `/readyz` and the instances' Events say.
    missing: Mutex<BTreeMap<&'static str, String>>,
    /// Shared with the HTTP server: the first missing prerequisite, if any.
    reported: Arc<Mutex<Option<String>>>,
    /// Instances already told about the missing prerequisite (by UID).
    told: Mutex<HashSet<String>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Cache {
    Instances,
    Vms,
    Vmis,
}

impl Caches {
    /// Caches whose missing prerequisites are published in `reported` (for `/readyz`).
    pub fn reporting(reported: Arc<Mutex<Option<String>>>) -> Self {
        Self {
            reported,
            ..Self::default()
        }
    }

    /// The missing prerequisites, one sentence each, or `None`.
    pub fn missing(&self) -> Option<String> {
        let missing = self.missing.lock().unwrap_or_else(|e| e.into_inner());
        (!missing.is_empty()).then(|| missing.values().cloned().collect::<Vec<_>>().join("; "))
    }

    /// True the first time for the instance with `uid`: tell it once.
    pub fn first_time_for(&self, uid: &str) -> bool {
        self.told
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(uid.to_string())
    }

    fn set_missing(&self, cache: Cache, problem: Option<String>) -> bool {
        let mut missing = self.missing.lock().unwrap_or_else(|e| e.into_inner());
        let changed = match problem {
            Some(p) => missing.insert(cache.resource(), p.clone()).as_ref() != Some(&p),
            None => missing.remove(cache.resource()).is_some(),
        };
        let first = missing.values().next().cloned();
        drop(missing);
        if changed {
            *self.reported.lock().unwrap_or_else(|e| e.into_inner()) = first;
            if self.missing().is_none() {
                self.told.lock().unwrap_or_else(|e| e.into_inner()).clear();
            }
        }
        changed
    }

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

impl Cache {
    fn resource(self) -> &'static str {
        match self {
            Cache::Instances => "computeinstances.cloudkit.openshift.io",
            Cache::Vms => "virtualmachines.kubevirt.io",
            Cache::Vmis => "virtualmachineinstances.kubevirt.io",
        }
    }

    fn fix(self) -> &'static str {
        match self {
            Cache::Instances => {
                "install the ComputeInstance CRD (crds/computeinstance.yaml) and the runner's RBAC (manifests/)"
            }
            Cache::Vms | Cache::Vmis => {
                "install KubeVirt (its CRDs) and give the runner's ServiceAccount get/list/watch on it (manifests/)"
            }
        }
    }
}

/// A missing prerequisite behind a watch failure: the resource is not served (404) or
/// not allowed to the runner (403). Other failures are passing ones.
fn prerequisite(cache: Cache, e: &watcher::Error) -> Option<String> {
    let api = match e {
        watcher::Error::InitialListFailed(kube::Error::Api(s))
        | watcher::Error::WatchStartFailed(kube::Error::Api(s)) => s,
        _ => return None,
    };
    let why = match api.code {
        404 => "the API server does not serve it",
        403 => "the runner is not allowed to list and watch it",
        _ => return None,
    };
    Some(format!(
        "cannot watch {}: {why}; {}",
        cache.resource(),
        cache.fix()
    ))
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
            if caches.set_missing(cache, None) {
                tracing::info!(resource = cache.resource(), "prerequisite present now");
            }
            caches.flag(cache).store(true, Ordering::Relaxed);
            if caches.synced() && !ready.swap(true, Ordering::Relaxed) {
                tracing::info!("watch caches synced; ready");
            }
        }
        Ok(_) => {}
        Err(e) => match prerequisite(cache, e) {
            // Said once, until it changes; the retries go on quietly.
            Some(problem) if caches.set_missing(cache, Some(problem.clone())) => {
                error!(resource = cache.resource(), "{problem}")
            }
            Some(_) => debug!(cache = ?cache, error = %e, "watch failed; retrying with backoff"),
            None => warn!(cache = ?cache, error = %e, "watch failed; retrying with backoff"),
        },
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
