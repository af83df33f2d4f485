//! Deletion: cancel what runs, deprovision once, release the finalizer.

use crate::conditions::{self as cond, Cond};
use crate::instance::{DeprovisionFailurePolicy, JobEntry, JobState, JobType, Phase};
use crate::jobs;
use crate::reasons;

use super::*;

impl Planner<'_> {
    pub(super) fn deletion(&mut self) {
        self.st.phase = Some(Phase::Deleting);
        if self.manual {
            self.set_cond(Cond::new(
                cond::DELETING,
                true,
                reasons::MANUALLY_MANAGED,
                "management-state is manual: no deprovision job; deletion proceeds",
            ));
            self.release_finalizer = true;
            return;
        }
        if let Some(job) = jobs::active_of_type(&self.st.jobs, JobType::Provision).cloned() {
            let msg = format!(
                "canceling provision job {} before deprovisioning",
                id_of(&job)
            );
            self.set_cond(Cond::new(
                cond::DELETING,
                true,
                reasons::CANCELING_PROVISION,
                msg,
            ));
            if job.job_id.is_some() {
                self.cancel_job(&job.correlation_key, "the instance is being deleted");
            }
            return;
        }
        let latest = jobs::latest_of_type(&self.st.jobs, JobType::Deprovision).cloned();
        let Some(latest) = latest else {
            if !self.anything_to_deprovision() {
                self.set_cond(Cond::new(
                    cond::DELETING,
                    true,
                    reasons::NOTHING_TO_DEPROVISION,
                    "nothing was provisioned; deletion proceeds",
                ));
                self.release_finalizer = true;
                return;
            }
            self.launch_deprovision();
            return;
        };
        match latest.state {
            s if s.is_active() => {
                let msg = format!("deprovision job {} is {s}", id_of(&latest));
                self.set_cond(Cond::new(
                    cond::DELETING,
                    true,
                    reasons::DEPROVISIONING,
                    msg,
                ));
            }
            JobState::Succeeded => {
                self.remove_cond(cond::DEPROVISION_FAILED);
                self.set_cond(Cond::new(
                    cond::DELETING,
                    true,
                    reasons::DEPROVISIONED,
                    format!("deprovision job {} succeeded", id_of(&latest)),
                ));
                self.release_finalizer = true;
            }
            _ => self.deprovision_failed(&latest),
        }
    }

    /// Whether a provision job ever reached the provider (EDA: whether its playbook ran).
    pub(super) fn anything_to_deprovision(&self) -> bool {
        match self.policy.provider {
            ProviderKind::Eda => self.obs.aap_finalizer,
            ProviderKind::Aap => {
                self.obs.aap_finalizer
                    || self.obs.vm.is_some()
                    || self
                        .st
                        .jobs
                        .iter()
                        .any(|j| j.job_type == JobType::Provision && j.job_id.is_some())
            }
        }
    }

    pub(super) fn launch_deprovision(&mut self) {
        let deletion = self
            .ci
            .metadata
            .deletion_timestamp
            .as_ref()
            .map(|t| t.0.to_string())
            .unwrap_or_default();
        let mut job = self.new_job(JobType::Deprovision, &deletion);
        job.config_version = Some(self.version.clone());
        job.block_deletion_on_failure = self.policy_blocks();
        self.set_cond(Cond::new(
            cond::DELETING,
            true,
            reasons::DEPROVISIONING,
            "launching the deprovision job",
        ));
        self.append(job);
    }

    pub(super) fn policy_blocks(&self) -> bool {
        self.ci.spec.deprovision_failure_policy.unwrap_or_default()
            == DeprovisionFailurePolicy::Block
    }

    pub(super) fn deprovision_failed(&mut self, latest: &JobEntry) {
        let failures = jobs::consecutive_failures(&self.st.jobs, JobType::Deprovision);
        if !self.policy_blocks() && failures >= self.policy.deprovision_attempts {
            let msg = format!(
                "deprovision failed {failures} times (last: {}); spec.deprovisionFailurePolicy is Proceed, so deletion finishes — the VM may remain",
                latest.message
            );
            self.set_cond(Cond::new(
                cond::DEPROVISION_FAILED,
                true,
                reasons::DEPROVISION_FAILED,
                msg.clone(),
            ));
            self.event(true, reasons::DELETION_PROCEEDS, msg);
            self.release_finalizer = true;
            return;
        }
        let delay = backoff(self.policy, failures.max(1));
        let msg = format!(
            "deprovision job {} {} ({}); attempt {failures}, retrying within {}s; fix the deprovision template, or set spec.deprovisionFailurePolicy: Proceed to let deletion finish",
            id_of(latest),
            latest.state,
            latest.message,
            delay.as_secs()
        );
        self.set_cond(Cond::new(
            cond::DEPROVISION_FAILED,
            true,
            reasons::DEPROVISION_FAILED,
            msg,
        ));
        if latest.state == JobState::Canceled || self.retry_due(latest, JobType::Deprovision) {
            self.launch_deprovision();
        }
    }
}
