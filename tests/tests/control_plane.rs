//! The test control plane is a real Kubernetes API server: CRD schema validation, the
//! status subresource, finalizers, optimistic concurrency and RBAC behave as in a
//! cluster, and so do namespace deletion and garbage collection (kube-controller-manager
//! runs those two controllers). Each test takes its own namespace on the control plane
//! shared by this test binary.

use std::future::Future;
use std::time::{Duration, Instant};

use cloudkit_testbed::control_plane::{ControlPlane, KUBERNETES_VERSION};
use cloudkit_testbed::kubectl::kubectl_path;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ObjectMeta, Patch,
    PatchParams, PostParams,
};
use serde_json::{Value, json};

fn compute_instances() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("cloudkit.openshift.io", "v1alpha1", "ComputeInstance"),
        "computeinstances",
    )
}

fn instance(name: &str, spec: Value) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": "cloudkit.openshift.io/v1alpha1",
        "kind": "ComputeInstance",
        "metadata": { "name": name },
        "spec": spec,
    }))
    .unwrap()
}

async fn instances_in(namespace: &str) -> Api<DynamicObject> {
    let cp = ControlPlane::shared().await.unwrap();
    Api::namespaced_with(cp.client().await.unwrap(), namespace, &compute_instances())
}

/// The HTTP status code of a failed API call.
fn code<T: std::fmt::Debug>(result: Result<T, kube::Error>) -> u16 {
    match result {
        Err(kube::Error::Api(status)) => status.code,
        other => panic!("expected an API error, got {other:?}"),
    }
}

fn api_message<T: std::fmt::Debug>(result: Result<T, kube::Error>) -> (u16, String) {
    match result {
        Err(kube::Error::Api(status)) => (status.code, status.message),
        other => panic!("expected an API error, got {other:?}"),
    }
}

#[tokio::test]
async fn schema_rejects_an_invalid_template_id() {
    let cp = ControlPlane::shared().await.unwrap();
    let ns = cp.test_namespace("schema-template").await.unwrap();
    let api = instances_in(&ns).await;

    let bad = instance("bad-template", json!({ "templateID": "9bad-id!" }));
    let (code, message) = api_message(api.create(&PostParams::default(), &bad).await);
    assert_eq!(code, 422, "{message}");
    assert!(message.contains("spec.templateID"), "{message}");

    let good = instance("good-template", json!({ "templateID": "ocp_virt.basic" }));
    api.create(&PostParams::default(), &good).await.unwrap();
}

#[tokio::test]
async fn schema_rejects_a_bad_timestamp() {
    let cp = ControlPlane::shared().await.unwrap();
    let ns = cp.test_namespace("schema-time").await.unwrap();
    let api = instances_in(&ns).await;

    let bad = instance(
        "bad-time",
        json!({ "templateID": "tpl", "restartRequestedAt": "not-a-time" }),
    );
    let (code, message) = api_message(api.create(&PostParams::default(), &bad).await);
    assert_eq!(code, 422, "{message}");
    assert!(message.contains("spec.restartRequestedAt"), "{message}");
}

