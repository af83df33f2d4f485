//! Fuzz-style properties of the functional core: `plan` over arbitrary
//! statuses, observations, signals and policies never panics, and what it decides keeps the
//! lifecycle invariants (the rules of docs/lifecycle-rules.md):
//!
//! - the history stays within `max(limit, jobs trimming may not drop)` (rule 3);
//! - it never makes a second job of a type active, nor a new provision or deprovision job
//!   active beside an active one of the other kind (rule 1);
//! - it launches only intents stored before this pass, active, unlaunched and not being
//!   canceled (rule 2);
//! - it cancels only jobs that are active and launched; it deletes only the VMI a restart
//!   job recorded;
//! - what it writes into conditions and Events is one line (rule 7).
//!
//! The invariants are checked on histories as the runner writes them (`well_formed`);
//! `any_status_plans_without_panic` takes anything. `apply_outcome` and the EDA
//! observation get arbitrary input too. Each gap the properties found is pinned by an
//! ignored example test at the end, named for the behaviour it expects.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use cloudkit_shared::conditions as cond;
use cloudkit_shared::config_version::desired_config_version;
use cloudkit_shared::eda::{self, EdaSigns};
use cloudkit_shared::fixtures;
use cloudkit_shared::jobs::JobUpdate;
use cloudkit_shared::plan::{
    Effect, JobObservation, Observed, Outcome, Plan, Policy, ProviderKind, TenantInfo, VmInfo,
    VmiInfo, after, apply_outcome, plan,
};
use cloudkit_shared::reasons;
use cloudkit_shared::{
    ComputeInstance, ComputeInstanceSpec, ComputeInstanceStatus, DeprovisionFailurePolicy,
    JobEntry, JobProvider, JobState, JobType, Phase, VirtualMachineReference,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use proptest::prelude::*;

/// 2026-11-22T00:00:00Z, around which most times fall.
const BASE: i64 = 1_795_305_600;

const KEYS: [&str; 6] = ["k0", "k1", "k2", "k3", "uid:provision:v:1", ""];
const VMI_UIDS: [&str; 3] = ["vmi-a", "vmi-b", ""];

// ---- strategies ----------------------------------------------------------------------------

fn arb_timestamp() -> impl Strategy<Value = Timestamp> {
    prop_oneof![
        12 => (-100_000i64..100_000).prop_map(|s| Timestamp::from_second(BASE + s).unwrap()),
        2 => (any::<i64>()).prop_map(|n| Timestamp::from_nanosecond(i128::from(n)).unwrap()),
        1 => Just(Timestamp::MIN),
        1 => Just(Timestamp::MAX),
        1 => Just(Timestamp::UNIX_EPOCH),
    ]
}

fn arb_time() -> impl Strategy<Value = Time> {
    arb_timestamp().prop_map(Time)
}

/// Any text, newlines and tabs included, sometimes long.
fn arb_text() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => "(?s:.{0,24})",
        1 => "[a-z \\n]{200,1400}",
    ]
}

fn arb_key() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => prop::sample::select(KEYS.to_vec()).prop_map(str::to_owned),
        1 => "(?s:.{0,12})",
    ]
}

fn arb_job_id() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        3 => Just(None),
        3 => (0u64..1000).prop_map(|n| Some(n.to_string())),
        2 => (0u64..6).prop_map(|n| Some(format!("eda-webhook-{n}"))),
        // `u64::MAX` itself overflows `next_eda_job_id`: see `the_next_eda_job_id_does_not_overflow`.
        1 => Just(Some(format!("eda-webhook-{}", u64::MAX - 1))),
        1 => "(?s:.{0,10})".prop_map(Some),
    ]
}

fn arb_job_type() -> impl Strategy<Value = JobType> {
    prop::sample::select(vec![
        JobType::Provision,
        JobType::Deprovision,
        JobType::Restart,
    ])
}

fn arb_state() -> impl Strategy<Value = JobState> {
    prop::sample::select(vec![
        JobState::Pending,
        JobState::Waiting,
        JobState::Running,
        JobState::Succeeded,
        JobState::Failed,
        JobState::Canceled,
        JobState::Unknown,
    ])
}

fn arb_provider() -> impl Strategy<Value = JobProvider> {
    prop::sample::select(vec![
        JobProvider::Aap,
        JobProvider::AapWorkflow,
        JobProvider::Eda,
        JobProvider::Kubevirt,
    ])
}

/// Where a config version comes from: resolved once the spec is known.
#[derive(Clone, Copy, Debug)]
enum Version {
    None,
    Desired,
    Other,
}

