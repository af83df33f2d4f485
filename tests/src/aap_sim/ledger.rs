//! What happened, for tests to assert on: requests, counters, overlaps, playbook effects.

use std::collections::BTreeMap;

use k8s_openapi::jiff::Timestamp;
use serde::Serialize;

use super::config::Role;
use super::faults::{Endpoint, Fault};
use super::jobs::{InstanceRef, Job, JobRecord};

/// One HTTP request as the simulator saw it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RequestRecord {
    pub seq: u64,
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub endpoint: Endpoint,
    /// `None` while unanswered: hung, or dropped by the client before the answer.
    pub status: Option<u16>,
    pub fault: Option<Fault>,
    pub at: Timestamp,
    pub answered_at: Option<Timestamp>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct EndpointCounters {
    pub requests: u64,
    /// Answers by status code.
    pub statuses: BTreeMap<u16, u64>,
    /// Requests a fault was injected into.
    pub faulted: u64,
}

/// A provision and a deprovision job of one instance were active at the same time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Overlap {
    pub instance: InstanceRef,
    pub provision_job: u64,
    pub deprovision_job: u64,
    pub at: Timestamp,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EffectOutcome {
    Applied,
    /// Not attempted; why (no Kubernetes client configured).
    Skipped(String),
    /// Attempted and failed; the job failed with it.
    Failed(String),
}

/// A playbook's action on the cluster.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct EffectRecord {
    pub job_id: u64,
    pub role: Role,
    pub instance: InstanceRef,
    pub at: Timestamp,
    pub outcome: EffectOutcome,
}

/// A copy of the ledger at one moment.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LedgerSnapshot {
    pub requests: Vec<RequestRecord>,
    pub jobs: Vec<JobRecord>,
    pub counters: BTreeMap<Endpoint, EndpointCounters>,
    pub overlaps: Vec<Overlap>,
    pub effects: Vec<EffectRecord>,
}

#[derive(Debug, Default)]
pub(crate) struct Ledger {
    pub(crate) requests: Vec<RequestRecord>,
    pub(crate) counters: BTreeMap<Endpoint, EndpointCounters>,
    pub(crate) overlaps: Vec<Overlap>,
    pub(crate) effects: Vec<EffectRecord>,
}

impl Ledger {
    pub(crate) fn begin(
        &mut self,
        method: &str,
        path: &str,
        query: Option<&str>,
        endpoint: Endpoint,
        at: Timestamp,
    ) -> usize {
        let seq = self.requests.len();
        self.requests.push(RequestRecord {
            seq: seq as u64,
            method: method.to_owned(),
            path: path.to_owned(),
            query: query.map(str::to_owned),
            endpoint,
            status: None,
            fault: None,
            at,
            answered_at: None,
        });
        self.counters.entry(endpoint).or_default().requests += 1;
        seq
    }

    pub(crate) fn faulted(&mut self, seq: usize, fault: &Fault) {
        let record = &mut self.requests[seq];
        record.fault = Some(fault.clone());
        self.counters.entry(record.endpoint).or_default().faulted += 1;
    }

    pub(crate) fn answered(&mut self, seq: usize, status: u16, at: Timestamp) {
        let record = &mut self.requests[seq];
        record.status = Some(status);
        record.answered_at = Some(at);
        *self
            .counters
            .entry(record.endpoint)
            .or_default()
            .statuses
            .entry(status)
            .or_default() += 1;
    }

    /// Records every pair of active provision / deprovision jobs of `instance` not seen
    /// before. Called after each change of a job of that instance.
    pub(crate) fn check_overlap(
        &mut self,
        jobs: &BTreeMap<u64, Job>,
        instance: &InstanceRef,
        at: Timestamp,
    ) {
        let active = |role: Role| -> Vec<u64> {
            jobs.values()
                .filter(|j| {
                    !j.purged
                        && j.status.is_active()
                        && j.role == Some(role)
                        && j.instance.as_ref() == Some(instance)
                })
                .map(|j| j.id)
                .collect()
        };
        let provisions = active(Role::Provision);
        if provisions.is_empty() {
            return;
        }
        for deprovision_job in active(Role::Deprovision) {
            for &provision_job in &provisions {
                let seen = self.overlaps.iter().any(|o| {
                    o.provision_job == provision_job && o.deprovision_job == deprovision_job
                });
                if !seen {
                    self.overlaps.push(Overlap {
                        instance: instance.clone(),
                        provision_job,
                        deprovision_job,
                        at,
                    });
                }
            }
        }
    }
}
