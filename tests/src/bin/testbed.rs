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
}

#[derive(Subcommand)]
enum Cmd {
    /// Start everything and stay up until Ctrl-C.
    Up,
    /// Start everything, walk through create / restart / cancel / delete, then stop.
    Demo,
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    let job_duration = match cloudkit_shared::signals::parse_duration(&cli.job_duration) {
        Ok(d) => d,
        Err(e) => exit(2, &e.to_string()),
    };
    if !(0.0..1.0).contains(&cli.error_rate) {
        exit(2, "--error-rate must be at least 0 and below 1, e.g. 0.1");
    }
    let options = StackOptions {
        job_duration,
        error_rate: cli.error_rate,
        aap_url: cli.aap_url,
        aap_token_file: cli.aap_token_file,
        no_runner: cli.no_runner,
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
