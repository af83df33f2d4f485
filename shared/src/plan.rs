//! The functional core: `plan(instance, observed, policy) -> Plan`.
//!
//! The runner observes (provider job states, the VM and VMI, the clock), asks `plan` what to
//! do, performs the effects, feeds their outcomes back through [`apply_outcome`], and writes
//! the resulting status once. Every lifecycle rule (docs/lifecycle-rules.md) lives here.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use crate::conditions::{self as cond, Cond};
use crate::config_version::{desired_config_version, matches_current};
use crate::instance::{
    ComputeInstance, ComputeInstanceStatus, DeprovisionFailurePolicy, JobEntry, JobProvider,
    JobState, JobType, Phase, VirtualMachineReference,
};
use crate::jobs::{self, JobUpdate};
use crate::management::{self, ManagementState};
use crate::reasons;
use crate::signals::{Signal, restart_acknowledged, signal, until};
use crate::template_parameters::{self, TemplateParametersError};

/// Which provider new jobs use (in-flight jobs stay with the one that started them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProviderKind {
    Aap,
    Eda,
}

/// The runner's settings that shape decisions.
#[derive(Clone, Debug, PartialEq)]
pub struct Policy {
    pub provider: ProviderKind,
    pub max_history: usize,
    /// How often in-flight provider jobs are polled.
    pub poll_interval: Duration,
    /// First retry delay after a failed job; doubles per failure up to `retry_max`.
    pub retry_base: Duration,
    pub retry_max: Duration,
    /// How long a cancel may stay unconfirmed before it is reported and sent again.
    pub cancel_deadline: Duration,
    /// How long a restart may take until a new VMI runs.
    pub restart_deadline: Duration,
    /// Failed deprovisions after which policy `Proceed` lets deletion finish.
    pub deprovision_attempts: u32,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            provider: ProviderKind::Aap,
            max_history: crate::settings::DEFAULT_MAX_JOB_HISTORY,
            poll_interval: Duration::from_secs(30),
            retry_base: Duration::from_secs(10),
            retry_max: Duration::from_secs(600),
            cancel_deadline: Duration::from_secs(120),
            restart_deadline: Duration::from_secs(300),
            deprovision_attempts: 3,
        }
    }
}

/// What the provider says about one job, keyed by correlation key in [`Observed::jobs`].
#[derive(Clone, Debug, PartialEq)]
pub enum JobObservation {
    /// The provider knows the job (for an intent: it was launched before a crash).
    Seen {
        job_id: String,
        provider: JobProvider,
        update: JobUpdate,
    },
    /// The provider has no such job: an intent was never launched, a launched job was purged.
    Missing { message: String },
    /// The provider could not be asked this time.
    Unavailable { message: String },
}

/// The KubeVirt VM labelled with the instance's name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VmInfo {
    pub namespace: String,
    pub name: String,
    /// Run strategy `Halted` (or `running: false`): no VMI will come back by itself.
    pub halted: bool,
}

/// The VMI of that VM.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VmiInfo {
    pub uid: String,
    pub running: bool,
}

/// The Tenant object of an instance's tenant, as the runner found it.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct TenantInfo {
    /// Phase Ready: its namespace and network exist.
    pub ready: bool,
    /// This instance is among its owners (so garbage collection keeps it while in use).
    pub owned: bool,
}

/// Everything the runner saw just before planning.
#[derive(Clone, Debug, PartialEq)]
pub struct Observed {
    pub now: Timestamp,
    /// The instance's Tenant object (None: it does not exist, or there is no tenant).
    pub tenant: Option<TenantInfo>,
    pub jobs: BTreeMap<String, JobObservation>,
    pub vm: Option<VmInfo>,
    pub vmi: Option<VmiInfo>,
    /// `cloudkit.openshift.io/reconciled-config-version` on the instance.
    pub reconciled_config_version: Option<String>,
    /// The playbooks' `computeinstance-aap` finalizer is present.
    pub aap_finalizer: bool,
}

