//! An export's lines: one JSON object per stored row, `type` first, times in RFC 3339. Secrets
//! and factors appear as metadata only; record content and audit events' personal fields are
//! opened (while their keys exist).

use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::audit::AuditView;
use crate::store::{
    ApiKeyRecord, CustomRoleRecord, ExternalIdentityRecord, GrantRow, MailRecord, MembershipRecord,
    OrganizationRecord, RecordRow, SecretRecord, SecretVersionRecord, SessionRecord,
    TotpFactorRecord, UserRecord,
};

pub(super) fn when(t: OffsetDateTime) -> Value {
    t.format(&Rfc3339).map_or(Value::Null, Value::String)
}

fn when_opt(t: Option<OffsetDateTime>) -> Value {
    t.map_or(Value::Null, when)
}

pub(super) fn account(u: &UserRecord) -> Value {
    json!({"type": "account", "id": u.id, "email": u.email, "name": u.name,
           "created_at": when(u.created_at), "email_verified_at": when_opt(u.email_verified_at),
           "disabled_at": when_opt(u.disabled_at)})
}

pub(super) fn member(m: &MembershipRecord, u: Option<&UserRecord>) -> Value {
    json!({"type": "member", "user_id": m.user_id, "email": u.map(|u| &u.email),
           "name": u.map(|u| &u.name), "role": m.role.as_str(), "since": when(m.created_at)})
}

pub(super) fn membership(m: &MembershipRecord, org: Option<&OrganizationRecord>) -> Value {
    json!({"type": "membership", "organization_id": m.org_id,
           "organization_name": org.map(|o| &o.name), "role": m.role.as_str(),
           "since": when(m.created_at)})
}

pub(super) fn session(s: &SessionRecord) -> Value {
    json!({"type": "session", "id": s.id, "user_id": s.subject_id, "tier": s.tier.as_str(),
           "organization_id": s.org_id, "device_name": s.device_name, "ip": s.ip,
           "user_agent": s.user_agent, "created_at": when(s.created_at),
           "last_seen_at": when(s.last_seen_at), "expires_at": when(s.expires_at),
           "revoked_at": when_opt(s.revoked_at)})
}

pub(super) fn factor(user: uuid::Uuid, f: Option<&TotpFactorRecord>, codes_left: u32) -> Value {
    json!({"type": "factors", "user_id": user,
           "totp": f.map(|f| json!({"created_at": when(f.created_at),
                                    "confirmed_at": when_opt(f.confirmed_at)})),
           "recovery_codes_left": codes_left})
}

pub(super) fn external_identity(i: &ExternalIdentityRecord) -> Value {
    json!({"type": "external_identity", "user_id": i.user_id, "issuer": i.issuer,
           "subject": i.subject, "linked_by_organization": i.linked_by,
           "created_at": when(i.created_at)})
}

pub(super) fn mail(user: uuid::Uuid, m: &MailRecord) -> Value {
    json!({"type": "mail", "id": m.id, "user_id": user, "kind": m.kind,
           "created_at": when(m.created_at), "attempts": m.attempts,
           "sent_at": when_opt(m.sent_at)})
}

pub(super) fn organization(o: &OrganizationRecord) -> Value {
    json!({"type": "organization", "id": o.id, "name": o.name, "created_at": when(o.created_at)})
}

pub(super) fn role(r: &CustomRoleRecord) -> Value {
    json!({"type": "custom_role", "name": r.name, "permissions": r.permissions,
           "created_at": when(r.created_at)})
}

pub(super) fn api_key(k: &ApiKeyRecord) -> Value {
    json!({"type": "api_key", "id": k.id, "organization_id": k.org_id, "name": k.name,
           "prefix": k.prefix, "last4": k.last4, "permissions": k.permissions,
           "namespace": k.namespace, "created_by": k.created_by,
           "created_at": when(k.created_at), "expires_at": when_opt(k.expires_at),
           "revoked_at": when_opt(k.revoked_at), "last_used_at": when_opt(k.last_used_at)})
}

pub(super) fn record(r: &RecordRow, content: Option<Value>) -> Value {
    json!({"type": "record", "id": r.id, "organization_id": r.org_id, "record_type": r.kind,
           "external_id": r.external_id, "namespace": r.namespace, "owner": r.owner,
           "level": r.level.as_str(), "allowed": r.allowed, "tags": r.tags, "content": content,
           "created_at": when(r.created_at), "updated_at": when(r.updated_at),
           "expires_at": when_opt(r.expires_at)})
}

pub(super) fn grant(g: &GrantRow, direction: &str) -> Value {
    json!({"type": "grant", "direction": direction, "id": g.id, "organization_id": g.org_id,
           "grantee": g.grantee, "types": g.types, "namespaces": g.namespaces,
           "access": g.access.as_str(), "created_by": g.created_by,
           "created_at": when(g.created_at), "expires_at": when_opt(g.expires_at),
           "revoked_at": when_opt(g.revoked_at)})
}

pub(super) fn secret(s: &SecretRecord, versions: &[SecretVersionRecord]) -> Value {
    let versions: Vec<Value> = versions
        .iter()
        .map(|v| {
            json!({"version": v.version, "created_by": v.created_by,
                        "created_at": when(v.created_at)})
        })
        .collect();
    json!({"type": "secret", "id": s.id, "name": s.name, "description": s.description,
           "current_version": s.current_version, "versions": versions,
           "created_by": s.created_by, "created_at": when(s.created_at),
           "expires_at": when_opt(s.expires_at)})
}

/// A connector (B3) as its owner may see it: never a token.
pub(super) fn connector(c: &crate::store::ConnectorRow) -> Value {
    json!({"type": "connector", "organization_id": c.org_id, "id": c.id,
           "provider": c.provider, "status": c.status.as_str(), "scopes": c.scopes,
           "expires_at": when_opt(c.expires_at), "refreshable": c.refresh_due_at.is_some(),
           "last_error": c.last_error, "created_at": when(c.created_at),
           "updated_at": when(c.updated_at)})
}

pub(super) fn audit_event(v: &AuditView) -> Value {
    let r = &v.record;
    let personal = v.personal.clone().unwrap_or_default();
    json!({"type": "audit_event", "organization_id": r.org_id, "seq": r.seq, "id": r.id,
           "at": when(r.at), "actor": {"type": r.actor_kind, "id": r.actor_id},
           "action": r.action, "resource": {"type": r.resource_type, "id": r.resource_id},
           "outcome": r.outcome, "request_id": r.request_id,
           "details": serde_json::from_str::<Value>(&r.details).unwrap_or(Value::Null),
           "ip": personal.ip, "user_agent": personal.user_agent})
}
