//! TLS to the engines (issue 23, must 4), against a PostgreSQL and a Redis this test starts
//! itself with certificates from `gatehouse dev-cert`, each on a free loopback port and speaking
//! only TLS over TCP: `verify-full` against a certificate for another name is refused with a
//! sentence, the right CA works (sign-up and sign-in over it), `require` and `verify-ca` work;
//! Redis over `rediss://` carries shared limits and revocations, a wrong CA is refused, and when
//! the server dies requests are still served and readiness says so until it returns.
//!
//! Needs PostgreSQL's programs (`initdb`, `pg_ctl`) and `redis-server` with TLS, but no running
//! service; it fails, never skips, without them. Not part of the README's service-free test
//! command; `.ci/run` runs it with the Redis suite.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod engines;

use std::time::{Duration, Instant};

use engines::{PrivatePostgres, PrivateRedis, Serve, dev_cert, serve, temp_dir};
use serde_json::{Value, json};

const PASSWORD: &str = "a sufficiently long passphrase";
const START: Duration = Duration::from_secs(60);

async fn post(client: &reqwest::Client, s: &Serve, path: &str, body: Value) -> reqwest::Response {
    client.post(s.url(path)).json(&body).send().await.unwrap()
}

/// Signs up (the first time) and signs in; the login's body.
async fn sign_in(client: &reqwest::Client, s: &Serve, email: &str, signup: bool) -> Value {
    if signup {
        let res = post(
            client,
            s,
            "/v1/auth/signup",
            json!({"email": email, "password": PASSWORD, "name": "Ada", "organization_name": "Engines"}),
        )
        .await;
        assert_eq!(res.status(), 202, "{}", res.text().await.unwrap());
    }
    let res = post(
        client,
        s,
        "/v1/auth/login",
        json!({"email": email, "password": PASSWORD}),
    )
    .await;
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
    let body: Value = res.json().await.unwrap();
    let verify = client
        .get(s.url("/v1/auth/verify"))
        .bearer_auth(body["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(verify.status(), 200);
    body
}

fn on_postgres(url: String) -> Vec<(&'static str, String)> {
    vec![
        ("GATEHOUSE_DATABASE_URL", url.clone()),
        ("GATEHOUSE_DATABASE_MIGRATION_URL", url),
    ]
}

#[tokio::test]
async fn postgres_over_tls_verify_full_refuses_another_name_and_the_right_ca_and_name_work() {
    let dir = temp_dir("pg-tls");
    // A server certificate for `localhost` only: `127.0.0.1` is another name.
    let certs = dev_cert(&dir.join("pg-tls"), &["localhost"]);
    let stranger = dev_cert(&dir.join("other-ca"), &["localhost"]);
    let pg = PrivatePostgres::start(Some(&certs));
    let ca = certs.ca.display().to_string();
    let client = reqwest::Client::new();
    let started = Instant::now();

    // The certificate names localhost, the URL 127.0.0.1: refused at start, with a sentence.
    let url = pg.url(
        "127.0.0.1",
        &format!("sslmode=verify-full&sslrootcert={ca}"),
    );
    let err = serve(&dir, &[("GATEHOUSE_DATABASE_URL", url)], START).unwrap_err();
    assert!(
        err.starts_with("exit status: 1")
            && err.contains(&format!(
                "gatehouse: database_url: cannot connect to postgres://postgres@127.0.0.1:{}/postgres",
                pg.port()
            ))
            && err.contains(
                "TLS refused: the server's certificate is not valid for the host name in the URL, \
                 which sslmode=verify-full requires; connect by a name the certificate carries"
            ),
        "{err}"
    );
    // The right name, but a CA that did not sign the server's certificate.
    let url = pg.url(
        "localhost",
        &format!("sslmode=verify-full&sslrootcert={}", stranger.ca.display()),
    );
    let err = serve(&dir, &[("GATEHOUSE_DATABASE_URL", url)], START).unwrap_err();
    assert!(
        err.contains("TLS refused: the server's certificate is not signed by a CA in sslrootcert"),
        "{err}"
    );
    // This server takes no plain TCP connection at all, so what works below is encrypted.
    let err = serve(
        &dir,
        &[(
            "GATEHOUSE_DATABASE_URL",
            pg.url("127.0.0.1", "sslmode=disable"),
        )],
        START,
    )
    .unwrap_err();
    assert!(err.contains("no encryption"), "{err}");

    // The right CA and name: migrations, then sign-up and sign-in over TLS.
    let url = pg.url(
        "localhost",
        &format!("sslmode=verify-full&sslrootcert={ca}"),
    );
    let s = serve(&dir, &on_postgres(url), START).unwrap_or_else(|e| panic!("{e}\n{}", pg.log()));
    let ready = client.get(s.url("/health/ready")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    sign_in(&client, &s, "ada@example.com", true).await;
    drop(s);

    // `require` encrypts without checking the certificate; `verify-ca` checks the chain but not
    // the name. Both reach the same data.
    for params in [
        "sslmode=require".to_owned(),
        format!("sslmode=verify-ca&sslrootcert={ca}"),
    ] {
        let url = pg.url("127.0.0.1", &params);
        let s = serve(&dir, &[("GATEHOUSE_DATABASE_URL", url)], START)
            .unwrap_or_else(|e| panic!("{params}: {e}"));
        sign_in(&client, &s, "ada@example.com", false).await;
    }
    println!("PostgreSQL over TLS: six starts in {:?}", started.elapsed());
    drop(pg);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The readiness report as operators read it (`/admin/v1/health`).
async fn readiness(client: &reqwest::Client, s: &Serve, token: &str) -> Value {
    let res = client
        .get(s.url("/admin/v1/health"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

fn check<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no {name} check in {report}"))
}

/// Polls readiness (at most `bound`) until both Redis checks are `ok` as wanted.
async fn redis_checks_until(
    client: &reqwest::Client,
    s: &Serve,
    token: &str,
    ok: bool,
    bound: Duration,
) -> Value {
    let started = Instant::now();
    loop {
        let report = readiness(client, s, token).await;
        if check(&report, "rate_limits")["ok"] == ok
            && check(&report, "revocation_fanout")["ok"] == ok
        {
            return report;
        }
        assert!(
            started.elapsed() < bound,
            "readiness did not show Redis ok = {ok} within {bound:?}: {report}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Failed sign-ins for new addresses (through a trusted proxy's X-Forwarded-For), alternating
/// between the instances, all from one client address: how many got through (401) before the
/// shared per-address limit (429).
async fn allowed_of_twelve(client: &reqwest::Client, a: &Serve, b: &Serve, from: &str) -> u32 {
    let mut allowed = 0;
    for i in 0..12 {
        let s = if i % 2 == 0 { a } else { b };
        let res = client
            .post(s.url("/v1/auth/login"))
            .header("x-forwarded-for", from)
            .json(&json!({"email": format!("n{i}@example.com"), "password": "not the password"}))
            .send()
            .await
            .unwrap();
        match res.status().as_u16() {
            401 => allowed += 1,
            429 => {
                let body: Value = res.json().await.unwrap();
                assert_eq!(body["code"], "rate_limited");
            }
            other => panic!("unexpected status {other}"),
        }
    }
    allowed
}

fn create_operator(dir: &std::path::Path, email: &str) {
    use std::io::Write;
    let mut child = std::process::Command::new(engines::BIN)
        .args([
            "admin",
            "create-operator",
            "--email",
            email,
            "--name",
            "Ops",
        ])
        .current_dir(dir)
        .env_clear()
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{PASSWORD}").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn redis_over_tls_shares_limits_and_revocations_and_falls_back_while_it_is_away() {
    let dir = temp_dir("redis-tls");
    let certs = dev_cert(&dir.join("redis-tls"), &[]);
    let stranger = dev_cert(&dir.join("other-ca"), &[]);
    let mut redis = PrivateRedis::start(Some(&certs));
    // One data directory (one SQLite database) for every instance; the operator first.
    let app = dir.join("app");
    std::fs::create_dir_all(&app).unwrap();
    create_operator(&app, "ops@example.com");
    let prefix = format!("gh-tls-{}:", uuid::Uuid::new_v4().simple());
    let env = |ca: &std::path::Path| {
        vec![
            ("GATEHOUSE_REDIS_URL", redis.url()),
            ("GATEHOUSE_REDIS_CA_FILE", ca.display().to_string()),
            ("GATEHOUSE_RATE_LIMITS__STORE", "redis".to_owned()),
            ("GATEHOUSE_RATE_LIMITS__REDIS_KEY_PREFIX", prefix.clone()),
            ("GATEHOUSE_RATE_LIMITS__PER_IP__AUTH", "6".to_owned()),
            ("GATEHOUSE_RATE_LIMITS__PER_IP__ADMIN", "100000".to_owned()),
            ("GATEHOUSE_TRUSTED_PROXIES", "[\"127.0.0.1\"]".to_owned()),
        ]
    };
    let client = reqwest::Client::new();
    let started = Instant::now();
    let operator = |s: &Serve, from: &'static str| {
        let req = client
            .post(s.url("/admin/v1/auth/login"))
            .header("x-forwarded-for", from)
            .json(&json!({"email": "ops@example.com", "password": PASSWORD}))
            .send();
        async move {
            let res = req.await.unwrap();
            assert_eq!(res.status(), 200);
            let body: Value = res.json().await.unwrap();
            body["access_token"].as_str().unwrap().to_owned()
        }
    };

    // A CA that did not sign Redis's certificate: serving goes on, limits stay in-process, and
    // readiness says Redis is unreachable.
    let wrong = serve(&app, &env(&stranger.ca), START).unwrap();
    let token = operator(&wrong, "192.0.2.1").await;
    let report = redis_checks_until(&client, &wrong, &token, false, Duration::from_secs(10)).await;
    assert_eq!(
        check(&report, "rate_limits")["detail"],
        "Redis unreachable: limiting in this process until it returns"
    );
    let refused = wrong.wait_for_line("invalid peer certificate", Duration::from_secs(5));
    assert!(
        refused.is_ok(),
        "no certificate refusal logged: {refused:?}"
    );
    drop(wrong);

    // The right CA: two instances, one limit and one revocation channel through Redis over TLS.
    let a = serve(&app, &env(&certs.ca), START).unwrap();
    let b = serve(&app, &env(&certs.ca), START).unwrap();
    let token = operator(&a, "192.0.2.2").await;
    let report = redis_checks_until(&client, &a, &token, true, Duration::from_secs(10)).await;
    assert_eq!(check(&report, "rate_limits")["detail"], "store: redis");
    assert_eq!(check(&report, "revocation_fanout")["detail"], "subscribed");
    // In-process limiters would let 6 through on each instance.
    assert_eq!(allowed_of_twelve(&client, &a, &b, "198.51.100.7").await, 6);

    let one = sign_in(&client, &a, "ada@example.com", true).await;
    let two = sign_in(&client, &a, "ada@example.com", false).await;
    let verify_on_b = |token: &Value| {
        client
            .get(b.url("/v1/auth/verify"))
            .bearer_auth(token["access_token"].as_str().unwrap())
            .send()
    };
    // B has seen session one live (and caches that) before A revokes it.
    assert_eq!(verify_on_b(&one).await.unwrap().status(), 200);
    let res = client
        .delete(a.url(&format!(
            "/v1/me/sessions/{}",
            one["session_id"].as_str().unwrap()
        )))
        .bearer_auth(two["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    let revoked = Instant::now();
    while verify_on_b(&one).await.unwrap().status() != 401 {
        // Without the fan-out, B would trust its cache for up to 30 s.
        assert!(
            revoked.elapsed() < Duration::from_secs(3),
            "B still accepts the revoked session"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Redis dies: requests are still served, limited in-process, and readiness says so.
    redis.kill();
    assert_eq!(verify_on_b(&two).await.unwrap().status(), 200);
    let res = post(
        &client,
        &a,
        "/v1/auth/login",
        json!({"email": "ada@example.com", "password": "not the password"}),
    )
    .await;
    assert_eq!(res.status(), 401);
    let report = redis_checks_until(&client, &a, &token, false, Duration::from_secs(10)).await;
    assert_eq!(
        check(&report, "rate_limits")["detail"],
        "Redis unreachable: limiting in this process until it returns"
    );

    // It returns on the same port: both resume by themselves on each instance, and the limit is
    // shared again.
    redis.start_again();
    for s in [&a, &b] {
        redis_checks_until(&client, s, &token, true, Duration::from_secs(15)).await;
    }
    assert_eq!(allowed_of_twelve(&client, &a, &b, "198.51.100.8").await, 6);
    println!("Redis over TLS: the whole run took {:?}", started.elapsed());
    drop((a, b, redis));
    let _ = std::fs::remove_dir_all(&dir);
}
