//! The real binary as an operator runs it: a fresh directory with no configuration, signals,
//! `config check`, and the JSON log lines.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::temp_dir;

mod erase;
mod pkcs11;
mod purge;
mod unseal;
mod webhooks;

const BIN: &str = env!("CARGO_BIN_EXE_gatehouse");

pub(crate) struct Server {
    child: Child,
    lines: Receiver<String>,
    seen: Vec<String>,
    pub(crate) addr: std::net::SocketAddr,
}

impl Drop for Server {
    // A test that fails before stopping its server must not leave it running (it would hold
    // whatever the test process held, a build lock among them).
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `gatehouse serve` in `dir` with nothing configured but an ephemeral port.
fn start(dir: &std::path::Path) -> Server {
    start_with(dir, &[])
}

/// Like [`start`], with these environment variables set too.
pub(crate) fn start_with(dir: &std::path::Path, env: &[(&str, &str)]) -> Server {
    let mut child = Command::new(BIN)
        .arg("serve")
        .current_dir(dir)
        .env_clear()
        .env("GATEHOUSE_LISTEN", "127.0.0.1:0")
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    let addr = loop {
        let Ok(line) = rx.recv_timeout(Duration::from_secs(30)) else {
            // Not yet a `Server`, whose drop would stop it: stop it here.
            let _ = child.kill();
            let _ = child.wait();
            panic!("no listening line; saw {seen:#?}");
        };
        let json: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|_| panic!("log line is not JSON: {line}"));
        seen.push(line);
        if json["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("listening on"))
        {
            break json["address"].as_str().unwrap().parse().unwrap();
        }
    };
    Server {
        child,
        lines: rx,
        seen,
        addr,
    }
}

impl Server {
    pub(crate) fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap()
            .success();
        assert!(ok);
    }

