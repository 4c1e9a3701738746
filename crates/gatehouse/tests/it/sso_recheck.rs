//! Verified domains are checked again (issue 24's review: they stayed verified for good): the
//! periodic job's run (`Sso::recheck_domains`, what the `sso_domains` lease runs) looks each
//! verified domain's challenge up again at the test's DNS server, and a domain whose record is
//! gone three runs in a row is marked unverified, audited; a record back in between starts the
//! count again.

use reqwest::Method;
use serde_json::{Value, json};

use crate::interop::WebhookReceiver;
use crate::oidc_provider::OidcAccount;
use crate::sso_signin::{Acme, acme, acme_with, sign_in};
use crate::support::{TestApp, expect_problem};

async fn verified_at(app: &TestApp, ada: &crate::support::Signed) -> Value {
    let res = app
        .org_call(Method::GET, "/v1/sso/domains", ada, None)
        .await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    let list = body.get("items").unwrap_or(&body).clone();
    let acme = list
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["domain"] == "acme.test")
        .unwrap()
        .clone();
    acme["verified_at"].clone()
}

fn count(events: &[gatehouse_core::audit::AuditRecord], action: &str) -> usize {
    events.iter().filter(|e| e.action == action).count()
}

#[tokio::test]
async fn a_verified_domain_whose_record_is_gone_three_checks_in_a_row_is_unverified() {
    let Acme {
        app, ada, op, dns, ..
    } = acme(vec![
        OidcAccount::new("carol-at-idp", "carol@acme.test"),
        OidcAccount::new("dan-at-idp", "dan@acme.test"),
    ])
    .await;
    let published = dns.zone();
    let sso = app.kernel.sso();
    let r = sso.recheck_domains().await.unwrap();
    assert_eq!((r.checked, r.missing, r.unverified), (1, 0, 0));

    // The record is taken down: two missed checks, still verified.
    dns.set_zone(&json!({}));
    for _ in 0..2 {
        let r = sso.recheck_domains().await.unwrap();
        assert_eq!((r.checked, r.missing, r.unverified), (1, 1, 0));
    }
    assert!(verified_at(&app, &ada).await.is_string());
    // Back in between: the count starts again.
    dns.set_zone(&published);
    assert_eq!(sso.recheck_domains().await.unwrap().missing, 0);
    dns.set_zone(&json!({}));
    for _ in 0..2 {
        assert_eq!(sso.recheck_domains().await.unwrap().unverified, 0);
    }
    assert!(verified_at(&app, &ada).await.is_string());
    assert_eq!(
        sign_in(&app, &op, &ada.org, "carol-at-idp").await.status(),
        200
    );

    // The third in a row: unverified, audited; the provider links and admits nobody new.
    let r = sso.recheck_domains().await.unwrap();
    assert_eq!((r.checked, r.missing, r.unverified), (1, 1, 1));
    assert!(verified_at(&app, &ada).await.is_null());
    let events = app.audit_events(&ada.org).await;
    assert_eq!(count(&events, "sso.domain_check_failed"), 4);
    assert_eq!(count(&events, "sso.domain_unverified"), 1);
    let res = sign_in(&app, &op, &ada.org, "dan-at-idp").await;
    expect_problem(res, 403, "sso_refused").await;
    let res = app
        .post_json("/v1/auth/sso/acme.test/start", &json!({}))
        .await;
    expect_problem(res, 404, "not_found").await;
    // Nothing left to check; the organisation may verify it again.
    assert_eq!(sso.recheck_domains().await.unwrap().checked, 0);
    dns.set_zone(&published);
    let res = crate::sso_domains::verify(&app, &ada, "acme.test").await;
    assert_eq!(res.status(), 200, "{:?}", res.text().await);
    app.chain_verifies(&ada.org).await;
}

