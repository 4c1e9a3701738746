//! Several `gatehouse serve` processes over one database behave as one (issue 23, control E5):
//! started at the same moment on a new database they all become ready and use the same keys,
//! and each periodic job runs on one of them at a time, taken over within its stated bound when
//! that one is killed.
//!
//! Needs PostgreSQL (`GH_TEST_POSTGRES_URL`, default `postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable`,
//! a role that may create databases): it fails, never skips, without it. Each test makes its own
//! databases (named `gh_test_{unix secs}_{hex}`, like the storage suite's, whose sweep drops
//! leftovers of a crashed run) and drops them. Not part of the README's service-free test command;
//! `.ci/run` runs it in its PostgreSQL step.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::str::FromStr as _;
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sqlx::{ConnectOptions as _, Connection as _, PgConnection};

const BIN: &str = env!("CARGO_BIN_EXE_gatehouse");
/// One master key for every instance of a deployment (the settings that must be equal).
const MASTER_KEY: &str = "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWY=";
const PASSWORD: &str = "a sufficiently long passphrase";
/// The leased jobs, as readiness names them.
const JOBS: [&str; 4] = ["reencryption", "checkpoints", "lifecycle", "connectors"];

fn admin_url() -> String {
    std::env::var("GH_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable".into())
}

async fn admin() -> PgConnection {
    let url = admin_url();
    PgConnection::connect(&url).await.unwrap_or_else(|e| {
        panic!(
            "PostgreSQL is required for this test and is unreachable at {url} ({e}); start it \
             or set GH_TEST_POSTGRES_URL"
        )
    })
}

/// A new, empty database (not migrated: the instances migrate it as they start). Returns its
/// name, the owner's URL (migrations) and the application role's URL.
async fn empty_database() -> (String, String, String) {
    let mut admin = admin().await;
    #[allow(clippy::disallowed_methods)] // a database name, not domain time
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let name = format!(
        "gh_test_{secs}_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    );
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
        .execute(&mut admin)
        .await
        .unwrap();
    // The application role is the cluster's; a migration creates it NOLOGIN when absent. Test
    // clusters let it log in (other tests may race on the catalog row: retried).
    let mut can_login = false;
    for _ in 0..40 {
        let made = sqlx::query(
            "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'gatehouse_app') \
             THEN CREATE ROLE gatehouse_app LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE; \
             END IF; END $$",
        )
        .execute(&mut admin)
        .await;
        if made.is_ok()
            && sqlx::query("ALTER ROLE gatehouse_app LOGIN")
                .execute(&mut admin)
                .await
                .is_ok()
        {
            can_login = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(can_login, "could not let gatehouse_app log in");
    let base = sqlx::postgres::PgConnectOptions::from_str(&admin_url()).unwrap();
    let owner = base.clone().database(&name).to_url_lossy().to_string();
    let app = base
        .username("gatehouse_app")
        .database(&name)
        .to_url_lossy()
        .to_string();
    (name, owner, app)
}

async fn drop_database(name: &str) {
    let mut admin = admin().await;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
    )))
    .execute(&mut admin)
    .await
    .unwrap();
}

/// One `gatehouse serve` process.
struct Instance {
    child: Child,
    base: String,
    metrics: String,
}

/// Started processes, killed when dropped (also when a test fails half-way).
#[derive(Default)]
struct Instances {
    all: Vec<Instance>,
    dirs: Vec<std::path::PathBuf>,
}

