//! `kubectl cloudkit`: restart, inspect and cancel cloudkit `ComputeInstance`s from kubectl.
//!
//! The plugin talks to the API server only. It asks for actions by writing signal
//! timestamps into spec and reads what the runner did from status; the job logic it needs
//! comes from `cloudkit-shared`, so it never disagrees with the runner.

pub mod cancel;
pub mod cli;
pub mod client;
pub mod complete;
pub mod describe;
pub mod error;
pub mod follow;
pub mod jobs;
pub mod list;
pub mod logs;
pub mod output;
pub mod provision;
pub mod render;
pub mod restart;
pub mod stats;

use std::ffi::OsString;
use std::process::ExitCode;

use clap::Parser;
use cloudkit_shared::ComputeInstance;

use crate::cli::{Cli, Command, OutputFormat};
use crate::error::{Error, USAGE_EXIT};
use crate::output::Output;

/// Parses `args`, runs the verb, prints one `error: …` line on failure.
/// Exit codes: 0 success, 1 failure, 2 wrong usage.
pub async fn run(args: impl IntoIterator<Item = impl Into<OsString> + Clone>) -> ExitCode {
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    let cli = match Cli::try_parse_from(&args) {
        Ok(cli) => cli,
        Err(e) => return usage_error(&e, verb_of(&args)),
    };
    let out = Output::new(&cli.global);
    match dispatch(&cli, &out).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.is_broken_pipe() => ExitCode::FAILURE,
        Err(e) => {
            let palette = out.err_palette;
            eprintln!("{} {e}", palette.paint("error:", render::Paint::Red));
            ExitCode::from(e.exit_code())
        }
    }
}

/// The verb among the arguments, to point at its `--help`.
fn verb_of(args: &[OsString]) -> Option<String> {
    use clap::CommandFactory;
    let cli = Cli::command();
    args.iter()
        .skip(1)
        .filter_map(|a| a.to_str())
        .find(|a| cli.find_subcommand(a).is_some())
        .map(str::to_string)
}

async fn dispatch(cli: &Cli, out: &Output) -> Result<(), Error> {
    // Verbs that need no cluster first, so they work without a kubeconfig.
    match &cli.command {
        Command::Completion(args) => return complete::script(args, out),
        Command::Version => return version(out),
        _ => {}
    }
    let target = client::connect(&cli.global).await?;
    match &cli.command {
        Command::Restart(args) => restart::run(&target, args, out).await,
        Command::Jobs(args) => jobs::run(&target, args, out).await,
        Command::Cancel(args) => cancel::run(&target, args, out).await,
        Command::Provision(args) => provision::run(&target, args, out).await,
        Command::Describe(args) => describe::run(&target, args, out).await,
        Command::Logs(args) => logs::run(&target, args, out).await,
        Command::List(args) => list::run(&target, args, out).await,
        Command::Stats(args) => stats::run(&target, args, out).await,
        Command::Completion(_) | Command::Version => unreachable!("handled above"),
    }
}

fn version(out: &Output) -> Result<(), Error> {
    let version = env!("CARGO_PKG_VERSION");
    match out.format {
        OutputFormat::Json => out.data(&render::json(&serde_json::json!({ "version": version }))?),
        OutputFormat::Yaml => out.data(&render::yaml(&serde_json::json!({ "version": version }))?),
        _ => out.data(&format!("kubectl-cloudkit {version}\n")),
    }
}

/// Clap's usage errors in one line with where to read more; help and --version as clap prints them.
fn usage_error(e: &clap::Error, verb: Option<String>) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
        let _ = e.print();
        return ExitCode::SUCCESS;
    }
    if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
        let _ = e.print();
        return ExitCode::from(USAGE_EXIT);
    }
    eprintln!("{}", usage_line(&e.to_string(), verb.as_deref()));
    ExitCode::from(USAGE_EXIT)
}

/// clap's message (its first paragraph, joined) plus `see 'kubectl cloudkit VERB --help'`.
pub fn usage_line(rendered: &str, verb: Option<&str>) -> String {
    let message: Vec<&str> = rendered
        .lines()
        .take_while(|l| !l.trim().is_empty())
        .map(str::trim)
        .collect();
    let message = if message.is_empty() {
        "error: invalid arguments".to_string()
    } else {
        message.join(" ")
    };
    let command = match verb {
        Some(verb) => format!("kubectl cloudkit {verb}"),
        None => "kubectl cloudkit".to_string(),
    };
    format!("{message}; see '{command} --help'")
}

