//! Time as a dependency. Domain code never reads the system clock itself (clippy's
//! `disallowed-methods` enforces it); it asks a `Clock`, so tests move time instead of sleeping.

use std::sync::{Arc, Mutex, PoisonError};

use time::{Duration, OffsetDateTime};

pub trait Clock: Send + Sync + std::fmt::Debug {
    /// The current UTC time, truncated to whole microseconds so that it round-trips exactly
    /// through every storage backend.
    fn now(&self) -> OffsetDateTime;
}

/// Truncates to microseconds, the precision both backends keep.
#[must_use]
pub fn to_micros(t: OffsetDateTime) -> OffsetDateTime {
    let nanos = t.nanosecond();
    t.replace_nanosecond(nanos - nanos % 1_000).unwrap_or(t)
}

#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[allow(clippy::disallowed_methods)] // the one sanctioned read of the system clock
    fn now(&self) -> OffsetDateTime {
        to_micros(OffsetDateTime::now_utc())
    }
}

/// A clock that only moves when told to.
#[derive(Debug, Clone)]
pub struct FakeClock(Arc<Mutex<OffsetDateTime>>);

impl FakeClock {
    #[must_use]
    pub fn at(t: OffsetDateTime) -> Self {
        Self(Arc::new(Mutex::new(to_micros(t))))
    }

    pub fn advance(&self, by: Duration) {
        let mut guard = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        *guard = to_micros(*guard + by);
    }
}

impl Clock for FakeClock {
    fn now(&self) -> OffsetDateTime {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Microseconds since the Unix epoch: how SQLite stores times.
#[must_use]
pub fn unix_micros(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1_000).unwrap_or(i64::MAX)
}

/// The inverse of [`unix_micros`]; `None` outside the representable range.
#[must_use]
pub fn from_unix_micros(micros: i64) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1_000).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fake_clock_moves_only_when_advanced() {
        let c = FakeClock::at(OffsetDateTime::UNIX_EPOCH + Duration::nanoseconds(1_234_567));
        assert_eq!(c.now().nanosecond(), 1_234_000);
        let before = c.now();
        assert_eq!(c.now(), before);
        c.advance(Duration::minutes(30));
        assert_eq!(c.now() - before, Duration::minutes(30));
    }

    #[test]
    fn system_clock_is_microsecond_precision() {
        assert_eq!(SystemClock.now().nanosecond() % 1_000, 0);
    }
}
