//! Password reset (A7), email verification (A8) and mail delivery, through a real SMTP
//! conversation with aiosmtpd on 127.0.0.1.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crate::interop::{SmtpSink, link_token};
use crate::support::{PASSWORD, TestApp, expect_problem, signup_body};

pub(crate) async fn with_smtp(
    sink: &SmtpSink,
    edit: impl FnOnce(&mut gatehouse::config::RawConfig),
) -> TestApp {
    let port = sink.port;
    TestApp::spawn_with(move |raw| {
        raw.mail.transport = gatehouse::config::MailTransportKind::Smtp;
        raw.mail.smtp.host = "127.0.0.1".into();
        raw.mail.smtp.port = port;
        raw.mail.smtp.tls = gatehouse::config::SmtpTlsMode::None;
        raw.mail.smtp.timeout_secs = 2;
        raw.mail.poll_interval_ms = 100;
        raw.mail.product_name = "Acme Cloud".into();
        raw.mail.base_url = "https://app.acme.test".into();
        edit(raw);
    })
    .await
}

fn to_of(message: &str) -> String {
    message
        .lines()
        .find_map(|l| l.strip_prefix("X-Envelope-To: "))
        .unwrap()
        .trim()
        .to_owned()
}

#[tokio::test]
async fn reset_and_verification_complete_over_smtp_tokens_work_once_and_a_reset_ends_every_session()
{
    let sink = SmtpSink::started();
    let app = with_smtp(&sink, |_| {}).await;
    let ada = app.signup_login("ada@example.com", "laptop").await;
    let phone = app
        .login("ada@example.com", PASSWORD, "phone", &ada.user)
        .await;

    // Signup mailed a verification link.
    let mail = sink.wait_for(1).await;
    assert_eq!(to_of(&mail[0]), "ada@example.com");
    assert!(
        mail[0].contains("Subject: Confirm your email for Acme Cloud"),
        "{}",
        mail[0]
    );
    assert!(mail[0].contains("X-Has-Html: yes"), "{}", mail[0]);
    let verify = link_token(&mail[0], "https://app.acme.test/verify-email");
    assert_eq!(verify.len(), 43);
    let res = app
        .post_json("/v1/auth/verify-email", &json!({"token": verify}))
        .await;
    assert_eq!(res.status(), 204);
    let res = app
        .post_json("/v1/auth/verify-email", &json!({"token": verify}))
        .await;
    expect_problem(res, 400, "invalid_token").await;
    // A refreshed token says so.
    let res = app
        .post_json("/v1/auth/refresh", &json!({"refresh_token": ada.refresh}))
        .await;
    assert_eq!(res.status(), 200);

    // Reset: the mail carries a link with a one-time token, and never a password.
    let res = app
        .post_json(
            "/v1/auth/password-reset",
            &json!({"email": "ada@example.com"}),
        )
        .await;
    assert_eq!(res.status(), 202);
    let mail = sink.wait_for(2).await;
    let reset_mail = &mail[1];
    assert_eq!(to_of(reset_mail), "ada@example.com");
    assert!(reset_mail.contains("Subject: Reset your Acme Cloud password"));
    assert!(!reset_mail.contains(PASSWORD));
    let token = link_token(reset_mail, "https://app.acme.test/reset-password");

    // The policy applies to the new password.
    let res = app
        .post_json(
            "/v1/auth/password-reset/confirm",
            &json!({"token": token, "new_password": "password"}),
        )
        .await;
    expect_problem(res, 422, "validation_failed").await;
    let new_password = "another quite long passphrase";
    let res = app
        .post_json(
            "/v1/auth/password-reset/confirm",
            &json!({"token": token, "new_password": new_password}),
        )
        .await;
    assert_eq!(res.status(), 204);
    // Once only.
    let res = app
        .post_json(
            "/v1/auth/password-reset/confirm",
            &json!({"token": token, "new_password": "yet another long passphrase"}),
        )
        .await;
    expect_problem(res, 400, "invalid_token").await;

    // Every earlier session is refused: access tokens and refresh tokens alike.
    for access in [&ada.access, &phone.access] {
        let res = app.call(Method::GET, "/v1/me", access, None, None).await;
        expect_problem(res, 401, "unauthenticated").await;
    }
    let res = app
        .post_json("/v1/auth/refresh", &json!({"refresh_token": phone.refresh}))
        .await;
    expect_problem(res, 401, "unauthenticated").await;
    // The old password no longer works; the new one does.
    let res = app
        .post_json(
            "/v1/auth/login",
            &json!({"email": "ada@example.com", "password": PASSWORD}),
        )
        .await;
    expect_problem(res, 401, "invalid_credentials").await;
    app.login("ada@example.com", new_password, "laptop", &ada.user)
        .await;
    // And the account was told.
    let mail = sink.wait_for(3).await;
    assert!(mail[2].contains("Subject: Your Acme Cloud password was changed"));

    app.stop().await;
}

