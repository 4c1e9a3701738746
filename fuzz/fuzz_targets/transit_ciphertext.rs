//! The transit ciphertext parser and the service's decrypt path (`gatehouse_core::transit`, through
//! `gatehouse_core::fuzzing`): `gh:v{version}:{base64url}`, then the key-version and floor check,
//! then the authenticated open (`gatehouse_crypto::TransitKey`), for one organisation whose
//! transit floor is 2 and newest version 3 (version 1's key is still in the map, below the
//! floor).
//!
//! Input: a context selector byte, then the ciphertext text.
//!
//! Asserts:
//! - what the parser accepts is what the encoder writes: formatting the parsed version and bytes
//!   gives the input back, byte for byte;
//! - a ciphertext opens only if its version is at or above the floor and the plaintext is one
//!   that was sealed (never a forgery); nothing opens in another organisation;
//! - encrypting the input (under the newest version) and decrypting it gives it back, and the
//!   ciphertext parses to the newest version.
//!
//! No `#![forbid(unsafe_code)]`: `fuzz_target!` emits a `#[no_mangle]` function (see src/lib.rs).
#![no_main]

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use gatehouse_core::OrgId;
use gatehouse_core::fuzzing::{transit_format, transit_open, transit_parse, transit_seal};
use gatehouse_core::keyring::TransitState;
use gatehouse_crypto::{Key32, TransitKey};
use libfuzzer_sys::fuzz_target;
use uuid::Uuid;

const CONTEXTS: [&[u8]; 3] = [b"", b"customers.ssn.42", b"customers.ssn.43"];
const PLAINTEXTS: [&[u8]; 3] = [b"", b"123-45-6789", b"a longer value, stored by the caller"];
const FLOOR: u32 = 2;
const NEWEST: u32 = 3;

struct Fixture {
    org: OrgId,
    other_org: OrgId,
    state: TransitState,
}

fn key(b: u8) -> Arc<TransitKey> {
    Arc::new(TransitKey::derive(&Key32::from_bytes([b; 32])))
}

static FIXTURE: LazyLock<Fixture> = LazyLock::new(|| Fixture {
    org: OrgId::from_uuid(Uuid::from_u128(0x0190_a3c4_5e6f_7a8b_9c0d_0000_0000_00aa)),
    other_org: OrgId::from_uuid(Uuid::from_u128(0x0190_a3c4_5e6f_7a8b_9c0d_0000_0000_00bb)),
    state: TransitState {
        floor: FLOOR,
        newest: NEWEST,
        keys: HashMap::from([(1, key(1)), (2, key(2)), (3, key(3))]),
    },
});

/// Ciphertexts under every version (1 through a state whose newest is 1), each prefixed with its
/// context selector.
fn seeds(f: &Fixture) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for version in 1..=NEWEST {
        let state = TransitState {
            floor: 1,
            newest: version,
            keys: f.state.keys.clone(),
        };
        for (i, (ctx, plain)) in CONTEXTS.iter().zip(PLAINTEXTS).enumerate() {
            let Ok(c) = transit_seal(f.org, &state, ctx, plain) else {
                panic!("the fixture could not seal");
            };
            let mut seed = vec![u8::try_from(i).unwrap_or(0)];
            seed.extend_from_slice(c.as_bytes());
            out.push(seed);
        }
    }
    out
}

fuzz_target!(
    init: {
        gatehouse_fuzz::write_seeds("transit_ciphertext", &seeds(&FIXTURE));
    },
    |data: &[u8]| {
        let f = &*FIXTURE;
        let (selector, ciphertext) = gatehouse_fuzz::split_selector(data);
        let ctx = CONTEXTS[usize::from(selector) % CONTEXTS.len()];

        let parsed = transit_parse(ciphertext);
        if let Some((version, body)) = &parsed {
            assert_eq!(
                transit_format(*version, body).as_bytes(),
                ciphertext,
                "the parser accepted a ciphertext the encoder would write differently"
            );
        }

        if let Ok(plain) = transit_open(f.org, &f.state, ctx, ciphertext) {
            let version = parsed.as_ref().map(|(v, _)| *v);
            assert!(
                version.is_some_and(|v| (FLOOR..=NEWEST).contains(&v)),
                "opened a ciphertext of version {version:?}, outside {FLOOR}..={NEWEST}"
            );
            assert!(
                PLAINTEXTS.contains(&plain.expose()),
                "opened to a plaintext that was never sealed"
            );
        }
        assert!(
            transit_open(f.other_org, &f.state, ctx, ciphertext).is_err(),
            "a ciphertext opened in an organisation that sealed nothing"
        );

        match transit_seal(f.org, &f.state, ctx, ciphertext) {
            Ok(sealed) => {
                assert_eq!(transit_parse(sealed.as_bytes()).map(|(v, _)| v), Some(NEWEST));
                let opened = transit_open(f.org, &f.state, ctx, sealed.as_bytes());
                assert_eq!(opened.ok().as_ref().map(|p| p.expose()), Some(ciphertext));
            }
            Err(why) => panic!("encryption failed: {why}"),
        }
    }
);
