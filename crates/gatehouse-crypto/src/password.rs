//! Argon2id password hashing in PHC string format.
//!
//! Parameters are floored at OWASP's minimum for Argon2id (m = 19 MiB, t = 2, p = 1); a caller can
//! raise them but not lower them, so a misconfiguration cannot weaken stored hashes.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

use crate::secret::SecretString;

/// Argon2id cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Argon2Params {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl Argon2Params {
    /// OWASP's current minimum for Argon2id.
    pub const MINIMUM: Self = Self {
        memory_kib: 19_456,
        iterations: 2,
        parallelism: 1,
    };

    /// Accepts parameters at or above [`Self::MINIMUM`] in every dimension.
    pub fn new(memory_kib: u32, iterations: u32, parallelism: u32) -> Result<Self, PasswordError> {
        let p = Self {
            memory_kib,
            iterations,
            parallelism,
        };
        if memory_kib < Self::MINIMUM.memory_kib
            || iterations < Self::MINIMUM.iterations
            || parallelism < Self::MINIMUM.parallelism
        {
            return Err(PasswordError::WeakParameters);
        }
        p.hasher().map(|_| p)
    }

    fn hasher(&self) -> Result<Argon2<'static>, PasswordError> {
        let params = Params::new(self.memory_kib, self.iterations, self.parallelism, None)
            .map_err(|_| PasswordError::WeakParameters)?;
        Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
    }

    /// The dearest cost accepted from a hash made elsewhere (an import), unless the configured
    /// cost is dearer still: 64 MiB, 8 passes, 4 lanes. Beyond it, one sign-in attempt would hold
    /// a hashing thread and its memory for too long.
    pub const CEILING: Self = Self {
        memory_kib: 64 * 1024,
        iterations: 8,
        parallelism: 4,
    };

    /// The cost an Argon2 PHC string (any variant) was made with, parsed by the `argon2` crate;
    /// `None` when it is not an Argon2 hash, or not one [`verify_password_peppered`] can check
    /// (its version, parameters, salt or hash cannot be read).
    #[must_use]
    pub fn of_hash(phc: &str) -> Option<Self> {
        let p = StoredHash::read(phc).ok()?.params;
        Some(Self {
            memory_kib: p.m_cost(),
            iterations: p.t_cost(),
            parallelism: p.p_cost(),
        })
    }

    /// Whether `phc` is an Argon2id hash with no secret input (`keyid`) of another system's.
    #[must_use]
    pub fn is_plain_argon2id(phc: &str) -> bool {
        PasswordHash::new(phc).is_ok_and(|p| {
            p.algorithm == argon2::ARGON2ID_IDENT && p.params.get_str("keyid").is_none()
        })
    }

    /// The componentwise larger of two costs.
    #[must_use]
    pub fn max(&self, other: &Self) -> Self {
        Self {
            memory_kib: self.memory_kib.max(other.memory_kib),
            iterations: self.iterations.max(other.iterations),
            parallelism: self.parallelism.max(other.parallelism),
        }
    }

    /// Whether the cost is at least one of OWASP's equivalent Argon2id minimums (m=47104 t=1,
    /// m=19456 t=2, m=12288 t=3, m=9216 t=4, m=7168 t=5): memory at least 7 MiB and memory
    /// times passes at least that of the cheapest, m=7168 t=5.
    #[must_use]
    pub fn meets_owasp_minimum(&self) -> bool {
        self.memory_kib >= 7168
            && u64::from(self.memory_kib) * u64::from(self.iterations) >= 7168 * 5
            && self.parallelism >= 1
    }

    /// Whether every parameter is at most `ceiling`'s.
    #[must_use]
    pub fn within(&self, ceiling: &Self) -> bool {
        self.memory_kib <= ceiling.memory_kib
            && self.iterations <= ceiling.iterations
            && self.parallelism <= ceiling.parallelism
    }

    /// Whether every parameter is at least `floor`'s.
    #[must_use]
    pub fn at_least(&self, floor: &Self) -> bool {
        self.memory_kib >= floor.memory_kib
            && self.iterations >= floor.iterations
            && self.parallelism >= floor.parallelism
    }
}

impl Default for Argon2Params {
    fn default() -> Self {
        Self::MINIMUM
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordError {
    /// Parameters below the floor, or not accepted by Argon2.
    WeakParameters,
    /// The random source failed, or hashing failed internally.
    HashFailed,
    /// The stored hash is not a PHC string we can read.
    MalformedHash,
    /// The stored hash was made with a pepper that is not configured.
    PepperMissing,
}

impl std::fmt::Display for PasswordError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::WeakParameters => {
                "Argon2id parameters must be at least m=19456 KiB, t=2, p=1 and accepted by Argon2"
            }
            Self::HashFailed => "password hashing failed",
            Self::MalformedHash => "the stored password hash is not a readable PHC string",
            Self::PepperMissing => {
                "the stored password hash was made with a pepper that is not configured"
            }
        })
    }
}

