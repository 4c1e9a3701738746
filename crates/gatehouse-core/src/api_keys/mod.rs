//! API keys (B1): created with a set of permissions from the catalogue, shown once, stored as
//! SHA-256 only, verified without a database round trip once seen (the cache forgets a key the
//! moment it is revoked or rotated here, and every entry after `CACHE_MAX_AGE`, which bounds how
//! long another instance can trust a key revoked elsewhere until revocation fan-out arrives).

mod creator;
pub mod format;

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use gatehouse_crypto::{SecretString, sha256};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

pub use format::{KeyEnv, KeyShape, is_api_key};

use crate::audit::{self, AuditEvent};
use crate::context::TenantCall;
use crate::error::Error;
use crate::identity::{Permission, Principal};
use crate::ids::{OrgId, UserId, new_uuid};
use crate::kernel::Kernel;
use crate::page::{Page, PageRequest};
use crate::scope::TenantScope;
use crate::store::{ApiKeyRecord, Role};

/// What a new key may do.
#[derive(Debug, Clone)]
pub struct NewApiKey {
    pub name: String,
    pub permissions: Vec<String>,
    pub namespace: Option<String>,
    pub expires_at: Option<OffsetDateTime>,
    pub rate_limit: Option<u32>,
    pub env: KeyEnv,
}

/// A new key: the record, and the key itself, shown once.
#[derive(Debug)]
pub struct IssuedApiKey {
    pub record: ApiKeyRecord,
    pub key: SecretString,
}

const CACHE_MAX_AGE: Duration = Duration::seconds(10);
const CACHE_CAPACITY: usize = 100_000;

#[derive(Debug)]
struct Cached {
    record: Arc<ApiKeyRecord>,
    /// Built once per load rather than per request: the key acts as this principal.
    principal: Arc<Principal>,
    loaded_at: OffsetDateTime,
    /// Shared with the key's next cache entry, so a reload loses no use.
    usage: Arc<Usage>,
    /// The member at the root of its creators has a disabled account: refused meanwhile.
    creator_disabled: bool,
    /// The member the key acts for (see `creator.rs`).
    member: Option<UserId>,
    /// Who requires a second factor of that member, who has none: the key is refused.
    factor_missing: Option<&'static str>,
}

/// A key's use since the last flush.
#[derive(Debug, Default)]
struct Usage {
    last_used: AtomicI64,
    flushed: AtomicI64,
    uses: AtomicU64,
}

/// One key's use over a flush window: its last use and how many requests it made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Used {
    org: OrgId,
    id: Uuid,
    last: OffsetDateTime,
    uses: u64,
}

/// Verified keys by digest, and their use (written in batches).
#[derive(Debug, Default)]
pub struct ApiKeyCache {
    entries: RwLock<HashMap<[u8; 32], Arc<Cached>>>,
    usage: RwLock<HashMap<Uuid, (OrgId, Arc<Usage>)>>,
}

impl ApiKeyCache {
    fn get(&self, digest: &[u8; 32], now: OffsetDateTime) -> Option<Arc<Cached>> {
        let found = self.entries.read().ok().and_then(|map| {
            map.get(digest)
                .filter(|e| now - e.loaded_at < CACHE_MAX_AGE)
                .map(Arc::clone)
        });
        crate::telemetry::metrics::cache("api_key", found.is_some());
        found
    }

    /// Caches `record` acting as `acting` says (see `creator.rs`).
    fn put(
        &self,
        record: Arc<ApiKeyRecord>,
        acting: creator::Acting,
        factor_missing: Option<&'static str>,
        creator_disabled: bool,
        now: OffsetDateTime,
    ) -> Arc<Cached> {
        let mut principal = principal_for(&record);
        principal.api_key_permissions = Some(acting.permissions);
        let entry = Arc::new(Cached {
            principal: Arc::new(principal),
            record: Arc::clone(&record),
            loaded_at: now,
            usage: self.usage_of(&record),
            creator_disabled,
            member: acting.member,
            factor_missing,
        });
        if let Ok(mut map) = self.entries.write() {
            if map.len() >= CACHE_CAPACITY {
                map.clear();
            }
            if let Ok(digest) = <[u8; 32]>::try_from(record.digest.as_slice()) {
                map.insert(digest, Arc::clone(&entry));
            }
        }
        entry
    }

    pub(crate) fn forget(&self, id: Uuid) {
        if let Ok(mut map) = self.entries.write() {
            map.retain(|_, e| e.record.id != id);
        }
    }

