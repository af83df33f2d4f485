//! Taking over from the upstream cloudkit-operator on the real API server.
//!
//! Objects are stored the way a migrated cluster holds them: one under a looser CRD (a shape
//! no current schema accepts), the rest under the upstream operator's CRD with the status it
//! writes (jobs without provider or correlation key, its config versions, its finalizer).
//! Then cloudkit's CRD is applied over it and the runner started. The AAP simulator's
//! ledger counts every launch, so a repeated provision or deprovision cannot go unseen.
//!
//! One test only: it replaces the CRD of this binary's control plane.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use cloudkit_shared::config_version::upstream_config_version;
use cloudkit_shared::names::{
    AAP_FINALIZER, FINALIZER, MANAGEMENT_STATE_ANNOTATION, RECONCILED_CONFIG_VERSION_ANNOTATION,
};
use cloudkit_shared::{ComputeInstance, ComputeInstanceSpec, JobState, JobType, reasons};
use cloudkit_testbed::aap_sim::{DEFAULT_TOKEN, JobBehavior, JobRecord, Role};
use cloudkit_testbed::bed::{Bed, PROVISION_TEMPLATE_ID, quick_job};
use cloudkit_testbed::control_plane::crds;
use cloudkit_testbed::kubevirt_sim;
use cloudkit_testbed::runner_process::workspace_binary;
use cloudkit_testbed::wait::SEVERAL as WAIT;
use k8s_openapi::api::core::v1::Event;
use kube::api::{Api, ApiResource, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

const TEMPLATE: &str = "osac.templates.ocp_small";
const PARAMS: &str = r#"{"cpu_cores": 2, "memory": "4Gi"}"#;

fn spec() -> ComputeInstanceSpec {
    ComputeInstanceSpec {
        template_id: TEMPLATE.into(),
        template_parameters: Some(PARAMS.into()),
        ..Default::default()
    }
}

async fn apply_crd(client: &kube::Client, file: &str) -> anyhow::Result<()> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
    crds::install(client, &crds::read_file(&path)?).await?;
    Ok(())
}

fn raw(bed: &Bed) -> Api<DynamicObject> {
    let resource = ApiResource::erase::<ComputeInstance>(&());
    Api::namespaced_with(bed.client.clone(), &bed.namespace, &resource)
}

/// Stores an instance exactly as given (metadata, spec) and then its status.
async fn store(
    bed: &Bed,
    name: &str,
    metadata: Value,
    spec: Value,
    status: Value,
) -> anyhow::Result<()> {
    let mut meta = json!({ "name": name });
    meta.as_object_mut()
        .unwrap()
        .extend(metadata.as_object().cloned().unwrap_or_default());
    let obj: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "cloudkit.openshift.io/v1alpha1",
        "kind": "ComputeInstance",
        "metadata": meta,
        "spec": spec,
    }))?;
    raw(bed).create(&PostParams::default(), &obj).await?;
    if !status.is_null() {
        raw(bed)
            .patch_status(
                name,
                &PatchParams::default(),
                &Patch::Merge(&json!({ "status": status })),
            )
            .await?;
    }
    Ok(())
}

/// The VM a provisioning template created (the KubeVirt simulator gives it a VMI).
async fn create_vm(bed: &Bed, name: &str) -> anyhow::Result<()> {
    kubevirt_sim::create_vm(&bed.client, &bed.namespace, name).await?;
    Ok(())
}

/// An upstream job entry: no provider, no correlation key.
fn job(id: &str, job_type: &str, state: &str) -> Value {
    json!({ "jobID": id, "type": job_type, "state": state,
            "timestamp": "2026-11-01T10:00:00Z", "message": "as the upstream operator left it" })
}

/// Launches a provision job in the simulator as the upstream operator did (template by its
/// id here; the payload is the resource with the upstream config version in its status).
async fn upstream_launch(bed: &Bed, name: &str, version: &str) -> anyhow::Result<u64> {
    let payload = json!({
        "apiVersion": "cloudkit.openshift.io/v1alpha1", "kind": "ComputeInstance",
        "metadata": { "name": name, "namespace": bed.namespace },
        "spec": { "templateID": TEMPLATE, "templateParameters": PARAMS },
        "status": { "desiredConfigVersion": version },
    });
    let response = reqwest::Client::new()
        .post(format!(
            "{}job_templates/{PROVISION_TEMPLATE_ID}/launch/",
            bed.aap.api_url()
        ))
        .bearer_auth(DEFAULT_TOKEN)
        .json(&json!({ "extra_vars": { "ansible_eda": { "event": { "payload": payload } } } }))
        .send()
        .await?;
    anyhow::ensure!(
        response.status() == 201,
        "launch answered {}",
        response.status()
    );
    let body: Value = response.json().await?;
    body["job"]
        .as_u64()
        .ok_or_else(|| anyhow::anyhow!("no job id in {body}"))
}

