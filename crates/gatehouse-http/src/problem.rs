//! The one mapping from errors to HTTP: RFC 9457 problem details (`application/problem+json`)
//! with a stable `code`. A 5xx logs its cause and shows nothing internal.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use gatehouse_core::{Error, StoreError};
use serde::Serialize;

use crate::middleware::request_id;

pub const PROBLEM_JSON: &str = "application/problem+json";

/// An RFC 9457 problem document.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// A URI reference naming the problem type: `/problems/{code}`.
    #[serde(rename = "type")]
    pub type_uri: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// Stable, snake_case; clients match on this. Listed in docs/API.md.
    pub code: String,
    /// The request id, also sent as `x-request-id` and written in every log line.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// The request field at fault, for validation problems.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// An error on its way to becoming a problem response.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub detail: String,
    pub field: Option<&'static str>,
    pub retry_after_secs: Option<u32>,
}

impl ApiError {
    #[must_use]
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        Self {
            status,
            code,
            detail: detail.into(),
            field: None,
            retry_after_secs: None,
        }
    }

    /// The problem a bare error status gets when nothing more specific produced it.
    #[must_use]
    pub fn for_status(status: StatusCode) -> Self {
        let (code, detail) = match status {
            StatusCode::BAD_REQUEST => ("bad_request", "the request could not be read"),
            StatusCode::NOT_FOUND => ("not_found", "no resource at this path"),
            StatusCode::METHOD_NOT_ALLOWED => (
                "method_not_allowed",
                "this path does not accept this method; see the Allow header",
            ),
            StatusCode::PAYLOAD_TOO_LARGE => (
                "payload_too_large",
                "the request body exceeds the configured limit",
            ),
            StatusCode::REQUEST_TIMEOUT | StatusCode::GATEWAY_TIMEOUT => (
                "request_timeout",
                "the request took longer than the configured timeout",
            ),
            StatusCode::UNSUPPORTED_MEDIA_TYPE => (
                "unsupported_media_type",
                "send the body as application/json",
            ),
            // Every 503 the application itself produces has a JSON body; a bare one comes from
            // the request timeout.
            StatusCode::SERVICE_UNAVAILABLE => (
                "request_timeout",
                "the request did not complete within the configured timeout",
            ),
            s if s.is_server_error() => {
                ("internal_error", "the server failed to handle the request")
            }
            _ => ("http_error", "the request was refused"),
        };
        Self::new(status, code, detail)
    }

    /// D2: every request a sealed server cannot serve.
    #[must_use]
    pub fn sealed() -> Self {
        Self {
            retry_after_secs: Some(10),
            ..Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "sealed",
                "the server is sealed: its master key is rebuilt when enough operators have \
                 submitted their shares (gatehouse unseal); retry after that",
            )
        }
    }

    pub fn to_problem(&self) -> Problem {
        Problem {
            type_uri: format!("/problems/{}", self.code),
            title: self.status.canonical_reason().unwrap_or("Error").to_owned(),
            status: self.status.as_u16(),
            detail: self.detail.clone(),
            code: self.code.to_owned(),
            request_id: request_id::current(),
            field: self.field.map(str::to_owned),
        }
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        let code = e.code();
        match &e {
            Error::Invalid { field, reason } => Self {
                field: Some(field),
                ..Self::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    code,
                    format!("{field} {reason}"),
                )
            },
            Error::EmailTaken | Error::Store(StoreError::EmailTaken) => {
                Self::new(StatusCode::CONFLICT, code, e.to_string())
            }
            Error::Store(StoreError::Duplicate) => {
                Self::new(StatusCode::CONFLICT, code, e.to_string())
            }
            Error::NotFound(_) => Self::new(StatusCode::NOT_FOUND, code, e.to_string()),
            Error::Overloaded { retry_after_secs } => Self {
                retry_after_secs: Some(*retry_after_secs),
                ..Self::new(StatusCode::SERVICE_UNAVAILABLE, code, e.to_string())
            },
            Error::Store(StoreError::Unavailable(_)) => {
                tracing::error!(error = %e, "store unavailable");
                gatehouse_core::telemetry::metrics::error("store");
                Self {
                    retry_after_secs: Some(5),
                    ..Self::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        code,
                        "the data store is unavailable; retry shortly",
                    )
                }
            }
            Error::Unauthenticated(_) | Error::InvalidCredentials => {
                Self::new(StatusCode::UNAUTHORIZED, code, e.to_string())
            }
            Error::Forbidden { .. }
            | Error::WrongAudience(_)
            | Error::OrganizationMismatch
            | Error::StepUpRequired { .. }
            | Error::SecondFactorNotEnrolled(_)
            | Error::SecondFactorEnrolmentRequired(_)
            | Error::AccountDisabled
            | Error::EmailUnverified
            | Error::SsoRequired
            | Error::SsoRefused(_) => Self::new(StatusCode::FORBIDDEN, code, e.to_string()),
            Error::OrganizationRequired => Self {
                field: Some("x-organization-id"),
                ..Self::new(StatusCode::BAD_REQUEST, code, e.to_string())
            },
            Error::TooManyAttempts { retry_after_secs }
            | Error::RateLimited { retry_after_secs } => Self {
                retry_after_secs: Some(*retry_after_secs),
                ..Self::new(StatusCode::TOO_MANY_REQUESTS, code, e.to_string())
            },
            Error::DependencyUnavailable(_) => Self {
                retry_after_secs: Some(5),
                ..Self::new(StatusCode::SERVICE_UNAVAILABLE, code, e.to_string())
            },
            Error::InvalidToken(_) | Error::InvalidTarget(_) | Error::OAuthState(_) => {
                Self::new(StatusCode::BAD_REQUEST, code, e.to_string())
            }
            Error::Provider(_) => {
                tracing::info!(error = %e, "a provider call failed");
                Self::new(StatusCode::BAD_GATEWAY, code, e.to_string())
            }
            Error::LastOwner
            | Error::Conflict(_)
            | Error::SessionLimitReached { .. }
            | Error::DomainTaken
            | Error::ReauthorizationRequired => {
                Self::new(StatusCode::CONFLICT, code, e.to_string())
            }
            Error::DomainNotVerified(_) => {
                Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, e.to_string())
            }
            Error::LinkEnded(_) => Self::new(StatusCode::GONE, code, e.to_string()),
            Error::KeysShredded => Self::new(
                StatusCode::GONE,
                code,
                "this organisation's keys were destroyed; its sealed data is gone",
            ),
            Error::Store(_) | Error::Internal(_) | Error::Unreadable(_) => {
                tracing::error!(error = %e, "internal error");
                gatehouse_core::telemetry::metrics::error(match e {
                    Error::Store(_) => "store",
                    // A sealed value that no longer opens: a key or ciphertext problem.
                    Error::Unreadable(_) => "crypto",
                    _ => "internal",
                });
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    code,
                    "the server failed to handle the request",
                )
            }
        }
    }
}

