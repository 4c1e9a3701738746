//! `[transit]`: how many items one transit call may carry.

use serde::{Deserialize, Serialize};

use super::{ConfigError, refuse};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TransitConfig {
    /// The most items one transit batch may hold.
    pub max_batch_items: usize,
}

impl Default for TransitConfig {
    fn default() -> Self {
        Self {
            max_batch_items: 100,
        }
    }
}

/// The largest batch.
pub(super) fn validate(c: &TransitConfig) -> Result<usize, ConfigError> {
    if !(1..=1_000).contains(&c.max_batch_items) {
        return refuse("transit.max_batch_items: must be between 1 and 1000");
    }
    Ok(c.max_batch_items)
}
