//! Sign-in through a provider (issue 24): `POST /v1/auth/sso/{target}/start` (an organisation's
//! id, an email domain it verified, or a platform provider's name) answers the provider's
//! authorization URL; the provider sends the person back to that provider's own callback,
//! `/v1/auth/sso/{org-id or provider}/callback` (one per provider: RFC 9700 4.4), whose state
//! must be bound to it. Neither takes a credential; the completion takes the start's proof
//! (`gatehouse_core::sso::FlowMode`), so holding the callback's URL is not enough:
//!
//! - **cookie mode**: the start sets `__Host-gatehouse_sso`; `GET .../callback` completes only in
//!   the browser holding it and sets the session's cookies there (no login CSRF, no completion by
//!   whoever sees the URL);
//! - **bearer mode** (the default): the start answers a one-time `flow_secret`; the provider's
//!   redirect to `GET .../callback` spends nothing and (with `sso.return_url`) hands `state`,
//!   `code` and `iss` to the product's page in the URL fragment, which posts them with the
//!   secret to `POST .../callback`, answered as `POST /v1/auth/login` is.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use gatehouse_core::identity::LoginOutcome;
use gatehouse_core::sso::{Callback, FlowMode, SignInTarget};
use gatehouse_crypto::SecretString;
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

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct StartSignIn {
    /// `cookie`: the callback sets the session's cookies, in this browser only. `bearer`: the
    /// answer carries a `flow_secret` the completion must present.
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
    /// Bearer mode only: keep it (never in a URL) and post it with the provider's answer to
    /// `POST /v1/auth/sso/{target}/callback`; nobody completes this sign-in without it.
    #[serde(skip_serializing_if = "Option::is_none")]
    flow_secret: Option<String>,
}

/// Starts a sign-in through a provider: an organisation's (by its id, or an email domain it
/// verified) or a platform provider (social sign-in).
#[utoipa::path(post, path = "/v1/auth/sso/{target}/start", tag = "sso",
    params(("target" = String, Path, max_length = 253, description = "An organisation's id, an email domain an organisation verified, or the name of a platform provider (`sso.social_providers`)")),
    request_body = StartSignIn,
    responses(
        (status = 200, description = "Where to send the person", body = SignInStarted),
        (status = 404, description = "`not_found`: no single sign-on there (no such organisation, provider or verified domain)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`: the target is none of the three, or bearer mode without `sso.return_url` (nowhere to hand the provider's answer)", body = Problem, content_type = "application/problem+json"),
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
    let sso = state.kernel.sso();
    if mode == SessionMode::Bearer && !sso.hands_off() {
        return Err(gatehouse_core::Error::invalid(
            "session_mode",
            "bearer mode needs sso.return_url (the product's page the callback hands the \
             provider's answer to); start in cookie mode, or set sso.return_url",
        )
        .into());
    }
    let started = sso.start(target, &meta).await?;
    let flow_mode = match mode {
        SessionMode::Cookie => FlowMode::Cookie,
        SessionMode::Bearer => FlowMode::Bearer,
    };
    let proof = sso.flow_proof(&started.state, flow_mode)?;
    let (cookie_proof, flow_secret) = match flow_mode {
        FlowMode::Cookie => (Some(proof), None),
        FlowMode::Bearer => (None, Some(proof)),
    };
    let mut res = Json(SignInStarted {
        authorization_url: started.authorization_url,
        expires_at: started.expires_at,
        flow_secret,
    })
    .into_response();
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Some(proof) = cookie_proof {
        set_cookie(&mut res, SSO_COOKIE, &proof, SSO_COOKIE_SECS, true);
    }
    Ok(res)
}

/// What the provider sends back; other parameters are ignored.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct CallbackQuery {
    /// The state Gatehouse sent.
    #[param(max_length = 384)]
    state: String,
    /// The authorization code (absent when the provider answers an error).
    code: Option<String>,
    /// The provider's OAuth error code instead of a code.
    error: Option<String>,
    /// The provider's issuer (RFC 9207): exactly the expected one; required when the provider's
    /// discovery advertises `authorization_response_iss_parameter_supported`.
    iss: Option<String>,
}

impl std::fmt::Debug for CallbackQuery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallbackQuery")
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}

