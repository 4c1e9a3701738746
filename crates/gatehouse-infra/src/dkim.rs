//! DKIM signatures (RFC 6376) on the mail Gatehouse sends: `rsa-sha256`, relaxed/relaxed
//! canonicalisation, computed over the exact bytes lettre formatted, so what is signed is what
//! goes on the wire. The canonicalisation reads only messages this process built; an independent
//! verifier (dkimpy, in the integration tests) checks the result.
//!
//! The signed headers include `List-Unsubscribe` and `List-Unsubscribe-Post` (RFC 8058 section 4
//! requires both to be covered), and every signed header is listed once more than it occurs, so
//! nobody can add an instance of one without breaking the signature.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use gatehouse_crypto::RsaSigningKey;
use gatehouse_crypto::digest::sha256;

/// Signed, in this order, each listed once more than it occurs (RFC 6376 section 8.15): an
/// absent one is signed as absent, so none of them can be added after signing (a `Reply-To`, a
/// second `From` or `Content-Type` on a replayed message).
const SIGNED: &[&str] = &[
    "from",
    "sender",
    "reply-to",
    "to",
    "cc",
    "subject",
    "date",
    "message-id",
    "in-reply-to",
    "references",
    "mime-version",
    "content-type",
    "content-transfer-encoding",
    "list-unsubscribe",
    "list-unsubscribe-post",
];

/// Signs as `d={domain}`, `s={selector}`.
pub struct DkimSigner {
    key: RsaSigningKey,
    domain: String,
    selector: String,
}

impl std::fmt::Debug for DkimSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DkimSigner")
            .field("domain", &self.domain)
            .field("selector", &self.selector)
            .finish_non_exhaustive()
    }
}

impl DkimSigner {
    /// `domain` and `selector` are checked by configuration (DNS labels, lower case).
    #[must_use]
    pub fn new(key: RsaSigningKey, domain: String, selector: String) -> Self {
        Self {
            key,
            domain,
            selector,
        }
    }

    #[must_use]
    pub fn domain(&self) -> &str {
        &self.domain
    }

    #[must_use]
    pub fn selector(&self) -> &str {
        &self.selector
    }

    /// The TXT record to publish at `{selector}._domainkey.{domain}`.
    #[must_use]
    pub fn dns_record(&self) -> String {
        format!(
            "v=DKIM1; k=rsa; p={}",
            STANDARD.encode(self.key.public_key_spki_der())
        )
    }

    /// The key published for this signer, as DER (SubjectPublicKeyInfo).
    #[must_use]
    pub fn public_key_der(&self) -> Vec<u8> {
        self.key.public_key_spki_der()
    }

    /// `message` with a `DKIM-Signature` header in front. `message` is a whole RFC 5322 message
    /// with CRLF line ends, as lettre formats it.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, String> {
        let (head, body) = split(message).ok_or("the message has no header/body separator")?;
        let fields = fields(head);
        let body_hash = STANDARD.encode(sha256(&[&relaxed_body(body)]));
        let mut names: Vec<&str> = Vec::new();
        for name in SIGNED {
            let present = fields.iter().filter(|f| f.name_is(name)).count();
            names.extend(std::iter::repeat_n(*name, present + 1));
        }
        // Folded between tags: relaxed canonicalisation turns each fold into one space, on the
        // signing side (below) as on the verifying side.
        let unsigned = format!(
            "DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d={}; s={};\r\n\th={};\r\n\tbh={};\r\n\tb=",
            self.domain,
            self.selector,
            folded(&names),
            body_hash
        );
        let mut input = Vec::with_capacity(1024);
        // Each name picks its instances from the bottom up (RFC 6376 section 5.4.2); a name
        // listed more often than it occurs signs nothing for the extra listings.
        let mut used = vec![false; fields.len()];
        for name in &names {
            let pick = fields
                .iter()
                .zip(used.iter_mut())
                .rev()
                .find(|(f, u)| !**u && f.name_is(name));
            if let Some((field, u)) = pick {
                *u = true;
                input.extend_from_slice(&relaxed_header(field.raw));
            }
        }
        let mut own = relaxed_header(unsigned.as_bytes());
        // The signature's own header is signed without its final CRLF (section 3.7).
        own.truncate(own.len().saturating_sub(2));
        input.extend_from_slice(&own);
        let signature = self
            .key
            .sign_sha256(&input)
            .map_err(|e| format!("DKIM signing failed: {e}"))?;
        let mut out = Vec::with_capacity(message.len() + unsigned.len() + 400);
        out.extend_from_slice(unsigned.as_bytes());
        // Folded every 72 characters so no line nears RFC 5322's 998 with large keys; verifiers
        // remove the b= value with its white space before checking (RFC 6376 section 3.5).
        let b = STANDARD.encode(signature);
        for (i, part) in b.as_bytes().chunks(72).enumerate() {
            if i > 0 {
                out.extend_from_slice(b"\r\n\t ");
            }
            out.extend_from_slice(part);
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(message);
        Ok(out)
    }
}

