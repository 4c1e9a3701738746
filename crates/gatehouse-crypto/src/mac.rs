//! HMAC-SHA-256 (aws-lc-rs): tags for values Gatehouse hands out and must recognise later without
//! storing them (share-link viewer passes, unsubscribe links) and for webhook signatures.

use aws_lc_rs::hmac;

use crate::secret::Key32;

/// A MAC key. The aws-lc key object keeps its own copy; this type is never printed.
pub struct MacKey(hmac::Key);

impl std::fmt::Debug for MacKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MacKey([redacted])")
    }
}

impl MacKey {
    #[must_use]
    pub fn new(key: &Key32) -> Self {
        Self(hmac::Key::new(hmac::HMAC_SHA256, key.expose()))
    }

    /// A key of any length (a webhook secret is whatever its holder was given).
    #[must_use]
    pub fn from_bytes(key: &[u8]) -> Self {
        Self(hmac::Key::new(hmac::HMAC_SHA256, key))
    }

    /// The tag of the concatenation of `parts`.
    #[must_use]
    pub fn tag(&self, parts: &[&[u8]]) -> [u8; 32] {
        let mut ctx = hmac::Context::with_key(&self.0);
        for p in parts {
            ctx.update(p);
        }
        let mut out = [0u8; 32];
        out.copy_from_slice(ctx.sign().as_ref());
        out
    }

    /// Whether `tag` is the tag of `parts`, compared in constant time.
    #[must_use]
    pub fn verify(&self, parts: &[&[u8]], tag: &[u8]) -> bool {
        crate::ct::ct_eq(&self.tag(parts), tag)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn rfc4231_case_2() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        let k = MacKey::from_bytes(b"Jefe");
        let t = k.tag(&[b"what do ya want ", b"for nothing?"]);
        assert_eq!(
            hex(&t),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert!(k.verify(&[b"what do ya want for nothing?"], &t));
        let mut bad = t;
        bad[0] ^= 1;
        assert!(!k.verify(&[b"what do ya want for nothing?"], &bad));
        assert!(!k.verify(&[b"what do ya want for nothing?"], &t[..31]));
    }
}
