//! The lifecycle rules (docs/lifecycle-rules.md), checked on the pure core.

mod common;

use cloudkit_shared::conditions as cond;
use cloudkit_shared::plan::Effect;
use cloudkit_shared::{DeprovisionFailurePolicy, JobState, JobType, Phase, reasons};
use common::world::World;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use proptest::prelude::*;

fn launches(p: &cloudkit_shared::plan::Plan) -> usize {
    p.effects
        .iter()
        .filter(|e| matches!(e, Effect::Launch { .. }))
        .count()
}

fn cancels(p: &cloudkit_shared::plan::Plan) -> usize {
    p.effects
        .iter()
        .filter(|e| matches!(e, Effect::Cancel { .. }))
        .count()
}

#[test]
fn intent_is_recorded_before_launch() {
    let mut w = World::new();
    let first = w.step();
    assert_eq!(
        launches(&first),
        0,
        "nothing launched before the intent is stored"
    );
    assert_eq!(w.jobs().len(), 1);
    assert_eq!(w.jobs()[0].job_id, None);
    assert_eq!(
        first.requeue_after.map(|d| d.as_millis() < 1000),
        Some(true)
    );
    let second = w.step();
    assert_eq!(launches(&second), 1);
    assert_eq!(w.jobs()[0].job_id.as_deref(), Some("100"));
    assert_eq!(w.phase(), Some(Phase::Starting));
}

#[test]
fn crash_after_launch_finds_the_job_instead_of_launching_again() {
    let mut w = World::new();
    w.step();
    // Launch happened, then the runner died before writing status.
    let stored = w.ci.status.clone();
    w.step();
    w.ci.status = stored;
    assert_eq!(w.jobs()[0].job_id, None);
    let after = w.step();
    assert_eq!(launches(&after), 0);
    assert_eq!(w.jobs()[0].job_id.as_deref(), Some("100"));
    assert_eq!(w.count(JobType::Provision), 1);
}

#[test]
fn create_to_running_with_one_provision_job() {
    let mut w = World::provisioned();
    let p = w.step();
    assert_eq!(w.phase(), Some(Phase::Running));
    assert_eq!(w.count(JobType::Provision), 1);
    let job = &w.jobs()[0];
    assert_eq!(job.state, JobState::Succeeded);
    assert!(job.finish_time.is_some());
    assert_eq!(w.condition(cond::AVAILABLE).unwrap().status, "True");
    let st = w.ci.status.as_ref().unwrap();
    assert_eq!(
        st.virtual_machine_reference
            .as_ref()
            .unwrap()
            .kube_virt_virtual_machine_name,
        "vm-1"
    );
    assert_eq!(p.requeue_after, None, "a settled instance is not polled");
    // Settled: another pass changes nothing.
    let again = w.step();
    assert_eq!(&again.status, w.ci.status.as_ref().unwrap());
    assert!(again.effects.is_empty());
}