impl std::error::Error for PasswordError {}

/// A pepper: a server-side secret mixed into every Argon2id hash as Argon2's secret input (RFC
/// 9106 "K"), so a stolen database alone cannot be attacked offline. Hashes name it by an 8-byte
/// id (`keyid` in the PHC string), derived from the pepper, never the pepper itself.
pub struct Pepper {
    key: crate::secret::Key32,
    id: [u8; 8],
}

impl std::fmt::Debug for Pepper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pepper([redacted])")
    }
}

impl Pepper {
    #[must_use]
    pub fn new(key: crate::secret::Key32) -> Self {
        let digest = crate::sha256(&[b"gatehouse.pepper.id.v1", key.expose()]);
        let mut id = [0u8; 8];
        id.copy_from_slice(digest.get(..8).unwrap_or(&[0u8; 8]));
        Self { key, id }
    }

    /// The `keyid` parameter's value in the PHC strings this pepper makes (unpadded base64),
    /// which names the pepper without revealing it.
    #[must_use]
    pub fn phc_keyid(&self) -> String {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(self.id)
    }
}

/// Hashes `password` with a fresh 128-bit salt. Slow by design: call it off the async runtime.
pub fn hash_password(
    password: &SecretString,
    params: &Argon2Params,
) -> Result<String, PasswordError> {
    hash_password_peppered(password, params, None)
}

/// Like [`hash_password`], with the pepper (when given) as Argon2's secret input and its id in
/// the PHC string.
pub fn hash_password_peppered(
    password: &SecretString,
    params: &Argon2Params,
    pepper: Option<&Pepper>,
) -> Result<String, PasswordError> {
    let mut salt_bytes = [0u8; 16];
    crate::fill_random(&mut salt_bytes).map_err(|_| PasswordError::HashFailed)?;
    let salt = SaltString::encode_b64(&salt_bytes).map_err(|_| PasswordError::HashFailed)?;
    let hash = match pepper {
        None => params
            .hasher()?
            .hash_password(password.expose().as_bytes(), &salt)
            .map_err(|_| PasswordError::HashFailed)?,
        Some(p) => {
            let keyid = argon2::KeyId::new(&p.id).map_err(|_| PasswordError::HashFailed)?;
            let mut builder = argon2::ParamsBuilder::new();
            builder
                .m_cost(params.memory_kib)
                .t_cost(params.iterations)
                .p_cost(params.parallelism)
                .keyid(keyid);
            let argon_params = builder.build().map_err(|_| PasswordError::WeakParameters)?;
            Argon2::new_with_secret(
                p.key.expose(),
                Algorithm::Argon2id,
                Version::V0x13,
                argon_params,
            )
            .map_err(|_| PasswordError::HashFailed)?
            .hash_password(password.expose().as_bytes(), &salt)
            .map_err(|_| PasswordError::HashFailed)?
        }
    };
    Ok(hash.to_string())
}

/// Checks `password` against a stored PHC string in constant time (the comparison is Argon2's).
pub fn verify_password(password: &SecretString, phc: &str) -> Result<bool, PasswordError> {
    let parsed = PasswordHash::new(phc).map_err(|_| PasswordError::MalformedHash)?;
    if !lanes_in_range(&parsed) {
        return Err(PasswordError::MalformedHash);
    }
    match Argon2::default().verify_password(password.expose().as_bytes(), &parsed) {
        Ok(()) => Ok(true),
        Err(argon2::password_hash::Error::Password) => Ok(false),
        Err(_) => Err(PasswordError::MalformedHash),
    }
}

/// Argon2 working memory kept by one thread between verifications, so a sign-in flood does not
/// map, fault in and unmap 19 MiB per attempt (the unmapping interrupts every other core to flush
/// TLBs, which showed up as millisecond stalls in request latency). Zeroed on drop and on `clear`.
#[derive(Default)]
pub struct HashScratch(Vec<argon2::Block>);

impl std::fmt::Debug for HashScratch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HashScratch({} blocks)", self.0.len())
    }
}

impl HashScratch {
    /// Zeroes and releases the memory.
    pub fn clear(&mut self) {
        use zeroize::Zeroize as _;
        for b in &mut self.0 {
            b.zeroize();
        }
        self.0 = Vec::new();
    }
}

