//! Who completes a sign-in through a provider, and where (issue 24's review findings): one
//! callback per provider, whose state must be bound to that provider (mix-up, RFC 9700 4.4), and
//! a completion that needs the start's proof, so holding the callback's URL signs nobody in:
//! the `__Host-gatehouse_sso` cookie in cookie mode, the `flow_secret` in bearer mode. Against
//! `oidc-provider`, as `sso_signin.rs`.

use serde_json::{Value, json};

use crate::oidc_provider::{
    FailMode, OidcAccount, OidcClient, OidcOptions, OidcProvider, query_param,
};
use crate::sso_signin::{
    Acme, RETURN_URL, acme, acme_with, callback, callback_uri, completion, sign_in, sso_config,
    start,
};
use crate::support::{TestApp, expect_problem};

/// A cookie-mode start: the authorization URL and the cookie to send back.
pub(crate) async fn cookie_start(app: &TestApp, org: &str) -> (String, String) {
    let res = app
        .post_json(
            &format!("/v1/auth/sso/{org}/start"),
            &json!({"session_mode": "cookie"}),
        )
        .await;
    assert_eq!(res.status(), 200);
    let cookie = res
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("__Host-gatehouse_sso="))
        .unwrap();
    let body: Value = res.json().await.unwrap();
    assert!(body.get("flow_secret").is_none(), "{body}");
    (
        body["authorization_url"].as_str().unwrap().to_owned(),
        cookie.split(';').next().unwrap().to_owned(),
    )
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

#[tokio::test]
async fn a_state_completes_only_at_its_own_providers_callback() {
    let Acme { app, ada, op, .. } =
        acme(vec![OidcAccount::new("carol-at-idp", "carol@acme.test")]).await;
    let started = start(&app, &ada.org).await;
    assert_eq!(
        query_param(&started.url, "redirect_uri").unwrap(),
        callback_uri(&ada.org),
        "the redirect URI names the organisation's provider"
    );
    // The configuration shows the redirect URI to register at the provider: the same one.
    let res = app
        .org_call(reqwest::Method::GET, "/v1/sso/config", &ada, None)
        .await;
    assert_eq!(res.status(), 200);
    let config: Value = res.json().await.unwrap();
    assert_eq!(
        config["redirect_uri"],
        json!(callback_uri(&ada.org)),
        "{config}"
    );
    let back = op.authorize(&started.url, "carol-at-idp").await;
    let (path, body) = completion(&back, &started.secret);
    assert_eq!(path, format!("/v1/auth/sso/{}/callback", ada.org));
    // The same answer at another provider's callback (a platform provider's name, another
    // organisation's id): refused before the code goes anywhere, and the state not spent.
    let elsewhere = gatehouse_core::OrgId::new(&app.clock).to_string();
    for other in ["op", elsewhere.as_str()] {
        let res = app
            .post_json(&format!("/v1/auth/sso/{other}/callback"), &body)
            .await;
        expect_problem(res, 400, "oauth_state_invalid").await;
    }
    let res = app
        .post_json("/v1/auth/sso/acme.test/callback", &body)
        .await;
    expect_problem(res, 422, "validation_failed").await;
    assert_eq!(op.token_requests("all").await, 0, "no code was sent");
    let res = callback(&app, &started, &back).await;
    assert_eq!(res.status(), 200, "{:?}", res.text().await);
    let log: Vec<String> = app
        .audit_events(&ada.org)
        .await
        .into_iter()
        .map(|e| e.action)
        .collect();
    assert!(log.contains(&"oauth.state_refused".to_owned()), "{log:?}");
}

