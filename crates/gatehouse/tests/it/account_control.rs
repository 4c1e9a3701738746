//! Ending other people's sessions and disabling accounts (A5, A9; ASVS 7.4.2, 7.4.5): an
//! organisation's admin ends a member's sessions there, and an operator ends a user's sessions
//! and disables or re-enables the account. (The same across instances: tests/redis_shared.rs and
//! tests/three_instances.rs.)

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{PASSWORD, Signed, TestApp, expect_problem};

async fn status(app: &TestApp, m: Method, path: &str, token: &str) -> u16 {
    app.call(m, path, token, None, None).await.status().as_u16()
}

async fn refresh_status(app: &TestApp, token: &str) -> u16 {
    app.post_json("/v1/auth/refresh", &json!({"refresh_token": token}))
        .await
        .status()
        .as_u16()
}

async fn switch_status(app: &TestApp, access: &str, org: &str) -> u16 {
    app.call(
        Method::POST,
        "/v1/auth/switch-organization",
        access,
        None,
        Some(json!({"organization_id": org})),
    )
    .await
    .status()
    .as_u16()
}

/// Disables the account in the store alone, as a disable whose session revocations were lost
/// would leave it: no session ended, no cache forgotten.
async fn disable_in_store(app: &TestApp, user: &str) {
    let mut tx = app.kernel.store().begin().await.unwrap();
    let user = gatehouse_core::UserId::from_uuid(user.parse().unwrap());
    assert!(
        tx.set_user_disabled(user, Some(app.kernel.clock().now()))
            .await
            .unwrap()
    );
    tx.commit(gatehouse_core::audit::Audited::for_tests())
        .await
        .unwrap();
}

async fn login_in(app: &TestApp, email: &str, org: &str, device: &str, user: &str) -> Signed {
    let res = app
        .post_json(
            "/v1/auth/login",
            &json!({"email": email, "password": PASSWORD, "device_name": device,
                    "organization_id": org}),
        )
        .await;
    assert_eq!(res.status(), 200, "{:?}", res.text().await);
    Signed::from_login(user, &res.json().await.unwrap())
}

/// `inviter` invites the existing account `email` as a member, which accepts with its password.
async fn join_as_member(app: &TestApp, inviter: &Signed, email: &str) {
    let res = app
        .org_call(
            Method::POST,
            "/v1/organization/invitations",
            inviter,
            Some(json!({"email": email, "role": "member"})),
        )
        .await;
    assert_eq!(res.status(), 201);
    let token = app.mailed_link(email, "/accept-invitation").await;
    let res = app
        .post_json(
            "/v1/invitations/accept",
            &json!({"token": token, "password": PASSWORD}),
        )
        .await;
    assert_eq!(res.status(), 200, "{:?}", res.text().await);
}

