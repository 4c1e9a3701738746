//! Handing a connector's access token to one of the deployment's services, on behalf of the
//! person who owns it (`POST /internal/v1/connectors/{id}/token`: service authentication plus the
//! person's token, as a shared secret's use). Kept fast: the connector's row and its access
//! token *in sealed form* (the envelope as stored) are cached here per connector and opened with
//! the organisation's data key at each call, so a hand-out reads no token row; the entry is
//! forgotten when the connector is refreshed, disconnected or changes status, here and on every
//! instance through the revocation fan-out (`Revocation::Connector`), and re-read after 30 s at
//! most. The common case opens no transaction either: `connectors.use` is decided from the
//! cached membership (as forward authentication decides roles: forgotten on every membership
//! change here and through `Revocation::Membership`, trusted for the session cache's bound at
//! most; a custom role is read in the store), and the token is opened with the keyring's cached
//! data key while its row was read as active within the last second (`Keyring::open_confirmed`,
//! as transit). Otherwise one read transaction does it all and refreshes those caches. Each
//! hand-out is audited as `connector.token_used`, naming the service: the first of its pairing
//! (connector, person, service) since the last flush on its own, answering once committed, the
//! rest counted and written at the next flush (`usage.rs`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Instant;

use gatehouse_crypto::{SecretBytes, SecretString};
use time::OffsetDateTime;
use uuid::Uuid;

use super::flow::secret_text;
use super::usage::{Noted, Pairing};
use super::{ACCESS, Connectors, TOKEN_USED, split_scopes};
use crate::audit::AuditEvent;
use crate::context::ServiceCall;
use crate::error::Error;
use crate::identity::{Permission, Principal};
use crate::ids::OrgId;
use crate::keyring::SealedKind;
use crate::scope::TenantScope;
use crate::store::{ConnectorRow, ConnectorStatus, SealedRecord};

/// The bound on a cached entry's age (a lost fan-out message costs at most this).
const MAX_AGE: std::time::Duration = std::time::Duration::from_secs(30);
/// Entries held at most; past it the cache starts again empty.
const MAX_ENTRIES: usize = 100_000;

/// A token handed out.
#[derive(Debug)]
pub struct HandedOut {
    pub access_token: SecretString,
    pub expires_at: Option<OffsetDateTime>,
    pub scopes: Vec<String>,
    pub provider: String,
}

#[derive(Debug)]
struct Entry {
    row: ConnectorRow,
    /// The access token as stored: sealed under the organisation's data key.
    sealed: SealedRecord,
    read: Instant,
}

/// Connectors' rows and sealed access tokens, by (organisation, connector).
#[derive(Debug, Default)]
pub struct TokenCache {
    entries: RwLock<HashMap<(OrgId, Uuid), Arc<Entry>>>,
    /// Moves at every forget: a read that began before it does not store what it read.
    generation: AtomicU64,
}

