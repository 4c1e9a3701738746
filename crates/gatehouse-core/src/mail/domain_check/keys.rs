//! The DKIM and DMARC parts of the sender-domain check: the key at the selector (and whether it
//! is the one Gatehouse signs with), and the policy with its alignment and reports.

use base64::Engine as _;

use super::{Budget, DkimSigning, DomainCheckSettings, Finding, Verdict, finding, records};
use crate::mail::dns_records;

pub(super) async fn dkim(dns: &mut Budget<'_>, s: &DomainCheckSettings, domain: &str) -> Finding {
    let Some(selector) = s.dkim_selector.as_deref() else {
        return finding(
            "dkim",
            Verdict::Warn,
            domain,
            None,
            "Not checked: no DKIM selector is configured. Set [mail.dkim] to sign Gatehouse's \
             mail, or mail.domain_check.dkim_selector to the selector your relay signs with."
                .to_owned(),
        );
    };
    // With Gatehouse signing as this domain or a parent of it, the key is where its `d=`
    // points.
    let key_domain = match &s.dkim_signer {
        Some(signer)
            if domain == signer.domain || domain.ends_with(&format!(".{}", signer.domain)) =>
        {
            signer.domain.as_str()
        }
        _ => domain,
    };
    let name = format!("{selector}._domainkey.{key_domain}");
    let missing = format!(
        "No DKIM key at {name}: publish the TXT record `gatehouse mail dkim-record` prints."
    );
    let is_key = |t: &str| !dns_records::is_spf(t) && !dns_records::is_dmarc(t);
    let record = match records(dns, "dkim", &name, is_key, missing).await {
        Ok(mut r) => r.pop().unwrap_or_default(),
        Err(f) => return f,
    };
    let fail = |advice: String| finding("dkim", Verdict::Fail, &name, Some(&record), advice);
    let tags = match dns_records::tag_list(&record) {
        Ok(t) => t,
        Err(e) => return fail(format!("The key record does not parse: {e}.")),
    };
    if dns_records::tag(&tags, "v").is_some_and(|v| v != "DKIM1") {
        return fail("Its v= tag is not DKIM1.".to_owned());
    }
    let kind = dns_records::tag(&tags, "k").unwrap_or("rsa");
    let p: String = dns_records::tag(&tags, "p")
        .unwrap_or_default()
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    if p.is_empty() {
        return fail("The key is revoked (empty p=): publish the current public key.".to_owned());
    }
    let signers_key = s
        .dkim_signer
        .as_ref()
        .is_some_and(|g| g.domain == key_domain && g.selector == selector);
    if kind != "rsa" {
        // Gatehouse signs with RSA: at its own selector another kind of key fails its mail.
        return finding(
            "dkim",
            if signers_key {
                Verdict::Fail
            } else {
                Verdict::Warn
            },
            &name,
            Some(&record),
            format!(
                "A {kind} key is published; Gatehouse signs with RSA, so its signatures will not verify against it."
            ),
        );
    }
    let Ok(der) = base64::engine::general_purpose::STANDARD.decode(&p) else {
        return fail(
            "p= is not base64: publish the key as `gatehouse mail dkim-record` prints it."
                .to_owned(),
        );
    };
    let bits = match gatehouse_crypto::published_rsa_key(&der) {
        gatehouse_crypto::PublishedRsaKey::Bits(b) => b,
        gatehouse_crypto::PublishedRsaKey::TooSmall => {
            return fail(
                "The key is smaller than 2048 bits (RFC 8301 asks signers for 2048): generate a \
                 2048-bit key and publish it."
                    .to_owned(),
            );
        }
        gatehouse_crypto::PublishedRsaKey::TooLarge => {
            return fail("The key is larger than 8192 bits: publish a 2048-bit key.".to_owned());
        }
        gatehouse_crypto::PublishedRsaKey::Malformed => {
            return fail("p= is not an RSA public key.".to_owned());
        }
    };
    if let Some(signer) = &s.dkim_signer
        && signer.domain == key_domain
        && signer.selector == selector
        && !same_key(&der, &signer.public_key)
    {
        return fail(
            "The published key is not the one Gatehouse signs with: publish the record \
             `gatehouse mail dkim-record` prints."
                .to_owned(),
        );
    }
    let testing =
        dns_records::tag(&tags, "t").is_some_and(|t| t.split(':').any(|f| f.trim() == "y"));
    if testing {
        return finding(
            "dkim",
            Verdict::Warn,
            &name,
            Some(&record),
            format!(
                "A {bits}-bit RSA key in testing mode (t=y): receivers may ignore its signatures; remove t=y."
            ),
        );
    }
    finding(
        "dkim",
        Verdict::Pass,
        &name,
        Some(&record),
        format!("A {bits}-bit RSA key is published."),
    )
}

