//! The app registry (ASVS 9.2.4, in the spirit of RFC 8707): the downstream apps an operator
//! registered, each with the audience URI its tokens carry. A client asks for a token for an app
//! with `resource` on refresh; Gatehouse's own API refuses such a token, and a service bound to
//! one app refuses another's (`Auth::authenticate_for_app`). Registering and removing are
//! audited on the operators' chain.
//!
//! A token presented as an app's passes only while its app is registered. Which audiences are
//! registered is cached per audience for at most [`APP_CACHE_MAX_AGE`] (at most
//! [`APP_CACHE_CAPACITY`] entries), forgotten at once on this instance when an app is registered
//! or removed and on the others through the revocation fan-out (`Revocation::Apps`). Only a
//! token that verified and carries the asked audience reaches the cache, so an entry exists only
//! for an audience Gatehouse once issued tokens for: a flood of made-up audiences costs no read.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use time::OffsetDateTime;
use uuid::Uuid;

use super::{Expected, IdentitySettings, Principal};
use crate::audit::{self, AuditEvent};
use crate::context::OperatorCall;
use crate::error::{Error, StoreError};
use crate::ids::new_uuid;
use crate::inputs::DisplayName;
use crate::kernel::Kernel;
use crate::store::{AppRecord, PlatformTx, Tier};

/// The longest audience accepted: long enough for any URL an app is served at.
const MAX_AUDIENCE: usize = 255;

/// How long whether an audience is registered is trusted without asking the store: the same
/// bound as a session's cached state, for a change whose fan-out message was lost.
pub const APP_CACHE_MAX_AGE: time::Duration = super::cache::SESSION_CACHE_MAX_AGE;
/// The most audiences remembered; past it the cache starts again (a deployment has a handful).
pub const APP_CACHE_CAPACITY: usize = 1024;

/// Whether each audience asked about was registered, as last read.
#[derive(Debug)]
pub struct AppCache {
    entries: RwLock<HashMap<Arc<str>, (bool, OffsetDateTime)>>,
    capacity: usize,
    /// Moves on every forget: a read that began before a change does not store its answer.
    generation: AtomicU64,
}

impl AppCache {
    #[must_use]
    pub fn new(capacity: usize) -> Self {
        Self {
            entries: RwLock::new(HashMap::new()),
            capacity: capacity.max(1),
            generation: AtomicU64::new(0),
        }
    }

    fn get(&self, audience: &str, now: OffsetDateTime) -> Option<bool> {
        self.entries.read().ok().and_then(|m| {
            m.get(audience)
                .filter(|(_, at)| now - *at <= APP_CACHE_MAX_AGE)
                .map(|(v, _)| *v)
        })
    }

    fn put(&self, audience: &str, registered: bool, now: OffsetDateTime, read_at: u64) {
        if let Ok(mut map) = self.entries.write() {
            if self.generation.load(Ordering::Acquire) != read_at {
                return;
            }
            if map.len() >= self.capacity && !map.contains_key(audience) {
                map.clear();
            }
            map.insert(Arc::from(audience), (registered, now));
        }
    }

    /// An app was registered or removed (here or elsewhere): ask the store next time.
    pub fn forget_all(&self) {
        if let Ok(mut map) = self.entries.write() {
            self.generation.fetch_add(1, Ordering::AcqRel);
            map.clear();
        }
    }
}

/// `audience` compared as two registrations would collide: the scheme and, for a URI with an
/// authority, the host in lower case (RFC 3986 section 6.2.2.1), and without a trailing slash.
/// Tokens still carry and are checked against the audience exactly as registered.
fn audience_key(audience: &str) -> String {
    let trimmed = audience.strip_suffix('/').unwrap_or(audience);
    let Some((scheme, rest)) = trimmed.split_once(':') else {
        return trimmed.to_owned();
    };
    let (authority, path) = match rest.strip_prefix("//") {
        Some(after) => {
            let end = after.find(['/', '?']).unwrap_or(after.len());
            after.split_at(end)
        }
        None => ("", rest),
    };
    let slashes = if rest.starts_with("//") { "//" } else { "" };
    format!(
        "{}:{slashes}{}{path}",
        scheme.to_ascii_lowercase(),
        authority.to_ascii_lowercase()
    )
}

/// `app` checked again against the current settings just before a token is signed for it: a
/// restored registry, or a changed `[identity] audience`, could hold an app whose audience is now
/// Gatehouse's own or the operators'.
pub(crate) fn signable_app_audience(
    app: &str,
    settings: &IdentitySettings,
) -> Result<String, Error> {
    check_app_audience(app, settings)
        .map(|()| app.to_owned())
        .map_err(|_| {
            Error::InvalidTarget(
                "resource is not an app's audience under the current settings (it may be Gatehouse's own)",
            )
        })
}

