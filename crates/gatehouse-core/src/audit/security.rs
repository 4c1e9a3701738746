//! Security events (E1; ASVS 5.0 16.2.1, 16.3.1 to 16.3.3): failed and refused sign-ins,
//! refused credentials, service-authentication and CSRF failures, wrong-audience tokens,
//! refused share-link opens. Each is counted in memory per (kind, chain, source address,
//! subject, minute of the injected clock) and written as one aggregate event when its minute
//! has closed, so an anonymous flood costs at most a fixed number of events per minute rather
//! than one per attempt.
//!
//! The bound: per instance and per minute, at most `max_per_minute` aggregate events, plus one
//! `security.events_folded` event on the operators' chain that counts what did not fit: how
//! many attempts of each kind, from how many distinct sources (counted exactly up to
//! [`MAX_COUNTED_SOURCES`]), and the [`FOLDED_TOP_SOURCES`] busiest of them, so one source
//! guessing hard after the tallies are full still shows by its address. One source names at
//! most [`MAX_SUBJECTS_PER_SOURCE`] subjects a minute; its further subjects share one `*` tally,
//! so a single address (or /64) cannot spend the minute's tallies by naming many accounts.
//! Memory is bounded the same way: a minute holds at most `max_per_minute` tallies and
//! [`MAX_COUNTED_SOURCES`] overflow addresses, and at most [`MAX_OPEN_MINUTES`] minutes wait.
//!
//! Where an address goes (the operators' chain holds no personal data, docs/design/audit.md):
//! in clear only in an event on the operators' chain that names no one (subject `unknown` or
//! `*`); beside a person's id on their organisation's chain (a CSRF failure) it is sealed under
//! that person's key, so erasing them shreds it; beside any other id (an account or operator on
//! the operators' chain, a share link) only its keyed digest is written (`source_digest`, an
//! HMAC under the newest link key), which tells repeats from one source apart from others
//! without naming the address.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::{Actor, AuditEvent, Outcome};
use crate::ids::OrgId;
use crate::keyring::PersonalData;

/// Distinct overflow sources counted exactly; beyond it the overflow event says "at least".
pub const MAX_COUNTED_SOURCES: usize = 10_000;
/// Minutes kept waiting for a flush. The job flushes every 5 s, so this only matters while the
/// store cannot be written; past it the oldest minute is dropped, with an error line.
pub const MAX_OPEN_MINUTES: usize = 16;
/// The default of `[security_events] max_per_minute`.
pub const DEFAULT_MAX_PER_MINUTE: usize = 1_000;
/// Distinct subjects one source names in its own tallies per minute; the rest share `*`.
pub const MAX_SUBJECTS_PER_SOURCE: usize = 8;
/// The busiest overflow sources the folded event names.
pub const FOLDED_TOP_SOURCES: usize = 20;

