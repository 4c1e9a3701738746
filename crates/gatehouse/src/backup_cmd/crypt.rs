//! The archive's encryption: the age format (age-encryption.org/v1) through the `age` crate.
//! age authenticates every 64 KiB chunk and the end of the stream, so a changed byte, a cut or
//! an archive for someone else fails before any row is believed.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;

use age::secrecy::SecretString;

use crate::config::backup::BackupConfig;
use crate::keyfile;

/// The smallest passphrase accepted for a backup (age stretches it with scrypt).
const MIN_PASSPHRASE: usize = 12;

fn passphrase(path: &Path) -> Result<SecretString, String> {
    let text = keyfile::secret_text(path).map_err(|e| format!("backup.passphrase_file: {e}"))?;
    if text.expose().chars().count() < MIN_PASSPHRASE {
        return Err(format!(
            "backup.passphrase_file: the passphrase is shorter than {MIN_PASSPHRASE} characters"
        ));
    }
    Ok(SecretString::from(text.expose().to_owned()))
}

/// Wraps `out` in an age encryptor to the configured recipients.
pub(super) fn encryptor(
    config: &BackupConfig,
    out: BufWriter<File>,
) -> Result<age::stream::StreamWriter<BufWriter<File>>, String> {
    let enc = if let Some(path) = &config.passphrase_file {
        age::Encryptor::with_user_passphrase(passphrase(path)?)
    } else {
        let recipients = config
            .recipients
            .iter()
            .map(|r| crate::config::backup::recipient(r))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("backup.recipients: {e}"))?;
        if recipients.is_empty() {
            return Err(
                "backups are always encrypted: set backup.recipients (age X25519 public keys) or \
                 backup.passphrase_file"
                    .into(),
            );
        }
        age::Encryptor::with_recipients(
            recipients.iter().map(|r| r.as_ref() as &dyn age::Recipient),
        )
        .map_err(|e| format!("cannot encrypt to the recipients: {e}"))?
    };
    enc.wrap_output(out)
        .map_err(|e| format!("cannot start the archive: {e}"))
}

/// Opens `file` for reading with an identity file (`--identity`) or the configured passphrase.
pub(super) fn decryptor(
    config: &BackupConfig,
    identity: Option<&Path>,
    file: &Path,
) -> Result<Box<dyn Read + Send>, String> {
    let input = File::open(file).map_err(|e| format!("cannot open {}: {e}", file.display()))?;
    let dec = age::Decryptor::new(BufReader::new(input))
        .map_err(|e| format!("{} is not an age archive: {e}", file.display()))?;
    let refused = |e: age::DecryptError| match e {
        age::DecryptError::NoMatchingKeys => format!(
            "{}: none of the given identities is a recipient of this backup (it was encrypted \
             for someone else)",
            file.display()
        ),
        age::DecryptError::DecryptionFailed | age::DecryptError::KeyDecryptionFailed => {
            format!(
                "{}: cannot decrypt: wrong passphrase or key, or the file was altered",
                file.display()
            )
        }
        other => format!("{}: cannot decrypt: {other}", file.display()),
    };
    if dec.is_scrypt() {
        let Some(path) = &config.passphrase_file else {
            return Err(format!(
                "{} is encrypted to a passphrase; set backup.passphrase_file",
                file.display()
            ));
        };
        let id = age::scrypt::Identity::new(passphrase(path)?);
        let r = dec
            .decrypt(std::iter::once(&id as &dyn age::Identity))
            .map_err(refused)?;
        return Ok(Box::new(r));
    }
    let Some(identity) = identity else {
        return Err(format!(
            "{} is encrypted to age recipients; give --identity FILE (an age identity file, mode \
             0600)",
            file.display()
        ));
    };
    let text = keyfile::secret_text(identity).map_err(|e| format!("--identity: {e}"))?;
    let ids = age::IdentityFile::from_buffer(text.expose().as_bytes())
        .map_err(|e| format!("--identity: not an age identity file: {e}"))?
        .into_identities()
        .map_err(|e| format!("--identity: not an age identity file: {e}"))?;
    let r = dec
        .decrypt(ids.iter().map(|i| i.as_ref() as &dyn age::Identity))
        .map_err(refused)?;
    Ok(Box::new(r))
}

/// Finishes the age stream (its last chunk is what makes a cut detectable) and syncs the file.
pub(super) fn finish(w: age::stream::StreamWriter<BufWriter<File>>) -> Result<(), String> {
    let mut inner = w
        .finish()
        .map_err(|e| format!("cannot finish the archive: {e}"))?;
    inner
        .flush()
        .map_err(|e| format!("cannot write the archive: {e}"))?;
    let file = inner
        .into_inner()
        .map_err(|e| format!("cannot write the archive: {e}"))?;
    file.sync_all()
        .map_err(|e| format!("cannot sync the archive: {e}"))
}
