//! Share links (F1): a record opened by whoever holds a link, without an account. A link is a
//! 256-bit token shown once and stored as a SHA-256 digest; it may ask for a password (an
//! Argon2id hash, checked on the password pool behind the sign-in lockouts), bound its views and
//! always expires. Opening it gives a short viewer pass limited to reading that one record.
//!
//! A viewer pass is not stored: it names the organisation, the link, the link's password
//! generation and its own expiry, under a link key's HMAC. Every request with it reads the
//! link's row, so revoking the link or changing its password ends every pass on the next
//! request, on every instance, with nothing to fan out.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use gatehouse_crypto::SecretString;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use super::access;
use super::records::RecordView;
use crate::audit::{self, Actor, AuditEvent};
use crate::context::{RequestContext, TenantCall};
use crate::error::Error;
use crate::ids::{OrgId, new_uuid};
use crate::inputs::{NewPassword, normalize_password};
use crate::page::{Page, PageRequest};
use crate::scope::TenantScope;
use crate::store::{ShareLinkRow, TenantTx};

const LINK_PREFIX: &str = "gsl_";
const PASS_PREFIX: &str = "gsv_";
const PASS_LABEL: &[u8] = b"gatehouse.share-viewer.v1\0";
/// key version, organisation, link, generation, expiry (unix seconds).
const PASS_BODY: usize = 4 + 16 + 16 + 4 + 8;

/// Bounds on share links, from configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShareSettings {
    /// The furthest a link's `expires_at` may be.
    pub max_ttl: Duration,
    /// How long a viewer pass lasts (never past its link's expiry).
    pub viewer_ttl: Duration,
}

impl Default for ShareSettings {
    fn default() -> Self {
        Self {
            max_ttl: Duration::days(30),
            viewer_ttl: Duration::minutes(15),
        }
    }
}

/// A new link.
#[derive(Debug)]
pub struct NewShareLink {
    pub password: Option<SecretString>,
    pub expires_at: OffsetDateTime,
    pub max_views: Option<u32>,
}

/// A link just made: its token, shown this once.
#[derive(Debug)]
pub struct CreatedShareLink {
    pub link: ShareLinkRow,
    pub token: SecretString,
}

/// What opening a link gives.
#[derive(Debug)]
pub struct ViewerPass {
    pub token: SecretString,
    pub expires_at: OffsetDateTime,
    pub record_id: Uuid,
}

fn link_digest(token: &str) -> [u8; 32] {
    gatehouse_crypto::sha256(&[b"gatehouse.share-link.v1\0", token.as_bytes()])
}

fn well_formed_link(token: &str) -> bool {
    token.len() == LINK_PREFIX.len() + 43
        && token.starts_with(LINK_PREFIX)
        && token
            .bytes()
            .skip(LINK_PREFIX.len())
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A viewer pass's claims.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Pass {
    org: OrgId,
    link: Uuid,
    generation: u32,
    expires_unix: i64,
}

impl Pass {
    fn body(&self, key_version: u32) -> [u8; PASS_BODY] {
        let mut b = [0u8; PASS_BODY];
        let org = self.org.as_uuid();
        let parts: [&[u8]; 5] = [
            &key_version.to_be_bytes(),
            org.as_bytes(),
            self.link.as_bytes(),
            &self.generation.to_be_bytes(),
            &self.expires_unix.to_be_bytes(),
        ];
        let mut at = 0;
        for p in parts {
            if let Some(slot) = b.get_mut(at..at + p.len()) {
                slot.copy_from_slice(p);
            }
            at += p.len();
        }
        b
    }