/// Whether `audience` may name an app: an absolute URI (`scheme:rest`, RFC 3986) without a
/// fragment (RFC 8707 section 2), at most 255 characters of printable ASCII without spaces, and
/// neither Gatehouse's own audience nor the operators'. Compared exactly everywhere, so it is
/// taken as written, not normalised.
pub fn check_app_audience(audience: &str, settings: &IdentitySettings) -> Result<(), Error> {
    let bad = |why: &'static str| Err(Error::invalid("audience", why));
    if audience.is_empty() || audience.len() > MAX_AUDIENCE {
        return bad("must be 1 to 255 characters");
    }
    // A URI is ASCII (RFC 3986); anything else would compare unequal to what looks the same.
    if !audience.bytes().all(|b| b.is_ascii_graphic()) {
        return bad("must be printable ASCII without spaces");
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
        let settings = self.identity().settings();
        let Some(resource) = resource.filter(|r| *r != settings.audience) else {
            return Ok(None);
        };
        // Before the store is asked: what could never be an app's audience (too long, not a URI,
        // Gatehouse's own) is refused without a read.
        signable_app_audience(resource, settings)?;
        match tx.app_by_audience(resource).await? {
            Some(app) => signable_app_audience(&app.audience, settings).map(Some),
            None => Err(Error::InvalidTarget(
                "resource names no registered app (an operator lists them at GET /admin/v1/apps)",
            )),
        }
    }

    /// Whether an app is registered with exactly `audience` (cached; see the module's note).
    async fn app_registered(&self, audience: &str) -> Result<bool, Error> {
        let cache = &self.identity().apps;
        let now = self.clock().now();
        if let Some(known) = cache.get(audience, now) {
            return Ok(known);
        }
        let read_at = cache.generation.load(Ordering::Acquire);
        let mut tx = self.store().begin_read().await?;
        let registered = tx.app_by_audience(audience).await?.is_some();
        drop(tx);
        cache.put(audience, registered, now, read_at);
        Ok(registered)
    }

    /// The registry changed: forget what was cached, here and on every other instance.
    fn apps_changed(&self) {
        self.identity().apps.forget_all();
        self.publish_revocation(super::Revocation::Apps);
    }
}

