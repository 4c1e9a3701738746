//! The mixed workload the drill runs while instances die: sign-ups, sign-ins, record writes,
//! audited changes (custom roles, secrets), transit calls, webhook events and the product's mail.
//! Only 2xx answers are acknowledgements; each is written in the [`Ledger`] for the checks.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use serde_json::{Value, json};

use crate::fleet::Fleet;
use crate::rng::Rng;

pub(crate) const PASSWORD: &str = "a sufficiently long passphrase";
pub(crate) const SERVICE_SECRET: &str = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";
pub(crate) const EVENT_TYPE: &str = "drill.ping";

/// A founder signed in before the drill starts: the organisation the workload writes in.
#[derive(Debug, Clone)]
pub(crate) struct Tenant {
    pub(crate) org: String,
    pub(crate) access: String,
}

/// A value changed by acknowledged writes: what the last acknowledged one set, and whether a
/// later attempt (unanswered, so perhaps committed) may have set something else.
#[derive(Debug, Clone)]
pub(crate) struct Tracked<T> {
    pub(crate) org: String,
    pub(crate) acked: T,
    pub(crate) tried_after: Vec<T>,
    /// Acknowledged changes, each of which must have left an audit event.
    pub(crate) changes: u64,
}

/// Every acknowledged write, by kind.
#[derive(Debug, Default, Clone)]
pub(crate) struct Ledger {
    pub(crate) signups: Vec<String>,
    pub(crate) sessions: Vec<uuid::Uuid>,
    /// Record id -> the content version `v`.
    pub(crate) records: HashMap<String, Tracked<u64>>,
    /// Role name -> its permissions.
    pub(crate) roles: HashMap<String, Tracked<Vec<String>>>,
    /// Secret id -> its current version.
    pub(crate) secrets: HashMap<String, Tracked<i64>>,
    /// (organisation, plaintext in base64, context, ciphertext).
    pub(crate) ciphertexts: Vec<(String, String, String, String)>,
    /// Organisation -> acknowledged decrypts (each committed its event before answering).
    pub(crate) decrypts: HashMap<String, u64>,
    /// The `n` of each acknowledged webhook event.
    pub(crate) events: Vec<u64>,
    /// The id of each acknowledged product message.
    pub(crate) mails: Vec<String>,
    /// "operation status" -> how many answers.
    pub(crate) answers: BTreeMap<String, u64>,
    /// 5xx answers other than the ones a dying or starting instance gives: each is shown.
    pub(crate) server_errors: Vec<String>,
}

impl Ledger {
    pub(crate) fn acknowledged(&self) -> u64 {
        self.answers
            .iter()
            .filter(|(k, _)| k.ends_with(" 2xx"))
            .map(|(_, v)| *v)
            .sum()
    }
}

/// What one request came to.
enum Answer {
    Ack(Value),
    Refused,
    /// No answer: the instance died (or was down), so the write may or may not have happened.
    Lost,
}

#[derive(Debug, Clone)]
pub(crate) struct Workload {
    pub(crate) fleet: Arc<Fleet>,
    pub(crate) client: reqwest::Client,
    pub(crate) tenants: Vec<Tenant>,
    pub(crate) ledger: Arc<Mutex<Ledger>>,
    pub(crate) stop: Arc<AtomicBool>,
}

impl Workload {
    pub(crate) fn new(fleet: Arc<Fleet>, tenants: Vec<Tenant>) -> Self {
        Self {
            fleet,
            client: client(),
            tenants,
            ledger: Arc::default(),
            stop: Arc::default(),
        }
    }

