//! The simulator's state, behind one lock, and the change signal jobs wait on.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use k8s_openapi::jiff::Timestamp;
use tokio::sync::watch;
use tokio::time::Instant;

use super::clock::Clock;
use super::concurrency::Concurrency;
use super::config::{AapSimConfig, Access, JobBehavior, Role, TemplateConfig};
use super::faults::{Endpoint, EndpointFaults};
use super::jobs::{self, InstanceRef, Job, JobStatus, StatusChange};
use super::ledger::Ledger;
use super::rng::Rng;
use crate::sim_server::Lifecycle;

/// Key of a per-instance behaviour override; `role: None` applies to both roles.
pub(crate) type BehaviorKey = (InstanceRef, Option<Role>);

pub(crate) struct Shared {
    state: Mutex<State>,
    /// Bumped on every change that may matter to a job driver or a waiting test.
    pub(crate) changes: watch::Sender<u64>,
    pub(crate) clock: Clock,
    pub(crate) kube: Option<kube::Client>,
    pub(crate) aap_finalizer: bool,
    /// The configured prefix, e.g. `/api/controller`, used in every URL we hand out.
    pub(crate) prefix: String,
    /// Stopped when the simulator is: the server stops, hung requests end, job drivers
    /// are aborted.
    pub(crate) life: Lifecycle,
    pub(crate) concurrency: Concurrency,
}

pub(crate) struct State {
    pub(crate) templates: BTreeMap<u64, TemplateConfig>,
    /// Organization names; an organization's id is its index + 1.
    pub(crate) organizations: Vec<String>,
    pub(crate) jobs: BTreeMap<u64, Job>,
    pub(crate) next_job_id: u64,
    pub(crate) instance_behaviors: HashMap<BehaviorKey, JobBehavior>,
    pub(crate) tokens: HashMap<String, Access>,
    pub(crate) users: HashMap<String, (String, Access)>,
    pub(crate) faults: BTreeMap<Endpoint, EndpointFaults>,
    pub(crate) rng: Rng,
    pub(crate) ledger: Ledger,
    pub(crate) clock: Clock,
}

impl Shared {
    pub(crate) fn new(config: AapSimConfig) -> Arc<Self> {
        let clock = Clock::new();
        let mut state = State {
            templates: BTreeMap::new(),
            organizations: Vec::new(),
            jobs: BTreeMap::new(),
            next_job_id: config.first_job_id.max(1),
            instance_behaviors: HashMap::new(),
            tokens: config.tokens.into_iter().collect(),
            users: config
                .users
                .into_iter()
                .map(|(user, password, access)| (user, (password, access)))
                .collect(),
            faults: BTreeMap::new(),
            rng: Rng::new(config.seed),
            ledger: Ledger::default(),
            clock,
        };
        for template in config.templates {
            state.add_template(template);
        }
        Arc::new(Self {
            state: Mutex::new(state),
            changes: watch::Sender::new(0),
            clock,
            kube: config.kube,
            aap_finalizer: config.aap_finalizer,
            prefix: config.api_prefix.trim_end_matches('/').to_owned(),
            life: Lifecycle::new(),
            concurrency: Concurrency::default(),
        })
    }

    /// The state; a panic elsewhere while holding the lock does not make it unusable.
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Changes the state and wakes every job driver and waiter.
    pub(crate) fn update<R>(&self, f: impl FnOnce(&mut State, Instant) -> R) -> R {
        let result = {
            let mut state = self.lock();
            f(&mut state, Instant::now())
        };
        self.notify();
        result
    }

    pub(crate) fn notify(&self) {
        self.changes.send_modify(|v| *v = v.wrapping_add(1));
    }

    /// Starts the driver of a new job.
    pub(crate) fn spawn_job(self: &Arc<Self>, id: u64) {
        let handle = tokio::spawn(jobs::drive(Arc::clone(self), id));
        self.life.track(handle.abort_handle());
    }

    /// `/api/controller/v2/...`-style path for `rest` (no leading slash).
    pub(crate) fn url(&self, rest: &str) -> String {
        format!("{}/v2/{rest}", self.prefix)
    }
}

impl State {
    pub(crate) fn add_template(&mut self, template: TemplateConfig) {
        self.organization_id(&template.organization.clone());
        self.templates.insert(template.id, template);
    }

    pub(crate) fn organization_id(&mut self, name: &str) -> u64 {
        let index = match self.organizations.iter().position(|o| o == name) {
            Some(i) => i,
            None => {
                self.organizations.push(name.to_owned());
                self.organizations.len() - 1
            }
        };
        index as u64 + 1
    }

    pub(crate) fn organization_id_of(&self, name: &str) -> Option<u64> {
        self.organizations
            .iter()
            .position(|o| o == name)
            .map(|i| i as u64 + 1)
    }

    /// The behaviour in force for a job: instance + role, then instance, then template.
    pub(crate) fn behavior_for(&self, job: &Job) -> JobBehavior {
        if let Some(instance) = &job.instance {
            for key in [(instance.clone(), job.role), (instance.clone(), None)] {
                if let Some(b) = self.instance_behaviors.get(&key) {
                    return b.clone();
                }
            }
        }
        self.templates
            .get(&job.template_id)
            .map(|t| t.behavior.clone())
            .unwrap_or_else(|| job.launch_behavior.clone())
    }

    /// Moves a job to `status`, with AWX's bookkeeping: `started` on running, `finished`
    /// on a terminal status; then checks the provision / deprovision overlap.
    pub(crate) fn set_status(&mut self, id: u64, status: JobStatus, now: Instant) {
        let at = self.clock.at(now);
        let Some(job) = self.jobs.get_mut(&id) else {
            return;
        };
        if job.status == status || job.status.is_terminal() {
            return;
        }
        job.status = status;
        job.phase_since = now;
        job.modified = at;
        job.history.push(StatusChange { status, at });
        if status == JobStatus::Running && job.started.is_none() {
            job.started = Some(at);
        }
        if status.is_terminal() && job.finished.is_none() {
            job.finished = Some(at);
        }
        if let Some(instance) = job.instance.clone() {
            self.ledger.check_overlap(&self.jobs, &instance, at);
        }
    }

    /// An API cancel, as AWX does it: `canceled_on` now; a job that has not started is
    /// canceled at once, a running one keeps running until its worker stops.
    pub(crate) fn cancel(&mut self, id: u64, now: Instant) {
        let at = self.clock.at(now);
        let Some(job) = self.jobs.get_mut(&id) else {
            return;
        };
        if !job.status.is_active() {
            return;
        }
        job.canceled_on.get_or_insert(at);
        if job.status == JobStatus::Running {
            job.cancel_requested.get_or_insert(now);
        } else {
            self.set_status(id, JobStatus::Canceled, now);
        }
    }

    pub(crate) fn now(&self) -> Timestamp {
        self.clock.now()
    }
}
