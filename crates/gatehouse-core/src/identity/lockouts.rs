//! Sign-in lockouts (A5): three counts, kept in the lockout store (this process, or Redis
//! shared by every instance). The strict one is per account and address, so five wrong passwords
//! lock the guesser out of that account, not its owner signing in from elsewhere; a looser
//! account-wide one bounds guesses spread over many addresses (and is the residual denial of
//! service: locking an owner out now takes that many addresses); a per-address one bounds one
//! address guessing across accounts. Locking an owner out therefore takes
//! `account_wide_threshold / account_threshold` addresses (10 by default), each refused after its
//! own five. Second-factor codes keep the strict count per account whatever the address
//! ([`Strict::PerAccount`]), so it holds for them however the guesses are spread.

use time::OffsetDateTime;

use crate::error::Error;
use crate::kernel::Kernel;
use crate::limits::{Count, CountKind};

impl Kernel {
    /// Where the lockout counts live: `memory`, `redis` or `memory-fallback` (Redis away).
    #[must_use]
    pub fn lockout_store_kind(&self) -> &'static str {
        self.identity().lockout_store_kind()
    }

    /// Refuses at once (no hashing) while the account or the address is locked; otherwise counts
    /// this attempt as a failure before it is checked, so parallel guesses (on any instance)
    /// cannot all pass one check. A right attempt takes its count back with
    /// [`Self::attempt_succeeded`].
    pub(crate) async fn ensure_not_locked(
        &self,
        account: &str,
        ip: &str,
        now: OffsetDateTime,
    ) -> Result<(), Error> {
        self.ensure_not_locked_as(account, ip, Strict::PerAddress, now)
            .await
    }

    /// Like [`Self::ensure_not_locked`], with the strict count kept as `strict` says.
    pub(crate) async fn ensure_not_locked_as(
        &self,
        account: &str,
        ip: &str,
        strict: Strict,
        now: OffsetDateTime,
    ) -> Result<(), Error> {
        let ip = &crate::limits::address_subject_of(ip);
        let pair = &strict.key(account, ip);
        let group = &pair_prefix(account);
        let counts = self.sign_in_counts(pair, group, account, ip);
        // All three or none: a refusal counts nothing. A store that cannot answer refuses the
        // attempt (ASVS 16.5.3: the sign-in paths fail closed), where Redis's own in-process
        // fallback has not already answered.
        let decided = self.identity().lockouts.attempt(&counts, now).await;
        let wait = decided.map_err(|e| {
            tracing::error!(error = %e, "the lockout store failed; the attempt is refused");
            crate::telemetry::metrics::error("lockouts");
            Error::DependencyUnavailable(
                "the sign-in lockout check is unavailable; try again shortly",
            )
        })?;
        if wait.is_some() {
            let request_id = crate::telemetry::current().map(|r| r.request_id.clone());
            self.security_events().record(
                &crate::audit::SecurityEvent {
                    kind: crate::audit::SecurityKind::SignInLocked,
                    org: None,
                    source: Some(ip.as_str()).filter(|s| !s.is_empty()),
                    subject: None,
                    request_id: request_id.as_deref().filter(|r| !r.is_empty()),
                },
                now,
            );
        }
        locked(wait)
    }

    /// Counts a second-factor attempt against the account's own strict count only (for a
    /// sign-in whose attempt the address and account-wide counts already hold); `false`, and
    /// nothing counted, while that count is locked, and `false` when the count cannot be kept.
    pub(crate) async fn count_factor_attempt(&self, account: &str, now: OffsetDateTime) -> bool {
        let (pair, group) = (Strict::PerAccount.key(account, ""), pair_prefix(account));
        let counts = [self.pair_count(&pair, &group)];
        matches!(
            self.identity().lockouts.attempt(&counts, now).await,
            Ok(None)
        )
    }

    /// Forgives the account's strict second-factor count after a right code.
    pub(crate) async fn factor_attempt_forgiven(&self, account: &str) {
        let (pair, group) = (Strict::PerAccount.key(account, ""), pair_prefix(account));
        let counts = [self.pair_count(&pair, &group)];
        if let Err(e) = self.identity().lockouts.clear(&counts).await {
            tracing::warn!(error = %e, "could not forgive a second-factor count");
        }
    }

    /// The attempt was right: the account's failures from this address and in all are
    /// forgiven, and the address's count of this attempt is taken back.
    pub(crate) async fn attempt_succeeded(&self, account: &str, ip: &str) {
        self.attempt_succeeded_as(account, ip, Strict::PerAddress)
            .await;
    }

    pub(crate) async fn attempt_succeeded_as(&self, account: &str, ip: &str, strict: Strict) {
        let ip = &crate::limits::address_subject_of(ip);
        let pair = &strict.key(account, ip);
        let group = &pair_prefix(account);
        let [pair_count, account_count, address_count] =
            self.sign_in_counts(pair, group, account, ip);
        let store = &self.identity().lockouts;
        let result = match store.clear(&[pair_count, account_count]).await {
            Ok(()) => store.refund(&[address_count]).await,
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, "could not forgive a right attempt's count");
        }
    }

    /// Forgets every count against one account (its `lockout_subject`): from every address,
    /// its second-factor count, and the account-wide one.
    pub(crate) async fn forget_account_counts(&self, account: &str) {
        let store = &self.identity().lockouts;
        let wide = [Count {
            kind: CountKind::Account,
            subject: account,
            group: None,
            policy: self.identity().lockout_policies.account,
        }];
        let result = match store
            .clear_group(CountKind::Pair, &pair_prefix(account))
            .await
        {
            Ok(()) => store.clear(&wide).await,
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, "could not forget an account's lockout counts");
        }
    }

    fn pair_count<'a>(&self, pair: &'a str, group: &'a str) -> Count<'a> {
        Count {
            kind: CountKind::Pair,
            subject: pair,
            group: Some(group),
            policy: self.identity().lockout_policies.account_per_address,
        }
    }

    fn sign_in_counts<'a>(
        &self,
        pair: &'a str,
        group: &'a str,
        account: &'a str,
        ip: &'a str,
    ) -> [Count<'a>; 3] {
        let p = self.identity().lockout_policies;
        [
            self.pair_count(pair, group),
            Count {
                kind: CountKind::Account,
                subject: account,
                group: None,
                policy: p.account,
            },
            Count {
                kind: CountKind::Address,
                subject: ip,
                group: None,
                policy: p.address,
            },
        ]
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
