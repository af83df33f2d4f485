//! The HTTP front: one handler that does what the layers in front of AWX's views do,
//! in their order — proxy faults, Django's slash redirect, DRF authentication — and
//! then calls the view.

use std::sync::Arc;

use axum::Router;
use axum::body::to_bytes;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderValue, Method, header};
use axum::response::Response;

use super::auth::{self, AuthError};
use super::config::Access;
use super::events;
use super::faults::{Endpoint, Fault};
use super::job_views;
use super::launch;
use super::metadata;
use super::organization_views;
use super::responses;
use super::root_views;
use super::routes::{self, Matched, Permission, Route};
use super::state::Shared;
use super::template_views;
use super::workflow_nodes;

const MAX_BODY: usize = 16 * 1024 * 1024;

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new().fallback(dispatch).with_state(shared)
}

async fn dispatch(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let _in_flight = shared.concurrency.enter();
    let (parts, body) = request.into_parts();
    let path = parts.uri.path().to_owned();
    let query = parts.uri.query().map(str::to_owned);
    let matched = routes::parse(&path, &shared.prefix);
    let endpoint = matched.map_or(Endpoint::Other, |m| m.route.endpoint(&parts.method));

    let (seq, fault, latency, slow_response) = {
        let mut guard = shared.lock();
        let state = &mut *guard;
        let now = state.now();
        let seq = state.ledger.begin(
            parts.method.as_str(),
            &path,
            query.as_deref(),
            endpoint,
            now,
        );
        let faults = state.faults.entry(endpoint).or_default();
        let fault = faults.take(&mut state.rng);
        let (latency, slow) = (faults.latency, faults.slow_response);
        if let Some(fault) = &fault {
            state.ledger.faulted(seq, fault);
        }
        (seq, fault, latency, slow)
    };
    let answer = |response: Response| {
        let now = shared.clock.now();
        shared
            .lock()
            .ledger
            .answered(seq, response.status().as_u16(), now);
        shared.notify();
        response
    };

    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    match &fault {
        Some(Fault::Status(status)) => return answer(responses::injected(*status)),
        Some(Fault::TooManyRequests { retry_after_secs }) => {
            return answer(responses::too_many_requests(*retry_after_secs));
        }
        Some(Fault::Hang) => return hang(&shared).await,
        Some(Fault::Delay(d)) => tokio::time::sleep(*d).await,
        _ => {}
    }

    let Some(Matched { route, slash }) = matched else {
        return answer(responses::no_route());
    };
    if !slash {
        let location = match &query {
            Some(q) => format!("{path}/?{q}"),
            None => format!("{path}/"),
        };
        return answer(crate::sim_server::redirect(&location));
    }

    // Checked before the match: the state's guard must be gone before `answer` locks it.
    let checked = auth::check(&parts.headers, &shared.lock());
    let access = match route.permission() {
        Permission::Public => Access::ReadOnly,
        Permission::AllowAny => match checked {
            Ok(access) => access,
            // Basic authentication fails loudly even here; an unknown token is just
            // no user (the OAuth2 backend declines it), and anonymous is allowed.
            Err(e @ AuthError::InvalidPassword) => {
                return answer(with_view_headers(
                    route,
                    responses::unauthorized(e.message()),
                ));
            }
            Err(_) => Access::ReadOnly,
        },
        Permission::Authenticated => match checked {
            Ok(access) => access,
            Err(e) => {
                return answer(with_view_headers(
                    route,
                    responses::unauthorized(e.message()),
                ));
            }
        },
    };

    let params: Vec<(String, String)> = Query::<Vec<(String, String)>>::try_from_uri(&parts.uri)
        .map(|q| q.0)
        .unwrap_or_default();
    let body = match to_bytes(body, MAX_BODY).await {
        Ok(bytes) => bytes,
        Err(_) => return answer(responses::detail(413, "Request body too large.")),
    };

    let response = with_view_headers(
        route,
        view(
            &shared,
            route,
            &parts.method,
            &path,
            &params,
            access,
            &body,
            fault.as_ref(),
        ),
    );

    let response = match fault {
        Some(Fault::CommitThenStatus(status)) => responses::injected(status),
        Some(Fault::CommitThenHang) => return hang(&shared).await,
        Some(Fault::CommitThenMalformed) => responses::malformed(response.status().as_u16()),
        _ => response,
    };
    if !slow_response.is_zero() {
        tokio::time::sleep(slow_response).await;
    }
    answer(response)
}

