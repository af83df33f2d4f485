//! The functional core: `plan(instance, observed, policy) -> Plan`.
//!
//! The runner observes (provider job states, the VM and VMI, the clock), asks `plan` what to
//! do, performs the effects, feeds their outcomes back through [`apply_outcome`], and writes
//! the resulting status once. Every lifecycle rule (docs/lifecycle-rules.md) lives here.

mod cancel;
mod deletion;
mod fold;
mod outcome;
mod phase;
mod provision;
mod restart;
mod tenant;
mod types;

pub use outcome::apply_outcome;
pub use types::*;

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use crate::conditions::{self as cond, Cond};
use crate::config_version::desired_config_version;
use crate::instance::{
    ComputeInstance, ComputeInstanceStatus, JobEntry, JobProvider, JobState, JobType,
    VirtualMachineReference,
};
use crate::jobs;
use crate::management::{self, ManagementState};
use crate::reasons;
use crate::template_parameters::{self, TemplateParametersError};

/// Decides the next step for one instance.
pub fn plan(ci: &ComputeInstance, obs: &Observed, policy: &Policy) -> Plan {
    let mut p = Planner::new(ci, obs, policy);
    p.fold_observations();
    p.adopt();
    if ci.metadata.deletion_timestamp.is_some() {
        p.deletion();
    } else {
        p.tenant();
        p.cancel_signal();
        p.provision();
        p.restart();
        p.phase_and_conditions();
    }
    p.finish()
}

fn id_of(job: &JobEntry) -> &str {
    job.job_id.as_deref().unwrap_or("(not launched)")
}

/// `ts + d`, saturating at the end of time.
pub fn after(ts: Timestamp, d: Duration) -> Timestamp {
    ts.saturating_add(d).unwrap_or(Timestamp::MAX)
}

/// Capped exponential backoff for the `failures`-th consecutive failure (1-based).
pub fn backoff(policy: &Policy, failures: u32) -> Duration {
    let exp = failures.saturating_sub(1).min(20);
    policy
        .retry_base
        .saturating_mul(1u32 << exp)
        .min(policy.retry_max)
}

struct Planner<'a> {
    ci: &'a ComputeInstance,
    obs: &'a Observed,
    policy: &'a Policy,
    now: Time,
    uid: String,
    version: String,
    /// Set when `spec.templateParameters` cannot be handed to a template.
    params_error: Option<TemplateParametersError>,
    manual: bool,
    /// The instance's tenant (annotation), if it has one.
    tenant: Option<String>,
    before: ComputeInstanceStatus,
    st: ComputeInstanceStatus,
    effects: Vec<Effect>,
    requeue: Option<Duration>,
    release_finalizer: bool,
}

impl<'a> Planner<'a> {
    fn new(ci: &'a ComputeInstance, obs: &'a Observed, policy: &'a Policy) -> Self {
        let before = ci.status.clone().unwrap_or_default();
        let mut st = before.clone();
        let version = desired_config_version(&ci.spec);
        st.desired_config_version = Some(version.clone());
        st.observed_generation = ci.metadata.generation;
        if obs.reconciled_config_version.is_some() {
            st.reconciled_config_version
                .clone_from(&obs.reconciled_config_version);
        }
        if let Some(vm) = &obs.vm {
            st.virtual_machine_reference = Some(VirtualMachineReference {
                namespace: vm.namespace.clone(),
                kube_virt_virtual_machine_name: vm.name.clone(),
            });
        }
        Self {
            ci,
            obs,
            policy,
            now: Time(obs.now),
            uid: ci.metadata.uid.clone().unwrap_or_default(),
            version,
            params_error: template_parameters::decode(ci.spec.template_parameters.as_deref()).err(),
            manual: management::of(ci) == ManagementState::Manual,
            tenant: ci
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(crate::names::TENANT_ANNOTATION))
                .map(|t| t.trim().to_string())
                .filter(|t| !t.is_empty()),
            before,
            st,
            effects: Vec::new(),
            requeue: None,
            release_finalizer: false,
        }
    }

    fn requeue_in(&mut self, d: Duration) {
        self.requeue = Some(self.requeue.map_or(d, |r| r.min(d)));
    }

    fn event(&mut self, warning: bool, reason: &str, message: impl Into<String>) {
        self.effects.push(Effect::Event(EventNote {
            warning,
            reason: reason.to_string(),
            message: cond::one_line(&message.into()),
        }));
    }

    fn set_cond(&mut self, c: Cond) {
        cond::set(
            &mut self.st.conditions,
            &c,
            &self.now,
            self.ci.metadata.generation,
        );
    }

    fn remove_cond(&mut self, type_: &str) {
        cond::remove(&mut self.st.conditions, type_);
    }

    fn name(&self) -> &str {
        self.ci.metadata.name.as_deref().unwrap_or("")
    }

    /// Was this intent already stored before this pass (so launching it is safe)?
    fn stored(&self, key: &str) -> bool {
        jobs::find_by_key(&self.before.jobs, key).is_some()
    }

    fn new_job(&self, job_type: JobType, discriminator: &str) -> JobEntry {
        let provider = match self.policy.provider {
            ProviderKind::Aap => JobProvider::Aap,
            ProviderKind::Eda => JobProvider::Eda,
        };
        JobEntry {
            job_id: None,
            job_type,
            state: JobState::Pending,
            timestamp: self.now.clone(),
            start_time: None,
            finish_time: None,
            message: format!("{job_type} requested; launching"),
            reason: None,
            provider,
            correlation_key: format!(
                "{}:{job_type}:{discriminator}:{}",
                self.uid,
                self.now.0.as_millisecond()
            ),
            config_version: None,
            requested_at: None,
            cancel_requested_at: None,
            vmi_uid: None,
            block_deletion_on_failure: false,
            failure: None,
            url: None,
        }
    }

    fn append(&mut self, job: JobEntry) {
        jobs::append(&mut self.st.jobs, job, self.policy.max_history);
        // The intent must be stored before it is launched: come straight back.
        self.requeue_in(Duration::from_millis(200));
    }

    fn finish(mut self) -> Plan {
        // One Event per job transition a person would want to see.
        for job in &self.st.jobs {
            let old = jobs::find_by_key(&self.before.jobs, &job.correlation_key);
            let changed = old.is_some_and(|o| o.state != job.state)
                || (old.is_none() && job.state.is_terminal());
            if !changed || job.provider == JobProvider::Kubevirt && job.state == JobState::Failed {
                continue;
            }
            let warning = matches!(job.state, JobState::Failed | JobState::Canceled);
            let note = EventNote {
                warning,
                reason: match job.reason.as_deref() {
                    Some(r) if r == reasons::JOB_PURGED || r == reasons::ADOPTED => r.to_string(),
                    _ => format!("Job{}", job.state),
                },
                message: cond::one_line(&format!(
                    "{} job {} is {}{}{}",
                    job.job_type,
                    id_of(job),
                    job.state,
                    if job.message.is_empty() {
                        String::new()
                    } else {
                        format!(": {}", job.message)
                    },
                    job.failure
                        .as_ref()
                        .map(|f| format!("; failed at {}", f.summary()))
                        .unwrap_or_default()
                )),
            };
            self.effects.push(Effect::Event(note));
        }
        jobs::trim(&mut self.st.jobs, self.policy.max_history);
        Plan {
            status: self.st,
            effects: self.effects,
            requeue_after: self.requeue,
            release_finalizer: self.release_finalizer,
        }
    }
}
