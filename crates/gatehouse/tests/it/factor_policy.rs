//! A second factor as policy (A4; ASVS 6.3.3, 6.3.4), re-authentication before changes to
//! authentication (ASVS 7.5.1, 7.5.2) and regenerated recovery codes (ASVS 6.5.2), over HTTP.

use reqwest::Method;
use serde_json::{Value, json};

use crate::api_keys::{S1, service_secret_file};
use crate::mfa::{enrol, pyotp_now};
use crate::support::{PASSWORD, Signed, TestApp, expect_problem, token_claims};

const BILLING: &str = "https://billing.example.com";

/// A server with one service (`S1`) and the registered app `BILLING`.
async fn spawn(edit: impl FnOnce(&mut gatehouse::config::RawConfig)) -> TestApp {
    let dir = crate::support::temp_dir();
    let secret = service_secret_file(&dir, "s1.key", S1);
    let app = TestApp::spawn_in(dir, |raw| {
        raw.service_auth.secret_files = vec![secret];
        edit(raw);
    })
    .await;
    let operator = app.operator_token().await;
    let res = app
        .call(
            Method::POST,
            "/admin/v1/apps",
            &operator,
            None,
            Some(json!({"name": "Billing", "audience": BILLING})),
        )
        .await;
    assert_eq!(res.status(), 201);
    app
}

