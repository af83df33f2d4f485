//! The kube-runtime Controller: observe → plan → act → write status once.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cloudkit_shared::management::{self, ManagementState};
use cloudkit_shared::names::FINALIZER;
use cloudkit_shared::plan::plan;
use cloudkit_shared::tenant::Tenant;
use cloudkit_shared::{ComputeInstance, ComputeInstanceStatus};
use futures::channel::mpsc;
use futures::{FutureExt, StreamExt};
use kube::api::Api;
use kube::runtime::controller::{self, Action, Controller};
use kube::runtime::events::Recorder;
use kube::runtime::finalizer::{Event as FinalizerEvent, finalizer};
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Resource, ResourceExt};
use tracing::{Instrument, debug, info, info_span, instrument, warn};

use crate::aap::AapClient;
use crate::caches::{self, Cache, Caches};
use crate::compact::CompactInstance;
use crate::config::Settings;
use crate::context::Context;
use crate::eda::EdaClient;
use crate::error::Error;
use crate::kubevirt::{self, VirtualMachine, VirtualMachineInstance};
use crate::metrics::Metrics;
use crate::readiness::Readiness;
use crate::{act, instances, kubevirt_cache, list_page, observe, poller, status};

/// One reconcile of one instance. Every log line under it carries the instance and its
/// namespace from this span.
#[instrument(skip_all, fields(instance = %cached.name_any(), namespace = %cached.namespace().unwrap_or_default()))]
pub async fn reconcile(cached: Arc<CompactInstance>, ctx: Arc<Context>) -> Result<Action, Error> {
    ctx.metrics.reconciles.inc();
    let started = Instant::now();
    let ci = Arc::new(cached.instance()?);
    if !ctx.caches.synced() {
        // Planning without the VM / VMI caches would see no VM and write a wrong status.
        return Ok(Action::requeue(act::unsynced(&ci, &ctx).await));
    }
    if is_stale(&ci, &ctx) {
        // Our own newer status write has not reached the cache yet; planning on the old
        // copy could record an intent twice.
        return Ok(Action::requeue(Duration::from_millis(200)));
    }
    if management::of(&ci) == ManagementState::Unmanaged {
        // As upstream: the instance is left alone entirely, finalizer and status included.
        debug!("management-state is unmanaged; ignored");
        return Ok(Action::await_change());
    }
    let api: Api<ComputeInstance> =
        Api::namespaced(ctx.client.clone(), &ci.namespace().unwrap_or_default());
    let result = finalizer(&api, FINALIZER, ci, |event| async {
        match event {
            FinalizerEvent::Apply(ci) | FinalizerEvent::Cleanup(ci) => step(ci, &api, &ctx).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)));
    ctx.metrics
        .reconcile_seconds
        .observe(started.elapsed().as_secs_f64());
    result
}

async fn step(
    ci: Arc<ComputeInstance>,
    api: &Api<ComputeInstance>,
    ctx: &Context,
) -> Result<Action, Error> {
    let mut ci = ci;
    let mut passes = 0;
    let plan = loop {
        passes += 1;
        let observed = observe::observe(&ci, ctx).await;
        let mut plan = plan(&ci, &observed, &ctx.settings.policy);
        act::perform(&ci, &mut plan, ctx).await?;
        let before = ci.status.clone().unwrap_or_default();
        if plan.status == before {
            break plan;
        }
        let written = status::write(api, &ci, &plan.status).await?;
        ctx.metrics.status_writes.inc();
        remember_write(ctx, &written, &before, &plan.status);
        // A newly recorded intent is acted on at once, planned on the copy the write
        // returned: it is exactly what the watch would deliver next (the intent is stored,
        // so lifecycle rule 2 holds as for any later pass), one watch round trip sooner.
        if passes > 1 || !records_intent(&before, &plan.status) {
            break plan;
        }
        ci = Arc::new(written);
    };
    let requeue = plan.requeue_after;
    if ci.metadata.deletion_timestamp.is_some() {
        if plan.release_finalizer {
            info!("deletion finished; releasing the finalizer");
            return Ok(Action::await_change());
        }
        return Err(Error::DeletionInProgress(
            requeue.unwrap_or(Duration::from_secs(5)),
        ));
    }
    Ok(requeue.map_or_else(Action::await_change, Action::requeue))
}

/// Whether `after` holds an active job, not yet launched, that `before` did not.
fn records_intent(before: &ComputeInstanceStatus, after: &ComputeInstanceStatus) -> bool {
    after
        .jobs
        .iter()
        .filter(|j| j.job_id.is_none() && j.state.is_active())
        .any(|j| {
            !before
                .jobs
                .iter()
                .any(|b| b.correlation_key == j.correlation_key)
        })
}

