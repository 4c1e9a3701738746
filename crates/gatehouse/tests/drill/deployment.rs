//! The drill's deployment: its `gatehouse.toml`, the service secret, the founders of the
//! organisations the workload writes in, and their webhook endpoints.

use std::path::Path;
use std::time::Duration;

use serde_json::json;

use crate::fleet::Fleet;
use crate::workload::{EVENT_TYPE, PASSWORD, SERVICE_SECRET, Tenant, client};

/// Where the servers keep their state besides the database.
pub(crate) enum Backend<'a> {
    Sqlite,
    /// PostgreSQL (`gatehouse_app`'s URL) and Redis with a key prefix of this run's own.
    Postgres {
        url: &'a str,
        redis_url: &'a str,
        prefix: &'a str,
    },
    /// PostgreSQL alone, limits off (the restart test: its load is about the database).
    PostgresOnly {
        url: &'a str,
    },
}

/// Writes `dir/gatehouse.toml` and the service secret it names.
pub(crate) fn write_config(dir: &Path, backend: &Backend<'_>) {
    let secret_file = dir.join("service.key");
    std::fs::write(&secret_file, SERVICE_SECRET).unwrap();
    std::fs::set_permissions(
        &secret_file,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let (head, limits) = match backend {
        Backend::Sqlite => (String::new(), "enabled = false".to_owned()),
        Backend::PostgresOnly { url } => (
            format!("database_url = \"{url}\""),
            "enabled = false".to_owned(),
        ),
        // Limits on and in Redis (quotas far above the workload's), so the drill also runs
        // through the shared limiter and the revocation fan-out.
        Backend::Postgres {
            url,
            redis_url,
            prefix,
        } => (
            format!("database_url = \"{url}\"\nredis_url = \"{redis_url}\""),
            format!(
                "enabled = true\nstore = \"redis\"\nredis_key_prefix = \"{prefix}\"\n\
                 per_user = 1000000\ndefault_plan = \"drill\"\nplans = {{ drill = 1000000 }}\n\
                 per_ip = {{ auth = 1000000, read = 1000000, write = 1000000, admin = 1000000 }}"
            ),
        ),
    };
    let text = format!(
        r#"data_dir = "{data}"
log_format = "json"
{head}

[rate_limits]
{limits}

[service_auth]
secret_files = ["{secret}"]

[identity]
step_up_permissions = ["secrets.reveal"]

[mail]
poll_interval_ms = 100

[webhooks]
allow_http = true
allow_loopback = true
poll_interval_ms = 100
timeout_secs = 2
retry_waits_secs = [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]
product_event_types = ["{EVENT_TYPE}"]

[[product.permissions]]
name = "note.read"
description = "Read notes"
roles = ["owner", "admin", "member"]

[[product.permissions]]
name = "note.write"
description = "Write notes"
roles = ["owner", "admin"]

[[product.record_types]]
name = "note"
read = "note.read"
write = "note.write"
"#,
        data = dir.join("data").display(),
        secret = secret_file.display(),
    );
    std::fs::write(dir.join("gatehouse.toml"), text).unwrap();
}

/// Signs up and signs in `count` founders, each with a webhook endpoint for the drill's event
/// pointing at `hook_url`. Run before any kill: every step must succeed.
pub(crate) async fn tenants(fleet: &Fleet, count: usize, hook_url: &str) -> Vec<Tenant> {
    let client = client();
    let mut out = Vec::new();
    for i in 0..count {
        let base = format!("http://{}", fleet.pick().unwrap());
        let email = format!("founder{i}@drill.example");
        let res = client
            .post(format!("{base}/v1/auth/signup"))
            .json(
                &json!({"email": email, "password": PASSWORD, "name": "Founder",
                "organization_name": format!("Drill {i}")}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 202, "{:?}", res.text().await);
        let res = client
            .post(format!("{base}/v1/auth/login"))
            .json(&json!({"email": email, "password": PASSWORD, "device_name": "setup"}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{:?}", res.text().await);
        let login: serde_json::Value = res.json().await.unwrap();
        let t = Tenant {
            org: login["organization_id"].as_str().unwrap().to_owned(),
            access: login["access_token"].as_str().unwrap().to_owned(),
        };
        let res = client
            .post(format!("{base}/v1/webhooks/endpoints"))
            .bearer_auth(&t.access)
            .header("x-organization-id", &t.org)
            .json(&json!({"url": hook_url, "event_types": [EVENT_TYPE]}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 201, "{:?}", res.text().await);
        out.push(t);
    }
    out
}

/// Waits (bounded) until every instance is up and answers `/health/ready` with 200.
pub(crate) async fn all_ready(fleet: &Fleet) {
    let client = client();
    let until = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let addrs = fleet.addrs();
        let mut ready = addrs.len() == fleet.size();
        for addr in addrs {
            ready &= matches!(
                client.get(format!("http://{addr}/health/ready")).send().await,
                Ok(res) if res.status() == 200
            );
        }
        if ready {
            return;
        }
        assert!(
            std::time::Instant::now() < until,
            "the instances were not all ready within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
