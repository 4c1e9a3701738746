//! The request-field parsers at the edge of the domain (`gatehouse_core::inputs`): email
//! addresses, display names and new passwords, on arbitrary text.
//!
//! Input: a selector byte (which parser), then the text.
//!
//! Asserts:
//! - an accepted email is the input trimmed and lower-cased, holds one `@` with 1 to 64 bytes
//!   before it, at most 254 bytes in all, no whitespace or control character, and parses to itself
//!   (one mailbox, one account);
//! - an accepted display name is the input trimmed, 1 to 200 characters without control
//!   characters, and parses to itself;
//! - an accepted new password is NFKC-normalised, 8 to 256 characters, and parses to itself, so
//!   the password a sign-in normalises is the one that was hashed;
//! - the sender-domain check's record parsers (`gatehouse_core::mail::dns_records`): an accepted
//!   domain name is lower-case, at most 253 bytes, without a trailing dot, and parses to itself;
//!   an accepted SPF record holds only RFC 7208's mechanisms, none with an empty value and `all`
//!   with none, and lower-case modifier names; an accepted tag list names each tag once.
//!
//! No `#![forbid(unsafe_code)]`: `fuzz_target!` emits a `#[no_mangle]` function (see src/lib.rs).
#![no_main]

use gatehouse_core::inputs::{DisplayName, Email, NewPassword, normalize_password};
use gatehouse_core::mail::dns_records::{SpfTerm, domain_name, spf_terms, tag_list};

const KNOWN: &[&str] = &["all", "include", "a", "mx", "ptr", "ip4", "ip6", "exists"];
use gatehouse_crypto::SecretString;
use libfuzzer_sys::fuzz_target;

fuzz_target!(
    init: {
        let seeds: [&[u8]; 6] = [
            b"\x00 Ada.Lovelace@Example.COM ",
            b"\x01Acme Rocket Works \xc3\xa9",
            b"\x02plum-orbit-cask-47",
            b"\x02\xef\xac\x81ne-\xef\xbc\xa1pple-7",
            b"\x03v=spf1 ip4:192.0.2.0/24 include:_spf.mailer.example ~all",
            b"\x03v=DKIM1; k=rsa; p=MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA",
        ];
        let seeds: Vec<Vec<u8>> = seeds.iter().map(|s| s.to_vec()).collect();
        gatehouse_fuzz::write_seeds("inputs", &seeds);
    },
    |data: &[u8]| {
        let (selector, rest) = gatehouse_fuzz::split_selector(data);
        let Ok(text) = std::str::from_utf8(rest) else {
            return;
        };
        match selector % 4 {
            0 => {
                let Ok(email) = Email::parse(text) else {
                    return;
                };
                let e = email.as_str();
                assert_eq!(e, text.trim().to_lowercase(), "not the input trimmed and lower-cased");
                assert!(e.len() <= 254, "{} bytes", e.len());
                assert_eq!(e.matches('@').count(), 1, "{e:?}");
                let local = e.split('@').next().unwrap_or_default();
                assert!((1..=64).contains(&local.len()), "{e:?}");
                assert!(!e.chars().any(|c| c.is_whitespace() || c.is_control()), "{e:?}");
                assert_eq!(Email::parse(e).ok().as_ref(), Some(&email), "not idempotent");
            }
            1 => {
                let Ok(name) = DisplayName::parse("name", text) else {
                    return;
                };
                let n = name.as_str();
                assert_eq!(n, text.trim());
                assert!((1..=200).contains(&n.chars().count()), "{n:?}");
                assert!(!n.chars().any(char::is_control), "{n:?}");
                assert_eq!(DisplayName::parse("name", n).ok().as_ref(), Some(&name));
            }
            3 => {
                if let Ok(name) = domain_name(text) {
                    assert!(name.len() <= 253 && !name.ends_with('.'), "{name:?}");
                    assert_eq!(name, name.to_ascii_lowercase());
                    assert_eq!(domain_name(&name).as_ref(), Ok(&name), "not idempotent");
                }
                if let Ok(terms) = spf_terms(text) {
                    for t in &terms {
                        match t {
                            SpfTerm::Mechanism { name, value, .. } => {
                                assert!(KNOWN.contains(&name.as_str()), "{name:?}");
                                assert!(value.as_deref() != Some(""), "an empty value");
                                assert!(name != "all" || value.is_none(), "all with a value");
                            }
                            SpfTerm::Modifier { name, .. } => {
                                assert!(name.starts_with(|c: char| c.is_ascii_lowercase()));
                            }
                        }
                    }
                }
                if let Ok(tags) = tag_list(text) {
                    for (i, (t, _)) in tags.iter().enumerate() {
                        assert!(!t.is_empty());
                        assert!(!tags.iter().skip(i + 1).any(|(u, _)| u == t), "{t} twice");
                    }
                }
            }
            _ => {
                let typed = SecretString::from(text.to_owned());
                let Ok(password) = NewPassword::parse(typed.clone()) else {
                    return;
                };
                let p = password.secret().expose();
                assert_eq!(p, normalize_password(&typed).expose());
                let n = p.chars().count();
                assert!((NewPassword::MIN_CHARS..=NewPassword::MAX_CHARS).contains(&n), "{n}");
                let again = NewPassword::parse(password.secret().clone());
                assert_eq!(
                    again.ok().as_ref().map(|a| a.secret().expose()),
                    Some(p),
                    "normalising twice changes the password or its verdict"
                );
            }
        }
    }
);