#[tokio::test]
async fn status_is_written_only_through_the_status_subresource() {
    let cp = ControlPlane::shared().await.unwrap();
    let ns = cp.test_namespace("status").await.unwrap();
    let api = instances_in(&ns).await;
    api.create(
        &PostParams::default(),
        &instance("vm1", json!({ "templateID": "tpl" })),
    )
    .await
    .unwrap();

    let status = json!({ "status": { "phase": "Running" } });
    let through_main = api
        .patch("vm1", &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
    assert_eq!(
        through_main.data.get("status"),
        None,
        "status written via main resource"
    );

    let through_status = api
        .patch_status("vm1", &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
    assert_eq!(through_status.data["status"]["phase"], "Running");

    // And the other way round: /status ignores spec changes.
    let spec = json!({ "spec": { "templateID": "other" } });
    let after = api
        .patch_status("vm1", &PatchParams::default(), &Patch::Merge(&spec))
        .await
        .unwrap();
    assert_eq!(after.data["spec"]["templateID"], "tpl");
}

#[tokio::test]
async fn a_finalizer_holds_a_deleted_object_until_removed() {
    let cp = ControlPlane::shared().await.unwrap();
    let ns = cp.test_namespace("finalizer").await.unwrap();
    let api = instances_in(&ns).await;
    let mut ci = instance("held", json!({ "templateID": "tpl" }));
    ci.metadata.finalizers = Some(vec!["cloudkit.openshift.io/computeinstance".into()]);
    api.create(&PostParams::default(), &ci).await.unwrap();

    api.delete("held", &DeleteParams::default()).await.unwrap();
    let held = api.get("held").await.unwrap();
    assert!(held.metadata.deletion_timestamp.is_some());

    let remove = json!({ "metadata": { "finalizers": null } });
    api.patch("held", &PatchParams::default(), &Patch::Merge(&remove))
        .await
        .unwrap();
    assert_eq!(code(api.get("held").await), 404);
}

#[tokio::test]
async fn a_stale_resource_version_conflicts() {
    let cp = ControlPlane::shared().await.unwrap();
    let ns = cp.test_namespace("conflict").await.unwrap();
    let api = instances_in(&ns).await;
    api.create(
        &PostParams::default(),
        &instance("vm1", json!({ "templateID": "tpl" })),
    )
    .await
    .unwrap();

    let read = api.get("vm1").await.unwrap();
    let mut first = read.clone();
    first.data["spec"]["templateID"] = json!("first");
    api.replace("vm1", &PostParams::default(), &first)
        .await
        .unwrap();

    let mut stale = read;
    stale.data["spec"]["templateID"] = json!("second");
    assert_eq!(
        code(api.replace("vm1", &PostParams::default(), &stale).await),
        409
    );
}

#[tokio::test]
async fn a_user_without_a_role_is_forbidden() {
    let cp = ControlPlane::shared().await.unwrap();
    let ns = cp.test_namespace("forbidden").await.unwrap();
    let nobody: Api<DynamicObject> = Api::namespaced_with(
        cp.client_as("nobody").await.unwrap(),
        &ns,
        &compute_instances(),
    );
    assert_eq!(code(nobody.list(&Default::default()).await), 403);
    assert_eq!(
        code(
            nobody
                .create(
                    &PostParams::default(),
                    &instance("x", json!({ "templateID": "tpl" }))
                )
                .await
        ),
        403
    );
}

#[tokio::test]
async fn a_role_grants_exactly_what_it_says() {
    let cp = ControlPlane::shared().await.unwrap();
    let ns = cp.test_namespace("role").await.unwrap();
    let other_ns = cp.test_namespace("role-other").await.unwrap();
    let admin = cp.client().await.unwrap();
    for namespace in [&ns, &other_ns] {
        Api::<DynamicObject>::namespaced_with(admin.clone(), namespace, &compute_instances())
            .create(
                &PostParams::default(),
                &instance("vm1", json!({ "templateID": "tpl" })),
            )
            .await
            .unwrap();
    }
    grant_read(&admin, &ns, user("reader")).await;

    let reader = cp.client_as("reader").await.unwrap();
    let mine: Api<DynamicObject> = Api::namespaced_with(reader.clone(), &ns, &compute_instances());
    // The RBAC authorizer reads roles from an informer: allow a moment to see them.
    let deadline = Instant::now() + Duration::from_secs(10);
    while mine.get("vm1").await.is_err() {
        assert!(Instant::now() < deadline, "the Role never took effect");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(mine.list(&Default::default()).await.unwrap().items.len(), 1);

    let patch = json!({ "spec": { "templateID": "changed" } });
    assert_eq!(
        code(
            mine.patch("vm1", &PatchParams::default(), &Patch::Merge(&patch))
                .await
        ),
        403
    );
    assert_eq!(
        code(mine.delete("vm1", &DeleteParams::default()).await),
        403
    );
    let theirs: Api<DynamicObject> = Api::namespaced_with(reader, &other_ns, &compute_instances());
    assert_eq!(code(theirs.get("vm1").await), 403);
    // Another user gains nothing from the reader's binding.
    let other: Api<DynamicObject> = Api::namespaced_with(
        cp.client_as("not-reader").await.unwrap(),
        &ns,
        &compute_instances(),
    );
    assert_eq!(code(other.get("vm1").await), 403);
}

#[tokio::test]
async fn a_role_bound_to_a_group_grants_its_members() {
    let cp = ControlPlane::shared().await.unwrap();
    let ns = cp.test_namespace("group").await.unwrap();
    let admin = cp.client().await.unwrap();
    Api::<DynamicObject>::namespaced_with(admin.clone(), &ns, &compute_instances())
        .create(
            &PostParams::default(),
            &instance("vm1", json!({ "templateID": "tpl" })),
        )
        .await
        .unwrap();
    grant_read(
        &admin,
        &ns,
        Subject {
            kind: "Group".into(),
            name: "ci-readers".into(),
            api_group: Some("rbac.authorization.k8s.io".into()),
            ..Default::default()
        },
    )
    .await;

    let member: Api<DynamicObject> = Api::namespaced_with(
        cp.client_as_member("carol", "ci-readers").await.unwrap(),
        &ns,
        &compute_instances(),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while member.get("vm1").await.is_err() {
        assert!(
            Instant::now() < deadline,
            "the group's Role never took effect"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let outsider: Api<DynamicObject> = Api::namespaced_with(
        cp.client_as("carol").await.unwrap(),
        &ns,
        &compute_instances(),
    );
    assert_eq!(
        code(outsider.get("vm1").await),
        403,
        "same user, not in the group"
    );
}

fn user(name: &str) -> Subject {
    Subject {
        api_group: Some("rbac.authorization.k8s.io".into()),
        kind: "User".into(),
        name: name.into(),
        ..Default::default()
    }
}

/// A Role that reads ComputeInstances in `namespace`, bound to `subject`.
async fn grant_read(admin: &kube::Client, namespace: &str, subject: Subject) {
    let role = Role {
        metadata: ObjectMeta {
            name: Some("ci-reader".into()),
            ..Default::default()
        },
        rules: Some(vec![PolicyRule {
            api_groups: Some(vec!["cloudkit.openshift.io".into()]),
            resources: Some(vec!["computeinstances".into()]),
            verbs: vec!["get".into(), "list".into(), "watch".into()],
            ..Default::default()
        }]),
    };
    Api::<Role>::namespaced(admin.clone(), namespace)
        .create(&PostParams::default(), &role)
        .await
        .unwrap();
    let binding = RoleBinding {
        metadata: ObjectMeta {
            name: Some(format!("ci-reader-{}", subject.name)),
            ..Default::default()
        },
        role_ref: RoleRef {
            api_group: Some("rbac.authorization.k8s.io".into()),
            kind: "Role".into(),
            name: "ci-reader".into(),
        },
        subjects: Some(vec![subject]),
    };
    Api::<RoleBinding>::namespaced(admin.clone(), namespace)
        .create(&PostParams::default(), &binding)
        .await
        .unwrap();
}

#[tokio::test]
async fn kubevirt_resources_are_served() {
    let cp = ControlPlane::shared().await.unwrap();
    let ns = cp.test_namespace("kubevirt").await.unwrap();
    let client = cp.client().await.unwrap();
    for (kind, plural) in [
        ("VirtualMachine", "virtualmachines"),
        ("VirtualMachineInstance", "virtualmachineinstances"),
    ] {
        let resource = ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("kubevirt.io", "v1", kind),
            plural,
        );
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &resource);
        let object: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "kubevirt.io/v1",
            "kind": kind,
            "metadata": { "name": "vm1", "labels": { "cloudkit.openshift.io/computeinstance": "ci1" } },
            "spec": { "running": true, "template": { "spec": { "domain": {} } } },
        }))
        .unwrap();
        let created = api.create(&PostParams::default(), &object).await.unwrap();
        assert_eq!(
            created.data["spec"]["running"], true,
            "{kind}: spec kept as given"
        );
        let status = json!({ "status": { "phase": "Running" } });
        let patched = api
            .patch_status("vm1", &PatchParams::default(), &Patch::Merge(&status))
            .await
            .unwrap();
        assert_eq!(patched.data["status"]["phase"], "Running");
    }
}

/// Kubeconfig files work for kubectl (as the plugin's tests will use them), and the
/// server reports the release it was built from.
#[tokio::test]
async fn kubeconfig_files_work_with_kubectl() {
    let cp = ControlPlane::shared().await.unwrap();
    let ns = cp.test_namespace("kubectl").await.unwrap();
    let kubectl = |kubeconfig: &std::path::Path, args: &[&str]| {
        std::process::Command::new(kubectl_path().unwrap_or_else(|e| panic!("{e:#}")))
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .args(args)
            .output()
            .expect("kubectl on PATH")
    };

    let version = kubectl(cp.kubeconfig_path(), &["get", "--raw", "/version"]);
    assert!(version.status.success(), "{version:?}");
    let version: Value = serde_json::from_slice(&version.stdout).unwrap();
    assert_eq!(version["gitVersion"], KUBERNETES_VERSION);

    let list = kubectl(cp.kubeconfig_path(), &["get", "ci", "-n", &ns]);
    assert!(list.status.success(), "{list:?}");

    let nobody = cp.kubeconfig_for("nobody").unwrap();
    let denied = kubectl(&nobody, &["get", "computeinstances", "-n", &ns]);
    assert!(!denied.status.success());
    let stderr = String::from_utf8_lossy(&denied.stderr);
    assert!(
        stderr.contains("Forbidden") && stderr.contains("\"nobody\""),
        "{stderr}"
    );
}

/// A control plane of one's own starts (warm cache) and is gone after drop.
#[tokio::test]
async fn an_own_control_plane_stops_on_drop() {
    let started = Instant::now();
    let cp = ControlPlane::start().await.unwrap();
    eprintln!("ControlPlane::start() took {:.1?}", started.elapsed());
    let client = cp.client().await.unwrap();
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client);
    namespaces.get("default").await.unwrap();

    let dir = cp.data_dir().to_path_buf();
    let addr = cp.server_url().trim_start_matches("https://").to_string();
    assert!(dir.exists());
    drop(cp);
    assert!(!dir.exists(), "data directory removed");
    assert!(
        std::net::TcpStream::connect(&addr).is_err(),
        "kube-apiserver still listening on {addr}"
    );
}

