//! `kubectl cloudkit restart NAME [--at TIME | --in DURATION] [--wait]`: writes
//! `spec.restartRequestedAt`; the runner deletes the VMI and KubeVirt recreates it.

use cloudkit_shared::conditions as cond;
use cloudkit_shared::signals::{self, until, whole_seconds};
use cloudkit_shared::{ComputeInstance, JobEntry, JobState, JobType, reasons};
use k8s_openapi::jiff::{SignedDuration, Timestamp};

use crate::cli::RestartArgs;
use crate::client::{Instances, Target};
use crate::error::Error;
use crate::follow::{SignalRequest, Verdict, send_signal};
use crate::output::Output;
use crate::render::{self, Palette};

pub const FIELD: &str = "restartRequestedAt";

pub async fn run(target: &Target, args: &RestartArgs, out: &Output) -> Result<(), Error> {
    let instances = Instances::namespaced(target);
    let ci = instances.get(&args.name).await?;
    let now = Timestamp::now();
    let request = request_time(now, args.at, args.in_, last_request(&ci))?;
    let replaced = pending_request(&ci, now).filter(|p| *p != request);
    let signal = SignalRequest {
        name: &args.name,
        field: FIELD,
        request,
        announcement: announcement(&args.name, request, now, replaced),
        what: format!("the restart of computeinstance {:?}", args.name),
        // The timeout starts when the restart is due, not while it is merely scheduled.
        not_before: until(now, request),
    };
    send_signal(&instances, signal, &args.wait, out, |ci| {
        verdict(ci, &args.name, request, out.note_palette())
    })
    .await
}

/// The newest restart request the runner has seen: acknowledged or served by a job.
pub fn last_request(ci: &ComputeInstance) -> Option<Timestamp> {
    signals::restart_acknowledged(ci.status.as_ref())
}

/// A request in spec the runner has not acted on yet.
fn pending_request(ci: &ComputeInstance, now: Timestamp) -> Option<Timestamp> {
    let requested = ci.spec.restart_requested_at.as_ref().map(|t| t.0);
    match signals::signal(requested, last_request(ci), now) {
        signals::Signal::Scheduled(at) => Some(at),
        _ => None,
    }
}

/// The time to write: `--at`, now + `--in`, or now, in whole seconds. A request not later
/// than the last one would be ignored by the runner: "now" moves one second past it, an
/// explicit `--at` is refused.
pub fn request_time(
    now: Timestamp,
    at: Option<Timestamp>,
    in_secs: Option<u64>,
    last: Option<Timestamp>,
) -> Result<Timestamp, Error> {
    let wanted = match (at, in_secs) {
        (Some(at), _) => at,
        (None, Some(secs)) => now
            .checked_add(SignedDuration::from_secs(
                i64::try_from(secs).unwrap_or(i64::MAX),
            ))
            .map_err(|_| Error::Usage(format!("--in {secs}s is too far in the future")))?,
        (None, None) => now,
    };
    match last {
        Some(last) if at.is_some() && signals::acknowledges(Some(last), wanted) => {
            Err(Error::Usage(format!(
                "--at {} is not later than the last restart request ({last}); the runner would ignore it",
                whole_seconds(wanted)
            )))
        }
        _ => Ok(signals::next_request(wanted, last)),
    }
}

/// What the plugin just asked for, in one line.
pub fn announcement(
    name: &str,
    request: Timestamp,
    now: Timestamp,
    replaced: Option<Timestamp>,
) -> String {
    let replaced = replaced
        .map(|r| format!(" (replaces the restart scheduled for {r})"))
        .unwrap_or_default();
    // The request was cut to whole seconds: so is "now", or 10m reads as 9m59s.
    let ahead = request.duration_since(whole_seconds(now)).as_secs();
    if ahead > 1 {
        format!(
            "restart of computeinstance {name:?} scheduled for {request} (in {}){replaced}",
            render::human(ahead)
        )
    } else {
        format!("restart of computeinstance {name:?} requested at {request}{replaced}")
    }
}

fn job_for(ci: &ComputeInstance, request: Timestamp) -> Option<&JobEntry> {
    let jobs = &ci.status.as_ref()?.jobs;
    jobs.iter().rev().find(|j| {
        j.job_type == JobType::Restart
            && j.requested_at.as_ref().map(|t| whole_seconds(t.0)) == Some(request)
    })
}

