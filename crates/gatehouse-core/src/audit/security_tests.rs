//! Unit tests of `audit::security`.

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

/// A stand-in for the keyed digest: opaque, one value per source.
fn digest(s: &str) -> Option<String> {
    Some(format!(
        "d{}",
        s.len() * 7 + s.bytes().map(usize::from).sum::<usize>()
    ))
}

fn written(s: &SecurityEvents, now: OffsetDateTime) -> Vec<Aggregate> {
    s.take(now, false)
        .into_iter()
        .flat_map(|(m, b)| events_of(m, b, &digest))
        .collect()
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
    let events = written(&s, at(61));
    assert_eq!(events.len(), 3);
    let first = &events[0].event;
    assert_eq!(first.action, "user.login_failed");
    assert_eq!(first.outcome, Outcome::Denied);
    assert_eq!(first.resource_id, "unknown");
    assert_eq!(first.request_id.as_deref(), Some("r1"));
    assert_eq!(details(first)["source"], "203.0.113.1");
    assert_eq!(details(first)["count"], 500);
    assert_eq!(details(&events[1].event)["source"], "203.0.113.2");
    assert_eq!(events[2].event.action, "sign_in.locked");
    for a in &events {
        a.event.validate().unwrap();
    }
}

#[test]
fn an_address_beside_an_id_is_sealed_on_the_persons_chain_or_digested() {
    let s = SecurityEvents::new(10);
    let org = OrgId::parse("0190e0a4-0000-7000-8000-000000000001").unwrap();
    // A failed sign-in of an existing account: the operators' chain, digest only.
    s.record(
        &SecurityEvent {
            subject: Some("user-1".into()),
            ..failed("203.0.113.7")
        },
        at(0),
    );
    // A CSRF failure: the person's organisation's chain, sealed as their personal data.
    s.record(
        &SecurityEvent {
            kind: SecurityKind::CsrfFailed,
            org: Some(org),
            subject: Some("user-1".into()),
            ..failed("203.0.113.7")
        },
        at(0),
    );
    // A share link: its organisation's chain, digest only, with the reason.
    s.record(
        &SecurityEvent {
            kind: SecurityKind::ShareLinkOpenFailed("wrong_password"),
            org: Some(org),
            subject: Some("link-1".into()),
            ..failed("203.0.113.7")
        },
        at(0),
    );
    let events = written(&s, at(60));
    assert_eq!(events.len(), 3);
    for a in &events {
        assert!(
            !a.event.details.contains("203.0.113.7"),
            "{}",
            a.event.details
        );
    }
    let login = events
        .iter()
        .find(|a| a.event.action == "user.login_failed")
        .unwrap();
    assert_eq!(login.org, None);
    assert!(login.personal.is_none());
    assert_eq!(
        details(&login.event)["source_digest"],
        digest("203.0.113.7").unwrap()
    );
    let csrf = events
        .iter()
        .find(|a| a.event.action == "session.csrf_failed")
        .unwrap();
    assert_eq!(csrf.org, Some(org));
    let (subject, data) = csrf.personal.as_ref().unwrap();
    assert_eq!(subject, "user-1");
    assert_eq!(data.ip.as_deref(), Some("203.0.113.7"));
    assert!(details(&csrf.event).get("source_digest").is_none());
    let link = events
        .iter()
        .find(|a| a.event.action == "share_link.open_failed")
        .unwrap();
    assert_eq!(link.org, Some(org));
    assert_eq!(link.event.resource_type, "share_link");
    assert_eq!(details(&link.event)["reason"], "wrong_password");
    assert_eq!(
        details(&link.event)["source_digest"],
        digest("203.0.113.7").unwrap()
    );
    assert!(link.personal.is_none());
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
        .flat_map(|(m, b)| events_of(m, b, &digest))
        .collect();
    // The bound (3) plus the one folded event, whatever the flood.
    assert_eq!(events.len(), 4);
    let folded = &events[3];
    assert_eq!(folded.org, None);
    assert_eq!(folded.event.action, "security.events_folded");
    let d = details(&folded.event);
    // 200 attempts, 4 each from the 3 sources that fit: 188 folded, from 47 sources.
    assert_eq!(d["events"], 188);
    assert_eq!(d["sources"], 47);
    assert_eq!(d["sources_at_least"], false);
    assert_eq!(d["kinds"]["user.login_failed"], 188);
    assert_eq!(
        d["top_sources"].as_array().unwrap().len(),
        FOLDED_TOP_SOURCES
    );
    let counted: u64 = events[..3]
        .iter()
        .map(|a| details(&a.event)["count"].as_u64().unwrap())
        .sum();
    assert_eq!(counted + 188, 200);
}

