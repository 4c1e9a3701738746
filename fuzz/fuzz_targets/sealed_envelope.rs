//! The sealed-envelope parser and opener (`gatehouse_crypto::aead`): what the keyring reads for
//! every sealed field (`open_envelope`), every wrapped data, platform and signing key (`unwrap`),
//! and what the local vault opens (`open_raw`), on arbitrary bytes with fixed keys.
//!
//! Asserts:
//! - the header parser accepts exactly the inputs long enough for a header and a tag whose format
//!   and algorithm bytes are ours, and what it reads is what the encoder writes: sealing any
//!   plaintext of the same length under the parsed versions gives the same first ten bytes and
//!   the same length, and that envelope parses to the same versions and opens to the plaintext;
//! - opening succeeds only for what the fixed key sealed under the fixed context: the versions
//!   and the plaintext are the sealed ones (never a forgery); a context nothing was sealed under
//!   opens nothing; an unwrapped key is the wrapped one.
//!
//! No `#![forbid(unsafe_code)]`: `fuzz_target!` emits a `#[no_mangle]` function (see src/lib.rs).
#![no_main]

use std::sync::LazyLock;

use gatehouse_crypto::aead::{ALG_AES_256_GCM, FORMAT_V1, HEADER_LEN};
use gatehouse_crypto::{AeadKey, EnvelopeHeader, Key32, context};
use libfuzzer_sys::fuzz_target;

const TAG_LEN: usize = 16;
const VERSIONS: EnvelopeHeader = EnvelopeHeader {
    kek_version: 3,
    dek_version: 7,
};
const PLAINTEXTS: [&[u8]; 3] = [
    b"",
    b"JBSWY3DPEHPK3PXP",
    b"a connector token, somewhat longer",
];

struct Fixture {
    key: AeadKey,
    field_context: Vec<u8>,
    other_context: Vec<u8>,
    wrap_context: Vec<u8>,
    wrapped: Key32,
    vault_header: Vec<u8>,
}

static FIXTURE: LazyLock<Fixture> = LazyLock::new(|| {
    let key = match AeadKey::new(&Key32::from_bytes([0x11; 32])) {
        Ok(k) => k,
        Err(e) => panic!("fixture key: {e}"),
    };
    Fixture {
        key,
        field_context: context(
            "gatehouse.field.v1",
            &[&[0xab; 16], b"totp_secret", b"0190a3c4", b"secret"],
        ),
        other_context: context(
            "gatehouse.field.v1",
            &[&[0xab; 16], b"totp_secret", b"0190a3c4", b"other"],
        ),
        wrap_context: context("gatehouse.dek.v1", &[&[0xab; 16]]),
        wrapped: Key32::from_bytes([0x5a; 32]),
        vault_header: b"GHVAULT1 header stand-in".to_vec(),
    }
});

fn seeds(f: &Fixture) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for p in PLAINTEXTS {
        if let Ok(e) = f.key.seal_envelope(VERSIONS, &f.field_context, p) {
            out.push(e);
        }
        if let Ok(e) = f.key.seal_raw(&f.vault_header, p) {
            out.push(e);
        }
    }
    if let Ok(w) = f.key.wrap(VERSIONS, &f.wrap_context, &f.wrapped) {
        out.push(w);
    }
    out
}

fuzz_target!(
    init: {
        let f = &*FIXTURE;
        let seeds = seeds(f);
        assert_eq!(seeds.len(), 2 * PLAINTEXTS.len() + 1, "the fixture could not seal");
        gatehouse_fuzz::write_seeds("sealed_envelope", &seeds);
    },
    |data: &[u8]| {
        let f = &*FIXTURE;

        let well_shaped = data.len() >= HEADER_LEN + TAG_LEN
            && data.first() == Some(&FORMAT_V1)
            && data.get(1) == Some(&ALG_AES_256_GCM);
        let parsed = EnvelopeHeader::parse(data);
        assert_eq!(parsed.is_ok(), well_shaped, "header parse disagrees with the format");
        if let Ok(h) = parsed {
            let plain_len = data.len() - HEADER_LEN - TAG_LEN;
            let plaintext = data.get(HEADER_LEN..HEADER_LEN + plain_len).unwrap_or_default();
            match f.key.seal_envelope(h, b"round trip", plaintext) {
                Ok(again) => {
                    assert_eq!(again.len(), data.len(), "re-sealed length differs");
                    assert_eq!(again.get(..10), data.get(..10), "re-sealed header differs");
                    assert_eq!(EnvelopeHeader::parse(&again).ok(), Some(h));
                    let opened = f.key.open_envelope(&again, b"round trip");
                    assert_eq!(opened.ok().as_ref().map(|p| p.expose()), Some(plaintext));
                }
                Err(e) => panic!("sealing failed: {e}"),
            }
        }

        if let Ok(plain) = f.key.open_envelope(data, &f.field_context) {
            assert_eq!(parsed.ok(), Some(VERSIONS), "opened an envelope with forged versions");
            assert!(
                PLAINTEXTS.contains(&plain.expose()),
                "opened to a plaintext that was never sealed"
            );
        }
        assert!(
            f.key.open_envelope(data, &f.other_context).is_err(),
            "opened under a context nothing was sealed under"
        );
        if let Ok(k) = f.key.unwrap(data, &f.wrap_context) {
            assert_eq!(k.expose(), f.wrapped.expose(), "unwrapped a key that was never wrapped");
        }
        if let Ok(plain) = f.key.open_raw(&f.vault_header, data) {
            assert!(
                PLAINTEXTS.contains(&plain.expose()),
                "raw-opened to a plaintext that was never sealed"
            );
        }
    }
);
