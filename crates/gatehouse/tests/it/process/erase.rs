//! G2 at the process level: `gatehouse erase user` (after a dry run that changes nothing)
//! leaves no byte of the person's address, name, IP address or user agent in the SQLite
//! database, its write-ahead log or its shared-memory file, and `gatehouse audit verify` still
//! passes over the chains that named them.

use serde_json::json;

use super::{run_cli, start_with};
use crate::support::{PASSWORD, temp_dir};

const EMAIL: &str = "zelda.erasable@example.com";
const NAME: &str = "Zelda Q. Erasable";
const IP: &str = "203.0.113.77";
const AGENT: &str = "ZeldaAgent/7.7";

/// Which of the needles occur in any of the database's files.
fn found(dir: &std::path::Path) -> Vec<String> {
    let data = dir.join("gatehouse-data");
    let mut hits = Vec::new();
    for file in ["gatehouse.db", "gatehouse.db-wal", "gatehouse.db-shm"] {
        let Ok(bytes) = std::fs::read(data.join(file)) else {
            continue;
        };
        for needle in [EMAIL, NAME, IP, AGENT] {
            if bytes.windows(needle.len()).any(|w| w == needle.as_bytes()) {
                hits.push(format!("{needle} in {file}"));
            }
        }
    }
    hits
}

#[tokio::test]
async fn an_erased_person_leaves_no_byte_in_the_database_files_and_the_chains_verify() {
    let dir = temp_dir();
    let server = start_with(&dir, &[("GATEHOUSE_TRUSTED_PROXIES", "[\"127.0.0.1\"]")]);
    let base = format!("http://{}", server.addr);
    let client = reqwest::Client::new();
    let post = |path: &str, body: serde_json::Value| {
        client
            .post(format!("{base}{path}"))
            .header("x-forwarded-for", IP)
            .header("user-agent", AGENT)
            .json(&body)
    };
    let res = post(
        "/v1/auth/signup",
        json!({"email": EMAIL, "password": PASSWORD, "name": NAME,
               "organization_name": "Zelda's Workshop"}),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(res.status(), 202);
    let mut access = String::new();
    for device in ["laptop", "phone"] {
        let res = post(
            "/v1/auth/login",
            json!({"email": EMAIL, "password": PASSWORD, "device_name": device}),
        )
        .send()
        .await
        .unwrap();
        assert_eq!(res.status(), 200);
        let body: serde_json::Value = res.json().await.unwrap();
        access = body["access_token"].as_str().unwrap().to_owned();
    }
    // A wrong password on the real account (a failed sign-in naming the account, on the
    // operators' chain, which erasure cannot change) and a cookie-carried change without its
    // CSRF header (on the organisation's chain): both security events are written at
    // shutdown, and neither may keep the address past the erasure.
    let res = post(
        "/v1/auth/login",
        json!({"email": EMAIL, "password": "not the password at all", "device_name": "x"}),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(res.status(), 401);
    let res = post("/v1/auth/logout", json!({}))
        .header("cookie", format!("__Host-gatehouse_access={access}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    let res = post("/v1/auth/password-reset", json!({"email": EMAIL}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    // Someone else, invited by nobody, stays.
    let res = client
        .post(format!("{base}/v1/auth/signup"))
        .json(&crate::support::signup_body("other@example.com"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    server.signal("TERM");
    let (code, _) = server.wait();
    assert_eq!(code, Some(0));
    let before = found(&dir);
    for needle in [EMAIL, NAME, IP, AGENT] {
        assert!(
            before.iter().any(|h| h.starts_with(needle)),
            "{needle} was never stored: {before:?}"
        );
    }

    let (ok, out, err) = run_cli(
        &dir,
        &["erase", "user", "--email", EMAIL, "--dry-run"],
        &[],
        "",
    );
    assert!(ok, "{out}{err}");
    assert!(out.contains("dry run: nothing was erased"), "{out}");
    assert!(out.contains("\"sessions\": 2"), "{out}");
    // Which needles are found, in any of the files: the dry run's own process may checkpoint
    // the WAL into the main file as it closes, which moves bytes without erasing any.
    let needles = |hits: &[String]| -> std::collections::BTreeSet<String> {
        hits.iter()
            .filter_map(|h| h.split(" in ").next())
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(
        needles(&found(&dir)),
        needles(&before),
        "a dry run erased something"
    );
    assert_eq!(needles(&before).len(), 4);

    let (ok, out, err) = run_cli(&dir, &["erase", "user", "--email", EMAIL], &[], "");
    assert!(ok, "{out}{err}");
    assert!(out.contains("erased"), "{out}");
    assert!(out.contains("\"organizations_erased\": ["), "{out}");
    assert_eq!(found(&dir), Vec::<String>::new());
    let (ok, _, err) = run_cli(&dir, &["erase", "user", "--email", EMAIL], &[], "");
    assert!(!ok && err.contains("no account"), "{err}");

    let (ok, out, err) = run_cli(&dir, &["audit", "verify"], &[], "");
    assert!(ok, "{out}{err}");
    // Her workshop, which only she belonged to, went with her: the other person's chain and
    // the operators' remain.
    assert_eq!(out.matches("chain intact").count(), 2, "{out}");
    assert!(!out.contains(EMAIL));
}