impl Drop for HashScratch {
    fn drop(&mut self) {
        self.clear();
    }
}

/// Like [`verify_password`], with the working memory in `scratch` (Argon2 hashes only; other
/// algorithms are refused as malformed). The PHC string is parsed by `password-hash`; the result
/// is compared in constant time.
pub fn verify_password_with(
    password: &SecretString,
    phc: &str,
    scratch: &mut HashScratch,
) -> Result<bool, PasswordError> {
    verify_password_peppered(password, phc, scratch, None)
}

/// Whether every `p` (lanes) of a PHC string is one Argon2 allows. Checked before the `argon2`
/// crate reads the parameters: its `Params::new` (0.5) multiplies `p` by 8 before it checks `p`'s
/// bound, which overflows for `p` of 2^29 or more (a panic wherever overflow checks are on).
fn lanes_in_range(parsed: &PasswordHash<'_>) -> bool {
    parsed
        .params
        .iter()
        .filter(|(name, _)| name.as_str() == "p")
        .all(|(_, value)| value.decimal().is_ok_and(|p| p <= Params::MAX_P_COST))
}

/// Everything verifying against a PHC string needs, read and checked before any hashing, so that
/// what the import accepts (through [`Argon2Params::of_hash`]) is exactly what can be verified.
struct StoredHash {
    algorithm: Algorithm,
    version: Version,
    params: Params,
    expected: argon2::password_hash::Output,
    salt: [u8; 64],
    salt_len: usize,
}

impl StoredHash {
    fn read(phc: &str) -> Result<Self, PasswordError> {
        fn malformed<E>(_: E) -> PasswordError {
            PasswordError::MalformedHash
        }
        let parsed = PasswordHash::new(phc).map_err(malformed)?;
        if !lanes_in_range(&parsed) {
            return Err(PasswordError::MalformedHash);
        }
        let algorithm = Algorithm::try_from(parsed.algorithm).map_err(malformed)?;
        let version = match parsed.version {
            Some(v) => Version::try_from(v).map_err(malformed)?,
            None => Version::V0x13,
        };
        let params = Params::try_from(&parsed).map_err(malformed)?;
        let expected = parsed.hash.ok_or(PasswordError::MalformedHash)?;
        let mut salt = [0u8; 64];
        let salt_len = parsed
            .salt
            .ok_or(PasswordError::MalformedHash)?
            .decode_b64(&mut salt)
            .map_err(malformed)?
            .len();
        if salt_len < argon2::MIN_SALT_LEN {
            return Err(PasswordError::MalformedHash);
        }
        Ok(Self {
            algorithm,
            version,
            params,
            expected,
            salt,
            salt_len,
        })
    }
}

/// Like [`verify_password_with`]. A hash that names a pepper (`keyid`) verifies only with that
/// pepper; a hash without one verifies without it, so hashes made before a pepper was configured
/// keep working (and are rehashed with it at the next sign-in, see [`needs_rehash_peppered`]).
pub fn verify_password_peppered(
    password: &SecretString,
    phc: &str,
    scratch: &mut HashScratch,
    pepper: Option<&Pepper>,
) -> Result<bool, PasswordError> {
    let StoredHash {
        algorithm,
        version,
        params,
        expected,
        salt: salt_buf,
        salt_len,
    } = StoredHash::read(phc)?;
    let salt = salt_buf
        .get(..salt_len)
        .ok_or(PasswordError::MalformedHash)?;
    let blocks = params.block_count();
    if scratch.0.len() < blocks {
        scratch.0.resize(blocks, argon2::Block::default());
    }
    let memory = scratch
        .0
        .get_mut(..blocks)
        .ok_or(PasswordError::HashFailed)?;
    let mut out = zeroize::Zeroizing::new(vec![0u8; expected.len()]);
    let hasher = if params.keyid().is_empty() {
        Argon2::new(algorithm, version, params)
    } else {
        let p = pepper
            .filter(|p| params.keyid() == p.id.as_slice())
            .ok_or(PasswordError::PepperMissing)?;
        Argon2::new_with_secret(p.key.expose(), algorithm, version, params)
            .map_err(|_| PasswordError::HashFailed)?
    };
    hasher
        .hash_password_into_with_memory(password.expose().as_bytes(), salt, &mut out, memory)
        .map_err(|_| PasswordError::HashFailed)?;
    Ok(crate::ct_eq(&out, expected.as_bytes()))
}

/// Whether a stored hash should be replaced at the next successful sign-in: it is not an Argon2id
/// hash [`verify_password_peppered`] can check, or any of its parameters is below `params` (the
/// configured ones, which only ever rise).
#[must_use]
pub fn needs_rehash(phc: &str, params: &Argon2Params) -> bool {
    needs_rehash_peppered(phc, params, None)
}

