//! The `state` of an authorization (RFC 6749 10.12, RFC 9700 4.7): signed, bound, short-lived
//! and single use.
//!
//! A state is `BASE64URL(body) "." BASE64URL(tag)`. The body names the link key's version it is
//! signed with, the purpose, the mode the flow must be completed in, when it was issued, a random
//! 256-bit nonce, the organisation and person it was started for (either may be absent) sealed
//! under the platform key so that the URL does not name them, and the target (the provider's
//! stable key, which the callback's path must name); the tag is the keyring's
//! link-key HMAC of a label and the body ([`crate::keyring::Keyring::link_tag_with`]), which an
//! older key keeps verifying for the link-key overlap after a rotation. The nonce's SHA-256 finds
//! the state's row (`oauth_states`), which holds the PKCE verifier and the OpenID nonce sealed
//! under the platform key and is spent by one conditional update.
//!
//! At the callback, in this order and before any code is exchanged: the signature, the age
//! (ten minutes by the injected clock), what the caller expects (purpose, provider, the
//! organisation and person of the call), then the row, spent. Any failure is
//! [`Error::OAuthState`]; a refusal of a state Gatehouse signed for an organisation is audited on
//! that organisation's chain.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use gatehouse_crypto::{SecretString, fill_random, sha256};
use time::{Duration, OffsetDateTime};
use url::Url;
use uuid::Uuid;

use super::OAuth;
use super::pkce::{CHALLENGE_METHOD, PkceVerifier};
use super::provider::ProviderEndpoints;
use crate::audit::{self, Actor, AuditEvent, Outcome};
use crate::context::RequestContext;
use crate::error::Error;
use crate::ids::{OrgId, UserId};
use crate::scope::TenantScope;
use crate::store::{OAuthStateRecord, StatePurpose};

/// How long a state is accepted after it was issued.
pub const STATE_TTL: Duration = Duration::minutes(10);

const LABEL: &[u8] = b"gatehouse.oauth-state.v1\0";
const FORMAT: u8 = 2;
/// The longest state accepted: a body of at most 230 bytes and a 32-byte tag, in base64url.
/// Routes that take a state back (a bearer-mode sign-in's or a link's completion) accept this
/// length too: a platform provider's name of up to 64 characters makes a state of up to 280.
pub const MAX_STATE: usize = 384;
const SEALED_KIND: &str = "oauth_state";

/// How a flow must be completed, recorded in its state: a state started in one mode is refused
/// in another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowMode {
    /// Started with a browser's cookie session: completed by that browser, with that session.
    Cookie,
    /// Started with a bearer token: completed by the product relaying the callback with the
    /// person's bearer token.
    Bearer,
    /// The flow does not distinguish (yet): sign-in through a provider until it records its
    /// own mode.
    Unbound,
}

impl FlowMode {
    fn byte(self) -> u8 {
        match self {
            Self::Cookie => 1,
            Self::Bearer => 2,
            Self::Unbound => 3,
        }
    }

    fn from_byte(b: u8) -> Option<Self> {
        match b {
            1 => Some(Self::Cookie),
            2 => Some(Self::Bearer),
            3 => Some(Self::Unbound),
            _ => None,
        }
    }
}

/// Whom and what a state is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    pub purpose: StatePurpose,
    /// How the flow must be completed.
    pub mode: FlowMode,
    /// The organisation the flow belongs to (a connector's; a sign-in's, when known).
    pub org: Option<OrgId>,
    /// The person who started it (a connector's owner; none for a sign-in).
    pub user: Option<UserId>,
    /// The target: the provider's stable key (a platform provider's name, an organisation
    /// provider's id), which the callback's path names (see [`super::OAuth::target_redirect_uri`]).
    pub provider: String,
}

/// What the callback's caller knows and the state must match. `None` checks nothing; `mode` is
/// compared exactly.
#[derive(Debug, Clone, Copy)]
pub struct Expected<'a> {
    pub purpose: StatePurpose,
    pub mode: FlowMode,
    pub org: Option<OrgId>,
    /// The person presenting the callback: the state must be theirs, and a refusal is recorded
    /// with them as its actor.
    pub user: Option<UserId>,
    /// The target the callback's path names.
    pub provider: Option<&'a str>,
}

