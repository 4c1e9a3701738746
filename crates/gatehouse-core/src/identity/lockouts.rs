//! Sign-in lockouts (A5): three counts, kept per instance. The strict one is per account and
//! address, so five wrong passwords lock the guesser out of that account, not its owner signing
//! in from elsewhere; a looser account-wide one bounds guesses spread over many addresses (and is
//! the residual denial of service: locking an owner out now takes that many addresses); a
//! per-address one bounds one address guessing across accounts. Locking an owner out therefore
//! takes `account_wide_threshold / account_threshold` addresses (10 by default), each refused after
//! its own five. Second-factor codes keep the strict count per account whatever the address
//! ([`Strict::PerAccount`]), so it holds for them however the guesses are spread.

use time::OffsetDateTime;

use crate::error::Error;
use crate::kernel::Kernel;

impl Kernel {
    /// Refuses at once (no hashing) while the account or the address is locked; otherwise counts
    /// this attempt as a failure before it is checked, so parallel guesses cannot all pass one
    /// check. A right attempt takes its count back with [`Self::attempt_succeeded`].
    pub(crate) fn ensure_not_locked(
        &self,
        account: &str,
        ip: &str,
        now: OffsetDateTime,
    ) -> Result<(), Error> {
        self.ensure_not_locked_as(account, ip, Strict::PerAddress, now)
    }

    /// Like [`Self::ensure_not_locked`], with the strict count kept as `strict` says.
    pub(crate) fn ensure_not_locked_as(
        &self,
        account: &str,
        ip: &str,
        strict: Strict,
        now: OffsetDateTime,
    ) -> Result<(), Error> {
        let id = self.identity();
        let ip = &crate::limits::address_subject_of(ip);
        let pair = &strict.key(account, ip);
        // Each counts in turn; a refusal takes back what the earlier ones counted.
        let wait = match id.account_lockouts.attempt(pair, now) {
            Err(wait) => Some(wait),
            Ok(()) => match id.account_wide_lockouts.attempt(account, now) {
                Err(wait) => {
                    id.account_lockouts.refund(pair);
                    Some(wait)
                }
                Ok(()) => match id.ip_lockouts.attempt(ip, now) {
                    Err(wait) => {
                        id.account_lockouts.refund(pair);
                        id.account_wide_lockouts.refund(account);
                        Some(wait)
                    }
                    Ok(()) => None,
                },
            },
        };
        locked(wait)
    }

    /// Counts a second-factor attempt against the account's own strict count only (for a
    /// sign-in whose attempt the address and account-wide counts already hold); `false`, and
    /// nothing counted, while that count is locked.
    pub(crate) fn count_factor_attempt(&self, account: &str, now: OffsetDateTime) -> bool {
        self.identity()
            .account_lockouts
            .attempt(&Strict::PerAccount.key(account, ""), now)
            .is_ok()
    }

    /// Forgives the account's strict second-factor count after a right code.
    pub(crate) fn factor_attempt_forgiven(&self, account: &str) {
        self.identity()
            .account_lockouts
            .succeeded(&Strict::PerAccount.key(account, ""));
    }

    /// The attempt was right: the account's failures from this address and in all are
    /// forgiven, and the address's count of this attempt is taken back.
    pub(crate) fn attempt_succeeded(&self, account: &str, ip: &str) {
        self.attempt_succeeded_as(account, ip, Strict::PerAddress);
    }

    pub(crate) fn attempt_succeeded_as(&self, account: &str, ip: &str, strict: Strict) {
        let id = self.identity();
        let ip = &crate::limits::address_subject_of(ip);
        id.account_lockouts.succeeded(&strict.key(account, ip));
        id.account_wide_lockouts.succeeded(account);
        id.ip_lockouts.refund(ip);
    }
}

fn locked(wait: Option<time::Duration>) -> Result<(), Error> {
    match wait {
        Some(wait) => Err({
            crate::telemetry::metrics::rate_limit_refused("lockout");
            Error::TooManyAttempts {
                retry_after_secs: u32::try_from(wait.whole_seconds().max(1)).unwrap_or(u32::MAX),
            }
        }),
        None => Ok(()),
    }
}

/// Where the strict count is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Strict {
    /// Per account and address: passwords, whose guesser may be anyone.
    PerAddress,
    /// Per account, whatever the address: second-factor codes, whose guesser already holds the
    /// password (the address lock still counts per address).
    PerAccount,
}

impl Strict {
    fn key(self, account: &str, address: &str) -> String {
        match self {
            Self::PerAddress => pair_subject(account, address),
            Self::PerAccount => pair_subject(account, "*"),
        }
    }
}

/// The lockout key for what was typed as an email: normalised and bounded, so a huge or oddly
/// cased input cannot grow the table or dodge the count. Known account or not, the same key.
pub(crate) fn lockout_subject(kind: &str, typed_email: &str) -> String {
    let e: String = typed_email
        .trim()
        .to_lowercase()
        .chars()
        .take(254)
        .collect();
    format!("{kind}:{e}")
}

/// The strict lockout's key for one account from one address: [`pair_prefix`] then the address.
pub(crate) fn pair_subject(account: &str, address: &str) -> String {
    format!("{}{address}", pair_prefix(account))
}

/// What every one of an account's [`pair_subject`]s starts with. Length-prefixed, so no typed
/// email (which may hold any character) makes one account's prefix another's.
pub(crate) fn pair_prefix(account: &str) -> String {
    format!("{}:{account}|", account.len())
}
