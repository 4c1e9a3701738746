//! What the drill checks once the kills stop: every acknowledged write is there (read back
//! through the API and from the database), every queued mail and webhook arrived at least once
//! (a repeat only as a redelivery of the same message), `gatehouse audit verify` passes, and no
//! audit chain has a gap.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use uuid::Uuid;

use crate::fleet::{BIN, Fleet};
use crate::receiver::Receiver;
use crate::workload::{Ledger, PASSWORD, Tenant, Tracked, client};

/// The database, read by the test itself (as the superuser on PostgreSQL: every row).
#[derive(Debug)]
pub(crate) enum Db {
    Pg(sqlx::PgPool),
    Lite(sqlx::SqlitePool),
}

impl Db {
    pub(crate) async fn postgres(url: &str) -> Self {
        Self::Pg(
            sqlx::postgres::PgPoolOptions::new()
                .max_connections(2)
                .connect(url)
                .await
                .unwrap(),
        )
    }

    pub(crate) async fn sqlite(file: &Path) -> Self {
        let url = format!("sqlite://{}?mode=ro", file.display());
        Self::Lite(
            sqlx::sqlite::SqlitePoolOptions::new()
                .max_connections(1)
                .connect(&url)
                .await
                .unwrap(),
        )
    }

    async fn uuids(&self, sql: &'static str) -> Vec<Uuid> {
        match self {
            Self::Pg(p) => sqlx::query_scalar(sql).fetch_all(p).await.unwrap(),
            Self::Lite(p) => sqlx::query_scalar(sql).fetch_all(p).await.unwrap(),
        }
    }

    async fn texts(&self, sql: &'static str) -> Vec<String> {
        match self {
            Self::Pg(p) => sqlx::query_scalar(sql).fetch_all(p).await.unwrap(),
            Self::Lite(p) => sqlx::query_scalar(sql).fetch_all(p).await.unwrap(),
        }
    }

    async fn uuid_i64(&self, sql: &'static str) -> Vec<(Uuid, i64)> {
        match self {
            Self::Pg(p) => sqlx::query_as(sql).fetch_all(p).await.unwrap(),
            Self::Lite(p) => sqlx::query_as(sql).fetch_all(p).await.unwrap(),
        }
    }

    async fn text_i64(&self, sql: &'static str) -> Vec<(String, i64)> {
        match self {
            Self::Pg(p) => sqlx::query_as(sql).fetch_all(p).await.unwrap(),
            Self::Lite(p) => sqlx::query_as(sql).fetch_all(p).await.unwrap(),
        }
    }

    async fn chains(&self) -> Vec<(Uuid, i64, i64)> {
        let sql = "SELECT org_id, count(*), max(seq) FROM audit_events GROUP BY org_id";
        match self {
            Self::Pg(p) => sqlx::query_as(sql).fetch_all(p).await.unwrap(),
            Self::Lite(p) => sqlx::query_as(sql).fetch_all(p).await.unwrap(),
        }
    }

    async fn operator_chain(&self) -> (i64, i64, Option<i64>) {
        let sql = "SELECT count(*), coalesce(max(seq), 0), \
                   (SELECT seq FROM operator_audit_head) FROM operator_audit_events";
        match self {
            Self::Pg(p) => sqlx::query_as(sql).fetch_one(p).await.unwrap(),
            Self::Lite(p) => sqlx::query_as(sql).fetch_one(p).await.unwrap(),
        }
    }
}

