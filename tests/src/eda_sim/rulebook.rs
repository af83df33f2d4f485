//! The rulebook: takes an event (or loses it, by fault), records it, and starts the
//! playbook its route names.

use std::sync::Arc;

use k8s_openapi::jiff::Timestamp;
use serde_json::json;

use super::faults::Fault;
use super::ledger::{EventRecord, RunRecord, RunStatus};
use super::playbook::{self, RunSpec};
use super::server::Taken;
use super::state::Shared;
use crate::aap_sim::effects;

/// What became of an event.
pub(crate) struct Disposition {
    pub(crate) fault: Option<Fault>,
    /// The recorded event; `None` when a status fault refused it.
    pub(crate) event: Option<u64>,
}

pub(crate) fn accept(shared: &Arc<Shared>, request: u64, taken: &Taken) -> Disposition {
    // run_playbook hands the playbook the event as `ansible_eda.event`, as an AAP-direct
    // launch does: the same effects code reads both.
    let extra_vars = json!({ "ansible_eda": { "event": taken.event } });
    let vars = extra_vars.as_object().cloned().unwrap_or_default();
    let instance = effects::instance_of(&vars);
    let desired_config_version = effects::desired_config_version_of(&vars);
    let tenant = effects::tenant_of(&vars);

    let (disposition, spec) = shared.update(|s| {
        let fault = s.faults.take(&taken.route, instance.as_ref());
        if let Some(Fault::Status(_)) = fault {
            return (Disposition { fault, event: None }, None);
        }
        let now = Timestamp::now();
        let id = s.ledger.next_event();
        let dropped = fault == Some(Fault::Drop);
        let playbook = taken.playbook.filter(|_| !dropped);
        let run = playbook.map(|playbook| {
            let run = s.ledger.next_run();
            let ticket = shared.ticket(s);
            s.ledger.runs.push(RunRecord {
                id: run,
                event: id,
                playbook,
                instance: instance.clone(),
                desired_config_version: desired_config_version.clone(),
                fault: fault.clone(),
                status: RunStatus::Waiting,
                steps: Vec::new(),
                extra_vars: extra_vars.clone(),
                queued_at: now,
                started_at: None,
                finished_at: None,
            });
            RunSpec {
                id: run,
                playbook,
                instance: instance.clone(),
                desired_config_version: desired_config_version.clone(),
                tenant: tenant.clone(),
                fault: fault.clone(),
                ticket,
            }
        });
        s.ledger.events.push(EventRecord {
            id,
            request,
            flavor: taken.flavor,
            event: taken.event.clone(),
            instance: instance.clone(),
            playbook: taken.playbook,
            dropped,
            run: run.as_ref().map(|r| r.id),
            at: now,
        });
        (
            Disposition {
                fault,
                event: Some(id),
            },
            run,
        )
    });
    if let Some(spec) = spec {
        let task = tokio::spawn(playbook::run(Arc::clone(shared), spec));
        shared.life.track(task.abort_handle());
    }
    disposition
}