/// Tallies filled first by many sources (an IPv6 /48 is 65,536 /64s) do not hide a
/// brute force that comes after: the folded event names its kind and its source.
#[test]
fn a_brute_force_after_the_tallies_are_full_shows_in_the_folded_event() {
    let s = SecurityEvents::new(100);
    for i in 0..5_000u32 {
        let src = format!("2001:db8:aa:{:x}::1", i);
        s.record(
            &SecurityEvent {
                kind: SecurityKind::TokenRefused,
                ..failed(&src)
            },
            at(1),
        );
    }
    for _ in 0..300 {
        s.record(
            &SecurityEvent {
                subject: Some("operator-1".into()),
                kind: SecurityKind::OperatorSignInFailed,
                ..failed("192.0.2.9")
            },
            at(2),
        );
    }
    let events = written(&s, at(60));
    assert_eq!(events.len(), 101);
    let d = details(&events[100].event);
    assert_eq!(d["events"], 5_200);
    assert_eq!(d["kinds"]["token.refused"], 4_900);
    assert_eq!(d["kinds"]["operator.login_failed"], 300);
    assert_eq!(d["sources"], 4_901);
    let top = d["top_sources"].as_array().unwrap();
    assert_eq!(top.len(), FOLDED_TOP_SOURCES);
    assert_eq!(top[0]["source"], "192.0.2.9");
    assert_eq!(top[0]["count"], 300);
    assert_eq!(top[1]["count"], 1);
}

/// One source naming many accounts spends at most `MAX_SUBJECTS_PER_SOURCE` tallies; the
/// rest of its attempts share one `*` tally, whose address is in clear (it names no one).
#[test]
fn one_source_names_a_bounded_number_of_subjects_a_minute() {
    let s = SecurityEvents::new(1_000);
    for i in 0..200 {
        for _ in 0..2 {
            s.record(
                &SecurityEvent {
                    subject: Some(format!("user-{i:03}")),
                    ..failed("203.0.113.50")
                },
                at(0),
            );
        }
    }
    s.record(
        &SecurityEvent {
            subject: Some("user-000".into()),
            ..failed("203.0.113.51")
        },
        at(0),
    );
    let events = written(&s, at(60));
    let from_50: Vec<_> = events
        .iter()
        .filter(|a| {
            let d = details(&a.event);
            d["source"] == "203.0.113.50" || d["source_digest"] == digest("203.0.113.50").unwrap()
        })
        .collect();
    assert_eq!(from_50.len(), MAX_SUBJECTS_PER_SOURCE + 1);
    let any = from_50.iter().find(|a| a.event.resource_id == "*").unwrap();
    assert_eq!(details(&any.event)["source"], "203.0.113.50");
    assert_eq!(
        details(&any.event)["count"],
        400 - 2 * MAX_SUBJECTS_PER_SOURCE as u64
    );
    // Another source still names its own subject.
    assert!(events.iter().any(|a| a.event.resource_id == "user-000"
        && details(&a.event)["source_digest"] == digest("203.0.113.51").unwrap()));
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
    let events = events_of(closed[0].0, closed.into_iter().next().unwrap().1, &digest);
    assert_eq!(details(&events[0].event)["count"], 2);
    assert_eq!(details(&events[0].event)["minute"], "2023-11-14T22:14:00Z");
    // The next minute is still open; `all` (shutdown) takes it anyway.
    assert!(s.take(at(119), false).is_empty());
    let rest = s.take(at(60), true);
    assert_eq!(rest.len(), 1);
    assert!(s.take(at(1_000), true).is_empty());
}

/// A record whose request began in a minute already written counts in the first open
/// minute: no minute is written twice, so the bound per minute holds.
#[test]
fn a_late_record_counts_in_the_first_minute_not_yet_written() {
    let s = SecurityEvents::new(1);
    s.record(&failed("203.0.113.1"), at(10));
    let first = s.take(at(60), false);
    assert_eq!(first.len(), 1);
    // Its request started at 0:30 but finished after the minute was taken.
    s.record(&failed("203.0.113.2"), at(30));
    let second = s.take(at(120), false);
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].0, first[0].0 + 1);
    // After a shutdown flush (`all`), even the minute then open is closed.
    s.record(&failed("203.0.113.3"), at(130));
    assert_eq!(s.take(at(130), true).len(), 1);
    s.record(&failed("203.0.113.4"), at(131));
    let after = s.take(at(10_000), true);
    assert_eq!(after[0].0, minute_of(at(130)) + 1);
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
    let events = written(&s, at(60));
    assert_eq!(events.len(), 2);
    assert_eq!(details(&events[0].event)["source"], "2001:db8:1:2::/64");
    assert_eq!(details(&events[0].event)["count"], 2);
    assert_eq!(events[1].event.resource_id.len(), 64);
    assert_eq!(details(&events[1].event)["source"], "unknown");
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
