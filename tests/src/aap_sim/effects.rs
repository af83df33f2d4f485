//! "Playbook effects": what the provision / deprovision templates do to the cluster.
//! Provision creates the KubeVirt VM and its VMI and marks the ComputeInstance with the
//! configuration it provisioned; deprovision deletes the VM and VMI. Optionally both
//! manage the AAP finalizer, as the upstream templates do.
//!
//! The VM lives where the real templates put it: in the namespace of the Tenant named by
//! the payload's `status.tenantReference`, else beside the instance.

use cloudkit_shared::names::{
    AAP_FINALIZER, GROUP, INSTANCE_LABEL,
    RECONCILED_CONFIG_VERSION_ANNOTATION as RECONCILED_ANNOTATION, VERSION,
};
use cloudkit_shared::tenant::Tenant;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams,
};
use serde_json::{Value, json};

use super::config::Role;
use super::jobs::{InstanceRef, Job};

const FIELD_MANAGER: &str = "aap-sim-playbook";

#[derive(Clone, Debug)]
pub(crate) struct EffectTarget {
    pub(crate) role: Role,
    pub(crate) instance: InstanceRef,
    pub(crate) desired_config_version: Option<String>,
    /// The Tenant object of `status.tenantReference`, when the payload names one.
    pub(crate) tenant: Option<TenantRef>,
}

/// `status.tenantReference` of the payload: the Tenant object, not the VM's namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TenantRef {
    pub(crate) namespace: String,
    pub(crate) name: String,
}

impl EffectTarget {
    pub(crate) fn task_name(&self) -> String {
        let InstanceRef { namespace, name } = &self.instance;
        match self.role {
            Role::Provision => format!("Create VirtualMachine {namespace}/{name}"),
            Role::Deprovision => format!("Delete VirtualMachine {namespace}/{name}"),
        }
    }
}

/// The payload the templates read: `extra_vars.ansible_eda.event.payload`.
pub(crate) fn payload(extra_vars: &serde_json::Map<String, Value>) -> Option<&Value> {
    extra_vars.get("ansible_eda")?.get("event")?.get("payload")
}

pub(crate) fn instance_of(extra_vars: &serde_json::Map<String, Value>) -> Option<InstanceRef> {
    let metadata = payload(extra_vars)?.get("metadata")?;
    Some(InstanceRef {
        namespace: metadata.get("namespace")?.as_str()?.to_owned(),
        name: metadata.get("name")?.as_str()?.to_owned(),
    })
}

/// The payload's `status.tenantReference`; absent, null or empty means no tenant (as the
/// template's `default(none, true)`), a reference without a name or namespace is what the
/// template finds undefined.
pub(crate) fn tenant_of(
    extra_vars: &serde_json::Map<String, Value>,
) -> Result<Option<TenantRef>, String> {
    let reference = payload(extra_vars)
        .and_then(|p| p.get("status"))
        .and_then(|s| s.get("tenantReference"));
    let Some(reference) = reference.filter(|r| !is_empty(r)) else {
        return Ok(None);
    };
    let field = |key: &str| {
        reference
            .get(key)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| format!("'dict object' has no attribute '{key}'"))
    };
    Ok(Some(TenantRef {
        name: field("name")?,
        namespace: field("namespace")?,
    }))
}

/// Jinja's falsy values, which `default(x, true)` replaces.
fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Object(m) => m.is_empty(),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Bool(b) => !b,
        Value::Number(_) => false,
    }
}

pub(crate) fn desired_config_version_of(
    extra_vars: &serde_json::Map<String, Value>,
) -> Option<String> {
    payload(extra_vars)?
        .get("status")?
        .get("desiredConfigVersion")?
        .as_str()
        .map(str::to_owned)
}

/// What the playbook will do, judged from the variables it actually received; the
/// error names the variable a real playbook would find undefined.
pub(crate) fn plan(job: &Job, role: Role) -> Result<EffectTarget, String> {
    let vars = &job.extra_vars;
    if payload(vars).is_none() {
        return Err("'ansible_eda' is undefined".to_owned());
    }
    let instance =
        instance_of(vars).ok_or_else(|| "'dict object' has no attribute 'metadata'".to_owned())?;
    let desired_config_version = desired_config_version_of(vars);
    if role == Role::Provision && desired_config_version.is_none() {
        return Err("'dict object' has no attribute 'desiredConfigVersion'".to_owned());
    }
    let tenant = tenant_of(vars)?;
    Ok(EffectTarget {
        role,
        instance,
        desired_config_version,
        tenant,
    })
}

