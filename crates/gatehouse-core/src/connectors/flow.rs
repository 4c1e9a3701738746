//! Connecting and disconnecting. `start` sends the person to the provider with PKCE and a signed
//! state bound to them and their organisation; `complete` (the callback) spends the state before
//! anything else, then exchanges the code and seals the tokens with the organisation's data key
//! in the transaction that records the connector and its audit event. `disconnect` revokes the
//! tokens at the provider (RFC 7009) and erases them.

use gatehouse_crypto::SecretString;
use time::Duration;
use uuid::Uuid;

use super::{ACCESS, ConnectorView, Connectors, REFRESH, refresh_due};
use crate::audit::{self, Actor, AuditEvent, Outcome};
use crate::context::{RequestContext, TenantCall};
use crate::error::Error;
use crate::identity::{Permission, Principal};
use crate::ids::{UserId, new_uuid};
use crate::keyring::{FieldRef, SealedKind};
use crate::oauth::{
    Authorization, AuthorizationRequest, Binding, CodeGrant, Expected, StatePurpose, TokenHint,
    TokenSet,
};
use crate::page::{Page, PageRequest};
use crate::scope::TenantScope;
use crate::store::{ConnectorRow, ConnectorStatus, TenantTx};

/// The callback's query, as the provider sent it.
#[derive(Debug, Clone, Default)]
pub struct Callback {
    pub state: String,
    pub code: Option<String>,
    /// The provider's refusal (`access_denied`, ...), instead of a code.
    pub error: Option<String>,
    /// RFC 9207: the issuer that sent the browser back, when the provider says.
    pub iss: Option<String>,
}

pub(crate) fn token_at<'a>(id: &'a str, field: &'static str) -> FieldRef<'a> {
    FieldRef {
        kind: SealedKind::ConnectorToken,
        record_id: id,
        field,
    }
}

/// The path of the callback, under `oauth.public_url`.
pub const CALLBACK_PATH: &str = "/v1/connectors/callback";

fn person(principal: &Principal) -> Result<UserId, Error> {
    if principal.api_key_permissions.is_some() {
        return Err(Error::WrongAudience(
            "a connector is a person's account: an API key cannot hold one",
        ));
    }
    if principal.tier == crate::store::Tier::Impersonation {
        return Err(Error::WrongAudience(
            "an impersonation cannot connect or use its user's accounts elsewhere",
        ));
    }
    Ok(UserId::from_uuid(principal.subject))
}

