//! OTLP span export (issue 9, E2 and must 2, 6): with `[otlp]` on, every request reaches a
//! collector as a SERVER span in the caller's trace; a collector that goes away degrades export
//! (metric) without slowing or stopping requests, and export resumes when it returns. The
//! collector is a small OTLP/HTTP (JSON) receiver started by each test.
#![cfg(feature = "otlp")]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::interop::free_port;
use crate::support::TestApp;

/// An OTLP/HTTP receiver: keeps each `POST /v1/traces` body and answers 200 `{}`.
struct Receiver {
    addr: SocketAddr,
    bodies: Arc<Mutex<Vec<Value>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    async fn start(addr: &str) -> Self {
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let kept = Arc::clone(&bodies);
        let router = axum::Router::new().route(
            "/v1/traces",
            axum::routing::post(move |body: axum::body::Bytes| {
                let kept = Arc::clone(&kept);
                async move {
                    let json: Value = serde_json::from_slice(&body).unwrap();
                    kept.lock().unwrap().push(json);
                    (
                        [(axum::http::header::CONTENT_TYPE, "application/json")],
                        "{}",
                    )
                }
            }),
        );
        let task = tokio::spawn(async move {
            axum::serve(listener, router).await.unwrap();
        });
        Self { addr, bodies, task }
    }

    fn endpoint(&self) -> String {
        format!("http://{}/v1/traces", self.addr)
    }

    /// Every span received so far, each with its resource's `service.name` added as
    /// `"service"`.
    fn spans(&self) -> Vec<Value> {
        let mut out = Vec::new();
        for body in self.bodies.lock().unwrap().iter() {
            for rs in body["resourceSpans"].as_array().unwrap() {
                let service = attribute(&rs["resource"], "service.name");
                for ss in rs["scopeSpans"].as_array().unwrap() {
                    for span in ss["spans"].as_array().unwrap() {
                        let mut span = span.clone();
                        span["service"] = service.clone();
                        out.push(span);
                    }
                }
            }
        }
        out
    }

