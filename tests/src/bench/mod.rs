//! Benchmarks: restart latency, settle time, runner memory and CPU, AAP
//! requests per poll tick, the plugin's wall time and the binaries' sizes, each printed
//! beside its target and never asserted. `testbed bench [--quick]` runs them on a
//! control plane of their own; the smoke test runs them at tiny sizes on the shared one.
//!
//! One file per measurement; this one runs them in order and collects the table:
//! a seed instance is provisioned by the runner, copies of it are created Running
//! (see [`population`]), and one namespace grows through the sizes; at each size a fresh
//! runner settles it (settle time, status writes, memory, CPU) and, where asked, restarts
//! are timed. Then an idle runner, the AAP poll, the plugin and the binary sizes.

pub mod aap_poll;
pub mod binaries;
pub mod burst;
pub mod machine;
pub mod memory;
pub mod plugin;
pub mod population;
pub mod report;
pub mod restart;
pub mod runner;
pub mod settle;
pub mod stats;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context as _;

use crate::aap_sim::{
    AapSimConfig, AapSimulator, DEFAULT_TOKEN, JobBehavior, Role, TemplateConfig,
};
use crate::bed::{
    DEPROVISION_TEMPLATE, DEPROVISION_TEMPLATE_ID, PROVISION_TEMPLATE, PROVISION_TEMPLATE_ID,
    quick_job,
};
use crate::control_plane::ControlPlane;
use crate::stack::Progress;

use aap_poll::{PollFigure, PollSettings};
use binaries::{Binaries, Profile};
use machine::{Machine, Versions};
use memory::ObjectBytes;
use population::{Seed, instance_name};
use report::{Figure, Report, Section, count, mib, ms, secs};
use restart::Restarts;
use runner::{BenchRunner, RunnerSetup};
use settle::Settled;

/// Sizes and knobs of one run.
#[derive(Clone, Debug)]
pub struct BenchOptions {
    pub profile: Profile,
    /// Populations the namespace grows through, ascending; each is settled by a fresh runner.
    pub sizes: Vec<usize>,
    /// The populations at which restarts are timed.
    pub restart_at: Vec<usize>,
    /// Restarts timed per population at most (instances not restarted before).
    pub restart_samples: usize,
    /// In-flight AAP jobs at which the poll is counted, ascending.
    pub in_flight: Vec<usize>,
    pub poll_ticks: usize,
    /// The runner's poll interval everywhere but in the AAP poll measurement.
    pub poll_interval: Duration,
    /// The poll interval while AAP jobs are held in flight. Each in-flight instance costs
    /// the runner a status write per tick (see BENCHMARKS.md), so at 1,000 jobs a 1 s
    /// interval saturates the API server before the launches are even recorded.
    pub aap_poll_interval: Duration,
    /// Runs of each plugin command.
    pub plugin_runs: usize,
    /// Instances created at a time.
    pub concurrency: usize,
    /// How long the runner must stay without reconciles to count as settled.
    pub quiet: Duration,
    /// Growing to a size whose creation would end past this (from the start) is skipped.
    pub budget: Option<Duration>,
    /// The command line, for the report.
    pub command: String,
    /// Extra environment for every runner started (see [`runner::EXTRA_ENV`]).
    pub runner_env: Vec<(String, String)>,
    /// Instances created at once for the burst measurement.
    pub burst: usize,
    /// How long the AAP simulator takes to answer each launch in the burst (a real
    /// controller takes a fraction of a second).
    pub burst_launch_latency: Duration,
    /// Run one measurement and nothing else.
    pub only: Option<Only>,
}

/// The measurements `--only` can pick.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Only {
    /// Instances created at once: launch rate and AAP requests in flight.
    Burst,
    /// The sizes: creation, settle, memory, CPU, restarts, `list -A`, the control plane's
    /// memory (the seed instance first).
    Scale,
}

impl BenchOptions {
    /// The target sizes.
    pub fn full() -> Self {
        Self {
            profile: Profile::Release,
            sizes: vec![100, 1_000, 10_000],
            restart_at: vec![100, 1_000],
            restart_samples: 200,
            in_flight: vec![10, 100, 1_000],
            poll_ticks: 10,
            poll_interval: Duration::from_secs(1),
            aap_poll_interval: Duration::from_secs(5),
            plugin_runs: 20,
            // Creation is bound by kube-apiserver's CPU; more in flight keeps it busy
            // while others wait on etcd.
            concurrency: 64,
            quiet: Duration::from_secs(2),
            budget: Some(Duration::from_secs(15 * 60)),
            command: "cargo run --release -p cloudkit-testbed -- bench".into(),
            runner_env: Vec::new(),
            burst: 1_000,
            burst_launch_latency: Duration::from_millis(100),
            only: None,
        }
    }

