//! Driver errors to domain errors: by SQLSTATE class and constraint name, never by message text.

use gatehouse_core::StoreError;

pub(crate) fn map_err(e: sqlx::Error) -> StoreError {
    match e {
        sqlx::Error::Database(db) => {
            if matches!(
                db.constraint(),
                Some("users_email_key" | "operators_email_key")
            ) {
                return StoreError::EmailTaken;
            }
            if db.is_unique_violation() {
                return StoreError::Duplicate;
            }
            StoreError::Backend(db.to_string())
        }
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => StoreError::Unavailable(e.to_string()),
        sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) => {
            StoreError::Corrupt(e.to_string())
        }
        other => StoreError::Backend(other.to_string()),
    }
}
