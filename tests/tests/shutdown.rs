//! End to end: SIGTERM ends the runner within a few seconds whatever it is doing — caches
//! that never sync, the API server gone, AAP hanging mid-request, a launch in flight — and
//! the Lease is released whenever the API server can be reached. Each test prints the time
//! to exit; the assertions are on the exit and on the Lease, not on a time.

use std::time::{Duration, Instant};

use cloudkit_testbed::aap_sim::{Endpoint, Fault};
use cloudkit_testbed::bed::Bed;
use cloudkit_testbed::control_plane::ControlPlane;
use cloudkit_testbed::limited_identity;
use cloudkit_testbed::observe::running;
use cloudkit_testbed::wait::RUNNER as WAIT;
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::Api;

/// Far beyond what a bounded shutdown needs: past it the test SIGKILLs, and fails.
const GRACE: Duration = Duration::from_secs(25);

/// The Lease's holder (`None` once released).
async fn holder(bed: &Bed) -> anyhow::Result<Option<String>> {
    let lease = Api::<Lease>::namespaced(bed.client.clone(), &bed.namespace)
        .get("cloudkit-runner")
        .await?;
    Ok(lease.spec.and_then(|s| s.holder_identity))
}

/// SIGTERM; returns whether the runner exited by itself with status 0, printing the time.
async fn terminate(bed: &mut Bed, state: &str) -> anyhow::Result<bool> {
    let mut runner = bed.runner.take().expect("the runner was started");
    let (runner, status, took) = tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        let status = runner.terminate(GRACE);
        (runner, status, started.elapsed())
    })
    .await?;
    println!("{state}: exited {took:.2?} after SIGTERM ({status:?})");
    let clean = status.is_some_and(|s| s.success());
    if !clean {
        eprintln!("runner log:\n{}", runner.logs());
    }
    bed.runner = Some(runner);
    Ok(clean)
}

async fn leading(bed: &Bed) -> anyhow::Result<()> {
    let runner = bed.runner.as_ref().expect("the runner was started");
    runner.wait_for_log("this replica leads", WAIT).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_caches_that_never_sync_exits_and_releases_the_lease() -> anyhow::Result<()> {
    let mut bed = Bed::without_runner("stop-unsynced").await?;
    let kubeconfig = limited_identity::lease_only(&bed).await?;
    bed.start_runner_as(&kubeconfig, vec![])?;
    leading(&bed).await?;
    bed.create_default("vm-1").await?;
    // Every watch is refused (no RBAC): the caches never sync.
    bed.runner().wait_for_log("cannot watch", WAIT).await?;
    assert!(!bed.runner_logs().contains("watch caches synced"));
    assert!(
        terminate(&mut bed, "caches unsynced").await?,
        "exits 0 by itself"
    );
    assert_eq!(holder(&bed).await?, None, "the Lease is released");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_the_api_server_gone_exits_and_leaves_the_lease_to_expire()
-> anyhow::Result<()> {
    // A control plane of its own: the test stops its API server.
    let cp: &'static ControlPlane = Box::leak(Box::new(ControlPlane::start().await?));
    let mut bed = Bed::without_runner_on(cp, "stop-noapi").await?;
    bed.start_runner(vec![])?;
    leading(&bed).await?;
    bed.create_default("vm-1").await?;
    bed.wait_for("vm-1", "Running", WAIT, running).await?;
    let identity = holder(&bed).await?;
    assert!(identity.is_some(), "the runner holds the Lease");

    let probe = bed.client.clone();
    let mut runner = bed.runner.take().expect("the runner was started");
    let stop_while_down = async move {
        // Event-ordered: SIGTERM only once the API server no longer answers.
        while probe.apiserver_version().await.is_ok() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::task::spawn_blocking(move || {
            let started = Instant::now();
            let status = runner.terminate(GRACE);
            (runner, status, started.elapsed())
        })
        .await
    };
    let (restarted, stopped) = tokio::join!(
        cp.restart_apiserver(Duration::from_secs(10)),
        stop_while_down
    );
    restarted?;
    let (runner, status, took) = stopped?;
    println!("API server gone: exited {took:.2?} after SIGTERM ({status:?})");
    assert!(
        status.is_some_and(|s| s.success()),
        "exits 0 by itself:\n{}",
        runner.logs()
    );
    assert!(runner.logs().contains("could not release the lease"));
    assert_eq!(
        holder(&bed).await?,
        identity,
        "the Lease could not be released; it still names the runner and expires by itself"
    );
    Ok(())
}

/// SIGTERM while the first launch request is answered by `fault`; then a fresh runner
/// resolves the intent left behind: exactly one job, recorded.
async fn stop_during_launch(prefix: &str, fault: Fault, state: &str) -> anyhow::Result<()> {
    let mut bed = Bed::without_runner(prefix).await?;
    // The default HTTP timeout, longer than the test's grace: the stop must not wait on it.
    bed.start_runner(vec![("CLOUDKIT_HTTP_TIMEOUT".into(), "30s".into())])?;
    leading(&bed).await?;
    bed.aap.push_faults(Endpoint::Launch, fault, 1);
    bed.create_default("vm-1").await?;
    // Polled: the simulator signals changes on answers, and this request gets none.
    let deadline = Instant::now() + WAIT;
    while !bed
        .aap
        .requests()
        .iter()
        .any(|r| r.endpoint == Endpoint::Launch)
    {
        anyhow::ensure!(Instant::now() < deadline, "the runner never sent a launch");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(terminate(&mut bed, state).await?, "exits 0 by itself");
    assert_eq!(holder(&bed).await?, None, "the Lease is released");

    bed.runner().restart()?;
    let ci = bed
        .wait_for("vm-1", "Running after the restart", WAIT, running)
        .await?
        .expect("exists");
    let jobs = bed.aap.jobs_of(&bed.namespace, "vm-1");
    assert_eq!(jobs.len(), 1, "one launch for the one intent: {jobs:?}");
    let recorded: Vec<_> = ci
        .status
        .iter()
        .flat_map(|s| &s.jobs)
        .filter_map(|j| j.job_id.clone())
        .collect();
    assert_eq!(
        recorded,
        vec![jobs[0].id.to_string()],
        "the job is recorded"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_aap_hanging_mid_request_exits_and_releases_the_lease() -> anyhow::Result<()> {
    stop_during_launch("stop-aaphang", Fault::Hang, "AAP hanging").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_a_launch_in_flight_leaves_an_intent_recovery_resolves() -> anyhow::Result<()>
{
    // AAP creates the job and the answer never comes: the launch is in flight at SIGTERM.
    stop_during_launch("stop-inflight", Fault::CommitThenHang, "launch in flight").await
}
