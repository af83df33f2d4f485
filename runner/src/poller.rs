//! One poll loop for all in-flight AAP jobs of the runner: one list request per 200 jobs per
//! tick, instead of one GET per job per instance. Changes wake the instances concerned.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use cloudkit_shared::{JobFailure, JobProvider, JobState};
use futures::channel::mpsc;
use kube::runtime::reflector::{ObjectRef, Store};
use tracing::{debug, warn};

use crate::aap::{AapClient, AapJob, AapJobKind};
use crate::compact::CompactInstance;

/// What the last poll said about one job.
#[derive(Clone, Debug, PartialEq)]
pub enum Polled {
    Job(AapJob),
    /// Asked for and absent: AAP purged it.
    Purged,
}

/// Shared between the poller (writer) and reconciles (readers).
#[derive(Clone, Default)]
pub struct JobCache(Arc<Mutex<HashMap<(AapJobKind, u64), Polled>>>);

impl JobCache {
    pub fn get(&self, kind: AapJobKind, id: u64) -> Option<Polled> {
        self.lock().get(&(kind, id)).cloned()
    }

    /// Records `polled`; returns whether it differs from what was known.
    pub fn put(&self, kind: AapJobKind, id: u64, polled: Polled) -> bool {
        self.lock().insert((kind, id), polled.clone()).as_ref() != Some(&polled)
    }

    /// Forgets jobs nobody is waiting for any more.
    pub fn retain(&self, keep: &HashMap<(AapJobKind, u64), Vec<ObjectRef<CompactInstance>>>) {
        self.lock().retain(|k, _| keep.contains_key(k));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(AapJobKind, u64), Polled>> {
        // A panic while holding the lock leaves a usable map: recover it.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The AAP job kind and numeric id of a job entry, if it is an AAP job.
pub fn aap_id(provider: JobProvider, job_id: Option<&str>) -> Option<(AapJobKind, u64)> {
    Some((AapJobKind::from_provider(provider)?, job_id?.parse().ok()?))
}

/// In-flight AAP jobs of every instance in the store.
pub fn in_flight(
    store: &Store<CompactInstance>,
) -> HashMap<(AapJobKind, u64), Vec<ObjectRef<CompactInstance>>> {
    let mut wanted: HashMap<_, Vec<_>> = HashMap::new();
    for ci in store.state() {
        for id in ci.aap_jobs() {
            wanted
                .entry(*id)
                .or_default()
                .push(ObjectRef::from_obj(ci.as_ref()));
        }
    }
    wanted
}

/// One tick: poll everything in flight, wake instances whose jobs changed.
pub async fn tick(
    aap: &AapClient,
    store: &Store<CompactInstance>,
    cache: &JobCache,
    wake: &mut mpsc::Sender<ObjectRef<CompactInstance>>,
) {
    let wanted = in_flight(store);
    cache.retain(&wanted);
    if wanted.is_empty() {
        return;
    }
    let ids: Vec<_> = wanted.keys().copied().collect();
    match aap.poll(&ids).await {
        Ok(found) => {
            for id in ids {
                let mut polled = found.get(&id).cloned().map_or(Polled::Purged, Polled::Job);
                if let Polled::Job(job) = &mut polled
                    && job.state == JobState::Failed
                {
                    job.failure = failure(aap, cache, job).await;
                }
                if cache.put(id.0, id.1, polled) {
                    for obj in &wanted[&id] {
                        debug!(job = id.1, instance = %obj, "AAP job changed");
                        let _ = wake.try_send(obj.clone());
                    }
                }
            }
        }
        Err(e) => {
            warn!(error = %e, jobs = wanted.len(), "polling AAP jobs failed; will retry next tick")
        }
    }
}

/// Why a failed job failed, asked of AAP once: a later poll reuses what the cache has.
/// A failed lookup leaves the detail out (the one-line message remains) and is logged.
async fn failure(aap: &AapClient, cache: &JobCache, job: &AapJob) -> Option<Box<JobFailure>> {
    if let Some(Polled::Job(known)) = cache.get(job.kind, job.id)
        && known.state == JobState::Failed
    {
        return known.failure;
    }
    match aap.failure(job).await {
        Ok(found) => found.map(Box::new),
        Err(e) => {
            warn!(job = job.id, error = %e, "reading why AAP job failed failed; its message stays one line");
            None
        }
    }
}

/// Runs [`tick`] every `interval` until the process stops.
pub async fn run(
    aap: AapClient,
    store: Store<CompactInstance>,
    cache: JobCache,
    mut wake: mpsc::Sender<ObjectRef<CompactInstance>>,
    interval: std::time::Duration,
) {
    let mut timer = tokio::time::interval(interval);
    timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        timer.tick().await;
        tick(&aap, &store, &cache, &mut wake).await;
    }
}
