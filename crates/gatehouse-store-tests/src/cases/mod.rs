//! The cases, one file per store role, named as core's `store/<role>.rs` and each backend's
//! `src/<role>.rs`, so a role's trait, its implementations and its contract compare file by file.
//! Each case states one promise every backend keeps. Cases on transactions and tenant isolation
//! across roles are in `transactions`; the keyring's cross-role case, and the helpers its cases
//! share, in `keyring`; core's audit spot check over the audit and organisation roles in
//! `audit_spot`; the rate limiter and the lockouts (not stores) in `limiter` and `lockouts`. This module holds the
//! helpers the roles share: the clock and the seeded organisations and users.

pub mod api_keys;
pub mod apps;
pub mod audit;
pub mod audit_spot;
pub mod connectors;
pub mod grants;
pub mod housekeeping;
pub mod key_material;
pub mod keyring;
pub mod limiter;
pub mod lockouts;
pub mod members;
pub mod oauth_states;
pub mod one_time_tokens;
pub mod operators;
pub mod org_keys;
pub mod organizations;
pub mod outbox;
pub mod records;
pub mod sealed_fields;
pub mod second_factor;
pub mod secrets;
pub mod sessions;
pub mod share_links;
pub mod sso;
pub mod transactions;
pub mod users;
pub mod webhooks;

use gatehouse_core::audit::Audited;
use gatehouse_core::store::{Role, Store, UserRecord};
use gatehouse_core::{Clock, FakeClock, OrgId, TenantScope, UserId};
use time::{Duration, OffsetDateTime};

use crate::data::{member, org, user};

pub(crate) fn clock() -> FakeClock {
    // A time with a non-zero microsecond part, to catch precision loss.
    FakeClock::at(
        OffsetDateTime::UNIX_EPOCH + Duration::days(20_500) + Duration::microseconds(123_457),
    )
}

/// Creates `n_orgs` organisations, each with its founding owner; returns (org, owner) pairs.
pub(crate) async fn seed(
    store: &dyn Store,
    clock: &FakeClock,
    n_orgs: usize,
) -> Vec<(OrgId, UserId)> {
    let mut out = Vec::new();
    for i in 0..n_orgs {
        let o = org(clock, &format!("org {i}"));
        let u = user(clock, &format!("owner{i}@example.com"));
        let mut tx = store.begin().await.unwrap();
        tx.insert_organization(&o).await.unwrap();
        tx.insert_user(&u).await.unwrap();
        let mut tx = tx.enter(&TenantScope::for_tests(o.id)).await.unwrap();
        tx.insert_membership(&member(o.id, u.id, Role::Owner, clock.now()))
            .await
            .unwrap();
        tx.commit(Audited::for_tests()).await.unwrap();
        out.push((o.id, u.id));
        clock.advance(Duration::milliseconds(1));
    }
    out
}

pub(crate) async fn new_user(store: &dyn Store, clock: &FakeClock, email: &str) -> UserRecord {
    let u = user(clock, email);
    let mut tx = store.begin().await.unwrap();
    tx.insert_user(&u).await.unwrap();
    tx.commit(Audited::for_tests()).await.unwrap();
    u
}
