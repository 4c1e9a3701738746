//! What a new account password must pass besides `NewPassword`'s length and shipped list (A1;
//! ASVS 5.0 6.1.2, 6.2.11, 6.2.12): it must not be built from the account's own context words,
//! and, when configured, must not appear in a breached-password range service.
//!
//! **Context words.** The email's local part, whole and split at `.`, `_`, `-` and `+`; each
//! label of its domain but the last; the person's name, whole without spaces and word by word;
//! each organisation's name the same way; and the product's name (`mail.product_name`) the same
//! way. Words shorter than 4 characters are ignored. Everything is compared in lower case
//! after NFKC.
//!
//! **Built from.** Every occurrence of every context word is taken out of the password; what is
//! left must still hold at least 8 letters or digits and not be a shipped common password.
//! `Acme-2024!` for Acme's member is refused (`2024` is left); `acme violet lantern orbit` is
//! not (`violetlanternorbit` is left).
//!
//! **Breached-password range check (k-anonymity).** The SHA-1 of the password is computed here;
//! only its first 5 hex characters go to the service, which answers every suffix it holds under
//! that prefix; the suffix is compared here. The full hash never leaves the process.

use std::sync::Arc;

use async_trait::async_trait;

use crate::error::Error;
use crate::inputs::{NewPassword, is_common_password};
use crate::kernel::Kernel;

/// Context words shorter than this are ignored: they occur in too many good passwords.
pub const MIN_CONTEXT_WORD: usize = 4;
/// What must be left once the context words are taken out.
pub const MIN_LEFT: usize = 8;
/// How many hex characters of the SHA-1 a range query sends.
pub const RANGE_PREFIX_LEN: usize = 5;

/// A breached-password range service: given a 5-hex-character prefix, the body it answers
/// (`SUFFIX:COUNT` lines, as the Pwned Passwords range API). Timeouts are the adapter's.
#[async_trait]
pub trait BreachRange: Send + Sync + std::fmt::Debug {
    async fn range(&self, prefix: &str) -> Result<String, String>;
}

/// What a new password meets when the range service cannot answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreachOnError {
    /// Accepted (the shipped list and context words still apply); logged at WARN.
    Allow,
    /// Refused with 503 `dependency_unavailable`: nobody sets a password until it answers.
    Refuse,
}

#[derive(Debug, Clone)]
pub struct BreachCheck {
    pub range: Arc<dyn BreachRange>,
    pub on_error: BreachOnError,
}

/// The new-password checks beyond `NewPassword` (off: no range service).
#[derive(Debug, Clone, Default)]
pub struct PasswordPolicy {
    pub breach: Option<BreachCheck>,
}

/// The context words of `sources` (see the module comment), lower-cased and deduplicated.
#[must_use]
pub fn context_words(emails: &[&str], names: &[&str]) -> Vec<String> {
    use unicode_normalization::UnicodeNormalization as _;
    let norm = |s: &str| s.nfkc().collect::<String>().to_lowercase();
    let mut words: Vec<String> = Vec::new();
    for email in emails {
        let email = norm(email);
        let (local, domain) = email.rsplit_once('@').unwrap_or((email.as_str(), ""));
        words.push(local.to_owned());
        words.extend(local.split(['.', '_', '-', '+']).map(str::to_owned));
        let labels: Vec<&str> = domain.split('.').collect();
        if let Some((_, rest)) = labels.split_last() {
            words.extend(rest.iter().map(|l| (*l).to_owned()));
        }
    }
    for name in names {
        let name = norm(name);
        let parts: Vec<&str> = name
            .split(|c: char| !c.is_alphanumeric())
            .filter(|p| !p.is_empty())
            .collect();
        words.push(parts.concat());
        words.extend(parts.iter().map(|p| (*p).to_owned()));
    }
    words.retain(|w| w.chars().count() >= MIN_CONTEXT_WORD);
    // Longest first, so a whole name goes before its parts.
    words.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
    words.dedup();
    words
}

/// Whether `password` (already NFKC) is built from `words` (see the module comment).
#[must_use]
pub fn built_from_context(password: &str, words: &[String]) -> bool {
    let lower = password.to_lowercase();
    if !words.iter().any(|w| lower.contains(w.as_str())) {
        return false;
    }
    let mut left = lower;
    for w in words {
        left = left.replace(w.as_str(), " ");
    }
    let kept: String = left.chars().filter(|c| c.is_alphanumeric()).collect();
    kept.chars().count() < MIN_LEFT || is_common_password(&kept)
}

/// Whether the range body lists `suffix` (35 upper-case hex characters) with a count above 0.
/// Every non-empty line must be `SUFFIX:COUNT` (35 hex characters, a colon, digits): an answer
/// of any other shape (an error page served with 200, a captive portal) is an error, for
/// `breach_on_error` to decide, never read as "not listed".
fn listed(body: &str, suffix: &str) -> Result<bool, String> {
    let mut found = false;
    for line in body.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let well_formed = line.split_once(':').filter(|(s, n)| {
            s.len() == 35
                && s.bytes().all(|b| b.is_ascii_hexdigit())
                && !n.is_empty()
                && n.bytes().all(|b| b.is_ascii_digit())
        });
        let Some((s, count)) = well_formed else {
            return Err("the range service's answer is not a list of suffixes and counts".into());
        };
        if s.eq_ignore_ascii_case(suffix) && count.parse::<u64>().map_or(true, |n| n > 0) {
            found = true;
        }
    }
    Ok(found)
}

