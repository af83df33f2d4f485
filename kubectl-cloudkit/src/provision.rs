//! `kubectl cloudkit provision NAME [--wait]`: writes `spec.provisionRequestedAt` to
//! provision again after a cancel or a failure.

use std::time::Duration;

use cloudkit_shared::signals::{self, whole_seconds};
use cloudkit_shared::{ComputeInstance, JobEntry, JobState, JobType, reasons};
use k8s_openapi::jiff::Timestamp;

use crate::cli::ProvisionArgs;
use crate::client::{Instances, Target};
use crate::error::Error;
use crate::follow::{SignalRequest, Verdict, send_signal};
use crate::jobs::{id_cell, progress_line};
use crate::output::Output;
use crate::render::Palette;

pub const FIELD: &str = "provisionRequestedAt";

pub async fn run(target: &Target, args: &ProvisionArgs, out: &Output) -> Result<(), Error> {
    let instances = Instances::namespaced(target);
    let ci = instances.get(&args.name).await?;
    let status = ci.status.as_ref();
    let acked = status
        .and_then(|s| s.last_provision_requested_at.as_ref())
        .map(|t| t.0);
    let request = signals::next_request(Timestamp::now(), acked);
    let active =
        status.and_then(|s| cloudkit_shared::jobs::active_of_type(&s.jobs, JobType::Provision));
    let signal = SignalRequest {
        name: &args.name,
        field: FIELD,
        request,
        announcement: announcement(&args.name, active),
        what: format!("the provisioning of computeinstance {:?}", args.name),
        not_before: Duration::ZERO,
    };
    send_signal(&instances, signal, &args.wait, out, |ci| {
        verdict(ci, &args.name, request, out.note_palette())
    })
    .await
}

pub fn announcement(name: &str, active: Option<&JobEntry>) -> String {
    match active {
        Some(job) => format!(
            "provision requested for computeinstance {name:?}; provision job {} is already {}, so the runner will not launch another",
            id_cell(job),
            job.state
        ),
        None => format!("provision requested for computeinstance {name:?}"),
    }
}

/// The job launched for this request, else (a job was already active) the newest one.
fn job_for(ci: &ComputeInstance, request: Timestamp) -> Option<&JobEntry> {
    let jobs = &ci.status.as_ref()?.jobs;
    jobs.iter()
        .rev()
        .find(|j| {
            j.job_type == JobType::Provision
                && j.requested_at.as_ref().map(|t| whole_seconds(t.0)) == Some(request)
        })
        .or_else(|| cloudkit_shared::jobs::latest_of_type(jobs, JobType::Provision))
}

/// Waits for the acknowledgement (`status.lastProvisionRequestedAt`), then for the job's end.
pub fn verdict(ci: &ComputeInstance, name: &str, request: Timestamp, palette: Palette) -> Verdict {
    let acked = ci
        .status
        .as_ref()
        .and_then(|s| s.last_provision_requested_at.as_ref())
        .map(|t| t.0);
    if !signals::acknowledges(acked, request) {
        return Verdict::Pending("waiting for the runner to acknowledge the request".into());
    }
    let Some(job) = job_for(ci, request) else {
        return Verdict::Pending("waiting for the runner to record the provision job".into());
    };
    let id = id_cell(job);
    match job.state {
        JobState::Succeeded => Verdict::Done(format!(
            "provision job {id} of computeinstance {name:?} succeeded"
        )),
        JobState::Failed | JobState::Canceled => Verdict::Failed(format!(
            "provision job {id} of computeinstance {name:?} {} ({}): {}",
            job.state.to_string().to_lowercase(),
            job.reason.as_deref().unwrap_or(reasons::JOB_FAILED),
            job.message
        )),
        _ => Verdict::Pending(progress_line(job, palette)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cloudkit_shared::ComputeInstanceStatus;
    use cloudkit_shared::fixtures::{instance, job, t};

    const REQUEST: &str = "2026-11-22T10:00:00Z";

    fn request() -> Timestamp {
        REQUEST.parse().unwrap()
    }

    #[test]
    fn waits_for_ack_then_follows_the_requested_job() {
        let old = job(
            Some("41"),
            JobType::Provision,
            JobState::Canceled,
            t("2026-11-22T09:00:00Z"),
        );
        let ci = instance(
            "vm-1",
            ComputeInstanceStatus {
                jobs: vec![old.clone()],
                ..Default::default()
            },
        );
        assert_eq!(
            verdict(&ci, "vm-1", request(), Palette::PLAIN),
            Verdict::Pending("waiting for the runner to acknowledge the request".into())
        );
        let mut new = job(None, JobType::Provision, JobState::Pending, t(REQUEST));
        new.requested_at = Some(t(REQUEST));
        new.message = "provision requested; launching".into();
        let mut status = ComputeInstanceStatus {
            last_provision_requested_at: Some(t(REQUEST)),
            jobs: vec![old, new],
            ..Default::default()
        };
        assert_eq!(
            verdict(
                &instance("vm-1", status.clone()),
                "vm-1",
                request(),
                Palette::PLAIN
            ),
            Verdict::Pending("provision job: Pending: provision requested; launching".into())
        );
        status.jobs[1].job_id = Some("43".into());
        status.jobs[1].state = JobState::Succeeded;
        assert_eq!(
            verdict(
                &instance("vm-1", status.clone()),
                "vm-1",
                request(),
                Palette::PLAIN
            ),
            Verdict::Done(r#"provision job 43 of computeinstance "vm-1" succeeded"#.into())
        );
        status.jobs[1].state = JobState::Failed;
        status.jobs[1].reason = Some("TemplateNotFound".into());
        status.jobs[1].message = "no template".into();
        assert_eq!(
            verdict(&instance("vm-1", status), "vm-1", request(), Palette::PLAIN),
            Verdict::Failed(
                r#"provision job 43 of computeinstance "vm-1" failed (TemplateNotFound): no template"#
                    .into()
            )
        );
    }

    #[test]
    fn announcement_mentions_an_active_job() {
        let j = job(Some("7"), JobType::Provision, JobState::Running, t(REQUEST));
        assert_eq!(
            announcement("vm-1", Some(&j)),
            r#"provision requested for computeinstance "vm-1"; provision job 7 is already Running, so the runner will not launch another"#
        );
        assert_eq!(
            announcement("vm-1", None),
            r#"provision requested for computeinstance "vm-1""#
        );
    }
}
