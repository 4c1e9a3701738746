//! Security events (E1; ASVS 5.0 16.2.1, 16.3.1 to 16.3.3): failed and refused sign-ins,
//! refused credentials, service-authentication and CSRF failures, wrong-audience tokens. Each
//! is counted in memory per (kind, chain, source address, subject, minute of the injected clock)
//! and written as one aggregate event when its minute has closed, so an anonymous flood costs
//! at most a fixed number of events per minute rather than one per attempt.
//!
//! The bound: per instance and per minute, at most `max_per_minute` aggregate events, plus one
//! `security.events_folded` event on the operators' chain that counts what did not fit (how many
//! attempts, and from how many distinct sources, counted exactly up to [`MAX_COUNTED_SOURCES`]).
//! Memory is bounded the same way: a minute holds at most `max_per_minute` tallies and
//! [`MAX_COUNTED_SOURCES`] overflow addresses, and at most [`MAX_OPEN_MINUTES`] minutes wait
//! for a flush.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::{Actor, AuditEvent, Outcome};
use crate::ids::OrgId;

/// Distinct overflow sources counted exactly; beyond it the overflow event says "at least".
pub const MAX_COUNTED_SOURCES: usize = 10_000;
/// Minutes kept waiting for a flush (the job flushes every few seconds; this only matters while
/// the store cannot be written). The oldest is dropped, with an error line, past it.
pub const MAX_OPEN_MINUTES: usize = 16;
/// The default of `[security_events] max_per_minute`.
pub const DEFAULT_MAX_PER_MINUTE: usize = 1_000;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SecurityKind {
    /// A customer sign-in with a wrong password or unknown email.
    SignInFailed,
    /// A sign-in, second step, step-up or invitation password refused by a lockout.
    SignInLocked,
    /// An operator sign-in with a wrong password, unknown email or wrong code.
    OperatorSignInFailed,
    /// An access token that did not verify (bad signature, expired, revoked, malformed).
    TokenRefused,
    /// An API key that did not verify.
    ApiKeyRefused,
    /// A missing or wrong `X-Service-Auth` on the service API.
    ServiceAuthFailed,
    /// A cookie-authenticated change without the right `x-csrf-token`.
    CsrfFailed,
    /// A genuine token presented where its audience or tier is not accepted.
    WrongAudience,
    /// An attempt by or for an account an operator disabled, refused: a sign-in whose password
    /// was right, a refresh, the second step of a sign-in, a step-up, a switch of organisation,
    /// an impersonation or an invitation's acceptance.
    AccountDisabled,
    /// A sign-in refused by `identity.max_sessions_per_account` (`session_limit_action =
    /// "refuse"`).
    SessionLimit,
}

impl SecurityKind {
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
            Self::AccountDisabled => "user.disabled_refused",
            Self::SessionLimit => "user.session_limit_refused",
        }
    }

    fn resource_type(self) -> &'static str {
        match self {
            Self::SignInFailed
            | Self::SignInLocked
            | Self::CsrfFailed
            | Self::AccountDisabled
            | Self::SessionLimit => "user",
            Self::OperatorSignInFailed => "operator",
            Self::TokenRefused | Self::WrongAudience => "token",
            Self::ApiKeyRefused => "api_key",
            Self::ServiceAuthFailed => "service",
        }
    }
}

/// One security event as it happens.
#[derive(Debug, Clone)]
pub struct SecurityEvent<'a> {
    pub kind: SecurityKind,
    /// The organisation's chain when the organisation is known (a CSRF failure of a signed-in
    /// caller); `None`: the operators' chain.
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
    folded: u64,
    folded_sources: HashSet<String>,
    sources_capped: bool,
}