/// An authorization request to send the browser to.
#[derive(Debug, Clone, Copy)]
pub struct AuthorizationRequest<'a> {
    pub endpoints: &'a ProviderEndpoints,
    pub client_id: &'a str,
    pub scopes: &'a [String],
    /// Where the provider sends the browser back (registered at the provider).
    pub redirect_uri: &'a str,
    /// Further parameters (`prompt`, `login_hint`, `access_type`); the protocol's own names
    /// (`state`, `code_challenge`, ...) are refused.
    pub extra: &'a [(&'a str, &'a str)],
}

/// A started authorization.
#[derive(Debug, Clone)]
pub struct Authorization {
    /// The provider's authorization endpoint with every parameter.
    pub url: Url,
    /// The state sent (also inside `url`).
    pub state: String,
    pub expires_at: OffsetDateTime,
}

/// A state spent at the callback: what it was bound to and the secrets its row held.
#[derive(Debug)]
pub struct Spent {
    pub binding: Binding,
    /// For the token request's `code_verifier`.
    pub verifier: PkceVerifier,
    /// The `nonce` sent in the authorization request: an ID token must carry it.
    pub oidc_nonce: SecretString,
    pub issued_at: OffsetDateTime,
}

/// The parts of a signed body.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Body {
    key_version: u32,
    purpose: StatePurpose,
    mode: FlowMode,
    issued_at: i64,
    nonce: [u8; 32],
    /// The organisation and person, sealed under the platform key (see [`seal_parties`]).
    parties: Vec<u8>,
    provider: String,
}

impl Body {
    fn encode(&self) -> Option<Vec<u8>> {
        let sealed_len = u8::try_from(self.parties.len()).ok()?;
        let mut out = Vec::with_capacity(64 + self.parties.len() + self.provider.len());
        out.push(FORMAT);
        out.extend_from_slice(&self.key_version.to_be_bytes());
        out.push(self.purpose.byte());
        out.push(self.mode.byte());
        out.extend_from_slice(&self.issued_at.to_be_bytes());
        out.extend_from_slice(&self.nonce);
        out.push(sealed_len);
        out.extend_from_slice(&self.parties);
        out.extend_from_slice(self.provider.as_bytes());
        Some(out)
    }

    fn decode(bytes: &[u8]) -> Option<Self> {
        let (&format, rest) = bytes.split_first()?;
        if format != FORMAT {
            return None;
        }
        let (version, rest) = rest.split_first_chunk::<4>()?;
        let (&purpose, rest) = rest.split_first()?;
        let (&mode, rest) = rest.split_first()?;
        let (issued, rest) = rest.split_first_chunk::<8>()?;
        let (nonce, rest) = rest.split_first_chunk::<32>()?;
        let (&sealed_len, rest) = rest.split_first()?;
        let (parties, provider) = rest.split_at_checked(usize::from(sealed_len))?;
        let provider = std::str::from_utf8(provider).ok()?;
        if !super::provider::valid_target(provider) {
            return None;
        }
        Some(Self {
            key_version: u32::from_be_bytes(*version),
            purpose: StatePurpose::from_byte(purpose)?,
            mode: FlowMode::from_byte(mode)?,
            issued_at: i64::from_be_bytes(*issued),
            nonce: *nonce,
            parties: parties.to_vec(),
            provider: provider.to_owned(),
        })
    }
}

/// The organisation and person of a binding as sealed in a state's body: flags, then both ids
/// (nil when absent), under the platform key bound to the state's nonce digest.
fn parties_plain(org: Option<OrgId>, user: Option<UserId>) -> Vec<u8> {
    let mut plain = Vec::with_capacity(33);
    plain.push(u8::from(org.is_some()) | (u8::from(user.is_some()) << 1));
    plain.extend_from_slice(org.map_or(Uuid::nil(), |o| o.as_uuid()).as_bytes());
    plain.extend_from_slice(user.map_or(Uuid::nil(), |u| u.as_uuid()).as_bytes());
    plain
}

fn parties_of(plain: &[u8]) -> Option<(Option<OrgId>, Option<UserId>)> {
    let (&flags, rest) = plain.split_first()?;
    let (org, rest) = rest.split_first_chunk::<16>()?;
    let (user, rest) = rest.split_first_chunk::<16>()?;
    if flags > 3 || !rest.is_empty() {
        return None;
    }
    Some((
        (flags & 1 == 1).then(|| OrgId::from_uuid(Uuid::from_bytes(*org))),
        (flags & 2 == 2).then(|| UserId::from_uuid(Uuid::from_bytes(*user))),
    ))
}

