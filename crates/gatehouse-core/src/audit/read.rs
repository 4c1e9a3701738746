//! Reading the log through the API: a reader is granted once (the `audit.read` permission, or an
//! operator for the operators' trail) and then pages through events newest first, with each
//! event's personal data opened while its subject's key exists.

use super::{AuditFilter, AuditRecord};
use crate::context::{OperatorCall, TenantCall};
use crate::error::Error;
use crate::identity::Permission;
use crate::kernel::Kernel;
use crate::keyring::PersonalData;
use crate::page::{Cursor, Page, PageRequest};
use crate::scope::TenantScope;
use crate::store::Tier;

/// An event with its personal data opened: `None` when it had none or its subject was erased.
#[derive(Debug, Clone)]
pub struct AuditView {
    pub record: AuditRecord,
    pub personal: Option<PersonalData>,
}

/// Permission to read one chain, granted by [`AuditLog::reader`] or
/// [`AuditLog::operator_reader`].
#[derive(Debug, Clone)]
pub struct AuditReader {
    scope: Option<TenantScope>,
}

impl AuditReader {
    /// A reader of `scope`'s chain for a service that has authorised the caller itself (an
    /// export, G1).
    pub(crate) fn of(scope: TenantScope) -> Self {
        Self { scope: Some(scope) }
    }
}

/// Reading the audit log: who may read which chain, and pages of its events.
#[derive(Debug, Clone, Copy)]
pub struct AuditLog<'k>(pub(crate) &'k Kernel);

crate::kernel::service_handle!(AuditLog);

impl AuditLog<'_> {
    /// Grants reading the organisation's chain to a principal holding `audit.read`.
    pub async fn reader(&self, call: &TenantCall) -> Result<AuditReader, Error> {
        let TenantCall {
            principal,
            scope,
            request,
        } = call;
        let tx = self.store().begin_scoped(scope).await?;
        let (tx, _) = self
            .authorize(tx, principal, Permission::AUDIT_READ, request)
            .await?;
        drop(tx);
        Ok(AuditReader {
            scope: Some(*scope),
        })
    }

    /// Like [`Self::reader`], for an export: the export itself is recorded on the chain
    /// (`audit.exported`, with its filter), durably, before any event leaves.
    pub async fn export_reader(
        &self,
        call: &TenantCall,
        filter: &super::AuditFilter,
    ) -> Result<AuditReader, Error> {
        let reader = self.reader(call).await?;
        let when = |t: Option<time::OffsetDateTime>| t.map(time::OffsetDateTime::unix_timestamp);
        let event = super::AuditEvent::success(
            call.principal.actor(),
            "audit.exported",
            "organization",
            call.scope.org_id(),
        )
        .with_request(call.request.request_id.clone())
        .with_details(
            serde_json::json!({
                "filter": {
                    "actor_id": filter.actor_id,
                    "action": filter.action_prefix,
                    "resource_type": filter.resource_type,
                    "resource_id": filter.resource_id,
                    "outcome": filter.outcome.map(|o| o.as_str()),
                    "since": when(filter.since),
                    "until": when(filter.until),
                }
            })
            .to_string(),
        );
        self.audit_batcher().record(&call.scope, event).await?;
        Ok(reader)
    }

    /// Grants reading the operators' trail to an operator.
    pub fn operator_reader(&self, call: &OperatorCall) -> Result<AuditReader, Error> {
        let OperatorCall { principal, .. } = call;
        if principal.tier == Tier::Operator {
            Ok(AuditReader { scope: None })
        } else {
            Err(Error::WrongAudience(
                "only operators read the operators' trail",
            ))
        }
    }

    /// One page of events matching `filter`, newest first.
    pub async fn page(
        &self,
        reader: &AuditReader,
        filter: &AuditFilter,
        page: PageRequest,
    ) -> Result<Page<AuditView>, Error> {
        let before = match page.after.map(|c| c.created_at_micros) {
            Some(s) if s <= 0 => {
                return Ok(Page {
                    items: Vec::new(),
                    next_cursor: None,
                });
            }
            Some(s) => u64::try_from(s).ok(),
            None => None,
        };
        let limit = page.limit.get().saturating_add(1);
        let views = match &reader.scope {
            Some(scope) => {
                let mut tx = self.store().begin_scoped(scope).await?;
                let rows = tx.query_audit(filter, before, limit).await?;
                let mut views = Vec::with_capacity(rows.len());
                for record in rows {
                    let personal = match (&record.subject, &record.personal) {
                        (Some(subject), Some(sealed)) => self
                            .keyring()
                            .open_personal(tx.as_mut(), subject, sealed)
                            .await
                            .unwrap_or(None),
                        _ => None,
                    };
                    views.push(AuditView { record, personal });
                }
                views
            }
            None => {
                let mut tx = self.store().begin_read().await?;
                tx.query_operator_audit(filter, before, limit)
                    .await?
                    .into_iter()
                    .map(|record| AuditView {
                        record,
                        personal: None,
                    })
                    .collect()
            }
        };
        Ok(Page::from_overfetch(views, page.limit, |v| {
            Cursor::after_seq(v.record.seq)
        }))
    }
}