fn is_stale(ci: &ComputeInstance, ctx: &Context) -> bool {
    let (Some(uid), Some(rv)) = (ci.uid(), ci.resource_version()) else {
        return false;
    };
    match (ctx.written.get(&uid), rv.parse::<u64>()) {
        (Some(last), Ok(rv)) => rv < last,
        _ => false,
    }
}

fn remember_write(
    ctx: &Context,
    written: &ComputeInstance,
    before: &ComputeInstanceStatus,
    after: &ComputeInstanceStatus,
) {
    if let (Some(uid), Some(rv)) = (written.uid(), written.resource_version())
        && let Ok(rv) = rv.parse::<u64>()
    {
        ctx.written.insert(uid, rv);
    }
    // Intents recorded by this write are known not to be launched yet.
    for job in after
        .jobs
        .iter()
        .filter(|j| j.job_id.is_none() && j.state.is_active())
    {
        if !before
            .jobs
            .iter()
            .any(|b| b.correlation_key == job.correlation_key)
        {
            ctx.fresh_intents.insert(job.correlation_key.clone(), ());
        }
    }
}

pub fn error_policy(ci: Arc<CompactInstance>, err: &Error, ctx: Arc<Context>) -> Action {
    if err.is_failure() {
        ctx.metrics.reconcile_errors.inc();
        warn!(instance = %ci.name_any(), namespace = ci.namespace().unwrap_or_default(), error = %err, "reconcile failed");
    } else {
        debug!(instance = %ci.name_any(), "{err}");
    }
    Action::requeue(err.requeue_after())
}

/// The instance a VM or VMI belongs to: named by its label, in the VM's namespace or — for a
/// VM in a tenant namespace (`<instance namespace>-<13 base32 characters>`) — in the namespace
/// that tenant namespace was made for. Looked up in the instance cache, so no guess wakes a
/// stranger.
/// Keeps a watch's errors out of the Controller. The Controller backs off its whole merged
/// trigger stream after any error, so one watch failing over and over (KubeVirt not allowed,
/// no Tenant CRD) held back every instance's reconcile by up to 30 s at a time. Each watch
/// still retries with its own backoff, and `caches::track` (or kube's watcher log line) has
/// reported the error already.
fn no_error<K>(item: &Result<K, watcher::Error>) -> std::future::Ready<bool> {
    std::future::ready(item.is_ok())
}

fn to_instance<K: Resource + kubevirt::Labelled>(
    instances: &reflector::Store<CompactInstance>,
    obj: &K,
) -> Option<ObjectRef<CompactInstance>> {
    let name = obj.instance()?;
    let ns = obj.namespace()?;
    let own = ObjectRef::new(name).within(&ns);
    if instances.get(&own).is_some() {
        return Some(own);
    }
    let owner = ObjectRef::new(name).within(crate::tenants::project_of(&ns)?);
    instances.get(&owner).is_some().then_some(owner)
}

/// The watch of VMs or VMIs: it feeds `cache`, marks `which` synced in `caches` (or says
/// why it cannot), and yields the objects that changed, to wake their instances.
fn kubevirt_trigger<K>(
    client: &kube::Client,
    scope: Option<&str>,
    page: u32,
    cache: &kubevirt_cache::Cache<K::Record>,
    caches: &Arc<Caches>,
    which: Cache,
    readiness: &Readiness,
) -> impl futures::Stream<Item = Result<K, watcher::Error>> + Send + use<K>
where
    K: kubevirt_cache::Cached
        + Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + 'static,
    K::Record: Send + Sync + 'static,
{
    let cache = cache.clone();
    kubevirt::watch::<K>(client, scope, page)
        .default_backoff()
        .inspect(move |event| {
            if let Ok(event) = event {
                cache.observe(event);
            }
        })
        .inspect(caches::track(
            caches.clone(),
            which,
            readiness.ready.clone(),
        ))
        .applied_objects()
        .filter(no_error)
}

/// Builds the EDA client from validated settings.
fn eda_client(settings: &Settings) -> Result<Option<EdaClient>, Error> {
    match &settings.eda {
        Some(e) => EdaClient::new(e.clone(), settings.http_timeout)
            .map(Some)
            .map_err(|e| Error::Config(e.to_string())),
        None => Ok(None),
    }
}

