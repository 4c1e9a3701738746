//! Backups (D3) with the real binary: the restore drill (a deployment with every kind of row,
//! backed up while it serves requests, restored into an empty target on the same backend and,
//! in the PostgreSQL suite, on the other one in both directions; then every table equal to the
//! archive's, `audit verify` passing with the original checkpoint, sealed values opening and
//! tokens issued before the backup verifying), the archive opened by the `age` command-line
//! tool, and each bad input refused with nothing changed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use base64::Engine as _;
use gatehouse_core::backup::{
    ArchiveReader, BackupError, BackupStore, Manifest, RestoreSource, SnapshotInfo, SnapshotSink,
    Table, Value,
};
use reqwest::Method;
use serde_json::json;

use crate::product::declare_reports;
use crate::support::{Signed, TestApp, temp_dir};

const BIN: &str = env!("CARGO_BIN_EXE_gatehouse");

fn on_postgres() -> bool {
    std::env::var_os("GH_IT_POSTGRES").is_some()
}

/// A table's header and rows, as a backup carries them.
type Tables = BTreeMap<String, (Table, Vec<Vec<Value>>)>;

#[derive(Default)]
struct Collect {
    tables: Tables,
    current: Option<String>,
}

impl SnapshotSink for Collect {
    fn start(&mut self, _: &SnapshotInfo) -> Result<(), BackupError> {
        Ok(())
    }
    fn begin_table(&mut self, t: &Table) -> Result<(), BackupError> {
        self.current = Some(t.name.clone());
        self.tables.insert(t.name.clone(), (t.clone(), Vec::new()));
        Ok(())
    }
    fn row(&mut self, row: &[Value]) -> Result<(), BackupError> {
        let name = self.current.as_ref().unwrap();
        self.tables.get_mut(name).unwrap().1.push(row.to_vec());
        Ok(())
    }
    fn end_table(&mut self) -> Result<(), BackupError> {
        Ok(())
    }
}

/// Where a deployment keeps its rows.
#[derive(Clone)]
enum Db {
    Sqlite,
    /// (application URL, owner URL)
    Postgres(String, String),
}

struct Site {
    dir: PathBuf,
    db: Db,
}

impl Site {
    /// A deployment whose database (when `postgres`) is migrated and served as gatehouse_app.
    async fn new(postgres: bool) -> Self {
        let dir = temp_dir();
        let db = if postgres {
            let (app, owner) = crate::support::postgres_database(&dir).await;
            Db::Postgres(app, owner)
        } else {
            Db::Sqlite
        };
        Self { dir, db }
    }

    /// A restore target: on PostgreSQL a database with no schema at all.
    async fn new_empty(postgres: bool) -> Self {
        use sqlx::ConnectOptions as _;
        use sqlx::Connection as _;
        use std::str::FromStr as _;
        let dir = temp_dir();
        if !postgres {
            return Self {
                dir,
                db: Db::Sqlite,
            };
        }
        let admin_url = crate::support::postgres_admin_url();
        let mut admin = sqlx::PgConnection::connect(&admin_url).await.unwrap();
        let name = format!("gh_test_restore_{}", uuid::Uuid::new_v4().simple());
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .execute(&mut admin)
            .await
            .unwrap();
        // `TestApp::stop` drops it, as it does the databases it makes.
        std::fs::write(dir.join("postgres-database"), &name).unwrap();
        let base = sqlx::postgres::PgConnectOptions::from_str(&admin_url).unwrap();
        let owner = base.clone().database(&name).to_url_lossy().to_string();
        let app = base
            .username("gatehouse_app")
            .database(&name)
            .to_url_lossy()
            .to_string();
        Self {
            dir,
            db: Db::Postgres(app, owner),
        }
    }

