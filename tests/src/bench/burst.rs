//! A burst: N instances created at once, each needing a launch. The figures are how
//! fast the runner launches them and how many AAP requests the simulator saw at once,
//! which `CLOUDKIT_AAP_MAX_CONCURRENT_REQUESTS` bounds.

use std::time::{Duration, Instant};

use crate::aap_sim::AapSimulator;
use crate::bed::PROVISION_TEMPLATE_ID;

use super::aap_poll::create_to_provision;

/// How long after the last launch the jobs are counted for duplicates.
const SETTLE: Duration = Duration::from_secs(3);

#[derive(Clone, Debug)]
pub struct BurstFigure {
    pub instances: usize,
    /// First create sent → the last instance's job created in AAP.
    pub launch_time: Duration,
    /// Creating the instances alone.
    pub create_time: Duration,
    /// The most AAP requests in flight at once, as the simulator saw them.
    pub peak_in_flight: usize,
    /// Launch requests made (a launch that had to be repeated shows here).
    pub launch_requests: u64,
    /// Instances with more than one provision job in AAP, counted after the settle.
    pub duplicates: usize,
    /// Template lookups (`job_templates/` and `workflow_job_templates/` requests) made.
    pub template_lookups: u64,
}

impl BurstFigure {
    pub fn launches_per_second(&self) -> f64 {
        self.instances as f64 / self.launch_time.as_secs_f64().max(1e-3)
    }
}

/// Creates `n` instances in `namespace` (`concurrency` creates at a time) and waits
/// until `sim` has a provision job for each; `sim` must have no provision job yet.
pub async fn measure(
    client: &kube::Client,
    namespace: &str,
    sim: &AapSimulator,
    n: usize,
    concurrency: usize,
) -> anyhow::Result<BurstFigure> {
    sim.reset_peak_in_flight();
    let launched = || sim.jobs_of_template(PROVISION_TEMPLATE_ID).len();
    anyhow::ensure!(launched() == 0, "the burst's simulator already has jobs");
    let started = Instant::now();
    create_to_provision(client, namespace, 0..n, concurrency).await?;
    let create_time = started.elapsed();
    let timeout = Duration::from_secs(60) + Duration::from_millis(200 * n as u64);
    let all = sim
        .wait_until(timeout, || (launched() >= n).then_some(()))
        .await;
    anyhow::ensure!(
        all.is_some(),
        "only {} of {n} instances launched within {timeout:?}",
        launched()
    );
    let launch_time = started.elapsed();
    // A repeated launch would land after the last first one: give it time to show.
    tokio::time::sleep(SETTLE).await;
    let mut per_instance = std::collections::HashMap::new();
    for job in sim.jobs_of_template(PROVISION_TEMPLATE_ID) {
        *per_instance.entry(job.instance).or_insert(0usize) += 1;
    }
    Ok(BurstFigure {
        instances: n,
        launch_time,
        duplicates: per_instance.values().filter(|&&c| c > 1).count(),
        create_time,
        peak_in_flight: sim.peak_requests_in_flight(),
        launch_requests: sim.counter(crate::aap_sim::Endpoint::Launch).requests,
        template_lookups: sim
            .counter(crate::aap_sim::Endpoint::TemplateLookup)
            .requests,
    })
}
