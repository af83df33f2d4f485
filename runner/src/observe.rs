//! Observe: gather what `plan` needs, from the watch caches, the AAP poll cache and, only for
//! intents whose launch is uncertain, from AAP itself.

use std::collections::BTreeMap;
use std::time::Duration;

use cloudkit_shared::config_version::matches_current;
use cloudkit_shared::eda::{self as eda_signs, EdaSigns};
use cloudkit_shared::jobs::{JobUpdate, next_eda_job_id};
use cloudkit_shared::names::{AAP_FINALIZER, RECONCILED_CONFIG_VERSION_ANNOTATION};
use cloudkit_shared::plan::{JobObservation, Observed, VmInfo, VmiInfo};
use cloudkit_shared::signals::whole_seconds;
use cloudkit_shared::{ComputeInstance, JobEntry, JobProvider, JobType, VirtualMachineReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;

use crate::aap::AapJob;
use crate::context::Context;
use crate::kubevirt_cache::Vmi;
use crate::poller::{Polled, aap_id};

pub async fn observe(ci: &ComputeInstance, ctx: &Context) -> Observed {
    let now = Timestamp::now();
    let name = ci.name_any();
    let namespace = ci.namespace().unwrap_or_default();
    let reference = ci
        .status
        .as_ref()
        .and_then(|s| s.virtual_machine_reference.as_ref());
    let tenant_ns = crate::tenants::vm_namespace(&ctx.tenants, ci);
    let vm = find_vm(ctx, &name, &namespace, reference, tenant_ns.as_deref());
    let vmi = vm
        .as_ref()
        .and_then(|vm| ctx.vmis.get(&vm.namespace, &vm.name))
        .filter(|vmi| !going(vmi, ctx));
    let history = ci
        .status
        .as_ref()
        .map(|s| s.jobs.as_slice())
        .unwrap_or_default();
    let reconciled_config_version = ci
        .annotations()
        .get(RECONCILED_CONFIG_VERSION_ANNOTATION)
        .cloned();
    let signs = EdaSigns {
        aap_finalizer: ci.finalizers().iter().any(|f| f == AAP_FINALIZER),
        spec_reconciled: matches_current(reconciled_config_version.as_deref(), &ci.spec),
        reconciled_config_version,
        provisioned_before: history
            .iter()
            .any(|j| j.job_type == JobType::Provision && j.job_id.is_some()),
    };
    let mut jobs = BTreeMap::new();
    for job in history.iter().filter(|j| j.state.is_active()) {
        let observation = match job.provider {
            JobProvider::Kubevirt => None,
            JobProvider::Eda => Some(eda_signs::observe(
                job,
                &signs,
                now,
                ctx.settings.eda_deadline,
                &next_eda_job_id(history),
            )),
            JobProvider::Aap | JobProvider::AapWorkflow => observe_aap(job, ctx).await,
        };
        if let Some(o) = observation {
            jobs.insert(job.correlation_key.clone(), o);
        }
    }
    Observed {
        now,
        tenant: crate::tenants::info(&ctx.tenants, ci),
        jobs,
        vmi: vmi.map(|vmi| VmiInfo {
            uid: vmi.uid.into(),
            running: vmi.running && !vmi.deleting,
        }),
        vm,
        reconciled_config_version: signs.reconciled_config_version,
        aap_finalizer: signs.aap_finalizer,
    }
}

/// A VMI being deleted, or deleted by this process and still in the cache, is no VMI to
/// restart: reporting it would send its deletion again.
fn going(vmi: &Vmi, ctx: &Context) -> bool {
    vmi.deleting || ctx.deleted_vmis.contains(&vmi.uid)
}

/// The VM of the instance: the one named by the reference, else the one labelled for it in
/// its tenant's namespace, else in its own namespace. Looked up by the names it almost always
/// has, then among the VMs named otherwise in those namespaces; never a scan of every VM.
fn find_vm(
    ctx: &Context,
    name: &str,
    namespace: &str,
    reference: Option<&VirtualMachineReference>,
    tenant_ns: Option<&str>,
) -> Option<VmInfo> {
    let reference_ns = reference.map(|r| r.namespace.as_str());
    let found = |ns: &str, vm_name: &str| {
        let vm = ctx.vms.get(ns, vm_name)?;
        vm.labelled_for(vm_name, name).then(|| VmInfo {
            namespace: ns.to_string(),
            name: vm_name.to_string(),
            halted: vm.halted,
        })
    };
    let mut likely = reference
        .map(|r| {
            (
                r.namespace.as_str(),
                r.kube_virt_virtual_machine_name.as_str(),
            )
        })
        .into_iter()
        .chain(tenant_ns.map(|ns| (ns, name)))
        .chain([(namespace, name)])
        .chain(reference_ns.map(|ns| (ns, name)));
    if let Some(vm) = likely.find_map(|(ns, vm_name)| found(ns, vm_name)) {
        return Some(vm);
    }
    [Some(namespace), reference_ns, tenant_ns]
        .into_iter()
        .flatten()
        .find_map(|ns| {
            let named_otherwise = ctx.vms.named_for(ns, name);
            named_otherwise
                .into_iter()
                .find_map(|vm_name| found(ns, &vm_name))
        })
}

async fn observe_aap(job: &JobEntry, ctx: &Context) -> Option<JobObservation> {
    if job.job_id.is_none() {
        return Some(find_intent(job, ctx).await);
    }
    let (kind, id) = aap_id(job.provider, job.job_id.as_deref())?;
    match ctx.aap_jobs.get(kind, id)? {
        Polled::Job(j) => Some(seen(
            &j,
            ctx.settings
                .aap
                .as_ref()
                .map(|s| crate::aap::ui_url::job_url(&s.ui_job_url, kind, id)),
        )),
        Polled::Purged => Some(JobObservation::Missing {
            message: "AAP answers 404 for it".into(),
        }),
    }
}

/// An intent was recorded; was it launched before the runner last stopped?
async fn find_intent(job: &JobEntry, ctx: &Context) -> JobObservation {
    let not_before = ctx.launch_not_before.get(&job.correlation_key);
    if let Some(at) = not_before.filter(|at| *at > std::time::Instant::now()) {
        return JobObservation::Unavailable {
            message: format!(
                "{}; trying again in {}s",
                job.message,
                at.saturating_duration_since(std::time::Instant::now())
                    .as_secs()
                    .max(1)
            ),
        };
    }
    if ctx.fresh_intents.contains(&job.correlation_key) {
        return JobObservation::Missing {
            message: "recorded by this runner, not launched yet".into(),
        };
    }
    let (Some(aap), Some(settings)) = (&ctx.aap, &ctx.settings.aap) else {
        return JobObservation::Unavailable {
            message: "AAP is not configured (CLOUDKIT_AAP_URL); cannot look the launch up".into(),
        };
    };
    let template = match job.job_type {
        JobType::Deprovision => &settings.deprovision_template,
        _ => &settings.provision_template,
    };
    // Launches happen after the intent is written; allow for clock skew with AAP.
    let since = job
        .timestamp
        .0
        .checked_sub(Duration::from_secs(300))
        .unwrap_or(job.timestamp.0);
    match aap.find_launch(template, &job.correlation_key, since).await {
        Ok(Some(found)) => JobObservation::Seen {
            job_id: found.id.to_string(),
            provider: found.kind.provider(),
            update: JobUpdate {
                state: job.state,
                // The launch's answer never arrived: a restart between launch and
                // status write, or a lost / unreadable answer.
                message: format!(
                    "found job {} by its correlation key (its launch answer was lost)",
                    found.id
                ),
                start_time: None,
                finish_time: None,
                failure: None,
                url: Some(crate::aap::ui_url::job_url(
                    &settings.ui_job_url,
                    found.kind,
                    found.id,
                )),
            },
        },
        Ok(None) => JobObservation::Missing {
            message: "no AAP job carries its correlation key".into(),
        },
        Err(e) => JobObservation::Unavailable {
            message: e.to_string(),
        },
    }
}

fn seen(j: &AapJob, url: Option<String>) -> JobObservation {
    JobObservation::Seen {
        job_id: j.id.to_string(),
        provider: j.kind.provider(),
        update: JobUpdate {
            state: j.state,
            message: j.message(),
            // Whole seconds, as the stored status keeps them: AAP's microseconds would
            // otherwise differ on every poll and cost a no-op status write per job per tick.
            start_time: j.started.map(|t| Time(whole_seconds(t))),
            finish_time: j.finished.map(|t| Time(whole_seconds(t))),
            failure: j.failure.clone(),
            url,
        },
    }
}