fn arb_version() -> impl Strategy<Value = Version> {
    prop::sample::select(vec![Version::None, Version::Desired, Version::Other])
}

fn resolve(version: Version, desired: &str) -> Option<String> {
    match version {
        Version::None => None,
        Version::Desired => Some(desired.to_owned()),
        Version::Other => Some("0123456789abcdef".to_owned()),
    }
}

fn arb_job() -> impl Strategy<Value = (JobEntry, Version)> {
    (
        (arb_job_id(), arb_job_type(), arb_state(), arb_time()),
        (
            prop::option::of(arb_time()),
            prop::option::of(arb_time()),
            arb_text(),
            prop::option::of("[A-Za-z]{0,12}"),
        ),
        (arb_provider(), arb_key(), arb_version()),
        (
            prop::option::of(arb_time()),
            prop::option::of(arb_time()),
            prop::option::of(prop::sample::select(VMI_UIDS.to_vec())),
            any::<bool>(),
        ),
    )
        .prop_map(
            |(
                (job_id, job_type, state, timestamp),
                (start_time, finish_time, message, reason),
                (provider, correlation_key, version),
                (requested_at, cancel_requested_at, vmi_uid, block_deletion_on_failure),
            )| {
                (
                    JobEntry {
                        job_id,
                        job_type,
                        state,
                        timestamp,
                        start_time,
                        finish_time,
                        message,
                        reason,
                        provider,
                        correlation_key,
                        config_version: None,
                        requested_at,
                        cancel_requested_at,
                        vmi_uid: vmi_uid.map(str::to_owned),
                        block_deletion_on_failure,
                        failure: None,
                        url: None,
                    },
                    version,
                )
            },
        )
}

fn arb_condition() -> impl Strategy<Value = Condition> {
    (
        prop::sample::select(vec![
            cond::ACCEPTED,
            cond::PROGRESSING,
            cond::AVAILABLE,
            cond::DELETING,
            cond::RESTART_IN_PROGRESS,
            cond::RESTART_FAILED,
            cond::RESTART_SCHEDULED,
            cond::CANCELED,
            cond::DEPROVISION_FAILED,
            "SomethingElse",
        ]),
        prop::sample::select(vec!["True", "False", "Unknown", ""]),
        "[A-Za-z]{0,12}",
        arb_text(),
        arb_time(),
        prop::option::of(any::<i64>()),
    )
        .prop_map(
            |(type_, status, reason, message, last_transition_time, observed_generation)| {
                Condition {
                    type_: type_.to_owned(),
                    status: status.to_owned(),
                    reason,
                    message,
                    last_transition_time,
                    observed_generation,
                }
            },
        )
}

fn arb_phase() -> impl Strategy<Value = Option<Phase>> {
    prop::option::of(prop::sample::select(vec![
        Phase::Starting,
        Phase::Running,
        Phase::Failed,
        Phase::Canceled,
        Phase::Deleting,
    ]))
}

fn arb_spec() -> impl Strategy<Value = ComputeInstanceSpec> {
    (
        prop_oneof![Just("osac.templates.ocp_small".to_owned()), "(?s:.{0,10})"],
        // A JSON object as the fulfillment-service writes it, or any text at all.
        prop::option::of(prop_oneof![
            prop::collection::btree_map("[a-z]{1,4}", any::<i64>(), 0..3)
                .prop_map(|m| serde_json::to_string(&m).unwrap()),
            "(?s:.{0,12})",
        ]),
        prop::option::of(arb_time()),
        prop::option::of(arb_time()),
        prop::option::of(arb_time()),
        prop::option::of(prop::sample::select(vec![
            DeprovisionFailurePolicy::Block,
            DeprovisionFailurePolicy::Proceed,
        ])),
    )
        .prop_map(
            |(template_id, params, restart, cancel, provision, policy)| ComputeInstanceSpec {
                template_id,
                template_parameters: params,
                restart_requested_at: restart,
                cancel_requested_at: cancel,
                provision_requested_at: provision,
                deprovision_failure_policy: policy,
            },
        )
}

