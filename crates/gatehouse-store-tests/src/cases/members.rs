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
