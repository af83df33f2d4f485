//! Builders for the tests of the crates that use these types. Behind the `fixtures`
//! feature, which only dev-dependencies enable, so no build of the runner or the plugin
//! carries them. They panic on a malformed literal: their input is test data.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

use crate::{ComputeInstance, ComputeInstanceStatus, JobEntry, JobProvider, JobState, JobType};

/// An RFC 3339 instant: `ts("2026-11-22T10:00:00Z")`.
pub fn ts(rfc3339: &str) -> Timestamp {
    rfc3339
        .parse()
        .unwrap_or_else(|e| panic!("fixture timestamp {rfc3339:?}: {e}"))
}

/// [`ts`] as the API's `Time`.
pub fn t(rfc3339: &str) -> Time {
    Time(ts(rfc3339))
}

/// An instance `name` with the default spec and this status.
pub fn instance(name: &str, status: ComputeInstanceStatus) -> ComputeInstance {
    let mut ci = ComputeInstance::new(name, Default::default());
    ci.status = Some(status);
    ci
}

/// An AAP job entry recorded at `created`, nothing else set. Its correlation key is
/// unique per type and time, as the runner's are.
pub fn job(id: Option<&str>, job_type: JobType, state: JobState, created: Time) -> JobEntry {
    JobEntry {
        job_id: id.map(str::to_string),
        job_type,
        state,
        correlation_key: format!("uid:{job_type}:{}", created.0),
        timestamp: created,
        start_time: None,
        finish_time: None,
        message: String::new(),
        reason: None,
        provider: JobProvider::Aap,
        config_version: None,
        requested_at: None,
        cancel_requested_at: None,
        vmi_uid: None,
        block_deletion_on_failure: false,
        failure: None,
        url: None,
    }
}

/// A condition that last changed at `at`.
pub fn condition(type_: &str, status: &str, reason: &str, message: &str, at: Time) -> Condition {
    Condition {
        type_: type_.into(),
        status: status.into(),
        reason: reason.into(),
        message: message.into(),
        last_transition_time: at,
        observed_generation: None,
    }
}