#[tokio::test]
async fn an_admin_ends_a_members_sessions_in_the_organisation_only() {
    let app = TestApp::spawn().await;
    // Bea has her own organisation and is a member of Ada's too.
    let bea_home = app.signup_login("bea@example.com", "laptop").await;
    let ada = app.signup_login("ada@example.com", "laptop").await;
    join_as_member(&app, &ada, "bea@example.com").await;
    let bea = login_in(&app, "bea@example.com", &ada.org, "phone", &bea_home.user).await;

    // A member without `members.manage` may not.
    let path = format!("/v1/organization/members/{}/sessions", ada.user);
    let res = app.org_call(Method::DELETE, &path, &bea, None).await;
    expect_problem(res, 403, "forbidden").await;

    let path = format!("/v1/organization/members/{}/sessions", bea.user);
    let res = app.org_call(Method::DELETE, &path, &ada, None).await;
    assert_eq!(res.status(), 200, "{:?}", res.text().await);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["sessions_ended"], 1);
    // Her session in Ada's organisation: refused at once, its refresh too.
    assert_eq!(
        status(&app, Method::GET, "/v1/auth/verify", &bea.access).await,
        401
    );
    assert_eq!(refresh_status(&app, &bea.refresh).await, 401);
    // Her session in her own organisation is another organisation's business: untouched. But it
    // began before the end, so it cannot switch into Ada's organisation and undo it.
    assert_eq!(
        status(&app, Method::GET, "/v1/auth/verify", &bea_home.access).await,
        200
    );
    assert_eq!(switch_status(&app, &bea_home.access, &ada.org).await, 403);
    assert_eq!(refresh_status(&app, &bea_home.refresh).await, 200);
    // A session she signs in to afterwards may.
    app.clock.advance(time::Duration::seconds(1));
    let later = login_in(&app, "bea@example.com", &bea_home.org, "tablet", &bea.user).await;
    assert_eq!(switch_status(&app, &later.access, &ada.org).await, 200);
    // She is still a member, and may sign in again.
    login_in(&app, "bea@example.com", &ada.org, "phone", &bea.user).await;
    let events = app.audit_events(&ada.org).await;
    let ended = events
        .iter()
        .find(|e| e.action == "member.sessions_ended")
        .expect("audited on the organisation's chain");
    assert_eq!(ended.actor_id, ada.user);
    assert_eq!(ended.resource_id, bea.user);
    app.chain_verifies(&ada.org).await;
    // Someone who is not a member is not found.
    let path = format!("/v1/organization/members/{}/sessions", uuid::Uuid::nil());
    let res = app.org_call(Method::DELETE, &path, &ada, None).await;
    expect_problem(res, 404, "not_found").await;
    app.stop().await;
}

