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

/// A report being made, shared by every request waiting for it.
type Run = futures_util::future::Shared<
    futures_util::future::BoxFuture<'static, Option<Arc<PostureReport>>>,
>;

#[derive(Debug, Default)]
enum Slot {
    #[default]
    Empty,
    Ready(Arc<PostureReport>),
    Running(Run),
}

/// The trust page's settings and the report it is currently showing.
#[derive(Debug)]
pub struct TrustPage {
    pub(crate) settings: TrustPageSettings,
    slot: std::sync::Mutex<Slot>,
}

impl TrustPage {
    #[must_use]
    pub fn new(settings: TrustPageSettings) -> Self {
        Self {
            settings,
            slot: std::sync::Mutex::new(Slot::Empty),
        }
    }

    /// The report to show now: the last one while it is younger than the cache period, else a
    /// new one. A new report runs in a task of its own, which every request arriving meanwhile
    /// awaits: a request that goes away (a closed connection, the edge's timeout) leaves the run
    /// going, so no caller can start runs faster than they finish. Age counts from when the run
    /// finished, on the report's own clock (the kernel's), so a run longer than the cache period
    /// still serves a period, and a report stamped in the future (the clock was set back) is
    /// not trusted to be fresh. `None` when the run failed (it panicked).
    pub(crate) async fn report(
        &self,
        posture: &Arc<Posture>,
        clock: &dyn gatehouse_core::Clock,
    ) -> Option<Arc<PostureReport>> {
        use futures_util::FutureExt as _;
        let run = {
            let mut slot = self
                .slot
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            match &*slot {
                Slot::Ready(r) if self.fresh(r, clock.now()) => return Some(Arc::clone(r)),
                Slot::Running(run) => run.clone(),
                Slot::Ready(_) | Slot::Empty => {
                    let posture = Arc::clone(posture);
                    let task = tokio::spawn(async move { Arc::new(posture.report().await) });
                    let run = async move { task.await.ok() }.boxed().shared();
                    *slot = Slot::Running(run.clone());
                    run
                }
            }
        };
        let report = run.await;
        let mut slot = self
            .slot
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if matches!(&*slot, Slot::Running(_)) {
            *slot = match &report {
                Some(r) => Slot::Ready(Arc::clone(r)),
                None => Slot::Empty,
            };
        }
        report
    }

    fn fresh(&self, r: &PostureReport, now: OffsetDateTime) -> bool {
        let finished = r.generated_at + time::Duration::seconds_f64(r.elapsed_ms / 1000.0);
        let age = now - finished;
        age >= time::Duration::ZERO && age < self.settings.cache
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

    fn counting_posture(
        runs: Arc<AtomicUsize>,
        clock: Arc<dyn gatehouse_core::Clock>,
        takes: Duration,
    ) -> Arc<Posture> {
        let probe: Arc<dyn Probe> = Arc::new(FnProbe::new(
            "A1",
            true,
            gatehouse_core::posture::Settings::new(),
            move || {
                runs.fetch_add(1, Ordering::SeqCst);
                async move {
                    tokio::time::sleep(takes).await;
                    Finding::pass("checked")
                }
            },
        ));
        let mut b = PostureBuilder::new().with_deadline(Duration::from_secs(10));
        b.register(probe);
        Arc::new(b.build(clock).unwrap())
    }

    #[tokio::test]
    async fn one_report_serves_the_cache_period_and_concurrent_requests_share_a_run() {
        let start = OffsetDateTime::UNIX_EPOCH + time::Duration::days(20_000);
        let clock = gatehouse_core::FakeClock::at(start);
        let runs = Arc::new(AtomicUsize::new(0));
        let posture = counting_posture(
            Arc::clone(&runs),
            Arc::new(clock.clone()),
            Duration::from_millis(5),
        );
        let page = TrustPage::new(TrustPageSettings {
            cache: Duration::from_secs(30),
            ..TrustPageSettings::default()
        });
        let many: Vec<_> =
            futures_util::future::join_all((0..8).map(|_| page.report(&posture, &clock)))
                .await
                .into_iter()
                .map(Option::unwrap)
                .collect();
        assert_eq!(
            runs.load(Ordering::SeqCst),
            1,
            "eight requests at once, one run"
        );
        assert!(many.iter().all(|r| Arc::ptr_eq(r, &many[0])));
        // Age counts from the run's end (a few milliseconds after its start).
        clock.advance(time::Duration::seconds(29));
        let same = page.report(&posture, &clock).await.unwrap();
        assert!(Arc::ptr_eq(&same, &many[0]));
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        clock.advance(time::Duration::seconds(2));
        let fresh = page.report(&posture, &clock).await.unwrap();
        assert_eq!(
            runs.load(Ordering::SeqCst),
            2,
            "the period is over: checked again"
        );
        assert_eq!(fresh.generated_at, start + time::Duration::seconds(31));
        // A report from the future (the clock went back) is not reused.
        let earlier = gatehouse_core::FakeClock::at(start);
        let again = page.report(&posture, &earlier).await.unwrap();
        assert_eq!(runs.load(Ordering::SeqCst), 3);
        assert!(!Arc::ptr_eq(&again, &fresh));
    }

    #[tokio::test]
    async fn a_request_that_goes_away_leaves_its_run_going_for_the_next() {
        let clock = gatehouse_core::FakeClock::at(
            OffsetDateTime::UNIX_EPOCH + time::Duration::days(20_000),
        );
        let runs = Arc::new(AtomicUsize::new(0));
        let posture = counting_posture(
            Arc::clone(&runs),
            Arc::new(clock.clone()),
            Duration::from_millis(200),
        );
        let page = TrustPage::new(TrustPageSettings::default());
        // Ten callers each give up (a closed connection, the edge's timeout) long before the
        // run ends; they all wait on the one run, which keeps going without them.
        for _ in 0..10 {
            let gave_up =
                tokio::time::timeout(Duration::from_millis(5), page.report(&posture, &clock)).await;
            assert!(gave_up.is_err());
        }
        let report = page.report(&posture, &clock).await.unwrap();
        assert_eq!(
            runs.load(Ordering::SeqCst),
            1,
            "one run, however many callers left"
        );
        assert_eq!(report.summary.pass, 1);
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
        let posture = counting_posture(
            Arc::clone(&runs),
            Arc::clone(&clock) as Arc<dyn gatehouse_core::Clock>,
            Duration::from_millis(5),
        );
        let page = TrustPage::new(TrustPageSettings::default());
        let many: Vec<_> =
            futures_util::future::join_all((0..16).map(|_| page.report(&posture, clock.as_ref())))
                .await
                .into_iter()
                .map(Option::unwrap)
                .collect();
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