    async fn send(
        &self,
        op: &str,
        method: reqwest::Method,
        path: &str,
        who: Who<'_>,
        body: Option<Value>,
    ) -> Answer {
        let Some(addr) = self.fleet.pick() else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            return Answer::Lost;
        };
        let mut req = self.client.request(method, format!("http://{addr}{path}"));
        match who {
            Who::Nobody => {}
            Who::Tenant(t) => {
                req = req
                    .bearer_auth(&t.access)
                    .header("x-organization-id", &t.org);
            }
            Who::Service => req = req.header("x-service-auth", SERVICE_SECRET),
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = match req.send().await {
            Ok(r) => r,
            Err(_) => {
                self.count(op, "lost");
                return Answer::Lost;
            }
        };
        let status = res.status().as_u16();
        // A body cut off by a kill is no acknowledgement either.
        let Ok(text) = res.text().await else {
            self.count(op, "lost");
            return Answer::Lost;
        };
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if (200..300).contains(&status) {
            self.count(op, "2xx");
            return Answer::Ack(value);
        }
        self.count(op, &status.to_string());
        if status >= 500 {
            self.ledger
                .lock()
                .unwrap()
                .server_errors
                .push(format!("{op}: {status} {text}"));
        }
        Answer::Refused
    }

    fn count(&self, op: &str, what: &str) {
        *self
            .ledger
            .lock()
            .unwrap()
            .answers
            .entry(format!("{op} {what}"))
            .or_default() += 1;
    }

    /// One worker: random operations until told to stop. Records and secrets a worker made are
    /// changed only by that worker, so each one's changes are sequential.
    pub(crate) async fn worker(self, id: usize, mut rng: Rng) {
        let mut own_records: Vec<(usize, String)> = Vec::new();
        let mut own_secrets: Vec<(usize, String)> = Vec::new();
        let mut own_roles: Vec<(usize, String)> = Vec::new();
        let mut n = 0u64;
        while !self.stop.load(Ordering::SeqCst) {
            n += 1;
            let ti = rng.below(self.tenants.len() as u64) as usize;
            let t = &self.tenants[ti];
            let unique = format!("w{id}n{n}");
            match rng.below(100) {
                0..8 => self.signup(&unique).await,
                8..18 => self.login(ti).await,
                18..36 => {
                    if let Some(rec) = self.record_create(t, &unique).await {
                        own_records.push((ti, rec));
                    }
                }
                36..50 => {
                    if !own_records.is_empty() {
                        let (ti, rec) = &own_records[rng.below(own_records.len() as u64) as usize];
                        self.record_update(&self.tenants[*ti], rec, n).await;
                    }
                }
                50..55 => {
                    if let Some(name) = self.role_create(t, &unique).await {
                        own_roles.push((ti, name));
                    }
                }
                55..59 => {
                    if !own_roles.is_empty() {
                        let (ti, name) = &own_roles[rng.below(own_roles.len() as u64) as usize];
                        self.role_update(&self.tenants[*ti], name, rng.below(2) == 0)
                            .await;
                    }
                }
                59..66 => {
                    if let Some(s) = self.secret_create(t, &unique).await {
                        own_secrets.push((ti, s));
                    }
                }
                66..73 => {
                    if !own_secrets.is_empty() {
                        let (ti, s) = &own_secrets[rng.below(own_secrets.len() as u64) as usize];
                        self.secret_put(&self.tenants[*ti], s, n).await;
                    }
                }
                73..80 => self.encrypt(t, &unique).await,
                80..86 => self.decrypt(&mut rng).await,
                86..94 => self.event(t, (id as u64) << 32 | n).await,
                _ => self.mail(t, &unique).await,
            }
        }
    }

    async fn signup(&self, unique: &str) {
        let email = format!("{unique}@drill.example");
        let body = json!({"email": email, "password": PASSWORD, "name": "Drill",
            "organization_name": format!("Org {unique}")});
        if let Answer::Ack(_) = self
            .send(
                "signup",
                reqwest::Method::POST,
                "/v1/auth/signup",
                Who::Nobody,
                Some(body),
            )
            .await
        {
            self.ledger.lock().unwrap().signups.push(email);
        }
    }

