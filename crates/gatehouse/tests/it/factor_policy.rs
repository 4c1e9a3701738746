//! A second factor as policy (A4; ASVS 6.3.3, 6.3.4), re-authentication before changes to
//! authentication (ASVS 7.5.1, 7.5.2) and regenerated recovery codes (ASVS 6.5.2), over HTTP.

use reqwest::Method;
use serde_json::{Value, json};

use crate::mfa::{enrol, pyotp_now};
use crate::support::{PASSWORD, Signed, TestApp, expect_problem, token_claims};

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
}

#[tokio::test]
async fn an_organisation_requiring_a_second_factor_admits_a_member_without_one_only_to_enrol() {
    let app = TestApp::spawn().await;
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
    // A refreshed token says so.
    let res = app
        .post_json(
            "/v1/auth/refresh",
            &json!({"refresh_token": member.refresh}),
        )
        .await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    let claims = token_claims(body["access_token"].as_str().unwrap());
    assert_eq!(claims["mfa_required"], true, "{claims}");
    assert!(claims.get("mfa").is_none(), "{claims}");
    let member = Signed::from_login(&member.user, &body);

    // Enrolling is allowed, and the same token is admitted once the factor is confirmed.
    enrol(&app, &member).await;
    admitted(&app, &member).await;
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
    let app = TestApp::spawn_with(|raw| raw.identity.require_second_factor = true).await;
    let owner = app
        .signup_login("founder@platform-policy.test", "laptop")
        .await;
    let claims = token_claims(&owner.access);
    assert_eq!(claims["mfa_required"], true, "{claims}");
    limited_to_enrolment(&app, &owner, "platform").await;
    // Ending one's own session is allowed too.
    let other = app
        .login(
            "founder@platform-policy.test",
            PASSWORD,
            "phone",
            &owner.user,
        )
        .await;
    let res = app
        .call(
            Method::DELETE,
            &format!("/v1/me/sessions/{}", other.session),
            &owner.access,
            None,
            None,
        )
        .await;
    assert_eq!(res.status(), 204);
    enrol(&app, &owner).await;
    admitted(&app, &owner).await;
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