/// Polls `probe` every 100 ms until it returns `Ok`, whose value it returns. The bound
/// only keeps a broken bed from hanging the test (the controllers act within a second
/// or two); on expiry the panic shows the probe's last answer and the servers' logs.
async fn eventually<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    const BOUND: Duration = Duration::from_secs(60);
    let deadline = Instant::now() + BOUND;
    loop {
        match probe().await {
            Ok(value) => return value,
            Err(last) if Instant::now() > deadline => {
                let logs = ControlPlane::shared().await.unwrap().logs();
                panic!("waited {BOUND:?} for {what}; last seen: {last}\n{logs}");
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

fn config_map(name: &str, owners: Vec<OwnerReference>) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.into()),
            owner_references: Some(owners),
            ..Default::default()
        },
        data: Some([("key".to_string(), "value".to_string())].into()),
        ..Default::default()
    }
}

/// A reference to a ComputeInstance (`controller` marks the managing owner); it blocks
/// the owner's foreground deletion until the dependent is gone.
fn owned_by_instance(owner: &DynamicObject, controller: bool) -> OwnerReference {
    OwnerReference {
        api_version: "cloudkit.openshift.io/v1alpha1".into(),
        kind: "ComputeInstance".into(),
        name: owner.metadata.name.clone().unwrap(),
        uid: owner.metadata.uid.clone().unwrap(),
        controller: Some(controller),
        block_owner_deletion: Some(true),
    }
}

