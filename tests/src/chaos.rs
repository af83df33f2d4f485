//! The chaos scenario: many instances go through create → (restart or re-provision) →
//! delete while the runner is SIGKILLed at random moments, AAP answers 5xx / 429 / slowly
//! and cancels slowly, and the API server (and, in the soak, etcd) is restarted. When the
//! faults stop, everything must converge: no duplicate job, no provision/deprovision
//! overlap, no orphaned VM, no stuck instance, every history bounded.
//!
//! Two sizes run it: `tests/tests/chaos.rs` in CI ([`Scenario::ci`]) and `testbed soak`
//! ([`Scenario::soak`], ten times that, plus an etcd restart), which a person runs by hand.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use cloudkit_shared::{ComputeInstance, ComputeInstanceSpec, Phase};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;
use tokio::sync::Mutex;

use crate::aap_sim::{
    AapSimConfig, AapSimulator, DEFAULT_TOKEN, Endpoint, Fault, JobBehavior, Role, TemplateConfig,
};
use crate::bed::{
    DEPROVISION_TEMPLATE, DEPROVISION_TEMPLATE_ID, PROVISION_TEMPLATE, PROVISION_TEMPLATE_ID,
    simulator_env,
};
use crate::bench::runner::proc_stats;
use crate::control_plane::ControlPlane;
use crate::kubevirt_sim::{KubevirtSimulator, vm_resource};
use crate::runner_process::RunnerProcess;

/// The runner keeps this many job entries; the check allows a few in flight beyond it.
const MAX_HISTORY: usize = 5;
const HISTORY_SLACK: usize = 3;

/// How big the run is and which faults it adds to the runner kills and AAP faults.
#[derive(Clone, Debug)]
pub struct Scenario {
    pub instances: usize,
    pub seed: u64,
    /// Instances are created at random moments within this window.
    pub spread: Duration,
    /// When, after the start of the workload, the API server is restarted.
    pub apiserver_restart_at: Duration,
    /// When etcd is restarted, if at all.
    pub etcd_restart_at: Option<Duration>,
    /// How often each instance's task looks at its instance.
    pub poll: Duration,
    /// How long an instance may take to reach Running, and everything to converge.
    pub running_deadline: Duration,
    pub converge_deadline: Duration,
}

impl Scenario {
    /// The CI size (`CLOUDKIT_CHAOS_INSTANCES` and `CLOUDKIT_CHAOS_SEED` override).
    pub fn ci() -> Self {
        Self {
            instances: env_u64("CLOUDKIT_CHAOS_INSTANCES", 12) as usize,
            seed: env_u64("CLOUDKIT_CHAOS_SEED", 0x00c0_ffee),
            spread: Duration::from_secs(3),
            apiserver_restart_at: Duration::from_secs(6),
            etcd_restart_at: None,
            poll: Duration::from_millis(300),
            running_deadline: Duration::from_secs(90),
            converge_deadline: Duration::from_secs(240),
        }
    }

    /// Ten times the CI size, creations spread wider so the kills and restarts land among
    /// them, plus an etcd restart after the API server's.
    pub fn soak(instances: usize, seed: u64) -> Self {
        Self {
            instances,
            seed,
            spread: Duration::from_secs(30),
            apiserver_restart_at: Duration::from_secs(10),
            etcd_restart_at: Some(Duration::from_secs(25)),
            poll: Duration::from_secs(1),
            running_deadline: Duration::from_secs(300),
            converge_deadline: Duration::from_secs(600),
        }
    }
}

/// What a run saw. [`Report::problems`] is empty when it converged cleanly.
#[derive(Debug)]
pub struct Report {
    pub scenario: Scenario,
    pub kills: u64,
    pub apiserver_restarts: u32,
    pub etcd_restarts: u32,
    pub injected_faults: u64,
    pub aap_jobs: usize,
    pub duplicates: usize,
    pub duplicate_keys: Vec<String>,
    pub overlaps: usize,
    pub orphans: usize,
    pub stuck: Vec<String>,
    /// Instances whose task waited for Running and never saw it, each with its last
    /// status in one line.
    pub never_running: Vec<String>,
    pub max_history: u64,
    /// The longest create → Running, and delete accepted → gone (seen by a list every
    /// 500 ms), over all instances.
    pub longest_to_running: Duration,
    pub to_running_median: Option<Duration>,
    pub longest_to_gone: Duration,
    pub converge: Duration,
    pub total: Duration,
    /// The largest VmHWM of any runner process of the run.
    pub runner_peak_rss: u64,
    /// The newest runner log lines and the first stuck instance's status, when stuck.
    pub stuck_detail: Option<String>,
    /// Where the runner's log was kept, when an instance was stuck or never Running.
    pub kept_log: Option<std::path::PathBuf>,
}

