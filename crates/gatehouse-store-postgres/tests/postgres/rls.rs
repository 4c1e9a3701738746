//! Row-level security seen from raw SQL as the application role: the database itself keeps
//! tenants apart, whatever the application's queries say.

use gatehouse_core::audit::Audited;
use gatehouse_core::store::{
    MembershipRecord, OrganizationRecord, Role, SecretRecord, SecretVersionRecord, UserRecord,
};
use gatehouse_core::{Clock, OrgId, SystemClock, TenantScope, UserId};
use gatehouse_store_postgres::{PostgresStore, RlsPosture};
use gatehouse_store_tests::Fixture;
use sqlx::{Connection, PgConnection};
use uuid::Uuid;

use crate::fixture::fresh;

pub(crate) async fn seed_org(store: &PostgresStore, n: usize) -> (OrgId, UserId) {
    use gatehouse_core::store::Store;
    let clock = SystemClock;
    let org = OrganizationRecord {
        id: OrgId::new(&clock),
        name: format!("org {n}"),
        created_at: clock.now(),
        keys_shredded_at: None,
    };
    let user = UserRecord {
        id: UserId::new(&clock),
        email: format!("u{n}@example.com"),
        name: "u".into(),
        password_hash: "x".into(),
        created_at: clock.now(),
        email_verified_at: None,
        disabled_at: None,
    };
    let mut tx = store.begin().await.unwrap();
    tx.insert_organization(&org).await.unwrap();
    tx.insert_user(&user).await.unwrap();
    let mut tx = tx.enter(&TenantScope::for_tests(org.id)).await.unwrap();
    tx.insert_membership(&MembershipRecord {
        org_id: org.id,
        user_id: user.id,
        role: Role::Owner,
        created_at: clock.now(),
        sessions_ended_at: None,
    })
    .await
    .unwrap();
    tx.commit(Audited::for_tests()).await.unwrap();
    (org.id, user.id)
}

async fn orgs_visible(conn: &mut PgConnection) -> Vec<Uuid> {
    sqlx::query_as::<_, (Uuid,)>("SELECT org_id FROM memberships")
        .fetch_all(conn)
        .await
        .unwrap()
        .into_iter()
        .map(|(o,)| o)
        .collect()
}

#[tokio::test]
async fn raw_selects_as_the_app_role_see_only_the_scoped_tenant() {
    let f = fresh().await;
    let (a, _) = seed_org(&f.store, 1).await;
    let (b, user_b) = seed_org(&f.store, 2).await;
    let mut conn = PgConnection::connect(&f.app_url).await.unwrap();

    // No setting: no tenant rows at all.
    assert!(orgs_visible(&mut conn).await.is_empty());

    // Transaction-local setting for A: only A's rows; never B's.
    let mut tx = conn.begin().await.unwrap();
    sqlx::query("SELECT set_config('gatehouse.org_id', $1, true)")
        .bind(a.to_string())
        .execute(&mut *tx)
        .await
        .unwrap();
    assert_eq!(orgs_visible(&mut tx).await, vec![a.as_uuid()]);
    // Writing a row for B while scoped to A is refused by the policy's WITH CHECK.
    let cross = sqlx::query("INSERT INTO memberships (org_id, user_id, role, created_at) VALUES ($1, $2, 'admin', now())")
        .bind(b.as_uuid())
        .bind(user_b.as_uuid())
        .execute(&mut *tx)
        .await;
    assert!(
        cross.is_err(),
        "RLS must refuse a row for another organisation"
    );
    tx.rollback().await.unwrap();

    // The setting ended with the transaction.
    assert!(orgs_visible(&mut conn).await.is_empty());

    // Session-level setting for B: only B's rows.
    sqlx::query("SELECT set_config('gatehouse.org_id', $1, false)")
        .bind(b.to_string())
        .execute(&mut conn)
        .await
        .unwrap();
    assert_eq!(orgs_visible(&mut conn).await, vec![b.as_uuid()]);

    // Updates and deletes without a scope touch nothing.
    sqlx::query("RESET gatehouse.org_id")
        .execute(&mut conn)
        .await
        .unwrap();
    let updated = sqlx::query("UPDATE memberships SET role = 'viewer'")
        .execute(&mut conn)
        .await
        .unwrap();
    assert_eq!(updated.rows_affected(), 0);
    let deleted = sqlx::query("DELETE FROM memberships")
        .execute(&mut conn)
        .await
        .unwrap();
    assert_eq!(deleted.rows_affected(), 0);

    // A garbage setting fails the query instead of matching anything.
    sqlx::query("SELECT set_config('gatehouse.org_id', 'not-a-uuid', false)")
        .execute(&mut conn)
        .await
        .unwrap();
    assert!(
        sqlx::query("SELECT * FROM memberships")
            .fetch_all(&mut conn)
            .await
            .is_err()
    );

    // The app role cannot switch the protection off.
    assert!(
        sqlx::query("ALTER TABLE memberships DISABLE ROW LEVEL SECURITY")
            .execute(&mut conn)
            .await
            .is_err()
    );
    assert!(
        sqlx::query("ALTER TABLE memberships NO FORCE ROW LEVEL SECURITY")
            .execute(&mut conn)
            .await
            .is_err()
    );
    conn.close().await.unwrap();
    f.finish().await;
}

