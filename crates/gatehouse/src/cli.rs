//! The command line: `serve`, `migrate`, `config check`, `dev-cert` and the tools.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use gatehouse_store_postgres::PostgresStore;
use gatehouse_store_sqlite::SqliteStore;

use crate::app::App;
use crate::config::{Config, Database};
use crate::logging;

#[derive(Debug, Parser)]
#[command(
    name = "gatehouse",
    version,
    about = "A self-hostable security kernel for multi-tenant SaaS"
)]
struct Cli {
    /// A TOML configuration file (default: ./gatehouse.toml when present, or $GATEHOUSE_CONFIG).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the HTTP API (on a fresh checkout: SQLite in ./gatehouse-data, 127.0.0.1:8080).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Configuration tools.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// The audit log: verify its hash chains.
    Audit {
        #[command(subcommand)]
        command: crate::audit_cmd::AuditCommand,
    },
    /// Encrypted backups: create (online), verify, restore (either backend into either).
    Backup {
        #[command(subcommand)]
        command: crate::backup_cmd::BackupCommand,
    },
    /// The keyring: status, rotation, crypto-shredding.
    Keys {
        #[command(subcommand)]
        command: crate::keys_cmd::KeysCommand,
    },
    /// Submit one share of the master key to a sealed server (reads the share from standard
    /// input; talks to the server's operator listener, or its only one).
    Unseal {
        /// The server's base URL (default: from admin_listen, else listen, in the configuration).
        #[arg(long)]
        url: Option<String>,
    },
    /// Erase a person or an organisation for good (GDPR), with a dry run.
    Erase {
        #[command(subcommand)]
        command: crate::erase_cmd::EraseCommand,
    },
    /// Mail: the sender-domain check and the DKIM record to publish.
    Mail {
        #[command(subcommand)]
        command: crate::mail_cmd::MailCommand,
    },
    /// Every control's live state and self-check (H3); exits 1 when any check fails.
    Posture {
        /// The report as JSON (the shape of GET /admin/v1/posture).
        #[arg(long)]
        json: bool,
    },
    /// Platform operators.
    Admin {
        #[command(subcommand)]
        command: crate::admin_cmd::AdminCommand,
    },
    /// A local master-password vault file for desktop use (reads secrets from standard input).
    LocalVault {
        #[command(subcommand)]
        command: crate::vault_cmd::VaultCommand,
    },
    /// Write a development CA and a server certificate signed by it, for localhost, 127.0.0.1
    /// and ::1 or the names given with --name.
    DevCert {
        /// The directory to write ca.pem, ca-key.pem, cert.pem and key.pem into.
        #[arg(long, default_value = crate::dev_cert_cmd::DEFAULT_OUT)]
        out: PathBuf,
        /// A name the server certificate is for (a DNS name or an IP address); repeat for more.
        /// Default: localhost, 127.0.0.1 and ::1.
        #[arg(long = "name")]
        names: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Print the effective configuration, secrets redacted; exit non-zero if it is invalid.
    Check,
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // The local vault is a desktop tool: it needs no server configuration.
    if let Command::LocalVault { command } = cli.command {
        return match crate::vault_cmd::run(command) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                let _ = writeln!(std::io::stderr(), "gatehouse: {e}");
                ExitCode::FAILURE
            }
        };
    }
    // Development certificates need no server configuration either.
    if let Command::DevCert { out, names } = cli.command {
        return match crate::dev_cert_cmd::run(&out, &names) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                let _ = writeln!(std::io::stderr(), "gatehouse: dev-cert: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let config = match Config::load(cli.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "gatehouse: invalid configuration: {e}");
            return ExitCode::from(2);
        }
    };
    if let Command::Config {
        command: ConfigCommand::Check,
    } = cli.command
    {
        let _ = write!(std::io::stdout(), "{}", config.to_redacted_toml());
        let _ = writeln!(std::io::stderr(), "gatehouse: configuration is valid");
        return ExitCode::SUCCESS;
    }
    logging::init(config.log_format, &config.log_level);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve => serve(&config).await,
            Command::Migrate => migrate(&config).await,
            Command::Keys { command } => crate::keys_cmd::run(&config, command).await,
            Command::Audit { command } => crate::audit_cmd::run(&config, command).await,
            Command::Backup { command } => crate::backup_cmd::run(&config, command).await,
            Command::Admin { command } => crate::admin_cmd::run(&config, command).await,
            Command::Erase { command } => crate::erase_cmd::run(&config, command).await,
            Command::Unseal { url } => crate::unseal_cmd::run(&config, url.as_deref()).await,
            Command::Mail { command } => crate::mail_cmd::run(&config, command).await,
            Command::Posture { json } => crate::posture_cmd::run(&config, json).await,
            Command::Config { .. } | Command::LocalVault { .. } | Command::DevCert { .. } => Ok(()),
        }
    });
    let code = match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            logging::flush();
            let _ = writeln!(std::io::stderr(), "gatehouse: {e}");
            ExitCode::FAILURE
        }
    };
    logging::flush();
    code
}