fn arb_instance() -> impl Strategy<Value = ComputeInstance> {
    (
        arb_spec(),
        (
            prop::option::of("[a-z]{1,8}"),
            prop::option::of("[a-z0-9-]{0,12}"),
            prop::option::of(any::<i64>()),
            prop::option::of(arb_time()),
        ),
        prop::option::of((
            arb_phase(),
            prop::collection::vec(arb_condition(), 0..6),
            prop::collection::vec(arb_job(), 0..14),
            prop::option::of(("[a-z]{0,6}", "[a-z]{0,6}")),
            (arb_version(), arb_version()),
            (
                prop::option::of(arb_time()),
                prop::option::of(arb_time()),
                prop::option::of(arb_time()),
                prop::option::of(any::<i64>()),
            ),
        )),
    )
        .prop_map(|(spec, (name, uid, generation, deleting), status)| {
            let desired = desired_config_version(&spec);
            let mut ci = ComputeInstance::new(name.as_deref().unwrap_or("vm"), spec);
            ci.metadata.name = name;
            ci.metadata.uid = uid;
            ci.metadata.generation = generation;
            ci.metadata.deletion_timestamp = deleting;
            ci.status = status.map(
                |(
                    phase,
                    conditions,
                    jobs,
                    reference,
                    (dv, rv),
                    (restarted, canceled, provisioned, og),
                )| {
                    ComputeInstanceStatus {
                        phase,
                        conditions,
                        jobs: jobs
                            .into_iter()
                            .map(|(mut job, version)| {
                                job.config_version = resolve(version, &desired);
                                job
                            })
                            .collect(),
                        tenant_reference: None,
                        virtual_machine_reference: reference.map(|(namespace, name)| {
                            VirtualMachineReference {
                                namespace,
                                kube_virt_virtual_machine_name: name,
                            }
                        }),
                        desired_config_version: resolve(dv, &desired),
                        reconciled_config_version: resolve(rv, &desired),
                        last_restarted_at: restarted,
                        last_cancel_requested_at: canceled,
                        last_provision_requested_at: provisioned,
                        observed_generation: og,
                    }
                },
            );
            ci
        })
}

/// A history as the runner writes it, whatever else is random: oldest first by
/// `timestamp`; restarts are KubeVirt jobs, the others AAP or EDA ones; correlation keys unique (they hold the instance UID, the job type, what
/// the job serves and the time in ms); per type only the newest job may be active; a
/// deprovision job only once deletion began (which cannot be undone). Statuses that
/// break these are covered by `any_status_plans_without_panic`.
fn well_formed(mut ci: ComputeInstance) -> ComputeInstance {
    let deleting = ci.metadata.deletion_timestamp.is_some();
    let Some(status) = ci.status.as_mut() else {
        return ci;
    };
    let jobs = &mut status.jobs;
    jobs.sort_by_key(|j| j.timestamp.0);
    let mut seen = BTreeSet::new();
    for (i, job) in jobs.iter_mut().enumerate() {
        if !seen.insert(job.correlation_key.clone()) {
            job.correlation_key = format!("{}#{i}", job.correlation_key);
            seen.insert(job.correlation_key.clone());
        }
    }
    // Restarts are the runner's own (KubeVirt) jobs; the others are a provider's.
    for job in jobs.iter_mut() {
        match (job.job_type, job.provider) {
            (JobType::Restart, _) => job.provider = JobProvider::Kubevirt,
            (_, JobProvider::Kubevirt) => job.provider = JobProvider::Aap,
            _ => {}
        }
    }
    for t in [JobType::Provision, JobType::Deprovision, JobType::Restart] {
        let newest = jobs.iter().rposition(|j| j.job_type == t);
        for (i, job) in jobs.iter_mut().enumerate() {
            let may_be_active = Some(i) == newest && (t != JobType::Deprovision || deleting);
            if job.job_type == t && job.state.is_active() && !may_be_active {
                job.state = JobState::Failed;
            }
        }
    }
    ci
}

fn arb_observation() -> impl Strategy<Value = JobObservation> {
    prop_oneof![
        (
            "(?s:.{0,8})",
            arb_provider(),
            arb_state(),
            arb_text(),
            prop::option::of(arb_time()),
            prop::option::of(arb_time()),
        )
            .prop_map(
                |(job_id, provider, state, message, start_time, finish_time)| {
                    JobObservation::Seen {
                        job_id,
                        provider,
                        update: JobUpdate {
                            state,
                            message,
                            start_time,
                            finish_time,
                            failure: None,
                            url: None,
                        },
                    }
                }
            ),
        arb_text().prop_map(|message| JobObservation::Missing { message }),
        arb_text().prop_map(|message| JobObservation::Unavailable { message }),
    ]
}

