//! Rotation, re-encryption and crypto-shredding.
//!
//! Re-encryption works in batches, each its own transaction, and keeps no state of its own: what
//! remains is exactly the sealed values below the newest version. A job cut off at any point (a
//! crash, a restart) resumes by running again. When nothing remains on an old version, that
//! version is retired and its wrapped key erased, so the minimum version rises.

use std::sync::Arc;

use gatehouse_crypto::{EnvelopeHeader, Key32};

use super::fields::field_context;
use super::{Keyring, LocalKek, MasterKek, dek_context};
use crate::audit::{self, Actor, AuditEvent};
use crate::error::Error;
use crate::ids::OrgId;
use crate::scope::TenantScope;
use crate::store::{KekVersionRecord, KeyState};

/// Key maintenance is done by Gatehouse itself, from the CLI or the background job.
fn actor() -> Actor {
    Actor::system("keyring")
}

/// What one re-encryption run did for one organisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReencryptReport {
    pub moved: u64,
    /// Values still below the newest version when the run stopped (0 when it finished).
    pub remaining: u64,
    pub retired_versions: u32,
    pub finished: bool,
}

impl Keyring {
    /// Adds a data-key version for `org`; new writes use it at once, and the re-encryption job
    /// moves existing values to it.
    pub async fn rotate_org(&self, org: OrgId) -> Result<u32, Error> {
        let mut tx = self.store.begin_scoped(&TenantScope::granted(org)).await?;
        let version = self.add_dek_version(tx.as_mut()).await?;
        let proof = audit::append_tenant(
            tx.as_mut(),
            self.clock.as_ref(),
            AuditEvent::success(actor(), "key.rotated", "data_key", version),
        )
        .await?;
        tx.commit(proof).await?;
        self.forget_transit(org);
        Ok(version)
    }

    /// Moves `org`'s sealed values to its newest data-key version, `batch` per transaction, for at
    /// most `max_batches` batches (all when `None`).
    pub async fn reencrypt_org(
        &self,
        org: OrgId,
        batch: u32,
        max_batches: Option<u32>,
    ) -> Result<ReencryptReport, Error> {
        let scope = TenantScope::granted(org);
        let mut report = ReencryptReport::default();
        let mut batches = 0u32;
        loop {
            let mut tx = self.store.begin_scoped(&scope).await?;
            let keys = tx.org_keys().await?;
            let Some(newest) = keys
                .iter()
                .filter(|k| k.state == KeyState::Active)
                .map(|k| k.version)
                .max()
            else {
                report.finished = true;
                return Ok(report);
            };
            if max_batches.is_some_and(|m| batches >= m) {
                report.remaining = tx
                    .sealed_counts()
                    .await?
                    .iter()
                    .filter(|(v, _)| *v < newest)
                    .map(|(_, n)| n)
                    .sum();
                return Ok(report);
            }
            let rows = tx.sealed_before_version(newest, batch.max(1)).await?;
            if rows.is_empty() {
                // Lock the key rows, then look again: a writer that sealed under an old version
                // and committed while we waited must keep its key.
                let keys = tx.lock_org_keys().await?;
                if !tx.sealed_before_version(newest, 1).await?.is_empty() {
                    drop(tx);
                    continue;
                }
                // Transit ciphertexts held by the organisation's apps may still use any version
                // at or above the transit floor: those stay until the floor rises.
                let keep_from = tx.transit_floor().await?.unwrap_or(newest);
                for old in keys
                    .iter()
                    .filter(|k| k.version < newest.min(keep_from) && k.state == KeyState::Active)
                {
                    tx.update_org_key(old.version, &[], old.kek_version, KeyState::Retired)
                        .await?;
                    report.retired_versions += 1;
                }
                let proof = audit::append_tenant(
                    tx.as_mut(),
                    self.clock.as_ref(),
                    AuditEvent::success(actor(), "key.reencryption_finished", "data_key", newest)
                        .with_details(format!(
                            "{{\"retired_versions\":{}}}",
                            report.retired_versions
                        )),
                )
                .await?;
                tx.commit(proof).await?;
                self.evict_org(org);
                report.finished = true;
                return Ok(report);
            }
            let key = self.dek(tx.as_mut(), newest).await?;
            for row in &rows {
                let plain = self.open_record(tx.as_mut(), row).await?;
                tx.count_encryption(newest).await?;
                let envelope = key
                    .seal_envelope(
                        EnvelopeHeader {
                            kek_version: self.kek_version,
                            dek_version: newest,
                        },
                        &field_context(org, &row.kind, &row.record_id, &row.field),
                        plain.expose(),
                    )
                    .map_err(|e| Error::Internal(e.to_string()))?;
                // A concurrent write already replaced this value with a fresh seal: skip it.
                if tx
                    .replace_sealed(row, &envelope, newest, self.clock.now())
                    .await?
                {
                    report.moved += 1;
                }
            }
            let proof = audit::append_tenant(
                tx.as_mut(),
                self.clock.as_ref(),
                AuditEvent::success(actor(), "key.reencrypted", "data_key", newest)
                    .with_details(format!("{{\"values\":{}}}", rows.len())),
            )
            .await?;
            tx.commit(proof).await?;
            batches += 1;
        }
    }

