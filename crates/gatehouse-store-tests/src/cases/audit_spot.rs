//! Core's bounded audit spot check (`audit::spot_check`, E1's self-check in the posture report) on
//! a real store: intact chains pass, a chain tampered at its newest event, at its signed event or
//! behind its head is named, the rotation comes round to every chain, and the caps hold. It reads
//! through `AuditStore::recent_audit_checkpoints`, its operators' counterpart and
//! `OrganizationStore::organization_ids_from`, whose bounds these cases hold too.

use std::sync::Arc;

use gatehouse_core::audit::{self, AuditChain, SpotCheck};
use gatehouse_core::store::Store;
use gatehouse_core::{Clock, FakeClock, OrgId, TenantScope};
use time::Duration;

use crate::Fixture;
use crate::cases::audit::{chain_of_six, clock, event, events, keyring, new_org, record};

async fn checkpoint(store: &Arc<dyn Store>, clock: &FakeClock, org: OrgId) {
    let k = keyring(store).await;
    let c = audit::checkpoint_org(store.as_ref(), &k, clock, org)
        .await
        .unwrap();
    assert!(c.is_some(), "nothing to checkpoint");
}

async fn checkpoint_operators(store: &Arc<dyn Store>, clock: &FakeClock) {
    let k = keyring(store).await;
    let c = audit::checkpoint_operators(store.as_ref(), &k, clock)
        .await
        .unwrap();
    assert!(c.is_some(), "nothing to checkpoint");
}

async fn operator_events(store: &dyn Store, clock: &FakeClock, n: usize) {
    for i in 0..n {
        audit::record_operator(store, clock, event(100 + i))
            .await
            .unwrap();
    }
}

async fn spot(
    store: &Arc<dyn Store>,
    clock: &FakeClock,
    start: usize,
    max_chains: usize,
    max_events: u32,
) -> SpotCheck {
    let k = keyring(store).await;
    audit::spot_check(store.as_ref(), &k, clock, start, max_chains, max_events)
        .await
        .unwrap()
}

fn orgs(chains: &[AuditChain]) -> Vec<OrgId> {
    chains
        .iter()
        .filter_map(|c| match c {
            AuditChain::Organization(o) => Some(*o),
            AuditChain::Operators => None,
        })
        .collect()
}

/// Five organisations' chains of six events, in id order.
async fn five_chains(store: &dyn Store, clock: &FakeClock) -> Vec<OrgId> {
    let mut out = Vec::new();
    for n in 0..5 {
        out.push(chain_of_six(store, clock, n).await);
        clock.advance(Duration::milliseconds(1));
    }
    out.sort();
    out
}