    /// Parses `gsv_...`: the key version, the claims, the body and the tag. No check of the tag.
    fn parse(token: &str) -> Option<(u32, Self, Vec<u8>, Vec<u8>)> {
        let raw = URL_SAFE_NO_PAD
            .decode(token.strip_prefix(PASS_PREFIX)?.as_bytes())
            .ok()?;
        if raw.len() != PASS_BODY + 32 {
            return None;
        }
        let (body, tag) = raw.split_at(PASS_BODY);
        let (version, rest) = body.split_first_chunk::<4>()?;
        let (org, rest) = rest.split_first_chunk::<16>()?;
        let (link, rest) = rest.split_first_chunk::<16>()?;
        let (generation, rest) = rest.split_first_chunk::<4>()?;
        let expires: [u8; 8] = rest.try_into().ok()?;
        Some((
            u32::from_be_bytes(*version),
            Self {
                org: OrgId::from_uuid(Uuid::from_bytes(*org)),
                link: Uuid::from_bytes(*link),
                generation: u32::from_be_bytes(*generation),
                expires_unix: i64::from_be_bytes(expires),
            },
            body.to_vec(),
            tag.to_vec(),
        ))
    }
}

/// Share links (F1).
#[derive(Debug, Clone, Copy)]
pub struct ShareLinks<'k>(pub(crate) &'k crate::kernel::Kernel);

crate::kernel::service_handle!(ShareLinks);

impl crate::kernel::Kernel {
    /// Share links (`product::share_links`).
    #[must_use]
    pub fn share_links(&self) -> ShareLinks<'_> {
        ShareLinks(self)
    }
}

fn ended() -> Error {
    Error::LinkEnded("the share link was revoked, has expired or has no views left")
}

fn pass_ended() -> Error {
    Error::Unauthenticated("the viewer pass is invalid or has ended")
}