async fn serve(config: &Config) -> Result<(), String> {
    // A sealed start (D2) has no key to build with yet: it binds first and builds once unsealed.
    let app = match config.master_key {
        crate::config::MasterKey::Shares => None,
        _ => Some(App::build(config).await.map_err(|e| e.to_string())?),
    };
    let listener = tokio::net::TcpListener::bind(config.server.listen)
        .await
        .map_err(|e| format!("listen: cannot bind {}: {e}", config.server.listen))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    if config.mode == crate::config::Mode::Development && !local.ip().is_loopback() {
        tracing::warn!(
            address = %local,
            "development mode is listening beyond loopback with a development key; use mode = \"production\" for anything reachable by others"
        );
    }
    // Before announcing the address: a SIGINT or SIGTERM sent as soon as it is announced stops
    // the server gracefully rather than killing it.
    let shutdown = shutdown_signal();
    let scheme = if config.tls.is_some() {
        "https"
    } else {
        "http"
    };
    tracing::info!(address = %local, mode = ?config.mode, "listening on {scheme}://{local}");
    let admin = match config.server.admin_listen {
        Some(addr) => {
            let l = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| format!("admin_listen: cannot bind {addr}: {e}"))?;
            tracing::info!(address = %addr, "operator API (/admin/v1) listening on {scheme}://{addr}");
            Some(l)
        }
        None => None,
    };
    match app {
        Some(app) => app
            .serve_with_admin(listener, admin, shutdown)
            .await
            .map_err(|e| format!("server error: {e}")),
        None => crate::unseal::serve_sealed(config, listener, admin, shutdown).await,
    }
}

async fn migrate(config: &Config) -> Result<(), String> {
    match &config.database.database {
        Database::Sqlite { url } => {
            std::fs::create_dir_all(&config.data_dir).map_err(|e| format!("data_dir: {e}"))?;
            let store = SqliteStore::connect(url, 1)
                .await
                .map_err(|e| e.to_string())?;
            store.migrate().await.map_err(|e| e.to_string())?;
        }
        Database::Postgres { url, migration_url } => {
            PostgresStore::migrate(migration_url.as_deref().unwrap_or(url))
                .await
                .map_err(|e| e.to_string())?;
        }
    }
    tracing::info!("migrations applied");
    Ok(())
}

/// Resolves on SIGINT or SIGTERM. Both handlers are installed when this is called, not when the
/// future is first polled, so no signal between the two is lost to the default action.
fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    use tokio::signal::unix::{Signal, SignalKind, signal};
    async fn wait(installed: std::io::Result<Signal>, name: &'static str) {
        match installed {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for {name}; only the other signal stops the server");
                std::future::pending::<()>().await;
            }
        }
    }
    let int = wait(signal(SignalKind::interrupt()), "SIGINT");
    let term = wait(signal(SignalKind::terminate()), "SIGTERM");
    async move {
        tokio::select! {
            () = int => {}
            () = term => {}
        }
    }
}