    /// Small sizes: every figure, in about a minute.
    pub fn quick() -> Self {
        Self {
            sizes: vec![10, 50, 200],
            restart_at: vec![10, 50],
            restart_samples: 20,
            in_flight: vec![3, 30, 250],
            poll_ticks: 3,
            aap_poll_interval: Duration::from_secs(1),
            plugin_runs: 5,
            quiet: Duration::from_secs(1),
            budget: None,
            command: "cargo run --release -p cloudkit-testbed -- bench --quick".into(),
            burst: 200,
            ..Self::full()
        }
    }

    /// Tiny sizes and the debug build, for the smoke test.
    pub fn smoke() -> Self {
        Self {
            profile: Profile::Debug,
            sizes: vec![5],
            restart_at: vec![5],
            restart_samples: 5,
            in_flight: vec![3],
            poll_ticks: 2,
            plugin_runs: 3,
            command: "cargo test -p cloudkit-testbed --test bench_smoke".into(),
            burst: 10,
            ..Self::quick()
        }
    }
}

/// Runs every measurement on `cp`; a measurement that fails leaves its figures "not
/// measured" and says why in the notes, and the others still run.
pub async fn run(
    cp: &ControlPlane,
    options: &BenchOptions,
    progress: &Progress,
) -> anyhow::Result<Report> {
    let started = Instant::now();
    let machine = Machine::read();
    progress.say(format!(
        "building cloudkit-runner and kubectl-cloudkit ({} profile)",
        options.profile.name()
    ));
    let profile = options.profile;
    let bins = tokio::task::spawn_blocking(move || Binaries::build(profile))
        .await
        .context("the build task panicked")??;
    progress.say(format!("built in {}", secs(bins.build_time)));
    let versions = Versions::read(bins.runner_version());
    let client = cp.client().await?;
    let dir = tempfile::Builder::new()
        .prefix("cloudkit-bench-")
        .tempdir()?;
    let token_file = dir.path().join("aap-token");
    std::fs::write(&token_file, DEFAULT_TOKEN)?;
    // The budget counts the measurements, not the build.
    let measuring = Instant::now();
    let mut bench = Bench {
        cp,
        client,
        bins,
        options,
        progress,
        dir: dir.path().to_path_buf(),
        token_file,
        runners: 0,
        started: measuring,
        sections: Vec::new(),
        notes: Vec::new(),
    };
    bench.notes.push(format!(
        "Runner: the {} build, started as a process with the test bed's environment (AAP simulator, poll interval {}, {} while AAP jobs are held in flight), watching only the bench's namespace, `CLOUDKIT_LOG=warn` (plus `cloudkit_runner::http=info` for the one line that names the metrics address), leader election on with a fresh Lease per start. Settled = it leads, has run at least one reconcile per instance, and then none for {}; the settle time ends at its last reconcile.",
        options.profile.name(),
        secs(options.poll_interval),
        secs(options.aap_poll_interval),
        secs(options.quiet)
    ));
    bench.notes.push("Restart latency is timed from the response to the merge patch of `spec.restartRequestedAt` that `kubectl cloudkit restart` sends (same body, field manager kubectl-cloudkit) to the VMI's DELETED event on a watch; the bench recreates the VMI at once (as virt-controller would) and waits for the runner's acknowledgement (lastRestartedAt) before the next restart, so samples do not queue behind each other.".into());
    bench.notes.push("Running instances are not provisioned one by one: one seed instance is provisioned by the runner through the AAP simulator; each copy gets a VM, a Running VMI, the seed's finalizer and reconciled-config-version annotation, and the seed's settled status (name, namespace and UID swapped) written by server-side apply under the runner's field manager, exactly as the runner writes it. The runner then only has to settle them.".into());
    bench.notes.push("Timings share two cores with kube-apiserver, etcd, the simulators, the bench itself and other engineers' test runs (see the load averages): treat single figures as noisy; latencies are medians / percentiles of many samples.".into());

    if options.only != Some(Only::Scale)
        && let Err(e) = bench.burst().await
    {
        bench.failed(BURST, &e);
    }
    if options.only == Some(Only::Burst) {
        return Ok(bench.report(machine, versions, started));
    }
    let sim = quick_simulator(&bench.client).await?;
    let seed = match bench.seed(&sim).await {
        Ok(seed) => Some(seed),
        Err(e) => {
            bench.failed("Seed instance", &e);
            None
        }
    };
    if let Some(seed) = &seed {
        if let Err(e) = bench.scale(&sim, seed).await {
            bench.failed("Settle, memory, CPU and restarts", &e);
        }
    } else {
        bench.section(
            "Settle, memory, CPU and restarts",
            vec![Figure::missing("all sizes")],
        );
    }
    if options.only == Some(Only::Scale) {
        sim.stop().await;
        return Ok(bench.report(machine, versions, started));
    }
    if let Err(e) = bench.idle(&sim).await {
        bench.failed("Runner memory, idle", &e);
    }
    sim.stop().await;
    if let Err(e) = bench.aap_poll().await {
        bench.failed("AAP requests per poll tick", &e);
    }
    if let Err(e) = bench.plugin(seed.as_ref()).await {
        bench.failed(PLUGIN, &e);
    }
    bench.binary_sizes();
    Ok(bench.report(machine, versions, started))
}