#[tokio::test]
async fn reset_and_verification_tokens_expire() {
    let sink = SmtpSink::started();
    let app = with_smtp(&sink, |_| {}).await;
    let ada = app.signup_login("ada@example.com", "laptop").await;
    let verify = link_token(&sink.wait_for(1).await[0], "/verify-email");
    let res = app
        .post_json(
            "/v1/auth/password-reset",
            &json!({"email": "ada@example.com"}),
        )
        .await;
    assert_eq!(res.status(), 202);
    let reset = link_token(&sink.wait_for(2).await[1], "/reset-password");

    app.clock.advance(time::Duration::minutes(31));
    let res = app
        .post_json(
            "/v1/auth/password-reset/confirm",
            &json!({"token": reset, "new_password": "another quite long passphrase"}),
        )
        .await;
    expect_problem(res, 400, "invalid_token").await;
    // The old password still works; the session too.
    let res = app
        .call(Method::GET, "/v1/me", &ada.access, None, None)
        .await;
    assert_eq!(
        res.status(),
        401,
        "the access token itself expired after 15 minutes"
    );
    app.login("ada@example.com", PASSWORD, "laptop", &ada.user)
        .await;

    app.clock.advance(time::Duration::hours(24));
    let res = app
        .post_json("/v1/auth/verify-email", &json!({"token": verify}))
        .await;
    expect_problem(res, 400, "invalid_token").await;
    // Asking again sends a fresh link that works.
    let fresh = app
        .login("ada@example.com", PASSWORD, "laptop", &ada.user)
        .await;
    let res = app
        .call(
            Method::POST,
            "/v1/me/email/verification",
            &fresh.access,
            None,
            None,
        )
        .await;
    assert_eq!(res.status(), 202);
    // Asking again within the minute sends nothing (the throttle every instance shares).
    let res = app
        .call(
            Method::POST,
            "/v1/me/email/verification",
            &fresh.access,
            None,
            None,
        )
        .await;
    expect_problem(res, 429, "too_many_attempts").await;
    let again = link_token(&sink.wait_for(3).await[2], "/verify-email");
    let res = app
        .post_json("/v1/auth/verify-email", &json!({"token": again}))
        .await;
    assert_eq!(res.status(), 204);
    let res = app
        .call(
            Method::POST,
            "/v1/me/email/verification",
            &fresh.access,
            None,
            None,
        )
        .await;
    expect_problem(res, 409, "conflict").await;
    app.stop().await;
}

/// Status, body and headers of a reset request, without the per-request ones.
async fn reset_answer(
    app: &TestApp,
    email: &str,
) -> (u16, Vec<(String, String)>, String, Duration) {
    let started = Instant::now();
    let res = app
        .post_json("/v1/auth/password-reset", &json!({"email": email}))
        .await;
    let status = res.status().as_u16();
    let mut headers: Vec<(String, String)> = res
        .headers()
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "date" | "x-request-id"))
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_owned()))
        .collect();
    headers.sort();
    let body = res.text().await.unwrap();
    (status, headers, body, started.elapsed())
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