/// Whether two DER public keys (either form) are the same key.
fn same_key(a: &[u8], b: &[u8]) -> bool {
    let spki = gatehouse_crypto::rsa_sign::spki_der;
    matches!((spki(a), spki(b)), (Some(x), Some(y)) if x == y)
}

pub(super) async fn dmarc(dns: &mut Budget<'_>, s: &DomainCheckSettings, domain: &str) -> Finding {
    let name = format!("_dmarc.{domain}");
    let missing = format!(
        "No DMARC record: publish a TXT record at {name} such as \"v=DMARC1; p=quarantine; \
         rua=mailto:dmarc-reports@{domain}\"."
    );
    let record = match records(dns, "dmarc", &name, dns_records::is_dmarc, missing).await {
        Ok(mut r) => r.pop().unwrap_or_default(),
        Err(f) => return f,
    };
    let verdict = |v: Verdict, advice: String| finding("dmarc", v, &name, Some(&record), advice);
    let tags = match dns_records::tag_list(&record) {
        Ok(t) => t,
        Err(e) => return verdict(Verdict::Fail, format!("The record does not parse: {e}.")),
    };
    let policy = dns_records::tag(&tags, "p")
        .unwrap_or_default()
        .to_ascii_lowercase();
    let align = |t: &str| match dns_records::tag(&tags, t)
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None | Some("r") => Some("relaxed"),
        Some("s") => Some("strict"),
        Some(_) => None,
    };
    let (Some(adkim), Some(aspf)) = (align("adkim"), align("aspf")) else {
        return verdict(Verdict::Fail, "adkim= and aspf= must be r or s.".to_owned());
    };
    if let Some(DkimSigning {
        domain: signing_domain,
        ..
    }) = &s.dkim_signer
        && adkim == "strict"
        && signing_domain != domain
        && signing_domain_aligns(signing_domain, domain)
    {
        return verdict(
            Verdict::Fail,
            format!(
                "adkim=s needs signatures from {domain} itself, but Gatehouse signs as {signing_domain}: set adkim=r or sign as {domain}."
            ),
        );
    }
    let alignment = format!("DKIM alignment {adkim}, SPF alignment {aspf}");
    let rua = dns_records::tag(&tags, "rua").filter(|r| !r.is_empty());
    let pct_partial = dns_records::tag(&tags, "pct").is_some_and(|p| p.trim() != "100");
    match policy.as_str() {
        "reject" | "quarantine" => {}
        "none" => {
            return verdict(
                Verdict::Warn,
                format!(
                    "p=none only monitors: once the reports show your mail passes, move to p=quarantine, then p=reject ({alignment})."
                ),
            );
        }
        _ => {
            return verdict(
                Verdict::Fail,
                "The p= tag is missing or not none, quarantine or reject: receivers ignore the record."
                    .to_owned(),
            );
        }
    }
    let Some(rua) = rua else {
        return verdict(
            Verdict::Warn,
            format!(
                "p={policy} ({alignment}), but no rua= address: add rua=mailto:... to receive aggregate reports."
            ),
        );
    };
    if pct_partial {
        return verdict(
            Verdict::Warn,
            format!(
                "p={policy} applies only to part of the mail (pct below 100): remove pct= once reports are clean."
            ),
        );
    }
    verdict(
        Verdict::Pass,
        format!("p={policy} ({alignment}); aggregate reports go to {rua}."),
    )
}

/// Whether `signing` is `domain` or a parent of it (relaxed alignment without the public
/// suffix list: enough to tell an exact match from a parent).
fn signing_domain_aligns(signing: &str, domain: &str) -> bool {
    domain == signing
        || domain.ends_with(&format!(".{signing}"))
        || signing.ends_with(&format!(".{domain}"))
}
