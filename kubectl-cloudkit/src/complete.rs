//! Shell completion.
//!
//! `kubectl cloudkit completion SHELL` prints a clap_complete script for the
//! `kubectl-cloudkit` binary. For `kubectl cloudkit <TAB>`, kubectl itself runs
//! `kubectl_complete-cloudkit WORD…` (the words after `cloudkit`, the last one being the
//! word under the cursor, possibly empty) and reads candidates, one per line, then an
//! optional `:<directive>` line (Cobra's protocol).

use std::io::Write;
use std::process::ExitCode;

use clap::CommandFactory;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ListParams};

use crate::cli::{Cli, CompletionArgs, GlobalArgs};
use crate::client::{Instances, connect};
use crate::error::Error;
use crate::output::Output;

/// Cobra's ShellCompDirectiveNoFileComp: offer no file names as a fallback.
const NO_FILE_COMPLETION: &str = ":4";

/// Verbs whose positional arguments are instance names (`stats` takes several).
const NAME_VERBS: &[&str] = &[
    "restart",
    "jobs",
    "cancel",
    "provision",
    "describe",
    "logs",
    "stats",
];

pub fn script(args: &CompletionArgs, out: &Output) -> Result<(), Error> {
    let mut buffer = Vec::new();
    clap_complete::generate(
        args.shell,
        &mut Cli::command(),
        "kubectl-cloudkit",
        &mut buffer,
    );
    out.data(&String::from_utf8_lossy(&buffer))
}

/// What the word under the cursor should become.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Want {
    Verbs,
    Flags { verb: Option<String> },
    Names,
    Namespaces,
    Contexts,
    Values(Vec<String>),
    Nothing,
}

/// The request read from the words typed so far.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub want: Want,
    pub prefix: String,
    /// `--kubeconfig`, `--context`, `-n` already typed: the candidates come from there.
    pub global: GlobalArgs,
    /// Names already given (not offered again).
    pub given: Vec<String>,
}

/// Reads the words the way clap would, without failing on a half-typed line.
pub fn request(words: &[String]) -> Request {
    let cli = Cli::command();
    let (current, before) = match words.split_last() {
        Some((last, rest)) => (last.clone(), rest),
        None => (String::new(), &[][..]),
    };
    let mut global = GlobalArgs::default();
    let mut positionals: Vec<String> = Vec::new();
    let mut pending_flag: Option<String> = None;
    for word in before {
        if let Some(flag) = pending_flag.take() {
            set_global(&mut global, &flag, word);
            continue;
        }
        if let Some(flag) = word.strip_prefix('-').filter(|f| !f.is_empty()) {
            let (name, inline) = match flag.split_once('=') {
                Some((n, v)) => (n.trim_start_matches('-'), Some(v)),
                None => (flag.trim_start_matches('-'), None),
            };
            match inline {
                Some(value) => set_global(&mut global, name, value),
                None if takes_value(&cli, positionals.first(), name) => {
                    pending_flag = Some(name.to_string());
                }
                None => {}
            }
            continue;
        }
        positionals.push(word.clone());
    }
    let verb = positionals.first().cloned();
    let want = if let Some(flag) = pending_flag {
        match flag.as_str() {
            "n" | "namespace" => Want::Namespaces,
            "context" => Want::Contexts,
            "o" | "output" => Want::Values(values(&cli, None, "output")),
            "color" => Want::Values(values(&cli, None, "color")),
            _ => Want::Nothing,
        }
    } else if current.starts_with('-') {
        Want::Flags { verb: verb.clone() }
    } else {
        match verb.as_deref() {
            None => Want::Verbs,
            Some("completion") if positionals.len() == 1 => {
                Want::Values(values(&cli, Some("completion"), "shell"))
            }
            Some("stats") => Want::Names,
            Some(v) if NAME_VERBS.contains(&v) && positionals.len() == 1 => Want::Names,
            _ => Want::Nothing,
        }
    };
    Request {
        want,
        prefix: current,
        global,
        given: positionals.into_iter().skip(1).collect(),
    }
}

fn set_global(global: &mut GlobalArgs, flag: &str, value: &str) {
    match flag {
        "n" | "namespace" => global.namespace = Some(value.to_string()),
        "context" => global.context = Some(value.to_string()),
        "kubeconfig" => global.kubeconfig = Some(value.into()),
        _ => {}
    }
}

/// Whether `-x` / `--name` takes a value (so the next word is not a positional).
fn takes_value(cli: &clap::Command, verb: Option<&String>, name: &str) -> bool {
    let sub = verb.and_then(|v| cli.find_subcommand(v));
    cli.get_arguments()
        .chain(sub.into_iter().flat_map(|s| s.get_arguments()))
        .any(|a| {
            let matches = a.get_long() == Some(name)
                || (name.chars().count() == 1 && a.get_short() == name.chars().next());
            matches && a.get_action().takes_values()
        })
}

fn values(cli: &clap::Command, verb: Option<&str>, id: &str) -> Vec<String> {
    let command = verb.and_then(|v| cli.find_subcommand(v)).unwrap_or(cli);
    command
        .get_arguments()
        .find(|a| a.get_id() == id)
        .map(|a| {
            a.get_possible_values()
                .iter()
                .map(|v| v.get_name().to_string())
                .collect()
        })
        .unwrap_or_default()
}

fn verbs(cli: &clap::Command) -> Vec<String> {
    cli.get_subcommands()
        .map(|s| s.get_name().to_string())
        .filter(|n| n != "help")
        .collect()
}

