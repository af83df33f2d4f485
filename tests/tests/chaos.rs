//! Chaos: many instances go through create → (restart) → delete while the runner is
//! SIGKILLed at random moments, AAP answers 5xx / 429 / slowly and cancels slowly, and the
//! API server is restarted once. When the faults stop, everything must converge: no
//! duplicate job, no provision/deprovision overlap, no orphaned VM, no stuck instance,
//! every history bounded. Prints one line of figures.
//!
//! Size: `CLOUDKIT_CHAOS_INSTANCES` (default 12; 120 is the 10× run), seed:
//! `CLOUDKIT_CHAOS_SEED`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use cloudkit_shared::{ComputeInstance, ComputeInstanceSpec, Phase};
use cloudkit_testbed::aap_sim::{
    AapSimConfig, AapSimulator, DEFAULT_TOKEN, Endpoint, Fault, JobBehavior, Role, TemplateConfig,
};
use cloudkit_testbed::bed::{
    DEPROVISION_TEMPLATE, DEPROVISION_TEMPLATE_ID, PROVISION_TEMPLATE, PROVISION_TEMPLATE_ID,
};
use cloudkit_testbed::control_plane::ControlPlane;
use cloudkit_testbed::kubevirt_sim::{KubevirtSimulator, vm_resource};
use cloudkit_testbed::runner_process::RunnerProcess;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;
use tokio::sync::Mutex;

const MAX_HISTORY: usize = 5;

