//! `[trust_page]` (H3): the public trust page at `/trust` and `/trust.md`, off by default. When on
//! it shows every control's status from the posture report beside what the operator declares
//! here (certifications, data residency, sub-processors, contact, last penetration test), which
//! the page labels as declarations Gatehouse has not verified.

use std::time::Duration;

use gatehouse_core::posture::{Certification, Declarations, SubProcessor};
use gatehouse_http::TrustPageSettings;
use serde::{Deserialize, Serialize};

use super::{ConfigError, refuse};

/// The shortest and longest time one report may serve the page.
const CACHE_SECONDS: std::ops::RangeInclusive<u64> = 5..=3600;

/// The longest text one declaration may hold.
const MAX_TEXT: usize = 2000;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrustPageConfig {
    /// Serves `/trust` and `/trust.md`; while off both are 404.
    pub enabled: bool,
    /// How long one report answers every request for the page (5 to 3600 seconds): the checks
    /// run at most this often however often the page is asked for.
    pub cache_seconds: u64,
    /// The service the page is about, for example "Acme CRM".
    pub service_name: Option<String>,
    /// Where to report a security problem: an address or a URL.
    pub contact: Option<String>,
    /// Where customer data is stored, for example "EU (Frankfurt)".
    pub data_residency: Option<String>,
    /// When the last penetration test ended and who ran it, in the operator's words.
    pub last_penetration_test: Option<String>,
    /// `[[trust_page.certifications]]`: name, status (`held`, `in_progress`, `not_claimed`),
    /// optional note.
    pub certifications: Vec<Certification>,
    /// `[[trust_page.sub_processors]]`: name, purpose, optional location.
    pub sub_processors: Vec<SubProcessor>,
}

impl Default for TrustPageConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            cache_seconds: gatehouse_http::TRUST_PAGE_DEFAULT_CACHE.as_secs(),
            service_name: None,
            contact: None,
            data_residency: None,
            last_penetration_test: None,
            certifications: Vec::new(),
            sub_processors: Vec::new(),
        }
    }
}

/// A declaration's text: not blank, not longer than [`MAX_TEXT`], trimmed.
fn text(key: &str, value: &str) -> Result<String, ConfigError> {
    let t = value.trim();
    if t.is_empty() {
        return refuse(format!(
            "trust_page.{key}: empty; leave the key out or write the statement"
        ));
    }
    if t.chars().count() > MAX_TEXT {
        return refuse(format!(
            "trust_page.{key}: longer than {MAX_TEXT} characters; link to a longer document instead"
        ));
    }
    Ok(t.to_owned())
}

fn optional(key: &str, value: Option<&String>) -> Result<Option<String>, ConfigError> {
    value.map(|v| text(key, v)).transpose()
}

/// The page's settings when it is on; `None` while off (the declarations are still checked, so
/// a mistake shows when it is written, not when the page is turned on).
pub(super) fn validate(c: &TrustPageConfig) -> Result<Option<TrustPageSettings>, ConfigError> {
    if !CACHE_SECONDS.contains(&c.cache_seconds) {
        return refuse(format!(
            "trust_page.cache_seconds: {} is outside {} to {} (how long one report of the \
             self-checks serves the public page)",
            c.cache_seconds,
            CACHE_SECONDS.start(),
            CACHE_SECONDS.end()
        ));
    }
    let mut certifications = Vec::with_capacity(c.certifications.len());
    for (i, cert) in c.certifications.iter().enumerate() {
        certifications.push(Certification {
            name: text(&format!("certifications[{i}].name"), &cert.name)?,
            status: cert.status,
            note: optional(&format!("certifications[{i}].note"), cert.note.as_ref())?,
        });
    }
    let mut sub_processors = Vec::with_capacity(c.sub_processors.len());
    for (i, s) in c.sub_processors.iter().enumerate() {
        sub_processors.push(SubProcessor {
            name: text(&format!("sub_processors[{i}].name"), &s.name)?,
            purpose: text(&format!("sub_processors[{i}].purpose"), &s.purpose)?,
            location: optional(
                &format!("sub_processors[{i}].location"),
                s.location.as_ref(),
            )?,
        });
    }
    let declarations = Declarations {
        service_name: optional("service_name", c.service_name.as_ref())?,
        contact: optional("contact", c.contact.as_ref())?,
        certifications,
        data_residency: optional("data_residency", c.data_residency.as_ref())?,
        sub_processors,
        last_penetration_test: optional("last_penetration_test", c.last_penetration_test.as_ref())?,
    };
    Ok(c.enabled.then(|| TrustPageSettings {
        declarations,
        cache: Duration::from_secs(c.cache_seconds),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use gatehouse_core::posture::CertificationStatus;

    #[test]
    fn off_by_default_and_on_with_the_declarations_trimmed() {
        assert_eq!(validate(&TrustPageConfig::default()).unwrap(), None);
        let c = TrustPageConfig {
            enabled: true,
            cache_seconds: 120,
            service_name: Some(" Acme CRM ".into()),
            certifications: vec![Certification {
                name: "SOC 2 Type II".into(),
                status: CertificationStatus::InProgress,
                note: None,
            }],
            sub_processors: vec![SubProcessor {
                name: "Hetzner".into(),
                purpose: "hosting".into(),
                location: Some("Germany".into()),
            }],
            ..TrustPageConfig::default()
        };
        let s = validate(&c).unwrap().unwrap();
        assert_eq!(s.cache, Duration::from_secs(120));
        assert_eq!(s.declarations.service_name.as_deref(), Some("Acme CRM"));
        assert_eq!(s.declarations.certifications, c.certifications);
        assert_eq!(s.declarations.sub_processors, c.sub_processors);
    }

    #[test]
    fn a_cache_period_out_of_bounds_or_a_blank_declaration_is_refused() {
        for secs in [0, 4, 3601, u64::MAX] {
            let c = TrustPageConfig {
                enabled: true,
                cache_seconds: secs,
                ..TrustPageConfig::default()
            };
            let msg = validate(&c).unwrap_err().0;
            assert!(
                msg.starts_with("trust_page.cache_seconds:") && msg.contains("5 to 3600"),
                "{msg}"
            );
        }
        for secs in [5, 3600] {
            let c = TrustPageConfig {
                cache_seconds: secs,
                ..TrustPageConfig::default()
            };
            assert!(validate(&c).is_ok(), "{secs}");
        }
        let blank = TrustPageConfig {
            sub_processors: vec![SubProcessor {
                name: "Hetzner".into(),
                purpose: "  ".into(),
                location: None,
            }],
            ..TrustPageConfig::default()
        };
        assert!(
            validate(&blank)
                .unwrap_err()
                .0
                .starts_with("trust_page.sub_processors[0].purpose: empty")
        );
        let long = TrustPageConfig {
            contact: Some("x".repeat(MAX_TEXT + 1)),
            ..TrustPageConfig::default()
        };
        assert!(
            validate(&long)
                .unwrap_err()
                .0
                .starts_with("trust_page.contact: longer than")
        );
    }
}