fn arb_observed() -> impl Strategy<Value = (Observed, Version)> {
    (
        arb_timestamp(),
        prop::collection::vec((arb_key(), arb_observation()), 0..6),
        prop::option::of(("[a-z]{0,6}", "[a-z]{0,6}", any::<bool>())),
        // Kubernetes UIDs are never empty.
        prop::option::of((prop::sample::select(vec!["vmi-a", "vmi-b"]), any::<bool>())),
        arb_version(),
        any::<bool>(),
        prop::option::of((any::<bool>(), any::<bool>())),
    )
        .prop_map(|(now, jobs, vm, vmi, reconciled, aap_finalizer, tenant)| {
            (
                Observed {
                    now,
                    tenant: tenant.map(|(ready, owned)| TenantInfo { ready, owned }),
                    jobs: jobs.into_iter().collect::<BTreeMap<_, _>>(),
                    vm: vm.map(|(namespace, name, halted)| VmInfo {
                        namespace,
                        name,
                        halted,
                    }),
                    vmi: vmi.map(|(uid, running)| VmiInfo {
                        uid: uid.to_owned(),
                        running,
                    }),
                    reconciled_config_version: None,
                    aap_finalizer,
                },
                reconciled,
            )
        })
}

fn arb_duration(max_secs: u64) -> impl Strategy<Value = Duration> {
    prop_oneof![
        8 => (0..max_secs * 1000).prop_map(Duration::from_millis),
        1 => Just(Duration::ZERO),
        1 => Just(Duration::MAX),
    ]
}

fn arb_policy() -> impl Strategy<Value = Policy> {
    (
        prop::sample::select(vec![ProviderKind::Aap, ProviderKind::Eda]),
        0usize..12,
        arb_duration(60),
        arb_duration(30),
        arb_duration(600),
        arb_duration(300),
        arb_duration(600),
        0u32..5,
    )
        .prop_map(
            |(
                provider,
                max_history,
                poll_interval,
                retry_base,
                retry_max,
                cancel_deadline,
                restart_deadline,
                deprovision_attempts,
            )| Policy {
                provider,
                max_history,
                poll_interval,
                retry_base,
                retry_max,
                cancel_deadline,
                restart_deadline,
                deprovision_attempts,
            },
        )
}

/// Most often the observation's clock is near the status's times, as in a real pass.
fn arb_case() -> impl Strategy<Value = (ComputeInstance, Observed, Policy)> {
    arb_raw_case().prop_map(|(ci, mut obs, policy)| {
        let ci = well_formed(ci);
        // The runner's clock is not behind the history it wrote (see
        // `a_clock_behind_the_history_does_not_launch_a_second_deprovision`).
        let newest = ci
            .status
            .iter()
            .flat_map(|s| &s.jobs)
            .map(|j| j.timestamp.0)
            .max();
        if let Some(newest) = newest {
            obs.now = obs.now.max(newest);
        }
        (ci, obs, policy)
    })
}

/// Anything, consistent or not.
fn arb_raw_case() -> impl Strategy<Value = (ComputeInstance, Observed, Policy)> {
    (arb_instance(), arb_observed(), arb_policy()).prop_map(|(ci, (mut obs, version), policy)| {
        let desired = desired_config_version(&ci.spec);
        obs.reconciled_config_version = resolve(version, &desired);
        (ci, obs, policy)
    })
}

// ---- invariants ----------------------------------------------------------------------------

fn active_count(jobs: &[JobEntry], t: JobType) -> usize {
    jobs.iter()
        .filter(|j| j.job_type == t && j.state.is_active())
        .count()
}

/// Jobs trimming may not drop: active ones and the newest of each type.
fn undroppable(jobs: &[JobEntry]) -> usize {
    let latest: BTreeSet<usize> = [JobType::Provision, JobType::Deprovision, JobType::Restart]
        .iter()
        .filter_map(|t| jobs.iter().rposition(|j| j.job_type == *t))
        .collect();
    jobs.iter()
        .enumerate()
        .filter(|(i, j)| j.state.is_active() || latest.contains(i))
        .count()
}

fn one_line(what: &str, text: &str) -> Result<(), TestCaseError> {
    prop_assert!(
        !text.contains(['\n', '\r']),
        "{} is not one line: {:?}",
        what,
        text
    );
    prop_assert!(text.len() <= 1024 + 3, "{} is {} bytes", what, text.len());
    Ok(())
}

