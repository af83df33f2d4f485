//! A long AAP outage, compressed: every AAP request answers 503 for a while with 100 jobs
//! in flight and 100 instances created meanwhile, the runner's backoffs short. Afterwards
//! every job's real outcome is recorded, every new instance was launched exactly once
//! (the simulator's ledger), the runner never waited longer than its cap between tries
//! (the simulator's request log), its memory stayed flat (VmRSS samples), and the
//! instances said `ProviderUnreachable` during the outage and no longer after it.

use std::collections::BTreeMap;
use std::time::Duration;

use cloudkit_shared::conditions as cond;
use cloudkit_shared::{ComputeInstance, JobState, JobType, reasons};
use cloudkit_testbed::aap_sim::{Endpoint, Fault, JobBehavior, JobStatus, RequestRecord};
use cloudkit_testbed::bed::{Bed, PROVISION_TEMPLATE_ID, quick_job};
use cloudkit_testbed::bench::runner::proc_stats;
use cloudkit_testbed::observe::{condition, jobs_of, running};
use futures::{StreamExt, TryStreamExt};
use kube::api::ListParams;

const IN_FLIGHT: usize = 100;
const CREATED_DURING: usize = 100;
/// How long AAP stays down; a real outage would be hours, the runner's loop is the same.
const OUTAGE: Duration = Duration::from_secs(20);
const RETRY_MAX: Duration = Duration::from_secs(1);
/// What may come on top of the cap between two tries: a poll interval, a reconcile
/// queue of 200 instances on a loaded machine, an HTTP timeout.
const SLACK: Duration = Duration::from_secs(5);
const WAIT: Duration = Duration::from_secs(120);

fn old(i: usize) -> String {
    format!("held-{i:03}")
}

fn new(i: usize) -> String {
    format!("during-{i:03}")
}

async fn create_all(bed: &Bed, names: Vec<String>) -> anyhow::Result<()> {
    futures::stream::iter(
        names
            .into_iter()
            .map(|n| async move { bed.create_default(&n).await.map(|_| ()) }),
    )
    .buffer_unordered(16)
    .try_collect::<Vec<()>>()
    .await?;
    Ok(())
}

async fn instances(bed: &Bed) -> anyhow::Result<BTreeMap<String, ComputeInstance>> {
    Ok(bed
        .instances()
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .map(|ci| (ci.metadata.name.clone().unwrap_or_default(), ci))
        .collect())
}

fn progressing_reason(ci: &ComputeInstance) -> Option<String> {
    condition(ci, cond::PROGRESSING).map(|c| c.reason)
}

/// The longest pause between two consecutive requests that `counts` in `requests`.
fn longest_gap(requests: &[RequestRecord], counts: impl Fn(&RequestRecord) -> bool) -> Duration {
    let times: Vec<_> = requests
        .iter()
        .filter(|r| counts(r))
        .map(|r| r.at)
        .collect();
    times
        .windows(2)
        .filter_map(|w| Duration::try_from(w[1].duration_since(w[0])).ok())
        .max()
        .unwrap_or_default()
}