impl From<crate::routes::unseal::UnsealRefusal> for ApiError {
    fn from(r: crate::routes::unseal::UnsealRefusal) -> Self {
        use crate::routes::unseal::UnsealRefusal;
        match r {
            UnsealRefusal::Invalid(d) => Self::new(StatusCode::BAD_REQUEST, "share_invalid", d),
            UnsealRefusal::WrongKey(d) => Self::new(StatusCode::BAD_REQUEST, "share_wrong_key", d),
            UnsealRefusal::Duplicate(d) => Self::new(StatusCode::CONFLICT, "share_duplicate", d),
            UnsealRefusal::KeyRefused(d) => {
                Self::new(StatusCode::UNPROCESSABLE_ENTITY, "unseal_key_refused", d)
            }
            UnsealRefusal::RateLimited { retry_after_secs } => Self {
                retry_after_secs: Some(retry_after_secs),
                ..Self::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "rate_limited",
                    "too many shares submitted from this address; retry later",
                )
            },
            UnsealRefusal::Failed => Self {
                retry_after_secs: Some(10),
                ..Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unseal_failed",
                    "the shares rebuilt the right key but the server could not start with it; \
                     no share is held: see the server's log, then submit the shares again",
                )
            },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self.to_problem()).unwrap_or_default();
        let mut res = (self.status, body).into_response();
        res.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if let Some(secs) = self.retry_after_secs {
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        res
    }
}
