//! `kubectl cloudkit jobs NAME [--watch]`: the job history, newest first.

use cloudkit_shared::{ComputeInstance, JobEntry};
use futures::StreamExt;
use k8s_openapi::jiff::Timestamp;
use kube::runtime::{WatchStreamExt, watcher};

use crate::cli::{JobsArgs, OutputFormat};
use crate::client::{Instances, Target};
use crate::error::Error;
use crate::output::Output;
use crate::render::{self, Cell, Palette};

/// Table messages are cut here; `-o wide` shows them whole.
const MESSAGE_WIDTH: usize = 80;

pub async fn run(target: &Target, args: &JobsArgs, out: &Output) -> Result<(), Error> {
    let instances = Instances::namespaced(target);
    let ci = instances.get(&args.name).await?;
    let mut last = show(&ci, out, None)?;
    if !args.watch {
        return Ok(());
    }
    let op = instances.op("watch", Some(&args.name));
    let config = watcher::Config::default().fields(&format!("metadata.name={}", args.name));
    let mut events = watcher(instances.api().clone(), config)
        .default_backoff()
        .boxed();
    while let Some(event) = events.next().await {
        match event {
            Ok(watcher::Event::Apply(ci) | watcher::Event::InitApply(ci)) => {
                last = show(&ci, out, Some(&last))?;
            }
            Ok(watcher::Event::Delete(_)) => {
                out.note(&format!(
                    "computeinstance {:?} was deleted; still watching",
                    args.name
                ))?;
                last.clear();
            }
            Ok(_) => {}
            Err(e) => {
                if let Some(e) = op.watch_error(e) {
                    return Err(e);
                }
            }
        }
    }
    Ok(())
}

/// Prints the history unless it reads the same as `previous`; returns what it printed.
fn show(ci: &ComputeInstance, out: &Output, previous: Option<&str>) -> Result<String, Error> {
    let jobs = jobs_of(ci);
    let text = match out.format {
        OutputFormat::Json => render::json(&newest_first(jobs))?,
        OutputFormat::Yaml => render::yaml(&newest_first(jobs))?,
        format => table(
            jobs,
            Timestamp::now(),
            format == OutputFormat::Wide,
            out.palette,
        ),
    };
    if previous == Some(text.as_str()) {
        return Ok(text);
    }
    if previous.is_some() {
        if out.terminal && !out.format.is_data() {
            // Redraw in place, like `watch`.
            out.data("\x1b[H\x1b[2J")?;
        } else if !out.format.is_data() {
            out.data("\n")?;
        }
    }
    if jobs.is_empty() && !out.format.is_data() {
        eprintln!(
            "No jobs recorded yet for computeinstance {:?} in namespace {:?}.",
            ci.metadata.name.as_deref().unwrap_or_default(),
            ci.metadata.namespace.as_deref().unwrap_or_default()
        );
    } else {
        out.data(&text)?;
    }
    Ok(text)
}

pub fn jobs_of(ci: &ComputeInstance) -> &[JobEntry] {
    ci.status.as_ref().map_or(&[], |s| s.jobs.as_slice())
}

/// Newest first by creation time; among equal times, the later entry first.
pub fn newest_first(jobs: &[JobEntry]) -> Vec<&JobEntry> {
    let mut sorted: Vec<&JobEntry> = jobs.iter().rev().collect();
    sorted.sort_by_key(|j| std::cmp::Reverse(j.timestamp.0));
    sorted
}

/// The provider's id, `(launching)` while the launch is in flight, `-` if it never launched.
pub fn id_cell(job: &JobEntry) -> String {
    match &job.job_id {
        Some(id) => id.clone(),
        None if job.state.is_active() => "(launching)".into(),
        None => "-".into(),
    }
}

/// Finished minus started (or created, if it never started); running time for active jobs.
pub fn duration_secs(job: &JobEntry, now: Timestamp) -> Option<i64> {
    let start = job.start_time.as_ref().unwrap_or(&job.timestamp).0;
    match &job.finish_time {
        Some(finish) => Some(finish.0.duration_since(start).as_secs()),
        None if job.state.is_active() && job.start_time.is_some() => {
            Some(now.duration_since(start).as_secs())
        }
        None => None,
    }
}

/// The job table (`wide` adds provider, reason and the three timestamps).
pub fn table(jobs: &[JobEntry], now: Timestamp, wide: bool, palette: Palette) -> String {
    let rows: Vec<Vec<Cell>> = newest_first(jobs)
        .into_iter()
        .map(|job| row(job, now, wide))
        .collect();
    let header: &[&str] = if wide {
        &[
            "ID",
            "TYPE",
            "STATE",
            "STARTED",
            "DURATION",
            "PROVIDER",
            "REASON",
            "CREATED AT",
            "STARTED AT",
            "FINISHED AT",
            "MESSAGE",
        ]
    } else {
        &["ID", "TYPE", "STATE", "STARTED", "DURATION", "MESSAGE"]
    };
    render::table(header, &rows, palette)
}

