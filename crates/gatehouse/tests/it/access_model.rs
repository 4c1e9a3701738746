//! A model-based property test of records, levels, memberships and grants at the HTTP level
//! (issue 19, must 1; C2 at the API, C3, C4). Random sequences of operations run against a real
//! server over four organisations: records created, re-levelled, re-listed and deleted; members'
//! roles changed and members removed; grants made, revoked and left to expire; records left to
//! expire (G3); the injected clock moved on. After every step each person's listing, a batch of checks about every
//! record and a read of one record are compared with a small reference model written here, so
//! no answer ever holds another organisation's record unless the model's live grant allows it.
//!
//! Runs `PROPTEST_CASES` sequences (default 3, a few seconds) of 25 to 44 steps; the longer runs
//! made are recorded in docs/SECURITY.md ("The access model").

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use reqwest::Method;
use serde_json::{Value, json};

use crate::product::declare_reports;
use crate::support::{Signed, TestApp};

const ORGS: usize = 4;
/// People per organisation: its owner (index 0, never changed) and two others.
const PEOPLE: usize = 3;
const MAX_RECORDS: usize = 45;
const NAMESPACES: [Option<&str>; 3] = [Some("sales"), Some("hr"), None];
const LEVELS: [&str; 3] = ["private", "organization", "public"];

#[derive(Debug, Clone)]
enum Op {
    Create {
        org: usize,
        who: usize,
        level: usize,
        allowed: u8,
        ns: usize,
        /// Seconds to live, if any.
        ttl: Option<i64>,
    },
    Relevel {
        rec: usize,
        who: usize,
        level: usize,
        allowed: u8,
    },
    Delete {
        rec: usize,
        who: usize,
    },
    /// A person of another organisation changes a record's tags (a read_write grant's use).
    GrantedPatch {
        rec: usize,
        off: usize,
        who: usize,
    },
    SetRole {
        org: usize,
        who: usize,
        role: usize,
    },
    Remove {
        org: usize,
        who: usize,
    },
    Grant {
        from: usize,
        to: usize,
        read_write: bool,
        sales_only: bool,
        expires: Option<i64>,
    },
    Revoke {
        grant: usize,
    },
    Advance {
        secs: i64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => (0..ORGS, 0..PEOPLE, 0..3usize, any::<u8>(), 0..3usize)
            .prop_flat_map(|t| (Just(t), proptest::option::of(1..200i64)))
            .prop_map(|((org, who, level, allowed, ns), ttl)| Op::Create { org, who, level, allowed, ns, ttl }),
        2 => (any::<usize>(), 0..PEOPLE, 0..3usize, any::<u8>())
            .prop_map(|(rec, who, level, allowed)| Op::Relevel { rec, who, level, allowed }),
        1 => (any::<usize>(), 0..PEOPLE).prop_map(|(rec, who)| Op::Delete { rec, who }),
        2 => (any::<usize>(), 1..ORGS, 0..PEOPLE)
            .prop_map(|(rec, off, who)| Op::GrantedPatch { rec, off, who }),
        2 => (0..ORGS, 1..PEOPLE, 0..3usize).prop_map(|(org, who, role)| Op::SetRole { org, who, role }),
        1 => (0..ORGS, 1..PEOPLE).prop_map(|(org, who)| Op::Remove { org, who }),
        3 => (0..ORGS, 1..ORGS, any::<bool>(), any::<bool>(), proptest::option::of(1..240i64))
            .prop_map(|(from, to, read_write, sales_only, expires)| Op::Grant {
                from, to: (from + to) % ORGS, read_write, sales_only, expires,
            }),
        1 => any::<usize>().prop_map(|grant| Op::Revoke { grant }),
        2 => (1..90i64).prop_map(|secs| Op::Advance { secs }),
    ]
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Owner,
    Admin,
    Member,
    Viewer,
}

impl Role {
    fn reads(self) -> bool {
        self != Self::Viewer
    }
    fn writes(self) -> bool {
        matches!(self, Self::Owner | Self::Admin)
    }
}

