//! The local vault's file format (`gatehouse_vault`, through `gatehouse_vault::fuzzing`) on
//! arbitrary bytes: the header parser (read before anything is authenticated), the opener of the
//! sealed contents (with a fixed key standing for the one derived from the master password), and
//! the parser of the decrypted entries.
//!
//! Input: a selector byte. Odd: the rest is a vault file. Even: the rest is decrypted contents.
//!
//! Asserts:
//! - the header parser accepts only what the encoder writes: the header rebuilt from the parsed
//!   cost and salt is the file's first bytes, the sealed part is the rest, and the cost is within
//!   the ceiling that keeps a crafted file from making the key derivation allocate or run for
//!   ever;
//! - the contents open only if they were sealed under that header with the fixed key (never a
//!   forgery), and then parse as entries;
//! - entries round-trip: parse, encode, parse gives the same entries, and encoding never grows
//!   them (a repeated name keeps its last value).
//!
//! No `#![forbid(unsafe_code)]`: `fuzz_target!` emits a `#[no_mangle]` function (see src/lib.rs).
#![no_main]

use std::collections::BTreeMap;
use std::sync::LazyLock;

use gatehouse_crypto::{AeadKey, Key32, SecretString};
use gatehouse_vault::KdfParams;
use gatehouse_vault::fuzzing::{
    VAULT_HEADER_LEN, decode_entries, encode_entries, header, parse_file,
};
use libfuzzer_sys::fuzz_target;

static KEY: LazyLock<AeadKey> = LazyLock::new(|| {
    AeadKey::new(&Key32::from_bytes([0x42; 32])).unwrap_or_else(|e| panic!("fixture key: {e}"))
});

fn entries(pairs: &[(&str, &str)]) -> BTreeMap<String, SecretString> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), SecretString::from((*v).to_owned())))
        .collect()
}

fn same(a: &BTreeMap<String, SecretString>, b: &BTreeMap<String, SecretString>) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|((ka, va), (kb, vb))| ka == kb && va.expose() == vb.expose())
}

/// The contents the seeds seal: the only ones that may ever open.
static SEALED: LazyLock<Vec<Vec<u8>>> = LazyLock::new(|| {
    [
        entries(&[]),
        entries(&[("github", "ghp_token"), ("smtp", "hunter2"), ("ümlaut", "")]),
    ]
    .iter()
    .map(|e| encode_entries(e).unwrap_or_else(|err| panic!("encode: {err}")))
    .collect()
});

fn seeds() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let kdf = KdfParams::INTERACTIVE;
    for (i, plain) in SEALED.iter().enumerate() {
        let head = header(&kdf, &[u8::try_from(i).unwrap_or(0); 16]);
        let sealed = KEY
            .seal_raw(&head, plain)
            .unwrap_or_else(|err| panic!("seal: {err}"));
        out.push([b"\x01", head.as_slice(), sealed.as_slice()].concat());
        out.push([b"\x00", plain.as_slice()].concat());
    }
    out
}

fn check_entries(plain: &[u8]) {
    let Ok(parsed) = decode_entries(plain) else {
        return;
    };
    let encoded = match encode_entries(&parsed) {
        Ok(e) => e,
        Err(err) => panic!("parsed entries do not encode: {err}"),
    };
    assert!(encoded.len() <= plain.len(), "encoding grew the entries");
    match decode_entries(&encoded) {
        Ok(again) => assert!(same(&parsed, &again), "entries do not round-trip"),
        Err(err) => panic!("encoded entries do not parse: {err}"),
    }
}

fuzz_target!(
    init: {
        gatehouse_fuzz::write_seeds("vault_file", &seeds());
    },
    |data: &[u8]| {
        let (selector, rest) = gatehouse_fuzz::split_selector(data);
        if selector % 2 == 0 {
            check_entries(rest);
            return;
        }
        let Ok((kdf, salt, sealed)) = parse_file(rest) else {
            return;
        };
        let head = header(&kdf, &salt);
        assert_eq!(head.len(), VAULT_HEADER_LEN);
        assert_eq!(rest.get(..VAULT_HEADER_LEN), Some(head.as_slice()), "header not canonical");
        assert_eq!(rest.get(VAULT_HEADER_LEN..), Some(sealed), "sealed part");
        assert!(
            kdf.memory_kib <= 4 * 1024 * 1024 && kdf.iterations <= 64 && kdf.parallelism <= 16,
            "key-derivation cost above the ceiling: {kdf:?}"
        );
        if let Ok(plain) = KEY.open_raw(&head, sealed) {
            assert!(
                SEALED.iter().any(|s| s.as_slice() == plain.expose()),
                "opened to contents that were never sealed"
            );
            assert!(decode_entries(plain.expose()).is_ok(), "sealed contents do not parse");
        }
    }
);
