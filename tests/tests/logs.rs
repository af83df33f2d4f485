//! `kubectl cloudkit logs` end to end: kubectl → kube-apiserver (RBAC on
//! `computeinstances/log`) → the aggregated API over mTLS → the runner → the AAP
//! simulator's `jobs/{id}/stdout/`. The bed has a control plane of its own: an APIService
//! is cluster-wide.

use std::path::Path;

use cloudkit_shared::{ComputeInstance, JobProvider, JobState};
use cloudkit_testbed::aap_sim::{DEFAULT_TOKEN, FailingTask, JobBehavior, JobStatus};
use cloudkit_testbed::bed::{Bed, quick_job};
use cloudkit_testbed::kubectl::{self, KubectlRun};
use cloudkit_testbed::logs_api;
use cloudkit_testbed::wait::RUNNER as WAIT;
use k8s_openapi::api::rbac::v1::{ClusterRole, Role, RoleBinding};
use kube::api::{Api, ListParams, Patch, PatchParams};
use tokio::io::{AsyncBufReadExt, BufReader};

const FAILING_TASK: &str = "Create the VM";
const FAILING_MSG: &str = "spec: Required value";

/// `kubectl cloudkit ARGS`.
async fn run(kubeconfig: &Path, args: &[&str]) -> anyhow::Result<KubectlRun> {
    let args: Vec<&str> = std::iter::once("cloudkit")
        .chain(args.iter().copied())
        .collect();
    kubectl::run(kubeconfig, &args).await
}

fn refused(r: &KubectlRun, what: &str) {
    assert_eq!(r.code, 1, "{r:#?}");
    assert!(r.stdout.is_empty(), "{r:#?}");
    assert_eq!(r.stderr.trim().lines().count(), 1, "{r:#?}");
    assert!(
        r.stderr.starts_with("error: ") && r.stderr.contains(what),
        "{r:#?}"
    );
}

fn newest_job(ci: Option<&ComputeInstance>) -> Option<cloudkit_shared::JobEntry> {
    ci?.status
        .as_ref()?
        .jobs
        .iter()
        .max_by_key(|j| j.timestamp.0)
        .cloned()
}

/// The people-facing ClusterRole `name` from manifests/rbac/user-roles.yaml.
fn user_role(name: &str) -> anyhow::Result<ClusterRole> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests/rbac/user-roles.yaml");
    let text = std::fs::read_to_string(path)?;
    for doc in text.split("\n---\n") {
        let role: ClusterRole = serde_saphyr::from_str(doc)?;
        if role.metadata.name.as_deref() == Some(name) {
            return Ok(role);
        }
    }
    anyhow::bail!("manifests/rbac/user-roles.yaml has no ClusterRole {name}")
}

async fn bind(bed: &Bed, user: &str, role_kind: &str, role: &str) -> anyhow::Result<()> {
    let binding: RoleBinding = serde_json::from_value(serde_json::json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": format!("{user}-{role}"), "namespace": bed.namespace},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": role},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
    }))?;
    Api::<RoleBinding>::namespaced(bed.client.clone(), &bed.namespace)
        .patch(
            &format!("{user}-{role}"),
            &PatchParams::apply("logs-test").force(),
            &Patch::Apply(&binding),
        )
        .await?;
    Ok(())
}

