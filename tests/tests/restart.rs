//! End to end: restart by VMI deletion, scheduled restarts, cancel provisioning in place
//! (signals and lifecycle rule 6, docs/lifecycle-rules.md).

use cloudkit_testbed::observe::{condition, jobs_of, running};
use std::sync::atomic::Ordering;
use std::time::Duration;

use cloudkit_shared::conditions as cond;
use cloudkit_shared::{JobState, JobType, Phase, reasons};
use cloudkit_testbed::aap_sim::Role;
use cloudkit_testbed::bed::{Bed, PROVISION_TEMPLATE_ID, quick_job};
use cloudkit_testbed::clock::now_secs;
use cloudkit_testbed::kubevirt_sim::{vm_resource, vmi_resource};
use cloudkit_testbed::wait::RUNNER as WAIT;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use serde_json::json;

async fn vmi_uid(bed: &Bed, name: &str) -> anyhow::Result<Option<String>> {
    let api: Api<DynamicObject> =
        Api::namespaced_with(bed.client.clone(), &bed.namespace, &vmi_resource());
    Ok(api.get_opt(name).await?.and_then(|v| v.uid()))
}

async fn request_restart(bed: &Bed, name: &str, at: Timestamp) -> anyhow::Result<()> {
    bed.patch_spec(name, json!({"restartRequestedAt": at.to_string()}))
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_replaces_the_vmi_and_acknowledges_the_request() -> anyhow::Result<()> {
    let bed = Bed::start("restart").await?;
    bed.create_default("vm-r").await?;
    bed.wait_for("vm-r", "Running", WAIT, running).await?;
    let before = vmi_uid(&bed, "vm-r").await?.expect("a VMI runs");
    let request = now_secs();
    request_restart(&bed, "vm-r", request).await?;
    let ci = bed
        .wait_for("vm-r", "lastRestartedAt >= request", WAIT, |ci| {
            ci.and_then(|c| c.status.as_ref()?.last_restarted_at.clone())
                .is_some_and(|t| t.0 >= request)
        })
        .await?
        .unwrap();
    let after = vmi_uid(&bed, "vm-r").await?.expect("a new VMI runs");
    assert_ne!(before, after, "a newer VMI");
    assert!(condition(&ci, cond::RESTART_FAILED).is_none());
    let restarts = jobs_of(&ci, JobType::Restart);
    assert_eq!(restarts.len(), 1);
    assert_eq!(restarts[0].state, JobState::Succeeded);
    assert_eq!(
        bed.kubevirt.knobs.recreated.load(Ordering::Relaxed),
        1,
        "one VMI deletion"
    );

    // A request not later than lastRestartedAt changes nothing.
    request_restart(
        &bed,
        "vm-r",
        Timestamp::from_second(request.as_second() - 60).unwrap(),
    )
    .await?;
    let ci = bed.wait_reconciled("vm-r", WAIT).await?;
    assert_eq!(vmi_uid(&bed, "vm-r").await?, Some(after));
    assert_eq!(
        jobs_of(&ci, JobType::Restart).len(),
        1,
        "no second restart job"
    );
    assert_eq!(bed.kubevirt.knobs.recreated.load(Ordering::Relaxed), 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_restart_happens_at_its_time_not_before() -> anyhow::Result<()> {
    let bed = Bed::start("restart-scheduled").await?;
    bed.create_default("vm-s").await?;
    bed.wait_for("vm-s", "Running", WAIT, running).await?;
    let before = vmi_uid(&bed, "vm-s").await?;
    let at = Timestamp::from_second(now_secs().as_second() + 6).unwrap();
    request_restart(&bed, "vm-s", at).await?;
    let ci = bed
        .wait_for("vm-s", "RestartScheduled condition", WAIT, |ci| {
            ci.and_then(|c| condition(c, cond::RESTART_SCHEDULED))
                .is_some()
        })
        .await?
        .unwrap();
    assert!(
        condition(&ci, cond::RESTART_SCHEDULED)
            .unwrap()
            .message
            .contains(&at.to_string())
    );
    while Timestamp::now() < Timestamp::from_second(at.as_second() - 1).unwrap() {
        assert_eq!(
            vmi_uid(&bed, "vm-s").await?,
            before,
            "not restarted before its time"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    bed.wait_for("vm-s", "restarted", WAIT, |ci| {
        ci.and_then(|c| c.status.as_ref()?.last_restarted_at.clone())
            .is_some_and(|t| t.0 >= at)
    })
    .await?;
    assert_ne!(vmi_uid(&bed, "vm-s").await?, before);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_failures_name_their_reason() -> anyhow::Result<()> {
    let mut bed = Bed::without_runner("restart-failures").await?;
    bed.start_runner(vec![("CLOUDKIT_RESTART_DEADLINE".into(), "4s".into())])?;
    // No VM yet: provisioning is held running.
    bed.aap.set_instance_behavior(
        &bed.namespace,
        "vm-novm",
        Some(Role::Provision),
        quick_job().hold_running(),
    );
    bed.create_default("vm-novm").await?;
    bed.wait_for("vm-novm", "provision running", WAIT, |ci| {
        ci.is_some_and(|c| {
            jobs_of(c, JobType::Provision)
                .last()
                .is_some_and(|j| j.state == JobState::Running)
        })
    })
    .await?;
    request_restart(&bed, "vm-novm", now_secs()).await?;
    bed.wait_for("vm-novm", "RestartFailed NoVMReference", WAIT, |ci| {
        ci.and_then(|c| condition(c, cond::RESTART_FAILED))
            .is_some_and(|c| c.reason == reasons::NO_VM_REFERENCE)
    })
    .await?;

    // Halted VM.
    bed.create_default("vm-halted").await?;
    bed.wait_for("vm-halted", "Running", WAIT, running).await?;
    let vms: Api<DynamicObject> =
        Api::namespaced_with(bed.client.clone(), &bed.namespace, &vm_resource());
    vms.patch(
        "vm-halted",
        &PatchParams::default(),
        &Patch::Merge(&json!({"spec": {"runStrategy": "Halted"}})),
    )
    .await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    request_restart(&bed, "vm-halted", now_secs()).await?;
    bed.wait_for("vm-halted", "RestartFailed VMHalted", WAIT, |ci| {
        ci.and_then(|c| condition(c, cond::RESTART_FAILED))
            .is_some_and(|c| c.reason == reasons::VM_HALTED)
    })
    .await?;

    // VMI never recreated: KubeVirt is stuck.
    bed.create_default("vm-stuck").await?;
    bed.wait_for("vm-stuck", "Running", WAIT, running).await?;
    bed.kubevirt.pause().await;
    request_restart(&bed, "vm-stuck", now_secs()).await?;
    let ci = bed
        .wait_for("vm-stuck", "RestartFailed RestartTimeout", WAIT, |ci| {
            ci.and_then(|c| condition(c, cond::RESTART_FAILED))
                .is_some_and(|c| c.reason == reasons::RESTART_TIMEOUT)
        })
        .await?
        .unwrap();
    assert!(condition(&ci, cond::RESTART_IN_PROGRESS).is_none());
    bed.kubevirt.resume();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runner_killed_mid_restart_deletes_the_vmi_once() -> anyhow::Result<()> {
    let mut bed = Bed::start("restart-crash").await?;
    bed.create_default("vm-k").await?;
    bed.wait_for("vm-k", "Running", WAIT, running).await?;
    bed.kubevirt
        .knobs
        .recreate_delay_ms
        .store(2000, Ordering::Relaxed);
    let request = now_secs();
    request_restart(&bed, "vm-k", request).await?;
    bed.wait_for("vm-k", "restart recorded", WAIT, |ci| {
        ci.is_some_and(|c| !jobs_of(c, JobType::Restart).is_empty())
    })
    .await?;
    bed.runner().kill();
    tokio::time::sleep(Duration::from_millis(300)).await;
    bed.runner().restart()?;
    bed.wait_for("vm-k", "restart done", WAIT, |ci| {
        ci.and_then(|c| c.status.as_ref()?.last_restarted_at.clone())
            .is_some_and(|t| t.0 >= request)
    })
    .await?;
    // A reconcile of the restarted runner after the acknowledgement, through a spec change
    // it ignores (an older request): any second deletion would have come by then.
    request_restart(
        &bed,
        "vm-k",
        Timestamp::from_second(request.as_second() - 60).unwrap(),
    )
    .await?;
    bed.wait_reconciled("vm-k", WAIT).await?;
    assert_eq!(
        bed.kubevirt.knobs.recreated.load(Ordering::Relaxed),
        1,
        "exactly one VMI deletion"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_in_place_keeps_the_instance_and_provision_again_works() -> anyhow::Result<()> {
    let bed = Bed::start("cancel").await?;
    bed.aap.set_instance_behavior(
        &bed.namespace,
        "vm-c",
        Some(Role::Provision),
        quick_job().hold_running(),
    );
    bed.create_default("vm-c").await?;
    bed.wait_for("vm-c", "provision running", WAIT, |ci| {
        ci.is_some_and(|c| {
            jobs_of(c, JobType::Provision)
                .last()
                .is_some_and(|j| j.state == JobState::Running)
        })
    })
    .await?;
    bed.patch_spec("vm-c", json!({"cancelRequestedAt": now_secs().to_string()}))
        .await?;
    let ci = bed
        .wait_for("vm-c", "phase Canceled", WAIT, |ci| {
            ci.and_then(|c| c.status.as_ref()?.phase) == Some(Phase::Canceled)
        })
        .await?
        .unwrap();
    let job = jobs_of(&ci, JobType::Provision).pop().unwrap();
    assert_eq!(job.state, JobState::Canceled);
    assert!(!job.message.is_empty());
    let aap_job = bed
        .aap
        .job(job.job_id.as_deref().unwrap().parse()?)
        .unwrap();
    assert_eq!(aap_job.status.as_str(), "canceled");
    let c = condition(&ci, cond::CANCELED).unwrap();
    assert_eq!(c.reason, reasons::CANCELED_BY_REQUEST);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        bed.instances().get_opt("vm-c").await?.is_some(),
        "the resource stays"
    );
    assert!(
        bed.aap
            .jobs_of(&bed.namespace, "vm-c")
            .iter()
            .all(|j| j.role != Some(Role::Deprovision)),
        "no deprovision"
    );
    assert_eq!(
        bed.aap.jobs_of(&bed.namespace, "vm-c").len(),
        1,
        "no automatic re-provision"
    );

    // Provision again.
    bed.aap
        .clear_instance_behavior(&bed.namespace, "vm-c", Some(Role::Provision));
    bed.patch_spec(
        "vm-c",
        json!({"provisionRequestedAt": now_secs().to_string()}),
    )
    .await?;
    bed.wait_for("vm-c", "Running after provision again", WAIT, running)
        .await?;
    assert_eq!(bed.aap.jobs_of(&bed.namespace, "vm-c").len(), 2);
    let _ = PROVISION_TEMPLATE_ID;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_with_nothing_to_cancel_says_so() -> anyhow::Result<()> {
    let bed = Bed::start("cancel-nothing").await?;
    bed.create_default("vm-n").await?;
    bed.wait_for("vm-n", "Running", WAIT, running).await?;
    bed.patch_spec("vm-n", json!({"cancelRequestedAt": now_secs().to_string()}))
        .await?;
    let ci = bed
        .wait_for("vm-n", "NothingToCancel", WAIT, |ci| {
            ci.and_then(|c| condition(c, cond::CANCELED))
                .is_some_and(|c| c.reason == reasons::NOTHING_TO_CANCEL)
        })
        .await?
        .unwrap();
    assert_eq!(ci.status.unwrap().phase, Some(Phase::Running));
    Ok(())
}