/// The h= list, folded after a colon before a line passes 72 characters.
fn folded(names: &[&str]) -> String {
    let mut out = String::new();
    let mut line = 4;
    for (i, name) in names.iter().enumerate() {
        if i > 0 {
            out.push(':');
            line += 1;
            if line + name.len() > 72 {
                out.push_str("\r\n\t ");
                line = 2;
            }
        }
        out.push_str(name);
        line += name.len();
    }
    out
}

/// One header field with its continuation lines, CRLFs included.
struct Field<'a> {
    raw: &'a [u8],
}

impl Field<'_> {
    fn name_is(&self, name: &str) -> bool {
        let (field_name, _) = split_colon(self.raw);
        field_name
            .trim_ascii()
            .eq_ignore_ascii_case(name.as_bytes())
    }
}

/// The header block (with the CRLF ending its last field) and the body.
fn split(message: &[u8]) -> Option<(&[u8], &[u8])> {
    let at = message.windows(4).position(|w| w == b"\r\n\r\n")?;
    let (head, rest) = message.split_at_checked(at + 2)?;
    Some((head, rest.get(2..)?))
}

/// The name (before the first colon) and the value (after it; empty when there is no colon).
fn split_colon(raw: &[u8]) -> (&[u8], &[u8]) {
    match raw.iter().position(|&b| b == b':') {
        Some(at) => (
            raw.get(..at).unwrap_or_default(),
            raw.get(at + 1..).unwrap_or_default(),
        ),
        None => (raw, &[]),
    }
}

fn fields(head: &[u8]) -> Vec<Field<'_>> {
    let mut out: Vec<Field<'_>> = Vec::new();
    let mut start = 0;
    let mut end = 0;
    for line in head.split_inclusive(|&b| b == b'\n') {
        // A line starting with white space continues the field.
        if !line.first().copied().is_some_and(is_wsp) && end > start {
            out.extend(head.get(start..end).map(|raw| Field { raw }));
            start = end;
        }
        end += line.len();
    }
    if end > start {
        out.extend(head.get(start..end).map(|raw| Field { raw }));
    }
    out
}

