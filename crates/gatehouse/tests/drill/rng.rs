//! A small seeded generator (SplitMix64): the drill's choices (which operation, which instance,
//! when to kill) follow from one printed seed, so a failing run's schedule can be replayed with
//! `GH_DRILL_SEED`. Timing still varies between runs; the sequence of choices does not.

#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// A whole number of milliseconds in `lo..=hi`.
    pub(crate) fn millis(&mut self, lo: u64, hi: u64) -> std::time::Duration {
        std::time::Duration::from_millis(lo + self.below(hi - lo + 1))
    }
}

/// The seed of this run: `GH_DRILL_SEED` when set (to replay one), otherwise fresh.
pub(crate) fn seed() -> u64 {
    if let Ok(text) = std::env::var("GH_DRILL_SEED") {
        return text
            .parse()
            .unwrap_or_else(|_| panic!("GH_DRILL_SEED={text:?} is not a number"));
    }
    let bytes = *uuid::Uuid::new_v4().as_bytes();
    u64::from_le_bytes(bytes[..8].try_into().unwrap())
}
