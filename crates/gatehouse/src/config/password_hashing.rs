//! `[password_hashing]`: Argon2id's cost, the hashing pool, and an optional pepper.

use std::path::PathBuf;

use gatehouse_crypto::{Argon2Params, Key32};
use serde::{Deserialize, Serialize};

use super::{ConfigError, refuse};
use crate::keyfile;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PasswordHashing {
    /// Hashing threads; defaults to the number of CPUs.
    pub workers: Option<usize>,
    /// Jobs that may wait for a thread; beyond this, sign-in answers 503 at once.
    pub queue: usize,
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
    /// A file holding a pepper (base64 of 32 random bytes, mode 0600): mixed into every new
    /// hash as Argon2's secret input. Hashes made with it need it for ever; keep it with the
    /// master key, not the database.
    pub pepper_file: Option<PathBuf>,
}

impl Default for PasswordHashing {
    fn default() -> Self {
        Self {
            workers: None,
            queue: 64,
            memory_kib: Argon2Params::MINIMUM.memory_kib,
            iterations: Argon2Params::MINIMUM.iterations,
            parallelism: Argon2Params::MINIMUM.parallelism,
            pepper_file: None,
        }
    }
}

/// What the password pool starts with.
#[derive(Debug, Clone)]
pub struct PasswordHashingSettings {
    pub workers: usize,
    pub queue: usize,
    pub argon2: Argon2Params,
    /// The pepper, read from its file once, here.
    pub pepper: Option<Key32>,
}

pub(super) fn validate(c: &PasswordHashing) -> Result<PasswordHashingSettings, ConfigError> {
    let argon2 = Argon2Params::new(c.memory_kib, c.iterations, c.parallelism)
        .map_err(|e| ConfigError(format!("password_hashing: {e}")))?;
    let pepper = match &c.pepper_file {
        Some(path) => Some(
            keyfile::read(path)
                .map_err(|e| ConfigError(format!("password_hashing.pepper_file: {e}")))?,
        ),
        None => None,
    };
    let workers = match c.workers {
        Some(0) => return refuse("password_hashing.workers: must be at least 1"),
        Some(n) => n,
        None => std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
    };
    Ok(PasswordHashingSettings {
        workers,
        queue: c.queue,
        argon2,
        pepper,
    })
}
