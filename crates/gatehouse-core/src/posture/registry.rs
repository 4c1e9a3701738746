//! The registry of probes and the report it makes: every check at once, each within a deadline,
//! so one slow check cannot hold the report (it reports `warn`, never `pass`, when it runs out).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use time::OffsetDateTime;

use super::catalogue::{self, Built};
use super::{Finding, Probe, Settings, Verdict};
use crate::Clock;

/// How long one self-check may take before the report goes on without it. The report runs the
/// checks at once, so it answers within about this long whatever the deployment's size.
pub const CHECK_DEADLINE: Duration = Duration::from_millis(40);

/// A registration the registry refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    #[error("a probe names control {0}, which is not in the catalogue")]
    Unknown(String),
    #[error("control {0} has two probes")]
    Duplicate(&'static str),
    #[error("control {0} is not built, so it cannot have a probe that might say it passes")]
    NotBuilt(&'static str),
}

/// Collects probes from every layer; `build` checks them against the catalogue.
#[derive(Debug, Default)]
pub struct PostureBuilder {
    probes: Vec<Arc<dyn Probe>>,
    deadline: Option<Duration>,
}

impl PostureBuilder {
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a probe (checked against the catalogue by `build`).
    pub fn register(&mut self, probe: Arc<dyn Probe>) -> &mut Self {
        self.probes.push(probe);
        self
    }

    /// Adds several probes.
    pub fn register_all(&mut self, probes: impl IntoIterator<Item = Arc<dyn Probe>>) -> &mut Self {
        self.probes.extend(probes);
        self
    }

    /// Overrides [`CHECK_DEADLINE`] (the application passes `posture.check_deadline_ms`).
    #[must_use]
    pub fn with_deadline(mut self, deadline: Duration) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// The registry, or the first registration that does not match the catalogue.
    pub fn build(self, clock: Arc<dyn Clock>) -> Result<Posture, RegistryError> {
        let mut probes: BTreeMap<&'static str, Arc<dyn Probe>> = BTreeMap::new();
        for p in self.probes {
            let control = catalogue::find(p.control())
                .ok_or_else(|| RegistryError::Unknown(p.control().to_owned()))?;
            if !control.built.is_built() {
                return Err(RegistryError::NotBuilt(control.id));
            }
            if probes.insert(control.id, p).is_some() {
                return Err(RegistryError::Duplicate(control.id));
            }
        }
        Ok(Posture {
            probes,
            clock,
            deadline: self.deadline.unwrap_or(CHECK_DEADLINE),
        })
    }
}

/// Every control's probe, ready to report.
#[derive(Debug)]
pub struct Posture {
    probes: BTreeMap<&'static str, Arc<dyn Probe>>,
    clock: Arc<dyn Clock>,
    deadline: Duration,
}

/// One control in a report.
#[derive(Debug, Clone, Serialize)]
pub struct ControlReport {
    pub id: &'static str,
    pub title: &'static str,
    /// `done`, `partial` or `not_built`: how far the code has got (from the catalogue).
    pub built: &'static str,
    /// What is missing or just outside the control, when the catalogue says.
    pub built_note: Option<&'static str>,
    /// The control's promise, in plain language.
    pub promise: &'static str,
    /// What the self-check does (from the catalogue).
    pub self_check: &'static str,
    /// Whether it is switched on here.
    pub enabled: bool,
    /// The settings in force, secrets redacted.
    pub settings: Settings,
    pub verdict: Verdict,
    /// Whether the check looked at anything at run time (`false`: behaviour fixed in code).
    pub live_check: bool,
    /// What the self-check found, in a sentence.
    pub evidence: String,
    pub figures: Settings,
    /// How long the self-check took, in milliseconds.
    pub check_ms: f64,
}

/// Counts of verdicts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub pass: usize,
    pub warn: usize,
    pub fail: usize,
    pub not_applicable: usize,
    pub not_built: usize,
}

/// Every control's state, checked now.
#[derive(Debug, Clone, Serialize)]
pub struct PostureReport {
    #[serde(with = "time::serde::rfc3339")]
    pub generated_at: OffsetDateTime,
    /// How long the whole report took, in milliseconds.
    pub elapsed_ms: f64,
    pub summary: Summary,
    pub controls: Vec<ControlReport>,
}

