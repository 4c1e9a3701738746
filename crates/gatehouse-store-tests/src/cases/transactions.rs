//! Transactions and tenant isolation across roles (core's `Store`, `PlatformTx` and `TenantTx` in
//! `store/mod.rs`): the store answers, a dropped transaction leaves nothing, reads never wait for
//! the writer, a scope never reads or writes another tenant's rows (also under random sequences
//! of operations), and pages walk every row once.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use gatehouse_core::audit::Audited;
use gatehouse_core::page::PageRequest;
use gatehouse_core::store::{Role, Store};
use gatehouse_core::{Clock, OrgId, TenantScope, UserId};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;
use time::Duration;

use crate::cases::{clock, seed};
use crate::data::{member, user};

pub async fn ping_answers(store: Arc<dyn Store>) {
    store.ping().await.unwrap();
}

pub async fn dropped_transaction_leaves_nothing(store: Arc<dyn Store>) {
    let clock = clock();
    let u = user(&clock, "ghost@example.com");
    {
        let mut tx = store.begin().await.unwrap();
        tx.insert_user(&u).await.unwrap();
        // dropped without commit
    }
    let mut tx = store.begin().await.unwrap();
    assert_eq!(tx.user_by_id(u.id).await.unwrap(), None);
}

/// Lookups on the request path (an API key or session missing from its cache, the account at
/// sign-in) read while a writer holds its turn, and see only what was committed.
pub async fn reads_do_not_wait_for_a_writer(store: Arc<dyn Store>) {
    let clock = clock();
    let seeded = seed(store.as_ref(), &clock, 1).await;
    let (o, owner) = seeded[0];
    let mut writer = store.begin().await.unwrap();
    let pending = user(&clock, "pending@example.com");
    writer.insert_user(&pending).await.unwrap();
    let read = async {
        let mut tx = store.begin_read().await.unwrap();
        let owner_found = tx.user_by_id(owner).await.unwrap().map(|u| u.id);
        let pending_found = tx.user_by_id(pending.id).await.unwrap();
        let mut tx = tx.enter(&TenantScope::for_tests(o)).await.unwrap();
        let member = tx.membership(owner).await.unwrap().is_some();
        let scoped = store
            .begin_read_scoped(&TenantScope::for_tests(o))
            .await
            .unwrap()
            .membership(owner)
            .await
            .unwrap()
            .is_some();
        (owner_found, pending_found, member, scoped)
    };
    // A bound, not a speed figure: waiting for the writer would take until it ends (never here).
    let (owner_found, pending_found, member, scoped) =
        tokio::time::timeout(std::time::Duration::from_secs(10), read)
            .await
            .expect("a read waited for the writer");
    assert_eq!(owner_found, Some(owner));
    assert_eq!(pending_found, None, "an uncommitted row is not read");
    assert!(member && scoped, "the owner's membership is read in scope");
    writer.commit(Audited::for_tests()).await.unwrap();
}

pub async fn scoped_reads_never_cross_tenants(store: Arc<dyn Store>) {
    let clock = clock();
    let seeded = seed(store.as_ref(), &clock, 2).await;
    let ((a, owner_a), (b, owner_b)) = (seeded[0], seeded[1]);

    let mut tx = store
        .begin_scoped(&TenantScope::for_tests(a))
        .await
        .unwrap();
    assert!(tx.membership(owner_b).await.unwrap().is_none());
    assert!(tx.membership(owner_a).await.unwrap().is_some());
    let page = tx
        .list_memberships(PageRequest::parse(None, None).unwrap())
        .await
        .unwrap();
    assert_eq!(page.items.len(), 1);
    assert!(page.items.iter().all(|m| m.org_id == a));
    // SQLite runs one writer at a time: end this transaction before starting the next.
    drop(tx);

    let mut tx = store
        .begin_scoped(&TenantScope::for_tests(b))
        .await
        .unwrap();
    assert!(tx.membership(owner_a).await.unwrap().is_none());
}

pub async fn scoped_write_for_another_org_is_refused(store: Arc<dyn Store>) {
    let clock = clock();
    let seeded = seed(store.as_ref(), &clock, 2).await;
    let ((a, _), (b, owner_b)) = (seeded[0], seeded[1]);
    let mut tx = store
        .begin_scoped(&TenantScope::for_tests(a))
        .await
        .unwrap();
    let refused = tx
        .insert_membership(&member(b, owner_b, Role::Admin, clock.now()))
        .await;
    assert!(refused.is_err());
    drop(tx);
    let mut tx = store
        .begin_scoped(&TenantScope::for_tests(b))
        .await
        .unwrap();
    assert_eq!(
        tx.membership(owner_b).await.unwrap().unwrap().role,
        Role::Owner
    );
}

