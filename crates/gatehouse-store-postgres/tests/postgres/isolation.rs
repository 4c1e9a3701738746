//! C2's self-check, `PostgresStore::isolation_report`: the tables come from the catalog, so a
//! table whose protection was switched off, or a new one that never had it, is named; and a
//! connection that escapes row-level security says why.

use std::str::FromStr;

use gatehouse_store_postgres::PostgresStore;
use gatehouse_store_tests::Fixture;
use sqlx::postgres::PgConnectOptions;
use sqlx::{AssertSqlSafe, ConnectOptions, Connection, PgConnection};

use crate::fixture::{PgFixture, fresh};

async fn as_owner(f: &PgFixture, statements: &[&str]) {
    let mut owner = PgConnection::connect(&f.owner_url).await.unwrap();
    for s in statements {
        sqlx::query(AssertSqlSafe(s.to_string()))
            .execute(&mut owner)
            .await
            .unwrap();
    }
    owner.close().await.unwrap();
}

fn reasons<'a>(
    report: &'a gatehouse_store_postgres::IsolationReport,
    table: &str,
) -> &'a [&'static str] {
    report
        .not_enforced
        .iter()
        .find(|t| t.table == table)
        .map(|t| t.why.as_slice())
        .unwrap_or_else(|| panic!("{table} is not named: {:?}", report.not_enforced))
}

#[tokio::test]
async fn the_app_role_on_a_migrated_database_is_held_by_every_organisation_table() {
    let f = fresh().await;
    let report = f.store.isolation_report().await.unwrap();
    assert_eq!(report.role, "gatehouse_app");
    assert_eq!(report.bypass, None);
    assert!(report.not_enforced.is_empty(), "{:?}", report.not_enforced);
    assert!(report.enforced());
    for known in [
        "memberships",
        "audit_events",
        "audit_checkpoints",
        "secrets",
        "records",
        "grants",
        "sessions",
        "webhook_attempts",
    ] {
        assert!(
            report.tables.iter().any(|t| t == known),
            "{known} not checked: {:?}",
            report.tables
        );
    }
    // Platform tables without an organisation column are not among them.
    for platform in ["users", "organizations", "operator_audit_events", "leases"] {
        assert!(!report.tables.iter().any(|t| t == platform), "{platform}");
    }
    assert_eq!(report.tables_checked(), report.tables.len());
    assert!(report.tables_checked() >= 20, "{:?}", report.tables);
    f.finish().await;
}

#[tokio::test]
async fn the_owner_is_reported_as_bypassing() {
    let f = fresh().await;
    let owner = PostgresStore::connect(&f.owner_url, 1).await.unwrap();
    let report = owner.isolation_report().await.unwrap();
    let bypass = report.bypass.clone().unwrap();
    assert!(bypass.contains("superuser"), "{bypass}");
    assert!(!report.enforced());
    // Its tables are the same ones, each still guarded for everyone else.
    assert!(report.not_enforced.is_empty(), "{:?}", report.not_enforced);
    assert_eq!(
        report.tables,
        f.store.isolation_report().await.unwrap().tables
    );
    owner.pool().close().await;
    f.finish().await;
}

