//! Grants honoured by a policy, seen from raw SQL as the application role (issue 19, must 2):
//! with organisation B's setting, the records table shows B's own rows and exactly those of
//! A's that a live grant to B covers, judged by `gatehouse.now`; never a private one, never
//! through a revoked or expired grant, and never for writing.

use gatehouse_core::audit::Audited;
use gatehouse_core::store::{GrantAccess, GrantRow, Level, RecordRow, Store};
use gatehouse_core::{Clock, OrgId, SystemClock, TenantScope};
use sqlx::{Connection, PgConnection};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use crate::fixture::fresh;
use crate::rls::seed_org;
use gatehouse_store_tests::Fixture;

fn record(org: OrgId, n: u128, kind: &str, level: Level, namespace: Option<&str>) -> RecordRow {
    let now = SystemClock.now();
    RecordRow {
        org_id: org,
        id: gatehouse_core::ids::new_uuid(&SystemClock),
        kind: kind.into(),
        external_id: format!("r{n}"),
        namespace: namespace.map(str::to_owned),
        owner: format!("user:{}", Uuid::from_u128(n)),
        level,
        allowed: Vec::new(),
        tags: Vec::new(),
        has_content: false,
        created_at: now,
        updated_at: now,
        expires_at: None,
    }
}

fn grant(from: OrgId, to: OrgId, types: &[&str], expires_at: Option<OffsetDateTime>) -> GrantRow {
    GrantRow {
        org_id: from,
        id: gatehouse_core::ids::new_uuid(&SystemClock),
        grantee: to,
        types: types.iter().map(|t| (*t).to_owned()).collect(),
        namespaces: vec!["sales".into()],
        access: GrantAccess::Read,
        created_by: "user:x".into(),
        created_at: SystemClock.now(),
        expires_at,
        revoked_at: None,
    }
}

/// Record ids visible to the application role scoped to `org` at `now` (`None`: unset).
async fn visible(conn: &mut PgConnection, org: OrgId, now: Option<OffsetDateTime>) -> Vec<Uuid> {
    let mut tx = conn.begin().await.unwrap();
    sqlx::query("SELECT set_config('gatehouse.org_id', $1, true)")
        .bind(org.to_string())
        .execute(&mut *tx)
        .await
        .unwrap();
    if let Some(t) = now {
        sqlx::query("SELECT set_config('gatehouse.now', $1::timestamptz::text, true)")
            .bind(t)
            .execute(&mut *tx)
            .await
            .unwrap();
    }
    let mut ids: Vec<Uuid> = sqlx::query_as::<_, (Uuid,)>("SELECT id FROM records")
        .fetch_all(&mut *tx)
        .await
        .unwrap()
        .into_iter()
        .map(|(id,)| id)
        .collect();
    ids.sort();
    tx.rollback().await.unwrap();
    ids
}

