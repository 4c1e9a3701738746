//! E3: `/metrics` is valid Prometheus text (checked by `promtool check metrics`, from Debian's
//! prometheus package), its histograms give per-route quantiles, and the per-organisation series
//! stay bounded however many organisations there are.

use std::io::Write as _;
use std::process::{Command, Stdio};

use reqwest::Method;

use crate::support::{TestApp, temp_dir};

const SECRET: &str = "AwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwM=";

async fn with_service_secret(edit: impl FnOnce(&mut gatehouse::config::RawConfig)) -> TestApp {
    let dir = temp_dir();
    let f = dir.join("scraper.key");
    std::fs::write(&f, SECRET).unwrap();
    std::fs::set_permissions(&f, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    TestApp::spawn_in(dir, move |raw| {
        raw.service_auth.secret_files = vec![f];
        edit(raw);
    })
    .await
}

/// Runs `promtool check metrics` on `text`; panics with its findings unless it accepts.
fn promtool_accepts(text: &str) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus) must be installed for the metrics tests");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool refused the metrics:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The value of the sample whose name and labels are exactly `series`.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// `histogram_quantile` as Prometheus computes it: linear interpolation inside the bucket where
/// the rank falls.
fn quantile(q: f64, buckets: &[(f64, f64)]) -> f64 {
    let total = buckets.last().unwrap().1;
    let rank = q * total;
    let mut prev = (0.0, 0.0);
    for &(le, count) in buckets {
        if count >= rank {
            if le.is_infinite() {
                return prev.0;
            }
            return prev.0 + (le - prev.0) * (rank - prev.1) / (count - prev.1);
        }
        prev = (le, count);
    }
    f64::NAN
}

fn buckets(text: &str, labels: &str) -> Vec<(f64, f64)> {
    let prefix = format!("gatehouse_http_request_duration_seconds_bucket{{{labels},le=\"");
    let mut out: Vec<(f64, f64)> = text
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix(prefix.as_str())?;
            let (le, rest) = rest.split_once('"')?;
            let value = rest.strip_prefix("} ")?;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().unwrap()
            };
            Some((le, value.parse().unwrap()))
        })
        .collect();
    out.sort_by(|a, b| a.0.total_cmp(&b.0));
    out
}

