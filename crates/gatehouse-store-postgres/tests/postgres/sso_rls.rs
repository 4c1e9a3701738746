//! Row-level security on migration 0022's tables, seen from raw SQL as the application role: an
//! organisation's sign-on configuration and domains are its own; outside a scope a statement
//! sees only the verified row of the one domain it declared; linked identities are seen by their
//! digest or their person, and by the scope of the organisation whose sign-on made them.

use gatehouse_core::audit::Audited;
use gatehouse_core::store::{
    ExternalIdentityRecord, OrganizationRecord, SsoConfigRecord, SsoDomainRecord, Store,
    UserRecord, external_identity_digest,
};
use gatehouse_core::{Clock, OrgId, SystemClock, TenantScope, UserId};
use sqlx::{Connection, PgConnection};
use uuid::Uuid;

use crate::fixture::fresh;

async fn seed(store: &gatehouse_store_postgres::PostgresStore, n: u8) -> (OrgId, UserId) {
    let clock = SystemClock;
    let now = clock.now();
    let org = OrgId::new(&clock);
    let user = UserId::new(&clock);
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
        password_hash: String::new(),
        created_at: now,
        email_verified_at: None,
        disabled_at: None,
    })
    .await
    .unwrap();
    tx.insert_external_identity(&ExternalIdentityRecord {
        issuer: "https://idp.example".into(),
        subject: format!("sub-{n}"),
        user_id: user,
        linked_by: Some(org),
        created_at: now,
    })
    .await
    .unwrap();
    let mut tx = tx.enter(&TenantScope::for_tests(org)).await.unwrap();
    tx.put_sso_config(&SsoConfigRecord {
        org_id: org,
        issuer: "https://idp.example".into(),
        client_id: format!("client-{n}"),
        scopes: "openid email".into(),
        default_role: "member".into(),
        enforced: false,
        created_at: now,
        updated_at: now,
    })
    .await
    .unwrap();
    for (name, verified) in [(format!("d{n}.test"), true), (format!("p{n}.test"), false)] {
        tx.insert_sso_domain(&SsoDomainRecord {
            org_id: org,
            domain: name.clone(),
            challenge: "c".into(),
            created_at: now,
            verified_at: None,
        })
        .await
        .unwrap();
        if verified {
            assert!(tx.verify_sso_domain(&name, now).await.unwrap());
        }
    }
    tx.commit(Audited::for_tests()).await.unwrap();
    (org, user)
}

async fn count(conn: &mut PgConnection, sql: &str) -> i64 {
    let (n,): (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(sql.to_owned()))
        .fetch_one(conn)
        .await
        .unwrap();
    n
}

async fn set(conn: &mut PgConnection, setting: &str, value: &str) {
    sqlx::query("SELECT set_config($1, $2, true)")
        .bind(setting)
        .bind(value)
        .execute(conn)
        .await
        .unwrap();
}

const CONFIGS: &str = "SELECT count(*) FROM sso_configs";
const DOMAINS: &str = "SELECT count(*) FROM sso_domains";
const IDENTITIES: &str = "SELECT count(*) FROM external_identities";

#[tokio::test]
async fn raw_selects_see_an_organisations_sign_on_only_in_its_scope_or_as_declared() {
    let f = fresh().await;
    let (a, ada) = seed(&f.store, 1).await;
    let (b, _) = seed(&f.store, 2).await;
    let mut conn = PgConnection::connect(&f.app_url).await.unwrap();

    // Nothing declared: none of it.
    for sql in [CONFIGS, DOMAINS, IDENTITIES] {
        assert_eq!(count(&mut conn, sql).await, 0, "{sql}");
    }

    // A's scope: A's configuration and both its domains; B's not, nor may A write B's.
    let mut tx = conn.begin().await.unwrap();
    set(&mut tx, "gatehouse.org_id", &a.to_string()).await;
    assert_eq!(count(&mut tx, CONFIGS).await, 1);
    assert_eq!(count(&mut tx, DOMAINS).await, 2);
    // The links A's sign-on made (migration 0023), which its scope may delete; B's are neither
    // seen nor deleted.
    assert_eq!(count(&mut tx, IDENTITIES).await, 1);
    let ended = sqlx::query("DELETE FROM external_identities")
        .execute(&mut *tx)
        .await
        .unwrap();
    assert_eq!(ended.rows_affected(), 1);
    assert_eq!(count(&mut tx, IDENTITIES).await, 0);
    let cross = sqlx::query(
        "INSERT INTO sso_domains (org_id, domain, challenge, created_at) VALUES ($1, 'x.test', 'c', now())",
    )
    .bind(b.as_uuid())
    .execute(&mut *tx)
    .await;
    assert!(cross.is_err());
    tx.rollback().await.unwrap();

    // A declared domain: its verified row only, whoever verified it; a claimed one is not seen.
    for (declared, seen) in [("d2.test", 1), ("p2.test", 0), ("", 0)] {
        let mut tx = conn.begin().await.unwrap();
        set(&mut tx, "gatehouse.domain", declared).await;
        assert_eq!(count(&mut tx, DOMAINS).await, seen, "{declared}");
        assert_eq!(count(&mut tx, CONFIGS).await, 0);
        // Seen is not writable: the declaration opens reading only.
        let taken = sqlx::query("UPDATE sso_domains SET verified_at = NULL WHERE domain = $1")
            .bind(declared)
            .execute(&mut *tx)
            .await
            .unwrap();
        assert_eq!(taken.rows_affected(), 0);
        tx.rollback().await.unwrap();
    }

    // An identity's digest: that identity; a person: theirs.
    let mut tx = conn.begin().await.unwrap();
    let digest = external_identity_digest("https://idp.example", "sub-2");
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    set(&mut tx, "gatehouse.digest", &hex).await;
    let (subject,): (String,) = sqlx::query_as("SELECT subject FROM external_identities")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!(subject, "sub-2");
    tx.rollback().await.unwrap();
    let mut tx = conn.begin().await.unwrap();
    set(&mut tx, "gatehouse.subject", &ada.to_string()).await;
    let rows: Vec<(String, Uuid)> =
        sqlx::query_as("SELECT subject, user_id FROM external_identities")
            .fetch_all(&mut *tx)
            .await
            .unwrap();
    assert_eq!(rows, vec![("sub-1".to_owned(), ada.as_uuid())]);
    tx.rollback().await.unwrap();
}
