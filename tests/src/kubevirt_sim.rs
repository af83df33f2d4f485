//! What virt-controller does for a VM with run strategy `Always`: when its VMI is deleted,
//! a new one (new UID) is created after a delay. A halted VM gets none.
//!
//! A bed's simulator serves the bed's namespace and its tenant namespaces
//! (`<namespace>-<enc(tenant)>`), and no other bed's: tests of one binary share one API server.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use kube::ResourceExt;
use kube::api::{
    Api, ApiResource, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams, PostParams,
};
use serde_json::json;

use cloudkit_shared::names::INSTANCE_LABEL;

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

/// A VM as a provisioning template leaves it: run strategy `Always`, labelled for instance
/// `name`. A running simulator serving `namespace` gives it a VMI.
pub async fn create_vm(
    client: &kube::Client,
    namespace: &str,
    name: &str,
) -> Result<DynamicObject, kube::Error> {
    create_vm_for(client, namespace, name, name).await
}

/// A VM named `name` labelled for instance `instance` (a tool other than the provisioning
/// templates may name it otherwise).
pub async fn create_vm_for(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    instance: &str,
) -> Result<DynamicObject, kube::Error> {
    let vms: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &vm_resource());
    let labels = json!({ INSTANCE_LABEL: instance });
    let vm: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine",
        "metadata": { "name": name, "labels": labels },
        "spec": { "runStrategy": "Always", "template": { "metadata": { "labels": labels },
            "spec": { "domain": { "devices": {}, "resources": { "requests": { "memory": "64Mi" } } } } } }
    }))
    .map_err(kube::Error::SerdeError)?;
    vms.create(&PostParams::default(), &vm).await
}

/// Knobs a test can turn while the simulator runs.
#[derive(Default)]
pub struct KubevirtKnobs {
    /// Delay before a deleted VMI comes back, in milliseconds.
    pub recreate_delay_ms: AtomicU64,
    /// When set, deleted VMIs are not recreated (a broken virt-controller).
    /// Set it with [`KubevirtSimulator::pause`], which also waits out a pass in flight.
    pub paused: AtomicBool,
    /// Held for each reconcile pass, so `pause` returns only once no pass can still create a VMI.
    pass: tokio::sync::Mutex<()>,
    /// VMIs created so far.
    pub recreated: AtomicU64,
}

/// Runs until dropped.
pub struct KubevirtSimulator {
    pub knobs: Arc<KubevirtKnobs>,
    task: tokio::task::JoinHandle<()>,
}

impl KubevirtSimulator {
    /// Watches VMs labelled for cloudkit in `namespace` and its tenant namespaces (all
    /// namespaces when `None`).
    pub fn start(
        client: kube::Client,
        namespace: Option<String>,
        recreate_delay: Duration,
    ) -> Self {
        let knobs = Arc::new(KubevirtKnobs::default());
        knobs
            .recreate_delay_ms
            .store(recreate_delay.as_millis() as u64, Ordering::Relaxed);
        let k = knobs.clone();
        let task = tokio::spawn(async move {
            // Tenant namespaces have names of their own, so the lists are cluster-wide and
            // filtered by name.
            let vms: Api<DynamicObject> = Api::all_with(client.clone(), &vm_resource());
            let vmis: Api<DynamicObject> = Api::all_with(client.clone(), &vmi_resource());
            let serves = |candidate: &str| match &namespace {
                Some(ns) => serves_namespace(ns, candidate),
                None => true,
            };
            loop {
                {
                    let _pass = k.pass.lock().await;
                    if !k.paused.load(Ordering::Relaxed) {
                        let _ = reconcile_once(&client, &vms, &vmis, &k, &serves).await;
                    }
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        Self { knobs, task }
    }

    /// Stops recreating VMIs; returns after any pass in flight has finished, so a VMI deleted
    /// from now on stays deleted.
    pub async fn pause(&self) {
        self.knobs.paused.store(true, Ordering::Relaxed);
        drop(self.knobs.pass.lock().await);
    }

    pub fn resume(&self) {
        self.knobs.paused.store(false, Ordering::Relaxed);
    }
}

impl Drop for KubevirtSimulator {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Whether a bed in `namespace` owns `candidate`: the namespace itself, or one of its tenant
/// namespaces (`<namespace>-` and 13 characters of the lower-case base32 alphabet).
pub fn serves_namespace(namespace: &str, candidate: &str) -> bool {
    if candidate == namespace {
        return true;
    }
    candidate
        .strip_prefix(namespace)
        .and_then(|rest| rest.strip_prefix('-'))
        .is_some_and(|enc| {
            enc.len() == 13
                && enc
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || (b'2'..=b'7').contains(&b))
        })
}

async fn reconcile_once(
    client: &kube::Client,
    vms: &Api<DynamicObject>,
    vmis: &Api<DynamicObject>,
    knobs: &KubevirtKnobs,
    serves: &impl Fn(&str) -> bool,
) -> Result<(), kube::Error> {
    let lp = ListParams::default().labels(INSTANCE_LABEL);
    let present: Vec<(String, String)> = vmis
        .list(&lp)
        .await?
        .items
        .iter()
        .map(|v| (v.namespace().unwrap_or_default(), v.name_any()))
        .collect();
    for vm in vms.list(&lp).await?.items {
        let halted = vm.data["spec"]["runStrategy"].as_str() == Some("Halted")
            || vm.data["spec"]["running"].as_bool() == Some(false);
        let ns = vm.namespace().unwrap_or_default();
        if !serves(&ns)
            || halted
            || vm.metadata.deletion_timestamp.is_some()
            || present.contains(&(ns.clone(), vm.name_any()))
        {
            continue;
        }
        tokio::time::sleep(Duration::from_millis(
            knobs.recreate_delay_ms.load(Ordering::Relaxed),
        ))
        .await;
        let vmi: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &vmi_resource());
        let mut obj = DynamicObject::new(&vm.name_any(), &vmi_resource()).within(&ns);
        obj.metadata.labels = Some(vm.labels().clone());
        obj.data = json!({"spec": {}});
        if vmi.create(&PostParams::default(), &obj).await.is_ok() {
            // The VMI CRD has a status subresource: the phase is written there.
            let running = json!({"status": {"phase": "Running"}});
            vmi.patch_status(
                &vm.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&running),
            )
            .await?;
            knobs.recreated.fetch_add(1, Ordering::Relaxed);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::serves_namespace;
    use cloudkit_shared::tenant::namespace_name;

    #[test]
    fn a_bed_serves_its_namespace_and_its_tenant_namespaces_only() {
        assert!(serves_namespace("bed-3", "bed-3"));
        assert!(serves_namespace("bed-3", &namespace_name("bed-3", "acme")));
        assert!(serves_namespace("bed-3", &namespace_name("bed-3", "")));
        // Another bed's namespace and its tenants.
        assert!(!serves_namespace("bed-3", "bed-31"));
        assert!(!serves_namespace("bed-3", "bed-3-12"));
        assert!(!serves_namespace(
            "bed-3",
            &namespace_name("bed-31", "acme")
        ));
        assert!(!serves_namespace(
            "bed-3",
            &format!("{}-7", namespace_name("bed-3", "acme"))
        ));
        assert!(!serves_namespace("bed-3", "bed-3-ABCDEFGHIJKLM"));
    }
}
