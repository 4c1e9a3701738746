//! The OWASP ASVS 5.0.0 map in `docs/SECURITY.md` against the standard and the repository: it has
//! one row for every Level 1 and Level 2 requirement and no other, each with a verdict; every
//! test a row names exists where the row says; and the summary's counts are the rows' counts.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use common::defines;

mod common;

/// Every requirement of ASVS 5.0.0 at Level 1 or 2, with its level, from the standard's CSV
/// (`5.0/docs_en/OWASP_Application_Security_Verification_Standard_5.0.0_en.csv` in OWASP/ASVS):
/// 70 at Level 1 and 183 at Level 2. Level 3 alone is out of scope.
const REQUIREMENTS: &[(&str, u8)] = &[
    // V1
    ("1.1.1", 2),
    ("1.1.2", 2),
    ("1.2.1", 1),
    ("1.2.2", 1),
    ("1.2.3", 1),
    ("1.2.4", 1),
    ("1.2.5", 1),
    ("1.2.6", 2),
    ("1.2.7", 2),
    ("1.2.8", 2),
    ("1.2.9", 2),
    ("1.3.1", 1),
    ("1.3.2", 1),
    ("1.3.3", 2),
    ("1.3.4", 2),
    ("1.3.5", 2),
    ("1.3.6", 2),
    ("1.3.7", 2),
    ("1.3.8", 2),
    ("1.3.9", 2),
    ("1.3.10", 2),
    ("1.3.11", 2),
    ("1.4.1", 2),
    ("1.4.2", 2),
    ("1.4.3", 2),
    ("1.5.1", 1),
    ("1.5.2", 2),
    // V2
    ("2.1.1", 1),
    ("2.1.2", 2),
    ("2.1.3", 2),
    ("2.2.1", 1),
    ("2.2.2", 1),
    ("2.2.3", 2),
    ("2.3.1", 1),
    ("2.3.2", 2),
    ("2.3.3", 2),
    ("2.3.4", 2),
    ("2.4.1", 2),
    // V3
    ("3.2.1", 1),
    ("3.2.2", 1),
    ("3.3.1", 1),
    ("3.3.2", 2),
    ("3.3.3", 2),
    ("3.3.4", 2),
    ("3.4.1", 1),
    ("3.4.2", 1),
    ("3.4.3", 2),
    ("3.4.4", 2),
    ("3.4.5", 2),
    ("3.4.6", 2),
    ("3.5.1", 1),
    ("3.5.2", 1),
    ("3.5.3", 1),
    ("3.5.4", 2),
    ("3.5.5", 2),
    ("3.7.1", 2),
    ("3.7.2", 2),
    // V4
    ("4.1.1", 1),
    ("4.1.2", 2),
    ("4.1.3", 2),
    ("4.2.1", 2),
    ("4.3.1", 2),
    ("4.3.2", 2),
    ("4.4.1", 1),
    ("4.4.2", 2),
    ("4.4.3", 2),
    ("4.4.4", 2),
    // V5
    ("5.1.1", 2),
    ("5.2.1", 1),
    ("5.2.2", 1),
    ("5.2.3", 2),
    ("5.3.1", 1),
    ("5.3.2", 1),
    ("5.4.1", 2),
    ("5.4.2", 2),
    ("5.4.3", 2),
    // V6
    ("6.1.1", 1),
    ("6.1.2", 2),
    ("6.1.3", 2),
    ("6.2.1", 1),
    ("6.2.2", 1),
    ("6.2.3", 1),
    ("6.2.4", 1),
    ("6.2.5", 1),
    ("6.2.6", 1),
    ("6.2.7", 1),
    ("6.2.8", 1),
    ("6.2.9", 2),
    ("6.2.10", 2),
    ("6.2.11", 2),
    ("6.2.12", 2),
    ("6.3.1", 1),
    ("6.3.2", 1),
    ("6.3.3", 2),
    ("6.3.4", 2),
    ("6.4.1", 1),
    ("6.4.2", 1),
    ("6.4.3", 2),
    ("6.4.4", 2),
    ("6.5.1", 2),
    ("6.5.2", 2),
    ("6.5.3", 2),
    ("6.5.4", 2),
    ("6.5.5", 2),
    ("6.6.1", 2),
    ("6.6.2", 2),
    ("6.6.3", 2),
    ("6.8.1", 2),
    ("6.8.2", 2),
    ("6.8.3", 2),
    ("6.8.4", 2),
    // V7
    ("7.1.1", 2),
    ("7.1.2", 2),
    ("7.1.3", 2),
    ("7.2.1", 1),
    ("7.2.2", 1),
    ("7.2.3", 1),
    ("7.2.4", 1),
    ("7.3.1", 2),
    ("7.3.2", 2),
    ("7.4.1", 1),
    ("7.4.2", 1),
    ("7.4.3", 2),
    ("7.4.4", 2),
    ("7.4.5", 2),
    ("7.5.1", 2),
    ("7.5.2", 2),
    ("7.6.1", 2),
    ("7.6.2", 2),
    // V8
    ("8.1.1", 1),
    ("8.1.2", 2),
    ("8.2.1", 1),
    ("8.2.2", 1),
    ("8.2.3", 2),
    ("8.3.1", 1),
    ("8.4.1", 2),
    // V9
    ("9.1.1", 1),
    ("9.1.2", 1),
    ("9.1.3", 1),
    ("9.2.1", 1),
    ("9.2.2", 2),
    ("9.2.3", 2),
    ("9.2.4", 2),
    // V10
    ("10.1.1", 2),
    ("10.1.2", 2),
    ("10.2.1", 2),
    ("10.2.2", 2),
    ("10.3.1", 2),
    ("10.3.2", 2),
    ("10.3.3", 2),
    ("10.3.4", 2),
    ("10.4.1", 1),
    ("10.4.2", 1),
    ("10.4.3", 1),
    ("10.4.4", 1),
    ("10.4.5", 1),
    ("10.4.6", 2),
    ("10.4.7", 2),
    ("10.4.8", 2),
    ("10.4.9", 2),
    ("10.4.10", 2),
    ("10.4.11", 2),
    ("10.5.1", 2),
    ("10.5.2", 2),
    ("10.5.3", 2),
    ("10.5.4", 2),
    ("10.5.5", 2),
    ("10.6.1", 2),
    ("10.6.2", 2),
    ("10.7.1", 2),
    ("10.7.2", 2),
    ("10.7.3", 2),
    // V11
    ("11.1.1", 2),
    ("11.1.2", 2),
    ("11.2.1", 2),
    ("11.2.2", 2),
    ("11.2.3", 2),
    ("11.3.1", 1),
    ("11.3.2", 1),
    ("11.3.3", 2),
    ("11.4.1", 1),
    ("11.4.2", 2),
    ("11.4.3", 2),
    ("11.4.4", 2),
    ("11.5.1", 2),
    ("11.6.1", 2),
    // V12
    ("12.1.1", 1),
    ("12.1.2", 2),
    ("12.1.3", 2),
    ("12.2.1", 1),
    ("12.2.2", 1),
    ("12.3.1", 2),
    ("12.3.2", 2),
    ("12.3.3", 2),
    ("12.3.4", 2),
    // V13
    ("13.1.1", 2),
    ("13.2.1", 2),
    ("13.2.2", 2),
    ("13.2.3", 2),
    ("13.2.4", 2),
    ("13.2.5", 2),
    ("13.3.1", 2),
    ("13.3.2", 2),
    ("13.4.1", 1),
    ("13.4.2", 2),
    ("13.4.3", 2),
    ("13.4.4", 2),
    ("13.4.5", 2),
    // V14
    ("14.1.1", 2),
    ("14.1.2", 2),
    ("14.2.1", 1),
    ("14.2.2", 2),
    ("14.2.3", 2),
    ("14.2.4", 2),
    ("14.3.1", 1),
    ("14.3.2", 2),
    ("14.3.3", 2),
    // V15
    ("15.1.1", 1),
    ("15.1.2", 2),
    ("15.1.3", 2),
    ("15.2.1", 1),
    ("15.2.2", 2),
    ("15.2.3", 2),
    ("15.3.1", 1),
    ("15.3.2", 2),
    ("15.3.3", 2),
    ("15.3.4", 2),
    ("15.3.5", 2),
    ("15.3.6", 2),
    ("15.3.7", 2),
    // V16
    ("16.1.1", 2),
    ("16.2.1", 2),
    ("16.2.2", 2),
    ("16.2.3", 2),
    ("16.2.4", 2),
    ("16.2.5", 2),
    ("16.3.1", 2),
    ("16.3.2", 2),
    ("16.3.3", 2),
    ("16.3.4", 2),
    ("16.4.1", 2),
    ("16.4.2", 2),
    ("16.4.3", 2),
    ("16.5.1", 2),
    ("16.5.2", 2),
    ("16.5.3", 2),
    // V17
    ("17.1.1", 2),
    ("17.2.1", 2),
    ("17.2.2", 2),
    ("17.2.3", 2),
    ("17.2.4", 2),
    ("17.3.1", 2),
    ("17.3.2", 2),
];

