//! The `Tenant` custom resource, as the upstream operator defines it, and its names.
//!
//! An instance annotated `cloudkit.openshift.io/tenant: T` belongs to the Tenant object
//! `tenant-<enc(T)>` in the instance's namespace; that Tenant gets the namespace
//! `<its namespace>-<enc(T)>`, where the provisioning template puts the VM.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::config_version::fnv1a64;

/// A tenant of the cloud: its own namespace and primary network.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "cloudkit.openshift.io",
    version = "v1alpha1",
    kind = "Tenant",
    plural = "tenants",
    namespaced,
    status = "TenantStatus",
    derive = "PartialEq",
    derive = "Default",
    doc = "A tenant: the namespace and network its compute instances' VMs live in.",
    printcolumn = r#"{"name": "Tenant", "type": "string", "jsonPath": ".spec.name"}"#,
    printcolumn = r#"{"name": "Phase", "type": "string", "jsonPath": ".status.phase"}"#,
    printcolumn = r#"{"name": "Namespace", "type": "string", "jsonPath": ".status.namespace"}"#
)]
pub struct TenantSpec {
    /// The tenant's name, as in the instances' `cloudkit.openshift.io/tenant` annotation.
    #[schemars(extend("x-kubernetes-validations" = [{"rule": "self == oldSelf", "message": "spec.name is immutable"}]))]
    pub name: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct TenantStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<TenantPhase>,
    /// The namespace the tenant's VMs live in, once it exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum TenantPhase {
    Progressing,
    Failed,
    Ready,
    Deleting,
    /// A phase this version does not know; never written.
    #[serde(other)]
    #[schemars(skip)]
    Unknown,
}

/// Lower-case, unpadded, standard base32 of the big-endian FNV-1a 64 of `name`: the upstream
/// operator's encoding, so names it created are found again.
pub fn encode(name: &str) -> String {
    const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
    let bytes = fnv1a64(name.as_bytes()).to_be_bytes();
    let mut bits: u32 = 0;
    let mut held = 0u32;
    let mut out = String::with_capacity(13);
    for b in bytes {
        bits = (bits << 8) | u32::from(b);
        held += 8;
        while held >= 5 {
            held -= 5;
            out.push(char::from(ALPHABET[((bits >> held) & 31) as usize]));
        }
    }
    if held > 0 {
        out.push(char::from(ALPHABET[((bits << (5 - held)) & 31) as usize]));
    }
    out
}

/// The Tenant object of tenant `name`: `tenant-<enc(name)>`.
pub fn object_name(tenant: &str) -> String {
    format!("tenant-{}", encode(tenant))
}

/// The namespace of a Tenant object in `namespace` with `spec.name`: `<namespace>-<enc>`.
pub fn namespace_name(namespace: &str, tenant: &str) -> String {
    format!("{namespace}-{}", encode(tenant))
}

/// Finalizer the Tenant controller holds until the namespace and network are gone.
pub const FINALIZER: &str = "cloudkit.openshift.io/tenant";
/// Label on Tenant objects, namespaces and networks the operator creates.
pub const APP_LABEL: (&str, &str) = ("app.kubernetes.io/name", "cloudkit-operator");
/// Label on a tenant namespace naming its Tenant object.
pub const TENANT_REF_LABEL: &str = "cloudkit.openshift.io/tenant-ref";
/// Label on a tenant namespace naming the namespace of its Tenant object.
pub const PROJECT_LABEL: &str = "cloudkit.openshift.io/project";
/// Label that makes OVN give the namespace a primary user-defined network.
pub const PRIMARY_UDN_LABEL: &str = "k8s.ovn.org/primary-user-defined-network";
/// Name of the UserDefinedNetwork in a tenant namespace.
pub const UDN_NAME: &str = "udn";

/// Whether the API server's 404 to a write of the tenant's network means that the
/// UserDefinedNetwork resource is not served (no OVN-Kubernetes CRDs). A write into a
/// namespace deleted a moment earlier gets a 404 too, from NamespaceLifecycle, naming the
/// namespace: that one is retried, never read as "no network here".
pub fn network_not_served(status: &kube::core::Status) -> bool {
    status.code == 404
        && status
            .details
            .as_ref()
            .is_none_or(|d| d.kind != "namespaces")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values printed by Go's `base32.StdEncoding.WithPadding(NoPadding)` over
    /// `fnv.New64a().Sum(nil)`, lower-cased (go1.26), pinned here.
    #[test]
    fn names_match_the_upstream_operator() {
        assert_eq!(encode("acme"), GO_ACME);
        assert_eq!(encode(""), GO_EMPTY);
        assert_eq!(object_name("acme"), format!("tenant-{GO_ACME}"));
        assert_eq!(
            namespace_name("team-a", "acme"),
            format!("team-a-{GO_ACME}")
        );
        assert_eq!(encode("acme").len(), 13);
    }

    const GO_ACME: &str = "a4snha7u63pa6";
    const GO_EMPTY: &str = "zpzjzzeeeirsk";
}