/// The subject of a tally whose attempt named nothing known to exist.
const UNKNOWN: &str = "unknown";
/// The subject a source's tallies share past [`MAX_SUBJECTS_PER_SOURCE`].
const ANY: &str = "*";

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SecurityKind {
    /// A customer sign-in with a wrong password or unknown email.
    SignInFailed,
    /// A sign-in, second step, step-up, invitation or share-link password refused by a lockout.
    SignInLocked,
    /// An operator sign-in with a wrong password, unknown email or wrong code.
    OperatorSignInFailed,
    /// An access token that did not verify (bad signature, revoked, malformed; not one that has
    /// merely expired, which every client meets in ordinary use).
    TokenRefused,
    /// An API key that did not verify.
    ApiKeyRefused,
    /// A missing or wrong `X-Service-Auth` on the service API.
    ServiceAuthFailed,
    /// A cookie-authenticated change without the right `x-csrf-token`.
    CsrfFailed,
    /// A genuine token presented where its audience or tier is not accepted.
    WrongAudience,
    /// A share link refused to an anonymous opener, with the reason (`wrong_password`,
    /// `locked`, `expired`, ...), on the link's organisation's chain.
    ShareLinkOpenFailed(&'static str),
    /// An attempt by or for an account an operator disabled, refused: a sign-in whose password
    /// was right, a refresh, the second step of a sign-in, a step-up, a switch of organisation,
    /// an impersonation or an invitation's acceptance.
    AccountDisabled,
    /// A sign-in refused by `identity.max_sessions_per_account` (`session_limit_action =
    /// "refuse"`).
    SessionLimit,
}

impl SecurityKind {
    /// The event a presented credential's refusal is: a wrong audience, or a token or API key
    /// that did not verify. `None` for anything else (a store that could not answer is not the
    /// caller's doing).
    #[must_use]
    pub fn of_refused_credential(e: &crate::Error, api_key: bool) -> Option<Self> {
        use crate::Error;
        match e {
            // A token that merely expired is ordinary client behaviour, not an attack.
            Error::Unauthenticated(why) if *why == crate::identity::TOKEN_EXPIRED => None,
            Error::WrongAudience(_) => Some(Self::WrongAudience),
            Error::Unauthenticated(_) | Error::InvalidToken(_) if api_key => {
                Some(Self::ApiKeyRefused)
            }
            Error::Unauthenticated(_) | Error::InvalidToken(_) => Some(Self::TokenRefused),
            _ => None,
        }
    }

    /// The audit action the aggregate is written under.
    #[must_use]
    pub fn action(self) -> &'static str {
        match self {
            Self::SignInFailed => "user.login_failed",
            Self::SignInLocked => "sign_in.locked",
            Self::OperatorSignInFailed => "operator.login_failed",
            Self::TokenRefused => "token.refused",
            Self::ApiKeyRefused => "api_key.refused",
            Self::ServiceAuthFailed => "service.auth_failed",
            Self::CsrfFailed => "session.csrf_failed",
            Self::WrongAudience => "token.wrong_audience",
            Self::ShareLinkOpenFailed(_) => "share_link.open_failed",
            Self::AccountDisabled => "user.disabled_refused",
            Self::SessionLimit => "user.session_limit_refused",
        }
    }

    fn resource_type(self) -> &'static str {
        match self {
            Self::SignInFailed | Self::CsrfFailed | Self::AccountDisabled | Self::SessionLimit => {
                "user"
            }
            // A lockout names no subject: it may hold an account, an operator or a share link.
            Self::SignInLocked => "sign_in",
            Self::OperatorSignInFailed => "operator",
            Self::TokenRefused | Self::WrongAudience => "token",
            Self::ApiKeyRefused => "api_key",
            Self::ServiceAuthFailed => "service",
            Self::ShareLinkOpenFailed(_) => "share_link",
        }
    }

    /// Whether the subject is a person whose organisation's chain the event is written on, so
    /// the source is theirs to erase.
    fn subject_is_person(self) -> bool {
        matches!(self, Self::CsrfFailed)
    }

    fn reason(self) -> Option<&'static str> {
        match self {
            Self::ShareLinkOpenFailed(r) => Some(r),
            _ => None,
        }
    }
}

/// One security event as it happens.
#[derive(Debug, Clone)]
pub struct SecurityEvent<'a> {
    pub kind: SecurityKind,
    /// The organisation's chain when the organisation is known (a CSRF failure of a signed-in
    /// caller, a share link); `None`: the operators' chain.
    pub org: Option<OrgId>,
    /// The client address (after the trusted-proxy rule), if known.
    pub source: Option<&'a str>,
    /// The account or credential the attempt named, when known to exist (an id, never a typed
    /// email); `None` for unknown.
    pub subject: Option<String>,
    pub request_id: Option<&'a str>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Key {
    kind: SecurityKind,
    org: Option<OrgId>,
    source: String,
    subject: String,
}

#[derive(Debug, Clone)]
struct Tally {
    count: u64,
    first_request_id: Option<String>,
}

