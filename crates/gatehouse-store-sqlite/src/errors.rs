//! Driver errors to domain errors, by kind of failure.

use gatehouse_core::StoreError;

pub(crate) fn map_err(e: sqlx::Error) -> StoreError {
    match e {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Duplicate,
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => StoreError::Unavailable(e.to_string()),
        sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) => {
            StoreError::Corrupt(e.to_string())
        }
        other => StoreError::Backend(other.to_string()),
    }
}

/// Like [`map_err`], for an insert whose only unique key besides a random id is the email.
pub(crate) fn map_user_insert_err(e: sqlx::Error) -> StoreError {
    match map_err(e) {
        StoreError::Duplicate => StoreError::EmailTaken,
        other => other,
    }
}
