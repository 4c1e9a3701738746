//! Export (G1): everything Gatehouse stores about a person or an organisation, as NDJSON lines
//! in a fixed order of sections, resumable from an opaque cursor between any two chunks.
//!
//! A person's export covers their account, memberships, sessions and devices, factors (metadata
//! only), mail, and in each organisation (every one they belong to, or the one an administrator
//! exports them from) the API keys they created, the records they own, their connectors
//! (metadata, never a token) and the audit events that name them as actor or resource, personal fields opened while their key exists. An
//! organisation's export covers the organisation and its roles, each member as above (sessions
//! in this organisation only), all its API keys, records, grants given and received, secrets as
//! metadata, and its whole audit chain.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use uuid::Uuid;

use super::{DataRights, rows};
use crate::audit::{Actor, AuditEvent, AuditFilter, AuditReader};
use crate::context::{AccountCall, TenantCall};
use crate::error::Error;
use crate::identity::Permission;
use crate::ids::{OrgId, UserId};
use crate::keyring::SealedKind;
use crate::page::PageRequest;
use crate::scope::TenantScope;
use crate::store::RecordQuery;

/// The document's format name and version, in its first line.
pub const FORMAT: &str = "gatehouse.export";
pub const VERSION: u32 = 1;
/// Rows per store page.
const PAGE: u32 = 200;
/// Records and events per page: past the API's page bound, read in bulk (their content opened
/// with one read per page).
const BULK_PAGE: u32 = 1_000;

fn bulk(inner: Option<&str>) -> Result<PageRequest, Error> {
    let mut page = PageRequest::parse(inner, None)?;
    page.limit = crate::page::Limit::internal(BULK_PAGE);
    Ok(page)
}
/// Members per chunk of an organisation's export (each brings several lookups).
const MEMBER_PAGE: u32 = 50;

/// Whose data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportSubject {
    /// A person: in every organisation they belong to, or only in `only_in`.
    User {
        user: UserId,
        only_in: Option<OrgId>,
    },
    Organization(OrgId),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Section {
    Account(UserId),
    Memberships(UserId, Option<OrgId>),
    Sessions(UserId, Option<OrgId>),
    Factors(UserId),
    Mail(UserId),
    /// Identities at providers linked to the account (single sign-on).
    Identities(UserId),
    ApiKeys(OrgId, Option<UserId>),
    Records(OrgId, Option<UserId>),
    /// The person's connectors in the organisation (B3): metadata, never a token.
    Connectors(OrgId, UserId),
    Audit(OrgId, Option<UserId>),
    Organization(OrgId),
    Members(OrgId),
    Grants(OrgId),
    Secrets(OrgId),
}

/// An authorised export: its subject and sections, fixed when it was authorised.
#[derive(Debug, Clone)]
pub struct Export {
    pub subject: ExportSubject,
    sections: Vec<Section>,
}

/// Where an export stands: a section, and the position inside it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Position {
    section: usize,
    inner: Option<String>,
}

impl Position {
    #[must_use]
    pub fn is_start(&self) -> bool {
        self.section == 0 && self.inner.is_none()
    }

    #[must_use]
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!(
            "x1|{}|{}",
            self.section,
            self.inner.as_deref().unwrap_or("")
        ))
    }

    pub fn decode(text: &str) -> Result<Self, Error> {
        let bad = || Error::invalid("cursor", "is not an export cursor this server issued");
        let raw = URL_SAFE_NO_PAD.decode(text).map_err(|_| bad())?;
        let raw = String::from_utf8(raw).map_err(|_| bad())?;
        let mut parts = raw.splitn(3, '|');
        if parts.next() != Some("x1") {
            return Err(bad());
        }
        let section = parts.next().and_then(|s| s.parse().ok()).ok_or_else(bad)?;
        let inner = parts.next().ok_or_else(bad)?;
        Ok(Self {
            section,
            inner: (!inner.is_empty()).then(|| inner.to_owned()),
        })
    }
}

fn person_sections(user: UserId, orgs: &[OrgId], only_in: Option<OrgId>) -> Vec<Section> {
    let mut s = vec![
        Section::Account(user),
        Section::Memberships(user, only_in),
        Section::Sessions(user, only_in),
        Section::Factors(user),
    ];
    // Mail is the person's across organisations (resets, other invitations): theirs to see,
    // not an administrator's.
    if only_in.is_none() {
        s.push(Section::Mail(user));
        s.push(Section::Identities(user));
    }
    for org in orgs {
        s.push(Section::ApiKeys(*org, Some(user)));
        s.push(Section::Records(*org, Some(user)));
        s.push(Section::Connectors(*org, user));
        s.push(Section::Audit(*org, Some(user)));
    }
    s
}