/// The service's answers about `subject` in `org`: each check's reason, or `granted`.
async fn internal_check(app: &TestApp, org: &str, subject: Value) -> Vec<String> {
    let res = app
        .client
        .post(app.url("/internal/v1/check"))
        .header("x-service-auth", S1)
        .json(&json!({
            "organization_id": org,
            "subject": subject,
            "checks": [{"action": "org.read"}, {"action": "audit.read"}],
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["reason"].as_str().unwrap().to_owned())
        .collect()
}

/// A service acting for the person whose token is `token`.
async fn on_behalf_of(app: &TestApp, token: &str) -> reqwest::Response {
    app.client
        .post(app.url(&format!(
            "/internal/v1/secrets/{}/use",
            uuid::Uuid::from_u128(1)
        )))
        .header("x-service-auth", S1)
        .header("x-gatehouse-on-behalf-of", token)
        .send()
        .await
        .unwrap()
}

async fn refresh(app: &TestApp, refresh_token: &str, resource: Option<&str>) -> reqwest::Response {
    let mut body = json!({"refresh_token": refresh_token});
    if let Some(r) = resource {
        body["resource"] = json!(r);
    }
    app.post_json("/v1/auth/refresh", &body).await
}

/// Steps `who` up with a fresh code (a later time step than any used so far); the new token.
async fn step_up_with_code(app: &TestApp, who: &Signed, secret: &str) -> String {
    app.clock.advance(time::Duration::seconds(31));
    let res = app
        .call(
            Method::POST,
            "/v1/auth/step-up",
            &who.access,
            None,
            Some(json!({"code": pyotp_now(app, secret)})),
        )
        .await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    body["access_token"].as_str().unwrap().to_owned()
}

/// What a person without a second factor may still do under a requirement, and what not.
async fn limited_to_enrolment(app: &TestApp, who: &Signed, by: &str) {
    for path in [
        "/v1/organization/members",
        "/v1/organization/security-policy",
    ] {
        let res = app.org_call(Method::GET, path, who, None).await;
        let body = expect_problem(res, 403, "second_factor_enrolment_required").await;
        assert!(body["detail"].as_str().unwrap().contains(by), "{body}");
    }
    let res = app
        .call(Method::GET, "/v1/auth/verify", &who.access, None, None)
        .await;
    expect_problem(res, 403, "second_factor_enrolment_required").await;
    // Nor do the deployment's services take the person's word: not when asked about the token
    // or the member by id, not when acting on their behalf.
    for subject in [
        json!({"credential": who.access}),
        json!({"user_id": who.user}),
    ] {
        assert_eq!(
            internal_check(app, &who.org, subject).await,
            ["second_factor_enrolment_required"; 2]
        );
    }
    let res = on_behalf_of(app, &who.access).await;
    expect_problem(res, 403, "second_factor_enrolment_required").await;
    let res = app
        .call(
            Method::POST,
            "/v1/me/password",
            &who.access,
            None,
            Some(
                json!({"current_password": PASSWORD, "new_password": "another long passphrase 9"}),
            ),
        )
        .await;
    expect_problem(res, 403, "second_factor_enrolment_required").await;
    // Their own identity and sessions stay readable.
    for path in ["/v1/me", "/v1/me/sessions"] {
        let res = app.call(Method::GET, path, &who.access, None, None).await;
        assert_eq!(res.status(), 200, "{path}");
    }
}

async fn admitted(app: &TestApp, who: &Signed) {
    let res = app
        .org_call(Method::GET, "/v1/organization/members", who, None)
        .await;
    assert_eq!(res.status(), 200);
    let res = app
        .call(Method::GET, "/v1/auth/verify", &who.access, None, None)
        .await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["second_factor_required"], true, "{body}");
    for subject in [
        json!({"credential": who.access}),
        json!({"user_id": who.user}),
    ] {
        assert_eq!(internal_check(app, &who.org, subject).await, ["granted"; 2]);
    }
}

#[tokio::test]
async fn an_organisation_requiring_a_second_factor_admits_a_member_without_one_only_to_enrol() {
    let app = spawn(|_| {}).await;
    let owner = app.signup_login("owner@policy.test", "laptop").await;
    let member = app.add_member(&owner, "member@policy.test", "admin").await;
    let (secret, _) = enrol(&app, &owner).await;

    // Owners only, and only with a second factor checked just now.
    let org = owner.org.clone();
    let set = |token: String, on: bool| {
        let app = &app;
        let org = org.clone();
        async move {
            app.call(
                Method::PUT,
                "/v1/organization/security-policy",
                &token,
                Some(&org),
                Some(json!({"require_second_factor": on})),
            )
            .await
        }
    };
    let res = set(owner.access.clone(), true).await;
    expect_problem(res, 403, "step_up_required").await;
    let res = set(member.access.clone(), true).await;
    expect_problem(res, 403, "forbidden").await;
    let fresh = step_up_with_code(&app, &owner, &secret).await;
    let res = set(fresh.clone(), true).await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.json::<Value>().await.unwrap(),
        json!({"require_second_factor": true})
    );
    let events = app.audit_events(&owner.org).await;
    assert!(
        events
            .iter()
            .any(|e| e.action == "organization.security_policy_changed"),
        "the change is audited"
    );

    // The member's token predates the policy: the requirement applies to it at once.
    limited_to_enrolment(&app, &member, "organization").await;
    // No token for an app, which may verify it on its own (and nothing rotates).
    let res = refresh(&app, &member.refresh, Some(BILLING)).await;
    expect_problem(res, 403, "second_factor_enrolment_required").await;
    // A refreshed token says so.
    let res = refresh(&app, &member.refresh, None).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    let claims = token_claims(body["access_token"].as_str().unwrap());
    assert_eq!(claims["mfa_required"], true, "{claims}");
    assert!(claims.get("mfa").is_none(), "{claims}");
    let member = Signed::from_login(&member.user, &body);

    // Enrolling is allowed, and the same token is admitted once the factor is confirmed.
    enrol(&app, &member).await;
    admitted(&app, &member).await;
    let res = refresh(&app, &member.refresh, Some(BILLING)).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    let claims = token_claims(body["access_token"].as_str().unwrap());
    assert_eq!(claims["aud"], BILLING, "{claims}");
    assert_eq!(
        (&claims["mfa_required"], &claims["mfa"]),
        (&json!(true), &json!(true)),
        "{claims}"
    );
    let owner = Signed {
        access: fresh,
        ..owner
    };
    admitted(&app, &owner).await;

    // Off again: nobody is asked.
    let res = set(owner.access.clone(), false).await;
    assert_eq!(res.status(), 200);
    let res = app
        .org_call(
            Method::GET,
            "/v1/organization/security-policy",
            &owner,
            None,
        )
        .await;
    assert_eq!(
        res.json::<Value>().await.unwrap(),
        json!({"require_second_factor": false})
    );
}

