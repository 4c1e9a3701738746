//! Audit chains in SQLite. `BEGIN IMMEDIATE` already serialises every writer, so reading the head
//! inside the transaction is enough to keep a chain from forking.
//!
//! The helpers here serve both chains, parameterised by the chain's organisation (`Some(org)` for
//! a tenant's, `None` for the operators'): this file's `AuditStore` and `operator_audit.rs`'s
//! `OperatorAuditStore` call them.

use async_trait::async_trait;
use gatehouse_core::audit::{AuditFilter, AuditRecord, ChainHead, CheckpointRecord};
use gatehouse_core::clock::{from_unix_micros, unix_micros};
use gatehouse_core::store::{AuditStore, ensure_chain_in_scope, power_of_two_chunks};
use gatehouse_core::{OrgId, StoreError};
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqliteConnection};
use uuid::Uuid;

use crate::errors::map_err;
use crate::rows::u32_col;
use crate::tx::SqliteTenantTx;

/// `Some(org)` for an organisation's chain, `None` for the operators'. SQLite's single writer
/// (`BEGIN IMMEDIATE`) already holds every other appender off, so reading the head is locking it.
pub(crate) async fn head(
    conn: &mut SqliteConnection,
    org: Option<OrgId>,
) -> Result<Option<ChainHead>, StoreError> {
    // An erased organisation gets no new chain (writers take turns, so its erasure is either
    // wholly before this transaction or wholly after).
    if let Some(o) = org {
        let present: Option<i64> = sqlx::query_scalar("SELECT 1 FROM organizations WHERE id = ?")
            .bind(o.as_uuid())
            .fetch_optional(&mut *conn)
            .await
            .map_err(map_err)?;
        if present.is_none() {
            return Err(StoreError::Backend(
                "refused: an event for an organisation that no longer exists".into(),
            ));
        }
    }
    peek_head(conn, org).await
}

fn seq(v: u64) -> Result<i64, StoreError> {
    i64::try_from(v).map_err(|_| StoreError::Backend("audit seq out of range".into()))
}

