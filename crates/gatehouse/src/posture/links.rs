//! F. Links and messaging, G. Privacy, H. Browser surface and disclosure; and E1's chain check.

use std::sync::Arc;
use std::sync::Weak;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use gatehouse_core::posture::{Finding, Probe};
use gatehouse_core::{Kernel, posture_settings};

use super::{Facts, probe, secs};

pub(super) fn probes(f: &Facts<'_>) -> Vec<Arc<dyn Probe>> {
    vec![f1(f), f2(f), f3(f), f4(f), g1(), g2(), g3(f), h1(f), h2(f)]
}

fn f1(f: &Facts<'_>) -> Arc<dyn Probe> {
    let s = f.config.share;
    let settings = posture_settings! {
        "max_ttl_secs" => secs(s.max_ttl),
        "viewer_ttl_secs" => secs(s.viewer_ttl),
        "password" => "optional, Argon2id",
    };
    probe("F1", true, settings, move || async move {
        Finding::by_design(format!(
            "Share links expire within {} days at most, may need a password, and revoking one ends open viewer passes.",
            s.max_ttl.whole_days()
        ))
    })
}

fn f2(f: &Facts<'_>) -> Arc<dyn Probe> {
    let dkim = f.config.mail.auth.dkim.is_some();
    let settings = posture_settings! {
        "links" => "HMAC-signed, no row per link",
        "dkim" => dkim,
    };
    probe("F2", true, settings, move || async move {
        if dkim {
            Finding::pass(
                "Unsubscribe links are signed; opted-out addresses are skipped before every send; mail is DKIM-signed for one-click.",
            )
        } else {
            Finding::warn(
                "Unsubscribe links are signed and opt-outs honoured, but mail is not DKIM-signed, so receivers will not offer one-click unsubscribe.",
            )
        }
    })
}

fn f3(f: &Facts<'_>) -> Arc<dyn Probe> {
    let w = &f.config.webhooks.settings;
    let (http, loopback) = (w.destinations.allow_http, w.destinations.allow_loopback);
    let settings = posture_settings! {
        "signature" => "Standard Webhooks (HMAC-SHA256)",
        "poll_secs" => f.config.webhooks.poll.as_secs(),
        "allow_http" => http,
        "allow_loopback" => loopback,
        "retry_waits_secs" => w.retry_waits.iter().map(|d| d.whole_seconds()).collect::<Vec<_>>(),
    };
    probe("F3", true, settings, move || async move {
        if http || loopback {
            Finding::warn(format!(
                "Outgoing webhooks are signed and retried, but this configuration allows {} (development only).",
                match (http, loopback) {
                    (true, true) => "plain-HTTP and loopback receivers",
                    (true, false) => "plain-HTTP receivers",
                    _ => "loopback receivers",
                }
            ))
        } else {
            Finding::pass(
                "Outgoing webhooks are signed per Standard Webhooks, sent over HTTPS to public addresses only, retried with backoff, and logged per delivery.",
            )
        }
    })
}

fn f4(f: &Facts<'_>) -> Arc<dyn Probe> {
    let servers: Vec<String> = f
        .config
        .mail
        .auth
        .dns_servers
        .iter()
        .map(ToString::to_string)
        .collect();
    let system = servers.is_empty();
    probe(
        "F4",
        true,
        posture_settings! {"dns_servers" => if system { vec!["system resolver".to_owned()] } else { servers }},
        || async {
            Finding::by_design(
                "Sending domains can be checked for SPF, DKIM and DMARC on demand (`gatehouse mail check-domain`, the API).",
            )
        },
    )
}

fn g1() -> Arc<dyn Probe> {
    probe(
        "G1",
        true,
        posture_settings! {"pagination" => "cursor"},
        || async {
            Finding::by_design(
                "Everything stored about a person or an organisation can be exported, page by page.",
            )
        },
    )
}

fn g2() -> Arc<dyn Probe> {
    probe(
        "G2",
        true,
        posture_settings! {"deletion" => "hard delete, by subject, ids or date range"},
        || async {
            Finding::by_design(
                "Erasure deletes rows outright, derived data included; audit events keep their chain with personal data erased.",
            )
        },
    )
}