#[tokio::test]
async fn a_table_whose_protection_was_weakened_is_named_with_why() {
    let f = fresh().await;
    as_owner(
        &f,
        &[
            "ALTER TABLE webhook_attempts NO FORCE ROW LEVEL SECURITY",
            "ALTER TABLE share_links DISABLE ROW LEVEL SECURITY",
            "DROP POLICY tenant_isolation ON transit_settings",
            "DROP POLICY tenant_isolation ON roles",
            "CREATE POLICY anything ON roles USING (true)",
        ],
    )
    .await;
    let report = f.store.isolation_report().await.unwrap();
    assert_eq!(report.bypass, None);
    assert!(!report.enforced());
    let named: Vec<&str> = report
        .not_enforced
        .iter()
        .map(|t| t.table.as_str())
        .collect();
    assert_eq!(
        named,
        vec![
            "roles",
            "share_links",
            "transit_settings",
            "webhook_attempts"
        ]
    );
    assert_eq!(
        reasons(&report, "webhook_attempts"),
        ["row-level security is not forced, so the table's owner bypasses it"]
    );
    assert_eq!(
        reasons(&report, "share_links"),
        ["row-level security is not enabled"]
    );
    assert_eq!(
        reasons(&report, "transit_settings"),
        ["it has no policy, so no role but its owner reads it"]
    );
    assert_eq!(
        reasons(&report, "roles"),
        [
            "no policy compares its rows with the transaction's organisation",
            "a permissive policy that applies to this role depends on neither the transaction's scope nor a declaration"
        ]
    );
    f.finish().await;
}

#[tokio::test]
async fn a_new_table_with_an_organisation_column_is_found_in_the_catalog() {
    let f = fresh().await;
    let before = f.store.isolation_report().await.unwrap();
    as_owner(
        &f,
        &["CREATE TABLE posture_added (owner_org_id uuid NOT NULL, note text)"],
    )
    .await;
    let report = f.store.isolation_report().await.unwrap();
    assert_eq!(report.tables_checked(), before.tables_checked() + 1);
    assert!(report.tables.iter().any(|t| t == "posture_added"));
    assert_eq!(
        reasons(&report, "posture_added"),
        [
            "row-level security is not enabled",
            "row-level security is not forced, so the table's owner bypasses it",
            "it has no policy, so no role but its owner reads it",
        ]
    );
    // Given its protection, it is held like the others.
    as_owner(
        &f,
        &[
            "ALTER TABLE posture_added ENABLE ROW LEVEL SECURITY",
            "ALTER TABLE posture_added FORCE ROW LEVEL SECURITY",
            "CREATE POLICY tenant_isolation ON posture_added \
             USING (owner_org_id = gatehouse_current_org())",
        ],
    )
    .await;
    let report = f.store.isolation_report().await.unwrap();
    assert!(report.enforced(), "{:?}", report.not_enforced);
    f.finish().await;
}

/// A role that is neither superuser nor BYPASSRLS but owns a table whose security is not
/// forced escapes it on that table: named, with the table. (Roles are cluster-wide: this one is
/// named after the test's database and dropped after it.)
#[tokio::test]
async fn an_owner_of_an_unforced_table_is_reported_as_bypassing_it() {
    let f = fresh().await;
    let role = format!("{}_owner", f.name);
    let mut admin = PgConnection::connect(&crate::fixture::admin_url())
        .await
        .unwrap();
    sqlx::query(AssertSqlSafe(format!(
        "CREATE ROLE \"{role}\" LOGIN NOSUPERUSER NOBYPASSRLS"
    )))
    .execute(&mut admin)
    .await
    .unwrap();
    as_owner(
        &f,
        &[
            &format!("GRANT USAGE ON SCHEMA public TO \"{role}\""),
            &format!("ALTER TABLE webhook_attempts OWNER TO \"{role}\""),
            "ALTER TABLE webhook_attempts NO FORCE ROW LEVEL SECURITY",
        ],
    )
    .await;
    let url = PgConnectOptions::from_str(&f.owner_url)
        .unwrap()
        .username(&role)
        .to_url_lossy()
        .to_string();
    let owner = PostgresStore::connect(&url, 1).await.unwrap();
    let report = owner.isolation_report().await.unwrap();
    assert_eq!(report.role, role);
    let bypass = report.bypass.clone().unwrap();
    assert!(bypass.contains("webhook_attempts"), "{bypass}");
    owner.pool().close().await;
    // The same role owning a forced table still could switch it off: reported, more generally.
    as_owner(
        &f,
        &["ALTER TABLE webhook_attempts FORCE ROW LEVEL SECURITY"],
    )
    .await;
    let owner = PostgresStore::connect(&url, 1).await.unwrap();
    let bypass = owner.isolation_report().await.unwrap().bypass.unwrap();
    assert!(bypass.contains("owns tables"), "{bypass}");
    owner.pool().close().await;
    f.finish().await;
    sqlx::query(AssertSqlSafe(format!("DROP ROLE \"{role}\"")))
        .execute(&mut admin)
        .await
        .unwrap();
    admin.close().await.unwrap();
}

