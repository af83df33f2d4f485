//! End to end: the runner as an operator runs it — leader election, metrics, SIGTERM.

use cloudkit_testbed::observe::running;
use std::time::{Duration, Instant};

use cloudkit_testbed::bed::Bed;
use cloudkit_testbed::runner_process::{METRICS_LISTENING, RunnerProcess, metrics_addr};
use cloudkit_testbed::wait::RUNNER as WAIT;

fn count(logs: &str, needle: &str) -> usize {
    logs.lines().filter(|l| l.contains(needle)).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_runners_one_leader_and_hand_over_on_kill() -> anyhow::Result<()> {
    let mut bed = Bed::start("leader").await?;
    bed.runner()
        .wait_for_log("this replica leads", WAIT)
        .await?;
    let mut env = bed.runner_env(vec![("POD_NAME".into(), "runner-standby".into())]);
    env.retain(|(k, _)| k != "KUBECONFIG");
    let mut standby = RunnerProcess::start(
        bed.cp.kubeconfig_path(),
        env,
        bed.log_dir().join("standby.log"),
    )?;
    bed.create_default("vm-1").await?;
    bed.wait_for("vm-1", "Running", WAIT, running).await?;
    assert_eq!(
        count(&standby.logs(), "launched AAP job"),
        0,
        "the standby does not act"
    );
    assert_eq!(count(&standby.logs(), "this replica leads"), 0);
    assert_eq!(
        bed.aap.jobs_of(&bed.namespace, "vm-1").len(),
        1,
        "launched once, by the leader"
    );

    bed.runner().kill();
    let killed = Instant::now();
    standby.wait_for_log("this replica leads", WAIT).await?;
    // Ordered, not timed: the standby leads only after the kill (it did not lead while the
    // leader ran, checked above) and once; WAIT bounds a hang, not the lease.
    let handover = killed.elapsed();
    assert_eq!(count(&standby.logs(), "this replica leads"), 1);
    bed.create_default("vm-2").await?;
    bed.wait_for("vm-2", "Running under the new leader", WAIT, running)
        .await?;
    assert!(
        count(&standby.logs(), "launched AAP job") >= 1,
        "the new leader acts"
    );
    assert_eq!(bed.aap.jobs_of(&bed.namespace, "vm-2").len(), 1);
    println!("leader hand-over after SIGKILL: {handover:?} (lease 4s)");
    standby.kill();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_match_the_jobs_and_sigterm_exits_cleanly() -> anyhow::Result<()> {
    let mut bed = Bed::start("metrics").await?;
    bed.runner().wait_for_log(METRICS_LISTENING, WAIT).await?;
    let addr = metrics_addr(&bed.runner_logs()).expect("metrics address logged");
    let http = reqwest::Client::new();
    assert_eq!(
        http.get(format!("http://{addr}/healthz"))
            .send()
            .await?
            .status(),
        200
    );
    for name in ["vm-1", "vm-2"] {
        bed.create_default(name).await?;
    }
    for name in ["vm-1", "vm-2"] {
        bed.wait_for(name, "Running", WAIT, running).await?;
    }
    let ready = http.get(format!("http://{addr}/readyz")).send().await?;
    assert_eq!(ready.status(), 200);
    let text = http
        .get(format!("http://{addr}/metrics"))
        .send()
        .await?
        .text()
        .await?;
    let launched: f64 = text
        .lines()
        .find(|l| {
            l.starts_with("cloudkit_runner_effect_outcomes_total{")
                && l.contains("outcome=\"launched\"")
        })
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no launched counter in:\n{text}"));
    assert_eq!(launched, 2.0, "two launches, as the test ran");
    assert!(text.contains("cloudkit_runner_leader 1"), "{text}");
    assert!(
        text.trim_end().ends_with("# EOF"),
        "OpenMetrics text ends with # EOF"
    );
    let status = bed
        .runner()
        .terminate(Duration::from_secs(10))
        .expect("was running");
    assert!(
        status.success(),
        "SIGTERM exits 0: {status:?}\n{}",
        bed.runner_logs()
    );
    assert!(bed.runner_logs().contains("cloudkit-runner stopped"));
    Ok(())
}
