//! The simulator's state, behind one lock, and the signals tasks and tests wait on.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::watch;
use tokio::task::AbortHandle;

use super::config::{EdaSimConfig, EventStreamConfig, HmacFormat, Playbook, Timing};
use super::faults::FaultTable;
use super::ledger::Ledger;

pub(crate) struct Shared {
    state: Mutex<State>,
    /// Bumped on every change, for tests waiting on the ledger.
    pub(crate) changes: watch::Sender<u64>,
    pub(crate) kube: Option<kube::Client>,
    /// Held by a run while it acts, when playbooks run one at a time.
    pub(crate) turn: Option<tokio::sync::Mutex<()>>,
    tasks: Mutex<Vec<AbortHandle>>,
    /// Set when the simulator stops: the server ends and slow answers are cut short.
    pub(crate) shutdown: watch::Sender<bool>,
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
        };
        Arc::new(Self {
            state: Mutex::new(state),
            changes: watch::Sender::new(0),
            kube: config.kube,
            turn: config.sequential.then(|| tokio::sync::Mutex::new(())),
            tasks: Mutex::new(Vec::new()),
            shutdown: watch::Sender::new(false),
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

    pub(crate) fn track(&self, task: AbortHandle) {
        let mut tasks = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        tasks.retain(|t| !t.is_finished());
        tasks.push(task);
    }

    /// Stops every playbook where it is.
    pub(crate) fn abort_all(&self) {
        let tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|e| e.into_inner()));
        for task in tasks {
            task.abort();
        }
    }

    /// Resolves once the simulator stops.
    pub(crate) async fn stopped(&self) {
        let mut rx = self.shutdown.subscribe();
        let _ = rx.wait_for(|stopped| *stopped).await;
    }
}