/// Done when `status.lastRestartedAt` reaches the request; failed when its job failed or
/// `RestartFailed` turned True after the request.
pub fn verdict(ci: &ComputeInstance, name: &str, request: Timestamp, palette: Palette) -> Verdict {
    let status = ci.status.clone().unwrap_or_default();
    let job = job_for(ci, request);
    let acked = status.last_restarted_at.as_ref().map(|t| t.0);
    let done_message = |job: Option<&JobEntry>| {
        let detail = job
            .filter(|j| !j.message.is_empty())
            .map(|j| format!(": {}", j.message))
            .unwrap_or_default();
        format!("computeinstance {name:?} restarted{detail}")
    };
    if signals::acknowledges(acked, request) {
        return Verdict::Done(done_message(job));
    }
    if let Some(job) = job {
        match job.state {
            JobState::Succeeded => return Verdict::Done(done_message(Some(job))),
            JobState::Failed | JobState::Canceled => {
                let reason = job.reason.as_deref().unwrap_or(reasons::JOB_FAILED);
                return Verdict::Failed(format!(
                    "restart of computeinstance {name:?} failed ({reason}): {}",
                    job.message
                ));
            }
            _ => return Verdict::Pending(crate::jobs::progress_line(job, palette)),
        }
    }
    if let Some(c) = cond::get(&status.conditions, cond::RESTART_FAILED)
        && c.status == "True"
        && whole_seconds(c.last_transition_time.0) >= request
    {
        return Verdict::Failed(format!(
            "restart of computeinstance {name:?} failed ({}): {}",
            c.reason, c.message
        ));
    }
    match cond::get(&status.conditions, cond::RESTART_SCHEDULED) {
        Some(c) if c.status == "True" => Verdict::Pending(c.message.clone()),
        _ => Verdict::Pending("waiting for the runner to pick up the request".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cloudkit_shared::ComputeInstanceStatus;
    use cloudkit_shared::fixtures::{condition, instance, job, t, ts};

    fn restart_job(state: JobState, requested: &str) -> JobEntry {
        let mut j = job(Some("restart-1"), JobType::Restart, state, t(requested));
        j.requested_at = Some(t(requested));
        j
    }

    #[test]
    fn request_times_are_whole_seconds() {
        let now = ts("2026-11-22T10:00:00.600Z");
        assert_eq!(
            request_time(now, None, None, None).unwrap(),
            ts("2026-11-22T10:00:00Z")
        );
        assert_eq!(
            request_time(now, None, Some(600), None).unwrap(),
            ts("2026-11-22T10:10:00Z")
        );
        let at = ts("2026-11-23T08:00:00.9Z");
        assert_eq!(
            request_time(now, Some(at), None, None).unwrap(),
            ts("2026-11-23T08:00:00Z")
        );
    }

    #[test]
    fn a_request_in_the_same_second_as_the_last_moves_past_it() {
        let now = ts("2026-11-22T10:00:00.600Z");
        let last = Some(ts("2026-11-22T10:00:00Z"));
        assert_eq!(
            request_time(now, None, None, last).unwrap(),
            ts("2026-11-22T10:00:01Z")
        );
        let e = request_time(now, Some(ts("2026-11-22T09:00:00Z")), None, last).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(
            e.to_string().contains("not later than the last restart"),
            "{e}"
        );
    }

    #[test]
    fn announcements() {
        let now = ts("2026-11-22T10:00:00Z");
        let fraction = ts("2026-11-22T10:00:00.8Z");
        let request = request_time(fraction, None, Some(600), None).unwrap();
        assert!(announcement("vm-1", request, fraction, None).ends_with("(in 10m)"));
        assert_eq!(
            announcement("vm-1", now, now, None),
            r#"restart of computeinstance "vm-1" requested at 2026-11-22T10:00:00Z"#
        );
        assert_eq!(
            announcement(
                "vm-1",
                ts("2026-11-22T12:30:00Z"),
                now,
                Some(ts("2026-11-22T11:00:00Z"))
            ),
            r#"restart of computeinstance "vm-1" scheduled for 2026-11-22T12:30:00Z (in 150m) (replaces the restart scheduled for 2026-11-22T11:00:00Z)"#
        );
    }

    #[test]
    fn done_when_acknowledged() {
        let request = ts("2026-11-22T10:00:00Z");
        let mut j = restart_job(JobState::Succeeded, "2026-11-22T10:00:00Z");
        j.message = "VMI a replaced by running VMI b".into();
        let ci = instance(
            "vm-1",
            ComputeInstanceStatus {
                last_restarted_at: Some(t("2026-11-22T10:00:00Z")),
                jobs: vec![j],
                ..Default::default()
            },
        );
        assert_eq!(
            verdict(&ci, "vm-1", request, Palette::PLAIN),
            Verdict::Done(
                r#"computeinstance "vm-1" restarted: VMI a replaced by running VMI b"#.into()
            )
        );
    }

    #[test]
    fn failed_job_for_this_request_fails() {
        let request = ts("2026-11-22T10:00:00Z");
        let mut j = restart_job(JobState::Failed, "2026-11-22T10:00:00Z");
        j.reason = Some("NoVMReference".into());
        j.message = "no VirtualMachine is known".into();
        let ci = instance(
            "vm-1",
            ComputeInstanceStatus {
                jobs: vec![j],
                ..Default::default()
            },
        );
        assert_eq!(
            verdict(&ci, "vm-1", request, Palette::PLAIN),
            Verdict::Failed(
                r#"restart of computeinstance "vm-1" failed (NoVMReference): no VirtualMachine is known"#
                    .into()
            )
        );
        // A failed job of an earlier request does not count.
        let older = ts("2026-11-22T10:00:05Z");
        assert!(matches!(
            verdict(&ci, "vm-1", older, Palette::PLAIN),
            Verdict::Pending(_)
        ));
    }

    #[test]
    fn restart_failed_condition_counts_only_after_the_request() {
        let request = ts("2026-11-22T10:00:00Z");
        let fresh = instance(
            "vm-1",
            ComputeInstanceStatus {
                conditions: vec![condition(
                    cond::RESTART_FAILED,
                    "True",
                    reasons::RESTART_TIMEOUT,
                    "no new VMI",
                    t("2026-11-22T10:05:00Z"),
                )],
                ..Default::default()
            },
        );
        assert_eq!(
            verdict(&fresh, "vm-1", request, Palette::PLAIN),
            Verdict::Failed(
                r#"restart of computeinstance "vm-1" failed (RestartTimeout): no new VMI"#.into()
            )
        );
        let stale = instance(
            "vm-1",
            ComputeInstanceStatus {
                conditions: vec![condition(
                    cond::RESTART_FAILED,
                    "True",
                    reasons::RESTART_TIMEOUT,
                    "no new VMI",
                    t("2026-11-21T10:05:00Z"),
                )],
                ..Default::default()
            },
        );
        assert_eq!(
            verdict(&stale, "vm-1", request, Palette::PLAIN),
            Verdict::Pending("waiting for the runner to pick up the request".into())
        );
    }

    #[test]
    fn progress_follows_schedule_then_job() {
        let request = ts("2026-11-22T10:00:00Z");
        let scheduled = instance(
            "vm-1",
            ComputeInstanceStatus {
                conditions: vec![condition(
                    cond::RESTART_SCHEDULED,
                    "True",
                    "RestartScheduled",
                    "restart scheduled for 2026-11-22T10:00:00Z",
                    t("2026-11-22T09:00:00Z"),
                )],
                ..Default::default()
            },
        );
        assert_eq!(
            verdict(&scheduled, "vm-1", request, Palette::PLAIN),
            Verdict::Pending("restart scheduled for 2026-11-22T10:00:00Z".into())
        );
        let mut j = restart_job(JobState::Running, "2026-11-22T10:00:00Z");
        j.message = "deleted VMI a".into();
        let running = instance(
            "vm-1",
            ComputeInstanceStatus {
                jobs: vec![j],
                ..Default::default()
            },
        );
        assert_eq!(
            verdict(&running, "vm-1", request, Palette::PLAIN),
            Verdict::Pending("restart job restart-1: Running: deleted VMI a".into())
        );
    }

    #[test]
    fn last_request_is_the_later_of_ack_and_served_job() {
        let ci = instance(
            "vm-1",
            ComputeInstanceStatus {
                last_restarted_at: Some(t("2026-11-22T09:00:00Z")),
                jobs: vec![restart_job(JobState::Failed, "2026-11-22T09:30:00Z")],
                ..Default::default()
            },
        );
        assert_eq!(last_request(&ci), Some(ts("2026-11-22T09:30:00Z")));
    }
}
