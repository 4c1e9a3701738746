//! Repository rules ("tidy"). Each rule is a function from its inputs (the crates' parsed
//! manifests by crate name, or the source files) to the violations it finds, each naming the
//! offending crate or file; an empty list means the rule holds. `tests/tidy.rs` runs every rule on
//! this workspace, and on a planted violation that the rule must report.
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::path::{Component, Path};

/// Each workspace crate's parsed `Cargo.toml`, by crate name.
pub type Manifests = BTreeMap<String, toml::Table>;

/// For each workspace crate: the workspace crates its normal dependencies may name.
pub const ALLOWED: &[(&str, &[&str])] = &[
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

/// Third-party crates a layer must never have as a normal dependency (invariants written as
/// absences).
pub const FORBIDDEN: &[(&str, &[&str])] = &[
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
    // The domain knows no framework, and reaches Redis, SMTP, SQL, HTTP clients, the OTLP
    // exporter and an HSM's PKCS#11 module (the master key, `keyring::MasterKek`) only through its
    // own traits: adapters implement them in outer crates, so the domain
    // stays testable in memory and a backend can change without touching it.
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
            "redis",
            "lettre",
            "opentelemetry-otlp",
            "cryptoki",
        ],
    ),
    (
        "gatehouse-vault",
        &["axum", "sqlx", "hyper", "tower", "reqwest"],
    ),
    // The HTTP layer translates requests into kernel calls and nothing else: storage, mail, Redis
    // and span export belong to the adapters the binary wires in, never to the handlers.
    (
        "gatehouse-http",
        &["sqlx", "reqwest", "redis", "lettre", "opentelemetry-otlp"],
    ),
    (
        "gatehouse-store-sqlite",
        &["axum", "hyper", "tower", "utoipa"],
    ),
    (
        "gatehouse-store-postgres",
        &["axum", "hyper", "tower", "utoipa"],
    ),
    // Infra holds the mail and Redis adapters: it serves the domain's traits, so neither the HTTP
    // stack nor SQL (the stores' business) belongs in it.
    (
        "gatehouse-infra",
        &["axum", "sqlx", "hyper", "tower", "utoipa"],
    ),
];

/// Crates that may enable `gatehouse-core`'s `testing` feature as a normal dependency: test-support
/// libraries, which are only ever dev-dependencies themselves (the layer table gives no crate
/// leave to depend on them normally), so the feature never reaches a shipped build through them.
pub const TESTING_EXEMPT: &[&str] = &["gatehouse-store-tests"];

/// The longest a non-test source file may be.
pub const MAX_LINES: usize = 800;

/// The normal dependencies of a manifest's `section` (`dependencies`, `build-dependencies`),
/// including target-specific ones, as (crate name, declaration). A renamed dependency
/// (`alias = { package = "real" }`) counts under its real name.
fn dependencies<'a>(manifest: &'a toml::Table, section: &str) -> Vec<(&'a str, &'a toml::Value)> {
    let targets = manifest
        .get("target")
        .and_then(toml::Value::as_table)
        .into_iter()
        .flat_map(|t| t.values())
        .map(|t| t.get(section));
    std::iter::once(manifest.get(section))
        .chain(targets)
        .flatten()
        .filter_map(toml::Value::as_table)
        .flat_map(|t| t.iter())
        .map(|(key, decl)| {
            let name = decl.get("package").and_then(toml::Value::as_str);
            (name.unwrap_or(key), decl)
        })
        .collect()
}

/// Layers point one way, crypto <- core <- {stores, infra, http} <- gatehouse: each crate may name
/// only the workspace crates [`ALLOWED`] lists for it, so the domain never learns about its
/// adapters and a new crate must be placed in the table before it can depend on anything.
#[must_use]
pub fn layer_violations(manifests: &Manifests) -> Vec<String> {
    let allowed: BTreeMap<_, _> = ALLOWED.iter().copied().collect();
    let mut violations = Vec::new();
    for (name, manifest) in manifests {
        let Some(ok) = allowed.get(name.as_str()) else {
            violations.push(format!(
                "{name} is not in the layer table (gatehouse-tidy ALLOWED); add it"
            ));
            continue;
        };
        for section in ["dependencies", "build-dependencies"] {
            for (dep, _) in dependencies(manifest, section) {
                if dep.starts_with("gatehouse") && !ok.contains(&dep) {
                    violations.push(format!("{name} depends on {dep}, a layer it may not use"));
                }
            }
        }
    }
    violations
}

/// No crate has a normal dependency that [`FORBIDDEN`] lists for it.
#[must_use]
pub fn forbidden_dependency_violations(manifests: &Manifests) -> Vec<String> {
    let mut violations = Vec::new();
    for (name, banned) in FORBIDDEN {
        let Some(manifest) = manifests.get(*name) else {
            continue;
        };
        for (dep, _) in dependencies(manifest, "dependencies") {
            if banned.contains(&dep) {
                violations.push(format!("{name} depends on {dep}, which it must never use"));
            }
        }
    }
    violations
}