fn owned_by_config_map(owner: &ConfigMap) -> OwnerReference {
    OwnerReference {
        api_version: "v1".into(),
        kind: "ConfigMap".into(),
        name: owner.metadata.name.clone().unwrap(),
        uid: owner.metadata.uid.clone().unwrap(),
        controller: Some(false),
        block_owner_deletion: Some(true),
    }
}

/// `Ok` once `name` is gone (404), else what it looks like now.
async fn gone<K>(api: &Api<K>, name: &str) -> Result<(), String>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    match api.get_opt(name).await {
        Ok(None) => Ok(()),
        Ok(Some(object)) => Err(format!(
            "{name} still exists (deletionTimestamp {:?}, finalizers {:?})",
            object.meta().deletion_timestamp,
            object.meta().finalizers
        )),
        Err(e) => Err(format!("reading {name}: {e}")),
    }
}

/// The namespace controller empties a deleted namespace, custom resources included (it
/// finds them through discovery), and then removes the namespace itself.
#[tokio::test]
async fn a_deleted_namespace_goes_with_everything_in_it() {
    let cp = ControlPlane::shared().await.unwrap();
    let ns = cp.test_namespace("ns-delete").await.unwrap();
    let client = cp.client().await.unwrap();
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    config_maps
        .create(&PostParams::default(), &config_map("settings", vec![]))
        .await
        .unwrap();
    let instances = instances_in(&ns).await;
    instances
        .create(
            &PostParams::default(),
            &instance("vm1", json!({ "templateID": "tpl" })),
        )
        .await
        .unwrap();

    let namespaces: Api<Namespace> = Api::all(client);
    let deleted = namespaces
        .delete(&ns, &DeleteParams::default())
        .await
        .unwrap();
    // The API server only marks it; emptying and removing it is the controller's work.
    let marked = deleted
        .left()
        .expect("the namespace is marked, not gone at once");
    let phase = marked.status.and_then(|s| s.phase);
    assert_eq!(phase.as_deref(), Some("Terminating"));

    eventually(&format!("namespace {ns} to be deleted"), || async {
        match namespaces.get_opt(&ns).await {
            Ok(None) => Ok(()),
            // Conditions tell why it is stuck, e.g. NamespaceDeletionDiscoveryFailure.
            Ok(Some(namespace)) => Err(format!("{:?}", namespace.status)),
            Err(e) => Err(e.to_string()),
        }
    })
    .await;
    // Objects outlive their namespace in storage unless the controller deleted them.
    let left = config_maps.list(&Default::default()).await.unwrap().items;
    assert!(left.is_empty(), "ConfigMaps left: {left:?}");
    let left = instances.list(&Default::default()).await.unwrap().items;
    assert!(left.is_empty(), "ComputeInstances left: {left:?}");
}

