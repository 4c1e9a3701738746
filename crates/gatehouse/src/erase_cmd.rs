//! `gatehouse erase ...`: an operator's erasure of a person or an organisation (G2), hard and
//! final. `--dry-run` prints what would go and changes nothing.

use std::io::Write;

use gatehouse_core::audit::Actor;
use gatehouse_core::{OrgId, UserId};

use crate::app::App;
use crate::config::Config;

#[derive(Debug, clap::Subcommand)]
pub(crate) enum EraseCommand {
    /// Erase a person everywhere: account, sessions, devices, factors, tokens, mail,
    /// invitations, their records and memberships; their personal fields in every audit log
    /// become unreadable (the events stay, and still verify).
    User {
        /// The user's id.
        #[arg(long, conflicts_with = "email", required_unless_present = "email")]
        id: Option<uuid::Uuid>,
        /// Or their address.
        #[arg(long)]
        email: Option<String>,
        /// Print what would be erased; change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Erase an organisation: its data keys destroyed, then every row of it, its audit log
    /// included. Its members keep their accounts.
    Organization {
        #[arg(long)]
        id: uuid::Uuid,
        #[arg(long)]
        dry_run: bool,
    },
}

fn say(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{text}");
    let _ = out.flush();
}

pub(crate) async fn run(config: &Config, command: EraseCommand) -> Result<(), String> {
    let app = App::build(config).await.map_err(|e| e.to_string())?;
    let kernel = app.kernel();
    let actor = Actor::system("erase-cli");
    match command {
        EraseCommand::User { id, email, dry_run } => {
            let user = match (id, email) {
                (Some(id), _) => UserId::from_uuid(id),
                (None, Some(email)) => {
                    let mut tx = kernel
                        .store()
                        .begin_read()
                        .await
                        .map_err(|e| e.to_string())?;
                    // Addresses are stored trimmed and lower-cased, as sign-up keeps them.
                    tx.user_by_email(&email.trim().to_lowercase())
                        .await
                        .map_err(|e| e.to_string())?
                        .ok_or_else(|| "no account has that address".to_owned())?
                        .id
                }
                (None, None) => return Err("give --id or --email".into()),
            };
            let report = kernel
                .data_rights()
                .erase_user(
                    actor,
                    user,
                    gatehouse_core::data_rights::Reach::Everywhere,
                    dry_run,
                )
                .await
                .map_err(|e| e.to_string())?;
            kernel.flush_revocations().await;
            let json = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
            if dry_run {
                say(&format!(
                    "dry run: nothing was erased; this would go:\n{json}"
                ));
            } else {
                say(&format!("user {} erased:\n{json}", user.as_uuid()));
            }
            Ok(())
        }
        EraseCommand::Organization { id, dry_run } => {
            let report = kernel
                .data_rights()
                .erase_organization(actor, OrgId::from_uuid(id), dry_run)
                .await
                .map_err(|e| e.to_string())?;
            kernel.flush_revocations().await;
            let json = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
            if dry_run {
                say(&format!(
                    "dry run: nothing was erased; this would go:\n{json}"
                ));
            } else {
                say(&format!("organization {id} erased:\n{json}"));
            }
            Ok(())
        }
    }
}
