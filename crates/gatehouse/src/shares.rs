//! D2: the master key split into shares (Shamir over GF(256), through `blahaj`), and the text an
//! operator carries one share in.
//!
//! A share's text is `ghs1-{key id}-{threshold}-{index}-{payload}-{checksum}`:
//! - `ghs1`: the format and its version;
//! - the key id: 8 base32 characters (40 bits) of SHA-256 over a label and the key's check value.
//!   The check value is already in the database (`kek_versions`), so the id tells nothing the
//!   database does not, and a sealed server can refuse a share of another key before combining;
//! - the threshold and the share's index (its x coordinate), in decimal: the server needs the
//!   threshold before any combining, and carrying it here keeps it out of configuration;
//! - the payload: the 32 share bytes (the y values), 52 base32 characters;
//! - the checksum: 8 base32 characters of SHA-256 over a label and everything before it, so a
//!   mistyped or changed character is refused on its own, before the share meets any other.
//!
//! Base32 (lower case, no padding) because operators copy and sometimes retype these: one case,
//! no punctuation inside a field. Input is read case-insensitively, whitespace anywhere ignored.

use std::fmt;

use data_encoding::BASE32_NOPAD;
use gatehouse_crypto::{Key32, SecretString, key_check_value, sha256};
use zeroize::{Zeroize, Zeroizing};

const PREFIX: &str = "ghs1";
const KEY_ID_LABEL: &[u8] = b"gatehouse.share-key-id.v1";
const CHECKSUM_LABEL: &[u8] = b"gatehouse.share-checksum.v1";
/// Enough for any board of operators; small enough that the pending shares a sealed server holds
/// stay few.
pub(crate) const MAX_SHARES: u8 = 32;

/// Which master key a share belongs to: derived from the key's check value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct KeyId([u8; 5]);

impl KeyId {
    /// The id of the key whose check value (`kek_versions.check_value`) is `check`.
    pub(crate) fn from_check_value(check: &[u8]) -> Self {
        let digest = sha256(&[KEY_ID_LABEL, check]);
        let mut id = [0u8; 5];
        for (dst, src) in id.iter_mut().zip(digest.iter()) {
            *dst = *src;
        }
        Self(id)
    }

    pub(crate) fn of_key(key: &Key32) -> Self {
        Self::from_check_value(&key_check_value(key))
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&BASE32_NOPAD.encode(&self.0).to_ascii_lowercase())
    }
}

/// One parsed share. The y values zero on drop.
pub(crate) struct Share {
    pub(crate) key_id: KeyId,
    pub(crate) threshold: u8,
    pub(crate) index: u8,
    y: Zeroizing<[u8; 32]>,
}

impl fmt::Debug for Share {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Share")
            .field("key_id", &self.key_id)
            .field("threshold", &self.threshold)
            .field("index", &self.index)
            .finish_non_exhaustive()
    }
}

/// Why a share, or a set of shares, was refused. Each says what to do, and none echoes a share.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ShareError {
    #[error("this is not a Gatehouse key share: {0}")]
    Malformed(&'static str),
    #[error(
        "the share's checksum does not match: a character was changed or mistyped; copy the \
         share again"
    )]
    Checksum,
    #[error("the share belongs to another master key than the one this server needs")]
    WrongKey,
    #[error("the share's threshold differs from the shares already submitted")]
    ThresholdMismatch,
    #[error("share {0} was already submitted")]
    Duplicate(u8),
    #[error("{have} share(s) given; this key needs {need}")]
    TooFew { have: usize, need: u8 },
    #[error(
        "the shares rebuilt a different key than the one they name: at least one of them is not a \
         share that was handed out"
    )]
    NotRebuilt,
    #[error("--shares must be between 2 and {MAX_SHARES}, and --threshold between 2 and --shares")]
    BadCounts,
    #[error("the secret-sharing library failed: {0}")]
    Library(String),
}

impl Share {
    /// Parses a share's text, checking its form and checksum (not yet its key).
    pub(crate) fn parse(text: &str) -> Result<Self, ShareError> {
        let mut clean: Zeroizing<String> = Zeroizing::new(
            text.chars()
                .filter(|c| !c.is_ascii_whitespace())
                .map(|c| c.to_ascii_lowercase())
                .collect(),
        );
        let Some((body, checksum)) = clean.rsplit_once('-') else {
            return Err(ShareError::Malformed("it has no fields"));
        };
        if checksum != checksum_of(body) {
            let prefix_ok = body.starts_with(&format!("{PREFIX}-"));
            clean.zeroize();
            return Err(if prefix_ok {
                ShareError::Checksum
            } else {
                ShareError::Malformed("it does not start with ghs1-")
            });
        }
        let fields: Vec<&str> = body.split('-').collect();
        let [prefix, key_id, threshold, index, payload] = fields.as_slice() else {
            return Err(ShareError::Malformed("it has the wrong number of fields"));
        };
        if *prefix != PREFIX {
            return Err(ShareError::Malformed("it does not start with ghs1-"));
        }
        let key_id =
            decode::<5>(key_id).ok_or(ShareError::Malformed("its key id is unreadable"))?;
        let threshold: u8 = threshold
            .parse()
            .map_err(|_| ShareError::Malformed("its threshold is not a number"))?;
        let index: u8 = index
            .parse()
            .map_err(|_| ShareError::Malformed("its index is not a number"))?;
        if !(2..=MAX_SHARES).contains(&threshold) || index == 0 || index > MAX_SHARES {
            return Err(ShareError::Malformed(
                "its threshold or index is out of range",
            ));
        }
        let y = Zeroizing::new(
            decode::<32>(payload).ok_or(ShareError::Malformed("its payload is unreadable"))?,
        );
        Ok(Self {
            key_id: KeyId(key_id),
            threshold,
            index,
            y,
        })
    }

