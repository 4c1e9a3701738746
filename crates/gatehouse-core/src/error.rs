//! The domain's errors. Each carries a stable snake_case `code` and no HTTP status: only the HTTP
//! layer decides statuses.

/// What went wrong inside a storage backend. Backends map driver errors into these by the kind of
/// failure (a unique violation in a known insert, a lost connection), never by parsing messages.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the email address is already registered")]
    EmailTaken,
    #[error("the row already exists")]
    Duplicate,
    #[error("the store is unreachable: {0}")]
    Unavailable(String),
    #[error("the store failed: {0}")]
    Backend(String),
    #[error("a stored value could not be read: {0}")]
    Corrupt(String),
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An input failed validation; `field` names it for the client.
    #[error("{field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    #[error("the email address is already registered")]
    EmailTaken,
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A bounded resource (the password-hashing queue) is full; try again shortly.
    #[error("the server is busy; retry after {retry_after_secs} s")]
    Overloaded { retry_after_secs: u32 },
    #[error(transparent)]
    Store(StoreError),
    /// The organisation's keys were destroyed; its sealed data can never be read again.
    #[error("the organisation's keys were destroyed")]
    KeysShredded,
    /// A sealed value did not open: modified, moved to another context, or its key is gone.
    #[error("a sealed value could not be opened: {0}")]
    Unreadable(String),
    /// A bug or an environment failure (random source, hashing). The message is for logs only.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    pub fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Self::Invalid {
            field,
            reason: reason.into(),
        }
    }

    /// The stable code clients may match on. Listed in docs/API.md; never renamed.
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            Self::Invalid { .. } => "validation_failed",
            Self::EmailTaken | Self::Store(StoreError::EmailTaken) => "email_taken",
            Self::NotFound(_) => "not_found",
            Self::Overloaded { .. } => "overloaded",
            Self::Store(StoreError::Duplicate) => "conflict",
            Self::Store(StoreError::Unavailable(_)) => "store_unavailable",
            Self::KeysShredded => "keys_shredded",
            Self::Unreadable(_) => "sealed_value_unreadable",
            Self::Store(_) | Self::Internal(_) => "internal_error",
        }
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::EmailTaken => Self::EmailTaken,
            other => Self::Store(other),
        }
    }
}
