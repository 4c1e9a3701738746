//! F3's durability: events queued while the receiver is down survive a `kill -9` of the binary
//! and are delivered after it restarts, verified by the official Python library. Delivery is at
//! least once, as Standard Webhooks has it: an event is sent again only when Gatehouse did not
//! hear its acknowledgement (an attempt its log records as failed, such as a timeout on a busy
//! machine), never after it recorded one, and every copy carries the same `webhook-id`.

use std::collections::HashMap;
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
    let created = res.json::<Value>().await.unwrap();
    let secret = created["secret"].as_str().unwrap().to_owned();
    let endpoint = created["id"].as_str().unwrap().to_owned();
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
    let mut acked: HashMap<String, usize> = HashMap::new();
    for x in got.iter().filter(|x| x.status == 204) {
        *acked.entry(x.id.clone()).or_default() += 1;
    }
    assert_eq!(acked.len(), 50, "every event acknowledged: {acked:?}");
    // The delivery log: per `webhook-id`, the attempts that got a 2xx, and those that reached
    // the receiver but whose answer never came back ("could not connect" never reached it).
    let base = format!("http://{}", server.addr);
    let log = attempt_log(&client, &base, token, org, &endpoint).await;
    let mut heard: HashMap<String, (usize, usize)> = HashMap::new();
    for a in &log {
        let id = a["message_id"].as_str().unwrap_or_default().to_owned();
        let entry = heard.entry(id).or_default();
        match a["status"].as_u64() {
            Some(s) if (200..300).contains(&s) => entry.0 += 1,
            Some(_) => {}
            None if a["error"].as_str() != Some("could not connect") => entry.1 += 1,
            None => {}
        }
    }
    for (id, copies) in &acked {
        let (ok, unanswered) = heard.get(id).copied().unwrap_or_default();
        assert_eq!(
            ok, 1,
            "{id}: the log records one success, never a send after it"
        );
        assert!(
            *copies <= 1 + unanswered,
            "{id}: acknowledged {copies} times but only {unanswered} attempts went unheard"
        );
    }
    server.signal("TERM");
    let (code, _) = server.wait();
    assert_eq!(code, Some(0));
}

/// Every attempt in the endpoint's delivery log, following the cursor.
async fn attempt_log(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    org: &str,
    endpoint: &str,
) -> Vec<Value> {
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut url = format!("{base}/v1/webhooks/endpoints/{endpoint}/attempts?limit=100");
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let page: Value = client
            .get(url)
            .bearer_auth(token)
            .header("x-organization-id", org)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        items.extend(page["items"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return items,
        }
    }
}