    fn text(&self) -> SecretString {
        let payload = Zeroizing::new(BASE32_NOPAD.encode(self.y.as_ref()).to_ascii_lowercase());
        let body = Zeroizing::new(format!(
            "{PREFIX}-{}-{}-{}-{}",
            self.key_id,
            self.threshold,
            self.index,
            payload.as_str()
        ));
        let checksum = checksum_of(&body);
        SecretString::new(format!("{}-{checksum}", body.as_str()))
    }

    /// blahaj's byte form: the x coordinate, then the y values.
    fn raw(&self) -> Result<blahaj::Share, ShareError> {
        let mut bytes = Zeroizing::new([0u8; 33]);
        let (x, y) = bytes.split_at_mut(1);
        x.copy_from_slice(&[self.index]);
        y.copy_from_slice(self.y.as_ref());
        blahaj::Share::try_from(&bytes[..]).map_err(|e| ShareError::Library(e.to_owned()))
    }
}

fn checksum_of(body: &str) -> String {
    let digest = sha256(&[CHECKSUM_LABEL, body.as_bytes()]);
    BASE32_NOPAD
        .encode(digest.get(..5).unwrap_or(&[]))
        .to_ascii_lowercase()
}

fn decode<const N: usize>(text: &str) -> Option<[u8; N]> {
    let upper = Zeroizing::new(text.to_ascii_uppercase());
    let bytes = Zeroizing::new(BASE32_NOPAD.decode(upper.as_bytes()).ok()?);
    <[u8; N]>::try_from(bytes.as_slice()).ok()
}

/// Splits `key` into `shares` shares of which any `threshold` rebuild it, as texts to hand out.
pub(crate) fn split(
    key: &Key32,
    shares: u8,
    threshold: u8,
) -> Result<Vec<SecretString>, ShareError> {
    if !(2..=MAX_SHARES).contains(&shares) || !(2..=shares).contains(&threshold) {
        return Err(ShareError::BadCounts);
    }
    let key_id = KeyId::of_key(key);
    blahaj::Sharks(threshold)
        .dealer(key.expose())
        .take(usize::from(shares))
        .map(|raw| {
            let bytes = Zeroizing::new(Vec::from(&raw));
            let Some((&index, y)) = bytes.split_first() else {
                return Err(ShareError::Library("an empty share".into()));
            };
            let y = <[u8; 32]>::try_from(y)
                .map_err(|_| ShareError::Library("a share of the wrong length".into()))?;
            Ok(Share {
                key_id,
                threshold,
                index,
                y: Zeroizing::new(y),
            }
            .text())
        })
        .collect()
}

/// Rebuilds the key from shares of one key: all must agree on key id and threshold, no index may
/// repeat, and at least the threshold must be given.
pub(crate) fn combine(shares: &[Share]) -> Result<Key32, ShareError> {
    let Some(first) = shares.first() else {
        return Err(ShareError::TooFew { have: 0, need: 2 });
    };
    let mut seen = Vec::with_capacity(shares.len());
    for s in shares {
        if s.key_id != first.key_id {
            return Err(ShareError::WrongKey);
        }
        if s.threshold != first.threshold {
            return Err(ShareError::ThresholdMismatch);
        }
        if seen.contains(&s.index) {
            return Err(ShareError::Duplicate(s.index));
        }
        seen.push(s.index);
    }
    if shares.len() < usize::from(first.threshold) {
        return Err(ShareError::TooFew {
            have: shares.len(),
            need: first.threshold,
        });
    }
    let raw = shares
        .iter()
        .map(Share::raw)
        .collect::<Result<Vec<_>, _>>()?;
    let secret = Zeroizing::new(
        blahaj::Sharks(first.threshold)
            .recover(raw.as_slice())
            .map_err(|e| ShareError::Library(e.to_owned()))?,
    );
    let bytes = <[u8; 32]>::try_from(secret.as_slice())
        .map_err(|_| ShareError::Library("a secret of the wrong length".into()))?;
    let key = Key32::from_bytes(bytes);
    // Shares with valid checksums that were not dealt together (or were forged) still combine,
    // into some other key: its id tells.
    if KeyId::of_key(&key) != first.key_id {
        return Err(ShareError::NotRebuilt);
    }
    Ok(key)
}

#[cfg(test)]
#[path = "shares_tests.rs"]
mod tests;
