//! AWX's answers: status codes with the bodies Django REST framework and the proxies in
//! front of it send.

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use serde_json::{Value, json};

pub(crate) fn json(status: u16, body: &Value) -> Response {
    let mut response = Response::new(Body::from(body.to_string()));
    *response.status_mut() = code(status);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

pub(crate) fn detail(status: u16, message: &str) -> Response {
    json(status, &json!({ "detail": message }))
}

pub(crate) fn text(status: u16, content_type: &'static str, body: String) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = code(status);
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

pub(crate) fn empty(status: u16) -> Response {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = code(status);
    response
}

fn code(status: u16) -> StatusCode {
    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// DRF's 404 for an object that does not exist.
pub(crate) fn not_found() -> Response {
    detail(404, "Not found.")
}

/// AWX's 404 for a path no URL pattern matches (e.g. a name where an id belongs).
pub(crate) fn no_route() -> Response {
    detail(404, "The requested resource could not be found.")
}

pub(crate) fn forbidden() -> Response {
    detail(403, "You do not have permission to perform this action.")
}

pub(crate) fn unauthorized(message: &str) -> Response {
    let mut response = detail(401, message);
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"api\""),
    );
    response
}

pub(crate) fn method_not_allowed(method: &str, allow: &'static str) -> Response {
    let mut response = detail(405, &format!("Method \"{method}\" not allowed."));
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    response
}

pub(crate) fn created(location: &str, body: &Value) -> Response {
    let mut response = json(201, body);
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

pub(crate) fn too_many_requests(retry_after_secs: u64) -> Response {
    let mut response = detail(
        429,
        &format!("Request was throttled. Expected available in {retry_after_secs} seconds."),
    );
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
    response
}

/// The view's status with a JSON document cut short, as a proxy that dropped the rest
/// of the answer leaves it.
pub(crate) fn malformed(status: u16) -> Response {
    text(
        status,
        "application/json",
        "{\"id\": 1, \"status\": \"pend".to_owned(),
    )
}

/// An injected error status. AWX answers its own 500s in JSON; 502 / 503 / 504 come from
/// the proxy in front of it, as HTML, so clients must not expect JSON there.
pub(crate) fn injected(status: u16) -> Response {
    match status {
        500 => detail(500, "A server error has occurred."),
        502..=504 => {
            let reason = code(status).canonical_reason().unwrap_or("Error");
            text(
                status,
                "text/html",
                format!(
                    "<html>\r\n<head><title>{status} {reason}</title></head>\r\n<body>\r\n<center><h1>{status} {reason}</h1></center>\r\n</body>\r\n</html>\r\n"
                ),
            )
        }
        401 => unauthorized("Authentication credentials were not provided."),
        403 => forbidden(),
        404 => not_found(),
        429 => too_many_requests(1),
        _ => {
            let reason = code(status).canonical_reason().unwrap_or("Error");
            detail(status, reason)
        }
    }
}
