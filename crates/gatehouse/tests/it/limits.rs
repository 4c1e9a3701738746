//! Rate limits (C5) and sign-in lockouts over HTTP.

use reqwest::Method;
use serde_json::json;

use crate::support::{PASSWORD, TestApp, expect_problem};

fn header(res: &reqwest::Response, name: &str) -> String {
    res.headers()
        .get(name)
        .unwrap_or_else(|| panic!("no {name}"))
        .to_str()
        .unwrap()
        .to_owned()
}

/// `"name";q=N;w=N` and `"name";r=N;t=N`: the structured-field items of the IETF httpapi
/// ratelimit-headers draft.
fn check_syntax(policy: &str, current: &str) {
    let item = |s: &str, a: &str, b: &str| {
        let (name, params) = s.split_once(';').unwrap();
        assert!(
            name.starts_with('"') && name.ends_with('"') && name.len() > 2,
            "{s}"
        );
        let params: Vec<&str> = params.split(';').collect();
        assert_eq!(params.len(), 2, "{s}");
        for (p, key) in params.iter().zip([a, b]) {
            let (k, v) = p.split_once('=').unwrap();
            assert_eq!(k, key, "{s}");
            assert!(v.parse::<u64>().is_ok(), "{s}");
        }
    };
    item(policy, "q", "w");
    item(current, "r", "t");
}

#[tokio::test]
async fn headers_follow_the_draft_and_retry_after_is_honest() {
    let app = TestApp::spawn_with(|raw| {
        raw.rate_limits.enabled = true;
        raw.rate_limits.per_ip.auth = 3;
    })
    .await;
    let body = json!({"email": "nobody@example.com", "password": "whatever-it-is"});
    for remaining in [2, 1, 0] {
        let res = app.post_json("/v1/auth/login", &body).await;
        assert_eq!(res.status(), 401);
        let (policy, current) = (header(&res, "ratelimit-policy"), header(&res, "ratelimit"));
        check_syntax(&policy, &current);
        assert_eq!(policy, "\"ip-auth\";q=3;w=60");
        assert!(
            current.starts_with(&format!("\"ip-auth\";r={remaining};t=")),
            "{current}"
        );
    }
    let res = app.post_json("/v1/auth/login", &body).await;
    assert_eq!(res.status(), 429);
    let retry: i64 = header(&res, "retry-after").parse().unwrap();
    assert_eq!(retry, 20, "60 s / 3 requests");
    check_syntax(
        &header(&res, "ratelimit-policy"),
        &header(&res, "ratelimit"),
    );
    assert!(header(&res, "ratelimit").starts_with("\"ip-auth\";r=0;"));
    expect_problem(res, 429, "rate_limited").await;
    // One second early: still refused. After Retry-After: allowed.
    app.clock.advance(time::Duration::seconds(retry - 1));
    assert_eq!(app.post_json("/v1/auth/login", &body).await.status(), 429);
    app.clock.advance(time::Duration::seconds(1));
    assert_eq!(app.post_json("/v1/auth/login", &body).await.status(), 401);
    // Probes are never limited.
    for _ in 0..10 {
        assert_eq!(app.get("/health/live").await.status(), 200);
    }
    app.stop().await;
}

