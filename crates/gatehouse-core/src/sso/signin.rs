//! Signing in through an organisation's provider or a platform provider: the authorization
//! request (PKCE, `nonce`, a `state` of purpose `sso` from the OAuth foundation) and the
//! callback, which spends the state before anything else, redeems the code, verifies the ID
//! token against the provider's keys (`crate::sso::id_token`), resolves the account
//! (`linking.rs`) and opens the session the way a password sign-in does (`Kernel::sign_in`).
//! Every refusal after the state is spent is recorded (`sso.sign_in_refused`, with why), and
//! none of them links, makes or admits anyone.

use crate::sso::id_token::{Expected as IdExpected, IdTokenClaims, IdTokenError};
use gatehouse_crypto::SecretString;
use serde_json::json;
use time::OffsetDateTime;
use url::Url;

use super::config::SECRET_FIELD;
use super::{ORG_PROVIDER, Sso};
use crate::audit::{self, Actor, AuditEvent, Outcome};
use crate::context::RequestContext;
use crate::error::Error;
use crate::identity::LoginOutcome;
use crate::identity::sessions::SignIn;
use crate::ids::OrgId;
use crate::keyring::{FieldRef, SealedKind};
use crate::oauth::provider::{ClientAuth, ClientCredentials, Endpoints, Provider};
use crate::oauth::{
    AuthorizationRequest, Binding, CodeGrant, Expected, FlowMode, STATE_TTL, StatePurpose,
};
use crate::scope::TenantScope;
use crate::store::{SignedInWith, SsoConfigRecord};

/// Where a provider sends people back (after `oauth.public_url`): one callback per provider, so
/// a redirect names the provider it comes from (RFC 9700 4.4.2), `{org}` an organisation's id or
/// a platform provider's name.
pub const CALLBACK_PATH: &str = "/v1/auth/sso/{target}/callback";
/// Clock skew tolerated on an ID token's times.
const LEEWAY_SECS: u64 = 60;
/// What an SSO session's device is called.
const DEVICE: &str = "single sign-on";

/// Whose sign-on a sign-in goes through: `/v1/auth/sso/{target}/start`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignInTarget {
    /// An organisation's own provider, by the organisation's id.
    Organization(OrgId),
    /// The provider of the organisation that verified this email domain.
    Domain(String),
    /// A platform provider from `[sso] social_providers`.
    Social(String),
}

impl SignInTarget {
    /// An organisation's id, else an email domain (it has a dot), else a provider's name.
    pub fn parse(segment: &str) -> Result<Self, Error> {
        if let Some(org) = OrgId::parse(segment) {
            return Ok(Self::Organization(org));
        }
        if segment.contains('.') {
            return super::domains::parse_domain(segment).map(Self::Domain);
        }
        if crate::oauth::provider::valid_name(segment) {
            return Ok(Self::Social(segment.to_owned()));
        }
        Err(Error::invalid(
            "target",
            "is neither an organisation's id, an email domain nor a provider's name",
        ))
    }
}

/// The redirect URI of the provider a state is bound to: its organisation's id, else the
/// platform provider's name.
pub(super) fn callback_path(org: Option<OrgId>, provider: &str) -> String {
    let segment = org.map_or_else(|| provider.to_owned(), |o| o.to_string());
    CALLBACK_PATH.replace("{target}", &segment)
}

/// What a callback's path names: an organisation's own provider or a platform provider (an
/// email domain is a way to start, never a callback).
impl SignInTarget {
    fn expected(&self) -> Result<Expected<'_>, Error> {
        let (org, provider) = match self {
            Self::Organization(org) => (Some(*org), ORG_PROVIDER),
            Self::Social(name) => (None, name.as_str()),
            Self::Domain(_) => {
                return Err(Error::invalid(
                    "target",
                    "a callback names an organisation's id or a provider's name",
                ));
            }
        };
        Ok(Expected {
            purpose: StatePurpose::Sso,
            // The session mode is bound by the start's flow proof (`sso::flow`), not the state.
            mode: FlowMode::Unbound,
            org,
            user: None,
            provider: Some(provider),
        })
    }
}

