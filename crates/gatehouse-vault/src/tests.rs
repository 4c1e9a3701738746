use super::*;

/// The floor the crypto crate allows, to keep tests fast; the default is 64 MiB.
const FAST: KdfParams = KdfParams {
    memory_kib: 19_456,
    iterations: 2,
    parallelism: 1,
};

fn dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("gh-vault-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn pw(s: &str) -> SecretString {
    SecretString::new(s.to_owned())
}

#[test]
fn round_trip() {
    let d = dir();
    let path = d.join("v.ghv");
    let mut v = Vault::create(&path, &pw("correct horse"), FAST).unwrap();
    v.insert("db", pw("postgres://u:p@h/db"));
    v.insert("smtp", pw("smtp-secret"));
    v.save().unwrap();
    let raw = std::fs::read(&path).unwrap();
    assert!(
        !raw.windows(11).any(|w| w == b"smtp-secret"),
        "no cleartext at rest"
    );
    let mut v = Vault::open(&path, &pw("correct horse")).unwrap();
    assert_eq!(v.names(), vec!["db", "smtp"]);
    assert_eq!(v.get("db").unwrap().expose(), "postgres://u:p@h/db");
    assert!(v.remove("db"));
    v.save().unwrap();
    let v = Vault::open(&path, &pw("correct horse")).unwrap();
    assert_eq!(v.names(), vec!["smtp"]);
    assert!(matches!(
        Vault::create(&path, &pw("x"), FAST),
        Err(VaultError::AlreadyExists(_))
    ));
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn default_kdf_is_at_least_64_mib() {
    assert!(KdfParams::default().memory_kib >= 65_536);
}

#[test]
fn wrong_password_and_tampering_are_refused_without_change() {
    let d = dir();
    let path = d.join("v.ghv");
    let mut v = Vault::create(&path, &pw("right"), FAST).unwrap();
    v.insert("k", pw("value"));
    v.save().unwrap();
    let before = std::fs::read(&path).unwrap();
    assert!(matches!(
        Vault::open(&path, &pw("wrong")),
        Err(VaultError::WrongPasswordOrTampered)
    ));
    assert_eq!(std::fs::read(&path).unwrap(), before);
    // A flipped bit anywhere: in the header (KDF parameters, salt), the nonce, the ciphertext.
    for i in [9, 12, 30, HEADER_LEN_FOR_TESTS + 3, before.len() - 1] {
        let mut bad = before.clone();
        bad[i] ^= 0x01;
        std::fs::write(&path, &bad).unwrap();
        let err = Vault::open(&path, &pw("right")).unwrap_err();
        assert!(
            matches!(
                err,
                VaultError::WrongPasswordOrTampered
                    | VaultError::NotAVault(_)
                    | VaultError::Crypto(_)
            ),
            "byte {i}: {err}"
        );
        assert_eq!(
            std::fs::read(&path).unwrap(),
            bad,
            "opening changes nothing"
        );
    }
    std::fs::write(&path, b"not a vault").unwrap();
    assert!(matches!(
        Vault::open(&path, &pw("right")),
        Err(VaultError::NotAVault(_))
    ));
    std::fs::remove_dir_all(&d).unwrap();
}

const HEADER_LEN_FOR_TESTS: usize = format::HEADER_LEN;

#[test]
fn a_crash_between_write_and_rename_keeps_the_previous_file() {
    let d = dir();
    let path = d.join("v.ghv");
    let mut v = Vault::create(&path, &pw("right"), FAST).unwrap();
    v.insert("old", pw("kept"));
    v.save().unwrap();
    let before = std::fs::read(&path).unwrap();
    v.insert("new", pw("lost"));
    let crashed = v.save_with(|| Err(std::io::Error::other("simulated crash")));
    assert!(crashed.is_err());
    assert_eq!(std::fs::read(&path).unwrap(), before);
    let reopened = Vault::open(&path, &pw("right")).unwrap();
    assert_eq!(reopened.names(), vec!["old"]);
    // Nothing is left behind, and the next save succeeds.
    let leftovers: Vec<_> = std::fs::read_dir(&d)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".tmp")
        })
        .collect();
    assert!(leftovers.is_empty());
    v.save().unwrap();
    assert_eq!(
        Vault::open(&path, &pw("right")).unwrap().names(),
        vec!["new", "old"]
    );
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn change_password() {
    let d = dir();
    let path = d.join("v.ghv");
    let mut v = Vault::create(&path, &pw("one"), FAST).unwrap();
    v.insert("k", pw("value"));
    v.save().unwrap();
    v.change_password(&pw("two")).unwrap();
    assert!(Vault::open(&path, &pw("one")).is_err());
    assert_eq!(
        Vault::open(&path, &pw("two"))
            .unwrap()
            .get("k")
            .unwrap()
            .expose(),
        "value"
    );
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn debug_shows_no_values() {
    let d = dir();
    let mut v = Vault::create(&d.join("v.ghv"), &pw("pw-123"), FAST).unwrap();
    v.insert("k", pw("the-value"));
    let s = format!("{v:?}");
    assert!(!s.contains("the-value") && !s.contains("pw-123"));
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn absurd_kdf_parameters_are_refused_before_deriving() {
    let d = dir();
    let path = d.join("v.ghv");
    let mut v = Vault::create(&path, &pw("right"), FAST).unwrap();
    v.insert("k", pw("value"));
    v.save().unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    // memory_kib sits right after magic (8), format (2) and kdf id (1).
    bytes[11..15].copy_from_slice(&u32::MAX.to_be_bytes());
    std::fs::write(&path, &bytes).unwrap();
    assert!(matches!(
        Vault::open(&path, &pw("right")),
        Err(VaultError::NotAVault(_))
    ));
    std::fs::remove_dir_all(&d).unwrap();
}
