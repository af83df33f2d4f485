//! Job history rules: append, find, update, trim (lifecycle rules 3 and 4,
//! docs/lifecycle-rules.md).

use crate::instance::{JobEntry, JobFailure, JobProvider, JobState, JobType};
use crate::names::EDA_JOB_ID_PREFIX;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

/// The newest job of a type (history is kept oldest first).
pub fn latest_of_type(jobs: &[JobEntry], job_type: JobType) -> Option<&JobEntry> {
    jobs.iter().rev().find(|j| j.job_type == job_type)
}

/// The newest job of a type that is still active.
pub fn active_of_type(jobs: &[JobEntry], job_type: JobType) -> Option<&JobEntry> {
    jobs.iter()
        .rev()
        .find(|j| j.job_type == job_type && j.state.is_active())
}

/// Finds a job by its provider id.
pub fn find_by_id<'a>(jobs: &'a [JobEntry], job_id: &str) -> Option<&'a JobEntry> {
    jobs.iter().find(|j| j.job_id.as_deref() == Some(job_id))
}

/// Finds a job by its correlation key (stable from intent to completion).
pub fn find_by_key<'a>(jobs: &'a [JobEntry], key: &str) -> Option<&'a JobEntry> {
    jobs.iter().find(|j| j.correlation_key == key)
}

/// Finds a job by its correlation key, to change it.
pub fn find_by_key_mut<'a>(jobs: &'a mut [JobEntry], key: &str) -> Option<&'a mut JobEntry> {
    jobs.iter_mut().find(|j| j.correlation_key == key)
}

/// A change to one job's observed state. State and message always travel together
/// (lifecycle rule 4, docs/lifecycle-rules.md).
#[derive(Clone, Debug, PartialEq)]
pub struct JobUpdate {
    pub state: JobState,
    pub message: String,
    pub start_time: Option<Time>,
    pub finish_time: Option<Time>,
    /// Where a failed job failed, when the provider says (boxed: updates are mostly without).
    pub failure: Option<Box<JobFailure>>,
    /// The job's page in the provider's UI.
    pub url: Option<String>,
}

/// Applies `update` to the job with `key`; returns whether anything changed.
pub fn apply_update(jobs: &mut [JobEntry], key: &str, update: &JobUpdate) -> bool {
    let Some(job) = jobs.iter_mut().find(|j| j.correlation_key == key) else {
        return false;
    };
    let before = job.clone();
    job.state = update.state;
    job.message.clone_from(&update.message);
    if update.start_time.is_some() {
        job.start_time.clone_from(&update.start_time);
    }
    if update.finish_time.is_some() {
        job.finish_time.clone_from(&update.finish_time);
    }
    if update.url.is_some() {
        job.url.clone_from(&update.url);
    }
    if job.state != JobState::Failed {
        job.failure = None;
    } else if let Some(failure) = &update.failure {
        job.failure = Some(JobFailure::clone(failure));
    }
    let changed = *job != before;
    keep_newest_failures(jobs);
    changed
}

/// Only the newest failed job of each type keeps its failure detail; older ones keep
/// their one-line message.
pub fn keep_newest_failures(jobs: &mut [JobEntry]) {
    for job_type in JobType::ALL {
        let newest = jobs
            .iter()
            .rposition(|j| j.job_type == job_type && j.state == JobState::Failed);
        for (i, job) in jobs.iter_mut().enumerate() {
            if job.job_type == job_type && Some(i) != newest {
                job.failure = None;
            }
        }
    }
}

/// Appends `job` as the newest entry and trims the history to `limit` (see [`trim`]).
/// The history is in the order the runner recorded it; a clock behind the newest entry
/// (a new leader with a skewed clock) must not slip the new job in before it, or the
/// "latest job of a type" would be an older one.
pub fn append(jobs: &mut Vec<JobEntry>, mut job: JobEntry, limit: usize) {
    if let Some(newest) = jobs.iter().map(|j| &j.timestamp).max_by_key(|t| t.0)
        && job.timestamp.0 < newest.0
    {
        job.timestamp = newest.clone();
    }
    jobs.push(job);
    trim(jobs, limit);
    keep_newest_failures(jobs);
}

/// Drops terminal jobs, oldest first, until at most `limit` remain. Active jobs and the
/// latest job of each type are never dropped, so the history may stay longer than `limit`.
pub fn trim(jobs: &mut Vec<JobEntry>, limit: usize) {
    let mut excess = jobs.len().saturating_sub(limit);
    if excess == 0 {
        return;
    }
    let keep_latest: Vec<usize> = JobType::ALL
        .iter()
        .filter_map(|t| jobs.iter().rposition(|j| j.job_type == *t))
        .collect();
    let mut index = 0;
    jobs.retain(|job| {
        let i = index;
        index += 1;
        let droppable = excess > 0 && job.state.is_terminal() && !keep_latest.contains(&i);
        if droppable {
            excess -= 1;
        }
        !droppable
    });
}

/// Next EDA job id: `eda-webhook-N` with N one more than the largest in the history.
pub fn next_eda_job_id(jobs: &[JobEntry]) -> String {
    let max = jobs
        .iter()
        .filter_map(|j| {
            j.job_id
                .as_deref()?
                .strip_prefix(EDA_JOB_ID_PREFIX)?
                .parse::<u64>()
                .ok()
        })
        .max()
        .unwrap_or(0);
    format!("{EDA_JOB_ID_PREFIX}{}", max.saturating_add(1))
}

/// Consecutive failed jobs of `job_type` at the end of that type's history (for backoff).
pub fn consecutive_failures(jobs: &[JobEntry], job_type: JobType) -> u32 {
    let count = jobs
        .iter()
        .rev()
        .filter(|j| j.job_type == job_type)
        .take_while(|j| j.state == JobState::Failed)
        .count();
    u32::try_from(count).unwrap_or(u32::MAX)
}

/// Reads a job history, filling in what entries written by the upstream cloudkit-operator
/// lack: the provider, inferred from the id (`eda-webhook-N` is EDA, anything else AAP),
/// and a correlation key (`legacy:<type>:<id>:<timestamp>`), stable across reads, that
/// nothing launched by cloudkit can carry.
pub fn deserialize_history<'de, D>(deserializer: D) -> Result<Vec<JobEntry>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    let mut jobs = <Vec<JobEntry> as serde::Deserialize>::deserialize(deserializer)?;
    for job in jobs.iter_mut().filter(|j| j.correlation_key.is_empty()) {
        // The upstream operator records a launch that failed with an empty id.
        job.job_id = job.job_id.take().filter(|id| !id.is_empty());
        let id = job.job_id.as_deref().unwrap_or("-");
        job.provider = if id.starts_with(EDA_JOB_ID_PREFIX) {
            JobProvider::Eda
        } else {
            JobProvider::Aap
        };
        job.correlation_key = format!(
            "{LEGACY_KEY_PREFIX}{}:{id}:{}",
            job.job_type,
            job.timestamp.0.as_second()
        );
    }
    Ok(jobs)
}

/// Prefix of the correlation keys given to jobs the upstream operator recorded.
pub const LEGACY_KEY_PREFIX: &str = "legacy:";

/// Whether a job was recorded by the upstream operator (it has no config version of its own).
pub fn is_legacy(job: &JobEntry) -> bool {
    job.correlation_key.starts_with(LEGACY_KEY_PREFIX)
}
