//! Single sign-on in PostgreSQL (core's `store/sso.rs`): the scope's provider and domains under
//! row-level security, and the platform's look-ups, each declaring the one domain, identity digest
//! or person it reads (migration 0022's policies).

use async_trait::async_trait;
use gatehouse_core::store::{
    ExternalIdentityRecord, SsoConfigRecord, SsoDirectory, SsoDomainRecord, SsoStore,
    ensure_in_scope, external_identity_digest,
};
use gatehouse_core::{OrgId, StoreError, UserId};
use sqlx::postgres::PgRow;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::declare::{Named, declare};
use crate::errors::map_err;
use crate::rows::{get, opt_time_col, time_col, uuid_col};
use crate::tx::{PgTenantTx, PgTx};

fn config(row: &PgRow) -> Result<SsoConfigRecord, StoreError> {
    let enforced: bool = get(row, "enforced")?;
    Ok(SsoConfigRecord {
        org_id: OrgId::from_uuid(uuid_col(row, "org_id")?),
        issuer: get(row, "issuer")?,
        client_id: get(row, "client_id")?,
        scopes: get(row, "scopes")?,
        default_role: get(row, "default_role")?,
        enforced,
        created_at: time_col(row, "created_at")?,
        updated_at: time_col(row, "updated_at")?,
    })
}

fn domain(row: &PgRow) -> Result<SsoDomainRecord, StoreError> {
    Ok(SsoDomainRecord {
        org_id: OrgId::from_uuid(uuid_col(row, "org_id")?),
        domain: get(row, "domain")?,
        challenge: get(row, "challenge")?,
        created_at: time_col(row, "created_at")?,
        verified_at: opt_time_col(row, "verified_at")?,
    })
}

fn identity(row: &PgRow) -> Result<ExternalIdentityRecord, StoreError> {
    let by: Option<Uuid> = get(row, "linked_by_org")?;
    Ok(ExternalIdentityRecord {
        issuer: get(row, "issuer")?,
        subject: get(row, "subject")?,
        user_id: UserId::from_uuid(uuid_col(row, "user_id")?),
        linked_by: by.map(OrgId::from_uuid),
        created_at: time_col(row, "created_at")?,
    })
}

#[async_trait]
impl SsoStore for PgTenantTx {
    async fn sso_config(&mut self) -> Result<Option<SsoConfigRecord>, StoreError> {
        let row = sqlx::query("SELECT * FROM sso_configs WHERE org_id = $1")
            .bind(self.scope.org_id().as_uuid())
            .fetch_optional(&mut *self.tx)
            .await
            .map_err(map_err)?;
        row.as_ref().map(config).transpose()
    }

    async fn put_sso_config(&mut self, c: &SsoConfigRecord) -> Result<(), StoreError> {
        ensure_in_scope(&self.scope, c.org_id)?;
        sqlx::query(
            "INSERT INTO sso_configs (org_id, issuer, client_id, scopes, default_role, enforced, \
             created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (org_id) DO UPDATE SET issuer = excluded.issuer, \
             client_id = excluded.client_id, scopes = excluded.scopes, \
             default_role = excluded.default_role, enforced = excluded.enforced, \
             updated_at = excluded.updated_at",
        )
        .bind(c.org_id.as_uuid())
        .bind(&c.issuer)
        .bind(&c.client_id)
        .bind(&c.scopes)
        .bind(&c.default_role)
        .bind(c.enforced)
        .bind(c.created_at)
        .bind(c.updated_at)
        .execute(&mut *self.tx)
        .await
        .map(|_| ())
        .map_err(map_err)
    }

