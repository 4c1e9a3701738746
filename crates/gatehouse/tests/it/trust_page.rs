//! H3's surfaces: `GET /admin/v1/posture` for operators, and the public trust page (`/trust`,
//! `/trust.md`), checked over HTTP and, for the page, in headless Chromium (Debian's
//! `chromium`, driven by playwright-core from npm, pinned, installed under the target directory
//! on first use). The browser test fails, never skips, when Chromium or npm is missing.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use gatehouse::config::RawConfig;
use gatehouse_core::posture::catalogue;
use gatehouse_core::posture::{Certification, CertificationStatus, SubProcessor};
use reqwest::Method;
use serde_json::Value;

use crate::support::{TestApp, expect_problem};

/// The playwright-core release the browser test drives Chromium with.
const PLAYWRIGHT_CORE: &str = "playwright-core@1.65.2";

const CHROMIUM: &str = "/usr/bin/chromium";

/// What the operator declares in these tests, one statement carrying markup that must come out
/// as text.
fn declare(c: &mut RawConfig) {
    let t = &mut c.trust_page;
    t.enabled = true;
    t.cache_seconds = 60;
    t.service_name = Some("Acme CRM".into());
    t.contact = Some("mailto:security@acme.example".into());
    t.data_residency = Some("EU (Frankfurt)".into());
    t.last_penetration_test = Some("2026-03, by Example Security GmbH".into());
    t.certifications = vec![
        Certification {
            name: "SOC 2 Type II".into(),
            status: CertificationStatus::InProgress,
            note: Some("audit period ends 2026-09".into()),
        },
        Certification {
            name: "ISO/IEC 27001".into(),
            status: CertificationStatus::NotClaimed,
            note: None,
        },
    ];
    t.sub_processors = vec![SubProcessor {
        name: "<script>alert('sub')</script> Hosting & Co".into(),
        purpose: "servers | backups".into(),
        location: Some("Germany".into()),
    }];
}

fn ids() -> Vec<&'static str> {
    catalogue::all().map(|c| c.id).collect()
}

fn header(res: &reqwest::Response, name: &str) -> String {
    let all: Vec<_> = res.headers().get_all(name).iter().collect();
    assert_eq!(all.len(), 1, "{name}: {all:?}");
    all[0].to_str().unwrap().to_owned()
}

/// H1's headers, every one but the policy, which the trust page replaces with its own.
const H1: &[(&str, &str)] = &[
    (
        "strict-transport-security",
        "max-age=31536000; includeSubDomains",
    ),
    ("x-frame-options", "DENY"),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "strict-origin-when-cross-origin"),
    (
        "permissions-policy",
        "camera=(), microphone=(), geolocation=(), payment=(), usb=()",
    ),
    ("cross-origin-opener-policy", "same-origin"),
    ("cross-origin-resource-policy", "same-origin"),
    ("cache-control", "no-store"),
];

/// The page's policy: the edge's `default-src 'none'` and `frame-ancestors 'none'`, one style
/// hash, nothing loosened.
fn assert_page_policy(csp: &str) {
    let directives: Vec<&str> = csp.split(';').map(str::trim).collect();
    assert_eq!(directives[0], "default-src 'none'", "{csp}");
    assert!(directives.contains(&"frame-ancestors 'none'"), "{csp}");
    let style = directives
        .iter()
        .find(|d| d.starts_with("style-src "))
        .unwrap_or_else(|| panic!("no style-src: {csp}"));
    let sources: Vec<_> = style.split_whitespace().skip(1).collect();
    assert_eq!(sources.len(), 1, "{csp}");
    assert!(
        sources[0].starts_with("'sha256-") && sources[0].ends_with("='"),
        "{csp}"
    );
    for d in &directives {
        let name = d.split_whitespace().next().unwrap();
        assert!(
            [
                "default-src",
                "style-src",
                "frame-ancestors",
                "base-uri",
                "form-action"
            ]
            .contains(&name),
            "{csp}: unexpected {name}"
        );
        if name != "style-src" {
            assert!(d.ends_with(" 'none'"), "{csp}: {d}");
        }
    }
    assert!(!csp.contains("unsafe") && !csp.contains("script"), "{csp}");
}

#[tokio::test]
async fn the_trust_page_is_off_by_default_and_answers_like_an_unknown_path() {
    let app = TestApp::spawn().await;
    let unknown = expect_problem(app.get("/no/such/page").await, 404, "not_found").await;
    for path in ["/trust", "/trust.md"] {
        let body = expect_problem(app.get(path).await, 404, "not_found").await;
        assert_eq!(body["detail"], unknown["detail"], "{path}");
        assert_eq!(body["title"], unknown["title"], "{path}");
    }
    app.stop().await;
}

