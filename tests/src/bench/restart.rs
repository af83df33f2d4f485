//! Restart latency: from the response to the plugin's patch of `spec.restartRequestedAt`
//! to the VMI's DELETED event as the API server sends it to a watch. One restart at a
//! time, each waited for to the end, so no sample queues behind another.
//!
//! The bench watches VMIs and recreates a deleted one at once (new UID, Running), as
//! virt-controller would: the polling KubeVirt simulator would list every VM and VMI
//! ten times a second, which at these sizes is load of its own on the API server.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use cloudkit_shared::names::{INSTANCE_LABEL, PLUGIN_FIELD_MANAGER};
use cloudkit_shared::signals::whole_seconds;
use cloudkit_shared::{ComputeInstance, JobType};
use futures::StreamExt;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::runtime::watcher::{self, Event};
use tokio::sync::Notify;

use super::population::create_running_vmi;
use super::stats::percentile;
use crate::kubevirt_sim::vmi_resource;

/// One restart.
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    /// Patch response → VMI DELETED event.
    pub latency: Duration,
    /// Patch response → the runner's status write that records the restart job.
    pub to_intent: Option<Duration>,
    /// Request → response of the patch itself.
    pub patch_round_trip: Duration,
}

/// The restarts at one population size.
#[derive(Clone, Debug)]
pub struct Restarts {
    pub instances: usize,
    pub samples: Vec<Sample>,
    /// Restarts whose end (lastRestartedAt) was not seen in time.
    pub unfinished: usize,
    /// The runner's status writes while the restarts ran (filled in by the caller).
    pub status_writes: Option<u64>,
}

impl Restarts {
    pub fn latency(&self, p: f64) -> Option<Duration> {
        percentile(self.samples.iter().map(|s| s.latency).collect(), p)
    }

    pub fn to_intent(&self, p: f64) -> Option<Duration> {
        percentile(self.samples.iter().filter_map(|s| s.to_intent).collect(), p)
    }

    /// From the intent's status write to the VMI deletion.
    pub fn intent_to_delete(&self, p: f64) -> Option<Duration> {
        percentile(
            self.samples
                .iter()
                .filter_map(|s| Some(s.latency.saturating_sub(s.to_intent?)))
                .collect(),
            p,
        )
    }

    pub fn patch_round_trip(&self, p: f64) -> Option<Duration> {
        percentile(self.samples.iter().map(|s| s.patch_round_trip).collect(), p)
    }
}

#[derive(Default)]
struct Seen {
    /// VMI UID → when its DELETED event arrived.
    deleted: HashMap<String, Instant>,
    /// (instance, request second) → first status with that restart job.
    intent: HashMap<(String, i64), Instant>,
    /// (instance, request second) → first status acknowledging it.
    done: HashSet<(String, i64)>,
    vmis_listed: bool,
    instances_listed: bool,
}

