//! Connectors (B3): `/v1/connectors/...` for a person's accounts at OAuth providers and the
//! organisation's own providers, the callback providers send browsers back to, and
//! `POST /internal/v1/connectors/{id}/token` for the deployment's services. No `/v1` answer
//! carries a token or a client secret.

use std::fmt;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use gatehouse_core::connectors::{Callback, ConnectorView, NewProvider, ProviderView};
use gatehouse_core::oauth::FlowMode;
use gatehouse_core::page::PageRequest;
use gatehouse_crypto::SecretString;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::auth::{Carrier, MaybeOrgCaller, OnBehalfOf, OrgCaller, OrgCallerVia, OrgScoped};
use crate::extract::RequestMeta;
use crate::json::{ApiJson, Created};
use crate::problem::{ApiError, Problem};
use crate::routes::organization::PageQuery;
use crate::state::AppState;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Connector {
    id: Uuid,
    /// The provider's stable key: a platform provider's name, an organisation provider's id.
    provider: String,
    user_id: Uuid,
    /// `active`, or `needs_reauth` once the provider refused the refresh token.
    status: String,
    scopes: Vec<String>,
    /// When the current access token expires, when the provider said.
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    expires_at: Option<OffsetDateTime>,
    /// Whether a refresh token is held (the connector is kept fresh).
    refreshable: bool,
    /// The last refresh failure, in words.
    last_error: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    updated_at: OffsetDateTime,
}

