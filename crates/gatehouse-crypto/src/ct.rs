//! Constant-time comparison for secrets (service credentials, token digests).

use subtle::ConstantTimeEq;

/// Compares two byte strings without an early exit on the first difference.
///
/// The length is not secret here (it is public for every credential format we use), so unequal
/// lengths return `false` at once.
#[must_use]
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

#[cfg(test)]
mod tests {
    use super::ct_eq;

    #[test]
    fn equal_and_unequal() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"abcd"));
        assert!(ct_eq(b"", b""));
    }
}
