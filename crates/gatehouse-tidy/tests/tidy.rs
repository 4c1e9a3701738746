//! Repository rules, checked inside `cargo test` (the rules themselves are in `src/lib.rs`):
//! - layers point one way: crypto <- core <- {stores, infra, http} <- gatehouse;
//! - forbidden dependencies: the domain never depends on HTTP or SQL crates; adapter crates
//!   (`redis`, `lettre`, `sqlx`, `reqwest`, `opentelemetry-otlp`) stay out of core and http; infra
//!   never depends on `axum`, `sqlx`, `hyper`, `tower` or `utoipa`;
//! - `gatehouse-core`'s `testing` feature is enabled only under `[dev-dependencies]` (the
//!   test-support crate `gatehouse-store-tests` excepted);
//! - every crate opts into the workspace lints, and every crate root forbids `unsafe`;
//! - no source file outside test code is over 800 lines.
//!
//! Each rule runs twice: on this workspace, where it must find nothing, and on a planted violation
//! (`catches_*`), which it must report by the offending crate or file.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::{Path, PathBuf};

use gatehouse_tidy::{
    Manifests, forbid_unsafe_violations, forbidden_dependency_violations, layer_violations,
    long_file_violations, store_trait_violations, testing_feature_violations, tx_file_violations,
    workspace_lints_violations,
};

// ---- the workspace -------------------------------------------------------------------------

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The members, discovered from `crates/*/Cargo.toml`.
fn workspace_manifests() -> Manifests {
    let mut out = Manifests::new();
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

/// Every `*.rs` under `dir`, recursively, as (path relative to the workspace root, contents).
fn rust_files(dir: &Path, out: &mut Vec<(String, String)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let relative = path.strip_prefix(workspace_root()).unwrap();
            let text = std::fs::read_to_string(&path).unwrap();
            out.push((relative.display().to_string(), text));
        }
    }
}

/// Every `*.rs` under `crates/*/src/`, as (path, contents).
fn workspace_sources() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for name in workspace_manifests().keys() {
        rust_files(
            &workspace_root().join("crates").join(name).join("src"),
            &mut out,
        );
    }
    out
}

fn is_crate_root(path: &str) -> bool {
    let p = Path::new(path);
    let parent = p.parent().unwrap();
    (parent.ends_with("src") && (p.ends_with("lib.rs") || p.ends_with("main.rs")))
        || parent.ends_with("src/bin")
}

#[test]
fn layers_point_one_way() {
    let violations = layer_violations(&workspace_manifests());
    assert!(violations.is_empty(), "{violations:#?}");
}

#[test]
fn lower_layers_stay_free_of_outer_frameworks() {
    let violations = forbidden_dependency_violations(&workspace_manifests());
    assert!(violations.is_empty(), "{violations:#?}");
}

#[test]
fn testing_feature_is_enabled_only_in_dev_dependencies() {
    let violations = testing_feature_violations(&workspace_manifests());
    assert!(violations.is_empty(), "{violations:#?}");
}

#[test]
fn every_crate_uses_workspace_lints() {
    let violations = workspace_lints_violations(&workspace_manifests());
    assert!(violations.is_empty(), "{violations:#?}");
}

#[test]
fn every_crate_root_forbids_unsafe() {
    let roots: Vec<_> = workspace_sources()
        .into_iter()
        .filter(|(path, _)| is_crate_root(path))
        .collect();
    assert!(
        roots
            .iter()
            .any(|(p, _)| p.ends_with("gatehouse/src/main.rs"))
    );
    let violations = forbid_unsafe_violations(&roots);
    assert!(violations.is_empty(), "{violations:#?}");
}

#[test]
fn no_source_file_is_over_800_lines() {
    let files: Vec<_> = workspace_sources()
        .into_iter()
        .map(|(path, text)| (path, text.lines().count()))
        .collect();
    let violations = long_file_violations(&files);
    assert!(violations.is_empty(), "{violations:#?}");
}

