//! Pagination cursors (`gatehouse_core::page`) on arbitrary text and arbitrary values.
//!
//! Input: a selector byte. Odd: the rest is cursor text (with a page size from the selector) for
//! the decoder. Even: the next 24 bytes are a cursor's time and id, for the encoder.
//!
//! Asserts:
//! - a cursor is accepted only in the form the server writes: decoding then encoding gives the
//!   text back, byte for byte (no second spelling of a cursor);
//! - the page-request parser agrees with the decoder (an empty cursor means the first page) and
//!   with the page-size bounds;
//! - every cursor value encodes to text that decodes to the same value.
//!
//! No `#![forbid(unsafe_code)]`: `fuzz_target!` emits a `#[no_mangle]` function (see src/lib.rs).
#![no_main]

use gatehouse_core::page::{Cursor, Limit, PageRequest};
use libfuzzer_sys::fuzz_target;
use uuid::Uuid;

fuzz_target!(
    init: {
        let cursors = [
            Cursor { created_at_micros: 1_700_000_000_000_000, id: Uuid::from_u128(0x0190_a3c4_5e6f_7a8b_9c0d_0000_0000_00aa) },
            Cursor::after_seq(42),
            Cursor { created_at_micros: i64::MIN, id: Uuid::max() },
        ];
        let mut seeds = Vec::new();
        for c in cursors {
            let text = c.encode();
            assert_eq!(Cursor::decode(&text).ok(), Some(c), "a cursor does not round-trip");
            seeds.push([b"\x01", text.as_bytes()].concat());
        }
        seeds.push([&[0u8][..], &[0x7f; 24]].concat());
        gatehouse_fuzz::write_seeds("page_cursor", &seeds);
    },
    |data: &[u8]| {
        let (selector, rest) = gatehouse_fuzz::split_selector(data);
        if selector % 2 == 1 {
            let Ok(text) = std::str::from_utf8(rest) else {
                return;
            };
            let decoded = Cursor::decode(text);
            if let Ok(c) = &decoded {
                assert_eq!(c.encode(), text, "accepted a second spelling of a cursor");
            }
            let limit = match selector >> 1 {
                0 => None,
                n => Some(u32::from(n) * 3),
            };
            let request = PageRequest::parse(Some(text), limit);
            let limit_ok = Limit::parse(limit).is_ok();
            let cursor_ok = text.is_empty() || decoded.is_ok();
            assert_eq!(request.is_ok(), limit_ok && cursor_ok, "page request vs its parts");
            if let Ok(r) = request {
                assert_eq!(r.after, decoded.ok(), "the page request's cursor");
                assert_eq!(Some(r.limit), Limit::parse(limit).ok());
            }
        } else {
            let Some((time, id)) = rest.split_first_chunk::<8>() else {
                return;
            };
            let Some((id, _)) = id.split_first_chunk::<16>() else {
                return;
            };
            let c = Cursor {
                created_at_micros: i64::from_be_bytes(*time),
                id: Uuid::from_bytes(*id),
            };
            assert_eq!(Cursor::decode(&c.encode()).ok(), Some(c), "encode-decode round trip");
        }
    }
);
