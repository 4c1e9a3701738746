//! Typed identifiers. Ids are UUIDv7 built from the injected clock, so they sort by creation time.

use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::{NoContext, Timestamp, Uuid};

use crate::clock::Clock;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            #[must_use]
            pub fn new(clock: &dyn Clock) -> Self {
                Self(new_uuid(clock))
            }

            #[must_use]
            pub fn from_uuid(id: Uuid) -> Self {
                Self(id)
            }

            #[must_use]
            pub fn as_uuid(&self) -> Uuid {
                self.0
            }

            /// Parses the hyphenated text form.
            pub fn parse(text: &str) -> Option<Self> {
                Uuid::try_parse(text).ok().map(Self)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.hyphenated().fmt(f)
            }
        }
    };
}

id_type!(
    /// An organisation: the tenant boundary.
    OrgId
);
id_type!(
    /// A user account (platform-wide; joined to organisations by memberships).
    UserId
);

/// A UUIDv7 whose timestamp comes from `clock`; the random bits come from the OS.
#[must_use]
pub fn new_uuid(clock: &dyn Clock) -> Uuid {
    let now = clock.now();
    let secs = u64::try_from(now.unix_timestamp()).unwrap_or(0);
    Uuid::new_v7(Timestamp::from_unix(NoContext, secs, now.nanosecond()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::FakeClock;
    use time::{Duration, OffsetDateTime};

    #[test]
    fn ids_sort_by_clock_time_and_parse_back() {
        let clock = FakeClock::at(OffsetDateTime::UNIX_EPOCH + Duration::days(20_000));
        let a = OrgId::new(&clock);
        clock.advance(Duration::milliseconds(5));
        let b = OrgId::new(&clock);
        assert!(a < b);
        assert_eq!(a.as_uuid().get_version_num(), 7);
        assert_eq!(OrgId::parse(&a.to_string()), Some(a));
        assert_eq!(OrgId::parse("nope"), None);
    }
}
