//! AAP requests per poll tick against the number of in-flight jobs: provision jobs are
//! held `running` in the AAP simulator, and its ledger's job-list requests are grouped
//! into ticks by the job ids they ask for. docs/providers.md says ceil(in-flight / 200).

use std::collections::HashSet;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use cloudkit_shared::{ComputeInstance, ComputeInstanceSpec};
use futures::{StreamExt, TryStreamExt};
use kube::api::{Api, PostParams};

use crate::aap_sim::{AapSimulator, Endpoint, JobStatus, RequestRecord};

use super::population::instance_name;
use super::runner::BenchRunner;

/// The poll at one number of in-flight jobs.
#[derive(Clone, Debug)]
pub struct PollFigure {
    pub in_flight: usize,
    /// Whole ticks measured, each asking for every in-flight job.
    pub ticks: usize,
    pub requests: usize,
    /// The most job ids one request asked for.
    pub max_ids_per_request: usize,
    /// Mean time from one tick's first request to the next one's.
    pub tick_period: Duration,
    /// The runner's status writes over the measured ticks (no job changed: expect none).
    pub status_writes: u64,
    /// Instances created → every job running in AAP.
    pub launch_time: Duration,
}

impl PollFigure {
    pub fn per_tick(&self) -> Option<f64> {
        (self.ticks > 0).then(|| self.requests as f64 / self.ticks as f64)
    }

