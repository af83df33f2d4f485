//! End to end on the real control plane: the real runner process provisions through the AAP
//! simulator.

use cloudkit_testbed::observe::{condition, jobs_of, phase, running};
use std::time::Duration;

use cloudkit_shared::conditions as cond;
use cloudkit_shared::{JobState, JobType, Phase, reasons};
use cloudkit_testbed::aap_sim::{Endpoint, Role};
use cloudkit_testbed::bed::{Bed, PROVISION_TEMPLATE_ID};
use cloudkit_testbed::wait::RUNNER as WAIT;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_reaches_running_with_one_succeeded_provision_job() -> anyhow::Result<()> {
    let bed = Bed::start("create").await?;
    bed.create_default("vm-a").await?;
    let ci = bed
        .wait_for("vm-a", "phase Running", WAIT, running)
        .await?
        .unwrap();
    let provisions = jobs_of(&ci, JobType::Provision);
    assert_eq!(provisions.len(), 1, "{provisions:?}");
    let job = &provisions[0];
    assert_eq!(job.state, JobState::Succeeded);
    assert!(
        job.start_time.is_some() && job.finish_time.is_some(),
        "{job:?}"
    );
    let status = ci.status.as_ref().unwrap();
    let vm_ref = status
        .virtual_machine_reference
        .as_ref()
        .expect("VM reference set");
    assert_eq!(vm_ref.kube_virt_virtual_machine_name, "vm-a");
    assert_eq!(
        status.reconciled_config_version,
        status.desired_config_version
    );
    assert_eq!(condition(&ci, cond::AVAILABLE).unwrap().status, "True");
    assert_eq!(
        bed.aap.jobs_of(&bed.namespace, "vm-a").len(),
        1,
        "exactly one job in AAP"
    );
    assert!(bed.aap.overlap().is_none());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spec_change_reprovisions_and_restart_request_does_not() -> anyhow::Result<()> {
    let bed = Bed::start("reprovision").await?;
    bed.create_default("vm-b").await?;
    bed.wait_for("vm-b", "Running", WAIT, running).await?;
    bed.patch_spec(
        "vm-b",
        json!({"restartRequestedAt": k8s_openapi::jiff::Timestamp::now().to_string()}),
    )
    .await?;
    bed.wait_reconciled("vm-b", WAIT).await?;
    assert_eq!(
        bed.aap.jobs_of(&bed.namespace, "vm-b").len(),
        1,
        "a restart is not a provision"
    );
    bed.patch_spec("vm-b", json!({"templateParameters": r#"{"cpus": 4}"#}))
        .await?;
    let ci = bed
        .wait_for(
            "vm-b",
            "second provision job succeeded and Running",
            WAIT,
            |ci| {
                ci.is_some_and(|c| {
                    running(Some(c))
                        && jobs_of(c, JobType::Provision).len() == 2
                        && jobs_of(c, JobType::Provision)[1].state == JobState::Succeeded
                })
            },
        )
        .await?
        .unwrap();
    let provisions = jobs_of(&ci, JobType::Provision);
    assert_ne!(provisions[0].config_version, provisions[1].config_version);
    assert_eq!(bed.aap.jobs_of(&bed.namespace, "vm-b").len(), 2);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_template_is_retried_and_names_the_error() -> anyhow::Result<()> {
    let bed = Bed::start("failing").await?;
    bed.aap.update_template(PROVISION_TEMPLATE_ID, |t| {
        t.behavior.outcome = cloudkit_testbed::aap_sim::Outcome::Failed;
        t.behavior.job_explanation = "Playbook failed: no capacity".into();
    });
    bed.create_default("vm-c").await?;
    let ci = bed
        .wait_for("vm-c", "three failed provision attempts", WAIT, |ci| {
            ci.is_some_and(|c| {
                jobs_of(c, JobType::Provision)
                    .iter()
                    .filter(|j| j.state == JobState::Failed)
                    .count()
                    >= 3
            })
        })
        .await?
        .unwrap();
    assert_eq!(phase(Some(&ci)), Some(Phase::Failed));
    let available = condition(&ci, cond::AVAILABLE).unwrap();
    assert_eq!(available.status, "False");
    assert!(
        available.message.contains("failed"),
        "{}",
        available.message
    );
    // Growing delays between attempts (retry base 1s, max 4s).
    let starts: Vec<_> = bed
        .aap
        .jobs_of(&bed.namespace, "vm-c")
        .iter()
        .map(|j| j.created)
        .collect();
    let gaps: Vec<_> = starts
        .windows(2)
        .map(|w| w[1].duration_since(w[0]))
        .collect();
    assert!(
        gaps.len() >= 2 && gaps[1] > gaps[0],
        "gaps between attempts grow: {gaps:?}"
    );
    // Recovery when the template is fixed.
    bed.aap.update_template(PROVISION_TEMPLATE_ID, |t| {
        t.behavior.outcome = cloudkit_testbed::aap_sim::Outcome::Successful;
    });
    bed.wait_for("vm-c", "Running after the fix", WAIT, running)
        .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn launch_errors_become_conditions_and_recover() -> anyhow::Result<()> {
    let mut bed = Bed::without_runner("launch-errors").await?;
    // Unknown template name.
    bed.start_runner(vec![(
        "CLOUDKIT_AAP_PROVISION_TEMPLATE".into(),
        "no-such-template".into(),
    )])?;
    bed.create_default("vm-d").await?;
    let ci = bed
        .wait_for("vm-d", "TemplateNotFound", WAIT, |ci| {
            ci.and_then(|c| condition(c, cond::AVAILABLE))
                .is_some_and(|c| c.reason == reasons::TEMPLATE_NOT_FOUND)
        })
        .await?
        .unwrap();
    let msg = condition(&ci, cond::AVAILABLE).unwrap().message;
    assert!(msg.contains("no-such-template"), "{msg}");
    // The template appears in AAP under that name: recovery on the next retry.
    bed.aap.update_template(PROVISION_TEMPLATE_ID, |t| {
        t.name = "no-such-template".into()
    });
    bed.wait_for("vm-d", "Running once the template exists", WAIT, running)
        .await?;
    assert!(bed.aap.overlap().is_none());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_stays_bounded_under_many_reprovisions() -> anyhow::Result<()> {
    let mut bed = Bed::without_runner("history").await?;
    bed.start_runner(vec![("CLOUDKIT_MAX_JOB_HISTORY".into(), "3".into())])?;
    bed.create_default("vm-e").await?;
    bed.wait_for("vm-e", "Running", WAIT, running).await?;
    for n in 0..6 {
        bed.patch_spec(
            "vm-e",
            json!({"templateParameters": format!(r#"{{"n": {n}}}"#)}),
        )
        .await?;
        let ci = bed
            .wait_for("vm-e", "an active or new provision job", WAIT, |ci| {
                ci.is_some_and(|c| c.status.as_ref().unwrap().jobs.len() <= 4)
            })
            .await?
            .unwrap();
        let status = ci.status.unwrap();
        assert!(status.jobs.len() <= 4, "history bounded: {:?}", status.jobs);
    }
    let ci = bed
        .wait_for("vm-e", "Running at the last version", WAIT, |ci| {
            ci.is_some_and(|c| {
                running(Some(c))
                    && c.status.as_ref().unwrap().desired_config_version
                        == c.status.as_ref().unwrap().reconciled_config_version
            })
        })
        .await?
        .unwrap();
    let jobs = &ci.status.as_ref().unwrap().jobs;
    assert!(jobs.len() <= 3, "{jobs:?}");
    assert_eq!(jobs.last().unwrap().state, JobState::Succeeded);
    Ok(())
}

/// Kills the runner while a provision launch is in flight, with the launch either not yet
/// done (`Hang`) or done in AAP but not answered (`CommitThenHang`), then while the job
/// runs; every time exactly one provision job must exist in AAP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runner_killed_at_each_step_of_provisioning_launches_once() -> anyhow::Result<()> {
    use cloudkit_testbed::aap_sim::Fault;
    let mut bed = Bed::start("provision-crash").await?;
    for (n, fault) in [Fault::Hang, Fault::CommitThenHang].into_iter().enumerate() {
        let name = format!("vm-k{n}");
        bed.aap.push_faults(Endpoint::Launch, fault.clone(), 1);
        bed.create_default(&name).await?;
        // The intent is recorded before the launch is attempted.
        bed.wait_for(&name, "intent recorded", WAIT, |ci| {
            ci.is_some_and(|c| {
                jobs_of(c, JobType::Provision)
                    .first()
                    .is_some_and(|j| j.job_id.is_none())
            })
        })
        .await?;
        // Wait until the launch request reached AAP (and hangs there).
        let seen = bed
            .aap
            .wait_until(WAIT, || {
                bed.aap
                    .requests()
                    .iter()
                    .any(|r| r.endpoint == Endpoint::Launch && r.status.is_none())
                    .then_some(())
            })
            .await;
        anyhow::ensure!(seen.is_some(), "launch never reached AAP ({fault:?})");
        bed.runner().kill();
        bed.runner().restart()?;
        let ci = bed
            .wait_for(&name, "Running after the crash", WAIT, running)
            .await?
            .unwrap();
        assert_eq!(jobs_of(&ci, JobType::Provision).len(), 1, "{fault:?}");
        assert_eq!(
            bed.aap.jobs_of(&bed.namespace, &name).len(),
            1,
            "one AAP job ({fault:?})"
        );
    }
    // Killed while the job runs: the job is picked up again, not relaunched.
    bed.aap.set_instance_behavior(
        &bed.namespace,
        "vm-k2",
        Some(Role::Provision),
        cloudkit_testbed::bed::quick_job().running(Duration::from_secs(3)),
    );
    bed.create_default("vm-k2").await?;
    bed.wait_for("vm-k2", "job running", WAIT, |ci| {
        ci.is_some_and(|c| {
            jobs_of(c, JobType::Provision)
                .first()
                .is_some_and(|j| j.state == JobState::Running)
        })
    })
    .await?;
    bed.runner().kill();
    tokio::time::sleep(Duration::from_secs(1)).await;
    bed.runner().restart()?;
    bed.wait_for("vm-k2", "Running", WAIT, running).await?;
    assert_eq!(bed.aap.jobs_of(&bed.namespace, "vm-k2").len(), 1);
    assert!(bed.aap.overlap().is_none());
    Ok(())
}
