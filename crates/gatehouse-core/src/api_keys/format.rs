//! The API key format: `gk_{env}_{32 random base62}{6 base62 CRC-32 of everything before it}`.
//!
//! Secret scanners can match `gk_(live|test)_[0-9A-Za-z]{38}`. The checksum lets the server
//! refuse a mistyped or truncated key without a database lookup; it is not a security property
//! (anyone can compute it), the 32 random characters (about 190 bits) are.

use gatehouse_crypto::{RandomError, SecretString, fill_random};

/// What every key starts with, and no access token can (a JWT starts with `eyJ`).
const PREFIX: &str = "gk_";

/// Whether a presented credential is meant as an API key rather than an access token: the one
/// test of the prefix, so the edge, the kernel and the on-behalf-of check cannot disagree.
#[must_use]
pub fn is_api_key(credential: &str) -> bool {
    credential.starts_with(PREFIX)
}

const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const BODY_LEN: usize = 32;
const CHECK_LEN: usize = 6;

/// The key's environment: which deployment of the customer's product it belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyEnv {
    Live,
    Test,
}

impl KeyEnv {
    #[must_use]
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Live => "live",
            Self::Test => "test",
        }
    }

    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "live" => Some(Self::Live),
            "test" => Some(Self::Test),
            _ => None,
        }
    }
}

fn checksum_digits(prefix_and_body: &str) -> [u8; CHECK_LEN] {
    base62_digits(u64::from(crc32fast::hash(prefix_and_body.as_bytes())))
}

fn base62_digits(mut n: u64) -> [u8; CHECK_LEN] {
    let mut out = [b'0'; CHECK_LEN];
    for slot in out.iter_mut().rev() {
        let digit = usize::try_from(n % 62).unwrap_or(0);
        *slot = ALPHABET.get(digit).copied().unwrap_or(b'0');
        n /= 62;
    }
    out
}

fn checksum(prefix_and_body: &str) -> String {
    String::from_utf8_lossy(&checksum_digits(prefix_and_body)).into_owned()
}

/// A new random key for `env`.
pub fn generate(env: KeyEnv) -> Result<SecretString, RandomError> {
    let mut body = String::with_capacity(BODY_LEN);
    let mut buf = [0u8; 64];
    while body.len() < BODY_LEN {
        fill_random(&mut buf)?;
        for b in buf {
            // Rejection sampling: 248 = 4 * 62, so every character is equally likely.
            if b < 248 && body.len() < BODY_LEN {
                body.push(char::from(
                    ALPHABET.get(usize::from(b % 62)).copied().unwrap_or(b'0'),
                ));
            }
        }
    }
    let head = format!("{PREFIX}{}_{body}", env.as_str());
    let check = checksum(&head);
    Ok(SecretString::from(format!("{head}{check}")))
}

/// The environment named by a stored prefix (`gk_live_abcd`).
#[must_use]
pub fn parse_env(prefix: &str) -> Option<KeyEnv> {
    KeyEnv::parse(prefix.strip_prefix(PREFIX)?.split('_').next()?)
}

/// What a well-formed key shows in listings: its prefix and last four characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyShape {
    pub env: KeyEnv,
    /// `gk_{env}_` and the first four random characters.
    pub prefix: String,
    pub last4: String,
}

/// The environment and body of a key whose shape and checksum are right; allocates nothing, so
/// a mistyped or made-up key costs only a CRC32.
fn well_formed(key: &str) -> Option<(KeyEnv, &str)> {
    let rest = key.strip_prefix(PREFIX)?;
    let (env, tail) = rest.split_once('_')?;
    let env = KeyEnv::parse(env)?;
    if tail.len() != BODY_LEN + CHECK_LEN || !tail.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return None;
    }
    let (body, check) = tail.split_at(BODY_LEN);
    let head = key.get(..key.len().checked_sub(CHECK_LEN)?)?;
    (checksum_digits(head).as_slice() == check.as_bytes()).then_some((env, body))
}

/// Whether `key` has a key's shape and a matching checksum (the check before any lookup).
#[must_use]
pub fn is_well_formed(key: &str) -> bool {
    well_formed(key).is_some()
}

/// Checks the format and the checksum; `None` for anything that is not a key we issued.
#[must_use]
pub fn parse(key: &str) -> Option<KeyShape> {
    let (env, body) = well_formed(key)?;
    Some(KeyShape {
        env,
        prefix: format!("{PREFIX}{}_{}", env.as_str(), body.get(..4)?),
        last4: key.get(key.len() - 4..)?.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn generated_keys_parse_and_match_the_documented_pattern() {
        for env in [KeyEnv::Live, KeyEnv::Test] {
            let k = generate(env).unwrap();
            let key = k.expose();
            assert_eq!(key.len(), 3 + 5 + 38);
            assert!(key.starts_with(&format!("gk_{}_", env.as_str())));
            let shape = parse(key).unwrap();
            assert_eq!(shape.env, env);
            assert!(key.starts_with(&shape.prefix));
            assert!(key.ends_with(&shape.last4));
        }
    }

    #[test]
    fn known_checksum() {
        // The checksum is crc32fast's CRC-32 (IEEE) in base62, most significant digit first,
        // zero padded to 6 (u32::MAX checked against an independent computation in Python).
        let head = format!("gk_test_{}", "0".repeat(32));
        let crc = crc32fast::hash(head.as_bytes());
        assert_eq!(checksum(&head).as_bytes(), &base62_digits(u64::from(crc)));
        assert_eq!(&base62_digits(0), b"000000");
        assert_eq!(&base62_digits(61), b"00000z");
        assert_eq!(&base62_digits(62), b"000010");
        assert_eq!(&base62_digits(u64::from(u32::MAX)), b"4gfFC3");
    }

    proptest! {
        #[test]
        fn any_single_character_change_is_caught(pos in 0usize..46, replacement in 0usize..62) {
            let key = generate(KeyEnv::Live).unwrap();
            let key = key.expose();
            let mut bytes = key.as_bytes().to_vec();
            let new = ALPHABET[replacement];
            prop_assume!(bytes[pos] != new);
            bytes[pos] = new;
            let changed = String::from_utf8(bytes).unwrap();
            prop_assert!(parse(&changed).is_none(), "{changed} passed the checksum");
        }

        #[test]
        fn arbitrary_input_never_panics(s in "\\PC{0,80}") {
            let _ = parse(&s);
        }
    }
}
