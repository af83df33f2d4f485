//! The EDA simulator against docs/providers.md ("EDA"), fact by fact: HTTP semantics of the
//! webhook source and of event streams without Kubernetes, then the playbooks' effects
//! on the real test API server.

use std::time::{Duration, Instant};

use cloudkit_testbed::eda_sim::*;
use cloudkit_testbed::wait::SIMULATOR as WAIT;
use reqwest::StatusCode;
use reqwest::header::{ALLOW, HeaderMap, LOCATION};
use serde_json::{Value, json};

const STREAM: &str = "6f1c1d4e-93a1-4c4b-9d1e-3b9a3c1f2e10";

/// The body the runner posts: the whole resource, status included.
fn instance(namespace: &str, name: &str, version: &str) -> Value {
    json!({
        "apiVersion": "cloudkit.openshift.io/v1alpha1",
        "kind": "ComputeInstance",
        "metadata": { "name": name, "namespace": namespace },
        "spec": { "templateID": "small" },
        "status": { "desiredConfigVersion": version }
    })
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    text: String,
}

fn http() -> reqwest::Client {
    // Redirects are asserted, not followed.
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn send(req: reqwest::RequestBuilder) -> Reply {
    let resp = req.send().await.unwrap();
    Reply {
        status: resp.status(),
        headers: resp.headers().clone(),
        text: resp.text().await.unwrap(),
    }
}

async fn post_json(url: &str, body: &Value) -> Reply {
    send(
        http()
            .post(url)
            .header("content-type", "application/json")
            .body(body.to_string()),
    )
    .await
}

async fn start(config: EdaSimConfig) -> EdaSimulator {
    EdaSimulator::start(config).await.unwrap()
}

// ---- webhook source ------------------------------------------------------------------

mod webhook {
    use super::*;

    #[tokio::test]
    async fn a_json_post_is_answered_200_and_becomes_the_event_the_rulebook_sees() {
        let sim = start(EdaSimConfig::new()).await;
        let body = instance("ns", "vm1", "abc");
        let reply = send(
            http()
                .post(sim.provision_url())
                .header("content-type", "application/json")
                .header("x-custom", "yes")
                .body(body.to_string()),
        )
        .await;
        assert_eq!(reply.status, StatusCode::OK);
        // The source answers with the endpoint, as text.
        assert_eq!(reply.text, "provision");

        let events = sim.events();
        assert_eq!(events.len(), 1);
        let event = &events[0];
        assert_eq!(event.flavor, Flavor::Webhook);
        assert_eq!(event.payload(), &body);
        assert_eq!(event.endpoint(), Some("provision"));
        // As aiohttp under the real source: its known names in its own spelling, others
        // as sent (reqwest sends lower case).
        let meta = &event.event["meta"];
        assert_eq!(meta["headers"]["x-custom"], "yes");
        assert_eq!(meta["headers"]["Content-Type"], "application/json");
        assert!(meta["headers"].get("content-type").is_none());
        // What the engine adds to every event.
        assert_eq!(meta["uuid"].as_str().map(str::len), Some(36), "{meta}");
        assert!(
            meta["received_at"]
                .as_str()
                .is_some_and(|t| t.ends_with('Z')),
            "{meta}"
        );
        assert_eq!(
            meta["source"],
            json!({"name": "cloudkit", "type": "eda.builtin.webhook"})
        );
        assert_eq!(
            event.instance,
            Some(InstanceRef {
                namespace: "ns".into(),
                name: "vm1".into()
            })
        );
        assert_eq!(event.playbook, Some(Playbook::Create));
        assert!(!event.dropped);

        // Without a Kubernetes client the run is recorded, as skipped.
        let run = sim.wait_for_end(event.run.unwrap(), WAIT).await.unwrap();
        assert_eq!(run.playbook, Playbook::Create);
        assert_eq!(run.event, event.id);
        assert_eq!(run.desired_config_version.as_deref(), Some("abc"));
        assert_eq!(
            run.status,
            RunStatus::Skipped("no Kubernetes client configured".into())
        );
        assert_eq!(run.extra_vars["ansible_eda"]["event"], event.event);

        let requests = sim.requests();
        assert_eq!(requests.len(), 1);
        assert_eq!(requests[0].method, "POST");
        assert_eq!(requests[0].path, "/provision");
        assert_eq!(requests[0].status, Some(200));
        assert_eq!(requests[0].event, Some(event.id));
        assert_eq!(requests[0].body_bytes, body.to_string().len());
        assert!(requests[0].answered_at.is_some());
    }

    #[tokio::test]
    async fn any_path_and_any_json_value_is_accepted_but_only_routed_paths_run_a_playbook() {
        let sim = start(EdaSimConfig::new()).await;
        for (path, body) in [
            ("/some/other/path", json!({"a": 1})),
            ("/", json!([1, 2])),
            ("/deprovision", json!("text")),
            ("/deprovision?x=1", json!(null)),
        ] {
            let reply = post_json(&format!("{}{path}", sim.origin()), &body).await;
            assert_eq!(reply.status, StatusCode::OK, "{path}");
        }
        let events = sim.events();
        let endpoints: Vec<_> = events.iter().map(|e| e.endpoint().unwrap()).collect();
        assert_eq!(
            endpoints,
            ["some/other/path", "", "deprovision", "deprovision"]
        );
        assert_eq!(events[0].playbook, None);
        assert_eq!(events[0].run, None);
        assert_eq!(events[2].playbook, Some(Playbook::Delete));
        // A payload with no metadata fails the playbook, as undefined variables do.
        let run = sim
            .wait_for_end(events[2].run.unwrap(), WAIT)
            .await
            .unwrap();
        assert_eq!(
            run.status,
            RunStatus::Failed("'dict object' has no attribute 'metadata'".into())
        );
    }

    #[tokio::test]
    async fn a_body_that_is_not_json_is_400_and_no_event() {
        let sim = start(EdaSimConfig::new()).await;
        for body in ["not json", "", "{\"a\":", "\u{0}"] {
            let reply = send(http().post(sim.provision_url()).body(body)).await;
            assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{body:?}");
            assert_eq!(reply.text, "Invalid JSON payload");
        }
        assert!(sim.events().is_empty());
        assert!(sim.runs().is_empty());
        assert!(sim.requests().iter().all(|r| r.status == Some(400)));
    }

    #[tokio::test]
    async fn a_body_over_one_mebibyte_is_413() {
        let sim = start(EdaSimConfig::new()).await;
        let big = format!("\"{}\"", "x".repeat(1024 * 1024 + 1));
        let reply = send(http().post(sim.provision_url()).body(big)).await;
        assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
        assert!(sim.events().is_empty());
    }

    #[tokio::test]
    async fn other_methods_are_405_with_allow_post() {
        let sim = start(EdaSimConfig::new()).await;
        for method in [
            reqwest::Method::GET,
            reqwest::Method::PUT,
            reqwest::Method::DELETE,
            reqwest::Method::PATCH,
            reqwest::Method::HEAD,
        ] {
            let reply = send(
                http()
                    .request(method.clone(), sim.provision_url())
                    .body("{}"),
            )
            .await;
            assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED, "{method}");
            assert_eq!(reply.headers[ALLOW], "POST", "{method}");
        }
        assert!(sim.events().is_empty());
    }

    #[tokio::test]
    async fn a_configured_token_is_required_as_bearer_and_never_recorded() {
        let sim = start(EdaSimConfig::new().token("s3cret")).await;
        let body = instance("ns", "vm1", "abc").to_string();
        let url = sim.provision_url();
        let missing = send(http().post(&url).body(body.clone())).await;
        assert_eq!(missing.status, StatusCode::UNAUTHORIZED);
        let wrong = send(http().post(&url).bearer_auth("nope").body(body.clone())).await;
        assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
        let basic = send(
            http()
                .post(&url)
                .basic_auth("user", Some("s3cret"))
                .body(body.clone()),
        )
        .await;
        assert_eq!(basic.status, StatusCode::UNAUTHORIZED);
        let malformed = send(
            http()
                .post(&url)
                .header("authorization", "Bearer s3cret extra")
                .body(body.clone()),
        )
        .await;
        assert_eq!(malformed.status, StatusCode::UNAUTHORIZED);
        assert!(sim.events().is_empty());

        let ok = send(http().post(&url).bearer_auth("s3cret").body(body)).await;
        assert_eq!(ok.status, StatusCode::OK);
        let event = &sim.events()[0];
        // The source drops Authorization from the event's headers.
        assert!(
            event.event["meta"]["headers"]
                .get("authorization")
                .is_none()
        );

        let requests = sim.requests();
        assert_eq!(requests[0].auth, AuthCheck::Missing("authorization".into()));
        assert!(matches!(requests[1].auth, AuthCheck::Rejected(_)));
        assert_eq!(requests[4].auth, AuthCheck::Passed);
        for r in &requests[1..] {
            assert_eq!(r.headers["authorization"], "***");
        }
        let ledger = serde_json::to_string(&sim.ledger()).unwrap();
        assert!(!ledger.contains("s3cret"), "{ledger}");
    }

    #[tokio::test]
    async fn credentials_are_checked_before_the_method_as_the_middlewares_run_first() {
        let sim = start(EdaSimConfig::new().token("t")).await;
        let get = send(http().get(sim.provision_url())).await;
        assert_eq!(get.status, StatusCode::UNAUTHORIZED);
        let get = send(http().get(sim.provision_url()).bearer_auth("t")).await;
        assert_eq!(get.status, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(get.headers[ALLOW], "POST");
    }

    #[tokio::test]
    async fn hmac_hex_signature_with_or_without_the_prefix() {
        let sim = start(EdaSimConfig::new().hmac("key", HmacFormat::Hex)).await;
        let body = instance("ns", "vm1", "abc").to_string();
        let hex = signature("key", body.as_bytes(), HmacFormat::Hex);
        let url = sim.provision_url();
        let signed = |value: String| {
            http()
                .post(&url)
                .header("X-Hub-Signature-256", value)
                .body(body.clone())
        };
        assert_eq!(send(signed(format!("sha256={hex}"))).await.status, 200);
        assert_eq!(send(signed(hex.clone())).await.status, 200);
        let wrong = signature("other", body.as_bytes(), HmacFormat::Hex);
        assert_eq!(
            send(signed(format!("sha256={wrong}"))).await.status,
            StatusCode::UNAUTHORIZED
        );
        let b64 = signature("key", body.as_bytes(), HmacFormat::Base64);
        assert_eq!(
            send(signed(format!("sha256={b64}"))).await.status,
            StatusCode::UNAUTHORIZED
        );
        // A signature of another body.
        let other = signature("key", b"{}", HmacFormat::Hex);
        assert_eq!(
            send(signed(format!("sha256={other}"))).await.status,
            StatusCode::UNAUTHORIZED
        );
        let missing = send(http().post(&url).body(body.clone())).await;
        assert_eq!(missing.status, StatusCode::BAD_REQUEST);
        assert_eq!(missing.text, "Signature header not found");
        assert_eq!(sim.events().len(), 2);
        // The signature is no secret: it stays in the event, as the source leaves it.
        assert_eq!(
            sim.events()[0].event["meta"]["headers"]["x-hub-signature-256"],
            format!("sha256={hex}")
        );
    }

    #[tokio::test]
    async fn hmac_base64_signature_when_configured() {
        let sim = start(EdaSimConfig::new().hmac("key", HmacFormat::Base64)).await;
        let body = b"{\"a\":1}";
        let b64 = signature("key", body, HmacFormat::Base64);
        let hex = signature("key", body, HmacFormat::Hex);
        let post = |sig: String| {
            http()
                .post(sim.url("any"))
                .header("x-hub-signature-256", sig)
                .body(&body[..])
        };
        assert_eq!(send(post(format!("sha256={b64}"))).await.status, 200);
        assert_eq!(send(post(b64)).await.status, 200);
        assert_eq!(send(post(hex)).await.status, StatusCode::UNAUTHORIZED);
    }

    #[tokio::test]
    async fn token_and_hmac_together_need_both() {
        let sim = start(EdaSimConfig::new().token("t").hmac("key", HmacFormat::Hex)).await;
        let body = "{}";
        let sig = format!(
            "sha256={}",
            signature("key", body.as_bytes(), HmacFormat::Hex)
        );
        let url = sim.provision_url();
        let token_only = send(http().post(&url).bearer_auth("t").body(body)).await;
        assert_eq!(token_only.status, StatusCode::BAD_REQUEST);
        let sig_only = send(
            http()
                .post(&url)
                .header("x-hub-signature-256", &sig)
                .body(body),
        )
        .await;
        assert_eq!(sig_only.status, StatusCode::UNAUTHORIZED);
        let both = send(
            http()
                .post(&url)
                .bearer_auth("t")
                .header("x-hub-signature-256", &sig)
                .body(body),
        )
        .await;
        assert_eq!(both.status, StatusCode::OK);
    }

    #[tokio::test]
    async fn credentials_and_routes_change_at_run_time() {
        let sim = start(EdaSimConfig::empty()).await;
        let body = instance("ns", "vm1", "abc");
        assert_eq!(post_json(&sim.url("p"), &body).await.status, 200);
        assert_eq!(sim.events()[0].playbook, None);

        sim.set_route("/p", Some(Playbook::Delete));
        sim.set_token(Some("t"));
        assert_eq!(
            post_json(&sim.url("p"), &body).await.status,
            StatusCode::UNAUTHORIZED
        );
        let ok = send(
            http()
                .post(sim.url("p"))
                .bearer_auth("t")
                .body(body.to_string()),
        )
        .await;
        assert_eq!(ok.status, StatusCode::OK);
        assert_eq!(sim.events()[1].playbook, Some(Playbook::Delete));

        sim.set_token(None);
        sim.set_hmac(Some("k"), HmacFormat::Hex);
        assert_eq!(
            post_json(&sim.url("p"), &body).await.status,
            StatusCode::BAD_REQUEST
        );
        sim.set_hmac(None, HmacFormat::Hex);
        sim.set_route("p", None);
        assert_eq!(post_json(&sim.url("p"), &body).await.status, 200);
        assert_eq!(sim.events()[2].playbook, None);
    }
}

// ---- event streams -------------------------------------------------------------------

mod event_stream {
    use super::*;

    fn token_stream() -> EdaSimConfig {
        EdaSimConfig::empty().event_stream(
            EventStreamConfig::token(STREAM, "cloudkit", "tok").playbook(Playbook::Create),
        )
    }

    #[tokio::test]
    async fn a_post_with_the_token_is_200_with_an_empty_body() {
        let sim = start(token_stream()).await;
        let url = sim.stream_url(STREAM);
        assert!(url.ends_with(&format!("/api/eda/v1/external_event_stream/{STREAM}/post/")));
        let body = instance("ns", "vm1", "abc");
        let reply = send(
            http()
                .post(format!("{url}?src=test"))
                .bearer_auth("tok")
                .header("content-type", "application/json")
                .body(body.to_string()),
        )
        .await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.text, "");

        let event = &sim.events()[0];
        assert_eq!(event.flavor, Flavor::EventStream);
        assert_eq!(event.payload(), &body);
        // The endpoint is the full path; the credential header is left out.
        assert_eq!(
            event.endpoint(),
            Some(format!("/api/eda/v1/external_event_stream/{STREAM}/post/?src=test").as_str())
        );
        assert_eq!(event.event["meta"]["eda_event_stream_name"], "cloudkit");
        assert!(
            event.event["meta"]["headers"]
                .get("authorization")
                .is_none()
        );
        assert_eq!(event.playbook, Some(Playbook::Create));
        // A token without "Bearer " is accepted too.
        let raw = send(
            http()
                .post(&url)
                .header("authorization", "tok")
                .body(body.to_string()),
        )
        .await;
        assert_eq!(raw.status, StatusCode::OK);
    }

    #[tokio::test]
    async fn bad_credentials_are_403_and_a_missing_header_400() {
        let sim = start(token_stream()).await;
        let url = sim.stream_url(STREAM);
        let bad = send(http().post(&url).bearer_auth("nope").body("{}")).await;
        assert_eq!(bad.status, StatusCode::FORBIDDEN);
        assert_eq!(
            serde_json::from_str::<Value>(&bad.text).unwrap()["detail"],
            "Token mismatch, check your token"
        );
        let missing = send(http().post(&url).body("{}")).await;
        assert_eq!(missing.status, StatusCode::BAD_REQUEST);
        assert!(
            missing.text.contains("header is missing"),
            "{}",
            missing.text
        );
        assert!(sim.events().is_empty());
    }

    #[tokio::test]
    async fn hmac_stream_needs_the_exact_prefixed_signature() {
        let sim = start(
            EdaSimConfig::empty().event_stream(EventStreamConfig::hmac(STREAM, "signed", "key")),
        )
        .await;
        let url = sim.stream_url(STREAM);
        let body = "{\"a\":1}";
        let hex = signature("key", body.as_bytes(), HmacFormat::Hex);
        let post = |sig: String| {
            http()
                .post(&url)
                .header("X-Hub-Signature-256", sig)
                .body(body)
        };
        assert_eq!(send(post(format!("sha256={hex}"))).await.status, 200);
        // The prefix is part of what is compared.
        assert_eq!(send(post(hex)).await.status, StatusCode::FORBIDDEN);
        let wrong = signature("other", body.as_bytes(), HmacFormat::Hex);
        assert_eq!(
            send(post(format!("sha256={wrong}"))).await.status,
            StatusCode::FORBIDDEN
        );
        let missing = send(http().post(&url).body(body)).await;
        assert_eq!(missing.status, StatusCode::BAD_REQUEST);
        // The signature header is the credential here: left out of the event.
        let event = &sim.events()[0];
        assert!(
            event.event["meta"]["headers"]
                .get("x-hub-signature-256")
                .is_none()
        );
    }

    #[tokio::test]
    async fn only_post_an_unknown_stream_is_400_and_a_missing_slash_redirects() {
        let sim = start(token_stream()).await;
        let url = sim.stream_url(STREAM);
        let get = send(http().get(&url).bearer_auth("tok")).await;
        assert_eq!(get.status, StatusCode::METHOD_NOT_ALLOWED);
        assert!(get.headers[ALLOW].to_str().unwrap().contains("POST"));
        let put = send(http().put(&url).bearer_auth("tok").body("{}")).await;
        assert_eq!(put.status, StatusCode::METHOD_NOT_ALLOWED);

        let unknown = sim.stream_url("00000000-0000-0000-0000-000000000000");
        let reply = send(http().post(&unknown).bearer_auth("tok").body("{}")).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST);

        let no_slash = url.trim_end_matches('/');
        let reply = send(http().post(no_slash).bearer_auth("tok").body("{}")).await;
        assert_eq!(reply.status, StatusCode::MOVED_PERMANENTLY);
        assert!(
            reply.headers[LOCATION]
                .to_str()
                .unwrap()
                .ends_with(&format!("{STREAM}/post/"))
        );
        // A client that follows the redirect turns the POST into a GET: 405.
        let followed = reqwest::Client::new()
            .post(no_slash)
            .bearer_auth("tok")
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(followed.status(), StatusCode::METHOD_NOT_ALLOWED);

        let elsewhere = format!(
            "{}/api/eda/v1/external_event_stream/{STREAM}/",
            sim.origin()
        );
        let reply = send(http().post(&elsewhere).bearer_auth("tok").body("{}")).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND);
        assert!(sim.events().is_empty());

        sim.remove_event_stream(STREAM);
        let gone = send(http().post(&url).bearer_auth("tok").body("{}")).await;
        assert_eq!(gone.status, StatusCode::BAD_REQUEST);
    }

    #[tokio::test]
    async fn a_body_that_is_not_a_mapping_goes_under_body_and_yaml_is_read() {
        let sim = start(token_stream()).await;
        let url = sim.stream_url(STREAM);
        for body in [
            "[1, 2]",
            "a: b\nc: [1]\n",
            "{not json: but yaml}",
            "{\"a\":",
        ] {
            send(http().post(&url).bearer_auth("tok").body(body)).await;
        }
        let statuses: Vec<_> = sim.requests().iter().map(|r| r.status).collect();
        assert_eq!(statuses, [Some(200), Some(200), Some(200), Some(400)]);
        let events = sim.events();
        assert_eq!(events[0].payload(), &json!({ "body": [1, 2] }));
        assert_eq!(events[1].payload(), &json!({ "a": "b", "c": [1] }));
        assert_eq!(events[2].payload(), &json!({ "not json": "but yaml" }));
    }
}