/// Like [`needs_rehash`]; with a pepper configured, a hash not made with it is replaced too.
#[must_use]
pub fn needs_rehash_peppered(phc: &str, params: &Argon2Params, pepper: Option<&Pepper>) -> bool {
    let Ok(StoredHash {
        algorithm: Algorithm::Argon2id,
        params: stored,
        ..
    }) = StoredHash::read(phc)
    else {
        return true;
    };
    let pepper_differs = pepper.is_some_and(|p| stored.keyid() != p.id.as_slice());
    pepper_differs
        || stored.m_cost() < params.memory_kib
        || stored.t_cost() < params.iterations
        || stored.p_cost() < params.parallelism
}

/// Derives a 256-bit key from `password` and `salt` with Argon2id (for the local vault). Slow by
/// design.
pub fn derive_key(
    password: &SecretString,
    salt: &[u8],
    params: &Argon2Params,
) -> Result<crate::Key32, PasswordError> {
    let mut out = zeroize::Zeroizing::new([0u8; 32]);
    params
        .hasher()?
        .hash_password_into(password.expose().as_bytes(), salt, out.as_mut())
        .map_err(|_| PasswordError::HashFailed)?;
    Ok(crate::Key32::from_bytes(*out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_s_cost_is_read_and_compared() {
        let phc = hash_password(
            &SecretString::from("correct horse battery".to_owned()),
            &Argon2Params::MINIMUM,
        )
        .unwrap();
        let p = Argon2Params::of_hash(&phc).unwrap();
        assert_eq!(p, Argon2Params::MINIMUM);
        assert!(p.within(&Argon2Params::CEILING) && p.at_least(&Argon2Params::MINIMUM));
        let dear = phc.replace("m=19456", "m=4194304");
        let dear = Argon2Params::of_hash(&dear).unwrap();
        assert!(!dear.within(&Argon2Params::CEILING));
        assert_eq!(Argon2Params::of_hash("$2a$05$abc"), None);
        // Every Argon2 variant's cost is read (a stored argon2d hash is bounded like any).
        let d = phc
            .replace("$argon2id$", "$argon2d$")
            .replace("m=19456", "m=4194304");
        assert_eq!(
            Argon2Params::of_hash(&d).map(|p| p.memory_kib),
            Some(4_194_304)
        );
        assert!(Argon2Params::is_plain_argon2id(&phc));
        assert!(!Argon2Params::is_plain_argon2id(&d));
        for (m, t, ok) in [
            (47_104, 1, true),
            (19_456, 2, true),
            (12_288, 3, true),
            (9_216, 4, true),
            (7_168, 5, true),
            (7_168, 4, false),
            (4_096, 20, false),
        ] {
            let p = Argon2Params {
                memory_kib: m,
                iterations: t,
                parallelism: 1,
            };
            assert_eq!(p.meets_owasp_minimum(), ok, "m={m} t={t}");
        }
    }

    #[test]
    fn a_hash_the_verifier_cannot_read_has_no_cost() {
        // Found by the `password_hash` fuzz target: the cost of these was read, so the user
        // import accepted them, but every sign-in refused them as malformed.
        let p = SecretString::from("correct horse battery".to_owned());
        let cheap = Argon2Params {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        };
        let phc = hash_password(&p, &cheap).unwrap();
        let (without_hash, hash) = phc.rsplit_once('$').unwrap();
        let mut scratch = HashScratch::default();
        for bad in [
            // Argon2 has versions 16 and 19 only.
            phc.replace("$v=19$", "$v=18$"),
            without_hash.to_owned(),
            // A salt of 4 bytes (Argon2 needs at least 8).
            format!("$argon2id$v=19$m=64,t=1,p=1$c2FsdA${hash}"),
        ] {
            assert_eq!(Argon2Params::of_hash(&bad), None, "{bad}");
            assert!(needs_rehash(&bad, &cheap), "{bad}");
            assert_eq!(
                verify_password_with(&p, &bad, &mut scratch),
                Err(PasswordError::MalformedHash),
                "{bad}"
            );
        }
        assert_eq!(Argon2Params::of_hash(&phc), Some(cheap));
        assert!(verify_password_with(&p, &phc, &mut scratch).unwrap());
    }

    #[test]
    fn a_huge_lane_count_is_refused_not_a_panic() {
        // Found by the `password_hash` fuzz target: reading this cost panicked ("attempt to
        // multiply with overflow" in argon2's Params::new) wherever overflow checks are on, as in
        // debug builds; the user import reads the cost of any hash it is sent.
        let p = SecretString::from("correct horse battery".to_owned());
        let mut scratch = HashScratch::default();
        for lanes in ["536870912", "1000000000", "4294967295"] {
            let phc = format!(
                "$argon2id$v=19$m=19456,t=2,p={lanes}$c2FsdHNhbHRzYWx0$\
                 cTbqNqOAQMfsOrBEjQkWQ2mu2j0m6DMWuD9eWN+8tEU"
            );
            assert_eq!(Argon2Params::of_hash(&phc), None, "{phc}");
            assert!(needs_rehash(&phc, &Argon2Params::MINIMUM), "{phc}");
            assert_eq!(
                verify_password_with(&p, &phc, &mut scratch),
                Err(PasswordError::MalformedHash)
            );
            assert_eq!(verify_password(&p, &phc), Err(PasswordError::MalformedHash));
        }
    }

    #[test]
    fn hash_is_argon2id_phc_and_verifies() {
        let pw = SecretString::new("correct horse battery staple".into());
        let phc = hash_password(&pw, &Argon2Params::MINIMUM).unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(verify_password(&pw, &phc).unwrap());
        assert!(!verify_password(&SecretString::new("wrong".into()), &phc).unwrap());
        assert_eq!(
            verify_password(&pw, "not-a-phc-string"),
            Err(PasswordError::MalformedHash)
        );
    }

    #[test]
    fn verifying_with_scratch_memory_agrees_with_the_reference_path() {
        let p = SecretString::from("correct horse battery".to_owned());
        let q = SecretString::from("correct horse batterz".to_owned());
        let mut scratch = HashScratch::default();
        for params in [
            Argon2Params::MINIMUM,
            Argon2Params::new(24_576, 3, 1).unwrap(),
        ] {
            let phc = hash_password(&p, &params).unwrap();
            assert!(verify_password_with(&p, &phc, &mut scratch).unwrap());
            assert!(!verify_password_with(&q, &phc, &mut scratch).unwrap());
            assert!(verify_password(&p, &phc).unwrap() && !verify_password(&q, &phc).unwrap());
        }
        // A truncated PHC string is refused as malformed.
        assert!(
            verify_password_with(&p, "$argon2id$v=19$m=19456,t=2,p=1$bad", &mut scratch).is_err()
        );
        scratch.clear();
        assert!(
            verify_password_with(
                &p,
                &hash_password(&p, &Argon2Params::MINIMUM).unwrap(),
                &mut scratch
            )
            .unwrap()
        );
    }

    #[test]
    fn a_pepper_is_needed_for_peppered_hashes_and_unpeppered_ones_still_verify() {
        let p = SecretString::from("correct horse battery".to_owned());
        let pepper = Pepper::new(crate::secret::Key32::from_bytes([3; 32]));
        let other = Pepper::new(crate::secret::Key32::from_bytes([4; 32]));
        let params = Argon2Params::MINIMUM;
        let mut scratch = HashScratch::default();
        let peppered = hash_password_peppered(&p, &params, Some(&pepper)).unwrap();
        assert!(
            peppered.contains(&format!(",keyid={}$", pepper.phc_keyid())),
            "{peppered}"
        );
        assert!(verify_password_peppered(&p, &peppered, &mut scratch, Some(&pepper)).unwrap());
        assert_eq!(
            verify_password_peppered(&p, &peppered, &mut scratch, None),
            Err(PasswordError::PepperMissing)
        );
        assert_eq!(
            verify_password_peppered(&p, &peppered, &mut scratch, Some(&other)),
            Err(PasswordError::PepperMissing)
        );
        // Made without the pepper: still verifies, and is due for a rehash once one is set.
        let plain = hash_password(&p, &params).unwrap();
        assert!(verify_password_peppered(&p, &plain, &mut scratch, Some(&pepper)).unwrap());
        assert!(needs_rehash_peppered(&plain, &params, Some(&pepper)));
        assert!(!needs_rehash_peppered(&peppered, &params, Some(&pepper)));
        assert!(!needs_rehash(&plain, &params));
        // The reference verifier (argon2's own, which knows no secret) cannot check it.
        assert!(!verify_password(&p, &peppered).unwrap_or(false));
    }

    #[test]
    fn parameters_cannot_go_below_the_floor() {
        assert_eq!(
            Argon2Params::new(8_192, 2, 1),
            Err(PasswordError::WeakParameters)
        );
        assert_eq!(
            Argon2Params::new(19_456, 1, 1),
            Err(PasswordError::WeakParameters)
        );
        assert!(Argon2Params::new(65_536, 3, 2).is_ok());
    }
}