const VERDICTS: [&str; 4] = ["met", "partly", "not met", "n/a"];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The map: the part of `docs/SECURITY.md` from its heading to the next top-level section.
fn map_text() -> String {
    let doc = fs::read_to_string(root().join("docs/SECURITY.md")).unwrap();
    let start = doc
        .find("\n## OWASP ASVS 5.0")
        .expect("docs/SECURITY.md has a section headed `## OWASP ASVS 5.0`");
    let rest = &doc[start + 1..];
    let end = rest[3..].find("\n## ").map_or(rest.len(), |e| e + 3);
    rest[..end].to_owned()
}

struct Row {
    id: String,
    level: u8,
    verdict: String,
    shown_by: String,
}

fn cells(line: &str) -> Vec<String> {
    line.trim()
        .trim_matches('|')
        .split(" | ")
        .map(|c| c.trim().to_owned())
        .collect()
}

fn is_requirement_id(s: &str) -> bool {
    let parts: Vec<&str> = s.split('.').collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
}

fn rows(map: &str) -> Vec<Row> {
    map.lines()
        .filter(|l| l.starts_with("| "))
        .map(cells)
        .filter(|c| c.len() == 5 && is_requirement_id(&c[0]))
        .map(|c| Row {
            id: c[0].clone(),
            level: c[1].parse().unwrap_or(0),
            verdict: c[3].clone(),
            shown_by: c[4].clone(),
        })
        .collect()
}