// ---- faults --------------------------------------------------------------------------

mod faults {
    use super::*;

    #[tokio::test]
    async fn a_status_fault_answers_it_and_takes_no_event() {
        let sim = start(EdaSimConfig::new()).await;
        sim.fault_next(Scope::Any, Fault::Status(500), 1);
        let body = instance("ns", "vm1", "abc");
        let reply = post_json(&sim.provision_url(), &body).await;
        assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(sim.events().is_empty());
        assert_eq!(sim.requests()[0].fault, Some(Fault::Status(500)));
        // Used up: the next one passes.
        assert_eq!(post_json(&sim.provision_url(), &body).await.status, 200);
        assert_eq!(sim.events().len(), 1);
    }

    #[tokio::test]
    async fn a_dropped_event_is_answered_200_and_runs_nothing() {
        let sim = start(EdaSimConfig::new()).await;
        sim.set_fault(Scope::path("/provision"), Some(Fault::Drop));
        let body = instance("ns", "vm1", "abc");
        for _ in 0..2 {
            assert_eq!(post_json(&sim.provision_url(), &body).await.status, 200);
        }
        // Other paths are not affected.
        assert_eq!(post_json(&sim.deprovision_url(), &body).await.status, 200);
        let events = sim.events();
        assert!(events[0].dropped && events[1].dropped);
        assert_eq!(events[0].run, None);
        assert!(!events[2].dropped);
        assert_eq!(sim.runs().len(), 1);
        assert_eq!(sim.runs()[0].playbook, Playbook::Delete);

        sim.clear_fault(&Scope::path("provision"));
        post_json(&sim.provision_url(), &body).await;
        assert!(!sim.events()[3].dropped);
    }

