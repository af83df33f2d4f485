//! The deployment on the real control plane: the kustomize base in manifests/
//! is accepted by the API server, the runner does its whole job with nothing but the RBAC
//! the base ships, and the roles for people allow what the plugin needs and no more.
//!
//! Objects are read from `kubectl kustomize manifests/`, i.e. exactly what
//! `kubectl apply -k manifests/` would send.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::CommandFactory;
use cloudkit_runner::config::Args;
use cloudkit_shared::{ComputeInstance, Phase};
use cloudkit_testbed::bed::Bed;
use cloudkit_testbed::clock::now_secs;
use cloudkit_testbed::control_plane::ControlPlane;
use cloudkit_testbed::kubectl::kubectl_path;
use cloudkit_testbed::kubevirt_sim::{vm_resource, vmi_resource};
use cloudkit_testbed::runner_process::runner_binary;
use cloudkit_testbed::wait::RUNNER as WAIT;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding, Subject};
use kube::api::{
    Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams, WatchEvent,
    WatchParams,
};
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

/// The RBAC authorizer reads roles from an informer: a new binding takes a moment.
const RBAC_SETTLE: Duration = Duration::from_secs(10);
const FIELD_MANAGER: &str = "cloudkit-deploy-test";
const RUNNER_GROUP: &str = "system:serviceaccounts";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn manifests_dir() -> PathBuf {
    repo().join("manifests")
}

