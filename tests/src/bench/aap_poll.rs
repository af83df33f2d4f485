//! AAP requests per poll tick against the number of in-flight jobs: provision jobs are
//! held `running` in the AAP simulator, and its ledger's job-list requests are grouped
//! into ticks by the pauses between them. The design says ceil(in-flight / 200).

use std::time::{Duration, Instant};

use anyhow::Context as _;
use cloudkit_shared::{ComputeInstance, ComputeInstanceSpec};
use futures::{StreamExt, TryStreamExt};
use kube::api::{Api, ListParams, PostParams};

use crate::aap_sim::{AapSimulator, Endpoint, JobStatus, RequestRecord};

use super::population::instance_name;

/// The poll at one number of in-flight jobs.
#[derive(Clone, Debug)]
pub struct PollFigure {
    pub in_flight: usize,
    /// Whole ticks measured (the partial ones at the window's edges are left out).
    pub ticks: usize,
    pub requests: usize,
    /// The most job ids one request asked for.
    pub max_ids_per_request: usize,
    /// Time for the runner to launch the new jobs (instances created → all running).
    pub launch_time: Duration,
}

impl PollFigure {
    pub fn per_tick(&self) -> Option<f64> {
        (self.ticks > 0).then(|| self.requests as f64 / self.ticks as f64)
    }

    pub fn expected(&self) -> usize {
        self.in_flight.div_ceil(200)
    }
}

/// How the poll is measured.
#[derive(Clone, Copy, Debug)]
pub struct PollSettings {
    /// Ticks to count at each size.
    pub ticks: usize,
    /// The runner's `CLOUDKIT_AAP_STATUS_POLL_INTERVAL`.
    pub interval: Duration,
    /// Instances created at a time.
    pub concurrency: usize,
}

/// Grows the instances of `namespace` to `in_flight` (each gets one provision job held
/// running by `sim`), waits until the runner polls all of them, then counts job-list
/// requests over `settings.ticks` ticks.
pub async fn measure_one(
    client: &kube::Client,
    namespace: &str,
    sim: &AapSimulator,
    already: usize,
    in_flight: usize,
    settings: &PollSettings,
) -> anyhow::Result<PollFigure> {
    let PollSettings {
        ticks,
        interval,
        concurrency,
    } = *settings;
    let api: Api<ComputeInstance> = Api::namespaced(client.clone(), namespace);
    let started = Instant::now();
    futures::stream::iter((already..in_flight).map(|i| {
        let api = api.clone();
        async move {
            let spec = ComputeInstanceSpec {
                template_id: "osac.templates.ocp_small".into(),
                ..Default::default()
            };
            api.create(
                &PostParams::default(),
                &ComputeInstance::new(&instance_name(i), spec),
            )
            .await
            .map(|_| ())
        }
    }))
    .buffer_unordered(concurrency.max(1))
    .try_collect::<Vec<()>>()
    .await
    .context("creating instances to provision")?;
    // Every job running in AAP, and every launch recorded in status (the runner polls
    // what its watch cache holds).
    let timeout = Duration::from_secs(60) + Duration::from_millis(100 * in_flight as u64);
    let deadline = Instant::now() + timeout;
    loop {
        anyhow::ensure!(
            Instant::now() < deadline,
            "the runner did not launch {in_flight} provision jobs within {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
        let running = sim
            .jobs()
            .iter()
            .filter(|j| j.status == JobStatus::Running)
            .count();
        if running < in_flight {
            continue;
        }
        let recorded = api
            .list(&ListParams::default())
            .await?
            .items
            .iter()
            .filter(|ci| {
                ci.status
                    .as_ref()
                    .is_some_and(|s| s.jobs.iter().any(|j| j.job_id.is_some()))
            })
            .count();
        if recorded >= in_flight {
            break;
        }
    }
    let launch_time = started.elapsed();
    // Two ticks for the runner's cache to catch up with the last status writes.
    tokio::time::sleep(interval * 2).await;
    let skip = sim.requests().len();
    tokio::time::sleep(interval * (ticks as u32 + 2)).await;
    let requests: Vec<RequestRecord> = sim
        .requests()
        .into_iter()
        .skip(skip)
        .filter(|r| r.endpoint == Endpoint::JobList)
        .collect();
    let (ticks, requests_in_ticks) = whole_ticks(&requests, interval);
    let max_ids_per_request = requests
        .iter()
        .map(|r| ids_asked(r.query.as_deref()))
        .max()
        .unwrap_or(0);
    Ok(PollFigure {
        in_flight,
        ticks,
        requests: requests_in_ticks,
        max_ids_per_request,
        launch_time,
    })
}

/// Groups requests into ticks (a pause longer than half the interval starts a new one)
/// and drops the first and last group, which the window may have cut.
pub fn whole_ticks(requests: &[RequestRecord], interval: Duration) -> (usize, usize) {
    let gap = interval / 2;
    let mut groups: Vec<usize> = Vec::new();
    let mut last: Option<k8s_openapi::jiff::Timestamp> = None;
    for r in requests {
        let new_group = match last {
            None => true,
            Some(prev) => {
                Duration::try_from(r.at.duration_since(prev)).unwrap_or(Duration::ZERO) > gap
            }
        };
        if new_group {
            groups.push(0);
        }
        *groups.last_mut().expect("pushed above") += 1;
        last = Some(r.at);
    }
    if groups.len() <= 2 {
        return (0, 0);
    }
    let whole = &groups[1..groups.len() - 1];
    (whole.len(), whole.iter().sum())
}

/// How many ids an `id__in=1,2,3` query asks for.
pub fn ids_asked(query: Option<&str>) -> usize {
    let Some(query) = query else { return 0 };
    let Ok(url) = reqwest::Url::parse(&format!("http://x/?{query}")) else {
        return 0;
    };
    url.query_pairs()
        .find(|(k, _)| k == "id__in")
        .map(|(_, v)| v.split(',').filter(|s| !s.is_empty()).count())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::Timestamp;

    fn request(at_ms: i64) -> RequestRecord {
        RequestRecord {
            seq: 0,
            method: "GET".into(),
            path: "/api/controller/v2/jobs/".into(),
            query: None,
            endpoint: Endpoint::JobList,
            status: Some(200),
            fault: None,
            at: Timestamp::from_millisecond(at_ms).unwrap(),
            answered_at: None,
        }
    }

    #[test]
    fn ticks_are_grouped_by_pauses_and_edges_dropped() {
        // Ticks at 0 s (cut), 1 s (2 requests), 2 s (2), 3 s (1, cut).
        let at = [0, 1000, 1010, 2000, 2015, 3000];
        let requests: Vec<_> = at.iter().map(|&ms| request(ms)).collect();
        assert_eq!(whole_ticks(&requests, Duration::from_secs(1)), (2, 4));
        assert_eq!(whole_ticks(&requests[..2], Duration::from_secs(1)), (0, 0));
    }

    #[test]
    fn ids_in_the_query_are_counted() {
        assert_eq!(ids_asked(Some("id__in=101%2C102%2C103&page_size=200")), 3);
        assert_eq!(ids_asked(Some("id__in=7")), 1);
        assert_eq!(ids_asked(Some("page=2")), 0);
        assert_eq!(ids_asked(None), 0);
    }
}
