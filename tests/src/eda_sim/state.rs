//! The simulator's state, behind one lock, and the signals tasks and tests wait on.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::watch;

use super::config::{EdaSimConfig, EventStreamConfig, HmacFormat, Playbook, Timing};
use super::faults::FaultTable;
use super::ledger::Ledger;
use crate::sim_server::Lifecycle;

pub(crate) struct Shared {
    state: Mutex<State>,
    /// Bumped on every change, for tests waiting on the ledger.
    pub(crate) changes: watch::Sender<u64>,
    pub(crate) kube: Option<kube::Client>,
    /// When playbooks run one at a time: the ticket whose turn it is. Tickets are
    /// handed out with the events, so runs go in the order of the events.
    pub(crate) serving: Option<watch::Sender<u64>>,
    /// Stopped when the simulator is: the server ends, slow answers are cut short,
    /// playbook runs stop where they are.
    pub(crate) life: Lifecycle,
}

pub(crate) struct State {
    pub(crate) token: Option<String>,
    pub(crate) hmac_secret: Option<String>,
    pub(crate) hmac_format: HmacFormat,
    pub(crate) webhooks: BTreeMap<String, Playbook>,
    /// By uuid.
    pub(crate) streams: BTreeMap<String, EventStreamConfig>,
    pub(crate) timings: BTreeMap<Playbook, Timing>,
    pub(crate) faults: FaultTable,
    pub(crate) ledger: Ledger,
    pub(crate) next_ticket: u64,
}

impl State {
    pub(crate) fn timing(&self, playbook: Playbook) -> Timing {
        self.timings.get(&playbook).copied().unwrap_or_default()
    }
}

impl Shared {
    pub(crate) fn new(config: EdaSimConfig) -> Arc<Self> {
        let state = State {
            token: config.token,
            hmac_secret: config.hmac_secret,
            hmac_format: config.hmac_format,
            webhooks: config.webhooks,
            streams: config
                .streams
                .into_iter()
                .map(|s| (s.uuid.clone(), s))
                .collect(),
            timings: config.timings,
            faults: FaultTable::default(),
            ledger: Ledger::default(),
            next_ticket: 0,
        };
        Arc::new(Self {
            state: Mutex::new(state),
            changes: watch::Sender::new(0),
            kube: config.kube,
            serving: config.sequential.then(|| watch::Sender::new(0)),
            life: Lifecycle::new(),
        })
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        // A panicking test thread must not take the simulator down with it.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Changes the state and wakes whoever waits for a change.
    pub(crate) fn update<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        let out = f(&mut self.lock());
        self.changes.send_modify(|n| *n += 1);
        out
    }

    /// A place in the queue of runs, when they run one at a time.
    pub(crate) fn ticket(&self, state: &mut State) -> Option<u64> {
        self.serving.as_ref()?;
        let ticket = state.next_ticket;
        state.next_ticket += 1;
        Some(ticket)
    }

    /// Waits for `ticket`'s turn; the turn passes on when the guard is dropped.
    pub(crate) async fn turn(&self, ticket: Option<u64>) -> Option<Turn<'_>> {
        let (serving, ticket) = (self.serving.as_ref()?, ticket?);
        let _ = serving.subscribe().wait_for(|s| *s == ticket).await;
        Some(Turn(serving))
    }
}

/// The turn of a run, when runs go one at a time.
pub(crate) struct Turn<'a>(&'a watch::Sender<u64>);

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        self.0.send_modify(|s| *s += 1);
    }
}
