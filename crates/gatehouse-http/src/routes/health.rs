//! E4: liveness (the process answers) and readiness (it can serve: store reachable, keys loaded).
//! Readiness lists every dependency; only the store, the keys and the hashing pool make it fail.
//! Redis (rate limits, revocation fan-out), mail and the OTLP collector are reported with `ok: false` when degraded
//! but never turn the probe to 503: the process keeps serving without them.
//!
//! The public probe names only the checks that decide readiness (store, keys, hashing) and says
//! ok or not, nothing more: a detail such as the mail outbox's depth moved by one when a reset
//! was requested for a registered address, and even the mail check's ok flag could flip on it
//! during a relay outage, which made the probe an oracle for who has an account. Operators read
//! every check with its detail at `/admin/v1/health`; the metrics carry the same figures.
//!
//! Both list the leased background jobs (`jobs`): whether this instance holds each one's lease,
//! which instance does (a random instance id), and when this instance last ran it with what
//! outcome, ok or failed only (how much a batch did follows what users do). Jobs never make the
//! process unready: another instance may be running them.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;

use crate::auth::OperatorCaller;
use crate::state::AppState;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Live {
    status: &'static str,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct CheckView {
    name: &'static str,
    ok: bool,
    detail: String,
}

/// The checks whose failure makes the process not ready: the only ones the public probe shows.
const DECIDING: [&str; 3] = ["store", "keys", "password_hashing"];

/// A check as the public probe shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct CheckStatus {
    name: &'static str,
    ok: bool,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Ready {
    /// `ready`, `not_ready`, or `sealed` (D2: waiting for operators' shares of the master key).
    status: &'static str,
    checks: Vec<CheckStatus>,
    /// The leased background jobs (empty while sealed).
    jobs: Vec<JobView>,
}

/// A leased background job as this instance sees it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub(crate) struct JobView {
    /// `lifecycle`, `reencryption` or `checkpoints`.
    name: &'static str,
    /// Whether this instance holds the job's lease, and so runs it.
    held: bool,
    /// The instance holding the lease (a random instance id), if any instance does.
    holder: Option<String>,
    /// When this instance last started the job, if it ever did.
    #[serde(with = "time::serde::rfc3339::option")]
    last_run: Option<time::OffsetDateTime>,
    /// How that run ended: `ok` or `failed`.
    last_outcome: Option<&'static str>,
}

fn job_views(jobs: Vec<gatehouse_core::jobs::JobStatus>) -> Vec<JobView> {
    jobs.into_iter()
        .map(|j| JobView {
            name: j.name,
            held: j.held,
            holder: j.holder,
            last_run: j.last_run,
            last_outcome: j.last_outcome.map(|o| o.as_str()),
        })
        .collect()
}

/// A sealed server's readiness: not ready, and why.
pub(crate) async fn sealed_ready() -> (StatusCode, Json<Ready>) {
    let body = Ready {
        status: "sealed",
        checks: vec![CheckStatus {
            name: "keys",
            ok: false,
        }],
        jobs: Vec::new(),
    };
    (StatusCode::SERVICE_UNAVAILABLE, Json(body))
}

/// Readiness with each check's detail, for operators.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct ReadyDetails {
    /// `ready` or `not_ready`.
    status: &'static str,
    checks: Vec<CheckView>,
    /// The leased background jobs.
    jobs: Vec<JobView>,
}

/// The process is up and answering.
#[utoipa::path(get, path = "/health/live", tag = "health",
    responses((status = 200, description = "Alive", body = Live)))]
pub(crate) async fn live() -> Json<Live> {
    Json(Live { status: "ok" })
}

/// Every dependency serving needs, checked now.
#[utoipa::path(get, path = "/health/ready", tag = "health",
    responses(
        (status = 200, description = "Ready to serve", body = Ready),
        (status = 503, description = "A dependency serving needs is failing", body = Ready),
    ))]
pub(crate) async fn ready(State(state): State<AppState>) -> (StatusCode, Json<Ready>) {
    let (status, details) = readiness(&state).await;
    let body = Ready {
        status: details.status,
        checks: details
            .checks
            .into_iter()
            .filter(|c| DECIDING.contains(&c.name))
            .map(|c| CheckStatus {
                name: c.name,
                ok: c.ok,
            })
            .collect(),
        jobs: details.jobs,
    };
    (status, Json(body))
}

/// Readiness with every check's detail (the outbox's depth, the rate-limit store, ...). A report
/// for operators, not a probe: always 200, with `status` saying ready or not.
#[utoipa::path(get, path = "/admin/v1/health", tag = "admin", security(("bearer" = [])),
    responses(
        (status = 200, description = "Every check with its detail", body = ReadyDetails),
        (status = 403, description = "Not an operator token", body = crate::problem::Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn details(
    State(state): State<AppState>,
    OperatorCaller(_call): OperatorCaller,
) -> Json<ReadyDetails> {
    let (_, details) = readiness(&state).await;
    Json(details)
}

async fn readiness(state: &AppState) -> (StatusCode, ReadyDetails) {
    let r = state.kernel.readiness().await;
    let status = if r.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let jobs = job_views(r.jobs);
    let mut checks: Vec<CheckView> = r
        .checks
        .into_iter()
        .map(|c| CheckView {
            name: c.name,
            ok: c.ok,
            detail: c.detail,
        })
        .collect();
    // Rate limits never make serving impossible: a Redis that went away is reported, not fatal.
    if let Some(limits) = &state.rate_limits {
        let kind = limits.store.kind();
        checks.push(CheckView {
            name: "rate_limits",
            ok: kind != "memory-fallback",
            detail: match kind {
                "memory-fallback" => {
                    "Redis unreachable: limiting in this process until it returns".to_owned()
                }
                other => format!("store: {other}"),
            },
        });
    }
    let lockouts = state.kernel.lockout_store_kind();
    if lockouts != "memory" {
        checks.push(CheckView {
            name: "lockouts",
            ok: lockouts != "memory-fallback",
            detail: match lockouts {
                "memory-fallback" => {
                    "Redis unreachable: counting sign-in failures in this process until it returns"
                        .to_owned()
                }
                other => format!("store: {other}"),
            },
        });
    }
    if state.revocation_fanout {
        checks.push(feature_check(
            "revocation_fanout",
            "subscribed",
            "Redis unreachable: other instances' revocations arrive only through the session cache age bound",
        ));
    }
    if state.otlp {
        checks.push(feature_check(
            "otlp",
            "exporting",
            "the collector is unreachable: spans are being dropped",
        ));
    }
    let body = ReadyDetails {
        status: if r.ready { "ready" } else { "not_ready" },
        checks,
        jobs,
    };
    (status, body)
}

/// A check for a feature whose state the `gatehouse_degraded{feature}` gauge carries.
fn feature_check(feature: &'static str, up: &str, down: &str) -> CheckView {
    let degraded = gatehouse_core::telemetry::metrics::is_degraded(feature);
    CheckView {
        name: feature,
        ok: !degraded,
        detail: if degraded { down } else { up }.to_owned(),
    }
}