impl PostureReport {
    /// The control with this id.
    #[must_use]
    pub fn control(&self, id: &str) -> Option<&ControlReport> {
        self.controls.iter().find(|c| c.id == id)
    }
}

impl Posture {
    /// Built controls that no probe reports on: each shows `fail` in a report, and the
    /// application's own assembly is tested to leave none.
    #[must_use]
    pub fn unprobed(&self) -> Vec<&'static str> {
        catalogue::all()
            .filter(|c| c.built.is_built() && !self.probes.contains_key(c.id))
            .map(|c| c.id)
            .collect()
    }

    /// Runs every self-check at once, each within the deadline, and reports every control of
    /// the catalogue in its order.
    pub async fn report(&self) -> PostureReport {
        let started = tokio::time::Instant::now();
        let generated_at = self.clock.now();
        let checks = catalogue::all().map(|c| async move {
            let Some(probe) = self.probes.get(c.id) else {
                let finding = if c.built.is_built() {
                    Finding::fail("no self-check is registered for this control")
                } else {
                    Finding {
                        verdict: Verdict::NotBuilt,
                        evidence: "not built yet".to_owned(),
                        figures: Settings::new(),
                        live: false,
                    }
                };
                return (c, false, Settings::new(), finding, 0.0);
            };
            let t = tokio::time::Instant::now();
            // In a task of its own, left to finish when the deadline passes: cancelling a check
            // mid-query would make the pool close that connection, and the next report would
            // pay for new ones (and time out in turn).
            let running = {
                let probe = Arc::clone(probe);
                tokio::spawn(async move { probe.check().await })
            };
            let finding = match tokio::time::timeout(self.deadline, running).await {
                Ok(Ok(f)) => f,
                Ok(Err(_)) => Finding::fail("the self-check failed to run (it panicked)"),
                Err(_) => Finding::warn(format!(
                    "the self-check did not finish within {} ms; nothing was concluded",
                    self.deadline.as_millis()
                )),
            };
            let ms = t.elapsed().as_secs_f64() * 1000.0;
            (c, probe.enabled(), probe.settings(), finding, ms)
        });
        let done = futures_util::future::join_all(checks).await;
        let mut summary = Summary::default();
        let controls = done
            .into_iter()
            .map(|(c, enabled, settings, finding, check_ms)| {
                let verdict = if matches!(c.built, Built::NotBuilt) {
                    Verdict::NotBuilt
                } else {
                    finding.verdict
                };
                match verdict {
                    Verdict::Pass => summary.pass += 1,
                    Verdict::Warn => summary.warn += 1,
                    Verdict::Fail => summary.fail += 1,
                    Verdict::NotApplicable => summary.not_applicable += 1,
                    Verdict::NotBuilt => summary.not_built += 1,
                }
                ControlReport {
                    id: c.id,
                    title: c.title,
                    built: c.built.as_str(),
                    built_note: c.built.note(),
                    promise: c.promise,
                    self_check: c.self_check,
                    enabled,
                    settings,
                    verdict,
                    live_check: finding.live,
                    evidence: finding.evidence,
                    figures: finding.figures,
                    check_ms: (check_ms * 1000.0).round() / 1000.0,
                }
            })
            .collect();
        PostureReport {
            generated_at,
            elapsed_ms: (started.elapsed().as_secs_f64() * 1_000_000.0).round() / 1000.0,
            summary,
            controls,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::posture::FnProbe;
    use crate::posture_settings;

    fn probe(id: &'static str, f: Finding) -> Arc<dyn Probe> {
        Arc::new(FnProbe::new(
            id,
            true,
            posture_settings! {"k" => 1},
            move || {
                let f = f.clone();
                async move { f }
            },
        ))
    }

    fn clock() -> Arc<dyn Clock> {
        Arc::new(crate::FakeClock::at(
            OffsetDateTime::UNIX_EPOCH + time::Duration::days(20_000),
        ))
    }

    #[test]
    fn unknown_duplicate_and_unbuilt_registrations_are_refused() {
        let mut b = PostureBuilder::new();
        b.register(probe("Z9", Finding::pass("x")));
        assert_eq!(
            b.build(clock()).err(),
            Some(RegistryError::Unknown("Z9".into()))
        );
        let mut b = PostureBuilder::new();
        b.register(probe("A1", Finding::pass("x")));
        b.register(probe("A1", Finding::pass("y")));
        assert_eq!(b.build(clock()).err(), Some(RegistryError::Duplicate("A1")));
        let not_built = catalogue::all().find(|c| !c.built.is_built()).map(|c| c.id);
        if let Some(id) = not_built {
            let mut b = PostureBuilder::new();
            b.register(probe(id, Finding::pass("x")));
            assert_eq!(b.build(clock()).err(), Some(RegistryError::NotBuilt(id)));
        }
    }

    #[tokio::test]
    async fn every_control_is_reported_once_and_an_unprobed_built_one_fails() {
        let mut b = PostureBuilder::new();
        b.register(probe("A1", Finding::pass("hashes fine").figure("below", 0)));
        let posture = b.build(clock()).unwrap();
        let report = posture.report().await;
        assert_eq!(report.controls.len(), catalogue::all().count());
        let a1 = report.control("A1").unwrap();
        assert_eq!((a1.verdict, a1.enabled), (Verdict::Pass, true));
        assert_eq!(a1.figures["below"], 0);
        assert_eq!(a1.settings["k"], 1);
        let a2 = report.control("A2").unwrap();
        assert_eq!(a2.verdict, Verdict::Fail);
        assert!(posture.unprobed().contains(&"A2"));
        for c in catalogue::all().filter(|c| !c.built.is_built()) {
            assert_eq!(report.control(c.id).unwrap().verdict, Verdict::NotBuilt);
        }
        let s = &report.summary;
        assert_eq!(
            s.pass + s.warn + s.fail + s.not_applicable + s.not_built,
            report.controls.len()
        );
    }

    #[tokio::test]
    async fn a_check_past_its_deadline_warns_and_the_report_does_not_wait_for_it() {
        let slow: Arc<dyn Probe> = Arc::new(FnProbe::new("E1", true, Settings::new(), || async {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Finding::pass("never reached")
        }));
        let mut b = PostureBuilder::new().with_deadline(Duration::from_millis(40));
        b.register(slow);
        b.register(probe("A1", Finding::pass("ok")));
        let posture = b.build(clock()).unwrap();
        let started = tokio::time::Instant::now();
        let report = posture.report().await;
        assert!(started.elapsed() < Duration::from_secs(1));
        let e1 = report.control("E1").unwrap();
        assert_eq!(e1.verdict, Verdict::Warn);
        assert!(
            e1.evidence.contains("did not finish within 40 ms"),
            "{}",
            e1.evidence
        );
        assert_eq!(report.control("A1").unwrap().verdict, Verdict::Pass);
    }

    #[tokio::test]
    async fn a_control_fixed_in_code_says_its_pass_was_not_checked_live() {
        let mut b = PostureBuilder::new();
        b.register(probe("C3", Finding::by_design("levels are fixed in code")));
        b.register(probe("A1", Finding::pass("hashes checked")));
        let r = b.build(clock()).unwrap().report().await;
        let c3 = r.control("C3").unwrap();
        assert_eq!((c3.verdict, c3.live_check), (Verdict::Pass, false));
        assert!(r.control("A1").unwrap().live_check);
        // Joined with a live check, the result was checked live.
        assert!(Finding::pass("a").and(Finding::by_design("b")).live);
        assert!(!Finding::by_design("a").and(Finding::by_design("b")).live);
    }

    #[test]
    fn the_worse_finding_wins_when_two_are_joined() {
        let f = Finding::pass("a")
            .figure("x", 1)
            .and(Finding::fail("b").figure("y", 2));
        assert_eq!(f.verdict, Verdict::Fail);
        assert_eq!(f.evidence, "a b");
        assert_eq!(
            (f.figures["x"].clone(), f.figures["y"].clone()),
            (1.into(), 2.into())
        );
        let f = Finding::not_applicable("").and(Finding::warn("w"));
        assert_eq!(f.verdict, Verdict::Warn);
    }
}