/// Once its owner is deleted, the garbage collector deletes a dependent; from an object
/// that still has another owner it removes only the reference to the deleted one.
#[tokio::test]
async fn dependents_are_collected_when_their_owner_is_deleted() {
    let cp = ControlPlane::shared().await.unwrap();
    let ns = cp.test_namespace("gc-owner").await.unwrap();
    let config_maps: Api<ConfigMap> = Api::namespaced(cp.client().await.unwrap(), &ns);
    let instances = instances_in(&ns).await;
    let create = PostParams::default();
    let owner = instances
        .create(&create, &instance("owner", json!({ "templateID": "tpl" })))
        .await
        .unwrap();
    let other_owner = config_maps
        .create(&create, &config_map("other-owner", vec![]))
        .await
        .unwrap();
    config_maps
        .create(
            &create,
            &config_map("dependent", vec![owned_by_instance(&owner, true)]),
        )
        .await
        .unwrap();
    let mut co_owned = instance("co-owned", json!({ "templateID": "tpl" }));
    co_owned.metadata.owner_references = Some(vec![
        owned_by_instance(&owner, true),
        owned_by_config_map(&other_owner),
    ]);
    instances.create(&create, &co_owned).await.unwrap();

    instances
        .delete("owner", &DeleteParams::background())
        .await
        .unwrap();
    eventually("the dependent ConfigMap to be collected", || {
        gone(&config_maps, "dependent")
    })
    .await;
    let owner_uid = owner.metadata.uid.clone().unwrap();
    let left = eventually(
        "the co-owned object to lose its dangling reference",
        || async {
            match instances.get_opt("co-owned").await {
                Ok(Some(object)) => {
                    let refs = object.metadata.owner_references.unwrap_or_default();
                    if refs.iter().any(|r| r.uid == owner_uid) {
                        Err(format!("owner references still {refs:?}"))
                    } else {
                        Ok(refs)
                    }
                }
                Ok(None) => panic!("co-owned was deleted although another owner remains"),
                Err(e) => Err(e.to_string()),
            }
        },
    )
    .await;
    assert_eq!(left, vec![owned_by_config_map(&other_owner)]);
}

/// Foreground deletion: the owner stays, marked, until the garbage collector has
/// deleted the dependents that block owner deletion; only then does it go.
#[tokio::test]
async fn a_foreground_deletion_waits_for_blocking_dependents() {
    let cp = ControlPlane::shared().await.unwrap();
    let ns = cp.test_namespace("gc-foreground").await.unwrap();
    let config_maps: Api<ConfigMap> = Api::namespaced(cp.client().await.unwrap(), &ns);
    let instances = instances_in(&ns).await;
    let owner = instances
        .create(
            &PostParams::default(),
            &instance("owner", json!({ "templateID": "tpl" })),
        )
        .await
        .unwrap();
    config_maps
        .create(
            &PostParams::default(),
            &config_map("blocking", vec![owned_by_instance(&owner, true)]),
        )
        .await
        .unwrap();

    let deleted = instances
        .delete("owner", &DeleteParams::foreground())
        .await
        .unwrap();
    let marked = deleted
        .left()
        .expect("the owner is marked, not gone at once");
    assert_eq!(
        marked.metadata.finalizers,
        Some(vec!["foregroundDeletion".to_string()])
    );
    eventually("the owner to be deleted", || gone(&instances, "owner")).await;
    assert_eq!(
        gone(&config_maps, "blocking").await,
        Ok(()),
        "the owner went before its blocking dependent"
    );
}
