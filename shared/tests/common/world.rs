//! A tiny pure model of the runner's loop (observe → plan → act → write status) around a
//! make-believe provider, so lifecycle rules can be checked step by step and by proptest.

use std::collections::BTreeMap;
use std::time::Duration;

use cloudkit_shared::jobs::JobUpdate;
use cloudkit_shared::plan::{
    Effect, JobObservation, Observed, Outcome, Plan, Policy, TenantInfo, VmInfo, VmiInfo,
    apply_outcome, plan,
};
use cloudkit_shared::{ComputeInstance, ComputeInstanceSpec, JobProvider, JobState, JobType};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

/// One job as the make-believe provider knows it.
#[derive(Clone, Debug)]
pub struct ProviderJob {
    pub id: String,
    pub key: String,
    pub job_type: JobType,
    pub state: JobState,
    pub cancels: u32,
}

pub struct World {
    pub ci: ComputeInstance,
    pub policy: Policy,
    pub now: Timestamp,
    pub provider: Vec<ProviderJob>,
    pub vm: Option<VmInfo>,
    pub vmi: Option<VmiInfo>,
    pub annotation: Option<String>,
    pub vmi_deletions: u32,
    pub next_vmi: u32,
    pub released: bool,
    pub last_plan: Option<Plan>,
    /// Every overlap of an active provision and an active deprovision in the provider.
    pub overlaps: u32,
    /// The instance's Tenant object, once EnsureTenant made it (Ready only when a test says).
    pub tenant: Option<TenantInfo>,
}

impl World {
    pub fn new() -> Self {
        let mut ci = ComputeInstance::new(
            "vm-1",
            ComputeInstanceSpec {
                template_id: "vm_small".into(),
                ..Default::default()
            },
        );
        ci.metadata.namespace = Some("ns".into());
        ci.metadata.uid = Some("uid-1".into());
        ci.metadata.generation = Some(1);
        Self {
            ci,
            policy: Policy {
                poll_interval: Duration::from_secs(5),
                ..Policy::default()
            },
            now: Timestamp::from_second(1_800_000_000).unwrap(),
            provider: Vec::new(),
            vm: None,
            vmi: None,
            annotation: None,
            vmi_deletions: 0,
            next_vmi: 0,
            released: false,
            last_plan: None,
            overlaps: 0,
            tenant: None,
        }
    }

    pub fn advance(&mut self, secs: i64) {
        self.now = Timestamp::from_second(self.now.as_second() + secs).unwrap();
    }

    pub fn jobs(&self) -> &[cloudkit_shared::JobEntry] {
        self.ci
            .status
            .as_ref()
            .map(|s| s.jobs.as_slice())
            .unwrap_or_default()
    }

    pub fn observe(&self) -> Observed {
        let mut jobs = BTreeMap::new();
        for job in self.jobs().iter().filter(|j| j.state.is_active()) {
            if job.provider == JobProvider::Kubevirt {
                continue;
            }
            let seen = self.provider.iter().find(|p| p.key == job.correlation_key);
            let obs = match seen {
                Some(p) => JobObservation::Seen {
                    job_id: p.id.clone(),
                    provider: JobProvider::Aap,
                    update: JobUpdate {
                        state: p.state,
                        message: format!("aap says {}", p.state),
                        start_time: None,
                        finish_time: p.state.is_terminal().then_some(Time(self.now)),
                        failure: None,
                        url: None,
                    },
                },
                None => JobObservation::Missing {
                    message: "not found".into(),
                },
            };
            jobs.insert(job.correlation_key.clone(), obs);
        }
        Observed {
            now: self.now,
            tenant: self.tenant.clone(),
            jobs,
            vm: self.vm.clone(),
            vmi: self.vmi.clone(),
            reconciled_config_version: self.annotation.clone(),
            aap_finalizer: false,
        }
    }