/// xorshift: deterministic per seed, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn ms(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_millis(lo + self.below(hi - lo))
    }
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Retries an API call through the API server restart.
async fn retry<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, kube::Error>>,
{
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        match f().await {
            Ok(v) => return v,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(e) => panic!("{what}: {e}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_converges_without_duplicates_overlaps_or_orphans() -> anyhow::Result<()> {
    let size = env_u64("CLOUDKIT_CHAOS_INSTANCES", 12) as usize;
    let seed = env_u64("CLOUDKIT_CHAOS_SEED", 0x00c0_ffee);
    let started = Instant::now();
    let cp = ControlPlane::start().await?;
    let client = cp.client().await?;
    let ns = cp.test_namespace("chaos").await?;
    let behavior = JobBehavior {
        pending: Duration::from_millis(100),
        waiting: Duration::from_millis(100),
        running: Duration::from_millis(800),
        cancel_delay: Duration::from_millis(1500),
        ..JobBehavior::default()
    };
    let mut provision = TemplateConfig::job(PROVISION_TEMPLATE_ID, PROVISION_TEMPLATE);
    provision.role = Some(Role::Provision);
    provision.behavior = behavior.clone();
    let mut deprovision = TemplateConfig::job(DEPROVISION_TEMPLATE_ID, DEPROVISION_TEMPLATE);
    deprovision.role = Some(Role::Deprovision);
    deprovision.behavior = behavior;
    let aap = Arc::new(
        AapSimulator::start(AapSimConfig {
            templates: vec![provision, deprovision],
            kube: Some(client.clone()),
            seed,
            ..AapSimConfig::default()
        })
        .await?,
    );
    let _kubevirt =
        KubevirtSimulator::start(client.clone(), Some(ns.clone()), Duration::from_millis(300));
    let dir = tempfile::tempdir()?;
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, DEFAULT_TOKEN)?;
    let env: Vec<(String, String)> = [
        ("CLOUDKIT_AAP_URL", aap.base_url()),
        ("CLOUDKIT_AAP_TOKEN_FILE", token_file.display().to_string()),
        ("CLOUDKIT_AAP_PROVISION_TEMPLATE", PROVISION_TEMPLATE.into()),
        (
            "CLOUDKIT_AAP_DEPROVISION_TEMPLATE",
            DEPROVISION_TEMPLATE.into(),
        ),
        ("CLOUDKIT_AAP_STATUS_POLL_INTERVAL", "500ms".into()),
        ("CLOUDKIT_COMPUTE_INSTANCE_NAMESPACE", ns.clone()),
        ("CLOUDKIT_MAX_JOB_HISTORY", MAX_HISTORY.to_string()),
        ("CLOUDKIT_RETRY_BASE", "1s".into()),
        ("CLOUDKIT_RETRY_MAX", "4s".into()),
        ("CLOUDKIT_CANCEL_DEADLINE", "6s".into()),
        ("CLOUDKIT_RESTART_DEADLINE", "30s".into()),
        ("CLOUDKIT_HTTP_TIMEOUT", "3s".into()),
        ("CLOUDKIT_METRICS_ADDR", "127.0.0.1:0".into()),
        ("CLOUDKIT_LEASE_NAMESPACE", ns.clone()),
        ("CLOUDKIT_LEASE_DURATION", "4s".into()),
        ("POD_NAME", "runner-chaos".into()),
        ("CLOUDKIT_LOG", "info".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let runner = Arc::new(Mutex::new(RunnerProcess::start(
        cp.kubeconfig_path(),
        env,
        dir.path().join("runner.log"),
    )?));

    // Faults while the workload runs.
    for endpoint in [
        Endpoint::Launch,
        Endpoint::JobList,
        Endpoint::TemplateLookup,
        Endpoint::Cancel,
    ] {
        aap.update_faults(endpoint, |f| {
            f.rate = 0.15;
            f.rate_faults = vec![
                Fault::Status(502),
                Fault::Status(503),
                Fault::TooManyRequests {
                    retry_after_secs: 1,
                },
                Fault::Delay(Duration::from_millis(400)),
            ];
            f.latency = Duration::from_millis(20);
        });
    }
    aap.update_faults(Endpoint::Launch, |f| {
        f.rate_faults.push(Fault::CommitThenStatus(502))
    });
    aap.slow_cancel(Duration::from_millis(800));

    let api: Api<ComputeInstance> = Api::namespaced(client.clone(), &ns);
    let workload_done = Arc::new(AtomicBool::new(false));
    let kills = Arc::new(AtomicU64::new(0));
    let max_history_seen = Arc::new(AtomicU64::new(0));

    // The killer: SIGKILL the runner at random moments, restart it shortly after.
    let killer = {
        let (runner, done, kills) = (runner.clone(), workload_done.clone(), kills.clone());
        let mut rng = Rng(seed ^ 0xdead);
        tokio::spawn(async move {
            while !done.load(Ordering::Relaxed) {
                tokio::time::sleep(rng.ms(2_000, 6_000)).await;
                if done.load(Ordering::Relaxed) {
                    break;
                }
                let mut r = runner.lock().await;
                r.kill();
                kills.fetch_add(1, Ordering::Relaxed);
                drop(r);
                tokio::time::sleep(rng.ms(200, 1_500)).await;
                let _ = runner.lock().await.restart();
            }
        })
    };

    // The workload: each instance is created, maybe restarted, then deleted.
    let mut tasks = Vec::new();
    for i in 0..size {
        let api = api.clone();
        let mut rng = Rng(seed.wrapping_add(i as u64 * 7919) | 1);
        let max_seen = max_history_seen.clone();
        tasks.push(tokio::spawn(async move {
            let name = format!("vm-{i:03}");
            tokio::time::sleep(rng.ms(0, 3_000)).await;
            let ci = ComputeInstance::new(
                &name,
                ComputeInstanceSpec {
                    template_id: "osac.templates.ocp_small".into(),
                    ..Default::default()
                },
            );
            retry("create", || async {
                api.create(&PostParams::default(), &ci).await
            })
            .await;
            let plan = rng.below(4);
            // 0: delete while provisioning; 1: delete once Running;
            // 2: restart then delete; 3: re-provision (spec change) then delete.
            if plan != 0 {
                let deadline = Instant::now() + Duration::from_secs(90);
                while Instant::now() < deadline {
                    let current = retry("get", || api.get_opt(&name)).await;
                    if let Some(st) = current.as_ref().and_then(|c| c.status.as_ref()) {
                        max_seen.fetch_max(st.jobs.len() as u64, Ordering::Relaxed);
                        if st.phase == Some(Phase::Running) {
                            break;
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
            } else {
                tokio::time::sleep(rng.ms(300, 1_500)).await;
            }
            let patch = match plan {
                2 => Some(json!({"spec": {"restartRequestedAt": Timestamp::now().to_string()}})),
                3 => Some(json!({"spec": {"templateParameters": r#"{"cpus": 4}"#}})),
                _ => None,
            };
            if let Some(p) = patch {
                retry("patch", || async {
                    api.patch(&name, &PatchParams::default(), &Patch::Merge(&p))
                        .await
                })
                .await;
                tokio::time::sleep(rng.ms(500, 4_000)).await;
            }
            retry("delete", || async {
                match api.delete(&name, &DeleteParams::default()).await {
                    Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
                    other => other.map(|_| ()),
                }
            })
            .await;
        }));
    }

    // Once, in the middle: the API server goes away and comes back.
    tokio::time::sleep(Duration::from_secs(6)).await;
    cp.restart_apiserver(Duration::from_secs(2)).await?;
    for t in tasks {
        t.await?;
    }
    workload_done.store(true, Ordering::Relaxed);
    killer.await?;
    aap.clear_faults();
    let faults_stopped = Instant::now();
    {
        let mut r = runner.lock().await;
        if !r.is_running() {
            r.restart()?;
        }
    }

    // Convergence: every instance gone, sampling histories meanwhile.
    let deadline = Instant::now() + Duration::from_secs(240);
    let stuck = loop {
        let left = retry("list", || async { api.list(&ListParams::default()).await })
            .await
            .items;
        for ci in &left {
            if let Some(st) = &ci.status {
                max_history_seen.fetch_max(st.jobs.len() as u64, Ordering::Relaxed);
            }
        }
        if left.is_empty() || Instant::now() > deadline {
            break left;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let converge = faults_stopped.elapsed();

    // Checks from the simulator's ledger and the API server.
    let ledger = aap.ledger();
    let mut by_key: BTreeMap<String, usize> = BTreeMap::new();
    for job in &ledger.jobs {
        if let Some(key) = job
            .submitted_extra_vars
            .get("cloudkit_correlation_key")
            .and_then(|k| k.as_str())
        {
            *by_key.entry(key.to_string()).or_default() += 1;
        }
    }
    let duplicates: usize = by_key.values().map(|n| n.saturating_sub(1)).sum();
    let overlaps = ledger.overlaps.len();
    let vms: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &vm_resource());
    let orphans = vms.list(&ListParams::default()).await?.items.len();
    let injected: u64 = ledger.requests.iter().filter(|r| r.fault.is_some()).count() as u64;
    let kills = kills.load(Ordering::Relaxed);
    let max_history = max_history_seen.load(Ordering::Relaxed);
    println!(
        "chaos: instances={size} seed={seed:#x} kills={kills} apiserver_restarts=1 injected_faults={injected} aap_jobs={} duplicates={duplicates} overlaps={overlaps} orphans={orphans} stuck={} max_history={max_history} converge={:.1}s total={:.1}s",
        ledger.jobs.len(),
        stuck.len(),
        converge.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    if !stuck.is_empty() {
        let names: Vec<_> = stuck
            .iter()
            .map(|c| c.metadata.name.clone().unwrap_or_default())
            .collect();
        let logs = runner.lock().await.logs();
        let tail: Vec<&str> = logs.lines().rev().take(40).collect();
        println!(
            "stuck: {names:?}\n{}",
            serde_json::to_string_pretty(&stuck[0].status)?
        );
        println!("runner log (newest first):\n{}", tail.join("\n"));
    }
    assert_eq!(duplicates, 0, "duplicate launches: {by_key:?}");
    assert_eq!(overlaps, 0, "overlaps: {:?}", ledger.overlaps);
    assert_eq!(orphans, 0, "orphaned VMs");
    assert!(stuck.is_empty(), "stuck instances");
    assert!(
        max_history <= (MAX_HISTORY + 3) as u64,
        "history bounded: {max_history}"
    );
    assert!(kills > 0 && injected > 0, "the chaos really happened");
    Ok(())
}
