//! End to end with the EDA provider: the real runner posts events to the EDA simulator,
//! whose playbooks act on the real API server; completion is read from the resource.

use cloudkit_testbed::observe::{jobs_of, running};
use std::time::Duration;

use cloudkit_shared::{JobProvider, JobState, JobType};
use cloudkit_testbed::bed::Bed;
use cloudkit_testbed::eda_sim::{Fault, Scope};
use cloudkit_testbed::wait::RUNNER as WAIT;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eda_provisions_and_deprovisions_through_the_resource() -> anyhow::Result<()> {
    let mut bed = Bed::without_runner("eda").await?;
    let env = bed.start_eda().await?;
    bed.start_runner(env)?;
    bed.create_default("vm-e").await?;
    let ci = bed
        .wait_for("vm-e", "Running", WAIT, running)
        .await?
        .unwrap();
    let job = jobs_of(&ci, JobType::Provision).pop().unwrap();
    assert_eq!(job.job_id.as_deref(), Some("eda-webhook-1"));
    assert_eq!(job.provider, JobProvider::Eda);
    assert_eq!(job.state, JobState::Succeeded);
    assert!(
        ci.status
            .as_ref()
            .unwrap()
            .virtual_machine_reference
            .is_some()
    );
    bed.delete("vm-e").await?;
    bed.wait_for("vm-e", "deprovision event sent", WAIT, |ci| {
        ci.is_none_or(|c| !jobs_of(c, JobType::Deprovision).is_empty())
    })
    .await?;
    bed.wait_for(
        "vm-e",
        "gone once the playbook removed its finalizer",
        WAIT,
        |ci| ci.is_none(),
    )
    .await?;
    let eda = bed.eda.as_ref().unwrap();
    assert_eq!(
        eda.events().len(),
        2,
        "one provision and one deprovision event"
    );
    assert!(bed.instances().get_opt("vm-e").await?.is_none());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_eda_event_fails_at_the_deadline_and_is_retried() -> anyhow::Result<()> {
    let mut bed = Bed::without_runner("eda-deadline").await?;
    let mut env = bed.start_eda().await?;
    env.push(("CLOUDKIT_EDA_DEADLINE".into(), "3s".into()));
    bed.start_runner(env)?;
    let eda = bed.eda.as_ref().unwrap();
    eda.fault_next(Scope::instance(&bed.namespace, "vm-l"), Fault::Drop, 1);
    bed.create_default("vm-l").await?;
    let ci = bed
        .wait_for("vm-l", "first EDA job Failed at the deadline", WAIT, |ci| {
            ci.is_some_and(|c| {
                jobs_of(c, JobType::Provision)
                    .first()
                    .is_some_and(|j| j.state == JobState::Failed)
            })
        })
        .await?
        .unwrap();
    let failed = jobs_of(&ci, JobType::Provision).remove(0);
    assert!(
        failed.message.contains("no sign of the provision playbook"),
        "{}",
        failed.message
    );
    assert!(
        failed.message.contains("reconciled-config-version"),
        "{}",
        failed.message
    );
    let ci = bed
        .wait_for("vm-l", "Running after the retry", WAIT, running)
        .await?
        .unwrap();
    let ids: Vec<_> = jobs_of(&ci, JobType::Provision)
        .into_iter()
        .filter_map(|j| j.job_id)
        .collect();
    assert_eq!(ids, ["eda-webhook-1", "eda-webhook-2"]);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_in_flight_eda_job_is_still_observed_after_switching_to_aap() -> anyhow::Result<()> {
    let mut bed = Bed::without_runner("eda-switch").await?;
    let env = bed.start_eda().await?;
    bed.start_runner(env)?;
    let eda = bed.eda.as_ref().unwrap();
    eda.fault_next(
        Scope::instance(&bed.namespace, "vm-s"),
        Fault::Delay(Duration::from_secs(4)),
        1,
    );
    bed.create_default("vm-s").await?;
    bed.wait_for("vm-s", "EDA job sent", WAIT, |ci| {
        ci.is_some_and(|c| {
            jobs_of(c, JobType::Provision)
                .first()
                .is_some_and(|j| j.job_id.is_some())
        })
    })
    .await?;
    // The operator switches the runner to AAP while the EDA playbook still runs.
    bed.runner().kill();
    bed.start_runner(vec![])?;
    let ci = bed
        .wait_for("vm-s", "Running", WAIT, running)
        .await?
        .unwrap();
    let provisions = jobs_of(&ci, JobType::Provision);
    assert_eq!(
        provisions.len(),
        1,
        "the EDA job finished the EDA way: {provisions:?}"
    );
    assert_eq!(provisions[0].provider, JobProvider::Eda);
    assert!(
        bed.aap.jobs_of(&bed.namespace, "vm-s").is_empty(),
        "no AAP job for it"
    );
    // New work goes to AAP now.
    bed.patch_spec("vm-s", json!({"templateParameters": r#"{"cpus": 8}"#}))
        .await?;
    let ci = bed
        .wait_for("vm-s", "re-provisioned through AAP", WAIT, |ci| {
            ci.is_some_and(|c| running(Some(c)) && jobs_of(c, JobType::Provision).len() == 2)
        })
        .await?
        .unwrap();
    assert_eq!(
        jobs_of(&ci, JobType::Provision)[1].provider,
        JobProvider::Aap
    );
    Ok(())
}