/// Runs `logs` as `kubeconfig` until it succeeds: RBAC takes effect a moment after a
/// binding is written.
async fn logs_once_allowed(bed: &Bed, kubeconfig: &Path, name: &str) -> anyhow::Result<KubectlRun> {
    let ns = bed.namespace.clone();
    bed.wait_until(&format!("logs {name} to be allowed"), WAIT, || {
        let ns = ns.clone();
        async move {
            let r = run(kubeconfig, &["logs", name, "-n", &ns]).await?;
            Ok((r.code == 0).then_some(r))
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_are_read_through_rbac_bounded_and_without_the_token() -> anyhow::Result<()> {
    tokio::task::spawn_blocking(kubectl::plugin_dir).await??;
    let mut bed = Bed::alone_without_runner("logs").await?;
    let ns = bed.namespace.clone();
    let logs_env = logs_api::install(&bed).await?;
    let failing = JobBehavior {
        failing_task: Some(FailingTask::new(FAILING_TASK, "localhost", FAILING_MSG)),
        ..quick_job()
    };
    bed.aap
        .set_instance_behavior(&ns, "failed-vm", None, failing);
    bed.aap
        .set_instance_behavior(&ns, "running-vm", None, quick_job().hold_running());
    // No retry of the failed provision while the test reads it: a retry would become the
    // newest job, which `logs` shows by default, and its output starts empty.
    let mut runner_env = logs_env.clone();
    runner_env.extend(
        [
            ("CLOUDKIT_RETRY_BASE", "10m"),
            ("CLOUDKIT_RETRY_MAX", "10m"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string())),
    );
    bed.start_runner(runner_env)?;
    logs_api::wait_available(&bed, WAIT).await?;
    let admin = bed.cp.kubeconfig_path().to_path_buf();
    let mut outputs = Vec::new();

    // Straight to the runner's port, without kube-apiserver's front-proxy certificate and
    // with a forged user header: the TLS handshake refuses it, so RBAC cannot be bypassed.
    let addr = &logs_env[0].1;
    let direct = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .build()?
        .get(format!(
            "https://{addr}/apis/logs.cloudkit.openshift.io/v1alpha1/namespaces/{ns}/computeinstances/failed-vm/log"
        ))
        .header("X-Remote-User", "system:admin")
        .send()
        .await;
    assert!(
        direct.is_err(),
        "the runner answered a caller without a client certificate: {direct:?}"
    );

    // A finished, failed job: its whole output, the failing task's fatal line included.
    bed.create_default("failed-vm").await?;
    let job = bed
        .wait_for("failed-vm", "its provision job fails", WAIT, |ci| {
            newest_job(ci).is_some_and(|j| j.state == JobState::Failed)
        })
        .await?;
    let id = newest_job(job.as_ref())
        .and_then(|j| j.job_id)
        .expect("an AAP job id");
    let r = run(&admin, &["logs", "failed-vm", "-n", &ns]).await?;
    assert_eq!(r.code, 0, "{r:#?}");
    assert!(
        r.stdout.contains(&format!("TASK [{FAILING_TASK}]")),
        "{r:#?}"
    );
    let fatal = r
        .stdout
        .lines()
        .find(|l| l.starts_with("fatal: [localhost]: FAILED!"));
    assert!(fatal.is_some_and(|l| l.contains(FAILING_MSG)), "{r:#?}");
    let whole = r.stdout.clone();
    outputs.push(r.stdout);

    // --tail N: exactly the last N lines; --job with its own id: the same output.
    let r = run(&admin, &["logs", "failed-vm", "-n", &ns, "--tail", "2"]).await?;
    assert_eq!(r.code, 0, "{r:#?}");
    let last: Vec<&str> = whole
        .lines()
        .rev()
        .take(2)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    assert_eq!(r.stdout.lines().collect::<Vec<_>>(), last, "{r:#?}");
    let r = run(&admin, &["logs", "failed-vm", "-n", &ns, "--job", &id]).await?;
    assert_eq!(r.stdout, whole, "{r:#?}");

    // --job must be one of the instance's jobs, never any AAP id.
    let r = run(&admin, &["logs", "failed-vm", "-n", &ns, "--job", "1"]).await?;
    refused(&r, "job 1 is not an AAP job of failed-vm");

    // --follow on a running job: lines appended after it started arrive, and it ends
    // (exit 0) when the job does.
    bed.create_default("running-vm").await?;
    let running = bed
        .aap
        .wait_until(WAIT, || {
            bed.aap
                .jobs_of(&ns, "running-vm")
                .into_iter()
                .find(|j| j.status == JobStatus::Running)
                .map(|j| j.id)
        })
        .await
        .expect("running-vm's job runs");
    assert!(bed.aap.append_stdout(running, "FIRST-MARKER"));
    let mut child = kubectl::command(
        &admin,
        &["cloudkit", "logs", "running-vm", "-n", &ns, "--follow"],
    )?
    .spawn()?;
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut followed = Vec::new();
    let mut read_until = async |marker: &str, followed: &mut Vec<String>| -> anyhow::Result<()> {
        while let Some(line) = tokio::time::timeout(WAIT, lines.next_line()).await?? {
            let done = line == marker;
            followed.push(line);
            if done {
                return Ok(());
            }
        }
        anyhow::bail!("the stream ended before {marker}: {followed:#?}")
    };
    read_until("FIRST-MARKER", &mut followed).await?;
    assert!(bed.aap.append_stdout(running, "SECOND-MARKER"));
    read_until("SECOND-MARKER", &mut followed).await?;
    bed.aap
        .set_instance_behavior(&ns, "running-vm", None, quick_job());
    let status = tokio::time::timeout(WAIT, child.wait()).await??;
    assert!(
        status.success(),
        "follow exits 0 when the job ends: {followed:#?}"
    );
    assert_eq!(followed.iter().filter(|l| *l == "SECOND-MARKER").count(), 1);
    outputs.push(followed.join("\n"));

    // Per instance: a user allowed to read running-vm's log is refused failed-vm's.
    let olga = bed.cp.kubeconfig_with("olga", None, &ns)?;
    let role: Role = serde_json::from_value(serde_json::json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": "running-vm-logs", "namespace": ns},
        "rules": [{"apiGroups": ["logs.cloudkit.openshift.io"], "resources": ["computeinstances/log"],
                   "resourceNames": ["running-vm"], "verbs": ["get"]}],
    }))?;
    Api::<Role>::namespaced(bed.client.clone(), &ns)
        .patch(
            "running-vm-logs",
            &PatchParams::apply("logs-test").force(),
            &Patch::Apply(&role),
        )
        .await?;
    bind(&bed, "olga", "Role", "running-vm-logs").await?;
    let r = logs_once_allowed(&bed, &olga, "running-vm").await?;
    assert!(r.stdout.contains("SECOND-MARKER"), "{r:#?}");
    let r = run(&olga, &["logs", "failed-vm", "-n", &ns]).await?;
    refused(&r, "Forbidden");
    assert!(
        r.stderr.contains("computeinstances/log") && r.stderr.contains("\"olga\""),
        "{r:#?}"
    );

    // A viewer of the namespace (cloudkit-view and cloudkit-logs, which aggregate to
    // `view`; the bed runs no aggregation controller, so both are bound) reads it.
    let admin_client = bed.client.clone();
    for name in ["cloudkit-view", "cloudkit-logs"] {
        let role = user_role(name)?;
        Api::<ClusterRole>::all(admin_client.clone())
            .patch(
                name,
                &PatchParams::apply("logs-test").force(),
                &Patch::Apply(&role),
            )
            .await?;
        bind(&bed, "victor", "ClusterRole", name).await?;
    }
    let victor = bed.cp.kubeconfig_with("victor", None, &ns)?;
    let r = logs_once_allowed(&bed, &victor, "failed-vm").await?;
    assert_eq!(r.stdout, whole);

    // The AAP token shows up in no output, Event, status or runner log.
    let events = Api::<k8s_openapi::api::events::v1::Event>::namespaced(admin_client.clone(), &ns)
        .list(&ListParams::default())
        .await?;
    outputs.push(serde_json::to_string(&events.items)?);
    outputs.push(serde_json::to_string(
        &bed.instances().list(&ListParams::default()).await?.items,
    )?);
    outputs.push(bed.runner_logs());
    for text in &outputs {
        assert!(
            !text.contains(DEFAULT_TOKEN),
            "the AAP token leaked: {text}"
        );
    }

    // EDA: no AAP job id, so there is no output to read; the answer says where to look.
    let mut env = bed.start_eda().await?;
    env.extend(logs_env);
    bed.start_runner(env)?;
    bed.create_default("eda-vm").await?;
    bed.wait_for("eda-vm", "an EDA job in its status", WAIT, |ci| {
        newest_job(ci).is_some_and(|j| j.provider == JobProvider::Eda)
    })
    .await?;
    let r = bed
        .wait_until("the restarted runner's logs API to answer", WAIT, || {
            let (admin, ns) = (admin.clone(), ns.clone());
            async move {
                let r = run(&admin, &["logs", "eda-vm", "-n", &ns]).await?;
                Ok((!r.stderr.contains("not reachable")).then_some(r))
            }
        })
        .await?;
    refused(&r, "eda-vm's jobs ran through EDA, which returns no job id");
    Ok(())
}
