//! An organisation's data keys and transit floor in SQLite, and the organisation as its own scope
//! reads it. Every statement names the scope's `org_id`.

use async_trait::async_trait;
use gatehouse_core::store::{
    KeyState, OrgKeyRecord, OrgKeyStore, OrganizationRecord, ensure_in_scope,
};
use gatehouse_core::{OrgId, StoreError};
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqliteConnection};

use crate::errors::map_err;
use crate::rows::{self, micros, state_col, time_col, u32_col, uuid_col};
use crate::tx::SqliteTenantTx;

fn org_key(row: &SqliteRow) -> Result<OrgKeyRecord, StoreError> {
    let n: i64 = row.try_get("encryptions").map_err(map_err)?;
    Ok(OrgKeyRecord {
        org_id: OrgId::from_uuid(uuid_col(row, "org_id")?),
        version: u32_col(row, "version")?,
        wrapped: row.try_get("wrapped").map_err(map_err)?,
        kek_version: u32_col(row, "kek_version")?,
        state: state_col(row)?,
        encryptions: u64::try_from(n).map_err(|_| StoreError::Corrupt("encryptions".into()))?,
        created_at: time_col(row, "created_at")?,
    })
}

#[async_trait]
impl OrgKeyStore for SqliteTenantTx {
    async fn organization(&mut self) -> Result<Option<OrganizationRecord>, StoreError> {
        let row = sqlx::query("SELECT * FROM organizations WHERE id = ?")
            .bind(self.scope.org_id().as_uuid())
            .fetch_optional(&mut *self.tx)
            .await
            .map_err(map_err)?;
        row.as_ref().map(rows::organization).transpose()
    }

    async fn org_keys(&mut self) -> Result<Vec<OrgKeyRecord>, StoreError> {
        let found = sqlx::query("SELECT * FROM org_keys WHERE org_id = ? ORDER BY version")
            .bind(self.scope.org_id().as_uuid())
            .fetch_all(&mut *self.tx)
            .await
            .map_err(map_err)?;
        found.iter().map(org_key).collect()
    }

    async fn insert_org_key(&mut self, k: &OrgKeyRecord) -> Result<(), StoreError> {
        ensure_in_scope(&self.scope, k.org_id)?;
        sqlx::query(
            "INSERT INTO org_keys (org_id, version, wrapped, kek_version, state, encryptions, created_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(self.scope.org_id().as_uuid())
        .bind(i64::from(k.version))
        .bind(&k.wrapped)
        .bind(i64::from(k.kek_version))
        .bind(k.state.as_str())
        .bind(i64::try_from(k.encryptions).unwrap_or(i64::MAX))
        .bind(micros(k.created_at))
        .execute(&mut *self.tx)
        .await
        .map(|_| ())
        .map_err(map_err)
    }

    async fn update_org_key(
        &mut self,
        version: u32,
        wrapped: &[u8],
        kek_version: u32,
        state: KeyState,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE org_keys SET wrapped = ?, kek_version = ?, state = ? WHERE org_id = ? AND version = ?",
        )
        .bind(wrapped)
        .bind(i64::from(kek_version))
        .bind(state.as_str())
        .bind(self.scope.org_id().as_uuid())
        .bind(i64::from(version))
        .execute(&mut *self.tx)
        .await
        .map(|_| ())
        .map_err(map_err)
    }

    async fn lock_org_keys(&mut self) -> Result<Vec<OrgKeyRecord>, StoreError> {
        let found = sqlx::query("SELECT * FROM org_keys WHERE org_id = ? ORDER BY version")
            .bind(self.scope.org_id().as_uuid())
            .fetch_all(&mut *self.tx)
            .await
            .map_err(map_err)?;
        found.iter().map(org_key).collect()
    }

    async fn count_encryption(&mut self, version: u32) -> Result<u64, StoreError> {
        let (n,): (i64,) = sqlx::query_as(
            "UPDATE org_keys SET encryptions = encryptions + 1 \
             WHERE org_id = ? AND version = ? AND state = 'active' RETURNING encryptions",
        )
        .bind(self.scope.org_id().as_uuid())
        .bind(i64::from(version))
        .fetch_optional(&mut *self.tx)
        .await
        .map_err(map_err)?
        .ok_or_else(|| {
            StoreError::Backend(format!("data key version {version} is no longer active"))
        })?;
        u64::try_from(n).map_err(|_| StoreError::Corrupt("encryptions".into()))
    }

