//! Self-checks that read the store, for the probes the application registers. Each reads a
//! bounded amount, whatever the deployment's size, and its result says when a bound was reached.

use gatehouse_crypto::legacy_hash::is_bcrypt;
use gatehouse_crypto::{Argon2Params, Pepper};
use serde::Serialize;

use crate::error::Error;
use crate::store::{PasswordHashSample, Store};

/// The accounts a password census looks at, at most (the oldest, in id order).
pub const CENSUS_MAX_ACCOUNTS: u32 = 100_000;
/// The hashes not at the current parameters a census classifies, at most.
pub const CENSUS_MAX_LISTED: u32 = 10_000;

/// A1: how the stored password hashes compare with the configured Argon2id cost.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PasswordCensus {
    /// Accounts looked at (every account has a password hash): all of them, or, when
    /// `accounts_capped`, the oldest this many of at least this many.
    pub accounts: u64,
    pub accounts_capped: bool,
    /// Accounts whose hash is Argon2id with every parameter at or above the configured one
    /// (an upper bound when `below_capped`).
    pub at_or_above: u64,
    /// Accounts whose hash is below the configured cost: another algorithm, an imported bcrypt
    /// hash, one it cannot read, or an Argon2id parameter below the configured one. They are
    /// rehashed at their next sign-in. A lower bound when `below_capped`.
    pub below: u64,
    /// Of `below`: imported bcrypt hashes.
    pub bcrypt: u64,
    /// Of `below`: hashes that are neither a readable Argon2 hash nor bcrypt, or that name a
    /// pepper when none is configured (neither can be verified).
    pub unreadable: u64,
    /// Accounts without a password (made through single sign-on: `sso::linking::NO_PASSWORD`),
    /// neither at nor below the parameters: no hash to compare.
    pub without_password: u64,
    /// More hashes differ from the current parameters than were classified.
    pub below_capped: bool,
}

/// The start of an Argon2id PHC string made with `params`, up to its last parameter: what every
/// hash made now begins with (then `$` and the salt, or `,keyid=` when a pepper is configured).
#[must_use]
pub fn phc_prefix(params: &Argon2Params) -> String {
    phc_prefix_peppered(params, None)
}

/// [`phc_prefix`] for hashes made with `pepper`: its `keyid` follows the parameters, so a hash
/// made without it, or with another pepper, does not match and is classified (and without a
/// pepper, a hash naming one does not match either).
#[must_use]
pub fn phc_prefix_peppered(params: &Argon2Params, pepper: Option<&Pepper>) -> String {
    let base = format!(
        "$argon2id$v=19$m={},t={},p={}",
        params.memory_kib, params.iterations, params.parallelism
    );
    match pepper {
        Some(p) => format!("{base},keyid={}", p.phc_keyid()),
        None => base,
    }
}

/// Classifies a store's sample against `params`: a hash the store did not list begins with the
/// current parameters, so it is at them; each listed one is parsed, as rehash-on-sign-in parses
/// it ([`gatehouse_crypto::needs_rehash`]), without hashing anything.
#[must_use]
pub fn classify(sample: &PasswordHashSample, params: &Argon2Params) -> PasswordCensus {
    classify_peppered(sample, params, None)
}

/// [`classify`] with the configured pepper: a hash without it, or with another, is below (it is
/// replaced at its next sign-in, as `needs_rehash_peppered` decides there).
#[must_use]
pub fn classify_peppered(
    sample: &PasswordHashSample,
    params: &Argon2Params,
    pepper: Option<&Pepper>,
) -> PasswordCensus {
    let (mut below, mut bcrypt, mut unreadable, mut without) = (0u64, 0u64, 0u64, 0u64);
    for hash in &sample.others {
        if hash.is_empty() {
            without += 1;
        } else if is_bcrypt(hash) {
            bcrypt += 1;
            below += 1;
        } else if Argon2Params::of_hash(hash).is_none() {
            unreadable += 1;
            below += 1;
        } else if pepper.is_none() && hash.contains(",keyid=") {
            // Made with a pepper that is no longer configured: it cannot be verified at all.
            unreadable += 1;
            below += 1;
        } else if gatehouse_crypto::password::needs_rehash_peppered(hash, params, pepper) {
            below += 1;
        }
    }
    PasswordCensus {
        accounts: sample.accounts,
        accounts_capped: sample.accounts_capped,
        at_or_above: sample.accounts.saturating_sub(below + without),
        below,
        bcrypt,
        unreadable,
        without_password: without,
        below_capped: sample.others_capped,
    }
}

/// Counts stored password hashes below `params` (A1's self-check), within
/// [`CENSUS_MAX_ACCOUNTS`] and [`CENSUS_MAX_LISTED`].
pub async fn password_census(
    store: &dyn Store,
    params: &Argon2Params,
    pepper: Option<&Pepper>,
) -> Result<PasswordCensus, Error> {
    password_census_within(
        store,
        params,
        pepper,
        CENSUS_MAX_ACCOUNTS,
        CENSUS_MAX_LISTED,
    )
    .await
}

