//! Row-level security on the platform tables (issue 18, finding 14), seen from raw SQL as the
//! application role: sessions, the API-key index, accounts, factors, one-time tokens and the
//! outbox show a statement only its organisation's rows or the rows it declared, and the catalog
//! itself says that no table with an organisation column or personal data was left out.

use gatehouse_core::audit::Audited;
use gatehouse_core::store::{
    ApiKeyRecord, MembershipRecord, OneTimeTokenRecord, OrganizationRecord, Role, SessionRecord,
    Store, Tier, TokenPurpose, UserRecord,
};
use gatehouse_core::{Clock, OrgId, SystemClock, TenantScope, UserId};
use gatehouse_store_tests::Fixture;
use sqlx::{Connection, PgConnection};
use uuid::Uuid;

use crate::fixture::fresh;

/// Tables that hold neither an organisation column nor personal data, each with the reason. A new
/// table is under forced row-level security or it is listed here, and listed tables are checked
/// for the columns that would make them need it.
const PLATFORM_ONLY: [(&str, &str); 11] = [
    ("_sqlx_migrations", "the schema's migration history"),
    (
        "organizations",
        "the registry of tenants (id, name, shred time), read by platform jobs",
    ),
    ("kek_versions", "master-key versions: check values only"),
    (
        "platform_keys",
        "platform data keys, wrapped under the master key",
    ),
    ("link_keys", "link HMAC keys, wrapped under the master key"),
    (
        "signing_keys",
        "token and checkpoint signing keys, wrapped under the master key",
    ),
    (
        "operator_audit_events",
        "the operators' chain: actor ids, no personal fields",
    ),
    ("operator_audit_head", "the operators' chain head"),
    (
        "leases",
        "which instance runs the lifecycle jobs: a job name, an instance id, an expiry",
    ),
    (
        "operator_audit_checkpoints",
        "signed heads of the operators' chain",
    ),
    (
        "apps",
        "the app registry: a name and the audience its tokens carry",
    ),
];

/// Columns that mark a table as holding personal data or an organisation's rows.
const TELLING_COLUMNS: [&str; 9] = [
    "org_id",
    "email",
    "ip",
    "user_agent",
    "password_hash",
    "device_name",
    "subject_id",
    "user_id",
    "envelope",
];

