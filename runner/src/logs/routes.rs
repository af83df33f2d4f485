//! The logs API's HTTP routes: discovery (the aggregator marks the APIService
//! unavailable without it) and `computeinstances/{name}/log`.

use std::time::Instant;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use cloudkit_shared::ComputeInstance;
use kube::api::Api;
use serde_json::json;

use super::bounds::{FOLLOW_LIMIT, FOLLOW_POLL, tail};
use super::select::{Choice, choose};
use crate::aap::AapClient;

const GROUP_VERSION: &str = "logs.cloudkit.openshift.io/v1alpha1";

#[derive(Clone)]
pub struct LogsState {
    pub client: kube::Client,
    pub aap: Option<AapClient>,
    pub user_headers: Vec<String>,
}

pub fn router(state: LogsState) -> Router {
    Router::new()
        .route("/apis", get(group_list))
        .route("/apis/logs.cloudkit.openshift.io", get(group))
        .route("/apis/logs.cloudkit.openshift.io/v1alpha1", get(resources))
        .route(
            "/apis/logs.cloudkit.openshift.io/v1alpha1/namespaces/{namespace}/computeinstances/{name}/log",
            get(log),
        )
        .route("/healthz", get(|| async { "ok" }))
        .with_state(state)
}

fn group_json() -> serde_json::Value {
    json!({
        "name": "logs.cloudkit.openshift.io",
        "versions": [{"groupVersion": GROUP_VERSION, "version": "v1alpha1"}],
        "preferredVersion": {"groupVersion": GROUP_VERSION, "version": "v1alpha1"},
    })
}

async fn group_list() -> Response {
    json_answer(
        StatusCode::OK,
        json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": [group_json()]}),
    )
}

async fn group() -> Response {
    let mut g = group_json();
    g["kind"] = json!("APIGroup");
    g["apiVersion"] = json!("v1");
    json_answer(StatusCode::OK, g)
}

async fn resources() -> Response {
    json_answer(
        StatusCode::OK,
        json!({
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": GROUP_VERSION,
            "resources": [{
                "name": "computeinstances/log",
                "singularName": "",
                "namespaced": true,
                "kind": "ComputeInstanceLog",
                "verbs": ["get"],
            }],
        }),
    )
}

fn json_answer(status: StatusCode, body: serde_json::Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// A `metav1.Status`, which kubectl and kube clients print as one line.
fn status(code: StatusCode, reason: &str, message: String) -> Response {
    json_answer(
        code,
        json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {},
            "status": "Failure", "message": message, "reason": reason, "code": code.as_u16(),
        }),
    )
}

fn bad_request(message: String) -> Response {
    status(StatusCode::BAD_REQUEST, "BadRequest", message)
}

#[derive(serde::Deserialize)]
pub struct LogQuery {
    job: Option<String>,
    tail: Option<String>,
    follow: Option<String>,
}

