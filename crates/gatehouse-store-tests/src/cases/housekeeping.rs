//! The contract of `Housekeeping` and `PruneStore` (core's `store/housekeeping.rs`) and of the
//! purge methods on records, secrets and sealed fields: one holder at a time owns a lease until
//! it expires or is given up; the search finds exactly the organisations holding expired data;
//! purges and prunes remove what is due, in bounded batches, and nothing else.

use std::sync::Arc;

use gatehouse_core::audit::Audited;
use gatehouse_core::keyring::SealedKind;
use gatehouse_core::store::{Level, MailRecord, PruneJob, RecordRow, SessionRecord, Store, Tier};
use gatehouse_core::{Clock, FakeClock, OrgId, TenantScope};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use crate::cases::keyring::{K1, at, clock, keyring, new_org, open, seal};
use crate::cases::secrets::{secret, version};

pub async fn lease_has_one_holder_until_it_expires_or_is_released(store: Arc<dyn Store>) {
    let t = OffsetDateTime::UNIX_EPOCH + Duration::days(20_000);
    let until = t + Duration::seconds(30);
    assert!(store.acquire_lease("job", "a", t, until).await.unwrap());
    // The holder renews; anyone else is refused while it lasts.
    assert!(store.acquire_lease("job", "a", t, until).await.unwrap());
    assert!(
        !store
            .acquire_lease("job", "b", t + Duration::seconds(29), until)
            .await
            .unwrap()
    );
    // Anyone may ask who holds it, until it expires.
    assert_eq!(
        store
            .lease_holder("job", t + Duration::seconds(29))
            .await
            .unwrap(),
        Some("a".to_owned())
    );
    assert_eq!(store.lease_holder("job", until).await.unwrap(), None);
    assert_eq!(store.lease_holder("never", t).await.unwrap(), None);
    // Another lease name is independent.
    assert!(store.acquire_lease("other", "b", t, until).await.unwrap());
    // Expired: the next asker takes it, and the old holder is now refused.
    assert!(
        store
            .acquire_lease("job", "b", until, until + Duration::seconds(30))
            .await
            .unwrap()
    );
    assert!(
        !store
            .acquire_lease("job", "a", until, until + Duration::seconds(30))
            .await
            .unwrap()
    );
    // Released by someone else: nothing; by its holder: free at once.
    store.release_lease("job", "a").await.unwrap();
    assert!(
        !store
            .acquire_lease("job", "c", until, until + Duration::seconds(30))
            .await
            .unwrap()
    );
    store.release_lease("job", "b").await.unwrap();
    assert!(
        store
            .acquire_lease("job", "c", until, until + Duration::seconds(30))
            .await
            .unwrap()
    );

    // Many asking at the same instant: exactly one wins.
    let mut tasks = Vec::new();
    for i in 0..8 {
        let s = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            s.acquire_lease("race", &format!("h{i}"), t, until)
                .await
                .unwrap()
        }));
    }
    let mut winners = 0;
    for task in tasks {
        if task.await.unwrap() {
            winners += 1;
        }
    }
    assert_eq!(winners, 1);
}

fn record(
    clock: &FakeClock,
    org: OrgId,
    ext: &str,
    expires_at: Option<OffsetDateTime>,
) -> RecordRow {
    let now = clock.now();
    RecordRow {
        org_id: org,
        id: gatehouse_core::ids::new_uuid(clock),
        kind: "note".into(),
        external_id: ext.into(),
        namespace: None,
        owner: "user:x".into(),
        level: Level::Organization,
        allowed: Vec::new(),
        tags: Vec::new(),
        has_content: true,
        created_at: now,
        updated_at: now,
        expires_at,
    }
}