    /// Forgets every key (a revocation from another instance names the key, not its
    /// organisation; keys it made must be worked out again).
    pub(crate) fn forget_all(&self) {
        if let Ok(mut map) = self.entries.write() {
            map.clear();
        }
    }

    /// Forgets every key acting for `member`: their second factor came or went.
    pub(crate) fn forget_member(&self, member: UserId) {
        if let Ok(mut map) = self.entries.write() {
            map.retain(|_, e| e.member != Some(member));
        }
    }

    /// Forgets every key of `org`: a membership or a key there changed, and what its keys may do
    /// (bounded by their creators') must be worked out again.
    pub(crate) fn forget_org(&self, org: OrgId) {
        if let Ok(mut map) = self.entries.write() {
            map.retain(|_, e| e.record.org_id != org);
        }
    }

    fn usage_of(&self, record: &ApiKeyRecord) -> Arc<Usage> {
        if let Some((_, u)) = self
            .usage
            .read()
            .ok()
            .and_then(|m| m.get(&record.id).cloned())
        {
            return u;
        }
        let Ok(mut map) = self.usage.write() else {
            return Arc::default();
        };
        Arc::clone(
            &map.entry(record.id)
                .or_insert_with(|| (record.org_id, Arc::default()))
                .1,
        )
    }

    /// Takes every key's use since the last call; forgets counters no cache entry holds and
    /// nothing used.
    fn take_used(&self) -> Vec<Used> {
        let Ok(mut map) = self.usage.write() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        map.retain(|id, (org, u)| {
            let used = u.last_used.load(Ordering::Relaxed);
            let before = u.flushed.swap(used, Ordering::Relaxed);
            let uses = u.uses.swap(0, Ordering::Relaxed);
            if used > before
                && let Some(last) = crate::clock::from_unix_micros(used)
            {
                out.push(Used {
                    org: *org,
                    id: *id,
                    last,
                    uses: uses.max(1),
                });
                return true;
            }
            Arc::strong_count(u) > 1
        });
        out
    }
}

fn digest(key: &str) -> [u8; 32] {
    sha256(&[key.as_bytes()])
}

impl Kernel {
    /// What the principal may grant: their role's permissions, or an API key's own.
    pub(crate) async fn held_permissions(
        &self,
        tx: &mut dyn crate::store::TenantTx,
        principal: &Principal,
        role: &Role,
    ) -> Result<Vec<String>, Error> {
        if let Some(perms) = &principal.api_key_permissions {
            return Ok(perms.clone());
        }
        self.role_grants(tx, role).await
    }
}

/// An organisation's API keys (B1): issue, list, rotate, revoke, and verify a presented key.
#[derive(Debug, Clone, Copy)]
pub struct ApiKeys<'k>(pub(crate) &'k Kernel);

crate::kernel::service_handle!(ApiKeys);

