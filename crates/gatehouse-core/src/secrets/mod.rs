//! The shared-secrets vault (D2): metadata in the store, each version's value sealed by the
//! keyring per version (`SharedSecret`, record = the secret's id, field = `v{n}`), so
//! organisation, secret and version are its associated data. No `/v1` route returns a value except
//! reveal; services get it through `use` on a person's behalf. Both are audited with who, which
//! secret and (for use) which service.

use gatehouse_crypto::SecretBytes;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::audit::{self, AuditEvent};
use crate::context::{RequestContext, ServiceCall, TenantCall};
use crate::error::{Error, StoreError};
use crate::identity::{Permission, Principal};
use crate::ids::new_uuid;
use crate::kernel::Kernel;
use crate::keyring::{FieldRef, SealedKind};
use crate::page::{Page, PageRequest};
use crate::scope::TenantScope;
use crate::store::{SecretRecord, SecretVersionRecord, TenantTx};

/// Values up to 64 KiB: credentials and certificates, not files.
pub const MAX_VALUE_BYTES: usize = 64 * 1024;

#[derive(Debug)]
pub struct NewSecret {
    pub name: String,
    pub value: SecretBytes,
    pub description: Option<String>,
    pub expires_at: Option<OffsetDateTime>,
}

/// A secret as listed: never its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretView {
    pub id: Uuid,
    pub name: String,
    pub description: Option<String>,
    pub current_version: u32,
    pub created_by: String,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub expires_at: Option<OffsetDateTime>,
}

impl From<SecretRecord> for SecretView {
    fn from(r: SecretRecord) -> Self {
        Self {
            id: r.id,
            name: r.name,
            description: r.description,
            current_version: r.current_version,
            created_by: r.created_by,
            created_at: r.created_at,
            updated_at: r.updated_at,
            expires_at: r.expires_at,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretVersionView {
    pub version: u32,
    pub created_by: String,
    pub created_at: OffsetDateTime,
}

fn field(version: u32) -> String {
    format!("v{version}")
}

/// 1 to 128 of letters, digits and `_ - . /`: names end up in URLs and environment variables.
fn check_name(name: &str) -> Result<String, Error> {
    let ok = (1..=128).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'/'));
    if ok {
        Ok(name.to_owned())
    } else {
        Err(Error::invalid(
            "name",
            "must be 1 to 128 of letters, digits, _ - . /",
        ))
    }
}

fn check_value(value: &SecretBytes) -> Result<(), Error> {
    if value.expose().is_empty() || value.expose().len() > MAX_VALUE_BYTES {
        return Err(Error::invalid("value", "must be 1 byte to 64 KiB"));
    }
    Ok(())
}

/// The shared-secrets vault (D2).
#[derive(Debug, Clone, Copy)]
pub struct Secrets<'k>(pub(crate) &'k Kernel);

crate::kernel::service_handle!(Secrets);

