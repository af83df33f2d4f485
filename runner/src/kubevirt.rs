//! The KubeVirt objects the runner reads (VMs, VMIs) and the one it deletes (VMIs).

use cloudkit_shared::plan::{VmInfo, VmiInfo};
use kube::ResourceExt;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind};

pub fn vm_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("kubevirt.io", "v1", "VirtualMachine"),
        "virtualmachines",
    )
}

pub fn vmi_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("kubevirt.io", "v1", "VirtualMachineInstance"),
        "virtualmachineinstances",
    )
}

/// Keeps only what [`vm_info`], [`vmi_info`] and the label mapping read: real KubeVirt VMs
/// carry whole pod templates and long statuses that the caches need not hold.
pub fn slim(obj: &mut DynamicObject) {
    let meta = &mut obj.metadata;
    meta.managed_fields = None;
    meta.annotations = None;
    meta.owner_references = None;
    let (spec, status) = (&obj.data["spec"], &obj.data["status"]);
    obj.data = serde_json::json!({
        "spec": {"runStrategy": spec["runStrategy"], "running": spec["running"]},
        "status": {"phase": status["phase"]},
    });
}

/// A VM whose run strategy keeps it stopped gets no new VMI after a delete.
pub fn vm_info(vm: &DynamicObject) -> VmInfo {
    let spec = &vm.data["spec"];
    let halted =
        spec["runStrategy"].as_str() == Some("Halted") || spec["running"].as_bool() == Some(false);
    VmInfo {
        namespace: vm.namespace().unwrap_or_default(),
        name: vm.name_any(),
        halted,
    }
}

pub fn vmi_info(vmi: &DynamicObject) -> VmiInfo {
    let running = vmi.metadata.deletion_timestamp.is_none()
        && vmi.data["status"]["phase"].as_str() == Some("Running");
    VmiInfo {
        uid: vmi.uid().unwrap_or_default(),
        running,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(data: serde_json::Value) -> DynamicObject {
        let mut obj = DynamicObject::new("vm", &vm_resource()).within("ns");
        obj.metadata.uid = Some("u1".into());
        obj.metadata.annotations = Some([("big".to_string(), "x".repeat(1000))].into());
        obj.data = data;
        obj
    }

    #[test]
    fn slim_keeps_what_is_read() {
        for (data, halted, running) in [
            (
                json!({"spec": {"runStrategy": "Halted", "template": {"spec": {}}}}),
                true,
                false,
            ),
            (json!({"spec": {"running": false}}), true, false),
            (
                json!({"spec": {"runStrategy": "Always"}, "status": {"phase": "Running", "conditions": []}}),
                false,
                true,
            ),
            (json!({}), false, false),
        ] {
            let mut obj = object(data);
            let (vm, vmi) = (vm_info(&obj), vmi_info(&obj));
            slim(&mut obj);
            assert_eq!((vm_info(&obj), vmi_info(&obj)), (vm.clone(), vmi.clone()));
            assert_eq!((vm.halted, vmi.running), (halted, running));
            assert!(obj.metadata.annotations.is_none());
            assert!(obj.data["spec"].get("template").is_none());
        }
    }
}
