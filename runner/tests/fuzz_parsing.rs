//! Fuzz-style properties of what the runner reads from AAP and EDA: arbitrary
//! bytes, arbitrary JSON and AWX-shaped JSON with fields of the wrong type, under any status,
//! fed to the AAP client's template lookup, launch, launch recovery, batched poll, job read
//! and cancel, and to the EDA client: no panic, and every error is classified (a reason, a
//! permanence) with a message that names no body newline. The parsing is exercised through
//! the public client API against a scripted server on 127.0.0.1, so what is fuzzed is
//! exactly what the runner runs. The pure helpers (`AapJob::message`, `job_state`, `redact`)
//! get arbitrary input directly.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use cloudkit_runner::aap::{
    AapClient, AapConfig, AapError, AapJob, AapJobKind, RetryPolicy, Secret, TokenSource, job_state,
};
use cloudkit_runner::config::EdaSettings;
use cloudkit_runner::eda::{EdaAction, EdaClient, EdaError, redact};
use cloudkit_shared::reasons;
use k8s_openapi::jiff::Timestamp;
use proptest::prelude::*;
use serde_json::{Value, json};

// ---- a scripted server ----------------------------------------------------------------------

/// One answer: status, headers, body.
#[derive(Clone, Debug)]
struct Answer {
    status: u16,
    content_type: &'static str,
    retry_after: Option<String>,
    location: Option<String>,
    body: Vec<u8>,
}

impl Answer {
    fn json(status: u16, body: &Value) -> Self {
        Self {
            status,
            content_type: "application/json",
            retry_after: None,
            location: None,
            body: body.to_string().into_bytes(),
        }
    }
}

/// Answers in order; the last one again once the script is used up.
#[derive(Default)]
struct Script {
    answers: VecDeque<Answer>,
    last: Option<Answer>,
}

struct Server {
    runtime: tokio::runtime::Runtime,
    addr: SocketAddr,
    script: Arc<Mutex<Script>>,
}

async fn answer(State(script): State<Arc<Mutex<Script>>>) -> Response {
    let next = {
        let mut s = script.lock().unwrap_or_else(|e| e.into_inner());
        match s.answers.pop_front() {
            Some(a) => {
                s.last = Some(a.clone());
                a
            }
            None => s
                .last
                .clone()
                .unwrap_or_else(|| Answer::json(404, &json!({"detail": "Not found."}))),
        }
    };
    let mut response = Response::new(Body::from(next.body));
    *response.status_mut() = StatusCode::from_u16(next.status).unwrap_or(StatusCode::OK);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(next.content_type),
    );
    if let Some(v) = next
        .retry_after
        .and_then(|v| HeaderValue::from_str(&v).ok())
    {
        headers.insert(header::RETRY_AFTER, v);
    }
    if let Some(v) = next.location.and_then(|v| HeaderValue::from_str(&v).ok()) {
        headers.insert(header::LOCATION, v);
    }
    response
}

fn server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a runtime");
        let script = Arc::new(Mutex::new(Script::default()));
        let app = axum::Router::new()
            .fallback(answer)
            .with_state(Arc::clone(&script));
        let addr = runtime.block_on(async {
            let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
                .await
                .expect("a port");
            let addr = listener.local_addr().expect("an address");
            tokio::spawn(async move {
                let _ = axum::serve(listener, app).await;
            });
            addr
        });
        Server {
            runtime,
            addr,
            script,
        }
    })
}

/// Serializes the cases: they share the server's script.
fn exclusive() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

fn play(answers: Vec<Answer>) {
    let mut s = server().script.lock().unwrap_or_else(|e| e.into_inner());
    s.answers = answers.into();
    s.last = None;
}

fn aap() -> AapClient {
    aap_with(RetryPolicy::none())
}

/// GETs tried three times, with waits short enough for a fuzz case.
fn aap_retrying() -> AapClient {
    aap_with(RetryPolicy {
        attempts: 3,
        base_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(4),
        max_retry_after: Duration::from_millis(10),
    })
}

