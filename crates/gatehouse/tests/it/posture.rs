//! H3: the posture report follows the running configuration and what the checks find. Each
//! test builds the real `App` (as `serve` does) with one setting changed and reads its report.

use std::sync::Arc;

use gatehouse::config::RawConfig;
use gatehouse::config::tls::TlsConfig;
use gatehouse::{App, Config};
use gatehouse_core::posture::{ControlReport, PostureReport, Verdict};
use serde_json::json;

use crate::support::{raw_config, temp_dir};

async fn build(edit: impl FnOnce(&mut RawConfig)) -> (App, gatehouse_core::FakeClock) {
    build_in(&temp_dir(), edit).await
}

async fn build_in(
    dir: &std::path::Path,
    edit: impl FnOnce(&mut RawConfig),
) -> (App, gatehouse_core::FakeClock) {
    let mut raw = raw_config(dir);
    edit(&mut raw);
    let config = Config::from_raw(raw, None).unwrap();
    let clock =
        gatehouse_core::FakeClock::at(gatehouse_core::Clock::now(&gatehouse_core::SystemClock));
    let app = App::build_with_clock(&config, Arc::new(clock.clone()))
        .await
        .unwrap();
    (app, clock)
}

async fn report(edit: impl FnOnce(&mut RawConfig)) -> PostureReport {
    build(edit).await.0.posture().report().await
}

fn control<'a>(r: &'a PostureReport, id: &str) -> &'a ControlReport {
    r.control(id)
        .unwrap_or_else(|| panic!("{id} is not in the report"))
}

#[tokio::test]
async fn the_applications_registry_leaves_no_built_control_without_a_check() {
    let (app, _) = build(|_| {}).await;
    assert_eq!(app.posture().unprobed(), Vec::<&str>::new());
    let r = app.posture().report().await;
    let ids: Vec<&str> = r.controls.iter().map(|c| c.id).collect();
    let catalogue: Vec<&str> = gatehouse_core::posture::catalogue::all()
        .map(|c| c.id)
        .collect();
    assert_eq!(ids, catalogue, "every control, once, in catalogue order");
    for c in &r.controls {
        assert!(!c.evidence.is_empty(), "{} reports no evidence", c.id);
        if c.built == "not_built" {
            assert_eq!(c.verdict, Verdict::NotBuilt, "{}", c.id);
        } else {
            assert_ne!(c.verdict, Verdict::NotBuilt, "{}", c.id);
        }
    }
    assert_eq!(r.summary.fail, 0, "{r:#?}");
}

#[tokio::test]
async fn turning_rate_limits_off_in_development_turns_c5_off_and_to_a_warning() {
    let on = report(|raw| raw.rate_limits.enabled = true).await;
    let off = report(|raw| raw.rate_limits.enabled = false).await;
    let (on, off) = (control(&on, "C5"), control(&off, "C5"));
    assert_eq!((on.enabled, on.verdict), (true, Verdict::Pass));
    assert_eq!(on.settings["store"], "memory");
    assert_eq!(on.figures["limiter_store"], "memory");
    assert_eq!((off.enabled, off.verdict), (false, Verdict::Warn));
    assert!(
        off.evidence.contains("development mode only"),
        "{}",
        off.evidence
    );
}

#[tokio::test]
async fn configuring_cors_origins_shows_them_in_c6() {
    let none = report(|_| {}).await;
    let some = report(|raw| {
        raw.cors_allowed_origins = vec!["https://app.example.com".to_owned()];
    })
    .await;
    let (none, some) = (control(&none, "C6"), control(&some, "C6"));
    assert!(!none.enabled);
    assert_eq!(none.settings["allowed_origins"], json!([]));
    assert!(some.enabled);
    assert_eq!(
        some.settings["allowed_origins"],
        json!(["https://app.example.com"])
    );
    assert!(
        some.evidence.contains("1 listed origin"),
        "{}",
        some.evidence
    );
}

