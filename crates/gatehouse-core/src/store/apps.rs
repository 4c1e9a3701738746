//! The app registry: downstream apps an operator registered, each with the audience its tokens
//! carry (RFC 8707 `resource`). A platform table with no organisation and no personal data.

use async_trait::async_trait;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::StoreError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppRecord {
    pub id: Uuid,
    pub name: String,
    /// The `aud` of the tokens issued for it, and the `resource` a client asks for; unique.
    pub audience: String,
    pub created_at: OffsetDateTime,
}

#[async_trait]
/// Registered apps, platform-wide.
pub trait AppStore: Send {
    /// Adds an app; `StoreError::Duplicate` when another has the same audience.
    async fn insert_app(&mut self, app: &AppRecord) -> Result<(), StoreError>;

    /// Every registered app, oldest first.
    async fn apps(&mut self) -> Result<Vec<AppRecord>, StoreError>;

    async fn app_by_audience(&mut self, audience: &str) -> Result<Option<AppRecord>, StoreError>;

    /// Removes the app; the removed row, if there was one.
    async fn delete_app(&mut self, id: Uuid) -> Result<Option<AppRecord>, StoreError>;
}
