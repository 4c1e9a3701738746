//! The sender-domain check (F4): whether a domain's SPF, DKIM and DMARC records let the mail
//! Gatehouse sends for it be delivered and trusted, each with a verdict and a sentence saying
//! what to change. DNS is asked through [`TxtResolver`] (hickory in the infrastructure layer); a
//! check makes at most [`MAX_QUERIES`] queries.

use async_trait::async_trait;
use base64::Engine as _;
use serde::Serialize;

use super::dns_records::{self, Qualifier, SpfTerm};
use crate::error::Error;

/// RFC 7208 section 4.6.4: more lookups than this is a permanent error at the receiver.
pub const SPF_LOOKUP_LIMIT: usize = 10;
/// Queries one check may make (SPF's ten lookups, their records, DKIM and DMARC).
pub const MAX_QUERIES: usize = 16;

/// Why a TXT lookup gave no records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxtError {
    /// NXDOMAIN, or the name has no TXT records.
    NotFound,
    /// The lookup failed (timeout, SERVFAIL): nothing can be said about the record.
    Failed(String),
}

/// TXT lookups; each record's character strings joined.
#[async_trait]
pub trait TxtResolver: Send + Sync + std::fmt::Debug {
    async fn txt(&self, name: &str) -> Result<Vec<String>, TxtError>;
}

/// The DKIM key Gatehouse signs with, as the check compares it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DkimSigning {
    pub domain: String,
    pub selector: String,
    pub public_key: Vec<u8>,
}

/// What the check compares the records with.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DomainCheckSettings {
    /// The sending service's SPF domains, each expected as an `include:` (directly or inside
    /// another include). Empty: not checked.
    pub spf_include: Vec<String>,
    /// Where the DKIM key is looked for (`{selector}._domainkey.{domain}`).
    pub dkim_selector: Option<String>,
    /// The domain and selector Gatehouse signs with and its public key (SubjectPublicKeyInfo
    /// DER), when signing is configured: the key published there must be this one.
    pub dkim_signer: Option<DkimSigning>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Pass,
    Warn,
    Fail,
}

/// One record's verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// `spf`, `dkim` or `dmarc`.
    pub check: &'static str,
    pub verdict: Verdict,
    /// Where the record was looked for.
    pub name: String,
    /// The record found (the first, when there are several).
    pub record: Option<String>,
    /// What is right or what to change, in one or two sentences.
    pub advice: String,
}

/// The whole check: its verdict is the worst of the three.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DomainReport {
    pub domain: String,
    pub verdict: Verdict,
    pub checks: Vec<Finding>,
}

/// Suffixes the check never asks about: special-use and private names (RFC 6761, RFC 8375,
/// ICANN's `.internal`) that only an internal resolver answers, so a caller cannot read
/// internal zones through it, directly or through a record's `include:`.
const PRIVATE_SUFFIXES: &[&str] = &[
    "localhost",
    "local",
    "internal",
    "arpa",
    "invalid",
    "onion",
    "lan",
    "home",
    "corp",
    "intranet",
    "private",
];

/// Whether `name` (already a valid DNS name, lower case) may be asked about.
fn askable(name: &str) -> bool {
    let last = name.rsplit('.').next().unwrap_or(name);
    !PRIVATE_SUFFIXES.contains(&last)
}

/// Checks `domain` (validated first: an invalid or private name makes no query).
pub async fn check_domain(
    resolver: &dyn TxtResolver,
    settings: &DomainCheckSettings,
    domain: &str,
) -> Result<DomainReport, Error> {
    let domain = dns_records::domain_name(domain).map_err(|r| Error::invalid("domain", r))?;
    if !askable(&domain) {
        return Err(Error::invalid(
            "domain",
            "is a special-use or private name (.local, .internal, .arpa, ...): it is not checked",
        ));
    }
    let mut dns = Budget {
        resolver,
        left: MAX_QUERIES,
        deadline: tokio::time::Instant::now() + CHECK_DEADLINE,
    };
    let checks = vec![
        spf(&mut dns, settings, &domain).await,
        dkim(&mut dns, settings, &domain).await,
        dmarc(&mut dns, settings, &domain).await,
    ];
    let verdict = checks
        .iter()
        .map(|c| c.verdict)
        .max()
        .unwrap_or(Verdict::Fail);
    Ok(DomainReport {
        domain,
        verdict,
        checks,
    })
}