pub async fn pagination_walks_every_row_once(store: Arc<dyn Store>) {
    let clock = clock();
    let (a, owner) = seed(store.as_ref(), &clock, 1).await[0];
    let mut expected = vec![owner];
    let mut tx = store.begin().await.unwrap();
    let mut users = Vec::new();
    for i in 0..9 {
        let u = user(&clock, &format!("m{i}@example.com"));
        tx.insert_user(&u).await.unwrap();
        users.push(u);
    }
    let mut tx = tx.enter(&TenantScope::for_tests(a)).await.unwrap();
    for (i, u) in users.iter().enumerate() {
        // Groups of three share a timestamp, so ties must be broken by id.
        if i % 3 == 0 {
            clock.advance(Duration::microseconds(1));
        }
        tx.insert_membership(&member(a, u.id, Role::Member, clock.now()))
            .await
            .unwrap();
    }
    tx.commit(Audited::for_tests()).await.unwrap();
    let mut tied: Vec<_> = users.iter().map(|u| u.id).collect();
    for chunk in tied.chunks_mut(3) {
        chunk.sort();
    }
    expected.extend(tied);

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut tx = store
            .begin_scoped(&TenantScope::for_tests(a))
            .await
            .unwrap();
        let page = tx
            .list_memberships(PageRequest::parse(cursor.as_deref(), Some(4)).unwrap())
            .await
            .unwrap();
        assert!(page.items.len() <= 4);
        seen.extend(page.items.iter().map(|m| m.user_id));
        pages += 1;
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, expected);
}

#[derive(Debug, Clone)]
enum Op {
    /// Add a new user to organisation `org % n`.
    Join { org: usize, role: u8 },
    /// Try to add an existing member of `org` again: must be refused, change nothing.
    Rejoin { org: usize },
    /// Try, from `from`'s scope, to write a membership for `to`: must be refused.
    CrossWrite { from: usize, to: usize },
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0usize..3, 0u8..4).prop_map(|(org, role)| Op::Join { org, role }),
        1 => (0usize..3).prop_map(|org| Op::Rejoin { org }),
        1 => (0usize..3, 0usize..3).prop_map(|(from, to)| Op::CrossWrite { from, to }),
    ]
}

/// Random sequences of operations over three tenants, checked against a model after each
/// sequence: every scope sees exactly its own members and nothing of the others.
pub async fn random_operations_stay_isolated(store: Arc<dyn Store>) {
    let clock = clock();
    let orgs = seed(store.as_ref(), &clock, 3).await;
    let mut model: BTreeMap<OrgId, BTreeSet<UserId>> = orgs
        .iter()
        .map(|(o, u)| (*o, BTreeSet::from([*u])))
        .collect();
    let mut runner = TestRunner::deterministic();
    let roles = [Role::Owner, Role::Admin, Role::Member, Role::Viewer];
    let mut n = 0usize;
    for _ in 0..4 {
        let ops = proptest::collection::vec(op_strategy(), 1..25)
            .new_tree(&mut runner)
            .unwrap()
            .current();
        for op in ops {
            clock.advance(Duration::microseconds(7));
            match op {
                Op::Join { org: i, role } => {
                    let (o, _) = orgs[i];
                    n += 1;
                    let u = user(&clock, &format!("p{n}@example.com"));
                    let mut tx = store.begin().await.unwrap();
                    tx.insert_user(&u).await.unwrap();
                    let mut tx = tx.enter(&TenantScope::for_tests(o)).await.unwrap();
                    tx.insert_membership(&member(
                        o,
                        u.id,
                        roles[usize::from(role)].clone(),
                        clock.now(),
                    ))
                    .await
                    .unwrap();
                    tx.commit(Audited::for_tests()).await.unwrap();
                    model.get_mut(&o).unwrap().insert(u.id);
                }
                Op::Rejoin { org: i } => {
                    let (o, owner) = orgs[i];
                    let mut tx = store
                        .begin_scoped(&TenantScope::for_tests(o))
                        .await
                        .unwrap();
                    assert!(
                        tx.insert_membership(&member(o, owner, Role::Viewer, clock.now()))
                            .await
                            .is_err()
                    );
                }
                Op::CrossWrite { from, to } => {
                    if from == to {
                        continue;
                    }
                    let (a, _) = orgs[from];
                    let (b, owner_b) = orgs[to];
                    let mut tx = store
                        .begin_scoped(&TenantScope::for_tests(a))
                        .await
                        .unwrap();
                    assert!(
                        tx.insert_membership(&member(b, owner_b, Role::Admin, clock.now()))
                            .await
                            .is_err()
                    );
                }
            }
        }
        for (o, members) in &model {
            let mut tx = store
                .begin_scoped(&TenantScope::for_tests(*o))
                .await
                .unwrap();
            let listed: BTreeSet<UserId> = tx
                .list_memberships(PageRequest::parse(None, Some(200)).unwrap())
                .await
                .unwrap()
                .items
                .iter()
                .map(|m| {
                    assert_eq!(m.org_id, *o);
                    m.user_id
                })
                .collect();
            assert_eq!(&listed, members);
            for (other, their) in &model {
                if other == o {
                    continue;
                }
                for u in their {
                    assert!(tx.membership(*u).await.unwrap().is_none());
                }
            }
        }
    }
}