/// Test references in a cell: backticked `crates/....rs::path::to::name`.
fn cited_tests(cell: &str) -> Vec<(String, String)> {
    cell.split('`')
        .skip(1)
        .step_by(2)
        .filter_map(|span| {
            let (file, path) = span.split_once("::")?;
            (file.starts_with("crates/") && file.ends_with(".rs")).then(|| {
                let name = path.rsplit("::").next().unwrap_or(path);
                (file.to_owned(), name.to_owned())
            })
        })
        .collect()
}

#[test]
fn the_map_has_one_row_for_each_level_1_and_2_requirement() {
    let found: Vec<(String, u8)> = rows(&map_text())
        .into_iter()
        .map(|r| (r.id, r.level))
        .collect();
    let unique: BTreeSet<&(String, u8)> = found.iter().collect();
    assert_eq!(unique.len(), found.len(), "a requirement has two rows");
    let want: BTreeSet<(String, u8)> = REQUIREMENTS
        .iter()
        .map(|(id, l)| ((*id).to_owned(), *l))
        .collect();
    let have: BTreeSet<(String, u8)> = found.into_iter().collect();
    let missing: Vec<_> = want.difference(&have).collect();
    let extra: Vec<_> = have.difference(&want).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "missing (or wrong level): {missing:?}; not an L1/L2 requirement: {extra:?}"
    );
    assert_eq!(REQUIREMENTS.len(), 253);
}