#[test]
fn backend_tx_files_stay_small_and_store_traits_narrow() {
    let sources = workspace_sources();
    let files: Vec<_> = sources
        .iter()
        .map(|(path, text)| (path.clone(), text.lines().count()))
        .collect();
    assert!(
        files
            .iter()
            .any(|(p, _)| p.ends_with("store-sqlite/src/tx.rs")),
        "the scan must see the backends' tx.rs"
    );
    let violations = tx_file_violations(&files);
    assert!(violations.is_empty(), "{violations:#?}");
    assert!(
        sources
            .iter()
            .any(|(p, t)| p == "crates/gatehouse-core/src/store/mod.rs"
                && t.contains("\npub trait PlatformTx")),
        "the scan must see the store traits"
    );
    let violations = store_trait_violations(&sources);
    assert!(violations.is_empty(), "{violations:#?}");
}

// ---- planted violations --------------------------------------------------------------------

fn manifests(crates: &[(&str, &str)]) -> Manifests {
    crates
        .iter()
        .map(|(name, text)| ((*name).to_owned(), text.parse().unwrap()))
        .collect()
}

/// Asserts `violations` are exactly one per `expected` fragment, each containing it.
fn assert_reports(violations: &[String], expected: &[&str]) {
    assert_eq!(violations.len(), expected.len(), "{violations:#?}");
    for fragment in expected {
        assert!(
            violations.iter().any(|v| v.contains(fragment)),
            "no violation mentions {fragment:?}: {violations:#?}"
        );
    }
}

#[test]
fn catches_a_layer_pointing_the_wrong_way() {
    let planted = manifests(&[
        (
            "gatehouse-core",
            r#"
            [dependencies]
            gatehouse-crypto.workspace = true
            gatehouse-http.workspace = true
            "#,
        ),
        (
            "gatehouse-http",
            r#"
            [target.'cfg(unix)'.build-dependencies]
            sqlite = { workspace = true, package = "gatehouse-store-sqlite" }
            "#,
        ),
        ("gatehouse-newcomer", "[dependencies]"),
    ]);
    assert_reports(
        &layer_violations(&planted),
        &[
            "gatehouse-core depends on gatehouse-http",
            "gatehouse-http depends on gatehouse-store-sqlite",
            "gatehouse-newcomer is not in the layer table",
        ],
    );
}

#[test]
fn catches_an_outer_framework_in_a_lower_layer() {
    let planted = manifests(&[
        ("gatehouse-crypto", "[dependencies]\ntokio = \"1\""),
        ("gatehouse-core", "[dependencies]\naxum.workspace = true"),
        // A dev-dependency is fine: it never reaches the product.
        ("gatehouse-vault", "[dev-dependencies]\nreqwest = \"0.12\""),
    ]);
    assert_reports(
        &forbidden_dependency_violations(&planted),
        &[
            "gatehouse-crypto depends on tokio",
            "gatehouse-core depends on axum",
        ],
    );
}

#[test]
fn catches_an_adapter_crate_in_core_or_http() {
    let planted = manifests(&[
        (
            "gatehouse-core",
            "[dependencies]\nredis.workspace = true\nlettre.workspace = true",
        ),
        (
            "gatehouse-http",
            r#"
            [dependencies]
            otlp = { workspace = true, package = "opentelemetry-otlp" }
            [target.'cfg(unix)'.dependencies]
            sqlx.workspace = true
            "#,
        ),
    ]);
    assert_reports(
        &forbidden_dependency_violations(&planted),
        &[
            "gatehouse-core depends on redis",
            "gatehouse-core depends on lettre",
            "gatehouse-http depends on opentelemetry-otlp",
            "gatehouse-http depends on sqlx",
        ],
    );
}

#[test]
fn catches_a_framework_in_infra() {
    let planted = manifests(&[(
        "gatehouse-infra",
        "[dependencies]\nredis.workspace = true\naxum.workspace = true\nutoipa.workspace = true",
    )]);
    assert_reports(
        &forbidden_dependency_violations(&planted),
        &[
            "gatehouse-infra depends on axum",
            "gatehouse-infra depends on utoipa",
        ],
    );
}