fn flags(cli: &clap::Command, verb: Option<&str>) -> Vec<String> {
    let sub = verb.and_then(|v| cli.find_subcommand(v));
    let mut flags: Vec<String> = cli
        .get_arguments()
        .chain(sub.into_iter().flat_map(|s| s.get_arguments()))
        .filter_map(|a| a.get_long().map(|l| format!("--{l}")))
        .chain(["--help".to_string()])
        .collect();
    flags.sort();
    flags.dedup();
    flags
}

/// Candidates for `words`, one per line, then the directive. Never fails: a completion
/// that cannot reach the cluster offers nothing rather than an error in the prompt.
pub async fn candidates(words: &[String]) -> String {
    let cli = Cli::command();
    let req = request(words);
    let options: Vec<String> = match &req.want {
        Want::Verbs => verbs(&cli),
        Want::Flags { verb } => flags(&cli, verb.as_deref()),
        Want::Values(values) => values.clone(),
        Want::Names => instance_names(&req.global)
            .await
            .into_iter()
            .filter(|n| !req.given.contains(n))
            .collect(),
        Want::Namespaces => namespaces(&req.global).await,
        Want::Contexts => contexts(&req.global),
        Want::Nothing => Vec::new(),
    };
    let mut text = String::new();
    for option in options.iter().filter(|o| o.starts_with(&req.prefix)) {
        text.push_str(option);
        text.push('\n');
    }
    text.push_str(NO_FILE_COMPLETION);
    text.push('\n');
    text
}

async fn instance_names(global: &GlobalArgs) -> Vec<String> {
    let Ok(target) = connect(global).await else {
        return Vec::new();
    };
    Instances::namespaced(&target)
        .list(None)
        .await
        .map(|items| {
            items
                .into_iter()
                .filter_map(|ci| ci.metadata.name)
                .collect()
        })
        .unwrap_or_default()
}

async fn namespaces(global: &GlobalArgs) -> Vec<String> {
    let Ok(target) = connect(global).await else {
        return Vec::new();
    };
    let api: Api<Namespace> = Api::all(target.client);
    api.list_metadata(&ListParams::default())
        .await
        .map(|list| {
            list.items
                .into_iter()
                .filter_map(|n| n.metadata.name)
                .collect()
        })
        .unwrap_or_default()
}

fn contexts(global: &GlobalArgs) -> Vec<String> {
    let kubeconfig = match &global.kubeconfig {
        Some(path) => kube::config::Kubeconfig::read_from(path),
        None => kube::config::Kubeconfig::read(),
    };
    kubeconfig
        .map(|k| k.contexts.into_iter().map(|c| c.name).collect())
        .unwrap_or_default()
}

/// `main` of `kubectl_complete-cloudkit`.
pub async fn main(words: Vec<String>) -> ExitCode {
    let text = candidates(&words).await;
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(text.as_bytes());
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(words: &[&str]) -> Request {
        request(&words.iter().map(|w| w.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn first_word_is_a_verb() {
        assert_eq!(req(&[""]).want, Want::Verbs);
        assert_eq!(req(&["re"]).prefix, "re");
        assert_eq!(req(&["-n", "ns", ""]).want, Want::Verbs);
    }

    #[test]
    fn names_after_verbs_that_take_one() {
        let r = req(&["jobs", "vm"]);
        assert_eq!((r.want, r.prefix.as_str()), (Want::Names, "vm"));
        assert_eq!(req(&["jobs", "vm-1", ""]).want, Want::Nothing);
        assert_eq!(req(&["list", ""]).want, Want::Nothing);
        let r = req(&["stats", "a", "b", ""]);
        assert_eq!(
            (r.want, r.given),
            (Want::Names, vec!["a".into(), "b".into()])
        );
    }

    #[test]
    fn flags_values_are_skipped_and_remembered() {
        let r = req(&["restart", "--at", "2026-11-22T10:00:00Z", ""]);
        assert_eq!(r.want, Want::Names);
        let r = req(&["-n", "team-a", "--context=prod", "describe", ""]);
        assert_eq!(r.want, Want::Names);
        assert_eq!(r.global.namespace.as_deref(), Some("team-a"));
        assert_eq!(r.global.context.as_deref(), Some("prod"));
        // A boolean flag does not swallow the name.
        assert_eq!(req(&["restart", "--wait", ""]).want, Want::Names);
    }

    #[test]
    fn flag_values() {
        assert_eq!(req(&["jobs", "-n", ""]).want, Want::Namespaces);
        assert_eq!(req(&["jobs", "--context", "p"]).want, Want::Contexts);
        assert_eq!(
            req(&["list", "-o", ""]).want,
            Want::Values(vec![
                "table".into(),
                "wide".into(),
                "json".into(),
                "yaml".into()
            ])
        );
        assert!(
            matches!(req(&["completion", ""]).want, Want::Values(v) if v.contains(&"bash".to_string()))
        );
    }

    #[tokio::test]
    async fn candidates_are_filtered_and_end_with_the_directive() {
        let words: Vec<String> = vec!["re".into()];
        assert_eq!(candidates(&words).await, "restart\n:4\n");
        let words: Vec<String> = vec!["restart".into(), "--w".into()];
        assert_eq!(candidates(&words).await, "--wait\n:4\n");
        let words: Vec<String> = vec!["list".into(), "-o".into(), "w".into()];
        assert_eq!(candidates(&words).await, "wide\n:4\n");
    }
}
