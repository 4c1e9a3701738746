//! Backups on PostgreSQL (D3; the format is `gatehouse_core::backup`'s), through the owning role
//! (`database_migration_url`): the snapshot reads every organisation's rows in one repeatable-read
//! transaction, which the application role cannot by design. `row_security` is switched off in
//! each transaction, so a role that row-level security would still bind fails loudly instead of
//! backing up an empty view.
//!
//! Values are converted in SQL to the archive's classes and back: `uuid` to its 16 bytes,
//! `timestamptz` to microseconds since the epoch, `boolean` to 0 or 1, `integer` widened.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::TryStreamExt as _;
use gatehouse_core::backup::{
    BackupError, BackupStore, Class, Column, Progress, RestoreSource, SnapshotInfo, SnapshotSink,
    Table, Value, check_identifier, check_same_columns, foreign_key_order,
};
use sqlx::postgres::{PgPoolOptions, PgRow};
// Every table and column name in SQL text passed `check_identifier` (catalog or archive).
use sqlx::{AssertSqlSafe, PgConnection, PgPool, Row};

use crate::migrate::migrator_up_to;

const ROWS_PER_INSERT: usize = 500;
const MAX_BOUND: usize = 60_000;

fn store(e: impl std::fmt::Display) -> BackupError {
    let text = e.to_string();
    if text.contains("row-level security") {
        return BackupError::Refused(format!(
            "{text}: backups and restores on PostgreSQL read and write every organisation's rows, \
             so database_migration_url must name a role that bypasses row-level security (the \
             schema's owner with BYPASSRLS, or a superuser)"
        ));
    }
    BackupError::Store(text)
}

/// The PostgreSQL types Gatehouse's schema uses, and how each maps to an archive class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Uuid,
    Time,
    Bool,
    Int4,
    Int8,
    Text,
    Bytes,
}

impl Kind {
    fn parse(data_type: &str) -> Option<Self> {
        Some(match data_type {
            "uuid" => Self::Uuid,
            "timestamp with time zone" => Self::Time,
            "boolean" => Self::Bool,
            "integer" | "smallint" => Self::Int4,
            "bigint" => Self::Int8,
            "text" => Self::Text,
            "bytea" => Self::Bytes,
            _ => return None,
        })
    }

    fn class(self) -> Class {
        match self {
            Self::Uuid | Self::Bytes => Class::Blob,
            Self::Time | Self::Bool | Self::Int4 | Self::Int8 => Class::Integer,
            Self::Text => Class::Text,
        }
    }

    /// The column as its archive class.
    fn select(self, col: &str) -> String {
        match self {
            Self::Uuid => format!("uuid_send(\"{col}\")"),
            Self::Time => format!("(extract(epoch FROM \"{col}\") * 1000000)::int8"),
            Self::Bool => format!("(\"{col}\")::int4::int8"),
            Self::Int4 => format!("(\"{col}\")::int8"),
            Self::Int8 | Self::Text | Self::Bytes => format!("\"{col}\""),
        }
    }

    /// Parameter `n`, bound as its archive class, as the column's type.
    fn insert(self, n: usize) -> String {
        match self {
            Self::Uuid => format!("(encode(${n}::bytea, 'hex'))::uuid"),
            Self::Time => format!("('epoch'::timestamptz + ${n}::int8 * interval '1 microsecond')"),
            Self::Bool => format!("(${n}::int8 <> 0)"),
            Self::Int4 => format!("(${n}::int8)::int4"),
            Self::Int8 => format!("${n}::int8"),
            Self::Text => format!("${n}::text"),
            Self::Bytes => format!("${n}::bytea"),
        }
    }
}

struct Described {
    table: Table,
    kinds: Vec<Kind>,
    order_by: String,
}

/// The schema's owner, for backups and restores.
#[derive(Debug, Clone)]
pub struct PostgresOwner {
    pool: PgPool,
}

impl PostgresOwner {
    pub async fn connect(owner_url: &str) -> Result<Self, BackupError> {
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(10))
            .connect(owner_url)
            .await
            .map_err(|e| store(crate::errors::connect_err(e)))?;
        Ok(Self { pool })
    }

    /// Applies the migrations up to `version` (all of them with `i64::MAX`).
    pub async fn migrate_up_to(&self, version: i64) -> Result<(), BackupError> {
        migrator_up_to(version)
            .run(&self.pool)
            .await
            .map_err(|e| BackupError::Store(format!("migration failed: {e}")))
    }
}

async fn schema_version(conn: &mut PgConnection) -> Result<i64, BackupError> {
    let exists: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pg_tables WHERE schemaname = current_schema() \
         AND tablename = '_sqlx_migrations')",
    )
    .fetch_one(&mut *conn)
    .await
    .map_err(store)?;
    if !exists {
        return Ok(0);
    }
    sqlx::query_scalar::<_, Option<i64>>("SELECT MAX(version) FROM _sqlx_migrations WHERE success")
        .fetch_one(conn)
        .await
        .map(|v| v.unwrap_or(0))
        .map_err(store)
}

