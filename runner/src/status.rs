//! The one status write per reconcile: server-side apply on the status subresource,
//! conditional on the copy it was planned from.

use cloudkit_shared::names::RUNNER_FIELD_MANAGER;
use cloudkit_shared::{ComputeInstance, ComputeInstanceStatus};
use kube::api::{Api, Patch, PatchParams};
use kube::{Resource, ResourceExt};

use crate::error::Error;
use crate::test_hook::{self, Point};

/// Applies `status` (the whole of what the runner owns) if the instance is still at the
/// resourceVersion of `ci`: server-side apply checks a resourceVersion only when the
/// applied object carries one, and then answers 409 to any other. So a pass planned on an
/// older copy (another writer in between, or a paused ex-leader resuming) changes nothing
/// and is planned again on the new copy (`Error::Conflict`).
pub async fn write(
    api: &Api<ComputeInstance>,
    ci: &ComputeInstance,
    status: &ComputeInstanceStatus,
) -> Result<ComputeInstance, Error> {
    let before = ci
        .status
        .as_ref()
        .map(|s| s.jobs.as_slice())
        .unwrap_or_default();
    let known = |key: &str, with_id: bool| {
        before
            .iter()
            .any(|b| b.correlation_key == key && (!with_id || b.job_id.is_some()))
    };
    if status
        .jobs
        .iter()
        .any(|j| j.job_id.is_some() && !known(&j.correlation_key, true))
    {
        test_hook::reached(Point::BeforeLaunchRecord);
    }
    let patch = serde_json::json!({
        "apiVersion": ComputeInstance::api_version(&()),
        "kind": ComputeInstance::kind(&()),
        "metadata": {"resourceVersion": ci.resource_version()},
        "status": status,
    });
    let params = PatchParams::apply(RUNNER_FIELD_MANAGER).force();
    let written = api
        .patch_status(&ci.name_any(), &params, &Patch::Apply(&patch))
        .await
        .map_err(|e| match e {
            kube::Error::Api(s) if s.code == 409 => Error::Conflict,
            e => Error::Kube(e),
        })?;
    if status
        .jobs
        .iter()
        .any(|j| j.job_id.is_none() && !known(&j.correlation_key, false))
    {
        test_hook::reached(Point::AfterIntentWrite);
    }
    Ok(written)
}
