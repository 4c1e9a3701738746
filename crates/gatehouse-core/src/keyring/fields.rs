//! Sealing and opening fields. The seal writes its envelope through the caller's transaction, so a
//! sealed value commits or rolls back with the change it belongs to.

use gatehouse_crypto::{EnvelopeHeader, SecretBytes, context};

use super::Keyring;
use crate::error::Error;
use crate::ids::OrgId;
use crate::store::{SealedRecord, TenantTx};

/// What a sealed value is. Part of its associated data: a value of one kind never opens as
/// another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SealedKind {
    TotpSecret,
    SharedSecret,
    ConnectorToken,
    AuditPersonalData,
    TransitField,
    /// A data subject's key for their personal data in audit events.
    SubjectKey,
    /// The JSON content of one of the product's records.
    RecordContent,
    /// A webhook endpoint's signing secret, one field per version.
    WebhookSecret,
    /// The client secret of an organisation's single sign-on provider.
    SsoClientSecret,
    /// An organisation's OAuth provider's client secret.
    OAuthClientSecret,
}

impl SealedKind {
    pub const ALL: [Self; 10] = [
        Self::TotpSecret,
        Self::SharedSecret,
        Self::ConnectorToken,
        Self::AuditPersonalData,
        Self::TransitField,
        Self::SubjectKey,
        Self::RecordContent,
        Self::WebhookSecret,
        Self::SsoClientSecret,
        Self::OAuthClientSecret,
    ];

    #[must_use]
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::TotpSecret => "totp_secret",
            Self::SharedSecret => "shared_secret",
            Self::ConnectorToken => "connector_token",
            Self::AuditPersonalData => "audit_personal_data",
            Self::TransitField => "transit_field",
            Self::SubjectKey => "subject_key",
            Self::RecordContent => "record_content",
            Self::WebhookSecret => "webhook_secret",
            Self::SsoClientSecret => "sso_client_secret",
            Self::OAuthClientSecret => "oauth_client_secret",
        }
    }
}

/// Where a sealed value lives: kind, record and field (the organisation is the transaction's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldRef<'a> {
    pub kind: SealedKind,
    pub record_id: &'a str,
    pub field: &'a str,
}

pub(super) fn field_context(org: OrgId, kind: &str, record_id: &str, field: &str) -> Vec<u8> {
    context(
        "gatehouse.field.v1",
        &[
            org.as_uuid().as_bytes(),
            kind.as_bytes(),
            record_id.as_bytes(),
            field.as_bytes(),
        ],
    )
}

impl Keyring {
    /// Seals `plaintext` at `at` in the transaction's organisation, replacing any previous value.
    pub async fn seal(
        &self,
        tx: &mut dyn TenantTx,
        at: FieldRef<'_>,
        plaintext: &[u8],
    ) -> Result<(), Error> {
        let org = tx.scope().org_id();
        let (version, key) = self.current_dek(tx).await?;
        let used = tx.count_encryption(version).await?;
        let envelope = key
            .seal_envelope(
                EnvelopeHeader {
                    kek_version: self.kek_version,
                    dek_version: version,
                },
                &field_context(org, at.kind.as_str(), at.record_id, at.field),
                plaintext,
            )
            .map_err(|e| Error::Internal(e.to_string()))?;
        tx.put_sealed(&SealedRecord {
            org_id: org,
            kind: at.kind.as_str().to_owned(),
            record_id: at.record_id.to_owned(),
            field: at.field.to_owned(),
            dek_version: version,
            envelope,
            updated_at: self.clock.now(),
        })
        .await?;
        if used >= self.settings.max_encryptions_per_key {
            // The budget of this version is spent: later writes get a fresh key.
            self.add_dek_version(tx).await?;
        }
        Ok(())
    }

    /// Seals `plaintext` at `at` only if nothing is sealed there yet; returns whether it did.
    /// Two transactions racing to create the same value keep the first one's.
    pub async fn seal_if_absent(
        &self,
        tx: &mut dyn TenantTx,
        at: FieldRef<'_>,
        plaintext: &[u8],
    ) -> Result<bool, Error> {
        let org = tx.scope().org_id();
        let (version, key) = self.current_dek(tx).await?;
        tx.count_encryption(version).await?;
        let envelope = key
            .seal_envelope(
                EnvelopeHeader {
                    kek_version: self.kek_version,
                    dek_version: version,
                },
                &field_context(org, at.kind.as_str(), at.record_id, at.field),
                plaintext,
            )
            .map_err(|e| Error::Internal(e.to_string()))?;
        Ok(tx
            .insert_sealed_if_absent(&SealedRecord {
                org_id: org,
                kind: at.kind.as_str().to_owned(),
                record_id: at.record_id.to_owned(),
                field: at.field.to_owned(),
                dek_version: version,
                envelope,
                updated_at: self.clock.now(),
            })
            .await?)
    }

    /// Opens the value at `at`, or `None` when nothing is sealed there.
    pub async fn open(
        &self,
        tx: &mut dyn TenantTx,
        at: FieldRef<'_>,
    ) -> Result<Option<SecretBytes>, Error> {
        let Some(record) = tx.sealed(at.kind.as_str(), at.record_id, at.field).await? else {
            return Ok(None);
        };
        self.open_record(tx, &record).await.map(Some)
    }

    /// Opens many sealed values of one organisation (an export's page): each data-key version
    /// is read once for the lot, not once per value. Returns the values in `records`' order.
    pub async fn open_many(
        &self,
        tx: &mut dyn TenantTx,
        records: &[SealedRecord],
    ) -> Result<Vec<SecretBytes>, Error> {
        let org = tx.scope().org_id();
        let mut keys: std::collections::HashMap<u32, std::sync::Arc<gatehouse_crypto::AeadKey>> =
            std::collections::HashMap::new();
        let mut out = Vec::with_capacity(records.len());
        for record in records {
            let key = match keys.get(&record.dek_version) {
                Some(k) => std::sync::Arc::clone(k),
                None => {
                    let k = self.dek(tx, record.dek_version).await?;
                    keys.insert(record.dek_version, std::sync::Arc::clone(&k));
                    k
                }
            };
            out.push(
                key.open_envelope(
                    &record.envelope,
                    &field_context(org, &record.kind, &record.record_id, &record.field),
                )
                .map_err(|e| Error::Unreadable(e.to_string()))?,
            );
        }
        Ok(out)
    }

    pub(super) async fn open_record(
        &self,
        tx: &mut dyn TenantTx,
        record: &SealedRecord,
    ) -> Result<SecretBytes, Error> {
        let org = tx.scope().org_id();
        let key = self.dek(tx, record.dek_version).await?;
        key.open_envelope(
            &record.envelope,
            &field_context(org, &record.kind, &record.record_id, &record.field),
        )
        .map_err(|e| Error::Unreadable(e.to_string()))
    }
}
