//! The permission catalogue and what each built-in role grants. Sensitive actions check a named
//! permission, never mere membership. Custom roles are named subsets of this catalogue.

use crate::store::Role;

/// Every permission, with the sentence docs/API.md shows for it.
pub const CATALOGUE: &[(&str, &str)] = &[
    ("org.read", "read the organisation and its member list"),
    (
        "members.manage",
        "invite, change the role of, and remove members",
    ),
    ("roles.manage", "define custom roles"),
    ("audit.read", "read and export the organisation's audit log"),
    ("data.export", "export the organisation's data (GDPR)"),
    ("data.delete", "erase the organisation's data (GDPR)"),
    (
        "secrets.use",
        "use shared secrets through a service without seeing them",
    ),
    ("secrets.reveal", "reveal a shared secret's value"),
    ("secrets.manage", "create, update and delete shared secrets"),
    ("api_keys.manage", "create, rotate and revoke API keys"),
    ("transit.encrypt", "encrypt through the transit API"),
    ("transit.decrypt", "decrypt through the transit API"),
    (
        "transit.manage",
        "raise the lowest key version transit ciphertexts may use",
    ),
    (
        "grants.manage",
        "grant other organisations access to records, and revoke it",
    ),
    (
        "webhooks.manage",
        "create, change and delete webhook endpoints, read their delivery log and replay",
    ),
    (
        "mail.check_domain",
        "check a sending domain's SPF, DKIM and DMARC records (DNS queries)",
    ),
    (
        "connectors.use",
        "connect one's own accounts at OAuth providers, and have services use them",
    ),
    (
        "connectors.manage",
        "add and remove the organisation's OAuth providers, and disconnect anyone's connector",
    ),
    (
        "sso.manage",
        "configure single sign-on: the identity provider, verified email domains and enforcement",
    ),
];

/// A permission from the catalogue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Permission(&'static str);

impl Permission {
    pub const ORG_READ: Self = Self("org.read");
    pub const MEMBERS_MANAGE: Self = Self("members.manage");
    pub const ROLES_MANAGE: Self = Self("roles.manage");
    pub const AUDIT_READ: Self = Self("audit.read");
    pub const DATA_EXPORT: Self = Self("data.export");
    pub const DATA_DELETE: Self = Self("data.delete");
    pub const SECRETS_USE: Self = Self("secrets.use");
    pub const SECRETS_REVEAL: Self = Self("secrets.reveal");
    pub const SECRETS_MANAGE: Self = Self("secrets.manage");
    pub const API_KEYS_MANAGE: Self = Self("api_keys.manage");
    pub const TRANSIT_ENCRYPT: Self = Self("transit.encrypt");
    pub const TRANSIT_DECRYPT: Self = Self("transit.decrypt");
    pub const TRANSIT_MANAGE: Self = Self("transit.manage");
    pub const GRANTS_MANAGE: Self = Self("grants.manage");
    pub const WEBHOOKS_MANAGE: Self = Self("webhooks.manage");
    pub const MAIL_CHECK_DOMAIN: Self = Self("mail.check_domain");
    pub const CONNECTORS_USE: Self = Self("connectors.use");
    pub const CONNECTORS_MANAGE: Self = Self("connectors.manage");
    pub const SSO_MANAGE: Self = Self("sso.manage");

    /// The catalogue entry named `name`.
    #[must_use]
    pub fn parse(name: &str) -> Option<Self> {
        CATALOGUE
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(n, _)| Self(n))
    }

    #[must_use]
    pub fn as_str(&self) -> &'static str {
        self.0
    }

    /// Every permission except reading the organisation is sensitive: a viewer has none of them.
    #[must_use]
    pub fn is_sensitive(&self) -> bool {
        self.0 != "org.read"
    }
}

/// What a built-in role grants. `None` for a custom role, whose set is stored.
#[must_use]
pub fn builtin_grants(role: &Role) -> Option<Vec<Permission>> {
    let all = || CATALOGUE.iter().map(|(n, _)| Permission(n)).collect();
    Some(match role {
        Role::Owner => all(),
        // An admin runs the organisation but cannot erase it wholesale.
        Role::Admin => all()
            .into_iter()
            .filter(|p: &Permission| *p != Permission::DATA_DELETE)
            .collect(),
        Role::Member => vec![
            Permission::ORG_READ,
            Permission::SECRETS_USE,
            Permission::TRANSIT_ENCRYPT,
            Permission::TRANSIT_DECRYPT,
            Permission::CONNECTORS_USE,
        ],
        Role::Viewer => vec![Permission::ORG_READ],
        Role::Custom(_) => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_viewer_has_no_sensitive_permission() {
        let viewer = builtin_grants(&Role::Viewer).unwrap();
        for (name, _) in CATALOGUE {
            let p = Permission::parse(name).unwrap();
            assert_eq!(viewer.contains(&p), !p.is_sensitive(), "{name}");
        }
    }

    #[test]
    fn owners_hold_everything_and_admins_all_but_erasure() {
        assert_eq!(builtin_grants(&Role::Owner).unwrap().len(), CATALOGUE.len());
        let admin = builtin_grants(&Role::Admin).unwrap();
        assert!(!admin.contains(&Permission::DATA_DELETE));
        assert_eq!(admin.len(), CATALOGUE.len() - 1);
        assert!(Permission::parse("root").is_none());
        assert!(builtin_grants(&Role::Custom("ops".into())).is_none());
    }
}