/// `kubectl kustomize manifests/`, one JSON value per object.
async fn rendered() -> anyhow::Result<Vec<Value>> {
    let out = tokio::process::Command::new(kubectl_path()?)
        .arg("kustomize")
        .arg(manifests_dir())
        .env_remove("KUBECONFIG")
        .output()
        .await?;
    anyhow::ensure!(
        out.status.success(),
        "kubectl kustomize manifests/ failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let docs: Vec<Value> = serde_saphyr::from_multiple(&String::from_utf8(out.stdout)?)?;
    Ok(docs.into_iter().filter(|d| !d.is_null()).collect())
}

/// The one rendered object of `kind` named `name`, as a typed value.
fn object<T: DeserializeOwned>(objects: &[Value], kind: &str, name: &str) -> anyhow::Result<T> {
    let found: Vec<&Value> = objects
        .iter()
        .filter(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .collect();
    anyhow::ensure!(
        found.len() == 1,
        "expected one {kind} {name} in manifests/, found {}",
        found.len()
    );
    Ok(serde_json::from_value(found[0].clone())?)
}

/// Server-side apply as the administrator.
async fn apply<K>(api: &Api<K>, object: &K) -> anyhow::Result<K>
where
    K: Resource + Clone + DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    let params = PatchParams::apply(FIELD_MANAGER).force();
    Ok(api
        .patch(&object.name_any(), &params, &Patch::Apply(object))
        .await?)
}

/// The HTTP status code of a failed API call (0 if it succeeded).
fn code<T>(result: Result<T, kube::Error>) -> u16 {
    match result {
        Ok(_) => 0,
        Err(kube::Error::Api(status)) => status.code,
        Err(e) => panic!("expected an answer from the API server, got {e}"),
    }
}

/// Retries `probe` until it holds: bindings reach the authorizer a moment after they exist.
async fn settle<F, Fut>(what: &str, mut probe: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + RBAC_SETTLE;
    while !probe().await {
        anyhow::ensure!(Instant::now() < deadline, "{what} never took effect");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

#[tokio::test]
async fn crd_in_manifests_is_the_checked_in_crd() {
    for file in ["computeinstance.yaml", "tenant.yaml"] {
        let checked_in = std::fs::read_to_string(repo().join("crds").join(file)).unwrap();
        let copy = std::fs::read_to_string(manifests_dir().join("crd").join(file)).unwrap();
        assert!(
            copy == checked_in,
            "manifests/crd/{file} differs from crds/{file}; refresh it: cp crds/{file} manifests/crd/{file}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kustomization_is_accepted_by_the_api_server() -> anyhow::Result<()> {
    let cp = ControlPlane::shared().await?;
    // A server-side dry run creates nothing, so objects in a namespace that does not exist
    // yet are refused (NamespaceLifecycle). Create the namespace for real, from the base, so
    // that its Pod Security labels judge the Deployment below.
    let objects = rendered().await?;
    let namespace: Namespace = object(&objects, "Namespace", "cloudkit-system")?;
    apply(&Api::<Namespace>::all(cp.client().await?), &namespace).await?;

    let out = tokio::process::Command::new(kubectl_path()?)
        .args(["apply", "-k"])
        .arg(manifests_dir())
        .args(["--server-side", "--dry-run=server"])
        .env("KUBECONFIG", cp.kubeconfig_path())
        .output()
        .await?;
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        out.status.success(),
        "kubectl apply -k refused:\n{stdout}\n{stderr}"
    );
    // No warning: in particular none from Pod Security "restricted" about the Deployment.
    assert!(
        !stderr.to_lowercase().contains("warning"),
        "warnings:\n{stderr}"
    );
    for expected in [
        "namespace/cloudkit-system",
        "customresourcedefinition.apiextensions.k8s.io/computeinstances.cloudkit.openshift.io",
        "customresourcedefinition.apiextensions.k8s.io/tenants.cloudkit.openshift.io",
        "serviceaccount/cloudkit-runner",
        "clusterrole.rbac.authorization.k8s.io/cloudkit-runner",
        "clusterrolebinding.rbac.authorization.k8s.io/cloudkit-runner",
        "role.rbac.authorization.k8s.io/cloudkit-runner-leader-election",
        "rolebinding.rbac.authorization.k8s.io/cloudkit-runner-leader-election",
        "clusterrole.rbac.authorization.k8s.io/cloudkit-view",
        "clusterrole.rbac.authorization.k8s.io/cloudkit-edit",
        "clusterrole.rbac.authorization.k8s.io/cloudkit-logs",
        "configmap/cloudkit-runner-config",
        "deployment.apps/cloudkit-runner",
        "service/cloudkit-runner-metrics",
    ] {
        assert!(
            stdout.contains(&format!("{expected} serverside-applied (server dry run)")),
            "{expected} missing from:\n{stdout}"
        );
    }
    assert_eq!(
        stdout.lines().count(),
        14,
        "nothing more than listed:\n{stdout}"
    );
    // The dry run created nothing.
    let deployments: Api<Deployment> = Api::namespaced(cp.client().await?, "cloudkit-system");
    assert!(deployments.get_opt("cloudkit-runner").await?.is_none());

    // The logs API's objects (their own kustomization: three namespaces).
    let out = tokio::process::Command::new(kubectl_path()?)
        .args(["apply", "-k"])
        .arg(manifests_dir().join("logs"))
        .args(["--server-side", "--dry-run=server"])
        .env("KUBECONFIG", cp.kubeconfig_path())
        .output()
        .await?;
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        out.status.success(),
        "kubectl apply -k manifests/logs refused:\n{stdout}\n{stderr}"
    );
    for expected in [
        "apiservice.apiregistration.k8s.io/v1alpha1.logs.cloudkit.openshift.io",
        "service/cloudkit-runner-logs",
        "rolebinding.rbac.authorization.k8s.io/cloudkit-runner-logs-auth-reader",
        "clusterrole.rbac.authorization.k8s.io/cloudkit-runner-logs",
        "clusterrolebinding.rbac.authorization.k8s.io/cloudkit-runner-logs",
        "role.rbac.authorization.k8s.io/cloudkit-runner-logs-tls",
        "rolebinding.rbac.authorization.k8s.io/cloudkit-runner-logs-tls",
    ] {
        assert!(
            stdout.contains(&format!("{expected} serverside-applied (server dry run)")),
            "{expected} missing from:\n{stdout}"
        );
    }
    assert_eq!(
        stdout.lines().count(),
        7,
        "nothing more than listed:\n{stdout}"
    );
    Ok(())
}

/// Every variable the shipped configuration sets is one the runner reads, the values pass
/// the runner's own validation, and the Deployment is locked down as documented.
#[tokio::test]
async fn shipped_configuration_is_valid_and_the_pod_locked_down() -> anyhow::Result<()> {
    let objects = rendered().await?;
    let config: ConfigMap = object(&objects, "ConfigMap", "cloudkit-runner-config")?;
    let deployment: Deployment = object(&objects, "Deployment", "cloudkit-runner")?;
    let pod = deployment
        .spec
        .template
        .spec
        .clone()
        .expect("a pod template");
    assert_eq!(pod.service_account_name.as_deref(), Some("cloudkit-runner"));
    let [container] = pod.containers.as_slice() else {
        panic!("one container: {:?}", pod.containers)
    };

    // Names: the runner's flags' variables, plus the two it reads from the downward API.
    let mut known: BTreeSet<String> = Args::command()
        .get_arguments()
        .filter_map(|a| a.get_env())
        .map(|e| e.to_string_lossy().into_owned())
        .collect();
    known.extend(["POD_NAME".to_string(), "POD_NAMESPACE".to_string()]);
    let data = config.data.clone().unwrap_or_default();
    let env = container.env.clone().unwrap_or_default();
    for name in data.keys().chain(env.iter().map(|e| &e.name)) {
        assert!(known.contains(name), "{name} is not read by the runner");
    }
    let from_field = |name: &str| {
        env.iter()
            .find(|e| e.name == name)
            .and_then(|e| e.value_from.as_ref()?.field_ref.as_ref())
            .map(|f| f.field_path.clone())
    };
    assert_eq!(from_field("POD_NAME").as_deref(), Some("metadata.name"));
    assert_eq!(
        from_field("POD_NAMESPACE").as_deref(),
        Some("metadata.namespace")
    );
    let env_from = container.env_from.clone().unwrap_or_default();
    assert!(env_from.iter().any(|s| {
        s.config_map_ref
            .as_ref()
            .is_some_and(|c| c.name == "cloudkit-runner-config")
    }));
    // Secrets only from Secrets, never from the ConfigMap.
    for secret in [
        "CLOUDKIT_AAP_TOKEN",
        "CLOUDKIT_EDA_TOKEN",
        "CLOUDKIT_EDA_HMAC_SECRET",
    ] {
        assert!(!data.contains_key(secret), "{secret} belongs in a Secret");
    }

    // The AAP token: a file from the Secret cloudkit-aap-token, directory-mounted (a
    // subPath mount would never see a rotated token).
    let token_file = env
        .iter()
        .find(|e| e.name == "CLOUDKIT_AAP_TOKEN_FILE")
        .and_then(|e| e.value.clone())
        .expect("CLOUDKIT_AAP_TOKEN_FILE");
    let mount = container
        .volume_mounts
        .iter()
        .flatten()
        .find(|m| Path::new(&token_file).parent() == Some(Path::new(&m.mount_path)))
        .expect("the token file's directory is a mount");
    assert!(mount.sub_path.is_none() && mount.read_only == Some(true));
    let volume = pod
        .volumes
        .iter()
        .flatten()
        .find(|v| v.name == mount.name)
        .and_then(|v| v.secret.clone())
        .expect("a Secret volume");
    assert_eq!(volume.secret_name.as_deref(), Some("cloudkit-aap-token"));

    // Locked down: non-root, read-only root, no privilege escalation, no capabilities,
    // seccomp RuntimeDefault.
    let pod_sc = pod.security_context.clone().unwrap_or_default();
    let sc = container.security_context.clone().unwrap_or_default();
    assert_eq!(pod_sc.run_as_non_root, Some(true));
    assert_eq!(pod_sc.run_as_user, Some(65532));
    assert_eq!(
        pod_sc.seccomp_profile.map(|s| s.type_).as_deref(),
        Some("RuntimeDefault")
    );
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    assert_eq!(
        sc.capabilities.and_then(|c| c.drop),
        Some(vec!["ALL".to_string()])
    );
    let probe_path = |p: &Option<k8s_openapi::api::core::v1::Probe>| {
        p.as_ref()
            .and_then(|p| p.http_get.as_ref())
            .map(|h| h.path.clone().unwrap_or_default())
    };
    assert_eq!(
        probe_path(&container.liveness_probe).as_deref(),
        Some("/healthz")
    );
    assert_eq!(
        probe_path(&container.readiness_probe).as_deref(),
        Some("/readyz")
    );
    let port = container
        .ports
        .iter()
        .flatten()
        .find(|p| p.name.as_deref() == Some("http"))
        .expect("a port named http");
    assert_eq!(port.container_port, 8080);
    assert!(
        env.iter().any(
            |e| e.name == "CLOUDKIT_METRICS_ADDR" && e.value.as_deref() == Some("0.0.0.0:8080")
        )
    );

    // Values: the real runner, given exactly this environment and a token file, accepts
    // its settings (exit 2 names a bad one) and stops only at the missing cluster.
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("token"), "t")?;
    let mut command = tokio::process::Command::new(runner_binary()?);
    command
        .env_clear()
        .envs(data)
        .envs(
            env.iter()
                .filter_map(|e| Some((&e.name, e.value.as_ref()?))),
        )
        .env(
            "CLOUDKIT_AAP_TOKEN_FILE",
            dir.path().join("token").display().to_string(),
        )
        .env("POD_NAME", "cloudkit-runner-0")
        .env("POD_NAMESPACE", "cloudkit-system")
        .env("KUBECONFIG", dir.path().join("no-such-kubeconfig"));
    let out = tokio::time::timeout(WAIT, command.output()).await??;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("cannot reach the Kubernetes API"),
        "{stderr}"
    );
    Ok(())
}

/// The identity the runner has in a cluster (its ServiceAccount in `namespace`), given
/// here as a client certificate: CN = user name, O = the service accounts' group, which is
/// what RBAC matches a `kind: ServiceAccount` subject against.
fn service_account_user(namespace: &str) -> String {
    format!("system:serviceaccount:{namespace}:cloudkit-runner")
}

/// Installs the runner's shipped RBAC for a runner whose ServiceAccount lives in
/// `namespace` (the bed's, standing in for cloudkit-system): the ClusterRole as is, the
/// bindings and the leader-election Role moved to `namespace`.
async fn grant_shipped_runner_rbac(
    admin: &kube::Client,
    namespace: &str,
) -> anyhow::Result<ClusterRole> {
    let objects = rendered().await?;
    let role: ClusterRole = object(&objects, "ClusterRole", "cloudkit-runner")?;
    let mut binding: ClusterRoleBinding =
        object(&objects, "ClusterRoleBinding", "cloudkit-runner")?;
    let mut lease_role: Role = object(&objects, "Role", "cloudkit-runner-leader-election")?;
    let mut lease_binding: RoleBinding =
        object(&objects, "RoleBinding", "cloudkit-runner-leader-election")?;
    let shipped_subject = Subject {
        kind: "ServiceAccount".into(),
        name: "cloudkit-runner".into(),
        namespace: Some("cloudkit-system".into()),
        api_group: None,
    };
    let moved = |subjects: &mut Option<Vec<Subject>>| {
        assert_eq!(subjects.as_deref(), Some(&[shipped_subject.clone()][..]));
        for s in subjects.iter_mut().flatten() {
            s.namespace = Some(namespace.to_string());
        }
    };
    moved(&mut binding.subjects);
    moved(&mut lease_binding.subjects);
    // Cluster-scoped: one binding per test namespace.
    binding.metadata.name = Some(format!("cloudkit-runner-{namespace}"));
    lease_role.metadata.namespace = Some(namespace.to_string());
    lease_binding.metadata.namespace = Some(namespace.to_string());

    apply(&Api::all(admin.clone()), &role).await?;
    apply(&Api::all(admin.clone()), &binding).await?;
    apply(&Api::namespaced(admin.clone(), namespace), &lease_role).await?;
    apply(&Api::namespaced(admin.clone(), namespace), &lease_binding).await?;
    Ok(role)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runner_with_only_its_shipped_rbac_does_the_whole_lifecycle() -> anyhow::Result<()> {
    let mut bed = Bed::without_runner("deploy-rbac").await?;
    let ns = bed.namespace.clone();
    let role = grant_shipped_runner_rbac(&bed.client, &ns).await?;
    // Nothing broad: no wildcard anywhere, and no access to Secrets or ConfigMaps.
    for rule in role.rules.iter().flatten() {
        let words = rule
            .verbs
            .iter()
            .chain(rule.resources.iter().flatten())
            .chain(rule.api_groups.iter().flatten());
        assert!(words.clone().all(|w| w != "*"), "wildcard in {rule:?}");
    }

    let user = service_account_user(&ns);
    let me = bed.cp.client_as_member(&user, RUNNER_GROUP).await?;
    let my_instances: Api<ComputeInstance> = Api::namespaced(me.clone(), &ns);
    let my_leases: Api<Lease> = Api::namespaced(me.clone(), &ns);
    settle("the runner's bindings", || async {
        my_instances.list(&ListParams::default()).await.is_ok()
            && code(my_leases.get("cloudkit-runner").await) == 404
    })
    .await?;

    let kubeconfig = bed.cp.kubeconfig_with(&user, Some(RUNNER_GROUP), &ns)?;
    bed.start_runner_as(&kubeconfig, vec![])?;

    // Create → Running: watch, finalizer patch, status apply, VM / VMI watches, events.
    bed.create_default("vm-sa").await?;
    let running = |ci: Option<&ComputeInstance>| {
        ci.and_then(|c| c.status.as_ref()).and_then(|s| s.phase) == Some(Phase::Running)
    };
    bed.wait_for("vm-sa", "phase Running", WAIT, running)
        .await?;

    // Restart: the VMI delete.
    let request = now_secs();
    bed.patch_spec("vm-sa", json!({"restartRequestedAt": request.to_string()}))
        .await?;
    bed.wait_for("vm-sa", "lastRestartedAt >= request", WAIT, |ci| {
        ci.and_then(|c| c.status.as_ref()?.last_restarted_at.clone())
            .is_some_and(|t| t.0 >= request)
    })
    .await?;

    // Delete → gone: deprovision, finalizer released.
    bed.delete("vm-sa").await?;
    bed.wait_for("vm-sa", "gone", WAIT, |ci| ci.is_none())
        .await?;

    // The Lease it led with, and the Events it recorded, exist.
    let lease = Api::<Lease>::namespaced(bed.client.clone(), &ns)
        .get("cloudkit-runner")
        .await?;
    assert_eq!(
        lease.spec.and_then(|s| s.holder_identity),
        Some(format!("runner-{ns}"))
    );
    let events = Api::<Event>::namespaced(bed.client.clone(), &ns)
        .list(&ListParams::default())
        .await?;
    assert!(
        events.items.iter().any(|e| {
            e.reporting_controller.as_deref() == Some("cloudkit-runner")
                && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("vm-sa")
        }),
        "no event from the runner: {:?}",
        events.items
    );
    let logs = bed.runner_logs();
    assert!(
        !logs.to_lowercase().contains("forbidden"),
        "the runner was refused something:\n{logs}"
    );

    // The bed's runner watches one namespace; deployed, it watches all of them, which the
    // ClusterRoleBinding allows.
    let all = ListParams::default().limit(1);
    Api::<ComputeInstance>::all(me.clone()).list(&all).await?;
    Api::<DynamicObject>::all_with(me.clone(), &vm_resource())
        .list(&all)
        .await?;
    Api::<DynamicObject>::all_with(me.clone(), &vmi_resource())
        .list(&all)
        .await?;

    // And nothing beyond the role.
    let other_ns = bed.cp.test_namespace("deploy-rbac-other").await?;
    assert_eq!(
        code(
            Api::<Secret>::namespaced(me.clone(), &other_ns)
                .list(&ListParams::default())
                .await
        ),
        403,
        "Secrets elsewhere"
    );
    assert_eq!(
        code(
            Api::<Secret>::namespaced(me.clone(), &ns)
                .list(&ListParams::default())
                .await
        ),
        403,
        "Secrets in its own namespace"
    );
    bed.create_default("vm-keep").await?;
    assert_eq!(
        code(
            my_instances
                .delete("vm-keep", &DeleteParams::default())
                .await
        ),
        403,
        "deleting an instance"
    );
    assert_eq!(
        code(my_instances.get("vm-keep").await),
        403,
        "get (it uses its cache)"
    );
    let vms: Api<DynamicObject> = Api::namespaced_with(me.clone(), &ns, &vm_resource());
    assert_eq!(
        code(vms.delete("vm-keep", &DeleteParams::default()).await),
        403,
        "deleting a VM"
    );
    assert_eq!(
        code(my_leases.list(&ListParams::default()).await),
        403,
        "other Leases"
    );
    assert_eq!(
        code(my_leases.get("someone-else").await),
        403,
        "another Lease"
    );
    let core_event = k8s_openapi::api::core::v1::Event {
        metadata: kube::api::ObjectMeta {
            name: Some("probe".into()),
            ..Default::default()
        },
        involved_object: Default::default(),
        ..Default::default()
    };
    assert_eq!(
        code(
            Api::<k8s_openapi::api::core::v1::Event>::namespaced(me.clone(), &ns)
                .create(&PostParams::default(), &core_event)
                .await
        ),
        403,
        "core/v1 Events (the Recorder uses events.k8s.io)"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edit_role_sends_signals_and_view_role_reads() -> anyhow::Result<()> {
    let cp = ControlPlane::shared().await?;
    let admin = cp.client().await?;
    let ns = cp.test_namespace("deploy-users").await?;
    let objects = rendered().await?;
    for (name, aggregates_to) in [
        ("cloudkit-view", &["view"][..]),
        ("cloudkit-edit", &["edit", "admin"][..]),
    ] {
        let role: ClusterRole = object(&objects, "ClusterRole", name)?;
        // Aggregation is done by kube-controller-manager's ClusterRole aggregation controller,
        // which the bed does not run: check the labels, and bind the roles directly below.
        for to in aggregates_to {
            assert_eq!(
                role.labels()
                    .get(&format!("rbac.authorization.k8s.io/aggregate-to-{to}"))
                    .map(String::as_str),
                Some("true"),
                "{name} aggregates to {to}"
            );
        }
        apply(&Api::all(admin.clone()), &role).await?;
    }
    for (user, role) in [("erin", "cloudkit-edit"), ("victor", "cloudkit-view")] {
        let binding: RoleBinding = serde_json::from_value(json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": format!("{user}-{role}"), "namespace": ns},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
        }))?;
        apply(&Api::namespaced(admin.clone(), &ns), &binding).await?;
    }
    let instances: Api<ComputeInstance> = Api::namespaced(admin.clone(), &ns);
    let sample: ComputeInstance = serde_saphyr::from_str(&std::fs::read_to_string(
        manifests_dir().join("samples/computeinstance.yaml"),
    )?)?;
    instances.create(&PostParams::default(), &sample).await?;
    let name = sample.name_any();

    let erin: Api<ComputeInstance> = Api::namespaced(cp.client_as("erin").await?, &ns);
    let victor: Api<ComputeInstance> = Api::namespaced(cp.client_as("victor").await?, &ns);
    settle("the RoleBindings", || async {
        erin.get(&name).await.is_ok() && victor.get(&name).await.is_ok()
    })
    .await?;

    // cloudkit-edit: read, and send a signal as `kubectl cloudkit restart` does.
    assert_eq!(erin.list(&ListParams::default()).await?.items.len(), 1);
    let at = now_secs();
    let signal = json!({"spec": {"restartRequestedAt": at.to_string()}});
    erin.patch(&name, &PatchParams::default(), &Patch::Merge(&signal))
        .await?;
    let seen = instances.get(&name).await?;
    assert_eq!(seen.spec.restart_requested_at.map(|t| t.0), Some(at));
    assert_eq!(
        code(erin.delete(&name, &DeleteParams::default()).await),
        403,
        "edit deletes"
    );
    let mut another = sample.clone();
    another.metadata.name = Some("another".into());
    assert_eq!(
        code(erin.create(&PostParams::default(), &another).await),
        403,
        "edit creates"
    );
    let status = json!({"status": {"phase": "Running"}});
    assert_eq!(
        code(
            erin.patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
                .await
        ),
        403,
        "edit writes status"
    );

    // cloudkit-view: get, list and watch, as `kubectl cloudkit jobs [--watch]`; no writes.
    assert_eq!(victor.get(&name).await?.name_any(), name);
    assert_eq!(victor.list(&ListParams::default()).await?.items.len(), 1);
    let mut watch = victor
        .watch(&WatchParams::default().timeout(5), "0")
        .await?
        .boxed();
    let first = watch.next().await;
    assert!(
        matches!(first, Some(Ok(WatchEvent::Added(ref ci))) if ci.name_any() == name),
        "{first:?}"
    );
    let later = json!({"spec": {"restartRequestedAt": now_secs().to_string()}});
    assert_eq!(
        code(
            victor
                .patch(&name, &PatchParams::default(), &Patch::Merge(&later))
                .await
        ),
        403,
        "view patches"
    );
    assert_eq!(
        code(victor.delete(&name, &DeleteParams::default()).await),
        403,
        "view deletes"
    );
    // Neither role reaches another namespace.
    let elsewhere = cp.test_namespace("deploy-users-other").await?;
    for user in ["erin", "victor"] {
        let theirs: Api<ComputeInstance> = Api::namespaced(cp.client_as(user).await?, &elsewhere);
        assert_eq!(
            code(theirs.list(&ListParams::default()).await),
            403,
            "{user}"
        );
    }
    Ok(())
}
