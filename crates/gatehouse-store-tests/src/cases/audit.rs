//! The contract of `AuditStore` (core's `store/audit.rs`), the tenant audit chain: an event lives
//! and dies with its transaction's change, concurrent and group-committed writers make one chain,
//! tampering is found and named, the events are append-only in the database, chains are per
//! organisation, and filters and cursors return exactly the right events. (The operator chain,
//! `OperatorAuditStore`, is checked here alongside where a case rolls back or batches both.)

use std::sync::Arc;

use gatehouse_core::audit::{self, Actor, AuditEvent, AuditFilter, AuditRecord, Audited, Outcome};
use gatehouse_core::page::PageRequest;
use gatehouse_core::store::Store;
use gatehouse_core::{Clock, FakeClock, OrgId, TenantScope};
use time::{Duration, OffsetDateTime};

use crate::Fixture;
use crate::data::{org, user};

pub(crate) fn clock() -> FakeClock {
    FakeClock::at(OffsetDateTime::UNIX_EPOCH + Duration::days(20_700) + Duration::microseconds(9))
}

pub(crate) async fn new_org(store: &dyn Store, clock: &FakeClock, n: usize) -> OrgId {
    let o = org(clock, &format!("audit org {n}"));
    let mut tx = store.begin().await.unwrap();
    tx.insert_organization(&o).await.unwrap();
    tx.commit(Audited::for_tests()).await.unwrap();
    o.id
}

/// The keyring every case verifies with (one master key per test database).
pub(crate) async fn keyring(store: &Arc<dyn Store>) -> gatehouse_core::keyring::Keyring {
    gatehouse_core::keyring::Keyring::start(
        Arc::clone(store),
        Arc::new(clock()),
        &gatehouse_crypto::Key32::from_bytes([3; 32]),
        gatehouse_core::keyring::KeyringSettings::default(),
    )
    .await
    .unwrap()
}

pub(crate) fn event(n: usize) -> AuditEvent {
    AuditEvent::success(
        Actor::user(format!("u{n}")),
        "member.role_changed",
        "member",
        n,
    )
    .with_details(format!("{{\"n\":{n}}}"))
}

pub(crate) async fn record(store: &dyn Store, clock: &FakeClock, org: OrgId, n: usize) {
    audit::record_tenant(store, &TenantScope::for_tests(org), clock, event(n))
        .await
        .unwrap();
}

pub(crate) async fn events(
    store: &dyn Store,
    org: OrgId,
) -> Vec<gatehouse_core::audit::AuditRecord> {
    let mut tx = store
        .begin_scoped(&TenantScope::for_tests(org))
        .await
        .unwrap();
    tx.audit_events(0, 10_000).await.unwrap()
}

pub async fn audit_rolled_back_changes_leave_no_event(f: &dyn Fixture) {
    let store = f.store();
    let clock = clock();
    let org_id = new_org(store.as_ref(), &clock, 1).await;
    // A change and its event, dropped before commit: neither remains.
    let u = user(&clock, "gone@example.com");
    {
        let mut tx = store.begin().await.unwrap();
        tx.insert_user(&u).await.unwrap();
        let mut tx = tx.enter(&TenantScope::for_tests(org_id)).await.unwrap();
        let _proof = audit::append_tenant(tx.as_mut(), &clock, event(1))
            .await
            .unwrap();
    }
    assert!(events(store.as_ref(), org_id).await.is_empty());
    assert!(
        store
            .begin()
            .await
            .unwrap()
            .user_by_id(u.id)
            .await
            .unwrap()
            .is_none()
    );
    // A transaction that fails after appending (a duplicate key) leaves no event either.
    let mut tx = store.begin().await.unwrap();
    tx.insert_user(&user(&clock, "dup@example.com"))
        .await
        .unwrap();
    let proof = audit::append_operator(tx.as_mut(), &clock, event(2))
        .await
        .unwrap();
    tx.commit(proof).await.unwrap();
    {
        let mut tx = store.begin().await.unwrap();
        let _proof = audit::append_operator(tx.as_mut(), &clock, event(3))
            .await
            .unwrap();
        assert!(
            tx.insert_user(&user(&clock, "dup@example.com"))
                .await
                .is_err()
        );
        // The failed change is never committed; dropping it rolls its event back with it.
    }
    let mut tx = store.begin().await.unwrap();
    let ops = tx.operator_audit_events(0, 100).await.unwrap();
    assert_eq!(
        ops.iter().map(|e| e.details.as_str()).collect::<Vec<_>>(),
        vec!["{\"n\":2}"]
    );
    drop(tx);
    // A committed change always has its event.
    let mut tx = store
        .begin_scoped(&TenantScope::for_tests(org_id))
        .await
        .unwrap();
    let proof = audit::append_tenant(tx.as_mut(), &clock, event(4))
        .await
        .unwrap();
    tx.commit(proof).await.unwrap();
    let evs = events(store.as_ref(), org_id).await;
    assert_eq!(evs.len(), 1);
    assert_eq!(
        (evs[0].seq, evs[0].action.as_str()),
        (1, "member.role_changed")
    );
    assert_eq!(
        audit::verify_org(
            store.as_ref(),
            &keyring(&store).await,
            &TenantScope::for_tests(org_id)
        )
        .await
        .unwrap(),
        Ok(1)
    );
}

