//! Lifecycle rule 3 (docs/lifecycle-rules.md): bounded history that never loses what matters.

mod common;

use cloudkit_shared::jobs::{self, JobUpdate};
use cloudkit_shared::{JobEntry, JobState, JobType};
use common::{job, ts};
use proptest::prelude::*;
use std::collections::HashSet;

const TYPES: [JobType; 3] = [JobType::Provision, JobType::Deprovision, JobType::Restart];
const STATES: [JobState; 7] = [
    JobState::Pending,
    JobState::Waiting,
    JobState::Running,
    JobState::Succeeded,
    JobState::Failed,
    JobState::Canceled,
    JobState::Unknown,
];

fn arb_history() -> impl Strategy<Value = Vec<(usize, usize)>> {
    prop::collection::vec((0..3usize, 0..7usize), 0..40)
}

proptest! {
    #[test]
    fn appending_keeps_history_bounded_and_consistent(spec in arb_history(), limit in 1usize..12) {
        let mut history: Vec<JobEntry> = Vec::new();
        let mut all: Vec<JobEntry> = Vec::new();
        for (i, (t, s)) in spec.iter().enumerate() {
            let j = job(i as i64, TYPES[*t], STATES[*s]);
            all.push(j.clone());
            let before = history.clone();
            jobs::append(&mut history, j, limit);

            // Only terminal jobs are ever dropped, and only older ones first.
            let kept: HashSet<_> = history.iter().map(|j| j.correlation_key.clone()).collect();
            let dropped: Vec<_> = before.iter().filter(|j| !kept.contains(&j.correlation_key)).collect();
            for d in &dropped {
                prop_assert!(d.state.is_terminal(), "dropped active job {d:?}");
            }
            // Every active job seen so far is still there.
            for a in all.iter().filter(|j| j.state.is_active()) {
                prop_assert!(kept.contains(&a.correlation_key), "lost active job {a:?}");
            }
            // The latest job of each type is kept.
            for t in TYPES {
                if let Some(latest) = all.iter().rev().find(|j| j.job_type == t) {
                    prop_assert!(kept.contains(&latest.correlation_key));
                }
            }
            // Length: at most the limit, unless active / latest-of-type jobs force more.
            let forced = history.iter().filter(|j| {
                j.state.is_active()
                    || jobs::latest_of_type(&history, j.job_type).map(|l| &l.correlation_key)
                        == Some(&j.correlation_key)
            }).count();
            prop_assert!(history.len() <= limit.max(forced));
            // When over the limit, no droppable terminal job remains.
            if history.len() > limit {
                prop_assert_eq!(history.len(), forced);
            }
            // Ordered by timestamp, ids unique.
            prop_assert!(history.windows(2).all(|w| w[0].timestamp.0 <= w[1].timestamp.0));
            let ids: HashSet<_> = history.iter().map(|j| j.job_id.clone()).collect();
            prop_assert_eq!(ids.len(), history.len());
            // Dropped ones were the oldest droppable.
            if let Some(newest_dropped) = dropped.iter().map(|d| d.timestamp.0).max() {
                let older_kept_droppable = history.iter().any(|j| {
                    j.timestamp.0 < newest_dropped
                        && j.state.is_terminal()
                        && jobs::latest_of_type(&history, j.job_type).map(|l| &l.correlation_key)
                            != Some(&j.correlation_key)
                });
                prop_assert!(!older_kept_droppable);
            }
        }
    }
}

#[test]
fn trim_drops_oldest_terminal_first() {
    let mut h = vec![
        job(1, JobType::Provision, JobState::Failed),
        job(2, JobType::Provision, JobState::Failed),
        job(3, JobType::Restart, JobState::Succeeded),
        job(4, JobType::Provision, JobState::Running),
    ];
    jobs::trim(&mut h, 2);
    let ids: Vec<_> = h.iter().map(|j| j.job_id.clone().unwrap()).collect();
    assert_eq!(ids, ["3", "4"]);
}

#[test]
fn trim_never_drops_the_latest_of_a_type_or_an_active_job() {
    let mut h = vec![
        job(1, JobType::Deprovision, JobState::Failed),
        job(2, JobType::Provision, JobState::Running),
        job(3, JobType::Restart, JobState::Pending),
    ];
    jobs::trim(&mut h, 1);
    assert_eq!(h.len(), 3);
}

