//! Which events an endpoint may subscribe to: Gatehouse's own (each raised by an audit event of
//! the same transaction) and the product's, declared in configuration.

/// Gatehouse's own event types, and the audit actions that raise them.
const GATEHOUSE: [(&str, &[&str]); 13] = [
    ("user.signed_in", &["user.login"]),
    (
        "session.revoked",
        &["session.revoked", "session.revoked_others"],
    ),
    ("member.added", &["member.added"]),
    ("member.removed", &["member.removed"]),
    ("api_key.created", &["api_key.created"]),
    ("api_key.revoked", &["api_key.revoked"]),
    ("record.shared", &["record.shared"]),
    ("grant.created", &["grant.created"]),
    ("grant.revoked", &["grant.revoked"]),
    ("erasure.completed", &["user.erased"]),
    ("webhook.endpoint_disabled", &["webhook.endpoint_disabled"]),
    ("connector.needs_reauth", &["connector.needs_reauth"]),
    ("sso.domain_unverified", &["sso.domain_unverified"]),
];

/// Gatehouse's own event types.
pub fn gatehouse_types() -> impl Iterator<Item = &'static str> {
    GATEHOUSE.iter().map(|(t, _)| *t)
}

/// The webhook event an audit action raises, if any (only successful events raise one).
#[must_use]
pub fn for_audit_action(action: &str) -> Option<&'static str> {
    GATEHOUSE
        .iter()
        .find(|(_, actions)| actions.contains(&action))
        .map(|(t, _)| *t)
}

/// A product event type's shape: two to four dotted parts of `a-z`, `0-9`, `_`, at most 64
/// characters, outside Gatehouse's own namespaces.
#[must_use]
pub fn valid_product_type(name: &str) -> bool {
    let parts: Vec<&str> = name.split('.').collect();
    name.len() <= 64
        && (2..=4).contains(&parts.len())
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        })
        && !GATEHOUSE
            .iter()
            .any(|(t, _)| t.split('.').next() == parts.first().copied())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audit_actions_map_to_their_events_and_product_types_stay_outside_ours() {
        assert_eq!(for_audit_action("user.login"), Some("user.signed_in"));
        assert_eq!(
            for_audit_action("session.revoked_others"),
            Some("session.revoked")
        );
        assert_eq!(for_audit_action("user.erased"), Some("erasure.completed"));
        assert_eq!(for_audit_action("record.read_denied"), None);
        assert!(valid_product_type("invoice.paid"));
        assert!(valid_product_type("report.run.v2"));
        for bad in [
            "invoice",
            "Invoice.paid",
            "member.promoted",
            "a..b",
            "a.b.c.d.e",
            "",
        ] {
            assert!(!valid_product_type(bad), "{bad}");
        }
    }
}
