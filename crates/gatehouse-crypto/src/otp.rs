//! One-time passwords: HOTP (RFC 4226) and TOTP (RFC 6238). The HMAC comes from aws-lc; this
//! module only applies the RFCs' counter encoding and dynamic truncation on top of it.

use aws_lc_rs::hmac;
use data_encoding::BASE32_NOPAD;

use crate::RandomError;
use crate::ct::ct_eq;
use crate::random::fill_random;
use crate::secret::{SecretBytes, SecretString};

/// The HMAC behind the codes. Authenticator apps support SHA-1 everywhere; the others exist for
/// the RFC's test vectors and for apps that accept them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtpAlgorithm {
    Sha1,
    Sha256,
    Sha512,
}

impl OtpAlgorithm {
    fn hmac(self) -> hmac::Algorithm {
        match self {
            // HOTP/TOTP's security rests on HMAC-SHA-1 as a PRF, which collisions do not break.
            Self::Sha1 => hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
            Self::Sha256 => hmac::HMAC_SHA256,
            Self::Sha512 => hmac::HMAC_SHA512,
        }
    }

    /// The name the `otpauth://` URI's `algorithm` parameter uses.
    #[must_use]
    pub fn uri_name(self) -> &'static str {
        match self {
            Self::Sha1 => "SHA1",
            Self::Sha256 => "SHA256",
            Self::Sha512 => "SHA512",
        }
    }
}

/// The HOTP value of `counter` with `digits` digits (6 to 9).
#[must_use]
pub fn hotp(secret: &[u8], counter: u64, digits: u32, alg: OtpAlgorithm) -> String {
    let key = hmac::Key::new(alg.hmac(), secret);
    let tag = hmac::sign(&key, &counter.to_be_bytes());
    let mac = tag.as_ref();
    // Dynamic truncation (RFC 4226 section 5.3): the low nibble of the last byte picks 4 bytes.
    let offset = usize::from(mac.last().copied().unwrap_or(0) & 0x0f);
    let word = mac
        .get(offset..offset + 4)
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map_or(0, u32::from_be_bytes)
        & 0x7fff_ffff;
    let digits = digits.clamp(6, 9);
    let modulus = 10u32.pow(digits);
    format!("{:0width$}", word % modulus, width = digits as usize)
}

/// The TOTP time step of `unix_secs` with `period`-second steps (T0 = 0).
#[must_use]
pub fn time_step(unix_secs: u64, period: u64) -> u64 {
    unix_secs / period.max(1)
}

/// A TOTP seed. 20 random bytes by default (160 bits, RFC 4226's recommendation for SHA-1).
#[derive(Debug, Clone)]
pub struct TotpSecret(SecretBytes);

impl TotpSecret {
    /// A new random seed.
    pub fn generate() -> Result<Self, RandomError> {
        let mut buf = zeroize::Zeroizing::new(vec![0u8; 20]);
        fill_random(&mut buf)?;
        Ok(Self(SecretBytes::new(buf.to_vec())))
    }

    #[must_use]
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        Self(SecretBytes::new(bytes))
    }

    #[must_use]
    pub fn expose(&self) -> &[u8] {
        self.0.expose()
    }

    /// Unpadded RFC 4648 base32, as authenticator apps take it.
    #[must_use]
    pub fn to_base32(&self) -> SecretString {
        SecretString::new(BASE32_NOPAD.encode(self.0.expose()))
    }
}

/// How codes are checked: 6 digits, 30-second steps, SHA-1 and one step of tolerance either way,
/// the settings common authenticator apps use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TotpCheck {
    pub digits: u32,
    pub period: u64,
    pub algorithm: OtpAlgorithm,
    /// Steps accepted before and after the current one.
    pub skew: u64,
}

impl Default for TotpCheck {
    fn default() -> Self {
        Self {
            digits: 6,
            period: 30,
            algorithm: OtpAlgorithm::Sha1,
            skew: 1,
        }
    }
}

impl TotpCheck {
    /// The code for the step containing `unix_secs`.
    #[must_use]
    pub fn code_at(&self, secret: &TotpSecret, unix_secs: u64) -> String {
        hotp(
            secret.expose(),
            time_step(unix_secs, self.period),
            self.digits,
            self.algorithm,
        )
    }