fn aap_with(retry: RetryPolicy) -> AapClient {
    let mut config = AapConfig::new(
        format!("http://{}/api/controller", server().addr),
        TokenSource::Static(Secret::new("fuzz-token")),
    );
    config.retry = retry;
    config.request_timeout = Duration::from_secs(5);
    AapClient::new(config).expect("a client")
}

fn eda() -> EdaClient {
    let url = format!("http://{}/provision", server().addr);
    EdaClient::new(
        EdaSettings {
            provision_url: url.clone(),
            deprovision_url: url,
            token: Some("fuzz-token".into()),
            hmac_secret: None,
            hmac: Default::default(),
        },
        Duration::from_secs(5),
    )
    .expect("a client")
}

// ---- strategies ------------------------------------------------------------------------------

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        "(?s:.{0,24})".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
            prop::collection::btree_map("[a-z_]{0,10}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A value of any type where AWX has a number, a string or null.
fn arb_field() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => (0u64..400).prop_map(Value::from),
        2 => prop::sample::select(vec![
            "new", "pending", "waiting", "running", "successful", "failed", "error",
            "canceled", "", "2026-11-22T10:00:00.123456Z", "not a time",
        ])
        .prop_map(Value::from),
        1 => arb_json(),
    ]
}

/// Objects with AWX's field names and values of any type.
fn arb_awx_object() -> impl Strategy<Value = Value> {
    prop::collection::btree_map(
        prop::sample::select(vec![
            "id",
            "status",
            "started",
            "finished",
            "elapsed",
            "job_explanation",
            "result_traceback",
            "extra_vars",
            "job",
            "workflow_job",
            "ignored_fields",
            "can_cancel",
            "summary_fields",
            "detail",
            "name",
        ]),
        arb_field(),
        0..10,
    )
    .prop_map(|m| Value::Object(m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()))
}

/// AWX-shaped answers: pages, objects, 400 field errors — with wrong types inside.
fn arb_awx_body() -> impl Strategy<Value = Value> {
    prop_oneof![
        (
            prop::option::of(arb_field()),
            prop::collection::vec(arb_awx_object(), 0..4),
            prop_oneof![4 => Just(Value::Null), 1 => arb_field()],
        )
            .prop_map(|(count, results, next)| {
                let mut page = json!({ "results": results, "next": next, "previous": null });
                if let Some(count) = count {
                    page["count"] = count;
                }
                page
            }),
        arb_awx_object(),
        prop::collection::btree_map(
            prop::sample::select(vec![
                "variables_needed_to_start",
                "extra_vars",
                "__all__",
                "detail",
                "non_field_errors",
            ]),
            prop_oneof![
                prop::collection::vec("(?s:.{0,40})", 0..3).prop_map(Value::from),
                arb_json(),
            ],
            0..3,
        )
        .prop_map(|m| Value::Object(m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())),
        arb_json(),
    ]
}

fn arb_status() -> impl Strategy<Value = u16> {
    prop_oneof![
        6 => prop::sample::select(vec![
            200u16, 201, 202, 204, 301, 302, 400, 401, 403, 404, 405, 408, 409, 429, 500,
            502, 503, 504,
        ]),
        1 => 200u16..600,
    ]
}

fn arb_answer() -> impl Strategy<Value = Answer> {
    (
        arb_status(),
        prop_oneof![
            3 => arb_awx_body().prop_map(|v| v.to_string().into_bytes()),
            1 => prop::collection::vec(any::<u8>(), 0..300),
            1 => "(?s:.{0,300})".prop_map(String::into_bytes),
        ],
        prop::sample::select(vec!["application/json", "text/html", "text/plain"]),
        prop::option::of(prop_oneof![
            (0u64..5).prop_map(|n| n.to_string()),
            "(?s:.{0,12})",
            Just("18446744073709551615".to_owned()),
        ]),
        prop::option::of(prop_oneof![
            Just("/api/v2/jobs/7/".to_owned()),
            "(?s:.{0,20})",
        ]),
    )
        .prop_map(
            |(status, body, content_type, retry_after, location)| Answer {
                status,
                content_type,
                retry_after,
                location,
                body,
            },
        )
}

/// A template lookup that finds job template 10.
fn found_template() -> Answer {
    Answer::json(
        200,
        &json!({"count": 1, "next": null, "results": [{"id": 10, "type": "job_template"}]}),
    )
}

