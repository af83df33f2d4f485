//! End to end with real playbooks behind the AAP simulator: the real runner launches the
//! bed's templates, whose jobs run the reference `ansible/provision.yml` and
//! `ansible/deprovision.yml` with `ansible-playbook`; their `kubernetes.core` tasks act on
//! the bed's API server and the KubeVirt simulator makes the VMI. Lifecycle, restart and
//! deletion as `lifecycle.rs`, `restart.rs` and `deletion.rs` check them with simulated
//! playbooks. The first run installs the pinned Ansible environment.

use std::sync::atomic::Ordering;
use std::time::Duration;

use cloudkit_shared::names::{AAP_FINALIZER, INSTANCE_LABEL, RECONCILED_CONFIG_VERSION_ANNOTATION};
use cloudkit_shared::{ComputeInstance, ComputeInstanceSpec, JobState, JobType};
use cloudkit_testbed::aap_sim::{DEFAULT_TOKEN, JobStatus, Role};
use cloudkit_testbed::bed::{Bed, PROVISION_TEMPLATE_ID};
use cloudkit_testbed::clock::now_secs;
use cloudkit_testbed::kubevirt_sim::{vm_resource, vmi_resource};
use cloudkit_testbed::observe::{jobs_of, running};
use cloudkit_testbed::wait::REAL_ANSIBLE as WAIT;
use kube::ResourceExt;
use kube::api::{Api, DynamicObject, ListParams};
use serde_json::json;

fn spec(parameters: &str) -> ComputeInstanceSpec {
    ComputeInstanceSpec {
        template_id: "osac.templates.ocp_small".into(),
        template_parameters: Some(parameters.into()),
        ..Default::default()
    }
}

/// A bed whose AAP templates run the reference playbooks, with the runner started.
async fn bed(prefix: &str) -> anyhow::Result<Bed> {
    let mut bed = Bed::without_runner(prefix).await?;
    bed.use_real_playbooks().await?;
    bed.start_runner(vec![])?;
    Ok(bed)
}

fn annotation(ci: &ComputeInstance) -> Option<String> {
    ci.annotations()
        .get(RECONCILED_CONFIG_VERSION_ANNOTATION)
        .cloned()
}

async fn vmi_uid(bed: &Bed, name: &str) -> anyhow::Result<Option<String>> {
    let api: Api<DynamicObject> =
        Api::namespaced_with(bed.client.clone(), &bed.namespace, &vmi_resource());
    Ok(api.get_opt(name).await?.and_then(|v| v.uid()))
}

/// VMs labelled for the instance, in any namespace.
async fn vms_left(bed: &Bed, name: &str) -> anyhow::Result<usize> {
    let api: Api<DynamicObject> = Api::all_with(bed.client.clone(), &vm_resource());
    let lp = ListParams::default().labels(&format!("{INSTANCE_LABEL}={name}"));
    Ok(api.list(&lp).await?.items.len())
}

/// The job's output as the simulator serves it (what the playbook printed).
async fn stdout(bed: &Bed, job: u64) -> anyhow::Result<String> {
    Ok(reqwest::Client::new()
        .get(format!(
            "{}jobs/{job}/stdout/?format=txt",
            bed.aap.api_url()
        ))
        .bearer_auth(DEFAULT_TOKEN)
        .send()
        .await?
        .error_for_status()?
        .text()
        .await?)
}

