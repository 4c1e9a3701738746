//! The product's records (C3): create, read, change, delete and list them, each decision taken
//! from the record's level, owner and allowed list and the caller's current permissions. The
//! content is sealed with the organisation's data key (D1) as a sealed field.

use time::OffsetDateTime;
use uuid::Uuid;

use super::access::{self, Caller};
use crate::audit::{self, AuditEvent};
use crate::context::TenantCall;
use crate::error::{Error, StoreError};
use crate::ids::{UserId, new_uuid};
use crate::keyring::{FieldRef, SealedKind};
use crate::store::{Level, RecordRow, TenantTx};

use super::{MAX_ALLOWED, MAX_CONTENT_BYTES, MAX_TAGS};

const CONTENT: &str = "content";

fn content_at(id: &str) -> FieldRef<'_> {
    FieldRef {
        kind: SealedKind::RecordContent,
        record_id: id,
        field: CONTENT,
    }
}

/// A record as the API shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordView {
    pub row: RecordRow,
    /// The content, opened (only on a single read).
    pub content: Option<serde_json::Value>,
    /// What let the caller read it: `owner`, `level:public`, `level:organization`,
    /// `allowed_list`, or `grant:{id}` for another organisation's record.
    pub via: String,
}

/// A new record.
#[derive(Debug, Clone, Default)]
pub struct NewRecord {
    pub kind: String,
    pub external_id: String,
    pub namespace: Option<String>,
    pub level: String,
    pub allowed: Vec<String>,
    pub tags: Vec<String>,
    pub content: Option<serde_json::Value>,
    pub expires_at: Option<OffsetDateTime>,
}

/// A change; `None` leaves a field alone. `Some(None)` clears the optional ones.
#[derive(Debug, Clone, Default)]
pub struct RecordChange {
    pub namespace: Option<Option<String>>,
    pub level: Option<String>,
    pub allowed: Option<Vec<String>>,
    pub tags: Option<Vec<String>>,
    pub content: Option<Option<serde_json::Value>>,
    pub expires_at: Option<Option<OffsetDateTime>>,
}

/// Listing filters.
#[derive(Debug, Clone, Default)]
pub struct RecordFilter {
    pub kind: Option<String>,
    pub namespace: Option<String>,
    pub tag: Option<String>,
    pub owner: Option<String>,
    /// Also other organisations' records that live grants let the caller read, ranked after
    /// all of its own.
    pub include_granted: bool,
}

fn text(field: &'static str, value: &str, max: usize) -> Result<String, Error> {
    if value.is_empty() || value.chars().count() > max || value.chars().any(char::is_control) {
        return Err(Error::invalid(
            field,
            format!("must be 1 to {max} characters, none of them control characters"),
        ));
    }
    Ok(value.to_owned())
}

pub(super) fn tags(list: &[String]) -> Result<Vec<String>, Error> {
    if list.len() > MAX_TAGS {
        return Err(Error::invalid("tags", format!("at most {MAX_TAGS}")));
    }
    let mut out: Vec<String> = Vec::with_capacity(list.len());
    for t in list {
        let ok = (1..=50).contains(&t.len())
            && t.bytes().all(|b| {
                b.is_ascii_lowercase()
                    || b.is_ascii_digit()
                    || matches!(b, b'_' | b'-' | b'.' | b':')
            });
        if !ok {
            return Err(Error::invalid(
                "tags",
                "each is 1 to 50 of a-z, 0-9, _, -, . and :",
            ));
        }
        if !out.contains(t) {
            out.push(t.clone());
        }
    }
    Ok(out)
}

fn allowed(list: &[String]) -> Result<Vec<String>, Error> {
    if list.len() > MAX_ALLOWED {
        return Err(Error::invalid("allowed", format!("at most {MAX_ALLOWED}")));
    }
    let mut out: Vec<String> = Vec::with_capacity(list.len());
    for entry in list {
        let canonical = access::subject_entry(entry)
            .ok_or_else(|| Error::invalid("allowed", "each entry is user:{uuid} or key:{uuid}"))?;
        if !out.contains(&canonical) {
            out.push(canonical);
        }
    }
    Ok(out)
}

