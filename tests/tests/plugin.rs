//! The kubectl plugin end to end: every verb run THROUGH the real `kubectl` (plugin
//! discovery on PATH), against the real API server. No runner here: the tests play its
//! part by writing status through the status subresource.

use std::path::Path;
use std::time::Duration;

use cloudkit_shared::conditions as cond;
use cloudkit_shared::names::PLUGIN_FIELD_MANAGER;
use cloudkit_shared::{
    ComputeInstance, ComputeInstanceSpec, JobEntry, JobState, JobType, fixtures, reasons,
};
use cloudkit_testbed::control_plane::{ADMIN_USER, ControlPlane};
use cloudkit_testbed::kubectl::{self, KubectlRun as Run};
use cloudkit_testbed::wait::PLUGIN as WAIT;
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, ObjectMeta, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// `kubectl ARGS` from the shared helper with `NO_COLOR` unset: these tests check that
/// colour follows the terminal (and `--color`), not the environment.
fn kubectl(kubeconfig: &Path, args: &[&str]) -> Command {
    let mut cmd = kubectl::command(kubeconfig, args).expect("kubectl and the plugin");
    cmd.env_remove("NO_COLOR");
    cmd
}

async fn finish(child: Child) -> Run {
    kubectl::finish(child).await.expect("kubectl ran")
}

async fn run_as(kubeconfig: &Path, args: &[&str]) -> Run {
    finish(kubectl(kubeconfig, args).spawn().expect("start kubectl")).await
}

async fn run(args: &[&str]) -> Run {
    let cp = ControlPlane::shared().await.unwrap();
    run_as(cp.kubeconfig_path(), args).await
}

fn spawn(args: &[&str], cp: &ControlPlane) -> Child {
    kubectl(cp.kubeconfig_path(), args)
        .spawn()
        .expect("start kubectl")
}

fn ok(run: &Run) {
    assert_eq!(run.code, 0, "{run:#?}");
    assert!(
        !run.stdout.contains('\u{1b}'),
        "no colour off a terminal: {run:#?}"
    );
}

/// A namespace of its own and the instance API in it.
async fn setup(prefix: &str) -> (&'static ControlPlane, String, Api<ComputeInstance>) {
    // Build the plugin before the test takes any time (the first build takes a while).
    tokio::task::spawn_blocking(kubectl::plugin_dir)
        .await
        .unwrap()
        .expect("the plugin linked for kubectl");
    let cp = ControlPlane::shared().await.unwrap();
    let ns = cp.test_namespace(prefix).await.unwrap();
    let api = Api::namespaced(cp.client().await.unwrap(), &ns);
    (cp, ns, api)
}

async fn create(api: &Api<ComputeInstance>, name: &str, labels: &[(&str, &str)]) {
    let mut ci = ComputeInstance::new(
        name,
        ComputeInstanceSpec {
            template_id: "small_vm".into(),
            ..Default::default()
        },
    );
    ci.metadata.labels = Some(
        labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    );
    api.create(&PostParams::default(), &ci).await.unwrap();
}

/// Plays the runner: a merge patch of the status subresource.
async fn set_status(api: &Api<ComputeInstance>, name: &str, status: Value) {
    api.patch_status(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({ "status": status })),
    )
    .await
    .unwrap();
}

/// A job entry as the runner writes it, with a message naming its type and state.
fn job(id: Option<&str>, job_type: JobType, state: JobState, created: &str) -> Value {
    let mut job = fixtures::job(id, job_type, state, fixtures::t(created));
    job.message = format!("{job_type} {state}");
    serde_json::to_value(job).unwrap()
}

fn history() -> Value {
    let mut provision = job(
        Some("101"),
        JobType::Provision,
        JobState::Succeeded,
        "2026-01-01T10:00:00Z",
    );
    provision["startTime"] = json!("2026-01-01T10:00:10Z");
    provision["finishTime"] = json!("2026-01-01T10:04:10Z");
    let mut failed = job(
        Some("102"),
        JobType::Provision,
        JobState::Failed,
        "2026-01-01T11:00:00Z",
    );
    failed["finishTime"] = json!("2026-01-01T11:00:30Z");
    failed["reason"] = json!("TemplateNotFound");
    let launching = job(
        None,
        JobType::Provision,
        JobState::Pending,
        "2026-01-01T12:00:00Z",
    );
    json!([provision, failed, launching])
}

