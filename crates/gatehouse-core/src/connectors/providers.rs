//! The providers connectors can use: the platform's (configuration) and an organisation's own,
//! added by someone holding `connectors.manage`. An organisation's client secret is sealed with
//! its data key (`SealedKind::OAuthClientSecret`) and never returned; a name is the platform's or
//! the organisation's, never both.

use gatehouse_crypto::SecretString;
use time::OffsetDateTime;
use url::Url;

use super::Connectors;
use crate::audit::{self, AuditEvent};
use crate::context::TenantCall;
use crate::error::{Error, StoreError};
use crate::identity::Permission;
use crate::ids::new_uuid;
use crate::keyring::{FieldRef, SealedKind};
use crate::oauth::provider::{
    ClientAuth, ClientCredentials, Endpoints, Provider, ProviderEndpoints,
};
use crate::store::{OAuthProviderRow, TenantTx};

/// A provider to add to an organisation.
#[derive(Debug, Clone)]
pub struct NewProvider {
    pub name: String,
    /// OpenID Connect discovery; or the endpoints below.
    pub issuer: Option<String>,
    pub authorization_url: Option<String>,
    pub token_url: Option<String>,
    pub revocation_url: Option<String>,
    pub userinfo_url: Option<String>,
    pub client_id: String,
    pub client_secret: Option<SecretString>,
    /// `client_secret_basic` (the default) or `client_secret_post`.
    pub client_auth: Option<String>,
    pub scopes: Vec<String>,
}

/// Whose a provider is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderSource {
    Platform,
    Organization,
}

impl ProviderSource {
    #[must_use]
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Platform => "platform",
            Self::Organization => "organization",
        }
    }
}

/// A provider as listed: never its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderView {
    pub name: String,
    /// Its stable key: a platform provider's name, an organisation provider's id. Connectors
    /// and states name a provider by it, and its callback's path carries it.
    pub key: String,
    /// The redirect URI to register at the provider (`None` without `oauth.public_url`).
    pub redirect_uri: Option<String>,
    pub source: ProviderSource,
    pub issuer: Option<String>,
    pub authorization_url: Option<String>,
    pub token_url: Option<String>,
    pub revocation_url: Option<String>,
    pub userinfo_url: Option<String>,
    pub client_id: String,
    pub client_auth: &'static str,
    pub has_client_secret: bool,
    pub scopes: Vec<String>,
    pub created_at: Option<OffsetDateTime>,
}

fn view_of_platform(p: &Provider) -> ProviderView {
    let (issuer, e) = match &p.endpoints {
        Endpoints::Discovery { issuer } => (Some(issuer.to_string()), None),
        Endpoints::Explicit(e) => (e.issuer.clone(), Some(e.as_ref())),
    };
    ProviderView {
        name: p.name.clone(),
        key: p.name.clone(),
        redirect_uri: None,
        source: ProviderSource::Platform,
        issuer,
        authorization_url: e.map(|e| e.authorization.to_string()),
        token_url: e.map(|e| e.token.to_string()),
        revocation_url: e.and_then(|e| e.revocation.as_ref().map(Url::to_string)),
        userinfo_url: e.and_then(|e| e.userinfo.as_ref().map(Url::to_string)),
        client_id: p.client.client_id.clone(),
        client_auth: p.client.auth.as_str(),
        has_client_secret: p.client.client_secret.is_some(),
        scopes: p.scopes.clone(),
        created_at: None,
    }
}

fn view_of_row(r: &OAuthProviderRow, has_secret: bool) -> ProviderView {
    ProviderView {
        name: r.name.clone(),
        key: r.id.to_string(),
        redirect_uri: None,
        source: ProviderSource::Organization,
        issuer: r.issuer.clone(),
        authorization_url: r.authorization_url.clone(),
        token_url: r.token_url.clone(),
        revocation_url: r.revocation_url.clone(),
        userinfo_url: r.userinfo_url.clone(),
        client_id: r.client_id.clone(),
        client_auth: ClientAuth::parse(&r.client_auth)
            .unwrap_or_default()
            .as_str(),
        has_client_secret: has_secret,
        scopes: super::split_scopes(&r.scopes),
        created_at: Some(r.created_at),
    }
}

fn secret_at(id: &str) -> FieldRef<'_> {
    FieldRef {
        kind: SealedKind::OAuthClientSecret,
        record_id: id,
        field: "secret",
    }
}