// ---- checks ----------------------------------------------------------------------------------

const AAP_REASONS: [&str; 6] = [
    reasons::AUTH_REJECTED,
    reasons::FORBIDDEN,
    reasons::TEMPLATE_NOT_FOUND,
    reasons::LAUNCH_REJECTED,
    reasons::VARIABLES_IGNORED,
    reasons::PROVIDER_UNREACHABLE,
];

fn check_aap_error(e: &AapError) -> Result<(), TestCaseError> {
    prop_assert!(AAP_REASONS.contains(&e.reason()), "reason {}", e.reason());
    let _ = e.is_permanent();
    let _ = e.retry_after();
    let message = e.to_string();
    prop_assert!(!message.is_empty());
    // A transport or status failure carries an excerpt of the body, one line, bounded.
    if !matches!(e, AapError::LaunchRejected { .. }) {
        prop_assert!(
            !message.contains(['\n', '\r']),
            "not one line: {:?}",
            message
        );
        prop_assert!(message.len() < 2048, "{} bytes", message.len());
    }
    Ok(())
}

fn check_eda_error(status: u16, e: &EdaError) -> Result<(), TestCaseError> {
    let message = e.to_string();
    prop_assert!(!message.contains(['\n', '\r']), "{:?}", message);
    match e {
        EdaError::Rejected { status: s, .. } => {
            prop_assert_eq!(*s, status);
            let transient = *s >= 500 || *s == 408 || *s == 429;
            prop_assert_eq!(e.is_permanent(), !transient, "{}", s);
            let expected = if transient {
                reasons::PROVIDER_UNREACHABLE
            } else {
                reasons::WEBHOOK_REJECTED
            };
            prop_assert_eq!(e.reason(), expected, "{}", s);
        }
        EdaError::Unreachable { .. } => {
            prop_assert!(!e.is_permanent());
            prop_assert_eq!(e.reason(), reasons::PROVIDER_UNREACHABLE);
        }
        EdaError::Client(_) => prop_assert!(false, "the client was built: {}", message),
    }
    Ok(())
}