    async fn login(&self, ti: usize) {
        let body = json!({"email": format!("founder{ti}@drill.example"), "password": PASSWORD,
            "device_name": "drill"});
        if let Answer::Ack(v) = self
            .send(
                "login",
                reqwest::Method::POST,
                "/v1/auth/login",
                Who::Nobody,
                Some(body),
            )
            .await
        {
            let id = v["session_id"].as_str().unwrap().parse().unwrap();
            self.ledger.lock().unwrap().sessions.push(id);
        }
    }

    async fn record_create(&self, t: &Tenant, unique: &str) -> Option<String> {
        let body = json!({"type": "note", "external_id": unique, "level": "organization",
            "content": {"v": 0}});
        let Answer::Ack(v) = self
            .send(
                "record.create",
                reqwest::Method::POST,
                "/v1/records",
                Who::Tenant(t),
                Some(body),
            )
            .await
        else {
            return None;
        };
        let id = v["id"].as_str().unwrap().to_owned();
        self.ledger.lock().unwrap().records.insert(
            id.clone(),
            Tracked {
                org: t.org.clone(),
                acked: 0,
                tried_after: Vec::new(),
                changes: 1,
            },
        );
        Some(id)
    }

    async fn record_update(&self, t: &Tenant, id: &str, v: u64) {
        let path = format!("/v1/records/{id}");
        let body = json!({"content": {"v": v}});
        let answer = self
            .send(
                "record.update",
                reqwest::Method::PATCH,
                &path,
                Who::Tenant(t),
                Some(body),
            )
            .await;
        let mut ledger = self.ledger.lock().unwrap();
        let tracked = ledger.records.get_mut(id).unwrap();
        settle(tracked, v, &answer);
    }

    async fn role_create(&self, t: &Tenant, unique: &str) -> Option<String> {
        let name = format!("role-{unique}");
        let perms = vec!["org.read".to_owned()];
        let body = json!({"name": name, "permissions": perms});
        let path = "/v1/organization/roles";
        let Answer::Ack(_) = self
            .send(
                "role.create",
                reqwest::Method::POST,
                path,
                Who::Tenant(t),
                Some(body),
            )
            .await
        else {
            return None;
        };
        self.ledger.lock().unwrap().roles.insert(
            name.clone(),
            Tracked {
                org: t.org.clone(),
                acked: perms,
                tried_after: Vec::new(),
                changes: 1,
            },
        );
        Some(name)
    }

    async fn role_update(&self, t: &Tenant, name: &str, wide: bool) {
        let perms: Vec<String> = if wide {
            vec!["audit.read".into(), "org.read".into()]
        } else {
            vec!["org.read".into()]
        };
        let path = format!("/v1/organization/roles/{name}");
        let body = json!({"permissions": perms});
        let answer = self
            .send(
                "role.update",
                reqwest::Method::PATCH,
                &path,
                Who::Tenant(t),
                Some(body),
            )
            .await;
        let mut ledger = self.ledger.lock().unwrap();
        settle(ledger.roles.get_mut(name).unwrap(), perms, &answer);
    }

    async fn secret_create(&self, t: &Tenant, unique: &str) -> Option<String> {
        let body = json!({"name": format!("secret-{unique}"), "value": format!("value {unique}")});
        let Answer::Ack(v) = self
            .send(
                "secret.create",
                reqwest::Method::POST,
                "/v1/secrets",
                Who::Tenant(t),
                Some(body),
            )
            .await
        else {
            return None;
        };
        let id = v["id"].as_str().unwrap().to_owned();
        self.ledger.lock().unwrap().secrets.insert(
            id.clone(),
            Tracked {
                org: t.org.clone(),
                acked: 1,
                tried_after: Vec::new(),
                changes: 1,
            },
        );
        Some(id)
    }