    /// One reconcile: plan, perform effects, apply outcomes, write status.
    pub fn step(&mut self) -> Plan {
        let p = plan(&self.ci, &self.observe(), &self.policy);
        let mut status = p.status.clone();
        for effect in &p.effects {
            let outcome = match effect {
                Effect::Launch { key, job_type, .. } => {
                    let id = (self.provider.len() + 100).to_string();
                    self.provider.push(ProviderJob {
                        id: id.clone(),
                        key: key.clone(),
                        job_type: *job_type,
                        state: JobState::Pending,
                        cancels: 0,
                    });
                    Some(Outcome::Launched {
                        key: key.clone(),
                        job_id: id,
                        provider: JobProvider::Aap,
                    })
                }
                Effect::Cancel { key, .. } => {
                    if let Some(job) = self.provider.iter_mut().find(|j| &j.key == key) {
                        job.cancels += 1;
                        if job.state.is_active() && job.state != JobState::Running {
                            job.state = JobState::Canceled;
                        }
                    }
                    None
                }
                Effect::DeleteVmi { key, uid, .. } => {
                    self.vmi_deletions += 1;
                    if self.vmi.as_ref().is_some_and(|v| &v.uid == uid) {
                        self.vmi = None;
                    }
                    Some(Outcome::VmiDeleted { key: key.clone() })
                }
                Effect::EnsureTenant { .. } => {
                    let ready = self.tenant.as_ref().is_some_and(|t| t.ready);
                    self.tenant = Some(TenantInfo { ready, owned: true });
                    None
                }
                Effect::Event(_) => None,
            };
            if let Some(o) = outcome {
                apply_outcome(&mut status, &o, self.now);
            }
        }
        self.ci.status = Some(status);
        if p.release_finalizer {
            self.released = true;
        }
        self.check_overlap();
        self.last_plan = Some(p.clone());
        p
    }

    pub fn check_overlap(&mut self) {
        let active = |t: JobType| {
            self.provider
                .iter()
                .any(|j| j.job_type == t && j.state.is_active())
        };
        if active(JobType::Provision) && active(JobType::Deprovision) {
            self.overlaps += 1;
        }
    }

    /// Moves every provider job of `job_type` that is active to `state`.
    pub fn provider_sets(&mut self, job_type: JobType, state: JobState) {
        for j in self
            .provider
            .iter_mut()
            .filter(|j| j.job_type == job_type && j.state.is_active())
        {
            j.state = state;
        }
        self.check_overlap();
    }

    /// What a successful provision playbook does.
    pub fn playbook_provisions(&mut self) {
        let version = self
            .ci
            .status
            .as_ref()
            .and_then(|s| s.desired_config_version.clone());
        self.annotation = version;
        self.vm = Some(VmInfo {
            namespace: "ns".into(),
            name: "vm-1".into(),
            halted: false,
        });
        self.new_vmi();
    }

    pub fn new_vmi(&mut self) {
        self.next_vmi += 1;
        self.vmi = Some(VmiInfo {
            uid: format!("vmi-{}", self.next_vmi),
            running: true,
        });
    }

    pub fn delete(&mut self) {
        self.ci.metadata.deletion_timestamp = Some(Time(self.now));
    }

    pub fn phase(&self) -> Option<cloudkit_shared::Phase> {
        self.ci.status.as_ref().and_then(|s| s.phase)
    }

    pub fn condition(
        &self,
        type_: &str,
    ) -> Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
        self.ci
            .status
            .as_ref()
            .and_then(|s| s.conditions.iter().find(|c| c.type_ == type_).cloned())
    }

    pub fn count(&self, job_type: JobType) -> usize {
        self.provider
            .iter()
            .filter(|j| j.job_type == job_type)
            .count()
    }

    /// Create → Running with one provision job.
    pub fn provisioned() -> Self {
        let mut w = Self::new();
        w.step();
        w.step();
        w.provider_sets(JobType::Provision, JobState::Running);
        w.step();
        w.playbook_provisions();
        w.provider_sets(JobType::Provision, JobState::Succeeded);
        w.step();
        w
    }
}

impl World {
    /// A VM with a running VMI, as KubeVirt would have it.
    pub fn with_vm(&mut self) {
        self.vm = Some(VmInfo {
            namespace: "ns".into(),
            name: "vm-1".into(),
            halted: false,
        });
        self.new_vmi();
    }
}
