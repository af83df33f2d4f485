//! `testbed`: the local cloudkit playground (`up`) and the narrated end-to-end demo (`demo`).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};
use cloudkit_testbed::stack::{Progress, Stack, StackOptions};

#[derive(Parser)]
#[command(
    name = "testbed",
    about = "cloudkit's local test bed: a real API server, simulated AAP and KubeVirt, the real runner"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
    /// Per-phase duration of simulated AAP jobs, e.g. 2s.
    #[arg(long, global = true, default_value = "2s")]
    job_duration: String,
    /// Fraction of AAP launch / poll requests answered with a 5xx (fault injection).
    #[arg(long, global = true, default_value_t = 0.0)]
    error_rate: f64,
    /// Use a real AAP (controller API prefix) instead of the simulator.
    #[arg(long, global = true)]
    aap_url: Option<String>,
    /// File with the token for --aap-url.
    #[arg(long, global = true)]
    aap_token_file: Option<PathBuf>,
    /// Start everything but the runner (run your own build against the bed).
    #[arg(long, global = true)]
    no_runner: bool,
    /// Provision through real Event-Driven Ansible: ansible-rulebook running
    /// ansible/rulebooks/cloudkit-webhook.yml (the first run installs Ansible from PyPI).
    #[arg(long, global = true)]
    eda: bool,
}

#[derive(Subcommand)]
enum Cmd {
    /// Start everything and stay up until Ctrl-C.
    Up,
    /// Start everything, walk through create / restart / cancel / delete, then stop.
    Demo,
    /// Measure restart latency, settle time, memory, CPU, AAP polling and the plugin on a
    /// control plane of its own; print the table and write it to BENCHMARKS.md.
    Bench {
        /// Small sizes (a minute or two); written to target/BENCHMARKS-quick.md by default.
        #[arg(long)]
        quick: bool,
        /// Only these populations, e.g. `--sizes 1000` (restarts timed at each); written to
        /// target/BENCHMARKS-custom.md by default. With CLOUDKIT_BENCH_RUNNER_ENV (KEY=VALUE
        /// pairs for every runner started, `{n}` = its number) this is how to profile the runner.
        #[arg(long, value_delimiter = ',', num_args = 1..)]
        sizes: Vec<usize>,
        /// Where to write the table (default: BENCHMARKS.md at the repository root).
        #[arg(long)]
        output: Option<PathBuf>,
        /// Only one measurement: `burst` (N instances created at once: launch rate and
        /// peak AAP requests in flight; written to target/BENCHMARKS-burst.md by default)
        /// or `scale` (the sizes alone: creation, settle, memory, CPU, restarts, list -A).
        #[arg(long, value_parser = ["burst", "scale"])]
        only: Option<String>,
        /// Measure the debug build (no release build needed; timings are not comparable
        /// with release figures, counts such as the burst's peak concurrency are).
        #[arg(long)]
        debug: bool,
    },
    /// The chaos scenario at ten times its CI size, plus an etcd restart, on a control
    /// plane of its own: runner SIGKILLs, AAP faults, API server and etcd restarts. Prints
    /// duplicates, overlaps, orphans and stuck instances (all must be 0), the longest
    /// waits and the runner's peak memory; exits 1 if any count is not 0.
    Soak {
        /// Instances (the CI chaos test runs 12).
        #[arg(long, default_value_t = 120, value_parser = clap::value_parser!(u64).range(1..))]
        instances: u64,
        /// Seed of the random schedule; the same seed replays the same workload and faults.
        #[arg(long, default_value_t = 0x00c0_ffee)]
        seed: u64,
    },
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    if let Cmd::Bench {
        quick,
        sizes,
        output,
        only,
        debug,
    } = &cli.command
    {
        use cloudkit_testbed::bench::Only;
        let only = match only.as_deref() {
            Some("burst") => Some(Only::Burst),
            Some("scale") => Some(Only::Scale),
            _ => None,
        };
        std::process::exit(bench(*quick, sizes, output.clone(), only, *debug).await);
    }
    if let Cmd::Soak { instances, seed } = &cli.command {
        std::process::exit(soak(*instances as usize, *seed).await);
    }
    let job_duration = match cloudkit_shared::signals::parse_duration(&cli.job_duration) {
        Ok(d) => d,
        Err(e) => exit(2, &e.to_string()),
    };
    if !(0.0..1.0).contains(&cli.error_rate) {
        exit(2, "--error-rate must be at least 0 and below 1, e.g. 0.1");
    }
    if cli.eda && !matches!(cli.command, Cmd::Up) {
        exit(
            2,
            "--eda works with `up` only: the demo cancels jobs, which EDA cannot",
        );
    }
    let options = StackOptions {
        job_duration,
        error_rate: cli.error_rate,
        aap_url: cli.aap_url,
        aap_token_file: cli.aap_token_file,
        no_runner: cli.no_runner,
        eda: cli.eda,
        ..StackOptions::default()
    };
    let progress = Progress::new();
    let stack = match Stack::up(options, &progress).await {
        Ok(s) => s,
        Err(e) => exit(1, &format!("{e:#}")),
    };
    let code = match cli.command {
        Cmd::Up => {
            println!(
                "\ncloudkit test bed is up. In another shell:\n\n{}",
                stack.instructions()
            );
            println!("Ctrl-C stops everything.");
            wait_for_stop().await;
            0
        }
        Cmd::Bench { .. } | Cmd::Soak { .. } => {
            unreachable!("dispatched before the stack starts")
        }
        Cmd::Demo => {
            if stack.runner.is_none() {
                exit(2, "demo needs the runner: drop --no-runner");
            }
            match cloudkit_testbed::demo::run(&stack, &progress).await {
                Ok(true) => 0,
                Ok(false) => 1,
                Err(e) => {
                    eprintln!("testbed: demo failed: {e:#}");
                    1
                }
            }
        }
    };
    if code != 0
        && let Some(r) = &stack.runner
    {
        eprintln!("runner log: {}", r.log_path().display());
        let _ = std::fs::copy(
            r.log_path(),
            std::env::temp_dir().join("cloudkit-testbed-runner.log"),
        );
    }
    stack.down(&progress).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    std::process::exit(code);
}

