//! The `state` of an authorization (RFC 6749 10.12, RFC 9700 4.7): signed, bound, short-lived
//! and single use.
//!
//! A state is `BASE64URL(body) "." BASE64URL(tag)`. The body names the link key's version it is
//! signed with, the purpose, when it was issued, the organisation and person it was started for
//! (either may be absent), a random 256-bit nonce and the provider; the tag is the keyring's
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
const FORMAT: u8 = 1;
/// The longest state accepted: a body of at most 143 bytes and a 32-byte tag, in base64url.
const MAX_STATE: usize = 256;
const SEALED_KIND: &str = "oauth_state";

/// Whom and what a state is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    pub purpose: StatePurpose,
    /// The organisation the flow belongs to (a connector's; a sign-in's, when known).
    pub org: Option<OrgId>,
    /// The person who started it (a connector's owner; none for a sign-in).
    pub user: Option<UserId>,
    /// The provider's name.
    pub provider: String,
}

/// What the callback's caller knows and the state must match. `None` checks nothing.
#[derive(Debug, Clone, Copy)]
pub struct Expected<'a> {
    pub purpose: StatePurpose,
    pub org: Option<OrgId>,
    pub user: Option<UserId>,
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
    binding: Binding,
    issued_at: i64,
    nonce: [u8; 32],
}

impl Body {
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(80 + self.binding.provider.len());
        out.push(FORMAT);
        out.extend_from_slice(&self.key_version.to_be_bytes());
        out.push(self.binding.purpose.byte());
        out.extend_from_slice(&self.issued_at.to_be_bytes());
        let flags =
            u8::from(self.binding.org.is_some()) | (u8::from(self.binding.user.is_some()) << 1);
        out.push(flags);
        out.extend_from_slice(
            self.binding
                .org
                .map_or(Uuid::nil(), |o| o.as_uuid())
                .as_bytes(),
        );
        out.extend_from_slice(
            self.binding
                .user
                .map_or(Uuid::nil(), |u| u.as_uuid())
                .as_bytes(),
        );
        out.extend_from_slice(&self.nonce);
        out.extend_from_slice(self.binding.provider.as_bytes());
        out
    }

    fn decode(bytes: &[u8]) -> Option<Self> {
        let (&format, rest) = bytes.split_first()?;
        if format != FORMAT {
            return None;
        }
        let (version, rest) = rest.split_first_chunk::<4>()?;
        let (&purpose, rest) = rest.split_first()?;
        let (issued, rest) = rest.split_first_chunk::<8>()?;
        let (&flags, rest) = rest.split_first()?;
        let (org, rest) = rest.split_first_chunk::<16>()?;
        let (user, rest) = rest.split_first_chunk::<16>()?;
        let (nonce, provider) = rest.split_first_chunk::<32>()?;
        let provider = std::str::from_utf8(provider).ok()?;
        if !super::provider::valid_name(provider) || flags > 3 {
            return None;
        }
        Some(Self {
            key_version: u32::from_be_bytes(*version),
            binding: Binding {
                purpose: StatePurpose::from_byte(purpose)?,
                org: (flags & 1 == 1).then(|| OrgId::from_uuid(Uuid::from_bytes(*org))),
                user: (flags & 2 == 2).then(|| UserId::from_uuid(Uuid::from_bytes(*user))),
                provider: provider.to_owned(),
            },
            issued_at: i64::from_be_bytes(*issued),
            nonce: *nonce,
        })
    }
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
        if !super::provider::valid_name(&binding.provider) {
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
        let verifier = PkceVerifier::generate()?;
        let oidc_nonce = URL_SAFE_NO_PAD.encode(random_32()?);
        let issued_at = now.unix_timestamp();
        let (_, parts, tag) = self.keyring().link_tag_with(|key_version| {
            let body = Body {
                key_version,
                binding: binding.clone(),
                issued_at,
                nonce,
            };
            vec![LABEL.to_vec(), body.encode()]
        })?;
        let body = parts
            .get(1)
            .ok_or_else(|| Error::Internal("state body".into()))?;
        let state = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(body),
            URL_SAFE_NO_PAD.encode(tag)
        );
        let record_id = hex(&digest);
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
        let now = self.clock().now();
        let issued = OffsetDateTime::from_unix_timestamp(body.issued_at)
            .map_err(|_| refused("the state is not one Gatehouse issued"))?;
        let why = if now >= issued + STATE_TTL {
            Some("the state has expired: start again")
        } else if body.binding.purpose != expect.purpose
            || expect.provider.is_some_and(|p| p != body.binding.provider)
        {
            Some("the state was issued for another flow")
        } else if expect.org.is_some() && expect.org != body.binding.org {
            Some("the state was started in another organisation")
        } else if expect.user.is_some() && expect.user != body.binding.user {
            Some("the state was started by another person")
        } else {
            None
        };
        if let Some(why) = why {
            self.state_refused(&body.binding, why, request).await;
            return Err(refused(why));
        }
        let digest = sha256(&[&body.nonce]);
        let mut tx = self.store().begin().await?;
        let row = tx.spend_oauth_state(&digest, now).await?;
        let Some(row) = row.filter(|r| {
            r.purpose == body.binding.purpose
                && r.org_id == body.binding.org
                && r.user_id == body.binding.user.map(|u| u.as_uuid())
                && r.provider == body.binding.provider
        }) else {
            drop(tx);
            let why = "the state was already used";
            self.state_refused(&body.binding, why, request).await;
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
        let event = state_event(&body.binding, "oauth.state_spent", request);
        match body.binding.org {
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
            binding: body.binding,
            verifier,
            oidc_nonce,
            issued_at: issued,
        })
    }

    /// Records a refused state Gatehouse signed: on its organisation's chain when it names one
    /// (a failure to record is logged, the refusal stands).
    async fn state_refused(&self, binding: &Binding, why: &'static str, request: &RequestContext) {
        tracing::info!(
            reason = why,
            purpose = binding.purpose.as_str(),
            "an OAuth state was refused"
        );
        let Some(org) = binding.org else {
            return;
        };
        let mut event = state_event(binding, "oauth.state_refused", request).with_details(
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

fn state_event(binding: &Binding, action: &str, request: &RequestContext) -> AuditEvent {
    let actor = binding.user.map_or_else(Actor::anonymous, Actor::user);
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
            binding: Binding {
                purpose: StatePurpose::Connector,
                org: Some(OrgId::from_uuid(Uuid::from_u128(1))),
                user: None,
                provider: "crm".into(),
            },
            issued_at: 1_700_000_000,
            nonce: [9; 32],
        }
    }

    #[test]
    fn a_body_round_trips_and_a_bent_one_is_refused() {
        let b = body();
        let bytes = b.encode();
        assert_eq!(Body::decode(&bytes), Some(b.clone()));
        let mut sso = b.clone();
        sso.binding.purpose = StatePurpose::Sso;
        sso.binding.org = None;
        sso.binding.user = Some(UserId::from_uuid(Uuid::from_u128(2)));
        assert_eq!(Body::decode(&sso.encode()), Some(sso));
        assert!(Body::decode(bytes.get(..40).unwrap()).is_none());
        let mut wrong_format = bytes.clone();
        wrong_format[0] = 2;
        assert!(Body::decode(&wrong_format).is_none());
        let mut no_provider = b.encode();
        no_provider.truncate(79);
        assert!(Body::decode(&no_provider).is_none());
        assert!(split("nodot").is_none());
        assert!(split(&format!("{}.{}", "A".repeat(300), "B")).is_none());
        assert!(split("AAAA.AAAA").is_none(), "a tag must be 32 bytes");
    }
}