#[tokio::test]
async fn removing_tls_turns_d4_off_and_the_served_certificates_expiry_is_reported() {
    let dir = temp_dir();
    let files = gatehouse::dev_cert_cmd::generate(&dir.join("tls")).unwrap();
    let (app, clock) = build(|raw| {
        raw.tls = TlsConfig {
            cert_file: Some(files.cert.clone()),
            key_file: Some(files.key.clone()),
            min_version: "1.3".to_owned(),
        };
    })
    .await;
    let with = app.posture().report().await;
    let d4 = control(&with, "D4");
    assert_eq!((d4.enabled, d4.verdict), (true, Verdict::Pass), "{d4:?}");
    assert_eq!(d4.settings["min_version"], "1.3");
    let days = d4.figures["certificate_days_left"].as_i64().unwrap();
    assert!(days > 14, "a fresh dev certificate has {days} days left");

    // The expiry is read from the certificate in force, against the injected clock.
    clock.advance(time::Duration::days(days - 3));
    let soon = app.posture().report().await;
    let d4 = control(&soon, "D4");
    assert_eq!(d4.verdict, Verdict::Warn, "{d4:?}");
    assert!(d4.evidence.contains("expires in"), "{}", d4.evidence);
    clock.advance(time::Duration::days(5));
    let past = app.posture().report().await;
    assert_eq!(control(&past, "D4").verdict, Verdict::Fail);

    let without = report(|_| {}).await;
    let d4 = control(&without, "D4");
    assert_eq!((d4.enabled, d4.verdict), (false, Verdict::Warn));
    assert_eq!(d4.settings["tls"], false);
}

#[tokio::test]
async fn the_header_check_sends_a_request_through_the_router() {
    let r = report(|_| {}).await;
    let h1 = control(&r, "H1");
    assert_eq!(h1.verdict, Verdict::Pass, "{h1:?}");
    assert!(
        h1.evidence.contains("through the router"),
        "{}",
        h1.evidence
    );
}

#[tokio::test]
async fn a_security_txt_past_its_expiry_fails_h2() {
    let expires = (gatehouse_core::Clock::now(&gatehouse_core::SystemClock)
        + time::Duration::days(30))
    .format(&time::format_description::well_known::Rfc3339)
    .unwrap();
    let (app, clock) = build(|raw| {
        raw.security_txt.contact = vec!["mailto:security@example.com".to_owned()];
        raw.security_txt.expires = Some(expires);
    })
    .await;
    let r = app.posture().report().await;
    let h2 = control(&r, "H2");
    assert_eq!((h2.enabled, h2.verdict), (true, Verdict::Pass), "{h2:?}");
    clock.advance(time::Duration::days(31));
    let r = app.posture().report().await;
    assert_eq!(control(&r, "H2").verdict, Verdict::Fail);
    let none = report(|_| {}).await;
    assert_eq!(control(&none, "H2").verdict, Verdict::Warn);
}

#[tokio::test]
async fn no_secret_value_appears_in_the_report() {
    let dir = temp_dir();
    let file = crate::api_keys::service_secret_file(&dir, "billing.key", crate::api_keys::S1);
    let r = report(|raw| raw.service_auth.secret_files = vec![file]).await;
    let secret = crate::api_keys::S1;
    let text = serde_json::to_string(&r).unwrap();
    assert!(!text.contains(secret));
    let d5 = control(&r, "D5");
    assert_eq!(d5.verdict, Verdict::Pass);
    assert_eq!(d5.figures["secrets_checked"], 1);
    assert_eq!(
        control(&r, "B2").settings["service_secrets"],
        json!(["billing"])
    );
}

/// On SQLite (the README suite) the database cannot enforce isolation: a warning. With
/// `GH_IT_POSTGRES=1` (CI's PostgreSQL run) the same test runs the report as the application
/// role (row-level security binds it: pass) and as the owner, which bypasses it: C2 fails.
#[tokio::test]
async fn c2_reports_whether_the_database_enforces_isolation() {
    if std::env::var_os("GH_IT_POSTGRES").is_none() {
        let r = report(|_| {}).await;
        let c2 = control(&r, "C2");
        assert_eq!(
            (c2.verdict, c2.settings["backend"].clone()),
            (Verdict::Warn, json!("sqlite"))
        );
        return;
    }
    let dir = temp_dir();
    let (app_url, owner_url) = crate::support::postgres_database(&dir).await;
    let as_app = build_in(&dir, |raw| {
        raw.database_url = Some(app_url.clone());
        raw.database_migration_url = Some(owner_url.clone());
    })
    .await
    .0
    .posture()
    .report()
    .await;
    let c2 = control(&as_app, "C2");
    assert_eq!(c2.verdict, Verdict::Pass, "{c2:?}");
    assert_eq!(c2.settings["backend"], "postgres");
    // The same data directory: the development master key that sealed the database.
    let as_owner = build_in(&dir, |raw| raw.database_url = Some(owner_url.clone()))
        .await
        .0
        .posture()
        .report()
        .await;
    let c2 = control(&as_owner, "C2");
    assert_eq!(c2.verdict, Verdict::Fail, "{c2:?}");
    assert!(
        c2.evidence.contains("not bound by row-level security"),
        "{}",
        c2.evidence
    );
    crate::support::drop_postgres_database(&dir).await;
}