    async fn delete_org_keys(&mut self) -> Result<u64, StoreError> {
        sqlx::query("DELETE FROM org_keys WHERE org_id = ?")
            .bind(self.scope.org_id().as_uuid())
            .execute(&mut *self.tx)
            .await
            .map(|r| r.rows_affected())
            .map_err(map_err)
    }

    async fn erase_organization(&mut self) -> Result<Vec<uuid::Uuid>, StoreError> {
        let org = self.scope.org_id().as_uuid();
        // Sessions, the key index and the product's mail carry the organisation without a foreign key; the
        // organisation's row takes every other tenant table with it (ON DELETE CASCADE). Its
        // audit chain may be deleted only once that row is gone (migration 0014's triggers).
        let sessions: Vec<uuid::Uuid> =
            sqlx::query_scalar("DELETE FROM sessions WHERE org_id = ? RETURNING id")
                .bind(org)
                .fetch_all(&mut *self.tx)
                .await
                .map_err(map_err)?;
        for statement in [
            "DELETE FROM api_key_index WHERE org_id = ?",
            "DELETE FROM mail_outbox WHERE org_id = ?",
            "DELETE FROM organizations WHERE id = ?",
            "DELETE FROM audit_events WHERE org_id = ?",
            "DELETE FROM audit_heads WHERE org_id = ?",
            "DELETE FROM audit_checkpoints WHERE org_id = ?",
        ] {
            sqlx::query(statement)
                .bind(org)
                .execute(&mut *self.tx)
                .await
                .map_err(map_err)?;
        }
        Ok(sessions)
    }

    async fn transit_floor(&mut self) -> Result<Option<u32>, StoreError> {
        let org = self.scope.org_id();
        let c: &mut SqliteConnection = &mut self.tx;
        let row = sqlx::query("SELECT min_version FROM transit_settings WHERE org_id = ?")
            .bind(org.as_uuid())
            .fetch_optional(c)
            .await
            .map_err(map_err)?;
        row.as_ref().map(|r| u32_col(r, "min_version")).transpose()
    }

    async fn set_transit_floor(&mut self, version: u32) -> Result<(), StoreError> {
        let org = self.scope.org_id();
        let c: &mut SqliteConnection = &mut self.tx;
        sqlx::query(
            "INSERT INTO transit_settings (org_id, min_version) VALUES (?, ?) \
             ON CONFLICT (org_id) DO UPDATE SET min_version = MAX(transit_settings.min_version, excluded.min_version)",
        )
        .bind(org.as_uuid())
        .bind(i64::from(version))
        .execute(c)
        .await
        .map(|_| ())
        .map_err(map_err)
    }

    async fn requires_second_factor(&mut self) -> Result<bool, StoreError> {
        let org = self.scope.org_id();
        let c: &mut SqliteConnection = &mut self.tx;
        let found: Option<i64> = sqlx::query_scalar(
            "SELECT require_second_factor FROM organization_policies WHERE org_id = ?",
        )
        .bind(org.as_uuid())
        .fetch_optional(c)
        .await
        .map_err(map_err)?;
        Ok(found == Some(1))
    }

    async fn set_requires_second_factor(
        &mut self,
        required: bool,
        at: time::OffsetDateTime,
    ) -> Result<bool, StoreError> {
        // No row reads as "not required": only a change writes, and the answer says whether
        // there was one to audit.
        if self.requires_second_factor().await? == required {
            return Ok(false);
        }
        let org = self.scope.org_id();
        let c: &mut SqliteConnection = &mut self.tx;
        let done = sqlx::query(
            "INSERT INTO organization_policies (org_id, require_second_factor, updated_at) \
             VALUES (?, ?, ?) ON CONFLICT (org_id) DO UPDATE SET \
             require_second_factor = excluded.require_second_factor, updated_at = excluded.updated_at \
             WHERE organization_policies.require_second_factor <> excluded.require_second_factor",
        )
        .bind(org.as_uuid())
        .bind(i64::from(required))
        .bind(micros(at))
        .execute(c)
        .await
        .map_err(map_err)?;
        Ok(done.rows_affected() == 1)
    }
}
