//! `GET /v1/mail/domains/{domain}/check` (F4): a sending domain's SPF, DKIM and DMARC records,
//! each with a verdict and what to change (`mail.check_domain`).

use axum::Json;
use axum::extract::{Path, State};
use gatehouse_core::mail::{DomainReport, Finding, Verdict};
use serde::Serialize;

use crate::auth::{OrgCaller, OrgScoped};
use crate::problem::{ApiError, Problem};
use crate::state::AppState;

#[derive(Debug, Clone, Copy, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum CheckVerdict {
    Pass,
    Warn,
    Fail,
}

impl From<Verdict> for CheckVerdict {
    fn from(v: Verdict) -> Self {
        match v {
            Verdict::Pass => Self::Pass,
            Verdict::Warn => Self::Warn,
            Verdict::Fail => Self::Fail,
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct RecordCheck {
    /// `spf`, `dkim` or `dmarc`.
    check: &'static str,
    verdict: CheckVerdict,
    /// The DNS name the record was looked for at.
    name: String,
    /// The record found (the first, when several are published).
    record: Option<String>,
    /// What is right, or what to change.
    advice: String,
}

impl From<Finding> for RecordCheck {
    fn from(f: Finding) -> Self {
        Self {
            check: f.check,
            verdict: f.verdict.into(),
            name: f.name,
            record: f.record,
            advice: f.advice,
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct DomainCheck {
    /// The domain checked, lower-cased.
    domain: String,
    /// The worst of the three.
    verdict: CheckVerdict,
    /// SPF, DKIM and DMARC, in that order.
    checks: Vec<RecordCheck>,
}

impl From<DomainReport> for DomainCheck {
    fn from(r: DomainReport) -> Self {
        Self {
            domain: r.domain,
            verdict: r.verdict.into(),
            checks: r.checks.into_iter().map(RecordCheck::from).collect(),
        }
    }
}

/// Checks a sending domain's SPF (the configured sending service included, ending with `-all`
/// or `~all`, at most 10 DNS lookups), DKIM (a key at the configured selector, its size, the key
/// Gatehouse signs with) and DMARC (policy, alignment, `rua`) records.
#[utoipa::path(get, path = "/v1/mail/domains/{domain}/check", tag = "mail", security(("bearer" = [])),
    params(OrgScoped, ("domain" = String, Path, max_length = 254, description = "The domain (ASCII; IDNs in their xn-- form)")),
    responses(
        (status = 200, description = "The verdicts (a failing domain is still a 200)", body = DomainCheck),
        (status = 403, description = "`forbidden`: the caller lacks `mail.check_domain`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`: not a domain name, or a special-use or private one; no query was made", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`overloaded`: four checks are already running here; retry after `Retry-After`", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn check(
    State(state): State<AppState>,
    OrgCaller(call): OrgCaller,
    Path(domain): Path<String>,
) -> Result<Json<DomainCheck>, ApiError> {
    let report = state.kernel.check_mail_domain(&call, &domain).await?;
    Ok(Json(report.into()))
}
