//! `[share]`: bounds on share links (F1).

use gatehouse_core::product::ShareSettings;
use serde::{Deserialize, Serialize};

use super::{ConfigError, refuse};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ShareConfig {
    /// The furthest ahead a link's `expires_at` may be (1 to 365 days).
    pub max_ttl_days: u32,
    /// How long a viewer pass lasts after opening a link (60 to 86400 seconds; never past the
    /// link's own expiry).
    pub viewer_ttl_secs: u32,
}

impl Default for ShareConfig {
    fn default() -> Self {
        let d = ShareSettings::default();
        Self {
            max_ttl_days: u32::try_from(d.max_ttl.whole_days()).unwrap_or(30),
            viewer_ttl_secs: u32::try_from(d.viewer_ttl.whole_seconds()).unwrap_or(900),
        }
    }
}

pub(super) fn validate(c: &ShareConfig) -> Result<ShareSettings, ConfigError> {
    if !(1..=365).contains(&c.max_ttl_days) {
        return refuse("share.max_ttl_days: must be 1 to 365");
    }
    if !(60..=86_400).contains(&c.viewer_ttl_secs) {
        return refuse("share.viewer_ttl_secs: must be 60 to 86400");
    }
    Ok(ShareSettings {
        max_ttl: time::Duration::days(i64::from(c.max_ttl_days)),
        viewer_ttl: time::Duration::seconds(i64::from(c.viewer_ttl_secs)),
    })
}