impl TokenCache {
    fn get(&self, org: OrgId, id: Uuid) -> Option<Arc<Entry>> {
        self.entries
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&(org, id))
            .filter(|e| e.read.elapsed() < MAX_AGE)
            .cloned()
    }

    /// Caches `entry` unless a connector was forgotten since `read_at` (what was read may then
    /// be stale for later calls); either way returns it, as fresh as an uncached read.
    fn put(&self, org: OrgId, id: Uuid, entry: Entry, read_at: u64) -> Arc<Entry> {
        let entry = Arc::new(entry);
        let mut entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        if self.generation.load(Ordering::SeqCst) != read_at {
            return entry;
        }
        if entries.len() >= MAX_ENTRIES {
            entries.clear();
        }
        entries.insert((org, id), Arc::clone(&entry));
        entry
    }

    /// Forgets a connector's entry (its tokens or status changed, or it is gone).
    pub fn forget(&self, org: OrgId, id: Uuid) {
        let mut entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        self.generation.fetch_add(1, Ordering::SeqCst);
        entries.remove(&(org, id));
    }

    /// How many entries are held (for tests and metrics).
    #[must_use]
    pub fn len(&self) -> usize {
        self.entries
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Connectors<'_> {
    /// The cache of sealed tokens (read by tests and the fan-out).
    #[must_use]
    pub fn token_cache(&self) -> &TokenCache {
        self.cache()
    }

    /// Hands connector `id`'s access token to the service in `call`, acting for `principal`
    /// (a person's access token), who must own the connector and hold `connectors.use` in its
    /// organisation. A connector of another person or organisation is `not_found`; one marked
    /// `needs_reauth` is refused as such; one whose token has expired without a refresh yet is
    /// refused as unavailable (retry after the job's next pass).
    pub async fn hand_out(
        &self,
        call: &ServiceCall,
        principal: &Principal,
        id: Uuid,
    ) -> Result<HandedOut, Error> {
        let ServiceCall {
            service,
            label,
            request,
            ..
        } = call;
        if principal.api_key_permissions.is_some() {
            return Err(Error::WrongAudience(
                "on-behalf-of needs a person's access token, not an API key",
            ));
        }
        if principal.tier == crate::store::Tier::Impersonation {
            return Err(Error::WrongAudience(
                "an impersonation cannot have connectors used on the user's behalf",
            ));
        }
        let org = principal.org.ok_or(Error::OrganizationRequired)?;
        let scope = TenantScope::granted(org);
        // The common case holds no transaction: the membership's role, the connector's row and
        // its sealed token, and the data key's active state are all cached, each forgotten at
        // once on a change made here and through the revocation fan-out elsewhere.
        let cached = self
            .granted_from_cache(principal, Permission::CONNECTORS_USE)
            .then(|| self.cache().get(org, id))
            .flatten();
        let opened = match cached {
            Some(entry) => {
                check(&entry, principal, self.clock().now())?;
                self.keyring()
                    .open_confirmed(org, &entry.sealed)
                    .map(|token| token.map(|t| (Arc::clone(&entry), t)))
            }
            None => None,
        };
        let (entry, token) = match opened {
            Some(done) => done?,
            None => self.open_in_tx(principal, &scope, id, request).await?,
        };
        let token = secret_text(token)?;
        let pairing = Pairing {
            org,
            connector: id,
            person: principal.subject,
            service: Arc::clone(service),
            label: label.clone(),
        };
        let noted = self.usage().note(
            &pairing,
            || principal.actor(),
            &entry.row.provider,
            self.clock().now(),
        );
        if noted == Noted::Record {
            let event = AuditEvent::success(principal.actor(), TOKEN_USED, "connector", id)
                .with_details(
                    serde_json::json!({
                        "provider": entry.row.provider,
                        "service": service.as_ref(),
                        "service_label": label,
                        "uses": 1,
                    })
                    .to_string(),
                )
                .with_request(request.request_id.clone());
            self.audit_batcher().record(&scope, event).await?;
            self.usage().committed(&pairing);
        }
        Ok(HandedOut {
            access_token: token,
            expires_at: entry.row.expires_at,
            scopes: split_scopes(&entry.row.scopes),
            provider: entry.row.provider.clone(),
        })
    }
}

/// What a connector's entry must pass before its token is handed to `principal`.
fn check(entry: &Entry, principal: &Principal, now: OffsetDateTime) -> Result<(), Error> {
    if entry.row.user_id != principal.subject {
        return Err(Error::NotFound("connector"));
    }
    if entry.row.status == ConnectorStatus::NeedsReauth {
        return Err(Error::ReauthorizationRequired);
    }
    if entry.row.expires_at.is_some_and(|t| t <= now) {
        return Err(Error::DependencyUnavailable(
            "the connector's access token has expired and is not refreshed yet",
        ));
    }
    Ok(())
}

impl Connectors<'_> {
    /// The hand-out's checks and opening through a read transaction: authorizes from the
    /// membership (recording any refusal, caching the role), reads the connector when it is not
    /// cached, and opens the token reading the data key's row (which confirms it for a second).
    async fn open_in_tx(
        &self,
        principal: &Principal,
        scope: &TenantScope,
        id: Uuid,
        request: &crate::context::RequestContext,
    ) -> Result<(Arc<Entry>, SecretBytes), Error> {
        let org = scope.org_id();
        let read_at = self.cache().generation.load(Ordering::SeqCst);
        let member_read_at = self.identity().memberships.generation();
        let tx = self.store().begin_read_scoped(scope).await?;
        let (mut tx, role) = self
            .authorize(tx, principal, Permission::CONNECTORS_USE, request)
            .await?;
        self.note_member_role(principal, role, member_read_at);
        let entry = match self.cache().get(org, id) {
            Some(e) => e,
            None => {
                let row = tx
                    .connector(id)
                    .await?
                    .ok_or(Error::NotFound("connector"))?;
                let sealed = tx
                    .sealed(SealedKind::ConnectorToken.as_str(), &id.to_string(), ACCESS)
                    .await?;
                let Some(sealed) = sealed else {
                    return Err(match row.status {
                        ConnectorStatus::NeedsReauth => Error::ReauthorizationRequired,
                        ConnectorStatus::Active => Error::NotFound("connector"),
                    });
                };
                let entry = Entry {
                    row,
                    sealed,
                    read: Instant::now(),
                };
                // Read in this transaction: used for this call even when a forget meanwhile
                // (of any connector, here or through the fan-out) keeps it out of the cache.
                self.cache().put(org, id, entry, read_at)
            }
        };
        check(&entry, principal, self.clock().now())?;
        let opened = self
            .keyring()
            .open_many(tx.as_mut(), std::slice::from_ref(&entry.sealed))
            .await?;
        drop(tx);
        let token = opened
            .into_iter()
            .next()
            .ok_or_else(|| Error::Internal("a sealed token did not open".into()))?;
        Ok((entry, token))
    }
}