/// Runs the controller until `shutdown` resolves. `aap` is the process's one AAP client,
/// shared with the job-logs API.
pub async fn run(
    client: kube::Client,
    settings: Settings,
    metrics: Metrics,
    readiness: Readiness,
    aap: Option<AapClient>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) -> Result<(), Error> {
    let eda = eda_client(&settings)?;
    let reporter = kube::runtime::events::Reporter {
        controller: "cloudkit-runner".into(),
        instance: std::env::var("POD_NAME").ok(),
    };
    let recorder = Recorder::new(client.clone(), reporter);
    let caches = Arc::new(Caches::reporting(readiness.missing.clone()));
    let instance_writer = reflector::store::Writer::<CompactInstance>::default();
    let store = instance_writer.as_reader();
    let unreadables =
        instances::Unreadables::new(metrics.unreadable_instances.clone(), recorder.clone());
    let instance_api = instances::api(&client, settings.namespace.as_deref());
    let (instance_page, vm_page, vmi_page) = tokio::join!(
        list_page::for_api(instance_api.clone()),
        list_page::for_api(Api::<VirtualMachine>::all(client.clone())),
        list_page::for_api(Api::<VirtualMachineInstance>::all(client.clone())),
    );
    let instance_stream = reflector::reflector(
        instance_writer,
        // Consistent, paginated lists: a list from the watch cache (`any_semantic`) comes
        // whole in one response (a 10,000-instance list peaked at 200 MiB) and may be stale.
        instances::watch(instance_api, instance_page, unreadables).default_backoff(),
    )
    .inspect(caches::track(
        caches.clone(),
        Cache::Instances,
        readiness.ready.clone(),
    ))
    .applied_objects()
    .filter(no_error);
    let (vms, vmis) = (
        kubevirt_cache::Cache::default(),
        kubevirt_cache::Cache::default(),
    );
    let scope = settings.namespace.as_deref();
    let vm_stream = kubevirt_trigger::<VirtualMachine>(
        &client,
        scope,
        vm_page,
        &vms,
        &caches,
        Cache::Vms,
        &readiness,
    );
    let vmi_stream = kubevirt_trigger::<VirtualMachineInstance>(
        &client,
        scope,
        vmi_page,
        &vmis,
        &caches,
        Cache::Vmis,
        &readiness,
    );
    let tenant_api: Api<Tenant> = match &settings.namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let tenant_writer = reflector::store::Writer::<Tenant>::default();
    let tenants = tenant_writer.as_reader();
    // Not counted for readiness: a cluster without the Tenant CRD serves untenanted instances.
    let tenant_stream = reflector::reflector(
        tenant_writer,
        watcher(tenant_api.clone(), watcher::Config::default()).default_backoff(),
    )
    .applied_objects()
    .filter(no_error);
    let controller = Controller::for_stream(instance_stream, store.clone());
    let (wake_tx, wake_rx) = mpsc::channel(1024);
    let aap_jobs = poller::JobCache::default();
    let ctx = Arc::new(Context {
        client: client.clone(),
        recorder,
        aap: aap.clone(),
        eda,
        caches,
        vms,
        vmis,
        tenants,
        aap_jobs: aap_jobs.clone(),
        fresh_intents: Default::default(),
        written: Default::default(),
        launch_not_before: Default::default(),
        deleted_vmis: Default::default(),
        metrics: metrics.clone(),
        fence: crate::fence::Fence::new(&client, settings.leader.as_ref()),
        settings: settings.clone(),
    });
    if let Some(aap) = aap {
        tokio::spawn(poller::run(
            aap,
            store.clone(),
            aap_jobs,
            wake_tx,
            settings.policy.poll_interval,
        ));
    }
    info!(
        provider = ?settings.policy.provider,
        namespace = settings.namespace.as_deref().unwrap_or("<all>"),
        list_pages = format!("instances {instance_page}, VMs {vm_page}, VMIs {vmi_page}"),
        "cloudkit-runner starting"
    );
    let shutdown = shutdown.shared();
    tokio::spawn(crate::tenants::run(
        client.clone(),
        tenant_api,
        shutdown.clone(),
    ));
    let (for_vms, for_vmis) = (store.clone(), store.clone());
    controller
        .watches_stream(vm_stream, move |vm| to_instance(&for_vms, &vm))
        .watches_stream(vmi_stream, move |vmi| to_instance(&for_vmis, &vmi))
        .watches_stream(tenant_stream, crate::tenants::owners)
        .reconcile_on(wake_rx)
        .with_config(controller::Config::default().concurrency(settings.max_concurrent_reconciles))
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            if let Err(e) = result {
                debug!(error = %e, "controller event");
            }
        })
        .instrument(info_span!("controller"))
        .await;
    info!("cloudkit-runner stopped");
    Ok(())
}