    fn config(&self, recipients: &str) -> PathBuf {
        let mut text = format!(
            "data_dir = \"{}\"\nlog_format = \"json\"\n",
            self.dir.join("data").display()
        );
        if let Db::Postgres(app, owner) = &self.db {
            text.push_str(&format!(
                "database_url = \"{app}\"\ndatabase_migration_url = \"{owner}\"\n"
            ));
        }
        text.push_str(&format!("[backup]\nrecipients = [{recipients}]\n"));
        let path = self.dir.join("gatehouse.toml");
        std::fs::write(&path, text).unwrap();
        path
    }

    fn gatehouse(&self, recipient: &str, args: &[&str]) -> Output {
        let config = self.config(&format!("\"{recipient}\""));
        Command::new(BIN)
            .arg("--config")
            .arg(&config)
            .args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .output()
            .unwrap()
    }

    async fn store(&self) -> Box<dyn BackupStore> {
        match &self.db {
            Db::Sqlite => {
                let url = format!("sqlite://{}", self.dir.join("data/gatehouse.db").display());
                Box::new(
                    gatehouse_store_sqlite::SqliteStore::connect(&url, 1)
                        .await
                        .unwrap(),
                )
            }
            Db::Postgres(_, owner) => Box::new(
                gatehouse_store_postgres::PostgresOwner::connect(owner)
                    .await
                    .unwrap(),
            ),
        }
    }

    async fn tables(&self) -> Tables {
        let mut sink = Collect::default();
        self.store()
            .await
            .snapshot(&mut sink, &|_, _| {})
            .await
            .unwrap();
        sink.tables
    }

    async fn serve(&self) -> TestApp {
        let db = self.db.clone();
        TestApp::spawn_in(self.dir.clone(), move |raw| {
            declare_reports(raw);
            match db {
                Db::Postgres(app, owner) => {
                    raw.database_url = Some(app);
                    raw.database_migration_url = Some(owner);
                }
                Db::Sqlite => {
                    raw.database_url = None;
                    raw.database_migration_url = None;
                }
            }
        })
        .await
    }

    async fn remove(self) {
        crate::support::drop_postgres_database(&self.dir).await;
        let _ = std::fs::remove_dir_all(&self.dir);
    }

    /// A new site on `postgres` or SQLite, holding the development master key of `from`.
    async fn empty_like(from: &Path, postgres: bool) -> Self {
        let site = Self::new_empty(postgres).await;
        let data = site.dir.join("data");
        std::fs::create_dir_all(&data).unwrap();
        std::fs::copy(from.join("data/master.key"), data.join("master.key")).unwrap();
        site
    }
}

fn ok(out: &Output, what: &str) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{what} failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn refused(out: &Output, what: &str, sentence: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{what} was not refused");
    assert!(stderr.contains(sentence), "{what}: {stderr}");
}

/// An age identity and its recipient, made by `age-keygen` (Debian's age).
fn age_keygen(dir: &Path, name: &str) -> (PathBuf, String) {
    let path = dir.join(name);
    let out = Command::new("age-keygen")
        .arg("-o")
        .arg(&path)
        .output()
        .expect("age-keygen (Debian package age) must be installed; scripts/test installs it");
    assert!(out.status.success());
    let text = std::fs::read_to_string(&path).unwrap();
    let recipient = text
        .lines()
        .find_map(|l| l.strip_prefix("# public key: "))
        .unwrap()
        .to_owned();
    (path, recipient)
}

/// The archive decrypted by the `age` tool, read back with every digest checked.
fn archive_tables(file: &Path, identity: &Path) -> (Manifest, Tables) {
    let out = Command::new("age")
        .arg("-d")
        .arg("-i")
        .arg(identity)
        .arg(file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "age -d: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.starts_with(b"{\"gatehouse_backup\":"));
    let mut reader = ArchiveReader::open(&out.stdout[..]).unwrap();
    let mut tables = Tables::new();
    while let Some(t) = reader.next_table().unwrap() {
        let mut rows = Vec::new();
        loop {
            let batch = reader.next_rows(1000).unwrap();
            if batch.is_empty() {
                break;
            }
            rows.extend(batch);
        }
        tables.insert(t.name.clone(), (t, rows));
    }
    (reader.manifest().unwrap().clone(), tables)
}

