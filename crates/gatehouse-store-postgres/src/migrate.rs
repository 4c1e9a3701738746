//! Migrations are embedded in the binary at build time; no files are read at run time.

use std::borrow::Cow;

use sqlx::SqlSafeStr;
use sqlx::migrate::{Migration, MigrationType, Migrator};

const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "foundation",
        include_str!("../migrations/0001_foundation.sql"),
    ),
    (2, "keyring", include_str!("../migrations/0002_keyring.sql")),
    (3, "audit", include_str!("../migrations/0003_audit.sql")),
    (
        4,
        "checkpoints",
        include_str!("../migrations/0004_checkpoints.sql"),
    ),
    (
        5,
        "identity",
        include_str!("../migrations/0005_identity.sql"),
    ),
    (
        6,
        "api_keys",
        include_str!("../migrations/0006_api_keys.sql"),
    ),
    (
        7,
        "refresh_history",
        include_str!("../migrations/0007_refresh_history.sql"),
    ),
    (
        8,
        "second_factor",
        include_str!("../migrations/0008_second_factor.sql"),
    ),
    (9, "vault", include_str!("../migrations/0009_vault.sql")),
    (
        10,
        "operator_factor",
        include_str!("../migrations/0010_operator_factor.sql"),
    ),
    (
        11,
        "platform_rls",
        include_str!("../migrations/0011_platform_rls.sql"),
    ),
    (
        12,
        "records",
        include_str!("../migrations/0012_records.sql"),
    ),
    (13, "grants", include_str!("../migrations/0013_grants.sql")),
    (
        14,
        "lifecycle",
        include_str!("../migrations/0014_lifecycle.sql"),
    ),
    (15, "links", include_str!("../migrations/0015_links.sql")),
    (
        16,
        "webhooks",
        include_str!("../migrations/0016_webhooks.sql"),
    ),
    (
        17,
        "posture",
        include_str!("../migrations/0017_posture.sql"),
    ),
    (
        18,
        "security_policy",
        include_str!("../migrations/0018_security_policy.sql"),
    ),
    (
        19,
        "account_control",
        include_str!("../migrations/0019_account_control.sql"),
    ),
    (20, "apps", include_str!("../migrations/0020_apps.sql")),
    (21, "oauth", include_str!("../migrations/0021_oauth.sql")),
    (22, "sso", include_str!("../migrations/0022_sso.sql")),
    (
        23,
        "sso_links",
        include_str!("../migrations/0023_sso_links.sql"),
    ),
];

#[must_use]
pub fn migrator() -> Migrator {
    migrator_up_to(i64::MAX)
}

/// The newest migration this build knows.
#[must_use]
pub fn latest_version() -> i64 {
    MIGRATIONS.iter().map(|m| m.0).max().unwrap_or(0)
}

/// The migrations up to `version` only: a restore brings an empty database to the backup's
/// schema, inserts, then applies the rest.
#[must_use]
pub fn migrator_up_to(version: i64) -> Migrator {
    let migrations = MIGRATIONS
        .iter()
        .filter(|m| m.0 <= version)
        .map(|(version, name, sql)| {
            Migration::new(
                *version,
                Cow::Borrowed(*name),
                MigrationType::Simple,
                sql.into_sql_str(),
                false,
            )
        })
        .collect();
    Migrator {
        migrations: Cow::Owned(migrations),
        ignore_missing: false,
        locking: true,
        no_tx: false,
        ..Migrator::DEFAULT
    }
}
