//! Who is calling: what a verified access token (and its live session) says.

use uuid::Uuid;

use crate::audit::{Actor, ActorKind};
use crate::ids::OrgId;
use crate::store::Tier;

/// Only core makes one (from a verified token and its live session, or a verified API key):
/// `non_exhaustive` keeps other crates from writing one by hand and turning it into a scope.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Principal {
    /// The user (or, on the operator API, the operator).
    pub subject: Uuid,
    pub tier: Tier,
    pub org: Option<OrgId>,
    pub roles: Vec<String>,
    pub session_id: Uuid,
    /// The operator behind an impersonation.
    pub impersonator: Option<Uuid>,
    pub token_id: String,
    /// Unix seconds.
    pub expires_at: u64,
    /// For browser (cookie) sessions: the digest the `x-csrf-token` header must match.
    pub csrf_digest: Option<String>,
    /// Set when the caller is an API key (then `subject` is the key's id): exactly what it may do.
    pub api_key_permissions: Option<Vec<String>>,
    /// An API key's own requests-per-minute limit (overriding its organisation's plan).
    pub api_key_rate_limit: Option<u32>,
    /// Unix seconds of the session's last password check, and second-factor check.
    pub auth_time: Option<u64>,
    pub mfa_time: Option<u64>,
    /// The user has a second factor enrolled.
    pub mfa_enrolled: bool,
    pub email_verified: bool,
}

impl Principal {
    /// A member named by id by one of the deployment's services (the internal check API): no
    /// session, so no recent password or second factor (step-up permissions stay shut).
    pub(crate) fn named_member(user: crate::ids::UserId, org: OrgId) -> Self {
        Self {
            subject: user.as_uuid(),
            tier: Tier::Customer,
            org: Some(org),
            roles: Vec::new(),
            session_id: Uuid::nil(),
            impersonator: None,
            token_id: String::new(),
            expires_at: u64::MAX,
            csrf_digest: None,
            api_key_permissions: None,
            api_key_rate_limit: None,
            auth_time: None,
            mfa_time: None,
            mfa_enrolled: false,
            email_verified: true,
        }
    }

    /// Whether this is an operator's own session: what `/admin/v1` admits, besides the token's
    /// audience (an API key is no session, and no other tier is ever issued the operators').
    #[must_use]
    pub fn is_operator_session(&self) -> bool {
        self.tier == Tier::Operator && self.api_key_permissions.is_none()
    }

    /// The audit actor: the user, with the impersonating operator when there is one.
    #[must_use]
    pub fn actor(&self) -> Actor {
        Actor {
            kind: if self.api_key_permissions.is_some() {
                ActorKind::ApiKey
            } else if self.tier == Tier::Operator {
                ActorKind::Operator
            } else {
                ActorKind::User
            },
            id: self.subject.to_string(),
            impersonator_id: self.impersonator.map(|i| i.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_operator_tier_session_is_an_operator_session() {
        let member = Principal::named_member(
            crate::ids::UserId::from_uuid(Uuid::from_u128(1)),
            OrgId::from_uuid(Uuid::from_u128(2)),
        );
        assert!(!member.is_operator_session());
        let impersonation = Principal {
            tier: Tier::Impersonation,
            ..member.clone()
        };
        assert!(!impersonation.is_operator_session());
        let operator = Principal {
            tier: Tier::Operator,
            org: None,
            ..member.clone()
        };
        assert!(operator.is_operator_session());
        let key = Principal {
            api_key_permissions: Some(Vec::new()),
            ..operator
        };
        assert!(!key.is_operator_session());
    }
}
