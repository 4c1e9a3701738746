//! Standard Webhooks signatures: `v1,` and the base64 of HMAC-SHA-256 over
//! `{webhook-id}.{webhook-timestamp}.{body}`, keyed with the bytes a `whsec_` secret encodes.
//! During a rotation's overlap both the new and the old secret sign, space-separated, and a
//! receiver accepts either.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use gatehouse_crypto::{MacKey, SecretBytes, SecretString};

use crate::error::Error;

pub(crate) const SECRET_PREFIX: &str = "whsec_";
const SECRET_BYTES: usize = 32;

/// A new secret: 32 random bytes, and its `whsec_` form (shown to its holder once).
pub(crate) fn new_secret() -> Result<(SecretBytes, SecretString), Error> {
    let mut raw = zeroize::Zeroizing::new(vec![0u8; SECRET_BYTES]);
    gatehouse_crypto::fill_random(&mut raw).map_err(|e| Error::Internal(e.to_string()))?;
    let text = SecretString::new(format!(
        "{SECRET_PREFIX}{}",
        STANDARD.encode(raw.as_slice())
    ));
    Ok((SecretBytes::new(raw.to_vec()), text))
}

/// The `webhook-id` header of a message.
#[must_use]
pub fn message_id(id: uuid::Uuid) -> String {
    format!("msg_{}", id.simple())
}

/// The `webhook-signature` header: one `v1,...` per key, newest first.
#[must_use]
pub fn signature(keys: &[&[u8]], msg_id: &str, timestamp: i64, body: &[u8]) -> String {
    let ts = timestamp.to_string();
    keys.iter()
        .map(|k| {
            let tag =
                MacKey::from_bytes(k).tag(&[msg_id.as_bytes(), b".", ts.as_bytes(), b".", body]);
            format!("v1,{}", STANDARD.encode(tag))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_specification_example_signs_alike() {
        // The Standard Webhooks specification's worked example.
        let key = STANDARD.decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let sig = signature(
            &[&key],
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1_614_265_330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        let both = signature(&[&key, b"other"], "msg_x", 1, b"{}");
        assert_eq!(both.split(' ').count(), 2);
    }

    #[test]
    fn a_new_secret_is_whsec_and_32_bytes() {
        let (raw, text) = new_secret().unwrap();
        assert_eq!(raw.expose().len(), 32);
        let b64 = text.expose().strip_prefix("whsec_").unwrap();
        assert_eq!(STANDARD.decode(b64).unwrap(), raw.expose());
    }
}
