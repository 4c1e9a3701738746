//! `gatehouse backup create | verify | restore` (D3): an online snapshot written as an
//! age-encrypted archive, checked without restoring, and restored into an empty database on
//! either backend (which is also how a deployment moves from SQLite to PostgreSQL).

mod crypt;
mod seal;
mod target;

use std::fs::OpenOptions;
use std::io::{BufReader, BufWriter, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use gatehouse_core::backup::{ArchiveReader, ArchiveWriter, Manifest, RestoreSource, Value};

use crate::config::Config;

#[derive(Debug, clap::Subcommand)]
pub(crate) enum BackupCommand {
    /// Take a consistent snapshot (also while `serve` runs) and write it as an age-encrypted
    /// archive to the configured `[backup]` recipients.
    Create {
        /// The archive to write; refused if it exists.
        #[arg(long)]
        out: PathBuf,
    },
    /// Decrypt an archive and check every table against its manifest and the manifest against
    /// the master key's seal, restoring nothing. Exits non-zero when anything fails.
    Verify {
        file: PathBuf,
        /// An age identity file (mode 0600), for archives encrypted to recipients (a passphrase
        /// archive is opened with `backup.passphrase_file`).
        #[arg(long)]
        identity: Option<PathBuf>,
        /// Accept an archive without the master key's seal (one made under
        /// `master_key = "shares"`): only for an archive whose origin you know.
        #[arg(long)]
        accept_unsealed: bool,
    },
    /// Restore an archive into the configured database, which must be new or hold no rows.
    Restore {
        file: PathBuf,
        /// An age identity file (mode 0600), for archives encrypted to recipients (a passphrase
        /// archive is opened with `backup.passphrase_file`).
        #[arg(long)]
        identity: Option<PathBuf>,
        /// Accept an archive without the master key's seal (one made under
        /// `master_key = "shares"`): only for an archive whose origin you know.
        #[arg(long)]
        accept_unsealed: bool,
    },
}

fn out(line: &str) {
    let _ = writeln!(std::io::stdout(), "{line}");
}

fn progress(table: &str, rows: u64) {
    let _ = writeln!(std::io::stderr(), "backup: {table}: {rows} rows");
}

pub(crate) async fn run(config: &Config, command: BackupCommand) -> Result<(), String> {
    match command {
        BackupCommand::Create { out } => create(config, &out).await,
        BackupCommand::Verify {
            file,
            identity,
            accept_unsealed,
        } => {
            let facts = check(config, identity.as_deref(), &file)?;
            // The seal before anything the archive says is printed.
            target::master_key_matches(config, &facts.kek_checks).await?;
            seal::check(config, &facts, accept_unsealed).await?;
            describe(&facts.manifest);
            out("master key: the configured key opens this backup's data keys");
            out(&format!("{}: intact", file.display()));
            Ok(())
        }
        BackupCommand::Restore {
            file,
            identity,
            accept_unsealed,
        } => restore(config, identity.as_deref(), &file, accept_unsealed).await,
    }
}

async fn create(config: &Config, path: &Path) -> Result<(), String> {
    let store = target::open(config).await?;
    if store.schema_version().await.map_err(|e| e.to_string())? == 0 {
        return Err(
            "the configured database has no Gatehouse schema, so there is nothing to back up; \
             check data_dir or database_url"
                .into(),
        );
    }
    let sealer = seal::Sealer::for_config(config).await?;
    // Written beside the destination and linked to its name at the end (never over an existing
    // file), so a cut-short run leaves no file under the name an operator would restore from.
    let mut partial = path.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    if path.exists() {
        return Err(format!("{} exists; choose a new name", path.display()));
    }
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&partial)
        .map_err(|e| {
            format!(
                "cannot create {}: {e} (a run that was killed leaves it behind: delete it)",
                partial.display()
            )
        })?;
    let result = async {
        let stream = crypt::encryptor(&config.backup, BufWriter::with_capacity(1 << 20, file))?;
        let now = gatehouse_core::clock::Clock::now(&gatehouse_core::clock::SystemClock)
            .format(&time::format_description::well_known::Rfc3339)
            .map_err(|e| e.to_string())?;
        let mut writer = seal::Watch::new(ArchiveWriter::new(stream, now));
        store
            .snapshot(&mut writer, &progress)
            .await
            .map_err(|e| e.to_string())?;
        let (writer, checks) = writer.into_parts();
        let (manifest, stream) = writer
            .finish_sealed(|m| sealer.seal(m, &checks))
            .map_err(|e| e.to_string())?;
        crypt::finish(stream)?;
        std::fs::hard_link(&partial, path)
            .map_err(|e| format!("cannot put the archive at {}: {e}", path.display()))?;
        let _ = std::fs::remove_file(&partial);
        sync_dir(path);
        Ok::<_, String>(manifest)
    }
    .await;
    match result {
        Ok(manifest) => {
            describe(&manifest);
            if !sealer.seals() {
                out(
                    "seal: none (master_key = \"shares\"): restoring this archive will need --accept-unsealed",
                );
            }
            out(&format!("backup written to {}", path.display()));
            Ok(())
        }
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            Err(e)
        }
    }
}

