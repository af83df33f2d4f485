//! Command line: what a kubectl user types by habit, parsed with clap.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use cloudkit_shared::signals::{TimeError, parse_duration, parse_duration_secs, parse_timestamp};
use k8s_openapi::jiff::Timestamp;

/// Restart, inspect and cancel cloudkit ComputeInstances and their AAP jobs.
#[derive(Parser, Debug)]
#[command(
    name = "kubectl cloudkit",
    bin_name = "kubectl cloudkit",
    version,
    about,
    after_help = "The plugin talks to the Kubernetes API server only: the cloudkit runner does the \
                  work and records it in each instance's status.",
    propagate_version = true
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Flags every verb accepts, before or after the verb, like kubectl's.
#[derive(Args, Debug, Clone, Default, PartialEq, Eq)]
#[command(next_help_heading = "Global options")]
pub struct GlobalArgs {
    /// Path to the kubeconfig file (default: $KUBECONFIG, which may list several, or ~/.kube/config)
    #[arg(long, global = true, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,

    /// The kubeconfig context to use (default: its current-context)
    #[arg(long, global = true, value_name = "NAME")]
    pub context: Option<String>,

    /// Namespace (default: the context's namespace, else "default")
    #[arg(short = 'n', long, global = true, value_name = "NAMESPACE")]
    pub namespace: Option<String>,

    /// Output format
    #[arg(short = 'o', long, global = true, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,

    /// When to colour the output (auto: only on a terminal and without NO_COLOR)
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto, value_name = "WHEN")]
    pub color: ColorChoice,
}

#[derive(ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OutputFormat {
    #[default]
    Table,
    Wide,
    Json,
    Yaml,
}

impl OutputFormat {
    /// json and yaml carry the objects themselves.
    pub fn is_data(self) -> bool {
        matches!(self, Self::Json | Self::Yaml)
    }
}

#[derive(ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ColorChoice {
    #[default]
    Auto,
    Always,
    Never,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Restart the VM of an instance now or at a given time (KubeVirt recreates its VMI)
    Restart(RestartArgs),
    /// Show the job history of an instance, newest first
    Jobs(JobsArgs),
    /// Cancel the active provision job of an instance, keeping the instance
    Cancel(CancelArgs),
    /// Provision an instance again (after a cancel or a failure)
    Provision(ProvisionArgs),
    /// Print the AAP output of an instance's newest job (or --job ID); --follow streams it
    Logs(LogsArgs),
    /// Show phase, conditions, VM, config versions, recent jobs and pending requests
    Describe(NameArg),
    /// List instances with their phase and last job
    List(ListArgs),
    /// Provision and deprovision durations per provider (p50, p95, max), from job histories
    Stats(StatsArgs),
    /// Print a shell completion script for kubectl-cloudkit
    Completion(CompletionArgs),
    /// Print the plugin's version
    Version,
}

#[derive(Args, Debug)]
pub struct NameArg {
    /// Name of the ComputeInstance
    pub name: String,
}

#[derive(Args, Debug)]
pub struct RestartArgs {
    /// Name of the ComputeInstance
    pub name: String,
    /// Restart at this time (RFC 3339, e.g. 2026-11-22T22:00:00Z)
    #[arg(long, value_name = "TIME", value_parser = parse_at, conflicts_with = "in_")]
    pub at: Option<Timestamp>,
    /// Restart after this long (e.g. 30s, 10m, 2h30m)
    #[arg(long = "in", id = "in_", value_name = "DURATION", value_parser = parse_in)]
    pub in_: Option<u64>,
    #[command(flatten)]
    pub wait: WaitArgs,
}

#[derive(Args, Debug)]
pub struct WaitArgs {
    /// Follow the request until it is done or failed; exit non-zero if it failed
    #[arg(long)]
    pub wait: bool,
    /// With --wait: give up after this long (counted from the requested time) [default: 10m]
    #[arg(long, value_name = "DURATION", value_parser = parse_timeout, requires = "wait")]
    pub timeout: Option<Duration>,
}

impl WaitArgs {
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

    pub fn timeout(&self) -> Duration {
        self.timeout.unwrap_or(Self::DEFAULT_TIMEOUT)
    }
}

#[derive(Args, Debug)]
pub struct JobsArgs {
    /// Name of the ComputeInstance
    pub name: String,
    /// Redraw the history whenever it changes, until interrupted
    #[arg(short = 'w', long)]
    pub watch: bool,
}

