//! The KubeVirt objects the runner reads (VMs, VMIs) and the one it deletes (VMIs), as small
//! typed structs: serde skips everything else (pod templates, long statuses, managed fields,
//! annotations, owner references) while parsing, so a cached VM costs little more than its
//! name, labels and UID.

use std::borrow::Cow;
use std::fmt::Debug;

use cloudkit_shared::names::INSTANCE_LABEL;
use futures::{Stream, StreamExt};
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use kube::api::Api;
use kube::runtime::watcher;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use cloudkit_shared::lean_meta;

/// `kubevirt.io/v1` VirtualMachine: only what the runner's cache keeps (`kubevirt_cache::Vm`).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(from = "ServedVm")]
pub struct VirtualMachine {
    /// Name, namespace, UID, resourceVersion and deletion only (see [`ServedVm`]).
    pub metadata: ObjectMeta,
    /// The value of its `cloudkit.openshift.io/computeinstance` label.
    pub instance: Option<String>,
    pub spec: VmSpec,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VmSpec {
    pub run_strategy: Option<String>,
    pub running: Option<bool>,
}

/// `kubevirt.io/v1` VirtualMachineInstance: only what the runner's cache keeps (`kubevirt_cache::Vmi`).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(from = "ServedVmi")]
pub struct VirtualMachineInstance {
    /// Name, namespace, UID, resourceVersion and deletion only (see [`ServedVm`]).
    pub metadata: ObjectMeta,
    /// The value of its `cloudkit.openshift.io/computeinstance` label.
    pub instance: Option<String>,
    pub status: VmiStatus,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct VmiStatus {
    pub phase: Option<String>,
}

/// A VM as served. Its labels leave the metadata for the one value the runner reads: a
/// map, even of one entry, costs a 540-byte B-tree node per cached object, and KubeVirt
/// puts several labels on every VMI.
#[derive(Deserialize)]
struct ServedVm {
    #[serde(deserialize_with = "lean_meta::for_lookup")]
    metadata: ObjectMeta,
    #[serde(default)]
    spec: VmSpec,
}

/// A VMI as served (see [`ServedVm`]).
#[derive(Deserialize)]
struct ServedVmi {
    #[serde(deserialize_with = "lean_meta::for_lookup")]
    metadata: ObjectMeta,
    #[serde(default)]
    status: VmiStatus,
}

/// Takes the instance label out of `metadata`, dropping the other labels.
fn instance_label(metadata: &mut ObjectMeta) -> Option<String> {
    metadata
        .labels
        .take()
        .and_then(|mut labels| labels.remove(INSTANCE_LABEL))
}

impl From<ServedVm> for VirtualMachine {
    fn from(mut served: ServedVm) -> Self {
        Self {
            instance: instance_label(&mut served.metadata),
            metadata: served.metadata,
            spec: served.spec,
        }
    }
}

impl From<ServedVmi> for VirtualMachineInstance {
    fn from(mut served: ServedVmi) -> Self {
        Self {
            instance: instance_label(&mut served.metadata),
            metadata: served.metadata,
            status: served.status,
        }
    }
}

/// The instance a cached KubeVirt object is labelled for.
pub trait Labelled {
    fn instance(&self) -> Option<&str>;
}

macro_rules! kubevirt_resource {
    ($type:ty, $kind:literal, $plural:literal) => {
        impl Labelled for $type {
            fn instance(&self) -> Option<&str> {
                self.instance.as_deref()
            }
        }

        impl Resource for $type {
            type DynamicType = ();
            type Scope = NamespaceResourceScope;

            fn kind(_: &()) -> Cow<'_, str> {
                Cow::Borrowed($kind)
            }
            fn group(_: &()) -> Cow<'_, str> {
                Cow::Borrowed("kubevirt.io")
            }
            fn version(_: &()) -> Cow<'_, str> {
                Cow::Borrowed("v1")
            }
            fn plural(_: &()) -> Cow<'_, str> {
                Cow::Borrowed($plural)
            }
            fn meta(&self) -> &ObjectMeta {
                &self.metadata
            }
            fn meta_mut(&mut self) -> &mut ObjectMeta {
                &mut self.metadata
            }
        }
    };
}

kubevirt_resource!(VirtualMachine, "VirtualMachine", "virtualmachines");
kubevirt_resource!(
    VirtualMachineInstance,
    "VirtualMachineInstance",
    "virtualmachineinstances"
);