impl super::Auth<'_> {
    /// The subject of `token` when it is genuine (whatever its audience): the subject a
    /// wrong-audience refusal names (a second verification, on the refusal path only).
    pub async fn other_audience_subject(&self, token: &str) -> Option<String> {
        if crate::api_keys::is_api_key(token) {
            return None;
        }
        let id = self.0.identity();
        id.tokens
            .verify(self.0.keyring(), &id.settings, token, self.0.clock().now())
            .await
            .ok()
            .map(|v| v.principal.subject.to_string())
    }

    /// Verifies a person's access token issued for the registered app whose audience is
    /// `app_audience` (by `resource` on refresh, RFC 8707), and checks its session is live.
    /// Refused (`wrong_audience`): an `app_audience` that could not be an app's (Gatehouse's
    /// operators' audience among them, so a proxy's query cannot turn this into an operator
    /// check) or that no registered app has, a token for Gatehouse's own API, for the
    /// operators' or for another app, and an API key, which is issued for no app. Gatehouse's
    /// own audience as `app_audience` is `authenticate` on the tenant API.
    pub async fn authenticate_for_app(
        &self,
        token: &str,
        app_audience: &str,
    ) -> Result<Arc<Principal>, Error> {
        let settings = self.identity().settings();
        if app_audience == settings.audience {
            return self.authenticate(token, super::Audience::Tenant).await;
        }
        if check_app_audience(app_audience, settings).is_err() {
            return Err(Error::WrongAudience(
                "audience is not an app's: only a registered app's audience URI, or Gatehouse's own, may be asked for",
            ));
        }
        if crate::api_keys::is_api_key(token) {
            return Err(Error::WrongAudience(
                "an API key is issued for no app; this needs a person's token for the app",
            ));
        }
        let principal = self
            .authenticate_person(token, Expected::App(app_audience))
            .await?;
        if !self.app_registered(app_audience).await? {
            return Err(Error::WrongAudience(
                "no app is registered with this audience (an operator lists them at GET /admin/v1/apps)",
            ));
        }
        Ok(principal)
    }

    /// A credential one of the deployment's services presents for someone: with the service
    /// bound to an app, a person's token must carry that app's audience (a token for Gatehouse or
    /// for another app is `wrong_audience`); unbound, Gatehouse's own, as on the tenant API. An
    /// API key is verified as on the tenant API either way: it carries no audience.
    pub async fn authenticate_for_service(
        &self,
        call: &crate::context::ServiceCall,
        credential: &str,
    ) -> Result<Arc<Principal>, Error> {
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
        let key = audience_key(audience);
        if tx
            .apps()
            .await?
            .iter()
            .any(|a| audience_key(&a.audience) == key)
        {
            return Err(Error::Conflict(
                "an app with this audience is registered (compared with the scheme and host in lower case and without a trailing slash)",
            ));
        }
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
        self.apps_changed();
        Ok(app)
    }

    /// Every registered app, oldest first.
    pub async fn list(&self, call: &OperatorCall) -> Result<Vec<AppRecord>, Error> {
        Self::operator_only(call)?;
        let mut tx = self.store().begin_read().await?;
        Ok(tx.apps().await?)
    }

    /// Which of `audiences` no app is registered with: the posture check of the services bound
    /// to apps (`service_auth.apps`), whose audiences are not looked up at load.
    pub async fn unregistered(&self, audiences: &[String]) -> Result<Vec<String>, Error> {
        let mut tx = self.store().begin_read().await?;
        let apps = tx.apps().await?;
        Ok(audiences
            .iter()
            .filter(|a| !apps.iter().any(|app| &app.audience == *a))
            .cloned()
            .collect())
    }

    /// Removes an app: refreshes asking for its audience are refused from now on, and so are the
    /// tokens already issued for it (at once on this instance, within [`APP_CACHE_MAX_AGE`] on
    /// another whose fan-out message was lost).
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
        self.apps_changed();
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

    #[test]
    fn a_uri_shaped_own_audience_and_the_operators_are_refused_as_an_apps() {
        let settings = IdentitySettings {
            audience: "urn:gh:self".to_owned(),
            ..IdentitySettings::default()
        };
        assert_eq!(settings.operator_audience(), "urn:gh:self-operators");
        for own in ["urn:gh:self", "urn:gh:self-operators"] {
            assert!(check_app_audience(own, &settings).is_err(), "{own}");
            assert!(
                matches!(
                    signable_app_audience(own, &settings),
                    Err(Error::InvalidTarget(_))
                ),
                "{own}"
            );
        }
        for app in ["urn:gh:selfish", "urn:gh:self-operator", "urn:gh:other"] {
            assert_eq!(
                signable_app_audience(app, &settings).ok().as_deref(),
                Some(app)
            );
        }
        assert!(check_app_audience("https://bïlling.example.com", &settings).is_err());
    }

    #[test]
    fn registrations_collide_up_to_the_case_of_scheme_and_host_and_a_trailing_slash() {
        let key = audience_key("https://billing.example.com");
        for same in [
            "HTTPS://Billing.Example.COM",
            "https://billing.example.com/",
            "Https://BILLING.example.com/",
        ] {
            assert_eq!(audience_key(same), key, "{same}");
        }
        for other in [
            "https://billing.example.com/reports",
            "https://billing.example.org",
            "http://billing.example.com",
        ] {
            assert_ne!(audience_key(other), key, "{other}");
        }
        assert_ne!(
            audience_key("https://a.example.com/Path"),
            audience_key("https://a.example.com/path")
        );
        assert_eq!(audience_key("URN:example:App"), "urn:example:App");
    }

    #[test]
    fn the_app_cache_forgets_on_change_and_ignores_a_read_begun_before_it() {
        let cache = AppCache::new(2);
        let t = OffsetDateTime::UNIX_EPOCH;
        let g = cache.generation.load(Ordering::Acquire);
        cache.put("urn:a", true, t, g);
        assert_eq!(cache.get("urn:a", t), Some(true));
        assert_eq!(
            cache.get("urn:a", t + APP_CACHE_MAX_AGE + time::Duration::seconds(1)),
            None
        );
        cache.forget_all();
        assert_eq!(cache.get("urn:a", t), None);
        // A read that began before the forget does not store what it read.
        cache.put("urn:a", true, t, g);
        assert_eq!(cache.get("urn:a", t), None);
        let g = cache.generation.load(Ordering::Acquire);
        for a in ["urn:a", "urn:b", "urn:c"] {
            cache.put(a, false, t, g);
        }
        assert!(cache.entries.read().unwrap().len() <= 2);
    }
}
