//! `gatehouse admin ...`: platform operators. Passwords and codes are read from standard input,
//! never from arguments (visible in the process list and kept in shell history).

use std::io::{BufRead, Write};

use gatehouse_crypto::SecretString;

use crate::app::App;
use crate::config::Config;

#[derive(Debug, clap::Subcommand)]
pub(crate) enum AdminCommand {
    /// Create a platform operator. Stdin: the password. Operators sign in at
    /// `POST /admin/v1/auth/login` and are never members of an organisation. In production they
    /// also need a second factor: run `enrol-totp` next.
    CreateOperator {
        #[arg(long)]
        email: String,
        #[arg(long)]
        name: String,
    },
    /// Give an operator a TOTP factor (or replace a lost one). Prints the secret and the
    /// `otpauth://` URI once, then reads a first code from stdin to confirm it. Ends every
    /// session the operator had and every impersonation they started.
    EnrolTotp {
        #[arg(long)]
        email: String,
    },
    /// List an operator's live sessions.
    Sessions {
        #[arg(long)]
        email: String,
    },
    /// End every session of an operator (a lost device, a departure) and every impersonation
    /// they started. A running server refuses their access tokens within 30 seconds (at once
    /// where revocations fan out through Redis) and their refresh tokens at once.
    RevokeSessions {
        #[arg(long)]
        email: String,
    },
}

fn read_line(what: &str) -> Result<SecretString, String> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| format!("reading the {what} from standard input: {e}"))?;
    Ok(SecretString::from(
        line.trim_end_matches(['\r', '\n']).to_owned(),
    ))
}

fn say(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{text}");
    let _ = out.flush();
}

pub(crate) async fn run(config: &Config, command: AdminCommand) -> Result<(), String> {
    let app = || async { App::build(config).await.map_err(|e| e.to_string()) };
    match command {
        AdminCommand::CreateOperator { email, name } => {
            let password = read_line("password")?;
            let app = app().await?;
            let id = app
                .kernel()
                .operators()
                .create(&email, &name, password)
                .await
                .map_err(|e| e.to_string())?;
            say(&format!("operator {id} created for {email}"));
            if config.identity.operator_totp_required {
                say(&format!(
                    "this server requires operators' second factor: run `gatehouse admin \
                     enrol-totp --email {email}` before signing in"
                ));
            }
            Ok(())
        }
        AdminCommand::EnrolTotp { email } => {
            let app = app().await?;
            let operators = app.kernel().operators();
            let enrolment = operators
                .start_totp_enrolment(&email)
                .await
                .map_err(|e| e.to_string())?;
            say(&format!(
                "secret: {}\nuri: {}\nAdd it to an authenticator app, then type its current code:",
                enrolment.secret.expose(),
                enrolment.otpauth_uri.expose()
            ));
            let code = read_line("code")?;
            let ended = operators
                .confirm_totp_enrolment(&enrolment, &code)
                .await
                .map_err(|e| match e {
                    gatehouse_core::Error::InvalidCredentials => {
                        "that code does not match the secret; nothing was stored, run enrol-totp again"
                            .to_owned()
                    }
                    other => other.to_string(),
                })?;
            app.kernel().flush_revocations().await;
            say(&format!(
                "second factor enrolled for {email}; {ended} session(s) ended"
            ));
            Ok(())
        }
        AdminCommand::Sessions { email } => {
            let app = app().await?;
            let sessions = app
                .kernel()
                .operators()
                .sessions_by_email(&email)
                .await
                .map_err(|e| e.to_string())?;
            say(&format!("{} live session(s) of {email}", sessions.len()));
            for s in sessions {
                say(&format!(
                    "{}  {}  created {}  last seen {}  ip {}",
                    s.id,
                    s.device_name.escape_debug(),
                    s.created_at,
                    s.last_seen_at,
                    s.ip.as_deref().unwrap_or("-").escape_debug()
                ));
            }
            Ok(())
        }
        AdminCommand::RevokeSessions { email } => {
            let app = app().await?;
            let ended = app
                .kernel()
                .operators()
                .revoke_all_sessions(&email)
                .await
                .map_err(|e| e.to_string())?;
            app.kernel().flush_revocations().await;
            say(&format!("{ended} session(s) of {email} ended"));
            Ok(())
        }
    }
}
