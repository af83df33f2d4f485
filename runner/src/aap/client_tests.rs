//! Request shapes and error handling of [`AapClient`] against a scripted HTTP(S) server
//! on 127.0.0.1. The contract with AWX's behaviour is tested against the AAP simulator in
//! `tests/tests/aap_provider.rs`; these cover what the simulator does not script: links
//! to other hosts, list entries without extra_vars, redirects, TLS, token rotation.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::Response;
use cloudkit_shared::names::CORRELATION_EXTRA_VAR;
use k8s_openapi::jiff::Timestamp;
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use super::*;

const TOKEN: &str = "s3cr3t-token-value";

#[derive(Clone, Debug)]
struct Seen {
    method: String,
    path: String,
    query: Vec<(String, String)>,
    raw_query: String,
    auth: Option<String>,
    body: String,
}

impl Seen {
    fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

enum Reply {
    Json(u16, Value),
    Raw(u16, Vec<(&'static str, String)>, String),
    Hang,
}

type Responder = dyn Fn(&Seen) -> Reply + Send + Sync;

struct Shared {
    seen: Mutex<Vec<Seen>>,
    respond: Box<Responder>,
}

/// A scripted server: every request is recorded, `respond` decides the answer.
struct Mock {
    origin: String,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl Drop for Mock {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Mock {
    async fn start(respond: impl Fn(&Seen) -> Reply + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
        let origin = format!("http://{}", listener.local_addr().unwrap());
        Self::serve(listener, origin, respond)
    }

    async fn start_tls(
        config: tokio_rustls::rustls::ServerConfig,
        respond: impl Fn(&Seen) -> Reply + Send + Sync + 'static,
    ) -> Self {
        let tcp = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
        let origin = format!("https://{}", tcp.local_addr().unwrap());
        let listener = TlsListener {
            tcp,
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
        };
        Self::serve(listener, origin, respond)
    }

    fn serve<L: axum::serve::Listener>(
        listener: L,
        origin: String,
        respond: impl Fn(&Seen) -> Reply + Send + Sync + 'static,
    ) -> Self
    where
        L::Addr: std::fmt::Debug,
    {
        let shared = Arc::new(Shared {
            seen: Mutex::new(Vec::new()),
            respond: Box::new(respond),
        });
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(Arc::clone(&shared));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            origin,
            shared,
            task,
        }
    }

    fn base(&self) -> String {
        format!("{}/api/controller", self.origin)
    }

    fn seen(&self) -> Vec<Seen> {
        self.shared.seen.lock().unwrap().clone()
    }

    fn client(&self) -> AapClient {
        AapClient::new(self.config()).unwrap()
    }

    fn config(&self) -> AapConfig {
        let mut config = AapConfig::new(
            self.base(),
            TokenSource::Static(Secret::new(TOKEN.to_owned())),
        );
        config.request_timeout = Duration::from_secs(5);
        config.retry = RetryPolicy {
            attempts: 3,
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(20),
            max_retry_after: Duration::from_secs(2),
        };
        config
    }
}

async fn handle(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let raw_query = parts.uri.query().unwrap_or_default().to_owned();
    let query = reqwest::Url::parse(&format!("http://x/?{raw_query}"))
        .unwrap()
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let body = to_bytes(body, usize::MAX).await.unwrap();
    let seen = Seen {
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        query,
        raw_query,
        auth: parts
            .headers
            .get("authorization")
            .map(|v| v.to_str().unwrap().to_owned()),
        body: String::from_utf8_lossy(&body).into_owned(),
    };
    shared.seen.lock().unwrap().push(seen.clone());
    let (status, headers, body) = match (shared.respond)(&seen) {
        Reply::Json(status, value) => (
            status,
            vec![("content-type", "application/json".to_owned())],
            value.to_string(),
        ),
        Reply::Raw(status, headers, body) => (status, headers, body),
        Reply::Hang => std::future::pending().await,
    };
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = StatusCode::from_u16(status).unwrap();
    for (name, value) in headers {
        response.headers_mut().insert(
            HeaderName::from_static(name),
            HeaderValue::from_str(&value).unwrap(),
        );
    }
    response
}

struct TlsListener {
    tcp: TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<TcpStream>;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((stream, addr)) = self.tcp.accept().await else {
                continue;
            };
            // A client that refuses our certificate fails the handshake: wait for the next.
            if let Ok(tls) = self.acceptor.accept(stream).await {
                return (tls, addr);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

fn page(results: Vec<Value>) -> Reply {
    Reply::Json(
        200,
        json!({ "count": results.len(), "next": null, "previous": null, "results": results }),
    )
}

fn template(id: u64, org: &str) -> Value {
    json!({ "id": id, "type": "job_template", "summary_fields": { "organization": { "name": org } } })
}

#[tokio::test]
async fn lookup_escapes_the_name_tries_workflows_and_caches() {
    let mock = Mock::start(|seen| match seen.path.as_str() {
        "/api/controller/v2/job_templates/" => page(vec![]),
        "/api/controller/v2/workflow_job_templates/" => page(vec![template(31, "Ops")]),
        _ => Reply::Json(404, json!({"detail": "Not found."})),
    })
    .await;
    let mut config = mock.config();
    config.organization = Some("Ops & Infra".into());
    let client = AapClient::new(config).unwrap();
    let name = "cloudkit provision/v2 & more?";
    let found = client.template(name).await.unwrap();
    assert_eq!(
        found,
        TemplateRef {
            kind: AapJobKind::Workflow,
            id: 31
        }
    );
    assert_eq!(client.template(name).await.unwrap(), found, "cached");

    let seen = mock.seen();
    assert_eq!(seen.len(), 2, "{seen:#?}");
    assert_eq!(seen[0].path, "/api/controller/v2/job_templates/");
    assert_eq!(seen[1].path, "/api/controller/v2/workflow_job_templates/");
    for s in &seen {
        assert_eq!(s.method, "GET");
        assert_eq!(s.param("name"), Some(name));
        assert_eq!(s.param("organization__name"), Some("Ops & Infra"));
        assert!(!s.raw_query.contains(' ') && !s.raw_query.contains('/'));
        assert_eq!(s.auth.as_deref(), Some(&*format!("Bearer {TOKEN}")));
    }
}

fn template_gets(mock: &Mock) -> usize {
    mock.seen()
        .iter()
        .filter(|s| s.path == "/api/controller/v2/job_templates/")
        .count()
}

#[tokio::test]
async fn concurrent_lookups_of_one_template_send_one_request() {
    let mock = Mock::start(|_| page(vec![template(7, "Default")])).await;
    let client = mock.client();
    let lookups = (0..16).map(|_| client.template("provision"));
    for found in futures::future::join_all(lookups).await {
        assert_eq!(found.unwrap().id, 7);
    }
    assert_eq!(template_gets(&mock), 1, "{:#?}", mock.seen());
}

#[tokio::test]
async fn a_template_is_looked_up_again_once_its_refresh_period_is_over() {
    let mock = Mock::start(|_| page(vec![template(7, "Default")])).await;
    let mut config = mock.config();
    config.template_refresh = Duration::from_secs(3600);
    let client = AapClient::new(config.clone()).unwrap();
    client.template("provision").await.unwrap();
    client.template("provision").await.unwrap();
    assert_eq!(template_gets(&mock), 1, "within the period: cached");

    config.template_refresh = Duration::ZERO;
    let client = AapClient::new(config).unwrap();
    client.template("provision").await.unwrap();
    client.template("provision").await.unwrap();
    assert_eq!(template_gets(&mock), 3, "period over: looked up each time");
}

#[tokio::test]
async fn same_name_in_two_organizations_is_ambiguous() {
    let mock = Mock::start(|_| page(vec![template(1, "A"), template(2, "B")])).await;
    let e = mock.client().template("t").await.unwrap_err();
    assert!(
        matches!(e, AapError::AmbiguousTemplate { count: 2, .. }),
        "{e}"
    );
    assert!(e.to_string().contains("organizations: A, B"), "{e}");
    assert!(e.is_permanent());
}

#[tokio::test]
async fn launch_posts_extra_vars_by_id() {
    let mock = Mock::start(|seen| match (seen.method.as_str(), seen.path.as_str()) {
        ("GET", "/api/controller/v2/job_templates/") => page(vec![template(7, "Default")]),
        ("POST", "/api/controller/v2/job_templates/7/launch/") => Reply::Raw(
            201,
            vec![
                ("content-type", "application/json".into()),
                ("location", "/api/controller/v2/jobs/101/".into()),
            ],
            json!({"job": 101, "id": 101, "ignored_fields": {}, "status": "pending"}).to_string(),
        ),
        _ => Reply::Json(404, json!({"detail": "Not found."})),
    })
    .await;
    let vars = json!({ CORRELATION_EXTRA_VAR: "key-1", "ansible_eda": {"event": {"payload": {}}} });
    let launched = mock
        .client()
        .launch("provision", vars.clone())
        .await
        .unwrap();
    assert_eq!(
        launched,
        Launched {
            id: 101,
            kind: AapJobKind::Job
        }
    );
    let post = mock
        .seen()
        .into_iter()
        .find(|s| s.method == "POST")
        .unwrap();
    let body: Value = serde_json::from_str(&post.body).unwrap();
    assert_eq!(body, json!({ "extra_vars": vars }));
}

#[tokio::test]
async fn launch_404_looks_the_template_up_once_more() {
    let lookups = Arc::new(Mutex::new(0u64));
    let gone = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (counter, deleted) = (Arc::clone(&lookups), Arc::clone(&gone));
    let mock = Mock::start(
        move |seen| match (seen.method.as_str(), seen.path.as_str()) {
            ("GET", "/api/controller/v2/job_templates/") => {
                let mut n = counter.lock().unwrap();
                *n += 1;
                // The template was deleted and created again under a new id.
                page(vec![template(10 + *n, "Default")])
            }
            ("POST", "/api/controller/v2/job_templates/12/launch/")
                if !deleted.load(std::sync::atomic::Ordering::SeqCst) =>
            {
                Reply::Json(201, json!({"job": 200, "ignored_fields": {}}))
            }
            _ => Reply::Json(404, json!({"detail": "Not found."})),
        },
    )
    .await;
    let client = mock.client();
    let launched = client.launch("t", json!({})).await.unwrap();
    assert_eq!(launched.id, 200);
    let posts: Vec<String> = mock
        .seen()
        .into_iter()
        .filter(|s| s.method == "POST")
        .map(|s| s.path)
        .collect();
    assert_eq!(
        posts,
        [
            "/api/controller/v2/job_templates/11/launch/",
            "/api/controller/v2/job_templates/12/launch/"
        ]
    );
    assert_eq!(*lookups.lock().unwrap(), 2);
    assert_eq!(
        client.template("t").await.unwrap(),
        TemplateRef {
            kind: AapJobKind::Job,
            id: 12
        },
        "the new id is cached"
    );

    // Gone for good: one POST by the cached id, one lookup, one POST by the new id.
    gone.store(true, std::sync::atomic::Ordering::SeqCst);
    let e = client.launch("t", json!({})).await.unwrap_err();
    assert!(matches!(e, AapError::TemplateNotFound { .. }), "{e}");
    assert_eq!(*lookups.lock().unwrap(), 3);
    let posts = mock.seen().iter().filter(|s| s.method == "POST").count();
    assert_eq!(posts, 4);
}

#[tokio::test]
async fn a_launch_is_never_repeated() {
    let replies: [fn() -> Reply; 2] = [
        || {
            Reply::Raw(
                502,
                vec![("content-type", "text/html".into())],
                "<html><body><h1>502 Bad Gateway</h1></body></html>".into(),
            )
        },
        || Reply::Hang,
    ];
    for reply in replies {
        let mock = Mock::start(move |seen| match seen.method.as_str() {
            "GET" => page(vec![template(7, "Default")]),
            _ => reply(),
        })
        .await;
        let mut config = mock.config();
        config.request_timeout = Duration::from_millis(300);
        let e = AapClient::new(config)
            .unwrap()
            .launch("t", json!({}))
            .await
            .unwrap_err();
        assert!(!e.is_permanent(), "{e}");
        assert!(
            matches!(
                e,
                AapError::Server { status: 502, .. } | AapError::Timeout { .. }
            ),
            "{e}"
        );
        if let AapError::Server { body_excerpt, .. } = &e {
            assert!(body_excerpt.contains("502 Bad Gateway"), "{body_excerpt}");
        }
        assert_eq!(mock.seen().iter().filter(|s| s.method == "POST").count(), 1);
    }
}

#[tokio::test]
async fn launch_answers_become_errors() {
    let mock = Mock::start(|seen| match (seen.method.as_str(), seen.path.as_str()) {
        ("GET", "/api/controller/v2/job_templates/") => {
            let id = match seen.param("name") {
                Some("ignores") => 1,
                Some("needs") => 2,
                Some("html400") => 3,
                _ => 4,
            };
            page(vec![template(id, "Default")])
        }
        (_, "/api/controller/v2/job_templates/1/launch/") => Reply::Json(
            201,
            json!({"job": 55, "ignored_fields": {"extra_vars": {"a": 1}, "limit": "x"}}),
        ),
        (_, "/api/controller/v2/job_templates/2/launch/") => Reply::Json(
            400,
            json!({"variables_needed_to_start": ["'size' value missing"], "passwords_needed_to_start": ["ssh_password"]}),
        ),
        (_, "/api/controller/v2/job_templates/3/launch/") => {
            Reply::Raw(400, vec![], "Bad Request".into())
        }
        _ => Reply::Json(
            403,
            json!({"detail": "You do not have permission to perform this action."}),
        ),
    })
    .await;
    let client = mock.client();

    let e = client.launch("ignores", json!({})).await.unwrap_err();
    match &e {
        AapError::VariablesIgnored {
            template,
            fields,
            job,
        } => {
            assert_eq!(template, "ignores");
            assert_eq!(fields, &["extra_vars", "limit"]);
            assert_eq!(job.id, 55);
        }
        other => panic!("{other}"),
    }

    let e = client.launch("needs", json!({})).await.unwrap_err();
    match &e {
        AapError::LaunchRejected { fields, .. } => assert_eq!(
            fields,
            &[
                (
                    "passwords_needed_to_start".to_owned(),
                    vec!["ssh_password".to_owned()]
                ),
                (
                    "variables_needed_to_start".to_owned(),
                    vec!["'size' value missing".to_owned()]
                ),
            ]
        ),
        other => panic!("{other}"),
    }

    let e = client.launch("html400", json!({})).await.unwrap_err();
    assert!(
        e.to_string().ends_with("(400): __all__: Bad Request"),
        "{e}"
    );

    let e = client.launch("forbidden", json!({})).await.unwrap_err();
    assert_eq!(
        e.to_string(),
        "not allowed to launch template \"forbidden\" (403): You do not have permission to perform this action."
    );
}

#[tokio::test]
async fn find_launch_reads_details_when_the_list_lacks_extra_vars() {
    let mock = Mock::start(|seen| match seen.path.as_str() {
        "/api/controller/v2/job_templates/" => page(vec![template(7, "Default")]),
        "/api/controller/v2/jobs/" => page(vec![
            json!({"id": 303, "status": "running"}),
            json!({"id": 302, "status": "running", "extra_vars": "{\"cloudkit_correlation_key\": \"other\"}"}),
            json!({"id": 301, "status": "pending"}),
        ]),
        "/api/controller/v2/jobs/303/" => Reply::Json(
            200,
            json!({"id": 303, "status": "running", "extra_vars": "{\"cloudkit_correlation_key\": \"nope\"}"}),
        ),
        "/api/controller/v2/jobs/301/" => Reply::Json(
            200,
            json!({"id": 301, "status": "pending", "extra_vars": "{\"cloudkit_correlation_key\": \"mine\", \"x\": 1}"}),
        ),
        _ => Reply::Json(404, json!({"detail": "Not found."})),
    })
    .await;
    let after: Timestamp = "2026-03-01T12:00:00.5Z".parse().unwrap();
    let found = mock.client().find_launch("t", "mine", after).await.unwrap();
    assert_eq!(
        found,
        Some(Launched {
            id: 301,
            kind: AapJobKind::Job
        })
    );
    let seen = mock.seen();
    let list = seen
        .iter()
        .find(|s| s.path == "/api/controller/v2/jobs/")
        .unwrap();
    assert_eq!(list.param("job_template"), Some("7"));
    assert_eq!(list.param("order_by"), Some("-created"));
    assert_eq!(list.param("page_size"), Some("200"));
    // Ten minutes earlier than asked, for clock skew; microseconds, UTC.
    assert_eq!(
        list.param("created__gte"),
        Some("2026-03-01T11:50:00.500000Z")
    );
    let details: Vec<&str> = seen
        .iter()
        .filter(|s| s.path.starts_with("/api/controller/v2/jobs/3"))
        .map(|s| s.path.as_str())
        .collect();
    assert_eq!(
        details,
        [
            "/api/controller/v2/jobs/303/",
            "/api/controller/v2/jobs/301/"
        ]
    );
}

#[tokio::test]
async fn poll_chunks_ids_and_follows_next_paths() {
    let mock = Mock::start(|seen| {
        let ids: Vec<u64> = seen
            .param("id__in")
            .unwrap_or_default()
            .split(',')
            .filter_map(|s| s.parse().ok())
            .collect();
        let status = if seen.path.contains("workflow") {
            "running"
        } else {
            "successful"
        };
        // A proxy capping pages at 150: the rest comes on page 2.
        let page_no: usize = seen.param("page").and_then(|p| p.parse().ok()).unwrap_or(1);
        let start = (page_no - 1) * 150;
        let results: Vec<Value> = ids
            .iter()
            .skip(start)
            .take(150)
            // Job 7 was purged: absent from the answer.
            .filter(|id| **id != 7)
            .map(|id| json!({"id": id, "status": status, "started": "2026-01-01T00:00:00Z", "finished": null}))
            .collect();
        let next = (start + 150 < ids.len()).then(|| {
            format!("{}?{}&page={}", seen.path, seen.raw_query.split("&page=").next().unwrap(), page_no + 1)
        });
        Reply::Json(200, json!({"count": ids.len(), "next": next, "results": results}))
    })
    .await;
    let mut wanted: Vec<(AapJobKind, u64)> = (1..=450).map(|id| (AapJobKind::Job, id)).collect();
    wanted.push((AapJobKind::Job, 3)); // duplicates are asked once
    wanted.extend((1000..1003).map(|id| (AapJobKind::Workflow, id)));
    let found = mock.client().poll(&wanted).await.unwrap();
    assert_eq!(found.len(), 449 + 3);
    assert!(!found.contains_key(&(AapJobKind::Job, 7)));
    let job = &found[&(AapJobKind::Job, 450)];
    assert_eq!(job.state, cloudkit_shared::JobState::Succeeded);
    assert_eq!(job.started, Some("2026-01-01T00:00:00Z".parse().unwrap()));
    assert_eq!(
        found[&(AapJobKind::Workflow, 1001)].state,
        cloudkit_shared::JobState::Running
    );

    let seen = mock.seen();
    let jobs: Vec<&Seen> = seen
        .iter()
        .filter(|s| s.path == "/api/controller/v2/jobs/")
        .collect();
    // Chunks of 200, 200, 50 ids; the two full chunks need a second page each.
    assert_eq!(
        jobs.len(),
        5,
        "{:#?}",
        jobs.iter().map(|s| &s.raw_query).collect::<Vec<_>>()
    );
    for s in &jobs {
        assert!(s.param("id__in").unwrap().split(',').count() <= 200);
        assert_eq!(s.param("page_size"), Some("200"));
    }
    let workflows = seen
        .iter()
        .filter(|s| s.path == "/api/controller/v2/workflow_jobs/")
        .count();
    assert_eq!(workflows, 1);
}

#[tokio::test]
async fn links_to_another_host_are_refused() {
    let mock = Mock::start(|_| {
        Reply::Json(
            200,
            json!({"count": 400, "next": "http://elsewhere.example/api/v2/jobs/?page=2", "results": []}),
        )
    })
    .await;
    let e = mock
        .client()
        .poll(&[(AapJobKind::Job, 1)])
        .await
        .unwrap_err();
    assert!(matches!(e, AapError::Decode { .. }), "{e}");
    assert!(e.to_string().contains("leaves the AAP host"), "{e}");
}

#[tokio::test]
async fn redirects_are_reported_not_followed() {
    let mock = Mock::start(|_| {
        Reply::Raw(
            301,
            vec![("location", "/api/v2/jobs/1/".into())],
            String::new(),
        )
    })
    .await;
    let e = mock.client().get_job(AapJobKind::Job, 1).await.unwrap_err();
    assert!(matches!(e, AapError::Unexpected { status: 301, .. }), "{e}");
    assert_eq!(mock.seen().len(), 1);
}

#[tokio::test]
async fn gets_retry_then_give_up() {
    let mock = Mock::start(|_| Reply::Json(503, json!({"detail": "Service Unavailable"}))).await;
    let e = mock.client().get_job(AapJobKind::Job, 1).await.unwrap_err();
    assert!(matches!(e, AapError::Server { status: 503, .. }), "{e}");
    assert_eq!(mock.seen().len(), 3, "three attempts");

    let mock = Mock::start(|_| Reply::Hang).await;
    let mut config = mock.config();
    config.request_timeout = Duration::from_millis(200);
    let e = AapClient::new(config)
        .unwrap()
        .get_job(AapJobKind::Workflow, 9)
        .await
        .unwrap_err();
    assert!(matches!(e, AapError::Timeout { .. }), "{e}");
    assert!(e.to_string().contains("/v2/workflow_jobs/9/"), "{e}");
    assert_eq!(mock.seen().len(), 3);

    let mock = Mock::start(|_| {
        Reply::Raw(
            429,
            vec![("retry-after", "120".into())],
            r#"{"detail": "Request was throttled."}"#.into(),
        )
    })
    .await;
    let e = mock.client().get_job(AapJobKind::Job, 1).await.unwrap_err();
    assert_eq!(e.retry_after(), Some(Duration::from_secs(120)));
    assert_eq!(
        mock.seen().len(),
        1,
        "a long Retry-After is the caller's to wait"
    );
}

#[tokio::test]
async fn connection_refused_is_transient() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let mut config = AapConfig::new(
        format!("http://127.0.0.1:{port}/api"),
        TokenSource::Static(Secret::new(TOKEN.to_owned())),
    );
    config.retry = RetryPolicy::none();
    let e = AapClient::new(config)
        .unwrap()
        .get_job(AapJobKind::Job, 1)
        .await
        .unwrap_err();
    assert!(matches!(e, AapError::Connect { .. }), "{e}");
    assert!(!e.is_permanent());
    assert_eq!(e.reason(), cloudkit_shared::reasons::PROVIDER_UNREACHABLE);
}

#[tokio::test]
async fn the_token_appears_in_no_error_or_debug_output() {
    let mock = Mock::start(|seen| match seen.path.as_str() {
        "/api/controller/v2/jobs/1/" => Reply::Json(401, json!({"detail": "Invalid token."})),
        "/api/controller/v2/jobs/2/" => {
            Reply::Json(500, json!({"detail": "A server error has occurred."}))
        }
        _ => Reply::Json(
            403,
            json!({"detail": "You do not have permission to perform this action."}),
        ),
    })
    .await;
    let client = mock.client();
    let mut texts = vec![format!("{client:?}"), format!("{:?}", mock.config())];
    for id in [1, 2, 3] {
        let e = client.get_job(AapJobKind::Job, id).await.unwrap_err();
        texts.push(e.to_string());
        texts.push(format!("{e:?}"));
    }
    let e = client.cancel(AapJobKind::Job, 3).await.unwrap_err();
    texts.push(e.to_string());
    assert_eq!(texts[2], "AAP rejected the token (401): Invalid token.");
    for text in &texts {
        assert!(!text.contains(TOKEN), "{text}");
    }
}

#[tokio::test]
async fn a_rotated_token_file_is_used_after_a_401() {
    let current = Arc::new(Mutex::new("token-one".to_owned()));
    let accepted = Arc::clone(&current);
    let mock = Mock::start(move |seen| {
        if seen.auth.as_deref() == Some(&*format!("Bearer {}", accepted.lock().unwrap())) {
            Reply::Json(200, json!({"id": 1, "status": "running"}))
        } else {
            Reply::Json(401, json!({"detail": "Invalid token."}))
        }
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("token");
    std::fs::write(&path, "token-one\n").unwrap();
    let mut config = mock.config();
    config.token = TokenSource::File(path.clone());
    let client = AapClient::new(config).unwrap();
    assert!(client.get_job(AapJobKind::Job, 1).await.unwrap().is_some());

    // AAP rotates first; the kubelet updates the file a little later.
    *current.lock().unwrap() = "token-two".to_owned();
    let e = client.get_job(AapJobKind::Job, 1).await.unwrap_err();
    assert!(matches!(e, AapError::Unauthorized { .. }), "{e}");
    // Same length, maybe within the same mtime tick: the 401 forces a re-read.
    std::fs::write(&path, "token-two\n").unwrap();
    assert!(client.get_job(AapJobKind::Job, 1).await.unwrap().is_some());
    let auths: Vec<Option<String>> = mock.seen().into_iter().map(|s| s.auth).collect();
    assert_eq!(auths.last().unwrap().as_deref(), Some("Bearer token-two"));
}

#[tokio::test]
async fn cancel_checks_first_and_posts_at_most_once() {
    let mock = Mock::start(|seen| match (seen.method.as_str(), seen.path.as_str()) {
        ("GET", "/api/controller/v2/jobs/1/cancel/") => {
            Reply::Json(200, json!({"can_cancel": false}))
        }
        ("GET", _) => Reply::Json(200, json!({"can_cancel": true})),
        ("POST", "/api/controller/v2/workflow_jobs/2/cancel/") => {
            Reply::Raw(202, vec![], String::new())
        }
        ("POST", "/api/controller/v2/jobs/3/cancel/") => {
            Reply::Json(405, json!({"detail": "Method \"POST\" not allowed."}))
        }
        _ => Reply::Json(503, json!({"detail": "Service Unavailable"})),
    })
    .await;
    let client = mock.client();
    assert_eq!(
        client.cancel(AapJobKind::Job, 1).await.unwrap(),
        CancelOutcome::AlreadyFinished
    );
    assert_eq!(
        client.cancel(AapJobKind::Workflow, 2).await.unwrap(),
        CancelOutcome::Requested
    );
    assert_eq!(
        client.cancel(AapJobKind::Job, 3).await.unwrap(),
        CancelOutcome::AlreadyFinished
    );
    let e = client.cancel(AapJobKind::Job, 4).await.unwrap_err();
    assert!(matches!(e, AapError::Server { status: 503, .. }), "{e}");
    let posts: Vec<String> = mock
        .seen()
        .into_iter()
        .filter(|s| s.method == "POST")
        .map(|s| s.path)
        .collect();
    assert_eq!(
        posts,
        [
            "/api/controller/v2/workflow_jobs/2/cancel/",
            "/api/controller/v2/jobs/3/cancel/",
            "/api/controller/v2/jobs/4/cancel/"
        ]
    );
}

#[test]
fn base_urls() {
    let token = || TokenSource::Static(Secret::new("t".to_owned()));
    for (base, api) in [
        (
            "https://aap.example.com/api/controller",
            "https://aap.example.com/api/controller/v2/",
        ),
        (
            "https://aap.example.com/api/controller/",
            "https://aap.example.com/api/controller/v2/",
        ),
        (
            "http://127.0.0.1:8080/api/v2/",
            "http://127.0.0.1:8080/api/v2/",
        ),
        (
            "https://awx.example.com:8443/api",
            "https://awx.example.com:8443/api/v2/",
        ),
    ] {
        let client = AapClient::new(AapConfig::new(base, token())).unwrap();
        assert_eq!(client.api_url().as_str(), api);
    }
    for bad in [
        "aap.example.com/api",
        "ftp://x/api",
        "https://u:p@x/api",
        "https://x/api?x=1",
        "",
    ] {
        let e = AapClient::new(AapConfig::new(bad, token())).unwrap_err();
        assert!(matches!(e, AapError::Config(_)), "{bad}: {e}");
    }
}

// ---- TLS --------------------------------------------------------------------------

struct Pki {
    ca_pem: String,
    server: tokio_rustls::rustls::ServerConfig,
}

fn pki() -> Pki {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    use tokio_rustls::rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

    let mut ca = CertificateParams::default();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_key = KeyPair::generate().unwrap();
    let ca_pem = ca.self_signed(&ca_key).unwrap().pem();
    let issuer = Issuer::new(ca, ca_key);
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = leaf.signed_by(&key, &issuer).unwrap();
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let server = tokio_rustls::rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
        .unwrap();
    Pki { ca_pem, server }
}

fn job_answer(_: &Seen) -> Reply {
    Reply::Json(200, json!({"id": 1, "status": "successful"}))
}

#[tokio::test]
async fn tls_trusts_the_configured_ca_bundle_only() {
    let pki = pki();
    let mock = Mock::start_tls(pki.server.clone(), job_answer).await;
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("ca.pem");
    std::fs::write(&bundle, &pki.ca_pem).unwrap();

    let mut config = mock.config();
    config.ca_bundle = Some(bundle.clone());
    let job = AapClient::new(config)
        .unwrap()
        .get_job(AapJobKind::Job, 1)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(job.status, "successful");

    let e = mock.client().get_job(AapJobKind::Job, 1).await.unwrap_err();
    assert!(matches!(e, AapError::Tls { .. }), "{e}");
    assert!(e.is_permanent());
    assert!(e.to_string().contains("certificate"), "{e}");

    let mut config = mock.config();
    config.insecure_skip_tls_verify = true;
    assert!(
        AapClient::new(config)
            .unwrap()
            .get_job(AapJobKind::Job, 1)
            .await
            .unwrap()
            .is_some()
    );

    std::fs::write(&bundle, "not a certificate").unwrap();
    let mut config = mock.config();
    config.ca_bundle = Some(bundle);
    let e = AapClient::new(config).unwrap_err();
    assert!(matches!(e, AapError::Config(_)), "{e}");
}

#[tokio::test]
async fn https_to_a_plain_http_server_is_a_tls_error() {
    let mock = Mock::start(job_answer).await;
    let mut config = mock.config();
    config.base_url = config.base_url.replace("http://", "https://");
    let e = AapClient::new(config)
        .unwrap()
        .get_job(AapJobKind::Job, 1)
        .await
        .unwrap_err();
    assert!(matches!(e, AapError::Tls { .. }), "{e}");
    assert_eq!(mock.seen().len(), 0);
}

fn failed_job(kind: AapJobKind, id: u64, explanation: &str) -> AapJob {
    let wire: types::JobWire = serde_json::from_value(
        json!({"id": id, "status": "failed", "job_explanation": explanation}),
    )
    .unwrap();
    AapJob::from_wire(kind, wire)
}

/// A failed workflow: node 31's job 9 failed without an error path (node 30's job 8 failed
/// too, but had one); job 9's failed event names the task.
fn workflow_answer(seen: &Seen) -> Reply {
    let node = |id: u64, job: u64, failure_nodes: Vec<u64>| {
        json!({
            "id": id, "type": "workflow_job_node", "job": job, "workflow_job": 500,
            "failure_nodes": failure_nodes, "always_nodes": [], "success_nodes": [],
            "summary_fields": {"job": {"id": job, "name": "create", "type": "job", "status": "failed", "failed": true}},
        })
    };
    match seen.path.as_str() {
        "/api/controller/v2/workflow_jobs/500/workflow_nodes/" => {
            page(vec![node(31, 9, vec![]), node(30, 8, vec![32])])
        }
        "/api/controller/v2/jobs/9/" => Reply::Json(200, json!({"id": 9, "status": "failed"})),
        "/api/controller/v2/jobs/9/job_events/" => page(vec![json!({
            "play": "Create", "task": "Create the VM", "host_name": "localhost",
            "event_data": {"res": {"msg": "spec: Required value"}},
        })]),
        _ => Reply::Json(404, json!({"detail": "Not found."})),
    }
}

#[tokio::test]
async fn a_failed_workflow_is_explained_by_its_failed_nodes_job() {
    let mock = Mock::start(workflow_answer).await;
    let job = failed_job(AapJobKind::Workflow, 500, "No error handling path");
    let found = mock.client().failure(&job).await.unwrap().unwrap();
    assert_eq!(found.task, "Create the VM");
    assert_eq!(found.host, "localhost");
    assert_eq!(found.message, "spec: Required value");

    let seen = mock.seen();
    let paths: Vec<&str> = seen.iter().map(|s| s.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/api/controller/v2/workflow_jobs/500/workflow_nodes/",
            "/api/controller/v2/jobs/9/",
            "/api/controller/v2/jobs/9/job_events/",
        ]
    );
    assert_eq!(seen[0].param("job__failed"), Some("true"));
    assert_eq!(seen[2].param("failed"), Some("true"));
}

#[tokio::test]
async fn a_workflow_without_a_failed_playbook_node_keeps_its_own_explanation() {
    let mock = Mock::start(|seen| match seen.path.as_str() {
        "/api/controller/v2/workflow_jobs/500/workflow_nodes/" => page(vec![json!({
            "id": 40, "summary_fields": {"job": {"id": 12, "type": "workflow_approval"}},
        })]),
        _ => Reply::Json(404, json!({"detail": "Not found."})),
    })
    .await;
    let explanation = "No error handling path for workflow job node(s) [(40,failed)].";
    let job = failed_job(AapJobKind::Workflow, 500, explanation);
    let found = mock.client().failure(&job).await.unwrap().unwrap();
    assert_eq!(found.message, explanation);
    assert_eq!(found.task, "");
    assert_eq!(mock.seen().len(), 1);
}

#[tokio::test]
async fn a_job_that_failed_before_its_playbook_ran_is_explained_by_its_traceback() {
    let mock = Mock::start(|seen| match seen.path.as_str() {
        "/api/controller/v2/jobs/77/job_events/" => page(vec![]),
        "/api/controller/v2/jobs/77/" => Reply::Json(
            200,
            json!({"id": 77, "status": "error", "job_explanation": "",
                   "result_traceback": "Traceback (most recent call last):\n  File \"x\"\nRuntimeError: no inventory\n"}),
        ),
        _ => Reply::Json(404, json!({"detail": "Not found."})),
    })
    .await;
    let found = mock
        .client()
        .failure(&failed_job(AapJobKind::Job, 77, ""))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.message, "RuntimeError: no inventory");
}