/// The per-instance aggregator: [`Self::record`] on the request path (a lock and a map update),
/// [`crate::Kernel::flush_security_events`] from the minute job and at shutdown.
#[derive(Debug)]
pub struct SecurityEvents {
    max_per_minute: usize,
    minutes: Mutex<BTreeMap<i64, Minute>>,
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
            minutes: Mutex::new(BTreeMap::new()),
        }
    }

    #[must_use]
    pub fn max_per_minute(&self) -> usize {
        self.max_per_minute
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<i64, Minute>> {
        self.minutes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Counts one event at `now`.
    pub fn record(&self, event: &SecurityEvent<'_>, now: OffsetDateTime) {
        let source = event.source.map_or_else(
            || "unknown".to_owned(),
            |s| bounded(&crate::limits::address_subject_of(s)),
        );
        let key = Key {
            kind: event.kind,
            org: event.org,
            source,
            subject: event
                .subject
                .as_deref()
                .map_or_else(|| "unknown".to_owned(), bounded),
        };
        let mut minutes = self.lock();
        let minute = minutes.entry(minute_of(now)).or_default();
        if let Some(t) = minute.tallies.get_mut(&key) {
            t.count = t.count.saturating_add(1);
        } else if minute.tallies.len() < self.max_per_minute {
            minute.tallies.insert(
                key,
                Tally {
                    count: 1,
                    first_request_id: event.request_id.map(bounded),
                },
            );
        } else {
            minute.folded = minute.folded.saturating_add(1);
            if minute.folded_sources.len() < MAX_COUNTED_SOURCES {
                minute.folded_sources.insert(key.source);
            } else if !minute.folded_sources.contains(&key.source) {
                minute.sources_capped = true;
            }
        }
        while minutes.len() > MAX_OPEN_MINUTES {
            if let Some((m, dropped)) = minutes.pop_first() {
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
        let mut minutes = self.lock();
        let keep = if all {
            BTreeMap::new()
        } else {
            minutes.split_off(&current)
        };
        let closed = std::mem::replace(&mut *minutes, keep);
        closed.into_iter().collect()
    }
}

/// The audit events one minute becomes: one per tally (its chain beside it), then the folded
/// count, if any, on the operators' chain.
#[must_use]
pub fn events_of(minute: i64, m: Minute) -> Vec<(Option<OrgId>, AuditEvent)> {
    let at = OffsetDateTime::from_unix_timestamp(minute.saturating_mul(60))
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default();
    let mut tallies: Vec<(Key, Tally)> = m.tallies.into_iter().collect();
    tallies.sort_by(|a, b| a.0.cmp(&b.0));
    let mut out = Vec::with_capacity(tallies.len() + 1);
    for (key, tally) in tallies {
        let mut event = AuditEvent::success(
            Actor::anonymous(),
            key.kind.action(),
            key.kind.resource_type(),
            &key.subject,
        )
        .with_details(
            serde_json::json!({
                "source": key.source,
                "count": tally.count,
                "minute": at,
                "aggregated": true,
            })
            .to_string(),
        )
        .with_request(tally.first_request_id);
        event.outcome = Outcome::Denied;
        out.push((key.org, event));
    }
    if m.folded > 0 {
        let mut event = AuditEvent::success(
            Actor::system("security_events"),
            "security.events_folded",
            "instance",
            "security_events",
        )
        .with_details(
            serde_json::json!({
                "events": m.folded,
                "sources": m.folded_sources.len(),
                "sources_at_least": m.sources_capped,
                "minute": at,
            })
            .to_string(),
        );
        event.outcome = Outcome::Denied;
        out.push((None, event));
    }
    out
}

impl crate::Kernel {
    /// The security-event aggregator (`[security_events]`).
    #[must_use]
    pub fn security_events(&self) -> &SecurityEvents {
        self.security_event_tallies()
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
        let mut by_chain: BTreeMap<Option<OrgId>, Vec<AuditEvent>> = BTreeMap::new();
        for (minute, m) in minutes {
            for (org, event) in events_of(minute, m) {
                by_chain.entry(org).or_default().push(event);
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
        events: Vec<AuditEvent>,
    ) -> Result<(), crate::Error> {
        match org {
            Some(org) => {
                let scope = crate::TenantScope::granted(org);
                let mut tx = self.store().begin_scoped(&scope).await?;
                if let Some(proof) =
                    super::append_tenant_batch(tx.as_mut(), self.clock(), events).await?
                {
                    tx.commit(proof).await?;
                }
            }
            None => {
                let mut tx = self.store().begin().await?;
                let mut proof = None;
                for event in events {
                    proof = Some(super::append_operator(tx.as_mut(), self.clock(), event).await?);
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
mod tests {
    use super::*;

    fn at(secs: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_700_000_040 + secs).unwrap()
    }

    fn failed(source: &str) -> SecurityEvent<'_> {
        SecurityEvent {
            kind: SecurityKind::SignInFailed,
            org: None,
            source: Some(source),
            subject: None,
            request_id: Some("r1"),
        }
    }

    fn details(e: &AuditEvent) -> serde_json::Value {
        serde_json::from_str(&e.details).unwrap()
    }

    #[test]
    fn repeats_fold_into_one_event_per_source_subject_and_kind() {
        let s = SecurityEvents::new(10);
        for _ in 0..500 {
            s.record(&failed("203.0.113.1"), at(1));
        }
        s.record(&failed("203.0.113.2"), at(2));
        s.record(
            &SecurityEvent {
                kind: SecurityKind::SignInLocked,
                ..failed("203.0.113.1")
            },
            at(3),
        );
        let events: Vec<_> = s
            .take(at(61), false)
            .into_iter()
            .flat_map(|(m, b)| events_of(m, b))
            .collect();
        assert_eq!(events.len(), 3);
        let first = &events[0].1;
        assert_eq!(first.action, "user.login_failed");
        assert_eq!(first.outcome, Outcome::Denied);
        assert_eq!(first.resource_id, "unknown");
        assert_eq!(first.request_id.as_deref(), Some("r1"));
        assert_eq!(details(first)["source"], "203.0.113.1");
        assert_eq!(details(first)["count"], 500);
        assert_eq!(details(&events[1].1)["source"], "203.0.113.2");
        assert_eq!(events[2].1.action, "sign_in.locked");
        for (_, e) in &events {
            e.validate().unwrap();
        }
    }

    #[test]
    fn past_the_bound_attempts_fold_into_one_counted_event() {
        let s = SecurityEvents::new(3);
        let sources: Vec<String> = (1..=50).map(|i| format!("198.51.100.{i}")).collect();
        for round in 0..4 {
            for src in &sources {
                s.record(&failed(src), at(round));
            }
        }
        let minutes = s.take(at(60), false);
        assert_eq!(minutes.len(), 1);
        let events: Vec<_> = minutes
            .into_iter()
            .flat_map(|(m, b)| events_of(m, b))
            .collect();
        // The bound (3) plus the one folded event, whatever the flood.
        assert_eq!(events.len(), 4);
        let folded = &events[3];
        assert_eq!(folded.0, None);
        assert_eq!(folded.1.action, "security.events_folded");
        let d = details(&folded.1);
        // 200 attempts, 4 each from the 3 sources that fit: 188 folded, from 47 sources.
        assert_eq!(d["events"], 188);
        assert_eq!(d["sources"], 47);
        assert_eq!(d["sources_at_least"], false);
        let counted: u64 = events[..3]
            .iter()
            .map(|(_, e)| details(e)["count"].as_u64().unwrap())
            .sum();
        assert_eq!(counted + 188, 200);
    }

    #[test]
    fn a_minute_is_written_only_once_it_has_closed() {
        let s = SecurityEvents::new(10);
        // 1_700_000_040 is a minute boundary: 59 s later is the same minute, 60 s the next.
        s.record(&failed("203.0.113.1"), at(0));
        s.record(&failed("203.0.113.1"), at(59));
        s.record(&failed("203.0.113.1"), at(60));
        assert!(s.take(at(59), false).is_empty());
        let closed = s.take(at(60), false);
        assert_eq!(closed.len(), 1);
        let events = events_of(closed[0].0, closed.into_iter().next().unwrap().1);
        assert_eq!(details(&events[0].1)["count"], 2);
        assert_eq!(details(&events[0].1)["minute"], "2023-11-14T22:14:00Z");
        // The next minute is still open; `all` (shutdown) takes it anyway.
        assert!(s.take(at(119), false).is_empty());
        let rest = s.take(at(60), true);
        assert_eq!(rest.len(), 1);
        assert!(s.take(at(1_000), true).is_empty());
    }

    #[test]
    fn ipv6_sources_count_per_64_and_text_is_bounded() {
        let s = SecurityEvents::new(10);
        s.record(&failed("2001:db8:1:2::1"), at(0));
        s.record(&failed("2001:db8:1:2::ffff"), at(0));
        s.record(
            &SecurityEvent {
                subject: Some("x".repeat(500)),
                source: None,
                ..failed("")
            },
            at(0),
        );
        let events: Vec<_> = s
            .take(at(60), false)
            .into_iter()
            .flat_map(|(m, b)| events_of(m, b))
            .collect();
        assert_eq!(events.len(), 2);
        assert_eq!(details(&events[0].1)["source"], "2001:db8:1:2::/64");
        assert_eq!(details(&events[0].1)["count"], 2);
        assert_eq!(events[1].1.resource_id.len(), 64);
        assert_eq!(details(&events[1].1)["source"], "unknown");
    }

    #[test]
    fn minutes_waiting_for_a_flush_are_bounded() {
        let s = SecurityEvents::new(10);
        for m in 0..40 {
            s.record(&failed("203.0.113.1"), at(m * 60));
        }
        let left = s.take(at(100 * 60), false);
        assert_eq!(left.len(), MAX_OPEN_MINUTES);
        assert_eq!(left[0].0, minute_of(at(24 * 60)));
    }
}
