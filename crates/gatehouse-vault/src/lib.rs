//! A local vault for desktop apps (A2): named credentials kept in one file, encrypted under a key
//! derived with Argon2id from a master password.
//!
//! File format, version 1 (all integers big-endian):
//!
//! ```text
//! magic "GHVAULT1" | format u16 = 1 | kdf u8 = 1 (Argon2id) | m KiB u32 | t u32 | p u32 |
//! salt [16] | nonce [12] | AES-256-GCM( entries ) with the 39 header bytes as associated data
//! entries: count u32, then per entry: name length u32, name, value length u32, value
//! ```
//!
//! The header is authenticated with the contents, so every byte of the file is covered. A wrong
//! password and a modified file are the same error by construction (the tag does not verify), and
//! neither changes anything on disk. Writes go to a temporary file that is synced and then renamed
//! over the old one, so a crash at any point leaves either the old or the new file.
#![forbid(unsafe_code)]

mod atomic;
mod format;
#[doc(hidden)]
pub mod fuzzing;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use gatehouse_crypto::{AeadKey, Argon2Params, Key32, SecretString, derive_key, fill_random};

pub use format::KdfParams;

#[derive(Debug)]
pub enum VaultError {
    /// The password is wrong or the file was modified; nothing was changed.
    WrongPasswordOrTampered,
    /// Not a vault file, or a format version this build cannot read.
    NotAVault(String),
    AlreadyExists(PathBuf),
    Io(std::io::Error),
    /// The random source, the KDF or the cipher failed.
    Crypto(String),
}

impl fmt::Display for VaultError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::WrongPasswordOrTampered => f.write_str(
                "the vault could not be opened: the master password is wrong or the file was modified (nothing was changed)",
            ),
            Self::NotAVault(why) => write!(f, "not a vault file this version can read: {why}"),
            Self::AlreadyExists(p) => write!(f, "{} already exists; refusing to overwrite it", p.display()),
            Self::Io(e) => write!(f, "vault file I/O failed: {e}"),
            Self::Crypto(e) => write!(f, "vault cryptography failed: {e}"),
        }
    }
}

impl std::error::Error for VaultError {}

impl From<std::io::Error> for VaultError {
    fn from(e: std::io::Error) -> Self {
        Self::Io(e)
    }
}

/// An open vault. Values are `SecretString`s; the derived key is zeroed on drop.
pub struct Vault {
    path: PathBuf,
    key: Key32,
    kdf: KdfParams,
    salt: [u8; 16],
    entries: BTreeMap<String, SecretString>,
}

impl fmt::Debug for Vault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Vault")
            .field("path", &self.path)
            .field("entries", &self.entries.len())
            .finish_non_exhaustive()
    }
}

fn derive(password: &SecretString, salt: &[u8; 16], kdf: &KdfParams) -> Result<Key32, VaultError> {
    let params = Argon2Params::new(kdf.memory_kib, kdf.iterations, kdf.parallelism)
        .map_err(|e| VaultError::Crypto(e.to_string()))?;
    derive_key(password, salt, &params).map_err(|e| VaultError::Crypto(e.to_string()))
}

fn new_salt() -> Result<[u8; 16], VaultError> {
    let mut salt = [0u8; 16];
    fill_random(&mut salt).map_err(|e| VaultError::Crypto(e.to_string()))?;
    Ok(salt)
}

impl Vault {
    /// Creates an empty vault at `path` (which must not exist) and writes it.
    pub fn create(
        path: &Path,
        password: &SecretString,
        kdf: KdfParams,
    ) -> Result<Self, VaultError> {
        if path.exists() {
            return Err(VaultError::AlreadyExists(path.to_path_buf()));
        }
        let salt = new_salt()?;
        let vault = Self {
            path: path.to_path_buf(),
            key: derive(password, &salt, &kdf)?,
            kdf,
            salt,
            entries: BTreeMap::new(),
        };
        vault.save()?;
        Ok(vault)
    }

    /// Opens the vault at `path` with `password`.
    pub fn open(path: &Path, password: &SecretString) -> Result<Self, VaultError> {
        let bytes = std::fs::read(path)?;
        let parsed = format::parse(&bytes)?;
        let key = derive(password, &parsed.salt, &parsed.kdf)?;
        let aead = AeadKey::new(&key).map_err(|e| VaultError::Crypto(e.to_string()))?;
        let plain = aead
            .open_raw(parsed.header, parsed.sealed)
            .map_err(|_| VaultError::WrongPasswordOrTampered)?;
        let entries = format::decode_entries(plain.expose())?;
        Ok(Self {
            path: path.to_path_buf(),
            key,
            kdf: parsed.kdf,
            salt: parsed.salt,
            entries,
        })
    }

    #[must_use]
    pub fn names(&self) -> Vec<&str> {
        self.entries.keys().map(String::as_str).collect()
    }

    #[must_use]
    pub fn get(&self, name: &str) -> Option<&SecretString> {
        self.entries.get(name)
    }

    /// Adds or replaces `name`. Call [`Self::save`] to persist.
    pub fn insert(&mut self, name: &str, value: SecretString) {
        self.entries.insert(name.to_owned(), value);
    }

    /// Removes `name`; returns whether it was there. Call [`Self::save`] to persist.
    pub fn remove(&mut self, name: &str) -> bool {
        self.entries.remove(name).is_some()
    }

    /// Re-keys the vault under a new password (and a new salt) and writes it.
    pub fn change_password(&mut self, new_password: &SecretString) -> Result<(), VaultError> {
        let salt = new_salt()?;
        let key = derive(new_password, &salt, &self.kdf)?;
        let previous = (std::mem::replace(&mut self.key, key), self.salt);
        self.salt = salt;
        if let Err(e) = self.save() {
            // Keep the in-memory state consistent with the file, which still has the old key.
            self.key = previous.0;
            self.salt = previous.1;
            return Err(e);
        }
        Ok(())
    }

    /// Writes the vault atomically.
    pub fn save(&self) -> Result<(), VaultError> {
        self.save_with(|| Ok(()))
    }

    fn save_with(
        &self,
        before_rename: impl FnOnce() -> std::io::Result<()>,
    ) -> Result<(), VaultError> {
        let header = format::header(&self.kdf, &self.salt);
        let plain = zeroize::Zeroizing::new(format::encode_entries(&self.entries)?);
        let aead = AeadKey::new(&self.key).map_err(|e| VaultError::Crypto(e.to_string()))?;
        let sealed = aead
            .seal_raw(&header, &plain)
            .map_err(|e| VaultError::Crypto(e.to_string()))?;
        let mut file = header;
        file.extend_from_slice(&sealed);
        atomic::write(&self.path, &file, before_rename)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