#[tokio::test]
async fn metrics_are_valid_prometheus_text_with_per_route_quantiles_behind_service_auth() {
    let app = with_service_secret(|_| {}).await;
    let owner = app.signup_login("ops@example.com", "laptop").await;
    for _ in 0..5 {
        let res = app
            .call(Method::GET, "/v1/me", &owner.access, None, None)
            .await;
        assert_eq!(res.status(), 200);
    }
    for _ in 0..60 {
        assert_eq!(app.get("/health/live").await.status(), 200);
    }
    assert_eq!(app.get("/nowhere").await.status(), 404);
    let res = app
        .post_json(
            "/v1/auth/login",
            &serde_json::json!({"email": "ops@example.com", "password": "wrong wrong wrong", "device_name": "x"}),
        )
        .await;
    assert_eq!(res.status(), 401);

    // On the main listener: only with the service secret.
    let res = app.get("/internal/v1/metrics").await;
    assert_eq!(res.status(), 401);
    let res = app
        .client
        .get(app.url("/internal/v1/metrics"))
        .header("x-service-auth", SECRET)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let text = res.text().await.unwrap();
    promtool_accepts(&text);

    let live = r#"method="GET",route="/health/live",status="200""#;
    assert!(
        sample(
            &text,
            &format!("gatehouse_http_request_duration_seconds_count{{{live}}}")
        )
        .unwrap()
            >= 60.0
    );
    assert_eq!(
        sample(
            &text,
            r#"gatehouse_http_request_duration_seconds_count{method="GET",route="/v1/me",status="200"}"#
        ),
        Some(5.0)
    );
    // A path that matched no route is counted under one label, never its raw path.
    assert!(text.contains(r#"route="unmatched",status="404""#));
    assert!(!text.contains("/nowhere"));
    assert_eq!(
        sample(
            &text,
            r#"gatehouse_auth_attempts_total{method="password",outcome="failure"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            r#"gatehouse_auth_attempts_total{method="password",outcome="success"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            r#"gatehouse_auth_attempts_total{method="token",outcome="success"}"#
        ),
        Some(5.0)
    );
    assert_eq!(
        sample(
            &text,
            r#"gatehouse_auth_attempts_total{method="service",outcome="failure"}"#
        ),
        Some(1.0)
    );
    assert!(sample(&text, "gatehouse_audit_events_appended_total").unwrap() >= 2.0);
    assert!(sample(&text, "gatehouse_password_hash_wait_seconds_count").unwrap() >= 3.0);
    assert!(
        sample(
            &text,
            r#"gatehouse_cache_lookups_total{cache="session",result="hit"}"#
        )
        .unwrap()
            >= 4.0
    );
    assert_eq!(
        sample(&text, "gatehouse_password_hash_queue_depth"),
        Some(0.0)
    );
    assert_eq!(sample(&text, "gatehouse_mail_outbox_depth"), Some(0.0));
    assert_eq!(
        sample(
            &text,
            &format!(
                "gatehouse_organization_requests{{organization=\"{}\"}}",
                owner.org
            )
        ),
        Some(5.0)
    );

    // p50 <= p95 <= p99, each inside the bucket range, from the route's own histogram.
    let b = buckets(&text, live);
    assert_eq!(b.len(), 15, "{b:?}");
    let (p50, p95, p99) = (quantile(0.5, &b), quantile(0.95, &b), quantile(0.99, &b));
    assert!(
        p50 > 0.0 && p50 <= p95 && p95 <= p99 && p99 <= 5.0,
        "{p50} {p95} {p99}"
    );

    // The metrics listener serves the same registry without authentication.
    let open = app.metrics().await;
    promtool_accepts(&open);
    assert!(open.contains("gatehouse_build_info{version="));
    // and the main listener has no unauthenticated /metrics.
    assert_eq!(app.get("/metrics").await.status(), 404);
    app.stop().await;
}

#[tokio::test]
async fn organisation_series_stay_bounded_with_a_thousand_organisations() {
    let app = TestApp::spawn_with(|raw| raw.metrics.top_organizations = 20).await;
    let busy = app.signup_login("busy@example.com", "laptop").await;
    for _ in 0..40 {
        let res = app
            .call(Method::GET, "/v1/me", &busy.access, None, None)
            .await;
        assert_eq!(res.status(), 200);
    }
    // A thousand more organisations, 1 to 25 requests each, through the same counter the HTTP
    // layer feeds (signing up a thousand accounts would only time Argon2).
    let mut total = 40u64;
    for i in 0..1000u128 {
        for _ in 0..=(i % 25) {
            gatehouse_core::telemetry::metrics::organization_request(uuid::Uuid::from_u128(i + 1));
            total += 1;
        }
    }
    let text = app.metrics().await;
    promtool_accepts(&text);
    let series: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("gatehouse_organization_requests{"))
        .collect();
    assert_eq!(series.len(), 21, "{series:#?}");
    assert!(series.iter().any(|l| l.contains(r#"organization="other""#)));
    assert!(series.iter().any(|l| l.contains(&busy.org)));
    let sum: u64 = series
        .iter()
        .map(|l| l.rsplit_once(' ').unwrap().1.parse::<u64>().unwrap())
        .sum();
    assert_eq!(sum, total);
    app.stop().await;
}

#[tokio::test]
async fn switched_off_metrics_record_nothing_and_serve_nothing() {
    let app = with_service_secret(|raw| raw.metrics.enabled = false).await;
    assert_eq!(app.get("/health/live").await.status(), 200);
    let res = app
        .client
        .get(app.url("/internal/v1/metrics"))
        .header("x-service-auth", SECRET)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    // No listener of its own either.
    assert!(app.metrics_base.is_none());
    app.stop().await;
}

/// Issue 18, finding 1: anonymous requests with made-up methods to made-up paths add no series:
/// the method label is one of HTTP's own or `other`, the route a template or `unmatched`.
#[tokio::test]
async fn made_up_methods_and_paths_leave_the_series_bounded() {
    let app = TestApp::spawn().await;
    let series = |text: &str| {
        text.lines()
            .filter(|l| l.starts_with("gatehouse_http_request_duration_seconds_count{"))
            .count()
    };
    assert_eq!(app.get("/health/live").await.status(), 200);
    let before = series(&app.metrics().await);
    // A first thousand warms the allocator and the client's pool, so the RSS compared below
    // measures what the next ten thousand keep.
    for i in 0..1_000u32 {
        send_made_up(&app, i).await;
    }
    let rss_before = rss_kib();
    for i in 1_000..11_000u32 {
        send_made_up(&app, i).await;
    }
    let rss_after = rss_kib();
    let text = app.metrics().await;
    promtool_accepts(&text);
    // Every one of them is the one series (unmatched, other, 404): at most one new per status.
    let after = series(&text);
    assert!(after <= before + 2, "{before} series grew to {after}");
    assert_eq!(
        sample(
            &text,
            r#"gatehouse_http_request_duration_seconds_count{method="other",route="unmatched",status="404"}"#
        ),
        Some(11_000.0),
        "{text}"
    );
    // The stated bound: ten thousand requests keep at most 4 MiB more (server and client share
    // this process). Before the labels were bounded, 3,000 of them kept 20 MiB.
    let grew = rss_after.saturating_sub(rss_before);
    eprintln!("RSS {rss_before} KiB -> {rss_after} KiB over 10,000 made-up requests");
    assert!(
        grew <= 4 * 1024,
        "RSS grew by {grew} KiB over 10,000 made-up requests"
    );
    app.stop().await;
}

async fn send_made_up(app: &TestApp, i: u32) {
    let method = Method::from_bytes(format!("M{i:05}").as_bytes()).unwrap();
    let res = app
        .client
        .request(
            method,
            app.url(&format!("/made/up/{i}/{}", i.wrapping_mul(7919))),
        )
        .send()
        .await
        .unwrap();
    assert!(res.status().is_client_error(), "{}", res.status());
}

/// This process's resident set, in KiB.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}