    pub fn status_writes_per_tick(&self) -> Option<f64> {
        (self.ticks > 0).then(|| self.status_writes as f64 / self.ticks as f64)
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

/// One poll tick as the AAP simulator saw it.
#[derive(Clone, Debug, PartialEq)]
pub struct Tick {
    pub requests: usize,
    /// Distinct job ids asked for.
    pub ids: usize,
    pub max_ids_per_request: usize,
    pub first_at: k8s_openapi::jiff::Timestamp,
}

/// Splits job-list requests into ticks: within one tick every in-flight job is asked for
/// once, so a request that asks for an id again starts the next tick. (Pauses between
/// requests say nothing once a loaded runner's ticks run into each other.)
pub fn ticks(requests: &[RequestRecord]) -> Vec<Tick> {
    let mut out: Vec<Tick> = Vec::new();
    let mut seen: HashSet<String> = HashSet::new();
    for r in requests {
        let ids = ids_of(r.query.as_deref());
        let repeat = ids.iter().any(|id| seen.contains(id));
        if out.is_empty() || repeat {
            seen.clear();
            out.push(Tick {
                requests: 0,
                ids: 0,
                max_ids_per_request: 0,
                first_at: r.at,
            });
        }
        let tick = out.last_mut().expect("pushed above");
        tick.requests += 1;
        tick.max_ids_per_request = tick.max_ids_per_request.max(ids.len());
        for id in ids {
            if seen.insert(id) {
                tick.ids += 1;
            }
        }
    }
    out
}

/// Grows the instances of `namespace` to `in_flight` (each gets one provision job held
/// running by `sim`), waits for the first tick that asks for all of them, then counts
/// job-list requests (and the runner's status writes) over `settings.ticks` ticks.
pub async fn measure_one(
    client: &kube::Client,
    namespace: &str,
    sim: &AapSimulator,
    runner: &mut BenchRunner,
    already: usize,
    in_flight: usize,
    settings: &PollSettings,
) -> anyhow::Result<PollFigure> {
    let started = Instant::now();
    create_to_provision(client, namespace, already..in_flight, settings.concurrency).await?;
    let timeout = Duration::from_secs(120) + Duration::from_millis(200 * in_flight as u64);
    let deadline = Instant::now() + timeout;
    let mut launch_time = None;
    let mut skip = sim.requests().len();
    // (complete ticks so far, status writes) when the first full tick was seen.
    let mut from: Option<(usize, u64)> = None;
    loop {
        anyhow::ensure!(
            Instant::now() < deadline,
            "no {} full poll ticks of {in_flight} in-flight jobs within {timeout:?} (running in AAP: {})",
            settings.ticks,
            sim.jobs()
                .iter()
                .filter(|j| j.status == JobStatus::Running)
                .count()
        );
        tokio::time::sleep(settings.interval / 2).await;
        if launch_time.is_none() {
            let running = sim
                .jobs()
                .iter()
                .filter(|j| j.status == JobStatus::Running)
                .count();
            if running < in_flight {
                continue;
            }
            launch_time = Some(started.elapsed());
            // Ticks from here on can ask for every job.
            skip = sim.requests().len();
        }
        let requests: Vec<RequestRecord> = sim
            .requests()
            .into_iter()
            .skip(skip)
            .filter(|r| r.endpoint == Endpoint::JobList)
            .collect();
        let all = ticks(&requests);
        // The last tick may still be going on.
        let complete = &all[..all.len().saturating_sub(1)];
        let Ok(scrape) = runner.scrape().await else {
            continue;
        };
        match from {
            None => {
                // Count from the first tick that starts after a full one has been seen.
                if complete.iter().any(|t| t.ids >= in_flight) {
                    from = Some((all.len(), scrape.status_writes));
                }
            }
            Some((k0, writes0)) if complete.len() >= k0 + settings.ticks => {
                let measured = &complete[k0..];
                let period = if measured.len() > 1 {
                    let span = measured[measured.len() - 1]
                        .first_at
                        .duration_since(measured[0].first_at);
                    Duration::try_from(span).unwrap_or_default() / (measured.len() as u32 - 1)
                } else {
                    Duration::ZERO
                };
                return Ok(PollFigure {
                    in_flight,
                    ticks: measured.len(),
                    requests: measured.iter().map(|t| t.requests).sum(),
                    max_ids_per_request: measured
                        .iter()
                        .map(|t| t.max_ids_per_request)
                        .max()
                        .unwrap_or(0),
                    tick_period: period,
                    status_writes: scrape.status_writes.saturating_sub(writes0),
                    launch_time: launch_time.unwrap_or_default(),
                });
            }
            Some(_) => {}
        }
    }
}

/// The ids an `id__in=1,2,3` query asks for.
pub fn ids_of(query: Option<&str>) -> Vec<String> {
    let Some(query) = query else {
        return Vec::new();
    };
    let Ok(url) = reqwest::Url::parse(&format!("http://x/?{query}")) else {
        return Vec::new();
    };
    url.query_pairs()
        .find(|(k, _)| k == "id__in")
        .map(|(_, v)| {
            v.split(',')
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect()
        })
        .unwrap_or_default()
}

/// Creates instances `range` (names from [`instance_name`]) in `namespace`, each for the
/// runner to provision, `concurrency` at a time.
pub async fn create_to_provision(
    client: &kube::Client,
    namespace: &str,
    range: std::ops::Range<usize>,
    concurrency: usize,
) -> anyhow::Result<()> {
    let api: Api<ComputeInstance> = Api::namespaced(client.clone(), namespace);
    futures::stream::iter(range.map(|i| {
        let api = api.clone();
        async move {
            let spec = ComputeInstanceSpec {
                template_id: "osac.templates.ocp_small".into(),
                ..Default::default()
            };
            let ci = ComputeInstance::new(&instance_name(i), spec);
            // A loaded API server may drop a keep-alive connection: try again; a
            // create that did land the first time answers 409 the second.
            let mut attempt = 0;
            loop {
                attempt += 1;
                match api.create(&PostParams::default(), &ci).await {
                    Ok(_) => return Ok(()),
                    Err(kube::Error::Api(s)) if s.code == 409 && attempt > 1 => return Ok(()),
                    Err(kube::Error::Api(s)) => return Err(kube::Error::Api(s)),
                    Err(e) if attempt >= 3 => return Err(e),
                    Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
                }
            }
        }
    }))
    .buffer_unordered(concurrency.max(1))
    .try_collect::<Vec<()>>()
    .await
    .context("creating instances to provision")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::Timestamp;

    fn request(at_ms: i64, ids: &str) -> RequestRecord {
        RequestRecord {
            seq: 0,
            method: "GET".into(),
            path: "/api/controller/v2/jobs/".into(),
            query: Some(format!("id__in={ids}&page_size=200")),
            endpoint: Endpoint::JobList,
            status: Some(200),
            fault: None,
            at: Timestamp::from_millisecond(at_ms).unwrap(),
            answered_at: None,
        }
    }

    #[test]
    fn a_repeated_id_starts_the_next_tick() {
        // Two pages per tick, and ticks that run into each other without a pause.
        let requests = [
            request(0, "1%2C2"),
            request(10, "3"),
            request(20, "2%2C1"),
            request(30, "3"),
            request(40, "1%2C2%2C3%2C4"),
        ];
        let t = ticks(&requests);
        assert_eq!(t.len(), 3);
        assert_eq!(
            (t[0].requests, t[0].ids, t[0].max_ids_per_request),
            (2, 3, 2)
        );
        assert_eq!((t[1].requests, t[1].ids), (2, 3));
        assert_eq!((t[2].requests, t[2].ids), (1, 4));
        assert_eq!(t[1].first_at, Timestamp::from_millisecond(20).unwrap());
    }

    #[test]
    fn ids_in_the_query_are_read() {
        assert_eq!(
            ids_of(Some("id__in=101%2C102%2C103&page_size=200")).len(),
            3
        );
        assert_eq!(ids_of(Some("id__in=7")), vec!["7".to_string()]);
        assert!(ids_of(Some("page=2")).is_empty());
        assert!(ids_of(None).is_empty());
    }
}
