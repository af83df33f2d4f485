//! Provision jobs: when one is launched, retried or held back.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::conditions as cond;
use crate::instance::{JobEntry, JobState, JobType};
use crate::jobs;
use crate::reasons;
use crate::signals::{Signal, signal, until};

use super::*;

impl Planner<'_> {
    pub(super) fn provision_requested(&self) -> bool {
        let requested = self.ci.spec.provision_requested_at.as_ref().map(|t| t.0);
        let acked = self.st.last_provision_requested_at.as_ref().map(|t| t.0);
        matches!(signal(requested, acked, self.obs.now), Signal::Due(_))
    }

    /// Why no new provision job may be launched now, if there is a reason; says so once.
    pub(super) fn launch_blocked(&mut self) -> bool {
        if self.manual || !self.tenant_ready() {
            return true;
        }
        let Some(e) = &self.params_error else {
            return false;
        };
        let message = e.to_string();
        let already = cond::get(&self.before.conditions, cond::ACCEPTED).is_some_and(|c| {
            c.reason == reasons::INVALID_TEMPLATE_PARAMETERS && c.message == message
        });
        if !already {
            self.event(true, reasons::INVALID_TEMPLATE_PARAMETERS, message);
        }
        true
    }

    pub(super) fn provision(&mut self) {
        // An active job being canceled: keep the deadline going.
        if let Some(job) = jobs::active_of_type(&self.st.jobs, JobType::Provision).cloned() {
            if job.cancel_requested_at.is_some() && job.job_id.is_some() {
                self.cancel_job(&job.correlation_key, "canceled by request");
            }
            self.provision_signal_while_active();
            return;
        }
        let requested = self.ci.spec.provision_requested_at.as_ref().map(|t| t.0);
        let acked = self.st.last_provision_requested_at.as_ref().map(|t| t.0);
        let latest = jobs::latest_of_type(&self.st.jobs, JobType::Provision).cloned();
        let mut requested_at = None;
        let launch = match signal(requested, acked, self.obs.now) {
            Signal::Due(at) => {
                self.st.last_provision_requested_at = Some(Time(at));
                requested_at = Some(Time(at));
                true
            }
            other => {
                if let Signal::Scheduled(at) = other {
                    self.requeue_in(until(self.obs.now, at));
                }
                match &latest {
                    None => true,
                    Some(j) if j.config_version.as_deref() != Some(&self.version) => true,
                    Some(j) if j.state == JobState::Failed => self.retry_due(j, JobType::Provision),
                    Some(_) => false,
                }
            }
        };
        if launch && !self.launch_blocked() {
            let mut job = self.new_job(JobType::Provision, &self.version.clone());
            job.config_version = Some(self.version.clone());
            job.requested_at = requested_at;
            self.append(job);
        }
    }

    pub(super) fn provision_signal_while_active(&mut self) {
        let requested = self.ci.spec.provision_requested_at.as_ref().map(|t| t.0);
        let acked = self.st.last_provision_requested_at.as_ref().map(|t| t.0);
        if let Signal::Due(at) = signal(requested, acked, self.obs.now) {
            self.st.last_provision_requested_at = Some(Time(at));
            self.event(
                false,
                reasons::ALREADY_PROVISIONING,
                "provision requested while a provision job is already active; nothing to do",
            );
        }
    }

    /// Whether the backoff after the last failure of `job_type` has run out.
    pub(super) fn retry_due(&mut self, last: &JobEntry, job_type: JobType) -> bool {
        let failures = jobs::consecutive_failures(&self.st.jobs, job_type).max(1);
        let delay = backoff(self.policy, failures);
        // A finish "in the future" is another clock's reading: count from now instead.
        let since = last
            .finish_time
            .as_ref()
            .unwrap_or(&last.timestamp)
            .0
            .min(self.obs.now);
        let due = after(since, delay);
        if self.obs.now >= due {
            true
        } else {
            self.requeue_in(until(self.obs.now, due));
            false
        }
    }
}
