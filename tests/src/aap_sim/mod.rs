//! A simulator of the AAP / AWX controller REST API subset cloudkit uses, faithful to
//! docs/providers.md: job template lookup, launch, job detail and list, cancel, stdout; with
//! a job state machine on tokio's clock, fault injection per endpoint, "playbook
//! effects" on a real API server, and a ledger of everything that happened.
//!
//! ```no_run
//! # async fn demo() -> Result<(), cloudkit_testbed::aap_sim::AapSimError> {
//! use std::time::Duration;
//! use cloudkit_testbed::aap_sim::*;
//!
//! let sim = AapSimulator::start(
//!     AapSimConfig::new()
//!         .template(TemplateConfig::job(7, "cloudkit-provision").role(Role::Provision))
//!         .template(TemplateConfig::job(8, "cloudkit-deprovision").role(Role::Deprovision)),
//! )
//! .await?;
//! // CLOUDKIT_AAP_URL = sim.base_url(), CLOUDKIT_AAP_TOKEN = DEFAULT_TOKEN
//! sim.fail_next(Endpoint::Launch, 1, 503);
//! sim.set_template_behavior(7, JobBehavior::uniform(Duration::from_millis(10)));
//! assert!(sim.overlap().is_none());
//! # Ok(()) }
//! ```

mod auth;
mod clock;
mod concurrency;
mod config;
pub(crate) mod effects;
mod events;
mod faults;
mod job_views;
mod jobs;
mod launch;
mod ledger;
mod metadata;
mod organization_views;
mod playbook;
mod pyjson;
mod query;
mod responses;
mod rng;
mod root_views;
mod routes;
mod server;
mod state;
mod template_views;
mod workflow_nodes;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

pub use config::{
    AapSimConfig, Access, DEFAULT_TOKEN, FOREVER, FailingTask, JobBehavior, JobKind, Outcome, Role,
    TemplateConfig,
};
pub use faults::{Endpoint, EndpointFaults, Fault};
pub use jobs::{InstanceRef, JobRecord, JobStatus, StatusChange};
pub use ledger::{
    EffectOutcome, EffectRecord, EndpointCounters, LedgerSnapshot, Overlap, RequestRecord,
};
pub use playbook::PlaybookRun;

use crate::sim_server::Server;
use state::Shared;

#[derive(Debug, thiserror::Error)]
pub enum AapSimError {
    #[error("binding the AAP simulator to 127.0.0.1: {0}")]
    Bind(#[source] std::io::Error),
    #[error("template id {0} is used twice (job and workflow job templates share ids)")]
    DuplicateTemplate(u64),
}

/// A running simulator; stops when dropped.
pub struct AapSimulator {
    shared: Arc<Shared>,
    server: Server,
}

impl AapSimulator {
    /// Starts the simulator on a free loopback port.
    pub async fn start(config: AapSimConfig) -> Result<Self, AapSimError> {
        let mut seen = std::collections::BTreeSet::new();
        if let Some(t) = config.templates.iter().find(|t| !seen.insert(t.id)) {
            return Err(AapSimError::DuplicateTemplate(t.id));
        }
        let shared = Shared::new(config);
        let stop = Arc::clone(&shared);
        let server = Server::start(server::router(Arc::clone(&shared)), async move {
            stop.life.stopped().await
        })
        .await
        .map_err(AapSimError::Bind)?;
        Ok(Self { shared, server })
    }

    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// `http://127.0.0.1:PORT`: join the paths in responses to this.
    pub fn origin(&self) -> String {
        self.server.origin()
    }

    /// `http://127.0.0.1:PORT/api/controller` (the configured prefix): what
    /// `CLOUDKIT_AAP_URL` holds; clients append `/v2/`.
    pub fn base_url(&self) -> String {
        format!("{}{}", self.origin(), self.shared.prefix)
    }

    /// `base_url()` + `/v2/`.
    pub fn api_url(&self) -> String {
        format!("{}/v2/", self.base_url())
    }

    /// Stops the simulator (as dropping it does) and waits, up to 5 s, until its port
    /// is closed and its connections are gone: AAP is down from then on.
    pub async fn stop(mut self) {
        self.server.stop(&self.shared.life).await;
    }

    // ---- templates and behaviour -------------------------------------------------

    /// Adds or replaces a template.
    pub fn add_template(&self, template: TemplateConfig) {
        self.shared.update(|s, _| s.add_template(template));
    }

    /// Changes a template in place; false if there is none with that id.
    pub fn update_template(&self, id: u64, f: impl FnOnce(&mut TemplateConfig)) -> bool {
        self.shared.update(|s, _| {
            let Some(t) = s.templates.get_mut(&id) else {
                return false;
            };
            f(t);
            let org = t.organization.clone();
            s.organization_id(&org);
            true
        })
    }

