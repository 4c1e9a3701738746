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
    },
}

pub(crate) async fn run(config: &Config, command: AuditCommand) -> Result<(), String> {
    let app = App::build(config).await.map_err(|e| e.to_string())?;
    let kernel = app.kernel();
    let store = kernel.store();
    let org = match command {
        AuditCommand::Verify { org } => org,
        AuditCommand::Checkpoint => {
            let made = audit::checkpoint_all(store, kernel.keyring(), kernel.clock())
                .await
                .map_err(|e| e.to_string())?;
            let _ = writeln!(std::io::stdout(), "signed {made} checkpoint(s)");
            return Ok(());
        }
    };
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
                let _ = writeln!(stdout, "org {org}: {n} events, chain intact");
            }
            Err(e) => {
                let _ = writeln!(stdout, "org {org}: BROKEN: {e}");
                broken.push(format!("org {org}: {e}"));
            }
        }
    }
    if orgs.len() != 1 {
        match audit::verify_operators(store, kernel.keyring())
            .await
            .map_err(|e| e.to_string())?
        {
            Ok(n) => {
                let _ = writeln!(stdout, "operators: {n} events, chain intact");
            }
            Err(e) => {
                let _ = writeln!(stdout, "operators: BROKEN: {e}");
                broken.push(format!("operators: {e}"));
            }
        }
    }
    match broken.first() {
        None => Ok(()),
        Some(first) => Err(format!("audit verification failed: {first}")),
    }
}
