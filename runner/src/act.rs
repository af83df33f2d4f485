//! Act: perform a plan's effects and turn their results into outcomes.

use cloudkit_shared::names::CORRELATION_EXTRA_VAR;
use cloudkit_shared::plan::{Effect, EventNote, LaunchVia, Outcome, Plan, apply_outcome};
use cloudkit_shared::{ComputeInstance, ComputeInstanceStatus, JobProvider, JobType};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, Preconditions};
use kube::runtime::events::{Event, EventType};
use kube::{Resource, ResourceExt};
use serde_json::json;
use tracing::{info, warn};

use crate::aap::{AapError, CancelOutcome};
use crate::context::Context;
use crate::eda::EdaAction;
use crate::error::Error;
use crate::kubevirt::VirtualMachineInstance;
use crate::poller::aap_id;

/// Performs every effect of `plan` and folds the outcomes into `plan.status`. Stops with
/// `Error::NotLeader` (and so writes no status) once this replica no longer holds the Lease.
pub async fn perform(ci: &ComputeInstance, plan: &mut Plan, ctx: &Context) -> Result<(), Error> {
    let mut events = Vec::new();
    for effect in plan.effects.clone() {
        if !matches!(effect, Effect::Event(_)) && !ctx.fence.holds().await {
            return Err(Error::NotLeader);
        }
        let outcome = match effect {
            Effect::Launch { key, job_type, via } => {
                Some(launch(ci, &plan.status, ctx, key, job_type, via).await)
            }
            Effect::Cancel {
                key,
                job_id,
                provider,
            } => cancel(ctx, key, &job_id, provider).await,
            Effect::DeleteVmi {
                key,
                namespace,
                name,
                uid,
            } => Some(delete_vmi(ctx, key, &namespace, &name, &uid).await),
            Effect::EnsureTenant { tenant, name } => {
                if let Err(message) = crate::tenants::ensure(&ctx.client, ci, &tenant, &name).await
                {
                    warn!(error = %message, "could not ensure the Tenant");
                }
                None
            }
            Effect::Event(note) => {
                events.push(note);
                None
            }
        };
        if let Some(outcome) = outcome {
            ctx.metrics.outcome(&outcome);
            events.extend(apply_outcome(&mut plan.status, &outcome, Timestamp::now()));
        }
    }
    if !events.is_empty() && !ctx.fence.holds().await {
        return Err(Error::NotLeader);
    }
    for note in events {
        publish(ci, ctx, &note).await;
    }
    Ok(())
}

/// The resource as the playbooks expect it: the planned status included, no managedFields.
fn payload(ci: &ComputeInstance, status: &ComputeInstanceStatus) -> serde_json::Value {
    let mut copy = ci.clone();
    copy.metadata.managed_fields = None;
    copy.status = Some(status.clone());
    let mut value = serde_json::to_value(&copy).unwrap_or_default();
    value["apiVersion"] = json!(ComputeInstance::api_version(&()));
    value["kind"] = json!(ComputeInstance::kind(&()));
    value
}

async fn launch(
    ci: &ComputeInstance,
    status: &ComputeInstanceStatus,
    ctx: &Context,
    key: String,
    job_type: JobType,
    via: LaunchVia,
) -> Outcome {
    ctx.fresh_intents.remove(&key);
    ctx.launch_not_before.remove(&key);
    let body = payload(ci, status);
    let failed = |reason: &str, message: String, permanent: bool| Outcome::LaunchFailed {
        key: key.clone(),
        reason: reason.to_string(),
        message,
        permanent,
    };
    match via {
        LaunchVia::Aap => {
            let (Some(aap), Some(settings)) = (&ctx.aap, &ctx.settings.aap) else {
                return failed(
                    cloudkit_shared::reasons::LAUNCH_REJECTED,
                    "AAP is not configured: set CLOUDKIT_AAP_URL, the token and the templates"
                        .into(),
                    true,
                );
            };
            let template = match job_type {
                JobType::Deprovision => &settings.deprovision_template,
                _ => &settings.provision_template,
            };
            let extra_vars = json!({
                "ansible_eda": {"event": {"payload": body}},
                CORRELATION_EXTRA_VAR: key,
            });
            match aap.launch(template, extra_vars).await {
                Ok(l) => {
                    info!(job = l.id, %job_type, "launched AAP job");
                    Outcome::Launched {
                        key,
                        job_id: l.id.to_string(),
                        provider: l.kind.provider(),
                    }
                }
                Err(e) => {
                    warn!(%job_type, error = %e, "AAP launch failed");
                    if let AapError::VariablesIgnored { job, .. } = &e {
                        // The job exists and would run without our variables: stop it.
                        if let Err(cancel) = aap.cancel(job.kind, job.id).await {
                            warn!(job = job.id, error = %cancel, "could not cancel the job AAP launched without our variables");
                        }
                    }
                    if !e.is_permanent() {
                        hold_off(ctx, &key, e.retry_after());
                    }
                    failed(e.reason(), e.to_string(), e.is_permanent())
                }
            }
        }
        LaunchVia::Eda { job_id } => {
            let Some(eda) = &ctx.eda else {
                return failed(
                    cloudkit_shared::reasons::WEBHOOK_REJECTED,
                    "EDA is not configured: set CLOUDKIT_COMPUTE_INSTANCE_PROVISION_WEBHOOK and _DEPROVISION_WEBHOOK".into(),
                    true,
                );
            };
            let action = match job_type {
                JobType::Deprovision => EdaAction::Deprovision,
                _ => EdaAction::Provision,
            };
            match eda.send(action, &body).await {
                Ok(()) => Outcome::Launched {
                    key,
                    job_id,
                    provider: JobProvider::Eda,
                },
                Err(e) => {
                    warn!(%job_type, error = %e, "EDA did not take the event");
                    if !e.is_permanent() {
                        hold_off(ctx, &key, None);
                    }
                    failed(e.reason(), e.to_string(), e.is_permanent())
                }
            }
        }
    }
}

