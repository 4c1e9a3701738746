//! Operators' own sign-in and sessions (A9; issue 18, finding 6): a TOTP factor (codes from
//! pyotp, an independent implementation), required by default in production; step-up before
//! impersonation; sign-out and session revocation over the API and the CLI; and operator
//! credentials that work on the operators' surface only.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use gatehouse_crypto::SecretString;
use reqwest::Method;
use serde_json::{Value, json};

use crate::interop::pyotp_code;
use crate::support::{PASSWORD, TestApp, expect_problem, temp_dir, token_claims};

const OPS: &str = "ops@platform.example";

async fn create_operator(app: &TestApp) {
    app.kernel
        .operators()
        .create(OPS, "Platform Ops", SecretString::from(PASSWORD.to_owned()))
        .await
        .unwrap();
}

/// Enrols a factor as `gatehouse admin enrol-totp` does (the same kernel calls); returns the
/// base32 secret. The confirming code spends the current step.
async fn enrol(app: &TestApp) -> String {
    let enrolment = app
        .kernel
        .operators()
        .start_totp_enrolment(OPS)
        .await
        .unwrap();
    let secret = enrolment.secret.expose().to_owned();
    assert!(
        enrolment
            .otpauth_uri
            .expose()
            .starts_with("otpauth://totp/Gatehouse%20operators:"),
        "{}",
        enrolment.otpauth_uri.expose()
    );
    let code = SecretString::from(pyotp_code(&secret, app.clock_secs()));
    app.kernel
        .operators()
        .confirm_totp_enrolment(&enrolment, &code)
        .await
        .unwrap();
    secret
}

/// The newest actions on the operators' audit chain, read from the store (an operator reading
/// them over HTTP would need a second factor on servers that require one).
async fn operator_trail(app: &TestApp) -> Vec<String> {
    let mut tx = app.kernel.store().begin_read().await.unwrap();
    tx.query_operator_audit(&gatehouse_core::audit::AuditFilter::default(), None, 200)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .collect()
}

