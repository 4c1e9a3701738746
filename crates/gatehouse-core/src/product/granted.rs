//! Records through grants (C4), and listings that span the caller's own records and granted
//! ones. A granted record is read in the grantee's scope, where PostgreSQL's `granted_read`
//! policy admits it; its content is opened, and a change written, in the owner's scope, after
//! the grant was found live and covering there too. Listings rank every own record before any
//! granted one: the own records are paged through first, then the granted ones, and the
//! cursor says which of the two a page continues (`g.` before a granted page's position).

use uuid::Uuid;

use super::access::{self, Caller};
use super::records::{RecordChange, RecordFilter, RecordView, tags};
use crate::audit::{self, AuditEvent};
use crate::context::TenantCall;
use crate::error::Error;
use crate::page::{Cursor, Limit, Page, PageRequest};
use crate::scope::TenantScope;
use crate::store::{GrantAccess, GrantedRecord, RecordQuery, TenantTx};

/// Where a listing page starts.
enum Start {
    Own(Option<Cursor>),
    Granted(Option<Cursor>),
}

const GRANTED_PREFIX: &str = "g.";

fn parse_cursor(cursor: Option<&str>) -> Result<Start, Error> {
    Ok(match cursor.filter(|c| !c.is_empty()) {
        None => Start::Own(None),
        Some(c) => match c.strip_prefix(GRANTED_PREFIX) {
            Some("") => Start::Granted(None),
            Some(inner) => Start::Granted(Some(Cursor::decode(inner)?)),
            None => Start::Own(Some(Cursor::decode(c)?)),
        },
    })
}

