//! Small readers of a ComputeInstance that end-to-end tests check again and again.

use cloudkit_shared::{ComputeInstance, JobEntry, JobType, Phase};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

pub fn phase(ci: Option<&ComputeInstance>) -> Option<Phase> {
    ci?.status.as_ref()?.phase
}

pub fn running(ci: Option<&ComputeInstance>) -> bool {
    phase(ci) == Some(Phase::Running)
}

/// The jobs of one type, oldest first.
pub fn jobs_of(ci: &ComputeInstance, t: JobType) -> Vec<JobEntry> {
    ci.status
        .as_ref()
        .map(|s| s.jobs.iter().filter(|j| j.job_type == t).cloned().collect())
        .unwrap_or_default()
}

pub fn condition(ci: &ComputeInstance, t: &str) -> Option<Condition> {
    ci.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == t)
        .cloned()
}