    /// Appends a line to a job's output, as a running playbook would; false if there is
    /// no such job.
    pub fn append_stdout(&self, id: u64, line: &str) -> bool {
        self.shared.update(|s, _| match s.jobs.get_mut(&id) {
            Some(job) => {
                job.log(line);
                true
            }
            None => false,
        })
    }

    pub fn set_template_behavior(&self, id: u64, behavior: JobBehavior) -> bool {
        self.update_template(id, |t| t.behavior = behavior)
    }

    /// Overrides the behaviour of jobs of one instance; `role: None` for both roles
    /// (a role-specific override wins). Takes effect on running jobs at once.
    pub fn set_instance_behavior(
        &self,
        namespace: &str,
        name: &str,
        role: Option<Role>,
        behavior: JobBehavior,
    ) {
        let key = (instance(namespace, name), role);
        self.shared.update(|s, _| {
            s.instance_behaviors.insert(key, behavior);
        });
    }

    pub fn clear_instance_behavior(&self, namespace: &str, name: &str, role: Option<Role>) {
        let key = (instance(namespace, name), role);
        self.shared.update(|s, _| {
            s.instance_behaviors.remove(&key);
        });
    }

    // ---- credentials --------------------------------------------------------------

    pub fn set_token(&self, token: &str, access: Access) {
        self.shared.update(|s, _| {
            s.tokens.insert(token.to_owned(), access);
        });
    }

    /// The token answers 401 from now on (a rotated or expired token).
    pub fn revoke_token(&self, token: &str) {
        self.shared.update(|s, _| {
            s.tokens.remove(token);
        });
    }

    pub fn set_user(&self, user: &str, password: &str, access: Access) {
        self.shared.update(|s, _| {
            s.users
                .insert(user.to_owned(), (password.to_owned(), access));
        });
    }

    // ---- faults -------------------------------------------------------------------

    pub fn faults(&self, endpoint: Endpoint) -> EndpointFaults {
        self.shared
            .lock()
            .faults
            .get(&endpoint)
            .cloned()
            .unwrap_or_default()
    }

    pub fn set_faults(&self, endpoint: Endpoint, faults: EndpointFaults) {
        self.update_faults(endpoint, |f| *f = faults);
    }

    pub fn update_faults(&self, endpoint: Endpoint, f: impl FnOnce(&mut EndpointFaults)) {
        self.shared
            .update(|s, _| f(s.faults.entry(endpoint).or_default()));
    }

    /// No faults anywhere any more.
    pub fn clear_faults(&self) {
        self.shared.update(|s, _| s.faults.clear());
    }

    /// Queues `fault` for the next `n` requests of `endpoint` (after those queued before).
    pub fn push_faults(&self, endpoint: Endpoint, fault: Fault, n: usize) {
        self.update_faults(endpoint, |f| {
            f.next.extend(std::iter::repeat_n(fault, n));
        });
    }

    /// The next `n` requests answer `status` (500, 502, 503, ...) with a body.
    pub fn fail_next(&self, endpoint: Endpoint, n: usize, status: u16) {
        self.push_faults(endpoint, Fault::Status(status), n);
    }

    /// The next `n` requests answer 429 with `Retry-After: retry_after_secs`.
    pub fn rate_limit_next(&self, endpoint: Endpoint, n: usize, retry_after_secs: u64) {
        self.push_faults(endpoint, Fault::TooManyRequests { retry_after_secs }, n);
    }

    /// The next `n` requests never get an answer.
    pub fn hang_next(&self, endpoint: Endpoint, n: usize) {
        self.push_faults(endpoint, Fault::Hang, n);
    }

    /// Every request of `endpoint` waits `latency` first.
    pub fn set_latency(&self, endpoint: Endpoint, latency: Duration) {
        self.update_faults(endpoint, |f| f.latency = latency);
    }

    /// With probability `rate` (seeded RNG) a request fails with 500, 502 or 503.
    pub fn set_error_rate(&self, endpoint: Endpoint, rate: f64) {
        self.update_faults(endpoint, |f| {
            f.rate = rate;
            f.rate_faults = vec![Fault::Status(500), Fault::Status(502), Fault::Status(503)];
        });
    }

    /// Every `POST .../cancel/` takes `d` to answer (the cancel itself takes effect at
    /// once, as in AWX, which records the cancel before signalling the worker).
    pub fn slow_cancel(&self, d: Duration) {
        self.update_faults(Endpoint::Cancel, |f| f.slow_response = d);
    }

    /// The next `n` cancels answer 202 and do nothing.
    pub fn lose_next_cancels(&self, n: usize) {
        self.push_faults(Endpoint::Cancel, Fault::LostCancel, n);
    }

    /// Every cancel answers 202 and does nothing (until `false`).
    pub fn lose_cancels(&self, lose: bool) {
        self.update_faults(Endpoint::Cancel, |f| {
            f.always = lose.then_some(Fault::LostCancel);
        });
    }

    /// The next `n` launches create their job and then answer `status` (e.g. 502).
    pub fn launch_then_fail_next(&self, n: usize, status: u16) {
        self.push_faults(Endpoint::Launch, Fault::CommitThenStatus(status), n);
    }

