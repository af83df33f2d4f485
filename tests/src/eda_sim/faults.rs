//! Fault injection, per path and per instance: what a broken receiver or a broken
//! playbook does to an event.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use serde::Serialize;

use super::config::endpoint_key;
use crate::aap_sim::InstanceRef;

/// What happens to one event. Chosen once, when the event arrives.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Fault {
    /// Answer 200 and run nothing: the event is lost after it was accepted.
    Drop,
    /// Answer this status (500, 502, ...) without taking the event.
    Status(u16),
    /// Take the event, then answer only after this long (a client with a shorter
    /// timeout gives up although the playbook runs).
    SlowAnswer(Duration),
    /// Start the playbook this much later.
    Delay(Duration),
    /// Create: add the finalizer and then never go on. Delete: delete the VM and VMI
    /// and never remove the finalizer. The run stays `Stalled`.
    NeverFinish,
    /// Create: fail after the VM, before the annotation. Delete: fail after the VM,
    /// before removing the finalizer.
    Fail,
}

/// Which events a fault applies to. An instance's fault wins over a path's, a
/// path's over [`Scope::Any`]; within a scope, queued faults come before a standing one.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    Instance(InstanceRef),
    /// A request path without its leading slash: `provision`, or
    /// `api/eda/v1/external_event_stream/<uuid>/post/`.
    Path(String),
    Any,
}

impl Scope {
    pub fn path(path: &str) -> Self {
        Self::Path(endpoint_key(path))
    }

    pub fn instance(namespace: &str, name: &str) -> Self {
        Self::Instance(InstanceRef {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        })
    }
}

#[derive(Clone, Debug, Default)]
struct ScopeFaults {
    next: VecDeque<Fault>,
    always: Option<Fault>,
}

#[derive(Debug, Default)]
pub(crate) struct FaultTable {
    scopes: BTreeMap<Scope, ScopeFaults>,
}

impl FaultTable {
    pub(crate) fn set(&mut self, scope: Scope, fault: Option<Fault>) {
        self.scopes.entry(scope).or_default().always = fault;
    }

    pub(crate) fn push(&mut self, scope: Scope, fault: Fault, n: usize) {
        let entry = self.scopes.entry(scope).or_default();
        entry.next.extend(std::iter::repeat_n(fault, n));
    }

    pub(crate) fn clear(&mut self, scope: &Scope) {
        self.scopes.remove(scope);
    }

    pub(crate) fn clear_all(&mut self) {
        self.scopes.clear();
    }

    /// The fault for an event at `path` about `instance`; a queued one is used up.
    pub(crate) fn take(&mut self, path: &str, instance: Option<&InstanceRef>) -> Option<Fault> {
        let mut order = Vec::with_capacity(3);
        if let Some(instance) = instance {
            order.push(Scope::Instance(instance.clone()));
        }
        order.push(Scope::Path(endpoint_key(path)));
        order.push(Scope::Any);
        order.into_iter().find_map(|scope| {
            let faults = self.scopes.get_mut(&scope)?;
            faults.next.pop_front().or_else(|| faults.always.clone())
        })
    }
}
