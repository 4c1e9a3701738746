//! G3 in real time: the binary, left to its own background job, physically removes a record
//! within 60 seconds of its expiry, and the audit chain still verifies afterwards.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sqlx::Connection as _;

use super::{run_cli, start_with};
use crate::support::{PASSWORD, signup_body, temp_dir};

const CONFIG: &str = r#"
[lifecycle]
purge_interval_secs = 1

[[product.permissions]]
name = "report.read"
description = "read reports"
roles = ["owner"]

[[product.permissions]]
name = "report.write"
description = "write reports"
roles = ["owner"]

[[product.record_types]]
name = "report"
read = "report.read"
write = "report.write"
"#;

async fn stored(db: &std::path::Path, id: &str) -> i64 {
    let url = format!("sqlite://{}?mode=ro", db.display());
    let mut c = sqlx::SqliteConnection::connect(&url).await.unwrap();
    let id = uuid::Uuid::parse_str(id).unwrap();
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM records WHERE id = ?")
        .bind(id)
        .fetch_one(&mut c)
        .await
        .unwrap();
    c.close().await.unwrap();
    n
}

#[tokio::test]
async fn an_expired_record_is_physically_gone_within_a_minute() {
    let dir = temp_dir();
    std::fs::write(dir.join("gatehouse.toml"), CONFIG).unwrap();
    let server = start_with(&dir, &[]);
    let base = format!("http://{}", server.addr);
    let client = reqwest::Client::new();
    let res = client
        .post(format!("{base}/v1/auth/signup"))
        .json(&signup_body("ttl@example.com"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    let login: Value = client
        .post(format!("{base}/v1/auth/login"))
        .json(&json!({"email": "ttl@example.com", "password": PASSWORD, "device_name": "ci"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = login["access_token"].as_str().unwrap();
    let org = login["organization_id"].as_str().unwrap();
    let expires =
        gatehouse_core::Clock::now(&gatehouse_core::SystemClock) + time::Duration::seconds(2);
    let res = client
        .post(format!("{base}/v1/records"))
        .bearer_auth(token)
        .header("x-organization-id", org)
        .json(&json!({"type": "report", "external_id": "short", "level": "organization",
                      "content": {"a": 1},
                      "expires_at": expires.format(&time::format_description::well_known::Rfc3339).unwrap()}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201, "{:?}", res.text().await);
    let id = res.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let db = dir.join("gatehouse-data").join("gatehouse.db");
    assert_eq!(stored(&db, &id).await, 1);
    let until_expiry =
        (expires - gatehouse_core::Clock::now(&gatehouse_core::SystemClock)).unsigned_abs();
    tokio::time::sleep(until_expiry).await;
    let expired_at = Instant::now();
    while stored(&db, &id).await > 0 {
        assert!(
            expired_at.elapsed() < Duration::from_secs(60),
            "the record is still stored a minute after its expiry"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let took = expired_at.elapsed();
    eprintln!("purged {took:?} after its expiry");
    server.signal("TERM");
    let (code, lines) = server.wait();
    assert_eq!(code, Some(0));
    assert!(
        lines.iter().any(|l| l.contains("purged expired data")),
        "no purge logged"
    );
    let (ok, out, err) = run_cli(&dir, &["audit", "verify"], &[], "");
    assert!(ok, "{out}{err}");
    assert!(out.contains("chain intact"), "{out}");
}
