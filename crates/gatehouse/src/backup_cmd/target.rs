//! The database a backup reads or a restore writes: the configured one, on the role that can see
//! every row (SQLite's file; PostgreSQL's `database_migration_url`).

use gatehouse_core::backup::BackupStore;
use gatehouse_store_postgres::{PostgresOwner, PostgresStore};
use gatehouse_store_sqlite::SqliteStore;

use crate::config::{Config, Database, MasterKey};

pub(super) async fn open(config: &Config) -> Result<Box<dyn BackupStore>, String> {
    match &config.database.database {
        Database::Sqlite { url } => {
            let store = SqliteStore::connect(url, 2)
                .await
                .map_err(|e| format!("database_url: {e}"))?;
            Ok(Box::new(store))
        }
        Database::Postgres { url, migration_url } => {
            let owner = PostgresOwner::connect(migration_url.as_deref().unwrap_or(url))
                .await
                .map_err(|e| format!("database_migration_url: {e}"))?;
            Ok(Box::new(owner))
        }
    }
}

/// The target of a restore, with its schema at `version`: a database with no schema is migrated
/// to it; one at another version is refused.
pub(super) async fn open_empty(
    config: &Config,
    version: i64,
) -> Result<Box<dyn BackupStore>, String> {
    if let Database::Sqlite { .. } = &config.database.database {
        ensure_dir(&config.data_dir)?;
    }
    let store = open(config).await?;
    let at = store.schema_version().await.map_err(|e| e.to_string())?;
    if at == version {
        return Ok(store);
    }
    if at != 0 {
        return Err(format!(
            "the target database is at schema version {at}, the backup at {version}; restore \
             only into a new data directory or an empty database (no tables)"
        ));
    }
    match &config.database.database {
        Database::Sqlite { url } => {
            let s = SqliteStore::connect(url, 1)
                .await
                .map_err(|e| e.to_string())?;
            s.migrate_up_to(version).await.map_err(|e| e.to_string())?;
        }
        Database::Postgres { url, migration_url } => {
            let owner = PostgresOwner::connect(migration_url.as_deref().unwrap_or(url))
                .await
                .map_err(|e| e.to_string())?;
            owner
                .migrate_up_to(version)
                .await
                .map_err(|e| e.to_string())?;
        }
    }
    Ok(store)
}

/// Applies the migrations newer than the backup's schema.
pub(super) async fn migrate_rest(config: &Config) -> Result<(), String> {
    match &config.database.database {
        Database::Sqlite { url } => {
            let s = SqliteStore::connect(url, 1)
                .await
                .map_err(|e| e.to_string())?;
            s.migrate().await.map_err(|e| e.to_string())
        }
        Database::Postgres { url, migration_url } => {
            PostgresStore::migrate(migration_url.as_deref().unwrap_or(url))
                .await
                .map_err(|e| e.to_string())
        }
    }
}

fn ensure_dir(dir: &std::path::Path) -> Result<(), String> {
    use std::os::unix::fs::DirBuilderExt;
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| format!("data_dir: cannot create {}: {e}", dir.display()))
}

/// Whether the configured master key is one the backup's data keys are wrapped under (by its
/// check value, as the keyring recognises it at start; an HSM key is asked inside the token),
/// without generating a development key.
pub(super) async fn master_key_matches(config: &Config, checks: &[Vec<u8>]) -> Result<(), String> {
    if checks.is_empty() {
        return Ok(());
    }
    match &config.master_key {
        MasterKey::Shares => {
            return Err(
                "master_key = \"shares\": a restore checks the master key against the backup \
                 and verifies the restored audit chains with it, and shares are taken only by a \
                 sealed `gatehouse serve`; run the restore with the key source the shares were \
                 split from (master_key_file or the HSM)"
                    .into(),
            );
        }
        MasterKey::GeneratedDevelopment(path) if !path.exists() => {
            return Err(format!(
                "no master key: {} does not exist. Supply the master key of the deployment that \
                 was backed up (copy its development key file there, or set \
                 GATEHOUSE_MASTER_KEY, master_key_file or [master_key_pkcs11])",
                path.display()
            ));
        }
        _ => {}
    }
    let (kek, _) = crate::app::master_kek(config)
        .await
        .map_err(|e| e.to_string())?;
    for c in checks {
        if kek.recognises(c).map_err(|e| format!("master key: {e}"))? {
            return Ok(());
        }
    }
    Err(
        "the configured master key is not one this backup's data keys are wrapped under, so \
         nothing it sealed could be opened; supply the master key of the deployment that was \
         backed up"
            .into(),
    )
}
