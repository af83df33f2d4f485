//! End to end: instances of a tenant, as the upstream operator has them. The Tenant object
//! comes first and must be Ready before the first provision; the VM lives in the Tenant's
//! namespace, where restarts and deprovisions find it; instances of one tenant share the
//! Tenant, and the last one's deletion leaves it to owner-reference garbage collection
//! (kube-controller-manager), its namespace then going through the Tenant's finalizer.
//!
//! Each scenario runs with the runner narrowed to the instances' namespace
//! (`CLOUDKIT_COMPUTE_INSTANCE_NAMESPACE`, on the shared control plane) and watching every
//! namespace (on a control plane of the bed's own, so that it takes no other test's
//! instances).

use std::collections::BTreeSet;
use std::time::Duration;

use cloudkit_shared::conditions as cond;
use cloudkit_shared::config_version::upstream_config_version;
use cloudkit_shared::names::{FINALIZER, RECONCILED_CONFIG_VERSION_ANNOTATION, TENANT_ANNOTATION};
use cloudkit_shared::tenant::{
    self as tenant, APP_LABEL, PRIMARY_UDN_LABEL, PROJECT_LABEL, TENANT_REF_LABEL, TenantPhase,
    UDN_NAME,
};
use cloudkit_shared::{
    ComputeInstance, ComputeInstanceSpec, JobState, JobType, TenantReference,
    VirtualMachineReference, reasons,
};
use cloudkit_testbed::aap_sim::{EffectOutcome, Endpoint, Role};
use cloudkit_testbed::bed::{Bed, PROVISION_TEMPLATE_ID, quick_job};
use cloudkit_testbed::deletion::{follow_deletion, vms_anywhere};
use cloudkit_testbed::kubevirt_sim;
use cloudkit_testbed::observe::{condition, jobs_of, running};
use cloudkit_testbed::tenants::{TenantNames, create_upstream_ready, udn_resource};
use cloudkit_testbed::wait::SEVERAL as WAIT;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, DynamicObject, ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Resource, ResourceExt};
use serde_json::json;

const TENANT: &str = "acme";
/// A finalizer of the test's own, holding a namespace in `Terminating`.
const HOLD: &str = "example.com/hold";

/// What the runner watches.
#[derive(Clone, Copy, Debug)]
enum Watch {
    /// `CLOUDKIT_COMPUTE_INSTANCE_NAMESPACE` set to the instances' namespace.
    InstanceNamespace,
    /// The setting empty: every namespace.
    Everywhere,
}

/// A bed whose runner is not started yet.
async fn bed(prefix: &str, watch: Watch) -> anyhow::Result<Bed> {
    match watch {
        Watch::InstanceNamespace => Bed::without_runner(prefix).await,
        Watch::Everywhere => Bed::alone_without_runner(prefix).await,
    }
}

async fn start_runner(bed: &mut Bed, watch: Watch) -> anyhow::Result<()> {
    let env = match watch {
        Watch::InstanceNamespace => Vec::new(),
        Watch::Everywhere => vec![("CLOUDKIT_COMPUTE_INSTANCE_NAMESPACE".into(), String::new())],
    };
    bed.start_runner(env)?;
    let expected = match watch {
        Watch::InstanceNamespace => bed.namespace.clone(),
        Watch::Everywhere => "<all>".to_string(),
    };
    // The runner logs JSON lines; its start-up line names what it watches.
    bed.wait_until("the runner's start-up line", WAIT, || {
        let found = bed.runner_logs().lines().any(|l| {
            let line: serde_json::Value = serde_json::from_str(l).unwrap_or_default();
            line["fields"]["message"] == "cloudkit-runner starting"
                && line["fields"]["namespace"] == expected.as_str()
        });
        async move { Ok(found.then_some(())) }
    })
    .await
}

async fn started(prefix: &str, watch: Watch) -> anyhow::Result<Bed> {
    let mut bed = bed(prefix, watch).await?;
    start_runner(&mut bed, watch).await?;
    Ok(bed)
}

