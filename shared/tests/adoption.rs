//! Taking over instances the upstream cloudkit-operator managed, the management-state
//! annotation, and parameters a template cannot read — on the pure core.

mod common;

use cloudkit_shared::conditions as cond;
use cloudkit_shared::config_version::{desired_config_version, upstream_config_version};
use cloudkit_shared::eda::{self, EdaSigns};
use cloudkit_shared::plan::{Effect, JobObservation};
use cloudkit_shared::{ComputeInstanceStatus, JobProvider, JobState, JobType, Phase, reasons};
use common::world::{ProviderJob, World};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde_json::json;

/// A status exactly as the upstream operator writes it (no provider, no correlation key).
fn upstream_status(jobs: serde_json::Value) -> ComputeInstanceStatus {
    serde_json::from_value(json!({ "phase": "Running", "jobs": jobs })).unwrap()
}

fn launches(w: &World) -> usize {
    w.last_plan
        .as_ref()
        .unwrap()
        .effects
        .iter()
        .filter(|e| matches!(e, Effect::Launch { .. }))
        .count()
}

fn events(w: &World, reason: &str) -> usize {
    w.last_plan
        .as_ref()
        .unwrap()
        .effects
        .iter()
        .filter(|e| matches!(e, Effect::Event(n) if n.reason == reason))
        .count()
}

fn migrated(job_state: &str) -> World {
    let mut w = World::new();
    w.ci.status = Some(upstream_status(json!([{
        "jobID": "41", "type": "provision", "state": job_state,
        "timestamp": "2026-11-01T10:00:00Z", "message": "Job completed"
    }])));
    w.with_vm();
    w
}

#[test]
fn an_instance_the_upstream_operator_provisioned_is_adopted_not_provisioned_again() {
    let mut w = migrated("Succeeded");
    w.annotation = Some(desired_config_version(&w.ci.spec));
    w.step();
    assert_eq!(launches(&w), 0);
    assert_eq!(events(&w, reasons::ADOPTED), 1);
    let job = &w.jobs()[0];
    assert_eq!(job.reason.as_deref(), Some(reasons::ADOPTED));
    assert_eq!(job.provider, JobProvider::Aap);
    assert_eq!(w.phase(), Some(Phase::Running));
    // Settled: nothing more, no second Event.
    for _ in 0..3 {
        w.step();
        assert_eq!(launches(&w), 0);
        assert_eq!(events(&w, reasons::ADOPTED), 0);
    }
    assert_eq!(w.count(JobType::Provision), 0);
}

#[test]
fn the_upstream_version_with_a_restart_request_counts_as_provisioned() {
    let mut w = migrated("Succeeded");
    w.ci.spec.restart_requested_at = Some(Time(w.now));
    w.ci.status.as_mut().unwrap().last_restarted_at = Some(Time(w.now));
    w.annotation = Some(upstream_config_version(&w.ci.spec));
    assert_ne!(w.annotation, Some(desired_config_version(&w.ci.spec)));
    w.step();
    w.step();
    assert_eq!(w.count(JobType::Provision), 0);
    assert_eq!(w.phase(), Some(Phase::Running));
    let available = w.condition(cond::AVAILABLE).unwrap();
    assert_eq!(available.status, "True", "{available:?}");
}

#[test]
fn a_spec_changed_after_the_upstream_provision_is_provisioned() {
    let mut w = migrated("Succeeded");
    w.annotation = Some("0123456789abcdef".into());
    w.step();
    w.step();
    assert_eq!(w.count(JobType::Provision), 1);
}

#[test]
fn an_instance_with_no_history_but_a_matching_annotation_is_adopted() {
    let mut w = World::new();
    w.with_vm();
    w.annotation = Some(desired_config_version(&w.ci.spec));
    w.step();
    w.step();
    assert_eq!(w.count(JobType::Provision), 0);
    let job = &w.jobs()[0];
    assert_eq!(
        (job.job_type, job.state),
        (JobType::Provision, JobState::Succeeded)
    );
    assert_eq!(job.reason.as_deref(), Some(reasons::ADOPTED));
    assert_eq!(w.phase(), Some(Phase::Running));
}