/// An authorization to send the person to.
#[derive(Debug, Clone)]
pub struct StartedSignIn {
    pub authorization_url: String,
    /// The state (also in the URL): a browser sign-in binds it with a cookie.
    pub state: String,
    pub expires_at: OffsetDateTime,
}

/// What the provider sent back (RFC 6749 4.1.2, RFC 9207's `iss`).
#[derive(Debug)]
pub struct Callback {
    /// The provider the callback's path names; the state must be bound to it.
    pub target: SignInTarget,
    pub state: String,
    pub code: Option<SecretString>,
    /// An OAuth error the provider answered instead of a code.
    pub error: Option<String>,
    pub iss: Option<String>,
}

/// The provider a sign-in goes through, and its organisation's configuration (none for a
/// platform provider).
pub(super) struct Resolved {
    pub(super) provider: Provider,
    pub(super) config: Option<SsoConfigRecord>,
}

/// An ID token refusal in words (the name of what failed is in the audit event).
fn id_token_refusal(e: IdTokenError) -> Error {
    Error::SsoRefused(match e {
        IdTokenError::Audience | IdTokenError::AuthorizedParty => {
            "the provider's ID token is for another client"
        }
        IdTokenError::Issuer => "the provider's ID token names another issuer",
        IdTokenError::Nonce => "the provider's ID token is not for this sign-in (nonce)",
        IdTokenError::Expired | IdTokenError::IssuedAt => {
            "the provider's ID token is expired or not yet valid"
        }
        IdTokenError::Algorithm | IdTokenError::UnknownKey | IdTokenError::Signature => {
            "the provider's ID token is not signed by the provider's keys"
        }
        IdTokenError::Malformed | IdTokenError::Claims => "the provider's ID token is malformed",
    })
}

/// A provider's failure as the sign-in tells it: its OAuth error code, never its
/// `error_description` (the provider's free text, which may be anything, reaches no problem
/// detail, audit event or log line on this path).
pub(super) fn provider_failure(e: crate::oauth::ProviderError) -> Error {
    match e {
        crate::oauth::ProviderError::Refused { error, .. } => {
            Error::Provider(format!("the provider refused: {error}"))
        }
        other => other.into(),
    }
}

/// The claims of the ID token, with the address, its verification and the name from the
/// userinfo endpoint when the token carries no address (OpenID Connect Core 5.4: a provider may
/// release scope claims there only). The userinfo answer must be for the token's subject.
async fn with_userinfo(
    client: &dyn crate::oauth::OAuthClient,
    mut claims: IdTokenClaims,
    endpoints: &crate::oauth::ProviderEndpoints,
    access_token: &SecretString,
) -> Result<IdTokenClaims, Error> {
    let Some(url) = endpoints
        .userinfo
        .as_ref()
        .filter(|_| claims.email.is_none())
    else {
        return Ok(claims);
    };
    let info = client
        .userinfo(url, access_token)
        .await
        .map_err(provider_failure)?;
    if info.get("sub").and_then(serde_json::Value::as_str) != claims.sub.as_deref() {
        return Err(Error::SsoRefused(
            "the provider's userinfo is for another subject",
        ));
    }
    let text = |name: &str| {
        info.get(name)
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned)
    };
    claims.email = text("email");
    claims.email_verified = info.get("email_verified") == Some(&serde_json::Value::Bool(true));
    claims.name = claims.name.or_else(|| text("name"));
    Ok(claims)
}

