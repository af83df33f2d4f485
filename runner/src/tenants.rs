//! Tenants, as the upstream operator has them.
//!
//! An instance annotated `cloudkit.openshift.io/tenant: T` owns (with other instances of T in
//! its namespace) the Tenant object `tenant-<enc(T)>`; the Tenant controller below gives that
//! object its namespace `<namespace>-<enc(T)>` and an OVN primary network, and the
//! provisioning template puts the VM there. Deleting the last owning instance lets the
//! garbage collector delete the Tenant; its finalizer then removes the network and the
//! namespace, in that order.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use cloudkit_shared::ComputeInstance;
use cloudkit_shared::plan::TenantInfo;
use cloudkit_shared::tenant::{
    self, APP_LABEL, PRIMARY_UDN_LABEL, PROJECT_LABEL, TENANT_REF_LABEL, Tenant, TenantPhase,
    UDN_NAME,
};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::finalizer::{Event as FinalizerEvent, finalizer};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use serde_json::json;
use tracing::{info, warn};

use cloudkit_shared::names::RUNNER_FIELD_MANAGER;

/// What `plan` needs to know about the instance's Tenant object.
pub fn info(tenants: &Store<Tenant>, ci: &ComputeInstance) -> Option<TenantInfo> {
    let name = tenant_of(ci)?;
    let key = ObjectRef::new(&tenant::object_name(&name)).within(&ci.namespace()?);
    let t = tenants.get(&key)?;
    let uid = ci.uid();
    Some(TenantInfo {
        ready: t.status.as_ref().and_then(|s| s.phase) == Some(TenantPhase::Ready),
        owned: t
            .owner_references()
            .iter()
            .any(|o| Some(&o.uid) == uid.as_ref()),
    })
}

/// The namespace the instance's VM lives in when it has a Ready tenant.
pub fn vm_namespace(tenants: &Store<Tenant>, ci: &ComputeInstance) -> Option<String> {
    let name = tenant_of(ci)?;
    let key = ObjectRef::new(&tenant::object_name(&name)).within(&ci.namespace()?);
    tenants.get(&key)?.status.as_ref()?.namespace.clone()
}

fn tenant_of(ci: &ComputeInstance) -> Option<String> {
    ci.annotations()
        .get(cloudkit_shared::names::TENANT_ANNOTATION)
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
}

/// The namespace whose Tenant a tenant namespace (`<namespace>-<13 base32 characters>`)
/// belongs to, or `None` for a namespace not named like one.
pub fn project_of(namespace: &str) -> Option<&str> {
    let (project, suffix) = namespace.rsplit_once('-')?;
    let tenant_like = suffix.len() == 13
        && suffix
            .bytes()
            .all(|b| b.is_ascii_lowercase() || (b'2'..=b'7').contains(&b));
    tenant_like.then_some(project)
}

/// The instances that own a Tenant (for waking them when it changes).
pub fn owners(t: Tenant) -> Vec<ObjectRef<crate::compact::CompactInstance>> {
    let ns = t.namespace().unwrap_or_default();
    t.owner_references()
        .iter()
        .filter(|o| o.kind == "ComputeInstance")
        .map(|o| ObjectRef::new(&o.name).within(&ns))
        .collect()
}

