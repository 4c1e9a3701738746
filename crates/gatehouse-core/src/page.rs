//! Cursor pagination. A cursor is an opaque, versioned token naming the last row of the previous
//! page by its sort key (creation time in microseconds, then id), so pages stay stable while rows
//! are added.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::Error;

const CURSOR_VERSION: u8 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub created_at_micros: i64,
    pub id: Uuid,
}

impl Cursor {
    #[must_use]
    pub fn after(created_at: OffsetDateTime, id: Uuid) -> Self {
        let micros = created_at.unix_timestamp_nanos() / 1_000;
        Self {
            created_at_micros: i64::try_from(micros).unwrap_or(i64::MAX),
            id,
        }
    }

    /// A cursor over a sequence number (audit events), not a time.
    #[must_use]
    pub fn after_seq(seq: u64) -> Self {
        Self {
            created_at_micros: i64::try_from(seq).unwrap_or(i64::MAX),
            id: Uuid::nil(),
        }
    }

    #[must_use]
    pub fn encode(&self) -> String {
        let mut raw = Vec::with_capacity(25);
        raw.push(CURSOR_VERSION);
        raw.extend_from_slice(&self.created_at_micros.to_be_bytes());
        raw.extend_from_slice(self.id.as_bytes());
        URL_SAFE_NO_PAD.encode(raw)
    }

    pub fn decode(text: &str) -> Result<Self, Error> {
        let bad = || Error::invalid("cursor", "is not a cursor this server issued");
        let raw = URL_SAFE_NO_PAD.decode(text.as_bytes()).map_err(|_| bad())?;
        let (version, rest) = raw.split_first().ok_or_else(bad)?;
        if *version != CURSOR_VERSION || rest.len() != 24 {
            return Err(bad());
        }
        let (time_bytes, id_bytes) = rest.split_at(8);
        let micros = i64::from_be_bytes(time_bytes.try_into().map_err(|_| bad())?);
        let id = Uuid::from_slice(id_bytes).map_err(|_| bad())?;
        Ok(Self {
            created_at_micros: micros,
            id,
        })
    }
}

/// A page size: 1 to 200, 50 when not given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit(u32);

impl Limit {
    pub const DEFAULT: u32 = 50;
    pub const MAX: u32 = 200;

    pub fn parse(requested: Option<u32>) -> Result<Self, Error> {
        match requested {
            None => Ok(Self(Self::DEFAULT)),
            Some(n) if (1..=Self::MAX).contains(&n) => Ok(Self(n)),
            Some(_) => Err(Error::invalid("limit", "must be between 1 and 200")),
        }
    }

    #[must_use]
    pub fn get(&self) -> u32 {
        self.0
    }

    /// A page size past the API's bound, for the server's own bulk reads (an export).
    pub(crate) fn internal(n: u32) -> Self {
        Self(n.max(1))
    }
}

#[derive(Debug, Clone, Copy)]
pub struct PageRequest {
    pub after: Option<Cursor>,
    pub limit: Limit,
}

impl PageRequest {
    pub fn parse(cursor: Option<&str>, limit: Option<u32>) -> Result<Self, Error> {
        Ok(Self {
            after: cursor
                .filter(|c| !c.is_empty())
                .map(Cursor::decode)
                .transpose()?,
            limit: Limit::parse(limit)?,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// Builds a page from up to `limit + 1` rows fetched in order: the extra row only tells that
    /// another page exists.
    pub fn from_overfetch(mut rows: Vec<T>, limit: Limit, key: impl Fn(&T) -> Cursor) -> Self {
        let limit = usize::try_from(limit.get()).unwrap_or(usize::MAX);
        let more = rows.len() > limit;
        rows.truncate(limit);
        let next_cursor = if more {
            rows.last().map(|r| key(r).encode())
        } else {
            None
        };
        Self {
            items: rows,
            next_cursor,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn cursor_round_trips(micros in any::<i64>(), id in any::<u128>()) {
            let c = Cursor { created_at_micros: micros, id: Uuid::from_u128(id) };
            prop_assert_eq!(Cursor::decode(&c.encode()).unwrap(), c);
        }

        #[test]
        fn arbitrary_text_never_panics(s in any::<String>()) {
            let _ = Cursor::decode(&s);
        }

        #[test]
        fn arbitrary_bytes_are_refused_unless_well_formed(raw in proptest::collection::vec(any::<u8>(), 0..40)) {
            let text = URL_SAFE_NO_PAD.encode(&raw);
            let ok = raw.len() == 25 && raw[0] == CURSOR_VERSION;
            prop_assert_eq!(Cursor::decode(&text).is_ok(), ok);
        }
    }

    #[test]
    fn limits() {
        assert_eq!(Limit::parse(None).unwrap().get(), 50);
        assert!(Limit::parse(Some(0)).is_err());
        assert!(Limit::parse(Some(201)).is_err());
        assert_eq!(Limit::parse(Some(200)).unwrap().get(), 200);
    }

    #[test]
    fn overfetch_sets_next_cursor_only_when_more_rows_exist() {
        let key = |n: &u32| Cursor {
            created_at_micros: i64::from(*n),
            id: Uuid::nil(),
        };
        let lim = Limit::parse(Some(2)).unwrap();
        let p = Page::from_overfetch(vec![1, 2, 3], lim, key);
        assert_eq!(p.items, vec![1, 2]);
        assert_eq!(
            Cursor::decode(p.next_cursor.as_deref().unwrap())
                .unwrap()
                .created_at_micros,
            2
        );
        let p = Page::from_overfetch(vec![1, 2], lim, key);
        assert_eq!(p.next_cursor, None);
    }
}
