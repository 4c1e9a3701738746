//! H3 for operators: `GET /admin/v1/posture`, every control's live settings and a self-check
//! made for this request (no cache: an operator asking wants it now, and the admin rate-limit
//! class bounds how often).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use gatehouse_core::posture::{ControlReport, Posture, PostureReport, Verdict};
use serde::Serialize;

use crate::auth::OperatorCaller;
use crate::problem::ApiError;
use crate::state::AppState;

/// What a control's self-check concluded.
#[derive(Debug, Clone, Copy, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum VerdictView {
    /// On, and the check found it working as configured.
    Pass,
    /// Working, but weaker than production needs (off, development-only, degraded, unchecked).
    Warn,
    /// The check found the control not doing what it claims.
    Fail,
    /// Does not apply to this deployment.
    NotApplicable,
    /// The code does not implement the control yet.
    NotBuilt,
}

impl From<Verdict> for VerdictView {
    fn from(v: Verdict) -> Self {
        match v {
            Verdict::Pass => Self::Pass,
            Verdict::Warn => Self::Warn,
            Verdict::Fail => Self::Fail,
            Verdict::NotApplicable => Self::NotApplicable,
            Verdict::NotBuilt => Self::NotBuilt,
        }
    }
}

/// One control of the catalogue, as this deployment has it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct ControlView {
    /// The catalogue id, `A1` ... `H3`.
    id: &'static str,
    title: &'static str,
    /// How far the code has got with the control: `done`, `partial` or `not_built`.
    built: &'static str,
    /// What is missing or just outside the control, when the catalogue says.
    built_note: Option<&'static str>,
    /// The control's promise, in plain language.
    promise: &'static str,
    /// What the self-check does.
    self_check: &'static str,
    /// Whether it is switched on here.
    enabled: bool,
    /// The settings in force, by name; secrets appear only as `[set, redacted]` or `[not set]`.
    #[schema(value_type = Object)]
    settings: gatehouse_core::posture::Settings,
    verdict: VerdictView,
    /// Whether the check looked at anything at run time; `false` for a control whose behaviour
    /// is fixed in code (its `pass` is by construction, shown by its tests).
    live_check: bool,
    /// What the self-check found, in a sentence.
    evidence: String,
    /// The figures behind the evidence (counts, ages, versions), by name.
    #[schema(value_type = Object)]
    figures: gatehouse_core::posture::Settings,
    /// How long the self-check took, in milliseconds.
    check_ms: f64,
}

impl From<ControlReport> for ControlView {
    fn from(c: ControlReport) -> Self {
        Self {
            id: c.id,
            title: c.title,
            built: c.built,
            built_note: c.built_note,
            promise: c.promise,
            self_check: c.self_check,
            enabled: c.enabled,
            settings: c.settings,
            verdict: c.verdict.into(),
            live_check: c.live_check,
            evidence: c.evidence,
            figures: c.figures,
            check_ms: c.check_ms,
        }
    }
}

/// How many controls reached each verdict.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct SummaryView {
    pass: usize,
    warn: usize,
    fail: usize,
    not_applicable: usize,
    not_built: usize,
}

/// Every control of the catalogue, each checked for this request.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct PostureView {
    /// When the checks started (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    generated_at: time::OffsetDateTime,
    /// How long the whole report took, in milliseconds.
    elapsed_ms: f64,
    summary: SummaryView,
    /// In catalogue order, each control exactly once.
    controls: Vec<ControlView>,
}

impl From<PostureReport> for PostureView {
    fn from(r: PostureReport) -> Self {
        Self {
            generated_at: r.generated_at,
            elapsed_ms: r.elapsed_ms,
            summary: SummaryView {
                pass: r.summary.pass,
                warn: r.summary.warn,
                fail: r.summary.fail,
                not_applicable: r.summary.not_applicable,
                not_built: r.summary.not_built,
            },
            controls: r.controls.into_iter().map(ControlView::from).collect(),
        }
    }
}

/// The registry, or 503 while the application is still assembling it.
pub(crate) fn registry(state: &AppState) -> Result<&Arc<Posture>, ApiError> {
    state.posture.get().ok_or_else(|| ApiError {
        retry_after_secs: Some(1),
        ..ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "posture_unavailable",
            "the posture registry is not assembled yet; retry shortly",
        )
    })
}

/// Every control's live settings and a self-check made now (H3).
#[utoipa::path(get, path = "/admin/v1/posture", tag = "admin", security(("bearer" = [])),
    responses(
        (status = 200, description = "Every control of the catalogue, checked now", body = PostureView),
        (status = 503, description = "`posture_unavailable`: the server is still starting and has no registry yet; `Retry-After` given", body = crate::problem::Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn report(
    State(state): State<AppState>,
    OperatorCaller(_call): OperatorCaller,
) -> Result<Json<PostureView>, ApiError> {
    let posture = registry(&state)?;
    Ok(Json(posture.report().await.into()))
}
