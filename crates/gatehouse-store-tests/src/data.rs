//! Record builders for the cases.

use gatehouse_core::store::{MembershipRecord, OrganizationRecord, Role, UserRecord};
use gatehouse_core::{Clock, OrgId, UserId};
use time::OffsetDateTime;

pub(crate) fn user(clock: &dyn Clock, email: &str) -> UserRecord {
    UserRecord {
        id: UserId::new(clock),
        email: email.to_owned(),
        name: format!("name of {email}"),
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo".into(),
        created_at: clock.now(),
        email_verified_at: None,
        disabled_at: None,
    }
}

pub(crate) fn org(clock: &dyn Clock, name: &str) -> OrganizationRecord {
    OrganizationRecord {
        id: OrgId::new(clock),
        name: name.to_owned(),
        created_at: clock.now(),
        keys_shredded_at: None,
    }
}

pub(crate) fn member(org: OrgId, user: UserId, role: Role, at: OffsetDateTime) -> MembershipRecord {
    MembershipRecord {
        org_id: org,
        user_id: user,
        role,
        created_at: at,
        sessions_ended_at: None,
    }
}