fn is_wsp(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// RFC 6376 section 3.4.2: name lower-cased, folds removed, runs of white space made one space,
/// white space around the colon and at the end removed; ends with CRLF.
fn relaxed_header(raw: &[u8]) -> Vec<u8> {
    let (name, value) = split_colon(raw);
    let mut out: Vec<u8> = name
        .trim_ascii()
        .iter()
        .map(u8::to_ascii_lowercase)
        .collect();
    out.push(b':');
    let mut pending_space = false;
    let mut started = false;
    for &b in value {
        if b == b'\r' || b == b'\n' {
            continue;
        }
        if is_wsp(b) {
            pending_space = true;
            continue;
        }
        if pending_space && started {
            out.push(b' ');
        }
        pending_space = false;
        started = true;
        out.push(b);
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// RFC 6376 section 3.4.4: runs of white space made one space, white space at line ends
/// removed, empty lines at the end removed; a non-empty body ends with CRLF.
fn relaxed_body(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len());
    let mut blank_run = 0usize;
    let mut lines = body.split(|&b| b == b'\n').peekable();
    while let Some(line) = lines.next() {
        let last = lines.peek().is_none();
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if last && line.is_empty() {
            break;
        }
        let mut canon = Vec::with_capacity(line.len());
        let mut pending_space = false;
        for &b in line {
            if is_wsp(b) {
                pending_space = true;
                continue;
            }
            if pending_space {
                canon.push(b' ');
            }
            pending_space = false;
            canon.push(b);
        }
        if canon.is_empty() {
            blank_run += 1;
            continue;
        }
        for _ in 0..blank_run {
            out.extend_from_slice(b"\r\n");
        }
        blank_run = 0;
        out.extend_from_slice(&canon);
        out.extend_from_slice(b"\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 6376 section 3.4.5, the worked example.
    const HEAD: &[u8] = b"A: X\r\nB : Y\t\r\n\tZ  \r\n";
    const BODY: &[u8] = b" C \r\nD \t E\r\n\r\n\r\n";

    #[test]
    fn the_rfc_example_canonicalises_as_the_rfc_says() {
        let f = fields(HEAD);
        assert_eq!(f.len(), 2);
        assert_eq!(relaxed_header(f[0].raw), b"a:X\r\n");
        assert_eq!(relaxed_header(f[1].raw), b"b:Y Z\r\n");
        assert_eq!(relaxed_body(BODY), b" C\r\nD E\r\n");
    }

    #[test]
    fn bodies_end_in_exactly_one_crlf_and_an_empty_body_stays_empty() {
        assert_eq!(relaxed_body(b""), b"");
        assert_eq!(relaxed_body(b"\r\n\r\n"), b"");
        assert_eq!(relaxed_body(b"x"), b"x\r\n");
        assert_eq!(relaxed_body(b"x\r\n\r\ny\r\n \r\n"), b"x\r\n\r\ny\r\n");
    }

    #[test]
    fn every_signed_header_is_listed_once_more_than_it_occurs_and_lines_stay_short() {
        let key = gatehouse_crypto::RsaSigningKey::generate_2048().unwrap();
        let signer = DkimSigner::new(key, "acme.test".into(), "s1".into());
        let message = b"From: a@acme.test\r\nTo: b@example.test\r\nReceived: x\r\nSubject: Hi\r\n\r\nBody\r\n";
        let signed = signer.sign(message).unwrap();
        assert!(
            signed.ends_with(message),
            "the message follows the signature unchanged"
        );
        let text = String::from_utf8(signed[..signed.len() - message.len()].to_vec()).unwrap();
        assert!(text.starts_with(
            "DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=acme.test; s=s1;"
        ));
        assert!(text.lines().all(|l| l.len() <= 100), "{text}");
        let h: String = text
            .split("h=")
            .nth(1)
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_owned();
        let h: Vec<&str> = h.split(':').map(str::trim).collect();
        for name in SIGNED {
            let present = usize::from(matches!(*name, "from" | "to" | "subject"));
            assert_eq!(
                h.iter().filter(|n| *n == name).count(),
                present + 1,
                "{name}"
            );
        }
        assert!(!h.contains(&"received"), "trace headers are not signed");
        assert!(signer.sign(b"no separator").is_err());
    }

    #[test]
    fn the_split_keeps_the_last_fields_crlf() {
        let (head, body) = split(b"A: 1\r\nB: 2\r\n\r\nbody\r\n").unwrap();
        assert_eq!(head, b"A: 1\r\nB: 2\r\n");
        assert_eq!(body, b"body\r\n");
        assert!(split(b"A: 1\r\n").is_none());
    }
}