async fn login(app: &TestApp, base: &str, body: Value) -> reqwest::Response {
    app.client
        .post(format!("{base}/admin/v1/auth/login"))
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// Signs in on the single listener: (access, refresh).
async fn signed_in(app: &TestApp, code: Option<String>) -> (String, String) {
    let mut body = json!({"email": OPS, "password": PASSWORD});
    if let Some(c) = code {
        body["code"] = json!(c);
    }
    let res = login(app, &app.base, body).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    (
        body["access_token"].as_str().unwrap().to_owned(),
        body["refresh_token"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test]
async fn an_operator_refresh_token_works_only_on_the_operators_surface() {
    let app = TestApp::spawn_with(|raw| raw.admin_listen = Some("127.0.0.1:0".into())).await;
    let admin = app.admin_base.clone().unwrap();
    create_operator(&app).await;
    let user = app.signup_login("ada@example.com", "laptop").await;
    let res = login(&app, &admin, json!({"email": OPS, "password": PASSWORD})).await;
    assert_eq!(res.status(), 200);
    let refresh = res.json::<Value>().await.unwrap()["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();

    // The public listener's refresh refuses it, and the refusal does not spend it.
    let res = app
        .post_json("/v1/auth/refresh", &json!({"refresh_token": refresh}))
        .await;
    expect_problem(res, 403, "wrong_audience").await;
    let res = app
        .client
        .post(format!("{admin}/admin/v1/auth/refresh"))
        .json(&json!({"refresh_token": refresh}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(
        token_claims(body["access_token"].as_str().unwrap())["tier"],
        "operator"
    );
    assert_ne!(body["refresh_token"], refresh.as_str());
    // And the operators' refresh refuses a customer's refresh token.
    let res = app
        .client
        .post(format!("{admin}/admin/v1/auth/refresh"))
        .json(&json!({"refresh_token": user.refresh}))
        .send()
        .await
        .unwrap();
    expect_problem(res, 403, "wrong_audience").await;
    let res = app
        .post_json("/v1/auth/refresh", &json!({"refresh_token": user.refresh}))
        .await;
    assert_eq!(res.status(), 200, "the customer's token was left usable");
    app.stop().await;
}

#[tokio::test]
async fn an_operator_with_a_factor_signs_in_only_with_its_current_code() {
    let app = TestApp::spawn().await;
    create_operator(&app).await;
    let (before, before_refresh) = signed_in(&app, None).await;
    let secret = enrol(&app).await;

    // Enrolling ended the session opened without the factor.
    let res = app
        .call(Method::GET, "/admin/v1/sessions", &before, None, None)
        .await;
    expect_problem(res, 401, "unauthenticated").await;
    let res = app
        .post_json(
            "/admin/v1/auth/refresh",
            &json!({"refresh_token": before_refresh}),
        )
        .await;
    expect_problem(res, 401, "unauthenticated").await;

    // No answer says the password was right: a missing code, a wrong code and a wrong password
    // get the same status and body.
    let mut answers = Vec::new();
    for body in [
        json!({"email": OPS, "password": PASSWORD}),
        json!({"email": OPS, "password": PASSWORD, "code": "000000"}),
        json!({"email": OPS, "password": "not the password"}),
        json!({"email": "nobody@platform.example", "password": PASSWORD, "code": "000000"}),
    ] {
        let res = login(&app, &app.base, body).await;
        let problem = expect_problem(res, 401, "invalid_credentials").await;
        answers.push(["type", "title", "status", "detail", "code"].map(|k| problem[k].clone()));
    }
    assert!(answers.windows(2).all(|w| w[0] == w[1]), "{answers:?}");
    // The code the enrolment used is spent; the next step's is accepted once.
    let enrolled_with = pyotp_code(&secret, app.clock_secs());
    let res = login(
        &app,
        &app.base,
        json!({"email": OPS, "password": PASSWORD, "code": enrolled_with}),
    )
    .await;
    expect_problem(res, 401, "invalid_credentials").await;
    let next = pyotp_code(&secret, app.clock_secs() + 30);
    let (access, _) = signed_in(&app, Some(next.clone())).await;
    let claims = token_claims(&access);
    assert_eq!(claims["amr"], json!(["pwd", "otp"]));
    assert_eq!(claims["mfa"], true);
    let res = login(
        &app,
        &app.base,
        json!({"email": OPS, "password": PASSWORD, "code": next}),
    )
    .await;
    expect_problem(res, 401, "invalid_credentials").await;
    // A wrong password with a right code is the same refusal as any wrong password.
    let res = login(
        &app,
        &app.base,
        json!({"email": OPS, "password": "not the password", "code": pyotp_code(&secret, app.clock_secs() + 60)}),
    )
    .await;
    expect_problem(res, 401, "invalid_credentials").await;

    let trail = operator_trail(&app).await;
    for action in [
        "operator.totp_enrolled",
        "operator.mfa_failed",
        "operator.login",
    ] {
        assert!(trail.iter().any(|a| a == action), "{action} in {trail:?}");
    }
    app.stop().await;
}

#[tokio::test]
async fn where_a_factor_is_required_an_operator_without_one_cannot_sign_in_or_refresh() {
    let dir = temp_dir();
    let app = TestApp::spawn_in(dir.clone(), |_| {}).await;
    create_operator(&app).await;
    let (_, refresh) = signed_in(&app, None).await;
    let dir = app.stop_keeping_data().await;

    let app = TestApp::spawn_in(dir, |raw| {
        raw.identity.operator_totp_required = Some(true);
    })
    .await;
    // The same answer as a wrong password (which would otherwise say the password was right);
    // the audit trail says why.
    let res = login(&app, &app.base, json!({"email": OPS, "password": PASSWORD})).await;
    expect_problem(res, 401, "invalid_credentials").await;
    assert!(
        operator_trail(&app)
            .await
            .iter()
            .any(|a| a == "operator.login_refused")
    );
    let res = app
        .post_json("/admin/v1/auth/refresh", &json!({"refresh_token": refresh}))
        .await;
    expect_problem(res, 403, "second_factor_not_enrolled").await;

    let secret = enrol(&app).await;
    signed_in(&app, Some(pyotp_code(&secret, app.clock_secs() + 30))).await;
    app.stop().await;
}

async fn impersonate(app: &TestApp, op: &str, user: &str, org: &str) -> reqwest::Response {
    app.call(
        Method::POST,
        "/admin/v1/impersonations",
        op,
        None,
        Some(json!({"user_id": user, "organization_id": org, "reason": "ticket 4711"})),
    )
    .await
}

#[tokio::test]
async fn impersonation_needs_a_recent_step_up() {
    let app = TestApp::spawn().await;
    let a = app.signup_login("ada@example.com", "laptop").await;
    create_operator(&app).await;

    // Without a factor (development): the sign-in's password counts for the step-up window.
    let (op, _) = signed_in(&app, None).await;
    app.clock.advance(time::Duration::minutes(6));
    let res = impersonate(&app, &op, &a.user, &a.org).await;
    let problem = expect_problem(res, 403, "step_up_required").await;
    assert!(
        problem["detail"].as_str().unwrap().contains("password"),
        "{problem}"
    );
    let res = app
        .call(
            Method::POST,
            "/admin/v1/auth/step-up",
            &op,
            None,
            Some(json!({"password": "wrong wrong wrong"})),
        )
        .await;
    expect_problem(res, 401, "invalid_credentials").await;
    let res = app
        .call(
            Method::POST,
            "/admin/v1/auth/step-up",
            &op,
            None,
            Some(json!({"password": PASSWORD})),
        )
        .await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert!(body.get("refresh_token").is_none(), "{body}");
    let stepped = body["access_token"].as_str().unwrap().to_owned();
    let res = impersonate(&app, &stepped, &a.user, &a.org).await;
    assert_eq!(res.status(), 201);

    // With a factor: only a fresh code steps up, and the password no longer does.
    let secret = enrol(&app).await;
    let (op, _) = signed_in(&app, Some(pyotp_code(&secret, app.clock_secs() + 30))).await;
    let res = impersonate(&app, &op, &a.user, &a.org).await;
    assert_eq!(
        res.status(),
        201,
        "a sign-in with the code is a recent step-up"
    );
    app.clock.advance(time::Duration::minutes(6));
    let res = impersonate(&app, &op, &a.user, &a.org).await;
    expect_problem(res, 403, "step_up_required").await;
    let res = app
        .call(
            Method::POST,
            "/admin/v1/auth/step-up",
            &op,
            None,
            Some(json!({"password": PASSWORD})),
        )
        .await;
    expect_problem(res, 422, "validation_failed").await;
    let res = app
        .call(
            Method::POST,
            "/admin/v1/auth/step-up",
            &op,
            None,
            Some(json!({"code": pyotp_code(&secret, app.clock_secs())})),
        )
        .await;
    assert_eq!(res.status(), 200);
    let stepped = res.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let res = impersonate(&app, &stepped, &a.user, &a.org).await;
    assert_eq!(res.status(), 201);
    let trail = operator_trail(&app).await;
    assert!(
        trail.iter().any(|a| a == "impersonation.step_up_required"),
        "{trail:?}"
    );
    app.stop().await;
}

#[tokio::test]
async fn operators_list_revoke_and_sign_out_their_sessions() {
    let app = TestApp::spawn().await;
    create_operator(&app).await;
    let (desk, desk_refresh) = signed_in(&app, None).await;
    let (laptop, _) = signed_in(&app, None).await;
    let (phone, _) = signed_in(&app, None).await;

    let res = app
        .call(Method::GET, "/admin/v1/sessions", &desk, None, None)
        .await;
    assert_eq!(res.status(), 200);
    let list: Value = res.json().await.unwrap();
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 3);
    assert_eq!(items.iter().filter(|s| s["current"] == true).count(), 1);
    let laptop_sid = token_claims(&laptop)["sid"].as_str().unwrap().to_owned();

    let res = app
        .call(
            Method::DELETE,
            &format!("/admin/v1/sessions/{laptop_sid}"),
            &desk,
            None,
            None,
        )
        .await;
    assert_eq!(res.status(), 204);
    let res = app
        .call(Method::GET, "/admin/v1/audit-logs", &laptop, None, None)
        .await;
    expect_problem(res, 401, "unauthenticated").await;

    let res = app
        .call(
            Method::POST,
            "/admin/v1/sessions/revoke-others",
            &desk,
            None,
            None,
        )
        .await;
    assert_eq!(res.json::<Value>().await.unwrap()["revoked"], 1);
    let res = app
        .call(Method::GET, "/admin/v1/audit-logs", &phone, None, None)
        .await;
    expect_problem(res, 401, "unauthenticated").await;

    let res = app
        .call(Method::POST, "/admin/v1/auth/logout", &desk, None, None)
        .await;
    assert_eq!(res.status(), 204);
    let res = app
        .call(Method::GET, "/admin/v1/audit-logs", &desk, None, None)
        .await;
    expect_problem(res, 401, "unauthenticated").await;
    let res = app
        .post_json(
            "/admin/v1/auth/refresh",
            &json!({"refresh_token": desk_refresh}),
        )
        .await;
    expect_problem(res, 401, "unauthenticated").await;

    // The CLI's revocation (the same kernel call) ends every session of the operator.
    let (again, again_refresh) = signed_in(&app, None).await;
    let ended = app
        .kernel
        .operators()
        .revoke_all_sessions(OPS)
        .await
        .unwrap();
    assert_eq!(ended, 1);
    let res = app
        .call(Method::GET, "/admin/v1/audit-logs", &again, None, None)
        .await;
    expect_problem(res, 401, "unauthenticated").await;
    let res = app
        .post_json(
            "/admin/v1/auth/refresh",
            &json!({"refresh_token": again_refresh}),
        )
        .await;
    expect_problem(res, 401, "unauthenticated").await;
    app.stop().await;
}

const BIN: &str = env!("CARGO_BIN_EXE_gatehouse");

/// The store the CLI and the server of the process test use: the default SQLite file, or with
/// `GH_IT_POSTGRES` a fresh PostgreSQL database (as the other tests' servers).
async fn backend(dir: &std::path::Path) -> Vec<(&'static str, String)> {
    if std::env::var_os("GH_IT_POSTGRES").is_none() {
        return Vec::new();
    }
    let (app, owner) = crate::support::postgres_database(dir).await;
    vec![
        ("GATEHOUSE_DATABASE_URL", app),
        ("GATEHOUSE_DATABASE_MIGRATION_URL", owner),
    ]
}

fn cli(
    dir: &std::path::Path,
    env: &[(&str, String)],
    args: &[&str],
    stdin: &str,
) -> (bool, String, String) {
    let mut child = Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[allow(clippy::disallowed_methods)] // the CLI and the server run on the real clock
fn now_secs() -> i64 {
    i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap()
}

/// `gatehouse admin enrol-totp` answered as a person would: read the secret it prints, type the
/// authenticator's code. Returns the secret.
fn enrol_with_the_cli(dir: &std::path::Path, env: &[(&str, String)], email: &str) -> String {
    let mut child = Command::new(BIN)
        .args(["admin", "enrol-totp", "--email", email])
        .current_dir(dir)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut secret = None;
    let mut seen = String::new();
    while secret.is_none() {
        let mut line = String::new();
        assert_ne!(out.read_line(&mut line).unwrap(), 0, "no secret in {seen}");
        seen.push_str(&line);
        secret = line.strip_prefix("secret: ").map(|s| s.trim().to_owned());
    }
    let secret = secret.unwrap();
    let code = pyotp_code(&secret, now_secs());
    let mut stdin = child.stdin.take().unwrap();
    writeln!(stdin, "{code}").unwrap();
    drop(stdin);
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "{seen}{rest}");
    assert!(rest.contains("second factor enrolled"), "{rest}");
    secret
}

#[tokio::test]
async fn the_cli_enrols_a_factor_lists_and_revokes_an_operators_sessions() {
    let dir = temp_dir();
    let env = backend(&dir).await;
    let (ok, _, err) = cli(
        &dir,
        &env,
        &["admin", "create-operator", "--email", OPS, "--name", "Ops"],
        &format!("{PASSWORD}\n"),
    );
    assert!(ok, "{err}");
    // A wrong code stores nothing.
    let (ok, out, err) = cli(
        &dir,
        &env,
        &["admin", "enrol-totp", "--email", OPS],
        "123\n",
    );
    assert!(!ok && out.contains("secret: "), "{out}");
    assert!(err.contains("does not match"), "{err}");
    let secret = enrol_with_the_cli(&dir, &env, OPS);

    let server = crate::process::start_with(
        &dir,
        &env.iter()
            .map(|(k, v)| (*k, v.as_str()))
            .collect::<Vec<_>>(),
    );
    let base = format!("http://{}", server.addr);
    let client = reqwest::Client::new();
    let res = client
        .post(format!("{base}/admin/v1/auth/login"))
        .json(&json!({"email": OPS, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    expect_problem(res, 401, "invalid_credentials").await;
    // The enrolment spent the current step: the next one signs in.
    let res = client
        .post(format!("{base}/admin/v1/auth/login"))
        .json(
            &json!({"email": OPS, "password": PASSWORD, "device_name": "ops laptop",
            "code": pyotp_code(&secret, now_secs() + 30)}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let refresh = res.json::<Value>().await.unwrap()["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();

    let (ok, out, err) = cli(&dir, &env, &["admin", "sessions", "--email", OPS], "");
    assert!(ok, "{err}");
    assert!(
        out.contains("1 live session(s)") && out.contains("ops laptop"),
        "{out}"
    );
    let (ok, out, err) = cli(
        &dir,
        &env,
        &["admin", "revoke-sessions", "--email", OPS],
        "",
    );
    assert!(ok, "{err}");
    assert!(out.contains("1 session(s)"), "{out}");
    let res = client
        .post(format!("{base}/admin/v1/auth/refresh"))
        .json(&json!({"refresh_token": refresh}))
        .send()
        .await
        .unwrap();
    expect_problem(res, 401, "unauthenticated").await;
    let (ok, out, _) = cli(&dir, &env, &["admin", "sessions", "--email", OPS], "");
    assert!(ok && out.contains("0 live session(s)"), "{out}");
    server.signal("TERM");
    server.wait();
    crate::support::drop_postgres_database(&dir).await;
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn ending_an_operators_sessions_ends_the_impersonations_they_started() {
    let app = TestApp::spawn().await;
    let a = app.signup_login("ada@example.com", "laptop").await;
    create_operator(&app).await;
    let (desk, _) = signed_in(&app, None).await;
    let (laptop, _) = signed_in(&app, None).await;
    let started = |token: String| {
        let app = &app;
        let (user, org) = (a.user.clone(), a.org.clone());
        async move {
            let res = impersonate(app, &token, &user, &org).await;
            assert_eq!(res.status(), 201);
            res.json::<Value>().await.unwrap()["access_token"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    let verify = |token: String| {
        let app = &app;
        async move {
            app.call(Method::GET, "/v1/auth/verify", &token, None, None)
                .await
                .status()
        }
    };
    // From the laptop: ended when the desk ends every other session.
    let imp = started(laptop.clone()).await;
    assert_eq!(verify(imp.clone()).await, 200);
    let res = app
        .call(
            Method::POST,
            "/admin/v1/sessions/revoke-others",
            &desk,
            None,
            None,
        )
        .await;
    assert_eq!(res.json::<Value>().await.unwrap()["revoked"], 1);
    assert_eq!(verify(imp).await, 401);
    // Signing out, or ending one session, ends them too.
    let (phone, _) = signed_in(&app, None).await;
    let imp = started(phone.clone()).await;
    let res = app
        .call(Method::POST, "/admin/v1/auth/logout", &phone, None, None)
        .await;
    assert_eq!(res.status(), 204);
    assert_eq!(verify(imp).await, 401);
    let (tablet, _) = signed_in(&app, None).await;
    let imp = started(desk.clone()).await;
    let tablet_sid = token_claims(&tablet)["sid"].as_str().unwrap().to_owned();
    let res = app
        .call(
            Method::DELETE,
            &format!("/admin/v1/sessions/{tablet_sid}"),
            &desk,
            None,
            None,
        )
        .await;
    assert_eq!(res.status(), 204);
    assert_eq!(verify(imp).await, 401);
    // From the desk: ended by the CLI's revocation of everything.
    let imp = started(desk).await;
    app.kernel
        .operators()
        .revoke_all_sessions(OPS)
        .await
        .unwrap();
    assert_eq!(verify(imp).await, 401);
    // The customer's own session is not touched.
    assert_eq!(verify(a.access.clone()).await, 200);
    let trail = operator_trail(&app).await;
    assert!(
        trail.iter().any(|t| t == "operator.sessions_revoked"),
        "{trail:?}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_code_spent_on_a_step_up_does_not_sign_in_and_device_names_are_cleaned() {
    let app = TestApp::spawn().await;
    create_operator(&app).await;
    let secret = enrol(&app).await;
    let next = app.clock_secs() + 30;
    let res = login(
        &app,
        &app.base,
        json!({"email": OPS, "password": PASSWORD, "code": pyotp_code(&secret, next),
            "device_name": "\u{1b}[2J\nfake line"}),
    )
    .await;
    assert_eq!(res.status(), 200);
    let op = res.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let res = app
        .call(Method::GET, "/admin/v1/sessions", &op, None, None)
        .await;
    let list: Value = res.json().await.unwrap();
    assert_eq!(list["items"][0]["device_name"], "[2Jfake line");
    // One step later: a step-up spends it, and the same code then signs nobody in.
    app.clock.advance(time::Duration::seconds(30));
    let code = pyotp_code(&secret, app.clock_secs() + 30);
    let res = app
        .call(
            Method::POST,
            "/admin/v1/auth/step-up",
            &op,
            None,
            Some(json!({"code": code})),
        )
        .await;
    assert_eq!(res.status(), 200);
    let res = login(
        &app,
        &app.base,
        json!({"email": OPS, "password": PASSWORD, "code": code}),
    )
    .await;
    expect_problem(res, 401, "invalid_credentials").await;
    app.stop().await;
}

#[tokio::test]
async fn wrong_codes_lock_the_factor_and_wrong_passwords_do_not() {
    let app = TestApp::spawn_with(|raw| {
        raw.rate_limits.enabled = true;
        raw.rate_limits.per_ip.auth = 1000;
        // Only the factor's own lock can answer 429 below.
        raw.rate_limits.lockout.account_wide_threshold = 50;
        raw.rate_limits.lockout.first_lock_secs = 600;
        raw.trusted_proxies = vec!["127.0.0.1".into()];
    })
    .await;
    create_operator(&app).await;
    let secret = enrol(&app).await;
    let from = |n: u32, body: Value| {
        app.client
            .post(app.url("/admin/v1/auth/login"))
            .header("x-forwarded-for", format!("198.51.100.{n}"))
            .json(&body)
            .send()
    };
    // Wrong passwords from five addresses: each address's count, not the factor's.
    for n in 1..=5 {
        let res = from(
            n,
            json!({"email": OPS, "password": "guess guess guess", "code": "000000"}),
        )
        .await
        .unwrap();
        expect_problem(res, 401, "invalid_credentials").await;
    }
    let res = from(
        20,
        json!({"email": OPS, "password": PASSWORD, "code": pyotp_code(&secret, app.clock_secs() + 30)}),
    )
    .await
    .unwrap();
    assert_eq!(res.status(), 200, "wrong passwords locked the factor");
    // Five wrong codes with the right password, each from another address: the factor locks,
    // for every address and whatever the password.
    for n in 30..35 {
        let res = from(
            n,
            json!({"email": OPS, "password": PASSWORD, "code": "000000"}),
        )
        .await
        .unwrap();
        expect_problem(res, 401, "invalid_credentials").await;
    }
    // Locked: even the right password with the right code is refused, and with the answer a
    // wrong password gets, so the lock tells nobody which password was right.
    app.clock.advance(time::Duration::seconds(60));
    let right = pyotp_code(&secret, app.clock_secs());
    let res = from(
        40,
        json!({"email": OPS, "password": PASSWORD, "code": right}),
    )
    .await
    .unwrap();
    expect_problem(res, 401, "invalid_credentials").await;
    let res = from(
        41,
        json!({"email": OPS, "password": "guess guess guess", "code": right}),
    )
    .await
    .unwrap();
    expect_problem(res, 401, "invalid_credentials").await;
    assert!(
        operator_trail(&app)
            .await
            .iter()
            .any(|a| a == "operator.mfa_locked")
    );
    // Once the lock has passed, the operator signs in.
    app.clock.advance(time::Duration::seconds(601));
    let code = pyotp_code(&secret, app.clock_secs());
    let res = from(
        42,
        json!({"email": OPS, "password": PASSWORD, "code": code}),
    )
    .await
    .unwrap();
    assert_eq!(res.status(), 200);
    app.stop().await;
}

/// A right password must cost the guesser's address exactly what a wrong one costs: the factor's
/// attempt is counted against the factor alone, so an address one failure short of its lock is
/// not tipped into it (429) by the right password with a wrong code.
#[tokio::test]
async fn a_right_password_costs_the_address_what_a_wrong_one_does() {
    let app = TestApp::spawn_with(|raw| {
        raw.rate_limits.enabled = true;
        raw.rate_limits.per_ip.auth = 1000;
        raw.rate_limits.lockout.ip_threshold = 4;
        raw.trusted_proxies = vec!["127.0.0.1".into()];
    })
    .await;
    create_operator(&app).await;
    enrol(&app).await;
    let from_one = |body: Value| {
        app.client
            .post(app.url("/admin/v1/auth/login"))
            .header("x-forwarded-for", "203.0.113.9")
            .json(&body)
            .send()
    };
    for n in 0..3 {
        let email = format!("made-up-{n}@platform.example");
        let res = from_one(json!({"email": email, "password": "x x x x x"}))
            .await
            .unwrap();
        expect_problem(res, 401, "invalid_credentials").await;
    }
    let res = from_one(json!({"email": OPS, "password": PASSWORD, "code": "000000"}))
        .await
        .unwrap();
    expect_problem(res, 401, "invalid_credentials").await;
    // The address is now locked for everyone, right password or not.
    for password in [PASSWORD, "x x x x x"] {
        let res = from_one(json!({"email": OPS, "password": password, "code": "000000"}))
            .await
            .unwrap();
        expect_problem(res, 429, "too_many_attempts").await;
    }
    app.stop().await;
}