    async fn secret_put(&self, t: &Tenant, id: &str, n: u64) {
        let path = format!("/v1/secrets/{id}");
        let body = json!({"value": format!("value {n}")});
        let answer = self
            .send(
                "secret.put",
                reqwest::Method::PUT,
                &path,
                Who::Tenant(t),
                Some(body),
            )
            .await;
        let mut ledger = self.ledger.lock().unwrap();
        let tracked = ledger.secrets.get_mut(id).unwrap();
        match answer {
            Answer::Ack(v) => {
                tracked.acked = v["current_version"].as_i64().unwrap();
                tracked.tried_after.clear();
                tracked.changes += 1;
            }
            // An unanswered version may exist: the next acknowledged one is then one higher.
            Answer::Lost => tracked.tried_after.push(tracked.acked + 1),
            Answer::Refused => {}
        }
    }

    async fn encrypt(&self, t: &Tenant, unique: &str) {
        let plain = base64::engine::general_purpose::STANDARD.encode(format!("plain {unique}"));
        let context = format!("ctx/{unique}");
        let body = json!({"plaintext": plain, "context": context});
        let path = "/v1/transit/encrypt";
        if let Answer::Ack(v) = self
            .send(
                "transit.encrypt",
                reqwest::Method::POST,
                path,
                Who::Tenant(t),
                Some(body),
            )
            .await
        {
            let ct = v["ciphertext"].as_str().unwrap().to_owned();
            self.ledger
                .lock()
                .unwrap()
                .ciphertexts
                .push((t.org.clone(), plain, context, ct));
        }
    }

    async fn decrypt(&self, rng: &mut Rng) {
        let picked = {
            let ledger = self.ledger.lock().unwrap();
            if ledger.ciphertexts.is_empty() {
                return;
            }
            ledger.ciphertexts[rng.below(ledger.ciphertexts.len() as u64) as usize].clone()
        };
        let (org, plain, context, ct) = picked;
        let t = self.tenants.iter().find(|t| t.org == org).unwrap();
        let body = json!({"ciphertext": ct, "context": context});
        let path = "/v1/transit/decrypt";
        if let Answer::Ack(v) = self
            .send(
                "transit.decrypt",
                reqwest::Method::POST,
                path,
                Who::Tenant(t),
                Some(body),
            )
            .await
        {
            assert_eq!(
                v["plaintext"],
                plain.as_str(),
                "transit gave back another plaintext"
            );
            *self.ledger.lock().unwrap().decrypts.entry(org).or_default() += 1;
        }
    }

    async fn event(&self, t: &Tenant, n: u64) {
        let body = json!({"organization_id": t.org,
            "event": {"type": EVENT_TYPE, "data": {"n": n}}});
        let path = "/internal/v1/events";
        if let Answer::Ack(_) = self
            .send(
                "webhook.enqueue",
                reqwest::Method::POST,
                path,
                Who::Service,
                Some(body),
            )
            .await
        {
            self.ledger.lock().unwrap().events.push(n);
        }
    }

    async fn mail(&self, t: &Tenant, unique: &str) {
        let body = json!({"organization_id": t.org, "to": format!("{unique}@reader.example"),
            "list": "drill", "subject": format!("Drill {unique}"), "text": "A drill message."});
        let path = "/internal/v1/messages";
        if let Answer::Ack(v) = self
            .send(
                "mail.queue",
                reqwest::Method::POST,
                path,
                Who::Service,
                Some(body),
            )
            .await
        {
            let id = v["id"].as_str().unwrap().to_owned();
            self.ledger.lock().unwrap().mails.push(id);
        }
    }
}

#[derive(Clone, Copy)]
enum Who<'a> {
    Nobody,
    Tenant(&'a Tenant),
    Service,
}

/// Writes the outcome of a change to a tracked value into its entry.
fn settle<T: Clone>(tracked: &mut Tracked<T>, value: T, answer: &Answer) {
    match answer {
        Answer::Ack(_) => {
            tracked.acked = value;
            tracked.tried_after.clear();
            tracked.changes += 1;
        }
        Answer::Lost => tracked.tried_after.push(value),
        Answer::Refused => {}
    }
}

/// The workload's HTTP client: every request bounded, so a hung instance shows as a failure.
pub(crate) fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .connect_timeout(Duration::from_secs(2))
        .build()
        .unwrap()
}
