//! Prometheus metrics (prometheus-client), served on `/metrics`.

use std::sync::Arc;

use cloudkit_shared::plan::Outcome;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct OutcomeLabels {
    pub(crate) outcome: String,
    pub(crate) reason: String,
}

#[derive(Clone)]
pub struct Metrics {
    pub(crate) registry: Arc<Registry>,
    pub(crate) reconciles: Counter,
    pub(crate) reconcile_errors: Counter,
    pub(crate) status_writes: Counter,
    pub(crate) reconcile_seconds: Histogram,
    pub(crate) outcomes: Family<OutcomeLabels, Counter>,
    /// 1 while this replica holds the lease.
    pub(crate) leader: Gauge,
    /// Stored instances that cannot be read as this version's ComputeInstance.
    pub(crate) unreadable_instances: Gauge,
    /// AAP requests in flight now (bounded by CLOUDKIT_AAP_MAX_CONCURRENT_REQUESTS).
    pub aap_requests_in_flight: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("cloudkit_runner");
        let reconciles = Counter::default();
        let reconcile_errors = Counter::default();
        let status_writes = Counter::default();
        let reconcile_seconds = Histogram::new(exponential_buckets(0.001, 2.0, 14));
        let outcomes = Family::<OutcomeLabels, Counter>::default();
        let leader = Gauge::default();
        let unreadable_instances = Gauge::default();
        let aap_requests_in_flight = Gauge::default();
        registry.register(
            "aap_requests_in_flight",
            "AAP requests in flight now (at most CLOUDKIT_AAP_MAX_CONCURRENT_REQUESTS)",
            aap_requests_in_flight.clone(),
        );
        registry.register(
            "unreadable_instances",
            "Stored ComputeInstances the runner cannot read (and so does not manage)",
            unreadable_instances.clone(),
        );
        registry.register(
            "leader",
            "1 while this replica holds the lease",
            leader.clone(),
        );
        registry.register("reconciles", "Reconciles run", reconciles.clone());
        registry.register(
            "reconcile_errors",
            "Reconciles that failed",
            reconcile_errors.clone(),
        );
        registry.register(
            "status_writes",
            "Status patches written",
            status_writes.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Time per reconcile",
            reconcile_seconds.clone(),
        );
        registry.register(
            "effect_outcomes",
            "Results of launches, cancels and VMI deletions",
            outcomes.clone(),
        );
        Self {
            registry: Arc::new(registry),
            reconciles,
            reconcile_errors,
            status_writes,
            reconcile_seconds,
            outcomes,
            leader,
            unreadable_instances,
            aap_requests_in_flight,
        }
    }
}

impl Metrics {
    pub(crate) fn outcome(&self, outcome: &Outcome) {
        let (name, reason) = match outcome {
            Outcome::Launched { .. } => ("launched", String::new()),
            Outcome::LaunchFailed { reason, .. } => ("launch_failed", reason.clone()),
            Outcome::CancelFailed { .. } => ("cancel_failed", String::new()),
            Outcome::VmiDeleted { .. } => ("vmi_deleted", String::new()),
            Outcome::VmiDeleteFailed { .. } => ("vmi_delete_failed", String::new()),
        };
        self.outcomes
            .get_or_create(&OutcomeLabels {
                outcome: name.into(),
                reason,
            })
            .inc();
    }

    pub(crate) fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
