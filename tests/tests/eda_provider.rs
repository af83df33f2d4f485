//! The runner's EDA client against the EDA simulator: what the client posts is what the
//! webhook source and event streams take (docs/providers.md "EDA"), and each answer becomes
//! the right error, permanent or not, with the right reason, and no secret in it.

use std::time::Duration;

use cloudkit_runner::config::{EdaSettings, HmacStyle};
use cloudkit_runner::eda::{EdaAction, EdaClient, EdaError};
use cloudkit_shared::reasons;
use cloudkit_testbed::eda_sim::*;
use serde_json::{Value, json};

const TIMEOUT: Duration = Duration::from_secs(5);
const TOKEN: &str = "tok-5ecret";
const SECRET: &str = "hmac-5ecret";
const STREAM: &str = "0b6a2f4c-5d7e-4f80-9a1b-2c3d4e5f6a7b";

fn payload(name: &str) -> Value {
    json!({
        "apiVersion": "cloudkit.openshift.io/v1alpha1",
        "kind": "ComputeInstance",
        "metadata": { "name": name, "namespace": "ns", "uid": "u-1" },
        "spec": { "templateID": "small" },
        "status": { "desiredConfigVersion": "abc123", "phase": "Starting" }
    })
}

fn settings(provision_url: String, deprovision_url: String) -> EdaSettings {
    EdaSettings {
        provision_url,
        deprovision_url,
        token: None,
        hmac_secret: None,
        hmac: HmacStyle::default(),
    }
}

fn client(settings: EdaSettings) -> EdaClient {
    EdaClient::new(settings, TIMEOUT).unwrap()
}

fn webhook_settings(sim: &EdaSimulator) -> EdaSettings {
    settings(sim.provision_url(), sim.deprovision_url())
}

/// The error, checked for secrets on the way.
async fn refused(client: &EdaClient, action: EdaAction) -> EdaError {
    let err = client.send(action, &payload("vm1")).await.unwrap_err();
    let text = format!("{err} {err:?}");
    assert!(!text.contains(TOKEN) && !text.contains(SECRET), "{text}");
    err
}

fn status_of(err: &EdaError) -> Option<u16> {
    match err {
        EdaError::Rejected { status, .. } => Some(*status),
        _ => None,
    }
}

// ---- accepted ------------------------------------------------------------------------

#[tokio::test]
async fn provision_and_deprovision_post_the_resource_to_their_webhooks() {
    let sim = EdaSimulator::start(EdaSimConfig::new()).await.unwrap();
    let eda = client(webhook_settings(&sim));
    eda.send(EdaAction::Provision, &payload("vm1"))
        .await
        .unwrap();
    eda.send(EdaAction::Deprovision, &payload("vm1"))
        .await
        .unwrap();

    let events = sim.events();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0].endpoint(), Some(PROVISION_PATH));
    assert_eq!(events[0].playbook, Some(Playbook::Create));
    assert_eq!(events[1].endpoint(), Some(DEPROVISION_PATH));
    assert_eq!(events[1].playbook, Some(Playbook::Delete));
    // The whole resource, status included: the playbook reads desiredConfigVersion there.
    assert_eq!(events[0].payload(), &payload("vm1"));
    assert_eq!(
        sim.runs()[0].desired_config_version.as_deref(),
        Some("abc123")
    );
    let request = &sim.requests()[0];
    assert_eq!(request.method, "POST");
    assert_eq!(request.headers["content-type"], "application/json");
    assert!(!request.headers.contains_key("authorization"));
    assert!(!request.headers.contains_key("x-hub-signature-256"));
}

#[tokio::test]
async fn token_and_hmac_are_what_the_webhook_source_checks() {
    let sim = EdaSimulator::start(
        EdaSimConfig::new()
            .token(TOKEN)
            .hmac(SECRET, HmacFormat::Hex),
    )
    .await
    .unwrap();
    let mut s = webhook_settings(&sim);
    s.token = Some(TOKEN.into());
    s.hmac_secret = Some(SECRET.into());
    client(s)
        .send(EdaAction::Provision, &payload("vm1"))
        .await
        .unwrap();
    let request = &sim.requests()[0];
    assert_eq!(request.auth, AuthCheck::Passed);
    assert_eq!(request.headers["authorization"], "***");
    // GitHub style, the webhook source's default: `sha256=<hex>` of the exact body.
    let body = serde_json::to_vec(&payload("vm1")).unwrap();
    assert_eq!(
        request.headers["x-hub-signature-256"],
        format!("sha256={}", signature(SECRET, &body, HmacFormat::Hex))
    );
    assert_eq!(
        cloudkit_runner::eda::signature(SECRET, &HmacStyle::default(), &body),
        request.headers["x-hub-signature-256"]
    );
}