/// Polls until `f` sees what it wants in the instance.
async fn wait_until<T>(
    api: &Api<ComputeInstance>,
    name: &str,
    what: &str,
    f: impl Fn(&ComputeInstance) -> Option<T>,
) -> T {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Ok(ci) = api.get(name).await
            && let Some(v) = f(&ci)
        {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn cond(type_: &str, status: &str, reason: &str, message: &str, at: &str) -> Value {
    json!({
        "type": type_, "status": status, "reason": reason, "message": message,
        "lastTransitionTime": at,
    })
}

fn now_rfc3339() -> String {
    k8s_openapi::jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

#[tokio::test]
async fn jobs_lists_the_history_newest_first() {
    let (_cp, ns, api) = setup("plugin-jobs").await;
    create(&api, "vm-1", &[]).await;
    set_status(
        &api,
        "vm-1",
        json!({ "phase": "Starting", "jobs": history() }),
    )
    .await;

    let r = run(&["cloudkit", "jobs", "vm-1", "-n", &ns]).await;
    ok(&r);
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert!(
        lines[0].starts_with("ID") && lines[0].contains("STATE") && lines[0].ends_with("MESSAGE"),
        "{}",
        r.stdout
    );
    assert!(lines[1].starts_with("(launching)"), "{}", r.stdout);
    assert!(
        lines[2].starts_with("102 ") && lines[2].contains("Failed"),
        "{}",
        r.stdout
    );
    assert!(
        lines[3].starts_with("101 ") && lines[3].contains("4m0s"),
        "{}",
        r.stdout
    );

    let r = run(&["cloudkit", "jobs", "vm-1", "-n", &ns, "-o", "wide"]).await;
    ok(&r);
    assert!(r.stdout.contains("PROVIDER") && r.stdout.contains("TemplateNotFound"));
    assert!(r.stdout.contains("2026-01-01T10:04:10Z"), "{}", r.stdout);

    let r = run(&["cloudkit", "jobs", "vm-1", "-n", &ns, "-o", "json"]).await;
    ok(&r);
    let jobs: Vec<JobEntry> = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(jobs.len(), 3);
    assert_eq!(jobs[1].job_id.as_deref(), Some("102"));

    let r = run(&["cloudkit", "jobs", "vm-1", "-n", &ns, "-o", "yaml"]).await;
    ok(&r);
    let jobs: Vec<JobEntry> = serde_saphyr::from_str(&r.stdout).unwrap();
    assert_eq!(jobs[2].job_id.as_deref(), Some("101"));

    // Colour on request only; never by default off a terminal.
    let r = run(&["cloudkit", "jobs", "vm-1", "-n", &ns, "--color=always"]).await;
    assert!(r.stdout.contains("\u{1b}[31mFailed"), "{r:#?}");
}

/// Reads stdout lines into `seen` until one contains `want`.
async fn read_until(
    lines: &mut tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    want: &str,
    seen: &mut Vec<String>,
) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let line = tokio::time::timeout_at(deadline, lines.next_line())
            .await
            .unwrap_or_else(|_| panic!("no {want:?} in {seen:#?}"))
            .unwrap()
            .expect("the watch keeps running");
        let found = line.contains(want);
        seen.push(line);
        if found {
            return;
        }
    }
}

#[tokio::test]
async fn jobs_watch_redraws_on_change() {
    let (cp, ns, api) = setup("plugin-watch").await;
    create(&api, "vm-w", &[]).await;
    set_status(&api, "vm-w", json!({ "jobs": history() })).await;

    let mut child = spawn(&["cloudkit", "jobs", "vm-w", "-n", &ns, "--watch"], cp);
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    read_until(&mut lines, "101", &mut seen).await;
    let mut jobs = history();
    jobs.as_array_mut().unwrap().push(job(
        Some("restart-1"),
        JobType::Restart,
        JobState::Running,
        "2026-01-01T13:00:00Z",
    ));
    set_status(&api, "vm-w", json!({ "jobs": jobs })).await;
    read_until(&mut lines, "restart-1", &mut seen).await;
    assert_eq!(
        seen.iter().filter(|l| l.starts_with("ID ")).count(),
        2,
        "one redraw: {seen:#?}"
    );
    child.kill().await.unwrap();
}

#[tokio::test]
async fn describe_list_and_stats() {
    let (_cp, ns, api) = setup("plugin-describe").await;
    create(&api, "vm-a", &[("team", "a")]).await;
    create(&api, "vm-b", &[("team", "b")]).await;
    set_status(
        &api,
        "vm-a",
        json!({
            "phase": "Running",
            "jobs": history(),
            "conditions": [cond("Available", "True", "Provisioned", "VirtualMachine is provisioned", "2026-01-01T10:04:10Z")],
            "virtualMachineReference": { "namespace": ns, "kubeVirtVirtualMachineName": "vm-a" },
            "desiredConfigVersion": "abc", "reconciledConfigVersion": "abc",
        }),
    )
    .await;

    let r = run(&["cloudkit", "describe", "vm-a", "-n", &ns]).await;
    ok(&r);
    for want in [
        "Name:          vm-a",
        "Phase:         Running",
        &format!("VM:            {ns}/vm-a"),
        "desired abc, reconciled abc (up to date)",
        "Available   True     Provisioned",
        "Requests:      none pending",
        "(launching)",
    ] {
        assert!(r.stdout.contains(want), "{want:?} in\n{}", r.stdout);
    }
    let r = run(&["cloudkit", "describe", "vm-a", "-n", &ns, "-o", "yaml"]).await;
    ok(&r);
    let ci: ComputeInstance = serde_saphyr::from_str(&r.stdout).unwrap();
    assert_eq!(ci.status.unwrap().jobs.len(), 3);

    let r = run(&["cloudkit", "list", "-n", &ns]).await;
    ok(&r);
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert!(
        lines[0].starts_with("NAME ") && lines[0].contains("LAST JOB"),
        "{}",
        r.stdout
    );
    assert!(
        lines[1].starts_with("vm-a") && lines[1].contains("provision (launching)"),
        "{}",
        r.stdout
    );
    assert!(lines[2].starts_with("vm-b"), "{}", r.stdout);

    let r = run(&["cloudkit", "list", "-n", &ns, "-l", "team=b"]).await;
    ok(&r);
    assert_eq!(r.stdout.lines().count(), 2, "{}", r.stdout);

    let r = run(&["cloudkit", "list", "-A", "-o", "json"]).await;
    ok(&r);
    let list: kube::core::ObjectList<ComputeInstance> = serde_json::from_str(&r.stdout).unwrap();
    assert!(
        list.items
            .iter()
            .any(|ci| ci.metadata.namespace.as_deref() == Some(&ns))
    );
    let r = run(&["cloudkit", "list", "-A"]).await;
    ok(&r);
    assert!(r.stdout.starts_with("NAMESPACE "), "{}", r.stdout);

    let r = run(&["cloudkit", "stats", "-n", &ns]).await;
    ok(&r);
    assert!(
        r.stdout.contains("provision   aap        1       4m0s"),
        "{}",
        r.stdout
    );
    let r = run(&["cloudkit", "stats", "vm-a", "vm-b", "-n", &ns, "-o", "json"]).await;
    ok(&r);
    let stats: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(stats["instances"], 2);
    assert_eq!(stats["groups"][0]["p50Seconds"], 240);
}

#[tokio::test]
async fn restart_wait_finishes_when_the_runner_acknowledges() {
    let (cp, ns, api) = setup("plugin-restart").await;
    create(&api, "vm-r", &[]).await;

    let child = spawn(
        &[
            "cloudkit",
            "restart",
            "vm-r",
            "-n",
            &ns,
            "--wait",
            "--timeout",
            "60s",
        ],
        cp,
    );
    let request = wait_until(&api, "vm-r", "the restart request", |ci| {
        ci.spec.restart_requested_at.clone()
    })
    .await;
    let at = request.0.to_string();
    assert!(!at.contains('.'), "whole seconds: {at}");
    let ci = api.get("vm-r").await.unwrap();
    let managers: Vec<_> = ci
        .metadata
        .managed_fields
        .unwrap_or_default()
        .into_iter()
        .filter_map(|m| m.manager)
        .collect();
    assert!(
        managers.iter().any(|m| m == PLUGIN_FIELD_MANAGER),
        "{managers:?}"
    );

    let mut restart = job(Some("restart-1"), JobType::Restart, JobState::Running, &at);
    restart["requestedAt"] = json!(at);
    restart["message"] = json!("deleted VMI a; waiting for KubeVirt to start a new one");
    set_status(&api, "vm-r", json!({ "jobs": [restart.clone()] })).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    restart["state"] = json!("Succeeded");
    restart["message"] = json!("VMI a replaced by running VMI b");
    set_status(
        &api,
        "vm-r",
        json!({ "jobs": [restart], "lastRestartedAt": at }),
    )
    .await;

    let r = finish(child).await;
    ok(&r);
    assert!(
        r.stdout.contains(&format!("requested at {at}")),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("restart job restart-1: Running"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains("computeinstance \"vm-r\" restarted: VMI a replaced by running VMI b"),
        "{}",
        r.stdout
    );
}

#[tokio::test]
async fn restart_wait_fails_with_the_runners_reason() {
    let (cp, ns, api) = setup("plugin-restart-fail").await;
    create(&api, "vm-f", &[]).await;
    let child = spawn(&["cloudkit", "restart", "vm-f", "-n", &ns, "--wait"], cp);
    let request = wait_until(&api, "vm-f", "the restart request", |ci| {
        ci.spec.restart_requested_at.clone()
    })
    .await;
    let at = request.0.to_string();
    let mut failed = job(Some("restart-1"), JobType::Restart, JobState::Failed, &at);
    failed["requestedAt"] = json!(at);
    failed["reason"] = json!(reasons::NO_VM_REFERENCE);
    failed["message"] = json!("no VirtualMachine is known for this instance yet");
    set_status(
        &api,
        "vm-f",
        json!({
            "jobs": [failed],
            "conditions": [cond(cond::RESTART_FAILED, "True", reasons::NO_VM_REFERENCE, "no VirtualMachine is known for this instance yet", &now_rfc3339())],
        }),
    )
    .await;
    let r = finish(child).await;
    assert_eq!(r.code, 1, "{r:#?}");
    assert_eq!(
        r.stderr.trim(),
        "error: restart of computeinstance \"vm-f\" failed (NoVMReference): no VirtualMachine is known for this instance yet"
    );
}

#[tokio::test]
async fn restart_scheduled_and_timeouts_and_bad_times() {
    let (_cp, ns, api) = setup("plugin-restart-sched").await;
    create(&api, "vm-s", &[]).await;

    let before = k8s_openapi::jiff::Timestamp::now();
    let r = run(&["cloudkit", "restart", "vm-s", "-n", &ns, "--in", "10m"]).await;
    ok(&r);
    assert!(
        r.stdout.contains("scheduled for") && r.stdout.contains("(in 10m)"),
        "{}",
        r.stdout
    );
    let ci = api.get("vm-s").await.unwrap();
    let at = ci.spec.restart_requested_at.unwrap().0;
    let ahead = at.duration_since(before).as_secs();
    assert!((599..=610).contains(&ahead), "{ahead}");

    let r = run(&[
        "cloudkit",
        "restart",
        "vm-s",
        "-n",
        &ns,
        "--at",
        "2030-01-01T00:00:00Z",
        "-o",
        "json",
    ])
    .await;
    ok(&r);
    let ci: ComputeInstance = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(
        ci.spec.restart_requested_at.unwrap().0.to_string(),
        "2030-01-01T00:00:00Z"
    );
    assert!(
        r.stderr.contains("replaces the restart scheduled for"),
        "{r:#?}"
    );

    // No runner acknowledges: the wait ends at its timeout, non-zero.
    let r = run(&[
        "cloudkit",
        "restart",
        "vm-s",
        "-n",
        &ns,
        "--wait",
        "--timeout",
        "2s",
    ])
    .await;
    assert_eq!(r.code, 1, "{r:#?}");
    assert!(
        r.stderr
            .starts_with("error: timed out after 2s waiting for the restart"),
        "{r:#?}"
    );

    for (args, want) in [
        (
            vec!["--at", "tomorrow"],
            "invalid value 'tomorrow' for '--at <TIME>'",
        ),
        (
            vec!["--in", "soon"],
            "invalid value 'soon' for '--in <DURATION>'",
        ),
    ] {
        let mut full = vec!["cloudkit", "restart", "vm-s", "-n", &ns];
        full.extend(args);
        let r = run(&full).await;
        assert_eq!(r.code, 2, "{r:#?}");
        assert_eq!(r.stderr.lines().count(), 1, "{r:#?}");
        assert!(r.stderr.contains(want), "{r:#?}");
    }
    // A time not later than the acknowledged restart would be ignored: refused.
    set_status(
        &api,
        "vm-s",
        json!({ "lastRestartedAt": "2030-01-01T00:00:00Z" }),
    )
    .await;
    let r = run(&[
        "cloudkit",
        "restart",
        "vm-s",
        "-n",
        &ns,
        "--at",
        "2029-01-01T00:00:00Z",
    ])
    .await;
    assert_eq!(r.code, 2, "{r:#?}");
    assert!(
        r.stderr.contains("not later than the last restart request"),
        "{r:#?}"
    );
}

#[tokio::test]
async fn cancel_says_when_there_is_nothing_to_cancel() {
    let (cp, ns, api) = setup("plugin-cancel-none").await;
    create(&api, "vm-c", &[]).await;
    let child = spawn(&["cloudkit", "cancel", "vm-c", "-n", &ns, "--wait"], cp);
    let request = wait_until(&api, "vm-c", "the cancel request", |ci| {
        ci.spec.cancel_requested_at.clone()
    })
    .await;
    let at = request.0.to_string();
    set_status(
        &api,
        "vm-c",
        json!({
            "lastCancelRequestedAt": at,
            "conditions": [cond(cond::CANCELED, "False", reasons::NOTHING_TO_CANCEL, "cancel requested but no provision job was active; nothing to cancel", &at)],
        }),
    )
    .await;
    let r = finish(child).await;
    ok(&r);
    assert!(
        r.stdout
            .contains("nothing to cancel: computeinstance \"vm-c\" had no active provision job"),
        "{}",
        r.stdout
    );

    // Without --wait it says so up front.
    let r = run(&["cloudkit", "cancel", "vm-c", "-n", &ns]).await;
    ok(&r);
    assert!(
        r.stdout.contains("probably nothing to cancel"),
        "{}",
        r.stdout
    );
}

#[tokio::test]
async fn cancel_wait_follows_the_job_to_canceled() {
    let (cp, ns, api) = setup("plugin-cancel").await;
    create(&api, "vm-k", &[]).await;
    let active = job(
        Some("42"),
        JobType::Provision,
        JobState::Running,
        "2026-01-01T10:00:00Z",
    );
    set_status(&api, "vm-k", json!({ "jobs": [active.clone()] })).await;

    let child = spawn(&["cloudkit", "cancel", "vm-k", "-n", &ns, "--wait"], cp);
    let request = wait_until(&api, "vm-k", "the cancel request", |ci| {
        ci.spec.cancel_requested_at.clone()
    })
    .await;
    let at = request.0.to_string();
    let mut job = active;
    job["cancelRequestedAt"] = json!(at);
    job["message"] = json!("cancel requested: canceled by request");
    set_status(
        &api,
        "vm-k",
        json!({
            "lastCancelRequestedAt": at,
            "jobs": [job.clone()],
            "conditions": [cond(cond::CANCELED, "True", reasons::CANCEL_REQUESTED, "canceling provision job 42 by request", &at)],
        }),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    job["state"] = json!("Canceled");
    set_status(&api, "vm-k", json!({ "jobs": [job], "phase": "Canceled" })).await;

    let r = finish(child).await;
    ok(&r);
    assert!(
        r.stdout
            .contains("cancel requested for provision job 42 of computeinstance \"vm-k\""),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains("provision job 42: Running: cancel requested"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains("provision job 42 of computeinstance \"vm-k\" canceled"),
        "{}",
        r.stdout
    );
}

#[tokio::test]
async fn provision_wait_follows_the_new_job() {
    let (cp, ns, api) = setup("plugin-provision").await;
    create(&api, "vm-p", &[]).await;
    let canceled = job(
        Some("41"),
        JobType::Provision,
        JobState::Canceled,
        "2026-01-01T10:00:00Z",
    );
    set_status(
        &api,
        "vm-p",
        json!({ "jobs": [canceled.clone()], "phase": "Canceled" }),
    )
    .await;

    let child = spawn(&["cloudkit", "provision", "vm-p", "-n", &ns, "--wait"], cp);
    let request = wait_until(&api, "vm-p", "the provision request", |ci| {
        ci.spec.provision_requested_at.clone()
    })
    .await;
    let at = request.0.to_string();
    let mut new = job(None, JobType::Provision, JobState::Pending, &at);
    new["requestedAt"] = json!(at);
    set_status(
        &api,
        "vm-p",
        json!({ "lastProvisionRequestedAt": at, "jobs": [canceled.clone(), new.clone()] }),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    new["jobID"] = json!("43");
    new["state"] = json!("Succeeded");
    set_status(
        &api,
        "vm-p",
        json!({ "jobs": [canceled, new], "phase": "Running" }),
    )
    .await;

    let r = finish(child).await;
    ok(&r);
    assert!(
        r.stdout
            .contains("provision requested for computeinstance \"vm-p\""),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains("provision job 43 of computeinstance \"vm-p\" succeeded"),
        "{}",
        r.stdout
    );
}

#[tokio::test]
async fn not_found_is_one_clear_line() {
    let (_cp, ns, _api) = setup("plugin-notfound").await;
    for verb in [
        "jobs",
        "describe",
        "restart",
        "cancel",
        "provision",
        "stats",
    ] {
        let r = run(&["cloudkit", verb, "nope", "-n", &ns]).await;
        assert_eq!(r.code, 1, "{verb}: {r:#?}");
        assert_eq!(
            r.stderr.trim(),
            format!("error: computeinstance \"nope\" not found in namespace \"{ns}\""),
            "{verb}"
        );
        assert!(r.stdout.is_empty(), "{verb}: {r:#?}");
    }
    let r = run(&["cloudkit", "list", "-n", &ns]).await;
    ok(&r);
    assert_eq!(
        r.stderr.trim(),
        format!("No computeinstances found in {ns} namespace.")
    );
}

#[tokio::test]
async fn forbidden_names_the_verb_and_the_role() {
    let (cp, ns, api) = setup("plugin-forbidden").await;
    create(&api, "vm-x", &[]).await;

    let nobody = cp.kubeconfig_for("nobody").unwrap();
    let r = run_as(&nobody, &["cloudkit", "jobs", "vm-x", "-n", &ns]).await;
    assert_eq!(r.code, 1, "{r:#?}");
    assert_eq!(
        r.stderr.trim(),
        format!(
            "error: forbidden: User \"nobody\" cannot get computeinstances in namespace \"{ns}\"; the ClusterRole cloudkit-view (manifests/) grants it: kubectl create rolebinding <name> --clusterrole=cloudkit-view --user=nobody -n {ns}"
        )
    );
    let r = run_as(&nobody, &["cloudkit", "list", "-A"]).await;
    assert_eq!(r.code, 1, "{r:#?}");
    assert!(
        r.stderr
            .contains("cannot list computeinstances in all namespaces"),
        "{r:#?}"
    );

    // A viewer may read but not write: restart is refused at the patch.
    let viewer = format!("viewer-{ns}");
    let client = cp.client().await.unwrap();
    let rules = vec![PolicyRule {
        api_groups: Some(vec!["cloudkit.openshift.io".into()]),
        resources: Some(vec!["computeinstances".into()]),
        verbs: vec!["get".into(), "list".into(), "watch".into()],
        ..Default::default()
    }];
    Api::<Role>::namespaced(client.clone(), &ns)
        .create(
            &PostParams::default(),
            &Role {
                metadata: ObjectMeta {
                    name: Some("ci-viewer".into()),
                    ..Default::default()
                },
                rules: Some(rules),
            },
        )
        .await
        .unwrap();
    Api::<RoleBinding>::namespaced(client, &ns)
        .create(
            &PostParams::default(),
            &RoleBinding {
                metadata: ObjectMeta {
                    name: Some("ci-viewer".into()),
                    ..Default::default()
                },
                role_ref: RoleRef {
                    api_group: Some("rbac.authorization.k8s.io".into()),
                    kind: "Role".into(),
                    name: "ci-viewer".into(),
                },
                subjects: Some(vec![Subject {
                    kind: "User".into(),
                    name: viewer.clone(),
                    api_group: Some("rbac.authorization.k8s.io".into()),
                    ..Default::default()
                }]),
            },
        )
        .await
        .unwrap();
    let viewer_config = cp.kubeconfig_for(&viewer).unwrap();
    let r = run_as(&viewer_config, &["cloudkit", "jobs", "vm-x", "-n", &ns]).await;
    assert_eq!(r.code, 0, "{r:#?}");
    let r = run_as(&viewer_config, &["cloudkit", "restart", "vm-x", "-n", &ns]).await;
    assert_eq!(r.code, 1, "{r:#?}");
    assert!(
        r.stderr.contains(&format!(
            "cannot patch computeinstances in namespace \"{ns}\"; the ClusterRole cloudkit-edit"
        )),
        "{r:#?}"
    );
}

#[tokio::test]
async fn unreachable_cluster_names_the_server() {
    let cp = ControlPlane::shared().await.unwrap();
    // A port nothing listens on: bound, then released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let text = std::fs::read_to_string(cp.kubeconfig_path()).unwrap();
    let dead = text.replace(cp.server_url(), &format!("https://127.0.0.1:{port}"));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dead.yaml");
    std::fs::write(&path, dead).unwrap();
    let r = run_as(&path, &["cloudkit", "list"]).await;
    assert_eq!(r.code, 1, "{r:#?}");
    assert_eq!(r.stderr.lines().count(), 1, "{r:#?}");
    assert!(
        r.stderr.starts_with(&format!(
            "error: cannot reach the cluster at https://127.0.0.1:{port}:"
        )),
        "{r:#?}"
    );
}

#[tokio::test]
async fn kubeconfig_paths_contexts_and_default_namespace() {
    let (cp, ns, api) = setup("plugin-kubeconfig").await;
    create(&api, "vm-k", &[]).await;
    set_status(&api, "vm-k", json!({ "jobs": history() })).await;

    // The context's namespace is the default.
    let admin_here = cp
        .kubeconfig_with(ADMIN_USER, Some("system:masters"), &ns)
        .unwrap();
    let r = run_as(&admin_here, &["cloudkit", "jobs", "vm-k"]).await;
    ok(&r);
    assert!(r.stdout.contains("101"), "{}", r.stdout);

    // KUBECONFIG with two files: the first one's current-context (nobody) wins, and
    // --context picks the admin context that only the second file defines.
    let mut second: kube::config::Kubeconfig =
        kube::config::Kubeconfig::read_from(&admin_here).unwrap();
    second.contexts[0].name = "admin-ctx".into();
    second.current_context = Some("admin-ctx".into());
    let dir = tempfile::tempdir().unwrap();
    let second_path = dir.path().join("admin.yaml");
    std::fs::write(&second_path, serde_saphyr::to_string(&second).unwrap()).unwrap();
    let nobody = cp.kubeconfig_with("nobody", None, &ns).unwrap();
    let both = format!("{}:{}", nobody.display(), second_path.display());
    let run_both = async |args: &[&str]| {
        finish(
            kubectl(Path::new(&both), args)
                .spawn()
                .expect("start kubectl"),
        )
        .await
    };
    let r = run_both(&["cloudkit", "jobs", "vm-k"]).await;
    assert_eq!(r.code, 1, "{r:#?}");
    assert!(r.stderr.contains("User \"nobody\""), "{r:#?}");
    let r = run_both(&["cloudkit", "jobs", "vm-k", "--context", "admin-ctx"]).await;
    ok(&r);
    let r = run_both(&["cloudkit", "jobs", "vm-k", "--context", "missing"]).await;
    assert_eq!(r.code, 1, "{r:#?}");
    assert!(r.stderr.contains("context \"missing\" not found"), "{r:#?}");
    // --kubeconfig overrides KUBECONFIG.
    let r = run_both(&[
        "cloudkit",
        "jobs",
        "vm-k",
        "--kubeconfig",
        &admin_here.display().to_string(),
    ])
    .await;
    ok(&r);
}

#[tokio::test]
async fn completion_help_and_version() {
    let (cp, ns, api) = setup("plugin-complete").await;
    create(&api, "alpha-1", &[]).await;
    create(&api, "alpha-2", &[]).await;
    create(&api, "beta-1", &[]).await;
    let here = cp
        .kubeconfig_with(ADMIN_USER, Some("system:masters"), &ns)
        .unwrap();

    // kubectl's own completion asks kubectl_complete-cloudkit.
    let r = run_as(&here, &["__complete", "cloudkit", "jobs", "al"]).await;
    assert_eq!(r.code, 0, "{r:#?}");
    assert_eq!(r.stdout, "alpha-1\nalpha-2\n:4\n", "{r:#?}");
    let r = run_as(
        &here,
        &["__complete", "cloudkit", "-n", &ns, "describe", ""],
    )
    .await;
    assert_eq!(r.stdout, "alpha-1\nalpha-2\nbeta-1\n:4\n", "{r:#?}");
    let r = run_as(&here, &["__complete", "cloudkit", "res"]).await;
    assert_eq!(r.stdout, "restart\n:4\n", "{r:#?}");

    let r = run(&["cloudkit", "completion", "bash"]).await;
    ok(&r);
    assert!(r.stdout.contains("kubectl-cloudkit"), "{}", r.stdout);

    let r = run(&["cloudkit", "version"]).await;
    ok(&r);
    assert_eq!(
        r.stdout,
        format!("kubectl-cloudkit {}\n", env!("CARGO_PKG_VERSION"))
    );

    let r = run(&["cloudkit", "--help"]).await;
    ok(&r);
    assert!(r.stdout.contains("Usage: kubectl cloudkit"), "{}", r.stdout);
    let r = run(&["cloudkit", "frobnicate"]).await;
    assert_eq!(r.code, 2, "{r:#?}");
    assert_eq!(r.stderr.lines().count(), 1, "{r:#?}");
}

/// Needs a control plane of its own: deleting the CRD on the shared one would break
/// every other test.
#[tokio::test]
async fn missing_crd_says_how_to_install_it() {
    let cp = ControlPlane::start().await.unwrap();
    let crds: Api<CustomResourceDefinition> = Api::all(cp.client().await.unwrap());
    crds.delete(
        "computeinstances.cloudkit.openshift.io",
        &DeleteParams::default(),
    )
    .await
    .unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let r = run_as(cp.kubeconfig_path(), &["cloudkit", "list"]).await;
        if r.stderr.contains("CRD is not installed") {
            assert_eq!(r.code, 1, "{r:#?}");
            assert_eq!(
                r.stderr.trim(),
                format!(
                    "error: the ComputeInstance CRD is not installed on {}: kubectl apply -f crds/ (or check --context)",
                    cp.server_url()
                )
            );
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{r:#?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let r = run_as(cp.kubeconfig_path(), &["cloudkit", "jobs", "vm-1"]).await;
    assert_eq!(r.code, 1, "{r:#?}");
    assert!(r.stderr.contains("CRD is not installed"), "{r:#?}");
}
