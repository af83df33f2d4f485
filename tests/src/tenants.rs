//! Tenants as the upstream operator leaves them, for tests that start from a cluster it ran
//! and for simulator tests that need a Tenant to read: the Tenant object, its namespace and
//! network with the upstream labels, and status Ready naming the namespace.

use std::collections::BTreeMap;

use cloudkit_shared::tenant::{
    self, APP_LABEL, FINALIZER, PRIMARY_UDN_LABEL, PROJECT_LABEL, TENANT_REF_LABEL, Tenant,
    TenantPhase, TenantSpec, TenantStatus, UDN_NAME,
};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{
    Api, ApiResource, DynamicObject, GroupVersionKind, ObjectMeta, Patch, PatchParams, PostParams,
};
use serde_json::json;

/// The names a Tenant stands for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TenantNames {
    /// The Tenant object, `tenant-<enc>`, in the instances' namespace.
    pub object: String,
    /// Its namespace, `<instances' namespace>-<enc>`, where the VMs live.
    pub namespace: String,
}

impl TenantNames {
    pub fn of(namespace: &str, tenant: &str) -> Self {
        Self {
            object: tenant::object_name(tenant),
            namespace: tenant::namespace_name(namespace, tenant),
        }
    }
}

pub fn udn_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("k8s.ovn.org", "v1", "UserDefinedNetwork"),
        "userdefinednetworks",
    )
}

/// Creates what the upstream operator leaves for tenant `tenant` of instances in
/// `namespace`: the Tenant (its label, `spec.name`, owner references `owners`, its finalizer),
/// the namespace with the upstream labels, the network `udn` in it, and status Ready with
/// that namespace.
pub async fn create_upstream_ready(
    client: &kube::Client,
    namespace: &str,
    tenant: &str,
    owners: Vec<OwnerReference>,
) -> Result<TenantNames, kube::Error> {
    let names = TenantNames::of(namespace, tenant);
    let labels = |extra: &[(&str, &str)]| -> BTreeMap<String, String> {
        std::iter::once(APP_LABEL)
            .chain(extra.iter().copied())
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    };
    let tenants: Api<Tenant> = Api::namespaced(client.clone(), namespace);
    let mut object = Tenant::new(
        &names.object,
        TenantSpec {
            name: tenant.to_owned(),
        },
    );
    object.metadata = ObjectMeta {
        name: Some(names.object.clone()),
        namespace: Some(namespace.to_owned()),
        labels: Some(labels(&[])),
        owner_references: Some(owners),
        finalizers: Some(vec![FINALIZER.to_owned()]),
        ..Default::default()
    };
    tenants.create(&PostParams::default(), &object).await?;

    let namespace_labels = labels(&[
        (TENANT_REF_LABEL, &names.object),
        (PROJECT_LABEL, namespace),
        (PRIMARY_UDN_LABEL, ""),
    ]);
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let tenant_namespace = Namespace {
        metadata: ObjectMeta {
            name: Some(names.namespace.clone()),
            labels: Some(namespace_labels.clone()),
            ..Default::default()
        },
        ..Default::default()
    };
    namespaces
        .create(&PostParams::default(), &tenant_namespace)
        .await?;

    let udns: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), &names.namespace, &udn_resource());
    let udn: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "k8s.ovn.org/v1",
        "kind": "UserDefinedNetwork",
        "metadata": { "name": UDN_NAME, "labels": namespace_labels },
        "spec": { "topology": "Layer2", "layer2": {
            "role": "Primary", "subnets": ["10.200.0.0/16"], "ipam": { "lifecycle": "Persistent" } } }
    }))
    .map_err(kube::Error::SerdeError)?;
    udns.create(&PostParams::default(), &udn).await?;

    let status = TenantStatus {
        phase: Some(TenantPhase::Ready),
        namespace: Some(names.namespace.clone()),
    };
    tenants
        .patch_status(
            &names.object,
            &PatchParams::default(),
            &Patch::Merge(&json!({ "status": status })),
        )
        .await?;
    Ok(names)
}
