//! Settle time: from the runner's start until it has reconciled every existing Running
//! instance and gone quiet; with the status writes it made (the target is none), and
//! its memory and CPU at that moment.

use std::time::{Duration, Instant};

use super::runner::{BenchRunner, ProcStats, Scrape};

/// One settle run.
#[derive(Clone, Debug)]
pub struct Settled {
    pub instances: usize,
    /// Start → the last reconcile before the quiet period.
    pub settle: Duration,
    /// Start → the lease is held (leader gauge 1).
    pub to_leader: Option<Duration>,
    /// Start → the first reconcile (watch caches listed).
    pub to_first_reconcile: Option<Duration>,
    pub metrics: Scrape,
    pub proc: ProcStats,
    /// AAP requests the runner made while settling (nothing is in flight: expect none).
    pub aap_requests: u64,
}

impl Settled {
    /// CPU seconds (utime + stime since start) per 1,000 reconciles.
    pub fn cpu_per_1000_reconciles(&self) -> Option<f64> {
        (self.metrics.reconciles > 0)
            .then(|| self.proc.cpu_seconds / self.metrics.reconciles as f64 * 1000.0)
    }

    /// Mean time per reconcile from the runner's histogram.
    pub fn mean_reconcile(&self) -> Option<Duration> {
        (self.metrics.reconcile_seconds_count > 0).then(|| {
            Duration::from_secs_f64(
                self.metrics.reconcile_seconds_sum / self.metrics.reconcile_seconds_count as f64,
            )
        })
    }
}

/// Scrapes the freshly started `runner` every 100 ms until it leads, has run at least
/// `instances` reconciles, and has run none for `quiet`. `aap_requests` counts the AAP
/// simulator's requests so far.
pub async fn wait(
    runner: &mut BenchRunner,
    instances: usize,
    quiet: Duration,
    timeout: Duration,
    aap_requests: impl Fn() -> u64,
) -> anyhow::Result<Settled> {
    let start = runner.started();
    let aap_before = aap_requests();
    let mut to_leader = None;
    let mut to_first = None;
    let mut last = Scrape::default();
    let mut last_change = Instant::now();
    loop {
        anyhow::ensure!(
            start.elapsed() < timeout,
            "the runner did not settle {instances} instances within {timeout:?} (last scrape: {last:?}):\n{}",
            runner.log_tail(20)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        let Ok(scrape) = runner.scrape().await else {
            continue;
        };
        if scrape.leader && to_leader.is_none() {
            to_leader = Some(start.elapsed());
        }
        if scrape.reconciles > 0 && to_first.is_none() {
            to_first = Some(start.elapsed());
        }
        if scrape.reconciles != last.reconciles {
            last_change = Instant::now();
        }
        last = scrape;
        let enough = scrape.reconciles >= instances as u64;
        if scrape.leader && enough && last_change.elapsed() >= quiet {
            // Read everything once more at the end of the quiet period, together.
            let proc = runner.proc_stats()?;
            let metrics = runner.scrape().await?;
            let settle = if instances == 0 {
                to_leader.unwrap_or_default()
            } else {
                last_change.duration_since(start)
            };
            return Ok(Settled {
                instances,
                settle,
                to_leader,
                to_first_reconcile: to_first,
                metrics,
                proc,
                aap_requests: aap_requests().saturating_sub(aap_before),
            });
        }
    }
}
