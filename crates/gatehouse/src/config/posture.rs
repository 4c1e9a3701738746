//! `[posture]` (H3): how long each self-check of the posture report may take before the report
//! goes on without it (that check then reports `warn`, never `pass`).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{ConfigError, refuse};

/// The shortest and longest deadline accepted, in milliseconds.
const DEADLINE_MS: std::ops::RangeInclusive<u64> = 10..=10_000;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PostureConfig {
    /// Each check's deadline (10 to 10000 ms). The checks run at once, so the report answers in
    /// about this long at most; raise it on a slow or remote database.
    pub check_deadline_ms: u64,
}

impl Default for PostureConfig {
    fn default() -> Self {
        Self {
            check_deadline_ms: u64::try_from(gatehouse_core::posture::CHECK_DEADLINE.as_millis())
                .unwrap_or(40),
        }
    }
}

pub(super) fn validate(c: &PostureConfig) -> Result<Duration, ConfigError> {
    if !DEADLINE_MS.contains(&c.check_deadline_ms) {
        return refuse(format!(
            "posture.check_deadline_ms: {} is outside {} to {} milliseconds",
            c.check_deadline_ms,
            DEADLINE_MS.start(),
            DEADLINE_MS.end()
        ));
    }
    Ok(Duration::from_millis(c.check_deadline_ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_deadline_defaults_to_40_ms_and_is_bounded() {
        assert_eq!(
            validate(&PostureConfig::default()),
            Ok(Duration::from_millis(40))
        );
        for bad in [0, 9, 10_001] {
            let err = validate(&PostureConfig {
                check_deadline_ms: bad,
            })
            .unwrap_err();
            assert!(err.0.contains("posture.check_deadline_ms"), "{err}");
        }
        assert_eq!(
            validate(&PostureConfig {
                check_deadline_ms: 10_000
            }),
            Ok(Duration::from_secs(10))
        );
    }
}