/// Never answers while the simulator lives; when it is dropped, the connection is
/// closed so the server can stop (the ledger keeps the request unanswered).
async fn hang(shared: &Shared) -> Response {
    shared.life.stopped().await;
    let mut response = responses::injected(503);
    response.headers_mut().insert(
        axum::http::header::CONNECTION,
        axum::http::HeaderValue::from_static("close"),
    );
    response
}

#[allow(clippy::too_many_arguments)]
fn view(
    shared: &Arc<Shared>,
    route: Route,
    method: &Method,
    path: &str,
    params: &[(String, String)],
    access: Access,
    body: &[u8],
    fault: Option<&Fault>,
) -> Response {
    if !route.handles(method) {
        return responses::method_not_allowed(method.as_str(), route.allow());
    }
    if method == Method::OPTIONS {
        return metadata::options(route, access);
    }
    let get = method == Method::GET || method == Method::HEAD;
    match route {
        Route::ApiRoot if get => {
            // The path is the prefix and its slash: the versions live under it.
            root_views::api_root(path.trim_end_matches('/'))
        }
        Route::Root if get => root_views::version_root(shared),
        Route::Ping if get => root_views::ping(),
        Route::Config if get => root_views::config(access),
        Route::OrganizationList if get => organization_views::list(shared, params, path, access),
        Route::OrganizationDetail(id) if get => organization_views::detail(shared, id, access),
        Route::UnifiedTemplateList if get => {
            template_views::list(shared, None, params, path, access)
        }
        Route::TemplateList(kind) if get => {
            template_views::list(shared, Some(kind), params, path, access)
        }
        Route::TemplateDetail(kind, id) if get => template_views::detail(shared, kind, id, access),
        Route::Launch(kind, id) if get => template_views::launch_info(shared, kind, id),
        Route::Launch(kind, id) if method == Method::POST => {
            launch::launch(shared, kind, id, access, body)
        }
        Route::JobList(kind) if get => job_views::list(shared, kind, None, params, path),
        Route::TemplateJobs(kind, id) if get => {
            job_views::list(shared, kind, Some(id), params, path)
        }
        Route::JobDetail(kind, id) if get => job_views::detail(shared, kind, id),
        Route::JobDetail(kind, id) if method == Method::DELETE => {
            job_views::delete(shared, kind, id, access)
        }
        Route::Cancel(kind, id) if get => job_views::can_cancel(shared, kind, id),
        Route::Cancel(kind, id) if method == Method::POST => {
            job_views::cancel(shared, kind, id, access, fault)
        }
        Route::Stdout(id) if get => job_views::stdout(shared, id, params),
        Route::JobEvents(id) if get => events::list(shared, id, params, path),
        Route::WorkflowNodes(id) if get => workflow_nodes::list(shared, id, params, path),
        other => responses::method_not_allowed(method.as_str(), other.allow()),
    }
}

/// What AWX's views add to every answer: `Allow`, and the product and version the
/// awx.awx collection compares with its own.
fn with_view_headers(route: Route, mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::ALLOW, HeaderValue::from_static(route.allow()));
    headers.insert(
        "X-API-Product-Name",
        HeaderValue::from_static(root_views::PRODUCT),
    );
    headers.insert(
        "X-API-Product-Version",
        HeaderValue::from_static(root_views::VERSION),
    );
    response
}
