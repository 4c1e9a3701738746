//! `ApiJson<T>`: axum's JSON extractor with its rejections sent through the problem mapping, and
//! a response wrapper for JSON bodies with a status.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;

use crate::problem::ApiError;

#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(rejection_to_error(&rejection)),
        }
    }
}

fn rejection_to_error(rejection: &JsonRejection) -> ApiError {
    match rejection {
        JsonRejection::MissingJsonContentType(_) => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the body with Content-Type: application/json",
        ),
        JsonRejection::JsonSyntaxError(_) => ApiError::new(
            StatusCode::BAD_REQUEST,
            "malformed_json",
            "the body is not well-formed JSON",
        ),
        JsonRejection::JsonDataError(e) => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
            shape_detail(&e.body_text()),
        ),
        JsonRejection::BytesRejection(_) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::for_status(StatusCode::PAYLOAD_TOO_LARGE)
        }
        other => ApiError::new(
            other.status(),
            "bad_request",
            "the request body could not be read",
        ),
    }
}

/// serde's messages for a wrong type or value quote the offending input, which may be a password:
/// only messages that name fields alone are passed on.
fn shape_detail(serde_message: &str) -> String {
    let generic = "the JSON body does not have the expected fields and types".to_owned();
    let names_only = ["missing field", "unknown field"];
    match names_only.iter().find_map(|m| serde_message.find(m)) {
        Some(at) => serde_message
            .get(at..)
            .and_then(|rest| rest.split(" at line").next())
            .map_or(generic, str::to_owned),
        None => generic,
    }
}

/// A JSON body with a chosen status.
#[derive(Debug)]
pub struct Created<T>(pub T);

impl<T: serde::Serialize> IntoResponse for Created<T> {
    fn into_response(self) -> Response {
        (StatusCode::CREATED, Json(self.0)).into_response()
    }
}

/// A 200 JSON body for the hot paths (forward-auth verify, key verify, transit), serialised
/// into a buffer sized for them: axum's `Json` starts at 128 bytes and grows twice for a
/// typical verify answer.
#[derive(Debug)]
pub struct JsonOk<T>(pub T);

impl<T: serde::Serialize> IntoResponse for JsonOk<T> {
    fn into_response(self) -> Response {
        let mut buf = Vec::with_capacity(512);
        match serde_json::to_writer(&mut buf, &self.0) {
            Ok(()) => (
                [(
                    axum::http::header::CONTENT_TYPE,
                    axum::http::HeaderValue::from_static("application/json"),
                )],
                buf,
            )
                .into_response(),
            Err(e) => ApiError::from(gatehouse_core::Error::Internal(format!(
                "a response could not be serialised: {e}"
            )))
            .into_response(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::shape_detail;

    #[test]
    fn values_are_never_echoed() {
        let msg = "Failed to deserialize the JSON body into the target type: password: invalid type: integer `12345678`, expected a string at line 1 column 20";
        assert!(!shape_detail(msg).contains("12345678"));
        let msg = "Failed to deserialize the JSON body into the target type: missing field `email` at line 1 column 2";
        assert_eq!(shape_detail(msg), "missing field `email`");
    }
}