pub async fn audit_spot_check_passes_intact_chains_and_comes_round_to_every_chain(f: &dyn Fixture) {
    let store = f.store();
    let clock = clock();
    operator_events(store.as_ref(), &clock, 3).await;
    let o = five_chains(store.as_ref(), &clock).await;
    // Checkpoints an hour apart, o[0]'s first; o[3] has none.
    let start = clock.now();
    for org in [o[0], o[1], o[2], o[4]] {
        checkpoint(&store, &clock, org).await;
        clock.advance(Duration::hours(1));
    }
    checkpoint_operators(&store, &clock).await;
    operator_events(store.as_ref(), &clock, 1).await;
    record(store.as_ref(), &clock, o[1], 7).await;
    record(store.as_ref(), &clock, o[1], 8).await;
    clock.advance(Duration::hours(1) + Duration::minutes(7));

    let all = spot(&store, &clock, 0, 10, 100).await;
    assert!(all.failures.is_empty(), "{:?}", all.failures);
    assert_eq!(all.checked.first(), Some(&AuditChain::Operators));
    assert_eq!(orgs(&all.checked), o);
    assert_eq!((all.chains_checked(), all.chains_total), (6, 6));
    assert_eq!(all.without_checkpoint, vec![AuditChain::Organization(o[3])]);
    assert!(all.capped.is_empty());
    assert_eq!(
        all.oldest_checkpoint,
        Some((AuditChain::Organization(o[0]), clock.now() - start))
    );
    // Operators: the signed event and the one after; o[1]: its signed event and two more; o[3]
    // (unsigned): all six; the others: their signed event.
    assert_eq!(all.events_recomputed, 2 + 1 + 3 + 1 + 6 + 1);
    assert_eq!(all.next_start, 0);

    // Two organisations a run: three runs come round to all five, in id order.
    let mut visited = Vec::new();
    let mut at = 0;
    for expected_next in [2, 4, 1] {
        let s = spot(&store, &clock, at, 2, 100).await;
        assert!(s.failures.is_empty(), "{:?}", s.failures);
        assert_eq!(s.checked.first(), Some(&AuditChain::Operators));
        assert_eq!(s.chains_checked(), 3);
        assert_eq!(s.next_start, expected_next);
        visited.extend(orgs(&s.checked));
        at = s.next_start;
    }
    assert_eq!(visited, vec![o[0], o[1], o[2], o[3], o[4], o[0]]);
    // The oldest checkpoint is among the chains checked: o[0]'s is not among o[1] and o[2].
    let middle = spot(&store, &clock, 1, 2, 100).await;
    assert_eq!(
        middle.oldest_checkpoint,
        Some((
            AuditChain::Organization(o[1]),
            clock.now() - start - Duration::hours(1)
        ))
    );
    // A start past the end wraps round; no organisation is checked twice in one run.
    let wrapped = spot(&store, &clock, 8, 10, 100).await;
    assert_eq!(orgs(&wrapped.checked), vec![o[3], o[4], o[0], o[1], o[2]]);
    assert_eq!(wrapped.next_start, 3);
    // No organisations asked for: the operators' chain alone.
    let none = spot(&store, &clock, 4, 0, 100).await;
    assert_eq!(
        (none.checked, none.next_start),
        (vec![AuditChain::Operators], 4)
    );
}

/// A bytes literal in the fixture's SQL dialect.
fn bytes_literal(store: &dyn Store, bytes: &[u8]) -> String {
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    if store.backend() == "postgres" {
        format!("'\\x{hex}'::bytea")
    } else {
        format!("X'{hex}'")
    }
}

