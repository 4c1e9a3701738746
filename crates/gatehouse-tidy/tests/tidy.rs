//! Repository rules, checked inside `cargo test`:
//! - layers point one way: crypto <- core <- {stores, infra, http} <- gatehouse;
//! - the domain never depends on HTTP or SQL crates, and the HTTP layer never on SQL;
//! - every crate opts into the workspace lints and forbids `unsafe` in its root file.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// For each workspace crate: the workspace crates its normal dependencies may name.
const ALLOWED: &[(&str, &[&str])] = &[
    ("gatehouse-crypto", &[]),
    ("gatehouse-core", &["gatehouse-crypto"]),
    ("gatehouse-vault", &["gatehouse-crypto"]),
    (
        "gatehouse-store-sqlite",
        &["gatehouse-core", "gatehouse-crypto"],
    ),
    (
        "gatehouse-store-postgres",
        &["gatehouse-core", "gatehouse-crypto"],
    ),
    (
        "gatehouse-store-tests",
        &["gatehouse-core", "gatehouse-crypto"],
    ),
    ("gatehouse-infra", &["gatehouse-core", "gatehouse-crypto"]),
    ("gatehouse-http", &["gatehouse-core", "gatehouse-crypto"]),
    (
        "gatehouse",
        &[
            "gatehouse-crypto",
            "gatehouse-core",
            "gatehouse-store-sqlite",
            "gatehouse-store-postgres",
            "gatehouse-infra",
            "gatehouse-http",
            "gatehouse-vault",
        ],
    ),
    ("gatehouse-tidy", &[]),
    (
        "gatehouse-bench",
        &[
            "gatehouse-crypto",
            "gatehouse-core",
            "gatehouse-infra",
            "gatehouse-store-sqlite",
            "gatehouse-store-postgres",
        ],
    ),
];

/// Third-party crates a layer must never depend on (invariants written as absences).
const FORBIDDEN: &[(&str, &[&str])] = &[
    (
        "gatehouse-crypto",
        &[
            "tokio",
            "axum",
            "sqlx",
            "hyper",
            "tower",
            "reqwest",
            "serde_json",
        ],
    ),
    (
        "gatehouse-core",
        &[
            "axum",
            "sqlx",
            "hyper",
            "tower",
            "tower-http",
            "reqwest",
            "utoipa",
        ],
    ),
    (
        "gatehouse-vault",
        &["axum", "sqlx", "hyper", "tower", "reqwest"],
    ),
    ("gatehouse-http", &["sqlx", "reqwest"]),
    (
        "gatehouse-store-sqlite",
        &["axum", "hyper", "tower", "utoipa"],
    ),
    (
        "gatehouse-store-postgres",
        &["axum", "hyper", "tower", "utoipa"],
    ),
];

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn crates() -> BTreeMap<String, toml::Table> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(workspace_root().join("crates")).unwrap() {
        let dir = entry.unwrap().path();
        let manifest = dir.join("Cargo.toml");
        if !manifest.exists() {
            continue;
        }
        let table: toml::Table = std::fs::read_to_string(&manifest).unwrap().parse().unwrap();
        let name = table["package"]["name"].as_str().unwrap().to_owned();
        assert_eq!(
            dir.file_name().unwrap().to_str().unwrap(),
            name,
            "folder name = crate name"
        );
        out.insert(name, table);
    }
    out
}

fn deps(table: &toml::Table, section: &str) -> Vec<String> {
    table
        .get(section)
        .and_then(|d| d.as_table())
        .map(|d| d.keys().cloned().collect())
        .unwrap_or_default()
}

#[test]
fn layers_point_one_way() {
    let allowed: BTreeMap<_, _> = ALLOWED.iter().copied().collect();
    let mut violations = Vec::new();
    for (name, table) in crates() {
        let Some(ok) = allowed.get(name.as_str()) else {
            violations.push(format!(
                "{name} is not in the layer table of tests/tidy.rs; add it"
            ));
            continue;
        };
        for section in ["dependencies", "build-dependencies"] {
            for dep in deps(&table, section) {
                if dep.starts_with("gatehouse") && !ok.contains(&dep.as_str()) {
                    violations.push(format!("{name} depends on {dep}, a layer it may not use"));
                }
            }
        }
    }
    assert!(violations.is_empty(), "{violations:#?}");
}

#[test]
fn lower_layers_stay_free_of_outer_frameworks() {
    let all = crates();
    let mut violations = Vec::new();
    for (name, banned) in FORBIDDEN {
        let Some(table) = all.get(*name) else {
            continue;
        };
        for dep in deps(table, "dependencies") {
            if banned.contains(&dep.as_str()) {
                violations.push(format!("{name} depends on {dep}"));
            }
        }
    }
    assert!(violations.is_empty(), "{violations:#?}");
}

#[test]
fn every_crate_uses_workspace_lints_and_forbids_unsafe() {
    for (name, table) in crates() {
        assert_eq!(
            table
                .get("lints")
                .and_then(|l| l.get("workspace"))
                .and_then(toml::Value::as_bool),
            Some(true),
            "{name}: add [lints] workspace = true"
        );
        let dir = workspace_root().join("crates").join(&name).join("src");
        for root in ["lib.rs", "main.rs"] {
            let path = dir.join(root);
            if path.exists() {
                let text = std::fs::read_to_string(&path).unwrap();
                assert!(
                    text.contains("#![forbid(unsafe_code)]"),
                    "{}: add #![forbid(unsafe_code)]",
                    path.display()
                );
            }
        }
    }
}

#[test]
fn the_rules_can_fail() {
    // A dependency from the domain up to the HTTP layer must be caught by the table.
    let allowed: BTreeMap<_, _> = ALLOWED.iter().copied().collect();
    assert!(!allowed["gatehouse-core"].contains(&"gatehouse-http"));
    assert!(!allowed["gatehouse-http"].contains(&"gatehouse-store-sqlite"));
}
