//! Organisations (platform rows: the table every tenant row points at).

use async_trait::async_trait;
use gatehouse_core::store::{OrganizationRecord, OrganizationStore};
use gatehouse_core::{OrgId, StoreError};
use time::OffsetDateTime;

use crate::errors::map_err;
use crate::rows;
use crate::tx::PgTx;

#[async_trait]
impl OrganizationStore for PgTx {
    async fn insert_organization(&mut self, o: &OrganizationRecord) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO organizations (id, name, created_at) VALUES ($1, $2, $3)")
            .bind(o.id.as_uuid())
            .bind(&o.name)
            .bind(o.created_at)
            .execute(&mut *self.tx)
            .await
            .map(|_| ())
            .map_err(map_err)
    }

    async fn organization_by_id(
        &mut self,
        id: OrgId,
    ) -> Result<Option<OrganizationRecord>, StoreError> {
        let row = sqlx::query("SELECT * FROM organizations WHERE id = $1")
            .bind(id.as_uuid())
            .fetch_optional(&mut *self.tx)
            .await
            .map_err(map_err)?;
        row.as_ref().map(rows::organization).transpose()
    }

    async fn organization_ids(
        &mut self,
        after: Option<OrgId>,
        limit: u32,
    ) -> Result<Vec<OrgId>, StoreError> {
        let found: Vec<(uuid::Uuid,)> = sqlx::query_as(
            "SELECT id FROM organizations WHERE ($1::uuid IS NULL OR id > $1) ORDER BY id LIMIT $2",
        )
        .bind(after.map(|o| o.as_uuid()))
        .bind(i64::from(limit))
        .fetch_all(&mut *self.tx)
        .await
        .map_err(map_err)?;
        Ok(found
            .into_iter()
            .map(|(id,)| OrgId::from_uuid(id))
            .collect())
    }

    async fn count_organizations(&mut self) -> Result<u64, StoreError> {
        let (n,): (i64,) = sqlx::query_as("SELECT count(*) FROM organizations")
            .fetch_one(&mut *self.tx)
            .await
            .map_err(map_err)?;
        u64::try_from(n).map_err(|_| StoreError::Corrupt("organisation count".into()))
    }

    async fn organization_ids_from(
        &mut self,
        position: u64,
        limit: u32,
    ) -> Result<Vec<OrgId>, StoreError> {
        let offset = i64::try_from(position).unwrap_or(i64::MAX);
        let found: Vec<(uuid::Uuid,)> =
            sqlx::query_as("SELECT id FROM organizations ORDER BY id LIMIT $1 OFFSET $2")
                .bind(i64::from(limit))
                .bind(offset)
                .fetch_all(&mut *self.tx)
                .await
                .map_err(map_err)?;
        Ok(found
            .into_iter()
            .map(|(id,)| OrgId::from_uuid(id))
            .collect())
    }

    async fn mark_keys_shredded(
        &mut self,
        org: OrgId,
        at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE organizations SET keys_shredded_at = $1 WHERE id = $2")
            .bind(at)
            .bind(org.as_uuid())
            .execute(&mut *self.tx)
            .await
            .map(|_| ())
            .map_err(map_err)
    }
}