#[tokio::test]
async fn a_platform_requirement_admits_anyone_without_a_second_factor_only_to_enrol() {
    let app = spawn(|raw| raw.identity.require_second_factor = true).await;
    let owner = app
        .signup_login("founder@platform-policy.test", "laptop")
        .await;
    let claims = token_claims(&owner.access);
    assert_eq!(claims["mfa_required"], true, "{claims}");
    limited_to_enrolment(&app, &owner, "platform").await;
    let other = app
        .login(
            "founder@platform-policy.test",
            PASSWORD,
            "phone",
            &owner.user,
        )
        .await;
    let end = |token: String, session: String| {
        let app = &app;
        async move {
            app.call(
                Method::DELETE,
                &format!("/v1/me/sessions/{session}"),
                &token,
                None,
                None,
            )
            .await
        }
    };
    // Ending another session is a change to how the account is signed in: past the step-up
    // window it needs re-authentication (ASVS 7.5.2), as ending all the others does.
    app.clock.advance(time::Duration::seconds(301));
    let res = end(owner.access.clone(), other.session.clone()).await;
    expect_problem(res, 403, "step_up_required").await;
    let (secret, _) = enrol(&app, &owner).await;
    admitted(&app, &owner).await;
    let fresh = step_up_with_code(&app, &owner, &secret).await;
    let res = end(fresh.clone(), other.session.clone()).await;
    assert_eq!(res.status(), 204);
    // Ending one's own is signing out: never refused for want of a recent check.
    app.clock.advance(time::Duration::seconds(301));
    let res = end(fresh.clone(), owner.session.clone()).await;
    assert_eq!(res.status(), 204);
}

#[tokio::test]
async fn changes_to_authentication_need_a_fresh_second_factor() {
    let app = TestApp::spawn().await;
    let who = app.signup_login("fresh@reauth.test", "laptop").await;
    app.login("fresh@reauth.test", PASSWORD, "phone", &who.user)
        .await;
    let (secret, old_codes) = enrol(&app, &who).await;
    // Past the step-up window: the sign-in's checks are no longer fresh.
    app.clock.advance(time::Duration::seconds(301));
    let change = json!({"current_password": PASSWORD, "new_password": "another long passphrase 9"});
    let res = app
        .call(
            Method::POST,
            "/v1/me/password",
            &who.access,
            None,
            Some(change.clone()),
        )
        .await;
    let body = expect_problem(res, 403, "step_up_required").await;
    assert!(body["detail"].as_str().unwrap().contains("second factor"));
    let res = app
        .call(
            Method::POST,
            "/v1/me/sessions/revoke-others",
            &who.access,
            None,
            None,
        )
        .await;
    expect_problem(res, 403, "step_up_required").await;
    // Regenerating recovery codes takes a proof in the request itself.
    let regenerate = |token: String, body: Value| {
        let app = &app;
        async move {
            app.call(
                Method::POST,
                "/v1/me/mfa/recovery-codes",
                &token,
                None,
                Some(body),
            )
            .await
        }
    };
    let res = regenerate(who.access.clone(), json!({})).await;
    expect_problem(res, 422, "validation_failed").await;
    let res = regenerate(who.access.clone(), json!({"code": "000000"})).await;
    expect_problem(res, 401, "invalid_credentials").await;

    let fresh = step_up_with_code(&app, &who, &secret).await;
    let res = app
        .call(
            Method::POST,
            "/v1/me/sessions/revoke-others",
            &fresh,
            None,
            None,
        )
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap()["revoked"], 1);
    let res = app
        .call(Method::POST, "/v1/me/password", &fresh, None, Some(change))
        .await;
    assert_eq!(res.status(), 200);

    app.clock.advance(time::Duration::seconds(31));
    let res = regenerate(fresh.clone(), json!({"code": pyotp_now(&app, &secret)})).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let codes: Vec<String> = res.json::<Value>().await.unwrap()["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(codes.len(), 10);
    assert!(
        codes
            .iter()
            .all(|c| c.len() == 29 && c.split('-').count() == 6)
    );
    // The old set is gone; a new code works once.
    let res = regenerate(fresh.clone(), json!({"recovery_code": old_codes[0]})).await;
    expect_problem(res, 401, "invalid_credentials").await;
    let res = regenerate(fresh.clone(), json!({"recovery_code": codes[0]})).await;
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn without_a_second_factor_ending_other_sessions_needs_a_recent_password() {
    let app = TestApp::spawn().await;
    let who = app.signup_login("plain@reauth.test", "laptop").await;
    app.login("plain@reauth.test", PASSWORD, "phone", &who.user)
        .await;
    app.clock.advance(time::Duration::seconds(301));
    let res = app
        .call(
            Method::POST,
            "/v1/me/sessions/revoke-others",
            &who.access,
            None,
            None,
        )
        .await;
    let body = expect_problem(res, 403, "step_up_required").await;
    assert!(body["detail"].as_str().unwrap().contains("password"));
    let res = app
        .call(
            Method::POST,
            "/v1/auth/step-up",
            &who.access,
            None,
            Some(json!({"password": PASSWORD})),
        )
        .await;
    assert_eq!(res.status(), 200);
    let fresh: Value = res.json().await.unwrap();
    let res = app
        .call(
            Method::POST,
            "/v1/me/sessions/revoke-others",
            fresh["access_token"].as_str().unwrap(),
            None,
            None,
        )
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap()["revoked"], 1);
}

