//! `gatehouse audit verify [--org ID]`: recomputes chains and names the first bad event.

use std::io::Write;

use gatehouse_core::OrgId;
use gatehouse_core::audit;

use crate::app::App;
use crate::config::Config;

#[derive(Debug, clap::Subcommand)]
pub(crate) enum AuditCommand {
    /// Sign a checkpoint over every chain head that moved since its last checkpoint.
    Checkpoint,
    /// Recompute every chain (or one organisation's); exit non-zero at the first bad event.
    Verify {
        #[arg(long)]
        org: Option<String>,
        /// `CHAIN=SEQ` (CHAIN an organisation id or `operators`): fail unless that chain has a
        /// signed checkpoint at or beyond SEQ. Record the figures `verify` prints somewhere the
        /// database's owner cannot write, and pass them here: removing the newest checkpoints
        /// along with the events after them is then caught too.
        #[arg(long = "expect-checkpoint", value_name = "CHAIN=SEQ")]
        expect: Vec<String>,
    },
}

pub(crate) async fn run(config: &Config, command: AuditCommand) -> Result<(), String> {
    let app = App::build(config).await.map_err(|e| e.to_string())?;
    let kernel = app.kernel();
    let store = kernel.store();
    let (org, expect) = match command {
        AuditCommand::Verify { org, expect } => (org, parse_expectations(&expect)?),
        AuditCommand::Checkpoint => {
            let made = audit::checkpoint_all(store, kernel.keyring(), kernel.clock())
                .await
                .map_err(|e| e.to_string())?;
            let _ = writeln!(std::io::stdout(), "signed {made} checkpoint(s)");
            return Ok(());
        }
    };
    // The operators' chain is verified unless one organisation was asked for (a platform with
    // a single organisation has it verified too).
    let everything = org.is_none();
    let orgs: Vec<OrgId> = match org {
        Some(text) => vec![
            OrgId::parse(&text)
                .ok_or_else(|| format!("--org: {text:?} is not an organisation id"))?,
        ],
        None => kernel
            .keyring()
            .organization_ids()
            .await
            .map_err(|e| e.to_string())?,
    };
    let mut stdout = std::io::stdout();
    let mut broken = Vec::new();
    for org in &orgs {
        match audit::verify_org_chain(store, kernel.keyring(), *org)
            .await
            .map_err(|e| e.to_string())?
        {
            Ok(n) => {
                let latest = audit::latest_checkpoint_org(store, *org)
                    .await
                    .map_err(|e| e.to_string())?;
                let _ = writeln!(
                    stdout,
                    "org {org}: {n} events, chain intact; {}",
                    describe(latest.as_ref())
                );
                if let Some(problem) = unmet(&expect, &org.to_string(), latest.as_ref()) {
                    broken.push(problem);
                }
            }
            Err(e) => {
                let _ = writeln!(stdout, "org {org}: BROKEN: {e}");
                broken.push(format!("org {org}: {e}"));
            }
        }
    }
    if everything {
        match audit::verify_operators(store, kernel.keyring())
            .await
            .map_err(|e| e.to_string())?
        {
            Ok(n) => {
                let latest = audit::latest_checkpoint_operators(store)
                    .await
                    .map_err(|e| e.to_string())?;
                let _ = writeln!(
                    stdout,
                    "operators: {n} events, chain intact; {}",
                    describe(latest.as_ref())
                );
                if let Some(problem) = unmet(&expect, "operators", latest.as_ref()) {
                    broken.push(problem);
                }
            }
            Err(e) => {
                let _ = writeln!(stdout, "operators: BROKEN: {e}");
                broken.push(format!("operators: {e}"));
            }
        }
    }
    // An expectation for a chain this run did not verify (a typo, a deleted organisation, the
    // operators' chain under --org) must not pass silently.
    let mut checked: Vec<String> = orgs.iter().map(ToString::to_string).collect();
    if orgs.len() != 1 {
        checked.push("operators".to_owned());
    }
    for (chain, seq) in &expect {
        if !checked.contains(chain) {
            broken.push(format!(
                "{chain}: expected a signed checkpoint at or beyond seq {seq}, but no such chain \
                 was verified"
            ));
        }
    }
    match broken.first() {
        None => Ok(()),
        Some(first) => Err(format!("audit verification failed: {first}")),
    }
}

fn parse_expectations(raw: &[String]) -> Result<Vec<(String, u64)>, String> {
    raw.iter()
        .map(|e| {
            let (chain, seq) = e
                .split_once('=')
                .ok_or_else(|| format!("--expect-checkpoint {e:?}: write CHAIN=SEQ"))?;
            let seq = seq
                .parse()
                .map_err(|_| format!("--expect-checkpoint {e:?}: SEQ is not a number"))?;
            Ok((chain.to_owned(), seq))
        })
        .collect()
}

fn describe(latest: Option<&audit::CheckpointRecord>) -> String {
    match latest {
        None => "no signed checkpoint yet".to_owned(),
        Some(c) => {
            let digest = gatehouse_crypto::sha256(&[&c.signature]);
            let short: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
            format!(
                "latest signed checkpoint at seq {} (signature digest {short})",
                c.seq
            )
        }
    }
}

fn unmet(
    expect: &[(String, u64)],
    chain: &str,
    latest: Option<&audit::CheckpointRecord>,
) -> Option<String> {
    let have = latest.map_or(0, |c| c.seq);
    expect
        .iter()
        .find(|(c, seq)| c == chain && have < *seq)
        .map(|(_, seq)| {
            format!(
                "{chain}: expected a signed checkpoint at or beyond seq {seq}, the newest is at \
                 seq {have}: checkpoints were removed"
            )
        })
}