fn row(job: &JobEntry, now: Timestamp, wide: bool) -> Vec<Cell> {
    let dash = || "-".to_string();
    let started = job
        .start_time
        .as_ref()
        .map_or_else(dash, |t| render::age(now, t.0));
    let duration = duration_secs(job, now).map_or_else(dash, render::duration);
    let mut cells = vec![
        Cell::from(id_cell(job)),
        Cell::from(job.job_type.to_string()),
        Cell::painted(job.state.to_string(), render::state_paint(job.state)),
        Cell::from(started),
        Cell::from(duration),
    ];
    if wide {
        let at = |t: Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>| {
            t.map_or_else(dash, |t| render::timestamp(t.0))
        };
        cells.extend([
            Cell::from(job.provider.to_string()),
            Cell::from(job.reason.clone().unwrap_or_else(dash)),
            Cell::from(render::timestamp(job.timestamp.0)),
            Cell::from(at(job.start_time.as_ref())),
            Cell::from(at(job.finish_time.as_ref())),
            Cell::from(wide_message(job)),
        ]);
    } else {
        cells.push(Cell::from(render::truncate(&job.message, MESSAGE_WIDTH)));
    }
    cells
}

/// The message, then where the job failed and its provider page, when known.
fn wide_message(job: &JobEntry) -> String {
    let mut text = job.message.clone();
    if let Some(failure) = &job.failure {
        text.push_str(&format!("; failed at {}", failure.summary()));
    }
    if let Some(url) = &job.url {
        text.push_str(&format!(" ({url})"));
    }
    text
}