impl Kernel {
    /// `password` as a new account password: `NewPassword`'s policy, then not built from the
    /// context words of `emails` and `names` (with the product's name), then, when configured,
    /// not in the breached-password range service. Refusals are `validation_failed` on
    /// `password`, like the shipped list's.
    pub(crate) async fn accept_new_password(
        &self,
        password: gatehouse_crypto::SecretString,
        emails: &[&str],
        names: &[&str],
    ) -> Result<NewPassword, Error> {
        let password = NewPassword::parse(password)?;
        let product = self.mail_settings().product_name.clone();
        let mut all_names = names.to_vec();
        all_names.push(&product);
        let words = context_words(emails, &all_names);
        if built_from_context(password.secret().expose(), &words) {
            return Err(Error::invalid(
                "password",
                "is built from the account's email, name, organisation or the product's name; choose another",
            ));
        }
        if let Some(check) = &self.password_policy().breach {
            let hash =
                gatehouse_crypto::sha1_hex_for_breach_lookup(password.secret().expose().as_bytes());
            let (prefix, suffix) = hash.split_at(RANGE_PREFIX_LEN);
            match check
                .range
                .range(prefix)
                .await
                .and_then(|body| listed(&body, suffix))
            {
                Ok(true) => {
                    return Err(Error::invalid(
                        "password",
                        "appears in a published breach of passwords; choose another",
                    ));
                }
                Ok(false) => {}
                Err(e) => match check.on_error {
                    BreachOnError::Allow => {
                        tracing::warn!(error = %e, "the breached-password range service did not answer; the password was checked against the shipped list only");
                    }
                    BreachOnError::Refuse => {
                        tracing::warn!(error = %e, "the breached-password range service did not answer; the password was refused");
                        return Err(Error::DependencyUnavailable(
                            "the breached-password check is unavailable; try again shortly",
                        ));
                    }
                },
            }
        }
        Ok(password)
    }

    /// [`Self::accept_new_password`] for an existing account: its email, name and every
    /// organisation it belongs to are the context.
    pub(crate) async fn accept_account_password(
        &self,
        user: crate::UserId,
        password: gatehouse_crypto::SecretString,
    ) -> Result<NewPassword, Error> {
        let (email, mut names) = {
            let mut tx = self.store().begin_read().await?;
            let Some(u) = tx.user_by_id(user).await? else {
                return Err(Error::NotFound("user"));
            };
            let mut names = vec![u.name];
            for m in tx.memberships_of_user(user).await? {
                if let Some(org) = tx.organization_by_id(m.org_id).await? {
                    names.push(org.name);
                }
            }
            (u.email, names)
        };
        names.retain(|n| !n.is_empty());
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        self.accept_new_password(password, &[email.as_str()], &names)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words() -> Vec<String> {
        context_words(
            &["Jane.Doe+work@mail.acme-cloud.example"],
            &["Jane Q. Doe", "Acme Cloud", "Gatehouse"],
        )
    }

    #[test]
    fn context_words_come_from_email_names_and_product() {
        let w = words();
        for expected in [
            "jane.doe+work",
            "jane",
            "work",
            "mail",
            "acme-cloud",
            "janeqdoe",
            "acmecloud",
            "acme",
            "cloud",
            "gatehouse",
        ] {
            assert!(w.iter().any(|x| x == expected), "{expected} in {w:?}");
        }
        // Too short to be a context word: "doe", "q"; the top-level label is never one.
        assert!(!w.iter().any(|x| x == "doe" || x == "q" || x == "example"));
    }

    #[test]
    fn passwords_built_from_context_words_are_refused() {
        let w = words();
        for bad in [
            "JaneDoe2024!",
            "gatehouse123",
            "Gatehouse-Gatehouse",
            "acmecloud!!",
            "AcmeCloud-Admin1",
            "jane.doe+work@1",
            "work-mail-2020",
            "cloud password1",
        ] {
            assert!(built_from_context(bad, &w), "{bad} should be refused");
        }
        for good in [
            "plum-orbit-cask-47",
            "acme violet lantern orbit",
            "jane's favourite tortoise 1987",
            "correct horse battery staple",
        ] {
            assert!(!built_from_context(good, &w), "{good} should pass");
        }
    }

    #[test]
    fn range_bodies_are_read_as_suffix_and_count() {
        let body =
            "0018A45C4D1DEF81644B54AB7F969B88D65:1\r\n00D4F6E8FA6EECAD2A3AA415EEC418D38EC:0\r\n";
        assert_eq!(
            listed(body, "0018A45C4D1DEF81644B54AB7F969B88D65"),
            Ok(true)
        );
        assert_eq!(
            listed(body, "0018a45c4d1def81644b54ab7f969b88d65"),
            Ok(true)
        );
        // Padding lines (count 0) are not breaches.
        assert_eq!(
            listed(body, "00D4F6E8FA6EECAD2A3AA415EEC418D38EC"),
            Ok(false)
        );
        assert_eq!(
            listed(body, "FFFFF6E8FA6EECAD2A3AA415EEC418D38EC"),
            Ok(false)
        );
        assert_eq!(listed("", "FFFFF6E8FA6EECAD2A3AA415EEC418D38EC"), Ok(false));
    }

    #[test]
    fn a_range_body_of_any_other_shape_is_an_error() {
        let suffix = "0018A45C4D1DEF81644B54AB7F969B88D65";
        for body in [
            "<html><body>Service unavailable</body></html>",
            "0018A45C4D1DEF81644B54AB7F969B88D65",
            "0018A45C4D1DEF81644B54AB7F969B88D65:",
            "0018A45C4D1DEF81644B54AB7F969B88D65:many",
            "0018A45C4D1DEF81644B54AB7F969B88D6:1",
            "0018A45C4D1DEF81644B54AB7F969B88D65Z:1",
            "0018A45C4D1DEF81644B54AB7F969B88D65:1\nnot a line\n",
        ] {
            assert!(listed(body, suffix).is_err(), "{body:?}");
        }
    }
}