/// Watches VMIs and instances of the namespace and recreates deleted VMIs.
struct Watch {
    seen: Arc<Mutex<Seen>>,
    changed: Arc<Notify>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Watch {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl Watch {
    fn start(client: &kube::Client, namespace: &str) -> Self {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let changed = Arc::new(Notify::new());
        let vmis: Api<DynamicObject> =
            Api::namespaced_with(client.clone(), namespace, &vmi_resource());
        let instances: Api<ComputeInstance> = Api::namespaced(client.clone(), namespace);
        let (s, c, api, ns) = (
            seen.clone(),
            changed.clone(),
            vmis.clone(),
            namespace.to_string(),
        );
        let vmi_task = tokio::spawn(async move {
            let config = watcher::Config::default().labels(INSTANCE_LABEL);
            let mut events = watcher::watcher(api.clone(), config).boxed();
            while let Some(event) = events.next().await {
                let at = Instant::now();
                match event {
                    Ok(Event::Delete(vmi)) => {
                        s.lock()
                            .unwrap()
                            .deleted
                            .insert(vmi.uid().unwrap_or_default(), at);
                        let (api, ns) = (api.clone(), ns.clone());
                        // As virt-controller does for a VM that should run.
                        tokio::spawn(async move {
                            let _ = create_running_vmi(
                                &api,
                                &ns,
                                &vmi.name_any(),
                                vmi.labels().clone(),
                                None,
                            )
                            .await;
                        });
                    }
                    Ok(Event::InitDone) => s.lock().unwrap().vmis_listed = true,
                    _ => continue,
                }
                c.notify_waiters();
            }
        });
        let (s, c) = (seen.clone(), changed.clone());
        let ci_task = tokio::spawn(async move {
            let mut events = watcher::watcher(instances, watcher::Config::default()).boxed();
            while let Some(event) = events.next().await {
                let at = Instant::now();
                match event {
                    Ok(Event::Apply(ci) | Event::InitApply(ci)) => {
                        note_instance(&mut s.lock().unwrap(), &ci, at)
                    }
                    Ok(Event::InitDone) => s.lock().unwrap().instances_listed = true,
                    _ => continue,
                }
                c.notify_waiters();
            }
        });
        Self {
            seen,
            changed,
            tasks: vec![vmi_task, ci_task],
        }
    }

    /// Waits until `check` gives a value, or `timeout`.
    async fn until<T>(&self, timeout: Duration, check: impl Fn(&Seen) -> Option<T>) -> Option<T> {
        let wait = async {
            loop {
                let notified = self.changed.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                let found = check(&self.seen.lock().unwrap());
                if let Some(v) = found {
                    return v;
                }
                notified.await;
            }
        };
        tokio::time::timeout(timeout, wait).await.ok()
    }
}

fn note_instance(seen: &mut Seen, ci: &ComputeInstance, at: Instant) {
    let Some(status) = &ci.status else { return };
    let name = ci.name_any();
    for job in status
        .jobs
        .iter()
        .filter(|j| j.job_type == JobType::Restart)
    {
        if let Some(requested) = &job.requested_at {
            seen.intent
                .entry((name.clone(), requested.0.as_second()))
                .or_insert(at);
        }
    }
    if let Some(done) = &status.last_restarted_at {
        seen.done.insert((name, done.0.as_second()));
    }
}

/// Restarts each of `names` (Running instances of `namespace`, each restarted once so
/// far at most, with a runner settled on them) once, one after the other.
pub async fn measure(
    client: &kube::Client,
    namespace: &str,
    instances: usize,
    names: &[String],
) -> anyhow::Result<Restarts> {
    let watch = Watch::start(client, namespace);
    watch
        .until(Duration::from_secs(60), |s| {
            (s.vmis_listed && s.instances_listed).then_some(())
        })
        .await
        .context("the watches of VMIs and instances did not start within 60s")?;
    let api: Api<ComputeInstance> = Api::namespaced(client.clone(), namespace);
    let vmis: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &vmi_resource());
    let params = PatchParams {
        field_manager: Some(PLUGIN_FIELD_MANAGER.to_string()),
        ..PatchParams::default()
    };
    let mut samples = Vec::new();
    let mut unfinished = 0;
    for name in names {
        let old_uid = vmis
            .get(name)
            .await
            .with_context(|| format!("reading the VMI of {name}"))?
            .uid()
            .unwrap_or_default();
        // What `kubectl cloudkit restart NAME` writes: now, in whole seconds.
        let request = whole_seconds(Timestamp::now());
        let patch = serde_json::json!({ "spec": { "restartRequestedAt": request.to_string() } });
        let sent = Instant::now();
        api.patch(name, &params, &Patch::Merge(&patch))
            .await
            .with_context(|| format!("requesting a restart of {name}"))?;
        let answered = Instant::now();
        let deleted = watch
            .until(Duration::from_secs(15), |s| s.deleted.get(&old_uid).copied())
            .await
            .with_context(|| {
                format!("the VMI of {name} ({old_uid}) was not deleted within 15s of the restart request")
            })?;
        let key = (name.clone(), request.as_second());
        // Let the restart finish (new VMI running, request acknowledged) before the next.
        let finished = watch
            .until(Duration::from_secs(30), |s| {
                s.done.contains(&key).then_some(())
            })
            .await;
        if finished.is_none() {
            unfinished += 1;
        }
        let intent = watch.seen.lock().unwrap().intent.get(&key).copied();
        samples.push(Sample {
            latency: deleted.saturating_duration_since(answered),
            to_intent: intent.map(|i| i.saturating_duration_since(answered)),
            patch_round_trip: answered - sent,
        });
    }
    Ok(Restarts {
        instances,
        samples,
        unfinished,
        status_writes: None,
    })
}

/// `count` names spread evenly over instances `range` (by creation order).
pub fn spread(range: std::ops::Range<usize>, count: usize) -> Vec<usize> {
    let len = range.len();
    if len == 0 || count == 0 {
        return Vec::new();
    }
    let count = count.min(len);
    let picked: BTreeMap<usize, ()> = (0..count)
        .map(|k| (range.start + k * len / count, ()))
        .collect();
    picked.into_keys().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_picks_evenly_without_repeats() {
        assert_eq!(spread(0..10, 5), vec![0, 2, 4, 6, 8]);
        assert_eq!(spread(100..1000, 3), vec![100, 400, 700]);
        assert_eq!(spread(0..3, 10), vec![0, 1, 2]);
        assert!(spread(5..5, 3).is_empty());
    }
}