fn assert_same(expected: &Tables, got: &Tables, what: &str) {
    assert_eq!(
        expected.keys().collect::<Vec<_>>(),
        got.keys().collect::<Vec<_>>(),
        "{what}: table lists differ"
    );
    for (name, (table, rows)) in expected {
        let (t2, rows2) = &got[name];
        let mut a = table.columns.clone();
        let mut b = t2.columns.clone();
        a.sort_by(|x, y| x.name.cmp(&y.name));
        b.sort_by(|x, y| x.name.cmp(&y.name));
        assert_eq!(a, b, "{what}: columns of {name}");
        assert_eq!(rows.len(), rows2.len(), "{what}: row count of {name}");
        assert!(rows == rows2, "{what}: rows of {name} differ");
    }
}

/// What a test deployment holds, for the checks after a restore.
struct Populated {
    owner: Signed,
    record: String,
    transit_key: String,
    ciphertext: String,
}

/// Every kind of row: users, memberships, sessions, a second factor and recovery codes, an
/// invitation and its mail, an API key, a record, grants both ways, a secret, transit settings,
/// a custom role, audit events and signed checkpoints.
async fn populate(app: &TestApp) -> Populated {
    let owner = app.signup_login("owner@backup.example", "laptop").await;
    let other = app.signup_login("other@backup.example", "laptop").await;
    let admin = app.add_member(&owner, "ada@backup.example", "admin").await;
    crate::mfa::enrol(app, &admin).await;
    let res = app
        .org_call(
            Method::POST,
            "/v1/records",
            &owner,
            Some(
                json!({"type": "report", "external_id": "r1", "level": "organization",
                        "content": {"quarter": "Q3", "figure": 42}}),
            ),
        )
        .await;
    assert_eq!(res.status(), 201);
    let record = res.json::<serde_json::Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for (who, path, body) in [
        (
            &owner,
            "/v1/secrets",
            json!({"name": "db", "value": "hunter2"}),
        ),
        (
            &owner,
            "/v1/grants",
            json!({"organization": other.org, "access": "read"}),
        ),
        (
            &other,
            "/v1/grants",
            json!({"organization": owner.org, "access": "read"}),
        ),
        (
            &owner,
            "/v1/organization/roles",
            json!({"name": "auditor", "permissions": ["audit.read"]}),
        ),
        (
            &owner,
            "/v1/organization/invitations",
            json!({"email": "ivy@backup.example", "role": "member"}),
        ),
    ] {
        let res = app.org_call(Method::POST, path, who, Some(body)).await;
        assert_eq!(res.status(), 201, "{path}: {:?}", res.text().await);
    }
    let res = app
        .org_call(
            Method::POST,
            "/v1/api-keys",
            &owner,
            Some(json!({"name": "app", "permissions": ["transit.encrypt", "transit.decrypt"]})),
        )
        .await;
    assert_eq!(res.status(), 201);
    let transit_key = res.json::<serde_json::Value>().await.unwrap()["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let res = app
        .call(
            Method::POST,
            "/v1/transit/encrypt",
            &transit_key,
            Some(&owner.org),
            Some(
                json!({"plaintext": base64::engine::general_purpose::STANDARD.encode(b"kept"),
                        "context": "backup"}),
            ),
        )
        .await;
    assert_eq!(res.status(), 200, "{:?}", res.text().await);
    let ciphertext = res.json::<serde_json::Value>().await.unwrap()["ciphertext"]
        .as_str()
        .unwrap()
        .to_owned();
    let k = &app.kernel;
    gatehouse_core::audit::checkpoint_all(k.store(), k.keyring(), k.clock())
        .await
        .unwrap();
    Populated {
        owner,
        record,
        transit_key,
        ciphertext,
    }
}

/// After a restore: the pre-backup token verifies, the sealed record and the transit
/// ciphertext open, and the chains verify against the archive's newest checkpoint.
async fn check_restored(site: &Site, recipient: &str, p: &Populated, m: &Manifest) {
    let cp = m.newest_checkpoint.as_ref().expect("a signed checkpoint");
    let out = site.gatehouse(
        recipient,
        &[
            "audit",
            "verify",
            "--expect-checkpoint",
            &format!("{}={}", cp.chain, cp.seq),
        ],
    );
    let text = ok(&out, "audit verify");
    assert!(text.contains("chain intact"), "{text}");
    let app = site.serve().await;
    let res = app
        .call(Method::GET, "/v1/auth/verify", &p.owner.access, None, None)
        .await;
    assert_eq!(res.status(), 200, "a token issued before the backup");
    let res = app
        .org_call(
            Method::GET,
            &format!("/v1/records/{}", p.record),
            &p.owner,
            None,
        )
        .await;
    assert_eq!(res.status(), 200);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["content"]["figure"], 42, "{body}");
    let res = app
        .call(
            Method::POST,
            "/v1/transit/decrypt",
            &p.transit_key,
            Some(&p.owner.org),
            Some(json!({"ciphertext": p.ciphertext, "context": "backup"})),
        )
        .await;
    assert_eq!(res.status(), 200, "{:?}", res.text().await);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["plaintext"], "a2VwdA==");
    app.stop_keeping_data().await;
}

