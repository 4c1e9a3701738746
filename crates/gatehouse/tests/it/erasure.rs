//! Erasure (G2) over HTTP: a person erasing themself (password and a recent second factor)
//! leaves no text of their address, name, IP address or user agent in any table (PostgreSQL:
//! every table's text read as the owner; SQLite's files are searched byte by byte in
//! `process::erase`), while the audit events that named them stay, verify, and can no longer
//! be opened; an organisation's erasure leaves no row of it in any table the schema lists and
//! nothing that opens its sealed values; and refused erasures touch nothing.

use reqwest::Method;
use serde_json::{Value, json};
use sqlx::Connection as _;

use crate::mfa::{enrol, pyotp_now};
use crate::product::declare_reports;
use crate::support::{PASSWORD, Signed, TestApp, expect_problem};

const EMAIL: &str = "yara.erasable@example.com";
const NAME: &str = "Yara P. Erasable";
const IP: &str = "198.51.100.23";
const AGENT: &str = "YaraAgent/3.1";

/// The database behind `app`, as its owner (past row-level security).
enum Raw {
    Sqlite(sqlx::SqliteConnection),
    Postgres(sqlx::PgConnection),
}

async fn raw(app: &TestApp) -> Raw {
    if std::env::var_os("GH_IT_POSTGRES").is_some() {
        let (_, owner) = crate::support::postgres_database(&app.dir).await;
        Raw::Postgres(sqlx::PgConnection::connect(&owner).await.unwrap())
    } else {
        let url = format!("sqlite://{}", app.dir.join("data/gatehouse.db").display());
        Raw::Sqlite(sqlx::SqliteConnection::connect(&url).await.unwrap())
    }
}

impl Raw {
    /// Every (table, column) holding an organisation id, read from the schema itself.
    async fn org_columns(&mut self) -> Vec<(String, String)> {
        let sql_pg = "SELECT table_name::text, column_name::text FROM information_schema.columns \
                      WHERE table_schema = 'public' AND column_name IN ('org_id', 'grantee_org_id') \
                      UNION SELECT 'organizations', 'id' ORDER BY 1, 2";
        let sql_lite = "SELECT m.name, p.name FROM sqlite_master m JOIN pragma_table_info(m.name) p \
                        WHERE m.type = 'table' AND p.name IN ('org_id', 'grantee_org_id') \
                        UNION SELECT 'organizations', 'id' ORDER BY 1, 2";
        match self {
            Self::Postgres(c) => sqlx::query_as(sql_pg).fetch_all(c).await.unwrap(),
            Self::Sqlite(c) => sqlx::query_as(sql_lite).fetch_all(c).await.unwrap(),
        }
    }

    async fn count(&mut self, table: &str, column: &str, org: uuid::Uuid) -> i64 {
        let sql = format!("SELECT count(*) FROM {table} WHERE {column} = $1");
        match self {
            Self::Postgres(c) => sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                .bind(org)
                .fetch_one(c)
                .await
                .unwrap(),
            Self::Sqlite(c) => sqlx::query_scalar(sqlx::AssertSqlSafe(sql.replace("$1", "?")))
                .bind(org)
                .fetch_one(c)
                .await
                .unwrap(),
        }
    }

    /// PostgreSQL: the tables whose rows' text (bytea as hex) contains `needle`.
    async fn tables_containing(&mut self, needle: &str) -> Vec<String> {
        let Self::Postgres(c) = self else {
            return Vec::new();
        };
        let tables: Vec<String> = sqlx::query_scalar(
            "SELECT table_name::text FROM information_schema.tables \
             WHERE table_schema = 'public' AND table_type = 'BASE TABLE'",
        )
        .fetch_all(&mut *c)
        .await
        .unwrap();
        let hex: String = needle.bytes().map(|b| format!("{b:02x}")).collect();
        let mut hits = Vec::new();
        for t in tables {
            let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT count(*) FROM \"{t}\" x WHERE x::text ILIKE $1 OR x::text ILIKE $2"
            )))
            .bind(format!("%{needle}%"))
            .bind(format!("%{hex}%"))
            .fetch_one(&mut *c)
            .await
            .unwrap();
            if n > 0 {
                hits.push(t);
            }
        }
        hits
    }
}