    #[tokio::test]
    async fn instance_faults_win_over_path_faults_and_apply_to_that_instance_only() {
        let sim = start(EdaSimConfig::new()).await;
        sim.set_fault(Scope::path("provision"), Some(Fault::Status(503)));
        sim.fault_next(Scope::instance("ns", "vm1"), Fault::Drop, 1);
        let url = sim.provision_url();
        assert_eq!(
            post_json(&url, &instance("ns", "vm1", "a")).await.status,
            200
        );
        assert_eq!(
            post_json(&url, &instance("ns", "vm1", "a")).await.status,
            503
        );
        assert_eq!(
            post_json(&url, &instance("ns", "vm2", "a")).await.status,
            503
        );
        assert_eq!(
            post_json(&url, &instance("other", "vm1", "a")).await.status,
            503
        );
        sim.clear_faults();
        assert_eq!(
            post_json(&url, &instance("ns", "vm2", "a")).await.status,
            200
        );
        let events = sim.events();
        assert_eq!(events.len(), 2);
        assert!(events[0].dropped);
        assert!(!events[1].dropped);
    }

    #[tokio::test]
    async fn a_slow_answer_takes_the_event_but_answers_late() {
        let sim = start(EdaSimConfig::new()).await;
        sim.fault_next(Scope::Any, Fault::SlowAnswer(Duration::from_millis(400)), 1);
        let started = Instant::now();
        let reply = post_json(&sim.provision_url(), &instance("ns", "vm1", "a")).await;
        assert_eq!(reply.status, StatusCode::OK);
        assert!(started.elapsed() >= Duration::from_millis(400));
        // The event was taken before the answer.
        let run = sim.runs()[0].clone();
        let request = &sim.requests()[0];
        assert!(run.queued_at < request.answered_at.unwrap());

        // A client that gives up still delivered the event.
        sim.fault_next(Scope::Any, Fault::SlowAnswer(Duration::from_secs(5)), 1);
        let err = reqwest::Client::builder()
            .timeout(Duration::from_millis(200))
            .build()
            .unwrap()
            .post(sim.provision_url())
            .body(instance("ns", "vm2", "a").to_string())
            .send()
            .await
            .unwrap_err();
        assert!(err.is_timeout());
        assert_eq!(sim.events().len(), 2);
    }