fn g3(f: &Facts<'_>) -> Arc<dyn Probe> {
    let every = f.config.lifecycle.purge_every;
    let settings = posture_settings! {"purge_every_secs" => every.as_secs()};
    let kernel = Arc::clone(f.kernel);
    probe("G3", true, settings, move || {
        let kernel = Arc::clone(&kernel);
        async move {
            let jobs = kernel.jobs_status();
            let Some(job) = jobs.iter().find(|j| j.name == "lifecycle") else {
                return Finding::pass(format!(
                    "Expired records are invisible at once; the purge (every {} s) is not run by this process.",
                    every.as_secs()
                ));
            };
            // Three intervals: the lease's takeover bound (see `gatehouse_core::jobs`).
            let late = job.held
                && job.last_run.is_none_or(|at| {
                    kernel.clock().now() - at
                        > time::Duration::try_from(every.saturating_mul(3))
                            .unwrap_or(time::Duration::MAX)
                });
            match (job.last_outcome.map(|o| o.as_str()), late) {
                (Some("failed"), _) => Finding::warn(format!(
                    "Expired records are hidden at once, but this instance's last purge failed (every {} s).",
                    every.as_secs()
                )),
                (_, true) => Finding::warn(format!(
                    "Expired records are hidden at once, but this instance holds the purge's lease and has not purged for three intervals ({} s each).",
                    every.as_secs()
                )),
                _ => Finding::pass(format!(
                    "Expired records are invisible at once and purged every {} s{}.",
                    every.as_secs(),
                    if job.held {
                        ""
                    } else {
                        " (by the instance holding the lease)"
                    }
                )),
            }
        }
    })
}

/// A test of a header's value.
type HeaderTest = fn(&str) -> bool;

/// What H1 expects of every response: header, and a test of its value.
const H1_EXPECTED: [(&str, HeaderTest); 9] = [
    ("strict-transport-security", |v| {
        v.contains("includeSubDomains")
            && v.split(';').any(|p| {
                p.trim()
                    .strip_prefix("max-age=")
                    .and_then(|n| n.parse::<u64>().ok())
                    .is_some_and(|n| n >= 31_536_000)
            })
    }),
    ("content-security-policy", |v| {
        ["default-src", "frame-ancestors", "base-uri", "form-action"]
            .iter()
            .all(|d| v.contains(&format!("{d} 'none'")))
    }),
    ("x-frame-options", |v| v.eq_ignore_ascii_case("deny")),
    ("x-content-type-options", |v| {
        v.eq_ignore_ascii_case("nosniff")
    }),
    ("referrer-policy", |v| {
        v == "strict-origin-when-cross-origin"
    }),
    ("permissions-policy", |v| v.contains("camera=()")),
    ("cross-origin-opener-policy", |v| v == "same-origin"),
    ("cross-origin-resource-policy", |v| v == "same-origin"),
    ("cache-control", |v| v == "no-store"),
];

fn h1(f: &Facts<'_>) -> Arc<dyn Probe> {
    let settings = posture_settings! {
        "headers" => H1_EXPECTED.iter().map(|(h, _)| *h).collect::<Vec<_>>(),
    };
    let router = f.router.clone();
    probe("H1", true, settings, move || {
        let router = router.clone();
        async move { headers_check(&router).await }
    })
}

/// Sends `GET /health/live` through the router the main listener serves and inspects the
/// headers of its response.
async fn headers_check(router: &Weak<axum::Router>) -> Finding {
    use tower::ServiceExt as _;
    let Some(router) = router.upgrade() else {
        return Finding::warn("The router is gone (the server is stopping).");
    };
    let mut request = axum::http::Request::new(axum::body::Body::empty());
    *request.uri_mut() = axum::http::Uri::from_static("/health/live");
    request
        .extensions_mut()
        .insert(axum::extract::ConnectInfo(std::net::SocketAddr::from((
            [127, 0, 0, 1],
            0,
        ))));
    let response = match (*router).clone().oneshot(request).await {
        Ok(r) => r,
        Err(e) => return Finding::fail(format!("The router did not answer: {e}")),
    };
    let headers = response.headers();
    let wrong: Vec<&str> = H1_EXPECTED
        .iter()
        .filter(|(name, ok)| {
            !headers
                .get(*name)
                .and_then(|v| v.to_str().ok())
                .is_some_and(ok)
        })
        .map(|(name, _)| *name)
        .collect();
    if wrong.is_empty() {
        Finding::pass(format!(
            "A request sent through the router just now came back with all {} security headers as required.",
            H1_EXPECTED.len()
        ))
    } else {
        Finding::fail(format!(
            "A request sent through the router just now came back without the required {}.",
            wrong.join(", ")
        ))
    }
}