#[test]
fn update_changes_state_and_message_together() {
    let mut h = vec![job(7, JobType::Provision, JobState::Running)];
    let key = h[0].correlation_key.clone();
    let update = JobUpdate {
        state: JobState::Canceled,
        message: "canceled in AAP".into(),
        start_time: None,
        finish_time: Some(ts(9)),
        failure: None,
        url: None,
    };
    assert!(jobs::apply_update(&mut h, &key, &update));
    assert_eq!(h[0].state, JobState::Canceled);
    assert_eq!(h[0].message, "canceled in AAP");
    assert_eq!(h[0].finish_time, Some(ts(9)));
    assert!(
        !jobs::apply_update(&mut h, &key, &update),
        "same update twice changes nothing"
    );
    assert!(!jobs::apply_update(&mut h, "no-such-key", &update));
}

#[test]
fn next_eda_id_is_max_plus_one() {
    let mut a = job(1, JobType::Provision, JobState::Succeeded);
    a.job_id = Some("eda-webhook-7".into());
    let mut b = job(2, JobType::Deprovision, JobState::Running);
    b.job_id = Some("eda-webhook-3".into());
    let c = job(3, JobType::Provision, JobState::Running); // an AAP id, ignored
    assert_eq!(jobs::next_eda_job_id(&[]), "eda-webhook-1");
    assert_eq!(jobs::next_eda_job_id(&[a, b, c]), "eda-webhook-8");
}

#[test]
fn latest_and_active_of_type() {
    let h = vec![
        job(1, JobType::Provision, JobState::Running),
        job(2, JobType::Provision, JobState::Failed),
    ];
    assert_eq!(
        jobs::latest_of_type(&h, JobType::Provision)
            .unwrap()
            .job_id
            .as_deref(),
        Some("2")
    );
    assert_eq!(
        jobs::active_of_type(&h, JobType::Provision)
            .unwrap()
            .job_id
            .as_deref(),
        Some("1")
    );
    assert!(jobs::latest_of_type(&h, JobType::Restart).is_none());
    assert_eq!(jobs::consecutive_failures(&h, JobType::Provision), 1);
}

#[test]
fn terminal_and_active_states() {
    for s in STATES {
        let terminal = matches!(
            s,
            JobState::Succeeded | JobState::Failed | JobState::Canceled
        );
        assert_eq!(s.is_terminal(), terminal, "{s}");
        assert_eq!(s.is_active(), !terminal, "{s}");
    }
}

fn failed_at(task: &str) -> JobUpdate {
    JobUpdate {
        state: JobState::Failed,
        message: "failed".into(),
        start_time: None,
        finish_time: Some(ts(9)),
        failure: Some(Box::new(cloudkit_shared::JobFailure {
            task: task.into(),
            message: "boom".into(),
            ..Default::default()
        })),
        url: Some("https://aap/j/1".into()),
    }
}

#[test]
fn only_the_newest_failed_job_of_each_type_keeps_its_failure_detail() {
    let mut h = vec![
        job(1, JobType::Provision, JobState::Running),
        job(2, JobType::Deprovision, JobState::Running),
        job(3, JobType::Provision, JobState::Running),
    ];
    let keys: Vec<String> = h.iter().map(|j| j.correlation_key.clone()).collect();
    for (key, task) in keys.iter().zip(["a", "b", "c"]) {
        assert!(jobs::apply_update(&mut h, key, &failed_at(task)));
    }
    assert_eq!(
        h[0].failure, None,
        "an older provision failure drops its detail"
    );
    assert_eq!(h[0].message, "failed", "and keeps its one-line message");
    assert_eq!(h[1].failure.as_ref().unwrap().task, "b");
    assert_eq!(h[2].failure.as_ref().unwrap().task, "c");
    assert_eq!(h[2].url.as_deref(), Some("https://aap/j/1"));
    // A newer failure without detail still makes the older detail go.
    let mut newer = job(4, JobType::Provision, JobState::Failed);
    newer.failure = None;
    jobs::append(&mut h, newer, 10);
    assert!(
        h.iter()
            .all(|j| j.job_type != JobType::Provision || j.failure.is_none())
    );
    assert_eq!(h[1].failure.as_ref().unwrap().task, "b");
}