    #[tokio::test]
    async fn a_delayed_playbook_starts_late() {
        let sim = start(EdaSimConfig::new()).await;
        sim.fault_next(Scope::Any, Fault::Delay(Duration::from_millis(300)), 1);
        post_json(&sim.provision_url(), &instance("ns", "vm1", "a")).await;
        let run = sim.wait_for_end(1, WAIT).await.unwrap();
        let waited = run.started_at.unwrap().duration_since(run.queued_at);
        assert!(waited.as_millis() >= 300, "{waited:?}");
        assert_eq!(run.fault, Some(Fault::Delay(Duration::from_millis(300))));
    }

    #[tokio::test]
    async fn timing_start_delays_every_run_of_a_playbook() {
        let sim = start(EdaSimConfig::new().timing(
            Playbook::Delete,
            Timing::new(Duration::from_millis(200), Duration::ZERO),
        ))
        .await;
        post_json(&sim.deprovision_url(), &instance("ns", "vm1", "a")).await;
        post_json(&sim.provision_url(), &instance("ns", "vm1", "a")).await;
        let delete = sim.wait_for_end(1, WAIT).await.unwrap();
        let create = sim.wait_for_end(2, WAIT).await.unwrap();
        assert!(
            delete
                .started_at
                .unwrap()
                .duration_since(delete.queued_at)
                .as_millis()
                >= 200
        );
        assert!(
            create
                .started_at
                .unwrap()
                .duration_since(create.queued_at)
                .as_millis()
                < 200
        );
    }
}