/// The provider a row describes, its URLs checked again under the current rules.
fn provider_of_row(r: &OAuthProviderRow, secret: Option<SecretString>) -> Result<Provider, Error> {
    let parse = |field: &'static str, u: &str| {
        Url::parse(u).map_err(|_| Error::Internal(format!("a stored provider's {field}")))
    };
    let endpoints = match (&r.issuer, &r.authorization_url, &r.token_url) {
        (Some(i), None, None) => Endpoints::Discovery {
            issuer: parse("issuer", i)?,
        },
        // Configured by hand, with or without the issuer it names itself by.
        (issuer, Some(a), Some(t)) => Endpoints::Explicit(Box::new(ProviderEndpoints {
            issuer: issuer.clone(),
            iss_required: false,
            authorization: parse("authorization_url", a)?,
            token: parse("token_url", t)?,
            revocation: r
                .revocation_url
                .as_deref()
                .map(|u| parse("revocation_url", u))
                .transpose()?,
            userinfo: r
                .userinfo_url
                .as_deref()
                .map(|u| parse("userinfo_url", u))
                .transpose()?,
            jwks: r
                .jwks_url
                .as_deref()
                .map(|u| parse("jwks_url", u))
                .transpose()?,
        })),
        _ => {
            return Err(Error::Internal(
                "a stored provider without endpoints".into(),
            ));
        }
    };
    Ok(Provider {
        name: r.name.clone(),
        endpoints,
        client: ClientCredentials {
            client_id: r.client_id.clone(),
            client_secret: secret,
            auth: ClientAuth::parse(&r.client_auth).unwrap_or_default(),
        },
        scopes: super::split_scopes(&r.scopes),
    })
}