/// Creates the Tenant object owned by `ci`, or adds `ci` to the owners of the existing one.
/// Owners are added with a JSON patch that tests the resourceVersion, so two instances of a
/// tenant adding themselves at once cannot drop each other.
pub async fn ensure(
    client: &kube::Client,
    ci: &ComputeInstance,
    tenant_name: &str,
    object: &str,
) -> Result<(), String> {
    let ns = ci.namespace().unwrap_or_default();
    let api: Api<Tenant> = Api::namespaced(client.clone(), &ns);
    let owner = OwnerReference {
        api_version: ComputeInstance::api_version(&()).into_owned(),
        kind: ComputeInstance::kind(&()).into_owned(),
        name: ci.name_any(),
        uid: ci.uid().unwrap_or_default(),
        ..OwnerReference::default()
    };
    let context = |e: kube::Error| format!("Tenant {ns}/{object}: {e}");
    match api.get_opt(object).await.map_err(context)? {
        None => {
            let mut t = Tenant::new(
                object,
                tenant::TenantSpec {
                    name: tenant_name.to_string(),
                },
            );
            t.metadata.namespace = Some(ns.clone());
            t.metadata.labels = Some(BTreeMap::from([(APP_LABEL.0.into(), APP_LABEL.1.into())]));
            t.metadata.owner_references = Some(vec![owner]);
            match api.create(&PostParams::default(), &t).await {
                Ok(_) => {
                    info!(tenant = %tenant_name, object = %object, namespace = %ns, "created Tenant");
                    Ok(())
                }
                // Another instance of the tenant created it first: next pass adds us.
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
                Err(e) => Err(context(e)),
            }
        }
        Some(t) if t.owner_references().iter().any(|o| o.uid == owner.uid) => Ok(()),
        Some(t) => {
            // A merge patch replaces the list; the resourceVersion makes it conditional on
            // the copy read, so a concurrent addition is never dropped (409: read again).
            let mut refs = t.owner_references().to_vec();
            refs.push(owner);
            let patch = json!({"metadata": {
                "resourceVersion": t.resource_version(),
                "ownerReferences": refs,
            }});
            match api
                .patch(object, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => Ok(()),
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
                Err(e) => Err(context(e)),
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TenantError {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("finalizer: {0}")]
    Finalizer(Box<kube::runtime::finalizer::Error<TenantError>>),
    /// The namespace is still terminating (not a failure).
    #[error("waiting for namespace {0} to be deleted")]
    NamespaceTerminating(String),
}

struct TenantContext {
    client: kube::Client,
    /// Set once "the UserDefinedNetwork resource is not served" has been logged. Each Tenant
    /// still tries, so a network CRD installed later is picked up without a restart.
    no_udn_logged: AtomicBool,
}

fn udn_resource() -> ApiResource {
    ApiResource {
        group: "k8s.ovn.org".into(),
        version: "v1".into(),
        api_version: "k8s.ovn.org/v1".into(),
        kind: "UserDefinedNetwork".into(),
        plural: "userdefinednetworks".into(),
    }
}

/// Runs the Tenant controller over `api`'s Tenants until `shutdown` resolves.
pub async fn run(
    client: kube::Client,
    api: Api<Tenant>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let ctx = Arc::new(TenantContext {
        client,
        no_udn_logged: AtomicBool::new(false),
    });
    Controller::new(api, watcher::Config::default())
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx)
        .for_each(|_| async {})
        .await;
}

async fn reconcile(t: Arc<Tenant>, ctx: Arc<TenantContext>) -> Result<Action, TenantError> {
    let api: Api<Tenant> = Api::namespaced(ctx.client.clone(), &t.namespace().unwrap_or_default());
    finalizer(&api, tenant::FINALIZER, t, |event| async {
        match event {
            FinalizerEvent::Apply(t) => apply(&t, &api, &ctx).await,
            FinalizerEvent::Cleanup(t) => cleanup(&t, &api, &ctx).await,
        }
    })
    .await
    .map_err(|e| TenantError::Finalizer(Box::new(e)))
}

fn error_policy(t: Arc<Tenant>, err: &TenantError, _: Arc<TenantContext>) -> Action {
    let waiting = matches!(err, TenantError::Finalizer(inner)
        if matches!(inner.as_ref(), kube::runtime::finalizer::Error::CleanupFailed(TenantError::NamespaceTerminating(_))));
    if waiting {
        return Action::requeue(Duration::from_secs(2));
    }
    warn!(tenant = %t.name_any(), error = %err, "tenant reconcile failed");
    Action::requeue(Duration::from_secs(5))
}

fn labels(t: &Tenant) -> serde_json::Value {
    json!({
        APP_LABEL.0: APP_LABEL.1,
        TENANT_REF_LABEL: t.name_any(),
        PROJECT_LABEL: t.namespace().unwrap_or_default(),
        PRIMARY_UDN_LABEL: "",
    })
}

async fn apply(t: &Tenant, api: &Api<Tenant>, ctx: &TenantContext) -> Result<Action, TenantError> {
    let ns = tenant::namespace_name(&t.namespace().unwrap_or_default(), &t.spec.name);
    let params = PatchParams::apply(RUNNER_FIELD_MANAGER);
    let namespaces: Api<Namespace> = Api::all(ctx.client.clone());
    let namespace = json!({
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": { "name": ns, "labels": labels(t) },
    });
    namespaces
        .patch(&ns, &params, &Patch::Apply(&namespace))
        .await?;
    let udns: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), &ns, &udn_resource());
    let udn = json!({
        "apiVersion": "k8s.ovn.org/v1", "kind": "UserDefinedNetwork",
        "metadata": { "name": UDN_NAME, "namespace": ns, "labels": labels(t) },
        "spec": { "topology": "Layer2", "layer2": {
            "role": "Primary", "subnets": ["10.200.0.0/16"], "ipam": { "lifecycle": "Persistent" } } },
    });
    match udns.patch(UDN_NAME, &params, &Patch::Apply(&udn)).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if tenant::network_not_served(&s) => {
            if !ctx.no_udn_logged.swap(true, Ordering::Relaxed) {
                info!(
                    "the UserDefinedNetwork resource (k8s.ovn.org/v1) is not served: tenant namespaces get no primary network; install OVN-Kubernetes' CRDs to have one"
                );
            }
        }
        // Among them the 404 for a namespace deleted since the apply above (an old one of
        // the same name that was terminating): the next pass creates it again.
        Err(e) => return Err(e.into()),
    }
    let ready = t.status.as_ref().is_some_and(|s| {
        s.phase == Some(TenantPhase::Ready) && s.namespace.as_deref() == Some(ns.as_str())
    });
    if !ready {
        set_status(api, t, TenantPhase::Ready, Some(&ns)).await?;
        info!(tenant = %t.spec.name, namespace = %ns, "tenant ready");
    }
    Ok(Action::await_change())
}