#[test]
fn catches_testing_enabled_through_a_normal_dependency() {
    let planted = manifests(&[
        (
            "gatehouse-bench",
            r#"
            [dependencies]
            gatehouse-core = { workspace = true, features = ["testing"] }
            "#,
        ),
        (
            "gatehouse",
            r#"
            [features]
            demo = ["gatehouse-core/testing"]
            [dependencies]
            gatehouse-core.workspace = true
            [dev-dependencies]
            gatehouse-core = { workspace = true, features = ["testing"] }
            "#,
        ),
        // The test-support crate is exempt.
        (
            "gatehouse-store-tests",
            r#"
            [dependencies]
            gatehouse-core = { workspace = true, features = ["testing"] }
            "#,
        ),
    ]);
    assert_reports(
        &testing_feature_violations(&planted),
        &[
            "gatehouse-bench enables gatehouse-core/testing",
            "gatehouse's feature `demo` enables gatehouse-core/testing",
        ],
    );
}

#[test]
fn catches_a_crate_without_workspace_lints() {
    let planted = manifests(&[
        ("gatehouse-core", "[lints]\nworkspace = true"),
        ("gatehouse-http", "[lints.rust]\nunsafe_code = \"forbid\""),
        ("gatehouse-infra", "[dependencies]"),
    ]);
    assert_reports(
        &workspace_lints_violations(&planted),
        &[
            "gatehouse-http: add [lints]",
            "gatehouse-infra: add [lints]",
        ],
    );
}

#[test]
fn catches_a_crate_root_without_forbid_unsafe() {
    let roots = [
        (
            "crates/gatehouse-core/src/lib.rs".to_owned(),
            "//! Core.\n#![forbid(unsafe_code)]\n".to_owned(),
        ),
        (
            "crates/gatehouse/src/main.rs".to_owned(),
            "//! Main.\n#![deny(unsafe_code)]\n".to_owned(),
        ),
    ];
    assert_reports(
        &forbid_unsafe_violations(&roots),
        &["crates/gatehouse/src/main.rs"],
    );
}

#[test]
fn catches_a_long_source_file() {
    let files = [
        ("crates/gatehouse-core/src/kernel.rs".to_owned(), 800),
        ("crates/gatehouse/src/config.rs".to_owned(), 801),
        ("crates/gatehouse-store-tests/src/cases.rs".to_owned(), 900),
        // Test code may be longer.
        (
            "crates/gatehouse-core/src/identity/tests.rs".to_owned(),
            2000,
        ),
        ("crates/gatehouse-http/src/tests/routes.rs".to_owned(), 2000),
    ];
    assert_reports(
        &long_file_violations(&files),
        &[
            "crates/gatehouse/src/config.rs has 801 lines",
            "crates/gatehouse-store-tests/src/cases.rs has 900 lines",
        ],
    );
}

#[test]
fn catches_a_long_backend_tx_file() {
    let files = [
        ("crates/gatehouse-store-sqlite/src/tx.rs".to_owned(), 200),
        ("crates/gatehouse-store-postgres/src/tx.rs".to_owned(), 930),
        // Other files named tx.rs are not backends' transaction files.
        ("crates/gatehouse-core/src/tx.rs".to_owned(), 500),
    ];
    assert_reports(
        &tx_file_violations(&files),
        &["crates/gatehouse-store-postgres/src/tx.rs has 930 lines"],
    );
}

#[test]
fn catches_a_wide_store_trait() {
    let wide: String = (0..16)
        .map(|i| format!("    async fn m{i}(&mut self) -> Result<(), StoreError>;\n"))
        .collect();
    let narrow: String = (0..15).map(|i| format!("    fn m{i}(&self);\n")).collect();
    let sources = [
        (
            "crates/gatehouse-core/src/store/mod.rs".to_owned(),
            format!(
                "#[async_trait]\npub trait PlatformTx: Send {{\n{wide}}}\n\npub trait Fine {{\n{narrow}}}\n"
            ),
        ),
        // Outside the store module, traits are not counted.
        (
            "crates/gatehouse-core/src/kernel.rs".to_owned(),
            format!("pub trait Elsewhere {{\n{wide}}}\n"),
        ),
    ];
    assert_reports(
        &store_trait_violations(&sources),
        &["trait PlatformTx has 16 methods"],
    );
}
