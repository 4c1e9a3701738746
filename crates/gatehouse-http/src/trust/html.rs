//! The trust page as static HTML: no script at all, one inline stylesheet allowed by its hash
//! (the page's policy is the edge's `default-src 'none'` plus that hash), every text escaped.

use std::fmt::Write as _;
use std::sync::LazyLock;

use axum::http::HeaderValue;
use base64::Engine as _;
use gatehouse_core::html::escape as esc;
use gatehouse_core::posture::catalogue::FAMILIES;
use gatehouse_core::posture::{Declarations, PostureReport};

use super::{declares_anything, status, summary_sentence, utc};

/// The page's only style. Its SHA-256 is the one `style-src` source the policy allows, so an
/// injected `<style>` or `style=` attribute would not apply even if escaping ever failed.
const CSS: &str = "\
body{font:16px/1.5 system-ui,sans-serif;margin:0 auto;max-width:72rem;padding:1rem 1.5rem;color:#1b1f24;background:#fff}\
h1{font-size:1.6rem;margin:.5rem 0}h2{font-size:1.25rem;margin-top:2rem;border-bottom:1px solid #d0d7de}\
table{border-collapse:collapse;width:100%;margin:.5rem 0 1rem}\
th,td{border:1px solid #d0d7de;padding:.35rem .5rem;text-align:left;vertical-align:top}\
thead th{background:#f6f8fa}th.family{background:#eef1f4}\
.status{font-weight:600;white-space:nowrap}\
.pass .status{color:#116329}.warn .status{color:#7d4e00}.fail .status{color:#a40e26}\
.not_applicable .status,.not_built .status{color:#57606a}\
.declared{border:2px dashed #8c959f;padding:0 1rem 1rem;margin-top:2rem}\
.note{color:#57606a}dt{font-weight:600}dd{margin:0 0 .5rem 1rem}";

