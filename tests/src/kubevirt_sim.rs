//! What virt-controller does for a VM with run strategy `Always`: when its VMI is deleted,
//! a new one (new UID) is created after a delay. A halted VM gets none.

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
    /// Watches VMs labelled for cloudkit in `namespace` (all when `None`).
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
            let api = |ar: &ApiResource| -> Api<DynamicObject> {
                match &namespace {
                    Some(ns) => Api::namespaced_with(client.clone(), ns, ar),
                    None => Api::all_with(client.clone(), ar),
                }
            };
            let (vms, vmis) = (api(&vm_resource()), api(&vmi_resource()));
            loop {
                {
                    let _pass = k.pass.lock().await;
                    if !k.paused.load(Ordering::Relaxed) {
                        let _ = reconcile_once(&client, &vms, &vmis, &k).await;
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

async fn reconcile_once(
    client: &kube::Client,
    vms: &Api<DynamicObject>,
    vmis: &Api<DynamicObject>,
    knobs: &KubevirtKnobs,
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
        if halted
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
