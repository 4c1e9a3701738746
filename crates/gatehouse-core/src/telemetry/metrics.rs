//! E3: the process's Prometheus metrics, in the classic text exposition format (version 0.0.4),
//! through the `prometheus` crate.
//!
//! One registry per process, like the default registry of every Prometheus client: counters are
//! incremented from whichever layer sees the event (HTTP, identity, hashing, mail, Redis), and
//! nothing has to be threaded through constructors for it. Recording is a few atomic operations;
//! with metrics switched off (`[metrics] enabled = false`) it is one relaxed load.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::Duration;

use prometheus::{
    Encoder as _, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};
use uuid::Uuid;

use super::orgs::OrgCounts;

/// Request latency buckets, in seconds: fine below 10 ms, where most requests end.
const LATENCY_BUCKETS: [f64; 14] = [
    0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// The content type of [`render`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The label values recorded on every request, resolved once: a labelled lookup hashes the
/// values and takes a lock, which is most of what recording costs.
const AUTH_METHODS: [&str; 7] = [
    "password",
    "second_factor",
    "operator_password",
    "operator_totp",
    "token",
    "api_key",
    "service",
];
const CACHES: [&str; 6] = [
    "session",
    "api_key",
    "data_key",
    "transit",
    "membership",
    "decision_record",
];

static ENABLED: AtomicBool = AtomicBool::new(true);
static TOP_ORGANIZATIONS: AtomicUsize = AtomicUsize::new(20);

/// Switches recording on or off for the whole process (load tests compare the two).
pub fn configure(enabled: bool, top_organizations: usize) {
    ENABLED.store(enabled, Ordering::Relaxed);
    TOP_ORGANIZATIONS.store(top_organizations, Ordering::Relaxed);
}

#[must_use]
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

#[derive(Debug)]
struct Metrics {
    registry: Registry,
    http: HistogramVec,
    auth: IntCounterVec,
    rate_refusals: IntCounterVec,
    checks: IntCounterVec,
    rate_fallback: IntCounter,
    audit_appends: IntCounter,
    hash_wait: Histogram,
    hash_queue: IntGauge,
    mail_outbox: IntGauge,
    mail: IntCounterVec,
    webhooks: IntCounterVec,
    removed: IntCounterVec,
    cache: IntCounterVec,
    errors: IntCounterVec,
    degraded: IntGaugeVec,
    orgs: IntGaugeVec,
    connections_open: IntGauge,
    connections_refused: IntCounterVec,
    job_runs: IntCounterVec,
    job_last_run: IntGaugeVec,
    job_lease_held: IntGaugeVec,
    org_counts: OrgCounts,
    /// `auth_fast[method][success]` for the methods in `AUTH_METHODS`.
    auth_fast: Vec<[IntCounter; 2]>,
    /// `cache_fast[cache][hit]` for the caches in `CACHES`.
    cache_fast: Vec<[IntCounter; 2]>,
    /// Serialises scrapes: each one resets and refills the organisation gauges.
    render: Mutex<()>,
}

impl Metrics {
    fn new() -> prometheus::Result<Self> {
        let registry = Registry::new();
        let http = HistogramVec::new(
            HistogramOpts::new(
                "gatehouse_http_request_duration_seconds",
                "Time from a request's arrival to its response, by route template, method and status.",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["route", "method", "status"],
        )?;
        let auth = IntCounterVec::new(
            Opts::new(
                "gatehouse_auth_attempts_total",
                "Authentication attempts by method (password, totp, recovery_code, token, api_key, service) and outcome (success, failure).",
            ),
            &["method", "outcome"],
        )?;
        let rate_refusals = IntCounterVec::new(
            Opts::new(
                "gatehouse_rate_limit_refusals_total",
                "Requests refused with 429, by the limit that refused them (ip, user, plan, api_key, lockout).",
            ),
            &["limit"],
        )?;
        let checks = IntCounterVec::new(
            Opts::new(
                "gatehouse_check_decisions_total",
                "Check API decisions by outcome (allowed, denied) and reason (granted, permission_missing, step_up_required, not_a_member, unknown_action, resource_required, no_access, email_unverified, unauthenticated).",
            ),
            &["outcome", "reason"],
        )?;
        let rate_fallback = IntCounter::new(
            "gatehouse_rate_limit_fallback_decisions_total",
            "Rate-limit decisions taken in this process because the shared store (Redis) was unreachable.",
        )?;
        let audit_appends = IntCounter::new(
            "gatehouse_audit_events_appended_total",
            "Audit events committed to the chain.",
        )?;
        let hash_wait = Histogram::with_opts(
            HistogramOpts::new(
                "gatehouse_password_hash_wait_seconds",
                "Time a password-hashing job waited for a worker.",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
        )?;
        let hash_queue = IntGauge::new(
            "gatehouse_password_hash_queue_depth",
            "Password-hashing jobs queued or running.",
        )?;
        let mail_outbox = IntGauge::new(
            "gatehouse_mail_outbox_depth",
            "Messages in the mail outbox not yet delivered.",
        )?;
        let mail = IntCounterVec::new(
            Opts::new(
                "gatehouse_mail_deliveries_total",
                "Mail delivery attempts by outcome (sent, retry, dead; skipped: the recipient opted out after it was queued; suppressed: not queued, the recipient had opted out; opted_out: unsubscribe links used).",
            ),
            &["outcome"],
        )?;
        let webhooks = IntCounterVec::new(
            Opts::new(
                "gatehouse_webhook_attempts_total",
                "Webhook delivery attempts by outcome (delivered, failed).",
            ),
            &["outcome"],
        )?;
        let removed = IntCounterVec::new(
            Opts::new(
                "gatehouse_lifecycle_removed_total",
                "What the lifecycle jobs removed, by what (records, secrets: purged rows; sessions, one_time_tokens, recovery_codes, delivered_mail, dead_mail: rows pruned after their retention; lockouts: run-out in-memory entries this process forgot).",
            ),
            &["what"],
        )?;
        let cache = IntCounterVec::new(
            Opts::new(
                "gatehouse_cache_lookups_total",
                "In-process cache lookups by cache (session, api_key, data_key, transit, membership) and result (hit, miss).",
            ),
            &["cache", "result"],
        )?;
        let errors = IntCounterVec::new(
            Opts::new(
                "gatehouse_errors_total",
                "Errors by component (store, redis, smtp, crypto, otlp, internal).",
            ),
            &["component"],
        )?;
        let degraded = IntGaugeVec::new(
            Opts::new(
                "gatehouse_degraded",
                "1 while a feature runs degraded (rate_limits: Redis unreachable, limiting per process; revocation_fanout; mail; otlp), else 0.",
            ),
            &["feature"],
        )?;
        let orgs = IntGaugeVec::new(
            Opts::new(
                "gatehouse_organization_requests",
                "Requests since start by organisation: the busiest N by id, everyone else as organization=\"other\". A gauge, not a counter: an organisation can move in and out of the top N.",
            ),
            &["organization"],
        )?;
        let connections_open = IntGauge::new(
            "gatehouse_connections_open",
            "TCP connections open on every listener of this process.",
        )?;
        let connections_refused = IntCounterVec::new(
            Opts::new(
                "gatehouse_connections_refused_total",
                "Connections closed at accept because a cap was reached (per_address, total).",
            ),
            &["cap"],
        )?;
        let job_runs = IntCounterVec::new(
            Opts::new(
                "gatehouse_job_runs_total",
                "Batches of a leased background job (lifecycle, reencryption, checkpoints) this instance ran, by outcome (ok, failed); an instance that does not hold the job's lease runs none.",
            ),
            &["job", "outcome"],
        )?;
        let job_last_run = IntGaugeVec::new(
            Opts::new(
                "gatehouse_job_last_run_timestamp_seconds",
                "When this instance last started a batch of the job (Unix seconds).",
            ),
            &["job"],
        )?;
        let job_lease_held = IntGaugeVec::new(
            Opts::new(
                "gatehouse_job_lease_held",
                "1 while this instance holds the job's lease (and so runs it), else 0.",
            ),
            &["job"],
        )?;
        let build = IntGaugeVec::new(
            Opts::new(
                "gatehouse_build_info",
                "Always 1; the version in its label.",
            ),
            &["version"],
        )?;
        build.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        for c in [
            Box::new(http.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(auth.clone()),
            Box::new(rate_refusals.clone()),
            Box::new(checks.clone()),
            Box::new(rate_fallback.clone()),
            Box::new(audit_appends.clone()),
            Box::new(hash_wait.clone()),
            Box::new(hash_queue.clone()),
            Box::new(mail_outbox.clone()),
            Box::new(mail.clone()),
            Box::new(webhooks.clone()),
            Box::new(removed.clone()),
            Box::new(cache.clone()),
            Box::new(errors.clone()),
            Box::new(degraded.clone()),
            Box::new(orgs.clone()),
            Box::new(connections_open.clone()),
            Box::new(connections_refused.clone()),
            Box::new(job_runs.clone()),
            Box::new(job_last_run.clone()),
            Box::new(job_lease_held.clone()),
            Box::new(build),
        ] {
            registry.register(c)?;
        }
        let auth_fast = AUTH_METHODS
            .iter()
            .map(|m| {
                Ok([
                    auth.get_metric_with_label_values(&[m, "failure"])?,
                    auth.get_metric_with_label_values(&[m, "success"])?,
                ])
            })
            .collect::<prometheus::Result<Vec<_>>>()?;
        let cache_fast = CACHES
            .iter()
            .map(|c| {
                Ok([
                    cache.get_metric_with_label_values(&[c, "miss"])?,
                    cache.get_metric_with_label_values(&[c, "hit"])?,
                ])
            })
            .collect::<prometheus::Result<Vec<_>>>()?;
        Ok(Self {
            auth_fast,
            cache_fast,
            registry,
            http,
            auth,
            rate_refusals,
            checks,
            rate_fallback,
            audit_appends,
            hash_wait,
            hash_queue,
            mail_outbox,
            mail,
            webhooks,
            removed,
            cache,
            errors,
            degraded,
            orgs,
            connections_open,
            connections_refused,
            job_runs,
            job_last_run,
            job_lease_held,
            org_counts: OrgCounts::default(),
            render: Mutex::new(()),
        })
    }
}

/// `None` only if a metric name above were invalid, which `tests::the_registry_builds` rules out.
fn get() -> Option<&'static Metrics> {
    static METRICS: OnceLock<Option<Metrics>> = OnceLock::new();
    METRICS
        .get_or_init(|| match Metrics::new() {
            Ok(m) => Some(m),
            Err(e) => {
                tracing::error!(error = %e, "metrics registry could not be built; /metrics is empty");
                None
            }
        })
        .as_ref()
}

fn on() -> Option<&'static Metrics> {
    if enabled() { get() } else { None }
}

/// One finished HTTP request.
pub fn request(route: &str, method: &str, status: &str, elapsed: Duration, org: Option<Uuid>) {
    if let Some(m) = on() {
        observe_route(
            m,
            route,
            method_label(method),
            status,
            elapsed.as_secs_f64(),
        );
        if let Some(o) = org {
            m.org_counts.record(o);
        }
    }
}

/// The method as a label: one of the methods HTTP defines, or `other`. Anyone may send any token
/// as a method; a label taken from it as is would make one series per made-up method, for ever.
/// (Routes are already bounded: a matched route's template, or `unmatched`.)
#[must_use]
pub fn method_label(method: &str) -> &'static str {
    match method {
        "GET" => "GET",
        "HEAD" => "HEAD",
        "POST" => "POST",
        "PUT" => "PUT",
        "PATCH" => "PATCH",
        "DELETE" => "DELETE",
        "OPTIONS" => "OPTIONS",
        "CONNECT" => "CONNECT",
        "TRACE" => "TRACE",
        _ => "other",
    }
}

/// The histogram for one route, method and status. Each thread keeps the handles it used last:
/// a hot route is then found by comparing a few short strings, where the labelled lookup hashes
/// all three and takes the vector's lock.
fn observe_route(m: &Metrics, route: &str, method: &str, status: &str, secs: f64) {
    use std::cell::RefCell;
    type Entry = (Box<str>, Box<str>, Box<str>, Histogram);
    thread_local! {
        static RECENT: RefCell<Vec<Entry>> = const { RefCell::new(Vec::new()) };
    }
    RECENT.with_borrow_mut(|recent| {
        if let Some(e) = recent
            .iter()
            .find(|(r, me, s, _)| &**r == route && &**me == method && &**s == status)
        {
            e.3.observe(secs);
            return;
        }
        let h = m.http.with_label_values(&[route, method, status]);
        h.observe(secs);
        // A handful of routes make up most traffic; a thread that saw many starts over.
        if recent.len() >= 32 {
            recent.clear();
        }
        recent.insert(0, (route.into(), method.into(), status.into(), h));
    });
}

/// Counts a request for `org` without an HTTP request around it (load tests of the exporter).
pub fn organization_request(org: Uuid) {
    if let Some(m) = on() {
        m.org_counts.record(org);
    }
}

/// One authentication attempt: `method` such as `password`, `token`, `api_key`.
pub fn auth(method: &'static str, success: bool) {
    if let Some(m) = on() {
        let outcome = if success { "success" } else { "failure" };
        count_pair(
            &m.auth,
            &AUTH_METHODS,
            &m.auth_fast,
            method,
            success,
            outcome,
        );
    }
}

/// A 429: `limit` names what refused (`ip`, `user`, `plan`, `api_key`, `lockout`).
pub fn rate_limit_refused(limit: &str) {
    if let Some(m) = on() {
        m.rate_refusals.with_label_values(&[limit]).inc();
    }
}

/// A check API decision; `reason` is one of a fixed set (see the metric's help).
pub fn check_decided(allowed: bool, reason: &'static str) {
    if let Some(m) = on() {
        m.checks
            .with_label_values(&[if allowed { "allowed" } else { "denied" }, reason])
            .inc();
    }
}

/// A rate-limit decision taken in-process because Redis was unreachable.
pub fn rate_limit_fallback() {
    if let Some(m) = on() {
        m.rate_fallback.inc();
    }
}

pub fn audit_appended(events: u64) {
    if let Some(m) = on() {
        m.audit_appends.inc_by(events);
    }
}

pub fn hash_waited(wait: Duration) {
    if let Some(m) = on() {
        m.hash_wait.observe(wait.as_secs_f64());
    }
}

/// Rows a lifecycle job removed (see `gatehouse_lifecycle_removed_total`).
pub fn lifecycle_removed(what: &'static str, rows: u64) {
    if let Some(m) = on() {
        m.removed.with_label_values(&[what]).inc_by(rows);
    }
}

/// `outcome`: `sent`, `retry` or `dead`.
/// Webhook attempts of one pass: how many succeeded and how many failed.
pub fn webhook_attempts(ok: u32, failed: u32) {
    if let Some(m) = on() {
        m.webhooks
            .with_label_values(&["delivered"])
            .inc_by(u64::from(ok));
        m.webhooks
            .with_label_values(&["failed"])
            .inc_by(u64::from(failed));
    }
}

pub fn mail_delivery(outcome: &'static str) {
    if let Some(m) = on() {
        m.mail.with_label_values(&[outcome]).inc();
    }
}

pub fn cache(cache: &'static str, hit: bool) {
    if let Some(m) = on() {
        let result = if hit { "hit" } else { "miss" };
        count_pair(&m.cache, &CACHES, &m.cache_fast, cache, hit, result);
    }
}

/// Increments `vec{key, flag}` through its pre-resolved pair when `key` is one of `keys`
/// (`fast[i] = [false, true]`), else through the labelled lookup with `flag_label`.
fn count_pair(
    vec: &IntCounterVec,
    keys: &[&str],
    fast: &[[IntCounter; 2]],
    key: &str,
    flag: bool,
    flag_label: &str,
) {
    match keys
        .iter()
        .position(|k| *k == key)
        .and_then(|i| fast.get(i))
    {
        Some(pair) => if flag { &pair[1] } else { &pair[0] }.inc(),
        None => vec.with_label_values(&[key, flag_label]).inc(),
    }
}

/// An error in `component` (`store`, `redis`, `smtp`, `crypto`, `otlp`, `internal`).
pub fn error(component: &'static str) {
    if let Some(m) = on() {
        m.errors.with_label_values(&[component]).inc();
    }
}

/// A connection accepted within the caps. Recorded even with metrics off, like
/// [`connection_closed`], so the gauge never drifts when recording is switched.
pub fn connection_opened() {
    if let Some(m) = get() {
        m.connections_open.inc();
    }
}

pub fn connection_closed() {
    if let Some(m) = get() {
        m.connections_open.dec();
    }
}

/// A connection closed at accept: `cap` is `per_address` or `total`.
pub fn connection_refused(cap: &'static str) {
    if let Some(m) = on() {
        m.connections_refused.with_label_values(&[cap]).inc();
    }
}

/// A leased job's batch started at `at` (Unix seconds) and ended with `outcome` (`ok`, `failed`).
pub fn job_ran(job: &'static str, outcome: &'static str, at: i64) {
    if let Some(m) = on() {
        m.job_runs.with_label_values(&[job, outcome]).inc();
        m.job_last_run.with_label_values(&[job]).set(at);
    }
}

/// Whether this instance holds `job`'s lease.
pub fn job_lease_held(job: &'static str, held: bool) {
    if let Some(m) = on() {
        m.job_lease_held
            .with_label_values(&[job])
            .set(i64::from(held));
    }
}

/// Marks `feature` as degraded or recovered. Recorded even with metrics off: readiness reads it.
pub fn set_degraded(feature: &'static str, degraded: bool) {
    if let Some(m) = get() {
        m.degraded
            .with_label_values(&[feature])
            .set(i64::from(degraded));
    }
}

/// Whether `feature` is marked degraded.
#[must_use]
pub fn is_degraded(feature: &'static str) -> bool {
    get().is_some_and(|m| {
        m.degraded
            .get_metric_with_label_values(&[feature])
            .is_ok_and(|g| g.get() != 0)
    })
}

/// The names of the metric families a scrape would show now (the posture report's E3 check);
/// `None` when the registry could not be created.
#[must_use]
pub fn family_names() -> Option<Vec<String>> {
    get().map(|m| {
        m.registry
            .gather()
            .iter()
            .map(|f| f.name().to_owned())
            .collect()
    })
}

/// Gauges read at scrape time from their owners.
#[derive(Debug, Clone, Copy, Default)]
pub struct Snapshot {
    pub hash_queue_depth: usize,
    pub mail_outbox_depth: u64,
}

/// The whole registry in the Prometheus text format.
#[must_use]
pub fn render(now: Snapshot) -> String {
    let Some(m) = get() else {
        return String::new();
    };
    let _one_at_a_time = m.render.lock().unwrap_or_else(PoisonError::into_inner);
    m.hash_queue
        .set(i64::try_from(now.hash_queue_depth).unwrap_or(i64::MAX));
    m.mail_outbox
        .set(i64::try_from(now.mail_outbox_depth).unwrap_or(i64::MAX));
    let (top, other) = m.org_counts.top(TOP_ORGANIZATIONS.load(Ordering::Relaxed));
    m.orgs.reset();
    for (org, n) in top {
        m.orgs
            .with_label_values(&[org.to_string().as_str()])
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }
    m.orgs
        .with_label_values(&["other"])
        .set(i64::try_from(other).unwrap_or(i64::MAX));
    let mut out = Vec::with_capacity(16 * 1024);
    if let Err(e) = TextEncoder::new().encode(&m.registry.gather(), &mut out) {
        tracing::error!(error = %e, "metrics could not be encoded");
    }
    String::from_utf8(out).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_outside_http_s_own_become_other() {
        for m in [
            "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE",
        ] {
            assert_eq!(super::method_label(m), m);
        }
        for m in ["get", "FOO", "PROPFIND", "", "GETX"] {
            assert_eq!(super::method_label(m), "other", "{m}");
        }
    }

    #[test]
    fn the_registry_builds() {
        assert!(Metrics::new().is_ok());
    }

    #[test]
    fn recorded_values_appear_in_the_text() {
        request(
            "/v1/x/{id}",
            "GET",
            "200",
            Duration::from_millis(3),
            Some(Uuid::nil()),
        );
        auth("password", false);
        set_degraded("rate_limits", true);
        assert!(is_degraded("rate_limits"));
        job_ran("reencryption", "ok", 1_700_000_000);
        job_lease_held("reencryption", true);
        let text = render(Snapshot {
            hash_queue_depth: 3,
            mail_outbox_depth: 7,
        });
        assert!(text.contains(
            "gatehouse_http_request_duration_seconds_count{method=\"GET\",route=\"/v1/x/{id}\",status=\"200\"} 1"
        ));
        assert!(
            text.contains(
                "gatehouse_auth_attempts_total{method=\"password\",outcome=\"failure\"} 1"
            )
        );
        assert!(text.contains("gatehouse_password_hash_queue_depth 3"));
        assert!(text.contains("gatehouse_mail_outbox_depth 7"));
        assert!(text.contains("gatehouse_degraded{feature=\"rate_limits\"} 1"));
        assert!(text.contains("gatehouse_job_runs_total{job=\"reencryption\",outcome=\"ok\"} 1"));
        assert!(
            text.contains(
                "gatehouse_job_last_run_timestamp_seconds{job=\"reencryption\"} 1700000000"
            )
        );
        assert!(text.contains("gatehouse_job_lease_held{job=\"reencryption\"} 1"));
        assert!(text.contains(&format!(
            "gatehouse_organization_requests{{organization=\"{}\"}} 1",
            Uuid::nil()
        )));
        set_degraded("rate_limits", false);
        assert!(!is_degraded("rate_limits"));
    }
}
