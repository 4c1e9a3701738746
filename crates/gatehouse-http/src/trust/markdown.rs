//! The trust page as CommonMark (`/trust.md`): the same rows and declarations as the HTML page,
//! for readers and tools that want text.

use std::fmt::Write as _;

use gatehouse_core::posture::{Declarations, PostureReport};

use super::{declares_anything, status, summary_sentence, utc};

/// Makes text inert inside a table cell or a list item: every character CommonMark gives a
/// meaning there (emphasis, code, links, raw HTML, entities, the cell separator) is
/// backslash-escaped, and line breaks, which would end the row, become spaces.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '|' | '&' | '~' | '!' | '#' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// The whole document.
pub(crate) fn page(r: &PostureReport, d: &Declarations, cache_secs: u64) -> String {
    let service = d
        .service_name
        .as_deref()
        .unwrap_or("this Gatehouse deployment");
    let mut o = String::with_capacity(16 * 1024);
    let _ = write!(
        o,
        "# Security posture of {}\n\n\
         Generated at {} by the running server from its configuration and its own \
         self-checks; the checks re-run at most every {cache_secs} s.\n\n{}\n\n\
         ## Controls, checked by Gatehouse\n\n\
         | Control | Title | In use | Status | What it promises | What is checked |\n\
         |---|---|---|---|---|---|\n",
        esc(service),
        utc(r.generated_at),
        esc(&summary_sentence(r)),
    );
    for c in &r.controls {
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} | {} | {} |",
            esc(c.id),
            esc(c.title),
            if c.enabled { "yes" } else { "no" },
            esc(&status(c)),
            esc(c.promise),
            esc(c.self_check)
        );
    }
    o.push_str(
        "\n## Declared by the operator (not verified by Gatehouse)\n\n\
         The operator of this service states the following in its configuration. Gatehouse \
         shows it as written and has not checked any of it.\n\n",
    );
    if !declares_anything(d) {
        o.push_str("The operator has declared nothing.\n");
        return o;
    }
    for (label, value) in [
        ("Service", &d.service_name),
        ("Security contact", &d.contact),
        ("Where customer data is stored", &d.data_residency),
        ("Last penetration test", &d.last_penetration_test),
    ] {
        if let Some(v) = value {
            let _ = writeln!(o, "- {label}: {}", esc(v));
        }
    }
    if !d.certifications.is_empty() {
        o.push_str(
            "\n### Certifications and attestations\n\n\
             | Name | Status (declared) | Note |\n|---|---|---|\n",
        );
        for c in &d.certifications {
            let _ = writeln!(
                o,
                "| {} | {} | {} |",
                esc(&c.name),
                c.status.as_text(),
                esc(c.note.as_deref().unwrap_or(""))
            );
        }
    }
    if !d.sub_processors.is_empty() {
        o.push_str("\n### Sub-processors\n\n| Name | Purpose | Location |\n|---|---|---|\n");
        for s in &d.sub_processors {
            let _ = writeln!(
                o,
                "| {} | {} | {} |",
                esc(&s.name),
                esc(&s.purpose),
                esc(s.location.as_deref().unwrap_or(""))
            );
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_and_row_breaks_in_text_are_inert() {
        assert_eq!(
            esc("<b>a|b</b> *x* [l](u) &amp;\nnext"),
            "\\<b\\>a\\|b\\</b\\> \\*x\\* \\[l\\](u) \\&amp; next"
        );
    }
}
