//! The one status write per reconcile: server-side apply on the status subresource.

use cloudkit_shared::names::RUNNER_FIELD_MANAGER;
use cloudkit_shared::{ComputeInstance, ComputeInstanceStatus};
use kube::api::{Api, Patch, PatchParams};
use kube::{Resource, ResourceExt};

/// Applies `status` (the whole of what the runner owns).
pub async fn write(
    api: &Api<ComputeInstance>,
    ci: &ComputeInstance,
    status: &ComputeInstanceStatus,
) -> Result<ComputeInstance, kube::Error> {
    let patch = serde_json::json!({
        "apiVersion": ComputeInstance::api_version(&()),
        "kind": ComputeInstance::kind(&()),
        "status": status,
    });
    let params = PatchParams::apply(RUNNER_FIELD_MANAGER).force();
    api.patch_status(&ci.name_any(), &params, &Patch::Apply(&patch))
        .await
}
