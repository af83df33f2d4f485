//! Which of an instance's jobs a logs request reads: `--job` must be one of them, never
//! an arbitrary AAP id; without it the newest AAP job.

use cloudkit_shared::instance::{JobEntry, JobProvider};

/// The job to read, or why there is none.
#[derive(Debug, PartialEq, Eq)]
pub enum Choice {
    Aap(u64),
    /// A workflow job has no output of its own.
    Workflow(u64),
    /// EDA sends no job id back: there is no AAP output to read.
    Eda,
    NotListed(String),
    NoJobs,
}

pub fn choose(jobs: &[JobEntry], wanted: Option<&str>) -> Choice {
    let with_id = |e: &&JobEntry| e.job_id.is_some();
    let entry = match wanted {
        Some(id) => match jobs
            .iter()
            .filter(with_id)
            .find(|e| e.job_id.as_deref() == Some(id))
        {
            Some(e) => e,
            None => return Choice::NotListed(id.to_string()),
        },
        None => {
            let newest = jobs
                .iter()
                .filter(|e| matches!(e.provider, JobProvider::Aap | JobProvider::AapWorkflow))
                .filter(with_id)
                .max_by_key(|e| e.timestamp.0);
            match newest {
                Some(e) => e,
                None if jobs.iter().any(|e| e.provider == JobProvider::Eda) => return Choice::Eda,
                None => return Choice::NoJobs,
            }
        }
    };
    let id = entry
        .job_id
        .as_deref()
        .and_then(|id| id.parse::<u64>().ok());
    match (entry.provider, id) {
        (JobProvider::Aap, Some(id)) => Choice::Aap(id),
        (JobProvider::AapWorkflow, Some(id)) => Choice::Workflow(id),
        (JobProvider::Eda, _) => Choice::Eda,
        _ => Choice::NotListed(entry.job_id.clone().unwrap_or_default()),
    }
}