#[tokio::test]
async fn the_posture_report_is_for_operators_and_lists_every_control_once() {
    let app = TestApp::spawn().await;
    let res = app.get("/admin/v1/posture").await;
    expect_problem(res, 401, "unauthenticated").await;
    let tenant = app.signup_login("tenant@posture.example", "laptop").await;
    let res = app
        .call(Method::GET, "/admin/v1/posture", &tenant.access, None, None)
        .await;
    expect_problem(res, 403, "wrong_audience").await;

    let op = app.operator_token().await;
    let res = app
        .call(Method::GET, "/admin/v1/posture", &op, None, None)
        .await;
    assert_eq!(res.status(), 200);
    let report: Value = res.json().await.unwrap();
    let controls = report["controls"].as_array().unwrap();
    let got: Vec<&str> = controls.iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert_eq!(got, ids(), "every control once, in catalogue order");
    let s = &report["summary"];
    let total: u64 = ["pass", "warn", "fail", "not_applicable", "not_built"]
        .iter()
        .map(|k| s[*k].as_u64().unwrap())
        .sum();
    assert_eq!(total, controls.len() as u64);
    for (c, entry) in controls.iter().zip(catalogue::all()) {
        assert_eq!(c["title"], entry.title);
        assert_eq!(c["promise"], entry.promise);
        assert!(
            c["evidence"].is_string() && c["settings"].is_object(),
            "{c}"
        );
        if !entry.built.is_built() {
            assert_eq!(c["verdict"], "not_built", "{c}");
        }
    }
    // Fresh each call: the clock moved, so does the report's time.
    app.clock.advance(time::Duration::seconds(5));
    let again: Value = app
        .call(Method::GET, "/admin/v1/posture", &op, None, None)
        .await
        .json()
        .await
        .unwrap();
    assert_ne!(again["generated_at"], report["generated_at"]);
    app.stop().await;
}