/// One minute's tallies.
#[derive(Debug, Default)]
pub struct Minute {
    tallies: HashMap<Key, Tally>,
    /// Distinct named subjects per source among the tallies (so no longer than they are).
    subjects_of: HashMap<String, usize>,
    folded: u64,
    folded_kinds: BTreeMap<&'static str, u64>,
    folded_sources: HashMap<String, u64>,
    sources_capped: bool,
}

impl Minute {
    fn add(&mut self, mut key: Key, request_id: Option<&str>, max: usize) {
        let named = key.subject != UNKNOWN && key.subject != ANY;
        if named
            && !self.tallies.contains_key(&key)
            && self.subjects_of.get(&key.source).copied().unwrap_or(0) >= MAX_SUBJECTS_PER_SOURCE
        {
            key.subject = ANY.to_owned();
        }
        if let Some(t) = self.tallies.get_mut(&key) {
            t.count = t.count.saturating_add(1);
            return;
        }
        if self.tallies.len() < max {
            if key.subject != UNKNOWN && key.subject != ANY {
                *self.subjects_of.entry(key.source.clone()).or_default() += 1;
            }
            self.tallies.insert(
                key,
                Tally {
                    count: 1,
                    first_request_id: request_id.map(bounded),
                },
            );
            return;
        }
        self.folded = self.folded.saturating_add(1);
        let kind = self.folded_kinds.entry(key.kind.action()).or_default();
        *kind = kind.saturating_add(1);
        if let Some(n) = self.folded_sources.get_mut(&key.source) {
            *n = n.saturating_add(1);
        } else if self.folded_sources.len() < MAX_COUNTED_SOURCES {
            self.folded_sources.insert(key.source, 1);
        } else {
            self.sources_capped = true;
        }
    }
}

#[derive(Debug, Default)]
struct Open {
    minutes: BTreeMap<i64, Minute>,
    /// The first minute not yet taken: a late record (its request began in a minute already
    /// written) counts here instead, so no minute is written twice and the bound holds.
    first_open: i64,
}

/// The per-instance aggregator: [`Self::record`] on the request path (a lock and a map update),
/// [`crate::Kernel::flush_security_events`] from the minute job and at shutdown.
#[derive(Debug)]
pub struct SecurityEvents {
    max_per_minute: usize,
    open: Mutex<Open>,
}

impl Default for SecurityEvents {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_PER_MINUTE)
    }
}

fn minute_of(t: OffsetDateTime) -> i64 {
    t.unix_timestamp().div_euclid(60)
}

/// Bounded text for a source or subject: at most 64 characters without control characters.
fn bounded(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(64).collect()
}

impl SecurityEvents {
    /// `max_per_minute` aggregate events per minute at most (at least 1).
    #[must_use]
    pub fn new(max_per_minute: usize) -> Self {
        Self {
            max_per_minute: max_per_minute.max(1),
            open: Mutex::new(Open::default()),
        }
    }

