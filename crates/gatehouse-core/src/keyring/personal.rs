//! Personal data in audit events, erasable per data subject (G2) without breaking the chain.
//!
//! Each subject (a user) gets a random 256-bit key, stored as a sealed field of kind
//! `subject_key` (so it is under the organisation's data key: rotated, re-encrypted and shredded
//! with everything else). An event's personal data is sealed under that key, with the
//! organisation and subject as associated data. Erasing the subject deletes the key: every event
//! naming them keeps its ciphertext, which the chain hashes, and nobody can open it again.

use std::collections::HashMap;

use gatehouse_crypto::{AeadKey, EnvelopeHeader, Key32, context, random_key};

use super::Keyring;
use super::fields::{FieldRef, SealedKind};
use crate::error::Error;
use crate::store::TenantTx;

/// The personal fields an event may carry.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PersonalData {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

/// Subject keys carry no version of their own: version 0 in both header slots.
const SUBJECT_KEY_VERSIONS: EnvelopeHeader = EnvelopeHeader {
    kek_version: 0,
    dek_version: 0,
};

fn key_field(subject: &str) -> FieldRef<'_> {
    FieldRef {
        kind: SealedKind::SubjectKey,
        record_id: subject,
        field: "key",
    }
}

fn personal_context(tx: &dyn TenantTx, subject: &str) -> Vec<u8> {
    context(
        "gatehouse.personal.v1",
        &[tx.scope().org_id().as_uuid().as_bytes(), subject.as_bytes()],
    )
}

fn encode(d: &PersonalData) -> Vec<u8> {
    let mut out = Vec::new();
    for field in [&d.ip, &d.user_agent] {
        match field {
            None => out.push(0),
            Some(v) => {
                out.push(1);
                out.extend_from_slice(&u32::try_from(v.len()).unwrap_or(u32::MAX).to_be_bytes());
                out.extend_from_slice(v.as_bytes());
            }
        }
    }
    out
}

fn decode(mut bytes: &[u8]) -> Option<PersonalData> {
    let take = |bytes: &mut &[u8]| -> Option<Option<String>> {
        let (&flag, rest) = bytes.split_first()?;
        *bytes = rest;
        if flag == 0 {
            return Some(None);
        }
        let (len, rest) = bytes.split_at_checked(4)?;
        let len = usize::try_from(u32::from_be_bytes(len.try_into().ok()?)).ok()?;
        let (value, rest) = rest.split_at_checked(len)?;
        *bytes = rest;
        Some(Some(String::from_utf8(value.to_vec()).ok()?))
    };
    let ip = take(&mut bytes)?;
    let user_agent = take(&mut bytes)?;
    bytes.is_empty().then_some(PersonalData { ip, user_agent })
}

fn seal_with(
    key: &Key32,
    tx: &dyn TenantTx,
    subject: &str,
    data: &PersonalData,
) -> Result<Vec<u8>, Error> {
    let aead = AeadKey::new(key).map_err(|e| Error::Internal(e.to_string()))?;
    aead.seal_envelope(
        SUBJECT_KEY_VERSIONS,
        &personal_context(tx, subject),
        &encode(data),
    )
    .map_err(|e| Error::Internal(e.to_string()))
}

impl Keyring {
    async fn subject_key(
        &self,
        tx: &mut dyn TenantTx,
        subject: &str,
    ) -> Result<Option<Key32>, Error> {
        let Some(raw) = self.open(tx, key_field(subject)).await? else {
            return Ok(None);
        };
        let bytes: [u8; 32] = raw
            .expose()
            .try_into()
            .map_err(|_| Error::Unreadable("subject key has the wrong length".into()))?;
        Ok(Some(Key32::from_bytes(bytes)))
    }

    /// Seals `data` under `subject`'s key (made on first use) for an audit event.
    pub async fn seal_personal(
        &self,
        tx: &mut dyn TenantTx,
        subject: &str,
        data: &PersonalData,
    ) -> Result<Vec<u8>, Error> {
        let key = self.subject_key_or_new(tx, subject).await?;
        seal_with(&key, tx, subject, data)
    }

    /// [`Self::seal_personal`] for many events in one transaction: each subject's key is read
    /// (or made) once, kept in `keys` for the rest of the batch.
    pub async fn seal_personal_cached(
        &self,
        tx: &mut dyn TenantTx,
        keys: &mut HashMap<String, Key32>,
        subject: &str,
        data: &PersonalData,
    ) -> Result<Vec<u8>, Error> {
        if !keys.contains_key(subject) {
            let key = self.subject_key_or_new(tx, subject).await?;
            keys.insert(subject.to_owned(), key);
        }
        let key = keys
            .get(subject)
            .ok_or_else(|| Error::Internal("a subject key left the batch's cache".into()))?;
        seal_with(key, tx, subject, data)
    }

    async fn subject_key_or_new(
        &self,
        tx: &mut dyn TenantTx,
        subject: &str,
    ) -> Result<Key32, Error> {
        if let Some(k) = self.subject_key(tx, subject).await? {
            return Ok(k);
        }
        let k = random_key().map_err(|e| Error::Internal(e.to_string()))?;
        if self
            .seal_if_absent(tx, key_field(subject), k.expose())
            .await?
        {
            Ok(k)
        } else {
            // Another transaction made this subject's key first: use theirs.
            self.subject_key(tx, subject).await?.ok_or_else(|| {
                Error::Internal("the subject key vanished while being created".into())
            })
        }
    }

    /// Opens personal data sealed for `subject`; `None` once the subject has been erased.
    pub async fn open_personal(
        &self,
        tx: &mut dyn TenantTx,
        subject: &str,
        sealed: &[u8],
    ) -> Result<Option<PersonalData>, Error> {
        let Some(key) = self.subject_key(tx, subject).await? else {
            return Ok(None);
        };
        let aead = AeadKey::new(&key).map_err(|e| Error::Internal(e.to_string()))?;
        let plain = aead
            .open_envelope(sealed, &personal_context(tx, subject))
            .map_err(|e| Error::Unreadable(e.to_string()))?;
        decode(plain.expose())
            .map(Some)
            .ok_or_else(|| Error::Unreadable("personal data is malformed".into()))
    }

    /// Destroys `subject`'s key: their personal data in every event becomes unreadable. Returns
    /// whether there was a key.
    pub async fn erase_subject(&self, tx: &mut dyn TenantTx, subject: &str) -> Result<bool, Error> {
        Ok(tx
            .delete_sealed(SealedKind::SubjectKey.as_str(), subject, "key")
            .await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_round_trips_and_refuses_garbage() {
        for d in [
            PersonalData::default(),
            PersonalData {
                ip: Some("203.0.113.9".into()),
                user_agent: None,
            },
            PersonalData {
                ip: Some("::1".into()),
                user_agent: Some("curl/8".into()),
            },
        ] {
            assert_eq!(decode(&encode(&d)), Some(d));
        }
        assert_eq!(decode(&[1, 0, 0, 0, 9, b'x']), None);
        assert_eq!(decode(&[0, 0, 7]), None);
    }
}