impl DataRights<'_> {
    /// A person's own export, across every organisation they belong to, with a recent step-up
    /// (`data.export`); never under impersonation or with an API key. To a session an
    /// organisation's sign-on began, only the person's data in that organisation, as its admin's
    /// export of the member would show it (no mail, no links, nothing of other organisations):
    /// the session is confined there, and a fresh sign-in through it passes the step-up. Each
    /// page (`resumed`: not the first) is recorded (`data.exported`) on each of those
    /// organisations' chains before it is read, so a cursor cannot read on unrecorded.
    pub async fn export_self(&self, call: &AccountCall, resumed: bool) -> Result<Export, Error> {
        let user = crate::identity::customer_only(
            &call.principal,
            "only the person themself, signed in, exports their data",
        )?;
        let mut tx = self.store().begin_read().await?;
        let home =
            crate::sso::enforcement::confined_to(tx.as_mut(), call.principal.session_id).await?;
        drop(tx);
        if let Some(method) = self.step_up_needed(&call.principal, Permission::DATA_EXPORT.as_str())
        {
            return Err(Error::StepUpRequired {
                permission: Permission::DATA_EXPORT.as_str(),
                method,
            });
        }
        let mut tx = self.store().begin_read().await?;
        tx.user_by_id(user).await?.ok_or(Error::NotFound("user"))?;
        let mut orgs: Vec<OrgId> = tx
            .memberships_of_user(user)
            .await?
            .into_iter()
            .map(|m| m.org_id)
            .filter(|o| home.is_none_or(|h| h == *o))
            .collect();
        drop(tx);
        orgs.sort();
        if orgs.is_empty() {
            // Belonging nowhere, the person's export is recorded on the operators' chain.
            let event = AuditEvent::success(
                call.principal.actor(),
                "data.exported",
                "user",
                user.as_uuid(),
            )
            .with_request(call.request.request_id.clone())
            .with_details(
                json!({"format": FORMAT, "version": VERSION, "resumed": resumed}).to_string(),
            );
            self.audit_batcher().record_operator(event).await?;
        }
        for org in &orgs {
            self.record_export(
                call.principal.actor(),
                *org,
                ("user", user.as_uuid()),
                resumed,
                call.request.request_id.clone(),
            )
            .await?;
        }
        Ok(Export {
            subject: ExportSubject::User {
                user,
                only_in: home,
            },
            sections: person_sections(user, &orgs, home),
        })
    }

    /// An organisation's export, or one member's data in it (`data.export`, with step-up). A
    /// user who is not a member is not found. Every page is authorised and recorded before it
    /// is read (`resumed`: not the first).
    pub async fn export_for(
        &self,
        call: &TenantCall,
        member: Option<UserId>,
        resumed: bool,
    ) -> Result<Export, Error> {
        let tx = self.store().begin_read_scoped(&call.scope).await?;
        let (mut tx, _) = self
            .authorize(tx, &call.principal, Permission::DATA_EXPORT, &call.request)
            .await?;
        let org = call.scope.org_id();
        if let Some(user) = member {
            tx.membership(user)
                .await?
                .ok_or(Error::NotFound("member"))?;
        }
        drop(tx);
        let (subject, sections, kind, id) = match member {
            Some(user) => (
                ExportSubject::User {
                    user,
                    only_in: Some(org),
                },
                person_sections(user, &[org], Some(org)),
                "user",
                user.as_uuid(),
            ),
            None => (
                ExportSubject::Organization(org),
                vec![
                    Section::Organization(org),
                    Section::Members(org),
                    Section::ApiKeys(org, None),
                    Section::Records(org, None),
                    Section::Grants(org),
                    Section::Secrets(org),
                    Section::Audit(org, None),
                ],
                "organization",
                org.as_uuid(),
            ),
        };
        self.record_export(
            call.principal.actor(),
            org,
            (kind, id),
            resumed,
            call.request.request_id.clone(),
        )
        .await?;
        Ok(Export { subject, sections })
    }

    async fn record_export(
        &self,
        actor: Actor,
        org: OrgId,
        (kind, id): (&str, Uuid),
        resumed: bool,
        request_id: Option<String>,
    ) -> Result<(), Error> {
        let event = AuditEvent::success(actor, "data.exported", kind, id)
            .with_request(request_id)
            .with_details(
                json!({"format": FORMAT, "version": VERSION, "resumed": resumed}).to_string(),
            );
        self.audit_batcher()
            .record(&TenantScope::granted(org), event)
            .await
    }

    /// The document's first line.
    #[must_use]
    pub fn header(&self, export: &Export) -> Value {
        let subject = match export.subject {
            ExportSubject::User { user, only_in } => {
                json!({"type": "user", "id": user, "organization_id": only_in})
            }
            ExportSubject::Organization(org) => json!({"type": "organization", "id": org}),
        };
        json!({"type": "export", "format": FORMAT, "version": VERSION, "subject": subject,
               "generated_at": rows::when(self.clock().now())})
    }

    /// The lines at `at` (one store page of one section) and where the export goes on, or
    /// `None` at its end.
    pub async fn chunk(
        &self,
        export: &Export,
        at: &Position,
    ) -> Result<(Vec<Value>, Option<Position>), Error> {
        let Some(section) = export.sections.get(at.section).copied() else {
            return Ok((Vec::new(), None));
        };
        let (lines, inner) = self.section_page(section, at.inner.as_deref()).await?;
        let next = match inner {
            Some(inner) => Some(Position {
                section: at.section,
                inner: Some(inner),
            }),
            None if at.section + 1 < export.sections.len() => Some(Position {
                section: at.section + 1,
                inner: None,
            }),
            None => None,
        };
        Ok((lines, next))
    }

    async fn section_page(
        &self,
        section: Section,
        inner: Option<&str>,
    ) -> Result<(Vec<Value>, Option<String>), Error> {
        match section {
            Section::Account(user) => {
                let mut tx = self.store().begin_read().await?;
                let u = tx.user_by_id(user).await?.ok_or(Error::NotFound("user"))?;
                Ok((vec![rows::account(&u)], None))
            }
            Section::Memberships(user, only_in) => {
                let mut tx = self.store().begin_read().await?;
                let mut lines = Vec::new();
                for m in tx.memberships_of_user(user).await? {
                    if only_in.is_some_and(|o| o != m.org_id) {
                        continue;
                    }
                    let org = tx.organization_by_id(m.org_id).await?;
                    lines.push(rows::membership(&m, org.as_ref()));
                }
                Ok((lines, None))
            }
            Section::Sessions(user, only_in) => {
                let mut tx = self.store().begin_read().await?;
                let lines = tx
                    .sessions_of(user.as_uuid())
                    .await?
                    .iter()
                    .filter(|s| only_in.is_none() || s.org_id == only_in)
                    .map(rows::session)
                    .collect();
                Ok((lines, None))
            }
            Section::Factors(user) => Ok((vec![self.factors(user).await?], None)),
            Section::Mail(user) => Ok((self.mail(user).await?, None)),
            Section::Identities(user) => {
                let mut tx = self.store().begin_read().await?;
                let lines = tx
                    .external_identities_of(user)
                    .await?
                    .iter()
                    .map(rows::external_identity)
                    .collect();
                Ok((lines, None))
            }
            Section::ApiKeys(org, creator) => self.api_keys(org, creator, inner).await,
            Section::Records(org, owner) => self.records(org, owner, inner).await,
            Section::Connectors(org, owner) => {
                let mut tx = self.read_in(org).await?;
                let page = tx
                    .connectors(
                        Some(owner.as_uuid()),
                        PageRequest::parse(inner, Some(PAGE))?,
                    )
                    .await?;
                let lines = page.items.iter().map(rows::connector).collect();
                Ok((lines, page.next_cursor))
            }
            Section::Audit(org, naming) => self.audit_events(org, naming, inner).await,
            Section::Organization(org) => {
                let mut tx = self.store().begin_read().await?;
                let o = tx
                    .organization_by_id(org)
                    .await?
                    .ok_or(Error::NotFound("organization"))?;
                drop(tx);
                let mut tx = self
                    .store()
                    .begin_read_scoped(&TenantScope::granted(org))
                    .await?;
                let mut lines = vec![rows::organization(&o)];
                lines.extend(tx.custom_roles().await?.iter().map(rows::role));
                Ok((lines, None))
            }
            Section::Members(org) => self.members(org, inner).await,
            Section::Grants(org) => self.grants(org, inner).await,
            Section::Secrets(org) => self.secrets(org, inner).await,
        }
    }

    /// A reading transaction in `org`, which the export was authorised to cover.
    async fn read_in(&self, org: OrgId) -> Result<Box<dyn crate::store::TenantTx>, Error> {
        Ok(self
            .store()
            .begin_read_scoped(&TenantScope::granted(org))
            .await?)
    }

    async fn factors(&self, user: UserId) -> Result<Value, Error> {
        let mut tx = self.store().begin_read().await?;
        let totp = tx.totp_factor(user).await?;
        let left = tx.recovery_codes_left(user).await?;
        Ok(rows::factor(user.as_uuid(), totp.as_ref(), left))
    }

    async fn mail(&self, user: UserId) -> Result<Vec<Value>, Error> {
        let mut tx = self.store().begin_read().await?;
        let Some(u) = tx.user_by_id(user).await? else {
            return Ok(Vec::new());
        };
        let digest = crate::mail::recipient_digest(&u.email);
        Ok(tx
            .mail_to(&digest, 10_000)
            .await?
            .iter()
            .map(|m| rows::mail(user.as_uuid(), m))
            .collect())
    }

    async fn api_keys(
        &self,
        org: OrgId,
        creator: Option<UserId>,
        inner: Option<&str>,
    ) -> Result<(Vec<Value>, Option<String>), Error> {
        let mut tx = self.read_in(org).await?;
        let page = tx
            .list_api_keys(PageRequest::parse(inner, Some(PAGE))?)
            .await?;
        let creator = creator.map(|u| u.as_uuid().to_string());
        let lines = page
            .items
            .iter()
            .filter(|k| creator.as_ref().is_none_or(|c| *c == k.created_by))
            .map(rows::api_key)
            .collect();
        Ok((lines, page.next_cursor))
    }

    async fn records(
        &self,
        org: OrgId,
        owner: Option<UserId>,
        inner: Option<&str>,
    ) -> Result<(Vec<Value>, Option<String>), Error> {
        let mut tx = self.read_in(org).await?;
        // What has expired is gone for everyone, exports included, before the purge.
        let query = RecordQuery {
            owner: owner.map(|u| format!("user:{}", u.as_uuid())),
            everything: true,
            now: Some(self.clock().now()),
            ..RecordQuery::default()
        };
        let page = tx.list_records(&query, bulk(inner)?).await?;
        // The page's contents in one read, each data-key version unwrapped once.
        let ids: Vec<String> = page
            .items
            .iter()
            .filter(|r| r.has_content)
            .map(|r| r.id.to_string())
            .collect();
        let sealed = tx
            .sealed_of(SealedKind::RecordContent.as_str(), &ids, "content")
            .await?;
        let opened = self.keyring().open_many(tx.as_mut(), &sealed).await?;
        let mut contents = std::collections::HashMap::with_capacity(sealed.len());
        for (s, plain) in sealed.iter().zip(opened) {
            let value: Value = serde_json::from_slice(plain.expose())
                .map_err(|e| Error::Unreadable(e.to_string()))?;
            contents.insert(s.record_id.clone(), value);
        }
        let lines = page
            .items
            .iter()
            .map(|r| rows::record(r, contents.remove(&r.id.to_string())))
            .collect();
        Ok((lines, page.next_cursor))
    }

    /// Events naming `naming` as actor (inner cursor `a...`), then as resource (`r...`, those
    /// already shown as actor left out); the whole chain when `naming` is `None`.
    async fn audit_events(
        &self,
        org: OrgId,
        naming: Option<UserId>,
        inner: Option<&str>,
    ) -> Result<(Vec<Value>, Option<String>), Error> {
        let reader = AuditReader::of(TenantScope::granted(org));
        let (pass, cursor) = match inner {
            Some(i) if i.starts_with('r') => ('r', Some(&i[1..])),
            Some(i) if i.starts_with('a') => ('a', Some(&i[1..])),
            Some(_) => return Err(Error::invalid("cursor", "is not an export cursor")),
            None => ('a', None),
        };
        let cursor = cursor.filter(|c| !c.is_empty());
        let id = naming.map(|u| u.as_uuid().to_string());
        let filter = match (pass, &id) {
            ('a', Some(id)) => AuditFilter {
                actor_id: Some(id.clone()),
                ..AuditFilter::default()
            },
            (_, Some(id)) => AuditFilter {
                resource_id: Some(id.clone()),
                ..AuditFilter::default()
            },
            (_, None) => AuditFilter::default(),
        };
        let page = self.audit().page(&reader, &filter, bulk(cursor)?).await?;
        // In a person's export, only their own personal fields are opened: an event about them
        // by someone else carries that someone's address.
        let lines = page
            .items
            .into_iter()
            .filter(|v| pass == 'a' || id.as_ref().is_none_or(|i| *i != v.record.actor_id))
            .map(|mut v| {
                if id.is_some() && v.record.subject != id {
                    v.personal = None;
                }
                rows::audit_event(&v)
            })
            .collect();
        let next = match (page.next_cursor, pass, &id) {
            (Some(c), p, _) => Some(format!("{p}{c}")),
            (None, 'a', Some(_)) => Some("r".to_owned()),
            (None, _, _) => None,
        };
        Ok((lines, next))
    }

    async fn members(
        &self,
        org: OrgId,
        inner: Option<&str>,
    ) -> Result<(Vec<Value>, Option<String>), Error> {
        let scope = TenantScope::granted(org);
        let mut tx = self.store().begin_read_scoped(&scope).await?;
        let page = tx
            .list_memberships(PageRequest::parse(inner, Some(MEMBER_PAGE))?)
            .await?;
        drop(tx);
        let mut lines = Vec::new();
        for m in &page.items {
            let mut ptx = self.store().begin_read().await?;
            let user = ptx.user_by_id(m.user_id).await?;
            lines.push(rows::member(m, user.as_ref()));
            for s in ptx.sessions_of(m.user_id.as_uuid()).await? {
                if s.org_id == Some(org) {
                    lines.push(rows::session(&s));
                }
            }
            drop(ptx);
            lines.push(self.factors(m.user_id).await?);
        }
        Ok((lines, page.next_cursor))
    }

    /// Grants given (inner cursor `g...`), then received (`r...`).
    async fn grants(
        &self,
        org: OrgId,
        inner: Option<&str>,
    ) -> Result<(Vec<Value>, Option<String>), Error> {
        let (received, cursor) = match inner {
            Some(i) if i.starts_with('r') => (true, &i[1..]),
            Some(i) if i.starts_with('g') => (false, &i[1..]),
            Some(_) => return Err(Error::invalid("cursor", "is not an export cursor")),
            None => (false, ""),
        };
        let request = PageRequest::parse(Some(cursor), Some(PAGE))?;
        let mut tx = self.read_in(org).await?;
        let page = if received {
            tx.grants_received(request).await?
        } else {
            tx.grants_given(request).await?
        };
        let direction = if received { "received" } else { "given" };
        let lines = page
            .items
            .iter()
            .map(|g| rows::grant(g, direction))
            .collect();
        let next = match (page.next_cursor, received) {
            (Some(c), r) => Some(format!("{}{c}", if r { 'r' } else { 'g' })),
            (None, false) => Some("r".to_owned()),
            (None, true) => None,
        };
        Ok((lines, next))
    }

    async fn secrets(
        &self,
        org: OrgId,
        inner: Option<&str>,
    ) -> Result<(Vec<Value>, Option<String>), Error> {
        let mut tx = self.read_in(org).await?;
        let page = tx
            .list_secrets(self.clock().now(), PageRequest::parse(inner, Some(PAGE))?)
            .await?;
        let mut lines = Vec::with_capacity(page.items.len());
        for s in &page.items {
            let versions = tx.secret_versions(s.id).await?;
            lines.push(rows::secret(s, &versions));
        }
        Ok((lines, page.next_cursor))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_round_trip_and_foreign_cursors_are_refused() {
        for p in [
            Position::default(),
            Position {
                section: 7,
                inner: Some("rAbc_-|x".into()),
            },
        ] {
            assert_eq!(Position::decode(&p.encode()).unwrap(), p);
        }
        for bad in [
            "",
            "!!",
            &URL_SAFE_NO_PAD.encode("x2|1|"),
            &URL_SAFE_NO_PAD.encode("x1|z|"),
        ] {
            assert!(Position::decode(bad).is_err(), "{bad}");
        }
    }
}
