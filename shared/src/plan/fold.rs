//! Provider observations folded into job entries, and taking over what the upstream operator left.

use std::time::Duration;

use crate::conditions as cond;
use crate::config_version::matches_current;
use crate::instance::{JobEntry, JobProvider, JobState, JobType};
use crate::jobs;
use crate::reasons;

use super::*;

impl Planner<'_> {
    /// Folds provider observations into active provider jobs; launches recorded intents that
    /// the provider does not know.
    pub(super) fn fold_observations(&mut self) {
        let deleting = self.ci.metadata.deletion_timestamp.is_some();
        let keys: Vec<String> = self
            .st
            .jobs
            .iter()
            .filter(|j| j.state.is_active() && j.provider != JobProvider::Kubevirt)
            .map(|j| j.correlation_key.clone())
            .collect();
        for key in keys {
            let Some(observation) = self.obs.jobs.get(&key) else {
                continue;
            };
            let job =
                jobs::find_by_key_mut(&mut self.st.jobs, &key).expect("key taken from the list");
            match observation {
                JobObservation::Seen {
                    job_id,
                    provider,
                    update,
                } => {
                    job.job_id = Some(job_id.clone());
                    job.provider = *provider;
                    jobs::apply_update(std::slice::from_mut(job), &key, update);
                    // A launch failure's reason no longer applies once the job is seen.
                    job.reason = update
                        .state
                        .is_terminal()
                        .then(|| terminal_reason(job).into());
                }
                JobObservation::Missing { message } => {
                    if job.job_id.is_some() {
                        // Launched and gone: AAP purged it before we read its end.
                        job.state = if job.cancel_requested_at.is_some() {
                            JobState::Canceled
                        } else {
                            JobState::Failed
                        };
                        job.reason = Some(reasons::JOB_PURGED.into());
                        job.message = cond::one_line(&format!(
                            "job {} is gone from the provider before its result was read: {message}",
                            id_of(job)
                        ));
                        job.finish_time = Some(self.now.clone());
                    } else if deleting && job.job_type == JobType::Provision {
                        // Never launched; the instance is going away, so do not launch it now.
                        job.state = JobState::Canceled;
                        job.reason = Some(reasons::CANCELED_BEFORE_LAUNCH.into());
                        job.message = "not launched: the instance is being deleted".into();
                        job.finish_time = Some(self.now.clone());
                    } else if job.cancel_requested_at.is_some() {
                        job.state = JobState::Canceled;
                        job.reason = Some(reasons::CANCELED_BY_REQUEST.into());
                        job.message = "canceled by request before it was launched".into();
                        job.finish_time = Some(self.now.clone());
                    } else if self.manual {
                        job.state = JobState::Canceled;
                        job.reason = Some(reasons::NOT_LAUNCHED_MANUAL.into());
                        job.message =
                            "not launched: the instance's management-state is manual".into();
                        job.finish_time = Some(self.now.clone());
                    } else if jobs::find_by_key(&self.before.jobs, &key).is_some() {
                        let via = if job.provider == JobProvider::Eda {
                            LaunchVia::Eda {
                                job_id: jobs::next_eda_job_id(&self.before.jobs),
                            }
                        } else {
                            LaunchVia::Aap
                        };
                        let effect = Effect::Launch {
                            key: key.clone(),
                            job_type: job.job_type,
                            via,
                        };
                        self.effects.push(effect);
                    }
                }
                JobObservation::Unavailable { message } => {
                    let message = cond::one_line(message);
                    if job.job_id.is_none() {
                        job.message = format!("waiting to launch: {message}");
                        // Whether it was launched cannot be looked up: the provider is
                        // the reason it waits, as it is after a launch that failed.
                        job.reason = Some(reasons::PROVIDER_UNREACHABLE.into());
                    }
                    self.requeue_in(self.policy.poll_interval.min(Duration::from_secs(15)));
                }
            }
        }
        // Each update saw its own entry only: a job that just failed takes the detail
        // from an older failed one of its type here.
        jobs::keep_newest_failures(&mut self.st.jobs);
        if self
            .st
            .jobs
            .iter()
            .any(|j| j.state.is_active() && j.provider != JobProvider::Kubevirt)
        {
            self.requeue_in(self.policy.poll_interval);
        }
    }

    /// Takes over what the upstream operator left: its latest provision job gets the config
    /// version it provisioned, and an instance it provisioned is not provisioned again.
    pub(super) fn adopt(&mut self) {
        let annotation = self.obs.reconciled_config_version.as_deref();
        let reconciled = matches_current(annotation, &self.ci.spec);
        let version = self.version.clone();
        let requested = self.provision_requested();
        let latest = self
            .st
            .jobs
            .iter_mut()
            .rev()
            .find(|j| j.job_type == JobType::Provision);
        let message = format!(
            "provisioned before cloudkit took over: annotation {} = {} matches the spec; not provisioned again",
            crate::names::RECONCILED_CONFIG_VERSION_ANNOTATION,
            annotation.unwrap_or_default()
        );
        match latest {
            Some(job)
                if jobs::is_legacy(job)
                    && job.config_version.is_none()
                    && job.state.is_terminal() =>
            {
                if job.state != JobState::Succeeded {
                    // Failed or canceled at this configuration: retried or kept as cloudkit's own.
                    job.config_version = Some(version);
                } else if reconciled {
                    job.config_version = Some(version);
                    job.reason = Some(reasons::ADOPTED.into());
                    let text = format!("provision job {}: {message}", id_of(job));
                    self.event(false, reasons::ADOPTED, text);
                }
                // Succeeded at another configuration: the spec changed since, provision it.
            }
            // A provision request provisions anyway; the history then says so.
            None if reconciled && !requested => {
                let mut job = self.new_job(JobType::Provision, "adopted");
                job.state = JobState::Succeeded;
                job.finish_time = Some(self.now.clone());
                job.config_version = Some(self.version.clone());
                job.reason = Some(reasons::ADOPTED.into());
                job.message = message;
                jobs::append(&mut self.st.jobs, job, self.policy.max_history);
            }
            _ => {}
        }
    }
}

fn terminal_reason(job: &JobEntry) -> &'static str {
    match job.state {
        JobState::Succeeded => reasons::JOB_SUCCEEDED,
        JobState::Canceled if job.cancel_requested_at.is_some() => reasons::CANCELED_BY_REQUEST,
        JobState::Canceled => reasons::JOB_CANCELED,
        _ => reasons::JOB_FAILED,
    }
}
