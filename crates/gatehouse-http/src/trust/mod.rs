//! H3's public face: the trust page (`GET /trust`, `GET /trust.md`), every control's status in
//! plain language beside the operator's declarations, rendered from a posture report.
//!
//! The page is public, so it must not let anyone run the self-checks at request rate: one report
//! serves every request for the cache period, and requests that arrive while it is being made
//! wait for that one run instead of starting their own.

mod html;
mod markdown;

use std::sync::Arc;
use std::time::Duration;

use gatehouse_core::posture::{Declarations, Posture, PostureReport, Verdict};
use time::OffsetDateTime;

pub(crate) use html::{page as html_page, policy as html_policy};
pub(crate) use markdown::page as markdown_page;

/// How long one report serves the page unless configured otherwise.
pub const DEFAULT_CACHE: Duration = Duration::from_secs(60);

/// What the trust page shows besides the report, and how long a report is reused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustPageSettings {
    /// The operator's statements, shown as declarations, never as checked facts.
    pub declarations: Declarations,
    /// How long one report answers every request for the page.
    pub cache: Duration,
}

impl Default for TrustPageSettings {
    fn default() -> Self {
        Self {
            declarations: Declarations::default(),
            cache: DEFAULT_CACHE,
        }
    }
}

/// The trust page's settings and the report it is currently showing.
#[derive(Debug)]
pub struct TrustPage {
    pub(crate) settings: TrustPageSettings,
    /// Held across a run, so concurrent requests share it.
    last: tokio::sync::Mutex<Option<Arc<PostureReport>>>,
}

impl TrustPage {
    #[must_use]
    pub fn new(settings: TrustPageSettings) -> Self {
        Self {
            settings,
            last: tokio::sync::Mutex::new(None),
        }
    }

    /// The report to show now: the last one while it is younger than the cache period, else a
    /// new one. Age is measured on the report's own clock (the kernel's), so a report stamped in
    /// the future (the clock was set back) is not trusted to be fresh. The time is read once the
    /// lock is held: a request that waited for another's run then finds that run's report
    /// fresh, rather than older than itself, so requests arriving together share one run.
    pub(crate) async fn report(
        &self,
        posture: &Posture,
        clock: &dyn gatehouse_core::Clock,
    ) -> Arc<PostureReport> {
        let mut last = self.last.lock().await;
        let now = clock.now();
        if let Some(r) = last.as_ref() {
            let age = now - r.generated_at;
            if age >= time::Duration::ZERO && age < self.settings.cache {
                return Arc::clone(r);
            }
        }
        let fresh = Arc::new(posture.report().await);
        *last = Some(Arc::clone(&fresh));
        fresh
    }
}

/// A verdict as a reader of the page reads it.
pub(crate) fn plain(v: Verdict) -> &'static str {
    match v {
        Verdict::Pass => "On and checked",
        Verdict::Warn => "Needs attention",
        Verdict::Fail => "Check failed",
        Verdict::NotApplicable => "Not applicable here",
        Verdict::NotBuilt => "Not built yet",
    }
}

/// A control's status on the public page: the verdict in plain words, and for a control the
/// code builds only in part, that it is partial. The self-check's evidence is not shown: it is
/// for operators (`/admin/v1/posture`), and names counts, roles and key sources an anonymous
/// reader has no need of.
pub(crate) fn status(c: &gatehouse_core::posture::ControlReport) -> String {
    let verdict = if c.verdict == Verdict::Pass && !c.live_check {
        "Built in"
    } else {
        plain(c.verdict)
    };
    match c.built {
        "partial" => format!("{verdict} (partly built)"),
        _ => verdict.to_owned(),
    }
}

