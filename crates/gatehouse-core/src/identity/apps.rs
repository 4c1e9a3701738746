//! The app registry (ASVS 9.2.4, in the spirit of RFC 8707): the downstream apps an operator
//! registered, each with the audience URI its tokens carry. A client asks for a token for an app
//! with `resource` on refresh; Gatehouse's own API refuses such a token, and a service bound to
//! one app refuses another's (`Auth::authenticate_for_app`). Registering and removing are
//! audited on the operators' chain.

use uuid::Uuid;

use super::IdentitySettings;
use crate::audit::{self, AuditEvent};
use crate::context::OperatorCall;
use crate::error::{Error, StoreError};
use crate::ids::new_uuid;
use crate::inputs::DisplayName;
use crate::kernel::Kernel;
use crate::store::{AppRecord, PlatformTx, Tier};

/// The longest audience accepted: long enough for any URL an app is served at.
const MAX_AUDIENCE: usize = 255;

/// Whether `audience` may name an app: an absolute URI (`scheme:rest`, RFC 3986) without a
/// fragment (RFC 8707 section 2), at most 255 characters, no white space or control characters,
/// and neither Gatehouse's own audience nor the operators'. Compared exactly everywhere, so it is
/// taken as written, not normalised.
pub fn check_app_audience(audience: &str, settings: &IdentitySettings) -> Result<(), Error> {
    let bad = |why: &'static str| Err(Error::invalid("audience", why));
    if audience.is_empty() || audience.len() > MAX_AUDIENCE {
        return bad("must be 1 to 255 characters");
    }
    if audience
        .chars()
        .any(|c| c.is_whitespace() || c.is_control())
    {
        return bad("must not contain white space or control characters");
    }
    let Some((scheme, rest)) = audience.split_once(':') else {
        return bad("must be an absolute URI (https://app.example.com or urn:...)");
    };
    let scheme_ok = scheme
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    if !scheme_ok || rest.is_empty() {
        return bad("must be an absolute URI (https://app.example.com or urn:...)");
    }
    if audience.contains('#') {
        return bad("must not have a fragment (RFC 8707)");
    }
    if audience == settings.audience || audience == settings.operator_audience() {
        return bad("is Gatehouse's own audience; an app needs its own");
    }
    Ok(())
}

/// The `session.refreshed` event's details: the app the token was issued for, if any.
pub(crate) fn resource_details(app: Option<&str>) -> String {
    app.map_or_else(
        || "{}".to_owned(),
        |app| serde_json::json!({ "resource": app }).to_string(),
    )
}

impl Kernel {
    /// The audience to issue a refreshed token for: `None` for Gatehouse's own (no `resource`,
    /// or Gatehouse's own audience as `resource`), a registered app's, or `invalid_target`.
    pub(crate) async fn registered_resource(
        &self,
        tx: &mut dyn PlatformTx,
        resource: Option<&str>,
    ) -> Result<Option<String>, Error> {
        let Some(resource) = resource.filter(|r| *r != self.identity().settings().audience) else {
            return Ok(None);
        };
        match tx.app_by_audience(resource).await? {
            Some(app) => Ok(Some(app.audience)),
            None => Err(Error::InvalidTarget(
                "resource names no registered app (an operator lists them at GET /admin/v1/apps)",
            )),
        }
    }
}

impl super::Auth<'_> {
    /// A credential one of the deployment's services presents for someone: with the service
    /// bound to an app, a person's token must carry that app's audience (a token for Gatehouse or
    /// for another app is `wrong_audience`); unbound, Gatehouse's own, as on the tenant API. An
    /// API key is verified as on the tenant API either way: it carries no audience.
    pub async fn authenticate_for_service(
        &self,
        call: &crate::context::ServiceCall,
        credential: &str,
    ) -> Result<std::sync::Arc<super::Principal>, Error> {
        match &call.app {
            Some(app) if !crate::api_keys::is_api_key(credential) => {
                self.authenticate_for_app(credential, app).await
            }
            _ => self.authenticate(credential, super::Audience::Tenant).await,
        }
    }
}