/// `testbed bench`: returns the exit code (1 when a figure could not be measured).
async fn bench(
    quick: bool,
    sizes: &[usize],
    output: Option<PathBuf>,
    only: Option<cloudkit_testbed::bench::Only>,
    debug: bool,
) -> i32 {
    use cloudkit_testbed::bench::{self, BenchOptions, runner};
    let mut options = if quick {
        BenchOptions::quick()
    } else {
        BenchOptions::full()
    };
    if !sizes.is_empty() {
        if sizes.contains(&0) || !sizes.is_sorted_by(|a, b| a < b) {
            exit(
                2,
                "--sizes must be ascending populations above 0, e.g. --sizes 100,1000",
            );
        }
        options.sizes = sizes.to_vec();
        options.restart_at = sizes.to_vec();
        // Sizes asked for by name are measured however long their creation takes.
        options.budget = None;
        options.command = format!("{} --sizes {}", options.command, join(sizes));
    }
    if debug {
        options.profile = cloudkit_testbed::bench::binaries::Profile::Debug;
        options.command = format!("{} --debug", options.command.replace("--release ", ""));
    }
    match only {
        Some(bench::Only::Burst) => options.command = format!("{} --only burst", options.command),
        Some(bench::Only::Scale) => options.command = format!("{} --only scale", options.command),
        None => {}
    }
    options.only = only;
    if let Ok(raw) = std::env::var(runner::EXTRA_ENV) {
        options.runner_env = runner::parse_extra_env(&raw).unwrap_or_else(|e| exit(2, &e));
    }
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let output = output.unwrap_or_else(|| {
        let target = cloudkit_testbed::runner_process::target_dir();
        if only == Some(bench::Only::Burst) {
            target.join("BENCHMARKS-burst.md")
        } else if only == Some(bench::Only::Scale) {
            target.join("BENCHMARKS-scale.md")
        } else if !sizes.is_empty() {
            target.join("BENCHMARKS-custom.md")
        } else if quick {
            target.join("BENCHMARKS-quick.md")
        } else {
            root.join("BENCHMARKS.md")
        }
    });
    let progress = Progress::new();
    progress.say("starting kube-apiserver and etcd for the benchmarks");
    let cp = match cloudkit_testbed::control_plane::ControlPlane::start().await {
        Ok(cp) => cp,
        Err(e) => exit(1, &format!("{e:#}")),
    };
    let report = match bench::run(&cp, &options, &progress).await {
        Ok(r) => r,
        Err(e) => exit(1, &format!("bench failed: {e:#}")),
    };
    drop(cp);
    println!("{}", report.render());
    match report.write(&output) {
        Ok(()) => progress.say(format!("written to {}", output.display())),
        Err(e) => exit(1, &format!("writing {}: {e}", output.display())),
    }
    let missed = report.missed();
    if !missed.is_empty() {
        progress.say(format!("targets missed: {}", missed.join("; ")));
    }
    let missing = report.missing();
    if missing.is_empty() {
        0
    } else {
        eprintln!("testbed: not measured: {}", missing.join(", "));
        1
    }
}

/// `testbed soak`: returns the exit code (1 when the run did not converge cleanly).
async fn soak(instances: usize, seed: u64) -> i32 {
    use cloudkit_testbed::chaos::{self, Scenario};
    let progress = Progress::new();
    progress.say(format!(
        "soak: {instances} instances, seed {seed:#x}, on a control plane of its own (about 10 min)"
    ));
    let report = match chaos::run(Scenario::soak(instances, seed)).await {
        Ok(r) => r,
        Err(e) => exit(1, &format!("soak failed: {e:#}")),
    };
    println!("{report}");
    let problems = report.problems();
    if problems.is_empty() {
        progress.say("soak: converged, every count 0");
        0
    } else {
        eprintln!("testbed: soak: {}", problems.join("; "));
        1
    }
}

fn exit(code: i32, message: &str) -> ! {
    eprintln!("testbed: {message}");
    std::process::exit(code);
}

async fn wait_for_stop() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
    }
}

fn join(sizes: &[usize]) -> String {
    sizes
        .iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join(",")
}