/// One thing the runner must do.
#[derive(Clone, Debug, PartialEq)]
pub enum Effect {
    /// Launch the job recorded (as an intent) under `key`.
    Launch {
        key: String,
        job_type: JobType,
        provider: ProviderKind,
        /// EDA has no job ids of its own: the runner's `eda-webhook-N`.
        eda_job_id: Option<String>,
    },
    /// Ask the provider to cancel a job (check `can_cancel`, POST once).
    Cancel {
        key: String,
        job_id: String,
        provider: JobProvider,
    },
    /// Delete the VMI, with a UID precondition so a recreated VMI is never deleted.
    DeleteVmi {
        key: String,
        namespace: String,
        name: String,
        uid: String,
    },
    /// Create the Tenant object, or add this instance to its owners.
    EnsureTenant {
        /// The tenant's name (`spec.name`).
        tenant: String,
        /// The Tenant object, in the instance's namespace.
        name: String,
    },
    /// Record a Kubernetes Event.
    Event(EventNote),
}

/// A Kubernetes Event to record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventNote {
    pub warning: bool,
    pub reason: String,
    pub message: String,
}

/// What `plan` decided.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// The status to write (the runner skips the write when it equals the stored one).
    pub status: ComputeInstanceStatus,
    pub effects: Vec<Effect>,
    /// Come back after this long even if nothing changes.
    pub requeue_after: Option<Duration>,
    /// Deletion may finish: the runner's finalizer can go.
    pub release_finalizer: bool,
}

/// The result of performing an effect, fed back into the status by [`apply_outcome`].
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    Launched {
        key: String,
        job_id: String,
        provider: JobProvider,
    },
    /// The launch did not happen. `permanent` failures fail the job (retried with backoff);
    /// transient ones leave the intent to be looked up and launched again.
    LaunchFailed {
        key: String,
        reason: String,
        message: String,
        permanent: bool,
    },
    /// The provider said the job can no longer be canceled, or the cancel could not be sent.
    CancelFailed {
        key: String,
        message: String,
    },
    /// The VMI was deleted (or was already gone).
    VmiDeleted {
        key: String,
    },
    VmiDeleteFailed {
        key: String,
        message: String,
    },
}

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

/// Applies effect outcomes to the planned status; returns the Events to record.
pub fn apply_outcome(
    status: &mut ComputeInstanceStatus,
    outcome: &Outcome,
    now: Timestamp,
) -> Vec<EventNote> {
    let tnow = Time(now);
    let mut events = Vec::new();
    match outcome {
        Outcome::Launched {
            key,
            job_id,
            provider,
        } => {
            if let Some(job) = job_mut(&mut status.jobs, key) {
                job.job_id = Some(job_id.clone());
                job.provider = *provider;
                job.message = format!("{} job {job_id} launched", job.job_type);
                job.reason = None;
                events.push(EventNote {
                    warning: false,
                    reason: reasons::JOB_LAUNCHED.into(),
                    message: job.message.clone(),
                });
            }
        }
        Outcome::LaunchFailed {
            key,
            reason,
            message,
            permanent,
        } => {
            if let Some(job) = job_mut(&mut status.jobs, key) {
                job.message = cond::one_line(message);
                job.reason = Some(reason.clone());
                if *permanent {
                    job.state = JobState::Failed;
                    job.finish_time = Some(tnow);
                }
                events.push(EventNote {
                    warning: true,
                    reason: reason.clone(),
                    message: job.message.clone(),
                });
            }
        }
        Outcome::CancelFailed { key, message } => {
            if let Some(job) = job_mut(&mut status.jobs, key) {
                events.push(EventNote {
                    warning: true,
                    reason: reasons::CANCEL_FAILED.into(),
                    message: cond::one_line(&format!(
                        "cancel of {} job {}: {message}",
                        job.job_type,
                        id_of(job)
                    )),
                });
            }
        }
        Outcome::VmiDeleted { key } => {
            if let Some(job) = job_mut(&mut status.jobs, key) {
                job.state = JobState::Running;
                job.start_time = Some(tnow);
                job.message = format!(
                    "deleted VMI {}; waiting for KubeVirt to start a new one",
                    job.vmi_uid.as_deref().unwrap_or("?")
                );
            }
        }
        Outcome::VmiDeleteFailed { key, message } => {
            if let Some(job) = job_mut(&mut status.jobs, key) {
                job.state = JobState::Failed;
                job.finish_time = Some(tnow.clone());
                job.reason = Some(reasons::VMI_DELETION_FAILED.into());
                job.message = cond::one_line(&format!("could not delete the VMI: {message}"));
                let failed = Cond::new(
                    cond::RESTART_FAILED,
                    true,
                    reasons::VMI_DELETION_FAILED,
                    job.message.clone(),
                );
                cond::set(
                    &mut status.conditions,
                    &failed,
                    &tnow,
                    status.observed_generation,
                );
                cond::remove(&mut status.conditions, cond::RESTART_IN_PROGRESS);
                events.push(EventNote {
                    warning: true,
                    reason: reasons::VMI_DELETION_FAILED.into(),
                    message: job.message.clone(),
                });
            }
        }
    }
    events
}