fn check(
    ci: &ComputeInstance,
    obs: &Observed,
    policy: &Policy,
    p: &Plan,
) -> Result<(), TestCaseError> {
    let before = ci.status.clone().unwrap_or_default();
    let out = &p.status.jobs;
    let stored: BTreeSet<&str> = before
        .jobs
        .iter()
        .map(|j| j.correlation_key.as_str())
        .collect();

    // History bounded (rule 3).
    prop_assert!(
        out.len() <= policy.max_history.max(undroppable(out)),
        "{} jobs kept with limit {} and {} undroppable",
        out.len(),
        policy.max_history,
        undroppable(out)
    );

    // No second active job of a type; no new job beside an active one of its type.
    let new_jobs: Vec<&JobEntry> = out
        .iter()
        .filter(|j| !stored.contains(j.correlation_key.as_str()))
        .collect();
    for t in [JobType::Provision, JobType::Deprovision, JobType::Restart] {
        let was = active_count(&before.jobs, t);
        let is = active_count(out, t);
        // Known gap, pinned by `a_restart_request_during_a_restart_does_not_orphan_the_first`.
        let restart_gap =
            t == JobType::Restart && was >= 1 && ci.spec.restart_requested_at.is_some();
        if !restart_gap {
            prop_assert!(
                is <= was.max(1),
                "{} active {} jobs after the pass, {} before",
                is,
                t,
                was
            );
        }
        let new_of_type = new_jobs.iter().filter(|j| j.job_type == t).count();
        prop_assert!(new_of_type <= 1, "{} new {} jobs", new_of_type, t);
    }
    // Rule 1: a new provision or deprovision job never runs beside an active job of the
    // other kind.
    for job in new_jobs.iter().filter(|j| j.state.is_active()) {
        let other = match job.job_type {
            JobType::Provision => JobType::Deprovision,
            JobType::Deprovision => JobType::Provision,
            JobType::Restart => continue,
        };
        prop_assert_eq!(
            active_count(out, other),
            0,
            "a new active {} job beside an active {} job",
            job.job_type,
            other
        );
    }
    // New jobs are intents: not launched yet, with keys of their own.
    let mut keys = BTreeSet::new();
    for job in &new_jobs {
        prop_assert!(
            job.job_id.is_none(),
            "a new job is launched already: {:?}",
            job
        );
        prop_assert!(
            keys.insert(job.correlation_key.as_str()),
            "duplicate new key"
        );
    }

    for effect in &p.effects {
        match effect {
            Effect::Launch { key, job_type, .. } => {
                // Rule 2: only an intent stored before this pass is launched.
                let was = before.jobs.iter().find(|j| &j.correlation_key == key);
                prop_assert!(
                    was.is_some(),
                    "launch of {:?}, not in the stored status",
                    key
                );
                let now = out.iter().find(|j| &j.correlation_key == key);
                prop_assert!(
                    now.is_some(),
                    "launch of {:?}, gone from the new status",
                    key
                );
                let now = now.unwrap();
                prop_assert!(now.state.is_active(), "launch of a {} job", now.state);
                prop_assert!(
                    now.job_id.is_none(),
                    "launch of launched job {:?}",
                    now.job_id
                );
                prop_assert_eq!(now.job_type, *job_type);
                prop_assert!(
                    now.cancel_requested_at.is_none(),
                    "launch of a job being canceled"
                );
            }
            Effect::Cancel { key, job_id, .. } => {
                let was = before.jobs.iter().find(|j| &j.correlation_key == key);
                prop_assert!(
                    was.is_some_and(|j| j.state.is_active()),
                    "cancel of {:?}, not active before: {:?}",
                    key,
                    was
                );
                let now = out.iter().find(|j| &j.correlation_key == key);
                prop_assert!(
                    now.is_some_and(|j| j.state.is_active() && j.job_id.as_ref() == Some(job_id)),
                    "cancel of a terminal or unlaunched job: {:?}",
                    now
                );
            }
            Effect::DeleteVmi { key, uid, .. } => {
                let now = out.iter().find(|j| &j.correlation_key == key);
                // Known gap, pinned by `a_restart_past_its_deadline_is_not_both_timed_out_and_restarted`.
                let past_deadline = before
                    .jobs
                    .iter()
                    .find(|j| &j.correlation_key == key)
                    .is_some_and(|j| obs.now >= after(j.timestamp.0, policy.restart_deadline));
                if past_deadline {
                    continue;
                }
                prop_assert!(
                    now.is_some_and(|j| j.job_type == JobType::Restart
                        && j.state.is_active()
                        && j.vmi_uid.as_ref() == Some(uid)),
                    "VMI delete for {:?}",
                    now
                );
                prop_assert_eq!(obs.vmi.as_ref().map(|v| &v.uid), Some(uid));
            }
            Effect::Event(note) => one_line("an Event", &note.message)?,
            Effect::EnsureTenant { tenant, name } => {
                // Only for an instance of a tenant, named as upstream names it.
                prop_assert_eq!(name, &cloudkit_shared::tenant::object_name(tenant));
                prop_assert!(ci.metadata.deletion_timestamp.is_none());
            }
        }
    }

    // Conditions the pass wrote are one line.
    for c in &p.status.conditions {
        let unchanged = before.conditions.iter().any(|b| b == c);
        if !unchanged {
            one_line(&format!("condition {}", c.type_), &c.message)?;
        }
    }
    prop_assert!(p.status.phase.is_some(), "every pass sets a phase");
    if ci.metadata.deletion_timestamp.is_none() {
        prop_assert!(
            !p.release_finalizer,
            "the finalizer is released only on deletion"
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn plan_never_panics_and_keeps_its_invariants((ci, obs, policy) in arb_case()) {
        let p = plan(&ci, &obs, &policy);
        check(&ci, &obs, &policy, &p)?;
    }

    /// Planning again on what a pass wrote (the next reconcile with the same observation)
    /// keeps the invariants too.
    #[test]
    fn a_second_pass_keeps_the_invariants((ci, obs, policy) in arb_case()) {
        let first = plan(&ci, &obs, &policy);
        let mut next = ci.clone();
        next.status = Some(first.status.clone());
        let second = plan(&next, &obs, &policy);
        check(&next, &obs, &policy, &second)?;
    }

    #[test]
    fn apply_outcome_never_panics(
        (ci, obs, policy) in arb_case(),
        outcomes in prop::collection::vec(arb_outcome(), 0..4),
        now in arb_timestamp(),
    ) {
        let mut p = plan(&ci, &obs, &policy);
        let count = p.status.jobs.len();
        for outcome in &outcomes {
            for note in apply_outcome(&mut p.status, outcome, now) {
                // A cancel failure's message is passed on as the provider gave it (see
                // `a_cancel_failure_event_is_one_line`); the runner one-lines Events.
                if !matches!(outcome, Outcome::CancelFailed { .. }) {
                    one_line("an outcome's Event", &note.message)?;
                }
            }
        }
        prop_assert_eq!(p.status.jobs.len(), count, "outcomes never add or drop jobs");
        for job in &p.status.jobs {
            if outcomes.iter().any(|o| matches!(o,
                Outcome::LaunchFailed { key, .. } if key == &job.correlation_key))
            {
                one_line("a failed launch's job message", &job.message)?;
            }
        }
    }

    /// Any status — keys repeated, several jobs of a type active, a deprovision job
    /// without deletion (a hand-edited status) — is planned without a panic, within the
    /// history bound, launching only stored intents.
    #[test]
    fn any_status_plans_without_panic((ci, obs, policy) in arb_raw_case()) {
        let mut p = plan(&ci, &obs, &policy);
        let stored: BTreeSet<&str> = ci.status.iter()
            .flat_map(|s| s.jobs.iter().map(|j| j.correlation_key.as_str()))
            .collect();
        prop_assert!(p.status.jobs.len() <= policy.max_history.max(undroppable(&p.status.jobs)));
        for effect in &p.effects {
            if let Effect::Launch { key, .. } = effect {
                prop_assert!(stored.contains(key.as_str()), "launch of {:?}", key);
            }
        }
        let keys: Vec<String> = p.status.jobs.iter().map(|j| j.correlation_key.clone()).collect();
        for key in keys {
            apply_outcome(&mut p.status, &Outcome::VmiDeleted { key }, obs.now);
        }
    }

    #[test]
    fn eda_observation_never_panics(
        (job, _) in arb_job(),
        aap_finalizer in any::<bool>(),
        spec_reconciled in any::<bool>(),
        provisioned_before in any::<bool>(),
        reconciled in prop::option::of("[a-f0-9]{0,16}"),
        now in arb_timestamp(),
        deadline in arb_duration(3600),
        next_id in "(?s:.{0,16})",
    ) {
        let signs = EdaSigns {
            aap_finalizer,
            reconciled_config_version: reconciled,
            spec_reconciled,
            provisioned_before,
        };
        match eda::observe(&job, &signs, now, deadline, &next_id) {
            JobObservation::Seen { provider, update, .. } => {
                prop_assert_eq!(provider, JobProvider::Eda);
                one_line("an EDA job message", &update.message)?;
            }
            JobObservation::Missing { .. } => prop_assert!(job.job_id.is_none()),
            JobObservation::Unavailable { .. } => prop_assert!(false, "EDA is never asked"),
        }
    }
}

fn arb_outcome() -> impl Strategy<Value = Outcome> {
    prop_oneof![
        // Ids as providers give them: AAP's numbers, the runner's EDA ids.
        (
            arb_key(),
            "[0-9]{1,6}|eda-webhook-[0-9]{1,3}",
            arb_provider()
        )
            .prop_map(|(key, job_id, provider)| {
                Outcome::Launched {
                    key,
                    job_id,
                    provider,
                }
            }),
        (arb_key(), "[A-Za-z]{0,12}", arb_text(), any::<bool>()).prop_map(
            |(key, reason, message, permanent)| Outcome::LaunchFailed {
                key,
                reason,
                message,
                permanent,
            }
        ),
        (arb_key(), arb_text()).prop_map(|(key, message)| Outcome::CancelFailed { key, message }),
        arb_key().prop_map(|key| Outcome::VmiDeleted { key }),
        (arb_key(), arb_text())
            .prop_map(|(key, message)| Outcome::VmiDeleteFailed { key, message }),
    ]
}

/// `apply_outcome` one-lines every message it records but a cancel failure's.
#[test]
fn a_cancel_failure_event_is_one_line() {
    let mut status = ComputeInstanceStatus::default();
    let job = JobEntry {
        correlation_key: "k".into(),
        ..fixtures::job(
            Some("7"),
            JobType::Provision,
            JobState::Running,
            Time(Timestamp::from_second(BASE).unwrap()),
        )
    };
    status.jobs.push(job);
    let notes = apply_outcome(
        &mut status,
        &Outcome::CancelFailed {
            key: "k".into(),
            message: "cannot connect\nto AAP".into(),
        },
        Timestamp::from_second(BASE).unwrap(),
    );
    assert_eq!(notes.len(), 1);
    assert!(!notes[0].message.contains('\n'), "{:?}", notes[0].message);
}

/// An EDA job id at the end of `u64` does not make the next id overflow.
#[test]
fn the_next_eda_job_id_does_not_overflow() {
    let mut job = JobEntry {
        provider: JobProvider::Eda,
        correlation_key: "k".into(),
        ..fixtures::job(
            Some(&format!("eda-webhook-{}", u64::MAX)),
            JobType::Provision,
            JobState::Succeeded,
            Time(Timestamp::from_second(BASE).unwrap()),
        )
    };
    let next = std::panic::catch_unwind(|| cloudkit_shared::jobs::next_eda_job_id(&[job.clone()]));
    assert!(next.is_ok(), "next_eda_job_id panicked");
    job.job_id = Some("eda-webhook-1".into());
    assert_eq!(
        cloudkit_shared::jobs::next_eda_job_id(&[job]),
        "eda-webhook-2"
    );
}

/// Found by `plan_never_panics_and_keeps_its_invariants`: a second restart request while a
/// restart is still waiting for its new VMI makes a second active restart job; the first
/// is never driven again (only the newest active one is) and stays Running for good.
#[test]
fn a_restart_request_during_a_restart_does_not_orphan_the_first() {
    let at = |s: i64| Time(Timestamp::from_second(BASE + s).unwrap());
    let mut ci = ComputeInstance::new(
        "vm",
        ComputeInstanceSpec {
            template_id: "t".into(),
            restart_requested_at: Some(at(20)),
            ..Default::default()
        },
    );
    ci.metadata.uid = Some("uid".into());
    let restart = JobEntry {
        start_time: Some(at(10)),
        message: "deleted VMI vmi-a; waiting for KubeVirt to start a new one".into(),
        provider: JobProvider::Kubevirt,
        correlation_key: "uid:restart:10".into(),
        requested_at: Some(at(10)),
        vmi_uid: Some("vmi-a".into()),
        ..fixtures::job(None, JobType::Restart, JobState::Running, at(10))
    };
    ci.status = Some(ComputeInstanceStatus {
        jobs: vec![restart],
        virtual_machine_reference: Some(VirtualMachineReference {
            namespace: "ns".into(),
            kube_virt_virtual_machine_name: "vm".into(),
        }),
        ..Default::default()
    });
    let obs = Observed {
        tenant: None,
        now: Timestamp::from_second(BASE + 21).unwrap(),
        jobs: BTreeMap::new(),
        vm: Some(VmInfo {
            namespace: "ns".into(),
            name: "vm".into(),
            halted: false,
        }),
        // The new VMI is there but not running yet.
        vmi: Some(VmiInfo {
            uid: "vmi-b".into(),
            running: false,
        }),
        reconciled_config_version: None,
        aap_finalizer: false,
    };
    let p = plan(&ci, &obs, &Policy::default());
    let active: Vec<_> = p
        .status
        .jobs
        .iter()
        .filter(|j| j.job_type == JobType::Restart && j.state.is_active())
        .collect();
    assert!(active.len() <= 1, "{active:#?}");
}

fn at(s: i64) -> Time {
    Time(Timestamp::from_second(BASE + s).unwrap())
}

/// Found by `a_second_pass_keeps_the_invariants`: a runner whose clock is behind the
/// newest job's timestamp (a new leader with a skewed clock, a clock stepped back) records
/// its intent *before* that job, since the history is sorted by timestamp; the next pass
/// takes the older, failed job for the latest and launches yet another deprovision.
#[test]
fn a_clock_behind_the_history_does_not_launch_a_second_deprovision() {
    let mut ci = ComputeInstance::new(
        "vm",
        ComputeInstanceSpec {
            template_id: "t".into(),
            ..Default::default()
        },
    );
    ci.metadata.uid = Some("uid".into());
    ci.metadata.deletion_timestamp = Some(at(0));
    ci.status = Some(ComputeInstanceStatus {
        jobs: vec![JobEntry {
            start_time: Some(at(100)),
            finish_time: Some(at(110)),
            message: "failed".into(),
            reason: Some(reasons::JOB_FAILED.into()),
            correlation_key: "uid:deprovision:0:100000".into(),
            block_deletion_on_failure: true,
            ..fixtures::job(Some("7"), JobType::Deprovision, JobState::Failed, at(100))
        }],
        ..Default::default()
    });
    // This runner's clock says 30 s before the failed job was created.
    let obs = Observed {
        tenant: None,
        now: Timestamp::from_second(BASE + 70).unwrap(),
        jobs: BTreeMap::new(),
        vm: None,
        vmi: None,
        reconciled_config_version: None,
        aap_finalizer: false,
    };
    let policy = Policy {
        retry_base: Duration::ZERO,
        ..Policy::default()
    };
    let first = plan(&ci, &obs, &policy);
    ci.status = Some(first.status);
    let second = plan(&ci, &obs, &policy);
    let active = second
        .status
        .jobs
        .iter()
        .filter(|j| j.job_type == JobType::Deprovision && j.state.is_active())
        .count();
    assert_eq!(active, 1, "{:#?}", second.status.jobs);
}

/// Found by `plan_never_panics_and_keeps_its_invariants`: a restart still Pending after its
/// deadline (the runner was down) gets its VMI deleted *and* is failed with
/// RestartTimeout in the same pass; the VMI-deleted outcome then makes the failed job
/// Running again.
#[test]
fn a_restart_past_its_deadline_is_not_both_timed_out_and_restarted() {
    let mut ci = ComputeInstance::new(
        "vm",
        ComputeInstanceSpec {
            template_id: "t".into(),
            restart_requested_at: Some(at(0)),
            ..Default::default()
        },
    );
    ci.metadata.uid = Some("uid".into());
    ci.status = Some(ComputeInstanceStatus {
        jobs: vec![JobEntry {
            message: "restart requested; deleting VMI vmi-a".into(),
            provider: JobProvider::Kubevirt,
            correlation_key: "uid:restart:0".into(),
            requested_at: Some(at(0)),
            vmi_uid: Some("vmi-a".into()),
            ..fixtures::job(None, JobType::Restart, JobState::Pending, at(0))
        }],
        virtual_machine_reference: Some(VirtualMachineReference {
            namespace: "ns".into(),
            kube_virt_virtual_machine_name: "vm".into(),
        }),
        ..Default::default()
    });
    let obs = Observed {
        tenant: None,
        // The runner comes back after the 300 s deadline.
        now: Timestamp::from_second(BASE + 400).unwrap(),
        jobs: BTreeMap::new(),
        vm: Some(VmInfo {
            namespace: "ns".into(),
            name: "vm".into(),
            halted: false,
        }),
        vmi: Some(VmiInfo {
            uid: "vmi-a".into(),
            running: true,
        }),
        reconciled_config_version: None,
        aap_finalizer: false,
    };
    let p = plan(&ci, &obs, &Policy::default());
    let deletes = p
        .effects
        .iter()
        .any(|e| matches!(e, Effect::DeleteVmi { .. }));
    let job = &p.status.jobs[0];
    assert!(
        !(deletes && job.state == JobState::Failed),
        "deletes the VMI and fails the restart at once: {job:#?}"
    );
}