// Several workers, as `serve` runs: the work started for a known address runs beside the
// answers, not in front of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reset_request_answers_identically_for_known_and_unknown_addresses() {
    let sink = SmtpSink::started();
    let app = with_smtp(&sink, |_| {}).await;
    app.signup_login("ada@example.com", "laptop").await;
    sink.wait_for(1).await;
    let (mut known, mut unknown) = (Vec::new(), Vec::new());
    let mut answers = std::collections::HashSet::new();
    for _ in 0..41 {
        let (s, h, b, t) = reset_answer(&app, "ada@example.com").await;
        answers.insert((s, h, b));
        known.push(t);
        let (s, h, b, t) = reset_answer(&app, "nobody@example.com").await;
        answers.insert((s, h, b));
        unknown.push(t);
    }
    assert_eq!(answers.len(), 1, "the answers differ: {answers:?}");
    let (status, _, body) = answers.into_iter().next().unwrap();
    assert_eq!(status, 202);
    assert_eq!(body, r#"{"status":"accepted"}"#);
    // The answer leaves before any lookup: the two medians are within 2 ms (an Argon2id
    // verification, the expensive thing to leak, takes tens).
    let (k, u) = (median(known), median(unknown));
    let gap = k.abs_diff(u);
    assert!(gap < Duration::from_millis(2), "known {k:?}, unknown {u:?}");
    // Only the known address got mail, and one reset link a minute: the verification and one
    // reset, not 41 (the form cannot flood a mailbox).
    sink.wait_for(2).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mail = sink.messages();
    assert_eq!(mail.len(), 2);
    assert!(mail.iter().all(|m| to_of(m) == "ada@example.com"));
    // A minute later, another request sends another link.
    app.clock.advance(time::Duration::seconds(61));
    let _ = reset_answer(&app, "ada@example.com").await;
    assert_eq!(sink.wait_for(3).await.len(), 3);
    app.stop().await;
}