#[tokio::test]
async fn a_disabled_account_is_refused_everything_until_it_is_enabled_again() {
    let app = TestApp::spawn().await;
    let ada = app.signup_login("ada@example.com", "laptop").await;
    let phone = app
        .login("ada@example.com", PASSWORD, "phone", &ada.user)
        .await;
    let res = app
        .org_call(
            Method::POST,
            "/v1/api-keys",
            &ada,
            Some(json!({"name": "ci", "permissions": ["audit.read"]})),
        )
        .await;
    assert_eq!(res.status(), 201);
    let key: Value = res.json().await.unwrap();
    let key = key["key"].as_str().unwrap().to_owned();
    let bob = app.signup_login("bob@example.com", "laptop").await;
    for token in [&ada.access, &phone.access, &key] {
        assert_eq!(
            status(&app, Method::GET, "/v1/auth/verify", token).await,
            200
        );
    }
    let op = app.operator_token().await;

    // A tenant token is not an operator's; a reason is required.
    let disable = format!("/admin/v1/users/{}/disable", ada.user);
    let res = app
        .call(
            Method::POST,
            &disable,
            &ada.access,
            None,
            Some(json!({"reason": "x"})),
        )
        .await;
    expect_problem(res, 403, "wrong_audience").await;
    let res = app
        .call(
            Method::POST,
            &disable,
            &op,
            None,
            Some(json!({"reason": "  "})),
        )
        .await;
    expect_problem(res, 422, "validation_failed").await;

    let reason = json!({"reason": "laptop reported stolen"});
    let res = app
        .call(Method::POST, &disable, &op, None, Some(reason.clone()))
        .await;
    assert_eq!(res.status(), 200, "{:?}", res.text().await);
    let body: Value = res.json().await.unwrap();
    assert_eq!(
        body,
        json!({"disabled": true, "changed": true, "sessions_ended": 2})
    );
    // The next request with any of its access tokens, refresh tokens or API keys is refused.
    for token in [&ada.access, &phone.access, &key] {
        assert_eq!(
            status(&app, Method::GET, "/v1/auth/verify", token).await,
            401
        );
    }
    let res = app
        .call(Method::GET, "/v1/audit-logs", &key, Some(&ada.org), None)
        .await;
    let refused = expect_problem(res, 401, "unauthenticated").await;
    assert!(
        refused["detail"].as_str().unwrap().contains("disabled"),
        "{refused}"
    );
    for refresh in [&ada.refresh, &phone.refresh] {
        assert_eq!(refresh_status(&app, refresh).await, 401);
    }
    // No sign-in: the right password learns the account is disabled, a wrong one learns nothing.
    let res = app
        .post_json(
            "/v1/auth/login",
            &json!({"email": "ada@example.com", "password": PASSWORD}),
        )
        .await;
    expect_problem(res, 403, "account_disabled").await;
    let res = app
        .post_json(
            "/v1/auth/login",
            &json!({"email": "ada@example.com", "password": "not the password at all"}),
        )
        .await;
    expect_problem(res, 401, "invalid_credentials").await;
    // Nor an impersonation of it.
    let res = app
        .call(
            Method::POST,
            "/admin/v1/impersonations",
            &op,
            None,
            Some(json!({"user_id": ada.user, "organization_id": ada.org, "reason": "support"})),
        )
        .await;
    expect_problem(res, 403, "account_disabled").await;
    // Other accounts are untouched.
    assert_eq!(
        status(&app, Method::GET, "/v1/auth/verify", &bob.access).await,
        200
    );
    // Disabling again changes nothing.
    let res = app
        .call(Method::POST, &disable, &op, None, Some(reason.clone()))
        .await;
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["changed"], false);

    // Re-enabled: sign-in and the API key work again; the ended sessions stay ended.
    let enable = format!("/admin/v1/users/{}/enable", ada.user);
    let res = app
        .call(
            Method::POST,
            &enable,
            &op,
            None,
            Some(json!({"reason": "laptop found"})),
        )
        .await;
    assert_eq!(res.status(), 200, "{:?}", res.text().await);
    let body: Value = res.json().await.unwrap();
    assert_eq!(
        body,
        json!({"disabled": false, "changed": true, "sessions_ended": 0})
    );
    let again = app
        .login("ada@example.com", PASSWORD, "laptop", &ada.user)
        .await;
    assert_eq!(
        status(&app, Method::GET, "/v1/auth/verify", &again.access).await,
        200
    );
    assert_eq!(
        status(&app, Method::GET, "/v1/auth/verify", &key).await,
        200
    );
    assert_eq!(refresh_status(&app, &ada.refresh).await, 401);

    // Audited on the operators' chain; the refused sign-in is a security event, counted per
    // source, account and minute rather than written per attempt.
    app.kernel.flush_security_events(true).await.unwrap();
    let res = app
        .call(Method::GET, "/admin/v1/audit-logs", &op, None, None)
        .await;
    let trail: Value = res.json().await.unwrap();
    let actions: Vec<&str> = trail["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["resource"]["id"] == ada.user.as_str())
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for action in ["user.disabled", "user.enabled", "user.disabled_refused"] {
        assert!(actions.contains(&action), "{action} in {actions:?}");
    }
    app.stop().await;
}

#[tokio::test]
async fn an_operator_ends_all_of_a_users_sessions_and_needs_a_step_up_to_disable() {
    let app = TestApp::spawn().await;
    let ada = app.signup_login("ada@example.com", "laptop").await;
    let phone = app
        .login("ada@example.com", PASSWORD, "phone", &ada.user)
        .await;
    let op = app.operator_token().await;
    let path = format!("/admin/v1/users/{}/sessions", ada.user);
    let res = app.call(Method::DELETE, &path, &op, None, None).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["sessions_ended"], 2);
    for s in [&ada, &phone] {
        assert_eq!(
            status(&app, Method::GET, "/v1/auth/verify", &s.access).await,
            401
        );
        assert_eq!(refresh_status(&app, &s.refresh).await, 401);
    }
    // The account itself is not disabled: it signs in again.
    app.login("ada@example.com", PASSWORD, "laptop", &ada.user)
        .await;
    let res = app
        .call(
            Method::DELETE,
            &format!("/admin/v1/users/{}/sessions", uuid::Uuid::nil()),
            &op,
            None,
            None,
        )
        .await;
    expect_problem(res, 404, "not_found").await;

    // Disabling needs a recent step-up: six minutes after the operator's sign-in it is refused.
    app.clock.advance(time::Duration::minutes(6));
    let res = app
        .call(
            Method::POST,
            &format!("/admin/v1/users/{}/disable", ada.user),
            &op,
            None,
            Some(json!({"reason": "laptop reported stolen"})),
        )
        .await;
    expect_problem(res, 403, "step_up_required").await;
    app.stop().await;
}