/// After a transient launch failure, AAP / EDA is not asked again before `retry_after`
/// (a 429's `Retry-After`) or a short pause, however often the instance is reconciled.
fn hold_off(ctx: &Context, key: &str, retry_after: Option<std::time::Duration>) {
    let wait = retry_after.unwrap_or(std::time::Duration::from_secs(1));
    ctx.launch_not_before
        .insert(key, std::time::Instant::now() + wait);
}

async fn cancel(
    ctx: &Context,
    key: String,
    job_id: &str,
    provider: JobProvider,
) -> Option<Outcome> {
    let Some((kind, id)) = aap_id(provider, Some(job_id)) else {
        return Some(Outcome::CancelFailed {
            key,
            message: format!("{provider} jobs cannot be canceled; waiting for job {job_id} to end"),
        });
    };
    let Some(aap) = &ctx.aap else {
        return Some(Outcome::CancelFailed {
            key,
            message: "AAP is not configured (CLOUDKIT_AAP_URL)".into(),
        });
    };
    match aap.cancel(kind, id).await {
        Ok(CancelOutcome::Requested) => {
            info!(job = id, "cancel requested");
            None
        }
        Ok(CancelOutcome::AlreadyFinished) => None,
        Err(e) => Some(Outcome::CancelFailed {
            key,
            message: e.to_string(),
        }),
    }
}

async fn delete_vmi(ctx: &Context, key: String, namespace: &str, name: &str, uid: &str) -> Outcome {
    let api: Api<VirtualMachineInstance> = Api::namespaced(ctx.client.clone(), namespace);
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            uid: Some(uid.to_string()),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    match api.delete(name, &params).await {
        // Gone already (404), or a different VMI now holds the name (409): the old one is
        // gone either way.
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
        Err(e) => {
            return Outcome::VmiDeleteFailed {
                key,
                message: format!("deleting VirtualMachineInstance {namespace}/{name}: {e}"),
            };
        }
    }
    remember_deleted(ctx, uid);
    Outcome::VmiDeleted { key }
}

/// Entries older than the restart deadline are dropped: by then the VMI cache has long
/// caught up, and the restart has ended either way.
fn remember_deleted(ctx: &Context, uid: &str) {
    let now = std::time::Instant::now();
    let keep = ctx.settings.policy.restart_deadline;
    ctx.deleted_vmis
        .insert_retaining(uid, now, |_, at| now.duration_since(*at) < keep);
}

pub async fn publish(ci: &ComputeInstance, ctx: &Context, note: &EventNote) {
    let event = Event {
        type_: if note.warning {
            EventType::Warning
        } else {
            EventType::Normal
        },
        reason: note.reason.clone(),
        // Events are read in one line; a provider's message may not be one.
        note: Some(cloudkit_shared::conditions::one_line(&note.message)),
        action: "Reconcile".into(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&event, &ci.object_ref(&())).await {
        warn!(error = %e, "could not record event");
    }
}

/// While the caches cannot sync for a missing prerequisite, each instance gets one Warning
/// Event saying what is missing and how to fix it; returns when to look again.
pub async fn unsynced(ci: &ComputeInstance, ctx: &Context) -> std::time::Duration {
    let Some(problem) = ctx.caches.missing() else {
        return std::time::Duration::from_millis(100);
    };
    if ctx.caches.first_time_for(&ci.uid().unwrap_or_default()) && ctx.fence.holds().await {
        let note = EventNote {
            warning: true,
            reason: "PrerequisiteMissing".into(),
            message: format!("cloudkit-runner cannot serve this instance: {problem}"),
        };
        publish(ci, ctx, &note).await;
    }
    std::time::Duration::from_secs(5)
}
