//! The contract of `MemberStore` (core's `store/members.rs`): a membership is unique per user and
//! organisation, and owners are locked, roles changed and members removed only within their own
//! organisation. The case on custom roles (`CustomRoleStore`, `roles.rs`) and invitations
//! (`InvitationStore`, `invitations.rs`) is here too: it checks them with the owners, scope by
//! scope, and its last assertions are on memberships.

use std::sync::Arc;

use gatehouse_core::audit::Audited;
use gatehouse_core::store::{CustomRoleRecord, InvitationRecord, Role, Store};
use gatehouse_core::{Clock, StoreError, TenantScope};
use time::Duration;

use crate::cases::{clock, seed};
use crate::data::member;

pub async fn duplicate_membership_is_a_conflict(store: Arc<dyn Store>) {
    let clock = clock();
    let (a, owner) = seed(store.as_ref(), &clock, 1).await[0];
    let mut tx = store
        .begin_scoped(&TenantScope::for_tests(a))
        .await
        .unwrap();
    let again = tx
        .insert_membership(&member(a, owner, Role::Viewer, clock.now()))
        .await;
    assert!(matches!(again, Err(StoreError::Duplicate)), "{again:?}");
}

pub async fn identity_roles_invitations_and_owners_are_scoped(store: Arc<dyn Store>) {
    let clock = clock();
    let seeded = seed(store.as_ref(), &clock, 2).await;
    let ((a, owner_a), (b, _)) = (seeded[0], seeded[1]);
    let role = CustomRoleRecord {
        org_id: a,
        name: "auditor".into(),
        permissions: vec!["org.read".into(), "audit.read".into()],
        created_at: clock.now(),
    };
    let invitation = InvitationRecord {
        id: gatehouse_core::ids::new_uuid(&clock),
        org_id: a,
        email: "new@example.com".into(),
        role: "auditor".into(),
        token_hash: vec![9; 32],
        invited_by: owner_a,
        created_at: clock.now(),
        expires_at: clock.now() + Duration::days(1),
        accepted_at: None,
    };
    let mut tx = store
        .begin_scoped(&TenantScope::for_tests(a))
        .await
        .unwrap();
    tx.insert_custom_role(&role).await.unwrap();
    tx.commit(Audited::for_tests()).await.unwrap();
    // (A failed statement ends a PostgreSQL transaction: the duplicate gets its own.)
    let mut tx = store
        .begin_scoped(&TenantScope::for_tests(a))
        .await
        .unwrap();
    assert!(matches!(
        tx.insert_custom_role(&role).await,
        Err(StoreError::Duplicate)
    ));
    drop(tx);
    let mut tx = store
        .begin_scoped(&TenantScope::for_tests(a))
        .await
        .unwrap();
    tx.insert_invitation(&invitation).await.unwrap();
    assert_eq!(tx.custom_role("auditor").await.unwrap(), Some(role.clone()));
    assert_eq!(tx.lock_owners().await.unwrap(), vec![owner_a]);
    assert!(tx.set_member_role(owner_a, &Role::Admin).await.unwrap());
    assert!(tx.lock_owners().await.unwrap().is_empty());
    tx.commit(Audited::for_tests()).await.unwrap();

    // Organisation b sees none of it, and cannot write a's rows.
    let mut tx = store
        .begin_scoped(&TenantScope::for_tests(b))
        .await
        .unwrap();
    assert!(tx.custom_roles().await.unwrap().is_empty());
    assert!(tx.invitation_by_token(&[9; 32]).await.unwrap().is_none());
    assert!(
        !tx.accept_invitation(invitation.id, clock.now())
            .await
            .unwrap()
    );
    assert!(!tx.set_member_role(owner_a, &Role::Owner).await.unwrap());
    assert!(!tx.delete_membership(owner_a).await.unwrap());
    assert!(tx.insert_custom_role(&role).await.is_err());
    drop(tx);

    let mut tx = store
        .begin_scoped(&TenantScope::for_tests(a))
        .await
        .unwrap();
    let found = tx.invitation_by_token(&[9; 32]).await.unwrap().unwrap();
    assert_eq!(found, invitation);
    assert!(
        tx.accept_invitation(invitation.id, clock.now())
            .await
            .unwrap()
    );
    assert!(
        !tx.accept_invitation(invitation.id, clock.now())
            .await
            .unwrap()
    );
    assert_eq!(
        tx.membership(owner_a).await.unwrap().unwrap().role,
        Role::Admin
    );
    assert!(tx.delete_membership(owner_a).await.unwrap());
    assert!(tx.membership(owner_a).await.unwrap().is_none());
}

