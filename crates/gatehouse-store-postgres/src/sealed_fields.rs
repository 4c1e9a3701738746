//! Sealed field values (envelopes under the organisation's data key), inside its scope under
//! row-level security: every statement names the scope's org id.

use async_trait::async_trait;
use gatehouse_core::store::{SealedFieldStore, SealedRecord, ensure_in_scope};
use gatehouse_core::{OrgId, StoreError};
use sqlx::Row;
use sqlx::postgres::PgRow;
use time::OffsetDateTime;

use crate::errors::map_err;
use crate::rows::{int, u32_col, uuid_col};
use crate::tx::PgTenantTx;

fn sealed(row: &PgRow) -> Result<SealedRecord, StoreError> {
    Ok(SealedRecord {
        org_id: OrgId::from_uuid(uuid_col(row, "org_id")?),
        kind: row.try_get("kind").map_err(map_err)?,
        record_id: row.try_get("record_id").map_err(map_err)?,
        field: row.try_get("field").map_err(map_err)?,
        dek_version: u32_col(row, "dek_version")?,
        envelope: row.try_get("envelope").map_err(map_err)?,
        updated_at: row.try_get("updated_at").map_err(map_err)?,
    })
}

impl PgTenantTx {
    /// Inserts a sealed value; `on_conflict` says what an existing one at the same place gets.
    /// Returns whether a row was written.
    async fn write_sealed(
        &mut self,
        f: &SealedRecord,
        on_conflict: &'static str,
    ) -> Result<bool, StoreError> {
        ensure_in_scope(&self.scope, f.org_id)?;
        let sql = format!(
            "INSERT INTO sealed_fields (org_id, kind, record_id, field, dek_version, envelope, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (org_id, kind, record_id, field) {on_conflict}"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(self.scope.org_id().as_uuid())
            .bind(&f.kind)
            .bind(&f.record_id)
            .bind(&f.field)
            .bind(int(f.dek_version))
            .bind(&f.envelope)
            .bind(f.updated_at)
            .execute(&mut *self.tx)
            .await
            .map(|r| r.rows_affected() == 1)
            .map_err(map_err)
    }
}

#[async_trait]
impl SealedFieldStore for PgTenantTx {
    async fn insert_sealed_if_absent(&mut self, f: &SealedRecord) -> Result<bool, StoreError> {
        self.write_sealed(f, "DO NOTHING").await
    }

    async fn put_sealed(&mut self, f: &SealedRecord) -> Result<(), StoreError> {
        self.write_sealed(
            f,
            "DO UPDATE SET dek_version = excluded.dek_version, envelope = excluded.envelope, \
             updated_at = excluded.updated_at",
        )
        .await
        .map(|_| ())
    }

    async fn sealed(
        &mut self,
        kind: &str,
        record_id: &str,
        field: &str,
    ) -> Result<Option<SealedRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT * FROM sealed_fields WHERE org_id = $1 AND kind = $2 AND record_id = $3 AND field = $4",
        )
        .bind(self.scope.org_id().as_uuid())
        .bind(kind)
        .bind(record_id)
        .bind(field)
        .fetch_optional(&mut *self.tx)
        .await
        .map_err(map_err)?;
        row.as_ref().map(sealed).transpose()
    }

    async fn sealed_of(
        &mut self,
        kind: &str,
        record_ids: &[String],
        field: &str,
    ) -> Result<Vec<SealedRecord>, StoreError> {
        if record_ids.is_empty() {
            return Ok(Vec::new());
        }
        let rows = sqlx::query(
            "SELECT * FROM sealed_fields WHERE org_id = $1 AND kind = $2 AND field = $3 \
             AND record_id = ANY($4)",
        )
        .bind(self.scope.org_id().as_uuid())
        .bind(kind)
        .bind(field)
        .bind(record_ids)
        .fetch_all(&mut *self.tx)
        .await
        .map_err(map_err)?;
        rows.iter().map(sealed).collect()
    }

    async fn sealed_before_version(
        &mut self,
        version: u32,
        limit: u32,
    ) -> Result<Vec<SealedRecord>, StoreError> {
        let found = sqlx::query(
            "SELECT * FROM sealed_fields WHERE org_id = $1 AND dek_version < $2 \
             ORDER BY kind, record_id, field LIMIT $3",
        )
        .bind(self.scope.org_id().as_uuid())
        .bind(int(version))
        .bind(i64::from(limit))
        .fetch_all(&mut *self.tx)
        .await
        .map_err(map_err)?;
        found.iter().map(sealed).collect()
    }

    async fn replace_sealed(
        &mut self,
        old: &SealedRecord,
        envelope: &[u8],
        dek_version: u32,
        at: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        sqlx::query(
            "UPDATE sealed_fields SET envelope = $1, dek_version = $2, updated_at = $3 \
             WHERE org_id = $4 AND kind = $5 AND record_id = $6 AND field = $7 AND envelope = $8",
        )
        .bind(envelope)
        .bind(int(dek_version))
        .bind(at)
        .bind(self.scope.org_id().as_uuid())
        .bind(&old.kind)
        .bind(&old.record_id)
        .bind(&old.field)
        .bind(&old.envelope)
        .execute(&mut *self.tx)
        .await
        .map(|r| r.rows_affected() == 1)
        .map_err(map_err)
    }

    async fn delete_sealed(
        &mut self,
        kind: &str,
        record_id: &str,
        field: &str,
    ) -> Result<bool, StoreError> {
        sqlx::query(
            "DELETE FROM sealed_fields WHERE org_id = $1 AND kind = $2 AND record_id = $3 AND field = $4",
        )
        .bind(self.scope.org_id().as_uuid())
        .bind(kind)
        .bind(record_id)
        .bind(field)
        .execute(&mut *self.tx)
        .await
        .map(|r| r.rows_affected() > 0)
        .map_err(map_err)
    }

    async fn delete_sealed_of(
        &mut self,
        kind: &str,
        record_ids: &[String],
    ) -> Result<u64, StoreError> {
        if record_ids.is_empty() {
            return Ok(0);
        }
        sqlx::query(
            "DELETE FROM sealed_fields WHERE org_id = $1 AND kind = $2 AND record_id = ANY($3)",
        )
        .bind(self.scope.org_id().as_uuid())
        .bind(kind)
        .bind(record_ids)
        .execute(&mut *self.tx)
        .await
        .map(|r| r.rows_affected())
        .map_err(map_err)
    }

    async fn sealed_counts(&mut self) -> Result<Vec<(u32, u64)>, StoreError> {
        let found: Vec<(i32, i64)> = sqlx::query_as(
            "SELECT dek_version, count(*) FROM sealed_fields WHERE org_id = $1 \
             GROUP BY dek_version ORDER BY dek_version",
        )
        .bind(self.scope.org_id().as_uuid())
        .fetch_all(&mut *self.tx)
        .await
        .map_err(map_err)?;
        found
            .into_iter()
            .map(|(v, n)| {
                Ok((
                    u32::try_from(v).map_err(|_| StoreError::Corrupt("dek_version".into()))?,
                    u64::try_from(n).map_err(|_| StoreError::Corrupt("count".into()))?,
                ))
            })
            .collect()
    }
}