pub async fn audit_spot_check_names_each_tampered_chain(f: &dyn Fixture) {
    let store = f.store();
    let clock = clock();
    let o = five_chains(store.as_ref(), &clock).await;
    let intact = chain_of_six(store.as_ref(), &clock, 9).await;
    // Two checkpoints, the older one then deleted: the newest one's signature covers it.
    let unchained = chain_of_six(store.as_ref(), &clock, 10).await;
    checkpoint(&store, &clock, unchained).await;
    record(store.as_ref(), &clock, unchained, 7).await;
    let [newest, signed, rehashed, wound, unsigned] = [o[0], o[1], o[2], o[3], o[4]];
    for org in [newest, signed, rehashed, wound, intact, unchained] {
        checkpoint(&store, &clock, org).await;
    }
    record(store.as_ref(), &clock, newest, 7).await;
    record(store.as_ref(), &clock, newest, 8).await;
    operator_events(store.as_ref(), &clock, 2).await;
    checkpoint_operators(&store, &clock).await;
    operator_events(store.as_ref(), &clock, 1).await;
    // Before any tampering, every chain passes.
    let before = spot(&store, &clock, 0, 10, 100).await;
    assert!(before.failures.is_empty(), "{:?}", before.failures);

    let id = |e: &gatehouse_core::audit::AuditRecord| f.uuid_literal(&e.id.simple().to_string());
    let org_lit = |o: OrgId| f.uuid_literal(&o.as_uuid().simple().to_string());
    let newest_events = events(store.as_ref(), newest).await;
    let signed_events = events(store.as_ref(), signed).await;
    let wound_events = events(store.as_ref(), wound).await;
    let unsigned_events = events(store.as_ref(), unsigned).await;
    // Edited and hashed again, with the head moved to match: only the signature can tell.
    let mut forged = events(store.as_ref(), rehashed).await[5].clone();
    forged.details = "{\"n\":99}".into();
    let forged_hash = bytes_literal(store.as_ref(), &audit::chain::hash(&forged));
    let mut op_tx = store.begin().await.unwrap();
    let op_newest = op_tx
        .operator_audit_events(0, 1000)
        .await
        .unwrap()
        .pop()
        .unwrap();
    drop(op_tx);
    let unlock_operators = if store.backend() == "postgres" {
        "ALTER TABLE operator_audit_events DISABLE TRIGGER USER".to_owned()
    } else {
        "DROP TRIGGER IF EXISTS operator_audit_events_no_update".to_owned()
    };
    f.tamper(&[
        &format!(
            "UPDATE audit_events SET details = '{{\"n\":99}}' WHERE id = {}",
            id(&newest_events[7])
        ),
        &format!(
            "UPDATE audit_events SET details = '{{\"n\":99}}' WHERE id = {}",
            id(&signed_events[5])
        ),
        &format!(
            "UPDATE audit_events SET details = '{{\"n\":99}}', hash = {forged_hash} WHERE id = {}",
            f.uuid_literal(&forged.id.simple().to_string())
        ),
        &format!(
            "UPDATE audit_heads SET hash = {forged_hash} WHERE org_id = {}",
            org_lit(rehashed)
        ),
        &format!(
            "DELETE FROM audit_events WHERE id = {}",
            id(&wound_events[5])
        ),
        &format!(
            "UPDATE audit_heads SET seq = 5, hash = (SELECT hash FROM audit_events WHERE id = {}) \
             WHERE org_id = {}",
            id(&wound_events[4]),
            org_lit(wound)
        ),
        &format!(
            "UPDATE audit_events SET details = '{{\"n\":99}}' WHERE id = {}",
            id(&unsigned_events[5])
        ),
        &format!(
            "DELETE FROM audit_checkpoints WHERE org_id = {} AND seq = 6",
            org_lit(unchained)
        ),
        &unlock_operators,
        &format!(
            "UPDATE operator_audit_events SET details = '{{\"n\":99}}' WHERE id = {}",
            f.uuid_literal(&op_newest.id.simple().to_string())
        ),
    ])
    .await;

    let s = spot(&store, &clock, 0, 10, 100).await;
    assert_eq!(s.chains_checked(), 8);
    let why = |chain: AuditChain| {
        s.failures
            .iter()
            .find(|f| f.chain == chain)
            .map(|f| f.reason.clone())
            .unwrap_or_else(|| panic!("{chain} was not named: {:?}", s.failures))
    };
    let org = AuditChain::Organization;
    let r = why(org(newest));
    assert!(r.contains("seq 8") && r.contains("modified"), "{r}");
    let r = why(org(signed));
    assert!(r.contains("seq 6") && r.contains("modified"), "{r}");
    let r = why(org(rehashed));
    assert!(
        r.contains("differs from what the newest signed checkpoint"),
        "{r}"
    );
    let r = why(org(wound));
    assert!(r.contains("head says seq 5"), "{r}");
    let r = why(org(unsigned));
    assert!(r.contains("seq 6") && r.contains("modified"), "{r}");
    let r = why(org(unchained));
    assert!(r.contains("seq 7") && r.contains("not genuine"), "{r}");
    let r = why(AuditChain::Operators);
    let at = format!("seq {}", op_newest.seq);
    assert!(r.contains(&at) && r.contains("modified"), "{r}");
    assert_eq!(s.failures.len(), 7, "{:?}", s.failures);
    assert!(!s.failures.iter().any(|f| f.chain == org(intact)));
    // The full verification agrees about the forged one.
    let k = keyring(&store).await;
    let full = audit::verify_org(store.as_ref(), &k, &TenantScope::for_tests(rehashed))
        .await
        .unwrap();
    assert!(full.is_err(), "{full:?}");
}