/// Pending invitations page in creation order, without accepted or expired ones; a revoked
/// (deleted) one is gone, an accepted one cannot be revoked, and another organisation can do
/// neither.
pub async fn pending_invitations_page_and_revoke_within_their_scope(store: Arc<dyn Store>) {
    let clock = clock();
    let seeded = seed(store.as_ref(), &clock, 2).await;
    let ((a, owner_a), (b, _)) = (seeded[0], seeded[1]);
    let now = clock.now();
    let invitation = |n: u8, expires: Duration| InvitationRecord {
        id: uuid::Uuid::from_u128(u128::from(n) + 1000),
        org_id: a,
        email: format!("p{n}@example.com"),
        role: "member".into(),
        token_hash: vec![n; 32],
        invited_by: owner_a,
        created_at: now + Duration::seconds(i64::from(n)),
        expires_at: now + expires,
        accepted_at: None,
    };
    let mut tx = store
        .begin_scoped(&TenantScope::for_tests(a))
        .await
        .unwrap();
    for n in 1..=4 {
        tx.insert_invitation(&invitation(n, Duration::days(1)))
            .await
            .unwrap();
    }
    // One already expired, one accepted: neither is pending.
    tx.insert_invitation(&invitation(5, Duration::seconds(-1)))
        .await
        .unwrap();
    let accepted = invitation(6, Duration::days(1));
    tx.insert_invitation(&accepted).await.unwrap();
    assert!(tx.accept_invitation(accepted.id, now).await.unwrap());
    tx.commit(Audited::for_tests()).await.unwrap();

    let mut tx = store
        .begin_scoped(&TenantScope::for_tests(a))
        .await
        .unwrap();
    let mut seen = Vec::new();
    let mut page = gatehouse_core::PageRequest::parse(None, Some(3)).unwrap();
    loop {
        let got = tx.pending_invitations(now, page).await.unwrap();
        seen.extend(got.items.iter().map(|i| i.email.clone()));
        match got.next_cursor {
            Some(c) => page = gatehouse_core::PageRequest::parse(Some(&c), Some(3)).unwrap(),
            None => break,
        }
    }
    assert_eq!(
        seen,
        [
            "p1@example.com",
            "p2@example.com",
            "p3@example.com",
            "p4@example.com"
        ]
    );
    assert!(!tx.delete_invitation(accepted.id).await.unwrap());
    drop(tx);

    let mut tx = store
        .begin_scoped(&TenantScope::for_tests(b))
        .await
        .unwrap();
    assert!(
        tx.pending_invitations(now, page)
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert!(
        !tx.delete_invitation(invitation(1, Duration::days(1)).id)
            .await
            .unwrap()
    );
    drop(tx);

    let mut tx = store
        .begin_scoped(&TenantScope::for_tests(a))
        .await
        .unwrap();
    assert!(
        tx.delete_invitation(invitation(1, Duration::days(1)).id)
            .await
            .unwrap()
    );
    let first = gatehouse_core::PageRequest::parse(None, Some(10)).unwrap();
    assert_eq!(
        tx.pending_invitations(now, first)
            .await
            .unwrap()
            .items
            .len(),
        3
    );
}