fn namespaces(bed: &Bed) -> Api<Namespace> {
    Api::all(bed.client.clone())
}

fn tenant_reference(bed: &Bed, names: &TenantNames) -> TenantReference {
    TenantReference {
        name: names.object.clone(),
        namespace: bed.namespace.clone(),
    }
}

fn uid(ci: &ComputeInstance) -> String {
    ci.uid().unwrap_or_default()
}

fn owner_uids(owners: &[OwnerReference]) -> BTreeSet<String> {
    owners.iter().map(|o| o.uid.clone()).collect()
}

/// A namespace of the tenant's name left `Terminating` (a tenant deleted a moment ago): no
/// network can be created in it, so the Tenant cannot become Ready until it is gone.
async fn terminating_namespace(bed: &Bed, name: &str) -> anyhow::Result<()> {
    let ns = Namespace {
        metadata: ObjectMeta {
            name: Some(name.into()),
            finalizers: Some(vec![HOLD.into()]),
            ..Default::default()
        },
        ..Default::default()
    };
    namespaces(bed).create(&PostParams::default(), &ns).await?;
    namespaces(bed)
        .delete(name, &DeleteParams::default())
        .await?;
    Ok(())
}

async fn release_namespace(bed: &Bed, name: &str) -> anyhow::Result<()> {
    let patch = json!({ "metadata": { "finalizers": null } });
    namespaces(bed)
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Ok(())
}

/// The upstream Tenant, namespace and network, as its controller makes them.
async fn assert_tenant_as_upstream(
    bed: &Bed,
    names: &TenantNames,
    owners: &[&ComputeInstance],
) -> anyhow::Result<()> {
    let t = bed.tenants().get(&names.object).await?;
    assert_eq!(t.spec.name, TENANT);
    assert_eq!(
        t.labels().get(APP_LABEL.0).map(String::as_str),
        Some(APP_LABEL.1)
    );
    assert_eq!(
        owner_uids(t.owner_references()),
        owners.iter().map(|ci| uid(ci)).collect(),
        "every instance of the tenant owns it"
    );
    assert!(
        t.owner_references()
            .iter()
            .all(|o| o.kind == "ComputeInstance" && o.controller != Some(true)),
        "{:?}",
        t.owner_references()
    );
    assert!(t.finalizers().contains(&tenant::FINALIZER.to_string()));
    let status = t.status.clone().unwrap_or_default();
    assert_eq!(status.phase, Some(TenantPhase::Ready));
    assert_eq!(status.namespace.as_deref(), Some(names.namespace.as_str()));

    let ns = namespaces(bed).get(&names.namespace).await?;
    let labels = ns.labels();
    assert_eq!(
        labels.get(APP_LABEL.0).map(String::as_str),
        Some(APP_LABEL.1)
    );
    assert_eq!(labels.get(TENANT_REF_LABEL), Some(&names.object));
    assert_eq!(labels.get(PROJECT_LABEL), Some(&bed.namespace));
    assert_eq!(labels.get(PRIMARY_UDN_LABEL).map(String::as_str), Some(""));
    let udns: Api<DynamicObject> =
        Api::namespaced_with(bed.client.clone(), &names.namespace, &udn_resource());
    let udn = udns.get(UDN_NAME).await?;
    assert_eq!(udn.data["spec"]["topology"], "Layer2");
    assert_eq!(udn.data["spec"]["layer2"]["role"], "Primary");
    Ok(())
}

/// The provision launches of an instance in the AAP simulator's ledger.
fn launches(bed: &Bed, name: &str, role: Role) -> Vec<cloudkit_testbed::aap_sim::JobRecord> {
    bed.aap
        .jobs_of(&bed.namespace, name)
        .into_iter()
        .filter(|j| j.role == Some(role))
        .collect()
}

/// Launch POSTs the AAP simulator received, and the jobs in its ledger.
fn launched(bed: &Bed) -> (usize, usize) {
    let posts = bed
        .aap
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.endpoint == Endpoint::Launch)
        .count();
    (posts, bed.aap.jobs().len())
}

