//! Folding the outcome of a performed effect back into the planned status.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use crate::conditions::{self as cond, Cond};
use crate::instance::{ComputeInstanceStatus, JobState};
use crate::jobs;
use crate::reasons;

use super::*;

/// Applies effect outcomes to the planned status; returns the Events to record.
pub fn apply_outcome(
    status: &mut ComputeInstanceStatus,
    outcome: &Outcome,
    now: Timestamp,
) -> Vec<EventNote> {
    let tnow = Time(now);
    let mut events = Vec::new();
    match outcome {
        Outcome::Launched {
            key,
            job_id,
            provider,
        } => {
            if let Some(job) = jobs::find_by_key_mut(&mut status.jobs, key) {
                job.job_id = Some(job_id.clone());
                job.provider = *provider;
                job.message = format!("{} job {job_id} launched", job.job_type);
                job.reason = None;
                events.push(EventNote {
                    warning: false,
                    reason: reasons::JOB_LAUNCHED.into(),
                    message: job.message.clone(),
                });
            }
        }
        Outcome::LaunchFailed {
            key,
            reason,
            message,
            permanent,
        } => {
            if let Some(job) = jobs::find_by_key_mut(&mut status.jobs, key) {
                job.message = cond::one_line(message);
                job.reason = Some(reason.clone());
                if *permanent {
                    job.state = JobState::Failed;
                    job.finish_time = Some(tnow);
                }
                events.push(EventNote {
                    warning: true,
                    reason: reason.clone(),
                    message: job.message.clone(),
                });
            }
        }
        Outcome::CancelFailed { key, message } => {
            if let Some(job) = jobs::find_by_key_mut(&mut status.jobs, key) {
                events.push(EventNote {
                    warning: true,
                    reason: reasons::CANCEL_FAILED.into(),
                    message: cond::one_line(&format!(
                        "cancel of {} job {}: {message}",
                        job.job_type,
                        id_of(job)
                    )),
                });
            }
        }
        Outcome::VmiDeleted { key } => {
            if let Some(job) = jobs::find_by_key_mut(&mut status.jobs, key) {
                job.state = JobState::Running;
                job.start_time = Some(tnow);
                job.message = format!(
                    "deleted VMI {}; waiting for KubeVirt to start a new one",
                    job.vmi_uid.as_deref().unwrap_or("?")
                );
            }
        }
        Outcome::VmiDeleteFailed { key, message } => {
            if let Some(job) = jobs::find_by_key_mut(&mut status.jobs, key) {
                job.state = JobState::Failed;
                job.finish_time = Some(tnow.clone());
                job.reason = Some(reasons::VMI_DELETION_FAILED.into());
                job.message = cond::one_line(&format!("could not delete the VMI: {message}"));
                let failed = Cond::new(
                    cond::RESTART_FAILED,
                    true,
                    reasons::VMI_DELETION_FAILED,
                    job.message.clone(),
                );
                cond::set(
                    &mut status.conditions,
                    &failed,
                    &tnow,
                    status.observed_generation,
                );
                cond::remove(&mut status.conditions, cond::RESTART_IN_PROGRESS);
                events.push(EventNote {
                    warning: true,
                    reason: reasons::VMI_DELETION_FAILED.into(),
                    message: job.message.clone(),
                });
            }
        }
    }
    events
}
