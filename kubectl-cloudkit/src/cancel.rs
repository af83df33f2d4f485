//! `kubectl cloudkit cancel NAME [--wait]`: writes `spec.cancelRequestedAt`; the runner
//! cancels the active provision job in place and keeps the instance.

use std::time::Duration;

use cloudkit_shared::conditions as cond;
use cloudkit_shared::signals;
use cloudkit_shared::{ComputeInstance, JobEntry, JobState, JobType, reasons};
use k8s_openapi::jiff::Timestamp;

use crate::cli::CancelArgs;
use crate::client::{Instances, Target};
use crate::error::Error;
use crate::follow::{SignalRequest, Verdict, send_signal};
use crate::jobs::{id_cell, progress_line};
use crate::output::Output;
use crate::render::Palette;

pub const FIELD: &str = "cancelRequestedAt";

pub async fn run(target: &Target, args: &CancelArgs, out: &Output) -> Result<(), Error> {
    let instances = Instances::namespaced(target);
    let ci = instances.get(&args.name).await?;
    let acked = ci
        .status
        .as_ref()
        .and_then(|s| s.last_cancel_requested_at.as_ref())
        .map(|t| t.0);
    let request = signals::next_request(Timestamp::now(), acked);
    let active = active_provision(&ci);
    let signal = SignalRequest {
        name: &args.name,
        field: FIELD,
        request,
        announcement: announcement(&args.name, active, args.wait.wait),
        what: format!("the cancel of computeinstance {:?}", args.name),
        not_before: Duration::ZERO,
    };
    send_signal(&instances, signal, &args.wait, out, |ci| {
        verdict(ci, &args.name, request, out.note_palette())
    })
    .await
}

fn active_provision(ci: &ComputeInstance) -> Option<&JobEntry> {
    let jobs = &ci.status.as_ref()?.jobs;
    cloudkit_shared::jobs::active_of_type(jobs, JobType::Provision)
}

pub fn announcement(name: &str, active: Option<&JobEntry>, waiting: bool) -> String {
    match active {
        Some(job) => format!(
            "cancel requested for provision job {} of computeinstance {name:?}",
            id_cell(job)
        ),
        None if waiting => format!(
            "cancel requested for computeinstance {name:?}; no provision job is active, waiting for the runner's answer"
        ),
        None => format!(
            "cancel requested for computeinstance {name:?}, but no provision job is active: there is probably nothing to cancel (--wait shows the runner's answer)"
        ),
    }
}