#[tokio::test]
async fn only_an_owner_ends_an_owners_sessions() {
    let app = TestApp::spawn().await;
    let owner = app.signup_login("ada@example.com", "laptop").await;
    // A custom role holding every permission an owner holds, short of being an owner.
    let every: Vec<&str> = gatehouse_core::identity::CATALOGUE
        .iter()
        .map(|(name, _)| *name)
        .collect();
    let res = app
        .org_call(
            Method::POST,
            "/v1/organization/roles",
            &owner,
            Some(json!({"name": "deputy", "permissions": every})),
        )
        .await;
    assert_eq!(res.status(), 201, "{:?}", res.text().await);
    let deputy = app.add_member(&owner, "dee@example.com", "deputy").await;
    let admin = app.add_member(&owner, "al@example.com", "admin").await;
    let path = format!("/v1/organization/members/{}/sessions", owner.user);
    for actor in [&deputy, &admin] {
        let res = app.org_call(Method::DELETE, &path, actor, None).await;
        expect_problem(res, 403, "forbidden").await;
    }
    // Refused, so nothing ended.
    assert_eq!(
        status(&app, Method::GET, "/v1/auth/verify", &owner.access).await,
        200
    );
    // An owner may end another owner's.
    let second = app.add_member(&owner, "bo@example.com", "owner").await;
    let res = app.org_call(Method::DELETE, &path, &second, None).await;
    assert_eq!(res.status(), 200, "{:?}", res.text().await);
    assert_eq!(
        status(&app, Method::GET, "/v1/auth/verify", &owner.access).await,
        401
    );
    app.stop().await;
}

#[tokio::test]
async fn a_disabled_account_with_sessions_left_is_refused_at_refresh_and_second_step() {
    let app = TestApp::spawn().await;
    let ada = app.signup_login("ada@example.com", "laptop").await;
    let (_, codes) = crate::mfa::enrol(&app, &ada).await;
    // A second step begun while the account was enabled.
    let challenge = crate::mfa::password_step(&app, "ada@example.com").await;
    disable_in_store(&app, &ada.user).await;
    // The session was not ended: its refresh reads the account and is refused.
    let res = app
        .post_json("/v1/auth/refresh", &json!({"refresh_token": ada.refresh}))
        .await;
    expect_problem(res, 403, "account_disabled").await;
    let res = crate::mfa::second_step(&app, &challenge, json!({"recovery_code": codes[0]})).await;
    expect_problem(res, 403, "account_disabled").await;
    // Both refusals are counted as security events on the operators' chain, naming the account.
    app.kernel.flush_security_events(true).await.unwrap();
    let mut tx = app.kernel.store().begin().await.unwrap();
    let events = tx.operator_audit_events(0, 1000).await.unwrap();
    drop(tx);
    let refused: u64 = events
        .iter()
        .filter(|e| e.action == "user.disabled_refused" && e.resource_id == ada.user)
        .map(|e| {
            serde_json::from_str::<Value>(&e.details).unwrap()["count"]
                .as_u64()
                .unwrap()
        })
        .sum();
    assert_eq!(refused, 2);
    app.stop().await;
}