/// The page's row for `id` in `/trust.md`.
async fn page_row(app: &crate::support::TestApp, id: &str) -> String {
    let md = app.get("/trust.md").await.text().await.unwrap();
    md.lines()
        .find(|l| l.starts_with(&format!("| {id} |")))
        .unwrap_or_else(|| panic!("no row for {id} in\n{md}"))
        .to_owned()
}

async fn posture_json(app: &crate::support::TestApp) -> serde_json::Value {
    let token = app.operator_token().await;
    let res = app
        .client
        .get(app.url("/admin/v1/posture"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

fn json_control<'a>(report: &'a serde_json::Value, id: &str) -> &'a serde_json::Value {
    report["controls"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id)
        .unwrap()
}

#[tokio::test]
async fn the_trust_page_flips_with_the_settings() {
    use crate::support::TestApp;
    let limited = TestApp::spawn_with(|raw| {
        raw.trust_page.enabled = true;
        raw.rate_limits.enabled = true;
        raw.cors_allowed_origins = vec!["https://app.example.com".to_owned()];
    })
    .await;
    let open = TestApp::spawn_with(|raw| raw.trust_page.enabled = true).await;
    let c5 = page_row(&limited, "C5").await;
    assert!(
        c5.starts_with("| C5 | Rate limiting | yes | On and checked (partly built) |"),
        "{c5}"
    );
    let c5 = page_row(&open, "C5").await;
    assert!(
        c5.starts_with("| C5 | Rate limiting | no | Needs attention (partly built) |"),
        "{c5}"
    );
    let c6 = page_row(&limited, "C6").await;
    assert!(c6.starts_with("| C6 | CORS allow-list | yes |"), "{c6}");
    let c6 = page_row(&open, "C6").await;
    assert!(c6.starts_with("| C6 | CORS allow-list | no |"), "{c6}");
    // The page shows what is checked, never the evidence (counts, roles, key sources).
    let d1 = page_row(&limited, "D1").await;
    assert!(!d1.contains("Master key version"), "{d1}");
    limited.stop().await;
    open.stop().await;
}

#[tokio::test]
async fn raising_the_argon2_parameters_counts_the_stored_hashes_below_them() {
    use crate::support::TestApp;
    let app = TestApp::spawn_with(|raw| raw.trust_page.enabled = true).await;
    for who in ["ada@example.com", "bob@example.com"] {
        let res = app
            .post_json("/v1/auth/signup", &crate::support::signup_body(who))
            .await;
        assert_eq!(res.status(), 202);
    }
    let a1 = json_control(&posture_json(&app).await, "A1").clone();
    assert_eq!(
        (
            a1["verdict"].as_str(),
            a1["figures"]["hashes_below"].as_u64()
        ),
        (Some("pass"), Some(0))
    );
    assert!(page_row(&app, "A1").await.contains("On and checked"));
    let dir = app.stop_keeping_data().await;

    let raised = TestApp::spawn_in(dir, |raw| {
        raw.trust_page.enabled = true;
        raw.password_hashing.memory_kib += 1024;
    })
    .await;
    let a1 = json_control(&posture_json(&raised).await, "A1").clone();
    assert_eq!(a1["verdict"], "warn", "{a1}");
    assert_eq!(a1["figures"]["hashes_below"], 2, "{a1}");
    assert_eq!(a1["figures"]["accounts"], 2, "{a1}");
    assert_eq!(a1["settings"]["memory_kib"], 19 * 1024 + 1024);
    let row = page_row(&raised, "A1").await;
    assert!(
        row.contains("| no | Needs attention |") || row.contains("| yes | Needs attention |"),
        "{row}"
    );
    raised.stop().await;
}

/// Edits the newest audit event of the operators' chain or an organisation's, behind
/// Gatehouse's back (as the database's owner would).
async fn tamper_newest_event(app: &crate::support::TestApp, org: &str) {
    if std::env::var_os("GH_IT_POSTGRES").is_some() {
        use sqlx::Connection as _;
        let name = std::fs::read_to_string(app.dir.join("postgres-database")).unwrap();
        let admin = crate::support::postgres_admin_url();
        let url = admin.replacen("/postgres?", &format!("/{name}?"), 1);
        let mut c = sqlx::PgConnection::connect(&url).await.unwrap();
        // The owner bypasses row-level security; replica mode skips the append-only triggers.
        sqlx::query("SET session_replication_role = replica")
            .execute(&mut c)
            .await
            .unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE audit_events SET action = 'organization.renamed' WHERE org_id = '{org}' \
             AND seq = (SELECT max(seq) FROM audit_events WHERE org_id = '{org}')"
        )))
        .execute(&mut c)
        .await
        .unwrap();
        return;
    }
    let db = app.dir.join("data/gatehouse.db");
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    sqlx::query("DROP TRIGGER audit_events_no_update")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE audit_events SET action = 'organization.renamed' WHERE rowid = \
         (SELECT max(rowid) FROM audit_events WHERE org_id = x'{}')",
        org.replace('-', "")
    )))
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;
}

