//! `gatehouse admin ...`: platform operators. The password is read from standard input, never
//! from arguments (visible in the process list and kept in shell history).

use std::io::{BufRead, Write};

use gatehouse_crypto::SecretString;

use crate::app::App;
use crate::config::Config;

#[derive(Debug, clap::Subcommand)]
pub(crate) enum AdminCommand {
    /// Create a platform operator. Stdin: the password. Operators sign in at
    /// `POST /admin/v1/auth/login` and are never members of an organisation.
    CreateOperator {
        #[arg(long)]
        email: String,
        #[arg(long)]
        name: String,
    },
}

pub(crate) async fn run(config: &Config, command: AdminCommand) -> Result<(), String> {
    match command {
        AdminCommand::CreateOperator { email, name } => {
            let mut line = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut line)
                .map_err(|e| format!("reading the password from standard input: {e}"))?;
            let password = SecretString::from(line.trim_end_matches(['\r', '\n']).to_owned());
            let app = App::build(config).await.map_err(|e| e.to_string())?;
            let id = app
                .kernel()
                .operators()
                .create(&email, &name, password)
                .await
                .map_err(|e| e.to_string())?;
            let _ = writeln!(std::io::stdout(), "operator {id} created for {email}");
            Ok(())
        }
    }
}