impl From<ConnectorView> for Connector {
    fn from(c: ConnectorView) -> Self {
        Self {
            id: c.id,
            provider: c.provider,
            user_id: c.user_id,
            status: c.status.as_str().to_owned(),
            scopes: c.scopes,
            expires_at: c.expires_at,
            refreshable: c.refreshable,
            last_error: c.last_error,
            created_at: c.created_at,
            updated_at: c.updated_at,
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct ConnectorPage {
    items: Vec<Connector>,
    next_cursor: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct OAuthProvider {
    name: String,
    /// Its stable key: the name of a platform provider, the id of an organisation's. Its
    /// connectors name it by this, and its callback's path carries it.
    key: String,
    /// The redirect URI to register at the provider: `{oauth.public_url}/v1/connectors/{key}/callback`
    /// (absent while `oauth.public_url` is not configured).
    redirect_uri: Option<String>,
    /// `platform` (configuration) or `organization`.
    source: String,
    issuer: Option<String>,
    authorization_url: Option<String>,
    token_url: Option<String>,
    revocation_url: Option<String>,
    userinfo_url: Option<String>,
    client_id: String,
    client_auth: String,
    /// Whether a client secret is held (it is never shown).
    has_client_secret: bool,
    scopes: Vec<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    created_at: Option<OffsetDateTime>,
}

impl From<ProviderView> for OAuthProvider {
    fn from(p: ProviderView) -> Self {
        Self {
            name: p.name,
            key: p.key,
            redirect_uri: p.redirect_uri,
            source: p.source.as_str().to_owned(),
            issuer: p.issuer,
            authorization_url: p.authorization_url,
            token_url: p.token_url,
            revocation_url: p.revocation_url,
            userinfo_url: p.userinfo_url,
            client_id: p.client_id,
            client_auth: p.client_auth.to_owned(),
            has_client_secret: p.has_client_secret,
            scopes: p.scopes,
            created_at: p.created_at,
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct ProviderList {
    items: Vec<OAuthProvider>,
}

/// The providers the organisation's people can connect to: the platform's, then its own.
/// Needs `connectors.use`.
#[utoipa::path(get, path = "/v1/connectors/providers", tag = "connectors", security(("bearer" = [])),
    params(OrgScoped),
    responses(
        (status = 200, description = "Every provider (never a client secret)", body = ProviderList),
        (status = 403, description = "`forbidden`", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn providers(
    State(state): State<AppState>,
    OrgCaller(call): OrgCaller,
) -> Result<Json<ProviderList>, ApiError> {
    let found = state.kernel.connectors().providers(&call).await?;
    Ok(Json(ProviderList {
        items: found.into_iter().map(OAuthProvider::from).collect(),
    }))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateProvider {
    /// 1 to 64 of `a-z`, `0-9`, `-`, `_`, not shaped as a UUID; not a platform provider's.
    #[schema(max_length = 64)]
    name: String,
    /// OpenID Connect: discovery at `{issuer}/.well-known/openid-configuration`. Or give
    /// `authorization_url` and `token_url`, with `issuer` too when the provider names itself
    /// (compared exactly with the `iss` it sends).
    issuer: Option<String>,
    authorization_url: Option<String>,
    token_url: Option<String>,
    /// RFC 7009 revocation, used at disconnect.
    revocation_url: Option<String>,
    userinfo_url: Option<String>,
    client_id: String,
    /// Sealed with the organisation's data key; never returned.
    client_secret: Option<String>,
    /// `client_secret_basic` (the default) or `client_secret_post`.
    client_auth: Option<String>,
    /// The scopes asked for; `offline_access` (or the provider's own) for a refresh token.
    #[serde(default)]
    scopes: Vec<String>,
}

impl fmt::Debug for CreateProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CreateProvider")
            .field("name", &self.name)
            .field("client_secret", &"[redacted]")
            .finish_non_exhaustive()
    }
}

/// Adds a provider for the organisation. Needs `connectors.manage`.
#[utoipa::path(post, path = "/v1/connectors/providers", tag = "connectors", security(("bearer" = [])),
    params(OrgScoped), request_body = CreateProvider,
    responses(
        (status = 201, description = "The provider (its secret is never shown)", body = OAuthProvider),
        (status = 403, description = "`forbidden`: the caller lacks `connectors.manage`", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`conflict`: the name is taken here or by the platform", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`: a name, URL (https, public addresses), client id or scope fails its rule", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn create_provider(
    State(state): State<AppState>,
    OrgCaller(call): OrgCaller,
    ApiJson(req): ApiJson<CreateProvider>,
) -> Result<Created<OAuthProvider>, ApiError> {
    let made = state
        .kernel
        .connectors()
        .add_provider(
            &call,
            NewProvider {
                name: req.name,
                issuer: req.issuer,
                authorization_url: req.authorization_url,
                token_url: req.token_url,
                revocation_url: req.revocation_url,
                userinfo_url: req.userinfo_url,
                client_id: req.client_id,
                client_secret: req.client_secret.map(SecretString::new),
                client_auth: req.client_auth,
                scopes: req.scopes,
            },
        )
        .await?;
    Ok(Created(made.into()))
}

/// Removes one of the organisation's providers and its secret, once no connector uses it. Needs
/// `connectors.manage`.
#[utoipa::path(delete, path = "/v1/connectors/providers/{name}", tag = "connectors", security(("bearer" = [])),
    params(OrgScoped, ("name" = String, Path, description = "The provider")),
    responses(
        (status = 204, description = "Removed"),
        (status = 404, description = "No such provider of the organisation's", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`conflict`: connectors still use it (disconnecting them revokes their tokens at the provider)", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn delete_provider(
    State(state): State<AppState>,
    OrgCaller(call): OrgCaller,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    state
        .kernel
        .connectors()
        .delete_provider(&call, &name)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Started {
    /// Send the person's browser here.
    authorization_url: String,
    /// The state inside it is refused after this.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    state_expires_at: OffsetDateTime,
}

/// Starts connecting the caller's account at a provider: the authorization URL, with PKCE (S256)
/// and a signed state bound to the caller, the organisation, the provider and the way the caller
/// came (cookie session or bearer token), valid 10 minutes and once. The callback must bring the
/// same person's credential the same way. Needs `connectors.use`.
#[utoipa::path(post, path = "/v1/connectors/{provider}/start", tag = "connectors", security(("bearer" = [])),
    params(OrgScoped, ("provider" = String, Path, description = "The provider's name")),
    responses(
        (status = 200, description = "Where to send the browser", body = Started),
        (status = 403, description = "`forbidden`; `wrong_audience` for an API key or an impersonation", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such provider", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`conflict`: `oauth.public_url` is not configured", body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "`oauth_provider_error`: the provider's discovery failed", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn start(
    State(state): State<AppState>,
    OrgCallerVia(call, carrier): OrgCallerVia,
    Path(provider): Path<String>,
) -> Result<Json<Started>, ApiError> {
    let a = state
        .kernel
        .connectors()
        .start(&call, &provider, mode_of(carrier))
        .await?;
    Ok(Json(Started {
        authorization_url: a.url.to_string(),
        state_expires_at: a.expires_at,
    }))
}

#[derive(Deserialize, utoipa::IntoParams)]
pub(crate) struct CallbackQuery {
    /// As Gatehouse sent it.
    state: Option<String>,
    code: Option<String>,
    /// The provider's refusal instead of a code.
    error: Option<String>,
    #[allow(dead_code)]
    error_description: Option<String>,
    /// RFC 9207: the issuer sending the browser back.
    iss: Option<String>,
}

impl fmt::Debug for CallbackQuery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CallbackQuery([redacted])")
    }
}

fn mode_of(carrier: Carrier) -> FlowMode {
    match carrier {
        Carrier::Cookie => FlowMode::Cookie,
        Carrier::Bearer => FlowMode::Bearer,
    }
}

/// Where a provider sends the browser back: register
/// `{oauth.public_url}/v1/connectors/{provider}/callback` at each provider (its `redirect_uri`
/// in the provider list; `{provider}` is its key: a platform provider's name, an organisation
/// provider's id), one per provider against mix-up (RFC 9700 4.4).
///
/// Needs the credential of the person who started the connection, the way they started it
/// (RFC 9700 4.7): without one it is refused with 401 before anything is spent, exchanged or
/// stored. A browser product (cookie sessions, `oauth.public_url` Gatehouse's own address)
/// needs nothing more: the browser brings its session cookie back. A product using bearer
/// tokens relays the callback: `oauth.public_url` is the product's own address, its page at
/// `/v1/connectors/{provider}/callback` receives `code`, `state` and `iss` from the provider and
/// calls this route with them and the person's token (`Authorization: Bearer`;
/// `x-organization-id` optional, the token's when sent). The state must be that person's and organisation's, for this
/// provider, and spent once, before the code goes to the provider; an `iss` (RFC 9207) must be
/// the provider's exactly, and is required when the provider advertises it.
///
/// With `oauth.connector_return_url`, a callback the browser itself brought (with its session
/// cookie, or with no credential at all) is sent there: `?connector={id}&status=connected`, or
/// `?error={code}` (`unauthenticated` when no credential came). A bearer relay always gets
/// JSON.
#[utoipa::path(get, path = "/v1/connectors/{provider}/callback", tag = "connectors",
    security(("bearer" = [])),
    params(("provider" = String, Path, description = "The provider's key"), CallbackQuery),
    responses(
        (status = 200, description = "Connected (tokens sealed, never shown)", body = Connector),
        (status = 303, description = "With `oauth.connector_return_url`, for a browser: back to the product"),
        (status = 400, description = "`oauth_state_invalid`: not signed by Gatehouse, expired (10 minutes), already used, for another provider, started in another mode (cookie or bearer), or another person's or organisation's; nothing reached the provider", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthenticated`: no credential of the person who started the connection, or one that is not valid; nothing was spent or exchanged", body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "`oauth_provider_error`: the provider refused the authorization or the code, answered outside the protocol, or its `iss` is another issuer's or missing where it sends one", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn callback(
    State(state): State<AppState>,
    Path(provider): Path<String>,
    MaybeOrgCaller(caller): MaybeOrgCaller,
    RequestMeta(request): RequestMeta,
    Query(q): Query<CallbackQuery>,
) -> Result<Response, ApiError> {
    let carrier = caller.as_ref().map(|(_, c)| *c);
    let done = state
        .kernel
        .connectors()
        .complete(
            &Callback {
                state: q.state.unwrap_or_default(),
                code: q.code,
                error: q.error,
                iss: q.iss,
            },
            &provider,
            caller
                .as_ref()
                .map(|(c, carrier)| (c.principal.as_ref(), mode_of(*carrier))),
            &request,
        )
        .await;
    // The browser came itself: it goes back to the product's page.
    if carrier != Some(Carrier::Bearer)
        && let Some(back) = state.kernel.connectors().return_location(done.as_ref())
    {
        return Ok(Redirect::to(&back).into_response());
    }
    let mut res = Json(Connector::from(done?)).into_response();
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(res)
}

/// The caller's own connectors, newest first. Needs `connectors.use`.
#[utoipa::path(get, path = "/v1/connectors", tag = "connectors", security(("bearer" = [])),
    params(OrgScoped, PageQuery),
    responses(
        (status = 200, description = "A page of connectors (never a token)", body = ConnectorPage),
        (status = 422, description = "`validation_failed`: a `limit` outside 1 to 200 or a malformed `cursor`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn list(
    State(state): State<AppState>,
    OrgCaller(call): OrgCaller,
    Query(q): Query<PageQuery>,
) -> Result<Json<ConnectorPage>, ApiError> {
    let page = PageRequest::parse(q.cursor.as_deref(), q.limit)?;
    let found = state.kernel.connectors().list(&call, page).await?;
    Ok(Json(ConnectorPage {
        items: found.items.into_iter().map(Connector::from).collect(),
        next_cursor: found.next_cursor,
    }))
}

/// One of the caller's connectors. Needs `connectors.use`.
#[utoipa::path(get, path = "/v1/connectors/{id}", tag = "connectors", security(("bearer" = [])),
    params(OrgScoped, ("id" = Uuid, Path, description = "The connector")),
    responses(
        (status = 200, description = "The connector (never a token)", body = Connector),
        (status = 404, description = "No such connector of the caller's", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn get(
    State(state): State<AppState>,
    OrgCaller(call): OrgCaller,
    Path(id): Path<Uuid>,
) -> Result<Json<Connector>, ApiError> {
    Ok(Json(state.kernel.connectors().get(&call, id).await?.into()))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Disconnected {
    /// Whether the provider confirmed the revocation of every token (RFC 7009); the tokens
    /// are erased here either way.
    revoked_at_provider: bool,
}

/// Disconnects: revokes the tokens at the provider and erases them. The owner may; so may
/// `connectors.manage`.
#[utoipa::path(delete, path = "/v1/connectors/{id}", tag = "connectors", security(("bearer" = [])),
    params(OrgScoped, ("id" = Uuid, Path, description = "The connector")),
    responses(
        (status = 200, description = "Disconnected", body = Disconnected),
        (status = 404, description = "No such connector the caller may disconnect", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn disconnect(
    State(state): State<AppState>,
    OrgCaller(call): OrgCaller,
    Path(id): Path<Uuid>,
) -> Result<Json<Disconnected>, ApiError> {
    let revoked_at_provider = state.kernel.connectors().disconnect(&call, id).await?;
    Ok(Json(Disconnected {
        revoked_at_provider,
    }))
}

/// A connector's access token, for a service.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct ConnectorToken {
    access_token: String,
    token_type: &'static str,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    expires_at: Option<OffsetDateTime>,
    scopes: Vec<String>,
    provider: String,
}

impl fmt::Debug for ConnectorToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ConnectorToken([redacted])")
    }
}

/// For the deployment's own services: a fresh access token of a connector, for the person whose
/// access token is in `x-gatehouse-on-behalf-of`, who owns it and holds `connectors.use`.
/// Audited as `connector.token_used` naming the service.
#[utoipa::path(post, path = "/internal/v1/connectors/{id}/token", tag = "internal",
    security(("service" = [])),
    params(
        ("id" = Uuid, Path),
        ("x-gatehouse-on-behalf-of" = String, Header, description = "The person's access token"),
        ("x-gatehouse-service" = Option<String>, Header, description = "The calling service's name"),
    ),
    responses(
        (status = 200, description = "The access token", body = ConnectorToken),
        (status = 401, description = "Service authentication or the person's token failed", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The person lacks `connectors.use`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such connector of the person's", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`connector_needs_reauth`: the provider refused the refresh token", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`dependency_unavailable`: the token expired and is not refreshed yet", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn token(
    State(state): State<AppState>,
    OnBehalfOf { call, person }: OnBehalfOf,
    Path(id): Path<Uuid>,
) -> Result<Response, ApiError> {
    let t = state
        .kernel
        .connectors()
        .hand_out(&call, &person, id)
        .await?;
    let mut res = crate::json::JsonOk(ConnectorToken {
        access_token: t.access_token.expose().to_owned(),
        token_type: "Bearer",
        expires_at: t.expires_at,
        scopes: t.scopes,
        provider: t.provider,
    })
    .into_response();
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(res)
}
