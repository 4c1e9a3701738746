//! The controls catalogue against the repository: `docs/CONTROLS.md` is what the catalogue
//! renders, every test the catalogue cites exists, and every control id the code and docs name is
//! one the catalogue has.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use common::{defines, is_word};
use gatehouse_core::posture::catalogue::{Built, all, find};
use gatehouse_core::posture::markdown::render;

mod common;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn controls_doc_matches_the_catalogue() {
    let path = root().join("docs/CONTROLS.md");
    let rendered = render();
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some_and(|v| v == "1") {
        fs::write(&path, &rendered).unwrap();
    }
    let on_disk = fs::read_to_string(&path).unwrap();
    if on_disk != rendered {
        let first = on_disk
            .lines()
            .zip(rendered.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| on_disk.lines().count().min(rendered.lines().count()));
        panic!(
            "docs/CONTROLS.md is not what the catalogue renders (first difference at line {}:\n  file:      {:?}\n  catalogue: {:?}).\n\
             Edit crates/gatehouse-core/src/posture/catalogue/, then rewrite the file with\n  \
             UPDATE_SNAPSHOTS=1 cargo nextest run --workspace --exclude gatehouse-store-postgres --exclude gatehouse-infra -E 'test(/controls_doc/)'",
            first + 1,
            on_disk.lines().nth(first).unwrap_or("<end of file>"),
            rendered.lines().nth(first).unwrap_or("<end of text>"),
        );
    }
}

#[test]
fn every_control_states_a_promise_a_ledger_and_its_evidence() {
    for c in all() {
        let p = c.promise;
        assert!(
            p.ends_with('.') && !p.contains('\n') && p.matches(". ").count() == 0,
            "{}: the promise is one sentence on one line: {p:?}",
            c.id
        );
        assert!(!c.ledger.trim().is_empty(), "{} has no ledger", c.id);
        match c.built {
            Built::NotBuilt => assert!(
                c.evidence.is_empty(),
                "{} is not built yet cites tests",
                c.id
            ),
            Built::Partial(gap) => {
                assert!(
                    !gap.is_empty(),
                    "{} is partial without saying what is missing",
                    c.id
                );
                assert!(!c.evidence.is_empty(), "{} cites no tests", c.id);
            }
            Built::Done(_) => assert!(!c.evidence.is_empty(), "{} cites no tests", c.id),
        }
        for e in c.evidence {
            assert!(!e.tests.is_empty(), "{}: {} names no test", c.id, e.file);
        }
    }
}

#[test]
fn every_evidence_test_exists() {
    let mut missing = Vec::new();
    let mut cited = 0;
    for c in all() {
        for e in c.evidence {
            let Ok(source) = fs::read_to_string(root().join(e.file)) else {
                missing.push(format!("{}: {} does not exist", c.id, e.file));
                continue;
            };
            for t in e.tests {
                cited += 1;
                if !defines(&source, t) {
                    missing.push(format!("{}: {} has no `fn {t}`", c.id, e.file));
                }
            }
        }
    }
    assert!(
        missing.is_empty(),
        "stale evidence:\n{}",
        missing.join("\n")
    );
    assert!(
        cited > 300,
        "only {cited} tests cited: is the catalogue filled?"
    );
}

#[test]
fn the_definition_check_is_word_bounded() {
    let source = "async fn a_test() {}\nfn generic<T>() {}\nfn xfn b() {}\nfn longer_name() {}";
    assert!(defines(source, "a_test"));
    assert!(defines(source, "generic"));
    assert!(!defines(source, "b"), "`xfn b(` is not a definition of b");
    assert!(!defines(source, "name"), "`longer_name` is not `name`");
    assert!(!defines(source, "longer"));
}

/// Tokens shaped like control ids that are something else. Each is named with its reason.
const NOT_CONTROL_IDS: &[(&str, &str)] = &[(
    "B64",
    "the base64 engine's import alias (`STANDARD as B64`)",
)];