async fn post_as(app: &TestApp, path: &str, token: Option<&str>, body: Value) -> reqwest::Response {
    let mut req = app
        .client
        .post(app.url(path))
        .header("x-forwarded-for", IP)
        .header("user-agent", AGENT)
        .json(&body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn a_person_erases_themself_and_no_text_of_them_is_left_while_the_chain_verifies() {
    let app = TestApp::spawn_with(|raw| {
        declare_reports(raw);
        raw.trusted_proxies = vec!["127.0.0.1".into()];
    })
    .await;
    let res = post_as(
        &app,
        "/v1/auth/signup",
        None,
        json!({"email": EMAIL, "password": PASSWORD, "name": NAME,
               "organization_name": "Yara's Atelier"}),
    )
    .await;
    assert_eq!(res.status(), 202);
    let res = post_as(
        &app,
        "/v1/auth/login",
        None,
        json!({"email": EMAIL, "password": PASSWORD, "device_name": "laptop"}),
    )
    .await;
    let yara = Signed::from_login("", &res.json().await.unwrap());
    let res = app
        .org_call(
            Method::POST,
            "/v1/records",
            &yara,
            Some(
                json!({"type": "report", "external_id": "mine", "level": "private",
                        "content": {"diary": "Yara's private notes"}}),
            ),
        )
        .await;
    assert_eq!(res.status(), 201);
    // Invited into another organisation (not accepted): the invitation names her address.
    let ada = app.signup_login("ada@example.com", "laptop").await;
    let res = app
        .org_call(
            Method::POST,
            "/v1/organization/invitations",
            &ada,
            Some(json!({"email": EMAIL, "role": "member"})),
        )
        .await;
    assert_eq!(res.status(), 201, "{:?}", res.text().await);
    // A co-owner: her organisation stays after she goes (one she alone belonged to would be
    // erased whole with her).
    let bob = app.add_member(&yara, "bob@example.com", "owner").await;
    let (secret, _) = enrol(&app, &yara).await;
    let before_events = app.audit_events(&yara.org).await.len();
    let mut db = raw(&app).await;
    if matches!(db, Raw::Postgres(_)) {
        for needle in [EMAIL, NAME, IP, AGENT] {
            assert!(
                !db.tables_containing(needle).await.is_empty(),
                "{needle} never stored"
            );
        }
    }

    // A wrong password, or no recent second factor: refused, nothing erased.
    app.clock.advance(time::Duration::minutes(6));
    let res = post_as(
        &app,
        "/v1/me/erase",
        Some(&yara.access),
        json!({"password": PASSWORD}),
    )
    .await;
    expect_problem(res, 403, "step_up_required").await;
    let res = app
        .call(
            Method::POST,
            "/v1/auth/step-up",
            &yara.access,
            None,
            Some(json!({"code": pyotp_now(&app, &secret)})),
        )
        .await;
    assert_eq!(res.status(), 200);
    let stepped = res.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let res = post_as(
        &app,
        "/v1/me/erase",
        Some(&stepped),
        json!({"password": "wrong one"}),
    )
    .await;
    expect_problem(res, 401, "invalid_credentials").await;
    assert_eq!(
        app.call(Method::GET, "/v1/me", &stepped, None, None)
            .await
            .status(),
        200
    );

    let res = post_as(
        &app,
        "/v1/me/erase",
        Some(&stepped),
        json!({"password": PASSWORD}),
    )
    .await;
    assert_eq!(res.status(), 200, "{:?}", res.text().await);
    let done: Value = res.json().await.unwrap();
    assert_eq!(done["account"], true);
    assert_eq!(done["records"], 1);
    assert_eq!(done["invitations"], 1);
    assert!(done["sessions"].as_u64().unwrap() >= 1);
    // Her tokens stop working; she cannot sign in.
    assert_eq!(
        app.call(Method::GET, "/v1/me", &stepped, None, None)
            .await
            .status(),
        401
    );
    let res = app
        .post_json(
            "/v1/auth/login",
            &json!({"email": EMAIL, "password": PASSWORD, "device_name": "x"}),
        )
        .await;
    assert_eq!(res.status(), 401);

    // The events that named her stay, verify, and their personal fields no longer open.
    let events = app.audit_events(&yara.org).await;
    assert!(events.len() > before_events);
    assert!(events.iter().any(|e| e.action == "user.erased"));
    assert!(
        events
            .iter()
            .all(|e| !e.details.contains(EMAIL) && !e.details.contains(NAME))
    );
    assert!(app.chain_verifies(&yara.org).await > 0);
    let res = app
        .org_call(Method::GET, "/v1/audit-logs?limit=200", &ada, None)
        .await;
    assert_eq!(res.status(), 200);
    let scope =
        gatehouse_core::TenantScope::for_tests(gatehouse_core::OrgId::parse(&yara.org).unwrap());
    let mut tx = app.kernel.store().begin_scoped(&scope).await.unwrap();
    let yara_id = crate::support::token_subject(&yara.access);
    let hers: Vec<_> = events
        .iter()
        .filter(|e| e.personal.is_some() && e.subject.as_deref() == Some(yara_id.as_str()))
        .collect();
    assert!(!hers.is_empty(), "no event of hers carried personal data");
    for e in hers {
        let opened = app
            .kernel
            .keyring()
            .open_personal(
                tx.as_mut(),
                e.subject.as_deref().unwrap(),
                e.personal.as_ref().unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(opened, None, "{} still opens", e.action);
    }
    drop(tx);
    for needle in [EMAIL, NAME, IP, AGENT] {
        assert_eq!(
            db.tables_containing(needle).await,
            Vec::<String>::new(),
            "{needle}"
        );
    }
    // Bob, Ada and their organisations are untouched.
    assert_eq!(
        app.call(Method::GET, "/v1/me", &bob.access, None, None)
            .await
            .status(),
        200
    );
    assert_eq!(
        app.call(Method::GET, "/v1/me", &ada.access, None, None)
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn an_erased_organisation_leaves_no_row_and_nothing_opens_its_sealed_values() {
    let app = TestApp::spawn_with(declare_reports).await;
    let owner = app.signup_login("owner@example.com", "laptop").await;
    let other = app.signup_login("other@example.com", "laptop").await;
    let member = app.add_member(&owner, "mia@example.com", "admin").await;
    let res = app
        .org_call(
            Method::POST,
            "/v1/records",
            &owner,
            Some(
                json!({"type": "report", "external_id": "r", "level": "organization",
                        "content": {"k": "v"}}),
            ),
        )
        .await;
    let record: uuid::Uuid = res.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    for (path, body) in [
        ("/v1/secrets", json!({"name": "db", "value": "hunter2"})),
        (
            "/v1/api-keys",
            json!({"name": "k", "permissions": ["audit.read"]}),
        ),
        (
            "/v1/grants",
            json!({"organization": other.org, "access": "read"}),
        ),
        (
            "/v1/organization/roles",
            json!({"name": "auditor", "permissions": ["audit.read"]}),
        ),
    ] {
        let res = app.org_call(Method::POST, path, &owner, Some(body)).await;
        assert_eq!(res.status(), 201, "{path}: {:?}", res.text().await);
    }
    let res = app
        .org_call(
            Method::POST,
            "/v1/grants",
            &other,
            Some(json!({"organization": owner.org, "access": "read"})),
        )
        .await;
    assert_eq!(res.status(), 201);
    let org = gatehouse_core::OrgId::parse(&owner.org).unwrap();
    let scope = gatehouse_core::TenantScope::for_tests(org);
    // A copy of one sealed value, as a backup would hold it.
    let mut tx = app.kernel.store().begin_read_scoped(&scope).await.unwrap();
    let sealed = tx
        .sealed("record_content", &record.to_string(), "content")
        .await
        .unwrap()
        .unwrap();
    drop(tx);
    let mut db = raw(&app).await;
    let columns = db.org_columns().await;
    assert!(columns.len() >= 15, "{columns:?}");
    let present: i64 = {
        let mut n = 0;
        for (t, c) in &columns {
            n += db.count(t, c, org.as_uuid()).await;
        }
        n
    };
    assert!(present > 20, "{present}");

    // Refused: not the owner (an admin), a wrong name; nothing erased.
    let res = app
        .org_call(
            Method::DELETE,
            "/v1/organization",
            &member,
            Some(json!({"confirm": "Analytical Engines"})),
        )
        .await;
    assert_eq!(res.status(), 403);
    let res = app
        .org_call(
            Method::DELETE,
            "/v1/organization",
            &owner,
            Some(json!({"confirm": "analytical engines"})),
        )
        .await;
    expect_problem(res, 422, "validation_failed").await;
    let res = app
        .org_call(
            Method::DELETE,
            "/v1/organization",
            &owner,
            Some(json!({"confirm": "Analytical Engines"})),
        )
        .await;
    assert_eq!(res.status(), 200, "{:?}", res.text().await);
    let done: Value = res.json().await.unwrap();
    assert_eq!(done["members"], 2);
    assert!(done["key_versions_destroyed"].as_u64().unwrap() >= 1);

    for (t, c) in &columns {
        assert_eq!(
            db.count(t, c, org.as_uuid()).await,
            0,
            "{t}.{c} still holds the organisation"
        );
    }
    // The member's token no longer reaches the organisation; accounts remain.
    let res = app
        .org_call(Method::GET, "/v1/organization/members", &member, None)
        .await;
    assert!(
        res.status() == 401 || res.status() == 403,
        "{}",
        res.status()
    );
    assert_eq!(
        app.call(Method::GET, "/v1/me", &other.access, None, None)
            .await
            .status(),
        200
    );
    // The backup copy, put back with its organisation, opens with no key that remains.
    let mut tx = app.kernel.store().begin().await.unwrap();
    tx.insert_organization(&gatehouse_core::store::OrganizationRecord {
        id: org,
        name: "restored".into(),
        created_at: gatehouse_core::Clock::now(&app.clock),
        keys_shredded_at: None,
    })
    .await
    .unwrap();
    let mut tx = tx.enter(&scope).await.unwrap();
    tx.put_sealed(&sealed).await.unwrap();
    tx.commit(gatehouse_core::audit::Audited::for_tests())
        .await
        .unwrap();
    let mut tx = app.kernel.store().begin_scoped(&scope).await.unwrap();
    let opened = app
        .kernel
        .keyring()
        .open(
            tx.as_mut(),
            gatehouse_core::keyring::FieldRef {
                kind: gatehouse_core::keyring::SealedKind::RecordContent,
                record_id: &record.to_string(),
                field: "content",
            },
        )
        .await;
    assert!(opened.is_err(), "{opened:?}");
    drop(tx);
    // The operators' trail recorded it; their chain verifies.
    let verified =
        gatehouse_core::audit::verify_operators(app.kernel.store(), app.kernel.keyring())
            .await
            .unwrap();
    assert!(verified.is_ok(), "{verified:?}");
}

#[tokio::test]
async fn refused_erasures_touch_nothing() {
    let app = TestApp::spawn_with(declare_reports).await;
    let owner = app.signup_login("owner@example.com", "laptop").await;
    let other = app.signup_login("other@example.com", "laptop").await;
    let mut ids = Vec::new();
    for who in [&owner, &other] {
        let res = app
            .org_call(
                Method::POST,
                "/v1/records",
                who,
                Some(json!({"type": "report", "external_id": "x", "level": "organization"})),
            )
            .await;
        ids.push(
            res.json::<Value>().await.unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let erase = |body: Value| {
        let app = &app;
        let owner = owner.clone();
        async move {
            app.org_call(Method::POST, "/v1/erasures", &owner, Some(body))
                .await
        }
    };
    // Another organisation's record in the list: not found, and the own one survives.
    let res = erase(json!({"records": [ids[0], ids[1]]})).await;
    expect_problem(res, 404, "not_found").await;
    // Another organisation's person; the organisation's last owner (even themself).
    let res = erase(json!({"user_id": other.user})).await;
    expect_problem(res, 404, "not_found").await;
    let res = erase(json!({"user_id": owner.user})).await;
    expect_problem(res, 409, "last_owner").await;
    // An owner, by an administrator whose role holds data.delete: only an owner erases one.
    let res = app
        .org_call(
            Method::POST,
            "/v1/organization/roles",
            &owner,
            Some(json!({"name": "eraser", "permissions": ["data.delete", "members.manage"]})),
        )
        .await;
    assert_eq!(res.status(), 201, "{:?}", res.text().await);
    let eraser = app.add_member(&owner, "eve@example.com", "eraser").await;
    let res = app
        .org_call(
            Method::POST,
            "/v1/erasures",
            &eraser,
            Some(json!({"user_id": owner.user})),
        )
        .await;
    assert_eq!(res.status(), 403, "{:?}", res.text().await);
    // An inverted range; an open one without confirmation; two selections at once.
    let res = erase(json!({"records_created": {"from": "2030-01-02T00:00:00Z",
                                                "until": "2030-01-01T00:00:00Z"}}))
    .await;
    expect_problem(res, 422, "validation_failed").await;
    let res = erase(json!({"records_created": {"from": "2020-01-01T00:00:00Z"}})).await;
    expect_problem(res, 422, "validation_failed").await;
    let res = erase(json!({"records": [ids[0]], "user_id": owner.user})).await;
    expect_problem(res, 422, "validation_failed").await;
    // Without step-up.
    app.clock.advance(time::Duration::minutes(6));
    let res = erase(json!({"records": [ids[0]]})).await;
    expect_problem(res, 403, "step_up_required").await;
    for (who, id) in [(&owner, &ids[0]), (&other, &ids[1])] {
        let res = app
            .org_call(Method::GET, &format!("/v1/records/{id}"), who, None)
            .await;
        assert_eq!(res.status(), 200, "a refused erasure deleted {id}");
    }
    // Within the step-up window again, a confirmed open range erases the own record only.
    let fresh = app
        .login("owner@example.com", PASSWORD, "laptop", &owner.user)
        .await;
    let mut fresh = fresh;
    fresh.org = owner.org.clone();
    let res = app
        .org_call(
            Method::POST,
            "/v1/erasures",
            &fresh,
            Some(json!({"records_created": {"from": "2020-01-01T00:00:00Z"}, "confirm": true})),
        )
        .await;
    assert_eq!(res.status(), 200, "{:?}", res.text().await);
    assert_eq!(res.json::<Value>().await.unwrap()["records"], 1);
    let res = app
        .org_call(
            Method::GET,
            &format!("/v1/records/{}", ids[1]),
            &other,
            None,
        )
        .await;
    assert_eq!(res.status(), 200);
}
