//! The HTTP front: records each request, reads the body, hands it to the receiver its
//! path belongs to, lets the rulebook take the event, and answers.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::to_bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::response::Response;
use k8s_openapi::jiff::Timestamp;
use serde_json::Value;

use super::config::{Playbook, StreamAuth};
use super::event;
use super::faults::Fault;
use super::ledger::{AuthCheck, Flavor, RequestRecord};
use super::responses;
use super::rulebook;
use super::state::Shared;
use super::{stream, webhook};

/// aiohttp's default `client_max_size`.
const MAX_BODY: usize = 1024 * 1024;

/// What a receiver made of a request.
pub(crate) enum Verdict {
    /// Answered without an event.
    Refused { response: Response, auth: AuthCheck },
    /// An event for the rulebook.
    Taken(Taken),
}

impl Verdict {
    pub(crate) fn refused(response: Response, auth: AuthCheck) -> Self {
        Self::Refused { response, auth }
    }
}

pub(crate) struct Taken {
    pub(crate) flavor: Flavor,
    pub(crate) event: Value,
    /// The request path without its leading slash, for path faults.
    pub(crate) route: String,
    pub(crate) playbook: Option<Playbook>,
    pub(crate) auth: AuthCheck,
    /// The receiver's answer when all goes well.
    pub(crate) ok: Response,
}

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new().fallback(handle).with_state(shared)
}

async fn handle(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let path = parts.uri.path().to_owned();
    let query = parts.uri.query().map(str::to_owned);
    let flavor = if path.starts_with(stream::PREFIX) {
        Flavor::EventStream
    } else {
        Flavor::Webhook
    };
    let seq = shared.update(|s| {
        let mut secret_headers = vec!["authorization".to_owned()];
        secret_headers.extend(s.streams.values().filter_map(|st| match &st.auth {
            StreamAuth::Token { header, .. } => Some(header.clone()),
            StreamAuth::Hmac { .. } => None,
        }));
        let secret_headers: Vec<&str> = secret_headers.iter().map(String::as_str).collect();
        let seq = s.ledger.next_request();
        s.ledger.requests.push(RequestRecord {
            seq,
            method: parts.method.to_string(),
            path: path.clone(),
            query: query.clone(),
            flavor,
            headers: event::redacted(&parts.headers, &secret_headers),
            body_bytes: 0,
            auth: AuthCheck::NotChecked,
            fault: None,
            status: None,
            event: None,
            at: Timestamp::now(),
            answered_at: None,
        });
        seq
    });

    let Ok(body) = to_bytes(body, MAX_BODY).await else {
        let response = responses::text(413, "Request Entity Too Large");
        return answer(&shared, seq, response, AuthCheck::NotChecked, None, None);
    };
    shared.update(|s| {
        if let Some(r) = s.ledger.request_mut(seq) {
            r.body_bytes = body.len();
        }
    });

    let verdict = match flavor {
        Flavor::Webhook => webhook::receive(&shared, &parts.method, &path, &parts.headers, &body),
        Flavor::EventStream => stream::receive(
            &shared,
            &parts.method,
            &path,
            query.as_deref(),
            &parts.headers,
            &body,
        ),
    };
    let taken = match verdict {
        Verdict::Refused { response, auth } => {
            return answer(&shared, seq, response, auth, None, None);
        }
        Verdict::Taken(taken) => taken,
    };

    let disposition = rulebook::accept(&shared, seq, &taken);
    let response = match disposition.fault {
        Some(Fault::Status(status)) => match flavor {
            Flavor::Webhook => responses::text(
                status,
                "500 Internal Server Error\n\nServer got itself in trouble",
            ),
            Flavor::EventStream => responses::empty(status),
        },
        _ => taken.ok,
    };
    let slow = match disposition.fault {
        Some(Fault::SlowAnswer(d)) => d,
        _ => Duration::ZERO,
    };
    if slow.is_zero() {
        return answer(
            &shared,
            seq,
            response,
            taken.auth,
            disposition.fault,
            disposition.event,
        );
    }
    record(
        &shared,
        seq,
        response.status().as_u16(),
        taken.auth,
        disposition.fault,
        disposition.event,
    );
    let mut response = response;
    tokio::select! {
        () = tokio::time::sleep(slow) => {}
        // A stopping simulator closes the connection rather than keep the server up.
        () = shared.life.stopped() => {
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
    }
    answered(&shared, seq);
    response
}

fn record(
    shared: &Shared,
    seq: u64,
    status: u16,
    auth: AuthCheck,
    fault: Option<Fault>,
    event: Option<u64>,
) {
    shared.update(|s| {
        if let Some(r) = s.ledger.request_mut(seq) {
            r.status = Some(status);
            r.auth = auth;
            r.fault = fault;
            r.event = event;
        }
    });
}

fn answered(shared: &Shared, seq: u64) {
    shared.update(|s| {
        if let Some(r) = s.ledger.request_mut(seq) {
            r.answered_at = Some(Timestamp::now());
        }
    });
}

fn answer(
    shared: &Shared,
    seq: u64,
    response: Response,
    auth: AuthCheck,
    fault: Option<Fault>,
    event: Option<u64>,
) -> Response {
    record(shared, seq, response.status().as_u16(), auth, fault, event);
    answered(shared, seq);
    response
}