const BURST: &str = "Burst of instances created at once (AAP backpressure)";
const PLUGIN: &str = "Plugin wall time (median)";
const LIST: &str = "Plugin `list -A` over the whole cluster (median)";

/// The AAP simulator for seeding and settling: quick, successful jobs whose playbooks
/// create the VM and VMI in the cluster.
async fn quick_simulator(client: &kube::Client) -> anyhow::Result<AapSimulator> {
    Ok(simulator(client, quick_job()).await?)
}

async fn simulator(
    client: &kube::Client,
    provision_behavior: JobBehavior,
) -> Result<AapSimulator, crate::aap_sim::AapSimError> {
    let provision = TemplateConfig::job(PROVISION_TEMPLATE_ID, PROVISION_TEMPLATE)
        .role(Role::Provision)
        .behavior(provision_behavior);
    let deprovision = TemplateConfig::job(DEPROVISION_TEMPLATE_ID, DEPROVISION_TEMPLATE)
        .role(Role::Deprovision)
        .behavior(quick_job());
    AapSimulator::start(
        AapSimConfig::new()
            .template(provision)
            .template(deprovision)
            .kube(client.clone()),
    )
    .await
}

/// `Launch: 1, JobList: 0, ...`: what the runner asked AAP, for error messages.
fn aap_summary(sim: &AapSimulator) -> String {
    let counters = sim.counters();
    crate::aap_sim::Endpoint::ALL
        .iter()
        .map(|e| {
            let n = counters.get(e).map_or(0, |c| c.requests);
            format!("{e:?} {n}")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn aap_requests(sim: &AapSimulator) -> u64 {
    sim.counters().values().map(|c| c.requests).sum()
}

struct Bench<'a> {
    cp: &'a ControlPlane,
    client: kube::Client,
    bins: Binaries,
    options: &'a BenchOptions,
    progress: &'a Progress,
    dir: PathBuf,
    token_file: PathBuf,
    runners: usize,
    started: Instant,
    sections: Vec<Section>,
    notes: Vec<String>,
}

impl Bench<'_> {
    fn report(self, mut machine: Machine, versions: Versions, started: Instant) -> Report {
        machine.load_at_end = machine::load_average();
        let date = k8s_openapi::jiff::Timestamp::now()
            .strftime("%Y-%m-%d %H:%M UTC")
            .to_string();
        Report {
            command: self.options.command.clone(),
            date,
            profile: self.options.profile,
            machine,
            versions,
            sections: self.sections,
            notes: self.notes,
            build_time: self.bins.build_time,
            run_time: started.elapsed(),
        }
    }

    /// A burst of instances, each needing a launch, against a simulator whose launches
    /// take `burst_launch_latency`; jobs are held running so nothing else follows.
    async fn burst(&mut self) -> anyhow::Result<()> {
        let options = self.options;
        let n = options.burst;
        let provision = TemplateConfig::job(PROVISION_TEMPLATE_ID, PROVISION_TEMPLATE)
            .role(Role::Provision)
            .behavior(quick_job().hold_running());
        let deprovision = TemplateConfig::job(DEPROVISION_TEMPLATE_ID, DEPROVISION_TEMPLATE)
            .role(Role::Deprovision)
            .behavior(quick_job());
        let sim = AapSimulator::start(
            AapSimConfig::new()
                .template(provision)
                .template(deprovision),
        )
        .await?;
        sim.set_latency(
            crate::aap_sim::Endpoint::Launch,
            options.burst_launch_latency,
        );
        let namespace = self.cp.test_namespace("bench-burst").await?;
        let mut runner =
            self.start_runner_polling(&namespace, sim.base_url(), options.aap_poll_interval)?;
        let limit = runner::limit_of(&options.runner_env);
        self.progress.say(format!(
            "creating {} instances at once ({} creates in flight); AAP launches take {}",
            count(n),
            options.concurrency,
            ms(options.burst_launch_latency)
        ));
        let measured = burst::measure(&self.client, &namespace, &sim, n, options.concurrency).await;
        let tail = runner.log_tail(10);
        runner.stop(Duration::from_secs(10));
        sim.stop().await;
        let f = measured.with_context(|| format!("runner log:\n{tail}"))?;
        self.progress.say(format!(
            "{} launched in {} ({:.1}/s), peak {} AAP requests in flight",
            count(n),
            secs(f.launch_time),
            f.launches_per_second(),
            f.peak_in_flight
        ));
        self.section(
            BURST,
            vec![
                Figure::new(
                    format!("{} instances → all launched", count(n)),
                    format!(
                        "{} ({:.1} launches/s; creating them took {}; {} launch requests; each launch answered after {})",
                        secs(f.launch_time),
                        f.launches_per_second(),
                        secs(f.create_time),
                        f.launch_requests,
                        ms(options.burst_launch_latency)
                    ),
                ),
                Figure::new(
                    format!("{} instances: peak AAP requests in flight", count(n)),
                    f.peak_in_flight.to_string(),
                )
                .target(format!("≤ {limit}"), f.peak_in_flight <= limit),
                Figure::new(
                    format!("{} instances: instances launched more than once", count(n)),
                    f.duplicates.to_string(),
                )
                .target("0", f.duplicates == 0),
                lookups_figure(&f),
            ],
        );
        Ok(())
    }

    fn section(&mut self, title: &str, figures: Vec<Figure>) {
        match self.sections.iter_mut().find(|s| s.title == title) {
            Some(s) => s.figures.extend(figures),
            None => self.sections.push(Section {
                title: title.to_string(),
                figures,
            }),
        }
    }

    fn failed(&mut self, title: &str, error: &anyhow::Error) {
        self.progress.say(format!("{title}: failed: {error:#}"));
        self.section(title, vec![Figure::missing(format!("{title} (failed)"))]);
        self.notes.push(format!(
            "{title} failed: {}",
            format!("{error:#}").replace('\n', " ")
        ));
    }

    fn start_runner(&mut self, namespace: &str, aap_url: String) -> anyhow::Result<BenchRunner> {
        self.start_runner_polling(namespace, aap_url, self.options.poll_interval)
    }

    fn start_runner_polling(
        &mut self,
        namespace: &str,
        aap_url: String,
        poll_interval: Duration,
    ) -> anyhow::Result<BenchRunner> {
        self.runners += 1;
        let setup = RunnerSetup {
            aap_url,
            aap_token_file: self.token_file.clone(),
            namespace: namespace.to_string(),
            poll_interval,
            lease_name: format!("cloudkit-bench-{}", self.runners),
            extra_env: (self.options.runner_env.iter())
                .map(|(k, v)| (k.clone(), v.replace("{n}", &self.runners.to_string())))
                .collect(),
        };
        let log = self.dir.join(format!("runner-{}.log", self.runners));
        BenchRunner::start(&self.bins.runner, self.cp.kubeconfig_path(), &setup, log)
    }

    async fn seed(&mut self, sim: &AapSimulator) -> anyhow::Result<(String, Seed)> {
        let namespace = self.cp.test_namespace("bench-seed").await?;
        self.progress
            .say("provisioning the seed instance through the runner and the AAP simulator");
        let mut runner = self.start_runner(&namespace, sim.base_url())?;
        let seed = Seed::provision(
            &self.client,
            &namespace,
            &mut runner,
            Duration::from_secs(90),
        )
        .await
        .with_context(|| format!("AAP requests seen: {}", aap_summary(sim)))?;
        runner.stop(Duration::from_secs(10));
        Ok((namespace, seed))
    }

    /// Grows one namespace through the sizes; settles and restarts at each.
    async fn scale(
        &mut self,
        sim: &AapSimulator,
        (_, seed): &(String, Seed),
    ) -> anyhow::Result<()> {
        let namespace = self.cp.test_namespace("bench-scale").await?;
        let options = self.options;
        let mut present = 0;
        let mut restarted_up_to = 0;
        let mut rate: Option<f64> = None;
        for &size in &options.sizes {
            if let (Some(budget), Some(rate)) = (options.budget, rate) {
                let estimate = Duration::from_secs_f64((size - present) as f64 / rate);
                // Creating is about half of what a size costs (settling and restarts follow).
                if self.started.elapsed() + estimate * 2 > budget {
                    self.section(
                        "Settle time",
                        vec![Figure::missing(format!("{} instances", count(size)))],
                    );
                    self.notes.push(format!(
                        "{} instances were not measured: creating {} more at the measured {rate:.0} instances/s would take about {}, which with settling does not fit the {} budget; {} is the largest size measured.",
                        count(size),
                        count(size - present),
                        secs(estimate),
                        secs(budget),
                        count(present)
                    ));
                    break;
                }
            }
            self.progress.say(format!(
                "creating {} Running instances ({} in flight)",
                count(size - present),
                options.concurrency
            ));
            let took = population::create_running(
                &self.client,
                &namespace,
                seed,
                present..size,
                options.concurrency,
            )
            .await?;
            let made = size - present;
            rate = Some(made as f64 / took.as_secs_f64().max(1e-3));
            self.section(
                "Creating instances (5 API writes each, concurrently)",
                vec![Figure::new(
                    format!(
                        "{} → {} Running instances, {} in flight",
                        count(present),
                        count(size),
                        options.concurrency
                    ),
                    format!(
                        "{} ({:.0} instances/s)",
                        secs(took),
                        rate.unwrap_or_default()
                    ),
                )],
            );
            present = size;
            self.progress.say(format!(
                "created in {}; starting a runner to settle {}",
                secs(took),
                count(size)
            ));
            let mut runner = self.start_runner(&namespace, sim.base_url())?;
            let timeout = Duration::from_secs(180) + Duration::from_millis(50 * size as u64);
            let settled = settle::wait(&mut runner, size, options.quiet, timeout, || {
                aap_requests(sim)
            })
            .await?;
            self.progress.say(format!(
                "settled {} in {} ({} reconciles, {} status writes, peak RSS {})",
                count(size),
                secs(settled.settle),
                settled.metrics.reconciles,
                settled.metrics.status_writes,
                mib(settled.proc.peak_rss)
            ));
            self.settled_figures(&settled);
            if options.restart_at.contains(&size) {
                let picks = restart::spread(restarted_up_to..size, options.restart_samples);
                let names: Vec<String> = picks.iter().map(|&i| instance_name(i)).collect();
                self.progress.say(format!(
                    "timing {} restarts, one at a time, with {} instances",
                    names.len(),
                    count(size)
                ));
                let writes_before = runner.scrape().await?.status_writes;
                let mut restarts = restart::measure(&self.client, &namespace, size, &names)
                    .await
                    .with_context(|| format!("restarts with {} instances", count(size)))?;
                // Every restart is acknowledged before the next starts, so the writes in
                // between are the restarts' own.
                restarts.status_writes = Some(runner.scrape().await?.status_writes - writes_before);
                restarted_up_to = size;
                self.restart_figures(&restarts);
            }
            runner.stop(Duration::from_secs(10));
            self.server_memory(size);
            if let Err(e) = self.list_all(size).await {
                self.failed(LIST, &e);
            }
            if Some(&size) == options.sizes.last() {
                let bytes = ObjectBytes::measure(&self.client, &namespace, 50).await?;
                self.object_bytes_note(&bytes, size);
            }
        }
        Ok(())
    }

    fn settled_figures(&mut self, s: &Settled) {
        let n = count(s.instances);
        let mut settle_time = Figure::new(
            format!("{n} instances: start → all reconciled"),
            format!(
                "{} ({} reconciles; lease at {}, first reconcile at {})",
                secs(s.settle),
                s.metrics.reconciles,
                s.to_leader.map(secs).unwrap_or_else(|| "-".into()),
                s.to_first_reconcile.map(secs).unwrap_or_else(|| "-".into())
            ),
        );
        if s.instances == 100_000 {
            settle_time = settle_time.target("< 30 s", s.settle < Duration::from_secs(30));
        }
        let mut settle = vec![
            settle_time,
            Figure::new(
                format!("{n} instances: status writes while settling"),
                s.metrics.status_writes.to_string(),
            )
            .target("0", s.metrics.status_writes == 0),
        ];
        if s.aap_requests > 0 {
            self.notes.push(format!(
                "Settling {n} instances made {} AAP requests (nothing was in flight).",
                s.aap_requests
            ));
        }
        let mut rss = Figure::new(
            format!("{n} instances: peak RSS (VmHWM)"),
            format!("{} (RSS now {})", mib(s.proc.peak_rss), mib(s.proc.rss)),
        );
        // A fifth of the upstream operator's 79 / 239 MiB at 1,000 / 10,000.
        let limit = match s.instances {
            1_000 => Some(16),
            10_000 => Some(48),
            100_000 => Some(500),
            _ => None,
        };
        if let Some(limit) = limit {
            rss = rss.target(
                format!("< {limit} MiB"),
                s.proc.peak_rss < limit * 1024 * 1024,
            );
        }
        let cpu = match s.cpu_per_1000_reconciles() {
            Some(cpu) => Figure::new(
                format!("{n} instances: CPU per 1,000 reconciles"),
                format!(
                    "{cpu:.3} s ({:.2} s CPU / {} reconciles; mean reconcile {})",
                    s.proc.cpu_seconds,
                    s.metrics.reconciles,
                    s.mean_reconcile().map(ms).unwrap_or_else(|| "-".into())
                ),
            ),
            None => Figure::missing(format!("{n} instances: CPU per 1,000 reconciles")),
        };
        if s.metrics.reconcile_errors > 0 {
            self.notes.push(format!(
                "Settling {n} instances: {} reconciles failed.",
                s.metrics.reconcile_errors
            ));
        }
        self.section("Settle time", std::mem::take(&mut settle));
        self.section("Runner memory", vec![rss]);
        self.section("Runner CPU", vec![cpu]);
    }

    fn restart_figures(&mut self, r: &Restarts) {
        let targeted = |n: usize| n == 1_000 || n == 10_000;
        let n = count(r.instances);
        let samples = r.samples.len();
        let mut figures = Vec::new();
        match r.latency(50.0) {
            Some(p50) => {
                let mut f =
                    Figure::new(format!("{n} instances: p50 ({samples} restarts)"), ms(p50));
                if targeted(r.instances) {
                    f = f.target("< 8 ms", p50 < Duration::from_millis(8));
                }
                figures.push(f);
            }
            None => figures.push(Figure::missing(format!("{n} instances: p50"))),
        }
        match r.latency(99.0) {
            Some(p99) => {
                let mut f = Figure::new(
                    format!(
                        "{n} instances: p99 (max {})",
                        r.latency(100.0).map(ms).unwrap_or_default()
                    ),
                    ms(p99),
                );
                if targeted(r.instances) {
                    f = f.target("< 15 ms", p99 < Duration::from_millis(15));
                }
                figures.push(f);
            }
            None => figures.push(Figure::missing(format!("{n} instances: p99"))),
        }
        match (
            r.to_intent(50.0),
            r.intent_to_delete(50.0),
            r.patch_round_trip(50.0),
        ) {
            (Some(a), Some(b), Some(rtt)) => figures.push(Figure::new(
                format!("{n} instances: p50 of the two steps"),
                format!(
                    "{} patch → restart job in status, {} → VMI deleted (p99 {} / {}); the patch itself {}",
                    ms(a),
                    ms(b),
                    r.to_intent(99.0).map(ms).unwrap_or_default(),
                    r.intent_to_delete(99.0).map(ms).unwrap_or_default(),
                    ms(rtt)
                ),
            )),
            _ => figures.push(Figure::missing(format!("{n} instances: steps"))),
        }
        if let Some(writes) = r.status_writes.filter(|_| samples > 0) {
            let per = writes as f64 / samples as f64;
            figures.push(
                Figure::new(
                    format!("{n} instances: status writes per restart"),
                    format!("{per:.2} ({writes} writes / {samples} restarts)"),
                )
                .target("≤ 2", per <= 2.0),
            );
        }
        if r.unfinished > 0 {
            self.notes.push(format!(
                "With {n} instances, {} of {samples} restarts were not acknowledged (lastRestartedAt) within 30 s of the VMI deletion.",
                r.unfinished
            ));
        }
        self.section("Restart latency (patch → VMI DELETED)", figures);
    }

    fn object_bytes_note(&mut self, b: &ObjectBytes, size: usize) {
        self.notes.push(format!(
            "What the API server serves per instance (JSON): ComputeInstance {} B, VM {} B, VMI {} B = {} B, of which managedFields {} B ({:.0}%). For {} instances that is {} of JSON; the runner parses it lean (managedFields never built; of VMs and VMIs only names, UID, instance label, deletion, run strategy and phase), so its caches hold less than that.",
            b.instance,
            b.vm,
            b.vmi,
            b.per_instance(),
            b.managed_fields,
            100.0 * b.managed_fields as f64 / b.per_instance().max(1) as f64,
            count(size),
            mib((b.per_instance() * size) as u64)
        ));
    }

    async fn idle(&mut self, sim: &AapSimulator) -> anyhow::Result<()> {
        let namespace = self.cp.test_namespace("bench-idle").await?;
        self.progress.say("measuring an idle runner");
        let mut runner = self.start_runner(&namespace, sim.base_url())?;
        let settled = settle::wait(
            &mut runner,
            0,
            Duration::from_secs(3),
            Duration::from_secs(60),
            || aap_requests(sim),
        )
        .await?;
        runner.stop(Duration::from_secs(10));
        self.section(
            "Runner memory",
            vec![Figure::new(
                "idle (no instances): peak RSS (VmHWM)",
                format!(
                    "{} (RSS now {})",
                    mib(settled.proc.peak_rss),
                    mib(settled.proc.rss)
                ),
            )],
        );
        Ok(())
    }

    async fn aap_poll(&mut self) -> anyhow::Result<()> {
        let options = self.options;
        let sim = simulator(
            &self.client,
            JobBehavior {
                pending: Duration::from_millis(50),
                waiting: Duration::from_millis(50),
                ..quick_job()
            }
            .hold_running(),
        )
        .await?;
        let namespace = self.cp.test_namespace("bench-aap-poll").await?;
        let mut runner =
            self.start_runner_polling(&namespace, sim.base_url(), options.aap_poll_interval)?;
        let settings = PollSettings {
            ticks: options.poll_ticks,
            interval: options.aap_poll_interval,
            concurrency: options.concurrency,
        };
        let mut already = 0;
        let mut figures = Vec::new();
        let mut result = Ok(());
        for &n in &options.in_flight {
            self.progress.say(format!(
                "holding {} AAP jobs running and counting job-list requests over {} ticks of {}",
                count(n),
                options.poll_ticks,
                secs(options.aap_poll_interval)
            ));
            match aap_poll::measure_one(
                &self.client,
                &namespace,
                &sim,
                &mut runner,
                already,
                n,
                &settings,
            )
            .await
            {
                Ok(f) => figures.push(poll_figure(&f)),
                Err(e) => {
                    result = Err(e.context(format!(
                        "{} in flight (AAP requests seen: {}); runner log:\n{}",
                        count(n),
                        aap_summary(&sim),
                        runner.log_tail(10)
                    )));
                    break;
                }
            }
            already = n;
        }
        runner.stop(Duration::from_secs(10));
        sim.stop().await;
        self.section("AAP requests per poll tick", figures);
        result
    }

    async fn plugin(&mut self, seed: Option<&(String, Seed)>) -> anyhow::Result<()> {
        let (namespace, _) = seed.context("no seed instance to read")?;
        let runs = self.options.plugin_runs;
        self.progress.say(format!(
            "timing kubectl cloudkit jobs and kubectl get -o json, {runs} runs each"
        ));
        let (kubeconfig, plugin_dir, plugin, namespace) = (
            self.cp.kubeconfig_path().to_path_buf(),
            self.bins.plugin_dir.clone(),
            self.bins.plugin.clone(),
            namespace.clone(),
        );
        let f = tokio::task::spawn_blocking(move || {
            plugin::measure(
                &kubeconfig,
                &plugin_dir,
                &plugin,
                &namespace,
                population::SEED_NAME,
                runs,
            )
        })
        .await??;
        let direct_ratio = f.direct_ratio();
        self.section(
            PLUGIN,
            vec![
                Figure::new(
                    format!("`kubectl cloudkit jobs NAME` ({runs} runs)"),
                    ms(f.jobs_via_kubectl),
                ),
                Figure::new(
                    format!("`kubectl get computeinstance NAME -o json` ({runs} runs)"),
                    ms(f.get_json),
                ),
                // No target: kubectl's own start-up (below) is the floor of any plugin.
                Figure::new(
                    "ratio jobs through kubectl / get",
                    format!("{:.2}", f.ratio()),
                ),
                Figure::new(
                    "`kubectl-cloudkit jobs NAME` run directly",
                    ms(f.jobs_direct),
                ),
                Figure::new(
                    "ratio plugin run directly / get",
                    format!("{direct_ratio:.2}"),
                )
                .target("≤ 0.15", direct_ratio <= 0.15),
                Figure::new(
                    "`kubectl version --client` (kubectl's own start-up)",
                    ms(f.kubectl_startup),
                ),
            ],
        );
        Ok(())
    }

    /// `list -A` over the whole cluster while it holds `size` instances in the scale
    /// namespace (and the other sections' few thousand).
    async fn list_all(&mut self, size: usize) -> anyhow::Result<()> {
        let runs = self.options.plugin_runs.min(5);
        // kubectl's own decode of ten thousand objects takes seconds a run; beyond that
        // it is left out.
        let with_get = size <= 10_000;
        self.progress.say(format!(
            "timing kubectl cloudkit list -A with {} instances, {runs} runs each",
            count(size)
        ));
        let server = plugin::server_list(&self.client, runs).await?;
        let (kubeconfig, plugin_dir, plugin) = (
            self.cp.kubeconfig_path().to_path_buf(),
            self.bins.plugin_dir.clone(),
            self.bins.plugin.clone(),
        );
        let l = tokio::task::spawn_blocking(move || {
            plugin::measure_list(&kubeconfig, &plugin_dir, &plugin, runs, with_get, server)
        })
        .await??;
        let n = count(l.instances);
        let mut direct = Figure::new(
            format!("`kubectl-cloudkit list -A` run directly, {n} instances ({runs} runs)"),
            ms(l.direct),
        );
        if size == 10_000 {
            direct = direct.target("< 500 ms", l.direct < Duration::from_millis(500));
        }
        let mut figures = vec![
            direct,
            Figure::new(
                format!(
                    "{n} instances: the API server's part (the same {} pages of 500, fetched, not decoded)",
                    l.server.pages
                ),
                format!("{} ({})", ms(l.server.time), mib(l.server.bytes as u64)),
            ),
            Figure::new(
                format!("{n} instances: `kubectl cloudkit list -A`"),
                ms(l.via_kubectl),
            ),
        ];
        if let Some(get) = l.get_json {
            figures.push(Figure::new(
                format!("{n} instances: `kubectl get computeinstances -A -o json`"),
                ms(get),
            ));
        }
        self.section(LIST, figures);
        Ok(())
    }

    /// kube-apiserver's and etcd's resident memory now, for context beside the runner's.
    fn server_memory(&mut self, size: usize) {
        let Some((apiserver, etcd)) = self.cp.server_pids() else {
            return;
        };
        let rss = |pid| {
            runner::proc_stats(pid)
                .map(|p| mib(p.rss))
                .unwrap_or_else(|e| format!("unreadable: {e}"))
        };
        self.section(
            "Control plane memory (context, not the runner's)",
            vec![Figure::new(
                format!("{} instances: kube-apiserver / etcd RSS", count(size)),
                format!("{} / {}", rss(apiserver), rss(etcd)),
            )],
        );
    }

    fn binary_sizes(&mut self) {
        let profile = self.bins.profile.name();
        let figure = |name: &str, size: anyhow::Result<u64>| match size {
            Ok(bytes) => Figure::new(format!("`{name}` ({profile})"), mib(bytes)),
            Err(_) => Figure::missing(format!("`{name}` ({profile})")),
        };
        let figures = vec![
            figure("cloudkit-runner", self.bins.runner_size()),
            figure("kubectl-cloudkit", self.bins.plugin_size()),
        ];
        self.section("Binary sizes", figures);
    }
}

/// The burst launches from one template: the runner's default refresh period (5 min) allows
/// one lookup per period it lasted.
fn lookups_figure(f: &burst::BurstFigure) -> Figure {
    const REFRESH: Duration = Duration::from_secs(300);
    let periods = 1 + (f.launch_time.as_secs() / REFRESH.as_secs());
    Figure::new(
        format!(
            "{} launches from 1 template: AAP template lookups",
            count(f.instances)
        ),
        f.template_lookups.to_string(),
    )
    .target(
        format!(
            "≤ {periods} (one per template per {} refresh)",
            secs(REFRESH)
        ),
        f.template_lookups <= periods,
    )
}

fn poll_figure(f: &PollFigure) -> Figure {
    let what = format!("{} jobs in flight", count(f.in_flight));
    match f.per_tick() {
        Some(per_tick) => Figure::new(
            what,
            format!(
                "{per_tick:.2} ({} requests / {} ticks, ≤ {} ids per request; a tick every {}; {:.1} status writes per tick; all running {} after creation)",
                f.requests,
                f.ticks,
                f.max_ids_per_request,
                secs(f.tick_period),
                f.status_writes_per_tick().unwrap_or_default(),
                secs(f.launch_time)
            ),
        )
        .target(
            format!("ceil({}/200) = {}", f.in_flight, f.expected()),
            (per_tick - f.expected() as f64).abs() < 0.05,
        ),
        None => Figure::missing(what),
    }
}
