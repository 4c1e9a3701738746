//! Sign-in through a provider (issue 24): `POST /v1/auth/sso/{target}/start` (an organisation's
//! id, an email domain it verified, or a platform provider's name) answers the provider's
//! authorization URL; the provider sends the person back to `GET /v1/auth/sso/callback`, which
//! answers as `POST /v1/auth/login` does. Neither takes a credential.
//!
//! In cookie mode the start also sets `__Host-gatehouse_sso`, the digest of the state, and the
//! callback issues cookies only to the browser holding it (so nobody can sign a browser into
//! their own account by sending it a callback: login CSRF). Without the cookie the callback
//! answers bearer tokens in its body; with a cookie for another state it refuses.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use base64::Engine as _;
use gatehouse_core::identity::LoginOutcome;
use gatehouse_core::sso::{Callback, SignInTarget};
use gatehouse_crypto::{SecretString, ct_eq, sha256};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::auth::cookie;
use crate::extract::RequestMeta;
use crate::json::ApiJson;
use crate::problem::{ApiError, Problem};
use crate::routes::auth::{SessionMode, outcome_response, set_cookie};
use crate::state::AppState;

/// Binds a browser sign-in's state to the browser that started it.
const SSO_COOKIE: &str = "__Host-gatehouse_sso";
/// The state's lifetime, which the cookie's matches.
const SSO_COOKIE_SECS: u64 = 600;

fn state_digest(state: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha256(&[state.as_bytes()]))
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct StartSignIn {
    /// `cookie`: the callback sets the session's cookies, in this browser only.
    #[serde(default)]
    session_mode: SessionMode,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct SignInStarted {
    /// Send the person here (the provider's authorization endpoint, with PKCE S256, `state`
    /// and `nonce`).
    authorization_url: String,
    /// The state stops working then (ten minutes), and after one use.
    #[serde(with = "time::serde::rfc3339")]
    expires_at: OffsetDateTime,
}

/// Starts a sign-in through a provider: an organisation's (by its id, or an email domain it
/// verified) or a platform provider (social sign-in).
#[utoipa::path(post, path = "/v1/auth/sso/{target}/start", tag = "sso",
    params(("target" = String, Path, max_length = 253, description = "An organisation's id, an email domain an organisation verified, or the name of a platform provider (`sso.social_providers`)")),
    request_body = StartSignIn,
    responses(
        (status = 200, description = "Where to send the person", body = SignInStarted),
        (status = 404, description = "`not_found`: no single sign-on there (no such organisation, provider or verified domain)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`: the target is none of the three", body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "`oauth_provider_error`: the provider's discovery document could not be read", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn start(
    State(state): State<AppState>,
    RequestMeta(meta): RequestMeta,
    Path(target): Path<String>,
    ApiJson(body): ApiJson<StartSignIn>,
) -> Result<Response, ApiError> {
    let mode = body.session_mode;
    let target = SignInTarget::parse(&target)?;
    let started = state.kernel.sso().start(target, &meta).await?;
    let mut res = Json(SignInStarted {
        authorization_url: started.authorization_url,
        expires_at: started.expires_at,
    })
    .into_response();
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if mode == SessionMode::Cookie {
        set_cookie(
            &mut res,
            SSO_COOKIE,
            &state_digest(&started.state),
            SSO_COOKIE_SECS,
            true,
        );
    }
    Ok(res)
}

/// What the provider sends back; other parameters are ignored.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct CallbackQuery {
    /// The state Gatehouse sent.
    #[param(max_length = 256)]
    state: String,
    /// The authorization code (absent when the provider answers an error).
    code: Option<String>,
    /// The provider's OAuth error code instead of a code.
    error: Option<String>,
    /// The provider's issuer (RFC 9207): when sent, it must be the expected one.
    iss: Option<String>,
}

impl std::fmt::Debug for CallbackQuery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallbackQuery")
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}

/// The provider's redirect back: spends the state (before anything else), redeems the code,
/// verifies the ID token and signs the person in as `POST /v1/auth/login` does (tokens, or
/// `mfa_required` for an account with a second factor).
#[utoipa::path(get, path = "/v1/auth/sso/callback", tag = "sso",
    params(CallbackQuery),
    responses(
        (status = 200, description = "Signed in, or (`mfa_required`) the second step is next", body = super::auth::LoginResponse),
        (status = 303, description = "A browser sign-in with `sso.return_url`: there once signed in (the session in cookies), with `?error={code}` when refused, or with `#mfa_token=...&expires_in=...` when the second step is next"),
        (status = 400, description = "`oauth_state_invalid`: a state that is not Gatehouse's, expired, already used, or not a sign-in's; nothing was sent to the provider", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`sso_refused`: the provider answered an error or no code; the ID token is for another client, names another issuer, is expired, carries another nonce or is not signed by the provider's keys; the answer names another issuer; the address is unverified or outside the organisation's verified domains (nothing linked, made or joined); this browser did not start the sign-in. `account_disabled`", body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "`oauth_provider_error`: the provider refused the code (another client's, used, expired) or answered outside the protocol", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn callback(
    State(state): State<AppState>,
    RequestMeta(meta): RequestMeta,
    headers: HeaderMap,
    Query(q): Query<CallbackQuery>,
) -> Result<Response, ApiError> {
    let browser = match cookie(&headers, SSO_COOKIE) {
        None => false,
        Some(bound) if ct_eq(bound.as_bytes(), state_digest(&q.state).as_bytes()) => true,
        Some(_) => {
            return Err(gatehouse_core::Error::SsoRefused(
                "this browser did not start this sign-in: start again",
            )
            .into());
        }
    };
    let outcome = state
        .kernel
        .sso()
        .complete(
            Callback {
                state: q.state,
                code: q.code.map(SecretString::from),
                error: q.error,
                iss: q.iss,
            },
            browser,
            &meta,
        )
        .await;
    gatehouse_core::telemetry::metrics::auth("sso", outcome.is_ok());
    let back = browser
        .then(|| state.kernel.sso().return_location(&outcome))
        .flatten();
    let mode = if browser {
        SessionMode::Cookie
    } else {
        SessionMode::Bearer
    };
    let signed_in = matches!(outcome, Ok(LoginOutcome::Session(_)));
    let mut res = match (back, outcome) {
        (Some(back), Ok(LoginOutcome::Session(issued))) => {
            // The cookies, and the browser sent on to the product.
            let mut res = super::auth::session_response(issued, mode, StatusCode::OK);
            *res.status_mut() = StatusCode::SEE_OTHER;
            if let Ok(v) = HeaderValue::from_str(&back) {
                res.headers_mut().insert(header::LOCATION, v);
            }
            res
        }
        (Some(back), _) => Redirect::to(&back).into_response(),
        (None, outcome) => outcome_response(outcome?, mode),
    };
    if browser && signed_in {
        set_cookie(&mut res, SSO_COOKIE, "", 0, true);
    }
    Ok(res)
}
