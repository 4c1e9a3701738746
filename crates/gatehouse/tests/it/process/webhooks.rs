//! F3's durability: events queued while the receiver is down survive a `kill -9` of the binary
//! and are delivered after it restarts, each acknowledged exactly once and verified by the
//! official Python library.

use std::time::Duration;

use serde_json::{Value, json};

use super::start_with;
use crate::interop::WebhookReceiver;
use crate::support::{PASSWORD, signup_body, temp_dir};

const SERVICE_SECRET: &str = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";

fn config(secret_file: &std::path::Path) -> String {
    format!(
        r#"
[service_auth]
secret_files = ["{}"]

[webhooks]
allow_http = true
allow_loopback = true
poll_interval_ms = 100
timeout_secs = 2
retry_waits_secs = [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]
product_event_types = ["invoice.paid"]
"#,
        secret_file.display()
    )
}

#[tokio::test]
async fn events_queued_before_a_kill_9_are_delivered_after_the_restart() {
    let dir = temp_dir();
    let secret_file = dir.join("billing.key");
    std::fs::write(&secret_file, SERVICE_SECRET).unwrap();
    std::fs::set_permissions(
        &secret_file,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    std::fs::write(dir.join("gatehouse.toml"), config(&secret_file)).unwrap();
    let server = start_with(&dir, &[]);
    let base = format!("http://{}", server.addr);
    let client = reqwest::Client::new();
    let res = client
        .post(format!("{base}/v1/auth/signup"))
        .json(&signup_body("hooks@example.com"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    let login: Value = client
        .post(format!("{base}/v1/auth/login"))
        .json(&json!({"email": "hooks@example.com", "password": PASSWORD, "device_name": "ci"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = login["access_token"].as_str().unwrap();
    let org = login["organization_id"].as_str().unwrap();

    // The receiver's port is reserved but nobody listens yet: every attempt fails.
    let receiver = WebhookReceiver::python(0);
    let port = receiver.port;
    drop(receiver);
    let res = client
        .post(format!("{base}/v1/webhooks/endpoints"))
        .bearer_auth(token)
        .header("x-organization-id", org)
        .json(
            &json!({"url": format!("http://127.0.0.1:{port}/in"), "event_types": ["invoice.paid"]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let secret = res.json::<Value>().await.unwrap()["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let events: Vec<Value> = (0..50)
        .map(|i| json!({"type": "invoice.paid", "data": {"n": i}}))
        .collect();
    let res = client
        .post(format!("{base}/internal/v1/events"))
        .header("x-service-auth", SERVICE_SECRET)
        .json(&json!({"organization_id": org, "events": events}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    // Let the worker fail a few rounds, then kill the process without warning.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    server.signal("KILL");
    let _ = server.wait();

    let receiver = WebhookReceiver::python_on(port, 0);
    receiver.set_secrets(&[&secret]);
    let server = start_with(&dir, &[]);
    let got = receiver
        .wait_until("all 50 events after the restart", |r| {
            r.iter().filter(|x| x.status == 204).count() >= 50
        })
        .await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let got = if receiver.received().len() > got.len() {
        receiver.received()
    } else {
        got
    };
    assert!(got.iter().all(|x| x.verified), "a request did not verify");
    let mut ids: Vec<_> = got
        .iter()
        .filter(|x| x.status == 204)
        .map(|x| x.id.clone())
        .collect();
    ids.sort();
    let total = ids.len();
    ids.dedup();
    assert_eq!(
        (ids.len(), total),
        (50, 50),
        "each event acknowledged exactly once"
    );
    server.signal("TERM");
    let (code, _) = server.wait();
    assert_eq!(code, Some(0));
}