fn h2(f: &Facts<'_>) -> Arc<dyn Probe> {
    let text = f.config.security_txt.clone();
    let configured = text.is_some();
    let clock = Arc::clone(&f.clock);
    probe(
        "H2",
        configured,
        posture_settings! {"configured" => configured},
        move || {
            let text = text.clone();
            let clock = Arc::clone(&clock);
            async move {
                let Some(text) = text else {
                    return Finding::warn(
                        "No [security_txt] is configured: /.well-known/security.txt answers 404.",
                    );
                };
                let expires = text
                    .lines()
                    .find_map(|l| l.strip_prefix("Expires: "))
                    .and_then(|v| {
                        time::OffsetDateTime::parse(
                            v.trim(),
                            &time::format_description::well_known::Rfc3339,
                        )
                        .ok()
                    });
                match expires {
                    Some(at) if at > clock.now() => Finding::pass(format!(
                        "/.well-known/security.txt is served, valid for {} more day(s).",
                        (at - clock.now()).whole_days()
                    )),
                    Some(_) => Finding::fail("/.well-known/security.txt has expired."),
                    None => Finding::fail(
                        "/.well-known/security.txt carries no readable Expires field.",
                    ),
                }
            }
        },
    )
}

/// How many organisations' chains one report recomputes (besides the operators'), and how many
/// events of each at most: successive reports go round every chain.
const SPOT_CHAINS: usize = 32;
const SPOT_EVENTS: u32 = 100;

/// E1: the newest events of each chain against its latest signed checkpoint, a bounded number
/// of chains per report, in rotation.
pub(super) async fn audit_spot_check(
    kernel: &Kernel,
    next: &AtomicUsize,
    every: Duration,
) -> Finding {
    let start = next.load(std::sync::atomic::Ordering::Relaxed);
    let spot = match gatehouse_core::audit::spot_check(
        kernel.store(),
        kernel.keyring(),
        kernel.clock(),
        start,
        SPOT_CHAINS,
        SPOT_EVENTS,
    )
    .await
    {
        Ok(s) => s,
        Err(e) => return Finding::fail(format!("The audit log cannot be read: {e}")),
    };
    next.store(spot.next_start, std::sync::atomic::Ordering::Relaxed);
    let checked = spot.chains_checked();
    let base = format!(
        "Recomputed {} event(s) of {checked} of {} chain(s) (this report's share of a rotation) against their latest signed checkpoints.",
        spot.events_recomputed, spot.chains_total
    );
    let age = spot
        .oldest_checkpoint
        .as_ref()
        .map(|(_, d)| d.whole_seconds());
    // Signing runs every `every` over every chain that moved: an event left unsigned longer
    // than a takeover means the job has stopped (or its lease's holder is stuck), or checkpoints
    // were removed.
    // Four intervals: an instance that dies holding the lease is taken over within three
    // (`gatehouse_core::jobs`), and the new holder signs at its next tick.
    let limit = time::Duration::seconds(
        i64::try_from(every.as_secs())
            .unwrap_or(i64::MAX)
            .saturating_mul(4),
    );
    let unsigned_for = spot
        .oldest_unsigned
        .as_ref()
        .map(|(chain, at)| (chain, kernel.clock().now() - *at));
    let capped = if spot.capped.is_empty() {
        String::new()
    } else {
        format!(
            " {} chain(s) had more than {SPOT_EVENTS} events after their checkpoint: only the first {SPOT_EVENTS} were recomputed.",
            spot.capped.len()
        )
    };
    let finding = if !spot.failures.is_empty() {
        Finding::fail(format!(
            "Broken: {}.",
            spot.failures
                .iter()
                .map(|f| format!("{}: {}", f.chain, f.reason))
                .collect::<Vec<_>>()
                .join("; ")
        ))
    } else {
        match unsigned_for {
            _ if !spot.empty.is_empty() => Finding::warn(format!(
                "{base}{capped} Holding no events at all, though creating an organisation records one (deleted whole?): {}.",
                spot.empty
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            Some((chain, d)) if d > limit => Finding::warn(format!(
                "{base}{capped} In {chain}, an event has gone {} s without a checkpoint (signing every {} s): signing has stopped, or checkpoints were removed.",
                d.whole_seconds(),
                every.as_secs()
            )),
            _ => Finding::pass(format!("{base}{capped}")),
        }
    };
    finding
        .figure("chains_checked", checked)
        .figure("chains_total", spot.chains_total)
        .figure("events_recomputed", spot.events_recomputed)
        .figure("chains_capped", spot.capped.len())
        .figure("chains_without_checkpoint", spot.without_checkpoint.len())
        .figure("chains_empty", spot.empty.len())
        .figure("oldest_checkpoint_age_secs", age)
        .figure(
            "oldest_unsigned_event_age_secs",
            unsigned_for.map(|(_, d)| d.whole_seconds()),
        )
        .figure(
            "broken_chains",
            spot.failures
                .iter()
                .map(|f| f.chain.to_string())
                .collect::<Vec<_>>(),
        )
}