    // ---- jobs ---------------------------------------------------------------------

    pub fn job(&self, id: u64) -> Option<JobRecord> {
        let state = self.shared.lock();
        state.jobs.get(&id).map(|j| j.record(&self.shared.clock))
    }

    /// Every job ever launched, purged ones included, by id.
    pub fn jobs(&self) -> Vec<JobRecord> {
        let state = self.shared.lock();
        state
            .jobs
            .values()
            .map(|j| j.record(&self.shared.clock))
            .collect()
    }

    /// Jobs of one instance, by id.
    pub fn jobs_of(&self, namespace: &str, name: &str) -> Vec<JobRecord> {
        let wanted = instance(namespace, name);
        self.jobs()
            .into_iter()
            .filter(|j| j.instance.as_ref() == Some(&wanted))
            .collect()
    }

    /// Jobs launched from one template, by id.
    pub fn jobs_of_template(&self, template_id: u64) -> Vec<JobRecord> {
        self.jobs()
            .into_iter()
            .filter(|j| j.template_id == template_id)
            .collect()
    }

    /// Purges a job (as AWX's cleanup_jobs does): it answers 404 from now on and stops
    /// where it is. False if there is no such job.
    pub fn purge_job(&self, id: u64) -> bool {
        self.shared.update(|s, _| match s.jobs.get_mut(&id) {
            Some(job) => {
                job.purged = true;
                if let Some(instance) = job.instance.clone() {
                    let at = s.clock.now();
                    s.ledger.check_overlap(&s.jobs, &instance, at);
                }
                true
            }
            None => false,
        })
    }

    /// Waits until job `id` satisfies `pred`; `None` on timeout or if it never existed.
    pub async fn wait_for_job(
        &self,
        id: u64,
        timeout: Duration,
        pred: impl Fn(&JobRecord) -> bool,
    ) -> Option<JobRecord> {
        self.wait_until(timeout, || self.job(id).filter(|j| pred(j)))
            .await
    }

    /// Waits until job `id` is terminal.
    pub async fn wait_for_terminal(&self, id: u64, timeout: Duration) -> Option<JobRecord> {
        self.wait_for_job(id, timeout, |j| j.status.is_terminal())
            .await
    }

    /// Re-evaluates `check` after every change in the simulator until it gives a value.
    pub async fn wait_until<T>(
        &self,
        timeout: Duration,
        check: impl Fn() -> Option<T>,
    ) -> Option<T> {
        crate::sim_server::wait_until(&self.shared.changes, timeout, check).await
    }

    // ---- ledger -------------------------------------------------------------------

    pub fn ledger(&self) -> LedgerSnapshot {
        let state = self.shared.lock();
        LedgerSnapshot {
            requests: state.ledger.requests.clone(),
            jobs: state
                .jobs
                .values()
                .map(|j| j.record(&self.shared.clock))
                .collect(),
            counters: state.ledger.counters.clone(),
            overlaps: state.ledger.overlaps.clone(),
            effects: state.ledger.effects.clone(),
        }
    }

    pub fn requests(&self) -> Vec<RequestRecord> {
        self.shared.lock().ledger.requests.clone()
    }

    pub fn counters(&self) -> BTreeMap<Endpoint, EndpointCounters> {
        self.shared.lock().ledger.counters.clone()
    }

    pub fn counter(&self, endpoint: Endpoint) -> EndpointCounters {
        self.shared
            .lock()
            .ledger
            .counters
            .get(&endpoint)
            .cloned()
            .unwrap_or_default()
    }

    /// The first provision / deprovision overlap, if one ever happened.
    pub fn overlap(&self) -> Option<Overlap> {
        self.shared.lock().ledger.overlaps.first().cloned()
    }

    pub fn overlaps(&self) -> Vec<Overlap> {
        self.shared.lock().ledger.overlaps.clone()
    }

    pub fn effects(&self) -> Vec<EffectRecord> {
        self.shared.lock().ledger.effects.clone()
    }

    // ---- concurrency --------------------------------------------------------------

    /// Requests being handled now (hung ones included).
    pub fn requests_in_flight(&self) -> usize {
        self.shared.concurrency.now()
    }

    /// The most requests ever handled at once (since the last [`Self::reset_peak_in_flight`]).
    pub fn peak_requests_in_flight(&self) -> usize {
        self.shared.concurrency.peak()
    }

    pub fn reset_peak_in_flight(&self) {
        self.shared.concurrency.reset_peak();
    }
}

impl Drop for AapSimulator {
    fn drop(&mut self) {
        self.shared.life.stop();
    }
}

impl std::fmt::Debug for AapSimulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AapSimulator")
            .field("base_url", &self.base_url())
            .finish()
    }
}

fn instance(namespace: &str, name: &str) -> InstanceRef {
    InstanceRef {
        namespace: namespace.to_owned(),
        name: name.to_owned(),
    }
}