#[tokio::test]
async fn a_policy_admitting_every_row_beside_the_scoped_one_and_an_owner_run_view_are_named() {
    let f = fresh().await;
    as_owner(
        &f,
        &[
            // Permissive policies are OR'd: this one undoes tenant_isolation.
            "CREATE POLICY leak ON records USING (true)",
            "CREATE VIEW every_grant AS SELECT * FROM grants",
            "GRANT SELECT ON every_grant TO gatehouse_app",
            "CREATE VIEW invoker_grant WITH (security_invoker = true) AS SELECT * FROM grants",
            "GRANT SELECT ON invoker_grant TO gatehouse_app",
        ],
    )
    .await;
    let report = f.store.isolation_report().await.unwrap();
    assert!(!report.enforced());
    assert_eq!(
        reasons(&report, "records"),
        [
            "a permissive policy that applies to this role depends on neither the transaction's scope nor a declaration"
        ]
    );
    assert_eq!(
        reasons(&report, "every_grant"),
        [
            "a view this role can read runs as its owner (not security_invoker), past row-level security"
        ]
    );
    assert!(
        !report
            .not_enforced
            .iter()
            .any(|t| t.table == "invoker_grant"),
        "{report:?}"
    );
    f.finish().await;
}

/// A role that may `SET ROLE` to a BYPASSRLS role escapes row-level security whenever it likes,
/// though neither attribute is inherited: reported. Roles are cluster-wide, so these are named
/// after the test's database and dropped after it.
#[tokio::test]
async fn a_member_of_a_bypassing_role_is_reported_as_bypassing() {
    let f = fresh().await;
    let (member, bypassing) = (format!("{}_member", f.name), format!("{}_byp", f.name));
    let mut admin = PgConnection::connect(&crate::fixture::admin_url())
        .await
        .unwrap();
    for sql in [
        format!("CREATE ROLE \"{member}\" LOGIN NOSUPERUSER NOBYPASSRLS"),
        format!("CREATE ROLE \"{bypassing}\" NOLOGIN BYPASSRLS"),
        format!("GRANT \"{bypassing}\" TO \"{member}\""),
    ] {
        sqlx::query(AssertSqlSafe(sql))
            .execute(&mut admin)
            .await
            .unwrap();
    }
    as_owner(
        &f,
        &[
            &format!("GRANT USAGE ON SCHEMA public TO \"{member}\""),
            // A policy on the scope's column that ignores the scope admits every organisation.
            "CREATE POLICY loose ON api_keys USING (org_id IS NOT NULL)",
        ],
    )
    .await;
    let url = PgConnectOptions::from_str(&f.owner_url)
        .unwrap()
        .username(&member)
        .to_url_lossy()
        .to_string();
    let store = PostgresStore::connect(&url, 1).await.unwrap();
    let report = store.isolation_report().await.unwrap();
    let bypass = report.bypass.clone().unwrap_or_default();
    assert!(
        bypass.contains("member of a superuser or BYPASSRLS role"),
        "{report:?}"
    );
    assert_eq!(
        reasons(&report, "api_keys"),
        [
            "a permissive policy that applies to this role depends on neither the transaction's scope nor a declaration"
        ]
    );
    store.pool().close().await;
    f.finish().await;
    for sql in [
        format!("DROP ROLE \"{member}\""),
        format!("DROP ROLE \"{bypassing}\""),
    ] {
        sqlx::query(AssertSqlSafe(sql))
            .execute(&mut admin)
            .await
            .unwrap();
    }
    admin.close().await.unwrap();
}
