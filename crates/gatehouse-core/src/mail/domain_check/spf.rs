//! The SPF part of the sender-domain check: one record, its terms, the sending service reached
//! through `+include:`s, the ending, and RFC 7208's lookup limit counted through every include.

use super::{
    Budget, DomainCheckSettings, Finding, SPF_LOOKUP_LIMIT, TxtError, Verdict, askable, finding,
    records,
};
use crate::mail::dns_records::{self, Qualifier, SpfTerm};

pub(super) async fn spf(dns: &mut Budget<'_>, s: &DomainCheckSettings, domain: &str) -> Finding {
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
