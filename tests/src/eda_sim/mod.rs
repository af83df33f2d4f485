//! A simulator of the two EDA receivers cloudkit may post to, faithful to docs/providers.md:
//! ansible-rulebook's webhook source (any `POST /<path>`) and EDA server's event streams
//! (`/api/eda/v1/external_event_stream/<uuid>/post/`); behind them a "rulebook" whose
//! create / delete playbooks act on a real API server; fault injection per path and per
//! instance; and a ledger of requests, events and playbook runs.
//!
//! ```no_run
//! # async fn demo(client: kube::Client) -> Result<(), cloudkit_testbed::eda_sim::EdaSimError> {
//! use std::time::Duration;
//! use cloudkit_testbed::eda_sim::*;
//!
//! let sim = EdaSimulator::start(EdaSimConfig::new().token("t").kube(client)).await?;
//! // CLOUDKIT_COMPUTE_INSTANCE_PROVISION_WEBHOOK = sim.provision_url(), token "t"
//! sim.fault_next(Scope::instance("ns", "vm1"), Fault::NeverFinish, 1);
//! sim.set_fault(Scope::path(DEPROVISION_PATH), Some(Fault::Delay(Duration::from_secs(1))));
//! let run = sim.wait_until(Duration::from_secs(10), || sim.runs_of("ns", "vm1").pop()).await;
//! # Ok(()) }
//! ```

mod auth;
mod config;
mod event;
mod faults;
mod ledger;
mod playbook;
mod responses;
mod rulebook;
mod server;
mod state;
mod stream;
mod webhook;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

pub use crate::aap_sim::InstanceRef;
pub use auth::signature;
pub use config::{
    DEPROVISION_PATH, EdaSimConfig, EventStreamConfig, HmacFormat, PROVISION_PATH, Playbook,
    StreamAuth, Timing,
};
pub use faults::{Fault, Scope};
pub use ledger::{
    AuthCheck, EventRecord, Flavor, LedgerSnapshot, RequestRecord, RunRecord, RunStatus, Step,
    StepRecord,
};

use crate::sim_server::Server;
use config::endpoint_key;
use state::Shared;

#[derive(Debug, thiserror::Error)]
pub enum EdaSimError {
    #[error("binding the EDA simulator to 127.0.0.1: {0}")]
    Bind(#[source] std::io::Error),
}

/// A running simulator; stops when dropped.
pub struct EdaSimulator {
    shared: Arc<Shared>,
    server: Server,
}

impl EdaSimulator {
    /// Starts the simulator on a free loopback port.
    pub async fn start(config: EdaSimConfig) -> Result<Self, EdaSimError> {
        let shared = Shared::new(config);
        let stop = Arc::clone(&shared);
        let server = Server::start(server::router(Arc::clone(&shared)), async move {
            stop.life.stopped().await
        })
        .await
        .map_err(EdaSimError::Bind)?;
        Ok(Self { shared, server })
    }

    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// `http://127.0.0.1:PORT`.
    pub fn origin(&self) -> String {
        self.server.origin()
    }

    /// The URL of a webhook path (`"provision"` or `"/provision"`).
    pub fn url(&self, path: &str) -> String {
        format!("{}/{}", self.origin(), endpoint_key(path))
    }

    /// `url(PROVISION_PATH)`: the default create route.
    pub fn provision_url(&self) -> String {
        self.url(PROVISION_PATH)
    }

    /// `url(DEPROVISION_PATH)`: the default delete route.
    pub fn deprovision_url(&self) -> String {
        self.url(DEPROVISION_PATH)
    }

    /// The post URL of an event stream.
    pub fn stream_url(&self, uuid: &str) -> String {
        format!("{}{}", self.origin(), stream::path_of(uuid))
    }

    /// Stops the simulator (as dropping it does) and waits, up to 5 s, until its port is
    /// closed. Running playbooks stop where they are.
    pub async fn stop(mut self) {
        self.server.stop(&self.shared.life).await;
    }

    // ---- configuration, changeable at run time ----------------------------------------

    /// The webhook source's bearer token; `None`: no token needed.
    pub fn set_token(&self, token: Option<&str>) {
        let token = token.map(str::to_owned);
        self.shared.update(|s| s.token = token);
    }

