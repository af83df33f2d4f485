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
