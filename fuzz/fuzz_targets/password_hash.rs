//! Stored and imported password hashes on arbitrary text: the PHC-string readers
//! (`gatehouse_crypto::password`: `Argon2Params::of_hash`, `is_plain_argon2id`, `needs_rehash`,
//! `verify_password_peppered`), the bcrypt readers (`gatehouse_crypto::legacy_hash`), and the
//! user import's and the sign-in's judgements of a hash (`gatehouse_core::identity::operators`,
//! through `gatehouse_core::fuzzing`).
//!
//! Asserts:
//! - a hash the import accepts (with or without the weak-hash opt-in) is one the sign-in agrees
//!   to verify, and, where it is cheap enough to check here, one the sign-in's verifier can read
//!   (an answer of match or no match, never an error), so no imported user is locked out;
//! - a hash is left alone at sign-in (`needs_rehash` false) only if it is a readable Argon2id hash
//!   at or above the configured cost;
//! - only a bcrypt-shaped hash has a bcrypt cost or verifies as bcrypt;
//! - hashes made by Gatehouse's own encoder verify and are accepted by the import.
//!
//! No `#![forbid(unsafe_code)]`: `fuzz_target!` emits a `#[no_mangle]` function (see src/lib.rs).
#![no_main]

use std::cell::RefCell;

use gatehouse_core::fuzzing::{ImportVerdict, import_verdict, sign_in_verifies};
use gatehouse_crypto::legacy_hash::{bcrypt_cost, is_bcrypt, verify_bcrypt};
use gatehouse_crypto::{
    Argon2Params, HashScratch, Key32, Pepper, SecretString, hash_password, hash_password_peppered,
    needs_rehash, verify_password_peppered,
};
use libfuzzer_sys::fuzz_target;

const PASSWORD: &str = "correct horse battery staple";
/// The server's configured cost in this target.
const CONFIGURED: Argon2Params = Argon2Params::MINIMUM;
/// Argon2 hashes at most this dear are verified on every input (a sub-millisecond check).
const CHEAP: Argon2Params = Argon2Params {
    memory_kib: 1024,
    iterations: 3,
    parallelism: 4,
};
/// Bcrypt hashes at most this dear are verified on every input.
const CHEAP_BCRYPT_COST: u32 = 5;

thread_local! {
    static SCRATCH: RefCell<HashScratch> = RefCell::new(HashScratch::default());
}

fn password() -> SecretString {
    SecretString::from(PASSWORD.to_owned())
}

/// Hashes as Gatehouse writes them (the configured cost, with and without a pepper), a cheap
/// Argon2id hash, and bcrypt hashes as another system would export them.
fn seeds() -> Vec<String> {
    let pw = password();
    let cheap = Argon2Params {
        memory_kib: 64,
        iterations: 1,
        parallelism: 1,
    };
    let pepper = Pepper::new(Key32::from_bytes([3; 32]));
    let made = [
        hash_password(&pw, &CONFIGURED),
        hash_password(&pw, &cheap),
        hash_password_peppered(&pw, &cheap, Some(&pepper)),
    ];
    let mut out: Vec<String> = made
        .into_iter()
        .map(|h| h.unwrap_or_else(|e| panic!("the fixture could not hash: {e}")))
        .collect();
    for cost in [4, 5] {
        match bcrypt::hash(PASSWORD, cost) {
            Ok(h) => out.push(h),
            Err(e) => panic!("the fixture could not hash with bcrypt: {e}"),
        }
    }
    out
}

/// Whether the sign-in's verifier reads `hash` (true: it answers match or no match).
fn sign_in_reads(hash: &str) -> Option<bool> {
    if is_bcrypt(hash) {
        let cost = bcrypt_cost(hash)?;
        if cost > CHEAP_BCRYPT_COST {
            return None;
        }
        // `verify_bcrypt` turns an unreadable hash into "no match"; the library call it makes
        // tells the two apart.
        return Some(bcrypt::non_truncating_verify(PASSWORD, hash).is_ok());
    }
    let cost = Argon2Params::of_hash(hash)?;
    if !cost.within(&CHEAP) {
        return None;
    }
    Some(
        SCRATCH.with(|s| {
            verify_password_peppered(&password(), hash, &mut s.borrow_mut(), None).is_ok()
        }),
    )
}

fuzz_target!(
    init: {
        let seeds = seeds();
        let pw = password();
        for hash in &seeds {
            let verdict = import_verdict(hash, &CONFIGURED);
            let ours = hash.starts_with("$argon2id$") && !hash.contains("keyid=");
            if ours {
                assert!(
                    matches!(verdict, ImportVerdict::Fine | ImportVerdict::Weak),
                    "the import refuses Gatehouse's own hash {hash}: {verdict:?}"
                );
            }
            let matched = if is_bcrypt(hash) {
                verify_bcrypt(&pw, hash)
            } else {
                let pepper = Pepper::new(Key32::from_bytes([3; 32]));
                SCRATCH.with(|s| {
                    verify_password_peppered(&pw, hash, &mut s.borrow_mut(), Some(&pepper))
                })
                .unwrap_or(false)
            };
            assert!(matched, "a hash of the password does not verify: {hash}");
        }
        assert!(!needs_rehash(&seeds[0], &CONFIGURED), "a fresh hash is due for a rehash");
        let bytes: Vec<Vec<u8>> = seeds.into_iter().map(String::into_bytes).collect();
        gatehouse_fuzz::write_seeds("password_hash", &bytes);
    },
    |data: &[u8]| {
        let Ok(hash) = std::str::from_utf8(data) else {
            return;
        };

        let verdict = import_verdict(hash, &CONFIGURED);
        if matches!(verdict, ImportVerdict::Fine | ImportVerdict::Weak) {
            assert!(
                sign_in_verifies(hash, &CONFIGURED),
                "the import accepts {hash:?} ({verdict:?}) but a sign-in would not verify it"
            );
            assert_ne!(
                sign_in_reads(hash),
                Some(false),
                "the import accepts {hash:?} ({verdict:?}) but the sign-in's verifier cannot read it"
            );
        }

        if !needs_rehash(hash, &CONFIGURED) {
            assert!(
                Argon2Params::of_hash(hash).is_some_and(|p| p.at_least(&CONFIGURED)),
                "{hash:?} escapes a rehash but is not an Argon2 hash at the configured cost"
            );
            assert!(
                hash == "$argon2id" || hash.starts_with("$argon2id$"),
                "{hash:?} escapes a rehash but is not Argon2id"
            );
        }

        if bcrypt_cost(hash).is_some() {
            assert!(is_bcrypt(hash), "a bcrypt cost was read from a non-bcrypt string");
        }
        if is_bcrypt(hash) && bcrypt_cost(hash).is_some_and(|c| c <= CHEAP_BCRYPT_COST) {
            let _ = verify_bcrypt(&password(), hash);
        }
    }
);