#[tokio::test]
async fn tampering_with_an_audit_event_fails_e1_on_the_next_report() {
    use crate::support::TestApp;
    let app = TestApp::spawn_with(|raw| raw.trust_page.enabled = true).await;
    let ada = app.signup_login("ada@example.com", "laptop").await;
    app.signup_login("bob@example.com", "laptop").await;
    gatehouse_core::audit::checkpoint_all(
        app.kernel.store(),
        app.kernel.keyring(),
        app.kernel.clock(),
    )
    .await
    .unwrap();
    let e1 = json_control(&posture_json(&app).await, "E1").clone();
    assert_eq!(e1["verdict"], "pass", "{e1}");
    assert_eq!(e1["figures"]["chains_checked"], 3, "{e1}");
    assert!(page_row(&app, "E1").await.contains("On and checked"));

    tamper_newest_event(&app, &ada.org).await;
    let e1 = json_control(&posture_json(&app).await, "E1").clone();
    assert_eq!(e1["verdict"], "fail", "{e1}");
    assert_eq!(
        e1["figures"]["broken_chains"].as_array().unwrap().len(),
        1,
        "{e1}"
    );
    assert!(e1["evidence"].as_str().unwrap().contains(&ada.org), "{e1}");
    // The page reuses a report for its cache period (60 s), then shows the failure.
    app.clock.advance(time::Duration::seconds(61));
    let row = page_row(&app, "E1").await;
    assert!(row.contains("Check failed"), "{row}");
    app.stop().await;
}

/// The checks that read per-organisation data read a bounded share per report and go round:
/// D1 at most 25 organisations' keys a report, E1 at most 32 organisations' chains (plus the
/// operators').
#[tokio::test]
async fn sampling_checks_read_a_bounded_share_per_report_and_come_round_to_every_organisation() {
    use crate::support::TestApp;
    let app = TestApp::spawn().await;
    let orgs = 34;
    for i in 0..orgs {
        let res = app
            .post_json(
                "/v1/auth/signup",
                &crate::support::signup_body(&format!("u{i}@example.com")),
            )
            .await;
        assert_eq!(res.status(), 202);
    }
    let (mut keys_read, mut chains_read, mut reports) = (0, 0, 0);
    // D1 also stops when its 20 ms budget is spent, so a loaded machine needs more reports.
    while (keys_read < orgs || chains_read < orgs) && reports < 40 {
        reports += 1;
        let r = posture_json(&app).await;
        let d1 = &json_control(&r, "D1")["figures"];
        let e1 = &json_control(&r, "E1")["figures"];
        assert_eq!(d1["organizations"], orgs, "{d1}");
        let sampled = d1["organizations_sampled"].as_u64().unwrap();
        assert!((1..=25).contains(&sampled), "{d1}");
        keys_read += sampled;
        assert_eq!(e1["chains_total"], orgs + 1, "{e1}");
        let checked = e1["chains_checked"].as_u64().unwrap();
        assert!((2..=33).contains(&checked), "{e1}");
        chains_read += checked - 1;
    }
    assert!(
        keys_read >= orgs,
        "{reports} reports read {keys_read} organisations' keys"
    );
    assert!(
        chains_read >= orgs,
        "{reports} reports recomputed {chains_read} organisation chains"
    );
    app.stop().await;
}

