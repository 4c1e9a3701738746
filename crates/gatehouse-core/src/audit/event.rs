//! What an audit event says.

use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::Error;
use crate::ids::OrgId;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActorKind {
    User,
    Operator,
    ApiKey,
    Service,
    /// Gatehouse itself (start-up, background jobs, CLI maintenance).
    System,
    Anonymous,
}

impl ActorKind {
    #[must_use]
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Operator => "operator",
            Self::ApiKey => "api_key",
            Self::Service => "service",
            Self::System => "system",
            Self::Anonymous => "anonymous",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub kind: ActorKind,
    pub id: String,
    /// The operator acting through an impersonation, when there is one.
    pub impersonator_id: Option<String>,
}

impl Actor {
    #[must_use]
    pub fn system(what: &str) -> Self {
        Self {
            kind: ActorKind::System,
            id: what.to_owned(),
            impersonator_id: None,
        }
    }

    #[must_use]
    pub fn operator(id: impl ToString) -> Self {
        Self {
            kind: ActorKind::Operator,
            id: id.to_string(),
            impersonator_id: None,
        }
    }

    /// Someone not (yet) identified: a failed sign-in.
    #[must_use]
    pub fn anonymous() -> Self {
        Self {
            kind: ActorKind::Anonymous,
            id: "anonymous".to_owned(),
            impersonator_id: None,
        }
    }

    #[must_use]
    pub fn user(id: impl ToString) -> Self {
        Self {
            kind: ActorKind::User,
            id: id.to_string(),
            impersonator_id: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Denied,
    Failure,
}

impl Outcome {
    #[must_use]
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Denied => "denied",
            Self::Failure => "failure",
        }
    }
}

/// An event to append. `details` is a small JSON object, stored as the text given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    pub actor: Actor,
    /// A dotted verb: `organization.created`, `member.role_changed`, `secret.revealed`.
    pub action: String,
    pub resource_type: String,
    pub resource_id: String,
    pub outcome: Outcome,
    pub request_id: Option<String>,
    pub details: String,
    /// The data subject whose personal data `personal` holds (a user id).
    pub subject: Option<String>,
    /// Personal data (IP, user agent) sealed under the subject's key; see
    /// `Keyring::seal_personal`.
    pub personal: Option<Vec<u8>>,
}

impl AuditEvent {
    /// A successful action on a resource, with empty details.
    #[must_use]
    pub fn success(
        actor: Actor,
        action: &str,
        resource_type: &str,
        resource_id: impl ToString,
    ) -> Self {
        Self {
            actor,
            action: action.to_owned(),
            resource_type: resource_type.to_owned(),
            resource_id: resource_id.to_string(),
            outcome: Outcome::Success,
            request_id: None,
            details: "{}".to_owned(),
            subject: None,
            personal: None,
        }
    }

    #[must_use]
    pub fn with_request(mut self, request_id: Option<String>) -> Self {
        self.request_id = request_id;
        self
    }

    /// Attaches sealed personal data and the subject it belongs to.
    #[must_use]
    pub fn with_personal(mut self, subject: &str, sealed: Vec<u8>) -> Self {
        self.subject = Some(subject.to_owned());
        self.personal = Some(sealed);
        self
    }

    #[must_use]
    pub fn with_details(mut self, json_object: String) -> Self {
        self.details = json_object;
        self
    }

    pub(crate) fn validate(&self) -> Result<(), Error> {
        let dotted = self.action.split('.').count() >= 2
            && self
                .action
                .split('.')
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'));
        if !dotted {
            return Err(Error::invalid(
                "action",
                "must be a dotted lower-case verb such as user.login",
            ));
        }
        if !(self.details.starts_with('{') && self.details.ends_with('}'))
            || self.details.len() > 4096
        {
            return Err(Error::invalid(
                "details",
                "must be a JSON object of at most 4096 bytes",
            ));
        }
        Ok(())
    }
}

/// The head of a chain: its last sequence number and hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainHead {
    pub seq: u64,
    pub hash: [u8; 32],
}

/// An event as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    pub id: Uuid,
    /// `None` on the operators' trail.
    pub org_id: Option<OrgId>,
    pub seq: u64,
    pub at: OffsetDateTime,
    pub actor_kind: String,
    pub actor_id: String,
    pub impersonator_id: Option<String>,
    pub action: String,
    pub resource_type: String,
    pub resource_id: String,
    pub outcome: String,
    pub request_id: Option<String>,
    pub details: String,
    pub subject: Option<String>,
    pub personal: Option<Vec<u8>>,
    pub prev_hash: Vec<u8>,
    pub hash: Vec<u8>,
}

/// Which events a query returns. Every filter is optional; all given must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    pub actor_id: Option<String>,
    /// Matches `action` by prefix: `member.` finds `member.added` and `member.role_changed`.
    pub action_prefix: Option<String>,
    pub resource_type: Option<String>,
    pub resource_id: Option<String>,
    pub outcome: Option<Outcome>,
    /// Inclusive.
    pub since: Option<OffsetDateTime>,
    /// Exclusive.
    pub until: Option<OffsetDateTime>,
}

/// A signed statement that a chain had `hash` at `seq`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointRecord {
    /// `None` for the operators' chain.
    pub org_id: Option<OrgId>,
    pub seq: u64,
    pub hash: Vec<u8>,
    pub at: OffsetDateTime,
    pub key_version: u32,
    pub signature: Vec<u8>,
}

/// What a signing key signs. Versions are numbered across purposes, so a version names one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SigningPurpose {
    /// Audit chain checkpoints.
    Audit,
    /// Access tokens (JWT, EdDSA), published in the JWKS document.
    Token,
}

impl SigningPurpose {
    #[must_use]
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Audit => "audit",
            Self::Token => "token",
        }
    }

    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "audit" => Some(Self::Audit),
            "token" => Some(Self::Token),
            _ => None,
        }
    }
}

/// An Ed25519 signing key: the public half, and the seed wrapped under the master key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningKeyRecord {
    pub version: u32,
    pub purpose: SigningPurpose,
    pub public_key: Vec<u8>,
    pub wrapped: Vec<u8>,
    pub kek_version: u32,
    pub created_at: OffsetDateTime,
}
