//! Cancel: of an active provider job, on request or before a deprovision.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::conditions::{self as cond, Cond};
use crate::instance::{JobState, JobType};
use crate::jobs;
use crate::reasons;
use crate::signals::{Signal, signal, until};

use super::*;

impl Planner<'_> {
    /// Sends (or, after the deadline, re-sends) the cancel of an active provider job.
    pub(super) fn cancel_job(&mut self, key: &str, why: &str) {
        let Some(job) = jobs::find_by_key(&self.st.jobs, key).cloned() else {
            return;
        };
        let Some(job_id) = job.job_id.clone() else {
            // Not launched yet: mark the wish; the launch is then skipped (see fold_observations).
            if let Some(j) = jobs::find_by_key_mut(&mut self.st.jobs, key) {
                j.cancel_requested_at.get_or_insert(self.now.clone());
            }
            return;
        };
        match &job.cancel_requested_at {
            None => {
                self.send_cancel(&job, &job_id, format!("cancel requested: {why}"));
                self.event(
                    false,
                    reasons::CANCEL_REQUESTED,
                    format!("canceling {} job {job_id}: {why}", job.job_type),
                );
            }
            Some(sent) => {
                let deadline = after(sent.0, self.policy.cancel_deadline);
                if self.obs.now >= deadline {
                    let message = format!(
                        "cancel not confirmed after {}s; asked again",
                        self.policy.cancel_deadline.as_secs()
                    );
                    self.send_cancel(&job, &job_id, message);
                    self.event(
                        true,
                        reasons::CANCEL_NOT_CONFIRMED,
                        format!(
                            "{} job {job_id} still {} {}s after the cancel; asked again",
                            job.job_type,
                            job.state,
                            self.policy.cancel_deadline.as_secs()
                        ),
                    );
                } else {
                    self.requeue_in(until(self.obs.now, deadline));
                }
            }
        }
    }

    /// The cancel effect for `job`, and on its entry when it was asked and why.
    fn send_cancel(&mut self, job: &JobEntry, job_id: &str, message: String) {
        let key = &job.correlation_key;
        self.effects.push(Effect::Cancel {
            key: key.clone(),
            job_id: job_id.to_string(),
            provider: job.provider,
        });
        let j = jobs::find_by_key_mut(&mut self.st.jobs, key).expect("found by the caller");
        j.cancel_requested_at = Some(self.now.clone());
        j.message = message;
    }

    pub(super) fn cancel_signal(&mut self) {
        let requested = self.ci.spec.cancel_requested_at.as_ref().map(|t| t.0);
        let acked = self.st.last_cancel_requested_at.as_ref().map(|t| t.0);
        match signal(requested, acked, self.obs.now) {
            Signal::Absent | Signal::Done => {}
            Signal::Scheduled(at) => self.requeue_in(until(self.obs.now, at)),
            Signal::Due(at) => {
                let active = jobs::active_of_type(&self.st.jobs, JobType::Provision).cloned();
                match active {
                    Some(job) => {
                        // An intent whose fate is unknown (provider unreachable) waits.
                        if job.job_id.is_none()
                            && !matches!(
                                self.obs.jobs.get(&job.correlation_key),
                                Some(JobObservation::Missing { .. }) | None
                            )
                        {
                            return;
                        }
                        self.st.last_cancel_requested_at = Some(Time(at));
                        self.cancel_job(&job.correlation_key, "canceled by request");
                        let msg = format!("canceling provision job {} by request", id_of(&job));
                        self.set_cond(Cond::new(
                            cond::CANCELED,
                            true,
                            reasons::CANCEL_REQUESTED,
                            msg,
                        ));
                        if job.job_id.is_none() {
                            self.fold_unlaunched_cancel(&job.correlation_key);
                        }
                    }
                    None => {
                        self.st.last_cancel_requested_at = Some(Time(at));
                        let msg =
                            "cancel requested but no provision job was active; nothing to cancel";
                        self.set_cond(Cond::new(
                            cond::CANCELED,
                            false,
                            reasons::NOTHING_TO_CANCEL,
                            msg,
                        ));
                        self.event(false, reasons::NOTHING_TO_CANCEL, msg);
                    }
                }
            }
        }
    }

    /// An intent that was never launched is simply marked canceled.
    pub(super) fn fold_unlaunched_cancel(&mut self, key: &str) {
        self.effects
            .retain(|e| !matches!(e, Effect::Launch { key: k, .. } if k == key));
        if let Some(j) = jobs::find_by_key_mut(&mut self.st.jobs, key) {
            j.state = JobState::Canceled;
            j.reason = Some(reasons::CANCELED_BY_REQUEST.into());
            j.message = "canceled by request before it was launched".into();
            j.finish_time = Some(self.now.clone());
        }
    }
}
