//! Platform key material: master-key (KEK) versions, audit and token signing keys, and the
//! platform data keys. Platform rows (no org_id, no row-level security).

use async_trait::async_trait;
use gatehouse_core::StoreError;
use gatehouse_core::audit::{SigningKeyRecord, SigningPurpose};
use gatehouse_core::store::{KekVersionRecord, KeyMaterialStore, KeyState, PlatformKeyRecord};
use sqlx::Row;
use sqlx::postgres::PgRow;

use crate::errors::map_err;
use crate::rows::{get, int, state_col, u32_col};
use crate::tx::PgTx;

/// The advisory lock key that key creation takes (`lock_key_material`): "gh-keys\0" as a
/// big-endian integer, apart from sqlx's migration lock, which is derived from the database name.
const KEY_MATERIAL_LOCK: i64 = 0x6768_2d6b_6579_7300;

fn kek_version(row: &PgRow) -> Result<KekVersionRecord, StoreError> {
    Ok(KekVersionRecord {
        version: u32_col(row, "version")?,
        check_value: row.try_get("check_value").map_err(map_err)?,
        state: state_col(row)?,
        created_at: row.try_get("created_at").map_err(map_err)?,
    })
}

fn platform_key(row: &PgRow) -> Result<PlatformKeyRecord, StoreError> {
    Ok(PlatformKeyRecord {
        version: u32_col(row, "version")?,
        wrapped: get(row, "wrapped")?,
        kek_version: u32_col(row, "kek_version")?,
        created_at: get(row, "created_at")?,
    })
}

#[async_trait]
impl KeyMaterialStore for PgTx {
    async fn lock_key_material(&mut self) -> Result<(), StoreError> {
        // Transaction-scoped: released by the commit or rollback, never left on a pooled
        // connection. Every statement after it (read committed) sees what the previous holder
        // committed.
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(KEY_MATERIAL_LOCK)
            .execute(&mut *self.tx)
            .await
            .map(|_| ())
            .map_err(map_err)
    }

    async fn kek_versions(&mut self) -> Result<Vec<KekVersionRecord>, StoreError> {
        let found = sqlx::query("SELECT * FROM kek_versions ORDER BY version")
            .fetch_all(&mut *self.tx)
            .await
            .map_err(map_err)?;
        found.iter().map(kek_version).collect()
    }

    async fn insert_kek_version(&mut self, k: &KekVersionRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO kek_versions (version, check_value, state, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(int(k.version))
        .bind(&k.check_value)
        .bind(k.state.as_str())
        .bind(k.created_at)
        .execute(&mut *self.tx)
        .await
        .map(|_| ())
        .map_err(map_err)
    }

    async fn set_kek_state(&mut self, version: u32, state: KeyState) -> Result<(), StoreError> {
        sqlx::query("UPDATE kek_versions SET state = $1 WHERE version = $2")
            .bind(state.as_str())
            .bind(int(version))
            .execute(&mut *self.tx)
            .await
            .map(|_| ())
            .map_err(map_err)
    }

    async fn signing_keys(&mut self) -> Result<Vec<SigningKeyRecord>, StoreError> {
        let rows = sqlx::query("SELECT * FROM signing_keys ORDER BY version")
            .fetch_all(&mut *self.tx)
            .await
            .map_err(map_err)?;
        rows.iter()
            .map(|row| {
                Ok(SigningKeyRecord {
                    version: u32_col(row, "version")?,
                    purpose: {
                        let p: String = row.try_get("purpose").map_err(map_err)?;
                        SigningPurpose::parse(&p)
                            .ok_or_else(|| StoreError::Corrupt(format!("signing purpose {p:?}")))?
                    },
                    public_key: row.try_get("public_key").map_err(map_err)?,
                    wrapped: row.try_get("wrapped").map_err(map_err)?,
                    kek_version: u32_col(row, "kek_version")?,
                    created_at: row.try_get("created_at").map_err(map_err)?,
                })
            })
            .collect()
    }

    async fn insert_signing_key(&mut self, k: &SigningKeyRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO signing_keys (version, public_key, wrapped, kek_version, created_at, \
             purpose) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(i32::try_from(k.version).unwrap_or(i32::MAX))
        .bind(&k.public_key)
        .bind(&k.wrapped)
        .bind(i32::try_from(k.kek_version).unwrap_or(i32::MAX))
        .bind(k.created_at)
        .bind(k.purpose.as_str())
        .execute(&mut *self.tx)
        .await
        .map(|_| ())
        .map_err(map_err)
    }

    async fn rewrap_signing_key(
        &mut self,
        version: u32,
        wrapped: &[u8],
        kek_version: u32,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE signing_keys SET wrapped = $1, kek_version = $2 WHERE version = $3")
            .bind(wrapped)
            .bind(i32::try_from(kek_version).unwrap_or(i32::MAX))
            .bind(i32::try_from(version).unwrap_or(i32::MAX))
            .execute(&mut *self.tx)
            .await
            .map(|_| ())
            .map_err(map_err)
    }

    async fn platform_keys(&mut self) -> Result<Vec<PlatformKeyRecord>, StoreError> {
        let rows = sqlx::query("SELECT * FROM platform_keys ORDER BY version")
            .fetch_all(&mut *self.tx)
            .await
            .map_err(map_err)?;
        rows.iter().map(platform_key).collect()
    }

    async fn insert_platform_key(&mut self, k: &PlatformKeyRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO platform_keys (version, wrapped, kek_version, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(int(k.version))
        .bind(&k.wrapped)
        .bind(int(k.kek_version))
        .bind(k.created_at)
        .execute(&mut *self.tx)
        .await
        .map(|_| ())
        .map_err(map_err)
    }

    async fn rewrap_platform_key(
        &mut self,
        version: u32,
        wrapped: &[u8],
        kek_version: u32,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE platform_keys SET wrapped = $1, kek_version = $2 WHERE version = $3")
            .bind(wrapped)
            .bind(int(kek_version))
            .bind(int(version))
            .execute(&mut *self.tx)
            .await
            .map(|_| ())
            .map_err(map_err)
    }

    async fn link_keys(&mut self) -> Result<Vec<PlatformKeyRecord>, StoreError> {
        let rows = sqlx::query("SELECT * FROM link_keys ORDER BY version")
            .fetch_all(&mut *self.tx)
            .await
            .map_err(map_err)?;
        rows.iter().map(platform_key).collect()
    }

    async fn insert_link_key(&mut self, k: &PlatformKeyRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO link_keys (version, wrapped, kek_version, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(int(k.version))
        .bind(&k.wrapped)
        .bind(int(k.kek_version))
        .bind(k.created_at)
        .execute(&mut *self.tx)
        .await
        .map(|_| ())
        .map_err(map_err)
    }

    async fn rewrap_link_key(
        &mut self,
        version: u32,
        wrapped: &[u8],
        kek_version: u32,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE link_keys SET wrapped = $1, kek_version = $2 WHERE version = $3")
            .bind(wrapped)
            .bind(int(kek_version))
            .bind(int(version))
            .execute(&mut *self.tx)
            .await
            .map(|_| ())
            .map_err(map_err)
    }
}