/// `2026-05-01 12:00:00 UTC`.
pub(crate) fn utc(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// The report's summary in one sentence.
pub(crate) fn summary_sentence(r: &PostureReport) -> String {
    let s = &r.summary;
    format!(
        "{} controls: {} on and checked, {} need attention, {} failed their check, {} not \
         applicable here, {} not built yet.",
        r.controls.len(),
        s.pass,
        s.warn,
        s.fail,
        s.not_applicable,
        s.not_built
    )
}

/// Whether the operator declared anything at all.
pub(crate) fn declares_anything(d: &Declarations) -> bool {
    d.service_name.is_some()
        || d.contact.is_some()
        || d.data_residency.is_some()
        || d.last_penetration_test.is_some()
        || !d.certifications.is_empty()
        || !d.sub_processors.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;
    use gatehouse_core::posture::{Finding, FnProbe, PostureBuilder, Probe};
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn counting_posture(runs: Arc<AtomicUsize>, clock: gatehouse_core::FakeClock) -> Posture {
        let probe: Arc<dyn Probe> = Arc::new(FnProbe::new(
            "A1",
            true,
            gatehouse_core::posture::Settings::new(),
            move || {
                runs.fetch_add(1, Ordering::SeqCst);
                async {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    Finding::pass("checked")
                }
            },
        ));
        let mut b = PostureBuilder::new();
        b.register(probe);
        b.build(Arc::new(clock)).unwrap()
    }

    #[tokio::test]
    async fn one_report_serves_the_cache_period_and_concurrent_requests_share_a_run() {
        let start = OffsetDateTime::UNIX_EPOCH + time::Duration::days(20_000);
        let clock = gatehouse_core::FakeClock::at(start);
        let runs = Arc::new(AtomicUsize::new(0));
        let posture = counting_posture(Arc::clone(&runs), clock.clone());
        let page = TrustPage::new(TrustPageSettings {
            cache: Duration::from_secs(30),
            ..TrustPageSettings::default()
        });
        let many =
            futures_util::future::join_all((0..8).map(|_| page.report(&posture, &clock))).await;
        assert_eq!(
            runs.load(Ordering::SeqCst),
            1,
            "eight requests at once, one run"
        );
        assert!(many.iter().all(|r| Arc::ptr_eq(r, &many[0])));
        clock.advance(time::Duration::seconds(29));
        let same = page.report(&posture, &clock).await;
        assert!(Arc::ptr_eq(&same, &many[0]));
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        clock.advance(time::Duration::seconds(1));
        let fresh = page.report(&posture, &clock).await;
        assert_eq!(
            runs.load(Ordering::SeqCst),
            2,
            "the period is over: checked again"
        );
        assert_eq!(fresh.generated_at, start + time::Duration::seconds(30));
        // A report from the future (the clock went back) is not reused.
        let earlier = gatehouse_core::FakeClock::at(start);
        let again = page.report(&posture, &earlier).await;
        assert_eq!(runs.load(Ordering::SeqCst), 3);
        assert!(!Arc::ptr_eq(&again, &fresh));
    }

    /// A clock that moves on a millisecond at every reading, as a real one does between a
    /// request's arrival and the report's start.
    #[derive(Debug)]
    struct Ticking(std::sync::Mutex<OffsetDateTime>);

    impl gatehouse_core::Clock for Ticking {
        fn now(&self) -> OffsetDateTime {
            let mut t = self.0.lock().unwrap();
            *t += time::Duration::milliseconds(1);
            *t
        }
    }

    #[tokio::test]
    async fn requests_waiting_for_a_run_share_it_on_a_clock_that_moves() {
        let start = OffsetDateTime::UNIX_EPOCH + time::Duration::days(20_000);
        let clock = Arc::new(Ticking(std::sync::Mutex::new(start)));
        let runs = Arc::new(AtomicUsize::new(0));
        let probe: Arc<dyn Probe> = {
            let runs = Arc::clone(&runs);
            Arc::new(FnProbe::new("A1", true, Default::default(), move || {
                runs.fetch_add(1, Ordering::SeqCst);
                async {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    Finding::pass("checked")
                }
            }))
        };
        let mut b = PostureBuilder::new();
        b.register(probe);
        let posture = b
            .build(Arc::clone(&clock) as Arc<dyn gatehouse_core::Clock>)
            .unwrap();
        let page = TrustPage::new(TrustPageSettings::default());
        let many =
            futures_util::future::join_all((0..16).map(|_| page.report(&posture, clock.as_ref())))
                .await;
        assert_eq!(
            runs.load(Ordering::SeqCst),
            1,
            "sixteen requests at once, one run"
        );
        assert!(many.iter().all(|r| Arc::ptr_eq(r, &many[0])));
    }

    #[test]
    fn times_are_shown_in_utc() {
        let t = OffsetDateTime::UNIX_EPOCH + time::Duration::seconds(1_777_777_777);
        let t = t.to_offset(time::UtcOffset::from_hms(2, 0, 0).unwrap());
        assert_eq!(utc(t), "2026-05-03 03:09:37 UTC");
    }
}
