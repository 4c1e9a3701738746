//! `gatehouse local-vault ...`: the local master-password vault (A2) from the command line.
//!
//! Secrets are read from standard input, one per line (the master password first), never from
//! arguments, which other users can see in the process list and which shells keep in history.

use std::io::{BufRead, Write};
use std::path::PathBuf;

use gatehouse_crypto::SecretString;
use gatehouse_vault::{KdfParams, Vault};

#[derive(Debug, clap::Subcommand)]
pub(crate) enum VaultCommand {
    /// Create an empty vault. Stdin: the master password.
    Init {
        #[arg(long)]
        file: PathBuf,
    },
    /// Add or replace a credential. Stdin: the master password, then the value.
    Add {
        #[arg(long)]
        file: PathBuf,
        name: String,
    },
    /// Print a credential's value. Stdin: the master password.
    Get {
        #[arg(long)]
        file: PathBuf,
        name: String,
    },
    /// List credential names. Stdin: the master password.
    List {
        #[arg(long)]
        file: PathBuf,
    },
    /// Remove a credential. Stdin: the master password.
    Remove {
        #[arg(long)]
        file: PathBuf,
        name: String,
    },
    /// Re-key the vault. Stdin: the current password, then the new one.
    ChangePassword {
        #[arg(long)]
        file: PathBuf,
    },
}

fn read_secret(
    lines: &mut impl Iterator<Item = std::io::Result<String>>,
    what: &str,
) -> Result<SecretString, String> {
    match lines.next() {
        Some(Ok(line)) => Ok(SecretString::new(
            line.trim_end_matches(['\r', '\n']).to_owned(),
        )),
        _ => Err(format!("expected {what} on standard input")),
    }
}

fn say(line: &str) {
    let _ = writeln!(std::io::stdout(), "{line}");
}

pub(crate) fn run(command: VaultCommand) -> Result<(), String> {
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    let e = |e: gatehouse_vault::VaultError| e.to_string();
    match command {
        VaultCommand::Init { file } => {
            let pw = read_secret(&mut lines, "the master password")?;
            if pw.expose().chars().count() < 8 {
                return Err("the master password must be at least 8 characters".into());
            }
            Vault::create(&file, &pw, KdfParams::default()).map_err(e)?;
            say(&format!("created {}", file.display()));
        }
        VaultCommand::Add { file, name } => {
            let pw = read_secret(&mut lines, "the master password")?;
            let value = read_secret(&mut lines, "the value")?;
            let mut v = Vault::open(&file, &pw).map_err(e)?;
            v.insert(&name, value);
            v.save().map_err(e)?;
            say(&format!("saved {name}"));
        }
        VaultCommand::Get { file, name } => {
            let pw = read_secret(&mut lines, "the master password")?;
            let v = Vault::open(&file, &pw).map_err(e)?;
            let value = v
                .get(&name)
                .ok_or_else(|| format!("no credential named {name:?}"))?;
            say(value.expose());
        }
        VaultCommand::List { file } => {
            let pw = read_secret(&mut lines, "the master password")?;
            for name in Vault::open(&file, &pw).map_err(e)?.names() {
                say(name);
            }
        }
        VaultCommand::Remove { file, name } => {
            let pw = read_secret(&mut lines, "the master password")?;
            let mut v = Vault::open(&file, &pw).map_err(e)?;
            if !v.remove(&name) {
                return Err(format!("no credential named {name:?}"));
            }
            v.save().map_err(e)?;
            say(&format!("removed {name}"));
        }
        VaultCommand::ChangePassword { file } => {
            let pw = read_secret(&mut lines, "the current master password")?;
            let new = read_secret(&mut lines, "the new master password")?;
            if new.expose().chars().count() < 8 {
                return Err("the master password must be at least 8 characters".into());
            }
            let mut v = Vault::open(&file, &pw).map_err(e)?;
            v.change_password(&new).map_err(e)?;
            say("master password changed");
        }
    }
    Ok(())
}
