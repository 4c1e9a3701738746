//! Graceful degradation (issue 9, must 6): Redis going away and coming back never stops the
//! process; readiness and metrics say what is degraded while it is, and service resumes. (The
//! SMTP relay's turn is `recovery::mail_waits_in_the_outbox_while_smtp_is_down_and_goes_out_when_it_returns`.)

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use reqwest::Method;
use serde_json::Value;

use crate::interop::free_port;
use crate::support::TestApp;

/// A private redis-server (Debian's), so this test can stop and restart it.
fn start_redis(port: u16) -> Child {
    Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .stdout(Stdio::null())
        .spawn()
        .expect("redis-server must be installed for the degradation test")
}

async fn wait_for_port(port: u16) {
    for _ in 0..300 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("redis-server did not start on {port}");
}

fn check(body: &Value, name: &str) -> Value {
    body["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("no {name} check in {body}"))
}

/// Polls readiness (always 200: Redis never makes serving impossible) until `pred` holds.
async fn ready_until(app: &TestApp, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let mut last = Value::Null;
    for _ in 0..150 {
        let (status, body) = app.ready_details().await;
        assert_eq!(status, 200);
        last = body;
        if pred(&last) {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("readiness never showed {what}: {last}");
}

fn gauge(text: &str, feature: &str) -> Option<i64> {
    let prefix = format!("gatehouse_degraded{{feature=\"{feature}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(prefix.as_str())?.parse().ok())
}

#[tokio::test]
async fn redis_going_away_degrades_limits_and_fanout_and_both_resume_when_it_returns() {
    let port = free_port();
    let mut redis = start_redis(port);
    wait_for_port(port).await;
    let app = TestApp::spawn_with(|raw| {
        raw.redis_url = Some(format!("redis://127.0.0.1:{port}"));
        raw.rate_limits.enabled = true;
        raw.rate_limits.store = gatehouse::config::LimitStore::Redis;
        raw.rate_limits.redis_key_prefix = format!("gh-degrade-{port}:");
    })
    .await;
    let user = app.signup_login("redis@example.com", "laptop").await;
    ready_until(&app, "Redis in use", |b| {
        check(b, "rate_limits")["ok"] == true && check(b, "revocation_fanout")["ok"] == true
    })
    .await;

    // Redis stops: requests keep being answered, limited in-process.
    redis.kill().unwrap();
    redis.wait().unwrap();
    for _ in 0..5 {
        let res = app
            .call(Method::GET, "/v1/me", &user.access, None, None)
            .await;
        assert_eq!(res.status(), 200);
    }
    let body = ready_until(&app, "Redis degraded", |b| {
        check(b, "rate_limits")["ok"] == false && check(b, "revocation_fanout")["ok"] == false
    })
    .await;
    assert!(
        check(&body, "rate_limits")["detail"]
            .as_str()
            .unwrap()
            .contains("Redis unreachable"),
        "{body}"
    );
    let text = app.metrics().await;
    assert_eq!(gauge(&text, "rate_limits"), Some(1), "{text}");
    assert_eq!(gauge(&text, "revocation_fanout"), Some(1), "{text}");
    let fallback = text
        .lines()
        .find_map(|l| l.strip_prefix("gatehouse_rate_limit_fallback_decisions_total "))
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap();
    assert!(fallback >= 5, "{fallback}");
    assert!(text.contains(r#"gatehouse_errors_total{component="redis"}"#));

    // Redis returns on the same port: shared limits and the subscription resume by themselves.
    let mut redis = start_redis(port);
    wait_for_port(port).await;
    for _ in 0..50 {
        let res = app
            .call(Method::GET, "/v1/me", &user.access, None, None)
            .await;
        assert_eq!(res.status(), 200);
        let text = app.metrics().await;
        if gauge(&text, "rate_limits") == Some(0) && gauge(&text, "revocation_fanout") == Some(0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    ready_until(&app, "Redis back", |b| {
        check(b, "rate_limits")["ok"] == true && check(b, "revocation_fanout")["ok"] == true
    })
    .await;
    let text = app.metrics().await;
    assert_eq!(gauge(&text, "rate_limits"), Some(0));
    assert_eq!(gauge(&text, "revocation_fanout"), Some(0));
    app.stop().await;
    let _ = redis.kill();
    let _ = redis.wait();
}