impl Connectors<'_> {
    /// The provider named `name` for the transaction's organisation, and its stable key: its
    /// own (keyed by its id), else the platform's (keyed by its name); its secret opened.
    /// `NotFound` when neither has it.
    pub(crate) async fn resolve(
        &self,
        tx: &mut dyn TenantTx,
        name: &str,
    ) -> Result<(Provider, String), Error> {
        if let Some(row) = tx.oauth_provider(name).await? {
            let key = row.id.to_string();
            return Ok((self.of_row(tx, &row).await?, key));
        }
        self.oauth()
            .platform_provider(name)
            .cloned()
            .map(|p| (p, name.to_owned()))
            .ok_or(Error::NotFound("provider"))
    }

    /// The provider a stable key names: an organisation provider's id (this organisation's,
    /// the very row: one deleted and made again under the same name is another), else a
    /// platform provider's name (never shadowed by an organisation's provider of that name).
    pub(crate) async fn provider(
        &self,
        tx: &mut dyn TenantTx,
        key: &str,
    ) -> Result<Provider, Error> {
        if let Ok(id) = uuid::Uuid::try_parse(key) {
            let row = tx
                .oauth_providers()
                .await?
                .into_iter()
                .find(|r| r.id == id)
                .ok_or(Error::NotFound("provider"))?;
            return self.of_row(tx, &row).await;
        }
        self.oauth()
            .platform_provider(key)
            .cloned()
            .ok_or(Error::NotFound("provider"))
    }

    async fn of_row(
        &self,
        tx: &mut dyn TenantTx,
        row: &OAuthProviderRow,
    ) -> Result<Provider, Error> {
        let id = row.id.to_string();
        let secret = self
            .keyring()
            .open(tx, secret_at(&id))
            .await?
            .map(|s| {
                String::from_utf8(s.expose().to_vec())
                    .map(SecretString::new)
                    .map_err(|_| Error::Unreadable("a provider's client secret".into()))
            })
            .transpose()?;
        let provider = provider_of_row(row, secret)?;
        provider.validate(self.oauth().settings().destinations)?;
        Ok(provider)
    }

    /// A view with the redirect URI to register, when `oauth.public_url` is set.
    fn with_redirect(&self, mut v: ProviderView) -> ProviderView {
        v.redirect_uri = self
            .oauth()
            .target_redirect_uri(super::CALLBACK_PREFIX, &v.key)
            .ok();
        v
    }

    /// The providers the caller's organisation can connect to: the platform's, then its own.
    pub async fn providers(&self, call: &TenantCall) -> Result<Vec<ProviderView>, Error> {
        let tx = self.store().begin_read_scoped(&call.scope).await?;
        let (mut tx, _) = self
            .authorize(
                tx,
                &call.principal,
                Permission::CONNECTORS_USE,
                &call.request,
            )
            .await?;
        let mut out: Vec<ProviderView> = self
            .oauth()
            .settings()
            .providers
            .iter()
            .map(|p| self.with_redirect(view_of_platform(p)))
            .collect();
        for row in tx.oauth_providers().await? {
            let has_secret = tx
                .sealed(
                    SealedKind::OAuthClientSecret.as_str(),
                    &row.id.to_string(),
                    "secret",
                )
                .await?
                .is_some();
            out.push(self.with_redirect(view_of_row(&row, has_secret)));
        }
        Ok(out)
    }

    /// Adds a provider to the caller's organisation (`connectors.manage`).
    pub async fn add_provider(
        &self,
        call: &TenantCall,
        new: NewProvider,
    ) -> Result<ProviderView, Error> {
        if self.oauth().platform_provider(&new.name).is_some() {
            return Err(Error::Conflict(
                "the platform already offers a provider of that name",
            ));
        }
        let auth = match new.client_auth.as_deref() {
            None => ClientAuth::Basic,
            Some(s) => ClientAuth::parse(s).ok_or_else(|| {
                Error::invalid("client_auth", "client_secret_basic or client_secret_post")
            })?,
        };
        let now = self.clock().now();
        let row = OAuthProviderRow {
            org_id: call.scope.org_id(),
            id: new_uuid(self.clock()),
            name: new.name.clone(),
            issuer: new.issuer.clone(),
            authorization_url: new.authorization_url.clone(),
            token_url: new.token_url.clone(),
            revocation_url: new.revocation_url.clone(),
            userinfo_url: new.userinfo_url.clone(),
            jwks_url: None,
            client_id: new.client_id.clone(),
            client_auth: auth.as_str().to_owned(),
            scopes: new.scopes.join(" "),
            created_at: now,
            updated_at: now,
        };
        match (&row.issuer, &row.authorization_url, &row.token_url) {
            (Some(_), None, None) | (_, Some(_), Some(_)) => {}
            _ => {
                return Err(Error::invalid(
                    "issuer",
                    "give either issuer alone (OpenID Connect discovery) or both \
                     authorization_url and token_url (with the issuer they answer as, if any)",
                ));
            }
        }
        // Checked as the provider it will be used as: names, shapes and addresses.
        provider_of_row(&row, new.client_secret.clone())
            .map_err(|_| Error::invalid("issuer", "is not a URL"))?
            .validate(self.oauth().settings().destinations)?;
        let tx = self.store().begin_scoped(&call.scope).await?;
        let (mut tx, _) = self
            .authorize(
                tx,
                &call.principal,
                Permission::CONNECTORS_MANAGE,
                &call.request,
            )
            .await?;
        tx.insert_oauth_provider(&row).await.map_err(|e| match e {
            StoreError::Duplicate => {
                Error::Conflict("the organisation has a provider of that name")
            }
            other => other.into(),
        })?;
        let id = row.id.to_string();
        if let Some(secret) = &new.client_secret {
            self.keyring()
                .seal(tx.as_mut(), secret_at(&id), secret.expose().as_bytes())
                .await?;
        }
        let event = AuditEvent::success(
            call.principal.actor(),
            "connector.provider_created",
            "oauth_provider",
            &row.name,
        )
        .with_details(
            serde_json::json!({
                "issuer": row.issuer,
                "token_url": row.token_url,
                "client_id": row.client_id,
            })
            .to_string(),
        )
        .with_request(call.request.request_id.clone());
        let proof = audit::append_tenant(tx.as_mut(), self.clock(), event).await?;
        tx.commit(proof).await?;
        Ok(self.with_redirect(view_of_row(&row, new.client_secret.is_some())))
    }

    /// Removes one of the organisation's providers and its sealed secret
    /// (`connectors.manage`), once no connector uses it (`conflict` otherwise: disconnecting
    /// them revokes their tokens, which needs the provider's client).
    pub async fn delete_provider(&self, call: &TenantCall, name: &str) -> Result<(), Error> {
        let tx = self.store().begin_scoped(&call.scope).await?;
        let (mut tx, _) = self
            .authorize(
                tx,
                &call.principal,
                Permission::CONNECTORS_MANAGE,
                &call.request,
            )
            .await?;
        let row = tx
            .oauth_provider(name)
            .await?
            .ok_or(Error::NotFound("provider"))?;
        // Its connectors' tokens stay valid at the provider until revoked, and revoking them
        // needs this provider's client: they are disconnected first (#24).
        // A connector names an organisation provider by its id.
        let key = row.id.to_string();
        if tx.oauth_provider_in_use(&[key.as_str(), name]).await? {
            return Err(Error::Conflict(
                "the provider still has connectors: disconnect them first (DELETE \
                 /v1/connectors/{id} revokes their tokens at the provider)",
            ));
        }
        tx.delete_oauth_provider(name).await?;
        tx.delete_sealed_of(
            SealedKind::OAuthClientSecret.as_str(),
            &[row.id.to_string()],
        )
        .await?;
        let event = AuditEvent::success(
            call.principal.actor(),
            "connector.provider_deleted",
            "oauth_provider",
            name,
        )
        .with_request(call.request.request_id.clone());
        let proof = audit::append_tenant(tx.as_mut(), self.clock(), event).await?;
        tx.commit(proof).await?;
        Ok(())
    }
}