/// A state's text split into its body and tag, both decoded; `None` when it is not one.
fn split(state: &str) -> Option<(Vec<u8>, Vec<u8>)> {
    if state.len() > MAX_STATE {
        return None;
    }
    let (body, tag) = state.split_once('.')?;
    let body = URL_SAFE_NO_PAD.decode(body).ok()?;
    let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
    (tag.len() == 32).then_some((body, tag))
}

fn refused(why: &'static str) -> Error {
    Error::OAuthState(why)
}

/// Parameters Gatehouse sets itself, which `extra` may not name.
const OWN_PARAMETERS: [&str; 8] = [
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "code_challenge",
    "code_challenge_method",
    "nonce",
];

fn random_32() -> Result<[u8; 32], Error> {
    let mut b = [0u8; 32];
    fill_random(&mut b).map_err(|e| Error::Internal(e.to_string()))?;
    Ok(b)
}

impl OAuth<'_> {
    /// Starts an authorization: a fresh PKCE verifier, OpenID nonce and state for `binding`,
    /// the state's row written with `event` in one transaction (on `binding.org`'s chain, or the
    /// operators' without one), and the URL to send the browser to.
    ///
    /// `binding.org` must be the organisation of `scope` (the caller's, already authorised), or
    /// absent with no scope.
    pub async fn begin(
        &self,
        scope: Option<&TenantScope>,
        binding: Binding,
        request: AuthorizationRequest<'_>,
        event: AuditEvent,
    ) -> Result<Authorization, Error> {
        if binding.org != scope.map(TenantScope::org_id) {
            return Err(Error::Internal(
                "an OAuth state's organisation must be the caller's scope".into(),
            ));
        }
        if !super::provider::valid_target(&binding.provider) {
            return Err(Error::invalid("provider", "not a provider name"));
        }
        if let Some((name, _)) = request
            .extra
            .iter()
            .find(|(n, _)| OWN_PARAMETERS.contains(n))
        {
            return Err(Error::Internal(format!(
                "an authorization request may not set {name} itself"
            )));
        }
        let now = self.clock().now();
        let nonce = random_32()?;
        let digest = sha256(&[&nonce]);
        let record_id = hex(&digest);
        let verifier = PkceVerifier::generate()?;
        let oidc_nonce = URL_SAFE_NO_PAD.encode(random_32()?);
        let issued_at = now.unix_timestamp();
        let parties = self.keyring().seal_platform(
            SEALED_KIND,
            &format!("{record_id}/parties"),
            &parties_plain(binding.org, binding.user),
        )?;
        let mut encoded = None;
        let (_, parts, tag) = self.keyring().link_tag_with(|key_version| {
            let body = Body {
                key_version,
                purpose: binding.purpose,
                mode: binding.mode,
                issued_at,
                nonce,
                parties,
                provider: binding.provider.clone(),
            }
            .encode();
            encoded = body.is_some().then_some(());
            vec![LABEL.to_vec(), body.unwrap_or_default()]
        })?;
        let body = parts
            .get(1)
            .filter(|_| encoded.is_some())
            .ok_or_else(|| Error::Internal("state body".into()))?;
        let state = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(body),
            URL_SAFE_NO_PAD.encode(tag)
        );
        // Whole seconds, like the body's issue time: the row and the body agree on the end.
        let expires_at = OffsetDateTime::from_unix_timestamp(issued_at)
            .map_err(|e| Error::Internal(e.to_string()))?
            + STATE_TTL;
        let record = OAuthStateRecord {
            digest: digest.to_vec(),
            purpose: binding.purpose,
            org_id: binding.org,
            user_id: binding.user.map(|u| u.as_uuid()),
            provider: binding.provider.clone(),
            verifier_sealed: self.keyring().seal_platform(
                SEALED_KIND,
                &format!("{record_id}/verifier"),
                verifier.expose().as_bytes(),
            )?,
            nonce_sealed: self.keyring().seal_platform(
                SEALED_KIND,
                &format!("{record_id}/nonce"),
                oidc_nonce.as_bytes(),
            )?,
            created_at: now,
            expires_at,
            spent_at: None,
        };
        let mut tx = self.store().begin().await?;
        tx.insert_oauth_state(&record).await?;
        match scope {
            Some(scope) => {
                let mut tx = tx.enter(scope).await?;
                let proof = audit::append_tenant(tx.as_mut(), self.clock(), event).await?;
                tx.commit(proof).await?;
            }
            None => {
                let proof = audit::append_operator(tx.as_mut(), self.clock(), event).await?;
                tx.commit(proof).await?;
            }
        }
        let mut url = request.endpoints.authorization.clone();
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("response_type", "code")
                .append_pair("client_id", request.client_id)
                .append_pair("redirect_uri", request.redirect_uri)
                .append_pair("state", &state)
                .append_pair("code_challenge", &verifier.challenge())
                .append_pair("code_challenge_method", CHALLENGE_METHOD)
                .append_pair("nonce", &oidc_nonce);
            if !request.scopes.is_empty() {
                q.append_pair("scope", &request.scopes.join(" "));
            }
            for (name, value) in request.extra {
                q.append_pair(name, value);
            }
        }
        Ok(Authorization {
            url,
            state,
            expires_at,
        })
    }

    /// Checks and spends a state returned to a callback: signature, age, `expect`, then the
    /// row, spent in one conditional update with its audit event. Only then may the code be
    /// exchanged, with the verifier this returns. The organisation a spent state names was
    /// signed by this deployment for an authorised caller: its audit event goes to that
    /// organisation's chain.
    pub async fn spend(
        &self,
        state: &str,
        expect: &Expected<'_>,
        request: &RequestContext,
    ) -> Result<Spent, Error> {
        let Some((raw, tag)) = split(state) else {
            tracing::info!("an OAuth state was refused: malformed");
            return Err(refused("the state is not one Gatehouse issued"));
        };
        let body = match Body::decode(&raw) {
            Some(b)
                if self
                    .keyring()
                    .link_verifies(b.key_version, &[LABEL, &raw], &tag)
                    .await =>
            {
                b
            }
            _ => {
                tracing::info!("an OAuth state was refused: its signature does not verify");
                return Err(refused("the state is not one Gatehouse issued"));
            }
        };
        let digest = sha256(&[&body.nonce]);
        let record_id = hex(&digest);
        let Some((org, user)) = self
            .keyring()
            .open_platform(SEALED_KIND, &format!("{record_id}/parties"), &body.parties)
            .ok()
            .and_then(|p| parties_of(p.expose()))
        else {
            tracing::info!("an OAuth state was refused: its parties cannot be opened");
            return Err(refused("the state is not one Gatehouse issued"));
        };
        let binding = Binding {
            purpose: body.purpose,
            mode: body.mode,
            org,
            user,
            provider: body.provider.clone(),
        };
        let now = self.clock().now();
        let issued = OffsetDateTime::from_unix_timestamp(body.issued_at)
            .map_err(|_| refused("the state is not one Gatehouse issued"))?;
        let why = if now >= issued + STATE_TTL {
            Some("the state has expired: start again")
        } else if binding.purpose != expect.purpose
            || expect.provider.is_some_and(|p| p != binding.provider)
        {
            Some("the state was issued for another flow")
        } else if binding.mode != expect.mode {
            Some("the state was started in another mode (cookie session or bearer token)")
        } else if expect.org.is_some() && expect.org != binding.org {
            Some("the state was started in another organisation")
        } else if expect.user.is_some() && expect.user != binding.user {
            Some("the state was started by another person")
        } else {
            None
        };
        if let Some(why) = why {
            self.state_refused(&binding, expect.user, why, request)
                .await;
            return Err(refused(why));
        }
        let mut tx = self.store().begin().await?;
        let row = tx.spend_oauth_state(&digest, now).await?;
        let Some(row) = row.filter(|r| {
            r.purpose == binding.purpose
                && r.org_id == binding.org
                && r.user_id == binding.user.map(|u| u.as_uuid())
                && r.provider == binding.provider
        }) else {
            drop(tx);
            let why = "the state was already used";
            self.state_refused(&binding, expect.user, why, request)
                .await;
            return Err(refused(why));
        };
        let record_id = hex(&digest);
        let verifier = self
            .keyring()
            .open_platform(
                SEALED_KIND,
                &format!("{record_id}/verifier"),
                &row.verifier_sealed,
            )
            .and_then(|v| {
                String::from_utf8(v.expose().to_vec())
                    .ok()
                    .and_then(|s| PkceVerifier::from_secret(SecretString::new(s)))
                    .ok_or_else(|| Error::Unreadable("an OAuth state's verifier".into()))
            })?;
        let oidc_nonce = self
            .keyring()
            .open_platform(
                SEALED_KIND,
                &format!("{record_id}/nonce"),
                &row.nonce_sealed,
            )
            .and_then(|v| {
                String::from_utf8(v.expose().to_vec())
                    .map(SecretString::new)
                    .map_err(|_| Error::Unreadable("an OAuth state's nonce".into()))
            })?;
        let event = state_event(&binding, binding.user, "oauth.state_spent", request);
        match binding.org {
            Some(org) => {
                let mut tx = tx.enter(&TenantScope::granted(org)).await?;
                let proof = audit::append_tenant(tx.as_mut(), self.clock(), event).await?;
                tx.commit(proof).await?;
            }
            None => {
                let proof = audit::append_operator(tx.as_mut(), self.clock(), event).await?;
                tx.commit(proof).await?;
            }
        }
        Ok(Spent {
            binding,
            verifier,
            oidc_nonce,
            issued_at: issued,
        })
    }

    /// Records a refused state Gatehouse signed: on its organisation's chain when it names one,
    /// with the person who presented it (`by`) as the actor, anonymous without one (a failure to
    /// record is logged, the refusal stands).
    async fn state_refused(
        &self,
        binding: &Binding,
        by: Option<UserId>,
        why: &'static str,
        request: &RequestContext,
    ) {
        tracing::info!(
            reason = why,
            purpose = binding.purpose.as_str(),
            "an OAuth state was refused"
        );
        let Some(org) = binding.org else {
            return;
        };
        let mut event = state_event(binding, by, "oauth.state_refused", request).with_details(
            serde_json::json!({
                "purpose": binding.purpose.as_str(),
                "provider": binding.provider,
                "reason": why,
            })
            .to_string(),
        );
        event.outcome = Outcome::Denied;
        let written = async {
            let mut tx = self
                .store()
                .begin_scoped(&TenantScope::granted(org))
                .await?;
            let proof = audit::append_tenant(tx.as_mut(), self.clock(), event).await?;
            tx.commit(proof).await?;
            Ok::<(), Error>(())
        };
        if let Err(e) = written.await {
            tracing::warn!(error = %e, "an OAuth state's refusal could not be recorded");
        }
    }
}

