//! The master key's sources: `GATEHOUSE_MASTER_KEY`, a key file, or (development only) a key
//! generated once into the data directory with mode 0600.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use gatehouse_crypto::{Key32, random_key};

/// Reads a base64 key file, refusing one that others can read.
pub(crate) fn read(path: &Path) -> Result<Key32, String> {
    let text = secret_text(path)?;
    Key32::from_base64(text.expose()).map_err(|e| format!("{} {e}", path.display()))
}

/// Reads a secret file (a password, a key), refusing one that group or others can read. The
/// text is trimmed of surrounding whitespace.
pub(crate) fn secret_text(path: &Path) -> Result<gatehouse_crypto::SecretString, String> {
    let meta = fs::metadata(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(format!(
            "{} is readable by group or others (mode {:o}); run chmod 600 on it",
            path.display(),
            meta.permissions().mode() & 0o777
        ));
    }
    let text = zeroize::Zeroizing::new(
        fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?,
    );
    Ok(gatehouse_crypto::SecretString::from(text.trim().to_owned()))
}

/// Loads the development key at `path`, generating it first when absent. Returns whether it was
/// generated now.
///
/// Several processes starting at once on one new data directory agree on one key: each writes
/// its candidate to a file of its own and links it into place, which only the first manages; the
/// others drop theirs and read the winner's. The key file is never seen half written.
pub(crate) fn load_or_generate(path: &Path) -> Result<(Key32, bool), String> {
    if path.exists() {
        return read(path).map(|k| (k, false));
    }
    let key = random_key().map_err(|e| e.to_string())?;
    let candidate = path.with_extension(format!("{}.partial", uuid::Uuid::new_v4().simple()));
    write_new(&candidate, &key)?;
    let linked = fs::hard_link(&candidate, path);
    let _ = fs::remove_file(&candidate);
    match linked {
        Ok(()) => Ok((key, true)),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => read(path).map(|k| (k, false)),
        Err(e) => Err(format!("cannot create {}: {e}", path.display())),
    }
}

/// Writes `key` as base64 into a new file with mode 0600, synced.
pub(crate) fn write_new(path: &Path, key: &Key32) -> Result<(), String> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    file.write_all(key.to_base64().expose().as_bytes())
        .and_then(|()| file.write_all(b"\n"))
        .and_then(|()| file.sync_all())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_once_with_mode_0600_then_reused() {
        let dir = std::env::temp_dir().join(format!("gh-key-{}", uuid::Uuid::new_v4()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("master.key");
        let (k1, fresh) = load_or_generate(&path).unwrap();
        assert!(fresh);
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let (k2, fresh) = load_or_generate(&path).unwrap();
        assert!(!fresh);
        assert_eq!(k1.expose(), k2.expose());
        // Processes starting at once on a new directory all end with the one key stored.
        let racing = dir.join("racing.key");
        let keys: Vec<_> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| s.spawn(|| load_or_generate(&racing).unwrap()))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(keys.iter().filter(|(_, fresh)| *fresh).count(), 1);
        let stored = read(&racing).unwrap();
        assert!(keys.iter().all(|(k, _)| k.expose() == stored.expose()));
        let leftovers = fs::read_dir(&dir)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .path()
                    .to_string_lossy()
                    .ends_with(".partial")
            })
            .count();
        assert_eq!(leftovers, 0);
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(read(&path).unwrap_err().contains("chmod 600"));
        fs::remove_dir_all(&dir).unwrap();
    }
}
