//! One playbook run: its steps on the real API server (the AAP simulator's effects,
//! one call per step), with the configured waits and the event's fault.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DynamicObject};

use super::config::Playbook;
use super::faults::Fault;
use super::ledger::{RunStatus, Step, StepRecord};
use super::state::Shared;
use crate::aap_sim::effects::{self, EffectTarget, TenantRef};
use crate::aap_sim::{InstanceRef, Role};

pub(crate) struct RunSpec {
    pub(crate) id: u64,
    pub(crate) playbook: Playbook,
    pub(crate) instance: Option<InstanceRef>,
    pub(crate) desired_config_version: Option<String>,
    /// The payload's `status.tenantReference`, or what a playbook finds undefined in it.
    pub(crate) tenant: Result<Option<TenantRef>, String>,
    pub(crate) fault: Option<Fault>,
    /// Place in the queue when runs go one at a time.
    pub(crate) ticket: Option<u64>,
}

/// How a run that did not fail ended.
enum Ending {
    Done,
    Stalled,
    Skipped(String),
}

pub(crate) async fn run(shared: Arc<Shared>, spec: RunSpec) {
    // When sequential, the turn is held until the run ends (forever, if it stalls).
    let _turn = shared.turn(spec.ticket).await;
    let delay = match spec.fault {
        Some(Fault::Delay(d)) => d,
        _ => Duration::ZERO,
    };
    let start = shared.lock().timing(spec.playbook).start;
    tokio::time::sleep(delay.saturating_add(start)).await;
    set_status(&shared, spec.id, RunStatus::Running, true);

    let status = match drive(&shared, &spec).await {
        Ok(Ending::Done) => RunStatus::Successful,
        Ok(Ending::Skipped(why)) => RunStatus::Skipped(why),
        Ok(Ending::Stalled) => {
            set_status(&shared, spec.id, RunStatus::Stalled, false);
            // Never ends; the task is aborted when the simulator stops.
            std::future::pending::<()>().await;
            return;
        }
        Err(error) => RunStatus::Failed(error),
    };
    set_status(&shared, spec.id, status, false);
}

async fn drive(shared: &Shared, spec: &RunSpec) -> Result<Ending, String> {
    // What a real playbook would find undefined, in the same words as the AAP simulator.
    let Some(instance) = spec.instance.clone() else {
        return Err("'dict object' has no attribute 'metadata'".to_owned());
    };
    if spec.playbook == Playbook::Create && spec.desired_config_version.is_none() {
        return Err("'dict object' has no attribute 'desiredConfigVersion'".to_owned());
    }
    let tenant = spec.tenant.clone()?;
    let Some(client) = shared.kube.clone() else {
        return Ok(Ending::Skipped(
            "no Kubernetes client configured".to_owned(),
        ));
    };
    let instances: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        &instance.namespace,
        &effects::instance_resource(),
    );
    let name = instance.name.clone();
    let target = EffectTarget {
        role: match spec.playbook {
            Playbook::Create => Role::Provision,
            Playbook::Delete => Role::Deprovision,
        },
        instance,
        desired_config_version: spec.desired_config_version.clone(),
        tenant,
    };
    let fault = spec.fault.as_ref();
    let run = spec.id;
    match spec.playbook {
        Playbook::Create => {
            step(shared, run, Step::AddFinalizer, async {
                effects::set_finalizer(&instances, &name, true).await
            })
            .await?;
            if fault == Some(&Fault::NeverFinish) {
                return Ok(Ending::Stalled);
            }
            pause(shared, spec.playbook).await;
            step(shared, run, Step::CreateVm, async {
                effects::create_vm(&client, &target).await.map(drop)
            })
            .await?;
            if fault == Some(&Fault::Fail) {
                return Err("injected failure: stopped before setting the annotation".to_owned());
            }
            pause(shared, spec.playbook).await;
            step(shared, run, Step::MarkReconciled, async {
                effects::mark_reconciled(&client, &target).await.map(drop)
            })
            .await?;
        }
        Playbook::Delete => {
            step(shared, run, Step::DeleteVm, async {
                effects::deprovision(&client, &target).await.map(drop)
            })
            .await?;
            match fault {
                Some(Fault::NeverFinish) => return Ok(Ending::Stalled),
                Some(Fault::Fail) => {
                    return Err(
                        "injected failure: stopped before removing the finalizer".to_owned()
                    );
                }
                _ => {}
            }
            pause(shared, spec.playbook).await;
            step(shared, run, Step::RemoveFinalizer, async {
                effects::set_finalizer(&instances, &name, false).await
            })
            .await?;
        }
    }
    Ok(Ending::Done)
}

/// The wait between two steps, read when it starts.
async fn pause(shared: &Shared, playbook: Playbook) {
    let d = shared.lock().timing(playbook).between_steps;
    tokio::time::sleep(d).await;
}

/// Runs one step and records it; its error fails the run.
async fn step(
    shared: &Shared,
    run: u64,
    step: Step,
    work: impl Future<Output = Result<(), String>>,
) -> Result<(), String> {
    shared.update(|s| {
        if let Some(r) = s.ledger.run_mut(run) {
            r.steps.push(StepRecord {
                step,
                started_at: Timestamp::now(),
                finished_at: None,
                error: None,
            });
        }
    });
    let result = work.await;
    shared.update(|s| {
        if let Some(record) = s
            .ledger
            .run_mut(run)
            .and_then(|r| r.steps.iter_mut().rev().find(|x| x.step == step))
        {
            record.finished_at = Some(Timestamp::now());
            record.error = result.as_ref().err().cloned();
        }
    });
    result
}

fn set_status(shared: &Shared, run: u64, status: RunStatus, starting: bool) {
    shared.update(|s| {
        if let Some(r) = s.ledger.run_mut(run) {
            let now = Timestamp::now();
            if starting {
                r.started_at = Some(now);
            }
            if status.is_terminal() {
                r.finished_at = Some(now);
            }
            r.status = status;
        }
    });
}