#[derive(Debug, Clone)]
struct Rec {
    id: String,
    org: usize,
    ext: String,
    owner: (usize, usize),
    level: &'static str,
    allowed: BTreeSet<usize>,
    ns: Option<&'static str>,
    /// The model's second at which it is gone (G3).
    expires: Option<i64>,
}

#[derive(Debug, Clone)]
struct GrantM {
    id: String,
    from: usize,
    to: usize,
    read_write: bool,
    sales_only: bool,
    /// Seconds since the start (the model's clock).
    expires: Option<i64>,
    revoked: bool,
}

#[derive(Debug, Default)]
struct Model {
    /// roles[org][person]; `None` once removed.
    roles: Vec<Vec<Option<Role>>>,
    records: Vec<Rec>,
    grants: Vec<GrantM>,
    now: i64,
    next_ext: usize,
}

impl Model {
    fn role(&self, org: usize, who: usize) -> Option<Role> {
        self.roles[org][who]
    }

    fn live(&self, g: &GrantM) -> bool {
        !g.revoked && g.expires.is_none_or(|t| t > self.now)
    }

    /// The grant the server names for `r` seen from `org`: a live covering one, read_write
    /// first, then the lowest id.
    fn best_grant(&self, org: usize, r: &Rec) -> Option<&GrantM> {
        let mut covering: Vec<&GrantM> = self
            .grants
            .iter()
            .filter(|g| {
                g.from == r.org
                    && g.to == org
                    && self.live(g)
                    && (!g.sales_only || r.ns == Some("sales"))
            })
            .collect();
        covering.sort_by(|a, b| b.read_write.cmp(&a.read_write).then(a.id.cmp(&b.id)));
        covering.first().copied()
    }

    /// Why `(org, who)` reads `r`, or `None`.
    fn alive(&self, r: &Rec) -> bool {
        r.expires.is_none_or(|t| t > self.now)
    }

    fn reads(&self, org: usize, who: usize, r: &Rec) -> Option<String> {
        if !self.alive(r) {
            return None;
        }
        let role = self.role(org, who)?;
        if r.org != org {
            if r.level == "private" || !role.reads() {
                return None;
            }
            return self.best_grant(org, r).map(|g| format!("grant:{}", g.id));
        }
        if r.owner == (org, who) {
            return Some("owner".into());
        }
        match r.level {
            "public" => Some("level:public".into()),
            "organization" => role.reads().then(|| "level:organization".into()),
            _ => r.allowed.contains(&who).then(|| "allowed_list".into()),
        }
    }

    fn writes(&self, org: usize, who: usize, r: &Rec) -> Option<String> {
        if !self.alive(r) {
            return None;
        }
        let role = self.role(org, who)?;
        if r.org != org {
            let g = self.best_grant(org, r)?;
            return (r.level != "private" && role.reads() && role.writes() && g.read_write)
                .then(|| format!("grant:{}", g.id));
        }
        if r.owner == (org, who) {
            return Some("owner".into());
        }
        (r.level != "private" && self.reads(org, who, r).is_some() && role.writes())
            .then(|| "permission".into())
    }
}

struct World {
    app: TestApp,
    people: Vec<Vec<Signed>>,
}

impl World {
    fn org_id(&self, org: usize) -> &str {
        &self.people[org][0].org
    }

    fn user_entry(&self, org: usize, who: usize) -> String {
        format!("user:{}", self.people[org][who].user)
    }

    async fn call(
        &self,
        org: usize,
        who: usize,
        m: Method,
        path: &str,
        body: Option<Value>,
    ) -> reqwest::Response {
        self.app
            .org_call(m, path, &self.people[org][who], body)
            .await
    }
}

