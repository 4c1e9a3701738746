//! The sender-domain check (F4): whether a domain's SPF, DKIM and DMARC records let the mail
//! Gatehouse sends for it be delivered and trusted, each with a verdict and a sentence saying
//! what to change. DNS is asked through [`TxtResolver`] (hickory in the infrastructure layer); a
//! check makes at most [`MAX_QUERIES`] queries.

use async_trait::async_trait;
use serde::Serialize;

use super::dns_records;
use crate::error::Error;

mod keys;
mod spf;
#[cfg(test)]
mod tests;

use keys::{dkim, dmarc};
use spf::spf;

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
pub(crate) fn askable(name: &str) -> bool {
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