    /// The step `code` is valid for at `unix_secs`, if any, among the steps within the skew that
    /// are later than `after_step` (a used step is never accepted again). Every candidate is
    /// computed and compared in constant time, so timing does not say which step matched.
    #[must_use]
    pub fn matching_step(
        &self,
        secret: &TotpSecret,
        code: &str,
        unix_secs: u64,
        after_step: u64,
    ) -> Option<u64> {
        let code = code.trim();
        if code.len() != self.digits as usize || !code.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let now = time_step(unix_secs, self.period);
        let mut found = None;
        for step in now.saturating_sub(self.skew)..=now.saturating_add(self.skew) {
            let expected = hotp(secret.expose(), step, self.digits, self.algorithm);
            if ct_eq(expected.as_bytes(), code.as_bytes()) && step > after_step && found.is_none() {
                found = Some(step);
            }
        }
        found
    }

    /// The `otpauth://totp/...` URI authenticator apps scan (Key URI Format).
    #[must_use]
    pub fn uri(&self, secret: &TotpSecret, issuer: &str, account: &str) -> SecretString {
        let issuer_enc = percent_encode(issuer);
        SecretString::new(format!(
            "otpauth://totp/{issuer_enc}:{}?secret={}&issuer={issuer_enc}&algorithm={}&digits={}&period={}",
            percent_encode(account),
            secret.to_base32().expose(),
            self.algorithm.uri_name(),
            self.digits,
            self.period
        ))
    }
}

/// Lowercase unpadded RFC 4648 base32 (recovery codes: easy to read aloud, no look-alikes of
/// mixed case).
#[must_use]
pub fn base32_lower(bytes: &[u8]) -> String {
    BASE32_NOPAD.encode(bytes).to_ascii_lowercase()
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED20: &[u8] = b"12345678901234567890";
    const SEED32: &[u8] = b"12345678901234567890123456789012";
    const SEED64: &[u8] = b"1234567890123456789012345678901234567890123456789012345678901234";

    /// RFC 6238 Appendix B: each algorithm with its own seed length, 8 digits, 30 s steps.
    #[test]
    fn rfc6238_appendix_b_vectors() {
        let table: &[(u64, &str, &str, &str)] = &[
            (59, "94287082", "46119246", "90693936"),
            (1_111_111_109, "07081804", "68084774", "25091201"),
            (1_111_111_111, "14050471", "67062674", "99943326"),
            (1_234_567_890, "89005924", "91819424", "93441116"),
            (2_000_000_000, "69279037", "90698825", "38618901"),
            (20_000_000_000, "65353130", "77737706", "47863826"),
        ];
        for &(t, sha1, sha256, sha512) in table {
            let step = time_step(t, 30);
            assert_eq!(
                hotp(SEED20, step, 8, OtpAlgorithm::Sha1),
                sha1,
                "SHA1 at {t}"
            );
            assert_eq!(
                hotp(SEED32, step, 8, OtpAlgorithm::Sha256),
                sha256,
                "SHA256 at {t}"
            );
            assert_eq!(
                hotp(SEED64, step, 8, OtpAlgorithm::Sha512),
                sha512,
                "SHA512 at {t}"
            );
        }
    }

    /// RFC 4226 Appendix D: HOTP counters 0 to 9, 6 digits.
    #[test]
    fn rfc4226_appendix_d_vectors() {
        let expected = [
            "755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583",
            "399871", "520489",
        ];
        for (counter, want) in expected.iter().enumerate() {
            assert_eq!(hotp(SEED20, counter as u64, 6, OtpAlgorithm::Sha1), *want);
        }
    }

    #[test]
    fn one_step_of_skew_either_way_and_never_a_used_step() {
        let check = TotpCheck::default();
        let secret = TotpSecret::from_bytes(SEED20.to_vec());
        let now = 1_700_000_000;
        let step = time_step(now, 30);
        for (offset, accepted) in [
            (-90i64, false),
            (-30, true),
            (0, true),
            (30, true),
            (60, false),
        ] {
            let at = now.checked_add_signed(offset).unwrap();
            let code = check.code_at(&secret, at);
            assert_eq!(
                check.matching_step(&secret, &code, now, 0).is_some(),
                accepted,
                "offset {offset}"
            );
        }
        let code = check.code_at(&secret, now);
        assert_eq!(check.matching_step(&secret, &code, now, 0), Some(step));
        assert_eq!(check.matching_step(&secret, &code, now, step), None);
        assert_eq!(check.matching_step(&secret, "12345", now, 0), None);
        assert_eq!(check.matching_step(&secret, "abcdef", now, 0), None);
    }

    #[test]
    fn uri_carries_the_base32_secret_and_escapes_labels() {
        let secret = TotpSecret::from_bytes(SEED20.to_vec());
        let uri = TotpCheck::default().uri(&secret, "Acme Corp", "ada@example.com");
        assert_eq!(
            uri.expose(),
            "otpauth://totp/Acme%20Corp:ada%40example.com?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\
             &issuer=Acme%20Corp&algorithm=SHA1&digits=6&period=30"
        );
    }
}