#[tokio::test]
async fn event_streams_take_the_token_and_a_hex_hmac_with_prefix() {
    let sim = EdaSimulator::start(
        EdaSimConfig::empty()
            .event_stream(EventStreamConfig::token(STREAM, "by-token", TOKEN))
            .event_stream(EventStreamConfig::hmac("hmac-stream", "by-hmac", SECRET)),
    )
    .await
    .unwrap();
    let mut by_token = settings(sim.stream_url(STREAM), sim.stream_url(STREAM));
    by_token.token = Some(TOKEN.into());
    client(by_token)
        .send(EdaAction::Provision, &payload("vm1"))
        .await
        .unwrap();
    let mut by_hmac = settings(sim.stream_url("hmac-stream"), sim.stream_url("hmac-stream"));
    by_hmac.hmac_secret = Some(SECRET.into());
    client(by_hmac)
        .send(EdaAction::Deprovision, &payload("vm1"))
        .await
        .unwrap();
    let events = sim.events();
    assert_eq!(events.len(), 2);
    assert!(events.iter().all(|e| e.flavor == Flavor::EventStream));
    assert_eq!(events[1].event["meta"]["eda_event_stream_name"], "by-hmac");
}

#[tokio::test]
async fn base64_hmacs_with_other_headers_and_prefixes_are_accepted() {
    // An event stream credential with its own header, no prefix and base64.
    let mut stream = EventStreamConfig::hmac("b64-stream", "by-b64", SECRET);
    stream.auth = StreamAuth::Hmac {
        header: "X-Signature".into(),
        secret: SECRET.into(),
        prefix: String::new(),
        format: HmacFormat::Base64,
    };
    let sim = EdaSimulator::start(
        EdaSimConfig::new()
            .hmac(SECRET, HmacFormat::Base64)
            .event_stream(stream),
    )
    .await
    .unwrap();
    let base64 = HmacStyle {
        header: "x-signature".parse().unwrap(),
        prefix: String::new(),
        base64: true,
    };
    let mut s = settings(sim.stream_url("b64-stream"), sim.stream_url("b64-stream"));
    s.hmac_secret = Some(SECRET.into());
    s.hmac = base64.clone();
    client(s.clone())
        .send(EdaAction::Provision, &payload("vm1"))
        .await
        .unwrap();
    // The default style sends no X-Signature: 400 (missing auth header), permanent.
    s.hmac = HmacStyle::default();
    let err = client(s)
        .send(EdaAction::Provision, &payload("vm1"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, EdaError::Rejected { status: 400, .. }),
        "{err}"
    );
    assert!(err.is_permanent());
    // The webhook source in base64 takes `sha256=<base64>` (its default) and the bare digest.
    let mut hook = webhook_settings(&sim);
    hook.hmac_secret = Some(SECRET.into());
    for prefix in ["sha256=", ""] {
        hook.hmac = HmacStyle {
            prefix: prefix.into(),
            base64: true,
            ..HmacStyle::default()
        };
        client(hook.clone())
            .send(EdaAction::Provision, &payload("vm1"))
            .await
            .unwrap();
    }
    let statuses: Vec<_> = sim.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [Some(200), Some(400), Some(200), Some(200)]);
    assert_eq!(sim.events().len(), 3);
}

#[tokio::test]
async fn a_dropped_event_looks_accepted_fire_and_forget() {
    let sim = EdaSimulator::start(EdaSimConfig::new()).await.unwrap();
    sim.fault_next(Scope::instance("ns", "vm1"), Fault::Drop, 1);
    client(webhook_settings(&sim))
        .send(EdaAction::Provision, &payload("vm1"))
        .await
        .unwrap();
    assert!(sim.events()[0].dropped);
    assert!(sim.runs().is_empty());
}

// ---- refused -------------------------------------------------------------------------

