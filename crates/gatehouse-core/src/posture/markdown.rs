//! `docs/CONTROLS.md`, rendered from the catalogue. The file is checked in so that it reads on
//! any forge; `crates/gatehouse-core/tests/controls_doc.rs` fails when it and [`render`] differ.

use super::catalogue::{Built, Control, Evidence, FAMILIES, all};

/// Where the text wraps, as in the hand-written ledger this replaced.
const WIDTH: usize = 100;

const INTRO: &str = r#"# Controls: status and evidence

Every control in Gatehouse's catalogue (A1 ... H3), how far the code has got, and the tests that
show it. The catalogue's full wording and its "must" lines are the product scope; this file is the
ledger against it. It is generated from `crates/gatehouse-core/src/posture/catalogue/` by a test
(`controls_doc_matches_the_catalogue`): do not edit it by hand; edit the catalogue, then run
`UPDATE_SNAPSHOTS=1 cargo nextest run --workspace --exclude gatehouse-store-postgres --exclude gatehouse-infra -E 'test(/controls_doc/)'`
to rewrite it.

Status:

- **done**: the code enforces every part of the control that the catalogue asks for, and a test
  that would fail without it shows each part;
- **partial**: some parts are enforced and tested; the section says which parts are missing;
- **not built**: nothing in the code implements it yet (a reserved name or permission does not
  count).

Tests are named as `file: test` with paths from the repository root. Cases in
`crates/gatehouse-store-tests/src/cases/` are the storage behaviour suite: each runs once on
SQLite (`crates/gatehouse-store-sqlite/tests/behaviour.rs`) and once on PostgreSQL
(`crates/gatehouse-store-postgres/tests/postgres/main.rs`, which needs a running PostgreSQL).
Tests in `crates/gatehouse/tests/redis_shared.rs` and `crates/gatehouse-infra/tests/` need Redis,
`crates/gatehouse/tests/instances.rs` PostgreSQL, `crates/gatehouse/tests/three_instances.rs` and
`crates/gatehouse/tests/drill/` PostgreSQL and Redis, and `crates/gatehouse/tests/engines_tls.rs`
PostgreSQL's server binaries and `redis-server`; they are not part of `scripts/test`'s
`cargo nextest run`; `bash .ci/run` runs them.
"#;

/// `docs/CONTROLS.md` as the catalogue has it.
#[must_use]
pub fn render() -> String {
    let mut out = String::from(INTRO);
    out.push_str("\n| id | control | status |\n|---|---|---|\n");
    for c in all() {
        out.push_str(&format!(
            "| {} | {} | {} |\n",
            c.id,
            c.title,
            status(c.built)
        ));
    }
    for family in &FAMILIES {
        out.push_str(&format!("\n## {}. {}\n", family.letter, family.name));
        for c in family.controls {
            section(&mut out, c);
        }
    }
    out
}

/// The status word as the ledger writes it.
fn word(built: Built) -> &'static str {
    match built {
        Built::Done(_) => "done",
        Built::Partial(_) => "partial",
        Built::NotBuilt => "not built",
    }
}

fn status(built: Built) -> String {
    match built.note() {
        Some(note) => format!("{} ({note})", word(built)),
        None => word(built).to_owned(),
    }
}

fn section(out: &mut String, c: &Control) {
    out.push_str(&format!("\n### {} {}: {}\n", c.id, c.title, word(c.built)));
    if !c.promise.is_empty() {
        out.push('\n');
        let words = std::iter::once("Promise (as the trust page states it):")
            .chain(c.promise.split_whitespace());
        wrap(out, words, "");
    }
    if !c.ledger.is_empty() {
        out.push('\n');
        out.push_str(c.ledger);
        out.push('\n');
    }
    if !c.self_check.is_empty() {
        out.push('\n');
        let words = std::iter::once("Self-check:").chain(c.self_check.split_whitespace());
        wrap(out, words, "");
    }
    if !c.evidence.is_empty() {
        out.push('\n');
        for e in c.evidence {
            bullet(out, e);
        }
    }
}

/// `` - `file`: `a`, `b` ``, wrapped with a two-space hanging indent. The first test stays on
/// the file's line, however long, so that each file reads with its tests.
fn bullet(out: &mut String, e: &Evidence) {
    let last = e.tests.len().saturating_sub(1);
    let mut tests = e.tests.iter().enumerate().map(|(i, t)| {
        let comma = if i == last { "" } else { "," };
        format!("`{t}`{comma}")
    });
    let head = match tests.next() {
        Some(first) => format!("- `{}`: {first}", e.file),
        None => format!("- `{}`", e.file),
    };
    wrap(out, std::iter::once(head).chain(tests), "  ");
}

/// Greedy wrapping at [`WIDTH`]; a word longer than a line gets a line of its own.
fn wrap<S: AsRef<str>>(out: &mut String, words: impl Iterator<Item = S>, indent: &str) {
    let mut line = String::new();
    for w in words {
        let w = w.as_ref();
        if line.is_empty() {
            line.push_str(w);
        } else if line.len() + 1 + w.len() > WIDTH {
            out.push_str(&line);
            out.push('\n');
            line = format!("{indent}{w}");
        } else {
            line.push(' ');
            line.push_str(w);
        }
    }
    out.push_str(&line);
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bullets_wrap_at_the_width_with_a_hanging_indent() {
        let e = Evidence {
            file: "crates/x/tests/y.rs",
            tests: &[
                "a_fairly_long_test_name_that_takes_up_most_of_a_line_on_its_own",
                "another_one",
                "third",
            ],
        };
        let mut out = String::new();
        bullet(&mut out, &e);
        assert_eq!(
            out,
            "- `crates/x/tests/y.rs`: `a_fairly_long_test_name_that_takes_up_most_of_a_line_on_its_own`,\n  `another_one`, `third`\n"
        );
    }

    #[test]
    fn the_first_test_stays_with_its_file_however_long() {
        let e = Evidence {
            file: "crates/gatehouse-store-tests/src/cases/a_file_with_a_long_name.rs",
            tests: &["a_test_whose_name_takes_the_line_past_the_width", "short"],
        };
        let mut out = String::new();
        bullet(&mut out, &e);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines,
            [
                "- `crates/gatehouse-store-tests/src/cases/a_file_with_a_long_name.rs`: `a_test_whose_name_takes_the_line_past_the_width`,",
                "  `short`",
            ]
        );
    }

    #[test]
    fn statuses_carry_their_notes() {
        assert_eq!(status(Built::Done(None)), "done");
        assert_eq!(status(Built::Done(Some("but x"))), "done (but x)");
        assert_eq!(status(Built::Partial("no y")), "partial (no y)");
        assert_eq!(status(Built::NotBuilt), "not built");
    }

    #[test]
    fn every_control_has_its_heading_and_table_row_once() {
        let doc = render();
        for c in all() {
            let heading = format!("\n### {} {}: {}\n", c.id, c.title, word(c.built));
            assert_eq!(doc.matches(&heading).count(), 1, "{}", c.id);
            let row = format!("\n| {} | {} | ", c.id, c.title);
            assert_eq!(doc.matches(&row).count(), 1, "{}", c.id);
        }
    }
}