/// `gatehouse posture` runs the same probes in its own process: a table, or the JSON of
/// `/admin/v1/posture`; it exits 1 once a check fails (here E1, after an operators' audit event
/// was edited behind Gatehouse's back).
#[tokio::test]
async fn the_posture_command_prints_every_control_and_exits_1_when_a_check_fails() {
    use crate::process::run_cli;
    let dir = temp_dir();
    // A metrics port already taken (a running server's) must not stop the command.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let metrics = taken.local_addr().unwrap().to_string();
    let env = [("GATEHOUSE_METRICS__LISTEN", metrics.as_str())];
    let (ok, out, err) = run_cli(&dir, &["posture", "--json"], &env, "");
    assert!(ok, "{err}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    let ids: Vec<&str> = report["controls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    let catalogue: Vec<&str> = gatehouse_core::posture::catalogue::all()
        .map(|c| c.id)
        .collect();
    assert_eq!(ids, catalogue);
    assert_eq!(report["summary"]["fail"], 0, "{out}");
    let (ok, table, err) = run_cli(&dir, &["posture"], &env, "");
    assert!(ok, "{err}");
    assert!(
        table.starts_with("ID   VERDICT         ON  CONTROL"),
        "{table}"
    );
    assert_eq!(
        table
            .lines()
            .filter(|l| l.len() > 4
                && l.as_bytes()[0].is_ascii_uppercase()
                && l.as_bytes()[1].is_ascii_digit())
            .count(),
        catalogue.len(),
        "{table}"
    );

    let db = dir.join("gatehouse-data/gatehouse.db");
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    sqlx::query("DROP TRIGGER operator_audit_events_no_update")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query(
        "UPDATE operator_audit_events SET action = 'operator.renamed' \
         WHERE rowid = (SELECT max(rowid) FROM operator_audit_events)",
    )
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;
    let (ok, table, err) = run_cli(&dir, &["posture"], &env, "");
    assert!(!ok, "{table}");
    let e1 = table.lines().find(|l| l.starts_with("E1 ")).unwrap();
    assert!(e1.contains("FAIL"), "{table}");
    assert!(
        err.contains("1 control(s) failed their self-check"),
        "{err}"
    );
    drop(taken);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn a5_warns_while_the_revocation_subscription_is_down() {
    let single = report(|_| {}).await;
    let a5 = control(&single, "A5");
    assert_eq!(a5.verdict, Verdict::Pass, "{a5:?}");
    assert_eq!(a5.settings["revocation_fanout"], "this instance only");
    // Nothing listens on port 1: the subscriber's connection fails and marks itself degraded.
    let (app, _) = build(|raw| raw.redis_url = Some("redis://127.0.0.1:1".to_owned())).await;
    let mut last = None;
    for _ in 0..100 {
        let r = app.posture().report().await;
        let a5 = control(&r, "A5").clone();
        if a5.verdict == Verdict::Warn {
            assert!(
                a5.evidence.contains("subscription is down"),
                "{}",
                a5.evidence
            );
            return;
        }
        last = Some(a5);
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("A5 never warned: {last:?}");
}

/// Checkpoints are signed every interval over every chain that moved: an event left unsigned for
/// four intervals (the job stopped, or its checkpoints were deleted) makes E1 warn; an idle chain
/// whose newest checkpoint is old does not.
#[tokio::test]
async fn e1_warns_when_events_go_unsigned_past_a_lease_takeover() {
    use crate::support::TestApp;
    let app = TestApp::spawn().await;
    app.signup_login("ada@example.com", "laptop").await;
    let e1 = json_control(&posture_json(&app).await, "E1").clone();
    assert_eq!(e1["verdict"], "pass", "{e1}");
    // The default interval is 300 s; the checkpoint job has not run on the test's clock. Four
    // intervals (a lease takeover and a tick) are allowed.
    app.clock.advance(time::Duration::seconds(1_199));
    let e1 = json_control(&posture_json(&app).await, "E1").clone();
    assert_eq!(e1["verdict"], "pass", "{e1}");
    app.clock.advance(time::Duration::seconds(2));
    let e1 = json_control(&posture_json(&app).await, "E1").clone();
    assert_eq!(e1["verdict"], "warn", "{e1}");
    assert!(
        e1["evidence"]
            .as_str()
            .unwrap()
            .contains("without a checkpoint"),
        "{e1}"
    );
    gatehouse_core::audit::checkpoint_all(
        app.kernel.store(),
        app.kernel.keyring(),
        app.kernel.clock(),
    )
    .await
    .unwrap();
    // Signed now; a day later nothing moved, so nothing is left unsigned.
    app.clock.advance(time::Duration::days(1));
    let e1 = json_control(&posture_json(&app).await, "E1").clone();
    assert_eq!(e1["verdict"], "pass", "{e1}");
    app.stop().await;
}