#[tokio::test]
async fn missing_credentials_are_400_permanent() {
    let sim = EdaSimulator::start(
        EdaSimConfig::new()
            .hmac(SECRET, HmacFormat::Hex)
            .event_stream(EventStreamConfig::token(STREAM, "by-token", TOKEN)),
    )
    .await
    .unwrap();
    // Webhook with HMAC, client without a secret: no signature header.
    let eda = client(webhook_settings(&sim));
    let err = refused(&eda, EdaAction::Provision).await;
    assert_eq!(status_of(&err), Some(400), "{err}");
    assert!(err.is_permanent());
    assert_eq!(err.reason(), reasons::WEBHOOK_REJECTED);
    // Event stream, client without a token: no auth header.
    let eda = client(settings(sim.stream_url(STREAM), sim.stream_url(STREAM)));
    let err = refused(&eda, EdaAction::Provision).await;
    assert_eq!(status_of(&err), Some(400), "{err}");
    assert!(err.is_permanent());
    assert!(err.to_string().contains("auth header"), "{err}");
    assert!(sim.events().is_empty());
}

#[tokio::test]
async fn a_bad_token_or_signature_is_401_permanent() {
    let sim = EdaSimulator::start(EdaSimConfig::new().token(TOKEN))
        .await
        .unwrap();
    let mut s = webhook_settings(&sim);
    s.token = Some("wrong".into());
    let err = refused(&client(s.clone()), EdaAction::Provision).await;
    assert_eq!(status_of(&err), Some(401), "{err}");
    assert!(err.is_permanent());
    assert_eq!(err.reason(), reasons::WEBHOOK_REJECTED);
    assert!(err.to_string().contains("credentials"), "{err}");

    // No token at all.
    s.token = None;
    let err = refused(&client(s.clone()), EdaAction::Deprovision).await;
    assert_eq!(status_of(&err), Some(401), "{err}");

    // Right token, wrong HMAC secret.
    sim.set_hmac(Some(SECRET), HmacFormat::Hex);
    s.token = Some(TOKEN.into());
    s.hmac_secret = Some("not-the-secret".into());
    let err = refused(&client(s.clone()), EdaAction::Provision).await;
    assert_eq!(status_of(&err), Some(401), "{err}");
    assert!(err.is_permanent());

    // A receiver that wants base64 signatures: the client signs hex only.
    sim.set_hmac(Some(SECRET), HmacFormat::Base64);
    s.hmac_secret = Some(SECRET.into());
    let err = refused(&client(s), EdaAction::Provision).await;
    assert_eq!(status_of(&err), Some(401), "{err}");
    assert!(sim.events().is_empty());
}

#[tokio::test]
async fn bad_event_stream_credentials_are_403_permanent() {
    let sim = EdaSimulator::start(
        EdaSimConfig::empty()
            .event_stream(EventStreamConfig::token(STREAM, "by-token", TOKEN))
            .event_stream(EventStreamConfig::hmac("hmac-stream", "by-hmac", SECRET)),
    )
    .await
    .unwrap();
    let mut s = settings(sim.stream_url(STREAM), sim.stream_url(STREAM));
    s.token = Some("wrong".into());
    let err = refused(&client(s), EdaAction::Provision).await;
    assert_eq!(status_of(&err), Some(403), "{err}");
    assert!(err.is_permanent());
    assert_eq!(err.reason(), reasons::WEBHOOK_REJECTED);

    let url = sim.stream_url("hmac-stream");
    let mut s = settings(url.clone(), url);
    s.hmac_secret = Some("wrong".into());
    let err = refused(&client(s), EdaAction::Provision).await;
    assert_eq!(status_of(&err), Some(403), "{err}");
}

