//! Instances that already run, created fast: one "seed" instance is provisioned by the
//! real runner through the AAP simulator, and its settled status (with its name, namespace
//! and UID swapped) is written to every copy, next to a VM and a Running VMI, as the
//! provisioning playbook would have left them. The runner then only has to settle them.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use cloudkit_shared::names::{INSTANCE_LABEL, RUNNER_FIELD_MANAGER};
use cloudkit_shared::{ComputeInstance, ComputeInstanceSpec, Phase};
use futures::{StreamExt, TryStreamExt};
use kube::api::{Api, DynamicObject, ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Resource, ResourceExt};
use serde_json::json;

use super::runner::BenchRunner;
use crate::kubevirt_sim::{vm_resource, vmi_resource};

/// The template every copy is made from.
#[derive(Clone, Debug)]
pub struct Seed {
    pub spec: ComputeInstanceSpec,
    pub finalizers: Vec<String>,
    pub annotations: BTreeMap<String, String>,
    namespace: String,
    name: String,
    uid: String,
    /// The settled status as JSON text, with the seed's own name, namespace and UID in it.
    status: String,
}

/// The name of instance number `i`.
pub fn instance_name(i: usize) -> String {
    format!("ci-{i:06}")
}

pub const SEED_NAME: &str = "benchseed";