#[tokio::test]
async fn every_table_with_an_organisation_column_or_personal_data_is_under_forced_rls() {
    let f = fresh().await;
    let mut conn = PgConnection::connect(&f.app_url).await.unwrap();
    let tables: Vec<(String, bool, Vec<String>)> = sqlx::query_as(
        "SELECT c.relname::text, c.relrowsecurity AND c.relforcerowsecurity, \
           array(SELECT a.attname::text FROM pg_attribute a \
                 WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped) \
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') ORDER BY 1",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    assert!(tables.len() >= 20, "{tables:?}");
    let listed = |t: &str| PLATFORM_ONLY.iter().any(|(name, _)| *name == t);
    for (name, _) in PLATFORM_ONLY {
        assert!(
            tables.iter().any(|(t, _, _)| t == name),
            "{name} is listed but no longer exists"
        );
    }
    for (table, forced, columns) in &tables {
        if listed(table) {
            let telling: Vec<&String> = columns
                .iter()
                .filter(|c| TELLING_COLUMNS.contains(&c.as_str()))
                .collect();
            // The key tables' `envelope` is wrapped key material, not a person's data.
            let telling: Vec<&&String> = telling
                .iter()
                .filter(|c| !(c.as_str() == "envelope" && table.ends_with("_keys")))
                .collect();
            assert!(
                telling.is_empty(),
                "{table} is listed as platform-only but has {telling:?}"
            );
            assert!(!forced, "{table} is listed but under row-level security");
        } else {
            assert!(
                forced,
                "{table} is neither under forced row-level security nor listed as platform-only"
            );
        }
        // Every organisation column is compared with the scope by a policy.
        if columns.iter().any(|c| c == "org_id") {
            let (policies,): (i64,) = sqlx::query_as(
                "SELECT count(*) FROM pg_policies WHERE tablename = $1 \
                 AND qual LIKE '%gatehouse_current_org()%'",
            )
            .bind(table)
            .fetch_one(&mut conn)
            .await
            .unwrap();
            assert!(policies >= 1, "{table} has no policy on its org_id");
        }
    }
    conn.close().await.unwrap();
    f.finish().await;
}

struct Seeded {
    org: OrgId,
    user: UserId,
    session: Uuid,
    key_digest: Vec<u8>,
    token_digest: Vec<u8>,
}

async fn seed(store: &gatehouse_store_postgres::PostgresStore, n: u8) -> Seeded {
    let clock = SystemClock;
    let now = clock.now();
    let org = OrgId::new(&clock);
    let user = UserId::new(&clock);
    let session = gatehouse_core::ids::new_uuid(&clock);
    let key_digest = vec![n; 32];
    let token_digest = vec![n + 100; 32];
    let mut tx = store.begin().await.unwrap();
    tx.insert_organization(&OrganizationRecord {
        id: org,
        name: format!("org {n}"),
        created_at: now,
        keys_shredded_at: None,
    })
    .await
    .unwrap();
    tx.insert_user(&UserRecord {
        id: user,
        email: format!("u{n}@example.com"),
        name: "u".into(),
        password_hash: "x".into(),
        created_at: now,
        email_verified_at: None,
        disabled_at: None,
    })
    .await
    .unwrap();
    tx.insert_session(&SessionRecord {
        id: session,
        subject_id: user.as_uuid(),
        tier: Tier::Customer,
        org_id: Some(org),
        impersonator_id: None,
        reason: None,
        device_name: format!("device {n}"),
        user_agent: Some("curl/8".into()),
        ip: Some(format!("192.0.2.{n}")),
        refresh_hash: vec![n; 32],
        previous_refresh_hash: None,
        created_at: now,
        last_seen_at: now,
        expires_at: now + time::Duration::days(1),
        revoked_at: None,
        auth_at: now,
        mfa_at: None,
        signed_in_with: gatehouse_core::store::SignedInWith::Password,
    })
    .await
    .unwrap();
    tx.insert_one_time_token(&OneTimeTokenRecord {
        digest: token_digest.clone(),
        purpose: TokenPurpose::PasswordReset,
        subject_id: user.as_uuid(),
        detail: "{}".into(),
        created_at: now,
        expires_at: now + time::Duration::hours(1),
        used_at: None,
    })
    .await
    .unwrap();
    let mut tx = tx.enter(&TenantScope::for_tests(org)).await.unwrap();
    tx.insert_membership(&MembershipRecord {
        org_id: org,
        user_id: user,
        role: Role::Owner,
        created_at: now,
        sessions_ended_at: None,
    })
    .await
    .unwrap();
    tx.insert_api_key(&ApiKeyRecord {
        id: gatehouse_core::ids::new_uuid(&clock),
        org_id: org,
        name: "ci".into(),
        prefix: "gk_test_abcd".into(),
        last4: "wxyz".into(),
        digest: key_digest.clone(),
        permissions: vec!["org.read".into()],
        namespace: None,
        rate_limit: None,
        created_by: format!("user:{user}"),
        created_at: now,
        expires_at: None,
        revoked_at: None,
        last_used_at: None,
    })
    .await
    .unwrap();
    tx.commit(Audited::for_tests()).await.unwrap();
    Seeded {
        org,
        user,
        session,
        key_digest,
        token_digest,
    }
}

async fn ids(conn: &mut PgConnection, sql: &str) -> Vec<Uuid> {
    let mut found: Vec<Uuid> = sqlx::query_as::<_, (Uuid,)>(sqlx::AssertSqlSafe(sql.to_owned()))
        .fetch_all(conn)
        .await
        .unwrap()
        .into_iter()
        .map(|(u,)| u)
        .collect();
    found.sort();
    found
}

async fn set(conn: &mut PgConnection, setting: &str, value: &str) {
    sqlx::query("SELECT set_config($1, $2, true)")
        .bind(setting)
        .bind(value)
        .execute(conn)
        .await
        .unwrap();
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

const SESSIONS: &str = "SELECT id FROM sessions";
const KEY_INDEX: &str = "SELECT org_id FROM api_key_index";
const USERS: &str = "SELECT id FROM users";
const TOKENS: &str = "SELECT subject_id FROM one_time_tokens";

#[tokio::test]
async fn raw_selects_on_sessions_and_the_key_index_see_only_the_scope_or_what_was_named() {
    let f = fresh().await;
    let a = seed(&f.store, 1).await;
    let b = seed(&f.store, 2).await;
    let mut conn = PgConnection::connect(&f.app_url).await.unwrap();

    // Nothing declared: none of it.
    for sql in [SESSIONS, KEY_INDEX, USERS, TOKENS] {
        assert!(ids(&mut conn, sql).await.is_empty(), "{sql}");
    }
    let (mail,): (i64,) = sqlx::query_as("SELECT count(*) FROM mail_outbox")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(mail, 0);

    // Organisation A's scope: A's sessions and index entries, never B's; no accounts.
    let mut tx = conn.begin().await.unwrap();
    set(&mut tx, "gatehouse.org_id", &a.org.to_string()).await;
    assert_eq!(ids(&mut tx, SESSIONS).await, vec![a.session]);
    assert_eq!(ids(&mut tx, KEY_INDEX).await, vec![a.org.as_uuid()]);
    assert!(ids(&mut tx, USERS).await.is_empty());
    assert!(ids(&mut tx, TOKENS).await.is_empty());
    let updated = sqlx::query("UPDATE sessions SET revoked_at = now() WHERE id = $1")
        .bind(b.session)
        .execute(&mut *tx)
        .await
        .unwrap();
    assert_eq!(
        updated.rows_affected(),
        0,
        "B's session revoked from A's scope"
    );
    // An index entry for B written from A's scope is refused.
    let cross =
        sqlx::query("INSERT INTO api_key_index (digest, org_id, key_id) VALUES ($1, $2, $3)")
            .bind(vec![9u8; 32])
            .bind(b.org.as_uuid())
            .bind(Uuid::nil())
            .execute(&mut *tx)
            .await;
    assert!(cross.is_err());
    tx.rollback().await.unwrap();

    // A presented key's digest: that key's organisation only, whatever the query asks.
    let mut tx = conn.begin().await.unwrap();
    set(&mut tx, "gatehouse.digest", &hex(&b.key_digest)).await;
    assert_eq!(ids(&mut tx, KEY_INDEX).await, vec![b.org.as_uuid()]);
    assert!(ids(&mut tx, SESSIONS).await.is_empty());
    // The digest finds no one-time token but the one with that digest.
    assert!(ids(&mut tx, TOKENS).await.is_empty());
    tx.rollback().await.unwrap();
    let mut tx = conn.begin().await.unwrap();
    set(&mut tx, "gatehouse.digest", &hex(&a.token_digest)).await;
    assert_eq!(ids(&mut tx, TOKENS).await, vec![a.user.as_uuid()]);
    assert!(ids(&mut tx, KEY_INDEX).await.is_empty());
    tx.rollback().await.unwrap();

    // A named session: that one; a subject: their sessions, account and tokens only.
    let mut tx = conn.begin().await.unwrap();
    set(&mut tx, "gatehouse.session_ids", &a.session.to_string()).await;
    assert_eq!(ids(&mut tx, SESSIONS).await, vec![a.session]);
    tx.rollback().await.unwrap();
    let mut tx = conn.begin().await.unwrap();
    set(&mut tx, "gatehouse.subject", &b.user.to_string()).await;
    assert_eq!(ids(&mut tx, SESSIONS).await, vec![b.session]);
    assert_eq!(ids(&mut tx, USERS).await, vec![b.user.as_uuid()]);
    assert_eq!(ids(&mut tx, TOKENS).await, vec![b.user.as_uuid()]);
    let updated = sqlx::query("UPDATE users SET name = 'x' WHERE id = $1")
        .bind(a.user.as_uuid())
        .execute(&mut *tx)
        .await
        .unwrap();
    assert_eq!(updated.rows_affected(), 0, "A's account changed as B");
    tx.rollback().await.unwrap();
    // An address: that account, read only.
    let mut tx = conn.begin().await.unwrap();
    set(&mut tx, "gatehouse.email", "u1@example.com").await;
    assert_eq!(ids(&mut tx, USERS).await, vec![a.user.as_uuid()]);
    let updated = sqlx::query("UPDATE users SET name = 'x'")
        .execute(&mut *tx)
        .await
        .unwrap();
    assert_eq!(updated.rows_affected(), 0, "an address lookup wrote");
    tx.rollback().await.unwrap();

    // The store's own lookups declare what they need and find it.
    let mut ptx = f.store.begin().await.unwrap();
    assert!(ptx.session(b.session).await.unwrap().is_some());
    assert_eq!(
        ptx.api_key_owner(&b.key_digest)
            .await
            .unwrap()
            .map(|(o, _)| o),
        Some(b.org)
    );
    assert!(ptx.one_time_token(&a.token_digest).await.unwrap().is_some());
    drop(ptx);
    conn.close().await.unwrap();
    f.finish().await;
}

#[tokio::test]
async fn operators_factors_and_recovery_codes_are_seen_by_their_subject_only() {
    use gatehouse_core::store::{OperatorFactor, OperatorRecord, TotpFactorRecord};
    let f = fresh().await;
    let a = seed(&f.store, 1).await;
    let b = seed(&f.store, 2).await;
    let clock = SystemClock;
    let now = clock.now();
    let operator = OperatorRecord {
        id: gatehouse_core::ids::new_uuid(&clock),
        email: "ops@platform.example".into(),
        name: "Ops".into(),
        password_hash: "x".into(),
        created_at: now,
        totp: Some(OperatorFactor {
            envelope: vec![1, 2, 3],
            confirmed_at: now,
            last_step: 1,
        }),
    };
    let mut tx = f.store.begin().await.unwrap();
    tx.insert_operator(&operator).await.unwrap();
    for (n, who) in [(1u8, a.user), (2, b.user)] {
        tx.put_pending_totp(&TotpFactorRecord {
            user_id: who,
            envelope: vec![4, 5, 6],
            created_at: now,
            confirmed_at: None,
            last_step: 0,
        })
        .await
        .unwrap();
        tx.replace_recovery_codes(who, &[vec![n; 32], vec![n + 10; 32]], now)
            .await
            .unwrap();
    }
    tx.commit(Audited::for_tests()).await.unwrap();

    let mut conn = PgConnection::connect(&f.app_url).await.unwrap();
    const OPERATORS: &str = "SELECT id FROM operators";
    const FACTORS: &str = "SELECT user_id FROM totp_factors";
    const CODES: &str = "SELECT user_id FROM recovery_codes";
    for sql in [OPERATORS, FACTORS, CODES] {
        assert!(ids(&mut conn, sql).await.is_empty(), "{sql}");
    }
    // Organisation A's scope shows none of them: they are a person's, not an organisation's.
    let mut tx = conn.begin().await.unwrap();
    set(&mut tx, "gatehouse.org_id", &a.org.to_string()).await;
    for sql in [OPERATORS, FACTORS, CODES] {
        assert!(ids(&mut tx, sql).await.is_empty(), "{sql} in A's scope");
    }
    tx.rollback().await.unwrap();
    // B's declaration: B's factor and codes, nobody else's.
    let mut tx = conn.begin().await.unwrap();
    set(&mut tx, "gatehouse.subject", &b.user.to_string()).await;
    assert_eq!(ids(&mut tx, FACTORS).await, vec![b.user.as_uuid()]);
    assert_eq!(ids(&mut tx, CODES).await, vec![b.user.as_uuid(); 2]);
    assert!(ids(&mut tx, OPERATORS).await.is_empty());
    let deleted = sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1")
        .bind(a.user.as_uuid())
        .execute(&mut *tx)
        .await
        .unwrap();
    assert_eq!(deleted.rows_affected(), 0, "A's codes deleted as B");
    tx.rollback().await.unwrap();
    // The operator by address: the account, read only.
    let mut tx = conn.begin().await.unwrap();
    set(&mut tx, "gatehouse.email", "ops@platform.example").await;
    assert_eq!(ids(&mut tx, OPERATORS).await, vec![operator.id]);
    let updated = sqlx::query("UPDATE operators SET totp_last_step = 0")
        .execute(&mut *tx)
        .await
        .unwrap();
    assert_eq!(updated.rows_affected(), 0);
    tx.rollback().await.unwrap();
    conn.close().await.unwrap();
    f.finish().await;
}

#[tokio::test]
async fn an_operators_declaration_opens_their_impersonations_only_and_for_ending() {
    let f = fresh().await;
    let a = seed(&f.store, 1).await;
    let clock = SystemClock;
    let now = clock.now();
    let operator = gatehouse_core::ids::new_uuid(&clock);
    let mut tx = f.store.begin().await.unwrap();
    let mut imp = tx.session(a.session).await.unwrap().unwrap();
    imp.id = gatehouse_core::ids::new_uuid(&clock);
    imp.tier = Tier::Impersonation;
    imp.impersonator_id = Some(operator);
    tx.insert_session(&imp).await.unwrap();
    tx.commit(Audited::for_tests()).await.unwrap();

    let mut conn = PgConnection::connect(&f.app_url).await.unwrap();
    let mut tx = conn.begin().await.unwrap();
    set(&mut tx, "gatehouse.impersonator", &operator.to_string()).await;
    // The impersonation, not the customer's own session.
    assert_eq!(ids(&mut tx, SESSIONS).await, vec![imp.id]);
    // Ending it is allowed; moving it to another tier or operator is not.
    let moved = sqlx::query("UPDATE sessions SET tier = 'customer' WHERE id = $1")
        .bind(imp.id)
        .execute(&mut *tx)
        .await;
    assert!(
        moved.is_err(),
        "an impersonation turned into a customer session"
    );
    tx.rollback().await.unwrap();
    let mut tx = conn.begin().await.unwrap();
    set(&mut tx, "gatehouse.impersonator", &operator.to_string()).await;
    let ended = sqlx::query("UPDATE sessions SET revoked_at = $1 WHERE impersonator_id = $2")
        .bind(now)
        .bind(operator)
        .execute(&mut *tx)
        .await
        .unwrap();
    assert_eq!(ended.rows_affected(), 1);
    let deleted = sqlx::query("DELETE FROM sessions")
        .execute(&mut *tx)
        .await
        .unwrap();
    assert_eq!(
        deleted.rows_affected(),
        0,
        "the declaration allowed a delete"
    );
    tx.rollback().await.unwrap();
    conn.close().await.unwrap();
    f.finish().await;
}

/// The posture report's password census (migration 0017) reads every account and changes none.
#[tokio::test]
async fn the_password_census_job_reads_accounts_and_writes_none() {
    let f = fresh().await;
    let user = uuid::Uuid::from_u128(0xce05);
    f.probe(&format!(
        "INSERT INTO users (id, email, name, password_hash, created_at) \
         VALUES ('{user}', 'census@example.com', 'C', 'x', now())"
    ))
    .await
    .unwrap();
    let mut app = PgConnection::connect(&f.app_url).await.unwrap();
    let mut tx = app.begin().await.unwrap();
    let (unseen,): (i64,) = sqlx::query_as("SELECT count(*) FROM users")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!(unseen, 0);
    sqlx::query("SELECT set_config('gatehouse.job', 'password_census', true)")
        .execute(&mut *tx)
        .await
        .unwrap();
    let (seen,): (i64,) = sqlx::query_as("SELECT count(*) FROM users")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!(seen, 1);
    let changed = sqlx::query("UPDATE users SET password_hash = 'y'")
        .execute(&mut *tx)
        .await
        .unwrap();
    assert_eq!(changed.rows_affected(), 0);
    let deleted = sqlx::query("DELETE FROM users")
        .execute(&mut *tx)
        .await
        .unwrap();
    assert_eq!(deleted.rows_affected(), 0);
    tx.rollback().await.unwrap();
    app.close().await.unwrap();
    f.finish().await;
}