/// Control-id-shaped tokens in `text`: an uppercase A to H and one or two digits, with no
/// letter, digit or underscore on either side (so `A10` is one token and `A100`, `0xA1` none).
fn id_tokens(text: &str) -> Vec<&str> {
    let b = text.as_bytes();
    let word = |i: usize| b.get(i).is_some_and(|&c| is_word(char::from(c)));
    let mut found = Vec::new();
    for (i, &c) in b.iter().enumerate() {
        if !(b'A'..=b'H').contains(&c) || (i > 0 && word(i - 1)) {
            continue;
        }
        let digits = b[i + 1..].iter().take_while(|d| d.is_ascii_digit()).count();
        if (1..=2).contains(&digits) && !word(i + 1 + digits) {
            found.push(&text[i..=i + digits]);
        }
    }
    found
}

#[test]
fn id_tokens_are_whole_words() {
    assert_eq!(
        id_tokens("A1, (A10) H3. A100 0xA1 XA1 A1_ C2x E5-F1 I1 a1 `G3`"),
        vec!["A1", "A10", "H3", "E5", "F1", "G3"]
    );
}

/// The files the scan reads: Rust under `crates/` (no build output), Markdown under `docs/`, the
/// README, and everything under `bench/`, `scripts/` and `deploy/`.
fn scanned_files() -> Vec<PathBuf> {
    fn walk(dir: &Path, keep: &dyn Fn(&Path) -> bool, out: &mut Vec<PathBuf>) {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                if path.file_name().is_some_and(|n| n != "target") {
                    walk(&path, keep, out);
                }
            } else if keep(&path) {
                out.push(path);
            }
        }
    }
    let r = root();
    let ext = |e: &'static str| move |p: &Path| p.extension().is_some_and(|x| x == e);
    let mut files = vec![r.join("README.md")];
    walk(&r.join("crates"), &ext("rs"), &mut files);
    walk(&r.join("docs"), &ext("md"), &mut files);
    for dir in ["bench", "scripts", "deploy"] {
        walk(&r.join(dir), &|_| true, &mut files);
    }
    files
}

#[test]
fn every_control_id_named_in_the_repository_is_in_the_catalogue() {
    let r = root();
    let allowed: BTreeSet<&str> = NOT_CONTROL_IDS.iter().map(|(t, _)| *t).collect();
    let mut unknown = Vec::new();
    // Mentions outside the generated document and the catalogue itself, which name every id.
    let mut mentions: BTreeMap<String, usize> = BTreeMap::new();
    let mut named = BTreeSet::new();
    for path in scanned_files() {
        let Ok(text) = fs::read_to_string(&path) else {
            continue; // not UTF-8: no text to name a control in
        };
        let rel = path
            .strip_prefix(&r)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        let generated = rel == "docs/CONTROLS.md" || rel.contains("/posture/catalogue/");
        for (n, line) in text.lines().enumerate() {
            for t in id_tokens(line) {
                if allowed.contains(t) {
                    continue;
                }
                let Some(control) = find(t) else {
                    unknown.push(format!("{rel}:{}: {t}", n + 1));
                    continue;
                };
                if !generated {
                    named.insert(control.id);
                    let top = rel.split('/').next().unwrap_or_default().to_owned();
                    *mentions.entry(top).or_default() += 1;
                }
            }
        }
    }
    assert!(
        unknown.is_empty(),
        "ids not in the catalogue (a typo, or a control to add; a token that is no control \
         goes in NOT_CONTROL_IDS with its reason):\n{}",
        unknown.join("\n")
    );
    let total: usize = mentions.values().sum();
    assert!(total > 100, "only {total} mentions found: {mentions:?}");
    for top in ["crates", "docs"] {
        assert!(
            mentions.get(top).is_some_and(|&n| n > 10),
            "{top}: {mentions:?}"
        );
    }
    let unnamed: Vec<&str> = all()
        .map(|c| c.id)
        .filter(|id| !named.contains(id))
        .collect();
    assert!(
        unnamed.len() <= 3,
        "the scan found none of {unnamed:?} outside the catalogue: does it read the repository?"
    );
}
