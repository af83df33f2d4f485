//! EDA jobs have no job API: their progress is read from the resource itself.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use crate::instance::{JobEntry, JobProvider, JobState, JobType};
use crate::jobs::JobUpdate;
use crate::names::{AAP_FINALIZER, RECONCILED_CONFIG_VERSION_ANNOTATION};
use crate::plan::{JobObservation, after};

/// Signs of the playbooks on the instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EdaSigns {
    pub aap_finalizer: bool,
    pub reconciled_config_version: Option<String>,
    /// The annotation says the current spec is provisioned (see
    /// [`crate::config_version::matches_current`]): how a job the upstream operator
    /// recorded, which has no config version, is known to be done.
    pub spec_reconciled: bool,
    /// An earlier provision job was sent: the finalizer it left says nothing about a new one.
    pub provisioned_before: bool,
}

/// Observes one EDA job from the resource. A job with no sign of progress after `deadline`
/// fails with a message that says what was not seen, so no job stays Unknown forever.
/// `next_id` names an intent found to have been sent before a crash.
pub fn observe(
    job: &JobEntry,
    signs: &EdaSigns,
    now: Timestamp,
    deadline: Duration,
    next_id: &str,
) -> JobObservation {
    let Some(job_id) = job.job_id.clone() else {
        // Fire-and-forget: an event that left no trace counts as not sent.
        let sent = match job.job_type {
            JobType::Provision => {
                (signs.aap_finalizer && !signs.provisioned_before) || reconciled(job, signs)
            }
            _ => false,
        };
        return if sent {
            seen(
                next_id.to_string(),
                JobState::Running,
                "the playbook is running".into(),
                None,
            )
        } else {
            JobObservation::Missing {
                message: "no event was sent".into(),
            }
        };
    };
    let started = job.start_time.as_ref().unwrap_or(&job.timestamp).0;
    let overdue = now >= after(started, deadline);
    let finished = Some(Time(now));
    match job.job_type {
        JobType::Provision if reconciled(job, signs) => seen(
            job_id,
            JobState::Succeeded,
            format!("the playbook set {RECONCILED_CONFIG_VERSION_ANNOTATION}"),
            finished,
        ),
        JobType::Provision if overdue => seen(
            job_id,
            JobState::Failed,
            format!(
                "no sign of the provision playbook after {}s: annotation {RECONCILED_CONFIG_VERSION_ANNOTATION} not set to {}{}",
                deadline.as_secs(),
                job.config_version
                    .as_deref()
                    .unwrap_or("the current spec's version"),
                if signs.aap_finalizer {
                    ""
                } else {
                    ", finalizer not added"
                }
            ),
            finished,
        ),
        JobType::Provision if signs.aap_finalizer => seen(
            job_id,
            JobState::Running,
            format!("the playbook added finalizer {AAP_FINALIZER}"),
            None,
        ),
        JobType::Deprovision if !signs.aap_finalizer => seen(
            job_id,
            JobState::Succeeded,
            format!("the playbook removed finalizer {AAP_FINALIZER}"),
            finished,
        ),
        JobType::Deprovision if overdue => seen(
            job_id,
            JobState::Failed,
            format!(
                "finalizer {AAP_FINALIZER} still present {}s after the deprovision event",
                deadline.as_secs()
            ),
            finished,
        ),
        _ => seen(
            job_id,
            job.state,
            "event sent; waiting for the playbook".into(),
            None,
        ),
    }
}

fn reconciled(job: &JobEntry, signs: &EdaSigns) -> bool {
    match &job.config_version {
        Some(v) => signs.reconciled_config_version.as_ref() == Some(v),
        None => crate::jobs::is_legacy(job) && signs.spec_reconciled,
    }
}

fn seen(
    job_id: String,
    state: JobState,
    message: String,
    finish_time: Option<Time>,
) -> JobObservation {
    JobObservation::Seen {
        job_id,
        provider: JobProvider::Eda,
        update: JobUpdate {
            state,
            message,
            start_time: None,
            finish_time,
            failure: None,
            url: None,
        },
    }
}