#[test]
fn an_upstream_job_in_flight_is_polled_to_its_end_and_never_launched_again() {
    let mut w = migrated("Running");
    let key = w.jobs()[0].correlation_key.clone();
    w.provider.push(ProviderJob {
        id: "41".into(),
        key,
        job_type: JobType::Provision,
        state: JobState::Running,
        cancels: 0,
    });
    w.step();
    assert_eq!(launches(&w), 0);
    w.annotation = Some(desired_config_version(&w.ci.spec));
    w.provider_sets(JobType::Provision, JobState::Succeeded);
    w.step();
    w.step();
    assert_eq!(w.jobs().len(), 1);
    assert_eq!(w.jobs()[0].state, JobState::Succeeded);
    assert_eq!(w.count(JobType::Provision), 1, "only the upstream job");
    assert_eq!(w.phase(), Some(Phase::Running));

    // Deleting while an upstream provision runs cancels it first, then one deprovision.
    let mut w = migrated("Running");
    let key = w.jobs()[0].correlation_key.clone();
    w.provider.push(ProviderJob {
        id: "41".into(),
        key,
        job_type: JobType::Provision,
        state: JobState::Running,
        cancels: 0,
    });
    w.delete();
    w.step();
    assert_eq!(w.provider[0].cancels, 1);
    assert_eq!(w.count(JobType::Deprovision), 0);
    w.provider_sets(JobType::Provision, JobState::Canceled);
    for _ in 0..3 {
        w.step();
    }
    assert_eq!(w.count(JobType::Deprovision), 1);
    assert_eq!(w.overlaps, 0);
}

#[test]
fn an_upstream_eda_job_ends_by_the_annotation_or_the_deadline() {
    let status = upstream_status(json!([{
        "jobID": "eda-webhook-3", "type": "provision", "state": "Running",
        "timestamp": "2026-11-01T10:00:00Z"
    }]));
    let job = &status.jobs[0];
    assert_eq!(job.provider, JobProvider::Eda);
    let now = job.timestamp.0;
    let signs = |spec_reconciled| EdaSigns {
        aap_finalizer: true,
        reconciled_config_version: Some("anything".into()),
        spec_reconciled,
        provisioned_before: true,
    };
    let deadline = std::time::Duration::from_secs(60);
    let state = |o: JobObservation| match o {
        JobObservation::Seen { update, .. } => update.state,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        state(eda::observe(job, &signs(true), now, deadline, "x")),
        JobState::Succeeded
    );
    assert_eq!(
        state(eda::observe(job, &signs(false), now, deadline, "x")),
        JobState::Running
    );
    let late = cloudkit_shared::plan::after(now, deadline);
    assert_eq!(
        state(eda::observe(job, &signs(false), late, deadline, "x")),
        JobState::Failed
    );
}

#[test]
fn a_reprovision_over_eda_is_sent_although_the_finalizer_remains() {
    // The finalizer the first provision left is no sign that a second one was sent.
    let status = upstream_status(json!([
        {"jobID": "eda-webhook-1", "type": "provision", "state": "Succeeded",
         "timestamp": "2026-11-01T10:00:00Z"}
    ]));
    let mut intent = status.jobs[0].clone();
    intent.job_id = None;
    intent.state = JobState::Pending;
    intent.config_version = Some("new".into());
    let signs = EdaSigns {
        aap_finalizer: true,
        reconciled_config_version: Some("old".into()),
        spec_reconciled: false,
        provisioned_before: true,
    };
    let o = eda::observe(
        &intent,
        &signs,
        intent.timestamp.0,
        std::time::Duration::from_secs(60),
        "eda-webhook-2",
    );
    assert!(matches!(o, JobObservation::Missing { .. }), "{o:?}");
    let first = EdaSigns {
        provisioned_before: false,
        ..signs
    };
    let o = eda::observe(
        &intent,
        &first,
        intent.timestamp.0,
        std::time::Duration::from_secs(60),
        "eda-webhook-1",
    );
    assert!(matches!(o, JobObservation::Seen { .. }), "{o:?}");
}