#[tokio::test]
async fn holding_the_callbacks_url_completes_no_sign_in() {
    let Acme { app, ada, op, .. } =
        acme(vec![OidcAccount::new("carol-at-idp", "carol@acme.test")]).await;
    let here = format!("/v1/auth/sso/{}/callback", ada.org);

    // Bearer mode: the URL (code, state, iss) without the start's flow_secret, with another
    // sign-in's, or as a browser's GET: refused, nothing spent or exchanged.
    let started = start(&app, &ada.org).await;
    let other = start(&app, &ada.org).await;
    let back = op.authorize(&started.url, "carol-at-idp").await;
    let (_, body) = completion(&back, &started.secret);
    let mut without = body.clone();
    without.as_object_mut().unwrap().remove("flow_secret");
    expect_problem(app.post_json(&here, &without).await, 422, "invalid_body").await;
    let mut wrong = body.clone();
    wrong["flow_secret"] = json!(other.secret);
    expect_problem(app.post_json(&here, &wrong).await, 403, "sso_refused").await;
    let query = reqwest::Url::parse(&back)
        .unwrap()
        .query()
        .unwrap()
        .to_owned();
    // A browser's GET without the cookie is only sent on to the product's page.
    let res = no_redirects()
        .get(app.url(&format!("{here}?{query}")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    let location = res.headers()["location"].to_str().unwrap();
    assert!(
        location.starts_with(&format!("{RETURN_URL}#")),
        "{location}"
    );
    assert!(res.headers().get("set-cookie").is_none(), "no session set");
    assert_eq!(op.token_requests("all").await, 0);
    let res = app.post_json(&here, &body).await;
    assert_eq!(res.status(), 200, "{:?}", res.text().await);

    // Cookie mode: its state completes only in the browser holding its cookie; the cookie's
    // value is no bearer-mode secret, and a bearer-mode secret is no cookie.
    let (url, cookie) = cookie_start(&app, &ada.org).await;
    let back = op.authorize(&url, "carol-at-idp").await;
    let cookie_value = cookie.split_once('=').unwrap().1.to_owned();
    let (_, body) = completion(&back, &cookie_value);
    expect_problem(app.post_json(&here, &body).await, 403, "sso_refused").await;
    let query = reqwest::Url::parse(&back)
        .unwrap()
        .query()
        .unwrap()
        .to_owned();
    let bearer = start(&app, &ada.org).await;
    let res = no_redirects()
        .get(app.url(&format!("{here}?{query}")))
        .header("cookie", format!("__Host-gatehouse_sso={}", bearer.secret))
        .send()
        .await
        .unwrap();
    // A cookie that proves nothing for this state is no cookie: only sent on, nothing spent.
    assert_eq!(res.status(), 303);
    let location = res.headers()["location"].to_str().unwrap();
    assert!(
        location.starts_with(&format!("{RETURN_URL}#")),
        "{location}"
    );
    assert!(res.headers().get("set-cookie").is_none(), "no session set");
    let exchanged = op.token_requests("all").await;
    assert_eq!(exchanged, 1, "only the bearer-mode sign-in's code");
    let res = no_redirects()
        .get(app.url(&format!("{here}?{query}")))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    // Signed in: the session's cookies, and the browser sent on to the product.
    assert_eq!(res.status(), 303, "{:?}", res.text().await);
    assert_eq!(res.headers()["location"].to_str().unwrap(), RETURN_URL);
    assert!(
        res.headers()
            .get_all("set-cookie")
            .iter()
            .any(|c| c.to_str().unwrap().starts_with("__Host-gatehouse_access=")),
        "the session's cookies"
    );
    assert_eq!(op.token_requests("all").await, 2);
}

/// A cookie left by an abandoned cookie-mode start does not block a later bearer-mode sign-in in
/// the same browser: its callback hands the answer to the product's page, whose flow_secret
/// completes it; the cookie-mode sign-in still completes only with its own cookie.
#[tokio::test]
async fn a_leftover_sign_in_cookie_does_not_block_a_bearer_hand_off() {
    let Acme { app, ada, op, .. } =
        acme(vec![OidcAccount::new("carol-at-idp", "carol@acme.test")]).await;
    let (abandoned, cookie) = cookie_start(&app, &ada.org).await;
    let started = start(&app, &ada.org).await;
    let back = op.authorize(&started.url, "carol-at-idp").await;
    let query = reqwest::Url::parse(&back)
        .unwrap()
        .query()
        .unwrap()
        .to_owned();
    let res = no_redirects()
        .get(app.url(&format!("/v1/auth/sso/{}/callback?{query}", ada.org)))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303, "{:?}", res.text().await);
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    let (page, fragment) = location.split_once('#').unwrap();
    assert_eq!(page, RETURN_URL);
    assert_eq!(op.token_requests("all").await, 0, "nothing spent or sent");
    let mut body = json!({"flow_secret": started.secret});
    for (k, v) in url_pairs(fragment) {
        body[k] = json!(v);
    }
    let res = app
        .post_json(&format!("/v1/auth/sso/{}/callback", ada.org), &body)
        .await;
    assert_eq!(res.status(), 200, "{:?}", res.text().await);
    // The abandoned start's cookie still completes its own sign-in.
    let back = op.authorize(&abandoned, "carol-at-idp").await;
    let query = reqwest::Url::parse(&back)
        .unwrap()
        .query()
        .unwrap()
        .to_owned();
    let res = no_redirects()
        .get(app.url(&format!("/v1/auth/sso/{}/callback?{query}", ada.org)))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303, "{:?}", res.text().await);
    assert_eq!(res.headers()["location"].to_str().unwrap(), RETURN_URL);
}

