//! The second factor: TOTP enrolment, the second step of sign-in, step-up and disabling.

use std::fmt;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use gatehouse_core::Error;
use gatehouse_core::identity::SecondFactor;
use gatehouse_crypto::SecretString;
use serde::{Deserialize, Serialize};

use super::auth::{SessionMode, session_response};
use crate::auth::{Caller, Carrier, EnrolmentCaller};
use crate::extract::RequestMeta;
use crate::json::ApiJson;
use crate::problem::{ApiError, Problem};
use crate::state::AppState;

fn no_store(mut res: Response) -> Response {
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// Exactly one of `code` and `recovery_code`.
fn proof(code: Option<String>, recovery: Option<String>) -> Result<SecondFactor, Error> {
    match (code, recovery) {
        (Some(c), None) => Ok(SecondFactor::Code(SecretString::from(c))),
        (None, Some(r)) => Ok(SecondFactor::RecoveryCode(SecretString::from(r))),
        _ => Err(Error::invalid(
            "code",
            "send exactly one of code and recovery_code",
        )),
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct MfaRequest {
    mfa_token: String,
    /// The 6-digit code from the authenticator app.
    code: Option<String>,
    /// One of the recovery codes (each works once).
    recovery_code: Option<String>,
}

impl fmt::Debug for MfaRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MfaRequest([redacted])")
    }
}

/// Completes a sign-in that answered `mfa_required`: the token from it and a code or a
/// recovery code. The token works once and for a few minutes.
#[utoipa::path(post, path = "/v1/auth/mfa", tag = "auth",
    request_body = MfaRequest,
    responses(
        (status = 200, description = "Signed in", body = super::auth::TokenResponse),
        (status = 400, description = "`invalid_token`: unknown, used or expired", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`invalid_credentials`: wrong code", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`too_many_attempts`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`: not exactly one of `code` and `recovery_code`", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn complete(
    State(state): State<AppState>,
    RequestMeta(meta): RequestMeta,
    ApiJson(req): ApiJson<MfaRequest>,
) -> Result<Response, ApiError> {
    let proof = proof(req.code, req.recovery_code)?;
    let issued = state
        .kernel
        .mfa()
        .complete(&SecretString::from(req.mfa_token), proof, &meta)
        .await
        .inspect_err(|_| gatehouse_core::telemetry::metrics::auth("second_factor", false))?;
    gatehouse_core::telemetry::metrics::auth("second_factor", true);
    // The mode asked for at the password step carries over.
    let mode = if issued.csrf_token.is_some() {
        SessionMode::Cookie
    } else {
        SessionMode::Bearer
    };
    Ok(session_response(issued, mode, StatusCode::OK))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct StepUpRequest {
    code: Option<String>,
    recovery_code: Option<String>,
    /// Only for an account without a second factor, where the server allows it.
    #[schema(format = Password)]
    password: Option<String>,
}

impl fmt::Debug for StepUpRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StepUpRequest([redacted])")
    }
}

/// Proves a second factor again (or, for an account without one where allowed, the password)
/// and returns an access token whose step-up time is now: the permissions that need a recent
/// second factor work for the configured window.
#[utoipa::path(post, path = "/v1/auth/step-up", tag = "auth",
    security(("bearer" = [])),
    request_body = StepUpRequest,
    responses(
        (status = 200, description = "A fresh access token", body = super::auth::TokenResponse),
        (status = 401, description = "`invalid_credentials`", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`too_many_attempts`", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`conflict`: the account has no second factor and this server requires one for step-up", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`: both `code` and `recovery_code`, or no `password` for an account without a second factor", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn step_up(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<StepUpRequest>,
) -> Result<Response, ApiError> {
    let factor = match (req.code, req.recovery_code) {
        (None, None) => None,
        (c, r) => Some(proof(c, r)?),
    };
    let mode = if caller.carrier == Carrier::Cookie {
        SessionMode::Cookie
    } else {
        SessionMode::Bearer
    };
    let issued = state
        .kernel
        .mfa()
        .step_up(
            &caller.call,
            factor,
            req.password.map(SecretString::from),
            mode == SessionMode::Cookie,
        )
        .await?;
    Ok(session_response(issued, mode, StatusCode::OK))
}

/// What an authenticator app needs. Shown once; the factor is active only after confirmation.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Enrolment {
    /// The seed in base32.
    secret: String,
    otpauth_uri: String,
    /// The URI as a QR code (SVG).
    qr_svg: String,
}

impl fmt::Debug for Enrolment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Enrolment([redacted])")
    }
}

fn qr_svg(data: &str) -> Result<String, Error> {
    let code = qrcode::QrCode::new(data.as_bytes())
        .map_err(|e| Error::Internal(format!("QR code: {e}")))?;
    Ok(code
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(200, 200)
        .build())
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct EnrolRequest {
    /// The account's password, checked again: a session alone cannot add a factor.
    #[schema(format = Password)]
    password: String,
}

impl fmt::Debug for EnrolRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EnrolRequest([redacted])")
    }
}

/// Starts TOTP enrolment (replacing an unconfirmed one). Needs the password again.
#[utoipa::path(post, path = "/v1/me/mfa/totp", tag = "me",
    security(("bearer" = [])),
    request_body = EnrolRequest,
    responses(
        (status = 401, description = "`invalid_credentials`: wrong password", body = Problem, content_type = "application/problem+json"),
        (status = 201, description = "Scan, then confirm with a code", body = Enrolment),
        (status = 409, description = "A factor is already active", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`too_many_attempts`: password checks for this account are locked after failures", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn enrol(
    State(state): State<AppState>,
    caller: EnrolmentCaller,
    ApiJson(req): ApiJson<EnrolRequest>,
) -> Result<Response, ApiError> {
    let started = state
        .kernel
        .mfa()
        .start_totp_enrolment(&caller.call, &SecretString::from(req.password))
        .await?;
    let body = Enrolment {
        secret: started.secret.expose().to_owned(),
        qr_svg: qr_svg(started.otpauth_uri.expose())?,
        otpauth_uri: started.otpauth_uri.expose().to_owned(),
    };
    Ok(no_store((StatusCode::CREATED, Json(body)).into_response()))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ConfirmRequest {
    code: String,
}

impl fmt::Debug for ConfirmRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ConfirmRequest([redacted])")
    }
}

/// Ten single-use recovery codes, shown once. Keep them somewhere safe.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct RecoveryCodes {
    recovery_codes: Vec<String>,
}

impl fmt::Debug for RecoveryCodes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RecoveryCodes([redacted])")
    }
}

/// Activates the factor with a first code from the app.
#[utoipa::path(post, path = "/v1/me/mfa/totp/confirm", tag = "me",
    security(("bearer" = [])),
    request_body = ConfirmRequest,
    responses(
        (status = 200, description = "Active; the recovery codes", body = RecoveryCodes),
        (status = 401, description = "`invalid_credentials`: wrong code", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "No enrolment is waiting", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`too_many_attempts`: second-factor checks for this account are locked after failures; retry after `Retry-After` seconds", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn confirm(
    State(state): State<AppState>,
    caller: EnrolmentCaller,
    ApiJson(req): ApiJson<ConfirmRequest>,
) -> Result<Response, ApiError> {
    let codes = state
        .kernel
        .mfa()
        .confirm_totp_enrolment(&caller.call, &SecretString::from(req.code))
        .await?;
    let body = RecoveryCodes {
        recovery_codes: codes.iter().map(|c| c.expose().to_owned()).collect(),
    };
    Ok(no_store((StatusCode::OK, Json(body)).into_response()))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct DisableRequest {
    code: Option<String>,
    recovery_code: Option<String>,
}

impl fmt::Debug for DisableRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DisableRequest([redacted])")
    }
}

/// Removes the factor and its recovery codes. Needs a fresh code (or a recovery code) now.
#[utoipa::path(delete, path = "/v1/me/mfa/totp", tag = "me",
    security(("bearer" = [])),
    request_body = DisableRequest,
    responses(
        (status = 204, description = "Removed"),
        (status = 401, description = "`invalid_credentials`: wrong code", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`: not exactly one of `code` and `recovery_code`", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`too_many_attempts`: second-factor checks for this account are locked after failures; retry after `Retry-After` seconds", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn disable(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<DisableRequest>,
) -> Result<StatusCode, ApiError> {
    let proof = proof(req.code, req.recovery_code)?;
    state.kernel.mfa().disable_totp(&caller.call, proof).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RegenerateRequest {
    /// A current code from the authenticator app.
    code: Option<String>,
    /// Or one of the current recovery codes (spent by this request).
    recovery_code: Option<String>,
}

impl fmt::Debug for RegenerateRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RegenerateRequest([redacted])")
    }
}

/// Replaces the recovery codes with ten new ones, shown once; the old ones stop working. Needs a
/// fresh code (or a recovery code) now.
#[utoipa::path(post, path = "/v1/me/mfa/recovery-codes", tag = "me",
    security(("bearer" = [])),
    request_body = RegenerateRequest,
    responses(
        (status = 200, description = "The new recovery codes", body = RecoveryCodes),
        (status = 401, description = "`invalid_credentials`: wrong code, or no second factor is active", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`: not exactly one of `code` and `recovery_code`", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`too_many_attempts`: second-factor checks for this account are locked after failures; retry after `Retry-After` seconds", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn regenerate_recovery_codes(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<RegenerateRequest>,
) -> Result<Response, ApiError> {
    let proof = proof(req.code, req.recovery_code)?;
    let codes = state
        .kernel
        .mfa()
        .regenerate_recovery_codes(&caller.call, proof)
        .await?;
    let body = RecoveryCodes {
        recovery_codes: codes.iter().map(|c| c.expose().to_owned()).collect(),
    };
    Ok(no_store((StatusCode::OK, Json(body)).into_response()))
}
