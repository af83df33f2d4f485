//! Builders shared by the shared crate's tests.
#![allow(dead_code)]

use cloudkit_shared::{JobEntry, JobState, JobType, fixtures};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

/// `secs` past a fixed instant, so a test's times read as small numbers.
pub fn ts(secs: i64) -> Time {
    Time(Timestamp::from_second(1_800_000_000 + secs).unwrap())
}

/// Job `n`, recorded at [`ts`]`(n)`.
pub fn job(n: i64, job_type: JobType, state: JobState) -> JobEntry {
    fixtures::job(Some(&n.to_string()), job_type, state, ts(n))
}
pub mod world;
