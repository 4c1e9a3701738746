//! Backups (D3): a logical snapshot of every table, the same on both backends.
//!
//! A snapshot is taken in one read transaction (SQLite's WAL snapshot, PostgreSQL's repeatable
//! read) and written table by table in foreign-key order as JSON lines (`archive.rs`). Values are
//! reduced to SQLite's storage classes (integer, text, blob): PostgreSQL's `uuid` becomes its 16
//! bytes, `timestamptz` microseconds since the epoch, `boolean` 0 or 1, which is exactly how the
//! SQLite schema stores them. So a table's digest is the same whichever backend wrote it, and a
//! backup of one backend restores into the other. Encryption (age) is the CLI's business; this
//! module neither encrypts nor does I/O beyond the reader and writer it is handed.

pub mod archive;
mod digest;
mod manifest;
mod order;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

pub use archive::{ArchiveReader, ArchiveWriter};
pub use digest::TableDigest;
pub use manifest::{ChainHead, Checkpoint, Manifest, Seal, TableSummary, manifest_digest};
pub use order::foreign_key_order;

/// The archive format's version. A reader refuses any other.
pub const FORMAT_VERSION: u32 = 1;

/// A column's storage class in the archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Class {
    Integer,
    Text,
    Blob,
}

/// One stored value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Null,
    Integer(i64),
    Text(String),
    Blob(Vec<u8>),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Column {
    pub name: String,
    pub class: Class,
}

/// A table as the archive names it: its columns in the order every row lists its values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Table {
    pub name: String,
    pub columns: Vec<Column>,
}

/// What the snapshot says about itself before its first table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotInfo {
    /// `sqlite` or `postgres`.
    pub backend: String,
    /// The newest migration applied to the source.
    pub schema_version: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackupError {
    /// The database could not be read or written.
    #[error("{0}")]
    Store(String),
    /// The archive is not what its own manifest says: changed, cut short or not a backup.
    #[error("the backup is damaged or was altered: {0}")]
    Damaged(String),
    /// The operation was refused before anything was changed.
    #[error("{0}")]
    Refused(String),
    #[error("cannot write the backup: {0}")]
    Io(String),
}

/// Receives a snapshot: `start`, then each table's header, rows and end, in foreign-key order.
pub trait SnapshotSink: Send {
    fn start(&mut self, info: &SnapshotInfo) -> Result<(), BackupError>;
    fn begin_table(&mut self, table: &Table) -> Result<(), BackupError>;
    fn row(&mut self, row: &[Value]) -> Result<(), BackupError>;
    fn end_table(&mut self) -> Result<(), BackupError>;
}

/// Hands a restore its tables, in the order they were written.
pub trait RestoreSource: Send {
    /// The next table, or `None` after the last (when the manifest has been checked).
    fn next_table(&mut self) -> Result<Option<Table>, BackupError>;
    /// Up to `max` rows of the current table; empty once the table is done.
    fn next_rows(&mut self, max: usize) -> Result<Vec<Vec<Value>>, BackupError>;
}

/// Told how far a long run has got (table, rows so far).
pub type Progress<'a> = &'a (dyn Fn(&str, u64) + Send + Sync);

/// What a storage backend offers backups. Implemented by each store on its owner connection:
/// a backup reads every organisation's rows, which the application role cannot.
#[async_trait]
pub trait BackupStore: Send + Sync {
    /// The newest migration applied.
    async fn schema_version(&self) -> Result<i64, BackupError>;
    /// Streams every table into `sink` from one consistent read.
    async fn snapshot(
        &self,
        sink: &mut dyn SnapshotSink,
        progress: Progress<'_>,
    ) -> Result<(), BackupError>;
    /// Writes every table of `source` in one transaction into this database, which must be
    /// migrated to the archive's schema version and hold no rows. Nothing is committed unless
    /// every row went in and the source's manifest checked out.
    async fn restore(
        &self,
        source: &mut dyn RestoreSource,
        progress: Progress<'_>,
    ) -> Result<(), BackupError>;
}

/// Refuses a table or column name that could not be quoted as an SQL identifier as is. Names
/// come from the database's own catalog or from an authenticated archive; this keeps a damaged
/// name from ever reaching SQL text.
pub fn check_identifier(name: &str) -> Result<&str, BackupError> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(name)
    } else {
        Err(BackupError::Damaged(format!(
            "{name:?} is not a table or column name Gatehouse uses"
        )))
    }
}

/// Compares an archive's table with the target database's: same columns, same classes.
pub fn check_same_columns(archive: &Table, target: &Table) -> Result<(), BackupError> {
    let mut a: Vec<_> = archive.columns.iter().collect();
    let mut t: Vec<_> = target.columns.iter().collect();
    a.sort_by(|x, y| x.name.cmp(&y.name));
    t.sort_by(|x, y| x.name.cmp(&y.name));
    if a == t {
        Ok(())
    } else {
        Err(BackupError::Refused(format!(
            "table {}: the backup's columns differ from the target's at the same schema version; \
             the archive does not fit this database",
            archive.name
        )))
    }
}

#[cfg(test)]
mod tests;
