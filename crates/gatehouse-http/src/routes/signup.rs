//! `POST /v1/auth/signup`: a new user and a new organisation owned by them.

use std::fmt;

use axum::extract::State;
use gatehouse_core::signup::SignupInput;
use gatehouse_crypto::SecretString;
use serde::{Deserialize, Serialize};

use crate::extract::RequestMeta;
use crate::json::ApiJson;
use crate::problem::{ApiError, Problem};
use crate::state::AppState;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SignupRequest {
    /// One `@`, a domain with a dot; compared trimmed and lower-cased.
    #[schema(example = "ada@example.com", format = Email, max_length = 254)]
    email: String,
    /// 8 to 256 characters, not on the list of common or breached passwords.
    #[schema(format = Password, min_length = 8, max_length = 256)]
    password: String,
    /// 1 to 200 characters once trimmed, no control characters.
    #[schema(
        example = "Ada Lovelace",
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
    )]
    name: String,
    /// As `name`.
    #[schema(
        example = "Analytical Engines Ltd",
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
    )]
    organization_name: String,
}

impl fmt::Debug for SignupRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignupRequest")
            .field("email", &self.email)
            .field("password", &"[redacted]")
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct SignupResponse {
    /// Always `accepted`.
    status: &'static str,
}

/// Creates a user and an organisation with that user as owner, and mails a verification link.
/// The answer is the same when the address is already registered (its owner is mailed instead),
/// so sign-up never tells whether an address has an account. No tokens are issued: sign in next
/// (the organisation's id comes with the sign-in).
#[utoipa::path(post, path = "/v1/auth/signup", tag = "auth",
    request_body = SignupRequest,
    responses(
        (status = 202, description = "Accepted: a new account was made, or the address's owner was mailed", body = SignupResponse),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A field failed validation", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Password hashing is saturated; retry after `Retry-After`", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn signup(
    State(state): State<AppState>,
    RequestMeta(meta): RequestMeta,
    ApiJson(req): ApiJson<SignupRequest>,
) -> Result<(axum::http::StatusCode, axum::Json<SignupResponse>), ApiError> {
    let _created_or_registered = state
        .kernel
        .signup()
        .register(
            SignupInput {
                email: req.email,
                password: SecretString::from(req.password),
                name: req.name,
                organization_name: req.organization_name,
            },
            &meta,
        )
        .await?;
    Ok((
        axum::http::StatusCode::ACCEPTED,
        axum::Json(SignupResponse { status: "accepted" }),
    ))
}