/// A check's whole time: a domain whose servers answer slowly cannot hold a slot for longer.
const CHECK_DEADLINE: std::time::Duration = std::time::Duration::from_secs(12);

struct Budget<'a> {
    resolver: &'a dyn TxtResolver,
    left: usize,
    deadline: tokio::time::Instant,
}

impl Budget<'_> {
    async fn txt(&mut self, name: &str) -> Result<Vec<String>, TxtError> {
        if self.left == 0 {
            return Err(TxtError::Failed(format!(
                "the check's limit of {MAX_QUERIES} queries was reached"
            )));
        }
        self.left -= 1;
        let late = || {
            Err(TxtError::Failed(format!(
                "the check's time limit of {} s was reached",
                CHECK_DEADLINE.as_secs()
            )))
        };
        if tokio::time::Instant::now() >= self.deadline {
            return late();
        }
        tokio::time::timeout_at(self.deadline, self.resolver.txt(name))
            .await
            .unwrap_or_else(|_| late())
    }
}

fn finding(
    check: &'static str,
    verdict: Verdict,
    name: &str,
    record: Option<&str>,
    advice: String,
) -> Finding {
    Finding {
        check,
        verdict,
        name: name.to_owned(),
        record: record.map(str::to_owned),
        advice,
    }
}

/// The records at `name` that `is_kind` recognises, or the finding that ends the check.
async fn records(
    dns: &mut Budget<'_>,
    check: &'static str,
    name: &str,
    is_kind: fn(&str) -> bool,
    missing: String,
) -> Result<Vec<String>, Finding> {
    match dns.txt(name).await {
        Ok(all) => {
            let found: Vec<String> = all.into_iter().filter(|t| is_kind(t)).collect();
            if found.is_empty() {
                Err(finding(check, Verdict::Fail, name, None, missing))
            } else if found.len() > 1 {
                let first = found.first().map(String::as_str);
                Err(finding(
                    check,
                    Verdict::Fail,
                    name,
                    first,
                    format!(
                        "{} records are published at {name}; receivers treat that as an error. \
                         Merge them into one.",
                        found.len()
                    ),
                ))
            } else {
                Ok(found)
            }
        }
        Err(TxtError::NotFound) => Err(finding(check, Verdict::Fail, name, None, missing)),
        Err(TxtError::Failed(why)) => Err(finding(
            check,
            Verdict::Fail,
            name,
            None,
            format!(
                "The DNS lookup of {name} failed ({why}); nothing could be checked. Try again."
            ),
        )),
    }
}

async fn spf(dns: &mut Budget<'_>, s: &DomainCheckSettings, domain: &str) -> Finding {
    let example = s
        .spf_include
        .first()
        .map_or_else(String::new, |i| format!("include:{i} "));
    let missing = format!(
        "No SPF record: publish a TXT record at {domain} such as \"v=spf1 {example}-all\"."
    );
    let record = match records(dns, "spf", domain, dns_records::is_spf, missing).await {
        Ok(mut r) => r.pop().unwrap_or_default(),
        Err(f) => return f,
    };
    let fail = |advice: String| finding("spf", Verdict::Fail, domain, Some(&record), advice);
    let terms = match dns_records::spf_terms(&record) {
        Ok(t) => t,
        Err(e) => {
            return fail(format!(
                "The record does not parse: {e}. Receivers fail SPF (permerror)."
            ));
        }
    };
    let mut walk = SpfWalk {
        lookups: 0,
        includes: Vec::new(),
        authorising: true,
        visited: vec![domain.to_owned()],
        problem: None,
    };
    let ending = walk.record(dns, &terms, 0).await;
    if let Some(problem) = walk.problem {
        return fail(problem);
    }
    if walk.lookups > SPF_LOOKUP_LIMIT {
        return fail(format!(
            "It needs at least {} DNS lookups; RFC 7208 allows {SPF_LOOKUP_LIMIT}, past which \
             receivers fail SPF (permerror). Replace some include:, a, mx or exists terms by ip4:/ip6: ranges.",
            walk.lookups
        ));
    }
    let absent: Vec<&String> = s
        .spf_include
        .iter()
        .filter(|i| !walk.includes.contains(&normal(i)))
        .collect();
    if let Some(first) = absent.first() {
        return fail(format!(
            "It does not include the sending service: add include:{first} before the all term."
        ));
    }
    let used = format!("{} of {SPF_LOOKUP_LIMIT} DNS lookups", walk.lookups);
    match ending {
        Some(Qualifier::Fail) => finding(
            "spf",
            Verdict::Pass,
            domain,
            Some(&record),
            format!("Ends with -all, so other senders fail; {used}."),
        ),
        Some(Qualifier::SoftFail) => finding(
            "spf",
            Verdict::Pass,
            domain,
            Some(&record),
            format!("Ends with ~all (other senders soft-fail; -all is stricter); {used}."),
        ),
        Some(Qualifier::Pass) => fail(
            "It ends with +all, which lets anyone send as this domain: end it with -all."
                .to_owned(),
        ),
        Some(Qualifier::Neutral) | None => fail(
            "It does not end with -all or ~all, so mail from anyone else is not refused: add -all \
             at the end."
                .to_owned(),
        ),
    }
}