impl Report {
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.duplicates > 0 {
            problems.push(format!(
                "{} duplicate launches: {:?}",
                self.duplicates, self.duplicate_keys
            ));
        }
        if self.overlaps > 0 {
            problems.push(format!("{} provision/deprovision overlaps", self.overlaps));
        }
        if self.orphans > 0 {
            problems.push(format!("{} orphaned VMs", self.orphans));
        }
        if !self.stuck.is_empty() {
            problems.push(format!("stuck instances: {:?}", self.stuck));
        }
        // Waiting for Running is bounded by time, so its count depends on the machine's
        // load: a figure. That no instance got there at all means the scenario did not run.
        if self.to_running_median.is_none() {
            problems.push("no instance reached Running: the scenario did not run".into());
        }
        if self.max_history > (MAX_HISTORY + HISTORY_SLACK) as u64 {
            problems.push(format!("history grew to {} entries", self.max_history));
        }
        if self.kills == 0 || self.injected_faults == 0 {
            problems.push("no runner kill or no AAP fault happened: not a chaos run".into());
        }
        problems
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.scenario;
        write!(
            f,
            "chaos: instances={} seed={:#x} kills={} apiserver_restarts={} etcd_restarts={} \
             injected_faults={} aap_jobs={} duplicates={} overlaps={} orphans={} stuck={} \
             never_running={} max_history={} to_running_p50={:.1}s longest_to_running={:.1}s \
             longest_to_gone={:.1}s \
             converge={:.1}s total={:.1}s runner_peak_rss={:.1}MiB",
            s.instances,
            s.seed,
            self.kills,
            self.apiserver_restarts,
            self.etcd_restarts,
            self.injected_faults,
            self.aap_jobs,
            self.duplicates,
            self.overlaps,
            self.orphans,
            self.stuck.len(),
            self.never_running.len(),
            self.max_history,
            self.to_running_median.unwrap_or_default().as_secs_f64(),
            self.longest_to_running.as_secs_f64(),
            self.longest_to_gone.as_secs_f64(),
            self.converge.as_secs_f64(),
            self.total.as_secs_f64(),
            self.runner_peak_rss as f64 / (1024.0 * 1024.0),
        )?;
        if let Some(first) = self.never_running.first() {
            write!(
                f,
                "\n{} instances never reached Running within {:?}; the first: {first}",
                self.never_running.len(),
                self.scenario.running_deadline
            )?;
        }
        if let Some(path) = &self.kept_log {
            write!(f, "\nrunner log kept at {}", path.display())?;
        }
        if let Some(detail) = &self.stuck_detail {
            write!(f, "\n{detail}")?;
        }
        Ok(())
    }
}

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
    fn within(&mut self, window: Duration) -> Duration {
        self.ms(0, (window.as_millis() as u64).max(1))
    }
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Retries an API call through the API server and etcd restarts.
async fn retry<T, F, Fut>(what: &str, mut f: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, kube::Error>>,
{
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        match f().await {
            Ok(v) => return Ok(v),
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(e) => return Err(e).with_context(|| format!("{what}, retried for 120 s")),
        }
    }
}

/// What one instance's task measured.
struct Waits {
    to_running: Option<Duration>,
    /// When it never reached Running: its name and last status, in one line.
    never_running: Option<String>,
}

/// Instances whose delete was accepted, and when; the observer takes each out once the
/// instance is gone.
type Deleting = std::sync::Mutex<BTreeMap<String, Instant>>;