pub async fn audit_spot_check_keeps_to_its_caps(f: &dyn Fixture) {
    let store = f.store();
    let clock = clock();
    let long = chain_of_six(store.as_ref(), &clock, 1).await;
    checkpoint(&store, &clock, long).await;
    // The keyring's own events are on the operators' chain; signed, they leave one to recompute.
    checkpoint_operators(&store, &clock).await;
    for n in 7..=16 {
        record(store.as_ref(), &clock, long, n).await;
    }
    let unsigned = chain_of_six(store.as_ref(), &clock, 2).await;
    let mut ids = [long, unsigned];
    ids.sort();

    // Four events a chain: from the signed event (seq 6) to seq 9 of the long chain, short of its
    // head at 16, and said to be; the newest four of the unsigned chain.
    let s = spot(&store, &clock, 0, 10, 4).await;
    assert!(s.failures.is_empty(), "{:?}", s.failures);
    assert_eq!(s.capped, vec![AuditChain::Organization(long)]);
    assert_eq!(
        s.without_checkpoint,
        vec![AuditChain::Organization(unsigned)]
    );
    assert_eq!(s.events_recomputed, 1 + 4 + 4);
    // Enough events: the long chain is checked to its head.
    let s = spot(&store, &clock, 0, 10, 11).await;
    assert!(s.capped.is_empty() && s.failures.is_empty(), "{s:?}");
    assert_eq!(s.events_recomputed, 1 + 11 + 6);
    // One organisation a run, whatever their number.
    let s = spot(&store, &clock, 0, 1, 100).await;
    assert_eq!(orgs(&s.checked), vec![ids[0]]);
    assert_eq!((s.chains_total, s.next_start), (3, 1));

    // The store's bounded reads themselves.
    let mut tx = store.begin().await.unwrap();
    assert_eq!(tx.count_organizations().await.unwrap(), 2);
    assert_eq!(tx.organization_ids_from(1, 5).await.unwrap(), vec![ids[1]]);
    assert!(tx.organization_ids_from(2, 5).await.unwrap().is_empty());
    assert_eq!(tx.organization_ids_from(0, 1).await.unwrap(), vec![ids[0]]);
    drop(tx);
    record(store.as_ref(), &clock, long, 17).await;
    checkpoint(&store, &clock, long).await;
    record(store.as_ref(), &clock, long, 18).await;
    checkpoint(&store, &clock, long).await;
    let mut tx = store
        .begin_scoped(&TenantScope::for_tests(long))
        .await
        .unwrap();
    let all = tx.audit_checkpoints().await.unwrap();
    let recent = tx.recent_audit_checkpoints(2).await.unwrap();
    assert_eq!(
        all.iter().map(|c| c.seq).collect::<Vec<_>>(),
        vec![6, 17, 18]
    );
    assert_eq!(recent, all[1..].to_vec());
    assert_eq!(tx.recent_audit_checkpoints(10).await.unwrap(), all);
}

pub async fn audit_spot_check_names_an_organisation_whose_chain_is_empty(f: &dyn Fixture) {
    let store = f.store();
    let clock = clock();
    let full = chain_of_six(store.as_ref(), &clock, 1).await;
    // An organisation row with nothing in its chain: what deleting the chain whole leaves.
    let bare = new_org(store.as_ref(), &clock, 2).await;
    let s = spot(&store, &clock, 0, 10, 100).await;
    assert!(s.failures.is_empty(), "{:?}", s.failures);
    assert_eq!(s.empty, vec![AuditChain::Organization(bare)]);
    assert!(s.checked.contains(&AuditChain::Organization(full)));
}