#[tokio::test]
async fn a_stopped_simulator_refuses_connections() {
    let sim = start(EdaSimConfig::new()).await;
    let url = sim.provision_url();
    let client = reqwest::Client::new();
    assert_eq!(
        client.post(&url).body("{}").send().await.unwrap().status(),
        200
    );
    tokio::time::timeout(WAIT, sim.stop()).await.unwrap();
    let err = client.post(&url).body("{}").send().await.unwrap_err();
    assert!(err.is_connect() || err.is_request(), "{err:?}");
}

// ---- playbook effects on the real test API server ------------------------------------

mod effects {
    use super::*;
    use cloudkit_shared::names::{
        AAP_FINALIZER, INSTANCE_LABEL, RECONCILED_CONFIG_VERSION_ANNOTATION,
    };
    use cloudkit_testbed::control_plane::ControlPlane;
    use cloudkit_testbed::kubevirt_sim::{vm_resource, vmi_resource};
    use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, ListParams, PostParams};

    const KEEP: &str = "example.com/keep";

    struct Cluster {
        client: kube::Client,
        ns: String,
        instances: Api<DynamicObject>,
        vms: Api<DynamicObject>,
        vmis: Api<DynamicObject>,
    }

    impl Cluster {
        async fn new() -> Self {
            let cp = ControlPlane::shared().await.unwrap();
            let client = cp.client().await.unwrap();
            let ns = cp.test_namespace("eda").await.unwrap();
            let ci = ApiResource::from_gvk_with_plural(
                &GroupVersionKind::gvk("cloudkit.openshift.io", "v1alpha1", "ComputeInstance"),
                "computeinstances",
            );
            Self {
                instances: Api::namespaced_with(client.clone(), &ns, &ci),
                vms: Api::namespaced_with(client.clone(), &ns, &vm_resource()),
                vmis: Api::namespaced_with(client.clone(), &ns, &vmi_resource()),
                client,
                ns,
            }
        }

        /// A ComputeInstance that already holds another finalizer.
        async fn create(&self, name: &str) {
            let obj: DynamicObject = serde_json::from_value(json!({
                "apiVersion": "cloudkit.openshift.io/v1alpha1",
                "kind": "ComputeInstance",
                "metadata": { "name": name, "namespace": self.ns, "finalizers": [KEEP] },
                "spec": { "templateID": "small" },
            }))
            .unwrap();
            self.instances
                .create(&PostParams::default(), &obj)
                .await
                .unwrap();
        }

        async fn finalizers(&self, name: &str) -> Vec<String> {
            let obj = self.instances.get(name).await.unwrap();
            obj.metadata.finalizers.unwrap_or_default()
        }

        async fn annotation(&self, name: &str) -> Option<String> {
            let obj = self.instances.get(name).await.unwrap();
            obj.metadata
                .annotations
                .unwrap_or_default()
                .get(RECONCILED_CONFIG_VERSION_ANNOTATION)
                .cloned()
        }

        async fn labelled_vms(&self, name: &str) -> usize {
            let lp = ListParams::default().labels(&format!("{INSTANCE_LABEL}={name}"));
            self.vms.list(&lp).await.unwrap().items.len()
        }

        async fn sim(&self, config: EdaSimConfig) -> EdaSimulator {
            start(config.kube(self.client.clone())).await
        }
    }

    const RUN_WAIT: Duration = Duration::from_secs(60);

    #[tokio::test]
    async fn create_then_delete_playbooks_act_on_the_cluster_step_by_step() {
        let c = Cluster::new().await;
        c.create("vm1").await;
        let between = Duration::from_millis(150);
        let sim = c
            .sim(EdaSimConfig::new().timing(Playbook::Create, Timing::new(Duration::ZERO, between)))
            .await;

        let reply = post_json(&sim.provision_url(), &instance(&c.ns, "vm1", "v1")).await;
        assert_eq!(reply.status, StatusCode::OK);
        let run = sim.wait_for_end(1, RUN_WAIT).await.unwrap();
        assert_eq!(run.status, RunStatus::Successful, "{run:?}");
        assert_eq!(
            run.steps_done(),
            [Step::AddFinalizer, Step::CreateVm, Step::MarkReconciled]
        );
        // The configured wait separates the steps.
        for pair in run.steps.windows(2) {
            let gap = pair[1]
                .started_at
                .duration_since(pair[0].finished_at.unwrap());
            assert!(gap.as_millis() >= between.as_millis() as i128, "{gap:?}");
        }
        assert!(run.steps.iter().all(|s| s.duration().is_some()));

        // Finalizer added, the other one kept.
        let finalizers = c.finalizers("vm1").await;
        assert!(finalizers.contains(&KEEP.to_owned()), "{finalizers:?}");
        assert!(
            finalizers.contains(&AAP_FINALIZER.to_owned()),
            "{finalizers:?}"
        );
        assert_eq!(c.annotation("vm1").await.as_deref(), Some("v1"));
        assert_eq!(c.labelled_vms("vm1").await, 1);
        let vmi = c.vmis.get("vm1").await.unwrap();
        assert_eq!(vmi.data["status"]["phase"], "Running");
        assert_eq!(vmi.metadata.labels.unwrap()[INSTANCE_LABEL], "vm1");

        // A new config version: the annotation follows the event's desiredConfigVersion.
        post_json(&sim.provision_url(), &instance(&c.ns, "vm1", "v2")).await;
        let run = sim.wait_for_end(2, RUN_WAIT).await.unwrap();
        assert_eq!(run.status, RunStatus::Successful, "{run:?}");
        assert_eq!(c.annotation("vm1").await.as_deref(), Some("v2"));
        assert_eq!(
            c.finalizers("vm1")
                .await
                .iter()
                .filter(|f| *f == AAP_FINALIZER)
                .count(),
            1
        );

        post_json(&sim.deprovision_url(), &instance(&c.ns, "vm1", "v2")).await;
        let run = sim.wait_for_end(3, RUN_WAIT).await.unwrap();
        assert_eq!(run.status, RunStatus::Successful, "{run:?}");
        assert_eq!(run.steps_done(), [Step::DeleteVm, Step::RemoveFinalizer]);
        assert_eq!(c.labelled_vms("vm1").await, 0);
        assert!(c.vmis.get_opt("vm1").await.unwrap().is_none());
        assert_eq!(c.finalizers("vm1").await, [KEEP]);
    }

    #[tokio::test]
    async fn never_finish_stops_after_the_finalizer() {
        let c = Cluster::new().await;
        c.create("vm1").await;
        let sim = c.sim(EdaSimConfig::new()).await;
        sim.fault_next(Scope::instance(&c.ns, "vm1"), Fault::NeverFinish, 1);
        post_json(&sim.provision_url(), &instance(&c.ns, "vm1", "v1")).await;
        let run = sim
            .wait_for_run(1, RUN_WAIT, |r| r.status == RunStatus::Stalled)
            .await
            .unwrap();
        assert_eq!(run.steps_done(), [Step::AddFinalizer]);
        assert!(
            c.finalizers("vm1")
                .await
                .contains(&AAP_FINALIZER.to_owned())
        );
        assert_eq!(c.labelled_vms("vm1").await, 0);
        assert_eq!(c.annotation("vm1").await, None);
        // Still stalled a while later.
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(sim.run(1).unwrap().status, RunStatus::Stalled);
        assert_eq!(sim.run(1).unwrap().finished_at, None);
    }

    #[tokio::test]
    async fn fail_stops_before_the_annotation_and_before_releasing_the_finalizer() {
        let c = Cluster::new().await;
        c.create("vm1").await;
        let sim = c.sim(EdaSimConfig::new()).await;
        sim.set_fault(Scope::instance(&c.ns, "vm1"), Some(Fault::Fail));
        post_json(&sim.provision_url(), &instance(&c.ns, "vm1", "v1")).await;
        let run = sim.wait_for_end(1, RUN_WAIT).await.unwrap();
        assert!(matches!(run.status, RunStatus::Failed(_)), "{run:?}");
        assert_eq!(run.steps_done(), [Step::AddFinalizer, Step::CreateVm]);
        assert_eq!(c.labelled_vms("vm1").await, 1);
        assert_eq!(c.annotation("vm1").await, None);

        post_json(&sim.deprovision_url(), &instance(&c.ns, "vm1", "v1")).await;
        let run = sim.wait_for_end(2, RUN_WAIT).await.unwrap();
        assert!(matches!(run.status, RunStatus::Failed(_)), "{run:?}");
        assert_eq!(run.steps_done(), [Step::DeleteVm]);
        assert_eq!(c.labelled_vms("vm1").await, 0);
        assert!(
            c.finalizers("vm1")
                .await
                .contains(&AAP_FINALIZER.to_owned())
        );

        // Without the fault, a retry releases it.
        sim.clear_faults();
        post_json(&sim.deprovision_url(), &instance(&c.ns, "vm1", "v1")).await;
        let run = sim.wait_for_end(3, RUN_WAIT).await.unwrap();
        assert_eq!(run.status, RunStatus::Successful, "{run:?}");
        assert_eq!(c.finalizers("vm1").await, [KEEP]);
    }

    #[tokio::test]
    async fn a_delete_that_never_finishes_keeps_the_finalizer() {
        let c = Cluster::new().await;
        c.create("vm1").await;
        let sim = c.sim(EdaSimConfig::new()).await;
        post_json(&sim.provision_url(), &instance(&c.ns, "vm1", "v1")).await;
        assert_eq!(
            sim.wait_for_end(1, RUN_WAIT).await.unwrap().status,
            RunStatus::Successful
        );
        sim.fault_next(Scope::path(DEPROVISION_PATH), Fault::NeverFinish, 1);
        post_json(&sim.deprovision_url(), &instance(&c.ns, "vm1", "v1")).await;
        let run = sim
            .wait_for_run(2, RUN_WAIT, |r| r.status == RunStatus::Stalled)
            .await
            .unwrap();
        assert_eq!(run.steps_done(), [Step::DeleteVm]);
        assert_eq!(c.labelled_vms("vm1").await, 0);
        assert!(
            c.finalizers("vm1")
                .await
                .contains(&AAP_FINALIZER.to_owned())
        );
    }

    #[tokio::test]
    async fn a_missing_instance_or_config_version_fails_the_run() {
        let c = Cluster::new().await;
        let sim = c.sim(EdaSimConfig::new()).await;
        post_json(&sim.provision_url(), &instance(&c.ns, "absent", "v1")).await;
        let run = sim.wait_for_end(1, RUN_WAIT).await.unwrap();
        let RunStatus::Failed(error) = &run.status else {
            panic!("{run:?}");
        };
        assert!(error.contains("not found"), "{error}");
        assert_eq!(run.steps[0].error.as_deref(), Some(error.as_str()));
        assert_eq!(c.labelled_vms("absent").await, 0);

        c.create("vm1").await;
        let mut body = instance(&c.ns, "vm1", "v1");
        body["status"] = json!({});
        post_json(&sim.provision_url(), &body).await;
        let run = sim.wait_for_end(2, RUN_WAIT).await.unwrap();
        assert_eq!(
            run.status,
            RunStatus::Failed("'dict object' has no attribute 'desiredConfigVersion'".into())
        );
        assert!(run.steps.is_empty());
        assert_eq!(c.finalizers("vm1").await, [KEEP]);

        // Deleting what is already gone succeeds.
        post_json(&sim.deprovision_url(), &instance(&c.ns, "absent", "v1")).await;
        let run = sim.wait_for_end(3, RUN_WAIT).await.unwrap();
        assert_eq!(run.status, RunStatus::Successful, "{run:?}");
    }

    #[tokio::test]
    async fn an_event_stream_runs_its_playbook_too() {
        let c = Cluster::new().await;
        c.create("vm1").await;
        let sim = c
            .sim(EdaSimConfig::empty().event_stream(
                EventStreamConfig::token(STREAM, "cloudkit", "tok").playbook(Playbook::Create),
            ))
            .await;
        let reply = send(
            http()
                .post(sim.stream_url(STREAM))
                .bearer_auth("tok")
                .body(instance(&c.ns, "vm1", "v7").to_string()),
        )
        .await;
        assert_eq!(reply.status, StatusCode::OK);
        let run = sim.wait_for_end(1, RUN_WAIT).await.unwrap();
        assert_eq!(run.status, RunStatus::Successful, "{run:?}");
        assert_eq!(c.annotation("vm1").await.as_deref(), Some("v7"));
    }

    #[tokio::test]
    async fn sequential_runs_wait_for_each_other() {
        let c = Cluster::new().await;
        c.create("vm1").await;
        let sim = c
            .sim(EdaSimConfig::new().sequential(true).timing(
                Playbook::Create,
                Timing::new(Duration::ZERO, Duration::from_millis(200)),
            ))
            .await;
        post_json(&sim.provision_url(), &instance(&c.ns, "vm1", "v1")).await;
        post_json(&sim.deprovision_url(), &instance(&c.ns, "vm1", "v1")).await;
        let create = sim.wait_for_end(1, RUN_WAIT).await.unwrap();
        let delete = sim.wait_for_end(2, RUN_WAIT).await.unwrap();
        assert_eq!(create.status, RunStatus::Successful, "{create:?}");
        assert_eq!(delete.status, RunStatus::Successful, "{delete:?}");
        assert!(delete.started_at.unwrap() >= create.finished_at.unwrap());
        assert_eq!(c.labelled_vms("vm1").await, 0);
        assert_eq!(c.finalizers("vm1").await, [KEEP]);
    }

    /// An event for an instance whose status names its Tenant object.
    fn tenant_instance(namespace: &str, name: &str, version: &str, object: &str) -> Value {
        let mut body = instance(namespace, name, version);
        body["status"]["tenantReference"] = json!({ "name": object, "namespace": namespace });
        body
    }

    #[tokio::test]
    async fn with_a_tenant_reference_the_playbooks_act_in_the_tenants_namespace() {
        let c = Cluster::new().await;
        c.create("vm1").await;
        let names =
            cloudkit_testbed::tenants::create_upstream_ready(&c.client, &c.ns, "acme", Vec::new())
                .await
                .unwrap();
        let vms: Api<DynamicObject> =
            Api::namespaced_with(c.client.clone(), &names.namespace, &vm_resource());
        let vmis: Api<DynamicObject> =
            Api::namespaced_with(c.client.clone(), &names.namespace, &vmi_resource());
        let sim = c.sim(EdaSimConfig::new()).await;

        let body = tenant_instance(&c.ns, "vm1", "v1", &names.object);
        post_json(&sim.provision_url(), &body).await;
        let run = sim.wait_for_end(1, RUN_WAIT).await.unwrap();
        assert_eq!(run.status, RunStatus::Successful, "{run:?}");
        assert_eq!(
            vms.get("vm1").await.unwrap().metadata.labels.unwrap()[INSTANCE_LABEL],
            "vm1"
        );
        assert_eq!(
            vmis.get("vm1").await.unwrap().data["status"]["phase"],
            "Running"
        );
        assert_eq!(c.labelled_vms("vm1").await, 0, "none beside the instance");
        assert_eq!(c.annotation("vm1").await.as_deref(), Some("v1"));

        post_json(&sim.deprovision_url(), &body).await;
        let run = sim.wait_for_end(2, RUN_WAIT).await.unwrap();
        assert_eq!(run.status, RunStatus::Successful, "{run:?}");
        assert!(vms.get_opt("vm1").await.unwrap().is_none());
        assert!(vmis.get_opt("vm1").await.unwrap().is_none());
        assert_eq!(c.finalizers("vm1").await, [KEEP]);
    }

    #[tokio::test]
    async fn a_missing_tenant_fails_the_vm_step_naming_it() {
        let c = Cluster::new().await;
        c.create("vm1").await;
        let sim = c.sim(EdaSimConfig::new()).await;
        let expected = format!(
            "Tenant {}/tenant-absent is missing or has no status.namespace yet",
            c.ns
        );
        let body = tenant_instance(&c.ns, "vm1", "v1", "tenant-absent");
        post_json(&sim.provision_url(), &body).await;
        let run = sim.wait_for_end(1, RUN_WAIT).await.unwrap();
        assert_eq!(run.status, RunStatus::Failed(expected.clone()));
        assert_eq!(run.steps_done(), [Step::AddFinalizer]);
        assert_eq!(
            run.step(Step::CreateVm).unwrap().error.as_deref(),
            Some(expected.as_str())
        );
        assert_eq!(c.annotation("vm1").await, None);

        post_json(&sim.deprovision_url(), &body).await;
        let run = sim.wait_for_end(2, RUN_WAIT).await.unwrap();
        assert_eq!(run.status, RunStatus::Failed(expected.clone()));
        assert_eq!(
            run.step(Step::DeleteVm).unwrap().error.as_deref(),
            Some(expected.as_str())
        );
        // The finalizer stays: the VM could not be looked for.
        assert!(
            c.finalizers("vm1")
                .await
                .contains(&AAP_FINALIZER.to_owned())
        );

        let mut broken = instance(&c.ns, "vm1", "v1");
        broken["status"]["tenantReference"] = json!({ "name": "tenant-x" });
        post_json(&sim.provision_url(), &broken).await;
        let run = sim.wait_for_end(3, RUN_WAIT).await.unwrap();
        assert_eq!(
            run.status,
            RunStatus::Failed("'dict object' has no attribute 'namespace'".into())
        );
        assert!(run.steps.is_empty());
    }
}
