//! `database_url`, `database_migration_url`, `database_max_connections`, `migrate_on_start`:
//! which store `serve` opens and how.

use super::{ConfigError, RawConfig, refuse};

#[derive(Clone, PartialEq, Eq)]
pub enum Database {
    Sqlite {
        url: String,
    },
    Postgres {
        url: String,
        migration_url: Option<String>,
    },
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Sqlite { url } => f.debug_struct("Sqlite").field("url", url).finish(),
            Self::Postgres { url, migration_url } => f
                .debug_struct("Postgres")
                .field("url", &redact_url(url))
                .field("migration_url", &migration_url.as_deref().map(redact_url))
                .finish(),
        }
    }
}

/// The store to open.
#[derive(Debug, Clone)]
pub struct DatabaseSettings {
    pub database: Database,
    pub max_connections: u32,
    pub migrate_on_start: bool,
}

/// `env` is the environment the PostgreSQL driver reads (`PGSSLMODE`, ...).
pub(super) fn validate(
    raw: &RawConfig,
    production: bool,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<DatabaseSettings, ConfigError> {
    if raw.database_max_connections == 0 {
        return refuse("database_max_connections: must be at least 1");
    }
    let database = database(raw)?;
    if let Database::Postgres { url, migration_url } = &database {
        let allow = raw.allow_plaintext_engines;
        super::engines::check_postgres("database_url", url, production, allow, env)?;
        if let Some(owner) = migration_url {
            super::engines::check_postgres(
                "database_migration_url",
                owner,
                production,
                allow,
                env,
            )?;
        }
    }
    Ok(DatabaseSettings {
        database,
        max_connections: raw.database_max_connections,
        migrate_on_start: raw.migrate_on_start,
    })
}

fn database(raw: &RawConfig) -> Result<Database, ConfigError> {
    let url = raw
        .database_url
        .clone()
        .unwrap_or_else(|| format!("sqlite://{}", raw.data_dir.join("gatehouse.db").display()));
    if url.starts_with("sqlite:") {
        if raw.database_migration_url.is_some() {
            return refuse(
                "database_migration_url: only PostgreSQL uses a separate migration role; \
                 remove it for SQLite",
            );
        }
        return Ok(Database::Sqlite { url });
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(Database::Postgres {
            url,
            migration_url: raw.database_migration_url.clone(),
        });
    }
    refuse("database_url: must start with sqlite:// or postgres://")
}

pub(crate) fn database_url_text(db: &Database) -> String {
    match db {
        Database::Sqlite { url } | Database::Postgres { url, .. } => url.clone(),
    }
}

/// Replaces the password in `scheme://user:password@host/...`.
#[must_use]
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((userinfo, host)) = rest.split_once('@') else {
        return url.to_owned();
    };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:[redacted]@{host}"),
        None => url.to_owned(),
    }
}
