//! E. Accountability and operations.

use std::sync::Arc;

use gatehouse_core::posture::{Finding, Probe};
use gatehouse_core::posture_settings;

use super::{Facts, probe};
use crate::config::{Database, LogFormat};

pub(super) fn probes(f: &Facts<'_>) -> Vec<Arc<dyn Probe>> {
    vec![e1(f), e2(f), e3(f), e4(f), e5(f)]
}

fn e1(f: &Facts<'_>) -> Arc<dyn Probe> {
    let every = f.config.checkpoint_every;
    let settings = posture_settings! {
        "chain" => "SHA-256 hash chain per organisation and one for operators",
        "checkpoint_every_secs" => every.as_secs(),
        "checkpoint_signature" => "Ed25519",
    };
    let kernel = Arc::clone(f.kernel);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    probe("E1", true, settings, move || {
        let kernel = Arc::clone(&kernel);
        let next = Arc::clone(&next);
        async move { super::links::audit_spot_check(&kernel, &next, every).await }
    })
}

fn e2(f: &Facts<'_>) -> Arc<dyn Probe> {
    let json = f.config.log_format == LogFormat::Json;
    let settings = posture_settings! {
        "format" => if json { "json" } else { "text" },
        "level" => f.config.log_level,
        "traceparent" => "accepted and propagated",
        "otlp_export" => f.config.otlp.is_some(),
    };
    probe("E2", true, settings, move || async move {
        if json {
            Finding::pass(
                "Logs are JSON lines with a trace id per request (W3C traceparent accepted).",
            )
        } else {
            Finding::warn(
                "Logs are human-readable text; JSON lines (log_format = \"json\") are what collectors parse.",
            )
        }
    })
}

fn e3(f: &Facts<'_>) -> Arc<dyn Probe> {
    let m = &f.config.metrics;
    let enabled = m.enabled;
    let settings = posture_settings! {
        "enabled" => enabled,
        "listen" => m.listen.map(|a| a.to_string()),
        "top_organizations" => m.top_organizations,
    };
    probe("E3", enabled, settings, move || async move {
        if !enabled {
            return Finding::warn("Metrics are off.");
        }
        let Some(families) = gatehouse_core::telemetry::metrics::family_names() else {
            return Finding::fail("Metrics are on but the registry could not be created.");
        };
        let gauges = [
            "gatehouse_password_hash_queue_depth",
            "gatehouse_connections_open",
        ];
        let missing: Vec<&str> = gauges
            .iter()
            .filter(|w| !families.iter().any(|f| f == *w))
            .copied()
            .collect();
        if missing.is_empty() {
            Finding::pass(format!(
                "A scrape now would show {} metric families.",
                families.len()
            ))
            .figure("families", families.len())
        } else {
            Finding::fail(format!(
                "The metrics registry lacks {}.",
                missing.join(", ")
            ))
        }
    })
}

fn e4(f: &Facts<'_>) -> Arc<dyn Probe> {
    let kernel = Arc::clone(f.kernel);
    probe(
        "E4",
        true,
        posture_settings! {"live" => "/health/live", "ready" => "/health/ready"},
        move || {
            let kernel = Arc::clone(&kernel);
            async move {
                let r = kernel.readiness().await;
                let failing: Vec<&str> =
                    r.checks.iter().filter(|c| !c.ok).map(|c| c.name).collect();
                match (r.ready, failing.is_empty()) {
                    (true, true) => Finding::pass(format!(
                        "Ready: all {} readiness checks pass.",
                        r.checks.len()
                    )),
                    (true, false) => Finding::warn(format!(
                        "Ready, with degraded dependencies: {}.",
                        failing.join(", ")
                    )),
                    (false, _) => {
                        Finding::fail(format!("Not ready: {} failing.", failing.join(", ")))
                    }
                }
            }
        },
    )
}

fn e5(f: &Facts<'_>) -> Arc<dyn Probe> {
    let postgres = matches!(f.config.database.database, Database::Postgres { .. });
    let redis = f.config.redis_url.is_some();
    let shared_limits = f
        .config
        .rate_limits
        .as_ref()
        .is_some_and(|r| r.store == crate::config::LimitStore::Redis);
    let settings = posture_settings! {
        "database" => if postgres { "postgres" } else { "sqlite" },
        "redis" => redis,
        "shared_rate_limits" => shared_limits,
    };
    probe("E5", postgres, settings, move || async move {
        let degraded: Vec<&str> = ["rate_limits", "lockouts", "revocation_fanout"]
            .into_iter()
            .filter(|f| gatehouse_core::telemetry::metrics::is_degraded(f))
            .collect();
        if postgres && redis && !degraded.is_empty() {
            return Finding::warn(format!(
                "Redis is unreachable from this instance: {} fall back to this process until it returns.",
                degraded.join(", ")
            ));
        }
        match (postgres, redis, shared_limits) {
            (false, _, _) => Finding::not_applicable(
                "One instance over SQLite: scale-out needs PostgreSQL and Redis.",
            ),
            (true, true, true) => Finding::pass(
                "Instances share PostgreSQL and Redis: sessions, revocations, limits and audit chains agree.",
            ),
            (true, true, false) => Finding::warn(
                "Instances share revocations through Redis, but each keeps its own rate limits (rate_limits.store = \"memory\").",
            ),
            (true, false, _) => Finding::warn(
                "Instances share PostgreSQL but not Redis: revocations reach other instances only within their cache bound, and limits are per instance.",
            ),
        }
    })
}