fn rss_of(pid: u32) -> anyhow::Result<u64> {
    Ok(proc_stats(pid)?.rss)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_outage_loses_nothing_launches_once_and_stays_flat() -> anyhow::Result<()> {
    let mut bed = Bed::without_runner("long-outage").await?;
    // Jobs in flight when AAP goes away finish during the outage.
    bed.aap.set_template_behavior(
        PROVISION_TEMPLATE_ID,
        JobBehavior {
            running: OUTAGE / 2,
            ..quick_job()
        },
    );
    bed.start_runner(
        [
            ("CLOUDKIT_RETRY_BASE", "200ms"),
            ("CLOUDKIT_RETRY_MAX", "1s"),
            ("CLOUDKIT_HTTP_TIMEOUT", "2s"),
            ("CLOUDKIT_LOG", "info"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .to_vec(),
    )?;

    let pid = (bed.runner().pid()).ok_or_else(|| anyhow::anyhow!("the runner exited at once"))?;
    create_all(&bed, (0..IN_FLIGHT).map(old).collect()).await?;
    let aap = &bed.aap;
    aap.wait_until(WAIT, || {
        let running = aap
            .jobs_of_template(PROVISION_TEMPLATE_ID)
            .iter()
            .filter(|j| j.status == JobStatus::Running)
            .count();
        (running >= IN_FLIGHT).then_some(())
    })
    .await
    .ok_or_else(|| anyhow::anyhow!("the {IN_FLIGHT} jobs never all ran in AAP"))?;
    let held: BTreeMap<_, _> = aap
        .jobs_of_template(PROVISION_TEMPLATE_ID)
        .into_iter()
        .map(|j| (j.id, j))
        .collect();
    assert_eq!(
        held.len(),
        IN_FLIGHT,
        "one launch per instance before the outage"
    );

    // The outage: a gateway answering 503 for every AAP endpoint.
    for endpoint in Endpoint::ALL {
        aap.update_faults(endpoint, |f| f.always = Some(Fault::Status(503)));
    }
    let outage_from = aap.requests().len();
    let mut samples = vec![rss_of(pid)?];
    create_all(&bed, (0..CREATED_DURING).map(new).collect()).await?;
    let outage_started = std::time::Instant::now();
    while outage_started.elapsed() < OUTAGE {
        tokio::time::sleep(OUTAGE / 20).await;
        samples.push(rss_of(pid)?);
    }
    // Every new instance says why it waits, and nothing was launched meanwhile.
    let during = instances(&bed).await?;
    let unreachable: Vec<&String> = during
        .iter()
        .filter(|(n, ci)| {
            n.starts_with("during-")
                && progressing_reason(ci).as_deref() == Some(reasons::PROVIDER_UNREACHABLE)
        })
        .map(|(n, _)| n)
        .collect();
    for (n, ci) in during
        .iter()
        .filter(|(n, _)| n.starts_with("during-") && !unreachable.contains(n))
    {
        println!(
            "{n} during the outage: Progressing {:?}, jobs {:?}",
            condition(ci, cond::PROGRESSING),
            jobs_of(ci, JobType::Provision)
        );
    }
    let outage_requests: Vec<RequestRecord> = aap.requests().split_off(outage_from);
    let finished_in_aap = aap
        .jobs_of_template(PROVISION_TEMPLATE_ID)
        .iter()
        .filter(|j| j.status.is_terminal())
        .count();
    for endpoint in Endpoint::ALL {
        aap.update_faults(endpoint, |f| f.always = None);
    }

    let mib = |b: u64| format!("{:.1}", b as f64 / (1024.0 * 1024.0));
    println!(
        "runner VmRSS over the outage (MiB): {}",
        samples
            .iter()
            .map(|&b| mib(b))
            .collect::<Vec<_>>()
            .join(" ")
    );
    // After a failed launch POST the runner first asks AAP whether the launch happened (a
    // job list filtered by template and `created__gte`) and POSTs again only once it knows:
    // during the outage the look-ups are the tries. The POSTs alone are spaced by when the
    // instances were created, not by the backoff.
    let is_look_up = |r: &RequestRecord| {
        r.endpoint == Endpoint::JobList
            && r.query
                .as_deref()
                .is_some_and(|q| q.contains("created__gte"))
    };
    let launch_gap = longest_gap(&outage_requests, |r| r.endpoint == Endpoint::Launch);
    let poll_gap = longest_gap(&outage_requests, |r| {
        r.endpoint == Endpoint::JobList && !is_look_up(r)
    });
    let try_gap = longest_gap(&outage_requests, |r| {
        r.endpoint == Endpoint::Launch || is_look_up(r)
    });
    println!(
        "outage: {} AAP requests answered 503; longest pause between launch POSTs {launch_gap:?}, between tries (launch or look-up) {try_gap:?}, between polls {poll_gap:?}; {finished_in_aap} jobs finished in AAP meanwhile; {} of {CREATED_DURING} new instances said {}",
        outage_requests.len(),
        unreachable.len(),
        reasons::PROVIDER_UNREACHABLE
    );
    assert_eq!(
        unreachable.len(),
        CREATED_DURING,
        "every instance created during the outage says ProviderUnreachable"
    );
    assert!(
        outage_requests
            .iter()
            .all(|r| r.status == Some(503) || r.status.is_none()),
        "the outage let a request through"
    );
    assert!(
        finished_in_aap >= IN_FLIGHT,
        "the held jobs finished in AAP during the outage"
    );
    assert!(
        try_gap > Duration::ZERO && poll_gap > Duration::ZERO,
        "the runner kept trying"
    );
    assert!(
        try_gap <= RETRY_MAX + SLACK,
        "launch tries and look-ups {try_gap:?} apart"
    );
    assert!(poll_gap <= RETRY_MAX + SLACK, "polls {poll_gap:?} apart");
    let first = samples[0];
    let most = samples.iter().copied().max().unwrap_or_default();
    assert!(
        most <= 2 * first + 20 * 1024 * 1024,
        "runner memory grew from {} to {} MiB",
        mib(first),
        mib(most)
    );

    // After: everything runs, the held jobs' outcome is the one AAP recorded, every new
    // instance has exactly one job in AAP, and no condition still blames AAP.
    bed.wait_until("every instance Running after the outage", WAIT, || async {
        let all = instances(&bed).await?;
        Ok(
            (all.len() == IN_FLIGHT + CREATED_DURING && all.values().all(|ci| running(Some(ci))))
                .then_some(()),
        )
    })
    .await?;
    let after = instances(&bed).await?;
    for i in 0..IN_FLIGHT {
        let ci = &after[&old(i)];
        let provisions = jobs_of(ci, JobType::Provision);
        assert_eq!(provisions.len(), 1, "{}: {provisions:?}", old(i));
        let job = &provisions[0];
        let id: u64 = job.job_id.as_deref().unwrap_or_default().parse()?;
        let in_aap = &held[&id];
        assert_eq!(job.state, JobState::Succeeded, "{}: {job:?}", old(i));
        assert_eq!(
            aap.job(in_aap.id).map(|j| j.status),
            Some(JobStatus::Successful)
        );
    }
    for i in 0..CREATED_DURING {
        let name = new(i);
        assert_eq!(
            aap.jobs_of(&bed.namespace, &name).len(),
            1,
            "{name} launched once"
        );
        assert_ne!(
            progressing_reason(&after[&name]).as_deref(),
            Some(reasons::PROVIDER_UNREACHABLE),
            "{name} still blames AAP"
        );
    }
    assert!(aap.overlaps().is_empty(), "{:?}", aap.overlaps());
    Ok(())
}
