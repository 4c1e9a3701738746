//! Key material in SQLite: master-key versions, signing keys and the platform data key. Platform
//! rows, no statement names an organisation.

use async_trait::async_trait;
use gatehouse_core::StoreError;
use gatehouse_core::audit::{SigningKeyRecord, SigningPurpose};
use gatehouse_core::clock::{from_unix_micros, unix_micros};
use gatehouse_core::store::{KekVersionRecord, KeyMaterialStore, KeyState, PlatformKeyRecord};
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqliteConnection};

use crate::errors::map_err;
use crate::rows::{get, micros, state_col, time_col, u32_col};
use crate::tx::SqliteTx;

fn kek_version(row: &SqliteRow) -> Result<KekVersionRecord, StoreError> {
    Ok(KekVersionRecord {
        version: u32_col(row, "version")?,
        check_value: row.try_get("check_value").map_err(map_err)?,
        state: state_col(row)?,
        created_at: time_col(row, "created_at")?,
    })
}

fn platform_key(row: &SqliteRow) -> Result<PlatformKeyRecord, StoreError> {
    Ok(PlatformKeyRecord {
        version: u32_col(row, "version")?,
        wrapped: get(row, "wrapped")?,
        kek_version: u32_col(row, "kek_version")?,
        created_at: time_col(row, "created_at")?,
    })
}

#[async_trait]
impl KeyMaterialStore for SqliteTx {
    async fn lock_key_material(&mut self) -> Result<(), StoreError> {
        // `BEGIN IMMEDIATE` took the database's write lock, which excludes every other writer,
        // in this process or another; a reader has no business creating keys.
        if self.turn.is_none() {
            return Err(StoreError::Backend(
                "refused: key material is created only in a write transaction".into(),
            ));
        }
        Ok(())
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
            "INSERT INTO kek_versions (version, check_value, state, created_at) VALUES (?, ?, ?, ?)",
        )
        .bind(i64::from(k.version))
        .bind(&k.check_value)
        .bind(k.state.as_str())
        .bind(micros(k.created_at))
        .execute(&mut *self.tx)
        .await
        .map(|_| ())
        .map_err(map_err)
    }

    async fn set_kek_state(&mut self, version: u32, state: KeyState) -> Result<(), StoreError> {
        sqlx::query("UPDATE kek_versions SET state = ? WHERE version = ?")
            .bind(state.as_str())
            .bind(i64::from(version))
            .execute(&mut *self.tx)
            .await
            .map(|_| ())
            .map_err(map_err)
    }

    async fn signing_keys(&mut self) -> Result<Vec<SigningKeyRecord>, StoreError> {
        let conn: &mut SqliteConnection = &mut self.tx;
        let rows = sqlx::query("SELECT * FROM signing_keys ORDER BY version")
            .fetch_all(&mut *conn)
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
                    created_at: {
                        let m: i64 = row.try_get("created_at").map_err(map_err)?;
                        from_unix_micros(m).ok_or_else(|| StoreError::Corrupt("key time".into()))?
                    },
                })
            })
            .collect()
    }

    async fn insert_signing_key(&mut self, k: &SigningKeyRecord) -> Result<(), StoreError> {
        let conn: &mut SqliteConnection = &mut self.tx;
        sqlx::query(
            "INSERT INTO signing_keys (version, public_key, wrapped, kek_version, created_at, \
             purpose) VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(i64::from(k.version))
        .bind(&k.public_key)
        .bind(&k.wrapped)
        .bind(i64::from(k.kek_version))
        .bind(unix_micros(k.created_at))
        .bind(k.purpose.as_str())
        .execute(&mut *conn)
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
        let conn: &mut SqliteConnection = &mut self.tx;
        sqlx::query("UPDATE signing_keys SET wrapped = ?, kek_version = ? WHERE version = ?")
            .bind(wrapped)
            .bind(i64::from(kek_version))
            .bind(i64::from(version))
            .execute(&mut *conn)
            .await
            .map(|_| ())
            .map_err(map_err)
    }

    async fn platform_keys(&mut self) -> Result<Vec<PlatformKeyRecord>, StoreError> {
        let c: &mut SqliteConnection = &mut self.tx;
        let rows = sqlx::query("SELECT * FROM platform_keys ORDER BY version")
            .fetch_all(c)
            .await
            .map_err(map_err)?;
        rows.iter().map(platform_key).collect()
    }

    async fn insert_platform_key(&mut self, k: &PlatformKeyRecord) -> Result<(), StoreError> {
        let c: &mut SqliteConnection = &mut self.tx;
        sqlx::query(
            "INSERT INTO platform_keys (version, wrapped, kek_version, created_at) VALUES (?, ?, ?, ?)",
        )
        .bind(i64::from(k.version))
        .bind(&k.wrapped)
        .bind(i64::from(k.kek_version))
        .bind(micros(k.created_at))
        .execute(c)
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
        let c: &mut SqliteConnection = &mut self.tx;
        sqlx::query("UPDATE platform_keys SET wrapped = ?, kek_version = ? WHERE version = ?")
            .bind(wrapped)
            .bind(i64::from(kek_version))
            .bind(i64::from(version))
            .execute(c)
            .await
            .map(|_| ())
            .map_err(map_err)
    }

    async fn link_keys(&mut self) -> Result<Vec<PlatformKeyRecord>, StoreError> {
        let c: &mut SqliteConnection = &mut self.tx;
        let rows = sqlx::query("SELECT * FROM link_keys ORDER BY version")
            .fetch_all(c)
            .await
            .map_err(map_err)?;
        rows.iter().map(platform_key).collect()
    }

    async fn insert_link_key(&mut self, k: &PlatformKeyRecord) -> Result<(), StoreError> {
        let c: &mut SqliteConnection = &mut self.tx;
        sqlx::query(
            "INSERT INTO link_keys (version, wrapped, kek_version, created_at) VALUES (?, ?, ?, ?)",
        )
        .bind(i64::from(k.version))
        .bind(&k.wrapped)
        .bind(i64::from(k.kek_version))
        .bind(micros(k.created_at))
        .execute(c)
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
        let c: &mut SqliteConnection = &mut self.tx;
        sqlx::query("UPDATE link_keys SET wrapped = ?, kek_version = ? WHERE version = ?")
            .bind(wrapped)
            .bind(i64::from(kek_version))
            .bind(i64::from(version))
            .execute(c)
            .await
            .map(|_| ())
            .map_err(map_err)
    }
}
