//! Builders shared by the shared crate's tests.
#![allow(dead_code)]

use cloudkit_shared::{JobEntry, JobProvider, JobState, JobType};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

pub fn ts(secs: i64) -> Time {
    Time(Timestamp::from_second(1_800_000_000 + secs).unwrap())
}

pub fn job(n: i64, job_type: JobType, state: JobState) -> JobEntry {
    JobEntry {
        job_id: Some(n.to_string()),
        job_type,
        state,
        timestamp: ts(n),
        start_time: None,
        finish_time: None,
        message: String::new(),
        reason: None,
        provider: JobProvider::Aap,
        correlation_key: format!("uid:{job_type}:{n}"),
        config_version: None,
        requested_at: None,
        cancel_requested_at: None,
        vmi_uid: None,
        block_deletion_on_failure: false,
        failure: None,
        url: None,
    }
}
pub mod world;
