//! Export (G1) over HTTP: a person's export holds every kind of row Gatehouse keeps about them
//! and nothing of anyone else's, and reads the same whole or resumed page by page from cursors;
//! an organisation's export needs `data.export` with step-up and covers only that organisation.

use reqwest::Method;
use serde_json::{Value, json};

use crate::mfa::enrol;
use crate::product::declare_reports;
use crate::support::{Signed, TestApp, expect_problem};

/// Every line of a page: (data lines, the page's next cursor).
fn parse(text: &str) -> (Vec<Value>, Option<String>) {
    let mut lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("not JSON: {l}")))
        .collect();
    let end = lines.pop().expect("an empty page");
    assert_eq!(end["type"], "page_end", "{end}");
    (lines, end["next_cursor"].as_str().map(str::to_owned))
}

pub async fn my_export(app: &TestApp, who: &Signed, limit: u32) -> (Value, Vec<Value>, usize) {
    let mut cursor: Option<String> = None;
    let mut header = Value::Null;
    let mut all = Vec::new();
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/me/export?limit={limit}&cursor={c}"),
            None => format!("/v1/me/export?limit={limit}"),
        };
        let res = app.call(Method::GET, &path, &who.access, None, None).await;
        assert_eq!(res.status(), 200);
        assert_eq!(res.headers()["content-type"], "application/x-ndjson");
        let (mut lines, next) = parse(&res.text().await.unwrap());
        if cursor.is_none() {
            header = lines.remove(0);
        }
        all.extend(lines);
        pages += 1;
        match next {
            Some(c) => cursor = Some(c),
            None => return (header, all, pages),
        }
    }
}

async fn recorded(app: &TestApp, org: &str) -> usize {
    app.audit_events(org)
        .await
        .iter()
        .filter(|e| e.action == "data.exported")
        .count()
}

async fn plant(app: &TestApp, who: &Signed, tag: &str) {
    let res = app
        .org_call(
            Method::POST,
            "/v1/api-keys",
            who,
            Some(json!({"name": format!("{tag}-key"), "permissions": ["audit.read"]})),
        )
        .await;
    assert_eq!(res.status(), 201);
    let res = app
        .org_call(
            Method::POST,
            "/v1/records",
            who,
            Some(
                json!({"type": "report", "external_id": format!("{tag}-report"),
                        "level": "private", "content": {"secret_sauce": format!("{tag}-content")}}),
            ),
        )
        .await;
    assert_eq!(res.status(), 201);
}