/// A namespace: as [`text`], and without commas (grants list namespaces as `,a,b,`).
pub(super) fn namespace(value: &str) -> Result<String, Error> {
    if value.contains(',') {
        return Err(Error::invalid("namespace", "must not contain a comma"));
    }
    text("namespace", value, 100)
}

fn level(s: &str) -> Result<Level, Error> {
    Level::parse(s)
        .ok_or_else(|| Error::invalid("level", "must be one of private, organization, public"))
}

pub(super) fn content_bytes(value: &serde_json::Value) -> Result<Vec<u8>, Error> {
    let bytes = serde_json::to_vec(value).map_err(|e| Error::Internal(e.to_string()))?;
    if bytes.len() > MAX_CONTENT_BYTES {
        return Err(Error::invalid(
            "content",
            format!("at most {MAX_CONTENT_BYTES} bytes of JSON"),
        ));
    }
    Ok(bytes)
}

impl super::Records<'_> {
    fn future(&self, at: Option<OffsetDateTime>) -> Result<Option<OffsetDateTime>, Error> {
        match at {
            Some(t) if t <= self.clock().now() => {
                Err(Error::invalid("expires_at", "must be in the future"))
            }
            other => Ok(other),
        }
    }

    pub(super) async fn seal_content(
        &self,
        tx: &mut dyn TenantTx,
        id: Uuid,
        value: &serde_json::Value,
    ) -> Result<(), Error> {
        let bytes = content_bytes(value)?;
        self.keyring()
            .seal(tx, content_at(&id.to_string()), &bytes)
            .await
    }

    pub(super) async fn open_content(
        &self,
        tx: &mut dyn TenantTx,
        id: Uuid,
    ) -> Result<Option<serde_json::Value>, Error> {
        let Some(raw) = self.keyring().open(tx, content_at(&id.to_string())).await? else {
            return Ok(None);
        };
        serde_json::from_slice(raw.expose())
            .map(Some)
            .map_err(|e| Error::Unreadable(e.to_string()))
    }

    /// Applies a content change to `row` (sealing, removing or leaving it) and returns the
    /// content as it now is.
    pub(super) async fn apply_content(
        &self,
        tx: &mut dyn TenantTx,
        row: &mut RecordRow,
        change: Option<Option<serde_json::Value>>,
    ) -> Result<Option<serde_json::Value>, Error> {
        Ok(match change {
            Some(Some(c)) => {
                self.seal_content(tx, row.id, &c).await?;
                row.has_content = true;
                Some(c)
            }
            Some(None) => {
                tx.delete_sealed(
                    SealedKind::RecordContent.as_str(),
                    &row.id.to_string(),
                    CONTENT,
                )
                .await?;
                row.has_content = false;
                None
            }
            None if row.has_content => self.open_content(tx, row.id).await?,
            None => None,
        })
    }

    /// Creates a record owned by the caller. Needs the type's write permission.
    pub async fn create(&self, call: &TenantCall, input: NewRecord) -> Result<RecordView, Error> {
        let TenantCall {
            principal,
            scope,
            request,
        } = call;
        let kind = self
            .product()
            .record_type(&input.kind)
            .ok_or_else(|| Error::invalid("type", "is not a declared record type"))?
            .clone();
        let external_id = text("external_id", &input.external_id, 200)?;
        let namespace = input.namespace.as_deref().map(namespace).transpose()?;
        let level = level(&input.level)?;
        let allowed = allowed(&input.allowed)?;
        let tags = tags(&input.tags)?;
        let expires_at = self.future(input.expires_at)?;
        if let Some(c) = &input.content {
            content_bytes(c)?;
        }
        let mut tx = self.store().begin_scoped(scope).await?;
        let caller = self.access_of(tx.as_mut(), principal).await?;
        if !caller.holds(&kind.write) {
            let scope = *tx.scope();
            drop(tx);
            self.record_refusal(
                &scope,
                principal,
                "record.create_denied",
                serde_json::json!({"type": kind.name, "permission": kind.write}).to_string(),
                request,
            )
            .await;
            return Err(Error::Forbidden {
                permission: "the record type's write permission",
            });
        }
        self.may_change(principal, &kind.write, "permission")?;
        let now = self.clock().now();
        let row = RecordRow {
            org_id: scope.org_id(),
            id: new_uuid(self.clock()),
            kind: kind.name.clone(),
            external_id,
            namespace,
            owner: caller.me.clone(),
            level,
            allowed,
            tags,
            has_content: input.content.is_some(),
            created_at: now,
            updated_at: now,
            expires_at,
        };
        // An expired record holding the same external id is gone already (G3): it is removed
        // now, with its content, rather than blocking the id until the purge. The delete checks
        // the expiry itself, so an owner extending the record at this moment keeps it (and this
        // create then meets the id in use).
        let replaced = match tx.record_by_external(&row.kind, &row.external_id).await? {
            Some(old) if old.expired_at(now) && tx.delete_expired_record(old.id, now).await? => {
                tx.delete_sealed(
                    SealedKind::RecordContent.as_str(),
                    &old.id.to_string(),
                    CONTENT,
                )
                .await?;
                Some(old)
            }
            _ => None,
        };
        tx.insert_record(&row).await.map_err(|e| match e {
            StoreError::Duplicate => {
                Error::Conflict("a record of this type with this external_id exists")
            }
            other => other.into(),
        })?;
        if let Some(c) = &input.content {
            self.seal_content(tx.as_mut(), row.id, c).await?;
        }
        let mut events = Vec::with_capacity(2);
        if let Some(old) = &replaced {
            // The expired record's own end, on its own id, in the same transaction.
            events.push(
                AuditEvent::success(principal.actor(), "record.deleted", "record", old.id)
                    .with_details(
                        serde_json::json!({
                            "type": old.kind,
                            "reason": "expired",
                            "replaced_by": row.id,
                        })
                        .to_string(),
                    )
                    .with_request(request.request_id.clone()),
            );
        }
        events.push(
            AuditEvent::success(principal.actor(), "record.created", "record", row.id)
                .with_details(
                    serde_json::json!({
                        "type": row.kind,
                        "level": row.level.as_str(),
                        "replaced_expired": replaced.as_ref().map(|o| o.id),
                    })
                    .to_string(),
                )
                .with_request(request.request_id.clone()),
        );
        let proof = audit::append_tenant_batch(tx.as_mut(), self.clock(), events)
            .await?
            .ok_or_else(|| Error::Internal("no audit event for a created record".into()))?;
        tx.commit(proof).await?;
        self.record_changed(row.org_id, &row.kind, &row.external_id);
        Ok(RecordView {
            row,
            content: input.content,
            via: "owner".into(),
        })
    }

    /// A record the caller may read, with its content. One the caller may not read is
    /// `NotFound` (its existence is not told), and the refusal is recorded.
    pub async fn get(&self, call: &TenantCall, id: Uuid) -> Result<RecordView, Error> {
        let TenantCall {
            principal,
            scope,
            request,
        } = call;
        let mut tx = self.store().begin_read_scoped(scope).await?;
        let caller = self.access_of(tx.as_mut(), principal).await?;
        let now = self.clock().now();
        // An expired record is gone from its expiry instant, before any purge (G3).
        let Some(row) = tx.record(id).await?.filter(|r| !r.expired_at(now)) else {
            return self.get_granted(tx, &caller, call, id).await;
        };
        let Some(via) = access::can_read(&caller, self.product(), &row) else {
            let scope = *tx.scope();
            drop(tx);
            self.record_refusal(
                &scope,
                principal,
                "record.read_denied",
                serde_json::json!({"record": id}).to_string(),
                request,
            )
            .await;
            return Err(Error::NotFound("record"));
        };
        let content = if row.has_content {
            self.open_content(tx.as_mut(), id).await?
        } else {
            None
        };
        Ok(RecordView {
            row,
            content,
            via: via.into(),
        })
    }

    /// Changes a record the caller may write (its owner, or for a record that is not private,
    /// a holder of the type's write permission).
    pub async fn update(
        &self,
        call: &TenantCall,
        id: Uuid,
        change: RecordChange,
    ) -> Result<RecordView, Error> {
        let TenantCall {
            principal,
            scope,
            request,
        } = call;
        let mut tx = self.store().begin_scoped(scope).await?;
        let caller = self.access_of(tx.as_mut(), principal).await?;
        let locked = tx.lock_record(id).await?;
        // Read after the lock: a change that waited for another past the expiry sees it.
        let now = self.clock().now();
        let Some(mut row) = locked.filter(|r| !r.expired_at(now)) else {
            return self.update_granted(tx, &caller, call, id, change).await;
        };
        let readable = access::can_read(&caller, self.product(), &row);
        let Some(write_via) = access::can_write(&caller, self.product(), &row) else {
            let scope = *tx.scope();
            drop(tx);
            self.record_refusal(
                &scope,
                principal,
                "record.write_denied",
                serde_json::json!({"record": id}).to_string(),
                request,
            )
            .await;
            return Err(match readable {
                Some(_) => Error::Forbidden {
                    permission: "the record type's write permission",
                },
                None => Error::NotFound("record"),
            });
        };
        let write_permission = self
            .product()
            .record_type(&row.kind)
            .map(|t| t.write.clone())
            .unwrap_or_default();
        self.may_change(principal, &write_permission, write_via)?;
        // Who sees a record is its owner's to decide.
        if (change.level.is_some() || change.allowed.is_some()) && write_via != "owner" {
            return Err(Error::Forbidden {
                permission: "ownership of the record",
            });
        }
        if let Some(n) = change.namespace {
            row.namespace = n.as_deref().map(namespace).transpose()?;
        }
        if let Some(l) = &change.level {
            row.level = level(l)?;
        }
        if let Some(a) = &change.allowed {
            row.allowed = allowed(a)?;
        }
        if let Some(t) = &change.tags {
            row.tags = tags(t)?;
        }
        let expiry_changed = change.expires_at.is_some();
        if let Some(e) = change.expires_at {
            row.expires_at = self.future(e)?;
        }
        let content = self
            .apply_content(tx.as_mut(), &mut row, change.content)
            .await?;
        row.updated_at = self.clock().now();
        if !tx.update_record(&row).await? {
            return Err(Error::NotFound("record"));
        }
        let event = AuditEvent::success(principal.actor(), "record.updated", "record", id)
            .with_details(
                serde_json::json!({"type": row.kind, "level": row.level.as_str()}).to_string(),
            )
            .with_request(request.request_id.clone());
        let proof = audit::append_tenant(tx.as_mut(), self.clock(), event).await?;
        let committed = tx.commit(proof).await;
        if expiry_changed {
            // Rows kept for its links carry the old expiry.
            self.share_opens().forget_record(row.org_id, id);
            self.publish_revocation(crate::identity::Revocation::ShareLinks(row.org_id));
        }
        committed?;
        self.record_changed(row.org_id, &row.kind, &row.external_id);
        // The caller could read it before the change (writing needs reading); the view says
        // how it reads it now.
        let via = access::can_read(&caller, self.product(), &row).unwrap_or(write_via);
        Ok(RecordView {
            row,
            content,
            via: via.into(),
        })
    }

    /// Deletes a record the caller may write, with its sealed content.
    pub async fn delete(&self, call: &TenantCall, id: Uuid) -> Result<(), Error> {
        let TenantCall {
            principal,
            scope,
            request,
        } = call;
        let mut tx = self.store().begin_scoped(scope).await?;
        let caller = self.access_of(tx.as_mut(), principal).await?;
        let now = self.clock().now();
        let Some(row) = tx.record(id).await?.filter(|r| !r.expired_at(now)) else {
            // A grant never deletes: another organisation's record the caller reads through
            // one is refused as readable but not writable.
            let readable = self.granted_readable(tx.as_mut(), &caller, id).await?;
            if readable {
                drop(tx);
                self.record_refusal(
                    scope,
                    principal,
                    "record.write_denied",
                    serde_json::json!({"record": id, "reason": "grants_never_delete"}).to_string(),
                    request,
                )
                .await;
            }
            return Err(if readable {
                Error::Forbidden {
                    permission: "ownership of the record",
                }
            } else {
                Error::NotFound("record")
            });
        };
        let Some(write_via) = access::can_write(&caller, self.product(), &row) else {
            let readable = access::can_read(&caller, self.product(), &row).is_some();
            let scope = *tx.scope();
            drop(tx);
            self.record_refusal(
                &scope,
                principal,
                "record.write_denied",
                serde_json::json!({"record": id}).to_string(),
                request,
            )
            .await;
            return Err(if readable {
                Error::Forbidden {
                    permission: "the record type's write permission",
                }
            } else {
                Error::NotFound("record")
            });
        };
        let write_permission = self
            .product()
            .record_type(&row.kind)
            .map(|t| t.write.clone())
            .unwrap_or_default();
        self.may_change(principal, &write_permission, write_via)?;
        tx.delete_sealed(SealedKind::RecordContent.as_str(), &id.to_string(), CONTENT)
            .await?;
        tx.delete_record(id).await?;
        let event = AuditEvent::success(principal.actor(), "record.deleted", "record", id)
            .with_details(serde_json::json!({"type": row.kind}).to_string())
            .with_request(request.request_id.clone());
        let proof = audit::append_tenant(tx.as_mut(), self.clock(), event).await?;
        let committed = tx.commit(proof).await;
        // Its links went with it (a foreign key): none may be opened from memory either.
        self.share_opens().forget_record(row.org_id, id);
        self.publish_revocation(crate::identity::Revocation::ShareLinks(row.org_id));
        committed?;
        self.record_changed(row.org_id, &row.kind, &row.external_id);
        Ok(())
    }

    /// Who the caller is as a record subject, with the permissions it holds now.
    pub(crate) async fn access_of(
        &self,
        tx: &mut dyn TenantTx,
        principal: &crate::identity::Principal,
    ) -> Result<Caller, Error> {
        Ok(match &principal.api_key_permissions {
            Some(perms) => Caller {
                me: format!("key:{}", principal.subject),
                permissions: perms.clone().into(),
            },
            None => {
                // The membership is read now, not taken from the token: a removed member acts on
                // nothing, their own records included, from the next request on.
                let role = tx
                    .membership(UserId::from_uuid(principal.subject))
                    .await?
                    .map(|m| m.role)
                    .ok_or(Error::Forbidden {
                        permission: "membership",
                    })?;
                Caller {
                    me: format!("user:{}", principal.subject),
                    permissions: self.role_grants(tx, &role).await?.into(),
                }
            }
        })
    }

    /// Refuses a change by a caller whose email is unverified where such accounts only read,
    /// and, where the caller writes by the type's write permission rather than as the owner, a
    /// write permission that needs a recent second factor it has not shown.
    pub(super) fn may_change(
        &self,
        principal: &crate::identity::Principal,
        write_permission: &str,
        via: &str,
    ) -> Result<(), Error> {
        if !principal.email_verified
            && self.identity().settings().unverified_access
                == crate::identity::UnverifiedAccess::ReadOnly
        {
            return Err(Error::EmailUnverified);
        }
        if via != "owner"
            && let Some(method) = self.step_up_needed(principal, write_permission)
        {
            return Err(Error::StepUpRequired {
                permission: "the record type's write permission",
                method,
            });
        }
        Ok(())
    }
}