impl Seed {
    /// Provisions the seed with `runner` (already started on `namespace`) and waits
    /// until it is Running and the runner has stopped writing its status.
    pub async fn provision(
        client: &kube::Client,
        namespace: &str,
        runner: &mut BenchRunner,
        timeout: Duration,
    ) -> anyhow::Result<Self> {
        let api: Api<ComputeInstance> = Api::namespaced(client.clone(), namespace);
        let spec = ComputeInstanceSpec {
            template_id: "osac.templates.ocp_small".into(),
            ..Default::default()
        };
        api.create(
            &PostParams::default(),
            &ComputeInstance::new(SEED_NAME, spec),
        )
        .await
        .context("creating the seed instance")?;
        let deadline = Instant::now() + timeout;
        let mut last: Option<(String, u64)> = None;
        let mut stable_since = Instant::now();
        loop {
            anyhow::ensure!(
                Instant::now() < deadline,
                "the seed instance was not Running and settled within {timeout:?}:\n{}",
                runner.log_tail(20)
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
            let ci = api.get(SEED_NAME).await?;
            let writes = runner.scrape().await?.status_writes;
            let running = ci.status.as_ref().and_then(|s| s.phase) == Some(Phase::Running);
            let now = (ci.resource_version().unwrap_or_default(), writes);
            if last.as_ref() != Some(&now) {
                last = Some(now);
                stable_since = Instant::now();
                continue;
            }
            if running && stable_since.elapsed() >= Duration::from_millis(1500) {
                let status = ci.status.clone().context("the seed has a status")?;
                return Ok(Self {
                    spec: ci.spec.clone(),
                    finalizers: ci.finalizers().to_vec(),
                    annotations: ci.annotations().clone(),
                    namespace: namespace.to_string(),
                    name: SEED_NAME.to_string(),
                    uid: ci.uid().unwrap_or_default(),
                    status: serde_json::to_string(&status)?,
                });
            }
        }
    }

    /// The seed's status as it would read for `name` in `namespace` with `uid`.
    pub fn status_for(&self, namespace: &str, name: &str, uid: &str) -> serde_json::Value {
        let text = self
            .status
            .replace(&self.uid, uid)
            .replace(&self.namespace, namespace)
            .replace(&self.name, name);
        serde_json::from_str(&text).unwrap_or_default()
    }
}

/// Creates instances `range` in `namespace` as if provisioned: VM, VMI (Running), the
/// instance with the seed's finalizers and annotations, and its status written the way
/// the runner writes it (server-side apply, the runner's field manager). Five API
/// writes per instance, `concurrency` instances at a time.
pub async fn create_running(
    client: &kube::Client,
    namespace: &str,
    seed: &Seed,
    range: std::ops::Range<usize>,
    concurrency: usize,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    futures::stream::iter(range.map(|i| create_one(client, namespace, seed, instance_name(i))))
        .buffer_unordered(concurrency.max(1))
        .try_collect::<Vec<()>>()
        .await?;
    Ok(started.elapsed())
}

async fn create_one(
    client: &kube::Client,
    namespace: &str,
    seed: &Seed,
    name: String,
) -> anyhow::Result<()> {
    let labels: BTreeMap<String, String> = [(INSTANCE_LABEL.to_string(), name.clone())].into();
    let (vm_ar, vmi_ar) = (vm_resource(), vmi_resource());
    let vms: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &vm_ar);
    let vmis: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &vmi_ar);
    let domain = json!({ "devices": {}, "resources": { "requests": { "memory": "64Mi" } } });

    let mut vm = DynamicObject::new(&name, &vm_ar).within(namespace);
    vm.metadata.labels = Some(labels.clone());
    vm.data = json!({ "spec": {
        "runStrategy": "Always",
        "template": { "metadata": { "labels": labels }, "spec": { "domain": domain } }
    } });
    let vm = vms
        .create(&PostParams::default(), &vm)
        .await
        .with_context(|| format!("creating VirtualMachine {namespace}/{name}"))?;
    create_running_vmi(&vmis, namespace, &name, labels, vm.uid()).await?;

    let instances: Api<ComputeInstance> = Api::namespaced(client.clone(), namespace);
    let mut ci = ComputeInstance::new(&name, seed.spec.clone());
    ci.metadata = ObjectMeta {
        name: Some(name.clone()),
        namespace: Some(namespace.to_string()),
        finalizers: Some(seed.finalizers.clone()),
        annotations: Some(seed.annotations.clone()),
        ..Default::default()
    };
    let ci = instances
        .create(&PostParams::default(), &ci)
        .await
        .with_context(|| format!("creating ComputeInstance {namespace}/{name}"))?;
    let status = seed.status_for(namespace, &name, &ci.uid().unwrap_or_default());
    let patch = json!({
        "apiVersion": ComputeInstance::api_version(&()),
        "kind": ComputeInstance::kind(&()),
        "status": status,
    });
    instances
        .patch_status(
            &name,
            &PatchParams::apply(RUNNER_FIELD_MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await
        .with_context(|| format!("writing the status of ComputeInstance {namespace}/{name}"))?;
    Ok(())
}

/// Creates a VMI (owned by the VM when its UID is known) and marks it Running, as
/// virt-controller and virt-handler would.
pub async fn create_running_vmi(
    vmis: &Api<DynamicObject>,
    namespace: &str,
    name: &str,
    labels: BTreeMap<String, String>,
    vm_uid: Option<String>,
) -> anyhow::Result<()> {
    let vmi_ar = vmi_resource();
    let mut vmi = DynamicObject::new(name, &vmi_ar).within(namespace);
    vmi.metadata.labels = Some(labels);
    if let Some(uid) = vm_uid {
        vmi.metadata.owner_references = Some(vec![
            k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
                api_version: "kubevirt.io/v1".into(),
                kind: "VirtualMachine".into(),
                name: name.to_string(),
                uid,
                controller: Some(true),
                block_owner_deletion: Some(true),
            },
        ]);
    }
    vmi.data = json!({ "spec": { "domain": {
        "devices": {}, "resources": { "requests": { "memory": "64Mi" } }
    } } });
    vmis.create(&PostParams::default(), &vmi)
        .await
        .with_context(|| format!("creating VirtualMachineInstance {name}"))?;
    // The VMI CRD has a status subresource: the phase is written there.
    vmis.patch_status(
        name,
        &PatchParams::default(),
        &Patch::Merge(&json!({ "status": { "phase": "Running" } })),
    )
    .await
    .with_context(|| format!("setting VirtualMachineInstance {name} Running"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seed_status_is_renamed() {
        let seed = Seed {
            spec: ComputeInstanceSpec::default(),
            finalizers: Vec::new(),
            annotations: BTreeMap::new(),
            namespace: "bench-seed-7".into(),
            name: SEED_NAME.into(),
            uid: "1111-2222".into(),
            status: r#"{"virtualMachineReference":{"namespace":"bench-seed-7","kubeVirtVirtualMachineName":"benchseed"},"jobs":[{"correlationKey":"1111-2222:provision:abc:1"}]}"#.into(),
        };
        let status = seed.status_for("bench-scale-9", "ci-000042", "3333");
        assert_eq!(
            status["virtualMachineReference"]["namespace"],
            "bench-scale-9"
        );
        assert_eq!(
            status["virtualMachineReference"]["kubeVirtVirtualMachineName"],
            "ci-000042"
        );
        assert_eq!(status["jobs"][0]["correlationKey"], "3333:provision:abc:1");
    }

    #[test]
    fn names_sort_in_creation_order() {
        assert_eq!(instance_name(7), "ci-000007");
        assert!(instance_name(999) < instance_name(1000));
        assert!(instance_name(99_999) < instance_name(100_000));
    }
}