impl super::Records<'_> {
    /// Whether `caller` may read a granted record: a live grant covers it (the store checked)
    /// and the caller's own organisation lets it read the type.
    fn granted_via(&self, caller: &Caller, g: &GrantedRecord) -> Option<String> {
        access::can_via_grant(caller, self.product(), &g.record, false, g.access)
            .then(|| format!("grant:{}", g.grant_id))
    }

    pub(super) async fn granted_readable(
        &self,
        tx: &mut dyn TenantTx,
        caller: &Caller,
        id: Uuid,
    ) -> Result<bool, Error> {
        let now = self.clock().now();
        Ok(tx
            .granted_record(id, now)
            .await?
            .is_some_and(|g| self.granted_via(caller, &g).is_some()))
    }

    /// Another organisation's record through a live grant, with its content.
    pub(super) async fn get_granted(
        &self,
        mut tx: Box<dyn TenantTx>,
        caller: &Caller,
        call: &TenantCall,
        id: Uuid,
    ) -> Result<RecordView, Error> {
        let now = self.clock().now();
        // No record here or through a grant: nothing to record (an unknown id costs no write).
        let Some(found) = tx.granted_record(id, now).await? else {
            return Err(Error::NotFound("record"));
        };
        let Some(via) = self.granted_via(caller, &found) else {
            drop(tx);
            self.record_refusal(
                &call.scope,
                &call.principal,
                "record.read_denied",
                serde_json::json!({"record": id}).to_string(),
                &call.request,
            )
            .await;
            return Err(Error::NotFound("record"));
        };
        drop(tx);
        let (mut record, content) = if found.record.has_content {
            // The owner's scope holds the key. The grant and the record are read again there,
            // so content is opened only under a grant still live and covering the record as it
            // is now (not made private since the first read).
            let owner = TenantScope::granted(found.record.org_id);
            let mut otx = self.store().begin_read_scoped(&owner).await?;
            let grant = otx.grant(found.grant_id).await?;
            let fresh = otx.record(id).await?;
            let Some(fresh) = fresh.filter(|r| {
                grant.as_ref().is_some_and(|gr| {
                    gr.grantee == call.scope.org_id()
                        && gr.live_at(now)
                        && gr.covers(r)
                        && !r.expired_at(now)
                })
            }) else {
                return Err(Error::NotFound("record"));
            };
            let content = if fresh.has_content {
                self.open_content(otx.as_mut(), id).await?
            } else {
                None
            };
            (fresh, content)
        } else {
            (found.record, None)
        };
        // Who may read it inside its own organisation is not the grantee's to see.
        record.allowed.clear();
        Ok(RecordView {
            row: record,
            content,
            via,
        })
    }

    /// Changes another organisation's record through a live `read_write` grant: its content and
    /// tags only (who reads it, its namespace and expiry stay its owner's to decide). The
    /// caller needs the type's write permission in its own organisation.
    pub(super) async fn update_granted(
        &self,
        mut tx: Box<dyn TenantTx>,
        caller: &Caller,
        call: &TenantCall,
        id: Uuid,
        change: RecordChange,
    ) -> Result<RecordView, Error> {
        let TenantCall {
            principal,
            scope,
            request,
        } = call;
        let now = self.clock().now();
        let Some(g) = tx.granted_record(id, now).await? else {
            return Err(Error::NotFound("record"));
        };
        drop(tx);
        let readable = self.granted_via(caller, &g);
        let write = self
            .product()
            .record_type(&g.record.kind)
            .map(|t| t.write.clone())
            .unwrap_or_default();
        let Some(via) = readable
            .clone()
            .filter(|_| g.access == GrantAccess::ReadWrite && caller.holds(&write))
        else {
            let readable = readable.is_some();
            self.record_refusal(
                scope,
                principal,
                "record.write_denied",
                serde_json::json!({"record": id}).to_string(),
                request,
            )
            .await;
            return Err(if readable {
                Error::Forbidden {
                    permission: "a read_write grant and the type's write permission",
                }
            } else {
                Error::NotFound("record")
            });
        };
        if change.level.is_some()
            || change.allowed.is_some()
            || change.namespace.is_some()
            || change.expires_at.is_some()
        {
            self.record_refusal(
                scope,
                principal,
                "record.write_denied",
                serde_json::json!({"record": id, "via": via, "reason": "owner_only_field"})
                    .to_string(),
                request,
            )
            .await;
            return Err(Error::Forbidden {
                permission: "ownership of the record",
            });
        }
        self.may_change(principal, &write, "grant")?;
        // The owner's scope: the grant is read again there (revoked or expired since, the
        // change is refused), the content sealed under the owner's key, the change on the
        // owner's audit chain.
        let owner = TenantScope::granted(g.record.org_id);
        let mut otx = self.store().begin_scoped(&owner).await?;
        let grant = otx.lock_grant(g.grant_id).await?;
        let record = otx.lock_record(id).await?;
        // Read after both locks: a change that waited past an expiry sees it.
        let now = self.clock().now();
        let still = grant.filter(|gr| {
            gr.grantee == scope.org_id() && gr.access == GrantAccess::ReadWrite && gr.live_at(now)
        });
        let mut row = match (still, record) {
            (Some(gr), Some(row)) if gr.covers(&row) && !row.expired_at(now) => row,
            _ => return Err(Error::NotFound("record")),
        };
        if let Some(t) = &change.tags {
            row.tags = tags(t)?;
        }
        let content = self
            .apply_content(otx.as_mut(), &mut row, change.content)
            .await?;
        row.updated_at = now;
        if !otx.update_record(&row).await? {
            return Err(Error::NotFound("record"));
        }
        let event = AuditEvent::success(principal.actor(), "record.updated", "record", id)
            .with_details(
                serde_json::json!({
                    "type": row.kind,
                    "via": via,
                    "organization": scope.org_id(),
                })
                .to_string(),
            )
            .with_request(request.request_id.clone());
        let proof = audit::append_tenant(otx.as_mut(), self.clock(), event).await?;
        otx.commit(proof).await?;
        self.record_changed(row.org_id, &row.kind, &row.external_id);
        row.allowed.clear();
        Ok(RecordView { row, content, via })
    }

    /// The records the caller may read, without their content: its own organisation's, newest
    /// first, then (with `include_granted`) those live grants let it read, newest first.
    pub async fn list(
        &self,
        call: &TenantCall,
        filter: RecordFilter,
        cursor: Option<&str>,
        limit: Option<u32>,
    ) -> Result<Page<RecordView>, Error> {
        let TenantCall {
            principal, scope, ..
        } = call;
        let limit = Limit::parse(limit)?;
        let from = parse_cursor(cursor)?;
        if matches!(from, Start::Granted(_)) && !filter.include_granted {
            return Err(Error::invalid(
                "cursor",
                "continues a listing with include_granted",
            ));
        }
        if let Some(owner) = &filter.owner
            && access::subject_entry(owner).is_none()
        {
            return Err(Error::invalid("owner", "is user:{uuid} or key:{uuid}"));
        }
        if let Some(t) = &filter.tag {
            tags(std::slice::from_ref(t))?;
        }
        let mut tx = self.store().begin_read_scoped(scope).await?;
        let caller = self.access_of(tx.as_mut(), principal).await?;
        let query = RecordQuery {
            kind: filter.kind,
            namespace: filter.namespace,
            tag: filter.tag,
            owner: filter.owner.as_deref().and_then(access::subject_entry),
            me: caller.me.clone(),
            readable_types: self
                .product()
                .record_types
                .iter()
                .filter(|t| caller.holds(&t.read))
                .map(|t| t.name.clone())
                .collect(),
            now: Some(self.clock().now()),
            everything: false,
        };
        let mut items = Vec::new();
        let granted_from = match from {
            Start::Own(after) => {
                let page = tx
                    .list_records(&query, PageRequest { after, limit })
                    .await?;
                let full = page.next_cursor.is_some();
                // The store filtered already; the same decision is taken again here, so a row
                // the two disagree about is left out rather than shown.
                items.extend(page.items.into_iter().filter_map(|row| {
                    let via = access::can_read(&caller, self.product(), &row)?;
                    Some(RecordView {
                        row,
                        content: None,
                        via: via.into(),
                    })
                }));
                if full {
                    return Ok(Page {
                        items,
                        next_cursor: page.next_cursor,
                    });
                }
                if !filter.include_granted {
                    return Ok(Page {
                        items,
                        next_cursor: None,
                    });
                }
                None
            }
            Start::Granted(after) => after,
        };
        let room = limit
            .get()
            .saturating_sub(u32::try_from(items.len()).unwrap_or(u32::MAX));
        let now = self.clock().now();
        if room == 0 {
            // The own records filled this page exactly: a granted page follows if there is one.
            let peek = tx
                .list_granted_records(
                    &query,
                    now,
                    PageRequest {
                        after: None,
                        limit: Limit::parse(Some(1))?,
                    },
                )
                .await?;
            return Ok(Page {
                items,
                next_cursor: (!peek.items.is_empty()).then(|| GRANTED_PREFIX.to_owned()),
            });
        }
        let page = tx
            .list_granted_records(
                &query,
                now,
                PageRequest {
                    after: granted_from,
                    limit: Limit::parse(Some(room))?,
                },
            )
            .await?;
        items.extend(page.items.into_iter().filter_map(|mut g| {
            if g.record.expired_at(now) {
                return None;
            }
            let via = self.granted_via(&caller, &g)?;
            g.record.allowed.clear();
            Some(RecordView {
                row: g.record,
                content: None,
                via,
            })
        }));
        Ok(Page {
            items,
            next_cursor: page.next_cursor.map(|c| format!("{GRANTED_PREFIX}{c}")),
        })
    }
}