impl Connectors<'_> {
    /// Starts connecting the caller's account at `provider`: the URL to send their browser to.
    pub async fn start(&self, call: &TenantCall, provider: &str) -> Result<Authorization, Error> {
        let user = person(&call.principal)?;
        let redirect_uri = self.oauth().redirect_uri(CALLBACK_PATH)?;
        let tx = self.store().begin_read_scoped(&call.scope).await?;
        let (mut tx, _) = self
            .authorize(
                tx,
                &call.principal,
                Permission::CONNECTORS_USE,
                &call.request,
            )
            .await?;
        let p = self.provider(tx.as_mut(), provider).await?;
        drop(tx);
        let endpoints = self.oauth().endpoints(&p).await?;
        // OpenID Connect Core 11: offline access (a refresh token) is granted on consent.
        let consent: &[(&str, &str)] = if p.scopes.iter().any(|s| s == "offline_access") {
            &[("prompt", "consent")]
        } else {
            &[]
        };
        let event = AuditEvent::success(
            call.principal.actor(),
            "connector.authorization_started",
            "oauth_provider",
            &p.name,
        )
        .with_request(call.request.request_id.clone());
        self.oauth()
            .begin(
                Some(&call.scope),
                Binding {
                    purpose: StatePurpose::Connector,
                    org: Some(call.scope.org_id()),
                    user: Some(user),
                    provider: p.name.clone(),
                },
                AuthorizationRequest {
                    endpoints: &endpoints,
                    client_id: &p.client.client_id,
                    scopes: &p.scopes,
                    redirect_uri: &redirect_uri,
                    extra: consent,
                },
                event,
            )
            .await
    }

    /// The callback: spends the state (refused before anything reaches the provider when it is
    /// not one Gatehouse signed, is older than ten minutes, was used, or, when the callback is
    /// called with a person's token, was started by someone else or in another organisation),
    /// exchanges the code with the PKCE verifier, and records the connector with its tokens
    /// sealed. `caller` is the person whose token came with the callback, if any.
    pub async fn complete(
        &self,
        callback: &Callback,
        caller: Option<&Principal>,
        request: &RequestContext,
    ) -> Result<ConnectorView, Error> {
        let (org, user) = match caller {
            Some(p) => (
                Some(p.org.ok_or(Error::OrganizationRequired)?),
                Some(person(p)?),
            ),
            None => (None, None),
        };
        let spent = self
            .oauth()
            .spend(
                &callback.state,
                &Expected {
                    purpose: StatePurpose::Connector,
                    org,
                    user,
                    provider: None,
                },
                request,
            )
            .await?;
        let (Some(org), Some(user)) = (spent.binding.org, spent.binding.user) else {
            return Err(Error::OAuthState("the state was issued for another flow"));
        };
        let scope = TenantScope::granted(org);
        let name = spent.binding.provider.clone();
        let failed = |why: String| self.connect_failed(scope, user, name.clone(), why, request);
        if let Some(error) = &callback.error {
            let error: String = error
                .chars()
                .filter(char::is_ascii_graphic)
                .take(64)
                .collect();
            failed(format!("the provider answered {error}")).await;
            return Err(Error::Provider(format!("the provider refused: {error}")));
        }
        let Some(code) = callback
            .code
            .as_deref()
            .filter(|c| !c.is_empty() && c.len() <= 2048)
        else {
            return Err(Error::invalid("code", "the callback carries no code"));
        };
        let mut tx = self.store().begin_read_scoped(&scope).await?;
        let p = self.provider(tx.as_mut(), &name).await?;
        drop(tx);
        let endpoints = self.oauth().endpoints(&p).await?;
        // RFC 9207: a response from another issuer than the one asked is a mix-up.
        if let (Some(iss), Some(ours)) = (&callback.iss, &endpoints.issuer)
            && !crate::oauth::wire::same_issuer(iss, ours)
        {
            failed("the callback names another issuer".into()).await;
            return Err(Error::Provider(
                "the callback names another issuer than the provider's".into(),
            ));
        }
        let redirect_uri = self.oauth().redirect_uri(CALLBACK_PATH)?;
        let tokens = match self
            .oauth()
            .client()?
            .exchange_code(
                &endpoints.token,
                &p.client,
                CodeGrant {
                    code,
                    verifier: &spent.verifier,
                    redirect_uri: &redirect_uri,
                },
            )
            .await
        {
            Ok(t) => t,
            Err(e) => {
                failed(e.to_string()).await;
                return Err(e.into());
            }
        };
        self.record_connector(scope, user, &p.scopes, &name, tokens, request)
            .await
    }

    async fn record_connector(
        &self,
        scope: TenantScope,
        user: UserId,
        asked: &[String],
        provider: &str,
        tokens: TokenSet,
        request: &RequestContext,
    ) -> Result<ConnectorView, Error> {
        let now = self.clock().now();
        let lifetime = tokens
            .expires_in
            .map(|s| Duration::seconds(i64::try_from(s).unwrap_or(i64::MAX / 2)));
        let row = ConnectorRow {
            org_id: scope.org_id(),
            id: new_uuid(self.clock()),
            user_id: user.as_uuid(),
            provider: provider.to_owned(),
            status: ConnectorStatus::Active,
            scopes: tokens.scope.clone().unwrap_or_else(|| asked.join(" ")),
            expires_at: lifetime.map(|l| now + l),
            refresh_due_at: match (&tokens.refresh_token, lifetime) {
                (Some(_), Some(l)) => Some(refresh_due(self.settings(), now, l)),
                _ => None,
            },
            failures: 0,
            last_error: None,
            created_at: now,
            updated_at: now,
        };
        let mut tx = self.store().begin_scoped(&scope).await?;
        tx.insert_connector(&row).await?;
        let id = row.id.to_string();
        self.keyring()
            .seal(
                tx.as_mut(),
                token_at(&id, ACCESS),
                tokens.access_token.expose().as_bytes(),
            )
            .await?;
        if let Some(refresh) = &tokens.refresh_token {
            self.keyring()
                .seal(
                    tx.as_mut(),
                    token_at(&id, REFRESH),
                    refresh.expose().as_bytes(),
                )
                .await?;
        }
        let event = AuditEvent::success(
            Actor::user(user),
            "connector.connected",
            "connector",
            row.id,
        )
        .with_details(
            serde_json::json!({
                "provider": provider,
                "scopes": row.scopes,
                "refreshable": tokens.refresh_token.is_some(),
            })
            .to_string(),
        )
        .with_request(request.request_id.clone());
        let proof = audit::append_tenant(tx.as_mut(), self.clock(), event).await?;
        tx.commit(proof).await?;
        Ok(ConnectorView::from(&row))
    }

    /// Records a connection that failed after its state was spent (the provider refused, the
    /// exchange failed); a failure to record is logged, the refusal stands.
    async fn connect_failed(
        &self,
        scope: TenantScope,
        user: UserId,
        provider: String,
        why: String,
        request: &RequestContext,
    ) {
        let mut event = AuditEvent::success(
            Actor::user(user),
            "connector.connect_failed",
            "oauth_provider",
            &provider,
        )
        .with_details(serde_json::json!({ "reason": why }).to_string())
        .with_request(request.request_id.clone());
        event.outcome = Outcome::Failure;
        let written = async {
            let mut tx = self.store().begin_scoped(&scope).await?;
            let proof = audit::append_tenant(tx.as_mut(), self.clock(), event).await?;
            tx.commit(proof).await?;
            Ok::<(), Error>(())
        };
        if let Err(e) = written.await {
            tracing::warn!(error = %e, "a failed connection could not be recorded");
        }
    }

    /// The caller's own connectors (`connectors.use`), newest first.
    pub async fn list(
        &self,
        call: &TenantCall,
        page: PageRequest,
    ) -> Result<Page<ConnectorView>, Error> {
        let user = person(&call.principal)?;
        let tx = self.store().begin_read_scoped(&call.scope).await?;
        let (mut tx, _) = self
            .authorize(
                tx,
                &call.principal,
                Permission::CONNECTORS_USE,
                &call.request,
            )
            .await?;
        let page = tx.connectors(Some(user.as_uuid()), page).await?;
        Ok(Page {
            items: page.items.iter().map(ConnectorView::from).collect(),
            next_cursor: page.next_cursor,
        })
    }

    /// One of the caller's connectors.
    pub async fn get(&self, call: &TenantCall, id: Uuid) -> Result<ConnectorView, Error> {
        let user = person(&call.principal)?;
        let tx = self.store().begin_read_scoped(&call.scope).await?;
        let (mut tx, _) = self
            .authorize(
                tx,
                &call.principal,
                Permission::CONNECTORS_USE,
                &call.request,
            )
            .await?;
        tx.connector(id)
            .await?
            .filter(|c| c.user_id == user.as_uuid())
            .map(|c| ConnectorView::from(&c))
            .ok_or(Error::NotFound("connector"))
    }

    /// Disconnects: the tokens revoked at the provider (RFC 7009; refresh token first, which
    /// ends the grant at most providers), then the connector and its tokens erased, recorded
    /// with whether the provider confirmed. The owner may; so may `connectors.manage`.
    /// Returns whether the provider confirmed every revocation.
    pub async fn disconnect(&self, call: &TenantCall, id: Uuid) -> Result<bool, Error> {
        let user = person(&call.principal)?;
        let tx = self.store().begin_read_scoped(&call.scope).await?;
        let (mut tx, _) = self
            .authorize(
                tx,
                &call.principal,
                Permission::CONNECTORS_USE,
                &call.request,
            )
            .await?;
        let connector = tx
            .connector(id)
            .await?
            .ok_or(Error::NotFound("connector"))?;
        if connector.user_id != user.as_uuid() {
            // Someone else's: only with connectors.manage, and a connector not found otherwise.
            let (again, _) = self
                .authorize(
                    tx,
                    &call.principal,
                    Permission::CONNECTORS_MANAGE,
                    &call.request,
                )
                .await
                .map_err(|_| Error::NotFound("connector"))?;
            tx = again;
        }
        let sid = id.to_string();
        let refresh = open_token(self, tx.as_mut(), &sid, REFRESH).await?;
        let access = open_token(self, tx.as_mut(), &sid, ACCESS).await?;
        let provider = self.provider(tx.as_mut(), &connector.provider).await;
        drop(tx);
        let revoked = match provider {
            Ok(p) => self.revoke_at_provider(&p, refresh, access).await,
            Err(e) => Err(e.to_string()),
        };
        let mut tx = self.store().begin_scoped(&call.scope).await?;
        if !tx.delete_connector(id).await? {
            return Err(Error::NotFound("connector"));
        }
        tx.delete_sealed_of(
            SealedKind::ConnectorToken.as_str(),
            std::slice::from_ref(&sid),
        )
        .await?;
        let event = AuditEvent::success(
            call.principal.actor(),
            "connector.disconnected",
            "connector",
            id,
        )
        .with_details(
            serde_json::json!({
                "provider": connector.provider,
                "owner": connector.user_id,
                "revoked_at_provider": revoked.is_ok(),
                "revocation_error": revoked.as_ref().err(),
            })
            .to_string(),
        )
        .with_request(call.request.request_id.clone());
        let proof = audit::append_tenant(tx.as_mut(), self.clock(), event).await?;
        tx.commit(proof).await?;
        self.forget(call.scope.org_id(), id);
        Ok(revoked.is_ok())
    }

    /// Revokes what is given at the provider's revocation endpoint; an error in words.
    async fn revoke_at_provider(
        &self,
        p: &crate::oauth::Provider,
        refresh: Option<SecretString>,
        access: Option<SecretString>,
    ) -> Result<(), String> {
        let endpoints = self.oauth().endpoints(p).await.map_err(|e| e.to_string())?;
        let url = endpoints
            .revocation
            .as_ref()
            .ok_or("the provider has no revocation endpoint")?;
        let client = self.oauth().client().map_err(|e| e.to_string())?;
        for (token, hint) in [
            (refresh, TokenHint::RefreshToken),
            (access, TokenHint::AccessToken),
        ] {
            if let Some(t) = token {
                client
                    .revoke(url, &p.client, &t, hint)
                    .await
                    .map_err(|e| e.to_string())?;
            }
        }
        Ok(())
    }
}

pub(crate) fn secret_text(b: gatehouse_crypto::SecretBytes) -> Result<SecretString, Error> {
    String::from_utf8(b.expose().to_vec())
        .map(SecretString::new)
        .map_err(|_| Error::Unreadable("a connector's token".into()))
}

/// Reads a sealed token of a connector in `tx`.
pub(crate) async fn open_token(
    k: &crate::kernel::Kernel,
    tx: &mut dyn TenantTx,
    id: &str,
    field: &'static str,
) -> Result<Option<SecretString>, Error> {
    k.keyring()
        .open(tx, token_at(id, field))
        .await?
        .map(secret_text)
        .transpose()
}