/// The provision playbook's last task but one, where it waits for the VMI to run.
const WAIT_TASK: &str = "TASK [Wait until the VM's instance runs]";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_real_provision_playbook_runs_the_instance_and_a_restart_replaces_its_vmi()
-> anyhow::Result<()> {
    let bed = bed("real-pb").await?;
    bed.create("vm-a", spec(r#"{"cpus": 2, "memory": "128Mi"}"#))
        .await?;
    let ci = bed
        .wait_for("vm-a", "Running", WAIT, running)
        .await?
        .unwrap();
    let provisions = jobs_of(&ci, JobType::Provision);
    assert_eq!(provisions.len(), 1, "{provisions:?}");
    assert_eq!(
        provisions[0].state,
        JobState::Succeeded,
        "{}",
        provisions[0].message
    );
    let status = ci.status.as_ref().unwrap();
    assert!(status.desired_config_version.is_some());
    assert_eq!(
        annotation(&ci),
        status.desired_config_version,
        "the playbook reported the version"
    );
    assert_eq!(
        status.reconciled_config_version,
        status.desired_config_version
    );
    assert!(
        ci.finalizers().iter().any(|f| f == AAP_FINALIZER),
        "the playbook holds the instance: {:?}",
        ci.finalizers()
    );

    // The VM the playbook made, with the decoded parameters.
    let vms: Api<DynamicObject> =
        Api::namespaced_with(bed.client.clone(), &bed.namespace, &vm_resource());
    let vm = vms.get("vm-a").await?;
    assert_eq!(
        vm.labels().get(INSTANCE_LABEL).map(String::as_str),
        Some("vm-a")
    );
    let domain = &vm.data["spec"]["template"]["spec"]["domain"];
    assert_eq!(domain["cpu"]["cores"], 2);
    assert_eq!(domain["resources"]["requests"]["memory"], "128Mi");

    // The AAP job is the one in the status, and it ran the real playbook to its end.
    let jobs = bed.aap.jobs_of(&bed.namespace, "vm-a");
    assert_eq!(jobs.len(), 1, "exactly one job in AAP: {jobs:?}");
    assert_eq!(jobs[0].status, JobStatus::Successful);
    assert_eq!(
        provisions[0].job_id.as_deref(),
        Some(jobs[0].id.to_string().as_str())
    );
    let text = stdout(&bed, jobs[0].id).await?;
    for line in [
        "PLAY [Provision a ComputeInstance]",
        "TASK [Create or update the VirtualMachine]",
        "TASK [Report the config version as reconciled]",
        "PLAY RECAP",
    ] {
        assert!(
            text.contains(line),
            "no `{line}` in the job's stdout:\n{text}"
        );
    }
    assert!(bed.aap.overlap().is_none());

    // Restart: the runner replaces the VMI; no playbook is involved.
    let before = vmi_uid(&bed, "vm-a").await?.expect("a VMI runs");
    let made = bed.kubevirt.knobs.recreated.load(Ordering::Relaxed);
    let request = now_secs();
    bed.patch_spec("vm-a", json!({"restartRequestedAt": request.to_string()}))
        .await?;
    let ci = bed
        .wait_for("vm-a", "lastRestartedAt >= request", WAIT, |ci| {
            ci.and_then(|c| c.status.as_ref()?.last_restarted_at.clone())
                .is_some_and(|t| t.0 >= request)
        })
        .await?
        .unwrap();
    let after = vmi_uid(&bed, "vm-a").await?.expect("a new VMI runs");
    assert_ne!(before, after, "a newer VMI");
    let restarts = jobs_of(&ci, JobType::Restart);
    assert_eq!(restarts.len(), 1, "{restarts:?}");
    assert_eq!(restarts[0].state, JobState::Succeeded);
    assert_eq!(
        bed.kubevirt.knobs.recreated.load(Ordering::Relaxed),
        made + 1,
        "one VMI deletion"
    );
    assert_eq!(
        bed.aap.jobs_of(&bed.namespace, "vm-a").len(),
        1,
        "a restart launches no playbook"
    );
    Ok(())
}

/// Watches the instance until it is gone; on every observation no deprovision exists
/// while the provision job is active, and there is at most one. Returns the provision
/// job's states as seen.
async fn follow_deletion(bed: &Bed, name: &str) -> anyhow::Result<Vec<JobState>> {
    let deadline = std::time::Instant::now() + WAIT;
    let mut seen = Vec::new();
    loop {
        let Some(ci) = bed.instances().get_opt(name).await? else {
            return Ok(seen);
        };
        if let Some(p) = jobs_of(&ci, JobType::Provision).last() {
            seen.push(p.state);
            let deprovisions = jobs_of(&ci, JobType::Deprovision);
            if p.state.is_active() {
                assert!(
                    deprovisions.is_empty(),
                    "deprovision while provision {:?} is {}",
                    p.job_id,
                    p.state
                );
            }
            assert!(
                deprovisions.len() <= 1,
                "one deprovision job: {deprovisions:?}"
            );
        }
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "{name} not gone after {WAIT:?}:\n{}",
            bed.runner_logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_during_the_real_provision_cancels_it_then_deprovisions_once() -> anyhow::Result<()>
{
    let bed = bed("real-pb-delete").await?;
    // No VMI runs, so provision.yml stays at its wait for one.
    bed.kubevirt.pause().await;
    bed.create("vm-d", spec("{}")).await?;
    // Its output reaching the wait says the VM is made and the playbook waits.
    let deadline = std::time::Instant::now() + WAIT;
    let provision = loop {
        if let [job] = bed.aap.jobs_of(&bed.namespace, "vm-d").as_slice()
            && stdout(&bed, job.id).await?.contains(WAIT_TASK)
        {
            break job.clone();
        }
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "the provision playbook did not reach its wait for the VMI within {WAIT:?}:\n{}",
            bed.runner_logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(provision.status, JobStatus::Running);
    assert_eq!(vms_left(&bed, "vm-d").await?, 1, "the playbook made the VM");

    bed.delete("vm-d").await?;
    let states = follow_deletion(&bed, "vm-d").await?;
    assert!(
        states.contains(&JobState::Canceled),
        "provision seen Canceled: {states:?}"
    );

    let jobs = bed.aap.jobs_of(&bed.namespace, "vm-d");
    let provision: Vec<_> = jobs
        .iter()
        .filter(|j| j.role == Some(Role::Provision))
        .collect();
    let deprovision: Vec<_> = jobs
        .iter()
        .filter(|j| j.role == Some(Role::Deprovision))
        .collect();
    assert_eq!(provision.len(), 1, "{jobs:?}");
    assert_eq!(
        deprovision.len(),
        1,
        "exactly one deprovision job: {jobs:?}"
    );
    assert_eq!(provision[0].status, JobStatus::Canceled);
    assert_eq!(deprovision[0].status, JobStatus::Successful);
    assert!(
        deprovision[0].created >= provision[0].finished.expect("provision finished"),
        "the deprovision starts after the provision ended"
    );
    let text = stdout(&bed, provision[0].id).await?;
    assert!(
        !text.contains("PLAY RECAP"),
        "the provision playbook was stopped at its wait:\n{text}"
    );
    let text = stdout(&bed, deprovision[0].id).await?;
    for line in [
        "PLAY [Deprovision a ComputeInstance]",
        "TASK [Release the instance]",
        "PLAY RECAP",
    ] {
        assert!(
            text.contains(line),
            "no `{line}` in the deprovision's stdout:\n{text}"
        );
    }
    assert_eq!(
        vms_left(&bed, "vm-d").await?,
        0,
        "no VM with the label remains"
    );
    assert!(
        bed.aap.overlap().is_none(),
        "overlap: {:?}",
        bed.aap.overlap()
    );
    Ok(())
}

/// Guards the contract: `spec.templateParameters` is a JSON-encoded string. A launch whose
/// payload carries an object there (sent straight to the simulator, no runner) makes the
/// real provision playbook fail, saying so, before it touches anything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn template_parameters_as_an_object_fail_the_real_provision_job() -> anyhow::Result<()> {
    let bed = Bed::without_runner("real-pb-contract").await?;
    bed.use_real_playbooks().await?;
    let ci = bed.create("vm-c", spec("{}")).await?;
    let mut payload = serde_json::to_value(&ci)?;
    payload["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("managedFields");
    payload["spec"]["templateParameters"] = json!({"cpus": 2});
    payload["status"] = json!({"desiredConfigVersion": "1234"});
    let answer = reqwest::Client::new()
        .post(format!(
            "{}job_templates/{PROVISION_TEMPLATE_ID}/launch/",
            bed.aap.api_url()
        ))
        .bearer_auth(DEFAULT_TOKEN)
        .json(&json!({"extra_vars": {
            "ansible_eda": {"event": {"payload": payload}},
            "cloudkit_correlation_key": "contract-check",
        }}))
        .send()
        .await?
        .error_for_status()?
        .json::<serde_json::Value>()
        .await?;
    let id = answer["job"].as_u64().expect("a job id");
    let job = bed
        .aap
        .wait_for_terminal(id, WAIT)
        .await
        .expect("the job ends");
    let text = stdout(&bed, id).await?;
    assert_eq!(job.status, JobStatus::Failed, "{text}");
    let failure = format!(
        "spec.templateParameters of {}/vm-c must be a string holding a JSON object, got a dict",
        bed.namespace
    );
    assert!(text.contains(&failure), "no `{failure}` in:\n{text}");
    let ci = bed.instances().get("vm-c").await?;
    assert_eq!(annotation(&ci), None);
    assert!(!ci.finalizers().iter().any(|f| f == AAP_FINALIZER));
    assert_eq!(vms_left(&bed, "vm-c").await?, 0);
    Ok(())
}
