//! The audit log over HTTP (E1): filters and cursors, the NDJSON export, personal data opened for
//! readers, and the operators' trail.

use reqwest::Method;
use serde_json::Value;

use crate::support::{PASSWORD, TestApp};

#[tokio::test]
async fn filters_and_cursors_page_through_exactly_the_right_events() {
    let app = TestApp::spawn().await;
    let a = app.signup_login("ada@example.com", "laptop").await;
    let other = app.signup_login("bob@example.com", "laptop").await;
    for device in ["phone", "tablet", "desk", "tv"] {
        app.login("ada@example.com", PASSWORD, device, &a.user)
            .await;
    }
    // Ada's chain: organization.created, five user.login.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/audit-logs?action=user.&limit=2&cursor={c}"),
            None => "/v1/audit-logs?action=user.&limit=2".to_owned(),
        };
        let res = app.org_call(Method::GET, &path, &a, None).await;
        assert_eq!(res.status(), 200);
        let page: Value = res.json().await.unwrap();
        for e in page["items"].as_array().unwrap() {
            assert_eq!(e["action"], "user.login");
            seen.push(e["seq"].as_u64().unwrap());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, vec![6, 5, 4, 3, 2], "newest first, each once");

    let res = app
        .org_call(Method::GET, "/v1/audit-logs?action=organization.", &a, None)
        .await;
    let page: Value = res.json().await.unwrap();
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    // Personal data is opened for a reader with audit.read.
    assert_eq!(items[0]["ip"], "127.0.0.1");
    assert!(items[0]["details"]["owner"].is_string());
    assert!(!page.to_string().contains(&other.user));

    let res = app
        .org_call(Method::GET, "/v1/audit-logs?outcome=maybe", &a, None)
        .await;
    assert_eq!(res.status(), 422);
    app.stop().await;
}

#[tokio::test]
async fn export_streams_every_matching_event_as_ndjson() {
    let app = TestApp::spawn().await;
    let a = app.signup_login("ada@example.com", "laptop").await;
    for i in 0..250 {
        app.kernel
            .keyring()
            .rotate_org(gatehouse_core::OrgId::parse(&a.org).unwrap())
            .await
            .unwrap_or_else(|e| panic!("rotation {i}: {e}"));
    }
    let res = app
        .org_call(Method::GET, "/v1/audit-logs/export", &a, None)
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/x-ndjson");
    let text = res.text().await.unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // organization.created, user.login, 250 key.rotated and, recorded before the export
    // started, its own audit.exported: more than one export page.
    assert_eq!(lines.len(), 253);
    assert_eq!(lines[0]["action"], "audit.exported");
    let seqs: Vec<u64> = lines.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    let mut expected: Vec<u64> = (1..=seqs.len() as u64).collect();
    expected.reverse();
    assert_eq!(
        seqs, expected,
        "every event once, newest first, across export pages"
    );
    app.stop().await;
}

/// Issue 18, finding 13: a caller's `traceparent` is its trace, never our request id: the audit
/// event of a sign-up carries the id `x-request-id` returned, not the trace the caller chose.
#[tokio::test]
async fn a_callers_traceparent_never_becomes_the_request_id_in_the_audit_log() {
    let app = TestApp::spawn().await;
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let res = app
        .client
        .post(app.url("/v1/auth/signup"))
        .header("traceparent", format!("00-{trace}-00f067aa0ba902b7-01"))
        .json(&crate::support::signup_body("trace@example.com"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    let request_id = res.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_ne!(request_id, trace);
    let signed = app.login("trace@example.com", PASSWORD, "cli", "").await;
    let events = app.audit_events(&signed.org).await;
    let events: Vec<_> = events
        .into_iter()
        .filter(|e| e.action == "organization.created")
        .collect();
    assert!(!events.is_empty());
    for e in &events {
        assert_eq!(e.request_id.as_deref(), Some(request_id.as_str()), "{e:?}");
    }
    app.stop().await;
}
