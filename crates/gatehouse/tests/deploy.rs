//! What `deploy/` gives an operator works as it is.
//!
//! `deploy/gatehouse.toml`, the configuration docs/SCALING.md describes, passes
//! `gatehouse config check` in production mode with the secrets it expects from the environment
//! and from files, and is refused without Redis (it shares limits there).
//!
//! The systemd unit in `deploy/systemd/gatehouse.service` is one systemd accepts without a word:
//! `systemd-analyze verify` must print nothing (it reports unknown keys and bad values as
//! warnings and still exits 0, so its output is what is checked), and `systemd-analyze security`
//! must rate its sandbox at most 2.0 ("OK"), so a hardening line removed by accident shows up.
//!
//! verify refuses a unit whose `ExecStart` binary does not exist, and the unit names the path it is
//! installed at (`/usr/local/bin/gatehouse`); the test verifies a copy with that path replaced by
//! the binary cargo built for this test, and nothing else changed. It needs `systemd-analyze`
//! (Debian package `systemd`, which `scripts/test` installs) and fails, never skips, without it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_gatehouse");
const INSTALLED: &str = "/usr/local/bin/gatehouse";

fn deploy_file(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../deploy")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn unit_text() -> String {
    deploy_file("systemd/gatehouse.service")
}

fn temp_dir(what: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("gatehouse-{what}-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Base64 of 32 bytes, as the master key and the secret files hold (random enough for a test).
fn key_text() -> String {
    use base64::Engine as _;
    let bytes = [
        uuid::Uuid::new_v4().into_bytes(),
        uuid::Uuid::new_v4().into_bytes(),
    ]
    .concat();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Writes a secret file: a key's base64, mode 0600.
fn secret_file(path: &Path) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::write(path, key_text()).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// `gatehouse config check` on `deploy/gatehouse.toml` with its files under `dir` instead of
/// /etc/gatehouse, and `env` as the whole environment.
fn config_check(dir: &Path, env: &[(&str, String)]) -> Output {
    let text =
        deploy_file("gatehouse.toml").replace("/etc/gatehouse/", &format!("{}/", dir.display()));
    let config = dir.join("gatehouse.toml");
    std::fs::write(&config, text).unwrap();
    Command::new(BIN)
        .args(["config", "check", "--config"])
        .arg(&config)
        .current_dir(dir)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .unwrap()
}

#[test]
fn the_example_configuration_is_valid_in_production_mode() {
    let dir = temp_dir("config");
    for name in ["app-backend.key", "pepper.key", "smtp-password"] {
        secret_file(&dir.join(name));
    }
    let mut env = vec![
        ("GATEHOUSE_MASTER_KEY", key_text()),
        (
            "GATEHOUSE_DATABASE_URL",
            "postgres://gatehouse_app:pw@db.internal:5432/gatehouse?sslmode=verify-full".to_owned(),
        ),
        (
            "GATEHOUSE_REDIS_URL",
            "rediss://:pw@redis.internal:6379".to_owned(),
        ),
    ];
    let out = config_check(&dir, &env);
    let said = reported(&out);
    assert!(
        out.status.success(),
        "config check refused deploy/gatehouse.toml:\n{said}"
    );
    for line in [
        "mode = \"production\"",
        "store = \"redis\"",
        "listen = \"10.0.0.11:8080\"",
    ] {
        assert!(said.contains(line), "{line} missing from:\n{said}");
    }
    // Without Redis the shared limits have nowhere to live: refused, with the setting named.
    env.retain(|(k, _)| *k != "GATEHOUSE_REDIS_URL");
    let out = config_check(&dir, &env);
    assert!(!out.status.success());
    assert!(
        reported(&out).contains("redis_url: required"),
        "{}",
        reported(&out)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Writes `text` as `gatehouse.service` in a fresh directory (verify names units by file name).
fn write_unit(text: &str) -> PathBuf {
    let path = temp_dir("unit").join("gatehouse.service");
    std::fs::write(&path, text).unwrap();
    path
}

fn analyze(args: &[&str], unit: &Path) -> Output {
    Command::new("systemd-analyze")
        .args(args)
        .arg(unit)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "systemd-analyze cannot be run ({e}); install the Debian package systemd \
                 (scripts/test does) to check deploy/systemd/gatehouse.service"
            )
        })
}

fn reported(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The unit as verified: the installed binary's path replaced by the one cargo built.
fn unit_for_this_build() -> String {
    let text = unit_text();
    let exec = format!("ExecStart={INSTALLED} serve");
    assert_eq!(
        text.matches(&exec).count(),
        1,
        "the unit must start {INSTALLED} serve, once"
    );
    text.replace(&exec, &format!("ExecStart={BIN} serve"))
}

#[test]
fn the_unit_passes_systemd_analyze_verify_without_a_word() {
    let unit = write_unit(&unit_for_this_build());
    let out = analyze(&["verify"], &unit);
    let said = reported(&out);
    assert!(
        out.status.success() && said.trim().is_empty(),
        "systemd-analyze verify {} reported (status {}):\n{said}",
        unit.display(),
        out.status
    );
    // The check is live: the same unit with a misspelt key is reported.
    let typo = write_unit(&unit_for_this_build().replace("NoNewPrivileges=", "NoNewPrivilege="));
    let said = reported(&analyze(&["verify"], &typo));
    assert!(
        said.contains("Unknown key"),
        "verify did not report a misspelt key, so it checks nothing here:\n{said}"
    );
    for dir in [&unit, &typo] {
        let _ = std::fs::remove_dir_all(dir.parent().unwrap());
    }
}

#[test]
fn the_units_sandbox_is_rated_ok_by_systemd_analyze_security() {
    let unit = write_unit(&unit_for_this_build());
    // The exposure level is 0.0 to 10.0; --threshold takes it times ten. 1.4 when written.
    let out = analyze(&["security", "--offline=yes", "--threshold=20"], &unit);
    let said = reported(&out);
    assert!(
        out.status.success(),
        "systemd-analyze security rates the unit's exposure above 2.0:\n{said}"
    );
    assert!(said.contains("Overall exposure level"), "{said}");
    let _ = std::fs::remove_dir_all(unit.parent().unwrap());
}
