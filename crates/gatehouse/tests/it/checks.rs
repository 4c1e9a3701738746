//! The check API about records (issue 19, C1 and C3): `read` / `write` of a record and a
//! permission on a record, decided from the record's level, owner and allowed list; batches; and
//! denials counted in metrics and folded in the audit log.

use reqwest::Method;
use serde_json::{Value, json};

use crate::product::declare_reports;
use crate::support::{Signed, TestApp, expect_problem};

async fn ask(app: &TestApp, who: &Signed, body: Value) -> Value {
    let res = app
        .org_call(Method::POST, "/v1/check", who, Some(body))
        .await;
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

fn on(action: &str, id: &str) -> Value {
    json!({"action": action, "resource": {"type": "report", "id": id}})
}

async fn seed_records(app: &TestApp, owner: &Signed, member: &Signed) {
    for body in [
        json!({"type": "report", "external_id": "p", "level": "private",
               "allowed": [format!("user:{}", member.user)]}),
        json!({"type": "report", "external_id": "o", "level": "organization"}),
        json!({"type": "report", "external_id": "pub", "level": "public"}),
    ] {
        let res = app
            .org_call(Method::POST, "/v1/records", owner, Some(body))
            .await;
        assert_eq!(res.status(), 201);
    }
}

#[tokio::test]
async fn checks_about_records_follow_their_levels_owners_and_allowed_lists() {
    let app = TestApp::spawn_with(declare_reports).await;
    let owner = app.signup_login("owner@example.com", "laptop").await;
    let admin = app.add_member(&owner, "admin@example.com", "admin").await;
    let member = app.add_member(&owner, "member@example.com", "member").await;
    let viewer = app.add_member(&owner, "viewer@example.com", "viewer").await;
    seed_records(&app, &owner, &member).await;

    let cases: [(&Signed, Value, bool, &str); 14] = [
        (&owner, on("write", "p"), true, "owner"),
        (&member, on("read", "p"), true, "allowed_list"),
        (&member, on("write", "p"), false, "no_access"),
        (&admin, on("read", "p"), false, "no_access"),
        (&member, on("read", "o"), true, "level:organization"),
        (&member, on("write", "o"), false, "no_access"),
        (&admin, on("write", "o"), true, "permission"),
        (&viewer, on("read", "o"), false, "no_access"),
        (&viewer, on("read", "pub"), true, "level:public"),
        (&viewer, on("read", "nope"), false, "no_access"),
        (
            &member,
            json!({"action": "read"}),
            false,
            "resource_required",
        ),
        // A permission on a record: held, and the record readable.
        (&member, on("report.read", "p"), true, "role:member"),
        (&admin, on("report.read", "p"), false, "no_access"),
        (&viewer, on("org.read", "o"), false, "no_access"),
    ];
    for (who, body, allowed, why) in cases {
        let answer = ask(&app, who, body.clone()).await;
        assert_eq!(answer["allowed"], allowed, "{body} -> {answer}");
        let said = if allowed {
            &answer["via"]
        } else {
            &answer["reason"]
        };
        assert_eq!(said, why, "{body} -> {answer}");
    }
    // The level changes, and the next question sees it.
    let res = app
        .org_call(Method::GET, "/v1/records?type=report", &owner, None)
        .await;
    let items: Value = res.json().await.unwrap();
    let o_id = items["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["external_id"] == "o")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let res = app
        .org_call(
            Method::PATCH,
            &format!("/v1/records/{o_id}"),
            &owner,
            Some(json!({"level": "public"})),
        )
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        ask(&app, &viewer, on("read", "o")).await["via"],
        "level:public"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_batch_answers_each_question_in_order_and_is_bounded() {
    let app = TestApp::spawn_with(declare_reports).await;
    let owner = app.signup_login("owner@example.com", "laptop").await;
    let member = app.add_member(&owner, "member@example.com", "member").await;
    seed_records(&app, &owner, &member).await;
    let res = app
        .org_call(
            Method::POST,
            "/v1/check/batch",
            &member,
            Some(json!({"checks": [on("read", "p"), on("write", "o"), {"action": "report.read"}]})),
        )
        .await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    let results = body["results"].as_array().unwrap();
    assert_eq!(
        results
            .iter()
            .map(|r| r["allowed"].clone())
            .collect::<Vec<_>>(),
        [json!(true), json!(false), json!(true)]
    );
    let many: Vec<Value> = (0..101).map(|_| json!({"action": "org.read"})).collect();
    let res = app
        .org_call(
            Method::POST,
            "/v1/check/batch",
            &member,
            Some(json!({"checks": many})),
        )
        .await;
    expect_problem(res, 422, "validation_failed").await;
    app.stop().await;
}

#[tokio::test]
async fn repeated_denials_are_counted_and_folded_into_one_audit_summary() {
    let app = TestApp::spawn_with(declare_reports).await;
    let owner = app.signup_login("owner@example.com", "laptop").await;
    let member = app.add_member(&owner, "member@example.com", "member").await;
    let viewer = app.add_member(&owner, "viewer@example.com", "viewer").await;
    seed_records(&app, &owner, &member).await;
    for _ in 0..5 {
        assert_eq!(ask(&app, &viewer, on("read", "o")).await["allowed"], false);
    }
    // The same action and reason about another record folds into the same run.
    assert_eq!(ask(&app, &viewer, on("read", "p")).await["allowed"], false);
    let denied = |events: &[gatehouse_core::audit::AuditRecord], action: &str| {
        events.iter().filter(|e| e.action == action).count()
    };
    let events = app.audit_events(&owner.org).await;
    assert_eq!(denied(&events, "check.denied"), 1);
    assert_eq!(denied(&events, "check.denied_repeated"), 0);
    // Within the window nothing is summarised; after it, one event with the five repeats.
    assert_eq!(app.kernel.checks().flush_denials().await.unwrap(), 0);
    app.clock.advance(time::Duration::seconds(61));
    assert_eq!(app.kernel.checks().flush_denials().await.unwrap(), 1);
    let events = app.audit_events(&owner.org).await;
    let summary = events
        .iter()
        .find(|e| e.action == "check.denied_repeated")
        .unwrap();
    let details: Value = serde_json::from_str(&summary.details).unwrap();
    assert_eq!(details["repeats"], 5);
    assert_eq!(details["reason"], "no_access");
    assert_eq!(details["first_resource"], "report:o");
    assert_eq!(details["caller"], format!("user:{}", viewer.user));
    // A new denial after the window starts a new run, recorded at once.
    ask(&app, &viewer, on("read", "o")).await;
    let events = app.audit_events(&owner.org).await;
    assert_eq!(denied(&events, "check.denied"), 2);
    // A batch about a hundred records the caller may not read writes nothing more.
    let hundred: Vec<Value> = (0..100).map(|i| on("read", &format!("nope-{i}"))).collect();
    let res = app
        .org_call(
            Method::POST,
            "/v1/check/batch",
            &viewer,
            Some(json!({"checks": hundred})),
        )
        .await;
    assert_eq!(res.status(), 200);
    let events = app.audit_events(&owner.org).await;
    assert_eq!(denied(&events, "check.denied"), 2);

    let metrics = app.metrics().await;
    let line = metrics
        .lines()
        .find(|l| {
            l.starts_with("gatehouse_check_decisions_total")
                && l.contains("outcome=\"denied\"")
                && l.contains("reason=\"no_access\"")
        })
        .unwrap_or_else(|| panic!("no denial count in {metrics}"));
    assert!(line.ends_with(" 107"), "{line}");
    app.stop().await;
}

#[tokio::test]
async fn verify_gates_a_route_on_an_action_in_the_same_call() {
    let app = TestApp::spawn_with(declare_reports).await;
    let owner = app.signup_login("owner@example.com", "laptop").await;
    let member = app.add_member(&owner, "member@example.com", "member").await;
    let viewer = app.add_member(&owner, "viewer@example.com", "viewer").await;
    seed_records(&app, &owner, &member).await;
    let verify = |who: &Signed, query: &str| {
        let app = &app;
        let token = who.access.clone();
        let path = format!("/v1/auth/verify{query}");
        async move { app.call(Method::GET, &path, &token, None, None).await }
    };
    // No question: plain verification.
    assert_eq!(verify(&viewer, "").await.status(), 200);
    let res = verify(&member, "?action=read&resource_type=report&resource_id=p").await;
    assert_eq!(res.status(), 200);
    assert!(res.headers().contains_key("x-gatehouse-user"));
    let res = verify(&viewer, "?action=read&resource_type=report&resource_id=p").await;
    let problem = expect_problem(res, 403, "check_denied").await;
    assert!(
        problem["detail"].as_str().unwrap().contains("no_access"),
        "{problem}"
    );
    let res = verify(&viewer, "?action=report.read").await;
    expect_problem(res, 403, "check_denied").await;
    assert_eq!(verify(&member, "?action=report.read").await.status(), 200);
    let res = verify(&member, "?action=read&resource_type=report").await;
    expect_problem(res, 422, "validation_failed").await;
    let res = verify(&member, "?action=read&colour=blue").await;
    expect_problem(res, 422, "validation_failed").await;
    // However the question is spelled, it is asked or refused, never skipped.
    let res = verify(&viewer, "?%61ction=read&resource_type=report&resource_id=p").await;
    expect_problem(res, 403, "check_denied").await;
    for query in [
        "?Action=read&resource_type=report&resource_id=p",
        "?resource_type=report&resource_id=p",
        "?resource_id=transaction%3D1",
    ] {
        let res = verify(&viewer, query).await;
        expect_problem(res, 422, "validation_failed").await;
    }
    app.stop().await;
}

#[tokio::test]
async fn a_service_asks_about_a_token_a_key_a_member_by_id_or_nobody() {
    let dir = crate::support::temp_dir();
    let secret = crate::api_keys::service_secret_file(&dir, "s1.key", crate::api_keys::S1);
    let app = TestApp::spawn_with(|raw| {
        declare_reports(raw);
        raw.service_auth.secret_files = vec![secret];
    })
    .await;
    let owner = app.signup_login("owner@example.com", "laptop").await;
    let member = app.add_member(&owner, "member@example.com", "member").await;
    let stranger = app.signup_login("stranger@example.com", "laptop").await;
    seed_records(&app, &owner, &member).await;
    let ask_as = |subject: Value, checks: Value| {
        let app = &app;
        let org = owner.org.clone();
        async move {
            let mut body = json!({"organization_id": org, "checks": checks});
            if !subject.is_null() {
                body["subject"] = subject;
            }
            let res = app
                .client
                .post(app.url("/internal/v1/check"))
                .header("x-service-auth", crate::api_keys::S1)
                .json(&body)
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 200);
            let body: Value = res.json().await.unwrap();
            body["results"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| {
                    if r["allowed"] == true {
                        r["via"].as_str().unwrap().to_owned()
                    } else {
                        r["reason"].as_str().unwrap().to_owned()
                    }
                })
                .collect::<Vec<_>>()
        }
    };
    let questions =
        json!([on("read", "p"), on("read", "o"), on("read", "pub"), {"action": "report.read"}]);
    assert_eq!(
        ask_as(json!({"credential": member.access}), questions.clone()).await,
        [
            "allowed_list",
            "level:organization",
            "level:public",
            "role:member"
        ]
    );
    assert_eq!(
        ask_as(json!({"user_id": member.user}), questions.clone()).await,
        [
            "allowed_list",
            "level:organization",
            "level:public",
            "role:member"
        ]
    );
    // Nobody signed in: public records only.
    assert_eq!(
        ask_as(Value::Null, questions.clone()).await,
        [
            "no_access",
            "no_access",
            "level:public",
            "permission_missing"
        ]
    );
    // A member of another organisation, and a credential that does not verify.
    assert_eq!(
        ask_as(
            json!({"credential": stranger.access}),
            json!([on("read", "pub")])
        )
        .await,
        ["not_a_member"]
    );
    assert_eq!(
        ask_as(
            json!({"user_id": stranger.user}),
            json!([on("read", "pub")])
        )
        .await,
        ["not_a_member"]
    );
    assert_eq!(
        ask_as(
            json!({"credential": "not a token"}),
            json!([on("read", "pub")])
        )
        .await,
        ["unauthenticated"]
    );
    // A member by id has no session: a step-up permission stays shut.
    assert_eq!(
        ask_as(
            json!({"user_id": owner.user}),
            json!([{"action": "report.export"}])
        )
        .await,
        ["step_up_required"]
    );
    // Without the service secret: refused.
    let res = app
        .client
        .post(app.url("/internal/v1/check"))
        .json(&json!({"organization_id": owner.org, "checks": [on("read", "pub")]}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    app.stop().await;
}