/// Waits (bounded) until every acknowledged webhook event and every message in the outbox has
/// arrived, then checks both: each event at least once, repeats only under the same id.
pub(crate) async fn deliveries_settle(
    ledger: &Ledger,
    receiver: &Receiver,
    db: &Db,
    mail_dir: &Path,
    bound: Duration,
) -> (usize, usize) {
    let started = Instant::now();
    let mut queued: Vec<Uuid>;
    loop {
        let got: HashSet<u64> = receiver.deliveries().iter().map(|(_, n)| *n).collect();
        let missing_events = ledger.events.iter().filter(|n| !got.contains(n)).count();
        queued = db.uuids("SELECT id FROM mail_outbox").await;
        let files = mail_files(mail_dir);
        let missing_mail = queued.iter().filter(|id| !files.contains(*id)).count();
        // A message written by an instance killed before it marked the row sent is written
        // again once its claim runs out: wait for the outbox to agree, too.
        let unsent = db
            .uuids("SELECT id FROM mail_outbox WHERE sent_at IS NULL")
            .await
            .len();
        if missing_events == 0 && missing_mail == 0 && unsent == 0 {
            break;
        }
        assert!(
            started.elapsed() < bound,
            "after {bound:?}, {missing_events} acknowledged webhook event(s) and \
             {missing_mail} queued message(s) were still undelivered, and {unsent} message(s) \
             not marked sent"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!(
        "drill: deliveries settled {:?} after the last kill",
        started.elapsed()
    );
    // At least once, and a repeat only as the same message: one webhook-id per event.
    let mut ids_of: HashMap<u64, HashSet<String>> = HashMap::new();
    let deliveries = receiver.deliveries();
    for (id, n) in &deliveries {
        ids_of.entry(*n).or_default().insert(id.clone());
    }
    for (n, ids) in &ids_of {
        assert_eq!(
            ids.len(),
            1,
            "event {n} was delivered as {} different messages: {ids:?}",
            ids.len()
        );
    }
    let acked: HashSet<u64> = ledger.events.iter().copied().collect();
    assert_eq!(acked.len(), ledger.events.len(), "event numbers repeat");
    let redelivered = deliveries.len() - ids_of.len();
    println!(
        "drill: {} acknowledged webhook events, {} delivered ({} deliveries, {redelivered} \
         redeliveries); {} messages in the outbox, all written",
        acked.len(),
        ids_of.len(),
        deliveries.len(),
        queued.len()
    );
    // Every acknowledged product message and every sign-up's verification mail is in the outbox.
    let queued: HashSet<String> = queued.iter().map(ToString::to_string).collect();
    for id in &ledger.mails {
        assert!(
            queued.contains(id),
            "acknowledged message {id} is not in the outbox"
        );
    }
    (ledger.events.len(), ledger.mails.len())
}

/// How often the instances' logs say each message was written: every one was queued, and a
/// message written twice (a killed sender's claim running out) is the same message, under the
/// same id and file. Returns (messages written, messages written more than once).
pub(crate) async fn mail_sends(db: &Db, log_lines: &[String]) -> (usize, usize) {
    let queued: HashSet<Uuid> = db
        .uuids("SELECT id FROM mail_outbox")
        .await
        .into_iter()
        .collect();
    let mut times: HashMap<Uuid, usize> = HashMap::new();
    for line in log_lines {
        // A kill may cut the last line of a log short: such a line is no JSON and is skipped.
        let Ok(json) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        if json["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("development mail written to a file"))
        {
            let id: Uuid = json["mail_id"].as_str().unwrap().parse().unwrap();
            assert!(
                queued.contains(&id),
                "message {id} was sent but never queued"
            );
            *times.entry(id).or_default() += 1;
        }
    }
    let twice = times.values().filter(|n| **n > 1).count();
    println!(
        "drill: {} messages written, {twice} of them more than once (at least once, same id)",
        times.len()
    );
    (times.len(), twice)
}

/// The ids of the `.eml` files the file transport wrote.
fn mail_files(dir: &Path) -> HashSet<Uuid> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().to_string();
            name.strip_suffix(".eml")?.parse().ok()
        })
        .collect()
}

/// Each sign-up's verification mail, by recipient: the files that name it.
fn mail_recipients(dir: &Path) -> HashSet<String> {
    let mut to = HashSet::new();
    for entry in std::fs::read_dir(dir).unwrap().filter_map(Result::ok) {
        if entry.path().extension().is_some_and(|x| x == "eml") {
            let text = std::fs::read_to_string(entry.path()).unwrap();
            for line in text.lines() {
                if let Some(rest) = line.strip_prefix("To: ") {
                    to.insert(rest.trim().trim_matches(['<', '>']).to_ascii_lowercase());
                }
            }
        }
    }
    to
}