/// One progress line about a job, for `--wait`.
pub fn progress_line(job: &JobEntry, palette: Palette) -> String {
    let state = palette.paint(&job.state.to_string(), render::state_paint(job.state));
    let id = match &job.job_id {
        Some(id) => format!(" {id}"),
        None => String::new(),
    };
    if job.message.is_empty() {
        format!("{} job{id}: {state}", job.job_type)
    } else {
        format!("{} job{id}: {state}: {}", job.job_type, job.message)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use cloudkit_shared::fixtures::{job, t};
    use cloudkit_shared::{JobProvider, JobState, JobType};

    /// A history that exercises every column: finished, failed, canceled, running, launching.
    pub fn history() -> Vec<JobEntry> {
        let mut provision = job(
            Some("101"),
            JobType::Provision,
            JobState::Succeeded,
            t("2026-11-22T10:00:00Z"),
        );
        provision.start_time = Some(t("2026-11-22T10:00:05Z"));
        provision.finish_time = Some(t("2026-11-22T10:04:17Z"));
        provision.message = "provision job 101 launched".into();
        provision.reason = Some(cloudkit_shared::reasons::JOB_SUCCEEDED.into());

        let mut failed = job(
            Some("102"),
            JobType::Provision,
            JobState::Failed,
            t("2026-11-22T10:10:00Z"),
        );
        failed.finish_time = Some(t("2026-11-22T10:10:30Z"));
        failed.message = "template not found".into();
        failed.reason = Some("TemplateNotFound".into());

        let mut canceled = job(
            Some("eda-webhook-3"),
            JobType::Provision,
            JobState::Canceled,
            t("2026-11-22T10:20:00Z"),
        );
        canceled.provider = JobProvider::Eda;
        canceled.start_time = Some(t("2026-11-22T10:20:01Z"));
        canceled.finish_time = Some(t("2026-11-22T10:21:01Z"));
        canceled.message = "canceled by request".into();

        let mut restart = job(
            Some("restart-1"),
            JobType::Restart,
            JobState::Running,
            t("2026-11-22T11:50:00Z"),
        );
        restart.provider = JobProvider::Kubevirt;
        restart.start_time = Some(t("2026-11-22T11:50:00Z"));
        restart.message = "deleted VMI abc; waiting for KubeVirt to start a new one".into();

        let mut launching = job(
            None,
            JobType::Deprovision,
            JobState::Pending,
            t("2026-11-22T11:59:00Z"),
        );
        launching.message = "deprovision requested; launching".into();
        vec![provision, failed, canceled, restart, launching]
    }

    fn now() -> Timestamp {
        "2026-11-22T12:00:00Z".parse().unwrap()
    }

    #[test]
    fn golden_table() {
        let golden = "\
ID              TYPE          STATE       STARTED   DURATION   MESSAGE
(launching)     deprovision   Pending     -         -          deprovision requested; launching
restart-1       restart       Running     10m       10m0s      deleted VMI abc; waiting for KubeVirt to start a new one
eda-webhook-3   provision     Canceled    99m       1m0s       canceled by request
102             provision     Failed      -         30s        template not found
101             provision     Succeeded   119m      4m12s      provision job 101 launched
";
        assert_eq!(table(&history(), now(), false, Palette::PLAIN), golden);
    }

    #[test]
    fn golden_wide() {
        let golden = "\
ID              TYPE          STATE       STARTED   DURATION   PROVIDER   REASON             CREATED AT             STARTED AT             FINISHED AT            MESSAGE
(launching)     deprovision   Pending     -         -          aap        -                  2026-11-22T11:59:00Z   -                      -                      deprovision requested; launching
restart-1       restart       Running     10m       10m0s      kubevirt   -                  2026-11-22T11:50:00Z   2026-11-22T11:50:00Z   -                      deleted VMI abc; waiting for KubeVirt to start a new one
eda-webhook-3   provision     Canceled    99m       1m0s       eda        -                  2026-11-22T10:20:00Z   2026-11-22T10:20:01Z   2026-11-22T10:21:01Z   canceled by request
102             provision     Failed      -         30s        aap        TemplateNotFound   2026-11-22T10:10:00Z   -                      2026-11-22T10:10:30Z   template not found
101             provision     Succeeded   119m      4m12s      aap        JobSucceeded       2026-11-22T10:00:00Z   2026-11-22T10:00:05Z   2026-11-22T10:04:17Z   provision job 101 launched
";
        assert_eq!(table(&history(), now(), true, Palette::PLAIN), golden);
    }

    #[test]
    fn states_are_coloured_only_with_colour() {
        let plain = table(&history(), now(), false, Palette::PLAIN);
        assert!(!plain.contains('\u{1b}'));
        let coloured = table(&history(), now(), false, Palette::COLOUR);
        assert!(
            coloured.contains("\u{1b}[32mSucceeded\u{1b}[39m"),
            "{coloured}"
        );
        assert!(coloured.contains("\u{1b}[31mFailed\u{1b}[39m"));
        assert!(coloured.contains("\u{1b}[33mCanceled\u{1b}[39m"));
        assert!(coloured.contains("\u{1b}[36mRunning\u{1b}[39m"));
        assert!(coloured.contains("\u{1b}[36mPending\u{1b}[39m"));
        // Columns line up the same with and without colour.
        let strip = coloured
            .replace("\u{1b}[32m", "")
            .replace("\u{1b}[31m", "")
            .replace("\u{1b}[33m", "")
            .replace("\u{1b}[36m", "")
            .replace("\u{1b}[39m", "");
        assert_eq!(strip, plain);
    }

    #[test]
    fn long_messages_are_cut_in_the_table_only() {
        let mut j = job(
            Some("1"),
            JobType::Provision,
            JobState::Failed,
            t("2026-11-22T11:00:00Z"),
        );
        j.message = "x".repeat(200);
        let narrow = table(std::slice::from_ref(&j), now(), false, Palette::PLAIN);
        assert!(narrow.contains(&format!("{}…", "x".repeat(79))));
        let wide = table(&[j], now(), true, Palette::PLAIN);
        assert!(wide.contains(&"x".repeat(200)));
    }

    #[test]
    fn json_and_yaml_round_trip_newest_first() {
        let jobs = history();
        let text = render::json(&newest_first(&jobs)).unwrap();
        let back: Vec<JobEntry> = serde_json::from_str(&text).unwrap();
        let mut expected = jobs.clone();
        expected.reverse();
        assert_eq!(back, expected);
        let text = render::yaml(&newest_first(&jobs)).unwrap();
        let back: Vec<JobEntry> = serde_saphyr::from_str(&text).unwrap();
        assert_eq!(back, expected);
    }

    #[test]
    fn ties_keep_the_later_entry_first() {
        let a = job(
            Some("a"),
            JobType::Provision,
            JobState::Failed,
            t("2026-11-22T11:00:00Z"),
        );
        let b = job(
            Some("b"),
            JobType::Restart,
            JobState::Failed,
            t("2026-11-22T11:00:00Z"),
        );
        let ids: Vec<_> = newest_first(&[a, b])
            .iter()
            .map(|j| j.job_id.clone().unwrap())
            .collect();
        assert_eq!(ids, ["b", "a"]);
    }

    #[test]
    fn progress_lines() {
        let h = history();
        assert_eq!(
            progress_line(&h[3], Palette::PLAIN),
            "restart job restart-1: Running: deleted VMI abc; waiting for KubeVirt to start a new one"
        );
        assert_eq!(
            progress_line(&h[4], Palette::PLAIN),
            "deprovision job: Pending: deprovision requested; launching"
        );
    }

    #[test]
    fn wide_shows_where_a_job_failed_and_its_page() {
        let mut j = job(
            Some("42"),
            JobType::Provision,
            JobState::Failed,
            t("2026-11-22T10:10:00Z"),
        );
        j.failure = Some(cloudkit_shared::JobFailure {
            play: "p".into(),
            task: "Create the VM".into(),
            host: "localhost".into(),
            message: "spec: Required value".into(),
        });
        j.url = Some("https://aap/execution/jobs/playbook/42/output".into());
        let wide = table(&[j.clone()], now(), true, Palette::PLAIN);
        assert!(
            wide.contains("failed at task \"Create the VM\" on localhost: spec: Required value"),
            "{wide}"
        );
        assert!(wide.contains("https://aap/execution/jobs/playbook/42/output"));
        assert!(!table(&[j], now(), false, Palette::PLAIN).contains("Create the VM"));
    }
}
