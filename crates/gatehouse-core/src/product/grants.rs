//! Grants between organisations (C4): an organisation's `grants.manage` holders let another
//! organisation read (or read and change) its records that are not private, optionally only
//! some types and namespaces, until an optional expiry. A grant works until the instant it
//! expires by the injected clock or is revoked. Listings and reads of records ask the store each
//! time; the check API's cached state is forgotten on every instance when a grant is made or
//! revoked (`Kernel::grant_changed`), and a grant's expiry is judged at each decision. The
//! grantee's members still need their own organisation's read (or write) permission for the
//! record's type.

use time::OffsetDateTime;
use uuid::Uuid;

use crate::audit::{self, AuditEvent};
use crate::context::TenantCall;
use crate::error::Error;
use crate::identity::Permission;
use crate::ids::{OrgId, new_uuid};
use crate::page::{Page, PageRequest};
use crate::store::{GrantAccess, GrantRow};

/// At most this many types or namespaces in one grant.
pub const MAX_GRANT_SCOPE: usize = 20;

/// A new grant.
#[derive(Debug, Clone, Default)]
pub struct NewGrant {
    /// The grantee organisation's id.
    pub organization: String,
    pub types: Vec<String>,
    pub namespaces: Vec<String>,
    /// `read` or `read_write`.
    pub access: String,
    pub expires_at: Option<OffsetDateTime>,
}

/// A grant as the API shows it, with whether it works now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantView {
    pub row: GrantRow,
    /// `live`, `expired` or `revoked`.
    pub status: &'static str,
}

impl GrantView {
    fn at(row: GrantRow, now: OffsetDateTime) -> Self {
        let status = if row.revoked_at.is_some() {
            "revoked"
        } else if row.live_at(now) {
            "live"
        } else {
            "expired"
        };
        Self { row, status }
    }
}

/// Grants between organisations (`product::grants`).
#[derive(Debug, Clone, Copy)]
pub struct Grants<'k>(pub(crate) &'k crate::kernel::Kernel);

crate::kernel::service_handle!(Grants);

impl crate::kernel::Kernel {
    /// Grants between organisations (C4).
    #[must_use]
    pub fn grants(&self) -> Grants<'_> {
        Grants(self)
    }
}