#[tokio::test]
async fn the_page_and_its_markdown_show_every_control_and_the_declarations_as_declarations() {
    let app = TestApp::spawn_with(declare).await;
    let res = app.get("/trust").await;
    assert_eq!(res.status(), 200);
    assert_eq!(header(&res, "content-type"), "text/html; charset=utf-8");
    assert_page_policy(&header(&res, "content-security-policy"));
    for (name, value) in H1 {
        assert_eq!(header(&res, name), *value, "{name}");
    }
    let html = res.text().await.unwrap();
    assert_eq!(html.matches("data-control=\"").count(), ids().len());
    for id in ids() {
        assert_eq!(
            html.matches(&format!("<tr id=\"control-{id}\"")).count(),
            1,
            "{id}"
        );
    }
    assert!(!html.contains("<script"), "no script, not even injected");
    assert!(html.contains("&lt;script&gt;alert(&#39;sub&#39;)&lt;/script&gt; Hosting &amp; Co"));
    let (checked, declared) = html
        .split_once("Declared by the operator (not verified by Gatehouse)")
        .expect("the declarations have their own labelled section");
    assert!(checked.contains("<section aria-labelledby=\"controls\">"));
    for statement in [
        "mailto:security@acme.example",
        "EU (Frankfurt)",
        "2026-03, by Example Security GmbH",
        "SOC 2 Type II",
        "ISO/IEC 27001",
        "servers | backups",
    ] {
        assert!(declared.contains(statement), "{statement}");
        assert!(!checked.contains(statement), "{statement} shown as checked");
    }
    assert!(declared.contains("<td>SOC 2 Type II</td><td>in progress</td>"));
    assert!(declared.contains("<td>ISO/IEC 27001</td><td>not claimed</td>"));
    assert!(html.contains("checks re-run at most every 60 s"));
    assert!(html.contains(" UTC</time>"));

    let res = app.get("/trust.md").await;
    assert_eq!(res.status(), 200);
    assert_eq!(header(&res, "content-type"), "text/markdown; charset=utf-8");
    assert_eq!(
        header(&res, "content-security-policy"),
        "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    );
    let md = res.text().await.unwrap();
    let rows: Vec<&str> = md
        .lines()
        .filter(|l| ids().iter().any(|id| l.starts_with(&format!("| {id} | "))))
        .collect();
    assert_eq!(rows.len(), ids().len(), "{md}");
    let (_, declared) = md
        .split_once("## Declared by the operator (not verified by Gatehouse)")
        .unwrap();
    assert!(declared.contains(r"\<script\>alert('sub')\</script\> Hosting \& Co"));
    assert!(declared.contains(r"servers \| backups"));
    assert!(declared.contains("| SOC 2 Type II | in progress |"));
    app.stop().await;
}

/// The "Generated at" line of the markdown page.
async fn generated(app: &TestApp) -> String {
    let md = app.get("/trust.md").await.text().await.unwrap();
    md.lines()
        .find(|l| l.starts_with("Generated at "))
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn one_report_serves_the_page_for_the_cache_period() {
    let app = TestApp::spawn_with(|c| {
        declare(c);
        c.trust_page.cache_seconds = 30;
    })
    .await;
    let first = generated(&app).await;
    app.clock.advance(time::Duration::seconds(29));
    assert_eq!(generated(&app).await, first, "within the period");
    // The period counts from the end of the run (milliseconds after the time it shows).
    app.clock.advance(time::Duration::seconds(2));
    let second = generated(&app).await;
    assert_ne!(second, first, "the period is over");
    assert!(
        second.contains("the checks re-run at most every 30 s"),
        "{second}"
    );
    app.stop().await;
}

/// A directory whose `node_modules` holds playwright-core (pinned), installed on first use.
fn playwright() -> PathBuf {
    crate::interop::npm_package("trust-page-node", "playwright-core", PLAYWRIGHT_CORE)
}

/// `target/artifacts/trust-page.png`.
fn screenshot_path() -> PathBuf {
    let target = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("CARGO_TARGET_TMPDIR is inside the target directory");
    let dir = target.join("artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("trust-page.png")
}

#[tokio::test]
async fn the_trust_page_renders_every_control_in_headless_chromium_without_script() {
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is needed (Debian package chromium; scripts/test installs it)"
    );
    let app = TestApp::spawn_with(declare).await;
    let modules = tokio::task::spawn_blocking(playwright).await.unwrap();

    // The headers as the server sends them, read over plain HTTP.
    let res = app.get("/trust").await;
    assert_eq!(res.status(), 200);
    assert_page_policy(&header(&res, "content-security-policy"));
    for (name, value) in H1 {
        assert_eq!(header(&res, name), *value, "{name}");
    }
    let policy = header(&res, "content-security-policy");

    let shot = screenshot_path();
    let _ = std::fs::remove_file(&shot);
    let url = app.url("/trust");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop/trust_page.js");
    let started = Instant::now();
    let shot_arg = shot.clone();
    // Off the runtime's thread: the server under test answers on it meanwhile.
    let out = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg(script)
            .arg(&url)
            .arg(&shot_arg)
            .env("NODE_PATH", modules.join("node_modules"))
            .output()
            .expect("node is needed for the trust page's browser test")
    })
    .await
    .unwrap();
    let took = started.elapsed();
    assert!(
        out.status.success(),
        "the browser run failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    let seen: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("{e}: {}", String::from_utf8_lossy(&out.stdout));
    });

    assert_eq!(seen["status"], 200);
    let row_ids = |rows: &Value| -> Vec<String> {
        rows.as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        row_ids(&seen["rows"]),
        ids(),
        "every control, once, in order"
    );
    for (row, control) in seen["rows"]
        .as_array()
        .unwrap()
        .iter()
        .zip(catalogue::all())
    {
        let cells = row["cells"].as_array().unwrap();
        assert_eq!(cells.len(), 6, "{row}");
        assert_eq!(cells[1], control.title);
        assert!(cells[2] == "yes" || cells[2] == "no", "{row}");
        assert_eq!(cells[4], control.promise);
        assert_eq!(cells[5], control.self_check);
        if !control.built.is_built() {
            assert_eq!(cells[3], "Not built yet", "{row}");
        }
    }
    assert_eq!(seen["scripts"], 0, "document.scripts.length");
    assert_eq!(seen["pageErrors"], Value::Array(vec![]));
    let errors: Vec<_> = seen["console"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["type"] == "error")
        .collect();
    assert!(errors.is_empty(), "console errors: {errors:?}");
    assert_eq!(seen["failed"], Value::Array(vec![]), "failed requests");
    assert_eq!(
        seen["tableBorderCollapse"], "collapse",
        "the stylesheet applied under the policy"
    );
    assert_eq!(
        seen["declaredHeading"],
        "Declared by the operator (not verified by Gatehouse)"
    );
    let declared = seen["declarations"].as_str().unwrap();
    assert!(declared.contains("<script>alert('sub')</script> Hosting & Co"));
    assert!(seen["generated"].as_str().unwrap().contains(" UTC"));
    // The browser received the same headers.
    let headers = &seen["headers"];
    assert_eq!(headers["content-security-policy"], policy);
    for (name, value) in H1 {
        assert_eq!(headers[*name], *value, "{name} in the browser");
    }

    let no_js = &seen["noJs"];
    assert_eq!(no_js["status"], 200);
    assert_eq!(
        row_ids(&no_js["rows"]),
        ids(),
        "the same rows without JavaScript"
    );
    assert_eq!(no_js["rows"], seen["rows"]);
    assert_eq!(no_js["scripts"], 0);
    assert_eq!(no_js["pageErrors"], Value::Array(vec![]));
    assert!(
        !no_js["console"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["type"] == "error"),
        "{no_js}"
    );

    let png = std::fs::read(&shot).unwrap();
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 10_000);
    println!(
        "trust page screenshot: {} (Chromium {}, browser run {:.1} s)",
        shot.display(),
        seen["browser"].as_str().unwrap_or("?"),
        took.as_secs_f64()
    );
    app.stop().await;
}
