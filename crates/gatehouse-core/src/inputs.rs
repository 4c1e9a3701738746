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

/// A candidate password that meets the length policy (8 to 256 characters, NIST SP 800-63B).
#[derive(Debug)]
pub struct NewPassword(SecretString);

impl NewPassword {
    pub const MIN_CHARS: usize = 8;
    pub const MAX_CHARS: usize = 256;

    pub fn parse(password: SecretString) -> Result<Self, Error> {
        let n = password.expose().chars().count();
        if n < Self::MIN_CHARS {
            return Err(Error::invalid("password", "must be at least 8 characters"));
        }
        if n > Self::MAX_CHARS {
            return Err(Error::invalid("password", "must be at most 256 characters"));
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