async fn log(
    State(state): State<LogsState>,
    Path((namespace, name)): Path<(String, String)>,
    Query(query): Query<LogQuery>,
    headers: HeaderMap,
) -> Response {
    // kube-apiserver authorised the request and names the user; without a name the
    // request did not come through it.
    let Some(user) = state
        .user_headers
        .iter()
        .find_map(|h| headers.get(h.as_str()).and_then(|v| v.to_str().ok()))
    else {
        return status(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "no user named by kube-apiserver".into(),
        );
    };
    let tail_lines = match query.tail.as_deref().map(str::parse::<usize>) {
        None => None,
        Some(Ok(n)) => Some(n),
        Some(Err(_)) => return bad_request("tail must be a whole number of lines".into()),
    };
    let follow = match query.follow.as_deref() {
        None | Some("false") | Some("0") => false,
        Some("true") | Some("1") | Some("") => true,
        Some(_) => return bad_request("follow must be true or false".into()),
    };
    let api: Api<ComputeInstance> = Api::namespaced(state.client.clone(), &namespace);
    let instance = match api.get_opt(&name).await {
        Ok(Some(ci)) => ci,
        Ok(None) => {
            return status(
                StatusCode::NOT_FOUND,
                "NotFound",
                format!("computeinstances.cloudkit.openshift.io \"{name}\" not found"),
            );
        }
        Err(e) => {
            return status(
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailable",
                format!("the runner cannot read {namespace}/{name}: {e}"),
            );
        }
    };
    let jobs = instance.status.map(|s| s.jobs).unwrap_or_default();
    let id = match choose(&jobs, query.job.as_deref()) {
        Choice::Aap(id) => id,
        Choice::NotListed(id) => {
            return bad_request(format!(
                "job {id} is not an AAP job of {name}; `kubectl cloudkit jobs {name}` lists them"
            ));
        }
        Choice::Workflow(id) => {
            return bad_request(format!(
                "job {id} is an AAP workflow job, which has no output of its own; its failed node's task is in `kubectl cloudkit describe {name}`, the nodes' output in AAP (the job's URL in `kubectl cloudkit jobs {name} -o wide`)"
            ));
        }
        Choice::Eda => {
            return bad_request(format!(
                "{name}'s jobs ran through EDA, which returns no job id, so there is no AAP output to read; see `kubectl cloudkit jobs {name}` for each job's message, and the rulebook activation's log in EDA"
            ));
        }
        Choice::NoJobs => return bad_request(format!("{name} has no AAP job yet")),
    };
    let Some(aap) = state.aap.clone() else {
        return bad_request(
            "this runner is configured for EDA: it has no AAP connection to read output with"
                .into(),
        );
    };
    tracing::info!(
        user,
        namespace,
        instance = name,
        job = id,
        follow,
        "job logs read"
    );
    if !follow {
        return match aap.stdout(id).await {
            Ok(Some(text)) => text_answer(Body::from(tail(&text, tail_lines))),
            Ok(None) => gone(id),
            Err(e) => aap_error(id, e),
        };
    }
    text_answer(Body::from_stream(follow_stream(aap, id, tail_lines)))
}

fn text_answer(body: Body) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body,
    )
        .into_response()
}

fn gone(id: u64) -> Response {
    status(
        StatusCode::NOT_FOUND,
        "NotFound",
        format!("AAP no longer has job {id} (purged): its output is gone"),
    )
}

fn aap_error(id: u64, e: crate::aap::AapError) -> Response {
    // AapError never carries the token.
    status(
        StatusCode::BAD_GATEWAY,
        "BadGateway",
        format!("the runner could not read job {id}'s output from AAP: {e}"),
    )
}

struct Follow {
    aap: AapClient,
    id: u64,
    tail: Option<usize>,
    sent: usize,
    started: Instant,
    first: bool,
    done: bool,
}

/// New output every [`FOLLOW_POLL`] until the job ends or [`FOLLOW_LIMIT`] passes. The
/// job's state is read before its output, so the last read holds everything.
fn follow_stream(
    aap: AapClient,
    id: u64,
    tail_lines: Option<usize>,
) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> {
    let state = Follow {
        aap,
        id,
        tail: tail_lines,
        sent: 0,
        started: Instant::now(),
        first: true,
        done: false,
    };
    futures::stream::unfold(state, |mut s| async move {
        loop {
            if s.done {
                return None;
            }
            if !s.first {
                tokio::time::sleep(FOLLOW_POLL).await;
            }
            if s.started.elapsed() > FOLLOW_LIMIT {
                s.done = true;
                let line = format!(
                    "[cloudkit: --follow stopped after {} minutes; the job still runs]\n",
                    FOLLOW_LIMIT.as_secs() / 60
                );
                return Some((Ok(Bytes::from(line)), s));
            }
            let finished = match s.aap.get_job(crate::aap::AapJobKind::Job, s.id).await {
                Ok(Some(job)) => job.state.is_terminal(),
                Ok(None) => true,
                Err(e) => return Some((Ok(stop_line(&mut s, e)), s)),
            };
            let text = match s.aap.stdout(s.id).await {
                Ok(t) => t.unwrap_or_default(),
                Err(e) => return Some((Ok(stop_line(&mut s, e)), s)),
            };
            s.done = finished;
            let chunk = if s.first {
                s.first = false;
                tail(&text, s.tail)
            } else if text.len() > s.sent && text.is_char_boundary(s.sent) {
                tail(&text[s.sent..], None)
            } else {
                String::new()
            };
            s.sent = text.len();
            if !chunk.is_empty() {
                return Some((Ok(Bytes::from(chunk)), s));
            }
        }
    })
}

fn stop_line(s: &mut Follow, e: crate::aap::AapError) -> Bytes {
    s.done = true;
    Bytes::from(format!("[cloudkit: stopped following job {}: {e}]\n", s.id))
}