/// Turns the organisation's requirement on or off with `token`.
async fn set_policy(app: &TestApp, org: &str, token: &str, on: bool) -> reqwest::Response {
    app.call(
        Method::PUT,
        "/v1/organization/security-policy",
        token,
        Some(org),
        Some(json!({"require_second_factor": on})),
    )
    .await
}

#[tokio::test]
async fn a_key_made_by_a_member_without_a_second_factor_is_suspended_while_one_is_required() {
    let app = spawn(|_| {}).await;
    let owner = app.signup_login("owner@keys-policy.test", "laptop").await;
    let bob = app
        .add_member(&owner, "bob@keys-policy.test", "admin")
        .await;
    let (secret, _) = enrol(&app, &owner).await;
    let make_key = |who: Signed| {
        let app = &app;
        async move {
            let res = app
                .org_call(
                    Method::POST,
                    "/v1/api-keys",
                    &who,
                    Some(json!({"name": "ci", "permissions": ["org.read", "audit.read"]})),
                )
                .await;
            assert_eq!(res.status(), 201, "{:?}", res.text().await);
            res.json::<Value>().await.unwrap()["key"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    let bobs = make_key(bob.clone()).await;
    let owners = make_key(owner.clone()).await;
    let verify = |key: String| {
        let app = &app;
        async move {
            app.call(Method::GET, "/v1/auth/verify", &key, None, None)
                .await
        }
    };
    let internal_verify = |key: String| {
        let app = &app;
        async move {
            let res = app
                .client
                .post(app.url("/internal/v1/api-keys/verify"))
                .header("x-service-auth", S1)
                .json(&json!({"key": key}))
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 200);
            res.json::<Value>().await.unwrap()["valid"].clone()
        }
    };
    assert_eq!(verify(bobs.clone()).await.status(), 200);

    let fresh = step_up_with_code(&app, &owner, &secret).await;
    assert_eq!(
        set_policy(&app, &owner.org, &fresh, true).await.status(),
        200
    );
    // Bob's key acts for Bob, who now may only enrol: it is refused everywhere it is presented.
    let res = verify(bobs.clone()).await;
    expect_problem(res, 403, "second_factor_enrolment_required").await;
    let res = app
        .call(Method::GET, "/v1/audit-logs", &bobs, Some(&owner.org), None)
        .await;
    expect_problem(res, 403, "second_factor_enrolment_required").await;
    assert_eq!(internal_verify(bobs.clone()).await, false);
    assert_eq!(
        internal_check(&app, &owner.org, json!({"credential": bobs})).await,
        ["second_factor_enrolment_required"; 2]
    );
    // The owner, who has a factor, keeps theirs.
    assert_eq!(verify(owners.clone()).await.status(), 200);

    // Bob enrols: his key works again at once.
    enrol(&app, &bob).await;
    assert_eq!(verify(bobs.clone()).await.status(), 200);
    assert_eq!(internal_verify(bobs.clone()).await, true);
    assert_eq!(
        internal_check(&app, &owner.org, json!({"credential": bobs})).await,
        ["granted"; 2]
    );
}

#[tokio::test]
async fn turning_the_requirement_off_reads_whether_the_owner_has_a_factor_from_the_store() {
    let app = TestApp::spawn().await;
    let owner = app.signup_login("owner@off-policy.test", "laptop").await;
    // Issued before the owner enrolled: it says they have no factor.
    let before = owner.access.clone();
    assert!(token_claims(&before).get("mfa").is_none());
    let (secret, _) = enrol(&app, &owner).await;
    let fresh = step_up_with_code(&app, &owner, &secret).await;
    assert_eq!(
        set_policy(&app, &owner.org, &fresh, true).await.status(),
        200
    );
    // The password behind the old token is recent, but the owner has a factor now: it is what
    // turning the requirement off takes.
    let res = set_policy(&app, &owner.org, &before, false).await;
    let body = expect_problem(res, 403, "step_up_required").await;
    assert!(
        body["detail"].as_str().unwrap().contains("second factor"),
        "{body}"
    );
    let res = set_policy(&app, &owner.org, &fresh, false).await;
    assert_eq!(res.status(), 200);
}