async fn describe(conn: &mut PgConnection) -> Result<Vec<Described>, BackupError> {
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') \
         AND c.relname <> '_sqlx_migrations'",
    )
    .fetch_all(&mut *conn)
    .await
    .map_err(store)?;
    let edges: Vec<(String, String)> = sqlx::query_as(
        "SELECT cl.relname::text, p.relname::text FROM pg_constraint co \
         JOIN pg_class cl ON cl.oid = co.conrelid JOIN pg_class p ON p.oid = co.confrelid \
         JOIN pg_namespace n ON n.oid = cl.relnamespace \
         WHERE co.contype = 'f' AND n.nspname = current_schema()",
    )
    .fetch_all(&mut *conn)
    .await
    .map_err(store)?;
    let mut by_name = BTreeMap::new();
    for name in &names {
        check_identifier(name)?;
        let cols: Vec<(String, String)> = sqlx::query_as(
            "SELECT column_name::text, data_type::text FROM information_schema.columns \
             WHERE table_schema = current_schema() AND table_name = $1 ORDER BY column_name",
        )
        .bind(name)
        .fetch_all(&mut *conn)
        .await
        .map_err(store)?;
        let pk: Vec<(String, String)> = sqlx::query_as(
            "SELECT a.attname::text, format_type(a.atttypid, NULL) FROM pg_index i \
             JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey) \
             WHERE i.indrelid = (quote_ident(current_schema()) || '.' || quote_ident($1))::regclass \
             AND i.indisprimary ORDER BY array_position(i.indkey::int2[], a.attnum)",
        )
        .bind(name)
        .fetch_all(&mut *conn)
        .await
        .map_err(store)?;
        let mut columns = Vec::with_capacity(cols.len());
        let mut kinds = Vec::with_capacity(cols.len());
        for (col, ty) in cols {
            check_identifier(&col)?;
            let kind = Kind::parse(&ty).ok_or_else(|| {
                BackupError::Store(format!(
                    "{name}.{col} has type {ty}, which backups do not carry"
                ))
            })?;
            columns.push(Column {
                name: col,
                class: kind.class(),
            });
            kinds.push(kind);
        }
        if pk.is_empty() {
            return Err(BackupError::Store(format!(
                "table {name} has no primary key, so its rows have no stable order"
            )));
        }
        // Byte order for text keys, as SQLite sorts, whatever the database's collation.
        let order_by = pk
            .iter()
            .map(|(c, ty)| {
                if ty == "text" {
                    format!("\"{c}\" COLLATE \"C\"")
                } else {
                    format!("\"{c}\"")
                }
            })
            .collect::<Vec<_>>()
            .join(", ");
        by_name.insert(
            name.clone(),
            Described {
                table: Table {
                    name: name.clone(),
                    columns,
                },
                kinds,
                order_by,
            },
        );
    }
    let mut out = Vec::with_capacity(by_name.len());
    for name in foreign_key_order(&names, &edges)? {
        if let Some(d) = by_name.remove(&name) {
            out.push(d);
        }
    }
    Ok(out)
}

fn values(row: &PgRow, table: &Table) -> Result<Vec<Value>, BackupError> {
    let mut out = Vec::with_capacity(table.columns.len());
    for (i, c) in table.columns.iter().enumerate() {
        out.push(match c.class {
            Class::Integer => row
                .try_get::<Option<i64>, _>(i)
                .map_err(store)?
                .map_or(Value::Null, Value::Integer),
            Class::Text => row
                .try_get::<Option<String>, _>(i)
                .map_err(store)?
                .map_or(Value::Null, Value::Text),
            Class::Blob => row
                .try_get::<Option<Vec<u8>>, _>(i)
                .map_err(store)?
                .map_or(Value::Null, Value::Blob),
        });
    }
    Ok(out)
}

fn insert_sql(d: &Described, columns: &[String], kinds: &[Kind], rows: usize) -> String {
    let mut n = 0;
    let tuples: Vec<String> = (0..rows)
        .map(|_| {
            let vals: Vec<String> = kinds
                .iter()
                .map(|k| {
                    n += 1;
                    k.insert(n)
                })
                .collect();
            format!("({})", vals.join(", "))
        })
        .collect();
    format!(
        "INSERT INTO \"{}\" ({}) VALUES {}",
        d.table.name,
        columns.join(", "),
        tuples.join(", ")
    )
}

#[async_trait]
impl BackupStore for PostgresOwner {
    async fn schema_version(&self) -> Result<i64, BackupError> {
        let mut conn = self.pool.acquire().await.map_err(store)?;
        schema_version(&mut conn).await
    }

