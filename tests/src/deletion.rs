//! Following an instance's deletion, for the end-to-end tests of deletion: the order of its
//! jobs as it goes, and what is left of its VM.

use std::time::{Duration, Instant};

use cloudkit_shared::names::INSTANCE_LABEL;
use cloudkit_shared::{JobState, JobType};
use kube::api::{Api, DynamicObject, ListParams};

use crate::bed::Bed;
use crate::kubevirt_sim::vm_resource;
use crate::observe::jobs_of;

/// VMs labelled for instance `name`, in any namespace of the cluster.
pub async fn vms_anywhere(client: &kube::Client, name: &str) -> anyhow::Result<usize> {
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &vm_resource());
    let lp = ListParams::default().labels(&format!("{INSTANCE_LABEL}={name}"));
    Ok(api.list(&lp).await?.items.len())
}

/// Watches the instance until it is gone; checks on every observation that no deprovision
/// job exists while the provision job is still active, and that the deprovision id never
/// changes. Returns the provision job's states as seen.
pub async fn follow_deletion(
    bed: &Bed,
    name: &str,
    timeout: Duration,
) -> anyhow::Result<Vec<JobState>> {
    let deadline = Instant::now() + timeout;
    let mut deprovision_id: Option<String> = None;
    let mut seen = Vec::new();
    loop {
        let Some(ci) = bed.instances().get_opt(name).await? else {
            return Ok(seen);
        };
        if let Some(p) = jobs_of(&ci, JobType::Provision).last() {
            seen.push(p.state);
            let deprovisions = jobs_of(&ci, JobType::Deprovision);
            anyhow::ensure!(
                !p.state.is_active() || deprovisions.is_empty(),
                "deprovision while provision {:?} is {}",
                p.job_id,
                p.state
            );
            anyhow::ensure!(
                deprovisions.len() <= 1,
                "one deprovision job: {deprovisions:?}"
            );
            if let Some(id) = deprovisions.first().and_then(|d| d.job_id.clone()) {
                if let Some(known) = &deprovision_id {
                    anyhow::ensure!(
                        known == &id,
                        "the deprovision job id changed: {known} then {id}"
                    );
                }
                deprovision_id = Some(id);
            }
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "{name} not gone after {timeout:?}:\n{}",
            bed.runner_logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
