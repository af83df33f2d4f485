//! End to end with real Event-Driven Ansible: the real runner posts events to a real
//! `ansible-rulebook` running the reference rulebook and playbooks in `ansible/`, whose
//! `kubernetes.core` tasks act on the bed's API server. The first run installs the pinned
//! Ansible environment (see `cloudkit_testbed::ansible_env`).

use std::time::Duration;

use cloudkit_shared::names::{AAP_FINALIZER, INSTANCE_LABEL, RECONCILED_CONFIG_VERSION_ANNOTATION};
use cloudkit_shared::{ComputeInstance, ComputeInstanceSpec, JobProvider, JobState, JobType};
use cloudkit_testbed::bed::Bed;
use cloudkit_testbed::kubevirt_sim::vm_resource;
use cloudkit_testbed::observe::{jobs_of, running};
use cloudkit_testbed::rulebook::WebhookAuth;
use cloudkit_testbed::wait::REAL_ANSIBLE as WAIT;
use kube::ResourceExt;
use kube::api::{Api, DynamicObject};
use serde_json::json;

const TOKEN: &str = "real-eda-token";

fn spec(parameters: &str) -> ComputeInstanceSpec {
    ComputeInstanceSpec {
        template_id: "osac.templates.ocp_small".into(),
        template_parameters: Some(parameters.into()),
        ..Default::default()
    }
}

fn vms(bed: &Bed) -> Api<DynamicObject> {
    Api::namespaced_with(bed.client.clone(), &bed.namespace, &vm_resource())
}