#[tokio::test]
async fn a_wrong_url_is_405_named_without_its_credentials() {
    let sim = EdaSimulator::start(
        EdaSimConfig::empty().event_stream(EventStreamConfig::token(STREAM, "by-token", TOKEN)),
    )
    .await
    .unwrap();
    // An event stream URL without its trailing slash: Django redirects, the client
    // follows with a GET, and the view answers 405.
    let right = sim.stream_url(STREAM);
    let without_slash = right.trim_end_matches('/');
    let with_credentials =
        without_slash.replacen("http://", "http://someone:pa55word@", 1) + "?token=query-5ecret";
    let mut s = settings(with_credentials.clone(), with_credentials);
    s.token = Some(TOKEN.into());
    let err = refused(&client(s), EdaAction::Provision).await;
    assert_eq!(status_of(&err), Some(405), "{err}");
    assert!(err.is_permanent());
    assert_eq!(err.reason(), reasons::WEBHOOK_REJECTED);
    let message = err.to_string();
    assert!(message.contains("method not allowed"), "{message}");
    assert!(message.contains(without_slash), "{message}");
    for secret in ["someone", "pa55word", "query-5ecret"] {
        assert!(!message.contains(secret), "{message}");
    }
    let methods: Vec<_> = sim.requests().iter().map(|r| r.method.clone()).collect();
    assert_eq!(methods, ["POST", "GET"]);
    assert!(sim.events().is_empty());
}

#[tokio::test]
async fn a_server_error_is_not_permanent() {
    let sim = EdaSimulator::start(EdaSimConfig::new()).await.unwrap();
    let eda = client(webhook_settings(&sim));
    for status in [500, 502, 503] {
        sim.fault_next(Scope::path(PROVISION_PATH), Fault::Status(status), 1);
        let err = refused(&eda, EdaAction::Provision).await;
        assert_eq!(status_of(&err), Some(status), "{err}");
        assert!(!err.is_permanent(), "{status}");
        // Retried, like an unreachable receiver (not a rejection to fix by hand).
        assert_eq!(err.reason(), reasons::PROVIDER_UNREACHABLE);
        assert!(err.to_string().contains("will retry"), "{err}");
    }
    assert!(sim.events().is_empty());
    // And the retry goes through.
    eda.send(EdaAction::Provision, &payload("vm1"))
        .await
        .unwrap();
    assert_eq!(sim.events().len(), 1);
}

// ---- unreachable ---------------------------------------------------------------------

#[tokio::test]
async fn a_closed_port_is_unreachable_not_permanent() {
    // A port that was free a moment ago and has no listener now.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let url = format!("http://127.0.0.1:{port}/provision");
    let mut s = settings(url.clone(), url);
    s.token = Some(TOKEN.into());
    let eda = client(s);
    let err = refused(&eda, EdaAction::Provision).await;
    assert!(matches!(err, EdaError::Unreachable { .. }), "{err:?}");
    assert!(!err.is_permanent());
    assert_eq!(err.reason(), reasons::PROVIDER_UNREACHABLE);
    assert!(err.to_string().contains("connection refused"), "{err}");
}

#[tokio::test]
async fn a_stopped_receiver_is_unreachable() {
    let sim = EdaSimulator::start(EdaSimConfig::new()).await.unwrap();
    let eda = client(webhook_settings(&sim));
    eda.send(EdaAction::Provision, &payload("vm1"))
        .await
        .unwrap();
    sim.stop().await;
    let err = refused(&eda, EdaAction::Provision).await;
    assert!(matches!(err, EdaError::Unreachable { .. }), "{err:?}");
    assert!(!err.is_permanent());
}

#[tokio::test]
async fn a_slow_answer_times_out_not_permanent_although_the_event_arrived() {
    let sim = EdaSimulator::start(EdaSimConfig::new()).await.unwrap();
    sim.fault_next(Scope::Any, Fault::SlowAnswer(Duration::from_secs(10)), 1);
    let eda = EdaClient::new(webhook_settings(&sim), Duration::from_millis(300)).unwrap();
    let err = refused(&eda, EdaAction::Provision).await;
    // The client gave up before the receiver answered: ordered by the receiver's ledger,
    // not by a bound on how long a loaded machine takes.
    let gave_up = k8s_openapi::jiff::Timestamp::now();
    let request = sim
        .requests()
        .pop()
        .expect("the request reached the receiver");
    assert!(
        request
            .answered_at
            .is_none_or(|answered| answered > gave_up),
        "the client waited for the slow answer ({:?}) instead of timing out",
        request.answered_at
    );
    assert!(matches!(err, EdaError::Unreachable { .. }), "{err:?}");
    assert!(err.to_string().contains("timed out"), "{err}");
    assert!(!err.is_permanent());
    assert_eq!(err.reason(), reasons::PROVIDER_UNREACHABLE);
    // Fire-and-forget: the receiver took the event; a retry will deliver it twice.
    assert_eq!(sim.events().len(), 1);
    assert_eq!(sim.runs().len(), 1);
}