/// The object as kubectl would show it: without managedFields, which only add noise.
fn clean(ci: &ComputeInstance) -> ComputeInstance {
    let mut ci = ci.clone();
    ci.metadata.managed_fields = None;
    ci
}

/// For verbs whose table output is a message: `-o json|yaml` prints the object itself.
pub fn print_object(ci: &ComputeInstance, out: &Output) -> Result<(), Error> {
    match out.format {
        OutputFormat::Json => out.data(&render::json(&clean(ci))?),
        OutputFormat::Yaml => out.data(&render::yaml(&clean(ci))?),
        OutputFormat::Table | OutputFormat::Wide => Ok(()),
    }
}

/// A `v1` `List`, like `kubectl get -o json` of several objects.
pub fn list_document(items: &[ComputeInstance]) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "List",
        "metadata": { "resourceVersion": "" },
        "items": items.iter().map(clean).collect::<Vec<_>>(),
    })
}

pub fn print_list(items: &[ComputeInstance], out: &Output) -> Result<(), Error> {
    let document = list_document(items);
    match out.format {
        OutputFormat::Yaml => out.data(&render::yaml(&document)?),
        _ => out.data(&render::json(&document)?),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cloudkit_shared::{ComputeInstanceSpec, ComputeInstanceStatus, Phase};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry;

    #[test]
    fn usage_errors_are_one_line_with_the_verb() {
        let e = Cli::try_parse_from(["kubectl-cloudkit", "restart", "vm", "--at", "later"])
            .unwrap_err();
        let line = usage_line(&e.to_string(), Some("restart"));
        assert!(!line.contains('\n'));
        assert!(
            line.starts_with("error: invalid value 'later' for '--at <TIME>'"),
            "{line}"
        );
        assert!(
            line.ends_with("see 'kubectl cloudkit restart --help'"),
            "{line}"
        );
        let e = Cli::try_parse_from(["kubectl-cloudkit", "restart"]).unwrap_err();
        assert_eq!(
            usage_line(&e.to_string(), Some("restart")),
            "error: the following required arguments were not provided: <NAME>; see 'kubectl cloudkit restart --help'"
        );
        let e = Cli::try_parse_from(["kubectl-cloudkit", "bogus"]).unwrap_err();
        assert!(usage_line(&e.to_string(), None).ends_with("see 'kubectl cloudkit --help'"));
        assert_eq!(
            verb_of(&[
                "kubectl-cloudkit".into(),
                "-n".into(),
                "x".into(),
                "jobs".into()
            ]),
            Some("jobs".into())
        );
    }

    #[test]
    fn objects_round_trip_without_managed_fields() {
        let mut ci = ComputeInstance::new(
            "vm-1",
            ComputeInstanceSpec {
                template_id: "t".into(),
                template_parameters: Some(r#"{"cpu": 2, "note": "a: b\nc"}"#.into()),
                restart_requested_at: Some(cloudkit_shared::fixtures::t("2026-11-22T10:00:00Z")),
                ..Default::default()
            },
        );
        ci.metadata.namespace = Some("ns".into());
        ci.metadata.managed_fields = Some(vec![ManagedFieldsEntry::default()]);
        ci.status = Some(ComputeInstanceStatus {
            phase: Some(Phase::Running),
            jobs: crate::jobs::tests::history(),
            ..Default::default()
        });
        let expected = clean(&ci);
        assert!(expected.metadata.managed_fields.is_none());
        let json = render::json(&expected).unwrap();
        assert!(json.contains("\"kind\": \"ComputeInstance\""), "{json}");
        assert_eq!(
            serde_json::from_str::<ComputeInstance>(&json).unwrap(),
            expected
        );
        let yaml = render::yaml(&expected).unwrap();
        assert!(yaml.contains("kind: ComputeInstance"), "{yaml}");
        assert_eq!(
            serde_saphyr::from_str::<ComputeInstance>(&yaml).unwrap(),
            expected
        );
    }
}