/// The provider's redirect back. In the browser that started a cookie-mode sign-in (its
/// `__Host-gatehouse_sso` cookie): spends the state (before anything else), redeems the code,
/// verifies the ID token and signs the person in as `POST /v1/auth/login` does, the session in
/// cookies. Without that cookie (none, or one of another sign-in) nothing is spent: with
/// `sso.return_url` the browser goes there with the provider's answer in the fragment (a
/// bearer-mode sign-in's page posts it with its `flow_secret`), else the answer is a refusal.
#[utoipa::path(get, path = "/v1/auth/sso/{target}/callback", tag = "sso",
    params(
        ("target" = String, Path, max_length = 253, description = "The organisation's id or the platform provider's name the sign-in was started for"),
        CallbackQuery,
    ),
    responses(
        (status = 200, description = "Signed in (the session in cookies), or (`mfa_required`) the second step is next", body = super::auth::LoginResponse),
        (status = 303, description = "With `sso.return_url`: there once signed in (the session in cookies), with `?error={code}` when refused, or with `#mfa_token=...&expires_in=...` when the second step is next; without the start's cookie, there with `#state=...&code=...&iss=...` (or `error`), nothing spent"),
        (status = 400, description = "`oauth_state_invalid`: a state that is not Gatehouse's, expired, already used, not a sign-in's, or started for another provider; nothing was sent to the provider", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`sso_refused`: this browser did not start the sign-in (nothing spent); the provider answered an error or no code; the ID token is for another client, names another issuer, is expired, carries another nonce or is not signed by the provider's keys; the answer names another issuer; the address is unverified or outside the organisation's verified domains, or the account may not be linked by its address (nothing linked, made or joined). `account_disabled`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`: the target is not an organisation's id or a provider's name", body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "`oauth_provider_error`: the provider refused the code (another client's, used, expired) or answered outside the protocol", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn callback(
    State(state): State<AppState>,
    RequestMeta(meta): RequestMeta,
    Path(target): Path<String>,
    headers: HeaderMap,
    Query(q): Query<CallbackQuery>,
) -> Result<Response, ApiError> {
    let target = SignInTarget::parse(&target)?;
    let sso = state.kernel.sso();
    // Only the cookie of this very state's cookie-mode start completes it here. A cookie that
    // proves another state (left by an abandoned cookie-mode start, or a newer one) is treated as
    // no cookie: the answer is handed to the product's page as for a bearer-mode sign-in (its
    // flow_secret completes it), nothing spent, and the cookie is left to its own sign-in.
    let started_here = match cookie(&headers, SSO_COOKIE) {
        Some(proof) => {
            sso.flow_proof_verifies(&q.state, FlowMode::Cookie, proof)
                .await
        }
        None => false,
    };
    if !started_here {
        let answer = [
            ("state", Some(q.state.as_str())),
            ("code", q.code.as_deref()),
            ("iss", q.iss.as_deref()),
            ("error", q.error.as_deref()),
        ];
        return match sso.handoff_location(&answer) {
            Some(back) => Ok(Redirect::to(&back).into_response()),
            None => Err(gatehouse_core::Error::SsoRefused(
                "this browser did not start this sign-in: a sign-in started in bearer mode \
                 completes with POST to this callback and its flow_secret; one started in \
                 cookie mode, only in the browser that started it (start again)",
            )
            .into()),
        };
    }
    let outcome = sso
        .complete(
            Callback {
                target,
                state: q.state,
                code: q.code.map(SecretString::from),
                error: q.error,
                iss: q.iss,
            },
            true,
            &meta,
        )
        .await;
    gatehouse_core::telemetry::metrics::auth("sso", outcome.is_ok());
    let back = sso.return_location(&outcome);
    let signed_in = matches!(outcome, Ok(LoginOutcome::Session(_)));
    let mut res = match (back, outcome) {
        (Some(back), Ok(LoginOutcome::Session(issued))) => {
            // The cookies, and the browser sent on to the product.
            let mut res =
                super::auth::session_response(issued, SessionMode::Cookie, StatusCode::OK);
            *res.status_mut() = StatusCode::SEE_OTHER;
            if let Ok(v) = HeaderValue::from_str(&back) {
                res.headers_mut().insert(header::LOCATION, v);
            }
            res
        }
        (Some(back), _) => Redirect::to(&back).into_response(),
        (None, outcome) => outcome_response(outcome?, SessionMode::Cookie),
    };
    if signed_in {
        set_cookie(&mut res, SSO_COOKIE, "", 0, true);
    }
    Ok(res)
}

/// What a bearer-mode sign-in's page posts: the provider's answer and the start's secret.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CompleteSignIn {
    /// The state from the provider's redirect.
    #[schema(max_length = 384)]
    state: String,
    /// The authorization code (absent when the provider answered an error).
    code: Option<String>,
    /// The provider's OAuth error code instead of a code.
    error: Option<String>,
    /// The provider's issuer (RFC 9207): exactly the expected one; required when the provider's
    /// discovery advertises `authorization_response_iss_parameter_supported`.
    iss: Option<String>,
    /// The `flow_secret` the bearer-mode start answered.
    #[schema(max_length = 128)]
    flow_secret: String,
}

impl std::fmt::Debug for CompleteSignIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompleteSignIn")
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}

/// Completes a sign-in started in bearer mode: with the start's `flow_secret` (else nothing is
/// spent), as the cookie-mode callback does, the tokens in the body.
#[utoipa::path(post, path = "/v1/auth/sso/{target}/callback", tag = "sso",
    params(("target" = String, Path, max_length = 253, description = "The organisation's id or the platform provider's name the sign-in was started for")),
    request_body = CompleteSignIn,
    responses(
        (status = 200, description = "Signed in, or (`mfa_required`) the second step is next", body = super::auth::LoginResponse),
        (status = 400, description = "`oauth_state_invalid`: a state that is not Gatehouse's, expired, already used, not a sign-in's, or started for another provider; nothing was sent to the provider", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`sso_refused`: the flow_secret is not this sign-in's bearer-mode one (nothing spent); otherwise as the `GET` callback. `account_disabled`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`: the target is not an organisation's id or a provider's name", body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "`oauth_provider_error`: the provider refused the code (another client's, used, expired) or answered outside the protocol", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn complete(
    State(state): State<AppState>,
    RequestMeta(meta): RequestMeta,
    Path(target): Path<String>,
    ApiJson(body): ApiJson<CompleteSignIn>,
) -> Result<Response, ApiError> {
    let target = SignInTarget::parse(&target)?;
    let sso = state.kernel.sso();
    if body.state.len() > gatehouse_core::oauth::MAX_STATE
        || !sso
            .flow_proof_verifies(&body.state, FlowMode::Bearer, &body.flow_secret)
            .await
    {
        return Err(gatehouse_core::Error::SsoRefused(
            "the flow_secret is not the one this sign-in was started with",
        )
        .into());
    }
    let outcome = sso
        .complete(
            Callback {
                target,
                state: body.state,
                code: body.code.map(SecretString::from),
                error: body.error,
                iss: body.iss,
            },
            false,
            &meta,
        )
        .await;
    gatehouse_core::telemetry::metrics::auth("sso", outcome.is_ok());
    Ok(outcome_response(outcome?, SessionMode::Bearer))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct LinkStarted {
    /// Send the person here (the organisation's provider, with PKCE S256, `state` and `nonce`).
    authorization_url: String,
    /// The state stops working then (ten minutes), and after one use.
    #[serde(with = "time::serde::rfc3339")]
    expires_at: OffsetDateTime,
}

/// Starts linking the caller's own account to their identity at the organisation's provider:
/// how an owner, an admin or a member of another organisation (never linked by address) comes
/// to sign in through it. The provider sends the person back to the organisation's callback,
/// which (with `sso.return_url`) hands its answer to the product's page; the page posts it to
/// `POST /v1/me/sso/link/complete` with the person's session.
#[utoipa::path(post, path = "/v1/me/sso/link", tag = "sso", security(("bearer" = [])),
    params(crate::auth::OrgScoped),
    responses(
        (status = 200, description = "Where to send the person", body = LinkStarted),
        (status = 403, description = "`forbidden`: an API key or an impersonation; `step_up_required`: no second factor (or, without one, password) checked within the step-up window", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: the organisation has no single sign-on", body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "`oauth_provider_error`: the provider's discovery document could not be read", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn link_start(
    State(state): State<AppState>,
    crate::auth::OrgCaller(call): crate::auth::OrgCaller,
) -> Result<Response, ApiError> {
    let started = state.kernel.sso().start_link(&call).await?;
    let mut res = Json(LinkStarted {
        authorization_url: started.authorization_url,
        expires_at: started.expires_at,
    })
    .into_response();
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(res)
}

/// The provider's answer to a link, as the product's page received it.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CompleteLink {
    #[schema(max_length = 384)]
    state: String,
    code: Option<String>,
    error: Option<String>,
    iss: Option<String>,
}

impl std::fmt::Debug for CompleteLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompleteLink")
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}

/// Completes a link the caller started: the state must be theirs (spent before anything else),
/// the provider's answer is checked as a sign-in's, and its issuer and subject are linked to the
/// caller's account. Audited.
#[utoipa::path(post, path = "/v1/me/sso/link/complete", tag = "sso", security(("bearer" = [])),
    params(crate::auth::OrgScoped), request_body = CompleteLink,
    responses(
        (status = 204, description = "Linked (or already linked to this account)"),
        (status = 400, description = "`oauth_state_invalid`: not a state the caller started here, expired or already used; nothing was sent to the provider", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: an API key or an impersonation; `step_up_required`: no recent second factor (or password); `sso_refused`: the provider answered an error or no code, or its ID token is refused", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`conflict`: that identity is linked to another account", body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "`oauth_provider_error`: the provider refused the code or answered outside the protocol", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn link_complete(
    State(state): State<AppState>,
    crate::auth::OrgCaller(call): crate::auth::OrgCaller,
    ApiJson(body): ApiJson<CompleteLink>,
) -> Result<StatusCode, ApiError> {
    let org = call.scope.org_id();
    state
        .kernel
        .sso()
        .complete_link(
            &call,
            Callback {
                target: SignInTarget::Organization(org),
                state: body.state,
                code: body.code.map(SecretString::from),
                error: body.error,
                iss: body.iss,
            },
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