#[tokio::test]
async fn a_persons_export_holds_each_kind_of_their_rows_only_and_resumes_exactly() {
    let app = TestApp::spawn_with(declare_reports).await;
    let ada = app.signup_login("ada@example.com", "laptop").await;
    let bob = app.signup_login("bob@example.com", "laptop").await;
    let carol = app.add_member(&ada, "carol@example.com", "admin").await;
    plant(&app, &ada, "ada").await;
    plant(&app, &bob, "bob").await;
    plant(&app, &carol, "carol").await;
    // A second device, revoked: sessions in every state are exported.
    let phone = app
        .login("ada@example.com", crate::support::PASSWORD, "phone", "")
        .await;
    let res = app
        .call(
            Method::DELETE,
            &format!("/v1/me/sessions/{}", phone.session),
            &ada.access,
            None,
            None,
        )
        .await;
    assert_eq!(res.status(), 204);
    enrol(&app, &ada).await;
    // Mail to Ada: a password reset.
    let res = app
        .post_json(
            "/v1/auth/password-reset",
            &json!({"email": "ada@example.com"}),
        )
        .await;
    assert_eq!(res.status(), 202);
    // Delivered before the exports compared below, so both see it in the same state (the row
    // is marked sent just after the message is handed over).
    app.mailed_link("ada@example.com", "/reset-password").await;
    let (header, whole, pages) = loop {
        let (header, whole, pages) = my_export(&app, &ada, 100_000).await;
        if whole
            .iter()
            .any(|l| l["kind"] == "password_reset" && l["sent_at"].is_string())
        {
            break (header, whole, pages);
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(pages, 1);
    assert_eq!(header["format"], "gatehouse.export");
    assert_eq!(header["version"], 1);
    assert_eq!(header["subject"]["id"], ada.user.as_str());
    let kinds: std::collections::BTreeSet<&str> =
        whole.iter().map(|l| l["type"].as_str().unwrap()).collect();
    for kind in [
        "account",
        "membership",
        "session",
        "factors",
        "mail",
        "api_key",
        "record",
        "audit_event",
    ] {
        assert!(kinds.contains(kind), "no {kind} line in {kinds:?}");
    }
    let find = |kind: &'static str| whole.iter().filter(move |l| l["type"] == kind);
    assert_eq!(find("account").next().unwrap()["email"], "ada@example.com");
    assert_eq!(find("session").count(), 2);
    assert!(find("session").any(|s| !s["revoked_at"].is_null()));
    let factors = find("factors").next().unwrap();
    assert!(factors["totp"]["confirmed_at"].is_string(), "{factors}");
    assert!(
        factors.to_string().len() < 300,
        "factors are metadata only: {factors}"
    );
    assert!(find("mail").any(|m| m["kind"] == "password_reset"));
    let record = find("record").next().unwrap();
    assert_eq!(record["content"], json!({"secret_sauce": "ada-content"}));
    assert_eq!(find("record").count(), 1);
    assert_eq!(find("api_key").count(), 1);
    assert!(
        find("audit_event").any(|e| e["ip"].is_string()),
        "personal fields are opened"
    );
    // Nothing of Bob's (another organisation) or Carol's (another member of Ada's).
    let text = serde_json::to_string(&whole).unwrap();
    for foreign in [
        "bob@example.com",
        "bob-key",
        "bob-content",
        bob.org.as_str(),
        bob.user.as_str(),
        "carol-key",
        "carol-content",
        "carol@example.com",
    ] {
        assert!(
            !text.contains(foreign),
            "{foreign} leaked into Ada's export"
        );
    }

    // Page by page (a page ends at the first store page past the limit): the same lines in
    // the same order, none twice, none lost.
    // Each page is itself recorded before it is read (so no cursor reads on unrecorded), and
    // the second export sees the first's events: left out of the comparison.
    let before = recorded(&app, &ada.org).await;
    let (_, paged, pages) = my_export(&app, &ada, 1).await;
    assert_eq!(recorded(&app, &ada.org).await, before + pages);
    assert!(pages > 5, "{pages}");
    let unrecorded = |lines: Vec<Value>| -> Vec<Value> {
        lines
            .into_iter()
            .filter(|l| l["action"] != "data.exported")
            .collect()
    };
    assert_eq!(unrecorded(paged), unrecorded(whole.clone()));
    // A cursor this server did not issue is refused.
    let res = app
        .call(
            Method::GET,
            "/v1/me/export?cursor=bm9wZQ",
            &ada.access,
            None,
            None,
        )
        .await;
    expect_problem(res, 422, "validation_failed").await;
}

#[tokio::test]
async fn an_organisation_export_needs_step_up_and_stays_inside_the_organisation() {
    let app = TestApp::spawn_with(declare_reports).await;
    let ada = app.signup_login("ada@example.com", "laptop").await;
    let bob = app.signup_login("bob@example.com", "laptop").await;
    plant(&app, &ada, "ada").await;
    plant(&app, &bob, "bob").await;
    let export = |who: &Signed, body: Value| {
        let who = who.clone();
        let app = &app;
        async move {
            app.org_call(Method::POST, "/v1/exports", &who, Some(body))
                .await
        }
    };
    // Another organisation's user: not found, nothing exported.
    let res = export(&ada, json!({"user_id": bob.user})).await;
    expect_problem(res, 404, "not_found").await;
    // The whole organisation, within the step-up window of the sign-in.
    let res = export(&ada, json!({})).await;
    assert_eq!(res.status(), 200);
    let (lines, next) = parse(&res.text().await.unwrap());
    assert!(next.is_none());
    assert_eq!(lines[0]["type"], "export");
    assert_eq!(lines[0]["subject"]["type"], "organization");
    let kinds: std::collections::BTreeSet<&str> =
        lines.iter().map(|l| l["type"].as_str().unwrap()).collect();
    for kind in [
        "organization",
        "member",
        "session",
        "api_key",
        "record",
        "audit_event",
    ] {
        assert!(kinds.contains(kind), "no {kind} in {kinds:?}");
    }
    let text = serde_json::to_string(&lines).unwrap();
    assert!(text.contains("ada-content"));
    for foreign in [
        "bob@example.com",
        "bob-content",
        "bob-key",
        bob.org.as_str(),
    ] {
        assert!(!text.contains(foreign), "{foreign} leaked");
    }
    // The export was recorded on the chain.
    let events = app.audit_events(&ada.org).await;
    assert!(events.iter().any(|e| e.action == "data.exported"));
    // A member without data.export: forbidden.
    let viewer = app.add_member(&ada, "vic@example.com", "viewer").await;
    let res = export(&viewer, json!({})).await;
    expect_problem(res, 403, "forbidden").await;
    // Past the step-up window: refused.
    app.clock.advance(time::Duration::minutes(6));
    let res = export(&ada, json!({})).await;
    expect_problem(res, 403, "step_up_required").await;
}