#[tokio::test]
async fn with_a_return_url_a_bearer_sign_in_is_handed_to_the_products_page() {
    const BACK: &str = "https://app.acme.test/sso";
    let Acme { app, ada, op, .. } = acme_with(
        vec![OidcAccount::new("carol-at-idp", "carol@acme.test")],
        &[],
        |raw| raw.sso.return_url = BACK.into(),
    )
    .await;
    let started = start(&app, &ada.org).await;
    let back = op.authorize(&started.url, "carol-at-idp").await;
    let query = reqwest::Url::parse(&back)
        .unwrap()
        .query()
        .unwrap()
        .to_owned();
    // The browser arrives without a cookie: sent on to the product's page with the answer in
    // the fragment, nothing spent.
    let res = no_redirects()
        .get(app.url(&format!("/v1/auth/sso/{}/callback?{query}", ada.org)))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    let (page, fragment) = location.split_once('#').unwrap();
    assert_eq!(page, BACK);
    let answer: Vec<(String, String)> = url_pairs(fragment);
    let state = query_param(&back, "state").unwrap();
    assert!(answer.contains(&("state".into(), state)), "{answer:?}");
    assert!(answer.iter().any(|(k, _)| k == "code"), "{answer:?}");
    assert!(answer.iter().any(|(k, _)| k == "iss"), "{answer:?}");
    assert_eq!(op.token_requests("all").await, 0);
    // The page posts it with the secret it kept.
    let mut body = json!({"flow_secret": started.secret});
    for (k, v) in answer {
        body[k] = json!(v);
    }
    let res = app
        .post_json(&format!("/v1/auth/sso/{}/callback", ada.org), &body)
        .await;
    assert_eq!(res.status(), 200, "{:?}", res.text().await);
}