/// [`password_census`] with its bounds given: at most `max_accounts` accounts looked at, and at
/// most `max_listed` hashes not at the current parameters classified.
pub async fn password_census_within(
    store: &dyn Store,
    params: &Argon2Params,
    pepper: Option<&Pepper>,
    max_accounts: u32,
    max_listed: u32,
) -> Result<PasswordCensus, Error> {
    let mut tx = store.begin_read().await?;
    let sample = tx
        .password_hash_census(
            &phc_prefix_peppered(params, pepper),
            max_accounts,
            max_listed,
        )
        .await?;
    Ok(classify_peppered(&sample, params, pepper))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A well-formed Argon2id PHC string (salt and output are only decoded, never checked).
    fn argon(m: u32, t: u32, p: u32) -> String {
        format!("$argon2id$v=19$m={m},t={t},p={p}$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo")
    }

    fn sample(accounts: u64, others: Vec<String>) -> PasswordHashSample {
        PasswordHashSample {
            accounts,
            accounts_capped: false,
            others,
            others_capped: false,
        }
    }

    #[test]
    fn the_prefix_is_what_a_hash_made_now_begins_with() {
        let params = Argon2Params::new(19_456, 2, 1).unwrap();
        let made =
            gatehouse_crypto::hash_password(&"a password".to_owned().into(), &params).unwrap();
        let prefix = phc_prefix(&params);
        assert!(made.starts_with(&format!("{prefix}$")), "{made} / {prefix}");
    }

    #[test]
    fn listed_hashes_are_sorted_by_cost_and_kind() {
        let params = Argon2Params::new(19_456, 2, 1).unwrap();
        let bcrypt = format!("$2b$12${}", "a".repeat(53));
        let s = sample(
            10,
            vec![
                argon(65_536, 3, 2),     // dearer in every way: at or above
                argon(19_456, 2, 4),     // more lanes: at or above
                argon(12_288, 3, 1),     // less memory: below
                argon(19_456, 1, 1),     // fewer passes: below
                bcrypt,                  // imported: below
                "not a hash".to_owned(), // unreadable: below
                "$argon2i$v=19$m=65536,t=3,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo".to_owned(),
                String::new(), // no password (single sign-on): neither
            ],
        );
        let c = classify(&s, &params);
        assert_eq!(
            c,
            PasswordCensus {
                accounts: 10,
                accounts_capped: false,
                at_or_above: 4,
                below: 5,
                bcrypt: 1,
                unreadable: 1,
                without_password: 1,
                below_capped: false,
            }
        );
    }

    #[test]
    fn raising_the_parameters_puts_hashes_made_before_below() {
        let old = Argon2Params::new(19_456, 2, 1).unwrap();
        let raised = Argon2Params::new(47_104, 2, 1).unwrap();
        // At the old parameters the store lists nothing (every hash begins with the prefix).
        assert_eq!(classify(&sample(3, Vec::new()), &old).below, 0);
        // At the raised ones the same three hashes no longer begin with it, and are listed.
        let listed = vec![argon(19_456, 2, 1); 3];
        let c = classify(&sample(3, listed), &raised);
        assert_eq!((c.below, c.at_or_above), (3, 0));
    }

    #[test]
    fn caps_carry_through() {
        let params = Argon2Params::MINIMUM;
        let s = PasswordHashSample {
            accounts: 5,
            accounts_capped: true,
            others: vec![argon(19_456, 1, 1)],
            others_capped: true,
        };
        let c = classify(&s, &params);
        assert!(c.accounts_capped && c.below_capped);
        assert_eq!((c.accounts, c.below, c.at_or_above), (5, 1, 4));
    }

    #[test]
    fn a_sample_from_reads_reports_its_caps() {
        let s = PasswordHashSample::from_reads(4, 3, vec!["a".into(), "b".into(), "c".into()], 2);
        assert_eq!(
            s,
            PasswordHashSample {
                accounts: 3,
                accounts_capped: true,
                others: vec!["a".into(), "b".into()],
                others_capped: true,
            }
        );
        let s = PasswordHashSample::from_reads(3, 3, vec!["a".into()], 2);
        assert!(!s.accounts_capped && !s.others_capped);
        assert_eq!(s.accounts, 3);
    }

    #[test]
    fn with_a_pepper_hashes_made_without_it_or_with_another_count_as_below() {
        let params = Argon2Params::MINIMUM;
        let pepper = Pepper::new(gatehouse_crypto::Key32::from_bytes([7; 32]));
        let other = Pepper::new(gatehouse_crypto::Key32::from_bytes([8; 32]));
        let password = gatehouse_crypto::SecretString::from("a long enough password".to_owned());
        let now =
            gatehouse_crypto::password::hash_password_peppered(&password, &params, Some(&pepper))
                .unwrap();
        let prefix = phc_prefix_peppered(&params, Some(&pepper));
        // The store lists only hashes not starting with the prefix and a delimiter.
        assert!(now.starts_with(&format!("{prefix}$")), "{now} / {prefix}");
        let unpeppered =
            gatehouse_crypto::password::hash_password_peppered(&password, &params, None).unwrap();
        let old_pepper =
            gatehouse_crypto::password::hash_password_peppered(&password, &params, Some(&other))
                .unwrap();
        assert!(!unpeppered.starts_with(&prefix) && !old_pepper.starts_with(&prefix));
        let c = classify_peppered(
            &sample(3, vec![unpeppered, old_pepper]),
            &params,
            Some(&pepper),
        );
        assert_eq!((c.accounts, c.below, c.at_or_above), (3, 2, 1));
        // Without a pepper configured, a peppered hash cannot be verified: below, not current.
        let peppered =
            gatehouse_crypto::password::hash_password_peppered(&password, &params, Some(&pepper))
                .unwrap();
        assert!(!peppered.starts_with(&format!("{}$", phc_prefix(&params))));
        let c = classify_peppered(&sample(1, vec![peppered]), &params, None);
        assert_eq!((c.below, c.unreadable, c.at_or_above), (1, 1, 0));
        // Without a pepper configured, the unpeppered hash is at the parameters.
        let plain =
            gatehouse_crypto::password::hash_password_peppered(&password, &params, None).unwrap();
        assert!(plain.starts_with(&format!("{}$", phc_prefix(&params))));
    }
}