async fn world() -> World {
    let app = TestApp::spawn_with(|raw| {
        declare_reports(raw);
        // The model leaves step-up out (tested on its own) and moves the clock by up to an
        // hour in all: tokens outlive it.
        raw.identity.step_up_permissions = Vec::new();
        raw.identity.access_token_ttl_secs = 3_600;
        // At least the token's life plus the verification leeway.
        raw.identity.idle_timeout_secs = 7_200;
    })
    .await;
    let mut people = Vec::new();
    for org in 0..ORGS {
        let owner = app.signup_login(&format!("o{org}@example.com"), "d").await;
        let mut row = vec![];
        for who in 1..PEOPLE {
            row.push(
                app.add_member(&owner, &format!("p{org}-{who}@example.com"), "member")
                    .await,
            );
        }
        row.insert(0, owner);
        people.push(row);
    }
    World { app, people }
}

fn allowed_set(mask: u8) -> BTreeSet<usize> {
    (0..PEOPLE).filter(|i| mask & (1 << i) != 0).collect()
}

async fn apply(w: &World, m: &mut Model, op: &Op) {
    match op.clone() {
        Op::Create {
            org,
            who,
            level,
            allowed,
            ns,
            ttl,
        } => {
            if m.records.len() >= MAX_RECORDS {
                return;
            }
            let ext = format!("r{}", m.next_ext);
            m.next_ext += 1;
            let allowed = allowed_set(allowed);
            let entries: Vec<String> = allowed.iter().map(|a| w.user_entry(org, *a)).collect();
            let mut body = json!({"type": "report", "external_id": ext, "level": LEVELS[level],
                                  "allowed": entries});
            if let Some(n) = NAMESPACES[ns] {
                body["namespace"] = json!(n);
            }
            if let Some(t) = ttl {
                let at = time::OffsetDateTime::from_unix_timestamp(w.app.clock_secs() + t).unwrap();
                body["expires_at"] = json!(
                    at.format(&time::format_description::well_known::Rfc3339)
                        .unwrap()
                );
            }
            let res = w
                .call(org, who, Method::POST, "/v1/records", Some(body))
                .await;
            let may = m.role(org, who).is_some_and(Role::writes);
            assert_eq!(res.status() == 201, may, "{op:?}: {}", res.status());
            if may {
                let body: Value = res.json().await.unwrap();
                m.records.push(Rec {
                    id: body["id"].as_str().unwrap().to_owned(),
                    org,
                    ext,
                    owner: (org, who),
                    level: LEVELS[level],
                    allowed,
                    ns: NAMESPACES[ns],
                    expires: ttl.map(|t| m.now + t),
                });
            }
        }
        Op::Relevel {
            rec,
            who,
            level,
            allowed,
        } => {
            if m.records.is_empty() {
                return;
            }
            let i = rec % m.records.len();
            let r = m.records[i].clone();
            let allowed = allowed_set(allowed);
            let entries: Vec<String> = allowed.iter().map(|a| w.user_entry(r.org, *a)).collect();
            let res = w
                .call(
                    r.org,
                    who,
                    Method::PATCH,
                    &format!("/v1/records/{}", r.id),
                    Some(json!({"level": LEVELS[level], "allowed": entries})),
                )
                .await;
            // Only the owner, still a member, decides who reads a record.
            let may = r.owner == (r.org, who) && m.role(r.org, who).is_some() && m.alive(&r);
            assert_eq!(res.status() == 200, may, "{op:?}: {}", res.status());
            if may {
                m.records[i].level = LEVELS[level];
                m.records[i].allowed = allowed;
            }
        }
        Op::Delete { rec, who } => {
            if m.records.is_empty() {
                return;
            }
            let i = rec % m.records.len();
            let r = m.records[i].clone();
            let res = w
                .call(
                    r.org,
                    who,
                    Method::DELETE,
                    &format!("/v1/records/{}", r.id),
                    None,
                )
                .await;
            let may = m.writes(r.org, who, &r).is_some();
            assert_eq!(res.status() == 204, may, "{op:?}: {}", res.status());
            if may {
                m.records.remove(i);
            }
        }
        Op::GrantedPatch { rec, off, who } => {
            if m.records.is_empty() {
                return;
            }
            let r = m.records[rec % m.records.len()].clone();
            let org = (r.org + off) % ORGS;
            let res = w
                .call(
                    org,
                    who,
                    Method::PATCH,
                    &format!("/v1/records/{}", r.id),
                    Some(json!({"tags": ["seen"]})),
                )
                .await;
            let may = m.writes(org, who, &r).is_some();
            assert_eq!(res.status() == 200, may, "{op:?}: {}", res.status());
        }
        Op::SetRole { org, who, role } => {
            if m.role(org, who).is_none() {
                return;
            }
            let (name, new) = [
                ("admin", Role::Admin),
                ("member", Role::Member),
                ("viewer", Role::Viewer),
            ][role];
            let path = format!("/v1/organization/members/{}", w.people[org][who].user);
            let res = w
                .call(org, 0, Method::PUT, &path, Some(json!({"role": name})))
                .await;
            assert_eq!(res.status(), 204, "{op:?}");
            m.roles[org][who] = Some(new);
        }
        Op::Remove { org, who } => {
            if m.role(org, who).is_none() {
                return;
            }
            let path = format!("/v1/organization/members/{}", w.people[org][who].user);
            let res = w.call(org, 0, Method::DELETE, &path, None).await;
            assert_eq!(res.status(), 204, "{op:?}");
            m.roles[org][who] = None;
        }
        Op::Grant {
            from,
            to,
            read_write,
            sales_only,
            expires,
        } => {
            let mut body = json!({"organization": w.org_id(to),
                                  "access": if read_write { "read_write" } else { "read" }});
            if sales_only {
                body["namespaces"] = json!(["sales"]);
            }
            if let Some(e) = expires {
                let at = time::OffsetDateTime::from_unix_timestamp(w.app.clock_secs() + e).unwrap();
                body["expires_at"] = json!(
                    at.format(&time::format_description::well_known::Rfc3339)
                        .unwrap()
                );
            }
            let res = w
                .call(from, 0, Method::POST, "/v1/grants", Some(body))
                .await;
            assert_eq!(res.status(), 201, "{op:?}: {:?}", res.text().await);
            let body: Value = res.json().await.unwrap();
            m.grants.push(GrantM {
                id: body["id"].as_str().unwrap().to_owned(),
                from,
                to,
                read_write,
                sales_only,
                expires: expires.map(|e| m.now + e),
                revoked: false,
            });
        }
        Op::Revoke { grant } => {
            if m.grants.is_empty() {
                return;
            }
            let i = grant % m.grants.len();
            let g = m.grants[i].clone();
            let res = w
                .call(
                    g.from,
                    0,
                    Method::DELETE,
                    &format!("/v1/grants/{}", g.id),
                    None,
                )
                .await;
            assert_eq!(res.status(), if g.revoked { 409 } else { 204 }, "{op:?}");
            m.grants[i].revoked = true;
        }
        Op::Advance { secs } => {
            w.app.clock.advance(time::Duration::seconds(secs));
            m.now += secs;
        }
    }
}

