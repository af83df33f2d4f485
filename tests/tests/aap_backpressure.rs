//! The runner's AAP client keeps at most `max_concurrent_requests` requests in flight,
//! however many callers ask at once: the simulator's own high-water mark says so.

use std::time::Duration;

use cloudkit_runner::aap::{AapClient, AapConfig, AapError, RetryPolicy, Secret, TokenSource};
use cloudkit_shared::names::CORRELATION_EXTRA_VAR;
use cloudkit_testbed::aap_sim::*;
use serde_json::json;

const PROVISION: u64 = 7;
const PROVISION_NAME: &str = "cloudkit provision";

async fn slow_sim() -> AapSimulator {
    let sim = AapSimulator::start(
        AapSimConfig::new().template(
            TemplateConfig::job(PROVISION, PROVISION_NAME)
                .role(Role::Provision)
                .behavior(JobBehavior::uniform(Duration::from_millis(5))),
        ),
    )
    .await
    .unwrap();
    // Slow enough that every caller is waiting while the first ones are served.
    sim.set_latency(Endpoint::Launch, Duration::from_millis(150));
    sim.set_latency(Endpoint::TemplateLookup, Duration::from_millis(50));
    sim
}

fn client(sim: &AapSimulator, limit: usize) -> Result<AapClient, AapError> {
    let mut config = AapConfig::new(
        sim.base_url(),
        TokenSource::Static(Secret::new(DEFAULT_TOKEN.to_owned())),
    );
    config.request_timeout = Duration::from_secs(30);
    config.retry = RetryPolicy::none();
    config.max_concurrent_requests = limit;
    AapClient::new(config)
}

#[tokio::test]
async fn launches_from_many_callers_never_exceed_the_limit() {
    const CALLERS: usize = 40;
    const LIMIT: usize = 3;
    let sim = slow_sim().await;
    let aap = client(&sim, LIMIT).unwrap();
    let tasks: Vec<_> = (0..CALLERS)
        .map(|i| {
            let aap = aap.clone();
            tokio::spawn(async move {
                let vars = json!({ CORRELATION_EXTRA_VAR: format!("key-{i}") });
                aap.launch(PROVISION_NAME, vars).await
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let launches = sim.counter(Endpoint::Launch).requests;
    let peak = sim.peak_requests_in_flight();
    println!("{CALLERS} launches, limit {LIMIT}: AAP saw at most {peak} requests at once");
    assert_eq!(launches, CALLERS as u64, "every caller launched once");
    assert_eq!(sim.jobs_of_template(PROVISION).len(), CALLERS);
    assert!(peak <= LIMIT, "{peak} requests in flight, limit {LIMIT}");
    // Forty callers were waiting: the limit, not the callers, set the concurrency.
    assert_eq!(peak, LIMIT, "the limit was never reached");
    assert_eq!(sim.requests_in_flight(), 0);
}

#[tokio::test]
async fn the_in_flight_gauge_returns_to_zero_and_zero_is_refused() {
    let sim = slow_sim().await;
    let e = client(&sim, 0).unwrap_err();
    assert!(e.to_string().contains("at least 1"), "{e}");

    let gauge = prometheus_client::metrics::gauge::Gauge::<i64>::default();
    let mut config = AapConfig::new(
        sim.base_url(),
        TokenSource::Static(Secret::new(DEFAULT_TOKEN.to_owned())),
    );
    config.max_concurrent_requests = 2;
    config.in_flight = gauge.clone();
    let aap = AapClient::new(config).unwrap();
    let (a, b, c) = tokio::join!(
        aap.launch(PROVISION_NAME, json!({ CORRELATION_EXTRA_VAR: "a" })),
        aap.launch(PROVISION_NAME, json!({ CORRELATION_EXTRA_VAR: "b" })),
        aap.launch(PROVISION_NAME, json!({ CORRELATION_EXTRA_VAR: "c" })),
    );
    a.unwrap();
    b.unwrap();
    c.unwrap();
    assert!(sim.peak_requests_in_flight() <= 2);
    assert_eq!(gauge.get(), 0, "a finished request leaves the gauge");
}
