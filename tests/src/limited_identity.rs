//! A runner identity with RBAC for everything it needs except KubeVirt: what a cluster
//! looks like to the runner when its KubeVirt rules were left out of the install.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::{Api, ListParams, Patch, PatchParams};

use crate::bed::Bed;

/// The RBAC authorizer reads roles from an informer: a new binding takes a moment.
const SETTLE: Duration = Duration::from_secs(30);

/// Grants user `cloudkit-runner-no-kubevirt` in the bed's namespace: instances (and their
/// status), Leases and Events — no `kubevirt.io` resources. Returns its kubeconfig.
pub async fn without_kubevirt(bed: &Bed) -> anyhow::Result<PathBuf> {
    let instances = vec![
        serde_json::json!({"apiGroups": ["cloudkit.openshift.io"], "resources": ["computeinstances"],
             "verbs": ["get", "list", "watch", "patch", "update"]}),
        serde_json::json!({"apiGroups": ["cloudkit.openshift.io"], "resources": ["computeinstances/status"],
             "verbs": ["get", "patch", "update"]}),
        serde_json::json!({"apiGroups": ["", "events.k8s.io"], "resources": ["events"],
             "verbs": ["create", "patch"]}),
    ];
    grant(bed, "cloudkit-runner-no-kubevirt", instances).await
}

/// Grants user `cloudkit-runner-lease-only` only its Lease: no watch can list anything.
pub async fn lease_only(bed: &Bed) -> anyhow::Result<PathBuf> {
    grant(bed, "cloudkit-runner-lease-only", Vec::new()).await
}

async fn grant(
    bed: &Bed,
    user: &str,
    mut rules: Vec<serde_json::Value>,
) -> anyhow::Result<PathBuf> {
    let ns = &bed.namespace;
    rules.push(
        serde_json::json!({"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
        "verbs": ["get", "list", "watch", "create", "update", "patch"]}),
    );
    let role: Role = serde_json::from_value(serde_json::json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": user, "namespace": ns},
        "rules": rules,
    }))?;
    let binding: RoleBinding = serde_json::from_value(serde_json::json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": user, "namespace": ns},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": user},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
    }))?;
    let apply = PatchParams::apply("cloudkit-testbed").force();
    Api::<Role>::namespaced(bed.client.clone(), ns)
        .patch(user, &apply, &Patch::Apply(&role))
        .await?;
    Api::<RoleBinding>::namespaced(bed.client.clone(), ns)
        .patch(user, &apply, &Patch::Apply(&binding))
        .await?;
    let me = bed.cp.client_as(user).await?;
    let leases: Api<Lease> = Api::namespaced(me, ns);
    let deadline = Instant::now() + SETTLE;
    while leases.list(&ListParams::default()).await.is_err() {
        anyhow::ensure!(
            Instant::now() < deadline,
            "the RoleBinding for {user} never took effect"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(bed.cp.kubeconfig_with(user, None, ns)?)
}