fn payload_tenant(job: &cloudkit_testbed::aap_sim::JobRecord) -> &serde_json::Value {
    &job.extra_vars["ansible_eda"]["event"]["payload"]["status"]["tenantReference"]
}

// ---- provision -------------------------------------------------------------------------

async fn provision_waits_for_the_tenant_then_puts_the_vm_in_its_namespace(
    watch: Watch,
) -> anyhow::Result<()> {
    let mut bed = bed("tenant-provision", watch).await?;
    let names = bed.tenant_names(TENANT);
    terminating_namespace(&bed, &names.namespace).await?;
    start_runner(&mut bed, watch).await?;
    let ci = bed.create_for_tenant("vm-t", TENANT).await?;

    // The Tenant exists, owned by the instance, and is not Ready: nothing is launched.
    let held = bed
        .wait_for("vm-t", "Accepted=False TenantNotReady", WAIT, |ci| {
            ci.and_then(|c| condition(c, cond::ACCEPTED))
                .is_some_and(|c| c.status == "False" && c.reason == reasons::TENANT_NOT_READY)
        })
        .await?
        .expect("the instance exists");
    let status = held.status.clone().unwrap_or_default();
    assert!(
        status.jobs.is_empty(),
        "no job while the Tenant is not Ready: {:?}",
        status.jobs
    );
    assert_eq!(launched(&bed), (0, 0), "no launch");
    assert_eq!(
        status.tenant_reference,
        Some(tenant_reference(&bed, &names))
    );
    let t = bed.tenants().get(&names.object).await?;
    assert_eq!(t.spec.name, TENANT);
    assert_eq!(owner_uids(t.owner_references()), BTreeSet::from([uid(&ci)]));
    assert_ne!(
        t.status.and_then(|s| s.phase),
        Some(TenantPhase::Ready),
        "not Ready while its namespace terminates"
    );

    // The old namespace goes; the Tenant becomes Ready, then the instance is provisioned.
    release_namespace(&bed, &names.namespace).await?;
    let ci = bed
        .wait_for("vm-t", "Running", WAIT, running)
        .await?
        .expect("the instance exists");
    assert_tenant_as_upstream(&bed, &names, &[&ci]).await?;
    let status = ci.status.clone().unwrap_or_default();
    assert_eq!(
        status.tenant_reference,
        Some(tenant_reference(&bed, &names))
    );
    assert_eq!(
        status.virtual_machine_reference,
        Some(VirtualMachineReference {
            namespace: names.namespace.clone(),
            kube_virt_virtual_machine_name: "vm-t".into(),
        })
    );
    assert!(
        condition(&ci, cond::AVAILABLE).is_some_and(|c| c.status == "True"),
        "{:?}",
        status.conditions
    );
    assert_eq!(
        bed.vm_namespaces("vm-t").await?,
        std::slice::from_ref(&names.namespace)
    );
    let provisions = launches(&bed, "vm-t", Role::Provision);
    assert_eq!(provisions.len(), 1, "one provision");
    assert_eq!(
        payload_tenant(&provisions[0]),
        &json!({ "name": names.object, "namespace": bed.namespace })
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provision_waits_for_the_tenant_then_puts_the_vm_in_its_namespace_narrowed()
-> anyhow::Result<()> {
    provision_waits_for_the_tenant_then_puts_the_vm_in_its_namespace(Watch::InstanceNamespace).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provision_waits_for_the_tenant_then_puts_the_vm_in_its_namespace_everywhere()
-> anyhow::Result<()> {
    provision_waits_for_the_tenant_then_puts_the_vm_in_its_namespace(Watch::Everywhere).await
}

/// The runner tells the two 404s a write of the tenant's network can get apart the way the
/// real API server words them: a namespace deleted a moment ago (after an old namespace of
/// the same name finished terminating) is retried; only a resource that is not served means
/// a tenant without a network.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_network_write_into_a_vanished_namespace_is_not_read_as_no_network_served()
-> anyhow::Result<()> {
    let bed = Bed::without_runner("tenant-404").await?;
    let udn = json!({
        "apiVersion": "k8s.ovn.org/v1", "kind": "UserDefinedNetwork",
        "metadata": { "name": UDN_NAME },
        "spec": { "topology": "Layer2", "layer2": { "role": "Primary", "subnets": ["10.200.0.0/16"] } },
    });
    let apply = |namespace: &str, resource: &kube::api::ApiResource| {
        let api: Api<DynamicObject> = Api::namespaced_with(bed.client.clone(), namespace, resource);
        let udn = udn.clone();
        async move {
            match api
                .patch(UDN_NAME, &PatchParams::apply("test"), &Patch::Apply(&udn))
                .await
            {
                Err(kube::Error::Api(s)) => Ok(*s),
                other => Err(anyhow::anyhow!("expected an API error, got {other:?}")),
            }
        }
    };

    let vanished = apply(&format!("{}-gone", bed.namespace), &udn_resource()).await?;
    assert_eq!(vanished.code, 404, "{vanished:?}");
    assert!(!tenant::network_not_served(&vanished), "{vanished:?}");

    let mut unserved = udn_resource();
    unserved.version = "v9".into();
    unserved.api_version = "k8s.ovn.org/v9".into();
    let unserved = apply(&bed.namespace, &unserved).await?;
    assert_eq!(unserved.code, 404, "{unserved:?}");
    assert!(tenant::network_not_served(&unserved), "{unserved:?}");
    Ok(())
}

// ---- restart ---------------------------------------------------------------------------

async fn restart_replaces_the_vmi_in_the_tenant_namespace(watch: Watch) -> anyhow::Result<()> {
    let bed = started("tenant-restart", watch).await?;
    let names = bed.tenant_names(TENANT);
    bed.create_for_tenant("vm-r", TENANT).await?;
    bed.wait_for("vm-r", "Running", WAIT, running).await?;
    let before = bed
        .vmi_uid_in(&names.namespace, "vm-r")
        .await?
        .expect("a VMI runs in the tenant namespace");
    let request = Timestamp::from_second(Timestamp::now().as_second())?;
    bed.patch_spec("vm-r", json!({ "restartRequestedAt": request.to_string() }))
        .await?;
    let ci = bed
        .wait_for("vm-r", "lastRestartedAt >= request", WAIT, |ci| {
            ci.and_then(|c| c.status.as_ref()?.last_restarted_at.clone())
                .is_some_and(|t| t.0 >= request)
        })
        .await?
        .expect("the instance exists");
    let after = bed
        .vmi_uid_in(&names.namespace, "vm-r")
        .await?
        .expect("a new VMI runs in the tenant namespace");
    assert_ne!(before, after, "the VMI was replaced");
    assert_eq!(bed.vmi_uid_in(&bed.namespace, "vm-r").await?, None);
    assert!(condition(&ci, cond::RESTART_FAILED).is_none());
    let restarts = jobs_of(&ci, JobType::Restart);
    assert_eq!(restarts.len(), 1);
    assert_eq!(restarts[0].state, JobState::Succeeded);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_replaces_the_vmi_in_the_tenant_namespace_narrowed() -> anyhow::Result<()> {
    restart_replaces_the_vmi_in_the_tenant_namespace(Watch::InstanceNamespace).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_replaces_the_vmi_in_the_tenant_namespace_everywhere() -> anyhow::Result<()> {
    restart_replaces_the_vmi_in_the_tenant_namespace(Watch::Everywhere).await
}

// ---- delete during provision -----------------------------------------------------------

async fn delete_during_provision_cancels_then_deprovisions_in_the_tenant_namespace(
    watch: Watch,
) -> anyhow::Result<()> {
    let bed = started("tenant-delete", watch).await?;
    let names = bed.tenant_names(TENANT);
    bed.aap.update_template(PROVISION_TEMPLATE_ID, |t| {
        t.behavior = quick_job()
            .hold_running()
            .cancel_delay(Duration::from_millis(800));
    });
    bed.create_for_tenant("vm-d", TENANT).await?;
    bed.wait_for("vm-d", "provision job Running", WAIT, |ci| {
        ci.is_some_and(|c| {
            jobs_of(c, JobType::Provision)
                .last()
                .is_some_and(|j| j.state == JobState::Running)
        })
    })
    .await?;
    // The playbook got as far as the VM before it is canceled.
    kubevirt_sim::create_vm(&bed.client, &names.namespace, "vm-d").await?;
    bed.delete("vm-d").await?;
    let states = follow_deletion(&bed, "vm-d", WAIT).await?;
    assert!(
        states.contains(&JobState::Canceled),
        "provision seen Canceled: {states:?}"
    );
    let provisions = launches(&bed, "vm-d", Role::Provision);
    let deprovisions = launches(&bed, "vm-d", Role::Deprovision);
    assert_eq!(provisions.len(), 1);
    assert_eq!(deprovisions.len(), 1, "exactly one deprovision job in AAP");
    assert!(deprovisions[0].created >= provisions[0].finished.expect("provision finished"));
    assert_eq!(
        payload_tenant(&deprovisions[0]),
        &json!({ "name": names.object, "namespace": bed.namespace })
    );
    let effects: Vec<_> = bed
        .aap
        .effects()
        .into_iter()
        .filter(|e| e.job_id == deprovisions[0].id)
        .collect();
    assert_eq!(effects.len(), 1);
    assert_eq!(effects[0].outcome, EffectOutcome::Applied);
    assert_eq!(
        vms_anywhere(&bed.client, "vm-d").await?,
        0,
        "no VM left anywhere"
    );
    assert!(bed.aap.overlap().is_none(), "{:?}", bed.aap.overlap());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_during_provision_cancels_then_deprovisions_in_the_tenant_namespace_narrowed()
-> anyhow::Result<()> {
    delete_during_provision_cancels_then_deprovisions_in_the_tenant_namespace(
        Watch::InstanceNamespace,
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_during_provision_cancels_then_deprovisions_in_the_tenant_namespace_everywhere()
-> anyhow::Result<()> {
    delete_during_provision_cancels_then_deprovisions_in_the_tenant_namespace(Watch::Everywhere)
        .await
}

// ---- one Tenant, two instances -----------------------------------------------------------

async fn instances_of_a_tenant_share_it_and_the_last_ones_deletion_collects_it(
    watch: Watch,
) -> anyhow::Result<()> {
    let bed = started("tenant-shared", watch).await?;
    let names = bed.tenant_names(TENANT);
    bed.create_for_tenant("vm-a", TENANT).await?;
    bed.create_for_tenant("vm-b", TENANT).await?;
    let a = bed
        .wait_for("vm-a", "Running", WAIT, running)
        .await?
        .unwrap();
    let b = bed
        .wait_for("vm-b", "Running", WAIT, running)
        .await?
        .unwrap();
    // Both own the one Tenant (b may have been added after a's status was written).
    bed.wait_until("both instances owning the Tenant", WAIT, || async {
        let t = bed.tenants().get(&names.object).await?;
        Ok((owner_uids(t.owner_references()).len() == 2).then_some(()))
    })
    .await?;
    assert_tenant_as_upstream(&bed, &names, &[&a, &b]).await?;
    assert_eq!(
        bed.tenants().list(&Default::default()).await?.items.len(),
        1
    );
    for ci in [&a, &b] {
        let status = ci.status.clone().unwrap_or_default();
        assert_eq!(
            status.tenant_reference,
            Some(tenant_reference(&bed, &names))
        );
        assert_eq!(
            bed.vm_namespaces(&ci.name_any()).await?,
            std::slice::from_ref(&names.namespace)
        );
    }

    // The first deletion: the garbage collector drops the dangling owner and keeps the Tenant.
    bed.delete("vm-a").await?;
    bed.wait_for("vm-a", "gone", WAIT, |ci| ci.is_none())
        .await?;
    let t = bed
        .wait_until(
            "the garbage collector dropping vm-a as owner",
            WAIT,
            || async {
                let t = bed.tenants().get(&names.object).await?;
                Ok((owner_uids(t.owner_references()) == BTreeSet::from([uid(&b)])).then_some(t))
            },
        )
        .await?;
    assert!(t.meta().deletion_timestamp.is_none(), "the Tenant stays");
    assert_eq!(t.status.and_then(|s| s.phase), Some(TenantPhase::Ready));
    let ns = namespaces(&bed).get(&names.namespace).await?;
    assert!(
        ns.meta().deletion_timestamp.is_none(),
        "its namespace stays"
    );
    assert_eq!(
        bed.vm_namespaces("vm-b").await?,
        std::slice::from_ref(&names.namespace)
    );
    assert!(running(bed.instances().get_opt("vm-b").await?.as_ref()));

    // The last deletion: the Tenant goes only once its last owner is gone (the collector's
    // doing, not the runner's), and it is released only once its namespace is gone.
    bed.delete("vm-b").await?;
    let deleting_seen = std::cell::Cell::new(false);
    bed.wait_until("the Tenant gone", WAIT, || async {
        // The Tenant first, then the owner: a Tenant being deleted while its owner still
        // exists would be the runner's doing.
        let t = bed.tenants().get_opt(&names.object).await?;
        let owner = bed.instances().get_opt("vm-b").await?;
        match t {
            None => Ok(Some(())),
            Some(t) if t.meta().deletion_timestamp.is_some() => {
                anyhow::ensure!(
                    owner.is_none(),
                    "the Tenant is being deleted while vm-b still exists"
                );
                deleting_seen.set(true);
                Ok(None)
            }
            Some(_) => Ok(None),
        }
    })
    .await?;
    assert!(
        namespaces(&bed).get_opt(&names.namespace).await?.is_none(),
        "the Tenant was released only after its namespace was gone"
    );
    eprintln!(
        "Tenant seen terminating before it went: {}",
        deleting_seen.get()
    );
    assert_eq!(vms_anywhere(&bed.client, "vm-b").await?, 0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_of_a_tenant_share_it_and_the_last_ones_deletion_collects_it_narrowed()
-> anyhow::Result<()> {
    instances_of_a_tenant_share_it_and_the_last_ones_deletion_collects_it(Watch::InstanceNamespace)
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_of_a_tenant_share_it_and_the_last_ones_deletion_collects_it_everywhere()
-> anyhow::Result<()> {
    instances_of_a_tenant_share_it_and_the_last_ones_deletion_collects_it(Watch::Everywhere).await
}

// ---- a migrated cluster -----------------------------------------------------------------

/// Stores instance `name` of the tenant as the upstream operator left it: provisioned, its
/// VM in the tenant namespace, upstream-shaped status with both references.
async fn store_upstream_instance(
    bed: &Bed,
    name: &str,
    names: &TenantNames,
    job_id: &str,
) -> anyhow::Result<ComputeInstance> {
    let spec = ComputeInstanceSpec {
        template_id: "osac.templates.ocp_small".into(),
        ..Default::default()
    };
    let version = upstream_config_version(&spec);
    let mut ci = ComputeInstance::new(name, spec);
    ci.metadata.finalizers = Some(vec![FINALIZER.into()]);
    ci.metadata.annotations = Some(
        [
            (TENANT_ANNOTATION.to_string(), TENANT.to_string()),
            (
                RECONCILED_CONFIG_VERSION_ANNOTATION.to_string(),
                version.clone(),
            ),
        ]
        .into(),
    );
    let created = bed.instances().create(&PostParams::default(), &ci).await?;
    let status = json!({ "status": {
        "phase": "Running",
        "desiredConfigVersion": version,
        "reconciledConfigVersion": version,
        "virtualMachineReference": { "namespace": names.namespace, "kubeVirtVirtualMachineName": name },
        "tenantReference": { "name": names.object, "namespace": bed.namespace },
        "jobs": [{ "jobID": job_id, "type": "provision", "state": "Succeeded",
                   "timestamp": "2026-11-01T10:00:00Z", "message": "as the upstream operator left it" }],
    }});
    bed.instances()
        .patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await?;
    Ok(created)
}

fn owner(ci: &ComputeInstance) -> OwnerReference {
    OwnerReference {
        api_version: ComputeInstance::api_version(&()).into_owned(),
        kind: ComputeInstance::kind(&()).into_owned(),
        name: ci.name_any(),
        uid: uid(ci),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_migrated_cluster_with_tenants_is_adopted_without_a_launch_and_restarts_there()
-> anyhow::Result<()> {
    let mut bed = Bed::without_runner("tenant-migrated").await?;
    let names = bed.tenant_names(TENANT);
    let m1 = store_upstream_instance(&bed, "vm-m1", &names, "9001").await?;
    let m2 = store_upstream_instance(&bed, "vm-m2", &names, "9002").await?;
    let created = create_upstream_ready(
        &bed.client,
        &bed.namespace,
        TENANT,
        vec![owner(&m1), owner(&m2)],
    )
    .await?;
    assert_eq!(created, names);
    for name in ["vm-m1", "vm-m2"] {
        kubevirt_sim::create_vm(&bed.client, &names.namespace, name).await?;
    }
    // The KubeVirt simulator serves the tenant namespace: the VMs run before cloudkit starts.
    for name in ["vm-m1", "vm-m2"] {
        bed.wait_until(&format!("a VMI for {name}"), WAIT, || async {
            bed.vmi_uid_in(&names.namespace, name).await
        })
        .await?;
    }

    start_runner(&mut bed, Watch::InstanceNamespace).await?;
    let adopted_available = |ci: Option<&ComputeInstance>| {
        ci.is_some_and(|c| {
            jobs_of(c, JobType::Provision)
                .iter()
                .any(|j| j.reason.as_deref() == Some(reasons::ADOPTED))
                && condition(c, cond::AVAILABLE).is_some_and(|a| a.status == "True")
                && running(Some(c))
        })
    };
    for name in ["vm-m1", "vm-m2"] {
        let ci = bed
            .wait_for(name, "adopted, Available, Running", WAIT, adopted_available)
            .await?
            .expect("the instance exists");
        let status = ci.status.clone().unwrap_or_default();
        assert_eq!(
            status.tenant_reference,
            Some(tenant_reference(&bed, &names))
        );
        assert_eq!(
            status.virtual_machine_reference,
            Some(VirtualMachineReference {
                namespace: names.namespace.clone(),
                kube_virt_virtual_machine_name: name.into(),
            })
        );
    }
    assert_tenant_as_upstream(&bed, &names, &[&m1, &m2]).await?;
    assert_eq!(launched(&bed), (0, 0), "zero launches");

    // A restart there.
    let before = bed.vmi_uid_in(&names.namespace, "vm-m1").await?;
    let request = Timestamp::from_second(Timestamp::now().as_second())?;
    bed.patch_spec(
        "vm-m1",
        json!({ "restartRequestedAt": request.to_string() }),
    )
    .await?;
    bed.wait_for("vm-m1", "restarted", WAIT, |ci| {
        ci.and_then(|c| c.status.as_ref()?.last_restarted_at.clone())
            .is_some_and(|t| t.0 >= request)
    })
    .await?;
    let after = bed.vmi_uid_in(&names.namespace, "vm-m1").await?;
    assert!(
        after.is_some() && after != before,
        "a new VMI: {before:?} then {after:?}"
    );
    assert_eq!(launched(&bed), (0, 0), "still zero launches");
    assert_eq!(
        bed.vm_namespaces("vm-m1").await?,
        std::slice::from_ref(&names.namespace)
    );
    Ok(())
}