// ---- properties ------------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn template_lookup_never_panics(
        first in arb_answer(),
        second in arb_answer(),
        third in arb_answer(),
        retrying in any::<bool>(),
    ) {
        let _one = exclusive();
        play(vec![first, second, third]);
        let client = if retrying { aap_retrying() } else { aap() };
        if let Err(e) = server().runtime.block_on(client.template("cloudkit provision")) {
            check_aap_error(&e)?;
        }
    }

    #[test]
    fn launch_answers_never_panic(launch in arb_answer(), then in arb_answer()) {
        let _one = exclusive();
        play(vec![found_template(), launch, then]);
        match server().runtime.block_on(aap().launch("cloudkit-provision", json!({"k": "v"}))) {
            Ok(launched) => prop_assert_eq!(launched.kind, AapJobKind::Job),
            Err(e) => check_aap_error(&e)?,
        }
    }

    #[test]
    fn launch_recovery_never_panics(list in arb_answer(), detail in arb_answer()) {
        let _one = exclusive();
        play(vec![found_template(), list, detail]);
        let since = Timestamp::from_second(1_795_305_600).unwrap();
        if let Err(e) = server()
            .runtime
            .block_on(aap().find_launch("cloudkit-provision", "uid:provision:v:1", since))
        {
            check_aap_error(&e)?;
        }
    }

    #[test]
    fn batched_polls_never_panic(jobs in arb_answer(), workflows in arb_answer()) {
        let _one = exclusive();
        play(vec![jobs, workflows]);
        let wanted = [(AapJobKind::Job, 7), (AapJobKind::Job, 8), (AapJobKind::Workflow, 9)];
        match server().runtime.block_on(aap().poll(&wanted)) {
            Ok(found) => {
                for job in found.values() {
                    let message = job.message();
                    prop_assert!(!message.contains(['\n', '\r']), "{:?}", message);
                    prop_assert_eq!(job.state, job_state(&job.status));
                }
            }
            Err(e) => check_aap_error(&e)?,
        }
    }

    #[test]
    fn job_reads_and_cancels_never_panic(
        first in arb_answer(),
        second in arb_answer(),
        workflow in any::<bool>(),
    ) {
        let _one = exclusive();
        let kind = if workflow { AapJobKind::Workflow } else { AapJobKind::Job };
        play(vec![first.clone(), second.clone()]);
        if let Err(e) = server().runtime.block_on(aap().get_job(kind, 7)) {
            check_aap_error(&e)?;
        }
        play(vec![first, second]);
        if let Err(e) = server().runtime.block_on(aap().cancel(kind, 7)) {
            check_aap_error(&e)?;
        }
    }

    #[test]
    fn eda_answers_are_classified(answer in arb_answer()) {
        let _one = exclusive();
        // A redirect is followed; keep it on this server.
        let mut answer = answer;
        if (300..400).contains(&answer.status) {
            answer.location = Some("/provision".into());
        }
        let status = answer.status;
        play(vec![answer]);
        let payload = json!({"metadata": {"name": "vm"}});
        match server().runtime.block_on(eda().send(EdaAction::Provision, &payload)) {
            Ok(()) => prop_assert!((200..300).contains(&status) || (300..400).contains(&status)),
            // A redirect loop ends in a transport error; anything else is the status.
            Err(e) if (300..400).contains(&status) => {
                prop_assert!(!e.to_string().contains('\n'));
            }
            Err(e) => check_eda_error(status, &e)?,
        }
    }

    /// `AapJob::message` is one line of bounded length, whatever AAP reported.
    #[test]
    fn job_messages_are_one_line(
        status in prop_oneof![
            prop::sample::select(vec!["successful", "failed", "error", "canceled", "running", "new"])
                .prop_map(str::to_owned),
            "(?s:.{0,30})",
        ],
        explanation in "(?s:.{0,600})",
        traceback in "(?s:.{0,600})",
        started in prop::option::of(any::<i64>()),
        finished in prop::option::of(any::<i64>()),
        elapsed in prop::option::of(any::<f64>()),
    ) {
        let time = |s: i64| Timestamp::from_second(s.rem_euclid(200_000_000_000) - 100_000_000_000).ok();
        let job = AapJob {
            id: 1,
            kind: AapJobKind::Job,
            state: job_state(&status),
            status,
            started: started.and_then(time),
            finished: finished.and_then(time),
            elapsed,
            job_explanation: explanation,
            result_traceback: traceback,
            failure: None,
        };
        let message = job.message();
        prop_assert!(!message.contains(['\n', '\r']), "{:?}", message);
        prop_assert!(message.len() <= 300 + '…'.len_utf8(), "{} bytes", message.len());
    }

    /// `redact` never panics and drops user info and the query of a URL.
    #[test]
    fn redaction_keeps_credentials_out(
        raw in "(?s:.{0,60})",
        user in "[a-z]{1,8}",
        password in "[A-Za-z0-9]{6,12}",
        query in "[A-Za-z0-9]{6,12}",
        path in "[a-z/]{0,12}",
    ) {
        let _ = redact(&raw);
        let url = format!("https://{user}:{password}@eda.example.com/{path}?token={query}");
        let shown = redact(&url);
        prop_assert!(!shown.contains(&password), "{}", shown);
        prop_assert!(!shown.contains(&query), "{}", shown);
        prop_assert!(shown.contains("eda.example.com"), "{}", shown);
    }
}

/// A 400 field message keeps AWX's own newlines in the error (the runner's status and
/// Event one-line it later); the error's own contract is one line.
#[test]
fn a_launch_rejection_is_one_line() {
    let _one = exclusive();
    play(vec![
        found_template(),
        Answer::json(
            400,
            &json!({"extra_vars": ["Cannot parse as JSON or YAML:\nwhile parsing a flow mapping\n  in \"<unicode string>\", line 1"]}),
        ),
    ]);
    let e = server()
        .runtime
        .block_on(aap().launch("cloudkit-provision", json!({})))
        .expect_err("refused");
    assert!(matches!(e, AapError::LaunchRejected { .. }), "{e:?}");
    assert!(!e.to_string().contains('\n'), "{e}");
}