/// The page's `Content-Security-Policy`: nothing but the stylesheet above, no framing, no base
/// URL, no form.
static POLICY: LazyLock<HeaderValue> = LazyLock::new(|| {
    let hash = base64::engine::general_purpose::STANDARD
        .encode(gatehouse_crypto::sha256(&[CSS.as_bytes()]));
    let text = format!(
        "default-src 'none'; style-src 'sha256-{hash}'; frame-ancestors 'none'; \
         base-uri 'none'; form-action 'none'"
    );
    HeaderValue::from_str(&text).unwrap_or(HeaderValue::from_static(
        "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    ))
});

pub(crate) fn policy() -> HeaderValue {
    POLICY.clone()
}

/// The whole page.
pub(crate) fn page(r: &PostureReport, d: &Declarations, cache_secs: u64) -> String {
    let service = d
        .service_name
        .as_deref()
        .unwrap_or("this Gatehouse deployment");
    let mut o = String::with_capacity(32 * 1024);
    let _ = write!(
        o,
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>Security posture of {s}</title>\n<style>{CSS}</style>\n</head>\n<body>\n\
         <header>\n<h1>Security posture of {s}</h1>\n\
         <p id=\"generated\">Generated at <time datetime=\"{iso}\">{at}</time> by the running \
         server from its configuration and its own self-checks; the checks re-run at most every \
         {cache_secs} s.</p>\n<p id=\"summary\">{summary}</p>\n</header>\n<main>\n",
        s = esc(service),
        iso = r
            .generated_at
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
        at = utc(r.generated_at),
        summary = esc(&summary_sentence(r)),
    );
    controls(&mut o, r);
    declarations(&mut o, d);
    o.push_str(
        "</main>\n<footer>\n<p class=\"note\">The same report as text: \
         <a href=\"trust.md\">trust.md</a>.</p>\n</footer>\n</body>\n</html>\n",
    );
    o
}

fn controls(o: &mut String, r: &PostureReport) {
    o.push_str(
        "<section aria-labelledby=\"controls\">\n\
         <h2 id=\"controls\">Controls, checked by Gatehouse</h2>\n\
         <table id=\"control-table\">\n<thead><tr><th scope=\"col\">Control</th>\
         <th scope=\"col\">Title</th><th scope=\"col\">In use</th><th scope=\"col\">Status</th>\
         <th scope=\"col\">What it promises</th><th scope=\"col\">What is checked</th>\
         </tr></thead>\n",
    );
    for family in &FAMILIES {
        let rows: Vec<_> = r
            .controls
            .iter()
            .filter(|c| c.id.starts_with(family.letter))
            .collect();
        if rows.is_empty() {
            continue;
        }
        let _ = writeln!(
            o,
            "<tbody>\n<tr><th class=\"family\" colspan=\"6\" scope=\"colgroup\">{}. {}</th></tr>",
            family.letter,
            esc(family.name)
        );
        for c in rows {
            let _ = writeln!(
                o,
                "<tr id=\"control-{id}\" class=\"{class}\" data-control=\"{id}\">\
                 <td>{id}</td><td>{title}</td><td>{in_use}</td><td class=\"status\">{status}</td>\
                 <td>{promise}</td><td>{checked}</td></tr>",
                id = esc(c.id),
                class = c.verdict.as_str(),
                title = esc(c.title),
                in_use = if c.enabled { "yes" } else { "no" },
                status = esc(&status(c)),
                promise = esc(c.promise),
                checked = esc(c.self_check),
            );
        }
        o.push_str("</tbody>\n");
    }
    o.push_str("</table>\n</section>\n");
}

fn declarations(o: &mut String, d: &Declarations) {
    o.push_str(
        "<section id=\"declarations\" class=\"declared\" aria-labelledby=\"declared\">\n\
         <h2 id=\"declared\">Declared by the operator (not verified by Gatehouse)</h2>\n\
         <p class=\"note\">The operator of this service states the following in its \
         configuration. Gatehouse shows it as written and has not checked any of it.</p>\n",
    );
    if !declares_anything(d) {
        o.push_str("<p>The operator has declared nothing.</p>\n</section>\n");
        return;
    }
    let facts = [
        ("Service", &d.service_name),
        ("Security contact", &d.contact),
        ("Where customer data is stored", &d.data_residency),
        ("Last penetration test", &d.last_penetration_test),
    ];
    if facts.iter().any(|(_, v)| v.is_some()) {
        o.push_str("<dl>\n");
        for (label, value) in facts {
            if let Some(v) = value {
                let _ = writeln!(o, "<dt>{label}</dt><dd>{}</dd>", esc(v));
            }
        }
        o.push_str("</dl>\n");
    }
    if !d.certifications.is_empty() {
        o.push_str(
            "<h3>Certifications and attestations</h3>\n<table id=\"certifications\">\n\
             <thead><tr><th scope=\"col\">Name</th><th scope=\"col\">Status (declared)</th>\
             <th scope=\"col\">Note</th></tr></thead>\n<tbody>\n",
        );
        for c in &d.certifications {
            let _ = writeln!(
                o,
                "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&c.name),
                c.status.as_text(),
                esc(c.note.as_deref().unwrap_or(""))
            );
        }
        o.push_str("</tbody>\n</table>\n");
    }
    if !d.sub_processors.is_empty() {
        o.push_str(
            "<h3>Sub-processors</h3>\n<table id=\"sub-processors\">\n\
             <thead><tr><th scope=\"col\">Name</th><th scope=\"col\">Purpose</th>\
             <th scope=\"col\">Location</th></tr></thead>\n<tbody>\n",
        );
        for s in &d.sub_processors {
            let _ = writeln!(
                o,
                "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&s.name),
                esc(&s.purpose),
                esc(s.location.as_deref().unwrap_or(""))
            );
        }
        o.push_str("</tbody>\n</table>\n");
    }
    o.push_str("</section>\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_allows_exactly_the_inline_stylesheet() {
        let report = gatehouse_core::posture::PostureBuilder::new()
            .build(std::sync::Arc::new(gatehouse_core::FakeClock::at(
                time::OffsetDateTime::UNIX_EPOCH,
            )))
            .unwrap();
        let report = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap()
            .block_on(report.report());
        let html = page(&report, &Declarations::default(), 60);
        let styles: Vec<_> = html.match_indices("<style>").collect();
        assert_eq!(styles.len(), 1);
        let start = html.find("<style>").unwrap() + "<style>".len();
        let end = html.find("</style>").unwrap();
        let hash = base64::engine::general_purpose::STANDARD
            .encode(gatehouse_crypto::sha256(&[&html.as_bytes()[start..end]]));
        let policy = policy();
        let policy = policy.to_str().unwrap();
        assert_eq!(
            policy,
            format!(
                "default-src 'none'; style-src 'sha256-{hash}'; frame-ancestors 'none'; \
                 base-uri 'none'; form-action 'none'"
            )
        );
        assert!(!policy.contains("unsafe"));
        assert!(!html.contains("<script"));
    }

    #[test]
    fn every_html_special_character_is_escaped() {
        assert_eq!(
            esc(r#"<script>alert('x' & "y")</script>"#),
            "&lt;script&gt;alert(&#39;x&#39; &amp; &quot;y&quot;)&lt;/script&gt;"
        );
    }
}
