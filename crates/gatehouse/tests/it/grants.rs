//! Grants between organisations over HTTP (issue 19, C4): what a grant lets the grantee read and
//! change, listings that rank own records above granted ones, expiry by the injected clock,
//! revocation, and every bad grant refused with nothing stored.

use reqwest::Method;
use serde_json::{Value, json};

use crate::product::declare_reports;
use crate::support::{PASSWORD, Signed, TestApp, expect_problem};

async fn created(app: &TestApp, who: &Signed, path: &str, body: Value) -> Value {
    let res = app.org_call(Method::POST, path, who, Some(body)).await;
    assert_eq!(res.status(), 201, "{:?}", res.text().await);
    res.json().await.unwrap()
}

/// `(external_id, via, organization)` of each record `who` lists, in the order listed.
async fn listing(
    app: &TestApp,
    who: &Signed,
    query: &str,
) -> (Vec<(String, String, String)>, Value) {
    let res = app
        .org_call(Method::GET, &format!("/v1/records{query}"), who, None)
        .await;
    assert_eq!(res.status(), 200, "{:?}", res.text().await);
    let body: Value = res.json().await.unwrap();
    let items = body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["external_id"].as_str().unwrap().to_owned(),
                r["via"].as_str().unwrap().to_owned(),
                r["organization"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    (items, body["next_cursor"].clone())
}

async fn check(app: &TestApp, who: &Signed, action: &str, id: &str, org: &str) -> Value {
    let res = app
        .org_call(
            Method::POST,
            "/v1/check",
            who,
            Some(json!({"action": action,
                        "resource": {"type": "report", "id": id, "organization": org}})),
        )
        .await;
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

/// Two organisations: A (owner `a`) with an organisation-wide report `shared` in namespace
/// `sales`, a private one `mine`, a public one `open` and `other` in namespace `hr`; B (owner
/// `b`, member `bm`, viewer `bv`) with its own report `own`.
struct World {
    app: TestApp,
    a: Signed,
    b: Signed,
    bm: Signed,
    bv: Signed,
    shared: String,
}

async fn world() -> World {
    let app = TestApp::spawn_with(declare_reports).await;
    let a = app.signup_login("a@example.com", "laptop").await;
    let b = app.signup_login("b@example.com", "laptop").await;
    let bm = app.add_member(&b, "bm@example.com", "member").await;
    let bv = app.add_member(&b, "bv@example.com", "viewer").await;
    let shared = created(
        &app,
        &a,
        "/v1/records",
        json!({"type": "report", "external_id": "shared", "level": "organization",
               "namespace": "sales", "content": {"total": 7},
               "allowed": [format!("user:{}", a.user)]}),
    )
    .await;
    for (ext, level, ns) in [
        ("mine", "private", "sales"),
        ("open", "public", "sales"),
        ("other", "organization", "hr"),
    ] {
        created(
            &app,
            &a,
            "/v1/records",
            json!({"type": "report", "external_id": ext, "level": level, "namespace": ns}),
        )
        .await;
    }
    created(
        &app,
        &b,
        "/v1/records",
        json!({"type": "report", "external_id": "own", "level": "organization"}),
    )
    .await;
    World {
        shared: shared["id"].as_str().unwrap().to_owned(),
        app,
        a,
        b,
        bm,
        bv,
    }
}

#[tokio::test]
async fn a_grant_lets_the_grantees_readers_read_what_it_covers_until_it_expires() {
    let World {
        app,
        a,
        b,
        bm,
        bv,
        shared,
    } = world().await;
    // Before any grant, B sees only its own, and A's record is as unknown as any.
    let (items, _) = listing(&app, &bm, "?include_granted=true").await;
    assert_eq!(
        items.iter().map(|i| i.0.as_str()).collect::<Vec<_>>(),
        ["own"]
    );
    let res = app
        .org_call(Method::GET, &format!("/v1/records/{shared}"), &bm, None)
        .await;
    expect_problem(res, 404, "not_found").await;
    assert_eq!(
        check(&app, &bm, "read", "shared", &a.org).await["reason"],
        "no_access"
    );

    let expires = time::OffsetDateTime::from_unix_timestamp(app.clock_secs() + 600).unwrap();
    let grant = created(
        &app,
        &a,
        "/v1/grants",
        json!({"organization": b.org, "types": ["report"], "namespaces": ["sales"],
               "access": "read",
               "expires_at": expires.format(&time::format_description::well_known::Rfc3339).unwrap()}),
    )
    .await;
    let gid = grant["id"].as_str().unwrap();
    assert_eq!(grant["status"], "live");
    assert_eq!(grant["granted_by"], a.org);
    let via = format!("grant:{gid}");

    // B's member reads A's shared and public records of namespace sales, never the private one
    // nor one of another namespace; own records first.
    // (created in the same second: in id order, newest first; sorted here).
    let (mut items, _) = listing(&app, &bm, "?include_granted=true").await;
    items[1..].sort();
    assert_eq!(
        items,
        [
            (
                "own".to_owned(),
                "level:organization".to_owned(),
                b.org.clone()
            ),
            ("open".to_owned(), via.clone(), a.org.clone()),
            ("shared".to_owned(), via.clone(), a.org.clone()),
        ]
    );
    // Without include_granted, only its own.
    assert_eq!(listing(&app, &bm, "").await.0.len(), 1);
    let res = app
        .org_call(Method::GET, &format!("/v1/records/{shared}"), &bm, None)
        .await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(
        body["content"],
        json!({"total": 7}),
        "the content opens under A's key"
    );
    assert_eq!(body["via"], via);
    assert_eq!(
        body["allowed"],
        json!([]),
        "A's allowed list is not B's to see"
    );
    // A permission about A's record needs a read_write grant: this one is read only.
    assert_eq!(
        check(&app, &bm, "report.read", "shared", &a.org).await["reason"],
        "no_access"
    );
    // Forward authentication asks the same question.
    let path = format!(
        "/v1/auth/verify?action=read&resource_type=report&resource_id=shared&resource_organization={}",
        a.org
    );
    let res = app.call(Method::GET, &path, &bm.access, None, None).await;
    assert_eq!(res.status(), 200);
    let res = app.call(Method::GET, &path, &bv.access, None, None).await;
    expect_problem(res, 403, "check_denied").await;
    let allowed = check(&app, &bm, "read", "shared", &a.org).await;
    assert_eq!(
        allowed,
        json!({"allowed": true, "reason": "granted", "via": via})
    );
    assert_eq!(
        check(&app, &bm, "read", "mine", &a.org).await["allowed"],
        false
    );
    assert_eq!(
        check(&app, &bm, "read", "other", &a.org).await["allowed"],
        false
    );
    // A read grant writes nothing, even for B's owner who holds report.write.
    assert_eq!(
        check(&app, &b, "write", "shared", &a.org).await["reason"],
        "no_access"
    );
    let res = app
        .org_call(
            Method::PATCH,
            &format!("/v1/records/{shared}"),
            &b,
            Some(json!({"tags": ["x"]})),
        )
        .await;
    expect_problem(res, 403, "forbidden").await;
    let res = app
        .org_call(Method::DELETE, &format!("/v1/records/{shared}"), &b, None)
        .await;
    expect_problem(res, 403, "forbidden").await;
    assert!(
        app.audit_events(&b.org)
            .await
            .iter()
            .any(|e| e.action == "record.write_denied" && e.details.contains("grants_never_delete")),
        "the refused delete is on B's chain"
    );
    // B's viewer lacks report.read in B: the grant does not give it.
    assert!(
        listing(&app, &bv, "?include_granted=true")
            .await
            .0
            .iter()
            .all(|i| i.2 == b.org)
    );
    assert_eq!(
        check(&app, &bv, "read", "shared", &a.org).await["allowed"],
        false
    );
    // A's members see none of B's records through A's own grant.
    assert!(
        listing(&app, &a, "?include_granted=true")
            .await
            .0
            .iter()
            .all(|i| i.2 == a.org)
    );

    // B sees the grant as received; A as given. Neither lists the other's.
    let res = app
        .org_call(Method::GET, "/v1/grants/received", &b, None)
        .await;
    let received: Value = res.json().await.unwrap();
    assert_eq!(received["items"][0]["id"], gid);
    assert_eq!(
        received["items"][0]["created_by"], "",
        "who in A made it is A's business"
    );
    let res = app.org_call(Method::GET, "/v1/grants", &b, None).await;
    assert_eq!(res.json::<Value>().await.unwrap()["items"], json!([]));
    // A member of B may not list grants (grants.manage).
    let res = app
        .org_call(Method::GET, "/v1/grants/received", &bm, None)
        .await;
    expect_problem(res, 403, "forbidden").await;

    // One second before expiry it works; at the expiry second it does not.
    app.clock.advance(time::Duration::seconds(599));
    assert_eq!(
        check(&app, &bm, "read", "shared", &a.org).await["allowed"],
        true
    );
    app.clock.advance(time::Duration::seconds(1));
    assert_eq!(
        check(&app, &bm, "read", "shared", &a.org).await["allowed"],
        false
    );
    let res = app
        .org_call(Method::GET, &format!("/v1/records/{shared}"), &bm, None)
        .await;
    expect_problem(res, 404, "not_found").await;
    assert_eq!(listing(&app, &bm, "?include_granted=true").await.0.len(), 1);
    // grants.manage needs a recent sign-in (step-up): ten minutes on, A signs in again.
    let a = app
        .login("a@example.com", PASSWORD, "laptop", &a.user)
        .await;
    let res = app.org_call(Method::GET, "/v1/grants", &a, None).await;
    assert_eq!(
        res.json::<Value>().await.unwrap()["items"][0]["status"],
        "expired"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_revoked_grant_is_refused_at_the_next_request_and_read_write_changes_only_content() {
    let World {
        app,
        a,
        b,
        bm,
        shared,
        ..
    } = world().await;
    let grant = created(
        &app,
        &a,
        "/v1/grants",
        json!({"organization": b.org, "access": "read_write"}),
    )
    .await;
    let gid = grant["id"].as_str().unwrap().to_owned();
    // B's owner holds report.write: it may change content and tags, not who reads it.
    assert_eq!(
        check(&app, &b, "write", "shared", &a.org).await["allowed"],
        true
    );
    // A permission about A's record, under a read_write grant, goes by B's role.
    assert_eq!(
        check(&app, &b, "report.read", "shared", &a.org).await["via"],
        "role:owner"
    );
    // B's member reads but lacks report.write.
    assert_eq!(
        check(&app, &bm, "write", "shared", &a.org).await["allowed"],
        false
    );
    let res = app
        .org_call(
            Method::PATCH,
            &format!("/v1/records/{shared}"),
            &b,
            Some(json!({"content": {"total": 8}, "tags": ["checked"]})),
        )
        .await;
    assert_eq!(res.status(), 200, "{:?}", res.text().await);
    let res = app
        .org_call(Method::GET, &format!("/v1/records/{shared}"), &a, None)
        .await;
    let seen: Value = res.json().await.unwrap();
    assert_eq!(seen["content"], json!({"total": 8}));
    assert_eq!(seen["tags"], json!(["checked"]));
    for change in [
        json!({"level": "public"}),
        json!({"allowed": []}),
        json!({"namespace": null}),
    ] {
        let res = app
            .org_call(
                Method::PATCH,
                &format!("/v1/records/{shared}"),
                &b,
                Some(change),
            )
            .await;
        expect_problem(res, 403, "forbidden").await;
    }
    // The change is on A's chain, naming the grant.
    let events = app.audit_events(&a.org).await;
    assert!(
        events
            .iter()
            .any(|e| e.action == "record.updated" && e.details.contains(&gid))
    );

    let res = app
        .org_call(Method::DELETE, &format!("/v1/grants/{gid}"), &a, None)
        .await;
    assert_eq!(res.status(), 204);
    assert_eq!(
        check(&app, &b, "read", "shared", &a.org).await["allowed"],
        false
    );
    let res = app
        .org_call(
            Method::PATCH,
            &format!("/v1/records/{shared}"),
            &b,
            Some(json!({"tags": []})),
        )
        .await;
    expect_problem(res, 404, "not_found").await;
    let res = app
        .org_call(Method::DELETE, &format!("/v1/grants/{gid}"), &a, None)
        .await;
    expect_problem(res, 409, "conflict").await;
    // B cannot revoke (or see) A's grant as its own.
    let res = app
        .org_call(Method::DELETE, &format!("/v1/grants/{gid}"), &b, None)
        .await;
    expect_problem(res, 404, "not_found").await;
    let events = app.audit_events(&a.org).await;
    assert!(events.iter().any(|e| e.action == "grant.created"));
    assert!(events.iter().any(|e| e.action == "grant.revoked"));
    app.stop().await;
}

#[tokio::test]
async fn listings_rank_every_own_record_above_every_granted_one_across_pages() {
    let World { app, a, b, bm, .. } = world().await;
    for i in 0..3 {
        created(
            &app,
            &b,
            "/v1/records",
            json!({"type": "report", "external_id": format!("own{i}"), "level": "organization"}),
        )
        .await;
    }
    // A's newest record is newer than all of B's: it still ranks below them.
    app.clock.advance(time::Duration::seconds(5));
    created(
        &app,
        &a,
        "/v1/records",
        json!({"type": "report", "external_id": "newest", "level": "organization"}),
    )
    .await;
    created(
        &app,
        &a,
        "/v1/grants",
        json!({"organization": b.org, "access": "read"}),
    )
    .await;
    let mut seen = Vec::new();
    let mut cursor = String::new();
    loop {
        let (items, next) = listing(
            &app,
            &bm,
            &format!("?include_granted=true&limit=2&cursor={cursor}"),
        )
        .await;
        assert!(items.len() <= 2);
        seen.extend(items);
        match next.as_str() {
            Some(c) => cursor = c.to_owned(),
            None => break,
        }
    }
    let orgs: Vec<&str> = seen.iter().map(|i| i.2.as_str()).collect();
    let first_granted = orgs.iter().position(|o| *o == a.org).unwrap();
    assert!(orgs[..first_granted].iter().all(|o| *o == b.org));
    assert!(
        orgs[first_granted..].iter().all(|o| *o == a.org),
        "{seen:?}"
    );
    assert_eq!(first_granted, 4, "B's four own records first: {seen:?}");
    let mut granted: Vec<&str> = seen[first_granted..].iter().map(|i| i.0.as_str()).collect();
    assert_eq!(granted[0], "newest");
    granted.sort_unstable();
    assert_eq!(
        granted,
        ["newest", "open", "other", "shared"],
        "the private one never"
    );
    // A granted page's cursor is refused without include_granted.
    let res = app
        .org_call(
            Method::GET,
            &format!("/v1/records?cursor={}", "g."),
            &bm,
            None,
        )
        .await;
    expect_problem(res, 422, "validation_failed").await;
    app.stop().await;
}

#[tokio::test]
async fn bad_grants_are_refused_and_nothing_is_stored() {
    let World { app, a, b, bm, .. } = world().await;
    let past = time::OffsetDateTime::from_unix_timestamp(app.clock_secs() - 1)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let unknown_org = uuid::Uuid::new_v4().to_string();
    for body in [
        json!({"organization": a.org, "access": "read"}),
        json!({"organization": unknown_org, "access": "read"}),
        json!({"organization": b.org, "access": "admin"}),
        json!({"organization": b.org, "access": "read", "types": ["invoice"]}),
        json!({"organization": b.org, "access": "read", "namespaces": ["a,b"]}),
        json!({"organization": b.org, "access": "read", "expires_at": past}),
    ] {
        let res = app
            .org_call(Method::POST, "/v1/grants", &a, Some(body.clone()))
            .await;
        expect_problem(res, 422, "validation_failed").await;
    }
    // A member of B cannot grant B's records away.
    let res = app
        .org_call(
            Method::POST,
            "/v1/grants",
            &bm,
            Some(json!({"organization": a.org, "access": "read"})),
        )
        .await;
    expect_problem(res, 403, "forbidden").await;
    let res = app.org_call(Method::GET, "/v1/grants", &a, None).await;
    assert_eq!(res.json::<Value>().await.unwrap()["items"], json!([]));
    let res = app
        .org_call(Method::GET, "/v1/grants/received", &a, None)
        .await;
    assert_eq!(res.json::<Value>().await.unwrap()["items"], json!([]));
    // A grant to check about: an organisation given as the caller's own is the caller's record.
    let mine = check(&app, &a, "read", "mine", &a.org).await;
    assert_eq!(mine["via"], "owner");
    app.stop().await;
}

/// Two instances of one deployment: on the PostgreSQL run (`GH_IT_POSTGRES=1`, as CI runs this
/// suite) they share the database and Redis, whose revocation channel they both listen on;
/// otherwise they share one SQLite file and have no fan-out. A grant revoked through one is
/// refused by the other as soon as the fan-out message arrives (or, without one, once its cached
/// decision state is 30 s old); an expired grant is refused by both at its expiry second, cached
/// or not.
#[tokio::test]
async fn a_second_instance_refuses_a_revoked_or_expired_grant_at_its_next_request() {
    let shared_redis = std::env::var_os("GH_IT_POSTGRES").is_some();
    let redis =
        std::env::var("GH_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let with_redis = |raw: &mut gatehouse::config::RawConfig| {
        declare_reports(raw);
        if shared_redis {
            raw.redis_url = Some(redis.clone());
        }
    };
    let one = TestApp::spawn_with(with_redis).await;
    let two = TestApp::spawn_in(one.dir.clone(), with_redis).await;
    if shared_redis {
        assert_eq!(two.kernel.store().backend(), "postgres");
    }
    let a = one.signup_login("a@example.com", "laptop").await;
    let b = one.signup_login("b@example.com", "laptop").await;
    let shared = created(
        &one,
        &a,
        "/v1/records",
        json!({"type": "report", "external_id": "shared", "level": "organization"}),
    )
    .await;
    let patch = format!("/v1/records/{}", shared["id"].as_str().unwrap());
    let expires = time::OffsetDateTime::from_unix_timestamp(one.clock_secs() + 120).unwrap();
    let expiring = created(
        &one,
        &a,
        "/v1/grants",
        json!({"organization": b.org, "access": "read",
               "expires_at": expires.format(&time::format_description::well_known::Rfc3339).unwrap()}),
    )
    .await;
    let revocable = created(
        &one,
        &a,
        "/v1/grants",
        json!({"organization": b.org, "access": "read_write"}),
    )
    .await;
    // B asks the second instance; its answers name the read_write grant.
    let via = format!("grant:{}", revocable["id"].as_str().unwrap());
    assert_eq!(check(&two, &b, "read", "shared", &a.org).await["via"], via);
    assert_eq!(
        check(&two, &b, "write", "shared", &a.org).await["allowed"],
        true
    );
    let tags = Some(json!({"tags": ["x"]}));
    let res = two.org_call(Method::PATCH, &patch, &b, tags.clone()).await;
    assert_eq!(
        res.status(),
        200,
        "the read_write grant writes through the second instance"
    );
    let res = one
        .org_call(
            Method::DELETE,
            &format!("/v1/grants/{}", revocable["id"].as_str().unwrap()),
            &a,
            None,
        )
        .await;
    assert_eq!(res.status(), 204);
    // Changes through the grant ask the database: the second instance refuses the very next one
    // (reading still goes by the expiring read grant, so 403, not 404).
    let res = two.org_call(Method::PATCH, &patch, &b, tags.clone()).await;
    expect_problem(res, 403, "forbidden").await;
    // Checks decide from cached state. The first instance forgot it at once. The second
    // forgets it when the fan-out message arrives (with Redis, within moments); without a
    // fan-out it trusts its cache for 30 s at most.
    assert_eq!(
        check(&one, &b, "write", "shared", &a.org).await["allowed"],
        false
    );
    if shared_redis {
        let started = std::time::Instant::now();
        let mut refused = false;
        while started.elapsed() < std::time::Duration::from_secs(2) {
            if check(&two, &b, "write", "shared", &a.org).await["allowed"] == false {
                refused = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        assert!(
            refused,
            "the second instance still allowed a revoked grant after 2 s"
        );
        println!(
            "the second instance refused the revoked grant after {:?}",
            started.elapsed()
        );
    } else {
        two.clock.advance(time::Duration::seconds(31));
        one.clock.advance(time::Duration::seconds(31));
        assert_eq!(
            check(&two, &b, "write", "shared", &a.org).await["allowed"],
            false
        );
    }
    let read = check(&two, &b, "read", "shared", &a.org).await;
    assert_eq!(
        read["via"],
        format!("grant:{}", expiring["id"].as_str().unwrap())
    );
    // Each instance judges expiry by its own clock, cached or not: both are moved to the
    // expiry second.
    let to_expiry = expires.unix_timestamp() - two.clock_secs();
    one.clock.advance(time::Duration::seconds(to_expiry));
    two.clock.advance(time::Duration::seconds(to_expiry));
    assert_eq!(
        check(&two, &b, "read", "shared", &a.org).await["reason"],
        "no_access"
    );
    let res = two
        .org_call(Method::GET, "/v1/records?include_granted=true", &b, None)
        .await;
    assert_eq!(res.json::<Value>().await.unwrap()["items"], json!([]));
    two.stop_keeping_data().await;
    one.stop().await;
}
