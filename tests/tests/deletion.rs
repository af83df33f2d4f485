//! End to end: deletion — cancel before deprovision, exactly one deprovision, policies
//! (lifecycle rules 1, 2, 4, 5, docs/lifecycle-rules.md).

use cloudkit_testbed::observe::{jobs_of, running};
use std::time::Duration;

use cloudkit_shared::conditions as cond;
use cloudkit_shared::{ComputeInstanceSpec, DeprovisionFailurePolicy, JobState, JobType, Phase};
use cloudkit_testbed::aap_sim::{Fault, JobBehavior, Outcome, Role};
use cloudkit_testbed::bed::{Bed, DEPROVISION_TEMPLATE_ID, PROVISION_TEMPLATE_ID, quick_job};
use cloudkit_testbed::deletion::vms_anywhere;
use cloudkit_testbed::wait::RUNNER as WAIT;

async fn vms_left(bed: &Bed, name: &str) -> anyhow::Result<usize> {
    vms_anywhere(&bed.client, name).await
}

async fn follow_deletion(bed: &Bed, name: &str) -> anyhow::Result<Vec<JobState>> {
    cloudkit_testbed::deletion::follow_deletion(bed, name, WAIT).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_during_provision_cancels_first_then_deprovisions_once() -> anyhow::Result<()> {
    let bed = Bed::start("delete-provisioning").await?;
    bed.aap.update_template(PROVISION_TEMPLATE_ID, |t| {
        t.behavior = quick_job()
            .hold_running()
            .cancel_delay(Duration::from_millis(800));
    });
    bed.create_default("vm-1").await?;
    bed.wait_for("vm-1", "provision job Running", WAIT, |ci| {
        ci.is_some_and(|c| {
            jobs_of(c, JobType::Provision)
                .last()
                .is_some_and(|j| j.state == JobState::Running)
        })
    })
    .await?;
    bed.delete("vm-1").await?;
    let states = follow_deletion(&bed, "vm-1").await?;
    assert!(
        states.contains(&JobState::Canceled),
        "provision seen Canceled: {states:?}"
    );
    let jobs = bed.aap.jobs_of(&bed.namespace, "vm-1");
    let provision: Vec<_> = jobs
        .iter()
        .filter(|j| j.role == Some(Role::Provision))
        .collect();
    let deprovision: Vec<_> = jobs
        .iter()
        .filter(|j| j.role == Some(Role::Deprovision))
        .collect();
    assert_eq!(provision.len(), 1);
    assert_eq!(deprovision.len(), 1, "exactly one deprovision job in AAP");
    assert!(deprovision[0].created >= provision[0].finished.expect("provision finished"));
    assert_eq!(
        vms_left(&bed, "vm-1").await?,
        0,
        "no VM with the label remains"
    );
    assert!(
        bed.aap.overlap().is_none(),
        "overlap: {:?}",
        bed.aap.overlap()
    );
    // The cancel was POSTed once.
    let cancels = bed
        .aap
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/cancel/"))
        .count();
    assert_eq!(cancels, 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_after_running_deprovisions_and_removes_the_vm() -> anyhow::Result<()> {
    let bed = Bed::start("delete-running").await?;
    bed.create_default("vm-2").await?;
    bed.wait_for("vm-2", "Running", WAIT, running).await?;
    assert_eq!(vms_left(&bed, "vm-2").await?, 1);
    bed.delete("vm-2").await?;
    follow_deletion(&bed, "vm-2").await?;
    assert_eq!(vms_left(&bed, "vm-2").await?, 0);
    let jobs = bed.aap.jobs_of(&bed.namespace, "vm-2");
    assert_eq!(
        jobs.iter()
            .filter(|j| j.role == Some(Role::Deprovision))
            .count(),
        1
    );
    assert!(bed.aap.overlap().is_none());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_with_a_slow_cancel_still_never_overlaps() -> anyhow::Result<()> {
    let bed = Bed::start("delete-slow-cancel").await?;
    bed.aap.update_template(PROVISION_TEMPLATE_ID, |t| {
        t.behavior = quick_job()
            .hold_running()
            .cancel_delay(Duration::from_secs(4));
    });
    bed.aap.slow_cancel(Duration::from_secs(2));
    bed.create_default("vm-3").await?;
    bed.wait_for("vm-3", "provision Running", WAIT, |ci| {
        ci.is_some_and(|c| {
            jobs_of(c, JobType::Provision)
                .last()
                .is_some_and(|j| j.state == JobState::Running)
        })
    })
    .await?;
    bed.delete("vm-3").await?;
    follow_deletion(&bed, "vm-3").await?;
    assert!(bed.aap.overlap().is_none());
    assert_eq!(vms_left(&bed, "vm-3").await?, 0);
    Ok(())
}

async fn failing_deprovision(policy: DeprovisionFailurePolicy) -> anyhow::Result<Bed> {
    let bed = Bed::start(&format!("delete-failing-{policy:?}").to_lowercase()).await?;
    bed.aap.update_template(DEPROVISION_TEMPLATE_ID, |t| {
        t.behavior = JobBehavior {
            outcome: Outcome::Failed,
            job_explanation: "deprovision playbook failed".into(),
            ..quick_job()
        };
    });
    bed.create(
        "vm-4",
        ComputeInstanceSpec {
            template_id: "osac.templates.ocp_small".into(),
            deprovision_failure_policy: Some(policy),
            ..Default::default()
        },
    )
    .await?;
    bed.wait_for("vm-4", "Running", WAIT, running).await?;
    bed.delete("vm-4").await?;
    Ok(bed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_deprovision_blocks_deletion_under_policy_block() -> anyhow::Result<()> {
    let bed = failing_deprovision(DeprovisionFailurePolicy::Block).await?;
    let ci = bed
        .wait_for("vm-4", "four failed deprovision attempts", WAIT, |ci| {
            ci.is_some_and(|c| {
                jobs_of(c, JobType::Deprovision)
                    .iter()
                    .filter(|j| j.state == JobState::Failed)
                    .count()
                    >= 4
            })
        })
        .await?
        .expect("still there");
    let c = ci
        .status
        .as_ref()
        .unwrap()
        .conditions
        .iter()
        .find(|c| c.type_ == cond::DEPROVISION_FAILED)
        .cloned()
        .unwrap();
    assert!(
        c.message.contains("deprovisionFailurePolicy"),
        "{}",
        c.message
    );
    assert_eq!(ci.status.as_ref().unwrap().phase, Some(Phase::Deleting));
    // Fixing the template lets deletion finish.
    bed.aap
        .update_template(DEPROVISION_TEMPLATE_ID, |t| t.behavior = quick_job());
    bed.wait_for("vm-4", "gone after the fix", WAIT, |ci| ci.is_none())
        .await?;
    assert!(bed.aap.overlap().is_none());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_deprovision_lets_deletion_proceed_under_policy_proceed() -> anyhow::Result<()> {
    let bed = failing_deprovision(DeprovisionFailurePolicy::Proceed).await?;
    bed.wait_for("vm-4", "gone after the attempts", WAIT, |ci| ci.is_none())
        .await?;
    let deprovisions = bed
        .aap
        .jobs_of(&bed.namespace, "vm-4")
        .into_iter()
        .filter(|j| j.role == Some(Role::Deprovision))
        .count();
    assert_eq!(deprovisions, 3, "CLOUDKIT_DEPROVISION_ATTEMPTS default");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runner_killed_between_cancel_and_deprovision_and_during_launch() -> anyhow::Result<()> {
    let mut bed = Bed::start("delete-crash").await?;
    bed.aap.update_template(PROVISION_TEMPLATE_ID, |t| {
        t.behavior = quick_job()
            .hold_running()
            .cancel_delay(Duration::from_secs(2));
    });
    bed.create_default("vm-5").await?;
    bed.wait_for("vm-5", "provision Running", WAIT, |ci| {
        ci.is_some_and(|c| {
            jobs_of(c, JobType::Provision)
                .last()
                .is_some_and(|j| j.state == JobState::Running)
        })
    })
    .await?;
    // The deprovision launch will create its job and then hang: the runner dies in between.
    bed.aap.push_faults(
        cloudkit_testbed::aap_sim::Endpoint::Launch,
        Fault::CommitThenHang,
        1,
    );
    bed.delete("vm-5").await?;
    bed.wait_for("vm-5", "cancel requested", WAIT, |ci| {
        ci.is_some_and(|c| {
            jobs_of(c, JobType::Provision)
                .last()
                .is_some_and(|j| j.cancel_requested_at.is_some())
        })
    })
    .await?;
    bed.runner().kill(); // between cancel and deprovision
    tokio::time::sleep(Duration::from_secs(3)).await;
    bed.runner().restart()?;
    // Wait until the deprovision launch reached AAP (and hangs), then kill again.
    let launched = bed
        .aap
        .wait_until(WAIT, || {
            bed.aap
                .jobs()
                .iter()
                .any(|j| j.role == Some(Role::Deprovision))
                .then_some(())
        })
        .await;
    anyhow::ensure!(
        launched.is_some(),
        "no deprovision launch:\n{}",
        bed.runner_logs()
    );
    bed.runner().kill(); // between launch and status write
    bed.runner().restart()?;
    follow_deletion(&bed, "vm-5").await?;
    let deprovisions = bed
        .aap
        .jobs_of(&bed.namespace, "vm-5")
        .into_iter()
        .filter(|j| j.role == Some(Role::Deprovision))
        .count();
    assert_eq!(
        deprovisions, 1,
        "exactly one deprovision across two crashes"
    );
    assert!(bed.aap.overlap().is_none());
    assert_eq!(vms_left(&bed, "vm-5").await?, 0);
    Ok(())
}