/// Every person's listing, checks and one read agree with the model.
async fn agree(w: &World, m: &Model, step: usize) {
    for org in 0..ORGS {
        for who in 0..PEOPLE {
            let ctx = format!("step {step}, org {org}, person {who}");
            let res = w
                .call(
                    org,
                    who,
                    Method::GET,
                    "/v1/records?include_granted=true&limit=200",
                    None,
                )
                .await;
            if m.role(org, who).is_none() {
                // Removal ends the person's sessions in the organisation too.
                assert!(
                    matches!(res.status().as_u16(), 401 | 403),
                    "{ctx}: a removed member listed records: {}",
                    res.status()
                );
                continue;
            }
            assert_eq!(res.status(), 200, "{ctx}");
            let body: Value = res.json().await.unwrap();
            let items = body["items"].as_array().unwrap();
            let got: BTreeMap<String, String> = items
                .iter()
                .map(|r| {
                    (
                        r["id"].as_str().unwrap().to_owned(),
                        r["via"].as_str().unwrap().to_owned(),
                    )
                })
                .collect();
            let want: BTreeMap<String, String> = m
                .records
                .iter()
                .filter_map(|r| m.reads(org, who, r).map(|v| (r.id.clone(), v)))
                .collect();
            assert_eq!(got, want, "{ctx}: listing");
            assert_eq!(got.len(), items.len(), "{ctx}: a record listed twice");
            // Own records first, every one of them.
            let own = w.org_id(org);
            let first_granted = items
                .iter()
                .position(|r| r["organization"] != own)
                .unwrap_or(items.len());
            assert!(
                items[first_granted..]
                    .iter()
                    .all(|r| r["organization"] != own),
                "{ctx}: ranking"
            );
        }
    }
    if m.records.is_empty() {
        return;
    }
    for org in 0..ORGS {
        for who in 0..PEOPLE {
            let ctx = format!("step {step}, org {org}, person {who}");
            let mut checks = Vec::new();
            for r in &m.records {
                for action in ["read", "write"] {
                    checks.push(json!({"action": action, "resource":
                        {"type": "report", "id": r.ext, "organization": w.org_id(r.org)}}));
                }
            }
            let res = w
                .call(
                    org,
                    who,
                    Method::POST,
                    "/v1/check/batch",
                    Some(json!({"checks": checks})),
                )
                .await;
            if m.role(org, who).is_none() {
                assert!(
                    matches!(res.status().as_u16(), 401 | 403),
                    "{ctx}: {}",
                    res.status()
                );
                continue;
            }
            let status = res.status();
            let body: Value = res.json().await.unwrap();
            assert_eq!(status, 200, "{ctx}: {body}");
            let results = body["results"].as_array().unwrap();
            for (k, r) in m.records.iter().enumerate() {
                let read = &results[2 * k];
                let write = &results[2 * k + 1];
                let want_read = m.reads(org, who, r);
                let want_write = m.writes(org, who, r);
                assert_eq!(
                    read["allowed"],
                    want_read.is_some(),
                    "{ctx}: read {r:?}: {read}"
                );
                assert_eq!(
                    write["allowed"],
                    want_write.is_some(),
                    "{ctx}: write {r:?}: {write}"
                );
                if let Some(v) = want_read {
                    assert_eq!(read["via"], v, "{ctx}: read via {r:?}");
                }
                if let Some(v) = want_write {
                    assert_eq!(write["via"], v, "{ctx}: write via {r:?}");
                }
            }
            // One read, by id: 200 exactly when the model says so, and then the right record.
            let r = &m.records[(step + org * PEOPLE + who) % m.records.len()];
            let res = w
                .call(
                    org,
                    who,
                    Method::GET,
                    &format!("/v1/records/{}", r.id),
                    None,
                )
                .await;
            let status = res.status().as_u16();
            match m.reads(org, who, r) {
                Some(_) => {
                    assert_eq!(status, 200, "{ctx}: read {r:?}");
                    let body: Value = res.json().await.unwrap();
                    assert_eq!(body["external_id"], r.ext);
                    assert_eq!(body["organization"], w.org_id(r.org));
                }
                None => assert!(matches!(status, 403 | 404), "{ctx}: read {r:?}: {status}"),
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(3),
        max_shrink_iters: 16,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn every_listing_and_check_agrees_with_the_model(ops in proptest::collection::vec(op(), 25..45)) {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        rt.block_on(async {
            let w = world().await;
            let mut m = Model {
                roles: vec![
                    [Some(Role::Owner), Some(Role::Member), Some(Role::Member)].to_vec();
                    ORGS
                ],
                ..Model::default()
            };
            for (step, op) in ops.iter().enumerate() {
                apply(&w, &mut m, op).await;
                agree(&w, &m, step).await;
            }
            w.app.stop().await;
        });
    }
}