/// Issue 18, finding 1: paths no route matches are limited per address as well (read for GET,
/// write for anything else, made-up methods included).
#[tokio::test]
async fn unmatched_paths_are_limited_per_address_too() {
    let app = TestApp::spawn_with(|raw| {
        raw.rate_limits.enabled = true;
        raw.rate_limits.per_ip.read = 3;
        raw.rate_limits.per_ip.write = 2;
    })
    .await;
    for i in 0..3 {
        let res = app.get(&format!("/no/such/{i}")).await;
        assert_eq!(res.status(), 404);
        assert_eq!(header(&res, "ratelimit-policy"), "\"ip-read\";q=3;w=60");
    }
    expect_problem(app.get("/no/such/3").await, 429, "rate_limited").await;
    let made_up = reqwest::Method::from_bytes(b"PROBE").unwrap();
    for _ in 0..2 {
        let res = app
            .client
            .request(made_up.clone(), app.url("/elsewhere"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 404);
    }
    let res = app
        .client
        .request(made_up, app.url("/elsewhere"))
        .send()
        .await
        .unwrap();
    expect_problem(res, 429, "rate_limited").await;
    // Probes are still never limited.
    assert_eq!(app.get("/health/live").await.status(), 200);
    app.stop().await;
}

#[tokio::test]
async fn an_api_keys_own_limit_overrides_its_plan() {
    let app = TestApp::spawn_with(|raw| {
        raw.rate_limits.enabled = true;
        raw.rate_limits.per_ip.auth = 100;
    })
    .await;
    let owner = app.signup_login("ada@example.com", "laptop").await;
    let res = app
        .org_call(
            Method::POST,
            "/v1/api-keys",
            &owner,
            Some(json!({"name": "slow", "permissions": ["audit.read"], "rate_limit": 2})),
        )
        .await;
    let key: serde_json::Value = res.json().await.unwrap();
    let key = key["key"].as_str().unwrap();
    for _ in 0..2 {
        let res = app
            .call(Method::GET, "/v1/auth/verify", key, None, None)
            .await;
        assert_eq!(res.status(), 200);
        assert!(header(&res, "ratelimit-policy").starts_with("\"key\";q=2;w=60"));
    }
    let res = app
        .call(Method::GET, "/v1/auth/verify", key, None, None)
        .await;
    expect_problem(res, 429, "rate_limited").await;
    // Issue 18, finding 7: a key's own limit lowers its rate, never raises it past the plan.
    let res = app
        .org_call(
            Method::POST,
            "/v1/api-keys",
            &owner,
            Some(json!({"name": "greedy", "permissions": ["audit.read"], "rate_limit": 100000})),
        )
        .await;
    let greedy: serde_json::Value = res.json().await.unwrap();
    let res = app
        .call(
            Method::GET,
            "/v1/auth/verify",
            greedy["key"].as_str().unwrap(),
            None,
            None,
        )
        .await;
    assert_eq!(header(&res, "ratelimit-policy"), "\"free\";q=60;w=60");
    // A key without its own limit gets the organisation's plan (free: 60/min).
    let res = app
        .org_call(
            Method::POST,
            "/v1/api-keys",
            &owner,
            Some(json!({"name": "plan", "permissions": ["audit.read"]})),
        )
        .await;
    let plan_key: serde_json::Value = res.json().await.unwrap();
    let res = app
        .call(
            Method::GET,
            "/v1/auth/verify",
            plan_key["key"].as_str().unwrap(),
            None,
            None,
        )
        .await;
    assert_eq!(header(&res, "ratelimit-policy"), "\"free\";q=60;w=60");
    app.stop().await;
}

#[tokio::test]
async fn a_sign_in_flood_locks_the_account_with_growing_delays_but_not_other_accounts() {
    let app = TestApp::spawn_with(|raw| {
        raw.rate_limits.enabled = true;
        raw.rate_limits.per_ip.auth = 1000;
    })
    .await;
    let victim = app.signup_login("victim@example.com", "laptop").await;
    let other = app.signup_login("other@example.com", "laptop").await;
    let wrong = json!({"email": "victim@example.com", "password": "guess-guess-guess"});
    for _ in 0..5 {
        let res = app.post_json("/v1/auth/login", &wrong).await;
        expect_problem(res, 401, "invalid_credentials").await;
    }
    // Locked: even the right password is refused, with the lock's length in Retry-After.
    let right = json!({"email": "victim@example.com", "password": PASSWORD});
    let res = app.post_json("/v1/auth/login", &right).await;
    assert_eq!(header(&res, "retry-after"), "2");
    expect_problem(res, 429, "too_many_attempts").await;
    // The same password on another account from the same address still works.
    let res = app
        .post_json(
            "/v1/auth/login",
            &json!({"email": "other@example.com", "password": PASSWORD}),
        )
        .await;
    assert_eq!(res.status(), 200, "{}", other.user);
    // After the lock, one more failure locks again for twice as long.
    app.clock.advance(time::Duration::seconds(2));
    expect_problem(
        app.post_json("/v1/auth/login", &wrong).await,
        401,
        "invalid_credentials",
    )
    .await;
    let res = app.post_json("/v1/auth/login", &right).await;
    assert_eq!(header(&res, "retry-after"), "4");
    app.clock.advance(time::Duration::seconds(4));
    assert_eq!(app.post_json("/v1/auth/login", &right).await.status(), 200);
    // An account that does not exist locks the same way: a lock reveals nothing.
    let ghost = json!({"email": "ghost@example.com", "password": "guess-guess-guess"});
    for _ in 0..5 {
        let res = app.post_json("/v1/auth/login", &ghost).await;
        expect_problem(res, 401, "invalid_credentials").await;
    }
    let res = app.post_json("/v1/auth/login", &ghost).await;
    assert_eq!(header(&res, "retry-after"), "2");
    expect_problem(res, 429, "too_many_attempts").await;
    let _ = victim;
    app.stop().await;
}

#[tokio::test]
async fn x_forwarded_for_counts_only_from_a_trusted_proxy() {
    let body = json!({"email": "nobody@example.com", "password": "whatever-it-is"});
    let send = |app: &TestApp, xff: &str| {
        app.client
            .post(app.url("/v1/auth/login"))
            .header("x-forwarded-for", xff.to_owned())
            .json(&body)
            .send()
    };
    // Untrusted peer: every request is the peer's, whatever the header says.
    let app = TestApp::spawn_with(|raw| {
        raw.rate_limits.enabled = true;
        raw.rate_limits.per_ip.auth = 2;
    })
    .await;
    for (i, expected) in [(1, 401), (2, 401), (3, 429)] {
        let res = send(&app, &format!("198.51.100.{i}")).await.unwrap();
        assert_eq!(res.status(), expected);
    }
    app.stop().await;
    // The same from a trusted proxy: each forwarded address has its own quota.
    let app = TestApp::spawn_with(|raw| {
        raw.rate_limits.enabled = true;
        raw.rate_limits.per_ip.auth = 2;
        raw.trusted_proxies = vec!["127.0.0.1".into()];
    })
    .await;
    for i in 1..=3 {
        let res = send(&app, &format!("198.51.100.{i}")).await.unwrap();
        assert_eq!(res.status(), 401);
    }
    assert_eq!(send(&app, "198.51.100.1").await.unwrap().status(), 401);
    assert_eq!(send(&app, "198.51.100.1").await.unwrap().status(), 429);
    app.stop().await;
}

/// Issue 18, finding 1, with the operator API on its own listener: a path the other listener
/// owns is answered and limited exactly as a path that exists nowhere (same 404, same quota, same
/// headers), on both listeners; the two listeners count against the one per-address quota.
#[tokio::test]
async fn paths_hidden_on_a_split_listener_are_limited_like_unmatched_ones() {
    let app = TestApp::spawn_with(|raw| {
        raw.rate_limits.enabled = true;
        raw.rate_limits.per_ip.write = 4;
        raw.admin_listen = Some("127.0.0.1:0".into());
    })
    .await;
    let admin = app.admin_base.clone().unwrap();
    let hidden = [
        app.url("/admin/v1/auth/login"),
        format!("{admin}/v1/auth/signup"),
    ];
    let post = |url: &str| app.client.post(url).json(&json!({})).send();
    for url in &hidden {
        for _ in 0..2 {
            let res = post(url).await.unwrap();
            assert_eq!(res.status(), 404, "{url}");
            assert_eq!(header(&res, "ratelimit-policy"), "\"ip-write\";q=4;w=60");
        }
    }
    for url in &hidden {
        expect_problem(post(url).await.unwrap(), 429, "rate_limited").await;
    }
    app.stop().await;
}

/// Issue 18, finding 13: the sign-in address lockout counts an IPv6 /64 as one address, as the
/// rate limits do, so walking the /64 does not buy fresh guesses.
#[tokio::test]
async fn the_address_lockout_counts_an_ipv6_64_as_one_address() {
    let app = TestApp::spawn_with(|raw| {
        raw.rate_limits.enabled = true;
        raw.rate_limits.per_ip.auth = 1000;
        raw.rate_limits.lockout.ip_threshold = 3;
        raw.trusted_proxies = vec!["127.0.0.1".into()];
    })
    .await;
    let send = |i: u32| {
        // A different account each time (the account lockout stays out of it) and a different
        // address, all in 2001:db8:7:7::/64.
        app.client
            .post(app.url("/v1/auth/login"))
            .header("x-forwarded-for", format!("2001:db8:7:7::{i:x}"))
            .json(&json!({"email": format!("n{i}@example.com"), "password": "whatever-it-is"}))
            .send()
    };
    for i in 1..=3 {
        assert_eq!(send(i).await.unwrap().status(), 401);
    }
    expect_problem(send(4).await.unwrap(), 429, "too_many_attempts").await;
    // Another /64 is another address.
    let res = app
        .client
        .post(app.url("/v1/auth/login"))
        .header("x-forwarded-for", "2001:db8:7:8::1")
        .json(&json!({"email": "m@example.com", "password": "whatever-it-is"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    app.stop().await;
}

#[tokio::test]
async fn with_redis_unreachable_the_server_serves_and_limits_in_process() {
    // Nothing listens on port 1: Redis is "down" from the start.
    let app = TestApp::spawn_with(|raw| {
        raw.rate_limits.enabled = true;
        raw.rate_limits.store = gatehouse::config::LimitStore::Redis;
        raw.redis_url = Some("redis://127.0.0.1:1/".into());
        raw.rate_limits.per_ip.auth = 2;
    })
    .await;
    let body = json!({"email": "nobody@example.com", "password": "whatever-it-is"});
    assert_eq!(app.post_json("/v1/auth/login", &body).await.status(), 401);
    assert_eq!(app.post_json("/v1/auth/login", &body).await.status(), 401);
    let res = app.post_json("/v1/auth/login", &body).await;
    expect_problem(res, 429, "rate_limited").await;
    let (status, ready) = app.ready_details().await;
    assert_eq!(
        status, 200,
        "a missing Redis never makes the server unready"
    );
    let check = ready["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "rate_limits")
        .unwrap()
        .clone();
    assert_eq!(check["ok"], false);
    assert!(
        check["detail"]
            .as_str()
            .unwrap()
            .contains("Redis unreachable")
    );
    app.stop().await;
}

#[tokio::test]
async fn operator_sign_in_locks_out_like_customer_sign_in() {
    let app = TestApp::spawn_with(|raw| {
        raw.rate_limits.enabled = true;
        raw.rate_limits.per_ip.auth = 1000;
    })
    .await;
    app.kernel
        .operators()
        .create(
            "ops@platform.example",
            "Ops",
            gatehouse_crypto::SecretString::from(PASSWORD.to_owned()),
        )
        .await
        .unwrap();
    let wrong = json!({"email": "ops@platform.example", "password": "guess-guess-guess"});
    for _ in 0..5 {
        let res = app.post_json("/admin/v1/auth/login", &wrong).await;
        expect_problem(res, 401, "invalid_credentials").await;
    }
    let right = json!({"email": "ops@platform.example", "password": PASSWORD});
    let res = app.post_json("/admin/v1/auth/login", &right).await;
    expect_problem(res, 429, "too_many_attempts").await;
    app.stop().await;
}

/// Issue 18, finding 13: five wrong passwords from one address lock that address out of the
/// account, not the owner signing in from elsewhere; guesses spread over many addresses still
/// meet the looser account-wide bound; a password reset forgives both.
#[tokio::test]
async fn wrong_passwords_lock_the_guessers_address_out_not_the_owner() {
    let app = TestApp::spawn_with(|raw| {
        raw.rate_limits.enabled = true;
        raw.rate_limits.per_ip.auth = 1000;
        raw.rate_limits.lockout.account_wide_threshold = 12;
        raw.trusted_proxies = vec!["127.0.0.1".into()];
    })
    .await;
    app.signup_login("owner@example.com", "laptop").await;
    let login = |from: String, password: &'static str| {
        app.client
            .post(app.url("/v1/auth/login"))
            .header("x-forwarded-for", from)
            .json(&json!({"email": "owner@example.com", "password": password, "device_name": "x"}))
            .send()
    };
    let wrong = "guess-guess-guess";
    for _ in 0..5 {
        let res = login("198.51.100.7".into(), wrong).await.unwrap();
        expect_problem(res, 401, "invalid_credentials").await;
    }
    // The guesser's address is locked out of the account, even with the right password ...
    let res = login("198.51.100.7".into(), PASSWORD).await.unwrap();
    expect_problem(res, 429, "too_many_attempts").await;
    // ... and the owner, elsewhere, signs in.
    let res = login("203.0.113.9".into(), PASSWORD).await.unwrap();
    assert_eq!(res.status(), 200);
    // Guesses spread over addresses: past the account-wide bound (12 here) the account locks
    // for everyone until the lock passes.
    for i in 0..12 {
        let res = login(format!("192.0.2.{i}"), wrong).await.unwrap();
        assert_eq!(res.status(), 401, "guess {i}");
    }
    let res = login("203.0.113.9".into(), PASSWORD).await.unwrap();
    expect_problem(res, 429, "too_many_attempts").await;
    app.clock.advance(time::Duration::seconds(3));
    let res = login("203.0.113.9".into(), PASSWORD).await.unwrap();
    assert_eq!(res.status(), 200);
    app.stop().await;
}