#[tokio::test]
async fn posture_reports_enforced_for_the_app_role_and_bypassed_for_the_owner() {
    let f = fresh().await;
    assert_eq!(
        f.store.rls_posture().await.unwrap(),
        RlsPosture::Enforced {
            role: "gatehouse_app".into()
        }
    );
    let owner = PostgresStore::connect(&f.owner_url, 1).await.unwrap();
    assert!(matches!(
        owner.rls_posture().await.unwrap(),
        RlsPosture::Bypassed { .. }
    ));
    owner.pool().close().await;
    f.finish().await;
}

#[tokio::test]
async fn migrations_are_idempotent() {
    let f = fresh().await;
    PostgresStore::migrate(&f.owner_url).await.unwrap();
    f.finish().await;
}

#[tokio::test]
async fn the_own_memberships_policy_reads_one_users_rows_and_writes_nothing() {
    let f = fresh().await;
    let (a, user_a) = seed_org(&f.store, 1).await;
    let (b, user_b) = seed_org(&f.store, 2).await;
    let mut conn = PgConnection::connect(&f.app_url).await.unwrap();
    let mut tx = conn.begin().await.unwrap();
    sqlx::query("SELECT set_config('gatehouse.user_id', $1, true)")
        .bind(user_a.to_string())
        .execute(&mut *tx)
        .await
        .unwrap();
    assert_eq!(orgs_visible(&mut tx).await, vec![a.as_uuid()]);
    // Reading only: the policy admits no change to the user's rows, or anyone else's.
    let updated = sqlx::query("UPDATE memberships SET role = 'viewer' WHERE user_id = $1")
        .bind(user_a.as_uuid())
        .execute(&mut *tx)
        .await
        .unwrap();
    assert_eq!(updated.rows_affected(), 0);
    let inserted = sqlx::query(
        "INSERT INTO memberships (org_id, user_id, role, created_at) VALUES ($1, $2, 'owner', now())",
    )
    .bind(b.as_uuid())
    .bind(user_a.as_uuid())
    .execute(&mut *tx)
    .await;
    assert!(
        inserted.is_err(),
        "a user-scoped transaction must not write"
    );
    tx.rollback().await.unwrap();

    // Entering an organisation's scope through the store forgets the user: only the scope's rows.
    use gatehouse_core::store::Store;
    let mut ptx = f.store.begin().await.unwrap();
    assert_eq!(ptx.memberships_of_user(user_b).await.unwrap().len(), 1);
    let mut scoped = ptx.enter(&TenantScope::for_tests(a)).await.unwrap();
    assert!(scoped.membership(user_b).await.unwrap().is_none());
    drop(scoped);

    // Every tenant table identity and API keys added is under forced row-level security.
    let unforced: Vec<(String,)> = sqlx::query_as(
        "SELECT relname::text FROM pg_class WHERE relname IN ('roles', 'invitations', 'api_keys', \
         'secrets', 'secret_versions', 'transit_settings') \
         AND NOT (relrowsecurity AND relforcerowsecurity)",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    assert!(unforced.is_empty(), "{unforced:?}");
    conn.close().await.unwrap();
    f.finish().await;
}

#[tokio::test]
async fn the_second_factor_tables_grant_the_app_role_only_what_it_needs() {
    let f = fresh().await;
    // Privileges bound what the application may do: platform keys are never deleted by it.
    let out = f.exec_as_app("DELETE FROM platform_keys").await;
    assert!(out.is_err(), "the app role may delete platform keys");
    // Spent tokens and mail are pruned (issue 20), factors and codes replaced: the app role may
    // delete from these, but only rows its declaration shows (row-level security, migrations
    // 0011 and 0014). Planted as the owner, a raw DELETE without one removes none of them.
    let user = uuid::Uuid::from_u128(0x5eed);
    let id = f.uuid_literal(&format!("{:032x}", user.as_u128()));
    for stmt in [
        format!(
            "INSERT INTO users (id, email, name, password_hash, created_at) \
             VALUES ({id}, 'pruned@example.com', 'P', 'x', now())"
        ),
        format!(
            "INSERT INTO one_time_tokens (digest, purpose, subject_id, detail, created_at, \
             expires_at, used_at) VALUES ('\\x01', 'password_reset', {id}, '{{}}', now(), \
             now(), now())"
        ),
        format!(
            "INSERT INTO mail_outbox (id, envelope, created_at, next_attempt_at, sent_at) \
             VALUES ({id}, '\\x00', now(), now(), now())"
        ),
        format!(
            "INSERT INTO recovery_codes (digest, user_id, created_at, used_at) \
             VALUES ('\\x02', {id}, now(), now())"
        ),
    ] {
        f.probe(&stmt).await.unwrap();
    }
    for table in [
        "one_time_tokens",
        "mail_outbox",
        "totp_factors",
        "recovery_codes",
    ] {
        f.exec_as_app(&format!("DELETE FROM {table}"))
            .await
            .unwrap();
    }
    for table in ["one_time_tokens", "mail_outbox", "recovery_codes"] {
        let still = format!(
            "DO $$ BEGIN IF (SELECT count(*) FROM {table}) <> 1 THEN \
             RAISE EXCEPTION '{table} lost its row'; END IF; END $$"
        );
        f.probe(&still).await.unwrap();
    }
    assert!(
        f.exec_as_app("TRUNCATE mail_outbox").await.is_err(),
        "the app role may truncate the outbox"
    );
    f.finish().await;
}

/// The vault's tenant tables, each under forced row-level security with the tenant policy.
const VAULT_TABLES: [&str; 3] = ["secrets", "secret_versions", "transit_settings"];

async fn count_in(conn: &mut PgConnection, table: &str) -> i64 {
    let (n,): (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
        .fetch_one(conn)
        .await
        .unwrap();
    n
}

#[tokio::test]
async fn raw_selects_as_the_app_role_see_no_other_tenants_vault_rows() {
    use gatehouse_core::store::Store;
    let f = fresh().await;
    let (a, _) = seed_org(&f.store, 1).await;
    let (b, _) = seed_org(&f.store, 2).await;
    let clock = SystemClock;
    let now = clock.now();
    let secret = SecretRecord {
        org_id: a,
        id: gatehouse_core::ids::new_uuid(&clock),
        name: "db-password".into(),
        description: None,
        current_version: 1,
        created_by: "user:a".into(),
        created_at: now,
        updated_at: now,
        expires_at: None,
        deleted_at: None,
    };
    let mut tx = f
        .store
        .begin_scoped(&TenantScope::for_tests(a))
        .await
        .unwrap();
    tx.insert_secret(&secret).await.unwrap();
    assert!(
        tx.add_secret_version(&SecretVersionRecord {
            org_id: a,
            secret_id: secret.id,
            version: 2,
            created_by: "user:a".into(),
            created_at: now,
        })
        .await
        .unwrap()
    );
    tx.set_transit_floor(1).await.unwrap();
    tx.commit(Audited::for_tests()).await.unwrap();

    let mut conn = PgConnection::connect(&f.app_url).await.unwrap();
    // No setting: nothing.
    for table in VAULT_TABLES {
        assert_eq!(count_in(&mut conn, table).await, 0, "{table} unscoped");
    }
    // Scoped to A: A's rows are there (so the counts below are not vacuous).
    let mut tx = conn.begin().await.unwrap();
    sqlx::query("SELECT set_config('gatehouse.org_id', $1, true)")
        .bind(a.to_string())
        .execute(&mut *tx)
        .await
        .unwrap();
    assert_eq!(count_in(&mut tx, "secrets").await, 1);
    assert_eq!(count_in(&mut tx, "secret_versions").await, 2);
    assert_eq!(count_in(&mut tx, "transit_settings").await, 1);
    tx.rollback().await.unwrap();

    // Scoped to B: none of A's rows, whatever the query says.
    let mut tx = conn.begin().await.unwrap();
    sqlx::query("SELECT set_config('gatehouse.org_id', $1, true)")
        .bind(b.to_string())
        .execute(&mut *tx)
        .await
        .unwrap();
    for table in VAULT_TABLES {
        assert_eq!(count_in(&mut tx, table).await, 0, "{table} scoped to B");
    }
    let (named,): (i64,) = sqlx::query_as("SELECT count(*) FROM secrets WHERE org_id = $1")
        .bind(a.as_uuid())
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!(named, 0);
    let updated = sqlx::query("UPDATE secrets SET deleted_at = now(), current_version = 9")
        .execute(&mut *tx)
        .await
        .unwrap();
    assert_eq!(updated.rows_affected(), 0);
    for table in ["secret_versions", "secrets"] {
        let deleted = sqlx::query(sqlx::AssertSqlSafe(format!("DELETE FROM {table}")))
            .execute(&mut *tx)
            .await
            .unwrap();
        assert_eq!(deleted.rows_affected(), 0, "{table} deleted across tenants");
    }
    let updated = sqlx::query("UPDATE transit_settings SET min_version = 9")
        .execute(&mut *tx)
        .await
        .unwrap();
    assert_eq!(updated.rows_affected(), 0);
    // Writing a row for A while scoped to B is refused by the policy's WITH CHECK.
    let cross = sqlx::query(
        "INSERT INTO transit_settings (org_id, min_version) VALUES ($1, 9) \
         ON CONFLICT (org_id) DO UPDATE SET min_version = 9",
    )
    .bind(a.as_uuid())
    .execute(&mut *tx)
    .await;
    assert!(
        cross.is_err(),
        "RLS must refuse a row for another organisation"
    );
    tx.rollback().await.unwrap();

    // Nothing of A's changed.
    let mut tx = conn.begin().await.unwrap();
    sqlx::query("SELECT set_config('gatehouse.org_id', $1, true)")
        .bind(a.to_string())
        .execute(&mut *tx)
        .await
        .unwrap();
    let (version, deleted): (i32, Option<time::OffsetDateTime>) =
        sqlx::query_as("SELECT current_version, deleted_at FROM secrets")
            .fetch_one(&mut *tx)
            .await
            .unwrap();
    assert_eq!((version, deleted), (2, None));
    let (floor,): (i32,) = sqlx::query_as("SELECT min_version FROM transit_settings")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!(floor, 1);
    tx.rollback().await.unwrap();

    // Every vault table exists, is under forced row-level security, and has the tenant policy.
    let (guarded,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM pg_class c JOIN pg_policies p \
           ON p.tablename = c.relname AND p.policyname = 'tenant_isolation' \
         WHERE c.relname::text = ANY($1) AND c.relrowsecurity AND c.relforcerowsecurity",
    )
    .bind(VAULT_TABLES.map(str::to_owned).to_vec())
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(guarded, 3);
    conn.close().await.unwrap();

    // A deletion through the API is soft; the lifecycle purge then removes deleted and expired
    // secrets with their versions (issue 20), inside their organisation's scope (shown above:
    // scoped to B, a DELETE reaches none of A's rows). Transit settings are never deleted, and
    // nothing is truncated.
    let out = f.exec_as_app("DELETE FROM transit_settings").await;
    assert!(out.is_err(), "the app role may delete transit settings");
    for table in VAULT_TABLES {
        let out = f.exec_as_app(&format!("TRUNCATE {table}")).await;
        assert!(out.is_err(), "the app role may truncate {table}");
    }
    // Versions are written once.
    assert!(
        f.exec_as_app("UPDATE secret_versions SET version = version")
            .await
            .is_err(),
        "the app role may update secret_versions"
    );
    f.finish().await;
}

/// Issue 20: the application role may delete an organisation's audit chain only once the
/// organisation itself is gone (its erasure); inside the organisation's scope, while it exists,
/// the triggers refuse deleting an event, a checkpoint or the head, and updating an event.
#[tokio::test]
async fn audit_rows_are_deleted_only_with_their_organisation() {
    use gatehouse_core::store::Store;
    let f = fresh().await;
    let (org, user) = seed_org(&f.store, 1).await;
    let mut tx = f
        .store
        .begin_scoped(&TenantScope::for_tests(org))
        .await
        .unwrap();
    let event = gatehouse_core::audit::AuditEvent::success(
        gatehouse_core::audit::Actor::user(user.as_uuid()),
        "test.appended",
        "organization",
        org,
    );
    let proof = gatehouse_core::audit::append_tenant(tx.as_mut(), &SystemClock, event)
        .await
        .unwrap();
    tx.commit(proof).await.unwrap();
    let scoped = |sql: &str| {
        format!("DO $$ BEGIN PERFORM set_config('gatehouse.org_id', '{org}', true); {sql}; END $$")
    };
    for sql in [
        "DELETE FROM audit_events",
        "UPDATE audit_events SET action = 'x.y'",
        "DELETE FROM audit_heads",
    ] {
        let out = f.exec_as_app(&scoped(sql)).await;
        assert!(
            out.is_err(),
            "{sql} was allowed while the organisation exists"
        );
    }
    // Erased, in one transaction: the organisation first, then its chain.
    let tx = f.store.begin().await.unwrap();
    let mut tx = tx.enter(&TenantScope::for_tests(org)).await.unwrap();
    tx.erase_organization().await.unwrap();
    tx.commit(Audited::for_tests()).await.unwrap();
    let mut conn = PgConnection::connect(&f.owner_url).await.unwrap();
    for table in ["audit_events", "audit_heads", "organizations"] {
        let column = if table == "organizations" {
            "id"
        } else {
            "org_id"
        };
        let (n,): (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT count(*) FROM {table} WHERE {column} = $1"
        )))
        .bind(org.as_uuid())
        .fetch_one(&mut conn)
        .await
        .unwrap();
        assert_eq!(n, 0, "{table}");
    }
    conn.close().await.unwrap();
    f.finish().await;
}
