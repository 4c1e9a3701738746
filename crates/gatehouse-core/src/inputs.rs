//! Parse, don't validate: request fields become these types at the edge of the domain, and
//! everything past that point can rely on them.

use gatehouse_crypto::SecretString;

use crate::error::Error;

/// A normalised email address: trimmed and lower-cased, so that one mailbox maps to one account.
///
/// The check is deliberately shallow (one `@`, non-empty parts, a dot in the domain, RFC 5321
/// lengths, no whitespace or control characters); proof of ownership is the verification mail.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    pub fn parse(text: &str) -> Result<Self, Error> {
        let e = text.trim().to_lowercase();
        let bad = |why: &str| Err(Error::invalid("email", why));
        if e.len() > 254 {
            return bad("must be at most 254 characters");
        }
        if e.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return bad("must not contain spaces or control characters");
        }
        let Some((local, domain)) = e.split_once('@') else {
            return bad("must contain an @");
        };
        if local.is_empty() || local.len() > 64 || domain.contains('@') {
            return bad("must have one @ with 1 to 64 characters before it");
        }
        let labels_ok = domain
            .split('.')
            .all(|l| !l.is_empty() && !l.starts_with('-'));
        if !domain.contains('.') || !labels_ok {
            return bad("must have a domain such as example.com after the @");
        }
        Ok(Self(e))
    }

    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A human-facing name (person or organisation): 1 to 200 characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisplayName(String);

impl DisplayName {
    pub fn parse(field: &'static str, text: &str) -> Result<Self, Error> {
        let t = text.trim();
        let n = t.chars().count();
        if n == 0 || n > 200 {
            return Err(Error::invalid(field, "must be 1 to 200 characters"));
        }
        if t.chars().any(char::is_control) {
            return Err(Error::invalid(field, "must not contain control characters"));
        }
        Ok(Self(t.to_owned()))
    }

    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// NFKC-normalises a password, so the same password typed on different keyboards or input
/// methods hashes the same (NIST SP 800-63B 5.1.1.2). Applied at signup, change and sign-in.
#[must_use]
pub fn normalize_password(password: &SecretString) -> SecretString {
    use unicode_normalization::UnicodeNormalization as _;
    SecretString::from(password.expose().nfkc().collect::<String>())
}

/// Common and breached passwords (lower-cased, 8 characters or more), from the zxcvbn-ts frequency
/// list (MIT; see data/common-passwords.LICENSE.txt).
static COMMON_PASSWORDS: &str = include_str!("../data/common-passwords.txt");

static COMMON_SET: std::sync::LazyLock<std::collections::HashSet<&'static str>> =
    std::sync::LazyLock::new(|| COMMON_PASSWORDS.lines().collect());

/// Whether the password, ignoring case, is on the shipped list of common and breached passwords.
#[must_use]
pub fn is_common_password(password: &str) -> bool {
    COMMON_SET.contains(password.to_lowercase().as_str())
}

/// A candidate password that meets the policy: NFKC-normalised, 8 to 256 characters, and not on
/// the list of common and breached passwords (NIST SP 800-63B).
#[derive(Debug)]
pub struct NewPassword(SecretString);

impl NewPassword {
    pub const MIN_CHARS: usize = 8;
    pub const MAX_CHARS: usize = 256;

    pub fn parse(password: SecretString) -> Result<Self, Error> {
        let password = normalize_password(&password);
        let n = password.expose().chars().count();
        if n < Self::MIN_CHARS {
            return Err(Error::invalid("password", "must be at least 8 characters"));
        }
        if n > Self::MAX_CHARS {
            return Err(Error::invalid("password", "must be at most 256 characters"));
        }
        if is_common_password(password.expose()) {
            return Err(Error::invalid(
                "password",
                "is on the list of common or breached passwords; choose another",
            ));
        }
        Ok(Self(password))
    }

    #[must_use]
    pub fn secret(&self) -> &SecretString {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn common_passwords_are_refused_with_a_reason() {
        for common in [
            "password",
            "Password1",
            "12345678",
            "iloveyou",
            "QWERTYUIOP",
        ] {
            let e = NewPassword::parse(SecretString::from(common.to_owned())).unwrap_err();
            assert!(
                e.to_string().contains("common or breached"),
                "{common}: {e}"
            );
        }
        assert!(NewPassword::parse(SecretString::from("plum-orbit-cask-47".to_owned())).is_ok());
    }

    #[test]
    fn passwords_are_nfkc_normalised() {
        // U+FB01 (the "fi" ligature) and full-width letters fold to ASCII under NFKC.
        let a = normalize_password(&SecretString::from("\u{FB01}ne-\u{FF21}pple-7".to_owned()));
        assert_eq!(a.expose(), "fine-Apple-7");
        let p = NewPassword::parse(SecretString::from("\u{FF50}assword".to_owned())).unwrap_err();
        assert!(p.to_string().contains("common"));
    }

    #[test]
    fn emails() {
        assert_eq!(
            Email::parse(" Ada@Example.COM ").unwrap().as_str(),
            "ada@example.com"
        );
        for bad in [
            "", "a", "a@", "@b.c", "a@b", "a@@b.c", "a b@c.d", "a@b..c", "a@-b.c",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn passwords_by_characters_not_bytes() {
        assert!(NewPassword::parse(SecretString::new("short".into())).is_err());
        assert!(NewPassword::parse(SecretString::new("ééééééé".into())).is_err());
        assert!(NewPassword::parse(SecretString::new("éééééééé".into())).is_ok());
        assert!(NewPassword::parse(SecretString::new("x".repeat(257))).is_err());
    }

    proptest! {
        #[test]
        fn email_parse_never_panics_and_is_idempotent(s in "\\PC{0,80}") {
            if let Ok(e) = Email::parse(&s) {
                prop_assert_eq!(Email::parse(e.as_str()).unwrap(), e);
            }
        }

        #[test]
        fn names_never_panic(s in any::<String>()) {
            let _ = DisplayName::parse("name", &s);
        }
    }
}