/// Makes the new name durable: the rename or link is an entry in the directory.
fn sync_dir(path: &Path) {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

fn describe(m: &Manifest) {
    let rows: u64 = m.tables.iter().map(|t| t.rows).sum();
    out(&format!(
        "backup of {:?} taken {:?} (format {}, schema version {}): {} tables, {rows} rows",
        m.backend,
        m.created_at,
        m.format_version,
        m.schema_version,
        m.tables.len()
    ));
    out(&format!("audit chains: {}", m.chain_heads.len()));
    match &m.newest_checkpoint {
        Some(c) => out(&format!(
            "newest checkpoint: chain {} at seq {} (key version {})",
            c.chain, c.seq, c.key_version
        )),
        None => out("newest checkpoint: none"),
    }
}

/// What a full read of an archive found.
struct Checked {
    manifest: Manifest,
    seal: Option<gatehouse_core::backup::Seal>,
    /// The check values of the master-key versions the data keys may be wrapped under.
    kek_checks: Vec<Vec<u8>>,
}

/// Decrypts and reads the whole archive, checking every digest and the manifest.
fn check(config: &Config, identity: Option<&Path>, file: &Path) -> Result<Checked, String> {
    let plain = crypt::decryptor(&config.backup, identity, file)?;
    let mut reader = ArchiveReader::open(BufReader::with_capacity(1 << 20, plain))
        .map_err(|e| format!("{}: {e}", file.display()))?;
    let mut kek_checks = Vec::new();
    let fail = |e: gatehouse_core::backup::BackupError| format!("{}: {e}", file.display());
    while let Some(table) = reader.next_table().map_err(fail)? {
        let check_at = table.columns.iter().position(|c| c.name == "check_value");
        let state_at = table.columns.iter().position(|c| c.name == "state");
        loop {
            let rows = reader.next_rows(4096).map_err(fail)?;
            if rows.is_empty() {
                break;
            }
            if table.name != "kek_versions" {
                continue;
            }
            for row in rows {
                let active = state_at
                    .and_then(|i| row.get(i))
                    .is_some_and(|v| *v == Value::Text("active".into()));
                if let (true, Some(Value::Blob(b))) = (active, check_at.and_then(|i| row.get(i))) {
                    kek_checks.push(b.clone());
                }
            }
        }
    }
    let manifest = reader
        .manifest()
        .cloned()
        .ok_or_else(|| format!("{}: no manifest", file.display()))?;
    Ok(Checked {
        manifest,
        seal: reader.seal().cloned(),
        kek_checks,
    })
}

async fn restore(
    config: &Config,
    identity: Option<&Path>,
    file: &Path,
    accept_unsealed: bool,
) -> Result<(), String> {
    // First pass: the whole archive is decrypted and checked, and the master key compared,
    // before the target is touched.
    let facts = check(config, identity, file)?;
    let known = gatehouse_store_sqlite::latest_version();
    let version = facts.manifest.schema_version;
    if version > known {
        return Err(format!(
            "the backup's schema version is {version}, newer than this Gatehouse knows ({known}); \
             restore it with the Gatehouse release that made it or a later one"
        ));
    }
    target::master_key_matches(config, &facts.kek_checks).await?;
    seal::check(config, &facts, accept_unsealed).await?;
    let store = target::open_empty(config, version).await?;
    let plain = crypt::decryptor(&config.backup, identity, file)?;
    let mut reader = ArchiveReader::open(BufReader::with_capacity(1 << 20, plain))
        .map_err(|e| format!("{}: {e}", file.display()))?;
    reader.expect_manifest(facts.manifest.clone());
    store
        .restore(&mut reader as &mut dyn RestoreSource, &progress)
        .await
        .map_err(|e| format!("restore refused, nothing written: {e}"))?;
    target::migrate_rest(config).await.map_err(|e| {
        format!("restored, but the migrations after the backup's schema failed: {e}")
    })?;
    describe(&facts.manifest);
    out("restored; checking the audit chains with the configured master key");
    crate::audit_cmd::run(
        config,
        crate::audit_cmd::AuditCommand::Verify {
            org: None,
            expect: Vec::new(),
        },
    )
    .await
}
