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

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: Option<&str>, provider: &str, at: &str) -> JobEntry {
        serde_json::from_value(serde_json::json!({
            "jobID": id, "type": "provision", "state": "Failed", "timestamp": at,
            "message": "", "provider": provider, "correlationKey": "k",
        }))
        .expect("a job entry")
    }

    #[test]
    fn newest_aap_job_by_default_and_only_listed_ids() {
        let jobs = vec![
            entry(Some("7"), "aap", "2026-01-01T00:00:02Z"),
            entry(Some("5"), "aap", "2026-01-01T00:00:01Z"),
            entry(None, "aap", "2026-01-01T00:00:03Z"),
        ];
        assert_eq!(choose(&jobs, None), Choice::Aap(7));
        assert_eq!(choose(&jobs, Some("5")), Choice::Aap(5));
        assert_eq!(choose(&jobs, Some("6")), Choice::NotListed("6".into()));
        assert_eq!(choose(&[], None), Choice::NoJobs);
    }

    #[test]
    fn eda_and_workflow_jobs_say_what_exists_instead() {
        let eda = vec![entry(Some("eda-webhook-1"), "eda", "2026-01-01T00:00:01Z")];
        assert_eq!(choose(&eda, None), Choice::Eda);
        assert_eq!(choose(&eda, Some("eda-webhook-1")), Choice::Eda);
        let wf = vec![entry(Some("9"), "aap-workflow", "2026-01-01T00:00:01Z")];
        assert_eq!(choose(&wf, None), Choice::Workflow(9));
    }
}
