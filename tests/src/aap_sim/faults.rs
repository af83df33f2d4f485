//! Fault injection: what a gateway, a proxy or a slow controller does to requests.

use std::collections::VecDeque;
use std::time::Duration;

use serde::Serialize;

use super::rng::Rng;

/// The kinds of request faults and counters are kept for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Endpoint {
    /// `job_templates/` and `workflow_job_templates/` lists and details.
    TemplateLookup,
    /// `.../{id}/launch/`, GET and POST.
    Launch,
    /// `jobs/{id}/`, `workflow_jobs/{id}/`.
    JobDetail,
    /// `jobs/`, `workflow_jobs/`.
    JobList,
    /// `GET .../{id}/cancel/`.
    CancelCheck,
    /// `POST .../{id}/cancel/`.
    Cancel,
    /// `jobs/{id}/stdout/` and `jobs/{id}/job_events/`.
    Stdout,
    /// Everything else (API root, ping, unknown paths).
    Other,
}

impl Endpoint {
    pub const ALL: [Endpoint; 8] = [
        Endpoint::TemplateLookup,
        Endpoint::Launch,
        Endpoint::JobDetail,
        Endpoint::JobList,
        Endpoint::CancelCheck,
        Endpoint::Cancel,
        Endpoint::Stdout,
        Endpoint::Other,
    ];
}

/// What happens to one request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Fault {
    /// Answer this status (500, 502, 503, 504, ...) with a body, before doing anything.
    Status(u16),
    /// Answer 429 with `Retry-After`, before doing anything.
    TooManyRequests { retry_after_secs: u64 },
    /// Never answer; the request ends when the client gives up.
    Hang,
    /// Wait this long, then handle the request normally.
    Delay(Duration),
    /// Do the work (a launch creates its job, a cancel cancels), then answer this status:
    /// AAP launches are not idempotent.
    CommitThenStatus(u16),
    /// Do the work, then never answer.
    CommitThenHang,
    /// Do the work, then answer its status with a body that is not valid JSON (an answer
    /// cut short by a proxy).
    CommitThenMalformed,
    /// Cancel only: answer 202 but never cancel the job.
    LostCancel,
}

/// The faults of one [`Endpoint`]. `next` is used first, one fault per request; then
/// `always`; then, with probability `rate`, one of `rate_faults` (seeded RNG).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EndpointFaults {
    /// Added to every request before it is handled.
    pub latency: Duration,
    /// Added to every request after it was handled, before the answer (a slow cancel:
    /// the cancel took effect, the answer is late).
    pub slow_response: Duration,
    pub next: VecDeque<Fault>,
    pub always: Option<Fault>,
    pub rate: f64,
    pub rate_faults: Vec<Fault>,
}

impl EndpointFaults {
    pub(crate) fn take(&mut self, rng: &mut Rng) -> Option<Fault> {
        if let Some(fault) = self.next.pop_front() {
            return Some(fault);
        }
        if let Some(fault) = &self.always {
            return Some(fault.clone());
        }
        // The RNG is only drawn from when a rate is set, so scripted faults never shift
        // the random sequence.
        if self.rate > 0.0 && !self.rate_faults.is_empty() && rng.chance(self.rate) {
            let i = rng.below(self.rate_faults.len());
            return Some(self.rate_faults[i].clone());
        }
        None
    }
}
