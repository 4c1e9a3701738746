//! Request ids. Every request gets a fresh one (a caller's W3C `traceparent` is kept beside it
//! as the trace id, never as the request id); the
//! edge (`edge.rs`) returns it as `x-request-id` and keeps it with the method and route in the
//! task-local [`RequestInfo`](gatehouse_core::telemetry::RequestInfo), which problem bodies and
//! the log formatter read, so every log line of the request carries it. (A `tracing` span per
//! request did the same at about 15 % of verify throughput: the formatter serialised its fields
//! for every request, logged inside it or not.)

use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

pub use gatehouse_core::telemetry::RequestInfo;

/// The id of the request being handled, when called inside one.
pub(crate) fn current() -> Option<String> {
    gatehouse_core::telemetry::current().map(|r| r.request_id.clone())
}

/// The request being handled by the calling task, if any (for log formatters).
pub fn current_request() -> Option<Arc<RequestInfo>> {
    gatehouse_core::telemetry::current()
}

/// A fresh 128-bit id: a process-wide counter mixed under two keys the OS seeded once (the
/// SplitMix64 finaliser, a bijection, so ids never repeat within a process; the keys spread them
/// across processes). Ids are not secrets: they need to be unique and well spread (W3C trace
/// ids), not unguessable, so this costs neither a system call nor a keyed hash per request.
pub(crate) fn fresh_id() -> String {
    static KEYS: OnceLock<(u64, u64)> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let (k1, k2) = *KEYS.get_or_init(|| {
        let s = RandomState::new();
        (s.hash_one(1u8), s.hash_one(2u8))
    });
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let id = uuid::Uuid::from_u64_pair(mix(n ^ k1), mix(n.wrapping_add(k2)));
    let mut buf = [0u8; 32];
    id.simple().encode_lower(&mut buf).to_owned()
}

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::fresh_id;

    #[test]
    fn fresh_ids_are_32_hex_and_distinct() {
        let ids: std::collections::HashSet<String> = (0..10_000).map(|_| fresh_id()).collect();
        assert_eq!(ids.len(), 10_000);
        assert!(
            ids.iter()
                .all(|i| i.len() == 32 && i.bytes().all(|b| b.is_ascii_hexdigit()))
        );
    }
}