impl Grants<'_> {
    /// Grants `input.organization` access to the caller's organisation's records. Needs
    /// `grants.manage`.
    pub async fn create(&self, call: &TenantCall, input: NewGrant) -> Result<GrantView, Error> {
        let TenantCall {
            principal,
            scope,
            request,
        } = call;
        self.authorize_without_tx(principal, scope, Permission::GRANTS_MANAGE, request)
            .await?;
        let grantee = uuid::Uuid::try_parse(&input.organization)
            .map(OrgId::from_uuid)
            .map_err(|_| Error::invalid("organization", "is an organisation id"))?;
        if grantee == scope.org_id() {
            return Err(Error::invalid(
                "organization",
                "is your own organisation: its members need no grant",
            ));
        }
        let access = GrantAccess::parse(&input.access)
            .ok_or_else(|| Error::invalid("access", "must be read or read_write"))?;
        if input.types.len() > MAX_GRANT_SCOPE || input.namespaces.len() > MAX_GRANT_SCOPE {
            return Err(Error::invalid(
                "types",
                format!("at most {MAX_GRANT_SCOPE} types and {MAX_GRANT_SCOPE} namespaces"),
            ));
        }
        let mut types: Vec<String> = Vec::with_capacity(input.types.len());
        for t in &input.types {
            if self.product().record_type(t).is_none() {
                return Err(Error::invalid(
                    "types",
                    format!("{t:?} is not a declared record type"),
                ));
            }
            if !types.contains(t) {
                types.push(t.clone());
            }
        }
        let mut namespaces: Vec<String> = Vec::with_capacity(input.namespaces.len());
        for n in &input.namespaces {
            let ok = (1..=100).contains(&n.chars().count())
                && !n.chars().any(|c| c.is_control() || c == ',');
            if !ok {
                return Err(Error::invalid(
                    "namespaces",
                    "each is 1 to 100 characters, no commas or control characters",
                ));
            }
            if !namespaces.contains(n) {
                namespaces.push(n.clone());
            }
        }
        let now = self.clock().now();
        if input.expires_at.is_some_and(|t| t <= now) {
            return Err(Error::invalid("expires_at", "must be in the future"));
        }
        // The grantee must exist; the platform registry says so (a tenant scope sees only its
        // own organisation).
        let known = {
            let mut p = self.store().begin_read().await?;
            p.organization_by_id(grantee).await?.is_some()
        };
        if !known {
            return Err(Error::invalid(
                "organization",
                "is not an organisation here",
            ));
        }
        // Begun only now: checking the grantee above needed a connection of its own.
        let mut tx = self.store().begin_scoped(scope).await?;
        let row = GrantRow {
            org_id: scope.org_id(),
            id: new_uuid(self.clock()),
            grantee,
            types,
            namespaces,
            access,
            created_by: match principal.api_key_permissions {
                Some(_) => format!("key:{}", principal.subject),
                None => format!("user:{}", principal.subject),
            },
            created_at: now,
            expires_at: input.expires_at,
            revoked_at: None,
        };
        tx.insert_grant(&row).await?;
        let event = AuditEvent::success(principal.actor(), "grant.created", "grant", row.id)
            .with_details(
                serde_json::json!({
                    "grantee": grantee,
                    "access": access.as_str(),
                    "types": row.types,
                    "namespaces": row.namespaces,
                    "expires_at": row.expires_at.map(OffsetDateTime::unix_timestamp),
                })
                .to_string(),
            )
            .with_request(request.request_id.clone());
        let proof = audit::append_tenant(tx.as_mut(), self.clock(), event).await?;
        tx.commit(proof).await?;
        self.grant_changed(row.org_id, row.grantee);
        Ok(GrantView::at(row, now))
    }

    /// Grants the caller's organisation made, newest first. Needs `grants.manage`.
    pub async fn given(
        &self,
        call: &TenantCall,
        page: PageRequest,
    ) -> Result<Page<GrantView>, Error> {
        self.listing(call, page, false).await
    }

    /// Grants made to the caller's organisation, newest first. Needs `grants.manage`.
    pub async fn received(
        &self,
        call: &TenantCall,
        page: PageRequest,
    ) -> Result<Page<GrantView>, Error> {
        self.listing(call, page, true).await
    }

    async fn listing(
        &self,
        call: &TenantCall,
        page: PageRequest,
        incoming: bool,
    ) -> Result<Page<GrantView>, Error> {
        let TenantCall {
            principal,
            scope,
            request,
        } = call;
        self.authorize_without_tx(principal, scope, Permission::GRANTS_MANAGE, request)
            .await?;
        let mut tx = self.store().begin_read_scoped(scope).await?;
        let page = if incoming {
            tx.grants_received(page).await?
        } else {
            tx.grants_given(page).await?
        };
        let now = self.clock().now();
        Ok(Page {
            items: page
                .items
                .into_iter()
                .map(|mut g| {
                    // Who in the granting organisation made it is that organisation's business.
                    if incoming {
                        g.created_by = String::new();
                    }
                    GrantView::at(g, now)
                })
                .collect(),
            next_cursor: page.next_cursor,
        })
    }

    /// Revokes a grant the caller's organisation made (an expired one too), unless already
    /// revoked: it stops working at once. Needs
    /// `grants.manage`.
    pub async fn revoke(&self, call: &TenantCall, id: Uuid) -> Result<(), Error> {
        let TenantCall {
            principal,
            scope,
            request,
        } = call;
        let tx = self.store().begin_scoped(scope).await?;
        let (mut tx, _) = self
            .authorize(tx, principal, Permission::GRANTS_MANAGE, request)
            .await?;
        let grant = tx.grant(id).await?.ok_or(Error::NotFound("grant"))?;
        if !tx.revoke_grant(id, self.clock().now()).await? {
            return Err(Error::Conflict("the grant is already revoked"));
        }
        let event = AuditEvent::success(principal.actor(), "grant.revoked", "grant", id)
            .with_details(serde_json::json!({"grantee": grant.grantee}).to_string())
            .with_request(request.request_id.clone());
        let proof = audit::append_tenant(tx.as_mut(), self.clock(), event).await?;
        tx.commit(proof).await?;
        self.grant_changed(scope.org_id(), grant.grantee);
        Ok(())
    }
}