pub async fn purge_finds_and_removes_expired_data_in_batches_and_nothing_else(
    store: Arc<dyn Store>,
) {
    let clock = clock();
    let k = keyring(&store, &clock, K1).await;
    let a = new_org(&store, &clock, 1).await;
    let b = new_org(&store, &clock, 2).await;
    let c = new_org(&store, &clock, 3).await;
    let now = clock.now();
    let past = Some(now - Duration::seconds(1));
    let later = Some(now + Duration::hours(1));

    // A: five expired records, one expiring later, one without expiry; each with content.
    let mut expired = Vec::new();
    let mut kept = Vec::new();
    let mut tx = store
        .begin_scoped(&TenantScope::for_tests(a))
        .await
        .unwrap();
    for i in 0..5 {
        let r = record(&clock, a, &format!("old-{i}"), past);
        tx.insert_record(&r).await.unwrap();
        expired.push(r.id);
    }
    for (ext, exp) in [("later", later), ("forever", None)] {
        let r = record(&clock, a, ext, exp);
        tx.insert_record(&r).await.unwrap();
        kept.push(r.id);
    }
    // Exactly now counts as expired (expires_at is the first instant it is gone).
    let edge = record(&clock, a, "edge", Some(now));
    tx.insert_record(&edge).await.unwrap();
    expired.push(edge.id);
    tx.commit(Audited::for_tests()).await.unwrap();
    for id in expired.iter().chain(&kept) {
        seal(
            &k,
            &store,
            a,
            at(SealedKind::RecordContent, &id.to_string()),
            b"content",
        )
        .await;
    }
    // Read back in one call, by ids: the planted ones, nothing for an id without content.
    let mut tx = store
        .begin_read_scoped(&TenantScope::for_tests(a))
        .await
        .unwrap();
    let mut asked: Vec<String> = expired.iter().map(Uuid::to_string).collect();
    asked.push(Uuid::nil().to_string());
    let found = tx
        .sealed_of(SealedKind::RecordContent.as_str(), &asked, "value")
        .await
        .unwrap();
    let mut got: Vec<String> = found.iter().map(|s| s.record_id.clone()).collect();
    got.sort();
    let mut want_ids: Vec<String> = expired.iter().map(Uuid::to_string).collect();
    want_ids.sort();
    assert_eq!(got, want_ids);
    assert!(
        tx.sealed_of(SealedKind::RecordContent.as_str(), &[], "value")
            .await
            .unwrap()
            .is_empty()
    );
    // Another field of the same records: none.
    assert!(
        tx.sealed_of(SealedKind::RecordContent.as_str(), &asked, "other")
            .await
            .unwrap()
            .is_empty()
    );
    drop(tx);
    // B: an expired and a deleted secret, and a live one. C: nothing expired.
    let mut tx = store
        .begin_scoped(&TenantScope::for_tests(b))
        .await
        .unwrap();
    let mut old = secret(&clock, b, "old");
    old.expires_at = past;
    let mut gone = secret(&clock, b, "gone");
    gone.deleted_at = Some(now);
    let live = secret(&clock, b, "live");
    for s in [&old, &gone, &live] {
        tx.insert_secret(s).await.unwrap();
    }
    assert!(
        tx.add_secret_version(&version(&clock, &old, 2))
            .await
            .unwrap()
    );
    tx.commit(Audited::for_tests()).await.unwrap();
    let mut tx = store
        .begin_scoped(&TenantScope::for_tests(c))
        .await
        .unwrap();
    tx.insert_record(&record(&clock, c, "fresh", later))
        .await
        .unwrap();
    tx.commit(Audited::for_tests()).await.unwrap();

    let mut want = vec![a, b];
    want.sort();
    assert_eq!(store.orgs_with_expired(now, None, 10).await.unwrap(), want);
    assert_eq!(
        store.orgs_with_expired(now, None, 1).await.unwrap(),
        want[..1]
    );
    assert_eq!(
        store
            .orgs_with_expired(now, Some(want[0]), 10)
            .await
            .unwrap(),
        want[1..]
    );
    // An hour on, C's record has expired too.
    let mut all = vec![a, b, c];
    all.sort();
    assert_eq!(
        store
            .orgs_with_expired(now + Duration::hours(1), None, 10)
            .await
            .unwrap(),
        all
    );

    // Batches of four: 4, then 2, then none.
    let mut purged = Vec::new();
    for want_len in [4, 2, 0] {
        let mut tx = store
            .begin_scoped(&TenantScope::for_tests(a))
            .await
            .unwrap();
        let ids = tx.purge_expired_records(now, 4).await.unwrap();
        assert_eq!(ids.len(), want_len);
        let names: Vec<String> = ids.iter().map(Uuid::to_string).collect();
        let n = tx
            .delete_sealed_of(SealedKind::RecordContent.as_str(), &names)
            .await
            .unwrap();
        assert_eq!(n, want_len as u64);
        tx.commit(Audited::for_tests()).await.unwrap();
        purged.extend(ids);
    }
    purged.sort();
    expired.sort();
    assert_eq!(purged, expired);
    let mut tx = store
        .begin_read_scoped(&TenantScope::for_tests(a))
        .await
        .unwrap();
    for id in &expired {
        assert_eq!(tx.record(*id).await.unwrap(), None);
    }
    for id in &kept {
        assert!(tx.record(*id).await.unwrap().is_some());
    }
    drop(tx);
    for id in &expired {
        let got = open(
            &k,
            &store,
            a,
            at(SealedKind::RecordContent, &id.to_string()),
        )
        .await;
        assert_eq!(got.unwrap(), None);
    }
    for id in &kept {
        let got = open(
            &k,
            &store,
            a,
            at(SealedKind::RecordContent, &id.to_string()),
        )
        .await;
        assert_eq!(got.unwrap(), Some(b"content".to_vec()));
    }

    // Secrets: the expired and the deleted go with their versions; the live one stays.
    let mut tx = store
        .begin_scoped(&TenantScope::for_tests(b))
        .await
        .unwrap();
    let mut ids = tx.purge_secrets(now, 10).await.unwrap();
    ids.sort();
    let mut want = vec![old.id, gone.id];
    want.sort();
    assert_eq!(ids, want);
    assert!(tx.secret_versions(old.id).await.unwrap().is_empty());
    assert_eq!(tx.secret(old.id).await.unwrap(), None);
    assert_eq!(tx.secret(live.id).await.unwrap(), Some(live.clone()));
    assert!(tx.purge_secrets(now, 10).await.unwrap().is_empty());
    // Nothing of another organisation is reachable from this scope.
    assert!(
        tx.purge_expired_records(now + Duration::days(1), 10)
            .await
            .unwrap()
            .is_empty()
    );
    tx.commit(Audited::for_tests()).await.unwrap();

    assert!(
        store
            .orgs_with_expired(now, None, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

fn session(clock: &FakeClock, subject: Uuid, expires: OffsetDateTime) -> SessionRecord {
    let now = clock.now();
    SessionRecord {
        id: gatehouse_core::ids::new_uuid(clock),
        subject_id: subject,
        tier: Tier::Customer,
        org_id: None,
        impersonator_id: None,
        reason: None,
        device_name: "phone".into(),
        user_agent: Some("agent".into()),
        ip: Some("192.0.2.9".into()),
        refresh_hash: gatehouse_core::ids::new_uuid(clock).as_bytes().to_vec(),
        previous_refresh_hash: None,
        created_at: now,
        last_seen_at: now,
        expires_at: expires,
        revoked_at: None,
        auth_at: now,
        mfa_at: None,
        signed_in_with: gatehouse_core::store::SignedInWith::Password,
    }
}

fn mail(clock: &FakeClock) -> MailRecord {
    MailRecord {
        id: gatehouse_core::ids::new_uuid(clock),
        envelope: b"sealed".to_vec(),
        created_at: clock.now(),
        attempts: 0,
        next_attempt_at: clock.now(),
        sent_at: None,
        last_error: None,
        recipient: Vec::new(),
        kind: String::new(),
        org_id: None,
        list: None,
    }
}

async fn prune(store: &Arc<dyn Store>, job: PruneJob, cutoff: OffsetDateTime, limit: u32) -> u64 {
    let mut tx = store.begin().await.unwrap();
    let n = tx.prune(job, cutoff, limit).await.unwrap();
    tx.commit(Audited::for_tests()).await.unwrap();
    n
}

pub async fn prune_removes_spent_rows_past_their_cutoff_only(store: Arc<dyn Store>) {
    let clock = clock();
    let t0 = clock.now();
    let user = crate::cases::new_user(store.as_ref(), &clock, "pruned@example.com").await;
    let subject = user.id.as_uuid();
    // Sessions: one expired at t0+1h, one revoked at t0+2h, one live until t0+30d.
    let expired = session(&clock, subject, t0 + Duration::hours(1));
    let revoked = session(&clock, subject, t0 + Duration::days(30));
    let live = session(&clock, subject, t0 + Duration::days(30));
    let mut tx = store.begin().await.unwrap();
    for s in [&expired, &revoked, &live] {
        tx.insert_session(s).await.unwrap();
    }
    assert!(
        tx.revoke_session(revoked.id, t0 + Duration::hours(2))
            .await
            .unwrap()
    );
    // One-time tokens: one used at t0, one unused expiring at t0+15m, one unused for a week.
    for (d, exp) in [
        (1u8, t0 + Duration::days(7)),
        (2, t0 + Duration::minutes(15)),
        (3, t0 + Duration::days(7)),
    ] {
        tx.insert_one_time_token(&gatehouse_core::store::OneTimeTokenRecord {
            digest: vec![d; 32],
            purpose: gatehouse_core::store::TokenPurpose::PasswordReset,
            subject_id: subject,
            detail: "{}".into(),
            created_at: t0,
            expires_at: exp,
            used_at: None,
        })
        .await
        .unwrap();
    }
    assert!(tx.consume_one_time_token(&[1u8; 32], t0).await.unwrap());
    // Recovery codes: three, one used at t0.
    let codes = vec![vec![7u8; 32], vec![8u8; 32], vec![9u8; 32]];
    tx.replace_recovery_codes(user.id, &codes, t0)
        .await
        .unwrap();
    assert!(tx.use_recovery_code(user.id, &codes[0], t0).await.unwrap());
    // Mail: one delivered, one dead, one pending.
    let (sent, dead, pending) = (mail(&clock), mail(&clock), mail(&clock));
    for m in [&sent, &dead, &pending] {
        tx.enqueue_mail(m).await.unwrap();
    }
    tx.commit(Audited::for_tests()).await.unwrap();
    store.mail_delivered(sent.id, t0).await.unwrap();
    store.mail_dead(dead.id, 5, t0, "refused").await.unwrap();
    // A dead message is never claimed again, nor counted as waiting.
    let claimed = store
        .claim_due_mail(t0, t0 + Duration::minutes(2), 10)
        .await
        .unwrap();
    assert_eq!(
        claimed.iter().map(|m| m.id).collect::<Vec<_>>(),
        vec![pending.id]
    );
    assert_eq!(store.mail_backlog().await.unwrap().pending, 1);

    // A cutoff before anything was spent removes nothing.
    for job in PruneJob::ALL {
        assert_eq!(
            prune(&store, job, t0 - Duration::seconds(1), 100).await,
            0,
            "{job:?}"
        );
    }
    // Cutoff t0+1h: the expired session (exactly at its cutoff), the used token, the used code,
    // the delivered and the dead message; in batches of one for sessions.
    assert_eq!(
        prune(&store, PruneJob::Sessions, t0 + Duration::hours(1), 1).await,
        1
    );
    assert_eq!(
        prune(&store, PruneJob::Sessions, t0 + Duration::hours(1), 1).await,
        0
    );
    assert_eq!(
        prune(
            &store,
            PruneJob::OneTimeTokens,
            t0 + Duration::hours(1),
            100
        )
        .await,
        2
    );
    assert_eq!(
        prune(
            &store,
            PruneJob::RecoveryCodes,
            t0 + Duration::hours(1),
            100
        )
        .await,
        1
    );
    assert_eq!(
        prune(
            &store,
            PruneJob::DeliveredMail,
            t0 + Duration::hours(1),
            100
        )
        .await,
        1
    );
    assert_eq!(
        prune(&store, PruneJob::DeadMail, t0 + Duration::hours(1), 100).await,
        1
    );
    // Cutoff t0+2h: the revoked session too; the live one and the unused rows stay.
    assert_eq!(
        prune(&store, PruneJob::Sessions, t0 + Duration::hours(2), 100).await,
        1
    );
    let mut tx = store.begin().await.unwrap();
    assert_eq!(tx.session(expired.id).await.unwrap(), None);
    assert_eq!(tx.session(revoked.id).await.unwrap(), None);
    assert!(tx.session(live.id).await.unwrap().is_some());
    assert!(tx.one_time_token(&[3u8; 32]).await.unwrap().is_some());
    assert_eq!(tx.one_time_token(&[1u8; 32]).await.unwrap(), None);
    assert_eq!(tx.recovery_codes_left(user.id).await.unwrap(), 2);
    drop(tx);
    let claimed = store
        .claim_due_mail(t0 + Duration::hours(3), t0 + Duration::hours(4), 10)
        .await
        .unwrap();
    assert_eq!(
        claimed.iter().map(|m| m.id).collect::<Vec<_>>(),
        vec![pending.id]
    );
}

pub async fn mail_is_found_and_erased_by_its_recipient_only(store: Arc<dyn Store>) {
    let clock = clock();
    let (ada, bob) = ([1u8; 32].to_vec(), [2u8; 32].to_vec());
    // A millisecond apart: listed oldest first.
    let first = mail(&clock);
    clock.advance(Duration::milliseconds(1));
    let mut to_ada = vec![first, mail(&clock)];
    to_ada[0].recipient = ada.clone();
    to_ada[0].kind = "password_reset".into();
    to_ada[1].recipient = ada.clone();
    let mut to_bob = mail(&clock);
    to_bob.recipient = bob.clone();
    let mut tx = store.begin().await.unwrap();
    for m in to_ada.iter().chain([&to_bob]) {
        tx.enqueue_mail(m).await.unwrap();
    }
    tx.commit(Audited::for_tests()).await.unwrap();
    let mut tx = store.begin().await.unwrap();
    assert_eq!(tx.mail_to(&ada, 10).await.unwrap(), to_ada);
    assert_eq!(tx.mail_to(&ada, 1).await.unwrap(), to_ada[..1]);
    assert!(tx.mail_to(&[], 10).await.unwrap().is_empty());
    assert_eq!(tx.delete_mail_to(&ada).await.unwrap(), 2);
    assert!(tx.mail_to(&ada, 10).await.unwrap().is_empty());
    assert_eq!(tx.mail_to(&bob, 10).await.unwrap(), vec![to_bob]);
    tx.commit(Audited::for_tests()).await.unwrap();
}
