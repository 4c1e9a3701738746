//! H3: the posture report. Every control of the catalogue (`catalogue::CONTROLS`, A1 ... H3)
//! has an entry here: what the code has built of it, and, for a built control, a [`Probe`]
//! registered by the layer that can see it (configuration, store, router) that says whether the
//! control is on, with which settings, and what a check made just now found.
//!
//! The registry refuses a probe for an unknown or unbuilt control and a second probe for one id,
//! and reports a built control without a probe as `fail`: a claim without a check is a defect.
//! A control that is not built reports `not_built`, whatever anyone registers.

pub mod catalogue;
pub mod checks;
mod declarations;
pub mod markdown;
mod registry;

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use serde::Serialize;
use serde_json::Value;

pub use declarations::{Certification, CertificationStatus, Declarations, SubProcessor};
pub use registry::{
    CHECK_DEADLINE, ControlReport, Posture, PostureBuilder, PostureReport, RegistryError, Summary,
};

/// What a self-check concluded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// On, and the check found it working as configured.
    Pass,
    /// Working, but weaker than production needs (off, development-only, degraded, unchecked).
    Warn,
    /// The check found the control not doing what it claims.
    Fail,
    /// Does not apply to this deployment (for example a PostgreSQL check on SQLite).
    NotApplicable,
    /// The code does not implement the control yet.
    NotBuilt,
}

impl Verdict {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pass => "pass",
            Self::Warn => "warn",
            Self::Fail => "fail",
            Self::NotApplicable => "not_applicable",
            Self::NotBuilt => "not_built",
        }
    }
}

/// A self-check's result: the verdict, one sentence of evidence, and the figures behind it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    pub verdict: Verdict,
    pub evidence: String,
    pub figures: Settings,
    /// Whether something was checked at run time. `false` for a control whose behaviour is fixed
    /// in code and has nothing to check live ([`Finding::by_design`]): its tests are the proof.
    pub live: bool,
}

impl Finding {
    fn new(verdict: Verdict, evidence: impl Into<String>) -> Self {
        Self {
            verdict,
            evidence: evidence.into(),
            figures: Settings::new(),
            live: true,
        }
    }

    /// A control whose behaviour is fixed in code, with nothing to check at run time: it passes
    /// by construction, says so (`live: false`), and the page says "built in", not "checked".
    #[must_use]
    pub fn by_design(evidence: impl Into<String>) -> Self {
        Self {
            live: false,
            ..Self::new(Verdict::Pass, evidence)
        }
    }

    #[must_use]
    pub fn pass(evidence: impl Into<String>) -> Self {
        Self::new(Verdict::Pass, evidence)
    }

    #[must_use]
    pub fn warn(evidence: impl Into<String>) -> Self {
        Self::new(Verdict::Warn, evidence)
    }

    #[must_use]
    pub fn fail(evidence: impl Into<String>) -> Self {
        Self::new(Verdict::Fail, evidence)
    }

    #[must_use]
    pub fn not_applicable(evidence: impl Into<String>) -> Self {
        Self::new(Verdict::NotApplicable, evidence)
    }

    /// The worse of two findings (fail over warn over pass); evidence and figures are joined.
    #[must_use]
    pub fn and(self, other: Finding) -> Finding {
        let rank = |v: Verdict| match v {
            Verdict::Fail => 4,
            Verdict::NotBuilt => 3,
            Verdict::Warn => 2,
            Verdict::Pass => 1,
            Verdict::NotApplicable => 0,
        };
        let verdict = if rank(other.verdict) > rank(self.verdict) {
            other.verdict
        } else {
            self.verdict
        };
        let mut figures = self.figures;
        figures.extend(other.figures);
        let evidence = match (self.evidence.is_empty(), other.evidence.is_empty()) {
            (true, _) => other.evidence,
            (_, true) => self.evidence,
            _ => format!("{} {}", self.evidence, other.evidence),
        };
        Finding {
            verdict,
            evidence,
            figures,
            live: self.live || other.live,
        }
    }

    /// Adds a figure (a count, a duration, a version) behind the evidence.
    #[must_use]
    pub fn figure(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.figures.insert(name.to_owned(), value.into());
        self
    }
}

/// Live settings or figures, by name. Secrets never go in: a probe reports that one is set
/// (see [`redacted`]), never its value.
pub type Settings = serde_json::Map<String, Value>;

/// How a secret setting appears in a report: whether it is set, never what it is.
#[must_use]
pub fn redacted(set: bool) -> Value {
    Value::String(if set { "[set, redacted]" } else { "[not set]" }.to_owned())
}

/// A boxed future, as probes return them.
pub type CheckFuture<'a> = Pin<Box<dyn Future<Output = Finding> + Send + 'a>>;

/// One control's live state, registered by the layer that can see it.
pub trait Probe: Send + Sync + fmt::Debug {
    /// The catalogue id this probe reports for (`A1` ... `H3`).
    fn control(&self) -> &'static str;
    /// Whether the control is switched on in this deployment.
    fn enabled(&self) -> bool;
    /// The settings in force, secrets redacted.
    fn settings(&self) -> Settings;
    /// Checks the control now. A check that reads data reads a bounded amount and says so.
    fn check(&self) -> CheckFuture<'_>;
}

/// A probe from settings known at start and a check closure.
pub struct FnProbe<F> {
    control: &'static str,
    enabled: bool,
    settings: Settings,
    check: F,
}

impl<F> fmt::Debug for FnProbe<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FnProbe")
            .field("control", &self.control)
            .field("enabled", &self.enabled)
            .finish_non_exhaustive()
    }
}

impl<F, Fut> FnProbe<F>
where
    F: Fn() -> Fut + Send + Sync,
    Fut: Future<Output = Finding> + Send,
{
    pub fn new(control: &'static str, enabled: bool, settings: Settings, check: F) -> Self {
        Self {
            control,
            enabled,
            settings,
            check,
        }
    }
}

impl<F, Fut> Probe for FnProbe<F>
where
    F: Fn() -> Fut + Send + Sync,
    Fut: Future<Output = Finding> + Send + 'static,
{
    fn control(&self) -> &'static str {
        self.control
    }

    fn enabled(&self) -> bool {
        self.enabled
    }

    fn settings(&self) -> Settings {
        self.settings.clone()
    }

    fn check(&self) -> CheckFuture<'_> {
        Box::pin((self.check)())
    }
}

/// Builds a [`Settings`] map: `settings!{"workers" => 4, "store" => "redis"}`.
#[macro_export]
macro_rules! posture_settings {
    ($($k:expr => $v:expr),* $(,)?) => {{
        #[allow(unused_mut)]
        let mut m = $crate::posture::Settings::new();
        $( m.insert(($k).to_owned(), ::serde_json::json!($v)); )*
        m
    }};
}