impl Connectors<'_> {
    /// Writes the hand-outs counted since the last flush (`usage.rs`): one `connector.token_used`
    /// event per pairing with its `uses`, `first_at` and `last_at`, committed per organisation.
    /// What cannot be written is tried once more at the next flush. Called by the activity job
    /// and at shutdown; returns the events written. The writing runs in its own task, so a flush
    /// abandoned part-way (the job stopped at shutdown) still writes what it took, and the next
    /// flush waits for it.
    pub async fn flush_usage(&self) -> Result<usize, Error> {
        let tally = Arc::clone(self.usage());
        let batcher = self.audit_batcher().clone();
        let turn = tally.flush_turn().await;
        tokio::spawn(async move {
            let _turn = turn;
            write_counts(&tally, &batcher).await
        })
        .await
        .map_err(|e| Error::Internal(format!("the hand-out flush stopped: {e}")))?
    }
}

async fn write_counts(
    tally: &super::UsageTally,
    batcher: &crate::audit::AuditBatcher,
) -> Result<usize, Error> {
    let retry = tally.take_held();
    let fresh = tally.take();
    let mut written = 0;
    let mut failed = None;
    let batches = retry
        .into_iter()
        .map(|b| (b, true))
        .chain(fresh.into_iter().map(|b| (b, false)));
    for ((org, events), retried) in batches {
        let n = events.len();
        let personal = events.iter().cloned().map(|e| (e, None)).collect();
        match batcher
            .record_all(&TenantScope::granted(org), personal)
            .await
        {
            Ok(()) => written += n,
            Err(e) => {
                tracing::warn!(org = %org, events = n, retried, error = %e,
                    "connector hand-out counts not written");
                if !retried {
                    tally.hold(org, events);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(org: OrgId, id: Uuid) -> Entry {
        let t = OffsetDateTime::UNIX_EPOCH;
        Entry {
            row: ConnectorRow {
                org_id: org,
                id,
                user_id: Uuid::from_u128(9),
                provider: "crm".into(),
                status: ConnectorStatus::Active,
                scopes: String::new(),
                expires_at: None,
                refresh_due_at: None,
                failures: 0,
                last_error: None,
                created_at: t,
                updated_at: t,
            },
            sealed: SealedRecord {
                org_id: org,
                kind: SealedKind::ConnectorToken.as_str().into(),
                record_id: id.to_string(),
                field: ACCESS.into(),
                dek_version: 1,
                envelope: vec![1, 2, 3],
                updated_at: t,
            },
            read: Instant::now(),
        }
    }

    /// A read that began before any forget (of any connector) is served, not cached: a forget
    /// elsewhere must not turn a healthy connector's hand-out into `not_found` (#24 review).
    #[test]
    fn a_read_overtaken_by_a_forget_is_served_but_not_cached() {
        let cache = TokenCache::default();
        let org = OrgId::from_uuid(Uuid::from_u128(1));
        let (id, other) = (Uuid::from_u128(2), Uuid::from_u128(3));
        let read_at = cache.generation.load(Ordering::SeqCst);
        cache.forget(org, other);
        let served = cache.put(org, id, entry(org, id), read_at);
        assert_eq!(served.row.id, id);
        assert!(cache.get(org, id).is_none());
        let read_at = cache.generation.load(Ordering::SeqCst);
        cache.put(org, id, entry(org, id), read_at);
        assert!(cache.get(org, id).is_some());
    }
}