fn launches(bed: &Bed, name: &str, role: Role) -> Vec<JobRecord> {
    bed.aap
        .jobs_of(&bed.namespace, name)
        .into_iter()
        .filter(|j| j.role == Some(role))
        .collect()
}

fn status(ci: Option<&ComputeInstance>) -> Option<&cloudkit_shared::ComputeInstanceStatus> {
    ci.and_then(|c| c.status.as_ref())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_the_upstream_operator_ran_is_taken_over_without_one_duplicate_job()
-> anyhow::Result<()> {
    let mut bed = Bed::without_runner("migration").await?;
    let client = bed.client.clone();
    let ns = bed.namespace.clone();
    let managed = json!({ "finalizers": [FINALIZER] });
    let version = upstream_config_version(&spec());
    let string_spec = json!({ "templateID": TEMPLATE, "templateParameters": PARAMS });

    // A shape no current schema accepts: parameters as an object, under a looser CRD.
    apply_crd(&client, "fixtures/upstream/computeinstances-crd-loose.yaml").await?;
    store(
        &bed,
        "broken",
        json!({}),
        json!({ "templateID": TEMPLATE, "templateParameters": { "cpu_cores": 2 } }),
        Value::Null,
    )
    .await?;

    // The upstream operator's CRD and what it left.
    apply_crd(&client, "fixtures/upstream/computeinstances-crd.yaml").await?;
    let annotated = |v: &str| json!({ "finalizers": [FINALIZER], "annotations": { RECONCILED_CONFIG_VERSION_ANNOTATION: v } });
    store(&bed, "provisioned", annotated(&version), string_spec.clone(),
          json!({ "phase": "Running", "desiredConfigVersion": version, "reconciledConfigVersion": version,
                  "virtualMachineReference": { "namespace": ns, "kubeVirtVirtualMachineName": "provisioned" },
                  "jobs": [job("9001", "provision", "Succeeded")] })).await?;
    create_vm(&bed, "provisioned").await?;

    // Restarted by the upstream operator: its version then hashed the restart request.
    let mut restarted_spec = spec();
    restarted_spec.restart_requested_at = Some(
        k8s_openapi::apimachinery::pkg::apis::meta::v1::Time("2026-11-02T10:00:00Z".parse()?),
    );
    let restarted_version = upstream_config_version(&restarted_spec);
    let mut spec_with_restart = string_spec.clone();
    spec_with_restart["restartRequestedAt"] = json!("2026-11-02T10:00:00Z");
    store(&bed, "restarted", annotated(&restarted_version), spec_with_restart,
          json!({ "phase": "Starting", "desiredConfigVersion": restarted_version, "reconciledConfigVersion": restarted_version,
                  "lastRestartedAt": "2026-11-02T10:00:00Z",
                  "virtualMachineReference": { "namespace": ns, "kubeVirtVirtualMachineName": "restarted" },
                  "jobs": [job("9002", "provision", "Succeeded")] })).await?;
    create_vm(&bed, "restarted").await?;

    // Its VM named otherwise by whatever made it, and no reference to it in status.
    store(&bed, "renamed", annotated(&version), string_spec.clone(),
          json!({ "phase": "Running", "desiredConfigVersion": version, "reconciledConfigVersion": version,
                  "jobs": [job("9004", "provision", "Succeeded")] })).await?;
    kubevirt_sim::create_vm_for(&bed.client, &ns, "renamed-vm", "renamed").await?;

    store(
        &bed,
        "failed",
        managed.clone(),
        string_spec.clone(),
        json!({ "phase": "Failed", "jobs": [job("9003", "provision", "Failed")] }),
    )
    .await?;

    // Provision jobs still running in AAP, one on an instance being deleted.
    let slow = JobBehavior {
        running: Duration::from_secs(3),
        ..quick_job()
    };
    bed.aap
        .set_instance_behavior(&ns, "provisioning", Some(Role::Provision), slow);
    let running_id = upstream_launch(&bed, "provisioning", &version).await?;
    store(&bed, "provisioning", managed.clone(), string_spec.clone(),
          json!({ "phase": "Starting", "jobs": [job(&running_id.to_string(), "provision", "Running")] })).await?;
    let endless = JobBehavior {
        running: Duration::from_secs(600),
        ..quick_job()
    };
    bed.aap
        .set_instance_behavior(&ns, "deleting", Some(Role::Provision), endless);
    let deleting_id = upstream_launch(&bed, "deleting", &version).await?;
    store(&bed, "deleting", managed.clone(), string_spec.clone(),
          json!({ "phase": "Starting", "jobs": [job(&deleting_id.to_string(), "provision", "Running")] })).await?;
    raw(&bed).delete("deleting", &Default::default()).await?;

    // An EDA job of the upstream operator, sent a moment ago (within the EDA deadline); the
    // playbook has added its finalizer.
    let mut recent_eda_job = job("eda-webhook-1", "provision", "Running");
    recent_eda_job["timestamp"] = json!(
        k8s_openapi::jiff::Timestamp::now()
            .strftime("%Y-%m-%dT%H:%M:%SZ")
            .to_string()
    );
    store(
        &bed,
        "eda",
        json!({ "finalizers": [FINALIZER, AAP_FINALIZER] }),
        string_spec.clone(),
        json!({ "phase": "Starting", "jobs": [recent_eda_job] }),
    )
    .await?;

    let state = |v: &str| json!({ "annotations": { MANAGEMENT_STATE_ANNOTATION: v } });
    store(
        &bed,
        "unmanaged",
        state("unmanaged"),
        string_spec.clone(),
        Value::Null,
    )
    .await?;
    store(
        &bed,
        "manual",
        state("manual"),
        string_spec.clone(),
        Value::Null,
    )
    .await?;

    // cloudkit takes over.
    apply_crd(&client, "../crds/computeinstance.yaml").await?;
    let before: usize = bed.aap.jobs().len();
    eprintln!("launches before the runner started: {before} (the two upstream jobs in flight)");
    bed.start_runner(Vec::new())?;

    let adopted = |ci: Option<&ComputeInstance>| {
        status(ci).is_some_and(|s| {
            s.jobs
                .iter()
                .any(|j| j.reason.as_deref() == Some(reasons::ADOPTED))
        })
    };
    bed.wait_for("provisioned", "adopted, Running", WAIT, |ci| {
        adopted(ci) && status(ci).and_then(|s| s.phase) == Some(cloudkit_shared::Phase::Running)
    })
    .await?;
    bed.wait_for(
        "restarted",
        "adopted (its annotation holds the upstream version with the restart)",
        WAIT,
        adopted,
    )
    .await?;
    bed.wait_for(
        "provisioning",
        "the upstream job followed to its end and adopted",
        WAIT,
        |ci| {
            status(ci).is_some_and(|s| s.jobs.len() == 1 && s.jobs[0].state == JobState::Succeeded)
                && adopted(ci)
        },
    )
    .await?;
    bed.wait_for("failed", "retried", WAIT, |ci| {
        status(ci).is_some_and(|s| {
            s.jobs
                .iter()
                .any(|j| j.job_type == JobType::Provision && j.state == JobState::Succeeded)
        })
    })
    .await?;
    bed.wait_for(
        "deleting",
        "canceled, deprovisioned once, gone",
        WAIT,
        |ci| ci.is_none(),
    )
    .await?;
    bed.wait_for("manual", "accepted as manually managed", WAIT, |ci| {
        status(ci).is_some_and(|s| {
            s.conditions
                .iter()
                .any(|c| c.reason == reasons::MANUALLY_MANAGED)
        })
    })
    .await?;

    // The EDA job ends by the upstream EDA rules: the playbook sets the annotation.
    raw(&bed)
        .patch("eda", &PatchParams::default(), &Patch::Merge(&json!({ "metadata": { "annotations": { RECONCILED_CONFIG_VERSION_ANNOTATION: version } } })))
        .await?;
    bed.wait_for("eda", "its upstream EDA job Succeeded", WAIT, |ci| {
        status(ci).is_some_and(|s| s.jobs.len() == 1 && s.jobs[0].state == JobState::Succeeded)
    })
    .await?;

    // The VM labelled for it is found under its other name and recorded.
    bed.wait_for("renamed", "its VM renamed-vm referenced", WAIT, |ci| {
        status(ci)
            .and_then(|s| s.virtual_machine_reference.as_ref())
            .is_some_and(|r| r.kube_virt_virtual_machine_name == "renamed-vm" && r.namespace == ns)
    })
    .await?;

    // Restarts work on a migrated instance.
    let vmi_before = vmi_uid(&bed, "restarted").await?;
    let request = k8s_openapi::jiff::Timestamp::now();
    bed.patch_spec(
        "restarted",
        json!({ "restartRequestedAt": request.strftime("%Y-%m-%dT%H:%M:%SZ").to_string() }),
    )
    .await?;
    bed.wait_for("restarted", "restarted", WAIT, |ci| {
        status(ci)
            .and_then(|s| s.last_restarted_at.as_ref())
            .is_some_and(|t| t.0.as_second() >= request.as_second())
    })
    .await?;
    let vmi_after = vmi_uid(&bed, "restarted").await?;
    assert_ne!(vmi_before, vmi_after, "a new VMI runs");

    // An instance created now is provisioned normally, its parameters reaching AAP unchanged.
    bed.create("fresh", spec()).await?;
    bed.wait_for("fresh", "provisioned", WAIT, |ci| {
        status(ci).and_then(|s| s.phase) == Some(cloudkit_shared::Phase::Running)
    })
    .await?;
    let fresh = launches(&bed, "fresh", Role::Provision);
    assert_eq!(fresh.len(), 1);
    assert_eq!(
        fresh[0].extra_vars["ansible_eda"]["event"]["payload"]["spec"]["templateParameters"],
        PARAMS
    );

    // The ledger: nothing repeated.
    let count = |name: &str, role| launches(&bed, name, role).len();
    eprintln!("launches after: {} in all", bed.aap.jobs().len());
    for name in [
        "provisioned",
        "restarted",
        "provisioning",
        "eda",
        "manual",
        "unmanaged",
        "broken",
    ] {
        let n = count(name, Role::Provision);
        let expected = usize::from(name == "provisioning");
        eprintln!("  {name}: {n} provision launch(es), {expected} by the upstream operator");
        assert_eq!(n, expected, "{name}: provision launches");
    }
    assert_eq!(
        count("failed", Role::Provision),
        1,
        "the failed provision is retried once"
    );
    assert_eq!(
        count("deleting", Role::Provision),
        1,
        "only the upstream job"
    );
    let deprovisions = launches(&bed, "deleting", Role::Deprovision);
    assert_eq!(deprovisions.len(), 1, "exactly one deprovision");
    let provision = bed.aap.job(deleting_id).expect("the upstream job");
    let canceled = provision
        .cancel_requested_at
        .expect("the running provision was canceled first");
    assert!(
        deprovisions[0].created >= canceled,
        "deprovision launched after the cancel"
    );
    assert!(bed.aap.overlap().is_none(), "{:?}", bed.aap.overlap());
    for name in [
        "provisioned",
        "restarted",
        "provisioning",
        "failed",
        "eda",
        "manual",
        "unmanaged",
        "broken",
    ] {
        assert_eq!(
            count(name, Role::Deprovision),
            0,
            "{name}: deprovision launches"
        );
    }

    // Unmanaged: left entirely alone (checked after the runner has served the others).
    let unmanaged = bed.instances().get("unmanaged").await?;
    assert!(unmanaged.status.is_none(), "{:?}", unmanaged.status);
    assert!(
        !unmanaged
            .metadata
            .finalizers
            .unwrap_or_default()
            .iter()
            .any(|f| f == FINALIZER)
    );

    // The unreadable object is named (log and Event), and served nothing.
    let logs = bed.runner_logs();
    assert!(
        logs.contains("broken") && logs.contains("spec.templateParameters"),
        "{logs}"
    );
    let events: Api<Event> = Api::namespaced(client.clone(), &ns);
    let unreadable = events
        .list(&ListParams::default().fields("involvedObject.name=broken"))
        .await?;
    assert!(
        unreadable
            .items
            .iter()
            .any(|e| e.reason.as_deref() == Some("Unreadable")),
        "{:?}",
        unreadable.items
    );

    // The plugin reads every other instance and names the unreadable field.
    let plugin = workspace_binary("kubectl-cloudkit", "kubectl-cloudkit")?;
    let out = Command::new(plugin)
        .args(["list", "-n", &ns])
        .env("KUBECONFIG", bed.cp.kubeconfig_path())
        .env("NO_COLOR", "1")
        .output()?;
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stderr}");
    for name in [
        "provisioned",
        "restarted",
        "provisioning",
        "failed",
        "eda",
        "manual",
        "unmanaged",
        "fresh",
    ] {
        assert!(stdout.contains(name), "{name} missing from:\n{stdout}");
    }
    assert!(
        stderr.contains("broken") && stderr.contains("spec.templateParameters"),
        "{stderr}"
    );

    // Beside the unreadable object, 100 new instances are all served.
    for i in 0..100 {
        bed.create(&format!("bulk-{i}"), spec()).await?;
    }
    for i in 0..100 {
        bed.wait_for(&format!("bulk-{i}"), "provisioned", WAIT, |ci| {
            status(ci).and_then(|s| s.phase) == Some(cloudkit_shared::Phase::Running)
        })
        .await?;
    }
    eprintln!("100 instances beside the unreadable one: all Running");
    Ok(())
}

async fn vmi_uid(bed: &Bed, name: &str) -> anyhow::Result<Option<String>> {
    let vmis: Api<DynamicObject> = Api::namespaced_with(
        bed.client.clone(),
        &bed.namespace,
        &cloudkit_testbed::kubevirt_sim::vmi_resource(),
    );
    Ok(vmis.get_opt(name).await?.and_then(|v| v.metadata.uid))
}
