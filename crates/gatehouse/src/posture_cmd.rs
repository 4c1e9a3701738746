//! `gatehouse posture`: every control's live state, checked now by the same probes the server
//! registers (H3), as a table or JSON. Exits 1 when any check fails.

use std::fmt::Write as _;
use std::io::Write as _;

use gatehouse_core::posture::{PostureReport, Verdict};

use crate::app::App;
use crate::config::{Config, MasterKey};

pub(crate) async fn run(config: &Config, json: bool) -> Result<(), String> {
    if matches!(config.master_key, MasterKey::Shares) {
        return Err(
            "posture: the master key exists only as operators' shares, so this command cannot \
             open the store; ask the unsealed server instead (GET /admin/v1/posture)"
                .to_owned(),
        );
    }
    // Beside a running server the metrics port is taken, and this process serves nothing.
    let mut config = config.clone();
    config.metrics.listen = None;
    let app = App::build(&config).await.map_err(|e| e.to_string())?;
    let report = app.posture().report().await;
    let text = if json {
        serde_json::to_string_pretty(&report).map_err(|e| format!("posture: {e}"))?
    } else {
        table(&report)
    };
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{text}");
    let _ = out.flush();
    if report.summary.fail > 0 {
        return Err(format!(
            "posture: {} control(s) failed their self-check",
            report.summary.fail
        ));
    }
    Ok(())
}

/// One line per control, its evidence indented beneath.
pub(crate) fn table(report: &PostureReport) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "ID   VERDICT         ON  CONTROL");
    for c in &report.controls {
        let verdict = match c.verdict {
            Verdict::Fail => "FAIL",
            v => v.as_str(),
        };
        let _ = writeln!(
            out,
            "{:<4} {:<15} {:<3} {}",
            c.id,
            verdict,
            if c.enabled { "yes" } else { "no" },
            c.title
        );
        if !c.evidence.is_empty() {
            let _ = writeln!(out, "     {}", c.evidence);
        }
    }
    let s = &report.summary;
    let _ = write!(
        out,
        "\n{} pass, {} warn, {} fail, {} not applicable, {} not built; generated {} in {:.1} ms",
        s.pass,
        s.warn,
        s.fail,
        s.not_applicable,
        s.not_built,
        report
            .generated_at
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
        report.elapsed_ms
    );
    out
}