fn state_event(
    binding: &Binding,
    by: Option<UserId>,
    action: &str,
    request: &RequestContext,
) -> AuditEvent {
    let actor = by.map_or_else(Actor::anonymous, Actor::user);
    AuditEvent::success(actor, action, "oauth_provider", &binding.provider)
        .with_details(
            serde_json::json!({
                "purpose": binding.purpose.as_str(),
                "provider": binding.provider,
            })
            .to_string(),
        )
        .with_request(request.request_id.clone())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body() -> Body {
        Body {
            key_version: 7,
            purpose: StatePurpose::Connector,
            mode: FlowMode::Cookie,
            issued_at: 1_700_000_000,
            nonce: [9; 32],
            parties: vec![5; 61],
            provider: "crm".into(),
        }
    }

    #[test]
    fn a_body_round_trips_and_a_bent_one_is_refused() {
        let b = body();
        let bytes = b.encode().unwrap();
        assert_eq!(Body::decode(&bytes), Some(b.clone()));
        let mut sso = b.clone();
        sso.purpose = StatePurpose::Sso;
        sso.mode = FlowMode::Unbound;
        sso.provider = "0190f3a2-7c1e-7000-8000-000000000001".into();
        assert_eq!(Body::decode(&sso.encode().unwrap()), Some(sso));
        assert!(Body::decode(bytes.get(..40).unwrap()).is_none());
        let mut wrong_format = bytes.clone();
        wrong_format[0] = 1;
        assert!(Body::decode(&wrong_format).is_none());
        let mut no_provider = b.encode().unwrap();
        no_provider.truncate(no_provider.len() - 3);
        assert!(Body::decode(&no_provider).is_none());
        let mut bad_mode = bytes.clone();
        bad_mode[6] = 9;
        assert!(Body::decode(&bad_mode).is_none());
        assert!(split("nodot").is_none());
        assert!(split(&format!("{}.{}", "A".repeat(400), "B")).is_none());
        assert!(split("AAAA.AAAA").is_none(), "a tag must be 32 bytes");
    }

    #[test]
    fn the_parties_round_trip_and_a_bent_one_is_refused() {
        let org = OrgId::from_uuid(Uuid::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef));
        let user = UserId::from_uuid(Uuid::from_u128(0xfedc_ba98_7654_3210_fedc_ba98_7654_3210));
        let plain = parties_plain(Some(org), Some(user));
        assert_eq!(parties_of(&plain), Some((Some(org), Some(user))));
        assert_eq!(parties_of(&parties_plain(None, None)), Some((None, None)));
        assert!(parties_of(plain.get(..20).unwrap()).is_none());
        let mut bad = plain.clone();
        bad[0] = 4;
        assert!(parties_of(&bad).is_none());
    }
}