fn resource(group: &str, version: &str, kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural)
}

fn vm_resource() -> ApiResource {
    resource("kubevirt.io", "v1", "VirtualMachine", "virtualmachines")
}

fn vmi_resource() -> ApiResource {
    resource(
        "kubevirt.io",
        "v1",
        "VirtualMachineInstance",
        "virtualmachineinstances",
    )
}

pub(crate) fn instance_resource() -> ApiResource {
    resource(GROUP, VERSION, "ComputeInstance", "computeinstances")
}

/// Performs the effect; on success, a one-line summary for the job's stdout.
pub(crate) async fn apply(
    client: &kube::Client,
    target: &EffectTarget,
    aap_finalizer: bool,
) -> Result<String, String> {
    let InstanceRef { namespace, name } = &target.instance;
    let instances: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), namespace, &instance_resource());
    match target.role {
        Role::Provision => {
            if aap_finalizer {
                set_finalizer(&instances, name, true).await?;
            }
            provision(client, target).await
        }
        Role::Deprovision => {
            let done = deprovision(client, target).await?;
            if aap_finalizer {
                set_finalizer(&instances, name, false).await?;
            }
            Ok(done)
        }
    }
}

/// Adds or removes the AAP finalizer; the resourceVersion in the patch makes a
/// concurrent writer's change a conflict, retried, rather than lost.
pub(crate) async fn set_finalizer(
    api: &Api<DynamicObject>,
    name: &str,
    present: bool,
) -> Result<(), String> {
    for _ in 0..5 {
        let current = match api.get_opt(name).await {
            Ok(Some(obj)) => obj,
            // Nothing left to hold or release.
            Ok(None) if !present => return Ok(()),
            Ok(None) => return Err(format!("ComputeInstance {name} not found")),
            Err(e) => return Err(format!("reading ComputeInstance {name}: {e}")),
        };
        let mut finalizers = current.metadata.finalizers.clone().unwrap_or_default();
        let has = finalizers.iter().any(|f| f == AAP_FINALIZER);
        if has == present {
            return Ok(());
        }
        if present {
            finalizers.push(AAP_FINALIZER.to_owned());
        } else {
            finalizers.retain(|f| f != AAP_FINALIZER);
        }
        let patch = json!({ "metadata": {
            "finalizers": finalizers,
            "resourceVersion": current.metadata.resource_version,
        } });
        match api
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => return Ok(()),
            Err(kube::Error::Api(status)) if status.code == 409 => continue,
            Err(kube::Error::Api(status)) if status.code == 404 && !present => return Ok(()),
            Err(e) => {
                return Err(format!(
                    "updating finalizers of ComputeInstance {name}: {e}"
                ));
            }
        }
    }
    Err(format!(
        "updating finalizers of ComputeInstance {name}: conflicts"
    ))
}

async fn provision(client: &kube::Client, target: &EffectTarget) -> Result<String, String> {
    let namespace = create_vm(client, target).await?;
    let marked = mark_reconciled(client, target).await?;
    Ok(format!(
        "VirtualMachine {namespace}/{} running, {marked}",
        target.instance.name
    ))
}

/// The namespace of the instance's VM: its Tenant's `status.namespace` when the payload
/// names a Tenant, else the instance's own. Fails, as the template's assert does, when that
/// Tenant is missing or has no namespace yet.
pub(crate) async fn vm_namespace(
    client: &kube::Client,
    target: &EffectTarget,
) -> Result<String, String> {
    let Some(TenantRef { namespace, name }) = &target.tenant else {
        return Ok(target.instance.namespace.clone());
    };
    let not_ready =
        || format!("Tenant {namespace}/{name} is missing or has no status.namespace yet");
    let tenants: Api<Tenant> = Api::namespaced(client.clone(), namespace);
    let tenant = tenants
        .get_opt(name)
        .await
        .map_err(|e| format!("reading Tenant {namespace}/{name}: {e}"))?
        .ok_or_else(not_ready)?;
    tenant
        .status
        .and_then(|s| s.namespace)
        .filter(|ns| !ns.is_empty())
        .ok_or_else(not_ready)
}