#[tokio::test]
async fn a_service_check_naming_a_disabled_account_is_refused() {
    let dir = crate::support::temp_dir();
    let secret = crate::api_keys::service_secret_file(&dir, "s1.key", crate::api_keys::S1);
    let app = TestApp::spawn_with(|raw| raw.service_auth.secret_files = vec![secret]).await;
    let ada = app.signup_login("ada@example.com", "laptop").await;
    let ask = || async {
        let res = app
            .client
            .post(app.url("/internal/v1/check"))
            .header("x-service-auth", crate::api_keys::S1)
            .json(
                &json!({"organization_id": ada.org, "subject": {"user_id": ada.user},
                          "checks": [{"action": "org.read"}, {"action": "audit.read"}]}),
            )
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
                (
                    r["allowed"].as_bool().unwrap(),
                    r["reason"].as_str().unwrap().to_owned(),
                )
            })
            .collect::<Vec<_>>()
    };
    // Asked once before, so the membership is cached when the account is disabled.
    assert!(ask().await.iter().all(|(allowed, _)| *allowed));
    let op = app.operator_token().await;
    let disable = format!("/admin/v1/users/{}/disable", ada.user);
    let res = app
        .call(
            Method::POST,
            &disable,
            &op,
            None,
            Some(json!({"reason": "left the company"})),
        )
        .await;
    assert_eq!(res.status(), 200, "{:?}", res.text().await);
    assert_eq!(ask().await, vec![(false, "account_disabled".to_owned()); 2]);
    let enable = format!("/admin/v1/users/{}/enable", ada.user);
    let res = app
        .call(
            Method::POST,
            &enable,
            &op,
            None,
            Some(json!({"reason": "came back"})),
        )
        .await;
    assert_eq!(res.status(), 200, "{:?}", res.text().await);
    assert!(ask().await.iter().all(|(allowed, _)| *allowed));
    app.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_disabled_account_neither_accepts_an_invitation_nor_has_its_own_accepted() {
    let app = TestApp::spawn().await;
    let ada = app.signup_login("ada@example.com", "laptop").await;
    let bea = app.signup_login("bea@example.com", "laptop").await;
    let invite = |email: &'static str| {
        let app = &app;
        let ada = &ada;
        async move {
            let res = app
                .org_call(
                    Method::POST,
                    "/v1/organization/invitations",
                    ada,
                    Some(json!({"email": email, "role": "member"})),
                )
                .await;
            assert_eq!(res.status(), 201);
            app.mailed_link(email, "/accept-invitation").await
        }
    };
    let accept = |token: String| {
        let app = &app;
        async move {
            app.post_json(
                "/v1/invitations/accept",
                &json!({"token": token, "name": "Cy", "password": PASSWORD}),
            )
            .await
        }
    };
    // Bea, disabled, cannot join with her right password (a sign-in would be refused too).
    let to_bea = invite("bea@example.com").await;
    disable_in_store(&app, &bea.user).await;
    expect_problem(accept(to_bea).await, 403, "account_disabled").await;
    // Ada's invitation to a newcomer is refused once Ada is disabled, as if unknown.
    let to_cy = invite("cy@example.com").await;
    disable_in_store(&app, &ada.user).await;
    expect_problem(accept(to_cy).await, 404, "not_found").await;
    app.stop().await;
}

/// A switch that raced an admin's end (read the membership before the end was written, moved
/// the session after) leaves a session in the organisation that began before the end: its
/// refresh ends it, so the race buys at most one access token.
#[tokio::test]
async fn a_session_that_got_in_before_the_end_is_not_refreshed_there() {
    let app = TestApp::spawn().await;
    let bea_home = app.signup_login("bea@example.com", "laptop").await;
    let ada = app.signup_login("ada@example.com", "laptop").await;
    join_as_member(&app, &ada, "bea@example.com").await;
    // Her home session moves into Ada's organisation (the switch's half of the race)...
    assert_eq!(switch_status(&app, &bea_home.access, &ada.org).await, 200);
    // ...and the end is written after it read the membership (the admin's half).
    let org = gatehouse_core::OrgId::parse(&ada.org).unwrap();
    let user = gatehouse_core::ids::UserId::from_uuid(bea_home.user.parse().unwrap());
    let mut tx = app
        .kernel
        .store()
        .begin_scoped(&gatehouse_core::TenantScope::for_tests(org))
        .await
        .unwrap();
    assert!(
        tx.set_sessions_ended(user, app.kernel.clock().now())
            .await
            .unwrap()
    );
    tx.commit(gatehouse_core::audit::Audited::for_tests())
        .await
        .unwrap();
    app.clock.advance(time::Duration::seconds(1));
    assert_eq!(refresh_status(&app, &bea_home.refresh).await, 401);
    app.stop().await;
}