impl Secrets<'_> {
    async fn authorized(
        &self,
        principal: &Principal,
        scope: &TenantScope,
        permission: Permission,
        request: &RequestContext,
    ) -> Result<Box<dyn TenantTx>, Error> {
        let tx = self.store().begin_scoped(scope).await?;
        Ok(self.authorize(tx, principal, permission, request).await?.0)
    }

    /// A live secret of the scope: not deleted, and not expired at `now` (G3: an expired secret
    /// is gone for every caller from that instant, before the purge removes it).
    async fn live_secret(
        tx: &mut dyn TenantTx,
        id: Uuid,
        now: OffsetDateTime,
    ) -> Result<SecretRecord, Error> {
        tx.secret(id)
            .await?
            .filter(|s| s.deleted_at.is_none() && s.expires_at.is_none_or(|e| e > now))
            .ok_or(Error::NotFound("secret"))
    }

    pub async fn create(&self, call: &TenantCall, input: NewSecret) -> Result<SecretView, Error> {
        let TenantCall {
            principal,
            scope,
            request,
        } = call;
        crate::identity::refuse_under_impersonation(
            principal,
            "an impersonation cannot store secret values",
        )?;
        let name = check_name(&input.name)?;
        check_value(&input.value)?;
        let description = match input.description {
            Some(d) => Some(
                crate::inputs::DisplayName::parse("description", &d)?
                    .as_str()
                    .to_owned(),
            ),
            None => None,
        };
        let now = self.clock().now();
        if input.expires_at.is_some_and(|e| e <= now) {
            return Err(Error::invalid("expires_at", "must be in the future"));
        }
        let mut tx = self
            .authorized(principal, scope, Permission::SECRETS_MANAGE, request)
            .await?;
        let record = SecretRecord {
            org_id: scope.org_id(),
            id: new_uuid(self.clock()),
            name,
            description,
            current_version: 1,
            created_by: principal.actor().id,
            created_at: now,
            updated_at: now,
            expires_at: input.expires_at,
            deleted_at: None,
        };
        match tx.insert_secret(&record).await {
            Err(StoreError::Duplicate) => {
                return Err(Error::Conflict("a secret with this name exists"));
            }
            other => other?,
        }
        let id = record.id.to_string();
        self.keyring()
            .seal(
                tx.as_mut(),
                FieldRef {
                    kind: SealedKind::SharedSecret,
                    record_id: &id,
                    field: &field(1),
                },
                input.value.expose(),
            )
            .await?;
        let event = AuditEvent::success(principal.actor(), "secret.created", "secret", record.id)
            .with_details(format!(
                "{{\"name\":{},\"version\":1}}",
                serde_json::Value::String(record.name.clone())
            ))
            .with_request(request.request_id.clone());
        let proof = audit::append_tenant(tx.as_mut(), self.clock(), event).await?;
        tx.commit(proof).await?;
        Ok(record.into())
    }

    pub async fn list(
        &self,
        call: &TenantCall,
        page: PageRequest,
    ) -> Result<Page<SecretView>, Error> {
        let TenantCall {
            principal,
            scope,
            request,
        } = call;
        // Listing names is what using needs: `secrets.use` (or more).
        let mut tx = self
            .authorized(principal, scope, Permission::SECRETS_USE, request)
            .await?;
        let page = tx.list_secrets(self.clock().now(), page).await?;
        Ok(Page {
            items: page.items.into_iter().map(SecretView::from).collect(),
            next_cursor: page.next_cursor,
        })
    }

    pub async fn get(
        &self,
        call: &TenantCall,
        id: Uuid,
    ) -> Result<(SecretView, Vec<SecretVersionView>), Error> {
        let TenantCall {
            principal,
            scope,
            request,
        } = call;
        let mut tx = self
            .authorized(principal, scope, Permission::SECRETS_USE, request)
            .await?;
        let secret = Self::live_secret(tx.as_mut(), id, self.clock().now()).await?;
        let versions = tx
            .secret_versions(id)
            .await?
            .into_iter()
            .map(|v| SecretVersionView {
                version: v.version,
                created_by: v.created_by,
                created_at: v.created_at,
            })
            .collect();
        Ok((secret.into(), versions))
    }

    /// Adds a version with a new value; earlier versions stay (listable, revealable).
    pub async fn update(
        &self,
        call: &TenantCall,
        id: Uuid,
        value: SecretBytes,
    ) -> Result<SecretView, Error> {
        let TenantCall {
            principal,
            scope,
            request,
        } = call;
        crate::identity::refuse_under_impersonation(
            principal,
            "an impersonation cannot store secret values",
        )?;
        check_value(&value)?;
        let mut tx = self
            .authorized(principal, scope, Permission::SECRETS_MANAGE, request)
            .await?;
        let secret = Self::live_secret(tx.as_mut(), id, self.clock().now()).await?;
        let version = secret.current_version.saturating_add(1);
        let now = self.clock().now();
        if !tx
            .add_secret_version(&SecretVersionRecord {
                org_id: scope.org_id(),
                secret_id: id,
                version,
                created_by: principal.actor().id,
                created_at: now,
            })
            .await?
        {
            return Err(Error::Conflict(
                "the secret changed meanwhile; read it again and retry",
            ));
        }
        let rid = id.to_string();
        self.keyring()
            .seal(
                tx.as_mut(),
                FieldRef {
                    kind: SealedKind::SharedSecret,
                    record_id: &rid,
                    field: &field(version),
                },
                value.expose(),
            )
            .await?;
        let event = AuditEvent::success(principal.actor(), "secret.updated", "secret", id)
            .with_details(format!("{{\"version\":{version}}}"))
            .with_request(request.request_id.clone());
        let proof = audit::append_tenant(tx.as_mut(), self.clock(), event).await?;
        tx.commit(proof).await?;
        Ok(SecretView {
            current_version: version,
            updated_at: now,
            ..secret.into()
        })
    }

    /// Deletes the secret: its sealed values are destroyed with it, its metadata stays for the
    /// audit trail.
    pub async fn delete(&self, call: &TenantCall, id: Uuid) -> Result<(), Error> {
        let TenantCall {
            principal,
            scope,
            request,
        } = call;
        let mut tx = self
            .authorized(principal, scope, Permission::SECRETS_MANAGE, request)
            .await?;
        let secret = Self::live_secret(tx.as_mut(), id, self.clock().now()).await?;
        if !tx.delete_secret(id, self.clock().now()).await? {
            return Err(Error::NotFound("secret"));
        }
        let rid = id.to_string();
        for v in tx.secret_versions(id).await? {
            tx.delete_sealed(SealedKind::SharedSecret.as_str(), &rid, &field(v.version))
                .await?;
        }
        let event = AuditEvent::success(principal.actor(), "secret.deleted", "secret", id)
            .with_details(format!(
                "{{\"name\":{}}}",
                serde_json::Value::String(secret.name)
            ))
            .with_request(request.request_id.clone());
        let proof = audit::append_tenant(tx.as_mut(), self.clock(), event).await?;
        tx.commit(proof).await?;
        Ok(())
    }

    /// Opens version `version` (default: current) inside an authorized transaction and commits
    /// `event` with it (its details: the version, plus `service` when given), so the value leaves
    /// only once its audit event is durable.
    async fn open_secret(
        &self,
        mut tx: Box<dyn TenantTx>,
        id: Uuid,
        version: Option<u32>,
        event: AuditEvent,
        service: Option<(&str, Option<&str>)>,
    ) -> Result<SecretBytes, Error> {
        let secret = Self::live_secret(tx.as_mut(), id, self.clock().now()).await?;
        let version = version.unwrap_or(secret.current_version);
        let rid = id.to_string();
        let value = self
            .keyring()
            .open(
                tx.as_mut(),
                FieldRef {
                    kind: SealedKind::SharedSecret,
                    record_id: &rid,
                    field: &field(version),
                },
            )
            .await?
            .ok_or(Error::NotFound("secret version"))?;
        let details = match service {
            Some((s, label)) => {
                serde_json::json!({ "version": version, "service": s, "service_label": label })
            }
            None => serde_json::json!({ "version": version }),
        };
        let event = event.with_details(details.to_string());
        let proof = audit::append_tenant(tx.as_mut(), self.clock(), event).await?;
        tx.commit(proof).await?;
        Ok(value)
    }

    /// Shows a value to a person: needs `secrets.reveal` (and, by default, a recent second
    /// factor). Audited as `secret.revealed`.
    pub async fn reveal(
        &self,
        call: &TenantCall,
        id: Uuid,
        version: Option<u32>,
    ) -> Result<SecretBytes, Error> {
        let TenantCall {
            principal,
            scope,
            request,
        } = call;
        let tx = self
            .authorized(principal, scope, Permission::SECRETS_REVEAL, request)
            .await?;
        // A person's recent second factor, whatever the step-up settings say: the password
        // fallback and a configuration without `secrets.reveal` in the list do not apply here.
        if let Some(method) = self.second_factor_missing(principal) {
            drop(tx);
            self.record_refusal(
                scope,
                principal,
                "permission.step_up_required",
                format!(
                    "{{\"permission\":\"{}\"}}",
                    Permission::SECRETS_REVEAL.as_str()
                ),
                request,
            )
            .await;
            return Err(Error::StepUpRequired {
                permission: Permission::SECRETS_REVEAL.as_str(),
                method,
            });
        }
        let event = AuditEvent::success(principal.actor(), "secret.revealed", "secret", id)
            .with_request(request.request_id.clone());
        self.open_secret(tx, id, version, event, None).await
    }

    /// Hands a value to one of the deployment's own services acting for `principal` (a person's
    /// access token), who needs `secrets.use` in the token's organisation. Audited as
    /// `secret.used`, naming the person (the actor) and the service.
    pub async fn use_on_behalf(
        &self,
        call: &ServiceCall,
        principal: &Principal,
        id: Uuid,
    ) -> Result<SecretBytes, Error> {
        let ServiceCall {
            service,
            label,
            request,
            ..
        } = call;
        if principal.api_key_permissions.is_some() {
            return Err(Error::WrongAudience(
                "on-behalf-of needs a person's access token, not an API key",
            ));
        }
        if principal.tier == crate::store::Tier::Impersonation {
            return Err(Error::WrongAudience(
                "an impersonation cannot have secrets used on the user's behalf",
            ));
        }
        let org = principal.org.ok_or(Error::OrganizationRequired)?;
        let scope = TenantScope::granted(org);
        let tx = self
            .authorized(principal, &scope, Permission::SECRETS_USE, request)
            .await?;
        let event = AuditEvent::success(principal.actor(), "secret.used", "secret", id)
            .with_request(request.request_id.clone());
        self.open_secret(tx, id, None, event, Some((service, label.as_deref())))
            .await
    }
}
