//! `[audit]`: how often `serve` signs a checkpoint over the audit chains.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{ConfigError, refuse};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// How often `serve` signs a checkpoint over every audit chain head that moved.
    pub checkpoint_interval_secs: u64,
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            checkpoint_interval_secs: 300,
        }
    }
}

/// How often the checkpoint job runs.
pub(super) fn validate(c: &AuditConfig) -> Result<Duration, ConfigError> {
    if c.checkpoint_interval_secs == 0 {
        return refuse("audit.checkpoint_interval_secs: must be at least 1");
    }
    Ok(Duration::from_secs(c.checkpoint_interval_secs))
}