#[derive(Args, Debug)]
pub struct CancelArgs {
    /// Name of the ComputeInstance
    pub name: String,
    #[command(flatten)]
    pub wait: WaitArgs,
}

#[derive(Args, Debug)]
pub struct LogsArgs {
    /// Name of the ComputeInstance
    pub name: String,
    /// One of the instance's AAP job ids (`kubectl cloudkit jobs NAME`); default: the newest
    #[arg(long, value_name = "ID")]
    pub job: Option<String>,
    /// Only the last N lines
    #[arg(long, value_name = "N")]
    pub tail: Option<u64>,
    /// Keep printing new output until the job ends (at most 30 minutes)
    #[arg(short = 'f', long)]
    pub follow: bool,
}

#[derive(Args, Debug)]
pub struct ProvisionArgs {
    /// Name of the ComputeInstance
    pub name: String,
    #[command(flatten)]
    pub wait: WaitArgs,
}

#[derive(Args, Debug)]
pub struct ListArgs {
    /// List instances in all namespaces
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    /// Label selector (e.g. -l team=a,tier!=prod)
    #[arg(short = 'l', long, value_name = "SELECTOR")]
    pub selector: Option<String>,
}

#[derive(Args, Debug)]
pub struct StatsArgs {
    /// Instances to include (default: all in the namespace)
    #[arg(conflicts_with = "all_namespaces")]
    pub names: Vec<String>,
    /// Include instances in all namespaces
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    /// Label selector for the instances
    #[arg(short = 'l', long, value_name = "SELECTOR", conflicts_with = "names")]
    pub selector: Option<String>,
}

#[derive(Args, Debug)]
pub struct CompletionArgs {
    /// The shell to generate the script for
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

fn parse_at(input: &str) -> Result<Timestamp, TimeError> {
    parse_timestamp(input)
}

fn parse_in(input: &str) -> Result<u64, TimeError> {
    parse_duration_secs(input)
}

fn parse_timeout(input: &str) -> Result<Duration, TimeError> {
    parse_duration(input)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("kubectl-cloudkit").chain(args.iter().copied()))
    }

    #[test]
    fn global_flags_go_after_the_verb() {
        let cli = parse(&["jobs", "vm-1", "-n", "ns", "-o", "wide", "--context", "c"]).unwrap();
        assert_eq!(cli.global.namespace.as_deref(), Some("ns"));
        assert_eq!(cli.global.context.as_deref(), Some("c"));
        assert_eq!(cli.global.output, OutputFormat::Wide);
        assert!(
            matches!(cli.command, Command::Jobs(JobsArgs { ref name, watch: false }) if name == "vm-1")
        );
    }

    #[test]
    fn restart_times_use_the_shared_parsers() {
        let cli = parse(&["restart", "vm", "--in", "2h30m"]).unwrap();
        let Command::Restart(r) = cli.command else {
            panic!()
        };
        assert_eq!(r.in_, Some(9000));
        let cli = parse(&["restart", "vm", "--at", "2026-11-22T10:00:00Z", "--wait"]).unwrap();
        let Command::Restart(r) = cli.command else {
            panic!()
        };
        assert_eq!(r.at.unwrap().to_string(), "2026-11-22T10:00:00Z");
        assert!(r.wait.wait);
        assert_eq!(r.wait.timeout(), WaitArgs::DEFAULT_TIMEOUT);
    }

    #[test]
    fn bad_times_are_usage_errors() {
        for args in [
            &["restart", "vm", "--at", "tomorrow"][..],
            &["restart", "vm", "--in", "soon"],
            &["restart", "vm", "--in", "0s"],
            &[
                "restart",
                "vm",
                "--at",
                "2026-11-22T10:00:00Z",
                "--in",
                "1m",
            ],
            &["restart", "vm", "--timeout", "1m"],
        ] {
            let e = parse(args).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{args:?}");
        }
        let e = parse(&["restart", "vm", "--at", "tomorrow"]).unwrap_err();
        assert!(e.to_string().contains("use RFC 3339"), "{e}");
    }

    #[test]
    fn help_reads_kubectl_cloudkit() {
        let help = Cli::command().render_help().to_string();
        assert!(help.contains("Usage: kubectl cloudkit"), "{help}");
    }

    #[test]
    fn stats_names_and_all_namespaces_conflict() {
        assert!(parse(&["stats", "a", "-A"]).is_err());
        let cli = parse(&["stats", "a", "b"]).unwrap();
        assert!(
            matches!(cli.command, Command::Stats(StatsArgs { ref names, .. }) if names.len() == 2)
        );
    }
}
