//! `gatehouse mail ...`: the sender-domain check (F4) from the command line, and the DKIM record
//! to publish for the configured signing key.

use std::io::Write;

use gatehouse_core::mail::{DomainReport, Verdict, check_domain};

use crate::config::Config;

#[derive(Debug, clap::Subcommand)]
pub(crate) enum MailCommand {
    /// Check a sending domain's SPF, DKIM and DMARC records against [mail.domain_check] and
    /// [mail.dkim]; exits 1 when any check fails (a warning still exits 0).
    CheckDomain {
        domain: String,
        /// Print the report as JSON (the HTTP API's shape).
        #[arg(long)]
        json: bool,
    },
    /// Print the DKIM TXT record to publish for the key in [mail.dkim].
    DkimRecord,
}

fn say(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{text}");
    let _ = out.flush();
}

fn word(v: Verdict) -> &'static str {
    match v {
        Verdict::Pass => "pass",
        Verdict::Warn => "warn",
        Verdict::Fail => "FAIL",
    }
}

/// Text from DNS with its control characters escaped: a record must not drive the terminal.
fn shown(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() {
                format!("\\u{{{:x}}}", u32::from(c))
            } else {
                c.to_string()
            }
        })
        .collect()
}

fn print_report(report: &DomainReport) {
    say(&format!("{}: {}", report.domain, word(report.verdict)));
    for c in &report.checks {
        say(&format!(
            "  {:<5} {:<4} {}",
            c.check,
            word(c.verdict),
            c.name
        ));
        if let Some(r) = &c.record {
            say(&format!("             record: {}", shown(r)));
        }
        say(&format!("             {}", shown(&c.advice)));
    }
}

pub(crate) async fn run(config: &Config, command: MailCommand) -> Result<(), String> {
    match command {
        MailCommand::CheckDomain { domain, json } => {
            let checker = crate::clients::domain_checker(config).map_err(|e| e.to_string())?;
            let report = check_domain(checker.resolver.as_ref(), &checker.settings, &domain)
                .await
                .map_err(|e| e.to_string())?;
            if json {
                say(&serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?);
            } else {
                print_report(&report);
            }
            if report.verdict == Verdict::Fail {
                return Err(format!("{} fails the sender-domain check", report.domain));
            }
            Ok(())
        }
        MailCommand::DkimRecord => {
            let signer = config.mail.auth.dkim.as_ref().ok_or(
                "no DKIM key is configured: set mail.dkim.private_key_file and mail.dkim.selector",
            )?;
            // A TXT character-string holds at most 255 bytes: a 2048-bit key's record is split
            // into several, which DNS joins again.
            let record = signer.dns_record();
            let strings: Vec<String> = record
                .as_bytes()
                .chunks(255)
                .map(|c| format!("\"{}\"", String::from_utf8_lossy(c)))
                .collect();
            say(&format!(
                "{}._domainkey.{}. IN TXT ( {} )",
                signer.selector(),
                signer.domain(),
                strings.join(" ")
            ));
            Ok(())
        }
    }
}
