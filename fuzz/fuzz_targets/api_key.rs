//! The API-key format (`gatehouse_core::api_keys::format`) on arbitrary text:
//! `gk_{live|test}_{32 base62}{6 base62 CRC-32}`.
//!
//! Asserts:
//! - the parser accepts only what the documented secret-scanner pattern matches
//!   (`gk_(live|test)_[0-9A-Za-z]{38}`), and what it reports is read from the key: the listing
//!   prefix is the key's first twelve characters and names the same environment, `last4` its
//!   last four;
//! - the quick check (`is_well_formed`), the prefix test (`is_api_key`) and the parser agree;
//! - changing any one character of an accepted key to another base62 character is refused (the
//!   checksum catches every single-character typo);
//! - keys from the generator parse, for both environments.
//!
//! No `#![forbid(unsafe_code)]`: `fuzz_target!` emits a `#[no_mangle]` function (see src/lib.rs).
#![no_main]

use gatehouse_core::api_keys::format::{generate, is_well_formed, parse, parse_env};
use gatehouse_core::api_keys::{KeyEnv, is_api_key};
use libfuzzer_sys::fuzz_target;

const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// `gk_(live|test)_[0-9A-Za-z]{38}`, the pattern published for secret scanners.
fn scanner_matches(s: &str) -> bool {
    let tail = s
        .strip_prefix("gk_live_")
        .or_else(|| s.strip_prefix("gk_test_"));
    tail.is_some_and(|t| t.len() == 38 && t.bytes().all(|b| b.is_ascii_alphanumeric()))
}

fuzz_target!(
    init: {
        let mut seeds = Vec::new();
        for env in [KeyEnv::Live, KeyEnv::Test] {
            let key = generate(env).unwrap_or_else(|e| panic!("the generator failed: {e}"));
            let shape = parse(key.expose());
            assert_eq!(shape.map(|s| s.env), Some(env), "a generated key does not parse");
            seeds.push(key.expose().as_bytes().to_vec());
        }
        gatehouse_fuzz::write_seeds("api_key", &seeds);
    },
    |data: &[u8]| {
        let Ok(key) = std::str::from_utf8(data) else {
            return;
        };
        let shape = parse(key);
        assert_eq!(shape.is_some(), is_well_formed(key), "parse and is_well_formed disagree");
        if !is_api_key(key) {
            assert!(shape.is_none(), "parsed a key without the key prefix");
        }
        let Some(shape) = shape else {
            return;
        };
        assert!(scanner_matches(key), "accepted {key:?}, which secret scanners would miss");
        assert_eq!(Some(shape.prefix.as_str()), key.get(..12), "the listing prefix");
        assert_eq!(Some(shape.last4.as_str()), key.get(key.len() - 4..), "last4");
        assert_eq!(parse_env(&shape.prefix), Some(shape.env), "the prefix's environment");

        // Every single-character change after `gk_{env}_` is refused.
        let bytes = key.as_bytes();
        for pos in 8..bytes.len() {
            for &c in BASE62 {
                if bytes[pos] == c {
                    continue;
                }
                let mut typo = bytes.to_vec();
                typo[pos] = c;
                let typo = String::from_utf8(typo).unwrap_or_default();
                assert!(parse(&typo).is_none(), "a typo passed the checksum: {typo}");
            }
        }
    }
);