fn url_pairs(encoded: &str) -> Vec<(String, String)> {
    reqwest::Url::parse(&format!("https://x.test/?{encoded}"))
        .unwrap()
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

#[tokio::test]
async fn a_providers_error_description_reaches_no_problem_or_audit_event() {
    let Acme { app, ada, op, .. } =
        acme(vec![OidcAccount::new("carol-at-idp", "carol@acme.test")]).await;
    // The provider's token endpoint refuses with `invalid_grant` and its own free text.
    op.fail_token_endpoint(FailMode::InvalidGrant).await;
    let started = start(&app, &ada.org).await;
    let back = op.authorize(&started.url, "carol-at-idp").await;
    let body = expect_problem(
        callback(&app, &started, &back).await,
        502,
        "oauth_provider_error",
    )
    .await;
    let detail = body["detail"].as_str().unwrap();
    assert!(detail.contains("invalid_grant"), "{body}");
    assert!(!detail.contains("grant request is invalid"), "{body}");
    let events = app.audit_events(&ada.org).await;
    let refused: Vec<&str> = events
        .iter()
        .filter(|e| e.action == "sso.sign_in_refused")
        .map(|e| e.details.as_str())
        .collect();
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert!(refused[0].contains("invalid_grant"), "{refused:?}");
    for e in &events {
        assert!(
            !e.details.contains("grant request is invalid"),
            "{}",
            e.details
        );
    }
}

/// RFC 9207: `oidc-provider` advertises `authorization_response_iss_parameter_supported`, so an
/// answer without `iss`, or with the issuer spelled another way (a trailing slash), is another
/// provider's as far as Gatehouse can tell: refused (its state spent) and the code never sent.
#[tokio::test]
async fn an_answer_without_the_providers_iss_or_with_another_spelling_is_refused() {
    let Acme { app, ada, op, .. } =
        acme(vec![OidcAccount::new("carol-at-idp", "carol@acme.test")]).await;
    for change in ["drop", "respell"] {
        let started = start(&app, &ada.org).await;
        let back = op.authorize(&started.url, "carol-at-idp").await;
        let (path, mut body) = completion(&back, &started.secret);
        let issuer = body["iss"]
            .as_str()
            .expect("oidc-provider sends iss")
            .to_owned();
        if change == "drop" {
            body.as_object_mut().unwrap().remove("iss");
        } else {
            body["iss"] = json!(format!("{issuer}/"));
        }
        expect_problem(app.post_json(&path, &body).await, 403, "sso_refused").await;
    }
    assert_eq!(op.token_requests("all").await, 0, "no code was sent");
    let started = start(&app, &ada.org).await;
    let back = op.authorize(&started.url, "carol-at-idp").await;
    let res = callback(&app, &started, &back).await;
    assert_eq!(res.status(), 200, "{:?}", res.text().await);
}

/// With the defaults (bearer mode, no `sso.return_url`) the provider's redirect to the callback
/// could never reach the product's page: a bearer-mode start is refused up front, with a problem
/// that says what is missing; a cookie-mode start still works.
#[tokio::test]
async fn a_bearer_start_without_a_return_url_is_refused() {
    let Acme { app, ada, op, .. } = acme_with(
        vec![OidcAccount::new("carol-at-idp", "carol@acme.test")],
        &[],
        |raw| raw.sso.return_url = String::new(),
    )
    .await;
    for body in [json!({}), json!({"session_mode": "bearer"})] {
        let res = app
            .post_json(&format!("/v1/auth/sso/{}/start", ada.org), &body)
            .await;
        let problem = expect_problem(res, 422, "validation_failed").await;
        assert!(problem.to_string().contains("sso.return_url"), "{problem}");
    }
    let (url, _) = cookie_start(&app, &ada.org).await;
    assert!(url.starts_with(&op.issuer()), "{url}");
}

/// A platform provider's name may be 64 characters; its state (which carries the name) is then
/// longer than 256, and a bearer-mode completion must still take it.
#[tokio::test]
async fn a_platform_provider_with_a_64_character_name_completes_in_bearer_mode() {
    let name = "p".repeat(64);
    let client = OidcClient::new("gatehouse-social", &callback_uri(&name));
    let op = OidcProvider::start(OidcOptions {
        clients: vec![client.clone()],
        accounts: vec![OidcAccount::new("frank", "frank@mail.test")],
        ..OidcOptions::default()
    });
    let dir = crate::support::temp_dir();
    let secret_file = dir.join("social-secret");
    std::fs::write(&secret_file, &client.client_secret).unwrap();
    std::fs::set_permissions(
        &secret_file,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let issuer = op.issuer();
    let app = TestApp::spawn_with(|raw| {
        sso_config(raw);
        raw.oauth.providers = vec![gatehouse::config::oauth::ProviderConfig {
            name: name.clone(),
            issuer: Some(issuer),
            client_id: client.client_id.clone(),
            client_secret_file: Some(secret_file),
            scopes: vec!["openid".into(), "email".into()],
            ..Default::default()
        }];
        raw.sso.social_providers = vec![name.clone()];
    })
    .await;
    let started = start(&app, &name).await;
    let state = query_param(&started.url, "state").unwrap();
    assert!(state.len() > 256, "{}", state.len());
    let res = sign_in(&app, &op, &name, "frank").await;
    assert_eq!(res.status(), 200, "{:?}", res.text().await);
}

/// An issuer whose discovery fails answers every request 500 and counts them.
async fn failing_issuer() -> (String, std::sync::Arc<std::sync::atomic::AtomicU64>) {
    use std::sync::atomic::{AtomicU64, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let count = std::sync::Arc::new(AtomicU64::new(0));
    let seen = std::sync::Arc::clone(&count);
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let seen = std::sync::Arc::clone(&seen);
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
                seen.fetch_add(1, Ordering::SeqCst);
                let _ = socket
                    .write_all(
                        b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                    )
                    .await;
            });
        }
    });
    (format!("http://{addr}"), count)
}

/// A failing discovery is remembered a short while (by the injected clock): sign-in starts
/// against an issuer that is down do not each call it.
#[tokio::test]
async fn a_failed_discovery_is_remembered_thirty_seconds() {
    use std::sync::atomic::Ordering;
    let Acme { app, ada, .. } = acme(vec![]).await;
    let (issuer, calls) = failing_issuer().await;
    crate::sso_signin::configure(
        &app,
        &ada,
        &issuer,
        "gatehouse-acme",
        "secret-0123456789",
        json!({}),
    )
    .await;
    let path = format!("/v1/auth/sso/{}/start", ada.org);
    for _ in 0..2 {
        let res = app.post_json(&path, &json!({})).await;
        expect_problem(res, 502, "oauth_provider_error").await;
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    // Thirty seconds on, it is asked again.
    app.clock.advance(time::Duration::seconds(31));
    let res = app.post_json(&path, &json!({})).await;
    expect_problem(res, 502, "oauth_provider_error").await;
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}