/// Runs the scenario on a control plane of its own and reports what it saw.
pub async fn run(scenario: Scenario) -> anyhow::Result<Report> {
    let started = Instant::now();
    let seed = scenario.seed;
    let cp = ControlPlane::start().await?;
    let client = cp.client().await?;
    let ns = cp.test_namespace("chaos").await?;
    let aap = Arc::new(start_aap(client.clone(), seed).await?);
    let _kubevirt =
        KubevirtSimulator::start(client.clone(), Some(ns.clone()), Duration::from_millis(300));
    let dir = tempfile::tempdir()?;
    let runner = Arc::new(Mutex::new(start_runner(&cp, &aap, &ns, dir.path())?));
    inject_aap_faults(&aap);

    let api: Api<ComputeInstance> = Api::namespaced(client.clone(), &ns);
    let workload_done = Arc::new(AtomicBool::new(false));
    let run_done = Arc::new(AtomicBool::new(false));
    let kills = Arc::new(AtomicU64::new(0));
    let max_history_seen = Arc::new(AtomicU64::new(0));
    let peak_rss = Arc::new(AtomicU64::new(0));

    let deleting: Arc<Deleting> = Arc::default();
    let longest_to_gone = Arc::new(AtomicU64::new(0));
    // Lists the instances every 500 ms for the whole run (through the restarts: a failed
    // list is skipped), for the history bound and for how long each deletion took.
    let observer = {
        let (api, done) = (api.clone(), run_done.clone());
        let (deleting, longest, max_seen) = (
            deleting.clone(),
            longest_to_gone.clone(),
            max_history_seen.clone(),
        );
        tokio::spawn(async move {
            while !done.load(Ordering::Relaxed) {
                if let Ok(list) = api.list(&ListParams::default()).await {
                    observe(&list.items, &deleting, &longest, &max_seen);
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        })
    };

    let sampler = {
        let (runner, done, peak) = (runner.clone(), run_done.clone(), peak_rss.clone());
        tokio::spawn(async move {
            while !done.load(Ordering::Relaxed) {
                record_peak(&runner, &peak).await;
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        })
    };

    // The killer: SIGKILL the runner at random moments, restart it shortly after.
    let killer = {
        let (runner, done, kills, peak) = (
            runner.clone(),
            workload_done.clone(),
            kills.clone(),
            peak_rss.clone(),
        );
        let mut rng = Rng(seed ^ 0xdead);
        tokio::spawn(async move {
            while !done.load(Ordering::Relaxed) {
                tokio::time::sleep(rng.ms(2_000, 6_000)).await;
                if done.load(Ordering::Relaxed) {
                    break;
                }
                record_peak(&runner, &peak).await;
                runner.lock().await.kill();
                kills.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(rng.ms(200, 1_500)).await;
                let _ = runner.lock().await.restart();
            }
        })
    };

    let mut tasks = Vec::new();
    for i in 0..scenario.instances {
        let api = api.clone();
        let rng = Rng(seed.wrapping_add(i as u64 * 7919) | 1);
        let (max_seen, deleting) = (max_history_seen.clone(), deleting.clone());
        let scenario = scenario.clone();
        tasks.push(tokio::spawn(async move {
            let name = format!("vm-{i:04}");
            one_instance(api, name, rng, &scenario, &max_seen, &deleting).await
        }));
    }

    // The control plane's own faults, on a schedule.
    let mut etcd_restarts = 0;
    tokio::time::sleep(scenario.apiserver_restart_at).await;
    cp.restart_apiserver(Duration::from_secs(2)).await?;
    if let Some(at) = scenario.etcd_restart_at {
        tokio::time::sleep(at.saturating_sub(scenario.apiserver_restart_at)).await;
        cp.restart_etcd(Duration::from_secs(3)).await?;
        etcd_restarts += 1;
    }
    let mut waits = Vec::new();
    for t in tasks {
        waits.push(t.await.context("an instance's task panicked")??);
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

    // Convergence: every instance gone.
    let deadline = Instant::now() + scenario.converge_deadline;
    let stuck = loop {
        let left = retry("list", || async { api.list(&ListParams::default()).await })
            .await?
            .items;
        if left.is_empty() || Instant::now() > deadline {
            break left;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let converge = faults_stopped.elapsed();
    record_peak(&runner, &peak_rss).await;
    run_done.store(true, Ordering::Relaxed);
    sampler.await?;
    observer.await?;

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
    let duplicate_keys: Vec<String> = by_key
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(k, n)| format!("{k} ×{n}"))
        .collect();
    let vms: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &vm_resource());
    let orphans = vms.list(&ListParams::default()).await?.items.len();
    let stuck_detail = match stuck.first() {
        Some(first) => {
            let logs = runner.lock().await.logs();
            let tail: Vec<&str> = logs.lines().rev().take(40).collect();
            Some(format!(
                "first stuck instance's status:\n{}\nrunner log (newest first):\n{}",
                serde_json::to_string_pretty(&first.status)?,
                tail.join("\n")
            ))
        }
        None => None,
    };
    let never_running: Vec<String> = waits
        .iter()
        .filter_map(|w| w.never_running.clone())
        .collect();
    // The run's directory goes away with it: keep the runner's log when something is wrong.
    let kept_log = if stuck.is_empty() && never_running.is_empty() {
        None
    } else {
        let kept = std::env::temp_dir().join("cloudkit-chaos-runner.log");
        std::fs::copy(runner.lock().await.log_path(), &kept)
            .ok()
            .map(|_| kept)
    };
    Ok(Report {
        kills: kills.load(Ordering::Relaxed),
        apiserver_restarts: 1,
        etcd_restarts,
        injected_faults: ledger.requests.iter().filter(|r| r.fault.is_some()).count() as u64,
        aap_jobs: ledger.jobs.len(),
        duplicates: by_key.values().map(|n| n.saturating_sub(1)).sum(),
        duplicate_keys,
        overlaps: ledger.overlaps.len(),
        orphans,
        stuck: stuck
            .iter()
            .map(|c| c.metadata.name.clone().unwrap_or_default())
            .collect(),
        never_running,
        kept_log,
        max_history: max_history_seen.load(Ordering::Relaxed),
        longest_to_running: waits
            .iter()
            .filter_map(|w| w.to_running)
            .max()
            .unwrap_or_default(),
        to_running_median: crate::bench::stats::median(
            waits.iter().filter_map(|w| w.to_running).collect(),
        ),
        longest_to_gone: Duration::from_millis(longest_to_gone.load(Ordering::Relaxed)),
        converge,
        total: started.elapsed(),
        runner_peak_rss: peak_rss.load(Ordering::Relaxed),
        stuck_detail,
        scenario,
    })
}

/// One instance: created, then (by its own dice) deleted while provisioning, deleted once
/// Running, restarted then deleted, or re-provisioned then deleted.
async fn one_instance(
    api: Api<ComputeInstance>,
    name: String,
    mut rng: Rng,
    scenario: &Scenario,
    max_seen: &AtomicU64,
    deleting: &Deleting,
) -> anyhow::Result<Waits> {
    tokio::time::sleep(rng.within(scenario.spread)).await;
    let ci = ComputeInstance::new(
        &name,
        ComputeInstanceSpec {
            template_id: "osac.templates.ocp_small".into(),
            ..Default::default()
        },
    );
    // A create whose answer was lost in a restart may have landed: the retry then finds it.
    retry("create", || async {
        match api.create(&PostParams::default(), &ci).await {
            Err(kube::Error::Api(s)) if s.code == 409 && s.reason == "AlreadyExists" => Ok(()),
            other => other.map(|_| ()),
        }
    })
    .await?;
    let created = Instant::now();
    let plan = rng.below(4);
    let mut waits = Waits {
        to_running: None,
        never_running: None,
    };
    if plan != 0 {
        let deadline = created + scenario.running_deadline;
        let mut last = None;
        while Instant::now() < deadline {
            let current = retry("get", || api.get_opt(&name)).await?;
            last = current.as_ref().and_then(|c| c.status.clone());
            if let Some(st) = current.as_ref().and_then(|c| c.status.as_ref()) {
                max_seen.fetch_max(st.jobs.len() as u64, Ordering::Relaxed);
                if st.phase == Some(Phase::Running) {
                    waits.to_running = Some(created.elapsed());
                    break;
                }
            }
            tokio::time::sleep(scenario.poll).await;
        }
        if waits.to_running.is_none() {
            waits.never_running = Some(summary(&name, last.as_ref()));
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
        .await?;
        tokio::time::sleep(rng.ms(500, 4_000)).await;
    }
    retry("delete", || async {
        match api.delete(&name, &DeleteParams::default()).await {
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            other => other.map(|_| ()),
        }
    })
    .await?;
    deleting
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(name, Instant::now());
    Ok(waits)
}

async fn start_aap(client: kube::Client, seed: u64) -> anyhow::Result<AapSimulator> {
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
    Ok(AapSimulator::start(AapSimConfig {
        templates: vec![provision, deprovision],
        kube: Some(client),
        seed,
        ..AapSimConfig::default()
    })
    .await?)
}

fn start_runner(
    cp: &ControlPlane,
    aap: &AapSimulator,
    ns: &str,
    dir: &std::path::Path,
) -> anyhow::Result<RunnerProcess> {
    let token_file = dir.join("token");
    std::fs::write(&token_file, DEFAULT_TOKEN)?;
    // The bed's settings, then what the chaos run changes: a shorter cancel deadline and
    // HTTP timeout (slow answers are faults here), a longer restart deadline (the runner is
    // killed often), a fast poll and a small history. Later entries win.
    let mut env = simulator_env(&aap.base_url(), &token_file, ns);
    env.extend(
        [
            ("CLOUDKIT_AAP_STATUS_POLL_INTERVAL", "500ms"),
            ("CLOUDKIT_MAX_JOB_HISTORY", &MAX_HISTORY.to_string()),
            ("CLOUDKIT_CANCEL_DEADLINE", "6s"),
            ("CLOUDKIT_RESTART_DEADLINE", "30s"),
            ("CLOUDKIT_HTTP_TIMEOUT", "3s"),
            ("POD_NAME", "runner-chaos"),
            ("CLOUDKIT_LOG", "info"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string())),
    );
    Ok(RunnerProcess::start(
        cp.kubeconfig_path(),
        env,
        dir.join("runner.log"),
    )?)
}

/// 15% of launches, job lists, template lookups and cancels fail or stall; launches may
/// also fail after the job was created (the answer is lost, the job is not).
fn inject_aap_faults(aap: &AapSimulator) {
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
}

/// `name: phase; Type=Status/Reason: message; …; jobs: type id state, …`.
fn summary(name: &str, status: Option<&cloudkit_shared::ComputeInstanceStatus>) -> String {
    let Some(st) = status else {
        return format!("{name}: no status");
    };
    let conditions: Vec<String> = st
        .conditions
        .iter()
        .map(|c| format!("{}={}/{}: {}", c.type_, c.status, c.reason, c.message))
        .collect();
    let jobs: Vec<String> = st
        .jobs
        .iter()
        .map(|j| {
            format!(
                "{:?} {} {:?}",
                j.job_type,
                j.job_id.as_deref().unwrap_or("-"),
                j.state
            )
        })
        .collect();
    format!(
        "{name}: {:?}; {}; jobs: {}",
        st.phase,
        conditions.join("; "),
        jobs.join(", ")
    )
}

fn observe(
    items: &[ComputeInstance],
    deleting: &Deleting,
    longest: &AtomicU64,
    max_seen: &AtomicU64,
) {
    for ci in items {
        if let Some(st) = &ci.status {
            max_seen.fetch_max(st.jobs.len() as u64, Ordering::Relaxed);
        }
    }
    let present: std::collections::BTreeSet<&str> = items
        .iter()
        .filter_map(|c| c.metadata.name.as_deref())
        .collect();
    deleting
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .retain(|name, since| {
            let gone = !present.contains(name.as_str());
            if gone {
                longest.fetch_max(since.elapsed().as_millis() as u64, Ordering::Relaxed);
            }
            !gone
        });
}

async fn record_peak(runner: &Mutex<RunnerProcess>, peak: &AtomicU64) {
    let pid = runner.lock().await.pid();
    if let Some(stats) = pid.and_then(|pid| proc_stats(pid).ok()) {
        peak.fetch_max(stats.peak_rss, Ordering::Relaxed);
    }
}
