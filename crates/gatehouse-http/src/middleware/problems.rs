//! Error statuses produced below the handlers (axum's 405, the body limit's 413, the timeout)
//! come with no body or a plain-text one. This turns each into a problem document, keeping
//! headers such as `Allow`. JSON bodies (problems, the readiness report) pass untouched.

use axum::body::Body;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use crate::problem::{ApiError, PROBLEM_JSON};

pub(crate) fn ensure_problem_body(res: Response) -> Response {
    let status = res.status();
    if !(status.is_client_error() || status.is_server_error()) || is_json(&res) {
        return res;
    }
    let (mut parts, _) = res.into_parts();
    let error = ApiError::for_status(status);
    let fresh = error.into_response();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts
        .headers
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    let (_, body) = fresh.into_parts();
    Response::from_parts(parts, Body::new(body))
}

fn is_json(res: &Response) -> bool {
    res.headers().get(header::CONTENT_TYPE).is_some_and(|v| {
        let v = v.as_bytes();
        v.starts_with(PROBLEM_JSON.as_bytes()) || v.starts_with(b"application/json")
    })
}