    /// Waits (up to 15 s) for a span in `trace`.
    async fn span_in(&self, trace: &str) -> Value {
        for _ in 0..150 {
            if let Some(s) = self.spans().into_iter().find(|s| s["traceId"] == trace) {
                return s;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("no span in trace {trace}; received {:#?}", self.spans());
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The value of attribute `key` of a span or resource (`stringValue` or `intValue`), or null.
fn attribute(holder: &Value, key: &str) -> Value {
    holder["attributes"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|a| a["key"] == key)
        .map(|a| {
            let v = &a["value"];
            if v["stringValue"].is_null() {
                v["intValue"].clone()
            } else {
                v["stringValue"].clone()
            }
        })
        .unwrap_or(Value::Null)
}

fn as_i64(v: &Value) -> Option<i64> {
    v.as_i64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
}

async fn with_otlp(endpoint: String) -> TestApp {
    TestApp::spawn_with(|raw| {
        raw.otlp.enabled = true;
        raw.otlp.endpoint = endpoint;
        raw.otlp.service_name = "gatehouse-it".into();
    })
    .await
}

#[tokio::test]
async fn each_request_reaches_the_collector_as_a_server_span_in_the_callers_trace() {
    let receiver = Receiver::start("127.0.0.1:0").await;
    let app = with_otlp(receiver.endpoint()).await;
    let who = app.signup_login("otlp@example.com", "cli").await;

    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let parent = "00f067aa0ba902b7";
    let res = app
        .client
        .get(app.url("/v1/me"))
        .bearer_auth(&who.access)
        .header("traceparent", format!("00-{trace}-{parent}-01"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    // No traceparent: a root span whose trace id is the request id the caller was told.
    let res = app.get("/health/ready").await;
    assert_eq!(res.status(), 200);
    let root_trace = res.headers()["x-request-id"].to_str().unwrap().to_owned();
    // A refusal is exported too, with its status.
    let res = app.get("/v1/me").await;
    assert_eq!(res.status(), 401);
    let refused_trace = res.headers()["x-request-id"].to_str().unwrap().to_owned();

    let me = receiver.span_in(trace).await;
    assert_eq!(me["parentSpanId"], parent, "{me:#}");
    assert_eq!(me["name"], "GET /v1/me", "{me:#}");
    assert_eq!(me["kind"], 2, "SERVER: {me:#}");
    let span_id = me["spanId"].as_str().unwrap();
    assert_eq!(span_id.len(), 16, "{me:#}");
    assert_ne!(span_id, parent);
    assert_eq!(attribute(&me, "http.route"), "/v1/me", "{me:#}");
    assert_eq!(attribute(&me, "http.request.method"), "GET", "{me:#}");
    assert_eq!(
        as_i64(&attribute(&me, "http.response.status_code")),
        Some(200)
    );
    assert_eq!(attribute(&me, "enduser.id"), who.user.as_str(), "{me:#}");
    assert_eq!(
        attribute(&me, "gatehouse.organization_id"),
        who.org.as_str(),
        "{me:#}"
    );
    assert!(
        as_i64(&attribute(&me, "gatehouse.stage.token_us")).unwrap() > 0,
        "{me:#}"
    );
    assert_eq!(me["service"], "gatehouse-it");
    let start: u64 = me["startTimeUnixNano"].as_str().unwrap().parse().unwrap();
    let end: u64 = me["endTimeUnixNano"].as_str().unwrap().parse().unwrap();
    assert!(start <= end && end - start < 10_000_000_000, "{me:#}");

    let root = receiver.span_in(&root_trace).await;
    assert!(
        root["parentSpanId"].as_str().unwrap_or_default().is_empty(),
        "{root:#}"
    );
    assert_eq!(attribute(&root, "http.route"), "/health/ready");

    let refused = receiver.span_in(&refused_trace).await;
    assert_eq!(
        as_i64(&attribute(&refused, "http.response.status_code")),
        Some(401)
    );
    // 4xx is the caller's error, not the server's: the span's status stays unset.
    assert_ne!(refused["status"]["code"], 2, "{refused:#}");

    app.stop().await;
}

/// A span queued just before the server stops is sent by the shutdown, not lost with it.
#[tokio::test]
async fn stopping_the_server_sends_the_last_spans() {
    let receiver = Receiver::start("127.0.0.1:0").await;
    let app = with_otlp(receiver.endpoint()).await;
    let res = app.get("/health/live").await;
    let trace = res.headers()["x-request-id"].to_str().unwrap().to_owned();
    app.stop().await;
    assert!(
        receiver
            .spans()
            .iter()
            .any(|s| s["traceId"] == trace.as_str()),
        "{:#?}",
        receiver.spans()
    );
}

fn degraded(metrics: &str) -> Option<&str> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("gatehouse_degraded{feature=\"otlp\"} "))
}

async fn metrics_until(app: &TestApp, what: &str, pred: impl Fn(&str) -> bool) -> String {
    let mut last = String::new();
    for _ in 0..150 {
        last = app.metrics().await;
        if pred(&last) {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the metrics never showed {what}:\n{last}");
}

#[tokio::test]
async fn a_missing_collector_degrades_export_without_slowing_requests_and_export_resumes() {
    let port = free_port();
    let app = with_otlp(format!("http://127.0.0.1:{port}/v1/traces")).await;

    // Nothing listens there: requests are answered as ever, none waits on the exporter.
    let started = Instant::now();
    for _ in 0..50 {
        let t = Instant::now();
        let res = app.get("/health/ready").await;
        assert_eq!(res.status(), 200);
        assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    }
    let took = started.elapsed();
    let metrics = metrics_until(&app, "otlp degraded", |m| degraded(m) == Some("1")).await;
    let errors = metrics
        .lines()
        .find_map(|l| l.strip_prefix("gatehouse_errors_total{component=\"otlp\"} "))
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    assert!(errors >= 1, "{metrics}");
    // Still serving while degraded, and readiness says what is degraded.
    let (status, body) = app.ready_details().await;
    assert_eq!(status, 200);
    let otlp = body["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "otlp")
        .cloned()
        .unwrap();
    assert_eq!(otlp["ok"], false, "{body}");

    // The collector comes up on that port: new spans arrive and the gauge clears.
    let receiver = Receiver::start(&format!("127.0.0.1:{port}")).await;
    let trace = "0af7651916cd43dd8448eb211c80319c";
    let res = app
        .client
        .get(app.url("/health/ready"))
        .header("traceparent", format!("00-{trace}-b7ad6b7169203331-01"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let span = receiver.span_in(trace).await;
    assert_eq!(span["parentSpanId"], "b7ad6b7169203331");
    metrics_until(&app, "otlp recovered", |m| degraded(m) == Some("0")).await;
    let (_, body) = app.ready_details().await;
    assert!(
        body["checks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["name"] == "otlp" && c["ok"] == true),
        "{body}"
    );
    app.stop().await;
    assert!(took < Duration::from_secs(20), "50 requests took {took:?}");
}