impl ApiKeys<'_> {
    /// Creates a key with a subset of the creator's own permissions. Needs `api_keys.manage`.
    pub async fn create(&self, call: &TenantCall, input: NewApiKey) -> Result<IssuedApiKey, Error> {
        let TenantCall {
            principal,
            scope,
            request,
        } = call;
        crate::identity::refuse_under_impersonation(
            principal,
            "an impersonation cannot create API keys",
        )?;
        let name = crate::inputs::DisplayName::parse("name", &input.name)?;
        if input.permissions.is_empty() {
            return Err(Error::invalid(
                "permissions",
                "name at least one permission",
            ));
        }
        let mut perms: Vec<String> = Vec::new();
        for p in &input.permissions {
            let known = self.known_permission(p).ok_or_else(|| {
                Error::invalid("permissions", format!("unknown permission {p:?}"))
            })?;
            if !perms.contains(&known) {
                perms.push(known);
            }
        }
        if let Some(ns) = &input.namespace
            && (ns.is_empty() || ns.len() > 100 || ns.chars().any(char::is_control))
        {
            return Err(Error::invalid(
                "namespace",
                "must be 1 to 100 printable characters",
            ));
        }
        if input.rate_limit == Some(0) {
            return Err(Error::invalid(
                "rate_limit",
                "must be at least 1 request per minute",
            ));
        }
        let now = self.clock().now();
        if input.expires_at.is_some_and(|e| e <= now) {
            return Err(Error::invalid("expires_at", "must be in the future"));
        }
        // A key made by a key expires with it at the latest.
        let mut expires_at = input.expires_at;
        if principal.api_key_permissions.is_some() && principal.expires_at != u64::MAX {
            let parent = i64::try_from(principal.expires_at)
                .ok()
                .and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok())
                .ok_or(Error::Unauthenticated("the API key's expiry is malformed"))?;
            match expires_at {
                None => expires_at = Some(parent),
                Some(e) if e > parent => {
                    return Err(Error::invalid(
                        "expires_at",
                        "a key may not outlive the key that creates it",
                    ));
                }
                Some(_) => {}
            }
        }
        let tx = self.store().begin_scoped(scope).await?;
        let (mut tx, role) = self
            .authorize(tx, principal, Permission::API_KEYS_MANAGE, request)
            .await?;
        let held = self.held_permissions(tx.as_mut(), principal, &role).await?;
        if let Some(p) = perms.iter().find(|p| !held.contains(p)) {
            return Err(Error::invalid(
                "permissions",
                format!("you do not hold {p} yourself"),
            ));
        }
        let issued = self.new_key(
            scope.org_id(),
            name.as_str(),
            perms,
            input.namespace,
            expires_at,
            input.rate_limit,
            input.env,
            principal,
        )?;
        tx.insert_api_key(&issued.record).await?;
        let event = AuditEvent::success(
            principal.actor(),
            "api_key.created",
            "api_key",
            issued.record.id,
        )
        .with_details(format!(
            "{{\"prefix\":\"{}\",\"permissions\":{}}}",
            issued.record.prefix,
            serde_json::Value::from(issued.record.permissions.clone())
        ))
        .with_request(request.request_id.clone());
        let proof = audit::append_tenant(tx.as_mut(), self.clock(), event).await?;
        tx.commit(proof).await?;
        Ok(issued)
    }

    #[allow(clippy::too_many_arguments)]
    fn new_key(
        &self,
        org: OrgId,
        name: &str,
        permissions: Vec<String>,
        namespace: Option<String>,
        expires_at: Option<OffsetDateTime>,
        rate_limit: Option<u32>,
        env: KeyEnv,
        principal: &Principal,
    ) -> Result<IssuedApiKey, Error> {
        let key = format::generate(env).map_err(|e| Error::Internal(e.to_string()))?;
        let shape = format::parse(key.expose())
            .ok_or_else(|| Error::Internal("a generated key did not parse".into()))?;
        Ok(IssuedApiKey {
            record: ApiKeyRecord {
                id: new_uuid(self.clock()),
                org_id: org,
                name: name.to_owned(),
                prefix: shape.prefix,
                last4: shape.last4,
                digest: digest(key.expose()).to_vec(),
                permissions,
                namespace,
                rate_limit,
                created_by: principal.actor().id,
                created_at: self.clock().now(),
                expires_at,
                revoked_at: None,
                last_used_at: None,
            },
            key,
        })
    }

    pub async fn list(
        &self,
        call: &TenantCall,
        page: PageRequest,
    ) -> Result<Page<ApiKeyRecord>, Error> {
        let TenantCall {
            principal,
            scope,
            request,
        } = call;
        let tx = self.store().begin_scoped(scope).await?;
        let (mut tx, _) = self
            .authorize(tx, principal, Permission::API_KEYS_MANAGE, request)
            .await?;
        Ok(tx.list_api_keys(page).await?)
    }

    /// Issues a replacement with the same name and grants; the old key keeps working for
    /// `grace` and is refused after it.
    pub async fn rotate(
        &self,
        call: &TenantCall,
        id: Uuid,
        grace: Duration,
    ) -> Result<IssuedApiKey, Error> {
        let TenantCall {
            principal,
            scope,
            request,
        } = call;
        crate::identity::refuse_under_impersonation(
            principal,
            "an impersonation cannot rotate API keys",
        )?;
        if grace < Duration::ZERO || grace > Duration::days(30) {
            return Err(Error::invalid(
                "grace_seconds",
                "must be 0 to 2592000 (30 days)",
            ));
        }
        let tx = self.store().begin_scoped(scope).await?;
        let (mut tx, role) = self
            .authorize(tx, principal, Permission::API_KEYS_MANAGE, request)
            .await?;
        let now = self.clock().now();
        let old = tx
            .api_key(id)
            .await?
            .filter(|k| k.is_usable(now))
            .ok_or(Error::NotFound("api key"))?;
        // Rotating hands out a new secret with the old key's grants: only to someone who holds
        // them all (as for creating it).
        let held = self.held_permissions(tx.as_mut(), principal, &role).await?;
        if let Some(p) = old.permissions.iter().find(|p| !held.contains(p)) {
            return Err(Error::Forbidden {
                permission: permission_name(p),
            });
        }
        let ends = old.expires_at.map_or(now + grace, |e| e.min(now + grace));
        tx.set_api_key_expiry(id, ends).await?;
        let issued = self.new_key(
            scope.org_id(),
            &old.name,
            old.permissions.clone(),
            old.namespace.clone(),
            old.expires_at,
            old.rate_limit,
            format::parse_env(&old.prefix).unwrap_or(KeyEnv::Live),
            principal,
        )?;
        // The replacement stands where the old key stood: its creator, not the rotator, bounds
        // what it may do (a key rotating itself must not become its own replacement's parent).
        let mut issued = issued;
        issued.record.created_by = old.created_by.clone();
        tx.insert_api_key(&issued.record).await?;
        let event = AuditEvent::success(principal.actor(), "api_key.rotated", "api_key", id)
            .with_details(format!(
                "{{\"replacement\":\"{}\",\"grace_seconds\":{}}}",
                issued.record.id,
                grace.whole_seconds()
            ))
            .with_request(request.request_id.clone());
        let proof = audit::append_tenant(tx.as_mut(), self.clock(), event).await?;
        tx.commit(proof).await?;
        self.api_key_cache().forget(id);
        // Keys it made act with at most its permissions: work theirs out again.
        self.api_key_cache().forget_org(scope.org_id());
        self.publish_revocation(crate::identity::Revocation::ApiKey(id));
        Ok(issued)
    }

    /// Revokes a key: refused from the next request on.
    pub async fn revoke(&self, call: &TenantCall, id: Uuid) -> Result<(), Error> {
        let TenantCall {
            principal,
            scope,
            request,
        } = call;
        let tx = self.store().begin_scoped(scope).await?;
        let (mut tx, _) = self
            .authorize(tx, principal, Permission::API_KEYS_MANAGE, request)
            .await?;
        if tx.api_key(id).await?.is_none() {
            return Err(Error::NotFound("api key"));
        }
        let now = self.clock().now();
        if tx.revoke_api_key(id, now).await? {
            let event = AuditEvent::success(principal.actor(), "api_key.revoked", "api_key", id)
                .with_request(request.request_id.clone());
            let proof = audit::append_tenant(tx.as_mut(), self.clock(), event).await?;
            tx.commit(proof).await?;
        }
        self.api_key_cache().forget(id);
        // Keys it made act with at most its permissions: work theirs out again.
        self.api_key_cache().forget_org(scope.org_id());
        self.publish_revocation(crate::identity::Revocation::ApiKey(id));
        Ok(())
    }

    /// Checks a presented key: format and checksum first (a mistyped key costs no lookup), then
    /// the cache or the store. `Unauthenticated` for anything unusable.
    pub async fn verify(&self, key: &str) -> Result<Arc<ApiKeyRecord>, Error> {
        Ok(Arc::clone(&self.usable_api_key(key).await?.record))
    }

    /// A presented key's record and the permissions it acts with now (its own, bounded by its
    /// creator's current ones; see `creator.rs`).
    pub async fn verify_acting(
        &self,
        key: &str,
    ) -> Result<(Arc<ApiKeyRecord>, Vec<String>), Error> {
        let entry = self.usable_api_key(key).await?;
        let acting = entry
            .principal
            .api_key_permissions
            .clone()
            .unwrap_or_default();
        Ok((Arc::clone(&entry.record), acting))
    }

    /// The principal a presented key acts as (see [`ApiKeys::verify`]).
    pub async fn principal(&self, key: &str) -> Result<Arc<Principal>, Error> {
        Ok(Arc::clone(&self.usable_api_key(key).await?.principal))
    }

    async fn usable_api_key(&self, key: &str) -> Result<Arc<Cached>, Error> {
        let invalid = Error::Unauthenticated("the API key is invalid, expired or revoked");
        if !format::is_well_formed(key) {
            return Err(invalid);
        }
        let now = self.clock().now();
        let d = digest(key);
        let entry = match self.api_key_cache().get(&d, now) {
            Some(e) => e,
            None => {
                let found = {
                    let mut tx = self.store().begin_read().await?;
                    match tx.api_key_owner(&d).await? {
                        Some((org, id)) => {
                            let mut tx = tx.enter(&TenantScope::granted(org)).await?;
                            // Digests are compared by the database's index; the stored digest
                            // must also be exactly the presented one.
                            match tx
                                .api_key(id)
                                .await?
                                .filter(|r| gatehouse_crypto::ct_eq(&r.digest, &d))
                            {
                                Some(r) => {
                                    let acting =
                                        self.acting_permissions(tx.as_mut(), &r, now).await?;
                                    Some((r, acting))
                                }
                                None => None,
                            }
                        }
                        None => None,
                    }
                };
                let Some((r, acting)) = found else {
                    return Err(invalid);
                };
                // Asked once the chain is read and its transaction is closed.
                let factor_missing = match acting.member {
                    Some(member) if !acting.permissions.is_empty() => {
                        self.enrolment_pending(member, Some(r.org_id)).await?
                    }
                    _ => None,
                };
                let disabled = match acting.member {
                    Some(user) => self.account_disabled(user).await?,
                    None => false,
                };
                self.api_key_cache()
                    .put(Arc::new(r), acting, factor_missing, disabled, now)
            }
        };
        if !entry.record.is_usable(now) {
            return Err(invalid);
        }
        if entry.creator_disabled {
            return Err(Error::Unauthenticated(
                "the API key is suspended: the account that made it is disabled",
            ));
        }
        if entry
            .principal
            .api_key_permissions
            .as_ref()
            .is_none_or(Vec::is_empty)
        {
            return Err(Error::Unauthenticated(
                "the API key is suspended: its creator no longer holds its permissions",
            ));
        }
        if let Some(by) = entry.factor_missing {
            // Acting for a member who may only enrol a second factor: the key may do no more.
            return Err(Error::SecondFactorEnrolmentRequired(by));
        }
        entry
            .usage
            .last_used
            .fetch_max(crate::clock::unix_micros(now), Ordering::Relaxed);
        entry.usage.uses.fetch_add(1, Ordering::Relaxed);
        Ok(entry)
    }

    /// Writes batched last-used times, and records each key's use since the last flush as one
    /// `api_key.used` event on its organisation's chain (aggregated: a count, not a row per
    /// request). Called by a background job.
    pub async fn flush_usage(&self) -> Result<usize, Error> {
        let used = self.api_key_cache().take_used();
        if used.is_empty() {
            return Ok(0);
        }
        let touched: Vec<_> = used.iter().map(|u| (u.org, u.id, u.last)).collect();
        self.store().touch_api_keys(&touched).await?;
        let mut by_org: HashMap<OrgId, Vec<crate::audit::PersonalEvent>> = HashMap::new();
        for u in &used {
            let event = crate::audit::AuditEvent::success(
                crate::audit::Actor {
                    kind: crate::audit::ActorKind::ApiKey,
                    id: u.id.to_string(),
                    impersonator_id: None,
                },
                "api_key.used",
                "api_key",
                u.id,
            )
            .with_details(
                serde_json::json!({"uses": u.uses, "last_used_at": u.last.unix_timestamp()})
                    .to_string(),
            );
            by_org.entry(u.org).or_default().push((event, None));
        }
        for (org, events) in by_org {
            self.audit_batcher()
                .record_all(&TenantScope::granted(org), events)
                .await?;
        }
        Ok(used.len())
    }
}

/// The catalogue's static name for a permission (for the `forbidden` problem's detail); a
/// product permission is named as such.
pub(crate) fn permission_name(p: &str) -> &'static str {
    Permission::parse(p).map_or("a product permission", |p| p.as_str())
}

/// The principal an API key acts as.
#[must_use]
pub fn principal_for(key: &ApiKeyRecord) -> Principal {
    Principal {
        subject: key.id,
        tier: crate::store::Tier::Customer,
        org: Some(key.org_id),
        roles: Vec::new(),
        session_id: Uuid::nil(),
        impersonator: None,
        token_id: key.id.to_string(),
        expires_at: key
            .expires_at
            .map_or(u64::MAX, |e| u64::try_from(e.unix_timestamp()).unwrap_or(0)),
        csrf_digest: None,
        api_key_permissions: Some(key.permissions.clone()),
        api_key_rate_limit: key.rate_limit,
        // A key cannot step up: step-up permissions are refused to it (see `authorize`).
        auth_time: None,
        mfa_time: None,
        mfa_enrolled: false,
        email_verified: true,
    }
}