impl super::Sessions<'_> {
    /// `refresh`, asking with `resource` (RFC 8707) for an access token for a registered app:
    /// its `aud` is the app's audience, so Gatehouse's own API and every other app refuse it.
    /// The refresh token rotates as on any refresh; a later refresh without `resource` gets a
    /// token for Gatehouse again. A `resource` no app is registered with is `invalid_target`
    /// and nothing rotates; Gatehouse's own audience as `resource` is a plain refresh. A person
    /// who must enrol a second factor and has none gets no token for an app
    /// (`second_factor_enrolment_required`, nothing rotates): an app that verifies tokens on its
    /// own would otherwise see an ordinary token.
    pub async fn refresh_for(
        &self,
        token: &gatehouse_crypto::SecretString,
        browser: bool,
        request: &crate::context::RequestContext,
        resource: Option<&str>,
    ) -> Result<super::IssuedSession, Error> {
        // A cookie session's access token lives in Gatehouse's own `__Host-` cookie: a token for
        // another app there would only break the browser's next call to Gatehouse.
        if browser && resource.is_some_and(|r| r != self.identity().settings().audience) {
            return Err(Error::invalid(
                "resource",
                "is for bearer refreshes only: a cookie session's tokens are Gatehouse's",
            ));
        }
        if resource.is_some_and(|r| r != self.identity().settings().audience) {
            self.no_app_token_without_factor(token).await?;
        }
        self.refresh_on(token, browser, request, super::Audience::Tenant, resource)
            .await
    }

    /// Refuses an app's token to the person whose refresh token `token` is, while a second
    /// factor is required of them and they have none. Read apart from the refresh's own
    /// transaction (the policy's reads take their own) and only for a genuine current refresh
    /// token, so a guess learns nothing; anything else is left to the refresh to refuse.
    async fn no_app_token_without_factor(
        &self,
        token: &gatehouse_crypto::SecretString,
    ) -> Result<(), Error> {
        let Some((id, secret)) = super::sessions::parse_refresh(token.expose()) else {
            return Ok(());
        };
        let session = {
            let mut tx = self.store().begin_read().await?;
            tx.session(id).await?
        };
        let presented = gatehouse_crypto::sha256(&[secret.as_bytes()]);
        let Some(session) = session.filter(|s| {
            s.tier == Tier::Customer && gatehouse_crypto::ct_eq(&presented, &s.refresh_hash)
        }) else {
            return Ok(());
        };
        let user = crate::ids::UserId::from_uuid(session.subject_id);
        match self.enrolment_pending(user, session.org_id).await? {
            Some(by) => Err(Error::SecondFactorEnrolmentRequired(by)),
            None => Ok(()),
        }
    }
}

/// The app registry: operators register, list and remove downstream apps.
#[derive(Debug, Clone, Copy)]
pub struct Apps<'k>(pub(crate) &'k Kernel);

crate::kernel::service_handle!(Apps);

impl Apps<'_> {
    fn operator_only(call: &OperatorCall) -> Result<(), Error> {
        if call.principal.tier == Tier::Operator {
            Ok(())
        } else {
            Err(Error::WrongAudience(
                "only operators manage the app registry",
            ))
        }
    }

    /// Registers an app; `conflict` when another already has this audience.
    pub async fn register(
        &self,
        call: &OperatorCall,
        name: &str,
        audience: &str,
    ) -> Result<AppRecord, Error> {
        Self::operator_only(call)?;
        let name = DisplayName::parse("name", name)?;
        check_app_audience(audience, self.identity().settings())?;
        let app = AppRecord {
            id: new_uuid(self.clock()),
            name: name.as_str().to_owned(),
            audience: audience.to_owned(),
            created_at: self.clock().now(),
        };
        let mut tx = self.store().begin().await?;
        match tx.insert_app(&app).await {
            Err(StoreError::Duplicate) => {
                return Err(Error::Conflict("an app with this audience is registered"));
            }
            other => other?,
        }
        let details = serde_json::json!({"name": app.name, "audience": app.audience});
        let event = AuditEvent::success(call.principal.actor(), "app.registered", "app", app.id)
            .with_details(details.to_string())
            .with_request(call.request.request_id.clone());
        let proof = audit::append_operator(tx.as_mut(), self.clock(), event).await?;
        tx.commit(proof).await?;
        Ok(app)
    }

    /// Every registered app, oldest first.
    pub async fn list(&self, call: &OperatorCall) -> Result<Vec<AppRecord>, Error> {
        Self::operator_only(call)?;
        let mut tx = self.store().begin_read().await?;
        Ok(tx.apps().await?)
    }

    /// Removes an app: refreshes asking for its audience are refused from now on; tokens already
    /// issued for it stay valid until they expire (the access-token lifetime).
    pub async fn remove(&self, call: &OperatorCall, id: Uuid) -> Result<(), Error> {
        Self::operator_only(call)?;
        let mut tx = self.store().begin().await?;
        let app = tx.delete_app(id).await?.ok_or(Error::NotFound("app"))?;
        let details = serde_json::json!({"name": app.name, "audience": app.audience});
        let event = AuditEvent::success(call.principal.actor(), "app.removed", "app", app.id)
            .with_details(details.to_string())
            .with_request(call.request.request_id.clone());
        let proof = audit::append_operator(tx.as_mut(), self.clock(), event).await?;
        tx.commit(proof).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_app_audience_is_an_absolute_uri_without_a_fragment_and_not_gatehouses_own() {
        let settings = IdentitySettings::default();
        for good in [
            "https://billing.example.com",
            "https://api.example.com/reports",
            "urn:example:app",
            "http://127.0.0.1:9000",
        ] {
            assert!(check_app_audience(good, &settings).is_ok(), "{good}");
        }
        let long = format!("https://{}.example.com", "a".repeat(250));
        for bad in [
            "",
            "billing",
            ":nothing",
            "1http://x",
            "https:",
            "https://app.example.com/#top",
            "https://app .example.com",
            "https://app.example.com\n",
            long.as_str(),
            settings.audience.as_str(),
            settings.operator_audience().as_str(),
        ] {
            assert!(
                matches!(
                    check_app_audience(bad, &settings),
                    Err(Error::Invalid {
                        field: "audience",
                        ..
                    })
                ),
                "{bad:?} was accepted"
            );
        }
    }
}