/// `gatehouse-core`'s `testing` feature (scopes and audit proofs made without any check) is enabled
/// only under `[dev-dependencies]`. Cargo unifies features across everything built together, so a
/// crate enabling it as a normal dependency (or through one of its own features) switches the
/// test-only constructors on in the `gatehouse` binary whenever both are built in one command.
/// [`TESTING_EXEMPT`] crates are exempt.
#[must_use]
pub fn testing_feature_violations(manifests: &Manifests) -> Vec<String> {
    let mut violations = Vec::new();
    for (name, manifest) in manifests {
        if TESTING_EXEMPT.contains(&name.as_str()) {
            continue;
        }
        for (dep, decl) in dependencies(manifest, "dependencies") {
            let features = decl.get("features").and_then(toml::Value::as_array);
            if dep == "gatehouse-core"
                && features.is_some_and(|f| f.iter().any(|f| f.as_str() == Some("testing")))
            {
                violations.push(format!(
                    "{name} enables gatehouse-core/testing in [dependencies]; only [dev-dependencies] may"
                ));
            }
        }
        let own_features = manifest.get("features").and_then(toml::Value::as_table);
        for (feature, enables) in own_features.into_iter().flatten() {
            let enables = enables.as_array().map(Vec::as_slice).unwrap_or_default();
            if enables.iter().any(|e| {
                matches!(
                    e.as_str(),
                    Some("gatehouse-core/testing" | "gatehouse-core?/testing")
                )
            }) {
                violations.push(format!(
                    "{name}'s feature `{feature}` enables gatehouse-core/testing; only [dev-dependencies] may"
                ));
            }
        }
    }
    violations
}

/// Every crate opts into the workspace lints (`[lints] workspace = true`), so the deny list
/// (unwrap, panic, indexing, unsafe...) holds everywhere rather than where someone remembered it.
#[must_use]
pub fn workspace_lints_violations(manifests: &Manifests) -> Vec<String> {
    manifests
        .iter()
        .filter(|(_, m)| {
            m.get("lints")
                .and_then(|l| l.get("workspace"))
                .and_then(toml::Value::as_bool)
                != Some(true)
        })
        .map(|(name, _)| format!("{name}: add [lints] workspace = true"))
        .collect()
}

/// Every crate root (`src/lib.rs`, `src/main.rs`, `src/bin/*.rs`), given as (path, text), says
/// `#![forbid(unsafe_code)]` itself, so the ban survives even if the crate leaves the workspace
/// lints.
#[must_use]
pub fn forbid_unsafe_violations(roots: &[(String, String)]) -> Vec<String> {
    roots
        .iter()
        .filter(|(_, text)| !text.contains("#![forbid(unsafe_code)]"))
        .map(|(path, _)| format!("{path}: add #![forbid(unsafe_code)]"))
        .collect()
}

/// Test code: files under a `tests` directory and files named `tests.rs`. The test-support crate
/// `gatehouse-store-tests` is NOT test code here: it is a library under `src/` that every backend
/// imports and reads like product code, so its files stay as short as any other.
fn is_test_code(path: &str) -> bool {
    let path = Path::new(path);
    path.file_name().is_some_and(|f| f == "tests.rs")
        || path
            .components()
            .any(|c| c == Component::Normal("tests".as_ref()))
}

/// No source file outside test code is over [`MAX_LINES`] lines (inline `#[cfg(test)]` modules
/// count: move long ones to a `tests.rs`). A file that long holds several concerns; splitting it
/// keeps each reviewable on its own and its imports honest. Input: (path, line count).
#[must_use]
pub fn long_file_violations(files: &[(String, usize)]) -> Vec<String> {
    files
        .iter()
        .filter(|(path, lines)| *lines > MAX_LINES && !is_test_code(path))
        .map(|(path, lines)| format!("{path} has {lines} lines (at most {MAX_LINES}); split it"))
        .collect()
}

/// The most lines a storage backend's `tx.rs` may have.
pub const MAX_TX_LINES: usize = 200;
/// The most methods one store trait may declare.
pub const MAX_STORE_TRAIT_METHODS: usize = 15;

/// Each backend's `tx.rs` only opens a transaction, enters a scope and commits (at most
/// [`MAX_TX_LINES`] lines): store methods live in the role file named after their noun, so the
/// two backends compare file by file and no forwarding layer grows back. Input: (path, lines).
#[must_use]
pub fn tx_file_violations(files: &[(String, usize)]) -> Vec<String> {
    files
        .iter()
        .filter(|(path, lines)| {
            path.starts_with("crates/gatehouse-store-")
                && path.ends_with("/src/tx.rs")
                && *lines > MAX_TX_LINES
        })
        .map(|(path, lines)| {
            format!(
                "{path} has {lines} lines (at most {MAX_TX_LINES}); store methods belong in their role file"
            )
        })
        .collect()
}

/// No store trait in `gatehouse-core/src/store/` declares more than
/// [`MAX_STORE_TRAIT_METHODS`] methods: a wide trait is several roles in one, and every
/// backend pays for it. Counts the `fn` lines at the trait's own indentation between a
/// top-level `pub trait` line and its closing brace. Input: (path, text).
#[must_use]
pub fn store_trait_violations(sources: &[(String, String)]) -> Vec<String> {
    let mut out = Vec::new();
    for (path, text) in sources {
        if !path.starts_with("crates/gatehouse-core/src/store/") {
            continue;
        }
        let mut current: Option<(String, usize)> = None;
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("pub trait ") {
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                current = Some((name, 0));
            } else if line == "}" {
                if let Some((name, methods)) = current.take()
                    && methods > MAX_STORE_TRAIT_METHODS
                {
                    out.push(format!(
                        "{path}: trait {name} has {methods} methods (at most {MAX_STORE_TRAIT_METHODS}); split it by role"
                    ));
                }
            } else if let Some((_, methods)) = current.as_mut() {
                let t = line.trim_start();
                let indent = line.len() - t.len();
                if indent == 4 && (t.starts_with("fn ") || t.starts_with("async fn ")) {
                    *methods += 1;
                }
            }
        }
    }
    out
}
