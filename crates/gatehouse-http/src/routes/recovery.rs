//! Password reset, password change and email verification.

use std::fmt;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use gatehouse_crypto::SecretString;
use serde::{Deserialize, Serialize};

use crate::auth::Caller;
use crate::extract::RequestMeta;
use crate::json::ApiJson;
use crate::problem::{ApiError, Problem};
use crate::state::AppState;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ResetRequest {
    email: String,
}

/// The same answer for every address.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Accepted {
    status: &'static str,
}

const ACCEPTED: Accepted = Accepted { status: "accepted" };

/// Mails a one-time reset link if the address belongs to an account. Always 202, answered
/// before any lookup, so neither the answer nor its timing says whether the account exists.
#[utoipa::path(post, path = "/v1/auth/password-reset", tag = "auth",
    request_body = ResetRequest,
    responses((status = 202, description = "Accepted", body = Accepted)))]
pub(crate) async fn request_reset(
    State(state): State<AppState>,
    RequestMeta(meta): RequestMeta,
    ApiJson(req): ApiJson<ResetRequest>,
) -> (StatusCode, Json<Accepted>) {
    // At most a bounded number run at once; beyond that a request is dropped (logged) and the
    // answer is the same, so a flood cannot pile up unbounded background work.
    match std::sync::Arc::clone(&state.background).try_acquire_owned() {
        Ok(permit) => {
            let kernel = state.kernel.clone();
            tokio::spawn(async move {
                // Let the answer go out first: this work must not delay it.
                tokio::task::yield_now().await;
                if let Err(e) = kernel
                    .recovery()
                    .request_password_reset(&req.email, &meta)
                    .await
                {
                    tracing::error!(error = %e, "a password reset request failed");
                }
                drop(permit);
            });
        }
        Err(_) => tracing::warn!("too many password reset requests in flight; one was dropped"),
    }
    (StatusCode::ACCEPTED, Json(ACCEPTED))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ResetConfirm {
    token: String,
    /// 8 to 256 characters, not on the list of common or breached passwords.
    #[schema(format = Password, min_length = 8, max_length = 256)]
    new_password: String,
}

impl fmt::Debug for ResetConfirm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ResetConfirm([redacted])")
    }
}

/// Sets a new password with the mailed token. Every session of the account ends.
#[utoipa::path(post, path = "/v1/auth/password-reset/confirm", tag = "auth",
    request_body = ResetConfirm,
    responses(
        (status = 204, description = "Password set; every session ended"),
        (status = 400, description = "`invalid_token`: unknown, used or expired", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The password fails the policy", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn confirm_reset(
    State(state): State<AppState>,
    RequestMeta(meta): RequestMeta,
    ApiJson(req): ApiJson<ResetConfirm>,
) -> Result<StatusCode, ApiError> {
    state
        .kernel
        .recovery()
        .confirm_password_reset(
            &SecretString::from(req.token),
            SecretString::from(req.new_password),
            &meta,
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ChangePassword {
    #[schema(format = Password)]
    current_password: String,
    /// 8 to 256 characters, not on the list of common or breached passwords.
    #[schema(format = Password, min_length = 8, max_length = 256)]
    new_password: String,
}

impl fmt::Debug for ChangePassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ChangePassword([redacted])")
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct PasswordChanged {
    /// The caller's other sessions, now ended.
    sessions_revoked: usize,
}

/// Changes the caller's password (the current one is required; with a second factor, also one
/// checked within the step-up window) and ends their other sessions.
#[utoipa::path(post, path = "/v1/me/password", tag = "me",
    security(("bearer" = [])),
    request_body = ChangePassword,
    responses(
        (status = 200, description = "Changed", body = PasswordChanged),
        (status = 401, description = "`invalid_credentials`: the current password is wrong", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`step_up_required`: the account has a second factor and none was checked within the step-up window (`POST /v1/auth/step-up`)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The new password fails the policy", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn change_password(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<ChangePassword>,
) -> Result<Json<PasswordChanged>, ApiError> {
    let n = state
        .kernel
        .recovery()
        .change_password(
            &caller.call,
            SecretString::from(req.current_password),
            SecretString::from(req.new_password),
        )
        .await?;
    Ok(Json(PasswordChanged {
        sessions_revoked: n,
    }))
}

/// Mails a new verification link to the caller's address.
#[utoipa::path(post, path = "/v1/me/email/verification", tag = "me",
    security(("bearer" = [])),
    responses(
        (status = 202, description = "Sent", body = Accepted),
        (status = 409, description = "Already verified", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "A link was sent to this account within the last minute", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn resend_verification(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    state
        .kernel
        .recovery()
        .resend_email_verification(&caller.call)
        .await?;
    Ok((StatusCode::ACCEPTED, Json(ACCEPTED)))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct VerifyEmail {
    token: String,
}

impl fmt::Debug for VerifyEmail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("VerifyEmail([redacted])")
    }
}

/// Verifies the address a token was mailed to. Tokens issued later reflect it.
#[utoipa::path(post, path = "/v1/auth/verify-email", tag = "auth",
    request_body = VerifyEmail,
    responses(
        (status = 204, description = "Verified"),
        (status = 400, description = "`invalid_token`: unknown, used or expired", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn verify_email(
    State(state): State<AppState>,
    RequestMeta(meta): RequestMeta,
    ApiJson(req): ApiJson<VerifyEmail>,
) -> Result<StatusCode, ApiError> {
    state
        .kernel
        .recovery()
        .verify_email(&SecretString::from(req.token), &meta)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
