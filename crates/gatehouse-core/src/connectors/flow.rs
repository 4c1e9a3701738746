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
    Authorization, AuthorizationRequest, Binding, CodeGrant, Expected, FlowMode, StatePurpose,
    TokenHint, TokenSet,
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

/// The prefix of the callbacks, under `oauth.public_url`: each provider has its own,
/// `{CALLBACK_PREFIX}/{provider}/callback` (RFC 9700 4.4.2), `{provider}` being its stable key
/// (a platform provider's name, an organisation provider's id).
pub const CALLBACK_PREFIX: &str = "/v1/connectors";

/// Google (an `accounts.google.com` authorization endpoint) grants a refresh token only when
/// asked for offline access, and again only on consent.
fn preset_parameters(
    endpoints: &crate::oauth::ProviderEndpoints,
) -> &'static [(&'static str, &'static str)] {
    if endpoints.authorization.host_str() == Some("accounts.google.com") {
        &[("access_type", "offline"), ("prompt", "consent")]
    } else {
        &[]
    }
}

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
    /// Starts connecting the caller's account at `provider` (its name): the URL to send their
    /// browser to. `mode` is how the caller came (cookie session or bearer token): the callback
    /// must come the same way, with the same person's credential.
    pub async fn start(
        &self,
        call: &TenantCall,
        provider: &str,
        mode: FlowMode,
    ) -> Result<Authorization, Error> {
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
        let (p, key) = self.resolve(tx.as_mut(), provider).await?;
        drop(tx);
        let redirect_uri = self.oauth().target_redirect_uri(CALLBACK_PREFIX, &key)?;
        let endpoints = self.oauth().endpoints(&p).await?;
        // OpenID Connect Core 11: offline access (a refresh token) is granted on consent.
        let mut extra: Vec<(&str, &str)> = preset_parameters(&endpoints).to_vec();
        if p.scopes.iter().any(|s| s == "offline_access")
            && !extra.iter().any(|(n, _)| *n == "prompt")
        {
            extra.push(("prompt", "consent"));
        }
        let event = AuditEvent::success(
            call.principal.actor(),
            "connector.authorization_started",
            "oauth_provider",
            &key,
        )
        .with_request(call.request.request_id.clone());
        self.oauth()
            .begin(
                Some(&call.scope),
                Binding {
                    purpose: StatePurpose::Connector,
                    mode,
                    org: Some(call.scope.org_id()),
                    user: Some(user),
                    provider: key.clone(),
                },
                AuthorizationRequest {
                    endpoints: &endpoints,
                    client_id: &p.client.client_id,
                    scopes: &p.scopes,
                    redirect_uri: &redirect_uri,
                    extra: &extra,
                },
                event,
            )
            .await
    }

    /// The callback of the provider `target` (its stable key, from the path): refused (401)
    /// without the credential of the person who started the flow, before anything else; then
    /// the state is spent (refused before anything reaches the provider when it is not one
    /// Gatehouse signed, is ten minutes old or more, was used, was issued for another provider
    /// than the path's, was started in another mode, or by someone else or in another
    /// organisation); the `iss` of RFC 9207 checked (required when the provider advertises it,
    /// compared exactly); the code exchanged with the PKCE verifier; and the connector recorded
    /// with its tokens sealed. `caller` is the person whose credential came with the callback
    /// and how it came.
    pub async fn complete(
        &self,
        callback: &Callback,
        target: &str,
        caller: Option<(&Principal, FlowMode)>,
        request: &RequestContext,
    ) -> Result<ConnectorView, Error> {
        // RFC 9700 4.7: whoever follows someone else's authorization URL must not complete it.
        let Some((principal, mode)) = caller else {
            return Err(Error::Unauthenticated(
                "the callback needs the credential of the person who started the connection",
            ));
        };
        let org = principal.org.ok_or(Error::OrganizationRequired)?;
        let caller_user = person(principal)?;
        let spent = self
            .oauth()
            .spend(
                &callback.state,
                &Expected {
                    purpose: StatePurpose::Connector,
                    mode,
                    org: Some(org),
                    user: Some(caller_user),
                    provider: Some(target),
                },
                request,
            )
            .await?;
        let (Some(org), Some(user)) = (spent.binding.org, spent.binding.user) else {
            return Err(Error::OAuthState("the state was issued for another flow"));
        };
        let scope = TenantScope::granted(org);
        let key = spent.binding.provider.clone();
        let failed = |why: String| self.connect_failed(scope, user, key.clone(), why, request);
        if let Some(error) = &callback.error {
            // Only an RFC 6749 error code goes on; the provider's free text goes nowhere.
            let error = if crate::oauth::client::valid_error_code(error) {
                error.as_str()
            } else {
                "an error outside RFC 6749's characters"
            };
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
        let p = self.provider(tx.as_mut(), &key).await?;
        drop(tx);
        let endpoints = self.oauth().endpoints(&p).await?;
        // RFC 9207: a response from another issuer than the one asked is a mix-up; a provider
        // that says it sends `iss` must have sent it.
        let mixed = match (&callback.iss, &endpoints.issuer) {
            (Some(iss), Some(ours)) => !crate::oauth::wire::same_issuer(iss, ours),
            (None, _) => endpoints.iss_required,
            (Some(_), None) => false,
        };
        if mixed {
            failed("the callback's iss is missing or names another issuer".into()).await;
            return Err(Error::Provider(
                "the callback names another issuer than the provider's, or none where the \
                 provider sends one"
                    .into(),
            ));
        }
        let redirect_uri = self.oauth().target_redirect_uri(CALLBACK_PREFIX, &key)?;
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
        let recorded = self
            .record_connector(scope, user, &p.scopes, &key, &tokens, request)
            .await;
        if let Err(Error::NotFound("provider")) = &recorded {
            // Deleted while the code was exchanged: what it just granted is revoked (#24).
            let revoked = self
                .revoke_at_provider(
                    &p,
                    tokens.refresh_token.clone(),
                    Some(tokens.access_token.clone()),
                )
                .await;
            failed(format!(
                "the provider was deleted while connecting; its tokens {}",
                if revoked.is_ok() {
                    "were revoked"
                } else {
                    "could not be revoked"
                }
            ))
            .await;
        }
        recorded
    }

    async fn record_connector(
        &self,
        scope: TenantScope,
        user: UserId,
        asked: &[String],
        provider: &str,
        tokens: &TokenSet,
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
        // An organisation's provider read again where the connector is made: one deleted since
        // the callback read it has no connector made for it (its deletion checks for none).
        if let Ok(pid) = Uuid::try_parse(provider)
            && !tx.oauth_providers().await?.iter().any(|r| r.id == pid)
        {
            return Err(Error::NotFound("provider"));
        }
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
        let tx = self.store().begin_scoped(&call.scope).await?;
        let (mut tx, _) = self
            .authorize(
                tx,
                &call.principal,
                Permission::CONNECTORS_USE,
                &call.request,
            )
            .await?;
        // Held until this transaction ends: a refresh recording meanwhile waits, or has
        // committed and its tokens are the ones read below.
        let mut connector = tx
            .lock_connector(id)
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
        // Stopped before its tokens are read, in the transaction that reads them: a refresh
        // cannot rotate them afterwards (it records only for an active connector, and revokes
        // what it obtained for one no longer active), so the tokens revoked are the live ones.
        let sid = id.to_string();
        let refresh = open_token(self, tx.as_mut(), &sid, REFRESH).await?;
        let access = open_token(self, tx.as_mut(), &sid, ACCESS).await?;
        let provider = self.provider(tx.as_mut(), &connector.provider).await;
        connector.status = ConnectorStatus::NeedsReauth;
        connector.refresh_due_at = None;
        connector.last_error = Some("being disconnected".into());
        connector.updated_at = self.clock().now();
        tx.update_connector(&connector).await?;
        let event = AuditEvent::success(
            call.principal.actor(),
            "connector.disconnecting",
            "connector",
            id,
        )
        .with_details(
            serde_json::json!({
                "provider": connector.provider,
                "owner": connector.user_id,
            })
            .to_string(),
        )
        .with_request(call.request.request_id.clone());
        let proof = audit::append_tenant(tx.as_mut(), self.clock(), event).await?;
        tx.commit(proof).await?;
        self.forget(call.scope.org_id(), id);
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
    pub(super) async fn revoke_at_provider(
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

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoints(authorization: &str) -> crate::oauth::ProviderEndpoints {
        crate::oauth::ProviderEndpoints {
            issuer: None,
            authorization: url::Url::parse(authorization).unwrap(),
            token: url::Url::parse("https://oauth2.example.com/token").unwrap(),
            revocation: None,
            userinfo: None,
            jwks: None,
            iss_required: false,
        }
    }

    #[test]
    fn google_is_asked_for_offline_access_on_consent_and_others_are_not() {
        let google = endpoints("https://accounts.google.com/o/oauth2/v2/auth");
        assert_eq!(
            preset_parameters(&google),
            &[("access_type", "offline"), ("prompt", "consent")]
        );
        let other = endpoints("https://accounts.google.com.evil.example/auth");
        assert!(preset_parameters(&other).is_empty());
    }
}