pub(crate) async fn append(conn: &mut SqliteConnection, e: &AuditRecord) -> Result<(), StoreError> {
    let columns = "seq, id, at, actor_kind, actor_id, impersonator_id, action, resource_type, \
                   resource_id, outcome, request_id, details, subject, personal, prev_hash, hash";
    let sql = match e.org_id {
        Some(_) => format!(
            "INSERT INTO audit_events (org_id, {columns}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        ),
        None => format!(
            "INSERT INTO operator_audit_events ({columns}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        ),
    };
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
    if let Some(o) = e.org_id {
        q = q.bind(o.as_uuid());
    }
    q.bind(seq(e.seq)?)
        .bind(e.id)
        .bind(unix_micros(e.at))
        .bind(&e.actor_kind)
        .bind(&e.actor_id)
        .bind(&e.impersonator_id)
        .bind(&e.action)
        .bind(&e.resource_type)
        .bind(&e.resource_id)
        .bind(&e.outcome)
        .bind(&e.request_id)
        .bind(&e.details)
        .bind(&e.subject)
        .bind(&e.personal)
        .bind(&e.prev_hash)
        .bind(&e.hash)
        .execute(&mut *conn)
        .await
        .map_err(map_err)?;
    match e.org_id {
        Some(o) => sqlx::query(
            "INSERT INTO audit_heads (org_id, seq, hash) VALUES (?, ?, ?) \
             ON CONFLICT (org_id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash",
        )
        .bind(o.as_uuid()),
        None => sqlx::query(
            "INSERT INTO operator_audit_head (id, seq, hash) VALUES (1, ?, ?) \
             ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash",
        ),
    }
    .bind(seq(e.seq)?)
    .bind(&e.hash)
    .execute(&mut *conn)
    .await
    .map(|_| ())
    .map_err(map_err)
}

fn record(row: &SqliteRow, org: Option<OrgId>) -> Result<AuditRecord, StoreError> {
    let s: i64 = row.try_get("seq").map_err(map_err)?;
    let at: i64 = row.try_get("at").map_err(map_err)?;
    Ok(AuditRecord {
        id: row.try_get::<Uuid, _>("id").map_err(map_err)?,
        org_id: org,
        seq: u64::try_from(s).map_err(|_| StoreError::Corrupt("audit seq".into()))?,
        at: from_unix_micros(at).ok_or_else(|| StoreError::Corrupt("audit time".into()))?,
        actor_kind: row.try_get("actor_kind").map_err(map_err)?,
        actor_id: row.try_get("actor_id").map_err(map_err)?,
        impersonator_id: row.try_get("impersonator_id").map_err(map_err)?,
        action: row.try_get("action").map_err(map_err)?,
        resource_type: row.try_get("resource_type").map_err(map_err)?,
        resource_id: row.try_get("resource_id").map_err(map_err)?,
        outcome: row.try_get("outcome").map_err(map_err)?,
        request_id: row.try_get("request_id").map_err(map_err)?,
        details: row.try_get("details").map_err(map_err)?,
        subject: row.try_get("subject").map_err(map_err)?,
        personal: row.try_get("personal").map_err(map_err)?,
        prev_hash: row.try_get("prev_hash").map_err(map_err)?,
        hash: row.try_get("hash").map_err(map_err)?,
    })
}

pub(crate) async fn events(
    conn: &mut SqliteConnection,
    org: Option<OrgId>,
    after_seq: u64,
    limit: u32,
) -> Result<Vec<AuditRecord>, StoreError> {
    let rows = match org {
        Some(o) => {
            sqlx::query(
                "SELECT * FROM audit_events WHERE org_id = ? AND seq > ? ORDER BY seq LIMIT ?",
            )
            .bind(o.as_uuid())
            .bind(seq(after_seq)?)
            .bind(i64::from(limit))
            .fetch_all(&mut *conn)
            .await
        }
        None => {
            sqlx::query("SELECT * FROM operator_audit_events WHERE seq > ? ORDER BY seq LIMIT ?")
                .bind(seq(after_seq)?)
                .bind(i64::from(limit))
                .fetch_all(&mut *conn)
                .await
        }
    }
    .map_err(map_err)?;
    rows.iter().map(|r| record(r, org)).collect()
}

/// Filters become `(param IS NULL OR column = param)` terms, so one statement serves every
/// combination and every value is bound, never spliced.
pub(crate) async fn query(
    conn: &mut SqliteConnection,
    org: Option<OrgId>,
    f: &AuditFilter,
    before: Option<u64>,
    limit: u32,
) -> Result<Vec<AuditRecord>, StoreError> {
    // The operators' trail has no org_id: its first condition binds NULL and always holds.
    // Only these two literal heads are ever spliced in; every value is a bind parameter.
    let head = match org {
        Some(_) => "SELECT * FROM audit_events WHERE org_id = ? ",
        None => "SELECT * FROM operator_audit_events WHERE ? IS NULL ",
    };
    let sql = format!(
        "{head}AND (? IS NULL OR seq < ?) \
         AND (? IS NULL OR actor_id = ?) \
         AND (? IS NULL OR substr(action, 1, length(?)) = ?) \
         AND (? IS NULL OR resource_type = ?) \
         AND (? IS NULL OR resource_id = ?) \
         AND (? IS NULL OR outcome = ?) \
         AND (? IS NULL OR at >= ?) \
         AND (? IS NULL OR at < ?) \
         ORDER BY seq DESC LIMIT ?"
    );
    let before = before.map(seq).transpose()?;
    let outcome = f.outcome.map(|o| o.as_str());
    let since = f.since.map(unix_micros);
    let until = f.until.map(unix_micros);
    let q = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(org.map(|o| o.as_uuid()))
        .bind(before)
        .bind(before)
        .bind(&f.actor_id)
        .bind(&f.actor_id)
        .bind(&f.action_prefix)
        .bind(&f.action_prefix)
        .bind(&f.action_prefix)
        .bind(&f.resource_type)
        .bind(&f.resource_type)
        .bind(&f.resource_id)
        .bind(&f.resource_id)
        .bind(outcome)
        .bind(outcome)
        .bind(since)
        .bind(since)
        .bind(until)
        .bind(until)
        .bind(i64::from(limit));
    let rows = q.fetch_all(&mut *conn).await.map_err(map_err)?;
    rows.iter().map(|r| record(r, org)).collect()
}

/// The chain's checkpoints by seq: all of them, or the `newest` few.
pub(crate) async fn checkpoints(
    conn: &mut SqliteConnection,
    org: Option<OrgId>,
    newest: Option<u32>,
) -> Result<Vec<CheckpointRecord>, StoreError> {
    // A negative LIMIT is no limit.
    let limit = newest.map_or(-1, i64::from);
    let rows = match org {
        Some(o) => {
            sqlx::query(
                "SELECT * FROM (SELECT * FROM audit_checkpoints WHERE org_id = ? \
                 ORDER BY seq DESC LIMIT ?) ORDER BY seq",
            )
            .bind(o.as_uuid())
            .bind(limit)
            .fetch_all(&mut *conn)
            .await
        }
        None => {
            sqlx::query(
                "SELECT * FROM (SELECT * FROM operator_audit_checkpoints \
                 ORDER BY seq DESC LIMIT ?) ORDER BY seq",
            )
            .bind(limit)
            .fetch_all(&mut *conn)
            .await
        }
    }
    .map_err(map_err)?;
    rows.iter()
        .map(|row| {
            let s: i64 = row.try_get("seq").map_err(map_err)?;
            Ok(CheckpointRecord {
                org_id: org,
                seq: u64::try_from(s).map_err(|_| StoreError::Corrupt("checkpoint seq".into()))?,
                hash: row.try_get("hash").map_err(map_err)?,
                at: {
                    let m: i64 = row.try_get("at").map_err(map_err)?;
                    from_unix_micros(m)
                        .ok_or_else(|| StoreError::Corrupt("checkpoint time".into()))?
                },
                key_version: u32_col(row, "key_version")?,
                signature: row.try_get("signature").map_err(map_err)?,
            })
        })
        .collect()
}

pub(crate) async fn insert_checkpoint(
    conn: &mut SqliteConnection,
    c: &CheckpointRecord,
) -> Result<(), StoreError> {
    let q = match c.org_id {
        Some(o) => sqlx::query(
            "INSERT INTO audit_checkpoints (org_id, seq, hash, at, key_version, signature) \
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(o.as_uuid()),
        None => sqlx::query(
            "INSERT INTO operator_audit_checkpoints (seq, hash, at, key_version, signature) \
             VALUES (?, ?, ?, ?, ?)",
        ),
    };
    q.bind(seq(c.seq)?)
        .bind(&c.hash)
        .bind(unix_micros(c.at))
        .bind(i64::from(c.key_version))
        .bind(&c.signature)
        .execute(&mut *conn)
        .await
        .map(|_| ())
        .map_err(map_err)
}

/// The chain head as committed, without a lock (for verification, which must not hold appends up).
pub(crate) async fn peek_head(
    conn: &mut SqliteConnection,
    org: Option<OrgId>,
) -> Result<Option<ChainHead>, StoreError> {
    let row: Option<(i64, Vec<u8>)> = match org {
        Some(o) => {
            sqlx::query_as("SELECT seq, hash FROM audit_heads WHERE org_id = ?")
                .bind(o.as_uuid())
                .fetch_optional(&mut *conn)
                .await
        }
        None => {
            sqlx::query_as("SELECT seq, hash FROM operator_audit_head WHERE id = 1")
                .fetch_optional(&mut *conn)
                .await
        }
    }
    .map_err(map_err)?;
    match row {
        None | Some((0, _)) => Ok(None),
        Some((seq, hash)) => Ok(Some(ChainHead {
            seq: u64::try_from(seq).map_err(|_| StoreError::Corrupt("audit head seq".into()))?,
            hash: hash
                .try_into()
                .map_err(|_| StoreError::Corrupt("audit head hash".into()))?,
        })),
    }
}

/// Rows per INSERT at most: 17 parameters each stays far below both databases' parameter
/// limits. Batches go as power-of-two chunks (`power_of_two_chunks`), so each connection keeps
/// at most seven shapes of this statement prepared instead of parsing one per batch size.
const MAX_ROWS: usize = 64;

#[async_trait]
impl AuditStore for SqliteTenantTx {
    async fn peek_audit_head(&mut self) -> Result<Option<ChainHead>, StoreError> {
        peek_head(&mut self.tx, Some(self.scope.org_id())).await
    }

    async fn audit_head(&mut self) -> Result<Option<ChainHead>, StoreError> {
        head(&mut self.tx, Some(self.scope.org_id())).await
    }

    async fn append_audit(&mut self, event: &AuditRecord) -> Result<(), StoreError> {
        ensure_chain_in_scope(&self.scope, event.org_id)?;
        append(&mut self.tx, event).await
    }

    /// Appends several events of one organisation's chain with a few multi-row INSERTs and one
    /// head update.
    async fn append_audit_batch(&mut self, events: &[AuditRecord]) -> Result<(), StoreError> {
        for e in events {
            ensure_chain_in_scope(&self.scope, e.org_id)?;
        }
        let org = self.scope.org_id();
        let conn: &mut SqliteConnection = &mut self.tx;
        let Some(last) = events.last() else {
            return Ok(());
        };
        for chunk in power_of_two_chunks(events, MAX_ROWS) {
            let mut q = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
                "INSERT INTO audit_events (org_id, seq, id, at, actor_kind, actor_id, impersonator_id, \
                 action, resource_type, resource_id, outcome, request_id, details, subject, personal, \
                 prev_hash, hash) ",
            );
            let mut bad_seq = None;
            q.push_values(chunk, |mut row, e| {
                let s = seq(e.seq).unwrap_or_else(|err| {
                    bad_seq = Some(err);
                    0
                });
                row.push_bind(org.as_uuid())
                    .push_bind(s)
                    .push_bind(e.id)
                    .push_bind(unix_micros(e.at))
                    .push_bind(&e.actor_kind)
                    .push_bind(&e.actor_id)
                    .push_bind(&e.impersonator_id)
                    .push_bind(&e.action)
                    .push_bind(&e.resource_type)
                    .push_bind(&e.resource_id)
                    .push_bind(&e.outcome)
                    .push_bind(&e.request_id)
                    .push_bind(&e.details)
                    .push_bind(&e.subject)
                    .push_bind(&e.personal)
                    .push_bind(&e.prev_hash)
                    .push_bind(&e.hash);
            });
            if let Some(err) = bad_seq {
                return Err(err);
            }
            q.build().execute(&mut *conn).await.map_err(map_err)?;
        }
        sqlx::query(
            "INSERT INTO audit_heads (org_id, seq, hash) VALUES (?, ?, ?) \
                 ON CONFLICT (org_id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash",
        )
        .bind(org.as_uuid())
        .bind(seq(last.seq)?)
        .bind(&last.hash)
        .execute(&mut *conn)
        .await
        .map(|_| ())
        .map_err(map_err)
    }

    async fn audit_events(
        &mut self,
        after_seq: u64,
        limit: u32,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        events(&mut self.tx, Some(self.scope.org_id()), after_seq, limit).await
    }

    async fn audit_checkpoints(&mut self) -> Result<Vec<CheckpointRecord>, StoreError> {
        checkpoints(&mut self.tx, Some(self.scope.org_id()), None).await
    }

    async fn recent_audit_checkpoints(
        &mut self,
        n: u32,
    ) -> Result<Vec<CheckpointRecord>, StoreError> {
        checkpoints(&mut self.tx, Some(self.scope.org_id()), Some(n)).await
    }

    async fn insert_audit_checkpoint(&mut self, c: &CheckpointRecord) -> Result<(), StoreError> {
        ensure_chain_in_scope(&self.scope, c.org_id)?;
        insert_checkpoint(&mut self.tx, c).await
    }

    async fn query_audit(
        &mut self,
        filter: &AuditFilter,
        before: Option<u64>,
        limit: u32,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        query(
            &mut self.tx,
            Some(self.scope.org_id()),
            filter,
            before,
            limit,
        )
        .await
    }
}