/// A DNS name as written in a record: lower case, no trailing dot.
fn normal(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

struct SpfWalk {
    lookups: usize,
    /// Every target reached through `+include:`s (and redirects) only, at any depth: what the
    /// record authorises.
    includes: Vec<String>,
    /// Whether every include on the path to the record being walked is a `+include`.
    authorising: bool,
    visited: Vec<String>,
    problem: Option<String>,
}

impl SpfWalk {
    /// Counts the lookups of `terms` and of the records they include, and returns the qualifier
    /// of the record's `all` (following `redirect=` when there is none).
    async fn record(
        &mut self,
        dns: &mut Budget<'_>,
        terms: &[SpfTerm],
        depth: usize,
    ) -> Option<Qualifier> {
        let mut redirect = None;
        for term in terms {
            match term {
                // RFC 7208 section 4.6.2: terms after `all` are never evaluated, and a
                // redirect beside an `all` is never followed (section 6.1): neither costs a
                // lookup nor authorises anything.
                SpfTerm::Mechanism {
                    qualifier, name, ..
                } if name == "all" => return Some(*qualifier),
                SpfTerm::Mechanism {
                    qualifier,
                    name,
                    value,
                } if name == "include" => {
                    self.lookups += 1;
                    if self.lookups > SPF_LOOKUP_LIMIT {
                        return None;
                    }
                    let target = value.clone().unwrap_or_default();
                    // Only a `+include` (the default) authorises what the target allows, and
                    // only when every include above it does too.
                    let outer = self.authorising;
                    self.authorising = outer && *qualifier == Qualifier::Pass;
                    if self.authorising {
                        self.includes.push(normal(&target));
                    }
                    let ending = self.follow(dns, &target, depth).await;
                    self.authorising = outer;
                    if ending == Some(Qualifier::Pass) && self.problem.is_none() {
                        // `+all` inside an include matches every sender.
                        self.problem = Some(format!(
                            "{target} (included) ends with +all, so the include matches anyone \
                             and anyone may send as this domain: remove that include."
                        ));
                    }
                }
                SpfTerm::Modifier { name, value } if name == "redirect" => {
                    redirect = Some(value.clone());
                }
                other if other.costs_a_lookup() => self.lookups += 1,
                _ => {}
            }
            if self.problem.is_some() || self.lookups > SPF_LOOKUP_LIMIT {
                return None;
            }
        }
        let target = redirect?;
        self.lookups += 1;
        if self.lookups > SPF_LOOKUP_LIMIT {
            return None;
        }
        // Mail the redirect's record authorises is authorised here too.
        if self.authorising {
            self.includes.push(normal(&target));
        }
        self.follow(dns, &target, depth).await
    }

    /// Reads the SPF record of an include or redirect target and walks it.
    async fn follow(
        &mut self,
        dns: &mut Budget<'_>,
        target: &str,
        depth: usize,
    ) -> Option<Qualifier> {
        if target.contains('%') {
            // A macro: its target depends on the sender, so its record cannot be read here.
            return None;
        }
        let Ok(target) = dns_records::dns_name(target) else {
            self.problem = Some(format!(
                "{target:?} (an include or redirect target) is not a domain name; receivers fail \
                 SPF (permerror)."
            ));
            return None;
        };
        if !askable(&target) {
            self.problem = Some(format!(
                "{target} (an include or redirect target) is a special-use or private name; it \
                 was not looked up."
            ));
            return None;
        }
        if self.visited.contains(&target) || depth >= SPF_LOOKUP_LIMIT {
            self.problem = Some(format!(
                "{target} is included in a loop; receivers fail SPF (permerror)."
            ));
            return None;
        }
        // `visited` is the path from the domain to here: a name met again on another branch
        // (two includes sharing one) is no loop.
        self.visited.push(target.clone());
        let walked = self.walk_target(dns, &target, depth).await;
        self.visited.pop();
        walked
    }

    async fn walk_target(
        &mut self,
        dns: &mut Budget<'_>,
        target: &str,
        depth: usize,
    ) -> Option<Qualifier> {
        let found = match dns.txt(target).await {
            Ok(all) => all.into_iter().filter(|t| dns_records::is_spf(t)).collect(),
            Err(TxtError::NotFound) => Vec::new(),
            Err(TxtError::Failed(why)) => {
                self.problem = Some(format!("The lookup of {target} failed ({why}); try again."));
                return None;
            }
        };
        let [record] = found.as_slice() else {
            self.problem = Some(format!(
                "{target} (included) has {} SPF records instead of one; receivers fail SPF \
                 (permerror). Fix or remove that include.",
                found.len()
            ));
            return None;
        };
        match dns_records::spf_terms(record) {
            Ok(terms) => Box::pin(self.record(dns, &terms, depth + 1)).await,
            Err(e) => {
                self.problem = Some(format!(
                    "The record of {target} (included) does not parse: {e}."
                ));
                None
            }
        }
    }
}

async fn dkim(dns: &mut Budget<'_>, s: &DomainCheckSettings, domain: &str) -> Finding {
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

async fn dmarc(dns: &mut Budget<'_>, s: &DomainCheckSettings, domain: &str) -> Finding {
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

/// Checks run at once on one instance, at most: each can keep a resolver busy for seconds.
const CONCURRENT_CHECKS: usize = 4;

/// The settings and resolver the kernel checks domains with.
#[derive(Debug)]
pub struct DomainChecker {
    pub settings: DomainCheckSettings,
    pub resolver: std::sync::Arc<dyn TxtResolver>,
    running: tokio::sync::Semaphore,
}

impl DomainChecker {
    #[must_use]
    pub fn new(settings: DomainCheckSettings, resolver: std::sync::Arc<dyn TxtResolver>) -> Self {
        Self {
            settings,
            resolver,
            running: tokio::sync::Semaphore::new(CONCURRENT_CHECKS),
        }
    }
}

impl crate::kernel::Kernel {
    /// `GET /v1/mail/domains/{domain}/check`: needs `mail.check_domain` (DNS queries on the
    /// caller's behalf); reads nothing stored and changes nothing.
    pub async fn check_mail_domain(
        &self,
        call: &crate::context::TenantCall,
        domain: &str,
    ) -> Result<DomainReport, Error> {
        self.authorize_without_tx(
            &call.principal,
            &call.scope,
            crate::identity::Permission::MAIL_CHECK_DOMAIN,
            &call.request,
        )
        .await?;
        let checker = self.domain_checker().ok_or_else(|| {
            Error::Internal("the sender-domain check is not configured".to_owned())
        })?;
        let _running = checker
            .running
            .try_acquire()
            .map_err(|_| Error::Overloaded {
                retry_after_secs: u32::try_from(CHECK_DEADLINE.as_secs()).unwrap_or(12),
            })?;
        check_domain(checker.resolver.as_ref(), &checker.settings, domain).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[derive(Debug, Default)]
    struct Zone(HashMap<String, Result<Vec<String>, TxtError>>);

    #[async_trait]
    impl TxtResolver for Zone {
        async fn txt(&self, name: &str) -> Result<Vec<String>, TxtError> {
            self.0.get(name).cloned().unwrap_or(Err(TxtError::NotFound))
        }
    }

    fn zone(entries: &[(&str, &str)]) -> Zone {
        let mut z = Zone::default();
        for (name, txt) in entries {
            z.0.entry((*name).to_owned())
                .or_insert_with(|| Ok(Vec::new()))
                .as_mut()
                .map(|v| v.push((*txt).to_owned()))
                .ok();
        }
        z
    }

    async fn run(z: &Zone, selector: Option<&str>) -> DomainReport {
        let s = DomainCheckSettings {
            spf_include: vec!["_spf.mailer.test".into()],
            dkim_selector: selector.map(str::to_owned),
            dkim_signer: None,
        };
        check_domain(z, &s, "d.test").await.unwrap()
    }

    fn verdicts(r: &DomainReport) -> Vec<(&'static str, Verdict)> {
        r.checks.iter().map(|c| (c.check, c.verdict)).collect()
    }

    #[tokio::test]
    async fn warnings_passes_and_failures_follow_the_rules() {
        let z = zone(&[
            ("d.test", "v=spf1 redirect=_spf.mailer.test."),
            ("_spf.mailer.test", "v=spf1 ip4:192.0.2.0/24 ~all"),
            (
                "s1._domainkey.d.test",
                "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=",
            ),
            (
                "_dmarc.d.test",
                "v=DMARC1; p=reject; pct=50; rua=mailto:r@d.test",
            ),
        ]);
        let r = run(&z, Some("s1")).await;
        assert_eq!(
            verdicts(&r),
            vec![
                ("spf", Verdict::Pass),
                ("dkim", Verdict::Warn),
                ("dmarc", Verdict::Warn)
            ]
        );
        assert_eq!(r.verdict, Verdict::Warn);
        // No selector configured: DKIM is not checked, and says so.
        let r = run(&z, None).await;
        assert_eq!(r.checks[1].verdict, Verdict::Warn);
        assert!(r.checks[1].advice.starts_with("Not checked"));
    }

    #[tokio::test]
    async fn past_the_deadline_or_the_budget_nothing_is_asked() {
        #[derive(Debug)]
        struct Refuses;
        #[async_trait]
        impl TxtResolver for Refuses {
            async fn txt(&self, name: &str) -> Result<Vec<String>, TxtError> {
                panic!("{name} was asked after the check's limit");
            }
        }
        let mut late = Budget {
            resolver: &Refuses,
            left: MAX_QUERIES,
            deadline: tokio::time::Instant::now(),
        };
        let e = late.txt("d.test").await.unwrap_err();
        assert!(
            matches!(e, TxtError::Failed(ref why) if why.contains("time limit")),
            "{e:?}"
        );
        let mut spent = Budget {
            resolver: &Refuses,
            left: 0,
            deadline: tokio::time::Instant::now() + CHECK_DEADLINE,
        };
        assert!(spent.txt("d.test").await.is_err());
    }

    #[tokio::test]
    async fn loops_neutral_endings_and_failed_lookups_fail() {
        let looped = zone(&[("d.test", "v=spf1 include:d.test -all")]);
        assert!(run(&looped, None).await.checks[0].advice.contains("loop"));
        let neutral = zone(&[
            ("d.test", "v=spf1 include:_spf.mailer.test ?all"),
            ("_spf.mailer.test", "v=spf1 -all"),
        ]);
        assert_eq!(run(&neutral, None).await.checks[0].verdict, Verdict::Fail);
        let void = zone(&[("d.test", "v=spf1 include:_spf.mailer.test -all")]);
        assert!(
            run(&void, None).await.checks[0]
                .advice
                .contains("0 SPF records")
        );
        let mut broken = zone(&[]);
        broken
            .0
            .insert("d.test".into(), Err(TxtError::Failed("SERVFAIL".into())));
        let r = run(&broken, None).await;
        assert_eq!(r.checks[0].verdict, Verdict::Fail);
        assert!(r.checks[0].advice.contains("failed (SERVFAIL)"));
        // An include whose record ends with +all lets anyone send.
        let open = zone(&[
            (
                "d.test",
                "v=spf1 include:_spf.mailer.test include:open.test -all",
            ),
            ("_spf.mailer.test", "v=spf1 -all"),
            ("open.test", "v=spf1 +all"),
        ]);
        let r = run(&open, None).await;
        assert_eq!(r.checks[0].verdict, Verdict::Fail);
        assert!(
            r.checks[0].advice.contains("ends with +all"),
            "{}",
            r.checks[0].advice
        );
        // The service reached only through a ~include is not authorised.
        let wrapped = zone(&[
            ("d.test", "v=spf1 ~include:wrap.test -all"),
            ("wrap.test", "v=spf1 include:_spf.mailer.test -all"),
            ("_spf.mailer.test", "v=spf1 -all"),
        ]);
        let r = run(&wrapped, None).await;
        assert!(
            r.checks[0].advice.contains("does not include"),
            "{}",
            r.checks[0].advice
        );
        // A redirect beside an all is never followed and costs nothing.
        let both = zone(&[
            (
                "d.test",
                "v=spf1 include:_spf.mailer.test redirect=other.test -all",
            ),
            ("_spf.mailer.test", "v=spf1 -all"),
        ]);
        let r = run(&both, None).await;
        assert!(
            r.checks[0].advice.contains("1 of 10"),
            "{}",
            r.checks[0].advice
        );
    }
}
