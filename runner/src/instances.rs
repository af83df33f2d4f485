//! The instance watch, read one object at a time so that one unreadable object never
//! stops the cache (and so every other instance) from syncing.
//!
//! Objects are listed and watched untyped and decoded by `cloudkit_shared::read`. An
//! object that does not decode is logged once (name and field), gets one Warning Event,
//! is counted in `cloudkit_unreadable_instances`, and is kept out of the cache; when it is
//! fixed, its next event brings it in.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use cloudkit_shared::ComputeInstance;
use cloudkit_shared::read::{self, Unreadable};
use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::ObjectReference;
use kube::Resource;
use kube::api::{Api, ApiResource, DynamicObject};
use kube::runtime::events::{Event, EventType, Recorder};
use kube::runtime::watcher;
use prometheus_client::metrics::gauge::Gauge;
use tracing::{info, warn};

/// Unreadable objects by `namespace/name`, with the message last reported for each.
#[derive(Clone)]
pub struct Unreadables {
    seen: Arc<Mutex<HashMap<String, String>>>,
    gauge: Gauge,
    recorder: Recorder,
}

impl Unreadables {
    pub fn new(gauge: Gauge, recorder: Recorder) -> Self {
        Self {
            seen: Arc::default(),
            gauge,
            recorder,
        }
    }

    fn report(&self, obj: &ComputeInstance, e: &Unreadable) {
        let key = format!("{}/{}", e.namespace, e.name);
        let text = e.to_string();
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let new = seen.get(&key) != Some(&text);
        seen.insert(key, text.clone());
        self.gauge.set(seen.len() as i64);
        drop(seen);
        if !new {
            return;
        }
        warn!(instance = %e.name, namespace = %e.namespace, field = %e.field, error = %e.message,
              "skipping an unreadable ComputeInstance; fix the field (the others are served)");
        let reference = ObjectReference {
            api_version: Some(ComputeInstance::api_version(&()).into_owned()),
            kind: Some(ComputeInstance::kind(&()).into_owned()),
            name: obj.metadata.name.clone(),
            namespace: obj.metadata.namespace.clone(),
            uid: obj.metadata.uid.clone(),
            resource_version: obj.metadata.resource_version.clone(),
            ..ObjectReference::default()
        };
        let event = Event {
            type_: EventType::Warning,
            reason: "Unreadable".into(),
            note: Some(cloudkit_shared::conditions::one_line(&format!(
                "cloudkit-runner cannot read this instance and does not manage it: field {}: {}",
                e.field, e.message
            ))),
            action: "Read".into(),
            secondary: None,
        };
        let recorder = self.recorder.clone();
        tokio::spawn(async move {
            if let Err(err) = recorder.publish(&event, &reference).await {
                warn!(error = %err, "could not record the Unreadable event");
            }
        });
    }

    fn forget(&self, namespace: &str, name: &str) {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.remove(&format!("{namespace}/{name}")).is_some() {
            info!(instance = %name, %namespace, "instance readable again (or gone)");
        }
        self.gauge.set(seen.len() as i64);
    }

    fn clear(&self) {
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).clear();
        self.gauge.set(0);
    }
}

/// The watch over `api`'s instances as typed events; unreadable objects reported and left out.
pub fn watch(
    api: Api<DynamicObject>,
    unreadables: Unreadables,
) -> impl Stream<Item = Result<watcher::Event<ComputeInstance>, watcher::Error>> {
    watcher(api, watcher::Config::default())
        .map(move |event| event.map(|e| decode(e, &unreadables)))
        .filter_map(|event| async move {
            match event {
                Ok(Some(e)) => Some(Ok(e)),
                Ok(None) => None,
                Err(e) => Some(Err(e)),
            }
        })
}

/// An Api over instances, untyped.
pub fn api(client: &kube::Client, namespace: Option<&str>) -> Api<DynamicObject> {
    let resource = ApiResource::erase::<ComputeInstance>(&());
    match namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
        None => Api::all_with(client.clone(), &resource),
    }
}

fn decode(
    event: watcher::Event<DynamicObject>,
    unreadables: &Unreadables,
) -> Option<watcher::Event<ComputeInstance>> {
    let typed = |mut obj: DynamicObject| {
        obj.metadata.managed_fields = None;
        let (ns, name) = (
            obj.metadata.namespace.clone().unwrap_or_default(),
            obj.metadata.name.clone().unwrap_or_default(),
        );
        let placeholder = read::placeholder(&obj);
        match read::instance(obj) {
            Ok(ci) => {
                unreadables.forget(&ns, &name);
                Ok(ci)
            }
            Err(e) => {
                unreadables.report(&placeholder, &e);
                Err(Box::new(placeholder))
            }
        }
    };
    Some(match event {
        watcher::Event::Init => {
            unreadables.clear();
            watcher::Event::Init
        }
        watcher::Event::InitDone => watcher::Event::InitDone,
        watcher::Event::InitApply(obj) => watcher::Event::InitApply(typed(obj).ok()?),
        // A copy that turned unreadable leaves the cache: its old self must not be acted on.
        watcher::Event::Apply(obj) => match typed(obj) {
            Ok(ci) => watcher::Event::Apply(ci),
            Err(placeholder) => watcher::Event::Delete(*placeholder),
        },
        watcher::Event::Delete(obj) => {
            unreadables.forget(
                obj.metadata.namespace.as_deref().unwrap_or_default(),
                obj.metadata.name.as_deref().unwrap_or_default(),
            );
            watcher::Event::Delete(read::placeholder(&obj))
        }
    })
}