fn job_mut<'a>(jobs: &'a mut [JobEntry], key: &str) -> Option<&'a mut JobEntry> {
    jobs::find_by_key_mut(jobs, key)
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

    /// Folds provider observations into active provider jobs; launches recorded intents that
    /// the provider does not know.
    fn fold_observations(&mut self) {
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
            let job = job_mut(&mut self.st.jobs, &key).expect("key taken from the list");
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
                        let eda_job_id = (job.provider == JobProvider::Eda)
                            .then(|| jobs::next_eda_job_id(&self.before.jobs));
                        let effect = Effect::Launch {
                            key: key.clone(),
                            job_type: job.job_type,
                            provider: if job.provider == JobProvider::Eda {
                                ProviderKind::Eda
                            } else {
                                ProviderKind::Aap
                            },
                            eda_job_id,
                        };
                        self.effects.push(effect);
                    }
                }
                JobObservation::Unavailable { message } => {
                    let message = cond::one_line(message);
                    if job.job_id.is_none() {
                        job.message = format!("waiting to launch: {message}");
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
    fn adopt(&mut self) {
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

    fn provision_requested(&self) -> bool {
        let requested = self.ci.spec.provision_requested_at.as_ref().map(|t| t.0);
        let acked = self.st.last_provision_requested_at.as_ref().map(|t| t.0);
        matches!(signal(requested, acked, self.obs.now), Signal::Due(_))
    }

    /// The instance's Tenant, as upstream: the object exists and lists the instance among
    /// its owners, and `status.tenantReference` names it.
    fn tenant(&mut self) {
        let Some(tenant) = self.tenant.clone() else {
            return;
        };
        let name = crate::tenant::object_name(&tenant);
        if !self.obs.tenant.as_ref().is_some_and(|t| t.owned) {
            self.effects.push(Effect::EnsureTenant {
                tenant,
                name: name.clone(),
            });
            // Checked again soon: another instance may have changed the Tenant meanwhile.
            self.requeue_in(Duration::from_secs(2));
        }
        self.st.tenant_reference = Some(crate::instance::TenantReference {
            name,
            namespace: self.ci.metadata.namespace.clone().unwrap_or_default(),
        });
        if !self.tenant_ready() {
            // The Tenant controller's status write wakes the instance; poll in case it does not.
            self.requeue_in(Duration::from_secs(5));
        }
    }

    fn tenant_ready(&self) -> bool {
        self.tenant.is_none() || self.obs.tenant.as_ref().is_some_and(|t| t.ready)
    }

    /// Why no new provision job may be launched now, if there is a reason; says so once.
    fn launch_blocked(&mut self) -> bool {
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

    /// Sends (or, after the deadline, re-sends) the cancel of an active provider job.
    fn cancel_job(&mut self, key: &str, why: &str) {
        let Some(job) = jobs::find_by_key(&self.st.jobs, key).cloned() else {
            return;
        };
        let Some(job_id) = job.job_id.clone() else {
            // Not launched yet: mark the wish; the launch is then skipped (see fold_observations).
            if let Some(j) = job_mut(&mut self.st.jobs, key) {
                j.cancel_requested_at.get_or_insert(self.now.clone());
            }
            return;
        };
        match job.cancel_requested_at {
            None => {
                self.effects.push(Effect::Cancel {
                    key: key.to_string(),
                    job_id: job_id.clone(),
                    provider: job.provider,
                });
                let j = job_mut(&mut self.st.jobs, key).expect("found above");
                j.cancel_requested_at = Some(self.now.clone());
                j.message = format!("cancel requested: {why}");
                self.event(
                    false,
                    reasons::CANCEL_REQUESTED,
                    format!("canceling {} job {job_id}: {why}", job.job_type),
                );
            }
            Some(sent) => {
                let deadline = after(sent.0, self.policy.cancel_deadline);
                if self.obs.now >= deadline {
                    self.effects.push(Effect::Cancel {
                        key: key.to_string(),
                        job_id: job_id.clone(),
                        provider: job.provider,
                    });
                    let j = job_mut(&mut self.st.jobs, key).expect("found above");
                    j.cancel_requested_at = Some(self.now.clone());
                    j.message = format!(
                        "cancel not confirmed after {}s; asked again",
                        self.policy.cancel_deadline.as_secs()
                    );
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

    fn cancel_signal(&mut self) {
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
    fn fold_unlaunched_cancel(&mut self, key: &str) {
        self.effects
            .retain(|e| !matches!(e, Effect::Launch { key: k, .. } if k == key));
        if let Some(j) = job_mut(&mut self.st.jobs, key) {
            j.state = JobState::Canceled;
            j.reason = Some(reasons::CANCELED_BY_REQUEST.into());
            j.message = "canceled by request before it was launched".into();
            j.finish_time = Some(self.now.clone());
        }
    }

    fn provision(&mut self) {
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

    fn provision_signal_while_active(&mut self) {
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
    fn retry_due(&mut self, last: &JobEntry, job_type: JobType) -> bool {
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

    fn restart(&mut self) {
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

    fn start_restart(&mut self, at: Timestamp) {
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
    fn progress_restart(&mut self) {
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
                let j = job_mut(&mut self.st.jobs, &key).expect("active job");
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
            let j = job_mut(&mut self.st.jobs, &key).expect("active job");
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

    fn deletion(&mut self) {
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
    fn anything_to_deprovision(&self) -> bool {
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

    fn launch_deprovision(&mut self) {
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

    fn policy_blocks(&self) -> bool {
        self.ci.spec.deprovision_failure_policy.unwrap_or_default()
            == DeprovisionFailurePolicy::Block
    }

    fn deprovision_failed(&mut self, latest: &JobEntry) {
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

    fn phase_and_conditions(&mut self) {
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

    fn accepted(&mut self) {
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
    fn invalid_parameters(&mut self) {
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

    fn provisioned(&self, id: &str) -> (Phase, Cond, Cond) {
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

fn terminal_reason(job: &JobEntry) -> &'static str {
    match job.state {
        JobState::Succeeded => reasons::JOB_SUCCEEDED,
        JobState::Canceled if job.cancel_requested_at.is_some() => reasons::CANCELED_BY_REQUEST,
        JobState::Canceled => reasons::JOB_CANCELED,
        _ => reasons::JOB_FAILED,
    }
}
