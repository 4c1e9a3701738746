//! Signed unsubscribe and the opt-out list over HTTP and real SMTP (issue 21, F2): the product's
//! mail carries RFC 8058's headers; a link with one byte changed is refused; the one-click POST
//! opts out at once; a message queued before the opt-out is skipped (aiosmtpd receives nothing
//! for that address while the other recipient gets theirs); later ones are not queued at all.

use serde_json::{Value, json};

use crate::interop::SmtpSink;
use crate::recovery::with_smtp;
use crate::support::{TestApp, expect_problem};

const S1: &str = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";
const PUBLIC: &str = "https://gatehouse.acme.test";

async fn app_with(sink: &SmtpSink) -> TestApp {
    let dir = crate::support::temp_dir();
    let f = dir.join("newsletter.key");
    std::fs::write(&f, S1).unwrap();
    std::fs::set_permissions(&f, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    with_smtp(sink, move |raw| {
        raw.service_auth.secret_files = vec![f];
        raw.mail.public_url = PUBLIC.into();
        raw.mail.templates = vec![gatehouse::config::MailTemplateConfig {
            name: "digest".into(),
            subject: "Your {{period}} digest".into(),
            text: "Hello {{name}}, here is your digest.".into(),
            html: Some("<p>Hello <b>{{name}}</b></p>".into()),
        }];
    })
    .await
}

async fn send(app: &TestApp, body: Value) -> reqwest::Response {
    app.client
        .post(app.url("/internal/v1/messages"))
        .header("x-service-auth", S1)
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn sent(app: &TestApp, body: Value) -> Value {
    let res = send(app, body).await;
    assert_eq!(res.status(), 202, "{:?}", res.text().await);
    res.json().await.unwrap()
}

fn news(org: &str, to: &str) -> Value {
    json!({"organization_id": org, "to": to, "list": "news",
           "subject": "March news", "text": "What happened in March."})
}

/// The raw message sent to `to`, and the path and query of its List-Unsubscribe link.
fn unsubscribe_of(raw: &[String], to: &str) -> (String, String) {
    let m = raw
        .iter()
        .find(|m| m.contains(&format!("To: {to}")))
        .unwrap_or_else(|| panic!("no message to {to}"))
        .clone();
    let header = m
        .lines()
        .find_map(|l| l.strip_prefix("List-Unsubscribe: "))
        .expect("the message has no List-Unsubscribe header");
    let url = header.trim().trim_start_matches('<').trim_end_matches('>');
    let path = url
        .strip_prefix(PUBLIC)
        .expect("the link points at mail.public_url");
    (m.clone(), path.to_owned())
}

fn tamper(path: &str, at: &str) -> String {
    let i = path.find(at).unwrap() + at.len();
    let mut bytes = path.as_bytes().to_vec();
    bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
    String::from_utf8(bytes).unwrap()
}

#[tokio::test]
async fn one_click_opts_out_and_a_message_queued_before_is_skipped_while_others_arrive() {
    let mut sink = SmtpSink::started();
    let app = app_with(&sink).await;
    let owner = app.signup_login("owner@example.com", "laptop").await;
    // Sign-up's own verification mail goes first.
    sink.wait_for(1).await;
    for to in ["alice@example.com", "bob@example.com"] {
        assert_eq!(sent(&app, news(&owner.org, to)).await["status"], "queued");
    }
    sink.wait_for(3).await;
    let raw = sink.raw_messages();
    let (alice_mail, alice_link) = unsubscribe_of(&raw, "alice@example.com");
    assert!(
        alice_mail.contains("List-Unsubscribe-Post: List-Unsubscribe=One-Click"),
        "{alice_mail}"
    );
    assert!(
        !alice_link.contains("alice"),
        "the address is in the link: {alice_link}"
    );

    // One changed byte anywhere that is signed: refused, nothing changes.
    for at in ["sig=", "r=", "o="] {
        let bad = tamper(&alice_link, at);
        expect_problem(app.get(&bad).await, 400, "invalid_token").await;
        let res = app.client.post(app.url(&bad)).send().await.unwrap();
        expect_problem(res, 400, "invalid_token").await;
    }
    let other_list = alice_link.replace("l=news", "l=newz");
    expect_problem(app.get(&other_list).await, 400, "invalid_token").await;

    // The confirmation page changes nothing and runs nothing.
    let res = app.get(&alice_link).await;
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert_eq!(
        res.headers()["content-security-policy"],
        "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    );
    let page = res.text().await.unwrap();
    assert!(
        page.contains("<form method=\"post\"") && !page.contains("<script"),
        "{page}"
    );

    // Delivery is held (the relay is down) while two more messages wait in the outbox.
    sink.stop();
    for to in ["alice@example.com", "bob@example.com"] {
        assert_eq!(sent(&app, news(&owner.org, to)).await["status"], "queued");
    }
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    // RFC 8058: a POST with the one-click body, no credentials, opts out at once.
    let res = app
        .client
        .post(app.url(&alice_link))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("List-Unsubscribe=One-Click")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.text().await.unwrap().contains("news"));
    // The relay is back and the retry falls due: Bob's arrives, Alice's is skipped.
    sink.start();
    app.clock.advance(time::Duration::seconds(30));
    let delivered = sink.wait_for(4).await;
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    let delivered_now = sink.messages();
    assert_eq!(delivered_now.len(), 4, "{delivered:?}");
    let to_alice = delivered_now
        .iter()
        .filter(|m| m.contains("X-Envelope-To: alice@example.com"))
        .count();
    assert_eq!(to_alice, 1, "Alice got a message after opting out");
    assert!(
        app.metrics()
            .await
            .contains("gatehouse_mail_deliveries_total{outcome=\"skipped\"} 1")
    );

    // Later messages to her on that list are not queued; another list still reaches her.
    assert_eq!(
        sent(&app, news(&owner.org, "ALICE@example.com")).await["status"],
        "suppressed"
    );
    let billing = sent(
        &app,
        json!({"organization_id": owner.org, "to": "alice@example.com", "list": "billing",
               "template": "digest", "variables": {"period": "weekly", "name": "<Alice>"}}),
    )
    .await;
    assert_eq!(billing["status"], "queued");
    let all = sink.wait_for(5).await;
    let digest = all.last().unwrap();
    assert!(digest.contains("Subject: Your weekly digest") && digest.contains("Hello <Alice>"));
    let raw = sink.raw_messages();
    assert!(
        raw.last().unwrap().contains("&lt;Alice&gt;"),
        "the html part was not escaped"
    );

    let events = app.audit_events(&owner.org).await;
    assert!(events.iter().any(|e| e.action == "mail.opted_out"));
    assert_eq!(
        events.iter().filter(|e| e.action == "mail.queued").count(),
        5
    );
    app.chain_verifies(&owner.org).await;
    app.stop().await;
}

#[tokio::test]
async fn bad_messages_are_refused_and_nothing_is_queued() {
    let sink = SmtpSink::started();
    let app = app_with(&sink).await;
    let owner = app.signup_login("owner@example.com", "laptop").await;
    let base = news(&owner.org, "alice@example.com");
    let with = |k: &str, v: Value| {
        let mut b = base.clone();
        b.as_object_mut().unwrap().insert(k.into(), v);
        b
    };
    for (body, field) in [
        (
            with("to", json!("alice@example.com, eve@example.com")),
            "to",
        ),
        (
            with("to", json!("alice@example.com\r\nBcc: eve@example.com")),
            "to",
        ),
        (with("list", json!("News Letter")), "list"),
        (
            with("subject", json!("a\r\nBcc: eve@example.com")),
            "subject",
        ),
        (with("template", json!("digest")), "template"),
        (
            json!({"organization_id": owner.org, "to": "a@example.com", "list": "news",
                   "template": "digest", "variables": {"period": "weekly"}}),
            "variables",
        ),
        (
            json!({"organization_id": owner.org, "to": "a@example.com", "list": "news",
                   "template": "nope"}),
            "template",
        ),
    ] {
        let problem = expect_problem(send(&app, body).await, 422, "validation_failed").await;
        assert_eq!(problem["field"], field);
    }
    let unknown = json!({"organization_id": uuid::Uuid::nil(), "to": "a@example.com",
                         "list": "news", "subject": "s", "text": "t"});
    expect_problem(send(&app, unknown).await, 404, "not_found").await;
    let res = app
        .client
        .post(app.url("/internal/v1/messages"))
        .json(&base)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401, "no service secret");
    let events = app.audit_events(&owner.org).await;
    assert!(
        !events.iter().any(|e| e.action == "mail.queued"),
        "a refused message was queued"
    );
    app.stop().await;
}