#[test]
fn every_row_has_a_verdict_and_says_why() {
    for r in rows(&map_text()) {
        assert!(
            VERDICTS.contains(&r.verdict.as_str()),
            "{}: verdict {:?} is not one of {VERDICTS:?}",
            r.id,
            r.verdict
        );
        assert!(
            r.shown_by.len() >= 12,
            "{}: the row must say what shows it, or why it does not apply",
            r.id
        );
        assert!(!r.shown_by.contains("PENDING"), "{}: still pending", r.id);
        if r.verdict == "met" {
            assert!(
                !cited_tests(&r.shown_by).is_empty() || r.shown_by.contains("no test"),
                "{}: met, but names no test and does not say `no test`",
                r.id
            );
        }
    }
}

#[test]
fn every_test_the_map_names_exists() {
    let mut missing = Vec::new();
    let mut seen = 0;
    for r in rows(&map_text()) {
        for (file, name) in cited_tests(&r.shown_by) {
            seen += 1;
            match fs::read_to_string(root().join(&file)) {
                Ok(source) if defines(&source, &name) => {}
                Ok(_) => missing.push(format!("{}: {file} has no `fn {name}`", r.id)),
                Err(_) => missing.push(format!("{}: no file {file}", r.id)),
            }
        }
    }
    assert!(
        seen > 100,
        "only {seen} tests named: the map was not parsed"
    );
    assert!(missing.is_empty(), "{}", missing.join("\n"));
}

#[test]
fn the_summary_counts_are_the_rows_counts() {
    let map = map_text();
    let mut counted: BTreeMap<u32, [usize; 5]> = BTreeMap::new();
    for r in rows(&map) {
        let chapter: u32 = r.id.split('.').next().unwrap().parse().unwrap();
        let c = counted.entry(chapter).or_default();
        c[0] += 1;
        let v = VERDICTS.iter().position(|v| *v == r.verdict).unwrap();
        c[v + 1] += 1;
    }
    let mut summarised = 0;
    for line in map.lines().filter(|l| l.starts_with("| V")) {
        let c = cells(line);
        let Some(chapter) = c[0]
            .strip_prefix('V')
            .and_then(|s| s.split(' ').next())
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let figures: Vec<usize> = c[1..6].iter().map(|n| n.parse().unwrap()).collect();
        let want = counted.get(&chapter).copied().unwrap_or_default();
        assert_eq!(
            figures,
            want.to_vec(),
            "V{chapter}: the summary says [total, met, partly, not met, n/a] = {figures:?}"
        );
        summarised += 1;
    }
    assert_eq!(summarised, 17, "the summary has a row per chapter");
    let total: [usize; 5] = counted.values().fold([0; 5], |mut a, c| {
        for (x, y) in a.iter_mut().zip(c) {
            *x += y;
        }
        a
    });
    let applicable = total[0] - total[4];
    let line = format!("{} of {applicable} applicable requirements met", total[1]);
    assert!(map.contains(&line), "the map's headline must read `{line}`");
}

#[test]
fn test_references_are_read_from_backticks_only() {
    let cell = "code `crates/a/src/x.rs::m::t_one`, `crates/b.rs::t_two` and `docs/X.md` no";
    assert_eq!(
        cited_tests(cell),
        vec![
            ("crates/a/src/x.rs".to_owned(), "t_one".to_owned()),
            ("crates/b.rs".to_owned(), "t_two".to_owned())
        ]
    );
}