    #[must_use]
    pub fn max_per_minute(&self) -> usize {
        self.max_per_minute
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Open> {
        self.open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Counts one event at `now` (or in the first minute not yet written, if later).
    pub fn record(&self, event: &SecurityEvent<'_>, now: OffsetDateTime) {
        let source = event.source.map_or_else(
            || UNKNOWN.to_owned(),
            |s| bounded(&crate::limits::address_subject_of(s)),
        );
        let key = Key {
            kind: event.kind,
            org: event.org,
            source,
            subject: event
                .subject
                .as_deref()
                .map_or_else(|| UNKNOWN.to_owned(), bounded),
        };
        let mut open = self.lock();
        let at = minute_of(now).max(open.first_open);
        open.minutes
            .entry(at)
            .or_default()
            .add(key, event.request_id, self.max_per_minute);
        while open.minutes.len() > MAX_OPEN_MINUTES {
            if let Some((m, dropped)) = open.minutes.pop_first() {
                tracing::error!(
                    minute = m * 60,
                    tallies = dropped.tallies.len(),
                    "security events were not flushed in time; the oldest minute is dropped"
                );
            }
        }
    }

    /// Takes every minute that has closed by `now` (or every minute, with `all`), oldest first.
    pub fn take(&self, now: OffsetDateTime, all: bool) -> Vec<(i64, Minute)> {
        let current = minute_of(now);
        let mut open = self.lock();
        let (keep, first_open) = if all {
            (BTreeMap::new(), current.saturating_add(1))
        } else {
            (open.minutes.split_off(&current), current)
        };
        let closed = std::mem::replace(&mut open.minutes, keep);
        if let Some(&last) = closed.keys().next_back() {
            open.first_open = open.first_open.max(last.saturating_add(1));
        }
        open.first_open = open.first_open.max(first_open);
        closed.into_iter().collect()
    }
}

/// One aggregate ready to write: its chain, the event, and personal data to seal under the
/// subject's key on that chain.
#[derive(Debug)]
pub struct Aggregate {
    pub org: Option<OrgId>,
    pub event: AuditEvent,
    pub personal: Option<(String, PersonalData)>,
}

/// The audit events one minute becomes: one per tally, then the folded count, if any, on the
/// operators' chain. `digest` is the keyed digest of a source written beside an id
/// (`None`: the source is left out).
#[must_use]
pub fn events_of(
    minute: i64,
    m: Minute,
    digest: &dyn Fn(&str) -> Option<String>,
) -> Vec<Aggregate> {
    let at = OffsetDateTime::from_unix_timestamp(minute.saturating_mul(60))
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default();
    let mut tallies: Vec<(Key, Tally)> = m.tallies.into_iter().collect();
    tallies.sort_by(|a, b| a.0.cmp(&b.0));
    let mut out = Vec::with_capacity(tallies.len() + 1);
    for (key, tally) in tallies {
        let mut details = serde_json::Map::new();
        details.insert("count".into(), tally.count.into());
        details.insert("minute".into(), at.clone().into());
        details.insert("aggregated".into(), true.into());
        if let Some(reason) = key.kind.reason() {
            details.insert("reason".into(), reason.into());
        }
        let names_no_one = key.subject == UNKNOWN || key.subject == ANY;
        let mut personal = None;
        if key.source == UNKNOWN || (key.org.is_none() && names_no_one) {
            details.insert("source".into(), key.source.clone().into());
        } else if key.org.is_some() && key.kind.subject_is_person() && !names_no_one {
            personal = Some((
                key.subject.clone(),
                PersonalData {
                    ip: Some(key.source.clone()),
                    user_agent: None,
                },
            ));
        } else if let Some(d) = digest(&key.source) {
            details.insert("source_digest".into(), d.into());
        }
        let mut event = AuditEvent::success(
            Actor::anonymous(),
            key.kind.action(),
            key.kind.resource_type(),
            &key.subject,
        )
        .with_details(serde_json::Value::Object(details).to_string())
        .with_request(tally.first_request_id);
        event.outcome = Outcome::Denied;
        out.push(Aggregate {
            org: key.org,
            event,
            personal,
        });
    }
    if m.folded > 0 {
        let mut top: Vec<(String, u64)> = m
            .folded_sources
            .iter()
            .map(|(s, n)| (s.clone(), *n))
            .collect();
        top.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        top.truncate(FOLDED_TOP_SOURCES);
        let top: Vec<serde_json::Value> = top
            .into_iter()
            .map(|(source, count)| serde_json::json!({"source": source, "count": count}))
            .collect();
        let mut event = AuditEvent::success(
            Actor::system("security_events"),
            "security.events_folded",
            "instance",
            "security_events",
        )
        .with_details(
            serde_json::json!({
                "events": m.folded,
                "kinds": m.folded_kinds,
                "sources": m.folded_sources.len(),
                "sources_at_least": m.sources_capped,
                "top_sources": top,
                "minute": at,
            })
            .to_string(),
        );
        event.outcome = Outcome::Denied;
        out.push(Aggregate {
            org: None,
            event,
            personal: None,
        });
    }
    out
}

/// The keyed digest of a source written beside an id: the link key's version and the first
/// 12 bytes of an HMAC over a label and the address (`None` while no link key is loaded).
fn source_digest(keyring: &crate::keyring::Keyring, source: &str) -> Option<String> {
    let (version, tag) = keyring
        .link_tag(&[b"gatehouse.security-source.v1", source.as_bytes()])
        .ok()?;
    let hex: String = tag.iter().take(12).map(|b| format!("{b:02x}")).collect();
    Some(format!("{version}:{hex}"))
}

impl crate::Kernel {
    /// The security-event aggregator (`[security_events]`).
    #[must_use]
    pub fn security_events(&self) -> &SecurityEvents {
        self.security_event_tallies()
    }

    /// Counts a refused credential (see [`SecurityKind::of_refused_credential`]), on the
    /// operators' chain: whose it was is not known.
    pub fn record_refused_credential(
        &self,
        e: &crate::Error,
        credential: &str,
        request: &crate::RequestContext,
    ) {
        let api_key = crate::api_keys::is_api_key(credential);
        if let Some(kind) = SecurityKind::of_refused_credential(e, api_key) {
            self.record_security_event(kind, None, None, request);
        }
    }

    /// Counts one security event of a request at the injected clock's time.
    pub fn record_security_event(
        &self,
        kind: SecurityKind,
        org: Option<OrgId>,
        subject: Option<String>,
        request: &crate::RequestContext,
    ) {
        self.security_events().record(
            &SecurityEvent {
                kind,
                org,
                source: request.ip.as_deref(),
                subject,
                request_id: request.request_id.as_deref(),
            },
            self.clock().now(),
        );
    }

    /// Writes every closed minute's aggregates (every minute, with `all`: at shutdown): the
    /// operators' chain in one transaction, each organisation's in one of its own. Returns how
    /// many events were written; a chain that cannot be written loses that minute's events for
    /// it, with an error line naming how many.
    pub async fn flush_security_events(&self, all: bool) -> Result<usize, crate::Error> {
        let minutes = self.security_events().take(self.clock().now(), all);
        let digest = |s: &str| source_digest(self.keyring(), s);
        let mut by_chain: BTreeMap<Option<OrgId>, Vec<Aggregate>> = BTreeMap::new();
        for (minute, m) in minutes {
            for a in events_of(minute, m, &digest) {
                by_chain.entry(a.org).or_default().push(a);
            }
        }
        let mut written = 0;
        let mut failed = None;
        for (org, events) in by_chain {
            let n = events.len();
            match self.write_security_events(org, events).await {
                Ok(()) => written += n,
                Err(e) => {
                    tracing::error!(error = %e, events = n, org_id = ?org.map(|o| o.to_string()), "could not write security events; they are lost");
                    failed = Some(e);
                }
            }
        }
        match failed {
            Some(e) if written == 0 => Err(e),
            _ => Ok(written),
        }
    }

    async fn write_security_events(
        &self,
        org: Option<OrgId>,
        events: Vec<Aggregate>,
    ) -> Result<(), crate::Error> {
        match org {
            Some(org) => {
                let scope = crate::TenantScope::granted(org);
                let mut tx = self.store().begin_scoped(&scope).await?;
                let mut keys = HashMap::new();
                let mut sealed = Vec::with_capacity(events.len());
                for a in events {
                    sealed.push(match a.personal {
                        None => a.event,
                        Some((subject, data)) => {
                            let envelope = self
                                .keyring()
                                .seal_personal_cached(tx.as_mut(), &mut keys, &subject, &data)
                                .await?;
                            a.event.with_personal(&subject, envelope)
                        }
                    });
                }
                if let Some(proof) =
                    super::append_tenant_batch(tx.as_mut(), self.clock(), sealed).await?
                {
                    tx.commit(proof).await?;
                }
            }
            None => {
                let mut tx = self.store().begin().await?;
                let mut proof = None;
                // Nothing for this chain carries personal data (`events_of`).
                for a in events {
                    proof = Some(super::append_operator(tx.as_mut(), self.clock(), a.event).await?);
                }
                if let Some(proof) = proof {
                    tx.commit(proof).await?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "security_tests.rs"]
mod tests;
