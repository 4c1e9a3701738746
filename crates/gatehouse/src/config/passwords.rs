//! `[passwords]` (A1): the optional breached-password range check by k-anonymity, and
//! `[security_events]` (E1): the bound on aggregated security events.

use std::time::Duration;

use gatehouse_core::identity::BreachOnError;
use serde::{Deserialize, Serialize};

use super::{ConfigError, refuse};

/// The range check's timeout bounds, in milliseconds.
const TIMEOUT_MS: std::ops::RangeInclusive<u64> = 100..=10_000;
/// The security-event bound's limits: at least one event a minute, at most 100,000.
const MAX_PER_MINUTE: std::ops::RangeInclusive<usize> = 1..=100_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnError {
    /// Accept the password (the shipped list and context words still apply).
    Allow,
    /// Refuse with 503 `dependency_unavailable` until the service answers.
    Refuse,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PasswordsConfig {
    /// A Pwned-Passwords-style range endpoint (`https://api.pwnedpasswords.com/range`): each new
    /// password sends the first 5 hex characters of its SHA-1 there. Unset: off.
    pub breach_range_url: Option<String>,
    /// How long one range query may take.
    pub breach_timeout_ms: u64,
    /// What happens to a new password when the service does not answer in time or fails.
    pub breach_on_error: OnError,
}

impl Default for PasswordsConfig {
    fn default() -> Self {
        Self {
            breach_range_url: None,
            breach_timeout_ms: 2_000,
            breach_on_error: OnError::Allow,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SecurityEventsConfig {
    /// Aggregate security events written per minute per instance at most; what does not fit is
    /// counted in one `security.events_folded` event.
    pub max_per_minute: usize,
}

impl Default for SecurityEventsConfig {
    fn default() -> Self {
        Self {
            max_per_minute: gatehouse_core::audit::security::DEFAULT_MAX_PER_MINUTE,
        }
    }
}

/// The validated range check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BreachSettings {
    pub url: url::Url,
    pub timeout: Duration,
    pub on_error: BreachOnError,
}

pub(super) fn validate(
    c: &PasswordsConfig,
    production: bool,
) -> Result<Option<BreachSettings>, ConfigError> {
    let Some(text) = &c.breach_range_url else {
        return Ok(None);
    };
    let url = url::Url::parse(text).map_err(|e| {
        ConfigError(format!(
            "passwords.breach_range_url: {text:?} is not a URL: {e}"
        ))
    })?;
    let loopback = url
        .host()
        .is_some_and(|h| matches!(h, url::Host::Domain("localhost")) || host_is_loopback(&h));
    if url.scheme() != "https" && !(url.scheme() == "http" && (loopback || !production)) {
        return refuse(
            "passwords.breach_range_url: must be https:// (http:// only to a loopback address, or outside production)",
        );
    }
    if !url.username().is_empty()
        || url.password().is_some()
        || url.query().is_some()
        || url.fragment().is_some()
    {
        return refuse(
            "passwords.breach_range_url: no credentials, query or fragment; the prefix is appended as a path segment",
        );
    }
    if !TIMEOUT_MS.contains(&c.breach_timeout_ms) {
        return refuse(format!(
            "passwords.breach_timeout_ms: {} is outside {} to {} milliseconds",
            c.breach_timeout_ms,
            TIMEOUT_MS.start(),
            TIMEOUT_MS.end()
        ));
    }
    Ok(Some(BreachSettings {
        url,
        timeout: Duration::from_millis(c.breach_timeout_ms),
        on_error: match c.breach_on_error {
            OnError::Allow => BreachOnError::Allow,
            OnError::Refuse => BreachOnError::Refuse,
        },
    }))
}

fn host_is_loopback(h: &url::Host<&str>) -> bool {
    match h {
        url::Host::Ipv4(a) => a.is_loopback(),
        url::Host::Ipv6(a) => a.is_loopback(),
        url::Host::Domain(_) => false,
    }
}

pub(super) fn validate_security_events(c: &SecurityEventsConfig) -> Result<usize, ConfigError> {
    if !MAX_PER_MINUTE.contains(&c.max_per_minute) {
        return refuse(format!(
            "security_events.max_per_minute: {} is outside {} to {}",
            c.max_per_minute,
            MAX_PER_MINUTE.start(),
            MAX_PER_MINUTE.end()
        ));
    }
    Ok(c.max_per_minute)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_url(url: &str) -> PasswordsConfig {
        PasswordsConfig {
            breach_range_url: Some(url.into()),
            ..PasswordsConfig::default()
        }
    }

    #[test]
    fn the_range_check_is_off_by_default_and_its_url_and_timeout_are_checked() {
        assert_eq!(validate(&PasswordsConfig::default(), true), Ok(None));
        let on = validate(&with_url("https://api.pwnedpasswords.com/range"), true)
            .unwrap()
            .unwrap();
        assert_eq!(on.on_error, BreachOnError::Allow);
        assert_eq!(on.timeout, Duration::from_secs(2));
        assert!(
            validate(&with_url("http://127.0.0.1:9/range"), true)
                .unwrap()
                .is_some()
        );
        for (bad, production) in [
            ("http://range.example/range", true),
            ("ftp://range.example/", false),
            ("https://user:pw@range.example/", false),
            ("https://range.example/?x=1", false),
            // A fragment would swallow the prefix appended after it.
            ("https://range.example/range#", false),
            ("https://range.example/range#x", false),
            ("not a url", false),
        ] {
            let e = validate(&with_url(bad), production).unwrap_err();
            assert!(e.0.contains("passwords.breach_range_url"), "{bad}: {e}");
        }
        for ms in [0, 99, 10_001] {
            let e = validate(
                &PasswordsConfig {
                    breach_timeout_ms: ms,
                    ..with_url("https://range.example/")
                },
                false,
            )
            .unwrap_err();
            assert!(e.0.contains("passwords.breach_timeout_ms"), "{e}");
        }
    }

    #[test]
    fn the_security_event_bound_is_validated() {
        assert_eq!(
            validate_security_events(&SecurityEventsConfig::default()),
            Ok(1_000)
        );
        for bad in [0, 100_001] {
            let e = validate_security_events(&SecurityEventsConfig {
                max_per_minute: bad,
            })
            .unwrap_err();
            assert!(e.0.contains("security_events.max_per_minute"), "{e}");
        }
    }
}