#[tokio::test]
async fn a_policy_shows_the_grantee_exactly_the_records_a_live_grant_covers() {
    let f = fresh().await;
    let (a, _) = seed_org(&f.store, 1).await;
    let (b, _) = seed_org(&f.store, 2).await;
    let (c, _) = seed_org(&f.store, 3).await;
    let covered = record(a, 1, "report", Level::Organization, Some("sales"));
    let public = record(a, 2, "report", Level::Public, Some("sales"));
    let private = record(a, 3, "report", Level::Private, Some("sales"));
    let other_ns = record(a, 4, "report", Level::Organization, Some("hr"));
    let other_type = record(a, 5, "memo", Level::Organization, Some("sales"));
    let b_own = record(b, 6, "report", Level::Private, None);
    // Covered, but gone 30 s from now (G3): the policy stops showing it then.
    let mut expiring = record(a, 8, "report", Level::Organization, Some("sales"));
    expiring.expires_at = Some(SystemClock.now() + Duration::seconds(30));
    let c_rec = record(c, 7, "report", Level::Organization, Some("sales"));
    let now = SystemClock.now();
    let a_to_b = grant(a, b, &["report"], Some(now + Duration::minutes(1)));
    let c_to_b_expired = grant(c, b, &[], Some(now - Duration::seconds(1)));
    let a_to_c = grant(a, c, &[], None);
    for (org, records, grants) in [
        (
            a,
            vec![
                &covered,
                &public,
                &private,
                &other_ns,
                &other_type,
                &expiring,
            ],
            vec![&a_to_b, &a_to_c],
        ),
        (b, vec![&b_own], vec![]),
        (c, vec![&c_rec], vec![&c_to_b_expired]),
    ] {
        let mut tx = f
            .store
            .begin_scoped(&TenantScope::for_tests(org))
            .await
            .unwrap();
        for r in records {
            tx.insert_record(r).await.unwrap();
        }
        for g in grants {
            tx.insert_grant(g).await.unwrap();
        }
        tx.commit(Audited::for_tests()).await.unwrap();
    }

    let mut conn = PgConnection::connect(&f.app_url).await.unwrap();
    let mut with_expiring = vec![b_own.id, covered.id, public.id, expiring.id];
    with_expiring.sort();
    assert_eq!(visible(&mut conn, b, Some(now)).await, with_expiring);
    let mut expected = vec![b_own.id, covered.id, public.id];
    expected.sort();
    let gone = expiring.expires_at.unwrap_or(now);
    assert_eq!(visible(&mut conn, b, Some(gone)).await, expected);
    // The grant's last live moment, and its expiry second.
    let last = now + Duration::minutes(1) - Duration::microseconds(1);
    assert_eq!(visible(&mut conn, b, Some(last)).await, expected);
    assert_eq!(
        visible(&mut conn, b, Some(now + Duration::minutes(1))).await,
        vec![b_own.id]
    );
    // Without a time, no grant with an expiry is live: less is seen, never more.
    assert_eq!(visible(&mut conn, b, None).await, vec![b_own.id]);
    // C's grant to B expired; A's grant to C (no expiry, every type) shows C all of A's
    // records that are not private in namespace sales (the expiring one until its expiry).
    let mut for_c = vec![c_rec.id, covered.id, public.id, other_type.id, expiring.id];
    for_c.sort();
    assert_eq!(visible(&mut conn, c, Some(now)).await, for_c);

    // The grantee reads the grants made to it, and no others; it can neither change A's
    // records nor make or alter A's grants.
    let mut tx = conn.begin().await.unwrap();
    sqlx::query("SELECT set_config('gatehouse.org_id', $1, true), set_config('gatehouse.now', $2::timestamptz::text, true)")
        .bind(b.to_string())
        .bind(now)
        .execute(&mut *tx)
        .await
        .unwrap();
    let grants: Vec<(Uuid,)> = sqlx::query_as("SELECT id FROM grants ORDER BY id")
        .fetch_all(&mut *tx)
        .await
        .unwrap();
    let mut to_b = vec![a_to_b.id, c_to_b_expired.id];
    to_b.sort();
    assert_eq!(grants.into_iter().map(|(g,)| g).collect::<Vec<_>>(), to_b);
    let changed = sqlx::query("UPDATE records SET tags = ',x,' WHERE id = $1")
        .bind(covered.id)
        .execute(&mut *tx)
        .await
        .unwrap();
    assert_eq!(changed.rows_affected(), 0, "a grant is for reading");
    let deleted = sqlx::query("DELETE FROM records WHERE id = $1")
        .bind(covered.id)
        .execute(&mut *tx)
        .await
        .unwrap();
    assert_eq!(deleted.rows_affected(), 0);
    let extended = sqlx::query("UPDATE grants SET expires_at = NULL")
        .execute(&mut *tx)
        .await
        .unwrap();
    assert_eq!(
        extended.rows_affected(),
        0,
        "the grantee cannot extend a grant"
    );
    tx.rollback().await.unwrap();
    let mut tx = conn.begin().await.unwrap();
    sqlx::query("SELECT set_config('gatehouse.org_id', $1, true)")
        .bind(b.to_string())
        .execute(&mut *tx)
        .await
        .unwrap();
    let forged = sqlx::query(
        "INSERT INTO grants (org_id, id, grantee_org_id, access, created_by, created_at) \
         VALUES ($1, $2, $3, 'read', 'user:x', now())",
    )
    .bind(a.as_uuid())
    .bind(gatehouse_core::ids::new_uuid(&SystemClock))
    .bind(b.as_uuid())
    .execute(&mut *tx)
    .await;
    assert!(forged.is_err(), "B forged a grant from A");
    tx.rollback().await.unwrap();

    // Revoked: gone at once.
    let mut tx = f
        .store
        .begin_scoped(&TenantScope::for_tests(a))
        .await
        .unwrap();
    assert!(tx.revoke_grant(a_to_b.id, now).await.unwrap());
    tx.commit(Audited::for_tests()).await.unwrap();
    assert_eq!(visible(&mut conn, b, Some(now)).await, vec![b_own.id]);
    conn.close().await.unwrap();
    f.finish().await;
}
