//! Response builders: aiohttp answers in plain text, EDA server (DRF) in JSON.

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use serde_json::{Value, json};

fn with_status(status: u16, body: Body) -> Response {
    let mut response = Response::new(body);
    *response.status_mut() =
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    response
}

pub(crate) fn text(status: u16, body: &str) -> Response {
    let mut response = with_status(status, Body::from(body.to_owned()));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

pub(crate) fn json(status: u16, body: &Value) -> Response {
    let mut response = with_status(status, Body::from(body.to_string()));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// DRF's error shape.
pub(crate) fn detail(status: u16, message: &str) -> Response {
    json(status, &json!({ "detail": message }))
}

pub(crate) fn empty(status: u16) -> Response {
    with_status(status, Body::empty())
}

pub(crate) fn allow(mut response: Response, methods: &'static str) -> Response {
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(methods));
    response
}
