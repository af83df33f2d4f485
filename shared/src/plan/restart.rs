//! Restart: the intent, the VMI delete, waiting for the new VMI.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use std::time::Duration;

use crate::conditions::{self as cond, Cond};
use crate::instance::{JobProvider, JobState, JobType};
use crate::jobs;
use crate::reasons;
use crate::signals::{Signal, restart_acknowledged, signal, until};

use super::*;

impl Planner<'_> {
    pub(super) fn restart(&mut self) {
        self.progress_restart();
        // One restart at a time: a newer request waits until the active one ends.
        if jobs::active_of_type(&self.st.jobs, JobType::Restart).is_some() {
            return;
        }
        let acked = restart_acknowledged(Some(&self.st));
        let requested = self.ci.spec.restart_requested_at.as_ref().map(|t| t.0);
        match signal(requested, acked, self.obs.now) {
            Signal::Absent | Signal::Done => self.remove_cond(cond::RESTART_SCHEDULED),
            Signal::Scheduled(at) => {
                self.set_cond(Cond::new(
                    cond::RESTART_SCHEDULED,
                    true,
                    reasons::RESTART_SCHEDULED,
                    format!("restart scheduled for {at}"),
                ));
                self.requeue_in(until(self.obs.now, at));
            }
            Signal::Due(at) => {
                self.remove_cond(cond::RESTART_SCHEDULED);
                self.start_restart(at);
            }
        }
    }

    pub(super) fn start_restart(&mut self, at: Timestamp) {
        let mut job = self.new_job(JobType::Restart, &at.to_string());
        job.provider = JobProvider::Kubevirt;
        job.requested_at = Some(Time(at));
        let failure = match (
            &self.st.virtual_machine_reference,
            &self.obs.vm,
            &self.obs.vmi,
        ) {
            (None, _, _) | (_, None, _) => Some((
                reasons::NO_VM_REFERENCE,
                "no VirtualMachine is known for this instance yet; restart it once it is Running"
                    .to_string(),
            )),
            (_, Some(vm), _) if vm.halted => Some((
                reasons::VM_HALTED,
                format!(
                    "VirtualMachine {}/{} is halted; start it before restarting",
                    vm.namespace, vm.name
                ),
            )),
            (_, Some(vm), None) => Some((
                reasons::VMI_NOT_FOUND,
                format!(
                    "VirtualMachine {}/{} has no VirtualMachineInstance to restart",
                    vm.namespace, vm.name
                ),
            )),
            (_, Some(_), Some(vmi)) => {
                job.vmi_uid = Some(vmi.uid.clone());
                job.message = format!("restart requested for {at}; deleting VMI {}", vmi.uid);
                None
            }
        };
        match failure {
            Some((reason, message)) => {
                job.state = JobState::Failed;
                job.finish_time = Some(self.now.clone());
                job.reason = Some(reason.into());
                job.message.clone_from(&message);
                self.set_cond(Cond::new(
                    cond::RESTART_FAILED,
                    true,
                    reason,
                    message.clone(),
                ));
                self.remove_cond(cond::RESTART_IN_PROGRESS);
                self.event(true, reason, message);
                jobs::append(&mut self.st.jobs, job, self.policy.max_history);
            }
            None => {
                self.set_cond(Cond::new(
                    cond::RESTART_IN_PROGRESS,
                    true,
                    reasons::RESTART_REQUESTED,
                    job.message.clone(),
                ));
                self.remove_cond(cond::RESTART_FAILED);
                self.append(job);
            }
        }
    }

    /// Drives a stored restart job: delete the old VMI once, then wait for a new UID.
    pub(super) fn progress_restart(&mut self) {
        let Some(job) = jobs::active_of_type(&self.st.jobs, JobType::Restart).cloned() else {
            return;
        };
        if !self.stored(&job.correlation_key) {
            return;
        }
        let old = job.vmi_uid.clone().unwrap_or_default();
        let key = job.correlation_key.clone();
        match &self.obs.vmi {
            Some(vmi) if vmi.uid == old => {
                if job.state == JobState::Pending
                    && let Some(r) = &self.st.virtual_machine_reference
                {
                    self.effects.push(Effect::DeleteVmi {
                        key: key.clone(),
                        namespace: r.namespace.clone(),
                        name: r.kube_virt_virtual_machine_name.clone(),
                        uid: old.clone(),
                    });
                    // The deadline runs from the deletion (the job's start), not from now.
                    self.requeue_in(Duration::from_secs(2));
                    return;
                }
            }
            Some(vmi) if vmi.running => {
                let message = format!("VMI {old} replaced by running VMI {}", vmi.uid);
                let j = jobs::find_by_key_mut(&mut self.st.jobs, &key).expect("active job");
                j.state = JobState::Succeeded;
                j.finish_time = Some(self.now.clone());
                j.start_time.get_or_insert(j.timestamp.clone());
                j.message.clone_from(&message);
                j.reason = Some(reasons::RESTARTED.into());
                self.st.last_restarted_at.clone_from(&job.requested_at);
                self.remove_cond(cond::RESTART_IN_PROGRESS);
                self.remove_cond(cond::RESTART_FAILED);
                return;
            }
            _ => {}
        }
        let since = job.start_time.as_ref().unwrap_or(&job.timestamp).0;
        let deadline = after(since, self.policy.restart_deadline);
        if self.obs.now >= deadline {
            let message = format!(
                "no new VMI was running {}s after VMI {old} was deleted",
                self.policy.restart_deadline.as_secs()
            );
            let j = jobs::find_by_key_mut(&mut self.st.jobs, &key).expect("active job");
            j.state = JobState::Failed;
            j.finish_time = Some(self.now.clone());
            j.reason = Some(reasons::RESTART_TIMEOUT.into());
            j.message.clone_from(&message);
            self.set_cond(Cond::new(
                cond::RESTART_FAILED,
                true,
                reasons::RESTART_TIMEOUT,
                message.clone(),
            ));
            self.remove_cond(cond::RESTART_IN_PROGRESS);
            self.event(true, reasons::RESTART_TIMEOUT, message);
        } else {
            self.requeue_in(until(self.obs.now, deadline).min(Duration::from_secs(5)));
        }
    }
}