    async fn delete_sso_config(&mut self) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM sso_configs WHERE org_id = $1")
            .bind(self.scope.org_id().as_uuid())
            .execute(&mut *self.tx)
            .await
            .map_err(map_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn sso_domains(&mut self) -> Result<Vec<SsoDomainRecord>, StoreError> {
        let rows = sqlx::query("SELECT * FROM sso_domains WHERE org_id = $1 ORDER BY domain")
            .bind(self.scope.org_id().as_uuid())
            .fetch_all(&mut *self.tx)
            .await
            .map_err(map_err)?;
        rows.iter().map(domain).collect()
    }

    async fn sso_domain(&mut self, name: &str) -> Result<Option<SsoDomainRecord>, StoreError> {
        let row = sqlx::query("SELECT * FROM sso_domains WHERE org_id = $1 AND domain = $2")
            .bind(self.scope.org_id().as_uuid())
            .bind(name)
            .fetch_optional(&mut *self.tx)
            .await
            .map_err(map_err)?;
        row.as_ref().map(domain).transpose()
    }

    async fn insert_sso_domain(&mut self, d: &SsoDomainRecord) -> Result<(), StoreError> {
        ensure_in_scope(&self.scope, d.org_id)?;
        sqlx::query(
            "INSERT INTO sso_domains (org_id, domain, challenge, created_at, verified_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(d.org_id.as_uuid())
        .bind(&d.domain)
        .bind(&d.challenge)
        .bind(d.created_at)
        .bind(d.verified_at)
        .execute(&mut *self.tx)
        .await
        .map(|_| ())
        .map_err(map_err)
    }

    async fn verify_sso_domain(
        &mut self,
        name: &str,
        at: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE sso_domains SET verified_at = $1 \
             WHERE org_id = $2 AND domain = $3 AND verified_at IS NULL",
        )
        .bind(at)
        .bind(self.scope.org_id().as_uuid())
        .bind(name)
        .execute(&mut *self.tx)
        .await
        .map_err(map_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn delete_sso_domain(&mut self, name: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM sso_domains WHERE org_id = $1 AND domain = $2")
            .bind(self.scope.org_id().as_uuid())
            .bind(name)
            .execute(&mut *self.tx)
            .await
            .map_err(map_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn delete_links_made_here(&mut self, user: Option<UserId>) -> Result<u64, StoreError> {
        // The scope reaches the links its organisation made (migration 0023's policies); a
        // person's are named too, so that statement sees no more than before.
        let query = match user {
            Some(user) => {
                declare(&mut self.tx, Named::Subject(user.as_uuid())).await?;
                sqlx::query(
                    "DELETE FROM external_identities WHERE linked_by_org = $1 AND user_id = $2",
                )
                .bind(self.scope.org_id().as_uuid())
                .bind(user.as_uuid())
            }
            None => sqlx::query("DELETE FROM external_identities WHERE linked_by_org = $1")
                .bind(self.scope.org_id().as_uuid()),
        };
        query
            .execute(&mut *self.tx)
            .await
            .map(|r| r.rows_affected())
            .map_err(map_err)
    }

    async fn revoke_sessions_begun_here(
        &mut self,
        at: OffsetDateTime,
    ) -> Result<Vec<(Uuid, OffsetDateTime)>, StoreError> {
        // The scope reaches the sessions whose tokens are for its organisation (the sessions'
        // `tenant_isolation` policy); one its sign-on began never leaves it (a switch out is
        // refused).
        let rows = sqlx::query(
            "UPDATE sessions SET revoked_at = $1 WHERE org_id = $2 AND signed_in_with = 'sso' \
             AND sso_org_id = $2 AND revoked_at IS NULL AND expires_at > $1 \
             RETURNING id, expires_at",
        )
        .bind(at)
        .bind(self.scope.org_id().as_uuid())
        .fetch_all(&mut *self.tx)
        .await
        .map_err(map_err)?;
        rows.iter()
            .map(|r| Ok((get(r, "id")?, time_col(r, "expires_at")?)))
            .collect()
    }
}

#[async_trait]
impl SsoDirectory for PgTx {
    async fn org_of_verified_domain(&mut self, name: &str) -> Result<Option<OrgId>, StoreError> {
        declare(&mut self.tx, Named::Domain(name)).await?;
        let found: Option<Uuid> = sqlx::query_scalar(
            "SELECT org_id FROM sso_domains WHERE domain = $1 AND verified_at IS NOT NULL",
        )
        .bind(name)
        .fetch_optional(&mut *self.tx)
        .await
        .map_err(map_err)?;
        Ok(found.map(OrgId::from_uuid))
    }

    async fn external_identity(
        &mut self,
        issuer: &str,
        subject: &str,
    ) -> Result<Option<ExternalIdentityRecord>, StoreError> {
        let digest = external_identity_digest(issuer, subject);
        declare(&mut self.tx, Named::Digest(&digest)).await?;
        let row = sqlx::query("SELECT * FROM external_identities WHERE digest = $1")
            .bind(&digest)
            .fetch_optional(&mut *self.tx)
            .await
            .map_err(map_err)?;
        row.as_ref().map(identity).transpose()
    }

    async fn insert_external_identity(
        &mut self,
        i: &ExternalIdentityRecord,
    ) -> Result<(), StoreError> {
        let digest = external_identity_digest(&i.issuer, &i.subject);
        declare(&mut self.tx, Named::Digest(&digest)).await?;
        sqlx::query(
            "INSERT INTO external_identities (digest, issuer, subject, user_id, linked_by_org, \
             created_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&digest)
        .bind(&i.issuer)
        .bind(&i.subject)
        .bind(i.user_id.as_uuid())
        .bind(i.linked_by.map(|o| o.as_uuid()))
        .bind(i.created_at)
        .execute(&mut *self.tx)
        .await
        .map(|_| ())
        .map_err(map_err)
    }

    async fn external_identities_of(
        &mut self,
        user: UserId,
    ) -> Result<Vec<ExternalIdentityRecord>, StoreError> {
        declare(&mut self.tx, Named::Subject(user.as_uuid())).await?;
        let rows = sqlx::query(
            "SELECT * FROM external_identities WHERE user_id = $1 ORDER BY created_at, digest",
        )
        .bind(user.as_uuid())
        .fetch_all(&mut *self.tx)
        .await
        .map_err(map_err)?;
        rows.iter().map(identity).collect()
    }

    async fn delete_external_identity(
        &mut self,
        user: UserId,
        digest: &[u8],
    ) -> Result<bool, StoreError> {
        declare(&mut self.tx, Named::Subject(user.as_uuid())).await?;
        sqlx::query("DELETE FROM external_identities WHERE user_id = $1 AND digest = $2")
            .bind(user.as_uuid())
            .bind(digest)
            .execute(&mut *self.tx)
            .await
            .map(|r| r.rows_affected() > 0)
            .map_err(map_err)
    }
}
