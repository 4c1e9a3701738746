//! One access decision in-process (issue 19, target: at most 2 microseconds): reading an
//! organisation-wide record, a private one whose allowed list of 100 names the caller last, and
//! writing another organisation's record through a grant, each from the caller's current
//! permissions (a member's role grants 16). The baseline, measured in the same run, is one
//! permission lookup alone. The store reads that feed a decision (membership, record, grant)
//! are measured over HTTP by `python3 bench/run.py --only access`; `cached_check_10k_records`
//! adds the cache lookups a cached check makes (the record among 10,000, the role's set).
#![allow(clippy::unwrap_used, clippy::indexing_slicing, missing_docs)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use gatehouse_core::OrgId;
use std::sync::Arc;

use gatehouse_core::product::access::{Caller, can_read, can_via_grant, can_write};
use gatehouse_core::product::decision_cache::DecisionCache;
use gatehouse_core::product::{ProductCatalogue, ProductPermission, RecordType};
use gatehouse_core::store::{GrantAccess, Level, RecordRow};
use time::OffsetDateTime;
use uuid::Uuid;

fn product() -> ProductCatalogue {
    let perm = |n: &str| ProductPermission {
        name: n.into(),
        description: "d".into(),
        step_up: false,
        roles: Vec::new(),
    };
    ProductCatalogue {
        permissions: vec![perm("report.read"), perm("report.write"), perm("memo.read")],
        record_types: vec![
            RecordType {
                name: "memo".into(),
                read: "memo.read".into(),
                write: "memo.write".into(),
            },
            RecordType {
                name: "report".into(),
                read: "report.read".into(),
                write: "report.write".into(),
            },
        ],
    }
}

fn record(level: Level, allowed: Vec<String>) -> RecordRow {
    RecordRow {
        org_id: OrgId::from_uuid(Uuid::from_u128(1)),
        id: Uuid::from_u128(2),
        kind: "report".into(),
        external_id: "r5000".into(),
        namespace: Some("ns1".into()),
        owner: format!("user:{}", Uuid::from_u128(3)),
        level,
        allowed,
        tags: Vec::new(),
        has_content: false,
        created_at: OffsetDateTime::UNIX_EPOCH,
        updated_at: OffsetDateTime::UNIX_EPOCH,
        expires_at: None,
    }
}

fn decision(c: &mut Criterion) {
    let product = product();
    let me = format!("user:{}", Uuid::from_u128(99));
    let mut permissions: Vec<String> = gatehouse_core::identity::permissions::CATALOGUE
        .iter()
        .map(|(n, _)| (*n).to_owned())
        .collect();
    permissions.truncate(13);
    permissions.extend(["memo.read", "report.read", "report.write"].map(str::to_owned));
    let caller = Caller {
        me: me.clone(),
        permissions: permissions.into(),
    };
    let org_wide = record(Level::Organization, Vec::new());
    let mut allowed: Vec<String> = (0..99)
        .map(|i| format!("user:{}", Uuid::from_u128(1000 + i)))
        .collect();
    allowed.push(me);
    let private = record(Level::Private, allowed);

    let mut g = c.benchmark_group("decision");
    g.bench_function("baseline_permission_lookup", |b| {
        b.iter(|| black_box(&caller).holds(black_box("report.write")));
    });
    g.bench_function("read_organization_record", |b| {
        b.iter(|| {
            can_read(
                black_box(&caller),
                black_box(&product),
                black_box(&org_wide),
            )
        });
    });
    g.bench_function("read_private_allowed_100", |b| {
        b.iter(|| can_read(black_box(&caller), black_box(&product), black_box(&private)));
    });
    g.bench_function("write_organization_record", |b| {
        b.iter(|| {
            can_write(
                black_box(&caller),
                black_box(&product),
                black_box(&org_wide),
            )
        });
    });
    g.bench_function("write_through_grant", |b| {
        b.iter(|| {
            can_via_grant(
                black_box(&caller),
                black_box(&product),
                black_box(&org_wide),
                true,
                GrantAccess::ReadWrite,
            )
        });
    });
    // The whole in-process part of a cached check: the record from a decision cache holding
    // 10,000 records, the role's permissions from it, then the decision.
    let cache = DecisionCache::new(100_000);
    let org = OrgId::from_uuid(Uuid::from_u128(1));
    let now = OffsetDateTime::UNIX_EPOCH + time::Duration::days(1);
    for i in 0..10_000 {
        let mut r = org_wide.clone();
        r.external_id = format!("r{i}");
        cache.put_record(
            org,
            (org, "report", &r.external_id.clone()),
            Some(Arc::new((r, None))),
            now,
            cache.generation(),
        );
    }
    cache.put_role(
        org,
        "member",
        Arc::clone(&caller.permissions),
        now,
        cache.generation(),
    );
    g.bench_function("cached_check_10k_records", |b| {
        b.iter(|| {
            let seen = cache
                .record(org, org, "report", black_box("r5002"), now)
                .flatten();
            let permissions = cache.role(org, "member", now).unwrap_or_default();
            let caller = Caller {
                me: black_box(&caller.me).clone(),
                permissions,
            };
            seen.and_then(|s| can_read(&caller, &product, &s.0))
        });
    });
    g.finish();
}

criterion_group!(benches, decision);
criterion_main!(benches);
