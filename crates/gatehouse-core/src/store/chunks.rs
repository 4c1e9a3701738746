//! How a multi-row statement splits its rows. A database prepares a statement once per SQL text
//! and connection and then reuses it; if a batch of n rows were one statement of n rows, every
//! new n would be parsed afresh (a parse of a wide multi-row INSERT costs more than its rows'
//! inserts). Chunks here are powers of two up to a bound, so a connection holds at most
//! `log2(bound) + 1` shapes of each statement, and a batch of any size is a few of them.

/// Splits `items` into chunks whose lengths are powers of two no longer than `max` (itself
/// rounded down to a power of two): as many `max` chunks as fit, then one chunk per set bit of
/// the remainder, largest first.
#[must_use]
pub fn power_of_two_chunks<T>(items: &[T], max: usize) -> PowerOfTwoChunks<'_, T> {
    let max = if max <= 1 { 1 } else { 1 << max.ilog2() };
    PowerOfTwoChunks { rest: items, max }
}

/// The iterator of [`power_of_two_chunks`].
#[derive(Debug)]
pub struct PowerOfTwoChunks<'a, T> {
    rest: &'a [T],
    max: usize,
}

impl<'a, T> Iterator for PowerOfTwoChunks<'a, T> {
    type Item = &'a [T];

    fn next(&mut self) -> Option<&'a [T]> {
        let len = self.rest.len();
        if len == 0 {
            return None;
        }
        let take = if len >= self.max {
            self.max
        } else {
            1 << len.ilog2()
        };
        let (chunk, rest) = self.rest.split_at(take);
        self.rest = rest;
        Some(chunk)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_item_once_in_order_in_power_of_two_chunks() {
        for n in 0..300usize {
            let items: Vec<usize> = (0..n).collect();
            let chunks: Vec<&[usize]> = power_of_two_chunks(&items, 64).collect();
            let flat: Vec<usize> = chunks.iter().flat_map(|c| c.iter().copied()).collect();
            assert_eq!(flat, items, "n = {n}");
            for c in &chunks {
                assert!(
                    c.len().is_power_of_two() && c.len() <= 64,
                    "n = {n}: {}",
                    c.len()
                );
            }
            // Full chunks, then one per set bit of the remainder.
            assert_eq!(
                chunks.len(),
                n / 64 + (n % 64).count_ones() as usize,
                "n = {n}"
            );
        }
    }

    #[test]
    fn a_bound_that_is_not_a_power_of_two_rounds_down() {
        let items = [0u8; 100];
        let lens: Vec<usize> = power_of_two_chunks(&items, 50).map(<[u8]>::len).collect();
        assert_eq!(lens, vec![32, 32, 32, 4]);
        let lens: Vec<usize> = power_of_two_chunks(&items[..3], 0)
            .map(<[u8]>::len)
            .collect();
        assert_eq!(lens, vec![1, 1, 1]);
    }
}
