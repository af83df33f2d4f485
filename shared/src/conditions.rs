//! Condition types, reasons and the rule for updating a `metav1.Condition` list.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

pub const ACCEPTED: &str = "Accepted";
pub const PROGRESSING: &str = "Progressing";
pub const AVAILABLE: &str = "Available";
pub const DELETING: &str = "Deleting";
pub const RESTART_IN_PROGRESS: &str = "RestartInProgress";
pub const RESTART_FAILED: &str = "RestartFailed";
pub const RESTART_SCHEDULED: &str = "RestartScheduled";
pub const CANCELED: &str = "Canceled";
pub const DEPROVISION_FAILED: &str = "DeprovisionFailed";

/// Desired condition, before timestamps are attached.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cond {
    pub type_: &'static str,
    pub status: bool,
    pub reason: String,
    pub message: String,
}

impl Cond {
    pub fn new(
        type_: &'static str,
        status: bool,
        reason: &str,
        message: impl Into<String>,
    ) -> Self {
        Self {
            type_,
            status,
            reason: reason.to_string(),
            message: message.into(),
        }
    }
}

/// Sets `cond` in `conditions`; `lastTransitionTime` moves only when the status flips.
pub fn set(conditions: &mut Vec<Condition>, cond: &Cond, now: &Time, generation: Option<i64>) {
    let status = if cond.status { "True" } else { "False" }.to_string();
    let message = one_line(&cond.message);
    match conditions.iter_mut().find(|c| c.type_ == cond.type_) {
        Some(existing) => {
            if existing.status != status {
                existing.last_transition_time = now.clone();
            }
            existing.status = status;
            existing.reason.clone_from(&cond.reason);
            existing.message = message;
            existing.observed_generation = generation;
        }
        None => conditions.push(Condition {
            type_: cond.type_.to_string(),
            status,
            reason: cond.reason.clone(),
            message,
            last_transition_time: now.clone(),
            observed_generation: generation,
        }),
    }
}

/// Removes a condition type entirely (it no longer applies).
pub fn remove(conditions: &mut Vec<Condition>, type_: &str) {
    conditions.retain(|c| c.type_ != type_);
}

/// Finds a condition by type.
pub fn get<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// Conditions are read in one line; collapse whitespace and cap the length.
pub fn one_line(message: &str) -> String {
    let mut line = message.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.len() > 1024 {
        let mut cut = 1024;
        while !line.is_char_boundary(cut) {
            cut -= 1;
        }
        line.truncate(cut);
        line.push('…');
    }
    line
}