async fn restore_into(
    from: &Site,
    postgres: bool,
    archive: &Path,
    id: &Path,
    recipient: &str,
) -> Site {
    let target = Site::empty_like(&from.dir, postgres).await;
    let out = target.gatehouse(
        recipient,
        &[
            "backup",
            "restore",
            archive.to_str().unwrap(),
            "--identity",
            id.to_str().unwrap(),
        ],
    );
    ok(&out, "backup restore");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("backup: records: "), "progress: {stderr}");
    target
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_drill_every_row_back_on_the_same_and_the_other_backend() {
    let keys = temp_dir();
    let (id, recipient) = age_keygen(&keys, "backup.key");
    let source = Site::new(on_postgres()).await;
    let app = source.serve().await;
    let p = populate(&app).await;

    // Requests go on while the backup runs: token checks and new records.
    let served = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = {
        let (served, stop) = (Arc::clone(&served), Arc::clone(&stop));
        let client = reqwest::Client::new();
        let base = app.url("");
        let (token, org) = (p.owner.access.clone(), p.owner.org.clone());
        tokio::spawn(async move {
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let res = client
                    .post(format!("{base}/v1/records"))
                    .bearer_auth(&token)
                    .header("x-organization-id", &org)
                    .json(
                        &json!({"type": "report", "external_id": format!("during-{i}"),
                                  "level": "organization", "content": {"i": i}}),
                    )
                    .send()
                    .await
                    .unwrap();
                assert_eq!(res.status(), 201);
                served.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    let archive = keys.join("drill.age");
    // The command runs on a blocking thread so the load goes on beside it.
    let cmd = {
        let config = source.config(&format!("\"{recipient}\""));
        let archive = archive.clone();
        tokio::task::spawn_blocking(move || {
            Command::new(BIN)
                .arg("--config")
                .arg(&config)
                .args(["backup", "create", "--out"])
                .arg(&archive)
                .env_clear()
                .output()
                .unwrap()
        })
    };
    let before = served.load(Ordering::Relaxed);
    let out = cmd.await.unwrap();
    let during = served.load(Ordering::Relaxed) - before;
    stop.store(true, Ordering::Relaxed);
    load.await.unwrap();
    let text = ok(&out, "backup create");
    assert!(text.contains("backup written to"), "{text}");
    assert!(during > 0, "no request was served during the backup");
    app.stop_keeping_data().await;

    let (manifest, tables) = archive_tables(&archive, &id);
    for t in [
        "users",
        "sessions",
        "totp_factors",
        "recovery_codes",
        "api_keys",
        "records",
        "grants",
        "secrets",
        "secret_versions",
        "transit_settings",
        "audit_events",
        "audit_checkpoints",
        "operator_audit_events",
        "mail_outbox",
        "invitations",
        "memberships",
        "roles",
        "org_keys",
        "kek_versions",
        "signing_keys",
    ] {
        assert!(
            !tables
                .get(t)
                .unwrap_or_else(|| panic!("no table {t}"))
                .1
                .is_empty(),
            "the drill has no row in {t}"
        );
    }
    let out = source.gatehouse(
        &recipient,
        &[
            "backup",
            "verify",
            archive.to_str().unwrap(),
            "--identity",
            id.to_str().unwrap(),
        ],
    );
    assert!(ok(&out, "backup verify").contains("intact"));

    let same = restore_into(&source, on_postgres(), &archive, &id, &recipient).await;
    assert_same(&tables, &same.tables().await, "same backend");
    check_restored(&same, &recipient, &p, &manifest).await;

    if on_postgres() {
        // PostgreSQL to SQLite, then that SQLite deployment backed up and restored into a new
        // PostgreSQL database: both directions of the move.
        let lite = restore_into(&source, false, &archive, &id, &recipient).await;
        assert_same(&tables, &lite.tables().await, "postgres to sqlite");
        check_restored(&lite, &recipient, &p, &manifest).await;
        let second = keys.join("from-sqlite.age");
        let out = lite.gatehouse(
            &recipient,
            &["backup", "create", "--out", second.to_str().unwrap()],
        );
        ok(&out, "backup create (sqlite)");
        let (_, lite_tables) = archive_tables(&second, &id);
        let pg = restore_into(&lite, true, &second, &id, &recipient).await;
        assert_same(&lite_tables, &pg.tables().await, "sqlite to postgres");
        check_restored(&pg, &recipient, &p, &manifest).await;
        lite.remove().await;
        pg.remove().await;
    }
    same.remove().await;
    source.remove().await;
    let _ = std::fs::remove_dir_all(&keys);
}

#[tokio::test]
async fn changed_bytes_other_recipients_and_unfit_targets_are_refused_with_nothing_changed() {
    let keys = temp_dir();
    let (id, recipient) = age_keygen(&keys, "backup.key");
    let (stranger, _) = age_keygen(&keys, "stranger.key");
    let source = Site::new(false).await;
    let app = source.serve().await;
    app.signup_login("owner@backup.example", "laptop").await;
    app.stop_keeping_data().await;
    let archive = keys.join("a.age");
    ok(
        &source.gatehouse(
            &recipient,
            &["backup", "create", "--out", archive.to_str().unwrap()],
        ),
        "backup create",
    );
    refused(
        &source.gatehouse(
            &recipient,
            &["backup", "create", "--out", archive.to_str().unwrap()],
        ),
        "overwriting an archive",
        "exists",
    );
    let bytes = std::fs::read(&archive).unwrap();
    let target = Site::empty_like(&source.dir, false).await;
    let target_rows = |t: &Site| t.dir.join("data/gatehouse.db").exists();
    let arg = |p: &Path| p.to_str().unwrap().to_owned();
    // One changed byte: in the header, the first chunk, the middle and the last byte.
    for at in [20, 200, bytes.len() / 2, bytes.len() - 1] {
        let mut changed = bytes.clone();
        changed[at] ^= 0x01;
        let f = keys.join(format!("changed-{at}.age"));
        std::fs::write(&f, &changed).unwrap();
        for cmd in ["verify", "restore"] {
            let out = target.gatehouse(
                &recipient,
                &["backup", cmd, &arg(&f), "--identity", &arg(&id)],
            );
            assert!(
                !out.status.success(),
                "{cmd} accepted a byte changed at {at}"
            );
        }
    }
    // Cut short.
    let cut = keys.join("cut.age");
    std::fs::write(&cut, &bytes[..bytes.len() - 100]).unwrap();
    refused(
        &target.gatehouse(
            &recipient,
            &["backup", "restore", &arg(&cut), "--identity", &arg(&id)],
        ),
        "a truncated archive",
        "cannot",
    );
    // Someone else's key.
    refused(
        &target.gatehouse(
            &recipient,
            &[
                "backup",
                "restore",
                &arg(&archive),
                "--identity",
                &arg(&stranger),
            ],
        ),
        "another recipient's key",
        "none of the given identities is a recipient of this backup",
    );
    assert!(
        !target_rows(&target),
        "a refused restore created the database"
    );

    // A newer schema, re-encrypted so that only the schema is wrong.
    let (m, _) = archive_tables(&archive, &id);
    let plain = Command::new("age")
        .args(["-d", "-i", &arg(&id), &arg(&archive)])
        .output()
        .unwrap()
        .stdout;
    let text = String::from_utf8(plain).unwrap();
    let newer = text.replace(
        &format!("\"schema_version\":{}", m.schema_version),
        "\"schema_version\":999",
    );
    assert_ne!(newer, text);
    let newer_path = keys.join("newer.age");
    let mut child = Command::new("age")
        .args(["-r", &recipient, "-o", &arg(&newer_path)])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), newer.as_bytes()).unwrap();
    drop(child.stdin.take());
    assert!(child.wait().unwrap().success());
    refused(
        &target.gatehouse(
            &recipient,
            &[
                "backup",
                "restore",
                &arg(&newer_path),
                "--identity",
                &arg(&id),
            ],
        ),
        "a newer schema",
        "newer than this Gatehouse knows",
    );

    // Forged: an archive anyone with the public recipient could write, from the real one's
    // rows, first without the master key's seal, then with a seal from another key.
    let (m, tables) = archive_tables(&archive, &id);
    let forge = |seal: Option<gatehouse_core::backup::Seal>, name: &str, alter: bool| {
        let mut w = gatehouse_core::backup::ArchiveWriter::new(Vec::new(), m.created_at.clone());
        w.start(&SnapshotInfo {
            backend: m.backend.clone(),
            schema_version: m.schema_version,
        })
        .unwrap();
        for t in &m.tables {
            let (table, rows) = &tables[&t.name];
            w.begin_table(table).unwrap();
            // Altered: the newest audit event left out, digests and manifest made to agree.
            let keep = if alter && t.name == "audit_events" {
                rows.len() - 1
            } else {
                rows.len()
            };
            for r in &rows[..keep] {
                w.row(r).unwrap();
            }
            w.end_table().unwrap();
        }
        let (_, plain) = w.finish_sealed(|_| Ok(seal)).unwrap();
        let path = keys.join(name);
        let mut child = Command::new("age")
            .args(["-r", &recipient, "-o", &arg(&path)])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::io::Write::write_all(child.stdin.as_mut().unwrap(), &plain).unwrap();
        drop(child.stdin.take());
        assert!(child.wait().unwrap().success());
        path
    };
    let unsealed = forge(None, "unsealed.age", false);
    refused(
        &target.gatehouse(
            &recipient,
            &[
                "backup",
                "restore",
                &arg(&unsealed),
                "--identity",
                &arg(&id),
            ],
        ),
        "an unsealed archive",
        "carries no master-key seal",
    );
    let other_key =
        gatehouse_core::keyring::LocalKek::new(&gatehouse_crypto::Key32::from_bytes([9; 32]))
            .unwrap();
    let bogus = gatehouse_core::keyring::MasterKek::wrap(
        &other_key,
        gatehouse_crypto::EnvelopeHeader {
            kek_version: 0,
            dek_version: 0,
        },
        &gatehouse_crypto::context("gatehouse.backup.seal.v1", &[]),
        &gatehouse_crypto::Key32::from_bytes(gatehouse_core::backup::manifest_digest(&m).unwrap()),
    )
    .unwrap();
    let forged = forge(
        Some(gatehouse_core::backup::Seal {
            envelope: base64::engine::general_purpose::STANDARD.encode(bogus),
        }),
        "forged.age",
        false,
    );
    // The archive's own seal on altered rows.
    let real_seal = {
        let plain = Command::new("age")
            .args(["-d", "-i", &arg(&id), &arg(&archive)])
            .output()
            .unwrap()
            .stdout;
        let mut r = ArchiveReader::open(&plain[..]).unwrap();
        while r.next_table().unwrap().is_some() {
            while !r.next_rows(1000).unwrap().is_empty() {}
        }
        r.seal().cloned().expect("the archive is sealed")
    };
    let altered = forge(Some(real_seal), "altered.age", true);
    refused(
        &target.gatehouse(
            &recipient,
            &["backup", "restore", &arg(&altered), "--identity", &arg(&id)],
        ),
        "an altered archive under its own seal",
        "seal does not open with the configured master key",
    );
    for cmd in ["verify", "restore"] {
        refused(
            &target.gatehouse(
                &recipient,
                &["backup", cmd, &arg(&forged), "--identity", &arg(&id)],
            ),
            "a seal from another key",
            "seal does not open with the configured master key",
        );
    }
    assert!(
        !target_rows(&target),
        "a refused restore created the database"
    );

    // Another master key.
    let wrong = Site::new_empty(false).await;
    std::fs::create_dir_all(wrong.dir.join("data")).unwrap();
    let mut key_file = std::fs::OpenOptions::new();
    std::os::unix::fs::OpenOptionsExt::mode(&mut key_file, 0o600);
    std::io::Write::write_all(
        &mut key_file
            .write(true)
            .create_new(true)
            .open(wrong.dir.join("data/master.key"))
            .unwrap(),
        base64::engine::general_purpose::STANDARD
            .encode([7u8; 32])
            .as_bytes(),
    )
    .unwrap();
    refused(
        &wrong.gatehouse(
            &recipient,
            &["backup", "restore", &arg(&archive), "--identity", &arg(&id)],
        ),
        "another master key",
        "the configured master key is not one this backup's data keys are wrapped under",
    );
    assert!(!target_rows(&wrong));

    // A target that already holds rows: the source itself.
    refused(
        &source.gatehouse(
            &recipient,
            &["backup", "restore", &arg(&archive), "--identity", &arg(&id)],
        ),
        "a non-empty target",
        "is not empty",
    );
    // And the untouched archive still restores; an unsealed one only when told to.
    let text = ok(
        &target.gatehouse(
            &recipient,
            &["backup", "restore", &arg(&archive), "--identity", &arg(&id)],
        ),
        "restore",
    );
    assert!(
        text.contains("seal: made by the configured master key"),
        "{text}"
    );
    let other = Site::empty_like(&source.dir, false).await;
    ok(
        &other.gatehouse(
            &recipient,
            &[
                "backup",
                "restore",
                &arg(&unsealed),
                "--identity",
                &arg(&id),
                "--accept-unsealed",
            ],
        ),
        "restore --accept-unsealed",
    );
}

#[test]
fn restore_reads_the_whole_archive_before_it_writes() {
    // The restore's source checks digests as it reads; a table cut short is an error before
    // the end, which the store's transaction turns into nothing written.
    let text = "{\"gatehouse_backup\":{\"format_version\":1,\"backend\":\"sqlite\",\"schema_version\":1,\"created_at\":\"x\"}}\n\
                {\"table\":{\"name\":\"t\",\"columns\":[{\"name\":\"a\",\"class\":\"integer\"}]}}\n[1]\n";
    let mut r = ArchiveReader::open(text.as_bytes()).unwrap();
    assert!(r.next_table().unwrap().is_some());
    assert_eq!(r.next_rows(1).unwrap().len(), 1);
    assert!(matches!(r.next_rows(1), Err(BackupError::Damaged(_))));
}
