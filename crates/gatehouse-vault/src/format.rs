//! The vault file's bytes. Parsing never panics: every length is checked against what remains.

use std::collections::BTreeMap;

use gatehouse_crypto::SecretString;

use crate::VaultError;

const MAGIC: &[u8; 8] = b"GHVAULT1";
const FORMAT: u16 = 1;
const KDF_ARGON2ID: u8 = 1;
pub(crate) const HEADER_LEN: usize = 8 + 2 + 1 + 4 + 4 + 4 + 16;

/// Argon2id cost for deriving the vault key. Interactive strength: at least 64 MiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KdfParams {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl KdfParams {
    /// 64 MiB, three passes, one lane.
    pub const INTERACTIVE: Self = Self {
        memory_kib: 65_536,
        iterations: 3,
        parallelism: 1,
    };
}

impl Default for KdfParams {
    fn default() -> Self {
        Self::INTERACTIVE
    }
}

pub(crate) struct Parsed<'a> {
    pub header: &'a [u8],
    pub kdf: KdfParams,
    pub salt: [u8; 16],
    pub sealed: &'a [u8],
}

pub(crate) fn header(kdf: &KdfParams, salt: &[u8; 16]) -> Vec<u8> {
    let mut h = Vec::with_capacity(HEADER_LEN);
    h.extend_from_slice(MAGIC);
    h.extend_from_slice(&FORMAT.to_be_bytes());
    h.push(KDF_ARGON2ID);
    h.extend_from_slice(&kdf.memory_kib.to_be_bytes());
    h.extend_from_slice(&kdf.iterations.to_be_bytes());
    h.extend_from_slice(&kdf.parallelism.to_be_bytes());
    h.extend_from_slice(salt);
    h
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], VaultError> {
        if self.0.len() < n {
            return Err(VaultError::NotAVault("the file is truncated".into()));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn u32(&mut self) -> Result<u32, VaultError> {
        let b: [u8; 4] = self
            .take(4)?
            .try_into()
            .map_err(|_| VaultError::NotAVault("the file is truncated".into()))?;
        Ok(u32::from_be_bytes(b))
    }
}

pub(crate) fn parse(bytes: &[u8]) -> Result<Parsed<'_>, VaultError> {
    let mut r = Reader(bytes);
    if r.take(8)? != MAGIC {
        return Err(VaultError::NotAVault(
            "it does not start with the vault magic".into(),
        ));
    }
    let v: [u8; 2] = r
        .take(2)?
        .try_into()
        .map_err(|_| VaultError::NotAVault("the file is truncated".into()))?;
    let format = u16::from_be_bytes(v);
    if format != FORMAT {
        return Err(VaultError::NotAVault(format!(
            "format version {format} is not supported"
        )));
    }
    if r.take(1)? != [KDF_ARGON2ID] {
        return Err(VaultError::NotAVault(
            "unknown key-derivation function".into(),
        ));
    }
    let kdf = KdfParams {
        memory_kib: r.u32()?,
        iterations: r.u32()?,
        parallelism: r.u32()?,
    };
    // The parameters are read before anything is authenticated: a crafted file must not make
    // the key derivation allocate terabytes or run for ever.
    if kdf.memory_kib > 4 * 1024 * 1024 || kdf.iterations > 64 || kdf.parallelism > 16 {
        return Err(VaultError::NotAVault(
            "key-derivation parameters above the ceiling (4 GiB, 64 passes, 16 lanes)".into(),
        ));
    }
    let salt: [u8; 16] = r
        .take(16)?
        .try_into()
        .map_err(|_| VaultError::NotAVault("bad salt".into()))?;
    let (header, sealed) = bytes.split_at(HEADER_LEN);
    Ok(Parsed {
        header,
        kdf,
        salt,
        sealed,
    })
}

pub(crate) fn encode_entries(
    entries: &BTreeMap<String, SecretString>,
) -> Result<Vec<u8>, VaultError> {
    let too_big = || VaultError::NotAVault("an entry is larger than 4 GiB".into());
    let mut out = Vec::new();
    out.extend_from_slice(
        &u32::try_from(entries.len())
            .map_err(|_| too_big())?
            .to_be_bytes(),
    );
    for (name, value) in entries {
        for field in [name.as_bytes(), value.expose().as_bytes()] {
            out.extend_from_slice(
                &u32::try_from(field.len())
                    .map_err(|_| too_big())?
                    .to_be_bytes(),
            );
            out.extend_from_slice(field);
        }
    }
    Ok(out)
}

pub(crate) fn decode_entries(plain: &[u8]) -> Result<BTreeMap<String, SecretString>, VaultError> {
    let bad = || VaultError::NotAVault("the decrypted contents are malformed".into());
    let mut r = Reader(plain);
    let count = r.u32()?;
    let mut entries = BTreeMap::new();
    for _ in 0..count {
        let n = usize::try_from(r.u32()?).map_err(|_| bad())?;
        let name = std::str::from_utf8(r.take(n)?)
            .map_err(|_| bad())?
            .to_owned();
        let n = usize::try_from(r.u32()?).map_err(|_| bad())?;
        let value = std::str::from_utf8(r.take(n)?)
            .map_err(|_| bad())?
            .to_owned();
        entries.insert(name, SecretString::new(value));
    }
    if !r.0.is_empty() {
        return Err(bad());
    }
    Ok(entries)
}
