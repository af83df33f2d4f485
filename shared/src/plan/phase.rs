//! Phase and conditions, derived from the jobs and the VM.

use crate::conditions::{self as cond, Cond};
use crate::config_version::matches_current;
use crate::instance::{JobState, JobType, Phase};
use crate::jobs;
use crate::reasons;

use super::*;

impl Planner<'_> {
    pub(super) fn phase_and_conditions(&mut self) {
        self.accepted();
        let Some(job) = jobs::latest_of_type(&self.st.jobs, JobType::Provision).cloned() else {
            self.st.phase = Some(Phase::Starting);
            if self.manual {
                self.set_cond(Cond::new(
                    cond::PROGRESSING,
                    false,
                    reasons::MANUALLY_MANAGED,
                    "management-state is manual: cloudkit launches no provision job",
                ));
            }
            self.invalid_parameters();
            return;
        };
        let id = id_of(&job).to_string();
        let (phase, progressing, available) = match job.state {
            s if s.is_active() => {
                let reason = job.reason.as_deref().unwrap_or(reasons::PROVISIONING);
                (
                    Phase::Starting,
                    Cond::new(
                        cond::PROGRESSING,
                        true,
                        reason,
                        format!("provision job {id} is {s}: {}", job.message),
                    ),
                    Cond::new(
                        cond::AVAILABLE,
                        false,
                        reasons::PROVISIONING,
                        "provisioning is in progress",
                    ),
                )
            }
            JobState::Succeeded => self.provisioned(&id),
            JobState::Canceled => {
                let msg = format!(
                    "provision job {id} was canceled ({}); run `kubectl cloudkit provision {}` to provision again",
                    job.message,
                    self.name()
                );
                if job.reason.as_deref() == Some(reasons::CANCELED_BY_REQUEST)
                    || job.cancel_requested_at.is_some()
                {
                    self.set_cond(Cond::new(
                        cond::CANCELED,
                        true,
                        reasons::CANCELED_BY_REQUEST,
                        msg.clone(),
                    ));
                }
                (
                    Phase::Canceled,
                    Cond::new(
                        cond::PROGRESSING,
                        false,
                        reasons::CANCELED_BY_REQUEST,
                        msg.clone(),
                    ),
                    Cond::new(cond::AVAILABLE, false, reasons::CANCELED_BY_REQUEST, msg),
                )
            }
            _ => {
                let reason = job
                    .reason
                    .clone()
                    .unwrap_or_else(|| reasons::JOB_FAILED.into());
                let failures = jobs::consecutive_failures(&self.st.jobs, JobType::Provision);
                let msg = format!(
                    "provision job {id} failed ({failures} in a row): {}; retrying with backoff",
                    job.message
                );
                (
                    Phase::Failed,
                    Cond::new(cond::PROGRESSING, false, &reason, msg.clone()),
                    Cond::new(cond::AVAILABLE, false, &reason, msg),
                )
            }
        };
        if phase != Phase::Canceled
            && let Some(c) = cond::get(&self.st.conditions, cond::CANCELED)
            && c.status == "True"
            && c.reason != reasons::CANCEL_REQUESTED
        {
            self.remove_cond(cond::CANCELED);
        }
        self.st.phase = Some(phase);
        self.set_cond(progressing);
        self.set_cond(available);
        if !job.state.is_active() {
            self.invalid_parameters();
        }
    }

    pub(super) fn accepted(&mut self) {
        let accepted = match (&self.params_error, self.manual) {
            (None, _) if !self.tenant_ready() => Cond::new(
                cond::ACCEPTED,
                false,
                reasons::TENANT_NOT_READY,
                format!(
                    "waiting for Tenant {} (tenant {:?}) to be Ready before provisioning",
                    crate::tenant::object_name(self.tenant.as_deref().unwrap_or_default()),
                    self.tenant.as_deref().unwrap_or_default()
                ),
            ),
            (Some(e), _) => Cond::new(
                cond::ACCEPTED,
                false,
                reasons::INVALID_TEMPLATE_PARAMETERS,
                e.to_string(),
            ),
            (None, true) => Cond::new(
                cond::ACCEPTED,
                true,
                reasons::MANUALLY_MANAGED,
                "management-state is manual: cloudkit launches no provision or deprovision jobs; restarts still work",
            ),
            (None, false) => Cond::new(
                cond::ACCEPTED,
                true,
                reasons::ACCEPTED,
                "the runner accepted the instance",
            ),
        };
        self.set_cond(accepted);
    }

    /// Parameters a template cannot read: nothing is provisioned until they are fixed.
    pub(super) fn invalid_parameters(&mut self) {
        let Some(e) = &self.params_error else {
            return;
        };
        let message = e.to_string();
        self.st.phase = Some(Phase::Failed);
        self.set_cond(Cond::new(
            cond::PROGRESSING,
            false,
            reasons::INVALID_TEMPLATE_PARAMETERS,
            message,
        ));
    }

    pub(super) fn provisioned(&self, id: &str) -> (Phase, Cond, Cond) {
        let done = |reason: &str, msg: String| Cond::new(cond::PROGRESSING, false, reason, msg);
        match &self.obs.vm {
            None => {
                let msg = format!(
                    "provision job {id} succeeded but no VirtualMachine labelled {}={} exists",
                    crate::names::INSTANCE_LABEL,
                    self.name()
                );
                (
                    Phase::Failed,
                    done(reasons::VM_NOT_FOUND, msg.clone()),
                    Cond::new(cond::AVAILABLE, false, reasons::VM_NOT_FOUND, msg),
                )
            }
            Some(_)
                if !matches_current(
                    self.st.reconciled_config_version.as_deref(),
                    &self.ci.spec,
                ) =>
            {
                let msg = format!(
                    "provision job {id} succeeded but the template reported config version {} instead of {}",
                    self.st
                        .reconciled_config_version
                        .as_deref()
                        .unwrap_or("none"),
                    self.version
                );
                (
                    Phase::Failed,
                    done(reasons::CONFIG_NOT_RECONCILED, msg.clone()),
                    Cond::new(cond::AVAILABLE, false, reasons::CONFIG_NOT_RECONCILED, msg),
                )
            }
            Some(vm) => {
                let msg = format!(
                    "VirtualMachine {}/{} is provisioned at config version {}",
                    vm.namespace, vm.name, self.version
                );
                (
                    Phase::Running,
                    done(
                        reasons::PROVISIONED,
                        format!("provision job {id} succeeded"),
                    ),
                    Cond::new(cond::AVAILABLE, true, reasons::PROVISIONED, msg),
                )
            }
        }
    }
}