/// Creates (or updates) the VM and its VMI, and sets the VMI Running; returns the VM's
/// namespace. (The EDA simulator runs this and [`mark_reconciled`] as separate playbook
/// steps.)
pub(crate) async fn create_vm(
    client: &kube::Client,
    target: &EffectTarget,
) -> Result<String, String> {
    let namespace = &vm_namespace(client, target).await?;
    let name = &target.instance.name;
    let (vm_ar, vmi_ar) = (vm_resource(), vmi_resource());
    let vms: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &vm_ar);
    let vmis: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &vmi_ar);
    // Server-side apply makes a re-provision of the same instance an update, not a clash.
    let apply = PatchParams::apply(FIELD_MANAGER).force();
    let labels = json!({ INSTANCE_LABEL: name });

    let vm = json!({
        "apiVersion": "kubevirt.io/v1",
        "kind": "VirtualMachine",
        "metadata": { "name": name, "namespace": namespace, "labels": labels },
        "spec": {
            "runStrategy": "Always",
            "template": {
                "metadata": { "labels": labels },
                "spec": { "domain": { "devices": {}, "resources": { "requests": { "memory": "64Mi" } } } }
            }
        }
    });
    let vm = vms
        .patch(name, &apply, &Patch::Apply(&vm))
        .await
        .map_err(|e| format!("creating VirtualMachine {namespace}/{name}: {e}"))?;
    let vm_uid = vm.metadata.uid.clone().unwrap_or_default();

    let vmi = json!({
        "apiVersion": "kubevirt.io/v1",
        "kind": "VirtualMachineInstance",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": labels,
            // KubeVirt makes the VM the VMI's controller.
            "ownerReferences": [{
                "apiVersion": "kubevirt.io/v1",
                "kind": "VirtualMachine",
                "name": name,
                "uid": vm_uid,
                "controller": true,
                "blockOwnerDeletion": true
            }]
        },
        "spec": { "domain": { "devices": {}, "resources": { "requests": { "memory": "64Mi" } } } }
    });
    vmis.patch(name, &apply, &Patch::Apply(&vmi))
        .await
        .map_err(|e| format!("creating VirtualMachineInstance {namespace}/{name}: {e}"))?;
    // The VMI CRD has a status subresource: the phase is written there.
    let status = json!({ "status": { "phase": "Running" } });
    vmis.patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .map_err(|e| format!("setting VirtualMachineInstance {namespace}/{name} Running: {e}"))?;
    Ok(namespace.clone())
}

/// Sets the reconciled-config-version annotation: the sign that provisioning is done;
/// returns `annotation=version`.
pub(crate) async fn mark_reconciled(
    client: &kube::Client,
    target: &EffectTarget,
) -> Result<String, String> {
    let InstanceRef { namespace, name } = &target.instance;
    let version = target.desired_config_version.clone().unwrap_or_default();
    let instances: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), namespace, &instance_resource());
    let annotation = json!({ "metadata": { "annotations": { RECONCILED_ANNOTATION: version } } });
    instances
        .patch(name, &PatchParams::default(), &Patch::Merge(&annotation))
        .await
        .map_err(|e| format!("annotating ComputeInstance {namespace}/{name}: {e}"))?;
    Ok(format!("{RECONCILED_ANNOTATION}={version}"))
}

pub(crate) async fn deprovision(
    client: &kube::Client,
    target: &EffectTarget,
) -> Result<String, String> {
    let namespace = &vm_namespace(client, target).await?;
    let name = &target.instance.name;
    for ar in [vmi_resource(), vm_resource()] {
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &ar);
        match api.delete(name, &DeleteParams::default()).await {
            Ok(_) => {}
            // Already gone is what we want.
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(e) => return Err(format!("deleting {} {namespace}/{name}: {e}", ar.kind)),
        }
    }
    Ok(format!("VirtualMachine {namespace}/{name} deleted"))
}
