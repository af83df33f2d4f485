//! The KubeVirt objects the runner reads (VMs, VMIs) and the one it deletes (VMIs), as small
//! typed structs: serde skips everything else (pod templates, long statuses) while parsing,
//! so a cached VM costs little more than its metadata.

use std::borrow::Cow;

use cloudkit_shared::plan::{VmInfo, VmiInfo};
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::{Resource, ResourceExt};
use serde::Deserialize;

/// `kubevirt.io/v1` VirtualMachine: only what [`vm_info`] reads.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct VirtualMachine {
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: VmSpec,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VmSpec {
    pub run_strategy: Option<String>,
    pub running: Option<bool>,
}

/// `kubevirt.io/v1` VirtualMachineInstance: only what [`vmi_info`] reads.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct VirtualMachineInstance {
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub status: VmiStatus,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct VmiStatus {
    pub phase: Option<String>,
}

macro_rules! kubevirt_resource {
    ($type:ty, $kind:literal, $plural:literal) => {
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

/// Drops the metadata the runner never reads before an object reaches a cache.
pub fn slim<K: Resource>(obj: &mut K) {
    let meta = obj.meta_mut();
    meta.managed_fields = None;
    meta.annotations = None;
    meta.owner_references = None;
}

/// A VM whose run strategy keeps it stopped gets no new VMI after a delete.
pub fn vm_info(vm: &VirtualMachine) -> VmInfo {
    let halted =
        vm.spec.run_strategy.as_deref() == Some("Halted") || vm.spec.running == Some(false);
    VmInfo {
        namespace: vm.namespace().unwrap_or_default(),
        name: vm.name_any(),
        halted,
    }
}

pub fn vmi_info(vmi: &VirtualMachineInstance) -> VmiInfo {
    let running =
        vmi.metadata.deletion_timestamp.is_none() && vmi.status.phase.as_deref() == Some("Running");
    VmiInfo {
        uid: vmi.uid().unwrap_or_default(),
        running,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
            let mut vm: VirtualMachine = serde_json::from_value(served).unwrap();
            slim(&mut vm);
            assert_eq!(vm_info(&vm).halted, halted);
            assert_eq!(vm_info(&vm).name, "vm-1");
            assert!(vm.metadata.annotations.is_none() && vm.metadata.managed_fields.is_none());
            assert_eq!(vm.labels().len(), 1, "labels map VMs to instances; kept");
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
        assert!(vmi_info(&vmi("Running", false)).running);
        assert!(!vmi_info(&vmi("Running", true)).running);
        assert!(!vmi_info(&vmi("Scheduling", false)).running);
        assert_eq!(vmi_info(&vmi("Running", false)).uid, "u1");
        let bare: VirtualMachineInstance =
            serde_json::from_value(json!({"metadata": {"name": "x"}})).unwrap();
        assert!(!vmi_info(&bare).running);
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
