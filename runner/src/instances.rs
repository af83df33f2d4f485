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
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use kube::api::{Api, DynamicObject};
use kube::runtime::events::{Event, EventType, Recorder};
use kube::runtime::watcher;
use prometheus_client::metrics::gauge::Gauge;
use serde::Deserialize;
use serde_json::Value;
use tracing::{info, warn};

use crate::compact::{self, CompactInstance};

use cloudkit_shared::lean_meta;

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

/// A stored instance as the watch lists it: metadata without `managedFields`, spec and
/// status untyped until [`decode`] reads them one object at a time. Plain fields, not
/// `DynamicObject`'s flattened map, which buffers every object whole before splitting it.
#[derive(Clone, Debug, Deserialize)]
pub struct Stored {
    #[serde(default, deserialize_with = "lean_meta::without_managed_fields")]
    metadata: ObjectMeta,
    #[serde(default)]
    spec: Value,
    #[serde(default)]
    status: Value,
}

compact::instance_resource!(Stored);

impl Stored {
    /// The untyped object `read` decodes.
    fn dynamic(self) -> DynamicObject {
        DynamicObject {
            types: None,
            metadata: self.metadata,
            data: serde_json::json!({"spec": self.spec, "status": self.status}),
        }
    }

    fn placeholder(&self) -> ComputeInstance {
        let mut ci = ComputeInstance::new(
            self.metadata.name.as_deref().unwrap_or_default(),
            Default::default(),
        );
        ci.metadata = self.metadata.clone();
        ci
    }
}

/// The watch over `api`'s instances as events of cached instances, listed `page` to a page
/// (a page is held parsed until the cache has taken all of it: `list_page`); unreadable
/// objects reported and left out.
pub fn watch(
    api: Api<Stored>,
    page: u32,
    unreadables: Unreadables,
) -> impl Stream<Item = Result<watcher::Event<CompactInstance>, watcher::Error>> {
    watcher(api, watcher::Config::default().page_size(page))
        .map(move |event| event.map(|e| decode(e, &unreadables).map(compact::event)))
        .filter_map(|event| async move {
            match event {
                Ok(Some(e)) => Some(Ok(e)),
                Ok(None) => None,
                Err(e) => Some(Err(e)),
            }
        })
}

/// An Api over instances, read as [`Stored`].
pub fn api(client: &kube::Client, namespace: Option<&str>) -> Api<Stored> {
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

fn decode(
    event: watcher::Event<Stored>,
    unreadables: &Unreadables,
) -> Option<watcher::Event<ComputeInstance>> {
    let typed = |stored: Stored| {
        let (ns, name) = (
            stored.metadata.namespace.clone().unwrap_or_default(),
            stored.metadata.name.clone().unwrap_or_default(),
        );
        let placeholder = stored.placeholder();
        match read::instance(stored.dynamic()) {
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
            watcher::Event::Delete(obj.placeholder())
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::ResourceExt;
    use serde_json::json;

    fn served(spec: Value) -> String {
        json!({
            "apiVersion": "cloudkit.openshift.io/v1alpha1", "kind": "ComputeInstance",
            "metadata": {
                "name": "ci-1", "namespace": "ns", "uid": "u1",
                "annotations": {"cloudkit.openshift.io/tenant": "acme"},
                "finalizers": ["cloudkit.openshift.io/aap"],
                "managedFields": [{"manager": "m", "operation": "Apply", "fieldsType": "FieldsV1",
                                   "fieldsV1": {"f:spec": {"f:templateID": {}}}}],
            },
            "spec": spec,
            "status": {"phase": "Running"},
        })
        .to_string()
    }

    #[test]
    fn stored_instances_decode_as_dynamic_objects_do_without_managed_fields() {
        let body = served(json!({"templateID": "t1"}));
        let stored: Stored = serde_json::from_str(&body).unwrap();
        assert!(stored.metadata.managed_fields.is_none());
        let ci = read::instance(stored.dynamic()).unwrap();
        let mut dynamic: DynamicObject = serde_json::from_str(&body).unwrap();
        dynamic.metadata.managed_fields = None;
        assert_eq!(ci, read::instance(dynamic).unwrap());
        assert_eq!(ci.annotations().len(), 1);
        assert_eq!(ci.finalizers().len(), 1);
    }

    #[test]
    fn an_unreadable_stored_instance_names_its_field_as_before() {
        let body = served(json!({"templateID": 5}));
        let stored: Stored = serde_json::from_str(&body).unwrap();
        let e = read::instance(stored.dynamic()).unwrap_err();
        let dynamic: DynamicObject = serde_json::from_str(&body).unwrap();
        assert_eq!(e, read::instance(dynamic).unwrap_err());
        assert_eq!(e.field, "spec.templateID");
    }

    #[test]
    fn watch_events_carry_stored_instances() {
        let line = format!(r#"{{"type":"MODIFIED","object":{}}}"#, served(json!({})));
        let event: kube::core::WatchEvent<Stored> = serde_json::from_str(&line).unwrap();
        assert!(
            matches!(event, kube::core::WatchEvent::Modified(s) if s.metadata.name.as_deref() == Some("ci-1"))
        );
    }
}