    async fn snapshot(
        &self,
        sink: &mut dyn SnapshotSink,
        progress: Progress<'_>,
    ) -> Result<(), BackupError> {
        let mut tx = self
            .pool
            .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await
            .map_err(store)?;
        sqlx::query("SET LOCAL row_security = off")
            .execute(&mut *tx)
            .await
            .map_err(store)?;
        let schema_version = schema_version(&mut tx).await?;
        sink.start(&SnapshotInfo {
            backend: "postgres".into(),
            schema_version,
        })?;
        for d in describe(&mut tx).await? {
            sink.begin_table(&d.table)?;
            let cols: Vec<String> = d
                .table
                .columns
                .iter()
                .zip(&d.kinds)
                .map(|(c, k)| k.select(&c.name))
                .collect();
            let sql = format!(
                "SELECT {} FROM \"{}\" ORDER BY {}",
                cols.join(", "),
                d.table.name,
                d.order_by
            );
            let mut n = 0u64;
            let mut rows = sqlx::query(AssertSqlSafe(sql.as_str())).fetch(&mut *tx);
            while let Some(row) = rows.try_next().await.map_err(store)? {
                sink.row(&values(&row, &d.table)?)?;
                n += 1;
                if n.is_multiple_of(20_000) {
                    progress(&d.table.name, n);
                }
            }
            drop(rows);
            progress(&d.table.name, n);
            sink.end_table()?;
        }
        tx.rollback().await.map_err(store)
    }

    async fn restore(
        &self,
        source: &mut dyn RestoreSource,
        progress: Progress<'_>,
    ) -> Result<(), BackupError> {
        let mut tx = self.pool.begin().await.map_err(store)?;
        sqlx::query("SET LOCAL row_security = off")
            .execute(&mut *tx)
            .await
            .map_err(store)?;
        let mut target: BTreeMap<String, Described> = describe(&mut tx)
            .await?
            .into_iter()
            .map(|d| (d.table.name.clone(), d))
            .collect();
        for name in target.keys() {
            let any: bool = sqlx::query_scalar(AssertSqlSafe(format!(
                "SELECT EXISTS (SELECT 1 FROM \"{name}\")"
            )))
            .fetch_one(&mut *tx)
            .await
            .map_err(store)?;
            if any {
                return Err(BackupError::Refused(format!(
                    "the target database is not empty (table {name} has rows); restore only \
                     into a new data directory or database"
                )));
            }
        }
        while let Some(table) = source.next_table()? {
            let Some(d) = target.remove(&table.name) else {
                return Err(BackupError::Refused(format!(
                    "the backup has a table {} that this database does not",
                    table.name
                )));
            };
            check_same_columns(&table, &d.table)?;
            // The archive's column order, with each column's kind from the target.
            let mut columns = Vec::with_capacity(table.columns.len());
            let mut kinds = Vec::with_capacity(table.columns.len());
            for c in &table.columns {
                let i = d
                    .table
                    .columns
                    .iter()
                    .position(|t| t.name == c.name)
                    .ok_or_else(|| BackupError::Store(format!("no column {}", c.name)))?;
                columns.push(format!("\"{}\"", c.name));
                kinds.push(
                    *d.kinds
                        .get(i)
                        .ok_or_else(|| BackupError::Store("kinds".into()))?,
                );
            }
            let per = (MAX_BOUND / kinds.len().max(1)).clamp(1, ROWS_PER_INSERT);
            let full = insert_sql(&d, &columns, &kinds, per);
            let mut n = 0u64;
            loop {
                let rows = source.next_rows(per)?;
                if rows.is_empty() {
                    break;
                }
                let partial;
                let sql = if rows.len() == per {
                    &full
                } else {
                    partial = insert_sql(&d, &columns, &kinds, rows.len());
                    &partial
                };
                let mut q = sqlx::query(AssertSqlSafe(sql.as_str()));
                for row in rows {
                    for (v, c) in row.into_iter().zip(&table.columns) {
                        q = match (v, c.class) {
                            (Value::Integer(i), _) => q.bind(i),
                            (Value::Text(s), _) => q.bind(s),
                            (Value::Blob(b), _) => q.bind(b),
                            (Value::Null, Class::Integer) => q.bind(None::<i64>),
                            (Value::Null, Class::Text) => q.bind(None::<String>),
                            (Value::Null, Class::Blob) => q.bind(None::<Vec<u8>>),
                        };
                    }
                }
                n += q.execute(&mut *tx).await.map_err(store)?.rows_affected();
                if n % 20_000 < per as u64 {
                    progress(&table.name, n);
                }
            }
            progress(&table.name, n);
        }
        if let Some(name) = target.keys().next() {
            return Err(BackupError::Refused(format!(
                "the backup has no table {name}, which this database has at the same schema \
                 version"
            )));
        }
        tx.commit().await.map_err(store)
    }
}