    /// Every organisation's ids, in order.
    pub async fn organization_ids(&self) -> Result<Vec<OrgId>, Error> {
        let mut out = Vec::new();
        let mut after = None;
        loop {
            let mut tx = self.store.begin().await?;
            let page = tx.organization_ids(after, 500).await?;
            drop(tx);
            let Some(last) = page.last().copied() else {
                return Ok(out);
            };
            out.extend(page);
            after = Some(last);
        }
    }

    /// Runs re-encryption to completion for every organisation that needs it.
    pub async fn reencrypt_all(&self, batch: u32) -> Result<u64, Error> {
        let mut moved = 0;
        for org in self.organization_ids().await? {
            moved += self.reencrypt_org(org, batch, None).await?.moved;
        }
        Ok(moved)
    }

    /// Makes `new_master` (held in memory) the master key; see [`Self::rotate_master_to`].
    pub async fn rotate_master(&self, new_master: &Key32) -> Result<u32, Error> {
        let kek = LocalKek::new(new_master).map_err(|e| Error::Internal(e.to_string()))?;
        self.rotate_master_to(Arc::new(kek)).await
    }

    /// Makes `new_kek` the master key: records its version, rewraps every organisation's data
    /// keys under it, then retires this keyring's version. Safe to run again after a crash: keys
    /// already rewrapped are skipped. Afterwards the keyring must be reopened with the new key.
    pub async fn rotate_master_to(&self, new_kek: Arc<dyn MasterKek>) -> Result<u32, Error> {
        let device = |e: super::KekError| Error::Internal(e.to_string());
        let mut tx = self.store.begin().await?;
        let versions = tx.kek_versions().await?;
        let mut known = None;
        for v in &versions {
            if new_kek.recognises(&v.check_value).map_err(device)? {
                known = Some(v);
                break;
            }
        }
        let new_version = match known {
            Some(v) if v.version == self.kek_version => {
                return Err(Error::invalid(
                    "new master key",
                    "is the current master key",
                ));
            }
            Some(v) if v.state == KeyState::Retired => {
                return Err(Error::invalid(
                    "new master key",
                    "was retired by an earlier rotation",
                ));
            }
            Some(v) => v.version,
            None => {
                let version = versions.iter().map(|v| v.version).max().unwrap_or(0) + 1;
                tx.insert_kek_version(&KekVersionRecord {
                    version,
                    check_value: new_kek.new_check_value(version).map_err(device)?,
                    state: KeyState::Active,
                    created_at: self.clock.now(),
                })
                .await?;
                version
            }
        };
        let proof = audit::append_operator(
            tx.as_mut(),
            self.clock.as_ref(),
            AuditEvent::success(
                actor(),
                "keyring.master_key_added",
                "master_key",
                new_version,
            ),
        )
        .await?;
        tx.commit(proof).await?;
        for org in self.organization_ids().await? {
            let mut tx = self.store.begin_scoped(&TenantScope::granted(org)).await?;
            for k in tx.org_keys().await? {
                if k.state != KeyState::Active || k.kek_version == new_version {
                    continue;
                }
                if k.kek_version != self.kek_version {
                    return Err(Error::Unreadable(format!(
                        "data key {} of {org} is wrapped under master-key version {}, neither the \
                         current nor the new one",
                        k.version, k.kek_version
                    )));
                }
                let raw = self
                    .kek
                    .unwrap(&k.wrapped, &dek_context(org))
                    .map_err(|e| Error::Unreadable(e.to_string()))?;
                // Opened again before it replaces the old wrapping (see `kek::wrap_verified`).
                let rewrapped = super::kek::wrap_verified(
                    new_kek.as_ref(),
                    EnvelopeHeader {
                        kek_version: new_version,
                        dek_version: k.version,
                    },
                    &dek_context(org),
                    &raw,
                )
                .map_err(|e| Error::Internal(e.to_string()))?;
                tx.update_org_key(k.version, &rewrapped, new_version, KeyState::Active)
                    .await?;
            }
            let proof = audit::append_tenant(
                tx.as_mut(),
                self.clock.as_ref(),
                AuditEvent::success(actor(), "key.rewrapped", "master_key", new_version),
            )
            .await?;
            tx.commit(proof).await?;
            self.evict_org(org);
            // Progress for the operator: a rotation over many organisations takes a while.
            tracing::info!(org_id = %org, new = new_version, "rewrapped the organisation's data keys");
        }
        // Last, with the retirement: until here the current key still opens the checkpoint key,
        // so a rotation cut off earlier is resumed by running it again with the current key.
        let mut tx = self.store.begin().await?;
        self.rewrap_signing_keys(tx.as_mut(), new_kek.as_ref(), new_version)
            .await?;
        self.rewrap_platform_keys(tx.as_mut(), new_kek.as_ref(), new_version)
            .await?;
        self.rewrap_link_keys(tx.as_mut(), new_kek.as_ref(), new_version)
            .await?;
        tx.set_kek_state(self.kek_version, KeyState::Retired)
            .await?;
        let proof = audit::append_operator(
            tx.as_mut(),
            self.clock.as_ref(),
            AuditEvent::success(
                actor(),
                "keyring.master_key_retired",
                "master_key",
                self.kek_version,
            ),
        )
        .await?;
        tx.commit(proof).await?;
        tracing::info!(
            old = self.kek_version,
            new = new_version,
            "master key rotated; every data key rewrapped"
        );
        Ok(new_version)
    }

    /// Destroys `org`'s data keys: every value it sealed becomes unreadable for good. Part of
    /// deleting an organisation.
    pub async fn shred(&self, org: OrgId) -> Result<u64, Error> {
        let mut tx = self.store.begin().await?;
        if tx.organization_by_id(org).await?.is_none() {
            return Err(Error::NotFound("organization"));
        }
        tx.mark_keys_shredded(org, self.clock.now()).await?;
        let mut tx = tx.enter(&TenantScope::granted(org)).await?;
        let destroyed = tx.delete_org_keys().await?;
        let proof = audit::append_tenant(
            tx.as_mut(),
            self.clock.as_ref(),
            AuditEvent::success(actor(), "organization.keys_shredded", "organization", org)
                .with_details(format!("{{\"versions_destroyed\":{destroyed}}}")),
        )
        .await?;
        tx.commit(proof).await?;
        audit::record_operator(
            self.store.as_ref(),
            self.clock.as_ref(),
            AuditEvent::success(actor(), "organization.keys_shredded", "organization", org),
        )
        .await?;
        self.evict_org(org);
        tracing::warn!(org_id = %org, destroyed, "organisation keys destroyed (crypto-shredded)");
        Ok(destroyed)
    }
}
