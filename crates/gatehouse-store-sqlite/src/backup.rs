//! Backups on SQLite (D3; the format is `gatehouse_core::backup`'s). The snapshot is one
//! deferred read transaction: in WAL mode it sees the database as of its first read while the
//! server goes on writing. A restore is one `BEGIN IMMEDIATE` transaction into an empty file.

use std::collections::BTreeMap;

use async_trait::async_trait;
use futures_util::TryStreamExt as _;
use gatehouse_core::backup::{
    BackupError, BackupStore, Class, Column, Progress, RestoreSource, SnapshotInfo, SnapshotSink,
    Table, Value, check_identifier, check_same_columns, foreign_key_order,
};
use sqlx::sqlite::SqliteRow;
// Every table and column name in SQL text passed `check_identifier` (catalog or archive).
use sqlx::{AssertSqlSafe, Row, SqliteConnection, ValueRef as _};

use crate::SqliteStore;

/// Rows per INSERT, under SQLite's limit of 32766 bound values.
const ROWS_PER_INSERT: usize = 500;
const MAX_BOUND: usize = 32_000;

fn store(e: impl std::fmt::Display) -> BackupError {
    BackupError::Store(e.to_string())
}

struct Described {
    table: Table,
    order_by: String,
}

async fn schema_version(conn: &mut SqliteConnection) -> Result<i64, BackupError> {
    let exists: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' \
         AND name = '_sqlx_migrations')",
    )
    .fetch_one(&mut *conn)
    .await
    .map_err(store)?;
    if !exists {
        return Ok(0);
    }
    sqlx::query_scalar::<_, Option<i64>>(
        "SELECT MAX(version) FROM _sqlx_migrations WHERE success = 1",
    )
    .fetch_one(conn)
    .await
    .map(|v| v.unwrap_or(0))
    .map_err(store)
}

/// Every table of the schema with its columns and primary-key order, parents first.
async fn describe(conn: &mut SqliteConnection) -> Result<Vec<Described>, BackupError> {
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' \
         AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' AND name <> '_sqlx_migrations'",
    )
    .fetch_all(&mut *conn)
    .await
    .map_err(store)?;
    let mut edges = Vec::new();
    let mut by_name = BTreeMap::new();
    for name in &names {
        check_identifier(name)?;
        let parents: Vec<String> =
            sqlx::query_scalar("SELECT \"table\" FROM pragma_foreign_key_list(?1)")
                .bind(name)
                .fetch_all(&mut *conn)
                .await
                .map_err(store)?;
        edges.extend(parents.into_iter().map(|p| (name.clone(), p)));
        let cols: Vec<(String, String, i64)> =
            sqlx::query_as("SELECT name, type, pk FROM pragma_table_info(?1) ORDER BY name")
                .bind(name)
                .fetch_all(&mut *conn)
                .await
                .map_err(store)?;
        let mut columns = Vec::with_capacity(cols.len());
        let mut pk: Vec<(i64, String)> = Vec::new();
        for (col, ty, pk_pos) in cols {
            check_identifier(&col)?;
            let class = match ty.to_ascii_uppercase().as_str() {
                "INTEGER" => Class::Integer,
                "TEXT" => Class::Text,
                "BLOB" => Class::Blob,
                other => {
                    return Err(BackupError::Store(format!(
                        "{name}.{col} has type {other}, which backups do not carry"
                    )));
                }
            };
            if pk_pos > 0 {
                pk.push((pk_pos, format!("\"{col}\"")));
            }
            columns.push(Column { name: col, class });
        }
        pk.sort();
        let order_by = if pk.is_empty() {
            "rowid".to_owned()
        } else {
            pk.into_iter()
                .map(|(_, c)| c)
                .collect::<Vec<_>>()
                .join(", ")
        };
        by_name.insert(
            name.clone(),
            Described {
                table: Table {
                    name: name.clone(),
                    columns,
                },
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

fn column_list(table: &Table) -> String {
    table
        .columns
        .iter()
        .map(|c| format!("\"{}\"", c.name))
        .collect::<Vec<_>>()
        .join(", ")
}

fn values(row: &SqliteRow, table: &Table) -> Result<Vec<Value>, BackupError> {
    let mut out = Vec::with_capacity(table.columns.len());
    for (i, c) in table.columns.iter().enumerate() {
        if row.try_get_raw(i).map_err(store)?.is_null() {
            out.push(Value::Null);
            continue;
        }
        out.push(match c.class {
            Class::Integer => Value::Integer(row.try_get(i).map_err(store)?),
            Class::Text => Value::Text(row.try_get(i).map_err(store)?),
            Class::Blob => Value::Blob(row.try_get(i).map_err(store)?),
        });
    }
    Ok(out)
}

fn insert_sql(table: &Table, rows: usize) -> String {
    let one = format!("({})", vec!["?"; table.columns.len()].join(", "));
    format!(
        "INSERT INTO \"{}\" ({}) VALUES {}",
        table.name,
        column_list(table),
        vec![one; rows].join(", ")
    )
}

#[async_trait]
impl BackupStore for SqliteStore {
    async fn schema_version(&self) -> Result<i64, BackupError> {
        let mut conn = self.pool.acquire().await.map_err(store)?;
        schema_version(&mut conn).await
    }

    async fn snapshot(
        &self,
        sink: &mut dyn SnapshotSink,
        progress: Progress<'_>,
    ) -> Result<(), BackupError> {
        let mut tx = self.pool.begin().await.map_err(store)?;
        // The first read fixes the snapshot every later read of this transaction sees.
        let schema_version = schema_version(&mut tx).await?;
        sink.start(&SnapshotInfo {
            backend: "sqlite".into(),
            schema_version,
        })?;
        for d in describe(&mut tx).await? {
            sink.begin_table(&d.table)?;
            let sql = format!(
                "SELECT {} FROM \"{}\" ORDER BY {}",
                column_list(&d.table),
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
        let (_turn, mut tx) = self.begin_immediate().await.map_err(store)?;
        let mut target: BTreeMap<String, Table> = describe(&mut tx)
            .await?
            .into_iter()
            .map(|d| (d.table.name.clone(), d.table))
            .collect();
        for name in target.keys() {
            let sql = format!("SELECT EXISTS (SELECT 1 FROM \"{name}\")");
            let any: bool = sqlx::query_scalar(AssertSqlSafe(sql))
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
            let Some(t) = target.remove(&table.name) else {
                return Err(BackupError::Refused(format!(
                    "the backup has a table {} that this database does not",
                    table.name
                )));
            };
            check_same_columns(&table, &t)?;
            let per = (MAX_BOUND / table.columns.len().max(1)).clamp(1, ROWS_PER_INSERT);
            let full = insert_sql(&table, per);
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
                    partial = insert_sql(&table, rows.len());
                    &partial
                };
                let mut q = sqlx::query(AssertSqlSafe(sql.as_str()));
                for v in rows.into_iter().flatten() {
                    q = match v {
                        Value::Null => q.bind(None::<i64>),
                        Value::Integer(i) => q.bind(i),
                        Value::Text(s) => q.bind(s),
                        Value::Blob(b) => q.bind(b),
                    };
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
