//! End to end: a leader frozen at an exact step — after it recorded an intent, during its
//! launch request, right before it records the launched job — loses its Lease to a standby,
//! which carries on (adopts the job, then provisions a spec change). Resumed, the ex-leader
//! must change nothing: its status write is conditional on the copy it planned from, and it
//! performs no effect without the Lease. The AAP simulator's ledger then shows one launch
//! per intent, every launched job recorded in the status, and no overlap.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use cloudkit_shared::names::CORRELATION_EXTRA_VAR;
use cloudkit_shared::{ComputeInstance, ComputeInstanceStatus, JobState, JobType};
use cloudkit_testbed::aap_sim::{Endpoint, Fault};
use cloudkit_testbed::bed::Bed;
use cloudkit_testbed::observe::{jobs_of, running};
use cloudkit_testbed::runner_process::RunnerProcess;
use cloudkit_testbed::wait::RUNNER as WAIT;
use kube::ResourceExt;
use kube::api::{Patch, PatchParams};
use serde_json::json;

/// Whether process `pid` is stopped (SIGSTOP), from /proc.
fn is_stopped(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().starts_with('T'))
        })
        .unwrap_or(false)
}

fn signal(pid: u32, sig: i32) {
    // SAFETY: kill(2) on our own child's pid has no memory effects.
    unsafe {
        libc::kill(pid as i32, sig);
    }
}

#[derive(Clone, Copy, Debug)]
enum Hold {
    /// The runner stops itself right after writing the intent.
    AfterIntentWrite,
    /// The launch is committed by AAP and never answered; the test stops the runner.
    DuringLaunch,
    /// The runner stops itself right before writing the launched job's id.
    BeforeLaunchRecord,
}

