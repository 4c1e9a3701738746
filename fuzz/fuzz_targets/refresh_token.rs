//! The refresh-token format (`gatehouse_core::identity::sessions`, through
//! `gatehouse_core::fuzzing`): `grt_{session id, 32 hex}_{secret}`.
//!
//! Input: a selector byte. Odd: the rest is token text for the parser. Even: the next 16 bytes are
//! a session id and the rest the secret (as text), for the encoder.
//!
//! Asserts:
//! - parse, then encode, then parse gives the same session id and secret; the secret is the
//!   token's text after the id (what the stored digest is compared with), 1 to 128 bytes; the
//!   token is the encoder's output up to the case of the id's hex digits;
//! - any session id with any secret of 1 to 128 bytes encodes to a token that parses back to both;
//!   an empty or longer secret is refused.
//!
//! No `#![forbid(unsafe_code)]`: `fuzz_target!` emits a `#[no_mangle]` function (see src/lib.rs).
#![no_main]

use gatehouse_core::fuzzing::{refresh_format, refresh_parse};
use libfuzzer_sys::fuzz_target;
use uuid::Uuid;

fuzz_target!(
    init: {
        let seeds = [
            refresh_format(Uuid::from_u128(0x0190_a3c4_5e6f_7a8b_9c0d_0000_0000_00aa), "kX2e9yQm_ZP3-rT7wLb0cV1nHs4uJd6fA8gEo5iKqWx"),
            refresh_format(Uuid::nil(), "s"),
        ];
        for s in &seeds {
            assert!(refresh_parse(s).is_some(), "a token from the encoder does not parse");
        }
        let mut bytes: Vec<Vec<u8>> = seeds.iter().map(|s| [b"\x01", s.as_bytes()].concat()).collect();
        bytes.push([&[0u8][..], &[0xab; 16], b"secret"].concat());
        gatehouse_fuzz::write_seeds("refresh_token", &bytes);
    },
    |data: &[u8]| {
        let (selector, rest) = gatehouse_fuzz::split_selector(data);
        if selector % 2 == 1 {
            let Ok(token) = std::str::from_utf8(rest) else {
                return;
            };
            let Some((id, secret)) = refresh_parse(token) else {
                return;
            };
            assert!((1..=128).contains(&secret.len()), "secret of {} bytes", secret.len());
            assert!(token.ends_with(secret), "the secret is not the token's tail");
            let again = refresh_format(id, secret);
            assert_eq!(refresh_parse(&again), Some((id, secret)), "encode-parse round trip");
            assert!(
                again.eq_ignore_ascii_case(token) && again.len() == token.len(),
                "accepted {token:?}, which the encoder writes as {again:?}"
            );
            assert_eq!(
                token.get(37..),
                Some(secret),
                "the secret does not start right after the id"
            );
            assert_eq!(token.get(..37).map(str::to_ascii_lowercase), again.get(..37).map(str::to_owned));
        } else {
            let Some((id, secret)) = rest.split_at_checked(16) else {
                return;
            };
            let Ok(secret) = std::str::from_utf8(secret) else {
                return;
            };
            let id = Uuid::from_slice(id).unwrap_or_else(|_| Uuid::nil());
            let token = refresh_format(id, secret);
            let parsed = refresh_parse(&token);
            if (1..=128).contains(&secret.len()) {
                assert_eq!(parsed, Some((id, secret)), "{token:?} does not parse back");
            } else {
                assert_eq!(parsed, None, "accepted a secret of {} bytes", secret.len());
            }
        }
    }
);