async fn cleanup(
    t: &Tenant,
    api: &Api<Tenant>,
    ctx: &TenantContext,
) -> Result<Action, TenantError> {
    let ns = tenant::namespace_name(&t.namespace().unwrap_or_default(), &t.spec.name);
    if t.status.as_ref().and_then(|s| s.phase) != Some(TenantPhase::Deleting) {
        // Best effort: the Tenant may be going away under us.
        let _ = set_status(api, t, TenantPhase::Deleting, Some(&ns)).await;
    }
    let gone = |r: Result<_, kube::Error>| match r {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(e),
    };
    let udns: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), &ns, &udn_resource());
    gone(
        udns.delete(UDN_NAME, &DeleteParams::default())
            .await
            .map(|_| ()),
    )?;
    let namespaces: Api<Namespace> = Api::all(ctx.client.clone());
    match namespaces.get_opt(&ns).await? {
        None => {
            info!(tenant = %t.spec.name, namespace = %ns, "tenant namespace deleted; releasing the Tenant");
            Ok(Action::await_change())
        }
        Some(existing) => {
            if existing.metadata.deletion_timestamp.is_none() {
                gone(
                    namespaces
                        .delete(&ns, &DeleteParams::default())
                        .await
                        .map(|_| ()),
                )?;
            }
            Err(TenantError::NamespaceTerminating(ns))
        }
    }
}

async fn set_status(
    api: &Api<Tenant>,
    t: &Tenant,
    phase: TenantPhase,
    namespace: Option<&str>,
) -> Result<(), kube::Error> {
    let patch = json!({
        "apiVersion": Tenant::api_version(&()),
        "kind": Tenant::kind(&()),
        "status": { "phase": phase, "namespace": namespace },
    });
    api.patch_status(
        &t.name_any(),
        &PatchParams::apply(RUNNER_FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await?;
    Ok(())
}