/// Reads every acknowledged write back through the API of the live instances. Returns how many
/// reads it made.
pub(crate) async fn read_back(fleet: &Fleet, tenants: &[Tenant], ledger: &Ledger) -> usize {
    let client = client();
    let tenant = |org: &str| tenants.iter().find(|t| t.org == org).unwrap().clone();
    let mut reads = 0;
    for (id, tracked) in &ledger.records {
        let t = tenant(&tracked.org);
        let body = get(&client, fleet, &t, &format!("/v1/records/{id}")).await;
        let v = body["content"]["v"].as_u64().unwrap();
        assert_current(&format!("record {id}"), tracked, &v);
        reads += 1;
    }
    for (id, tracked) in &ledger.secrets {
        let t = tenant(&tracked.org);
        let body = get(&client, fleet, &t, &format!("/v1/secrets/{id}")).await;
        let current = body["current_version"].as_i64().unwrap();
        assert!(
            current >= tracked.acked,
            "secret {id}: version {} was acknowledged, the server has {current}",
            tracked.acked
        );
        reads += 1;
    }
    for t in tenants {
        let body = get(&client, fleet, t, "/v1/organization/roles").await;
        let held: HashMap<String, Vec<String>> = body
            .as_array()
            .or(body["items"].as_array())
            .unwrap()
            .iter()
            .map(|r| {
                let mut p: Vec<String> = serde_json::from_value(r["permissions"].clone()).unwrap();
                p.sort();
                (r["name"].as_str().unwrap().to_owned(), p)
            })
            .collect();
        for (name, tracked) in ledger.roles.iter().filter(|(_, r)| r.org == t.org) {
            let perms = held
                .get(name)
                .unwrap_or_else(|| panic!("acknowledged role {name} is gone"));
            assert_current(&format!("role {name}"), tracked, perms);
        }
        reads += 1;
    }
    // Each ciphertext handed out still opens to its plaintext (a sample: each costs a request).
    for (org, plain, context, ct) in ledger.ciphertexts.iter().take(60) {
        let t = tenant(org);
        let addr = fleet.pick().unwrap();
        let res = client
            .post(format!("http://{addr}/v1/transit/decrypt"))
            .bearer_auth(&t.access)
            .header("x-organization-id", &t.org)
            .json(&json!({"ciphertext": ct, "context": context}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        assert_eq!(
            res.json::<Value>().await.unwrap()["plaintext"],
            plain.as_str()
        );
        reads += 1;
    }
    // Acknowledged sign-ups can sign in (a sample: each costs a password hash).
    for email in ledger.signups.iter().take(15) {
        let addr = fleet.pick().unwrap();
        let res = client
            .post(format!("http://{addr}/v1/auth/login"))
            .json(&json!({"email": email, "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(
            res.status(),
            200,
            "acknowledged sign-up {email} cannot sign in"
        );
        reads += 1;
    }
    reads
}

fn assert_current<T: PartialEq + std::fmt::Debug>(what: &str, tracked: &Tracked<T>, now: &T) {
    let allowed = *now == tracked.acked || tracked.tried_after.contains(now);
    assert!(
        allowed,
        "{what}: holds {now:?}, but the last acknowledged write set {:?} (and unanswered ones \
         after it tried {:?})",
        tracked.acked, tracked.tried_after
    );
}

async fn get(client: &reqwest::Client, fleet: &Fleet, t: &Tenant, path: &str) -> Value {
    let addr = fleet.pick().unwrap();
    let res = client
        .get(format!("http://{addr}{path}"))
        .bearer_auth(&t.access)
        .header("x-organization-id", &t.org)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "GET {path}: {:?}", res.text().await);
    res.json().await.unwrap()
}

/// The database holds every acknowledged row and its audit events, and no chain has a gap.
/// Returns how many acknowledged writes it checked.
pub(crate) async fn in_database(db: &Db, ledger: &Ledger, mail_dir: &Path) -> usize {
    let emails: HashSet<String> = db
        .texts("SELECT email FROM users")
        .await
        .into_iter()
        .collect();
    let recipients = mail_recipients(mail_dir);
    for email in &ledger.signups {
        assert!(
            emails.contains(email),
            "acknowledged sign-up {email} is not stored"
        );
        assert!(
            recipients.contains(email),
            "acknowledged sign-up {email} got no verification mail"
        );
    }
    let sessions: HashSet<Uuid> = db
        .uuids("SELECT id FROM sessions")
        .await
        .into_iter()
        .collect();
    for s in &ledger.sessions {
        assert!(
            sessions.contains(s),
            "acknowledged sign-in's session {s} is not stored"
        );
    }
    let records: HashSet<String> = db
        .uuids("SELECT id FROM records")
        .await
        .iter()
        .map(ToString::to_string)
        .collect();
    for id in ledger.records.keys() {
        assert!(
            records.contains(id),
            "acknowledged record {id} is not stored"
        );
    }
    // Secret versions: every one up to the acknowledged one, without a gap.
    let mut versions: HashMap<String, Vec<i64>> = HashMap::new();
    for (id, v) in db
        .uuid_i64("SELECT secret_id, CAST(version AS BIGINT) FROM secret_versions")
        .await
    {
        versions.entry(id.to_string()).or_default().push(v);
    }
    for (id, tracked) in &ledger.secrets {
        let mut held = versions.remove(id).unwrap_or_default();
        held.sort_unstable();
        let top = held.last().copied().unwrap_or(0);
        assert!(
            top >= tracked.acked,
            "secret {id}: acknowledged version {} missing",
            tracked.acked
        );
        assert_eq!(
            held,
            (1..=top).collect::<Vec<_>>(),
            "secret {id}: versions have a gap"
        );
    }
    // Every acknowledged change left its audit event on its organisation's chain.
    let mut events: HashMap<String, i64> = HashMap::new();
    for (resource, n) in db
        .text_i64("SELECT resource_id, count(*) FROM audit_events GROUP BY resource_id")
        .await
    {
        events.insert(resource, n);
    }
    let audited = ledger
        .records
        .iter()
        .map(|(k, t)| (k, t.changes))
        .chain(ledger.secrets.iter().map(|(k, t)| (k, t.changes)))
        .chain(ledger.roles.iter().map(|(k, t)| (k, t.changes)));
    for (resource, changes) in audited {
        let n = events.get(resource).copied().unwrap_or(0);
        assert!(
            u64::try_from(n).unwrap() >= changes,
            "{resource}: {changes} acknowledged changes but {n} audit events"
        );
    }
    let decrypted: HashMap<String, i64> = db
        .text_i64(
            "SELECT resource_id, count(*) FROM audit_events WHERE action = 'transit.decrypted' \
             GROUP BY resource_id",
        )
        .await
        .into_iter()
        .collect();
    let total_decrypted: i64 = decrypted.values().sum();
    let acked_decrypts: u64 = ledger.decrypts.values().sum();
    assert!(
        u64::try_from(total_decrypted).unwrap() >= acked_decrypts,
        "{acked_decrypts} acknowledged decrypts but {total_decrypted} transit.decrypted events"
    );
    no_chain_gap(db).await;
    ledger.signups.len()
        + ledger.sessions.len()
        + ledger
            .records
            .values()
            .map(|t| t.changes as usize)
            .sum::<usize>()
        + ledger
            .secrets
            .values()
            .map(|t| t.changes as usize)
            .sum::<usize>()
        + ledger
            .roles
            .values()
            .map(|t| t.changes as usize)
            .sum::<usize>()
        + usize::try_from(acked_decrypts).unwrap()
        + ledger.events.len()
        + ledger.mails.len()
}

/// Numbering 1..n without a gap on every chain, and each head at the last event.
async fn no_chain_gap(db: &Db) {
    let heads: HashMap<Uuid, i64> = db
        .uuid_i64("SELECT org_id, seq FROM audit_heads")
        .await
        .into_iter()
        .collect();
    let chains = db.chains().await;
    assert!(!chains.is_empty());
    for (org, count, max) in &chains {
        assert_eq!(
            count, max,
            "organisation {org}'s chain has a gap: {count} events up to {max}"
        );
        assert_eq!(
            heads.get(org),
            Some(max),
            "organisation {org}'s head is not its last event"
        );
    }
    let (count, max, head) = db.operator_chain().await;
    assert_eq!(
        count, max,
        "the operators' chain has a gap: {count} events up to {max}"
    );
    assert_eq!(
        head.unwrap_or(0),
        max,
        "the operators' head is not its last event"
    );
    println!(
        "drill: {} organisation chains and the operators' chain have no gap",
        chains.len()
    );
}

/// `gatehouse audit verify` on the deployment's configuration exits 0.
pub(crate) fn audit_verify_cli(dir: &Path) {
    let out = Command::new(BIN)
        .args(["audit", "verify"])
        .current_dir(dir)
        .env_clear()
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "gatehouse audit verify failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("chain intact"), "{stdout}");
    assert!(!stdout.contains("BROKEN"), "{stdout}");
    println!(
        "drill: gatehouse audit verify passed ({} chains)",
        stdout
            .lines()
            .filter(|l| l.contains("chain intact"))
            .count()
    );
}