    /// The webhook source's HMAC secret and format; `None`: no signature needed.
    pub fn set_hmac(&self, secret: Option<&str>, format: HmacFormat) {
        let secret = secret.map(str::to_owned);
        self.shared.update(|s| {
            s.hmac_secret = secret;
            s.hmac_format = format;
        });
    }

    /// What events posted to the webhook `path` run; `None`: nothing (still accepted).
    pub fn set_route(&self, path: &str, playbook: Option<Playbook>) {
        let key = endpoint_key(path);
        self.shared.update(|s| match playbook {
            Some(p) => {
                s.webhooks.insert(key, p);
            }
            None => {
                s.webhooks.remove(&key);
            }
        });
    }

    /// Adds or replaces an event stream.
    pub fn add_event_stream(&self, stream: EventStreamConfig) {
        self.shared.update(|s| {
            s.streams.insert(stream.uuid.clone(), stream);
        });
    }

    /// Deletes an event stream: its URL answers 400 from now on.
    pub fn remove_event_stream(&self, uuid: &str) {
        self.shared.update(|s| {
            s.streams.remove(uuid);
        });
    }

    /// Takes effect at a run's next wait.
    pub fn set_timing(&self, playbook: Playbook, timing: Timing) {
        self.shared.update(|s| {
            s.timings.insert(playbook, timing);
        });
    }

    // ---- faults -------------------------------------------------------------------------

    /// Every event in `scope` gets `fault` from now on (`None`: no standing fault).
    pub fn set_fault(&self, scope: Scope, fault: Option<Fault>) {
        self.shared.update(|s| s.faults.set(scope, fault));
    }

    /// The next `n` events in `scope` get `fault` (after those queued before).
    pub fn fault_next(&self, scope: Scope, fault: Fault, n: usize) {
        self.shared.update(|s| s.faults.push(scope, fault, n));
    }

    /// Removes the standing and the queued faults of `scope`.
    pub fn clear_fault(&self, scope: &Scope) {
        self.shared.update(|s| s.faults.clear(scope));
    }

    pub fn clear_faults(&self) {
        self.shared.update(|s| s.faults.clear_all());
    }

    // ---- ledger -------------------------------------------------------------------------

    pub fn ledger(&self) -> LedgerSnapshot {
        self.shared.lock().ledger.snapshot()
    }

    pub fn requests(&self) -> Vec<RequestRecord> {
        self.shared.lock().ledger.requests.clone()
    }

    pub fn events(&self) -> Vec<EventRecord> {
        self.shared.lock().ledger.events.clone()
    }

    pub fn runs(&self) -> Vec<RunRecord> {
        self.shared.lock().ledger.runs.clone()
    }

    pub fn run(&self, id: u64) -> Option<RunRecord> {
        self.shared.lock().ledger.run(id).cloned()
    }

    /// Runs for one instance, oldest first.
    pub fn runs_of(&self, namespace: &str, name: &str) -> Vec<RunRecord> {
        self.shared
            .lock()
            .ledger
            .runs
            .iter()
            .filter(|r| {
                r.instance
                    .as_ref()
                    .is_some_and(|i| i.namespace == namespace && i.name == name)
            })
            .cloned()
            .collect()
    }

    /// Re-evaluates `check` after every change in the simulator until it gives a value;
    /// `None` on timeout.
    pub async fn wait_until<T>(
        &self,
        timeout: Duration,
        check: impl Fn() -> Option<T>,
    ) -> Option<T> {
        crate::sim_server::wait_until(&self.shared.changes, timeout, check).await
    }

    /// Waits until run `id` satisfies `pred`.
    pub async fn wait_for_run(
        &self,
        id: u64,
        timeout: Duration,
        pred: impl Fn(&RunRecord) -> bool,
    ) -> Option<RunRecord> {
        self.wait_until(timeout, || self.run(id).filter(|r| pred(r)))
            .await
    }

    /// Waits until run `id` has ended (a stalled run never does).
    pub async fn wait_for_end(&self, id: u64, timeout: Duration) -> Option<RunRecord> {
        self.wait_for_run(id, timeout, |r| r.status.is_terminal())
            .await
    }
}

impl Drop for EdaSimulator {
    fn drop(&mut self) {
        self.shared.life.stop();
    }
}

impl std::fmt::Debug for EdaSimulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EdaSimulator")
            .field("origin", &self.origin())
            .finish()
    }
}