#[tokio::test]
async fn mail_waits_in_the_outbox_while_smtp_is_down_and_goes_out_when_it_returns() {
    let mut sink = SmtpSink::stopped();
    let app = with_smtp(&sink, |_| {}).await;
    // Requests succeed while the relay is unreachable.
    let res = app
        .post_json("/v1/auth/signup", &signup_body("ada@example.com"))
        .await;
    assert_eq!(res.status(), 202);
    let res = app
        .post_json(
            "/v1/auth/password-reset",
            &json!({"email": "ada@example.com"}),
        )
        .await;
    assert_eq!(res.status(), 202);
    // Readiness names the backlog and the failure, and stays ready.
    let mut seen = None;
    for _ in 0..100 {
        let (status, body) = app.ready_details().await;
        assert_eq!(status, 200);
        let mail = body["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "mail")
            .cloned()
            .unwrap();
        if mail["ok"] == false && mail["detail"].as_str().unwrap().starts_with("2 messages") {
            seen = Some(mail);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mail = seen.expect("readiness never reported the failing relay");
    assert!(mail["detail"].as_str().unwrap().contains("smtp"), "{mail}");
    assert!(sink.messages().is_empty());
    // So do the metrics.
    let text = app.metrics().await;
    assert!(
        text.contains("gatehouse_degraded{feature=\"mail\"} 1"),
        "{text}"
    );
    assert!(text.contains("gatehouse_mail_outbox_depth 2"), "{text}");
    assert!(
        text.contains("gatehouse_errors_total{component=\"smtp\"}"),
        "{text}"
    );

    // The relay comes back; once the backoff has passed the mail goes out.
    sink.start();
    app.clock.advance(time::Duration::minutes(16));
    let mail = sink.wait_for(2).await;
    assert_eq!(mail.len(), 2);
    // The relay's 250 lands before the outbox row is marked: readiness catches up shortly.
    let mut check = Value::Null;
    for _ in 0..100 {
        let (_, body) = app.ready_details().await;
        check = body["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "mail")
            .cloned()
            .unwrap();
        if check["ok"] == true {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(check["ok"], true, "{check}");
    let text = app.metrics().await;
    assert!(
        text.contains("gatehouse_degraded{feature=\"mail\"} 0"),
        "{text}"
    );
    assert!(text.contains("gatehouse_mail_outbox_depth 0"), "{text}");
    assert_eq!(check["detail"], "0 messages waiting");
    app.stop().await;
}

#[tokio::test]
async fn changing_the_password_needs_the_current_one_and_ends_the_other_sessions() {
    let app = TestApp::spawn().await;
    let ada = app.signup_login("ada@example.com", "laptop").await;
    let phone = app
        .login("ada@example.com", PASSWORD, "phone", &ada.user)
        .await;
    let res = app
        .call(
            Method::POST,
            "/v1/me/password",
            &ada.access,
            None,
            Some(json!({"current_password": "wrong wrong wrong", "new_password": "another quite long passphrase"})),
        )
        .await;
    expect_problem(res, 401, "invalid_credentials").await;
    let res = app
        .call(
            Method::POST,
            "/v1/me/password",
            &ada.access,
            None,
            Some(json!({"current_password": PASSWORD, "new_password": "another quite long passphrase"})),
        )
        .await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["sessions_revoked"], 1);
    let res = app
        .call(Method::GET, "/v1/me", &phone.access, None, None)
        .await;
    expect_problem(res, 401, "unauthenticated").await;
    let res = app
        .call(Method::GET, "/v1/me", &ada.access, None, None)
        .await;
    assert_eq!(res.status(), 200);
    app.stop().await;
}

/// Issue 18, finding 9: a reset link mailed before a password change stops working with it.
#[tokio::test]
async fn a_password_change_spends_every_reset_link_mailed_before_it() {
    let sink = SmtpSink::started();
    let app = with_smtp(&sink, |_| {}).await;
    let ada = app.signup_login("ada@example.com", "laptop").await;
    let res = app
        .post_json(
            "/v1/auth/password-reset",
            &json!({"email": "ada@example.com"}),
        )
        .await;
    assert_eq!(res.status(), 202);
    let reset = link_token(&sink.wait_for(2).await[1], "/reset-password");
    let res = app
        .call(
            Method::POST,
            "/v1/me/password",
            &ada.access,
            None,
            Some(json!({"current_password": PASSWORD, "new_password": "another quite long passphrase"})),
        )
        .await;
    assert_eq!(res.status(), 200);
    let res = app
        .post_json(
            "/v1/auth/password-reset/confirm",
            &json!({"token": reset, "new_password": "a third quite long passphrase"}),
        )
        .await;
    expect_problem(res, 400, "invalid_token").await;
    // The changed password is the one that signs in.
    app.login(
        "ada@example.com",
        "another quite long passphrase",
        "laptop",
        &ada.user,
    )
    .await;
    app.stop().await;
}

#[tokio::test]
async fn an_unverified_account_may_only_read_when_so_configured() {
    let sink = SmtpSink::started();
    let app = with_smtp(&sink, |raw| {
        raw.identity.unverified_access = "read_only".into()
    })
    .await;
    let ada = app.signup_login("ada@example.com", "laptop").await;
    let res = app
        .org_call(Method::GET, "/v1/organization/members", &ada, None)
        .await;
    assert_eq!(res.status(), 200);
    let invite = json!({"email": "m@example.com", "role": "member"});
    let res = app
        .org_call(
            Method::POST,
            "/v1/organization/invitations",
            &ada,
            Some(invite.clone()),
        )
        .await;
    expect_problem(res, 403, "email_unverified").await;
    let token = link_token(&sink.wait_for(1).await[0], "/verify-email");
    let res = app
        .post_json("/v1/auth/verify-email", &json!({"token": token}))
        .await;
    assert_eq!(res.status(), 204);
    let res = app
        .post_json("/v1/auth/refresh", &json!({"refresh_token": ada.refresh}))
        .await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    let mut ada = ada;
    ada.access = body["access_token"].as_str().unwrap().to_owned();
    let res = app
        .org_call(
            Method::POST,
            "/v1/organization/invitations",
            &ada,
            Some(invite),
        )
        .await;
    assert_eq!(res.status(), 201);
    app.stop().await;
}

/// Issue 18, finding 11: the public readiness probe is no oracle. With the relay down, a reset
/// requested for a registered address adds a message to the outbox; the public body is the same
/// before and after (names and ok only), while operators see the backlog.
#[tokio::test]
async fn the_public_readiness_probe_does_not_move_when_a_reset_is_mailed() {
    let sink = SmtpSink::stopped();
    let app = with_smtp(&sink, |_| {}).await;
    let res = app
        .post_json("/v1/auth/signup", &signup_body("ada@example.com"))
        .await;
    assert_eq!(res.status(), 202);
    let public = || async {
        let res = app.get("/health/ready").await;
        assert_eq!(res.status(), 200);
        res.json::<Value>().await.unwrap()
    };
    let waiting = || async {
        let (_, body) = app.ready_details().await;
        body["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "mail")
            .unwrap()["detail"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    // Wait until the first delivery attempt has failed, so "ok" is settled.
    for _ in 0..100 {
        if waiting().await.contains("smtp") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let before = public().await;
    let backlog_before = waiting().await;
    for email in ["ada@example.com", "nobody@example.com"] {
        let res = app
            .post_json("/v1/auth/password-reset", &json!({"email": email}))
            .await;
        assert_eq!(res.status(), 202);
    }
    let backlog_after = waiting().await;
    assert_ne!(
        backlog_before, backlog_after,
        "operators see the backlog grow"
    );
    let after = public().await;
    assert_eq!(
        before, after,
        "the public probe moved: {before} then {after}"
    );
    assert!(
        after["checks"].as_array().unwrap().iter().all(|c| c
            .as_object()
            .unwrap()
            .keys()
            .all(|k| k == "name" || k == "ok")),
        "{after}"
    );
    app.stop().await;
}

#[tokio::test]
async fn mail_the_relay_refuses_for_good_goes_dead_after_bounded_attempts() {
    let sink = SmtpSink::refusing();
    let app = with_smtp(&sink, |raw| {
        raw.mail.max_refusals = 3;
        raw.mail.max_attempts = 5;
    })
    .await;
    let res = app
        .post_json("/v1/auth/signup", &signup_body("nobody@example.com"))
        .await;
    assert_eq!(res.status(), 202);
    // Each retry falls due once the clock passes its backoff (5 s, 10 s, ...).
    let mut dead = false;
    for _ in 0..200 {
        app.clock.advance(time::Duration::minutes(1));
        tokio::time::sleep(Duration::from_millis(50)).await;
        let text = app.metrics().await;
        if text.contains("gatehouse_mail_deliveries_total{outcome=\"dead\"} 1") {
            dead = true;
            break;
        }
    }
    assert!(dead, "the refused message never went dead");
    let text = app.metrics().await;
    assert!(
        text.contains("gatehouse_mail_deliveries_total{outcome=\"retry\"} 2"),
        "{text}"
    );
    assert!(text.contains("gatehouse_mail_outbox_depth 0"), "{text}");
    // Given up, it is never tried again: no further attempts however long we wait.
    app.clock.advance(time::Duration::days(1));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let text = app.metrics().await;
    assert!(
        text.contains("gatehouse_mail_deliveries_total{outcome=\"retry\"} 2"),
        "{text}"
    );
    // Readiness no longer counts it as waiting.
    let (_, body) = app.ready_details().await;
    let mail = body["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "mail")
        .cloned()
        .unwrap();
    assert!(
        !mail["detail"].as_str().unwrap().starts_with("1 message"),
        "{mail}"
    );
    assert!(sink.messages().is_empty());
}