fn annotation(ci: &ComputeInstance) -> Option<String> {
    ci.annotations()
        .get(RECONCILED_CONFIG_VERSION_ANNOTATION)
        .cloned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_real_rulebook_provisions_and_deprovisions() -> anyhow::Result<()> {
    let mut bed = Bed::without_runner("real-eda").await?;
    let env = bed.start_rulebook(WebhookAuth::Token(TOKEN.into())).await?;
    bed.start_runner(env)?;
    bed.create("vm-r", spec(r#"{"cpus": 2, "memory": "128Mi"}"#))
        .await?;
    let ci = bed
        .wait_for("vm-r", "Running", WAIT, running)
        .await?
        .unwrap();
    let job = jobs_of(&ci, JobType::Provision).pop().unwrap();
    assert_eq!(job.job_id.as_deref(), Some("eda-webhook-1"));
    assert_eq!(job.provider, JobProvider::Eda);
    assert_eq!(job.state, JobState::Succeeded, "{}", job.message);
    let desired = ci.status.as_ref().unwrap().desired_config_version.clone();
    assert!(desired.is_some());
    assert_eq!(
        annotation(&ci),
        desired,
        "the playbook reported the version"
    );
    assert!(ci.finalizers().iter().any(|f| f == AAP_FINALIZER));

    // The VM the playbook made: named and labelled for the instance, the parameters applied.
    let vm = vms(&bed).get("vm-r").await?;
    assert_eq!(
        vm.labels().get(INSTANCE_LABEL).map(String::as_str),
        Some("vm-r")
    );
    assert_eq!(vm.data["spec"]["runStrategy"], "Always");
    let domain = &vm.data["spec"]["template"]["spec"]["domain"];
    assert_eq!(domain["cpu"]["cores"], 2);
    assert_eq!(domain["resources"]["requests"]["memory"], "128Mi");

    bed.delete("vm-r").await?;
    bed.wait_for(
        "vm-r",
        "gone once the deprovision playbook removed its finalizer",
        WAIT,
        |ci| ci.is_none(),
    )
    .await?;
    assert!(
        vms(&bed).get_opt("vm-r").await?.is_none(),
        "the deprovision playbook deleted the VM"
    );
    let log = bed.rulebook.as_ref().unwrap().log();
    assert!(log.contains("Provision a ComputeInstance"), "{log}");
    assert!(log.contains("Deprovision a ComputeInstance"), "{log}");
    Ok(())
}

/// The playbook dies mid-run (the rulebook is killed while its provision waits for the
/// VM): the job ends Failed at the EDA deadline, never Unknown.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_playbook_fails_the_job_at_the_deadline() -> anyhow::Result<()> {
    let mut bed = Bed::without_runner("real-eda-dead").await?;
    let mut env = bed.start_rulebook(WebhookAuth::Token(TOKEN.into())).await?;
    env.push(("CLOUDKIT_EDA_DEADLINE".into(), "5s".into()));
    // No VMI ever runs, so the provision playbook cannot get past its wait.
    bed.kubevirt.pause().await;
    bed.start_runner(env)?;
    bed.create("vm-d", spec("{}")).await?;
    bed.wait_for("vm-d", "the playbook started (finalizer)", WAIT, |ci| {
        ci.is_some_and(|c| c.finalizers().iter().any(|f| f == AAP_FINALIZER))
    })
    .await?;
    bed.rulebook.as_mut().unwrap().kill();
    let ci = bed
        .wait_for("vm-d", "the EDA job Failed", WAIT, |ci| {
            ci.is_some_and(|c| {
                jobs_of(c, JobType::Provision)
                    .first()
                    .is_some_and(|j| j.state.is_terminal())
            })
        })
        .await?
        .unwrap();
    let job = jobs_of(&ci, JobType::Provision).remove(0);
    assert_eq!(job.state, JobState::Failed, "{job:?}");
    assert!(
        job.message
            .contains("no sign of the provision playbook after 5s"),
        "{}",
        job.message
    );
    assert!(
        job.message.contains(RECONCILED_CONFIG_VERSION_ANNOTATION),
        "{}",
        job.message
    );
    assert_eq!(annotation(&ci), None);
    Ok(())
}

/// As `eda_lifecycle.rs` does with the simulator: the runner switches to AAP while a real
/// EDA playbook is still running; that job still finishes the EDA way, new work goes to
/// AAP. Authenticated by HMAC this time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_in_flight_real_eda_job_is_still_observed_after_switching_to_aap() -> anyhow::Result<()>
{
    let mut bed = Bed::without_runner("real-eda-switch").await?;
    let env = bed
        .start_rulebook(WebhookAuth::Hmac("real-eda-hmac-secret".into()))
        .await?;
    // Hold the playbook at its wait for the VM until the runner has switched.
    bed.kubevirt.pause().await;
    bed.start_runner(env)?;
    bed.create("vm-s", spec("{}")).await?;
    bed.wait_for("vm-s", "the EDA playbook started", WAIT, |ci| {
        ci.is_some_and(|c| c.finalizers().iter().any(|f| f == AAP_FINALIZER))
    })
    .await?;
    bed.runner().kill();
    bed.start_runner(vec![])?;
    bed.kubevirt.resume();
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
    assert_eq!(provisions[0].state, JobState::Succeeded);
    assert!(
        bed.aap.jobs_of(&bed.namespace, "vm-s").is_empty(),
        "no AAP job for it"
    );
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

/// Guards the contract: `spec.templateParameters` is a JSON-encoded string. A sender that
/// puts an object there (sent straight to the rulebook, no runner) makes the real
/// playbook fail before it touches anything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn template_parameters_as_an_object_fail_the_real_playbook() -> anyhow::Result<()> {
    let mut bed = Bed::without_runner("real-eda-contract").await?;
    bed.start_rulebook(WebhookAuth::Token(TOKEN.into())).await?;
    let ci = bed.create("vm-c", spec("{}")).await?;
    let mut payload = serde_json::to_value(&ci)?;
    payload["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("managedFields");
    payload["spec"]["templateParameters"] = json!({"cpus": 2});
    payload["status"] = json!({"desiredConfigVersion": "1234"});
    let rulebook = bed.rulebook.as_ref().unwrap();
    let answer = reqwest::Client::new()
        .post(rulebook.provision_url())
        .bearer_auth(TOKEN)
        .json(&payload)
        .send()
        .await?;
    assert_eq!(answer.status(), 200, "the webhook took the event");

    let failure = format!(
        "spec.templateParameters of {}/vm-c must be a string holding a JSON object, got a dict",
        bed.namespace
    );
    // The playbook's own words, as ansible-rulebook logs a failed run_playbook.
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let log = rulebook.log();
        if log.contains(&failure) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no playbook failure `{failure}` in the rulebook log:\n{}",
            rulebook.log_tail(60)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let ci = bed.instances().get("vm-c").await?;
    assert_eq!(annotation(&ci), None);
    assert!(!ci.finalizers().iter().any(|f| f == AAP_FINALIZER));
    assert!(vms(&bed).get_opt("vm-c").await?.is_none());
    Ok(())
}