impl Drop for Instances {
    fn drop(&mut self) {
        for i in &mut self.all {
            let _ = i.child.kill();
            let _ = i.child.wait();
        }
        for d in &self.dirs {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

fn temp_dir() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("gatehouse-instances-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Spawns `gatehouse serve` in `dir` with `env` (and an ephemeral port, JSON logs, a metrics
/// listener); returns it and its log lines.
#[allow(clippy::zombie_processes)] // `Instances` kills and waits for it
fn spawn(dir: &std::path::Path, env: &[(&str, &str)]) -> (Child, Receiver<String>) {
    let mut cmd = Command::new(BIN);
    cmd.arg("serve")
        .current_dir(dir)
        .env_clear()
        .env("GATEHOUSE_LISTEN", "127.0.0.1:0")
        .env("GATEHOUSE_METRICS__LISTEN", "127.0.0.1:0")
        .env("GATEHOUSE_RATE_LIMITS__ENABLED", "false")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

/// Waits (at most 60 s) for the process's listening lines: its address and its metrics address.
/// A process that exits first fails the test with what it logged.
fn wait_listening(rx: &Receiver<String>) -> (String, String) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let (mut base, mut metrics) = (None, None);
    let mut seen = Vec::new();
    while base.is_none() || metrics.is_none() {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(line) = rx.recv_timeout(left) else {
            panic!("an instance did not start; it logged:\n{}", seen.join("\n"));
        };
        let parsed: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
        let message = parsed["message"].as_str().unwrap_or("");
        let address = parsed["address"].as_str().unwrap_or("");
        if message.starts_with("listening on") {
            base = Some(format!("http://{address}"));
        } else if message.starts_with("metrics listening") {
            // Logged as `Some(127.0.0.1:port)`.
            let a = address.trim_start_matches("Some(").trim_end_matches(')');
            metrics = Some(format!("http://{a}"));
        }
        seen.push(line);
    }
    (base.unwrap(), metrics.unwrap())
}

/// Starts `n` processes at the same moment and waits for each to listen.
fn start_together(n: usize, env: &[(&str, &str)], same_dir: bool, out: &mut Instances) {
    let shared = temp_dir();
    out.dirs.push(shared.clone());
    let mut logs = Vec::new();
    for _ in 0..n {
        let dir = if same_dir {
            shared.clone()
        } else {
            let d = temp_dir();
            out.dirs.push(d.clone());
            d
        };
        let (child, rx) = spawn(&dir, env);
        // Handed to `out` at once, so a failure below kills every one of them.
        out.all.push(Instance {
            child,
            base: String::new(),
            metrics: String::new(),
        });
        logs.push(rx);
    }
    for (i, rx) in logs.into_iter().enumerate() {
        let (base, metrics) = wait_listening(&rx);
        out.all[i].base = base;
        out.all[i].metrics = metrics;
        // The log keeps flowing; nobody reads it now.
        std::thread::spawn(move || while rx.recv().is_ok() {});
    }
}

fn pg_env<'a>(owner: &'a str, app: &'a str) -> Vec<(&'static str, &'a str)> {
    vec![
        ("GATEHOUSE_MASTER_KEY", MASTER_KEY),
        ("GATEHOUSE_DATABASE_URL", app),
        ("GATEHOUSE_DATABASE_MIGRATION_URL", owner),
    ]
}

async fn ready(client: &reqwest::Client, base: &str) -> Value {
    let res = client
        .get(format!("{base}/health/ready"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{base} is not ready");
    res.json().await.unwrap()
}

/// Signs up on the first instance and shows every instance agrees on the keys: the token it
/// signed verifies on every other, and a value sealed through it opens through every other.
async fn show_they_agree(client: &reqwest::Client, all: &[Instance], email: &str) {
    let first = &all[0].base;
    let res = client
        .post(format!("{first}/v1/auth/signup"))
        .json(&json!({"email": email, "password": PASSWORD, "name": "Ada",
            "organization_name": "Engines"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    let login: Value = client
        .post(format!("{first}/v1/auth/login"))
        .json(&json!({"email": email, "password": PASSWORD, "device_name": "laptop"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = login["access_token"].as_str().unwrap().to_owned();
    let org = login["organization_id"].as_str().unwrap().to_owned();
    // An API key made through the first instance, and a value sealed under the organisation's
    // data key through it (transit: "aGVsbG8=" is "hello").
    let made: Value = client
        .post(format!("{first}/v1/api-keys"))
        .bearer_auth(&token)
        .header("x-organization-id", &org)
        .json(&json!({"name": "app", "permissions": ["transit.encrypt", "transit.decrypt"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = made["key"].as_str().unwrap().to_owned();
    let sealed: Value = client
        .post(format!("{first}/v1/transit/encrypt"))
        .bearer_auth(&key)
        .header("x-organization-id", &org)
        .json(&json!({"plaintext": "aGVsbG8=", "context": "users/1/email"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ciphertext = sealed["ciphertext"].as_str().unwrap();
    for other in &all[1..] {
        let base = &other.base;
        let res = client
            .get(format!("{base}/v1/auth/verify"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(
            res.status(),
            200,
            "{base} refused a token signed by {first}"
        );
        let res = client
            .post(format!("{base}/v1/transit/decrypt"))
            .bearer_auth(&key)
            .header("x-organization-id", &org)
            .json(&json!({"ciphertext": ciphertext, "context": "users/1/email"}))
            .send()
            .await
            .unwrap();
        let status = res.status();
        let body: Value = res.json().await.unwrap();
        assert_eq!(
            status, 200,
            "{base} could not open what {first} sealed: {body}"
        );
        assert_eq!(body["plaintext"], "aGVsbG8=");
    }
}

#[tokio::test]
async fn three_instances_started_at_once_on_a_new_postgres_database_become_ready_and_agree() {
    let client = reqwest::Client::new();
    // Several rounds on fresh databases make the start-up race likely; each instance also
    // migrates at start (`database_migration_url`), so the migrations race too.
    for round in 0..5 {
        let (name, owner, app) = empty_database().await;
        {
            let mut instances = Instances::default();
            start_together(3, &pg_env(&owner, &app), false, &mut instances);
            for i in &instances.all {
                assert_eq!(ready(&client, &i.base).await["status"], "ready");
            }
            show_they_agree(&client, &instances.all, &format!("r{round}@example.com")).await;
        }
        // One of each key exists: no instance stored a key of its own beside the winner's.
        let mut db = PgConnection::connect(&owner).await.unwrap();
        for (table, expected) in [
            ("kek_versions", 1),
            ("platform_keys", 1),
            ("link_keys", 1),
            ("signing_keys", 2), // one for checkpoints, one for tokens
        ] {
            let n: i64 =
                sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
                    .fetch_one(&mut db)
                    .await
                    .unwrap();
            assert_eq!(n, expected, "round {round}: rows in {table}");
        }
        db.close().await.unwrap();
        drop_database(&name).await;
    }
}

#[tokio::test]
async fn three_instances_started_at_once_on_a_new_sqlite_file_become_ready_and_agree() {
    let client = reqwest::Client::new();
    for round in 0..3 {
        let mut instances = Instances::default();
        // One data directory: one SQLite file and one generated development key, both made by
        // whichever process gets there first.
        start_together(3, &[], true, &mut instances);
        for i in &instances.all {
            assert_eq!(ready(&client, &i.base).await["status"], "ready");
        }
        show_they_agree(&client, &instances.all, &format!("s{round}@example.com")).await;
    }
}

/// Each instance's view of one job: (held, holder).
async fn views(
    client: &reqwest::Client,
    all: &[&Instance],
    job: &str,
) -> Vec<(bool, Option<String>)> {
    let mut out = Vec::new();
    for i in all {
        let r = ready(client, &i.base).await;
        let j = r["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|j| j["name"] == job)
            .unwrap_or_else(|| panic!("no {job} in {r}"))
            .clone();
        out.push((
            j["held"].as_bool().unwrap(),
            j["holder"].as_str().map(str::to_owned),
        ));
    }
    out
}

/// The one instance holding `job` once every instance agrees on it (index into `all` and its
/// name), or `None`.
async fn agreed_holder(
    client: &reqwest::Client,
    all: &[&Instance],
    job: &str,
) -> Option<(usize, String)> {
    let v = views(client, all, job).await;
    let holders: Vec<usize> = (0..v.len()).filter(|&i| v[i].0).collect();
    let [h] = holders[..] else {
        return None;
    };
    let name = v[h].1.clone()?;
    v.iter()
        .all(|(_, holder)| holder.as_deref() == Some(name.as_str()))
        .then_some((h, name))
}

/// `gatehouse_job_runs_total{job}` summed over outcomes.
async fn runs(client: &reqwest::Client, i: &Instance, job: &str) -> u64 {
    let text = client
        .get(format!("{}/metrics", i.metrics))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let prefix = format!("gatehouse_job_runs_total{{job=\"{job}\",");
    text.lines()
        .filter(|l| l.starts_with(&prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[tokio::test]
async fn each_periodic_job_runs_on_one_of_three_instances_and_moves_when_its_holder_is_killed() {
    let client = reqwest::Client::new();
    let (name, owner, app) = empty_database().await;
    let mut env = pg_env(&owner, &app);
    // Every job ticks every second under a lease of two seconds: a killed holder is replaced
    // within three seconds (lease plus one interval; see gatehouse_core::jobs).
    env.extend([
        ("GATEHOUSE_KEYRING__REENCRYPT_INTERVAL_SECS", "1"),
        ("GATEHOUSE_AUDIT__CHECKPOINT_INTERVAL_SECS", "1"),
        ("GATEHOUSE_LIFECYCLE__PURGE_INTERVAL_SECS", "1"),
        ("GATEHOUSE_OAUTH__CONNECTOR_POLL_INTERVAL_MS", "1000"),
    ]);
    let bound = Duration::from_secs(3);
    let mut instances = Instances::default();
    start_together(3, &env, false, &mut instances);
    let all: Vec<&Instance> = instances.all.iter().collect();

    // Every instance comes to name the same single holder for each job (within 10 s).
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut holders = Vec::new();
    for job in JOBS {
        loop {
            if let Some(h) = agreed_holder(&client, &all, job).await {
                holders.push(h);
                break;
            }
            assert!(
                Instant::now() < deadline,
                "no single holder of {job}: {:?}",
                views(&client, &all, job).await
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    // Over three intervals the holder runs each job about once a second and nobody else runs it
    // at all: each batch ran once, not once per instance.
    let before: Vec<Vec<u64>> = all_runs(&client, &all).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after: Vec<Vec<u64>> = all_runs(&client, &all).await;
    for (j, job) in JOBS.iter().enumerate() {
        let (h, _) = &holders[j];
        for i in 0..all.len() {
            if i == *h {
                let ran = after[i][j] - before[i][j];
                assert!(
                    (1..=4).contains(&ran),
                    "{job}: the holder ran {ran} batches in 3 s"
                );
            } else {
                assert_eq!(
                    after[i][j], 0,
                    "{job}: instance {i}, not the holder, ran batches"
                );
            }
        }
        let metrics = client
            .get(format!("{}/metrics", all[*h].metrics))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            metrics.contains(&format!("gatehouse_job_lease_held{{job=\"{job}\"}} 1")),
            "{metrics}"
        );
        assert!(metrics.contains(&format!(
            "gatehouse_job_last_run_timestamp_seconds{{job=\"{job}\"}}"
        )));
    }

    // Kill the holder of the checkpoint job without warning: its leases are not released.
    let (victim, victim_name) = holders[1].clone();
    instances.all[victim].child.kill().unwrap();
    instances.all[victim].child.wait().unwrap();
    let killed_at = Instant::now();
    let survivors: Vec<&Instance> = instances
        .all
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != victim)
        .map(|(_, i)| i)
        .collect();
    // Every job the victim held is taken over by one survivor within the bound (plus a little
    // for the polling and a loaded machine), and both survivors agree on who.
    for (j, job) in JOBS.iter().enumerate() {
        if holders[j].1 != victim_name {
            continue;
        }
        let taken = loop {
            if let Some((_, name)) = agreed_holder(&client, &survivors, job).await {
                assert_ne!(name, victim_name);
                break killed_at.elapsed();
            }
            assert!(
                killed_at.elapsed() < bound + Duration::from_millis(1500),
                "{job} was not taken over within {bound:?}: {:?}",
                views(&client, &survivors, job).await
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        println!("{job} taken over {taken:?} after its holder was killed (bound {bound:?})");
    }
    drop(instances);
    drop_database(&name).await;
}

/// Every instance's runs of every job (`[instance][job]`, jobs in `JOBS` order).
async fn all_runs(client: &reqwest::Client, all: &[&Instance]) -> Vec<Vec<u64>> {
    let mut out = Vec::new();
    for i in all {
        let mut per_job = Vec::new();
        for job in JOBS {
            per_job.push(runs(client, i, job).await);
        }
        out.push(per_job);
    }
    out
}