/// A lookup that fails (the DNS server answers SERVFAIL) counts nothing: however many runs it
/// lasts, nothing is audited and the domain stays verified; once DNS answers again with the
/// record gone, the count starts from the first miss.
#[tokio::test]
async fn a_failed_lookup_counts_nothing() {
    let Acme {
        app, ada, op, dns, ..
    } = acme(vec![OidcAccount::new("carol-at-idp", "carol@acme.test")]).await;
    let failing: serde_json::Map<String, Value> = dns
        .zone()
        .as_object()
        .unwrap()
        .keys()
        .map(|name| (name.clone(), json!({"SERVFAIL": true})))
        .collect();
    dns.set_zone(&Value::Object(failing));
    let sso = app.kernel.sso();
    for _ in 0..4 {
        let r = sso.recheck_domains().await.unwrap();
        assert_eq!((r.checked, r.missing, r.unverified), (1, 0, 0));
    }
    assert!(verified_at(&app, &ada).await.is_string());
    let events = app.audit_events(&ada.org).await;
    assert_eq!(count(&events, "sso.domain_check_failed"), 0);
    assert_eq!(count(&events, "sso.domain_unverified"), 0);
    assert_eq!(
        sign_in(&app, &op, &ada.org, "carol-at-idp").await.status(),
        200
    );
    // DNS answers again, the record gone: the first miss, not the fifth.
    dns.set_zone(&json!({}));
    let r = sso.recheck_domains().await.unwrap();
    assert_eq!((r.missing, r.unverified), (1, 0));
    let events = app.audit_events(&ada.org).await;
    assert_eq!(count(&events, "sso.domain_check_failed"), 1);
}

/// A domain marked unverified raises the webhook event `sso.domain_unverified`, so the
/// organisation hears of it beyond its audit log.
#[tokio::test]
async fn an_unverified_domain_raises_the_webhook_event() {
    let Acme { app, ada, dns, .. } = acme_with(
        vec![OidcAccount::new("carol-at-idp", "carol@acme.test")],
        &[],
        |raw| {
            raw.webhooks.allow_http = true;
            raw.webhooks.allow_loopback = true;
            raw.webhooks.poll_interval_ms = 100;
        },
    )
    .await;
    let receiver = WebhookReceiver::python(0);
    let res = app
        .org_call(
            Method::POST,
            "/v1/webhooks/endpoints",
            &ada,
            Some(json!({"url": receiver.url("/"), "event_types": ["sso.domain_unverified"]})),
        )
        .await;
    assert_eq!(res.status(), 201, "{:?}", res.text().await);
    let endpoint: Value = res.json().await.unwrap();
    receiver.set_secrets(&[endpoint["secret"].as_str().unwrap()]);
    dns.set_zone(&json!({}));
    let sso = app.kernel.sso();
    for _ in 0..3 {
        sso.recheck_domains().await.unwrap();
    }
    let got = receiver
        .wait_until("the domain_unverified event", |r| !r.is_empty())
        .await;
    assert!(got[0].verified);
    assert_eq!(got[0].kind.as_deref(), Some("sso.domain_unverified"));
    assert_eq!(got.len(), 1, "only the third miss raises it");
}

/// Enforcement is refused while no sign-on can start (no `oauth.public_url`): it would leave the
/// members no way in (#24, the newcomer review).
#[tokio::test]
async fn enforcement_needs_a_sign_on_that_can_start() {
    let (app, dns) =
        crate::sso_domains::app_with_dns(|raw| raw.oauth.public_url = String::new()).await;
    let (owner, _) = crate::sso_domains::owner_with_factor(&app, "ada@acme.test").await;
    let mut zone = serde_json::json!({});
    crate::sso_domains::verified_domain(&app, &dns, &owner, &mut zone, "acme.test").await;
    let res = app
        .org_call(
            reqwest::Method::PUT,
            "/v1/sso/config",
            &owner,
            Some(serde_json::json!({
                "issuer": "https://idp.acme.test", "client_id": "gatehouse", "enforced": true
            })),
        )
        .await;
    let body = crate::support::expect_problem(res, 409, "conflict").await;
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("oauth.public_url"),
        "{body}"
    );
    app.stop().await;
}