impl Sso<'_> {
    /// Refuses a sign-in whose organisation removed its sign-on, or changed its issuer or client,
    /// while the provider answered (#24, fifth review): the removal ends the sessions begun
    /// through it, so none may begin after it through what it removed.
    async fn still_configured(&self, used: &SsoConfigRecord) -> Result<(), Error> {
        let mut tx = self
            .store()
            .begin_read_scoped(&TenantScope::granted(used.org_id))
            .await?;
        match tx.sso_config().await? {
            Some(now) if now.issuer == used.issuer && now.client_id == used.client_id => Ok(()),
            _ => Err(Error::SsoRefused(
                "the organisation's single sign-on was removed or changed during the sign-in",
            )),
        }
    }

    /// The provider of `org`'s own sign-on (its client secret opened), or a refusal when the
    /// organisation has none.
    pub(super) async fn org_provider(&self, org: OrgId) -> Result<Resolved, Error> {
        let mut tx = self
            .store()
            .begin_read_scoped(&TenantScope::granted(org))
            .await?;
        let config = tx
            .sso_config()
            .await?
            .ok_or(Error::NotFound("single sign-on"))?;
        let id = org.to_string();
        let secret = self
            .keyring()
            .open(
                tx.as_mut(),
                FieldRef {
                    kind: SealedKind::SsoClientSecret,
                    record_id: &id,
                    field: SECRET_FIELD,
                },
            )
            .await?
            .map(|s| {
                String::from_utf8(s.expose().to_vec())
                    .map(SecretString::new)
                    .map_err(|_| Error::Unreadable("a client secret".into()))
            })
            .transpose()?;
        let issuer = Url::parse(&config.issuer).map_err(|e| Error::Internal(e.to_string()))?;
        Ok(Resolved {
            provider: Provider {
                name: ORG_PROVIDER.to_owned(),
                endpoints: Endpoints::Discovery { issuer },
                client: ClientCredentials {
                    client_id: config.client_id.clone(),
                    client_secret: secret,
                    auth: ClientAuth::Basic,
                },
                scopes: config.scopes.split(' ').map(str::to_owned).collect(),
            },
            config: Some(config),
        })
    }

    /// A platform provider people may sign in with.
    fn social_provider(&self, name: &str) -> Result<Resolved, Error> {
        let offered = self.sso_state().social.iter().any(|n| n == name);
        let oauth = self.oauth();
        let provider = oauth
            .platform_provider(name)
            .filter(|_| offered)
            .ok_or(Error::NotFound("single sign-on"))?
            .clone();
        Ok(Resolved {
            provider,
            config: None,
        })
    }

    /// Starts a sign-in: the URL of the provider's authorization endpoint, with PKCE (S256), a
    /// `nonce` and a `state` of purpose `sso` (bound to the organisation, ten minutes, single
    /// use), and the audit event `sso.sign_in_started`.
    pub async fn start(
        &self,
        target: SignInTarget,
        request: &RequestContext,
    ) -> Result<StartedSignIn, Error> {
        let (org, resolved) = match target {
            SignInTarget::Organization(org) => (Some(org), self.org_provider(org).await?),
            SignInTarget::Domain(domain) => {
                let mut tx = self.store().begin_read().await?;
                let org = tx
                    .org_of_verified_domain(&domain)
                    .await?
                    .ok_or(Error::NotFound("single sign-on"))?;
                drop(tx);
                (Some(org), self.org_provider(org).await?)
            }
            SignInTarget::Social(name) => (None, self.social_provider(&name)?),
        };
        let event = AuditEvent::success(
            Actor::anonymous(),
            "sso.sign_in_started",
            "oauth_provider",
            &resolved.provider.name,
        )
        .with_request(request.request_id.clone());
        let scope = org.map(TenantScope::granted);
        let binding = Binding {
            purpose: StatePurpose::Sso,
            mode: FlowMode::Unbound,
            org,
            user: None,
            provider: resolved.provider.name.clone(),
        };
        self.authorization(scope.as_ref(), binding, &resolved.provider, event)
            .await
    }

    /// The authorization URL for a sign-in's or a link's `binding` at `provider` (an OpenID
    /// provider): PKCE, a `nonce` and a state, the redirect URI the binding's own callback.
    pub(super) async fn authorization(
        &self,
        scope: Option<&TenantScope>,
        binding: Binding,
        provider: &Provider,
        event: AuditEvent,
    ) -> Result<StartedSignIn, Error> {
        let endpoints = self.oauth().endpoints(provider).await?;
        if endpoints.issuer.is_none() {
            return Err(Error::SsoRefused("the provider is not an OpenID provider"));
        }
        let redirect_uri = self
            .oauth()
            .redirect_uri(&callback_path(binding.org, &binding.provider))?;
        let started = self
            .oauth()
            .begin(
                scope,
                binding,
                AuthorizationRequest {
                    endpoints: &endpoints,
                    client_id: &provider.client.client_id,
                    scopes: &provider.scopes,
                    redirect_uri: &redirect_uri,
                    extra: &[],
                },
                event,
            )
            .await?;
        Ok(StartedSignIn {
            authorization_url: started.url.to_string(),
            state: started.state,
            expires_at: started.expires_at,
        })
    }

    /// Completes a sign-in at the callback: the state is spent first (a replayed, expired,
    /// forged or misdirected one is refused there, before any code is sent), then the rest as
    /// the module says. `browser`: the tokens go in cookies (the caller checked the state's
    /// binding cookie).
    pub async fn complete(
        &self,
        callback: Callback,
        browser: bool,
        request: &RequestContext,
    ) -> Result<LoginOutcome, Error> {
        let expect = callback.target.expected()?;
        let spent = self
            .oauth()
            .spend(&callback.state, &expect, request)
            .await?;
        let org = spent.binding.org;
        let provider = spent.binding.provider.clone();
        if spent.binding.user.is_some() {
            // A link's state (`link.rs`): its person completes it with their session.
            let e = Error::SsoRefused("this is a link's state: it completes at /v1/me/sso/link");
            self.sign_in_refused(org, &provider, &e, None, request)
                .await;
            return Err(e);
        }
        let error = callback.error.clone();
        match self
            .complete_spent(&spent, callback, browser, request)
            .await
        {
            Ok(outcome) => Ok(outcome),
            Err(e) => {
                self.sign_in_refused(org, &provider, &e, error.as_deref(), request)
                    .await;
                Err(e)
            }
        }
    }

    async fn complete_spent(
        &self,
        spent: &crate::oauth::Spent,
        callback: Callback,
        browser: bool,
        request: &RequestContext,
    ) -> Result<LoginOutcome, Error> {
        let (resolved, issuer, claims) = self.verified_identity(spent, callback).await?;
        if let Some(used) = &resolved.config {
            self.still_configured(used).await?;
        }
        let resolved_account = self
            .account_for(resolved.config.as_ref(), &issuer, &claims, request)
            .await?;
        let user = resolved_account.user;
        let via = match spent.binding.org {
            Some(org) => SignedInWith::Sso(org),
            None => SignedInWith::Social,
        };
        let enrolled = self.has_second_factor(user.id).await?;
        let mut tx = self.store().begin().await?;
        let memberships = match &resolved_account.membership {
            Some(m) => vec![m.clone()],
            None => tx.memberships_of_user(user.id).await?,
        };
        // An organisation's own sign-on lands in it; a platform provider's where a password's
        // would, never in an organisation enforcing its own sign-on.
        let membership = self
            .pick_membership_for(&memberships, None, via, enrolled)
            .await?;
        self.sign_in(
            tx,
            SignIn {
                user: &user,
                membership,
                via,
                enrolled,
                device: DEVICE.to_owned(),
                browser,
                rehashed: false,
            },
            request,
        )
        .await
    }

    /// The provider's answer to a spent state, checked: no error, a code, `iss` (when sent)
    /// exactly the provider's, the code redeemed, the ID token verified; its claims (with the
    /// userinfo endpoint's when the token carries no address).
    pub(super) async fn verified_identity(
        &self,
        spent: &crate::oauth::Spent,
        callback: Callback,
    ) -> Result<(Resolved, String, IdTokenClaims), Error> {
        if callback.error.is_some() {
            return Err(Error::SsoRefused("the provider did not sign the person in"));
        }
        let code = callback
            .code
            .ok_or(Error::SsoRefused("the provider sent no code"))?;
        let resolved = match spent.binding.org {
            Some(org) => self.org_provider(org).await?,
            None => self.social_provider(&spent.binding.provider)?,
        };
        let provider = &resolved.provider;
        let endpoints = self.oauth().endpoints(provider).await?;
        let issuer = endpoints
            .issuer
            .clone()
            .ok_or(Error::SsoRefused("the provider is not an OpenID provider"))?;
        // RFC 9207: a response naming another issuer is another provider's (mix-up); the
        // comparison is exact (section 2.4), as the ID token's `iss` is, and a provider whose
        // discovery says it sends `iss` must have sent it.
        let mixed = match callback.iss.as_deref() {
            Some(iss) => iss != issuer,
            None => endpoints.iss_required,
        };
        if mixed {
            return Err(Error::SsoRefused(
                "the provider's answer names another issuer, or none where the provider sends one",
            ));
        }
        let oauth = self.oauth();
        let client = oauth.client()?;
        let redirect_uri = self
            .oauth()
            .redirect_uri(&callback_path(spent.binding.org, &spent.binding.provider))?;
        let tokens = client
            .exchange_code(
                &endpoints.token,
                &provider.client,
                CodeGrant {
                    code: code.expose(),
                    verifier: &spent.verifier,
                    redirect_uri: &redirect_uri,
                },
            )
            .await
            .map_err(provider_failure)?;
        let id_token = tokens
            .id_token
            .ok_or(Error::SsoRefused("the provider returned no ID token"))?;
        let jwks_url = endpoints
            .jwks
            .as_ref()
            .ok_or(Error::SsoRefused("the provider publishes no keys"))?;
        let keys = self.provider_keys(jwks_url, id_token.expose()).await?;
        let now = u64::try_from(self.clock().now().unix_timestamp()).unwrap_or(0);
        let claims = keys
            .verify(
                id_token.expose(),
                &IdExpected {
                    issuer: &issuer,
                    client_id: &provider.client.client_id,
                    nonce: spent.oidc_nonce.expose(),
                    now_secs: now,
                    leeway_secs: LEEWAY_SECS,
                    max_age_secs: u64::try_from(STATE_TTL.whole_seconds()).unwrap_or(600),
                },
            )
            .map_err(|e| {
                tracing::info!(reason = e.as_str(), "an ID token was refused");
                id_token_refusal(e)
            })?;
        let claims = with_userinfo(client, claims, &endpoints, &tokens.access_token).await?;
        Ok((resolved, issuer, claims))
    }

    /// Records a sign-in refused after its state was spent: on the organisation's chain, or the
    /// operators' for a platform provider.
    pub(super) async fn sign_in_refused(
        &self,
        org: Option<OrgId>,
        provider: &str,
        error: &Error,
        provider_error: Option<&str>,
        request: &RequestContext,
    ) {
        // The provider's own error code, cut to what an OAuth error code may hold.
        let provider_error = provider_error.map(|e| {
            e.chars()
                .filter(|c| c.is_ascii_graphic())
                .take(64)
                .collect::<String>()
        });
        let mut event = AuditEvent::success(
            Actor::anonymous(),
            "sso.sign_in_refused",
            "oauth_provider",
            provider,
        )
        .with_details(
            json!({
                "provider": provider,
                "code": error.code(),
                "reason": error.to_string(),
                "provider_error": provider_error,
            })
            .to_string(),
        )
        .with_request(request.request_id.clone());
        event.outcome = Outcome::Denied;
        let written = async {
            match org {
                Some(org) => {
                    let mut tx = self
                        .store()
                        .begin_scoped(&TenantScope::granted(org))
                        .await?;
                    let proof = audit::append_tenant(tx.as_mut(), self.clock(), event).await?;
                    tx.commit(proof).await?;
                }
                None => audit::record_operator(self.store(), self.clock(), event).await?,
            }
            Ok::<(), Error>(())
        };
        if let Err(e) = written.await {
            tracing::warn!(error = %e, "a refused sign-in could not be recorded");
        }
    }
}