pub async fn audit_concurrent_writers_make_one_chain(f: &dyn Fixture) {
    let store = f.store();
    let clock = Arc::new(clock());
    let org_id = new_org(store.as_ref(), &clock, 1).await;
    let mut tasks = Vec::new();
    for w in 0..8 {
        let store = Arc::clone(&store);
        let clock = Arc::clone(&clock);
        tasks.push(tokio::spawn(async move {
            for i in 0..20 {
                record(store.as_ref(), &clock, org_id, w * 100 + i).await;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let evs = events(store.as_ref(), org_id).await;
    assert_eq!(evs.len(), 160);
    assert!(evs.iter().enumerate().all(|(i, e)| e.seq == i as u64 + 1));
    assert_eq!(
        audit::verify_org(
            store.as_ref(),
            &keyring(&store).await,
            &TenantScope::for_tests(org_id)
        )
        .await
        .unwrap(),
        Ok(160)
    );
}

pub async fn audit_group_commit_makes_one_chain_and_acknowledges_durably(f: &dyn Fixture) {
    let store = f.store();
    let clock = Arc::new(clock());
    let a = new_org(store.as_ref(), &clock, 1).await;
    let b = new_org(store.as_ref(), &clock, 2).await;
    let batcher = audit::AuditBatcher::start(Arc::clone(&store), clock.clone(), 64);
    let mut tasks = Vec::new();
    for w in 0..8 {
        let batcher = batcher.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..25 {
                let org = if (w + i) % 3 == 0 { b } else { a };
                batcher
                    .record(&TenantScope::for_tests(org), event(w * 100 + i))
                    .await
                    .unwrap();
            }
            batcher
                .record_operator(AuditEvent::success(
                    Actor::system("t"),
                    "test.noticed",
                    "t",
                    w,
                ))
                .await
                .unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    // Every acknowledged event is committed and chained.
    let (na, nb) = (
        events(store.as_ref(), a).await.len(),
        events(store.as_ref(), b).await.len(),
    );
    assert_eq!(na + nb, 200);
    let k = keyring(&store).await;
    assert_eq!(
        audit::verify_org(store.as_ref(), &k, &TenantScope::for_tests(a))
            .await
            .unwrap(),
        Ok(na as u64)
    );
    assert_eq!(
        audit::verify_org(store.as_ref(), &k, &TenantScope::for_tests(b))
            .await
            .unwrap(),
        Ok(nb as u64)
    );
    let ops = store
        .begin()
        .await
        .unwrap()
        .operator_audit_events(0, 1000)
        .await
        .unwrap();
    assert_eq!(ops.iter().filter(|e| e.action == "test.noticed").count(), 8);
    // An invalid event is refused before it reaches the writer.
    let bad = AuditEvent::success(Actor::system("t"), "NotDotted", "t", 1);
    assert!(
        batcher
            .record(&TenantScope::for_tests(a), bad)
            .await
            .is_err()
    );
}

pub(crate) async fn chain_of_six(store: &dyn Store, clock: &FakeClock, n: usize) -> OrgId {
    let org_id = new_org(store, clock, n).await;
    for i in 1..=6 {
        record(store, clock, org_id, i).await;
    }
    org_id
}

async fn first_bad(store: &Arc<dyn Store>, org: OrgId) -> (u64, String) {
    let store: Arc<dyn Store> = Arc::clone(store);
    let e = audit::verify_org(
        store.as_ref(),
        &keyring(&store).await,
        &TenantScope::for_tests(org),
    )
    .await
    .unwrap()
    .unwrap_err();
    (e.seq, e.reason)
}

pub async fn audit_verify_names_the_first_tampered_event(f: &dyn Fixture) {
    let store = f.store();
    let clock = clock();
    let modified = chain_of_six(store.as_ref(), &clock, 1).await;
    let deleted = chain_of_six(store.as_ref(), &clock, 2).await;
    let swapped = chain_of_six(store.as_ref(), &clock, 3).await;
    let truncated = chain_of_six(store.as_ref(), &clock, 4).await;
    let intact = chain_of_six(store.as_ref(), &clock, 5).await;
    // Each edit names its event by id (unique across chains).
    let ids = |o: OrgId| {
        let store = Arc::clone(&store);
        async move {
            events(store.as_ref(), o)
                .await
                .into_iter()
                .map(|e| e.id.simple().to_string())
                .collect::<Vec<_>>()
        }
    };
    let m = ids(modified).await;
    let d = ids(deleted).await;
    let s = ids(swapped).await;
    let t = ids(truncated).await;
    let f_id = |id: &str| format!("id = {}", f.uuid_literal(id));
    f.tamper(&[
        &format!(
            "UPDATE audit_events SET details = '{{\"n\":99}}' WHERE {}",
            f_id(&m[2])
        ),
        &format!("DELETE FROM audit_events WHERE {}", f_id(&d[3])),
        &format!("UPDATE audit_events SET seq = -1 WHERE {}", f_id(&s[1])),
        &format!("UPDATE audit_events SET seq = 2 WHERE {}", f_id(&s[2])),
        &format!("UPDATE audit_events SET seq = 3 WHERE {}", f_id(&s[1])),
        &format!("DELETE FROM audit_events WHERE {}", f_id(&t[5])),
    ])
    .await;
    let (seq, why) = first_bad(&store, modified).await;
    assert_eq!(seq, 3, "{why}");
    assert!(why.contains("modified"), "{why}");
    let (seq, why) = first_bad(&store, deleted).await;
    assert_eq!(seq, 5, "{why}");
    assert!(why.contains("missing"), "{why}");
    let (seq, why) = first_bad(&store, swapped).await;
    assert_eq!(seq, 2, "{why}");
    let (seq, why) = first_bad(&store, truncated).await;
    assert_eq!(seq, 6, "{why}");
    assert!(why.contains("removed from the end"), "{why}");
    assert_eq!(
        audit::verify_org(
            store.as_ref(),
            &keyring(&store).await,
            &TenantScope::for_tests(intact)
        )
        .await
        .unwrap(),
        Ok(6)
    );
}

pub async fn audit_events_are_append_only(f: &dyn Fixture) {
    let store = f.store();
    let clock = clock();
    let org_id = chain_of_six(store.as_ref(), &clock, 1).await;
    let update = f
        .exec_as_app("UPDATE audit_events SET action = 'x.y' WHERE seq = 1")
        .await;
    assert!(update.is_err(), "an UPDATE on audit events must be refused");
    // Refused by the append-only trigger while the organisation exists (on PostgreSQL the
    // unscoped statement sees no row at all; `tests/postgres/rls.rs` checks the trigger inside
    // the organisation's scope).
    let _ = f
        .exec_as_app("DELETE FROM audit_events WHERE seq = 1")
        .await;
    let _ = f.exec_as_app("DELETE FROM audit_heads").await;
    assert_eq!(events(store.as_ref(), org_id).await.len(), 6);
    let sqlite = store.backend() == "sqlite";
    if sqlite {
        assert!(
            f.exec_as_app("DELETE FROM audit_events WHERE seq = 1")
                .await
                .is_err(),
            "a DELETE on audit events must be refused"
        );
    }
    // The chain goes on from its head: nothing was deleted.
    record(store.as_ref(), &clock, org_id, 7).await;
    assert_eq!(events(store.as_ref(), org_id).await.len(), 7);
}

pub async fn audit_chains_are_per_organisation(f: &dyn Fixture) {
    let store = f.store();
    let clock = clock();
    let a = chain_of_six(store.as_ref(), &clock, 1).await;
    let b = new_org(store.as_ref(), &clock, 2).await;
    record(store.as_ref(), &clock, b, 42).await;
    let eb = events(store.as_ref(), b).await;
    assert_eq!(eb.len(), 1);
    assert_eq!((eb[0].seq, eb[0].org_id), (1, Some(b)));
    assert!(
        events(store.as_ref(), a)
            .await
            .iter()
            .all(|e| e.org_id == Some(a))
    );
    // An event for B appended inside A's scope is refused.
    let mut tx = store
        .begin_scoped(&TenantScope::for_tests(a))
        .await
        .unwrap();
    let mut foreign = eb[0].clone();
    foreign.seq = 7;
    assert!(tx.append_audit(&foreign).await.is_err());
}

pub async fn audit_batches_continue_the_chain_across_insert_chunks(f: &dyn Fixture) {
    let store = f.store();
    let clock = clock();
    let a = chain_of_six(store.as_ref(), &clock, 1).await;
    let b = new_org(store.as_ref(), &clock, 2).await;
    // More events than one multi-row INSERT holds, after events appended one by one.
    let mut tx = store
        .begin_scoped(&TenantScope::for_tests(a))
        .await
        .unwrap();
    let batch: Vec<AuditEvent> = (0..1_203).map(event).collect();
    let proof = audit::append_tenant_batch(tx.as_mut(), &clock, batch)
        .await
        .unwrap()
        .unwrap();
    tx.commit(proof).await.unwrap();
    let all = events(store.as_ref(), a).await;
    assert_eq!(all.len(), 1_209);
    assert!(all.iter().enumerate().all(|(i, e)| e.seq == i as u64 + 1));
    // The head moved to the last event: the next single append continues from it.
    record(store.as_ref(), &clock, a, 99).await;
    let k = keyring(&store).await;
    assert_eq!(
        audit::verify_org(store.as_ref(), &k, &TenantScope::for_tests(a))
            .await
            .unwrap(),
        Ok(1_210)
    );
    // No events: no proof, nothing written.
    let mut tx = store
        .begin_scoped(&TenantScope::for_tests(a))
        .await
        .unwrap();
    assert!(
        audit::append_tenant_batch(tx.as_mut(), &clock, Vec::new())
            .await
            .unwrap()
            .is_none()
    );
    // A record of another chain inside the batch is refused.
    let mut foreign = all[0].clone();
    foreign.org_id = Some(b);
    assert!(tx.append_audit_batch(&[foreign]).await.is_err());
}

fn varied(i: usize) -> AuditEvent {
    let actions = [
        "member.added",
        "member.role_changed",
        "secret.revealed",
        "user.login",
        "memberx.odd",
    ];
    let outcomes = [Outcome::Success, Outcome::Denied, Outcome::Failure];
    AuditEvent {
        actor: Actor::user(format!("u{}", i % 3)),
        action: actions[i % actions.len()].to_owned(),
        resource_type: if i.is_multiple_of(2) {
            "member"
        } else {
            "secret"
        }
        .to_owned(),
        resource_id: format!("r{}", i % 4),
        outcome: outcomes[i % outcomes.len()],
        request_id: Some(format!("req-{i}")),
        details: "{}".to_owned(),
        subject: None,
        personal: None,
    }
}

fn matches(f: &AuditFilter, e: &AuditRecord) -> bool {
    f.actor_id.as_ref().is_none_or(|a| &e.actor_id == a)
        && f.action_prefix
            .as_ref()
            .is_none_or(|p| e.action.starts_with(p.as_str()))
        && f.resource_type
            .as_ref()
            .is_none_or(|t| &e.resource_type == t)
        && f.resource_id.as_ref().is_none_or(|r| &e.resource_id == r)
        && f.outcome.is_none_or(|o| e.outcome == o.as_str())
        && f.since.is_none_or(|s| e.at >= s)
        && f.until.is_none_or(|u| e.at < u)
}

pub async fn audit_filters_and_cursors_return_exactly_the_right_events(f: &dyn Fixture) {
    let store = f.store();
    let clock = clock();
    let start = clock.now();
    let a = new_org(store.as_ref(), &clock, 1).await;
    let b = new_org(store.as_ref(), &clock, 2).await;
    for i in 0..40 {
        clock.advance(Duration::seconds(1));
        audit::record_tenant(
            store.as_ref(),
            &TenantScope::for_tests(a),
            &clock,
            varied(i),
        )
        .await
        .unwrap();
        if i.is_multiple_of(4) {
            audit::record_tenant(
                store.as_ref(),
                &TenantScope::for_tests(b),
                &clock,
                varied(i),
            )
            .await
            .unwrap();
        }
    }
    let all_a = events(store.as_ref(), a).await;
    let b_ids: Vec<_> = events(store.as_ref(), b)
        .await
        .iter()
        .map(|e| e.id)
        .collect();
    let filters = vec![
        AuditFilter::default(),
        AuditFilter {
            actor_id: Some("u1".into()),
            ..Default::default()
        },
        AuditFilter {
            action_prefix: Some("member.".into()),
            ..Default::default()
        },
        AuditFilter {
            action_prefix: Some("member".into()),
            ..Default::default()
        },
        AuditFilter {
            action_prefix: Some("%".into()),
            ..Default::default()
        },
        AuditFilter {
            resource_type: Some("secret".into()),
            resource_id: Some("r1".into()),
            ..Default::default()
        },
        AuditFilter {
            outcome: Some(Outcome::Denied),
            ..Default::default()
        },
        AuditFilter {
            since: Some(start + Duration::seconds(10)),
            until: Some(start + Duration::seconds(25)),
            ..Default::default()
        },
        AuditFilter {
            actor_id: Some("u2".into()),
            outcome: Some(Outcome::Success),
            since: Some(start + Duration::seconds(5)),
            ..Default::default()
        },
    ];
    for filter in filters {
        let mut expected: Vec<_> = all_a
            .iter()
            .filter(|e| matches(&filter, e))
            .map(|e| e.id)
            .collect();
        expected.reverse(); // newest first
        let mut got = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let page = audit::query(
                store.as_ref(),
                &TenantScope::for_tests(a),
                &filter,
                PageRequest::parse(cursor.as_deref(), Some(4)).unwrap(),
            )
            .await
            .unwrap();
            assert!(page.items.len() <= 4);
            assert!(
                page.items
                    .iter()
                    .all(|e| e.org_id == Some(a) && !b_ids.contains(&e.id))
            );
            got.extend(page.items.iter().map(|e| e.id));
            match page.next_cursor {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        assert_eq!(got, expected, "{filter:?}");
    }
}

pub async fn audit_erased_personal_data_is_unreadable_and_the_chain_verifies(f: &dyn Fixture) {
    use gatehouse_core::keyring::{Keyring, KeyringSettings, PersonalData};
    let store = f.store();
    let clock = Arc::new(clock());
    let keyring = Keyring::start(
        Arc::clone(&store),
        clock.clone(),
        &gatehouse_crypto::Key32::from_bytes([3; 32]),
        KeyringSettings::default(),
    )
    .await
    .unwrap();
    let org_id = new_org(store.as_ref(), &clock, 1).await;
    let scope = TenantScope::for_tests(org_id);
    let ada = PersonalData {
        ip: Some("198.51.100.23".into()),
        user_agent: Some("Firefox/140".into()),
    };
    let bob = PersonalData {
        ip: Some("203.0.113.77".into()),
        user_agent: None,
    };
    for (i, (subject, data)) in [
        ("user-ada", &ada),
        ("user-ada", &ada),
        ("user-bob", &bob),
        ("user-ada", &ada),
    ]
    .into_iter()
    .enumerate()
    {
        let mut tx = store.begin_scoped(&scope).await.unwrap();
        let sealed = keyring
            .seal_personal(tx.as_mut(), subject, data)
            .await
            .unwrap();
        let proof = audit::append_tenant(
            tx.as_mut(),
            clock.as_ref(),
            event(i).with_personal(subject, sealed),
        )
        .await
        .unwrap();
        tx.commit(proof).await.unwrap();
    }
    let stored = events(store.as_ref(), org_id).await;
    assert!(stored.iter().all(|e| {
        !e.personal
            .as_ref()
            .unwrap()
            .windows(13)
            .any(|w| w == b"198.51.100.23")
    }));
    let mut tx = store.begin_scoped(&scope).await.unwrap();
    for e in &stored {
        let subject = e.subject.as_deref().unwrap();
        let opened = keyring
            .open_personal(tx.as_mut(), subject, e.personal.as_ref().unwrap())
            .await
            .unwrap();
        assert_eq!(
            opened.as_ref(),
            Some(if subject == "user-ada" { &ada } else { &bob })
        );
    }
    // Erase Ada, in a transaction with its own event.
    assert!(
        keyring
            .erase_subject(tx.as_mut(), "user-ada")
            .await
            .unwrap()
    );
    let proof = audit::append_tenant(
        tx.as_mut(),
        clock.as_ref(),
        AuditEvent::success(
            Actor::system("privacy"),
            "subject.erased",
            "subject",
            "user-ada",
        ),
    )
    .await
    .unwrap();
    tx.commit(proof).await.unwrap();
    let mut tx = store.begin_scoped(&scope).await.unwrap();
    for e in &stored {
        let subject = e.subject.as_deref().unwrap();
        let opened = keyring
            .open_personal(tx.as_mut(), subject, e.personal.as_ref().unwrap())
            .await
            .unwrap();
        match subject {
            "user-ada" => assert_eq!(opened, None, "erased data must not open"),
            _ => assert_eq!(opened.as_ref(), Some(&bob)),
        }
    }
    drop(tx);
    assert_eq!(
        audit::verify_org(store.as_ref(), &keyring, &scope)
            .await
            .unwrap(),
        Ok(5)
    );
}

pub async fn audit_truncation_after_a_signed_checkpoint_is_detected(f: &dyn Fixture) {
    let store = f.store();
    let clock = clock();
    let k = keyring(&store).await;
    let cut = chain_of_six(store.as_ref(), &clock, 1).await;
    let forged = chain_of_six(store.as_ref(), &clock, 2).await;
    for org in [cut, forged] {
        let c = audit::checkpoint_org(store.as_ref(), &k, &clock, org)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(c.seq, 6);
        // Nothing new: no second checkpoint.
        assert!(
            audit::checkpoint_org(store.as_ref(), &k, &clock, org)
                .await
                .unwrap()
                .is_none()
        );
        assert_eq!(
            audit::verify_org(store.as_ref(), &k, &TenantScope::for_tests(org))
                .await
                .unwrap(),
            Ok(6)
        );
    }
    // Remove the last event and wind the head back consistently: without the checkpoint this
    // would look like an intact chain of five.
    let cut_events = events(store.as_ref(), cut).await;
    let e5 = f.uuid_literal(&cut_events[4].id.simple().to_string());
    let e6 = f.uuid_literal(&cut_events[5].id.simple().to_string());
    let org_lit = f.uuid_literal(&cut.as_uuid().simple().to_string());
    f.tamper(&[
        &format!("DELETE FROM audit_events WHERE id = {e6}"),
        &format!(
            "UPDATE audit_heads SET seq = 5, hash = (SELECT hash FROM audit_events WHERE id = {e5}) \
             WHERE org_id = {org_lit}"
        ),
    ])
    .await;
    let e = audit::verify_org(store.as_ref(), &k, &TenantScope::for_tests(cut))
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(e.seq, 6, "{e}");
    assert!(e.reason.contains("removed after the checkpoint"), "{e}");
    // A checkpoint edited to match edited events fails its signature.
    let forged_lit = f.uuid_literal(&forged.as_uuid().simple().to_string());
    f.tamper(&[&format!(
        "UPDATE audit_checkpoints SET seq = 5 WHERE org_id = {forged_lit}"
    )])
    .await;
    let e = audit::verify_org(store.as_ref(), &k, &TenantScope::for_tests(forged))
        .await
        .unwrap()
        .unwrap_err();
    assert!(e.reason.contains("not genuine"), "{e}");
}

/// Issue 20: an erased organisation's chain goes with it, and nothing starts a new one after
/// (an event queued before the erasure is refused, not written as an orphan chain).
pub async fn audit_an_erased_organisation_gets_no_new_chain(f: &dyn Fixture) {
    let store = f.store();
    let clock = clock();
    let gone = chain_of_six(store.as_ref(), &clock, 1).await;
    let kept = chain_of_six(store.as_ref(), &clock, 2).await;
    let tx = store.begin().await.unwrap();
    let mut tx = tx.enter(&TenantScope::for_tests(gone)).await.unwrap();
    tx.erase_organization().await.unwrap();
    tx.commit(gatehouse_core::audit::Audited::for_tests())
        .await
        .unwrap();
    assert!(events(store.as_ref(), gone).await.is_empty());
    let late = audit::record_tenant(
        store.as_ref(),
        &TenantScope::for_tests(gone),
        &clock,
        event(7),
    )
    .await;
    assert!(
        late.is_err(),
        "an event was written for an erased organisation"
    );
    assert!(events(store.as_ref(), gone).await.is_empty());
    // Another organisation's chain is whole and goes on.
    assert_eq!(events(store.as_ref(), kept).await.len(), 6);
    record(store.as_ref(), &clock, kept, 7).await;
    assert_eq!(events(store.as_ref(), kept).await.len(), 7);
}
