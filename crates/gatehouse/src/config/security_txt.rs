//! `/.well-known/security.txt` (RFC 9116, H2): how to report a vulnerability, rendered once from
//! configuration. Contact and Expires are required; a file that has expired is refused at
//! start, because it tells researchers to use channels nobody vouches for any more.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::ConfigError;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SecurityTxtConfig {
    /// `mailto:`, `https:` or `tel:` URIs, in order of preference. Setting anything in this
    /// section turns the file on; then at least one is required.
    pub contact: Vec<String>,
    /// RFC 3339, in the future (RFC 9116 recommends less than a year ahead).
    pub expires: Option<String>,
    pub encryption: Vec<String>,
    pub acknowledgments: Vec<String>,
    /// Language tags such as `["en", "de"]`.
    pub preferred_languages: Vec<String>,
    pub canonical: Vec<String>,
    pub policy: Vec<String>,
    pub hiring: Vec<String>,
}

impl SecurityTxtConfig {
    fn is_empty(&self) -> bool {
        self.contact.is_empty()
            && self.expires.is_none()
            && self.encryption.is_empty()
            && self.acknowledgments.is_empty()
            && self.preferred_languages.is_empty()
            && self.canonical.is_empty()
            && self.policy.is_empty()
            && self.hiring.is_empty()
    }
}

fn refuse<T>(msg: String) -> Result<T, ConfigError> {
    Err(ConfigError(msg))
}

fn check_uri(field: &str, value: &str, schemes: &[&str]) -> Result<(), ConfigError> {
    let ok = schemes.iter().any(|s| {
        value
            .strip_prefix(s)
            .is_some_and(|rest| !rest.is_empty() && !rest.chars().any(char::is_whitespace))
    });
    if ok {
        Ok(())
    } else {
        refuse(format!(
            "security_txt.{field}: {value:?} must be a URI starting with one of {schemes:?}"
        ))
    }
}

/// The file's text, or `None` when the section is empty. `now` is the time at load.
pub fn render(c: &SecurityTxtConfig, now: OffsetDateTime) -> Result<Option<String>, ConfigError> {
    if c.is_empty() {
        return Ok(None);
    }
    if c.contact.is_empty() {
        return refuse(
            "security_txt.contact: required (RFC 9116), e.g. [\"mailto:security@example.com\"]"
                .to_owned(),
        );
    }
    let Some(expires_text) = &c.expires else {
        return refuse(
            "security_txt.expires: required (RFC 9116), an RFC 3339 time less than a year ahead"
                .to_owned(),
        );
    };
    let expires = OffsetDateTime::parse(expires_text, &Rfc3339).map_err(|_| {
        ConfigError(format!(
            "security_txt.expires: {expires_text:?} is not an RFC 3339 time such as \
             \"2027-06-30T00:00:00Z\""
        ))
    })?;
    if expires <= now {
        return refuse(format!(
            "security_txt.expires: {expires_text} is in the past; a stale security.txt points \
             researchers at channels nobody watches. Set a new date"
        ));
    }
    let mut out = String::new();
    let mut line = |name: &str, value: &str| {
        out.push_str(name);
        out.push_str(": ");
        out.push_str(value);
        out.push('\n');
    };
    for v in &c.contact {
        check_uri("contact", v, &["mailto:", "https://", "tel:"])?;
        line("Contact", v);
    }
    let utc = expires.to_offset(time::UtcOffset::UTC);
    line(
        "Expires",
        &utc.format(&Rfc3339)
            .map_err(|e| ConfigError(e.to_string()))?,
    );
    for v in &c.encryption {
        check_uri("encryption", v, &["https://", "openpgp4fpr:", "dns:"])?;
        line("Encryption", v);
    }
    for v in &c.acknowledgments {
        check_uri("acknowledgments", v, &["https://"])?;
        line("Acknowledgments", v);
    }
    if !c.preferred_languages.is_empty() {
        for tag in &c.preferred_languages {
            let ok = !tag.is_empty()
                && tag.len() <= 35
                && tag.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
            if !ok {
                return refuse(format!(
                    "security_txt.preferred_languages: {tag:?} is not a language tag"
                ));
            }
        }
        line("Preferred-Languages", &c.preferred_languages.join(", "));
    }
    for v in &c.canonical {
        check_uri("canonical", v, &["https://"])?;
        line("Canonical", v);
    }
    for v in &c.policy {
        check_uri("policy", v, &["https://"])?;
        line("Policy", v);
    }
    for v in &c.hiring {
        check_uri("hiring", v, &["https://"])?;
        line("Hiring", v);
    }
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> OffsetDateTime {
        OffsetDateTime::parse(s, &Rfc3339).unwrap()
    }

    #[test]
    fn renders_the_fields_in_rfc_9116_form() {
        let c = SecurityTxtConfig {
            contact: vec![
                "mailto:security@example.com".into(),
                "https://example.com/report".into(),
            ],
            expires: Some("2027-06-30T12:00:00+02:00".into()),
            preferred_languages: vec!["en".into(), "de".into()],
            canonical: vec!["https://example.com/.well-known/security.txt".into()],
            policy: vec!["https://example.com/disclosure".into()],
            ..SecurityTxtConfig::default()
        };
        let text = render(&c, at("2026-12-01T00:00:00Z")).unwrap().unwrap();
        assert_eq!(
            text,
            "Contact: mailto:security@example.com\n\
             Contact: https://example.com/report\n\
             Expires: 2027-06-30T10:00:00Z\n\
             Preferred-Languages: en, de\n\
             Canonical: https://example.com/.well-known/security.txt\n\
             Policy: https://example.com/disclosure\n"
        );
    }

    #[test]
    fn empty_is_off_and_bad_settings_are_refused() {
        let now = at("2026-12-01T00:00:00Z");
        assert_eq!(render(&SecurityTxtConfig::default(), now).unwrap(), None);
        let no_contact = SecurityTxtConfig {
            expires: Some("2027-01-01T00:00:00Z".into()),
            ..SecurityTxtConfig::default()
        };
        assert!(
            render(&no_contact, now)
                .unwrap_err()
                .0
                .starts_with("security_txt.contact:")
        );
        let past = SecurityTxtConfig {
            contact: vec!["mailto:a@b.c".into()],
            expires: Some("2026-11-30T23:59:59Z".into()),
            ..SecurityTxtConfig::default()
        };
        let msg = render(&past, now).unwrap_err().0;
        assert!(
            msg.starts_with("security_txt.expires:") && msg.contains("past"),
            "{msg}"
        );
        let no_expiry = SecurityTxtConfig {
            contact: vec!["mailto:a@b.c".into()],
            ..SecurityTxtConfig::default()
        };
        assert!(
            render(&no_expiry, now)
                .unwrap_err()
                .0
                .starts_with("security_txt.expires:")
        );
        let bad_uri = SecurityTxtConfig {
            contact: vec!["security@example.com".into()],
            expires: Some("2027-01-01T00:00:00Z".into()),
            ..SecurityTxtConfig::default()
        };
        assert!(render(&bad_uri, now).unwrap_err().0.contains("mailto:"));
    }
}
