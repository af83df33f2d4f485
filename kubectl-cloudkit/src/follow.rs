//! `--wait`: watch one instance until a verb's judge says its request is done or failed,
//! printing a line each time the judge's view of the progress changes.

use std::time::Duration;

use cloudkit_shared::ComputeInstance;
use futures::StreamExt;
use kube::runtime::{WatchStreamExt, watcher};

use crate::client::Instances;
use crate::error::Error;
use crate::output::Output;
use crate::render;

/// What a verb's judge concluded from one version of the instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Still going; the line says where things stand.
    Pending(String),
    Done(String),
    Failed(String),
}

/// Follows `name` (starting from `first`, the object the request was written to) until
/// `judge` decides, or `timeout` passes. `what` names the request in the timeout error.
pub async fn follow(
    instances: &Instances<'_>,
    name: &str,
    first: ComputeInstance,
    timeout: Duration,
    what: &str,
    out: &Output,
    mut judge: impl FnMut(&ComputeInstance) -> Verdict,
) -> Result<ComputeInstance, Error> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut last_line = String::new();
    let mut decide = |ci: &ComputeInstance, last_line: &mut String| -> Result<bool, Error> {
        match judge(ci) {
            Verdict::Pending(line) => {
                if line != *last_line {
                    out.note(&format!("  {line}"))?;
                    *last_line = line;
                }
                Ok(false)
            }
            Verdict::Done(line) => {
                out.note(&line)?;
                Ok(true)
            }
            Verdict::Failed(message) => Err(Error::Failed(message)),
        }
    };
    if decide(&first, &mut last_line)? {
        return Ok(first);
    }
    let op = instances.op("watch", None);
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut events = watcher(instances.api().clone(), config)
        .default_backoff()
        .boxed();
    loop {
        let event = match tokio::time::timeout_at(deadline, events.next()).await {
            Ok(Some(event)) => event,
            Ok(None) => return Err(Error::Failed(format!("the watch on {name:?} ended"))),
            Err(_) => {
                return Err(Error::Timeout {
                    after: render::human(i64::try_from(timeout.as_secs()).unwrap_or(i64::MAX)),
                    what: what.to_string(),
                    last: if last_line.is_empty() {
                        "nothing yet".into()
                    } else {
                        last_line
                    },
                });
            }
        };
        match event {
            Ok(watcher::Event::Apply(ci) | watcher::Event::InitApply(ci)) => {
                if decide(&ci, &mut last_line)? {
                    return Ok(ci);
                }
            }
            Ok(watcher::Event::Delete(_)) => {
                return Err(Error::Failed(format!(
                    "computeinstance {name:?} was deleted while waiting for {what}"
                )));
            }
            Ok(_) => {}
            Err(e) => {
                // Transient watch errors are retried with backoff; RBAC or a missing CRD is not.
                if let Some(e) = op.watch_error(e) {
                    return Err(e);
                }
            }
        }
    }
}

/// A signal a verb writes into spec, and how to report and follow it.
pub struct SignalRequest<'a> {
    pub name: &'a str,
    /// The spec field, e.g. `restartRequestedAt`.
    pub field: &'static str,
    pub request: k8s_openapi::jiff::Timestamp,
    /// Printed once the API server took the patch.
    pub announcement: String,
    /// The request as the timeout error names it, e.g. `the restart of computeinstance "vm-1"`.
    pub what: String,
    /// Waited on top of `--timeout` (a scheduled restart's time to come).
    pub not_before: Duration,
}

/// Writes `signal`, announces it, and with `--wait` follows it until `judge` decides;
/// then prints the object as `-o` asks.
pub async fn send_signal(
    instances: &Instances<'_>,
    signal: SignalRequest<'_>,
    wait: &crate::cli::WaitArgs,
    out: &Output,
    judge: impl FnMut(&ComputeInstance) -> Verdict,
) -> Result<(), Error> {
    let patched = instances
        .write_signal(signal.name, signal.field, signal.request)
        .await?;
    out.note(&signal.announcement)?;
    let done = if wait.wait {
        let timeout = signal.not_before + wait.timeout();
        follow(
            instances,
            signal.name,
            patched,
            timeout,
            &signal.what,
            out,
            judge,
        )
        .await?
    } else {
        patched
    };
    crate::print_object(&done, out)
}