#[test]
fn spec_change_reprovisions_but_a_restart_request_does_not() {
    let mut w = World::provisioned();
    w.ci.spec.restart_requested_at = Some(Time(w.now));
    w.step();
    w.step();
    assert_eq!(w.count(JobType::Provision), 1);
    w.ci.spec.template_parameters = Some(r#"{"cpus": 4}"#.into());
    w.step();
    w.step();
    assert_eq!(w.count(JobType::Provision), 2);
    assert_eq!(w.phase(), Some(Phase::Starting));
}

#[test]
fn failed_provision_is_retried_with_growing_delays() {
    let mut w = World::new();
    w.step();
    w.step();
    let mut gaps = Vec::new();
    for attempt in 1..=4 {
        w.provider_sets(JobType::Provision, JobState::Failed);
        w.step();
        assert_eq!(w.phase(), Some(Phase::Failed));
        assert_eq!(w.condition(cond::AVAILABLE).unwrap().status, "False");
        let mut waited = 0;
        while w.count(JobType::Provision) == attempt {
            w.advance(1);
            waited += 1;
            w.step();
            assert!(waited < 10_000, "never retried");
        }
        w.step();
        gaps.push(waited);
    }
    assert!(
        gaps.windows(2).all(|g| g[1] > g[0]),
        "delays grow: {gaps:?}"
    );
}

#[test]
fn delete_during_provision_cancels_once_then_deprovisions_once() {
    let mut w = World::new();
    w.step();
    w.step();
    w.provider_sets(JobType::Provision, JobState::Running);
    w.step();
    w.delete();
    let p = w.step();
    assert_eq!(cancels(&p), 1);
    assert_eq!(w.phase(), Some(Phase::Deleting));
    // The cancel is asynchronous: polls do not re-send it.
    for _ in 0..5 {
        w.advance(5);
        let p = w.step();
        assert_eq!(cancels(&p), 0);
        assert_eq!(
            w.count(JobType::Deprovision),
            0,
            "no deprovision while provision is active"
        );
    }
    w.provider_sets(JobType::Provision, JobState::Canceled);
    w.step();
    assert_eq!(w.jobs()[0].state, JobState::Canceled);
    assert!(!w.jobs()[0].message.is_empty());
    w.step();
    assert_eq!(w.count(JobType::Deprovision), 1);
    let id = w
        .jobs()
        .iter()
        .find(|j| j.job_type == JobType::Deprovision)
        .unwrap()
        .job_id
        .clone();
    for _ in 0..3 {
        w.step();
    }
    assert_eq!(w.count(JobType::Deprovision), 1);
    w.provider_sets(JobType::Deprovision, JobState::Succeeded);
    w.step();
    assert!(w.released);
    let same = w
        .jobs()
        .iter()
        .find(|j| j.job_type == JobType::Deprovision)
        .unwrap()
        .job_id
        .clone();
    assert_eq!(id, same);
    assert_eq!(w.overlaps, 0);
}

#[test]
fn unconfirmed_cancel_is_reported_and_sent_again_after_the_deadline() {
    let mut w = World::new();
    w.step();
    w.step();
    w.provider_sets(JobType::Provision, JobState::Running);
    w.delete();
    assert_eq!(cancels(&w.step()), 1);
    w.advance(w.policy.cancel_deadline.as_secs() as i64 + 1);
    let p = w.step();
    assert_eq!(cancels(&p), 1);
    assert!(p.effects.iter().any(
        |e| matches!(e, Effect::Event(n) if n.reason == reasons::CANCEL_NOT_CONFIRMED && n.warning)
    ));
}

#[test]
fn deprovision_failure_blocks_or_proceeds_by_policy() {
    for policy in [
        DeprovisionFailurePolicy::Block,
        DeprovisionFailurePolicy::Proceed,
    ] {
        let mut w = World::provisioned();
        w.ci.spec.deprovision_failure_policy = Some(policy);
        w.delete();
        w.step();
        w.step();
        for _ in 0..20 {
            w.provider_sets(JobType::Deprovision, JobState::Failed);
            w.advance(700);
            w.step();
            w.step();
        }
        let c = w
            .condition(cond::DEPROVISION_FAILED)
            .expect("condition says what happened");
        assert!(
            c.message.contains("deprovisionFailurePolicy"),
            "{}",
            c.message
        );
        match policy {
            DeprovisionFailurePolicy::Block => {
                assert!(!w.released);
                assert!(w.count(JobType::Deprovision) > 3, "keeps retrying");
            }
            DeprovisionFailurePolicy::Proceed => {
                assert!(w.released);
                assert_eq!(
                    w.count(JobType::Deprovision),
                    w.policy.deprovision_attempts as usize
                );
            }
        }
        assert_eq!(w.overlaps, 0);
    }
}

#[test]
fn nothing_to_deprovision_when_nothing_was_launched() {
    let mut w = World::new();
    w.step();
    w.delete();
    w.step();
    assert!(w.released);
    assert_eq!(w.count(JobType::Provision), 0);
    assert_eq!(w.count(JobType::Deprovision), 0);
}

#[test]
fn restart_deletes_the_vmi_once_and_completes_on_a_new_uid() {
    let mut w = World::provisioned();
    let request = Time(w.now);
    w.ci.spec.restart_requested_at = Some(request.clone());
    w.step();
    assert_eq!(
        w.condition(cond::RESTART_IN_PROGRESS).unwrap().status,
        "True"
    );
    assert_eq!(w.vmi_deletions, 0, "intent first");
    w.step();
    assert_eq!(w.vmi_deletions, 1);
    w.step();
    w.step();
    assert_eq!(w.vmi_deletions, 1, "deleted once");
    w.new_vmi();
    w.step();
    let st = w.ci.status.as_ref().unwrap();
    assert_eq!(st.last_restarted_at, Some(request));
    assert!(w.condition(cond::RESTART_IN_PROGRESS).is_none());
    assert!(w.condition(cond::RESTART_FAILED).is_none());
    let job = w
        .jobs()
        .iter()
        .find(|j| j.job_type == JobType::Restart)
        .unwrap();
    assert_eq!(job.state, JobState::Succeeded);
    // A request not later than the acknowledgement changes nothing.
    w.step();
    assert_eq!(w.vmi_deletions, 1);
}

#[test]
fn past_restart_request_changes_nothing() {
    let mut w = World::provisioned();
    let st = w.ci.status.as_mut().unwrap();
    st.last_restarted_at = Some(Time(w.now));
    w.ci.spec.restart_requested_at = Some(Time(
        k8s_openapi::jiff::Timestamp::from_second(w.now.as_second() - 60).unwrap(),
    ));
    let before = w.jobs().len();
    w.step();
    w.step();
    assert_eq!(w.vmi_deletions, 0);
    assert_eq!(w.jobs().len(), before);
}

#[test]
fn scheduled_restart_waits_for_its_time() {
    let mut w = World::provisioned();
    w.ci.spec.restart_requested_at = Some(Time(
        k8s_openapi::jiff::Timestamp::from_second(w.now.as_second() + 120).unwrap(),
    ));
    let p = w.step();
    assert_eq!(w.condition(cond::RESTART_SCHEDULED).unwrap().status, "True");
    assert_eq!(p.requeue_after, Some(std::time::Duration::from_secs(120)));
    w.advance(119);
    w.step();
    w.step();
    assert_eq!(w.vmi_deletions, 0);
    w.advance(1);
    w.step();
    w.step();
    assert_eq!(w.vmi_deletions, 1);
}

#[test]
fn restart_failures_have_reasons() {
    // No VM yet.
    let mut w = World::new();
    w.ci.spec.restart_requested_at = Some(Time(w.now));
    w.step();
    assert_eq!(
        w.condition(cond::RESTART_FAILED).unwrap().reason,
        reasons::NO_VM_REFERENCE
    );
    // Halted VM.
    let mut w = World::provisioned();
    w.vm.as_mut().unwrap().halted = true;
    w.ci.spec.restart_requested_at = Some(Time(w.now));
    w.step();
    assert_eq!(
        w.condition(cond::RESTART_FAILED).unwrap().reason,
        reasons::VM_HALTED
    );
    // VMI never comes back.
    let mut w = World::provisioned();
    w.ci.spec.restart_requested_at = Some(Time(w.now));
    w.step();
    w.step();
    w.advance(w.policy.restart_deadline.as_secs() as i64 + 1);
    w.step();
    assert_eq!(
        w.condition(cond::RESTART_FAILED).unwrap().reason,
        reasons::RESTART_TIMEOUT
    );
    assert!(w.condition(cond::RESTART_IN_PROGRESS).is_none());
}

#[test]
fn cancel_in_place_keeps_the_instance_and_provision_again_works() {
    let mut w = World::new();
    w.step();
    w.step();
    w.provider_sets(JobType::Provision, JobState::Running);
    w.ci.spec.cancel_requested_at = Some(Time(w.now));
    let p = w.step();
    assert_eq!(cancels(&p), 1);
    w.provider_sets(JobType::Provision, JobState::Canceled);
    w.step();
    assert_eq!(w.phase(), Some(Phase::Canceled));
    let c = w.condition(cond::CANCELED).unwrap();
    assert_eq!(c.reason, reasons::CANCELED_BY_REQUEST);
    assert!(
        c.message.contains("kubectl cloudkit provision"),
        "{}",
        c.message
    );
    for _ in 0..3 {
        w.advance(60);
        w.step();
    }
    assert_eq!(
        w.count(JobType::Provision),
        1,
        "no automatic re-provision after a cancel"
    );
    assert_eq!(w.count(JobType::Deprovision), 0);
    assert!(!w.released);
    w.ci.spec.provision_requested_at = Some(Time(w.now));
    w.step();
    w.step();
    assert_eq!(w.count(JobType::Provision), 2);
    assert_eq!(w.phase(), Some(Phase::Starting));
}

#[test]
fn cancel_with_nothing_active_says_so() {
    let mut w = World::provisioned();
    w.ci.spec.cancel_requested_at = Some(Time(w.now));
    w.step();
    let c = w.condition(cond::CANCELED).unwrap();
    assert_eq!(c.reason, reasons::NOTHING_TO_CANCEL);
    assert_eq!(w.phase(), Some(Phase::Running));
}

#[derive(Clone, Debug)]
enum Step {
    Tick(u8),
    Provider(u8, u8),
    Playbook,
    SpecChange,
    Restart,
    Cancel,
    Provision,
    Delete,
    Crash,
}

fn arb_step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (0..120u8).prop_map(Step::Tick),
        (0..2u8, 0..6u8).prop_map(|(t, s)| Step::Provider(t, s)),
        Just(Step::Playbook),
        Just(Step::SpecChange),
        Just(Step::Restart),
        Just(Step::Cancel),
        Just(Step::Provision),
        Just(Step::Delete),
        Just(Step::Crash),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]
    /// Whatever the provider and the user do, and wherever the runner dies, the invariants hold.
    #[test]
    fn lifecycle_invariants_hold(steps in prop::collection::vec(arb_step(), 1..60)) {
        let mut w = World::new();
        let states = [JobState::Pending, JobState::Running, JobState::Succeeded, JobState::Failed, JobState::Canceled, JobState::Waiting];
        let mut spec_n = 0;
        for step in steps {
            match step {
                Step::Tick(s) => w.advance(i64::from(s)),
                Step::Provider(t, s) => {
                    let t = if t == 0 { JobType::Provision } else { JobType::Deprovision };
                    w.provider_sets(t, states[s as usize]);
                }
                Step::Playbook => w.playbook_provisions(),
                Step::SpecChange => {
                    spec_n += 1;
                    w.ci.spec.template_parameters = Some(format!(r#"{{"n": {spec_n}}}"#));
                }
                Step::Restart => w.ci.spec.restart_requested_at = Some(Time(w.now)),
                Step::Cancel => w.ci.spec.cancel_requested_at = Some(Time(w.now)),
                Step::Provision => w.ci.spec.provision_requested_at = Some(Time(w.now)),
                Step::Delete => if w.ci.metadata.deletion_timestamp.is_none() { w.delete() },
                Step::Crash => {
                    // Effects happened, the status write was lost.
                    let stored = w.ci.status.clone();
                    w.step();
                    w.ci.status = stored;
                }
            }
            if w.released { break; }
            let p = w.step();
            // Rule 1: never an active provision and deprovision at once in the provider.
            prop_assert_eq!(w.overlaps, 0);
            // A launch never targets a job the provider already has.
            for e in &p.effects {
                if let Effect::Launch { key, .. } = e {
                    prop_assert!(w.provider.iter().filter(|j| &j.key == key).count() <= 1);
                }
            }
            // At most one active provision job and one active deprovision job in the history.
            for t in [JobType::Provision, JobType::Deprovision, JobType::Restart] {
                prop_assert!(w.jobs().iter().filter(|j| j.job_type == t && j.state.is_active()).count() <= 1);
            }
            // Cancel is sent at most once per job within its deadline.
            for j in &w.provider {
                prop_assert!(j.cancels <= 1 + (w.now.as_second() as u32));
            }
            // History stays bounded.
            prop_assert!(w.jobs().len() <= w.policy.max_history + 3);
            // The provider never holds two jobs for one key (no duplicate launch).
            let mut keys: Vec<_> = w.provider.iter().map(|j| j.key.clone()).collect();
            keys.sort();
            let n = keys.len();
            keys.dedup();
            prop_assert_eq!(keys.len(), n);
        }
    }
}

#[test]
fn restart_request_with_a_fraction_of_a_second_is_acted_on_once() {
    let mut w = World::provisioned();
    // Users (and `date`) write sub-second times; Kubernetes stores acknowledgements in seconds.
    let request =
        k8s_openapi::jiff::Timestamp::from_millisecond(w.now.as_millisecond() - 366).unwrap();
    w.ci.spec.restart_requested_at = Some(Time(request));
    w.step();
    w.step();
    w.new_vmi();
    for _ in 0..5 {
        w.step();
    }
    assert_eq!(w.vmi_deletions, 1);
    let restarts = w
        .jobs()
        .iter()
        .filter(|j| j.job_type == JobType::Restart)
        .count();
    assert_eq!(restarts, 1);
}