async fn ex_leader_resumes_and_changes_nothing(prefix: &str, hold: Hold) -> anyhow::Result<()> {
    let mut bed = Bed::without_runner(prefix).await?;
    let hook = match hold {
        Hold::AfterIntentWrite => {
            vec![("CLOUDKIT_TEST_STOP_AT".into(), "after-intent-write".into())]
        }
        Hold::BeforeLaunchRecord => {
            vec![(
                "CLOUDKIT_TEST_STOP_AT".into(),
                "before-launch-record".into(),
            )]
        }
        Hold::DuringLaunch => {
            bed.aap
                .push_faults(Endpoint::Launch, Fault::CommitThenHang, 1);
            Vec::new()
        }
    };
    bed.start_runner(hook)?;
    bed.runner()
        .wait_for_log("this replica leads", WAIT)
        .await?;
    let mut env = bed.runner_env(vec![("POD_NAME".into(), "runner-standby".into())]);
    env.retain(|(k, _)| k != "KUBECONFIG");
    let standby = RunnerProcess::start(
        bed.cp.kubeconfig_path(),
        env,
        bed.log_dir().join("standby.log"),
    )?;
    bed.create_default("vm-1").await?;

    let pid = bed.runner().pid().expect("running");
    let deadline = Instant::now() + WAIT;
    match hold {
        Hold::DuringLaunch => {
            // Polled: the simulator signals changes on answers, and this request gets none.
            while !bed
                .aap
                .requests()
                .iter()
                .any(|r| r.endpoint == Endpoint::Launch)
            {
                anyhow::ensure!(Instant::now() < deadline, "no launch was sent");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            signal(pid, libc::SIGSTOP);
        }
        _ => {
            while !is_stopped(pid) {
                anyhow::ensure!(
                    Instant::now() < deadline,
                    "the leader never reached its pause point:\n{}",
                    bed.runner_logs()
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    let frozen = bed.instances().get("vm-1").await?;
    println!(
        "{hold:?}: leader frozen with the instance at resourceVersion {}",
        frozen.resource_version().unwrap_or_default()
    );

    // The standby takes over and does two things the frozen copy does not know of.
    standby.wait_for_log("this replica leads", WAIT).await?;
    bed.wait_for("vm-1", "Running under the new leader", WAIT, running)
        .await?;
    bed.patch_spec("vm-1", json!({"templateParameters": r#"{"cpus": 4}"#}))
        .await?;
    let second_done = |ci: Option<&ComputeInstance>| {
        ci.is_some_and(|c| {
            let provisions = jobs_of(c, JobType::Provision);
            running(Some(c)) && provisions.len() == 2 && provisions[1].state == JobState::Succeeded
        })
    };
    bed.wait_for("vm-1", "the spec change provisioned", WAIT, second_done)
        .await?;

    // Resume the ex-leader; it must find out it lost the Lease and exit.
    signal(pid, libc::SIGCONT);
    let deadline = Instant::now() + WAIT;
    while bed.runner().is_running() {
        anyhow::ensure!(Instant::now() < deadline, "the ex-leader never exited");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ex_logs = bed.runner_logs();
    assert!(
        ex_logs.contains("lost the lease"),
        "the ex-leader exits for the lost lease:\n{ex_logs}"
    );
    // Settled: the new leader has seen whatever the ex-leader did (a marker write after
    // the ex-leader's exit reaches the new leader's cache after any earlier write).
    let marker = json!({"metadata": {"annotations": {"test.cloudkit/after-ex-leader": "1"}}});
    bed.instances()
        .patch("vm-1", &PatchParams::default(), &Patch::Merge(&marker))
        .await?;
    let settled = bed
        .wait_for("vm-1", "settled after the ex-leader", WAIT, |ci| {
            second_done(ci)
                && ci.is_some_and(|c| {
                    c.status
                        .iter()
                        .flat_map(|s| &s.jobs)
                        .all(|j| j.state.is_terminal())
                })
        })
        .await?
        .expect("exists");

    let jobs = bed.aap.jobs_of(&bed.namespace, "vm-1");
    let mut per_intent: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for job in &jobs {
        let key = job.submitted_extra_vars[CORRELATION_EXTRA_VAR]
            .as_str()
            .unwrap_or_default()
            .to_string();
        per_intent.entry(key).or_default().push(job.id);
    }
    println!("{hold:?}: AAP jobs per intent {per_intent:?}");
    let status: ComputeInstanceStatus = settled.status.unwrap_or_default();
    let recorded: Vec<(String, Option<String>)> = status
        .jobs
        .iter()
        .map(|j| (j.correlation_key.clone(), j.job_id.clone()))
        .collect();
    println!("{hold:?}: recorded {recorded:?}");
    assert!(
        per_intent.values().all(|ids| ids.len() == 1),
        "one launch per intent: {per_intent:?}"
    );
    for job in &jobs {
        assert!(
            recorded
                .iter()
                .any(|(_, id)| id.as_deref() == Some(job.id.to_string().as_str())),
            "AAP job {} is recorded in the status: {recorded:?}",
            job.id
        );
    }
    assert_eq!(
        jobs.len(),
        2,
        "the create and the spec change: {per_intent:?}"
    );
    assert!(bed.aap.overlaps().is_empty(), "{:?}", bed.aap.overlaps());
    drop(standby);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ex_leader_held_after_its_intent_write_changes_nothing() -> anyhow::Result<()> {
    ex_leader_resumes_and_changes_nothing("fence-intent", Hold::AfterIntentWrite).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ex_leader_held_during_its_launch_request_changes_nothing() -> anyhow::Result<()> {
    ex_leader_resumes_and_changes_nothing("fence-launch", Hold::DuringLaunch).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ex_leader_held_before_recording_its_launch_changes_nothing() -> anyhow::Result<()> {
    ex_leader_resumes_and_changes_nothing("fence-record", Hold::BeforeLaunchRecord).await
}

/// What the fence rests on, on the real API server: a server-side apply carrying an old
/// resourceVersion is refused with 409; without one it is applied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_with_an_old_resource_version_is_a_conflict() -> anyhow::Result<()> {
    let bed = Bed::without_runner("fence-apply").await?;
    let created = bed.create_default("vm-1").await?;
    let old = created.resource_version();
    let note = json!({"metadata": {"annotations": {"touched": "1"}}});
    bed.instances()
        .patch("vm-1", &PatchParams::default(), &Patch::Merge(&note))
        .await?;
    let apply = |rv: Option<String>| {
        let mut patch = json!({
            "apiVersion": "cloudkit.openshift.io/v1alpha1",
            "kind": "ComputeInstance",
            "status": {"phase": "Starting"},
        });
        if let Some(rv) = rv {
            patch["metadata"] = json!({"resourceVersion": rv});
        }
        patch
    };
    let params = PatchParams::apply("fence-test").force();
    let stale = bed
        .instances()
        .patch_status("vm-1", &params, &Patch::Apply(apply(old)))
        .await;
    match stale {
        Err(kube::Error::Api(s)) => assert_eq!(s.code, 409, "{s:?}"),
        other => panic!("an apply at an old resourceVersion must be refused: {other:?}"),
    }
    let current = bed.instances().get("vm-1").await?.resource_version();
    bed.instances()
        .patch_status("vm-1", &params, &Patch::Apply(apply(current)))
        .await?;
    bed.instances()
        .patch_status("vm-1", &params, &Patch::Apply(apply(None)))
        .await?;
    Ok(())
}