#[test]
fn a_manual_instance_gets_no_jobs_and_its_deletion_just_proceeds() {
    let mut w = World::new();
    w.ci.metadata.annotations = Some(
        [(
            cloudkit_shared::names::MANAGEMENT_STATE_ANNOTATION.to_string(),
            "manual".to_string(),
        )]
        .into(),
    );
    w.step();
    w.step();
    assert_eq!(w.count(JobType::Provision), 0);
    assert!(w.jobs().is_empty());
    let accepted = w.condition(cond::ACCEPTED).unwrap();
    assert_eq!(accepted.reason, reasons::MANUALLY_MANAGED);
    w.with_vm();
    w.delete();
    w.step();
    assert!(w.released);
    assert_eq!(w.count(JobType::Deprovision), 0);
}

#[test]
fn parameters_that_are_not_a_json_object_block_the_launch_with_one_event() {
    let mut w = World::new();
    w.ci.spec.template_parameters = Some(r#"{"cpu_cores": 2"#.into());
    w.step();
    assert_eq!(launches(&w), 0);
    assert_eq!(events(&w, reasons::INVALID_TEMPLATE_PARAMETERS), 1);
    let accepted = w.condition(cond::ACCEPTED).unwrap();
    assert_eq!(
        (accepted.status.as_str(), accepted.reason.as_str()),
        ("False", reasons::INVALID_TEMPLATE_PARAMETERS)
    );
    assert!(!accepted.message.contains('\n'));
    assert_eq!(w.phase(), Some(Phase::Failed));
    w.step();
    assert_eq!(
        events(&w, reasons::INVALID_TEMPLATE_PARAMETERS),
        0,
        "said once"
    );
    assert!(w.jobs().is_empty());
    // Fixed: provisioned normally.
    w.ci.spec.template_parameters = Some(r#"{"cpu_cores": 2}"#.into());
    w.step();
    w.step();
    assert_eq!(w.count(JobType::Provision), 1);
    assert_eq!(w.condition(cond::ACCEPTED).unwrap().status, "True");
}

#[test]
fn an_instance_of_a_tenant_waits_for_its_tenant_to_be_ready() {
    let mut w = World::new();
    w.ci.metadata.annotations = Some(
        [(
            cloudkit_shared::names::TENANT_ANNOTATION.to_string(),
            "acme".to_string(),
        )]
        .into(),
    );
    let p = w.step();
    let ensured: Vec<_> = p
        .effects
        .iter()
        .filter_map(|e| match e {
            Effect::EnsureTenant { tenant, name } => Some((tenant.clone(), name.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(
        ensured,
        [(
            "acme".to_string(),
            cloudkit_shared::tenant::object_name("acme")
        )]
    );
    let reference =
        w.ci.status
            .as_ref()
            .unwrap()
            .tenant_reference
            .clone()
            .unwrap();
    assert_eq!(
        (reference.name.as_str(), reference.namespace.as_str()),
        ("tenant-a4snha7u63pa6", "ns")
    );
    w.step();
    assert_eq!(
        w.count(JobType::Provision),
        0,
        "not before the Tenant is Ready"
    );
    let accepted = w.condition(cond::ACCEPTED).unwrap();
    assert_eq!(
        (accepted.status.as_str(), accepted.reason.as_str()),
        ("False", reasons::TENANT_NOT_READY)
    );
    // Owned already: not ensured again.
    assert!(
        !w.last_plan
            .as_ref()
            .unwrap()
            .effects
            .iter()
            .any(|e| matches!(e, Effect::EnsureTenant { .. }))
    );
    w.tenant.as_mut().unwrap().ready = true;
    w.step();
    w.step();
    assert_eq!(w.count(JobType::Provision), 1);
    assert_eq!(w.condition(cond::ACCEPTED).unwrap().status, "True");
}