    /// Waits for exit and returns (exit code, every log line).
    pub(crate) fn wait(mut self) -> (Option<i32>, Vec<String>) {
        for _ in 0..200 {
            if let Some(status) = self.child.try_wait().unwrap() {
                self.seen.extend(self.lines.try_iter());
                return (status.code(), std::mem::take(&mut self.seen));
            }
            std::thread::park_timeout(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        panic!("the server did not exit; log: {:#?}", self.seen);
    }
}

#[tokio::test]
async fn a_fresh_directory_serves_ready_with_no_configuration_and_sigterm_exits_zero() {
    let dir = temp_dir();
    let server = start(&dir);
    let res = reqwest::get(format!("http://{}/health/ready", server.addr))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);

    use std::os::unix::fs::PermissionsExt;
    let data = dir.join("gatehouse-data");
    let key_mode = std::fs::metadata(data.join("master.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(key_mode & 0o777, 0o600);
    assert!(data.join("gatehouse.db").exists());
    assert!(
        data.join("gatehouse.db-wal").exists(),
        "SQLite runs in WAL mode"
    );
    assert!(
        server
            .seen
            .iter()
            .any(|l| l.contains("WARN") && l.contains("Production must supply its own master key")),
        "loud development-key warning: {:#?}",
        server.seen
    );

    server.signal("TERM");
    let (code, _) = server.wait();
    assert_eq!(code, Some(0));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn sigint_exits_zero() {
    let dir = temp_dir();
    let server = start(&dir);
    server.signal("INT");
    let (code, _) = server.wait();
    assert_eq!(code, Some(0));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn sigterm_drains_an_in_flight_request() {
    let dir = temp_dir();
    let server = start(&dir);
    let body = crate::support::signup_body("drain@example.com").to_string();
    let (first, rest) = body.split_at(10);
    let mut stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let head = format!(
        "POST /v1/auth/signup HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{first}",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.signal("TERM");
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The request started before the signal: it must still be answered.
    stream.write_all(rest.as_bytes()).await.unwrap();
    let mut reply = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut reply))
        .await
        .unwrap()
        .unwrap();
    let reply = String::from_utf8_lossy(&reply);
    assert!(reply.starts_with("HTTP/1.1 202"), "{reply}");
    // New connections are no longer accepted once draining ends.
    let (code, lines) = server.wait();
    assert_eq!(code, Some(0));
    assert!(lines.iter().any(|l| l.contains("draining")));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn every_log_line_is_json_and_request_lines_carry_the_request_id() {
    let dir = temp_dir();
    let server = start(&dir);
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let client = reqwest::Client::new();
    let res = client
        .post(format!("http://{}/v1/auth/signup", server.addr))
        .header("traceparent", format!("00-{trace_id}-00f067aa0ba902b7-01"))
        .json(&crate::support::signup_body("logs@example.com"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    // The request id is ours, whatever the caller's trace (issue 18): the trace is kept beside it.
    let request_id = res.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(request_id.len(), 32);
    assert_ne!(request_id, trace_id);
    // An invalid traceparent is ignored: a fresh id is made as ever.
    let res = client
        .get(format!("http://{}/health/live", server.addr))
        .header("traceparent", "00-zzzz-00f067aa0ba902b7-01")
        .send()
        .await
        .unwrap();
    let fresh = res.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(fresh.len(), 32);
    assert_ne!(fresh, trace_id);
    server.signal("TERM");
    let (_, lines) = server.wait();
    let parsed: Vec<serde_json::Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("not JSON: {l}")))
        .collect();
    let in_request: Vec<_> = parsed
        .iter()
        .filter(|j| j["span"]["request_id"] == request_id || j["request_id"] == request_id)
        .collect();
    assert!(
        in_request
            .iter()
            .any(|j| j["message"] == "signup created a user and an organisation")
    );
    let done = in_request
        .iter()
        .find(|j| j["message"] == "request completed")
        .unwrap();
    assert_eq!(done["status"], 202);
    assert_eq!(done["route"], "/v1/auth/signup");
    assert_eq!(done["request_id"], request_id);
    assert_eq!(done["trace_id"], trace_id);
    assert!(
        in_request
            .iter()
            .filter(|j| j["span"].is_object())
            .all(|j| j["span"]["trace_id"] == trace_id),
        "{in_request:#?}"
    );
    assert!(done["latency_us"].as_u64().is_some());
    // The password never reaches a log line.
    assert!(
        lines
            .iter()
            .all(|l| !l.contains("sufficiently long passphrase"))
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn config_check_prints_redacted_configuration_or_refuses_with_a_sentence() {
    let dir = temp_dir();
    let out = Command::new(BIN)
        .args(["config", "check"])
        .current_dir(&dir)
        .env_clear()
        .env(
            "GATEHOUSE_MASTER_KEY",
            "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWY=",
        )
        .env(
            "GATEHOUSE_DATABASE_URL",
            "postgres://app:hunter2@db.internal/gh",
        )
        .output()
        .unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        stdout.contains("postgres://app:[redacted]@db.internal/gh"),
        "{stdout}"
    );
    assert!(
        !stdout.contains("hunter2") && !stdout.contains("QUJDREVG"),
        "{stdout}"
    );
    let parsed: toml::Table = stdout.parse().unwrap();
    assert_eq!(parsed["listen"].as_str(), Some("127.0.0.1:8080"));

    let out = Command::new(BIN)
        .args(["config", "check"])
        .current_dir(&dir)
        .env_clear()
        .env("GATEHOUSE_CORS_ALLOWED_ORIGINS", "[\"*\"]")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("cors_allowed_origins") && stderr.contains("wildcard"),
        "{stderr}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

pub(crate) fn run_cli(
    dir: &std::path::Path,
    args: &[&str],
    env: &[(&str, &str)],
    stdin: &str,
) -> (bool, String, String) {
    use std::io::Write as _;
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .current_dir(dir)
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[tokio::test]
async fn keys_commands_and_a_wrong_master_key_at_start_up() {
    let dir = temp_dir();
    // A first start records the development key as master version 1; signup makes an org.
    let server = start(&dir);
    let res = reqwest::Client::new()
        .post(format!("http://{}/v1/auth/signup", server.addr))
        .json(&crate::support::signup_body("keys@example.com"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    let res = reqwest::Client::new()
        .post(format!("http://{}/v1/auth/login", server.addr))
        .json(
            &serde_json::json!({"email": "keys@example.com", "password": crate::support::PASSWORD}),
        )
        .send()
        .await
        .unwrap();
    let org = res.json::<serde_json::Value>().await.unwrap()["organization_id"]
        .as_str()
        .unwrap()
        .to_owned();
    server.signal("TERM");
    server.wait();

    let (ok, out, err) = run_cli(&dir, &["keys", "rotate-org", "--org", &org], &[], "");
    assert!(ok, "{err}");
    assert!(out.contains("re-encryption finished"), "{out}");

    let key_before = std::fs::read(dir.join("gatehouse-data/master.key")).unwrap();
    let (ok, out, err) = run_cli(&dir, &["keys", "rotate-master"], &[], "");
    assert!(ok, "{err}");
    assert!(out.contains("rotated to version 2"), "{out}");
    assert_ne!(
        std::fs::read(dir.join("gatehouse-data/master.key")).unwrap(),
        key_before
    );

    let (ok, out, _) = run_cli(&dir, &["keys", "status"], &[], "");
    assert!(ok);
    assert!(out.contains("master key: version 2 in use"), "{out}");
    assert!(out.contains("master version 1: retired"), "{out}");
    assert!(out.contains(&format!("org {org}")), "{out}");
    assert!(out.contains("wrapped under master version 2"), "{out}");

    let (ok, _, err) = run_cli(&dir, &["keys", "shred", "--org", &org], &[], "");
    assert!(!ok && err.contains("--yes"), "{err}");
    let (ok, _, err) = run_cli(&dir, &["keys", "shred", "--org", &org, "--yes"], &[], "");
    assert!(ok, "{err}");
    let (_, out, _) = run_cli(&dir, &["keys", "status"], &[], "");
    assert!(out.contains("SHREDDED"), "{out}");

    // Another master key on this data: refused at start-up with a sentence.
    let other = "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWY=";
    let (ok, _, err) = run_cli(
        &dir,
        &["serve"],
        &[
            ("GATEHOUSE_MASTER_KEY", other),
            ("GATEHOUSE_LISTEN", "127.0.0.1:0"),
        ],
        "",
    );
    assert!(!ok);
    assert!(
        err.contains("does not match any master-key version"),
        "{err}"
    );
    assert!(!err.contains(other));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn local_vault_commands() {
    let dir = temp_dir();
    let file = dir.join("my.vault");
    let f = file.to_str().unwrap();
    let (ok, _, err) = run_cli(
        &dir,
        &["local-vault", "init", "--file", f],
        &[],
        "master pass 1\n",
    );
    assert!(ok, "{err}");
    let (ok, _, err) = run_cli(
        &dir,
        &["local-vault", "add", "--file", f, "db"],
        &[],
        "master pass 1\npostgres-secret\n",
    );
    assert!(ok, "{err}");
    assert!(
        !std::fs::read(&file)
            .unwrap()
            .windows(15)
            .any(|w| w == b"postgres-secret")
    );
    let (ok, out, _) = run_cli(
        &dir,
        &["local-vault", "get", "--file", f, "db"],
        &[],
        "master pass 1\n",
    );
    assert!(ok);
    assert_eq!(out, "postgres-secret\n");
    let (ok, out, _) = run_cli(
        &dir,
        &["local-vault", "list", "--file", f],
        &[],
        "master pass 1\n",
    );
    assert!(ok && out == "db\n", "{out}");
    let before = std::fs::read(&file).unwrap();
    let (ok, _, err) = run_cli(
        &dir,
        &["local-vault", "get", "--file", f, "db"],
        &[],
        "wrong pass\n",
    );
    assert!(!ok && err.contains("master password is wrong"), "{err}");
    assert_eq!(std::fs::read(&file).unwrap(), before);
    let (ok, _, err) = run_cli(
        &dir,
        &["local-vault", "change-password", "--file", f],
        &[],
        "master pass 1\nmaster pass 2\n",
    );
    assert!(ok, "{err}");
    let (ok, _, _) = run_cli(
        &dir,
        &["local-vault", "remove", "--file", f, "db"],
        &[],
        "master pass 2\n",
    );
    assert!(ok);
    let (ok, out, _) = run_cli(
        &dir,
        &["local-vault", "list", "--file", f],
        &[],
        "master pass 2\n",
    );
    assert!(ok && out.is_empty());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Re-encryption killed with SIGKILL part-way, then finished by a restarted server.
#[tokio::test]
async fn reencryption_killed_mid_job_is_completed_after_restart() {
    use gatehouse_core::keyring::{FieldRef, SealedKind};
    use gatehouse_core::{OrgId, TenantScope};
    use std::io::BufRead as _;

    let dir = temp_dir();
    // Seal 300 values in one organisation, in-process, over the same data directory the
    // binary will use (development key in ./gatehouse-data).
    let mut raw = crate::support::raw_config(&dir);
    raw.data_dir = dir.join("gatehouse-data");
    let config = gatehouse::Config::from_raw(raw, None).unwrap();
    let app = gatehouse::App::build(&config).await.unwrap();
    let kernel = std::sync::Arc::clone(app.kernel());
    let created = kernel
        .signup()
        .register(
            gatehouse_core::signup::SignupInput {
                email: "kill@example.com".into(),
                password: gatehouse_crypto::SecretString::new("a long enough password".into()),
                name: "K".into(),
                organization_name: "K".into(),
            },
            &gatehouse_core::RequestContext::default(),
        )
        .await
        .unwrap();
    let org: OrgId = created.organization_id().unwrap();
    let ids: Vec<String> = (0..300).map(|i| format!("rec-{i}")).collect();
    let mut tx = kernel
        .store()
        .begin_scoped(&TenantScope::for_tests(org))
        .await
        .unwrap();
    for id in &ids {
        let at = FieldRef {
            kind: SealedKind::TransitField,
            record_id: id,
            field: "v",
        };
        kernel
            .keyring()
            .seal(tx.as_mut(), at, id.as_bytes())
            .await
            .unwrap();
    }
    tx.commit(gatehouse_core::audit::Audited::for_tests())
        .await
        .unwrap();
    drop(app);
    drop(kernel);

    // Rotate and re-encrypt one value per transaction; kill the process after a few batches.
    let mut child = Command::new(BIN)
        .args([
            "keys",
            "rotate-org",
            "--org",
            &org.to_string(),
            "--batch",
            "1",
        ])
        .current_dir(&dir)
        .env_clear()
        .env("GATEHOUSE_LOG_LEVEL", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut progress = 0;
    while let Some(Ok(line)) = lines.next() {
        if line.contains("to go") {
            progress += 1;
            if progress == 5 {
                break;
            }
        }
    }
    assert_eq!(progress, 5, "the job should report progress per batch");
    Command::new("kill")
        .args(["-KILL", &child.id().to_string()])
        .status()
        .unwrap();
    child.wait().unwrap();

    let (_, status, _) = run_cli(
        &dir,
        &["keys", "status"],
        &[("GATEHOUSE_LOG_LEVEL", "warn")],
        "",
    );
    let pending: u64 = status
        .lines()
        .find_map(|l| l.strip_suffix(" value(s) awaiting re-encryption"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert!(pending > 0 && pending < 301, "killed part-way: {status}");

    // A restarted server's background job finishes the work.
    let mut server = Command::new(BIN)
        .arg("serve")
        .current_dir(&dir)
        .env_clear()
        .env("GATEHOUSE_LISTEN", "127.0.0.1:0")
        .env("GATEHOUSE_KEYRING__REENCRYPT_INTERVAL_SECS", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut finished = false;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let (_, status, _) = run_cli(
            &dir,
            &["keys", "status"],
            &[("GATEHOUSE_LOG_LEVEL", "warn")],
            "",
        );
        if status.contains(" 0 value(s) awaiting re-encryption")
            && status.contains("data key version 1: retired")
        {
            finished = true;
            break;
        }
    }
    Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .unwrap();
    server.wait().unwrap();
    assert!(
        finished,
        "the restarted server did not finish re-encryption"
    );

    // Every value still opens, now on version 2.
    let app = gatehouse::App::build(&config).await.unwrap();
    let kernel = app.kernel();
    let mut tx = kernel
        .store()
        .begin_scoped(&TenantScope::for_tests(org))
        .await
        .unwrap();
    for id in &ids {
        let at = FieldRef {
            kind: SealedKind::TransitField,
            record_id: id,
            field: "v",
        };
        assert_eq!(
            kernel
                .keyring()
                .open(tx.as_mut(), at)
                .await
                .unwrap()
                .unwrap()
                .expose(),
            id.as_bytes()
        );
    }
    // The 300 values and the founder's subject key (sealed at signup for the audit event).
    assert_eq!(tx.sealed_counts().await.unwrap(), vec![(2, 301)]);
    drop(tx);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn audit_verify_passes_then_names_a_tampered_event() {
    let dir = temp_dir();
    let server = start(&dir);
    let client = reqwest::Client::new();
    for i in 0..3 {
        let res = client
            .post(format!("http://{}/v1/auth/signup", server.addr))
            .json(&crate::support::signup_body(&format!(
                "audit{i}@example.com"
            )))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 202);
    }
    server.signal("TERM");
    server.wait();

    let (ok, out, err) = run_cli(&dir, &["audit", "checkpoint"], &[], "");
    assert!(ok, "{err}");
    assert!(out.contains("signed 4 checkpoint(s)"), "{out}");
    let (ok, out, err) = run_cli(&dir, &["audit", "verify"], &[], "");
    assert!(ok, "{out}{err}");
    assert_eq!(out.matches("org ").count(), 3, "{out}");
    assert_eq!(out.matches("1 events, chain intact").count(), 3, "{out}");
    // The operators' trail: the master key, the checkpoint key, the platform data key, the link
    // key and the token key were registered.
    assert!(out.contains("operators: 5 events, chain intact"), "{out}");
    assert_eq!(
        out.matches("latest signed checkpoint at seq 1").count(),
        3,
        "{out}"
    );
    // An expectation recorded outside the database: met, and not met.
    let first_org = out
        .lines()
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .trim_end_matches(':')
        .to_owned();
    let (ok, _, err) = run_cli(
        &dir,
        &[
            "audit",
            "verify",
            "--expect-checkpoint",
            &format!("{first_org}=1"),
        ],
        &[],
        "",
    );
    assert!(ok, "{err}");
    let (ok, _, err) = run_cli(
        &dir,
        &[
            "audit",
            "verify",
            "--expect-checkpoint",
            &format!("{first_org}=5"),
        ],
        &[],
        "",
    );
    assert!(!ok && err.contains("checkpoints were removed"), "{err}");
    let ghost = "00000000-0000-7000-8000-000000000000=1";
    let (ok, _, err) = run_cli(
        &dir,
        &["audit", "verify", "--expect-checkpoint", ghost],
        &[],
        "",
    );
    assert!(!ok && err.contains("no such chain was verified"), "{err}");

    // Edit an event behind Gatehouse's back (the file's owner can drop the trigger).
    let db = dir.join("gatehouse-data/gatehouse.db");
    let url = format!("sqlite://{}", db.display());
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    sqlx::query("DROP TRIGGER audit_events_no_update")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("UPDATE audit_events SET actor_id = 'someone-else' WHERE rowid = (SELECT min(rowid) FROM audit_events)")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;

    let (ok, out, err) = run_cli(&dir, &["audit", "verify"], &[], "");
    assert!(!ok);
    assert!(
        out.contains("BROKEN") && err.contains("audit chain broken at seq 1"),
        "{out}{err}"
    );
    assert!(err.contains("modified"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn traced_requests_log_the_trace_id_the_caller_and_per_stage_timings() {
    let dir = temp_dir();
    let server = start(&dir);
    let client = reqwest::Client::new();
    let base = format!("http://{}", server.addr);
    let res = client
        .post(format!("{base}/v1/auth/signup"))
        .json(&crate::support::signup_body("stages@example.com"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    let login_trace = "0af7651916cd43dd8448eb211c80319c";
    let res = client
        .post(format!("{base}/v1/auth/login"))
        .header("traceparent", format!("00-{login_trace}-b7ad6b7169203331-01"))
        .json(&serde_json::json!({"email": "stages@example.com", "password": crate::support::PASSWORD, "device_name": "cli"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: serde_json::Value = res.json().await.unwrap();
    let me_trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let res = client
        .get(format!("{base}/v1/me"))
        .bearer_auth(body["access_token"].as_str().unwrap())
        .header("traceparent", format!("00-{me_trace}-00f067aa0ba902b7-01"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    server.signal("TERM");
    let (_, lines) = server.wait();
    let access = |trace: &str| -> serde_json::Value {
        lines
            .iter()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .find(|j| j["trace_id"] == trace && j["message"] == "request completed")
            .unwrap_or_else(|| panic!("no access line for {trace}: {lines:#?}"))
    };
    let login = access(login_trace);
    assert_eq!(login["parent_span_id"], "b7ad6b7169203331");
    // The client address (no trusted proxy: the TCP peer).
    assert_eq!(login["client_ip"], "127.0.0.1", "{login}");
    // Sign-in: the password check on a hashing worker, and the store transactions.
    assert!(login["hash_us"].as_u64().unwrap() > 0, "{login}");
    assert!(login["store_us"].as_u64().unwrap() > 0, "{login}");
    assert!(login["store_txs"].as_u64().unwrap() >= 1, "{login}");
    let me = access(me_trace);
    assert_eq!(me["route"], "/v1/me");
    assert_eq!(me["organization_id"], body["organization_id"]);
    assert!(
        me["user_id"].as_str().is_some_and(|u| u.len() == 36),
        "{me}"
    );
    assert!(me["token_us"].as_u64().unwrap() > 0, "{me}");
    assert!(me.get("hash_us").is_none(), "{me}");
    std::fs::remove_dir_all(&dir).unwrap();
}