/// Waits for the acknowledgement (`status.lastCancelRequestedAt`), then for the job's end.
pub fn verdict(ci: &ComputeInstance, name: &str, request: Timestamp, palette: Palette) -> Verdict {
    let Some(status) = ci.status.as_ref() else {
        return Verdict::Pending("waiting for the runner to acknowledge the cancel".into());
    };
    let acked = status.last_cancel_requested_at.as_ref().map(|t| t.0);
    if !signals::acknowledges(acked, request) {
        return Verdict::Pending("waiting for the runner to acknowledge the cancel".into());
    }
    let canceled = cond::get(&status.conditions, cond::CANCELED);
    if let Some(c) = canceled
        && c.status == "False"
        && c.reason == reasons::NOTHING_TO_CANCEL
    {
        return Verdict::Done(format!(
            "nothing to cancel: computeinstance {name:?} had no active provision job ({})",
            c.message
        ));
    }
    // The job the cancel was sent to carries the cancel time; else the newest provision job.
    let jobs = &status.jobs;
    let job = jobs
        .iter()
        .rev()
        .find(|j| j.job_type == JobType::Provision && j.cancel_requested_at.is_some())
        .or_else(|| cloudkit_shared::jobs::latest_of_type(jobs, JobType::Provision));
    let Some(job) = job else {
        return Verdict::Done(format!(
            "nothing to cancel: computeinstance {name:?} has no provision job"
        ));
    };
    let id = id_cell(job);
    match job.state {
        JobState::Canceled => Verdict::Done(format!(
            "provision job {id} of computeinstance {name:?} canceled"
        )),
        JobState::Succeeded => Verdict::Failed(format!(
            "provision job {id} of computeinstance {name:?} succeeded before the cancel took effect"
        )),
        JobState::Failed => Verdict::Failed(format!(
            "provision job {id} of computeinstance {name:?} failed before it could be canceled: {}",
            job.message
        )),
        _ => Verdict::Pending(progress_line(job, palette)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cloudkit_shared::ComputeInstanceStatus;
    use cloudkit_shared::fixtures::{condition, instance, job, t, ts};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

    fn canceled_cond(status: &str, reason: &str, message: &str) -> Condition {
        condition(
            cond::CANCELED,
            status,
            reason,
            message,
            t("2026-11-22T10:00:00Z"),
        )
    }

    const REQUEST: &str = "2026-11-22T10:00:00Z";

    #[test]
    fn waits_for_the_acknowledgement() {
        let ci = instance(
            "vm-1",
            ComputeInstanceStatus {
                last_cancel_requested_at: Some(t("2026-11-22T09:00:00Z")),
                ..Default::default()
            },
        );
        assert_eq!(
            verdict(&ci, "vm-1", ts(REQUEST), Palette::PLAIN),
            Verdict::Pending("waiting for the runner to acknowledge the cancel".into())
        );
    }

    #[test]
    fn nothing_to_cancel_is_said_clearly() {
        let ci = instance(
            "vm-1",
            ComputeInstanceStatus {
                last_cancel_requested_at: Some(t(REQUEST)),
                conditions: vec![canceled_cond(
                    "False",
                    reasons::NOTHING_TO_CANCEL,
                    "cancel requested but no provision job was active; nothing to cancel",
                )],
                ..Default::default()
            },
        );
        assert_eq!(
            verdict(&ci, "vm-1", ts(REQUEST), Palette::PLAIN),
            Verdict::Done(
                r#"nothing to cancel: computeinstance "vm-1" had no active provision job (cancel requested but no provision job was active; nothing to cancel)"#
                    .into()
            )
        );
    }

    #[test]
    fn follows_the_job_to_its_end() {
        let mut j = job(
            Some("42"),
            JobType::Provision,
            JobState::Running,
            t("2026-11-22T09:59:00Z"),
        );
        j.cancel_requested_at = Some(t(REQUEST));
        j.message = "cancel requested: canceled by request".into();
        let mut status = ComputeInstanceStatus {
            last_cancel_requested_at: Some(t(REQUEST)),
            conditions: vec![canceled_cond(
                "True",
                reasons::CANCEL_REQUESTED,
                "canceling provision job 42 by request",
            )],
            jobs: vec![j],
            ..Default::default()
        };
        assert_eq!(
            verdict(
                &instance("vm-1", status.clone()),
                "vm-1",
                ts(REQUEST),
                Palette::PLAIN
            ),
            Verdict::Pending(
                "provision job 42: Running: cancel requested: canceled by request".into()
            )
        );
        status.jobs[0].state = JobState::Canceled;
        assert_eq!(
            verdict(
                &instance("vm-1", status.clone()),
                "vm-1",
                ts(REQUEST),
                Palette::PLAIN
            ),
            Verdict::Done(r#"provision job 42 of computeinstance "vm-1" canceled"#.into())
        );
        status.jobs[0].state = JobState::Succeeded;
        assert!(matches!(
            verdict(&instance("vm-1", status), "vm-1", ts(REQUEST), Palette::PLAIN),
            Verdict::Failed(m) if m.contains("succeeded before the cancel took effect")
        ));
    }

    #[test]
    fn announcements() {
        let j = job(
            Some("42"),
            JobType::Provision,
            JobState::Running,
            t(REQUEST),
        );
        assert_eq!(
            announcement("vm-1", Some(&j), false),
            r#"cancel requested for provision job 42 of computeinstance "vm-1""#
        );
        assert!(announcement("vm-1", None, false).contains("probably nothing to cancel"));
    }
}