/// The VMs or VMIs labelled for an instance. Watched in every namespace, since a tenant's
/// VM lives in the tenant's namespace; a runner narrowed to `scope` keeps only those beside
/// its instances or in their tenant namespaces, the only ones that can be its instances'
/// (the others are parsed once per list page and never cached).
pub fn watch<K>(
    client: &kube::Client,
    scope: Option<&str>,
    page: u32,
) -> impl Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + use<K>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + Debug
        + Send
        + 'static,
{
    let scope = scope.map(str::to_owned);
    let config = watcher::Config::default()
        .labels(INSTANCE_LABEL)
        .page_size(page);
    watcher(Api::<K>::all(client.clone()), config).filter(move |event| {
        let keep = match event {
            Ok(
                watcher::Event::Apply(o) | watcher::Event::InitApply(o) | watcher::Event::Delete(o),
            ) => in_scope(
                scope.as_deref(),
                o.meta().namespace.as_deref().unwrap_or_default(),
            ),
            _ => true,
        };
        std::future::ready(keep)
    })
}

/// Whether a KubeVirt object in `namespace` can belong to an instance of a runner narrowed
/// to `scope` (every namespace when `None`).
fn in_scope(scope: Option<&str>, namespace: &str) -> bool {
    scope.is_none_or(|s| namespace == s || crate::tenants::project_of(namespace) == Some(s))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kubevirt_cache::Cached;
    use serde_json::json;

    fn metadata() -> serde_json::Value {
        json!({
            "name": "vm-1", "namespace": "ns", "uid": "u1",
            "labels": {"cloudkit.openshift.io/computeinstance": "vm-1"},
            "annotations": {"big": "x".repeat(1000)},
            "managedFields": [{"manager": "virt-controller", "operation": "Update"}],
        })
    }

    #[test]
    fn vms_parse_from_what_kubevirt_serves() {
        for (spec, halted) in [
            (
                json!({"runStrategy": "Halted", "template": {"spec": {"domain": {}}}}),
                true,
            ),
            (json!({"running": false}), true),
            (json!({"runStrategy": "Always"}), false),
            (json!({}), false),
        ] {
            let served = json!({
                "apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine",
                "metadata": metadata(), "spec": spec, "status": {"ready": true},
            });
            let vm: VirtualMachine = serde_json::from_value(served).unwrap();
            assert_eq!(vm.record().halted, halted);
            assert!(vm.record().labelled_for("vm-1", "vm-1"));
            assert!(vm.metadata.annotations.is_none() && vm.metadata.managed_fields.is_none());
            assert!(vm.metadata.labels.is_none(), "the one label read moved out");
            assert_eq!(vm.instance.as_deref(), Some("vm-1"));
        }
    }

    #[test]
    fn vmis_run_only_in_phase_running_and_not_while_deleted() {
        let vmi = |phase: &str, deleting: bool| {
            let mut meta = metadata();
            if deleting {
                meta["deletionTimestamp"] = json!("2026-11-22T10:00:00Z");
            }
            serde_json::from_value::<VirtualMachineInstance>(json!({
                "metadata": meta, "spec": {"domain": {}},
                "status": {"phase": phase, "conditions": []},
            }))
            .unwrap()
        };
        let running = vmi("Running", false).record();
        assert!(running.running && !running.deleting);
        assert_eq!(&*running.uid, "u1");
        assert!(vmi("Running", true).record().deleting);
        assert!(!vmi("Scheduling", false).record().running);
        let bare: VirtualMachineInstance =
            serde_json::from_value(json!({"metadata": {"name": "x"}})).unwrap();
        assert!(!bare.record().running);
    }

    #[test]
    fn a_narrowed_runner_keeps_its_namespace_and_its_tenant_namespaces() {
        use cloudkit_shared::tenant::namespace_name;
        assert!(in_scope(Some("ns"), "ns"));
        assert!(in_scope(Some("ns"), &namespace_name("ns", "acme")));
        assert!(!in_scope(Some("ns"), "other"));
        assert!(!in_scope(Some("ns"), &namespace_name("other", "acme")));
        assert!(!in_scope(Some("ns"), "ns-notatenant"));
        assert!(
            in_scope(None, "other"),
            "a runner over all namespaces keeps all"
        );
    }

    #[test]
    fn urls_are_kubevirts() {
        assert_eq!(
            VirtualMachineInstance::url_path(&(), Some("ns")),
            "/apis/kubevirt.io/v1/namespaces/ns/virtualmachineinstances"
        );
        assert_eq!(
            VirtualMachine::url_path(&(), None),
            "/apis/kubevirt.io/v1/virtualmachines"
        );
    }
}