impl ShareLinks<'_> {
    /// The record `id`, live and writable by the caller: who may change a record may share it
    /// (its owner; for a record that is not private, a holder of its type's write permission).
    async fn shareable(
        &self,
        tx: &mut dyn TenantTx,
        call: &TenantCall,
        id: Uuid,
    ) -> Result<crate::store::RecordRow, Error> {
        let caller = self.records().access_of(tx, &call.principal).await?;
        let now = self.clock().now();
        let row = tx
            .record(id)
            .await?
            .filter(|r| !r.expired_at(now))
            .ok_or(Error::NotFound("record"))?;
        let readable = access::can_read(&caller, self.product(), &row);
        let Some(via) = access::can_write(&caller, self.product(), &row) else {
            return Err(match readable {
                Some(_) => Error::Forbidden {
                    permission: "the record type's write permission",
                },
                None => Error::NotFound("record"),
            });
        };
        let write = self
            .product()
            .record_type(&row.kind)
            .map(|t| t.write.clone())
            .unwrap_or_default();
        self.records().may_change(&call.principal, &write, via)?;
        Ok(row)
    }

    /// Makes a link to a record the caller may change. The token is in the answer only.
    pub async fn create(
        &self,
        call: &TenantCall,
        record_id: Uuid,
        input: NewShareLink,
    ) -> Result<CreatedShareLink, Error> {
        // A link outlives the session that makes it: never under impersonation.
        crate::identity::refuse_under_impersonation(
            &call.principal,
            "share links cannot be made while impersonating",
        )?;
        let now = self.clock().now();
        let settings = self.share_settings();
        if input.expires_at <= now {
            return Err(Error::invalid("expires_at", "must be in the future"));
        }
        if input.expires_at > now + settings.max_ttl {
            return Err(Error::invalid(
                "expires_at",
                format!(
                    "must be at most {} days ahead (the server's share.max_ttl_days)",
                    settings.max_ttl.whole_days()
                ),
            ));
        }
        if input.max_views == Some(0) || input.max_views.is_some_and(|v| v > 1_000_000) {
            return Err(Error::invalid("max_views", "must be between 1 and 1000000"));
        }
        let password_hash = match input.password {
            Some(p) => {
                let p = NewPassword::parse(p)?;
                Some(self.passwords().hash(p.secret().clone()).await?)
            }
            None => None,
        };
        let token =
            gatehouse_crypto::random_token(32).map_err(|e| Error::Internal(e.to_string()))?;
        let token = SecretString::new(format!("{LINK_PREFIX}{}", token.expose()));
        let mut tx = self.store().begin_scoped(&call.scope).await?;
        let record = self.shareable(tx.as_mut(), call, record_id).await?;
        let link = ShareLinkRow {
            org_id: call.scope.org_id(),
            id: new_uuid(self.clock()),
            record_id: record.id,
            digest: link_digest(token.expose()).to_vec(),
            password_hash,
            generation: 0,
            expires_at: input.expires_at,
            max_views: input.max_views,
            views: 0,
            created_by: self
                .records()
                .access_of(tx.as_mut(), &call.principal)
                .await?
                .me,
            created_at: now,
            revoked_at: None,
        };
        tx.insert_share_link(&link).await?;
        let event = AuditEvent::success(
            call.principal.actor(),
            "record.shared",
            "share_link",
            link.id,
        )
        .with_details(
            serde_json::json!({
                "record": record.id,
                "expires_at": link.expires_at.unix_timestamp(),
                "password": link.password_hash.is_some(),
                "max_views": link.max_views,
            })
            .to_string(),
        )
        .with_request(call.request.request_id.clone());
        let proof = audit::append_tenant(tx.as_mut(), self.clock(), event).await?;
        tx.commit(proof).await?;
        Ok(CreatedShareLink { link, token })
    }

    /// A record's links, newest first, without their tokens.
    pub async fn list(
        &self,
        call: &TenantCall,
        record_id: Uuid,
        page: PageRequest,
    ) -> Result<Page<ShareLinkRow>, Error> {
        let mut tx = self.store().begin_read_scoped(&call.scope).await?;
        self.shareable(tx.as_mut(), call, record_id).await?;
        Ok(tx.share_links_of(record_id, page).await?)
    }

    async fn link_of(
        tx: &mut dyn TenantTx,
        record_id: Uuid,
        link_id: Uuid,
    ) -> Result<ShareLinkRow, Error> {
        tx.share_link(link_id)
            .await?
            .filter(|l| l.record_id == record_id)
            .ok_or(Error::NotFound("share link"))
    }

    /// Revokes a link: viewer passes opened through it are refused from their next request.
    pub async fn revoke(
        &self,
        call: &TenantCall,
        record_id: Uuid,
        link_id: Uuid,
    ) -> Result<(), Error> {
        let mut tx = self.store().begin_scoped(&call.scope).await?;
        self.shareable(tx.as_mut(), call, record_id).await?;
        Self::link_of(tx.as_mut(), record_id, link_id).await?;
        if !tx.revoke_share_link(link_id, self.clock().now()).await? {
            return Err(Error::Conflict("the share link is already revoked"));
        }
        let event = AuditEvent::success(
            call.principal.actor(),
            "share_link.revoked",
            "share_link",
            link_id,
        )
        .with_details(serde_json::json!({"record": record_id}).to_string())
        .with_request(call.request.request_id.clone());
        let proof = audit::append_tenant(tx.as_mut(), self.clock(), event).await?;
        let committed = tx.commit(proof).await;
        // After the commit, whatever it answered (forgetting too much costs nothing): an open
        // racing it either read the row before (and is not kept: the epoch moved) or reads the
        // revocation.
        self.share_opens().forget(call.scope.org_id(), link_id);
        self.publish_revocation(crate::identity::Revocation::ShareLinks(call.scope.org_id()));
        committed?;
        Ok(())
    }

    /// Sets, changes or removes a link's password; viewer passes opened before are refused from
    /// their next request.
    pub async fn set_password(
        &self,
        call: &TenantCall,
        record_id: Uuid,
        link_id: Uuid,
        password: Option<SecretString>,
    ) -> Result<ShareLinkRow, Error> {
        crate::identity::refuse_under_impersonation(
            &call.principal,
            "share-link passwords cannot be changed while impersonating",
        )?;
        let hash = match password {
            Some(p) => {
                let p = NewPassword::parse(p)?;
                Some(self.passwords().hash(p.secret().clone()).await?)
            }
            None => None,
        };
        let mut tx = self.store().begin_scoped(&call.scope).await?;
        self.shareable(tx.as_mut(), call, record_id).await?;
        Self::link_of(tx.as_mut(), record_id, link_id).await?;
        if !tx.set_share_password(link_id, hash.as_deref()).await? {
            return Err(Error::Conflict("the share link is revoked"));
        }
        let link = Self::link_of(tx.as_mut(), record_id, link_id).await?;
        let event = AuditEvent::success(
            call.principal.actor(),
            "share_link.password_changed",
            "share_link",
            link_id,
        )
        .with_details(
            serde_json::json!({"record": record_id, "password": link.password_hash.is_some()})
                .to_string(),
        )
        .with_request(call.request.request_id.clone());
        let proof = audit::append_tenant(tx.as_mut(), self.clock(), event).await?;
        let committed = tx.commit(proof).await;
        self.share_opens().forget(call.scope.org_id(), link_id);
        self.publish_revocation(crate::identity::Revocation::ShareLinks(call.scope.org_id()));
        committed?;
        Ok(link)
    }

    /// A refused open, counted per link, reason, source and minute on the organisation's
    /// chain (`audit::security`): anonymous attempts cost the log a bounded number of events.
    fn refused(
        &self,
        scope: &TenantScope,
        link: Uuid,
        reason: &'static str,
        request: &RequestContext,
    ) {
        self.record_security_event(
            crate::audit::SecurityKind::ShareLinkOpenFailed(reason),
            Some(scope.org_id()),
            Some(link.to_string()),
            request,
        );
    }

    /// Opens a link: checks it is live, its password (behind the sign-in lockouts, per link and
    /// per address), counts the view, and issues a viewer pass.
    pub async fn open(
        &self,
        token: &str,
        password: Option<SecretString>,
        request: &RequestContext,
    ) -> Result<ViewerPass, Error> {
        let unknown = Error::NotFound("share link");
        if !well_formed_link(token) {
            return Err(unknown);
        }
        let digest = link_digest(token);
        let now = self.clock().now();
        // A link without a password or view bound, opened here in the last seconds: no
        // database round trip (`share_opens`). A row that is no longer live goes the long way,
        // which refuses it with its reason.
        if let Some(link) = self.share_opens().row(&digest, now)
            && link.live_at(now)
            && self.share_opens().count(&link, now)
        {
            return self.pass_for(&link, now);
        }
        let epoch = self.share_opens().epoch();
        let found = {
            let mut tx = self.store().begin_read().await?;
            match tx.share_link_owner(&digest).await? {
                Some((org, id)) => {
                    let mut tx = tx.enter(&TenantScope::granted(org)).await?;
                    tx.share_link(id)
                        .await?
                        .filter(|l| gatehouse_crypto::ct_eq(&l.digest, &digest))
                }
                None => None,
            }
        };
        let Some(link) = found else {
            return Err(unknown);
        };
        let scope = TenantScope::granted(link.org_id);
        if !link.live_at(now) {
            let reason = if link.revoked_at.is_some() {
                "revoked"
            } else {
                "expired"
            };
            self.refused(&scope, link.id, reason, request);
            return Err(ended());
        }
        if let Some(hash) = &link.password_hash {
            let Some(given) = password else {
                self.refused(&scope, link.id, "password_required", request);
                return Err(Error::Unauthenticated(
                    "this share link asks for a password",
                ));
            };
            let account = format!("share_link:{}", link.id);
            let ip = request.ip.as_deref().unwrap_or("");
            if let Err(e) = self.ensure_not_locked(&account, ip, now).await {
                let reason = match e {
                    Error::TooManyAttempts { .. } => "locked",
                    _ => "lockout_unavailable",
                };
                self.refused(&scope, link.id, reason, request);
                return Err(e);
            }
            let given = normalize_password(&given);
            if !self.passwords().verify(given, hash.clone()).await? {
                self.refused(&scope, link.id, "wrong_password", request);
                return Err(Error::InvalidCredentials);
            }
            self.attempt_succeeded(&account, ip).await;
        }
        let mut tx = self.store().begin_scoped(&scope).await?;
        let record = tx
            .record(link.record_id)
            .await?
            .filter(|r| !r.expired_at(now));
        if record.is_none() || !tx.count_share_view(link.id, now).await? {
            drop(tx);
            let reason = if record.is_none() {
                "record_gone"
            } else {
                "no_views_left"
            };
            self.refused(&scope, link.id, reason, request);
            return Err(ended());
        }
        let event = AuditEvent::success(
            Actor::anonymous(),
            "share_link.opened",
            "share_link",
            link.id,
        )
        .with_details(serde_json::json!({"record": link.record_id}).to_string())
        .with_request(request.request_id.clone());
        let proof = audit::append_tenant(tx.as_mut(), self.clock(), event).await?;
        tx.commit(proof).await?;
        let record_expires = record.as_ref().and_then(|r| r.expires_at);
        self.share_opens()
            .keep(digest, &link, record_expires, now, epoch);
        self.pass_for(&link, now)
    }

    /// A viewer pass for `link`, issued at `now`.
    fn pass_for(&self, link: &ShareLinkRow, now: OffsetDateTime) -> Result<ViewerPass, Error> {
        let expires_at = (now + self.share_settings().viewer_ttl).min(link.expires_at);
        let pass = Pass {
            org: link.org_id,
            link: link.id,
            generation: link.generation,
            expires_unix: expires_at.unix_timestamp(),
        };
        let (_, parts, tag) = self
            .keyring()
            .link_tag_with(|version| vec![PASS_LABEL.to_vec(), pass.body(version).to_vec()])?;
        let mut raw = parts.into_iter().nth(1).unwrap_or_default();
        raw.extend_from_slice(&tag);
        Ok(ViewerPass {
            token: SecretString::new(format!("{PASS_PREFIX}{}", URL_SAFE_NO_PAD.encode(raw))),
            expires_at: OffsetDateTime::from_unix_timestamp(pass.expires_unix)
                .map_err(|e| Error::Internal(e.to_string()))?,
            record_id: link.record_id,
        })
    }

    /// Writes the opens served from memory since the last flush: each link's view count, and
    /// one `share_link.opened` event per link with the number of opens and the first and last
    /// (aggregated, as API-key use is: no request id or address per open). Called by a
    /// background job and at shutdown; returns the links written.
    pub async fn flush_opens(&self) -> Result<usize, Error> {
        let taken = self.share_opens().take();
        let mut by_org: std::collections::HashMap<OrgId, Vec<(Uuid, super::share_opens::Opens)>> =
            std::collections::HashMap::new();
        for (id, o) in taken {
            by_org.entry(o.org).or_default().push((id, o));
        }
        let mut written = 0;
        let mut failed = None;
        for (org, links) in by_org {
            match self.write_opens(org, &links).await {
                Ok(()) => written += links.len(),
                // Tried again at the next flush, unless the organisation is gone.
                Err(e) => {
                    tracing::warn!(org = %org, error = %e, "share-link opens not written yet");
                    if self.organization_exists(org).await {
                        self.share_opens().restore(links);
                    }
                    failed = Some(e);
                }
            }
        }
        match failed {
            Some(e) if written == 0 => Err(e),
            _ => Ok(written),
        }
    }

    /// Whether `org` still exists (an erased one's opens are dropped, not retried); a store
    /// that cannot say is taken as yes.
    async fn organization_exists(&self, org: OrgId) -> bool {
        match self.store().begin_read().await {
            Ok(mut tx) => !matches!(tx.organization_by_id(org).await, Ok(None)),
            Err(_) => true,
        }
    }

    async fn write_opens(
        &self,
        org: OrgId,
        links: &[(Uuid, super::share_opens::Opens)],
    ) -> Result<(), Error> {
        let mut tx = self
            .store()
            .begin_scoped(&TenantScope::granted(org))
            .await?;
        let mut events = Vec::with_capacity(links.len());
        for (id, o) in links {
            tx.add_share_views(*id, o.count).await?;
            events.push(
                AuditEvent::success(Actor::anonymous(), "share_link.opened", "share_link", *id)
                    .with_details(
                        serde_json::json!({
                            "record": o.record,
                            "opens": o.count,
                            "first_at": o.first.unix_timestamp(),
                            "last_at": o.last.unix_timestamp(),
                        })
                        .to_string(),
                    ),
            );
        }
        let proof = audit::append_tenant_batch(tx.as_mut(), self.clock(), events).await?;
        match proof {
            Some(p) => tx.commit(p).await?,
            None => return Ok(()),
        }
        Ok(())
    }

    /// The record a viewer pass opens, read-only, as long as the pass has not expired and its
    /// link is live with the same password generation.
    pub async fn view(&self, pass: &str) -> Result<RecordView, Error> {
        let Some((version, claims, body, tag)) = Pass::parse(pass) else {
            return Err(pass_ended());
        };
        if !self
            .keyring()
            .link_verifies(version, &[PASS_LABEL, &body], &tag)
            .await
        {
            return Err(pass_ended());
        }
        let now = self.clock().now();
        if now.unix_timestamp() >= claims.expires_unix {
            return Err(pass_ended());
        }
        let mut tx = self
            .store()
            .begin_read_scoped(&TenantScope::granted(claims.org))
            .await?;
        let link = tx
            .share_link(claims.link)
            .await?
            .filter(|l| l.live_at(now) && l.generation == claims.generation)
            .ok_or_else(pass_ended)?;
        let row = tx
            .record(link.record_id)
            .await?
            .filter(|r| !r.expired_at(now))
            .ok_or(Error::NotFound("record"))?;
        let content = if row.has_content {
            self.records().open_content(tx.as_mut(), row.id).await?
        } else {
            None
        };
        Ok(RecordView {
            row,
            content,
            via: format!("share_link:{}", link.id),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pass_round_trips_and_every_cut_is_refused() {
        let p = Pass {
            org: OrgId::from_uuid(Uuid::from_u128(7)),
            link: Uuid::from_u128(9),
            generation: 3,
            expires_unix: 1_700_000_000,
        };
        let body = p.body(2);
        let mut raw = body.to_vec();
        raw.extend_from_slice(&[5u8; 32]);
        let token = format!("{PASS_PREFIX}{}", URL_SAFE_NO_PAD.encode(&raw));
        let (v, back, b, t) = Pass::parse(&token).unwrap();
        assert_eq!((v, back), (2, p));
        assert_eq!(b, body.to_vec());
        assert_eq!(t, vec![5u8; 32]);
        assert!(Pass::parse(&token[..token.len() - 1]).is_none());
        assert!(Pass::parse(&token.replacen("gsv_", "gsl_", 1)).is_none());
        assert!(Pass::parse("gsv_").is_none());
    }

    #[test]
    fn link_tokens_are_checked_for_shape_before_any_lookup() {
        let good = format!("{LINK_PREFIX}{}", "A".repeat(43));
        assert!(well_formed_link(&good));
        assert!(!well_formed_link(&good[..good.len() - 1]));
        assert!(!well_formed_link(&format!(
            "{LINK_PREFIX}{}",
            "+".repeat(43)
        )));
        assert!(!well_formed_link(&format!("gsv_{}", "A".repeat(43))));
    }
}
