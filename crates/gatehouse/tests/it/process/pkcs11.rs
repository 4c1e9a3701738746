//! D1's HSM source against SoftHSM2: a database sealed under a file master key is rotated to a
//! key inside the token (with `kill -9` part-way and a rerun), then to a second HSM key; a wrong
//! PIN refuses the start and changes nothing; `serve` on the HSM key reads every sealed value;
//! no file in the data directory holds either HSM key's bytes.
//!
//! The test makes its own token directory and token, and imports keys of known value as
//! sensitive and not extractable, so it can look for those bytes afterwards. It fails (does not
//! skip) when SoftHSM2 is missing: `scripts/test` installs it.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use base64::Engine as _;
use gatehouse_core::keyring::{FieldRef, SealedKind};
use gatehouse_core::store::OrganizationRecord;
use gatehouse_core::{Clock, OrgId, SystemClock, TenantScope};

use super::BIN;
use crate::support::temp_dir;

const MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";
const TOKEN: &str = "gatehouse-test";
const PIN: &str = "4711-user";
const ORGS: usize = 300;

/// A SoftHSM2 token directory of the test's own, with one initialised token.
struct SoftHsm {
    conf: PathBuf,
}

impl SoftHsm {
    fn new(dir: &Path) -> Self {
        assert!(
            Path::new(MODULE).is_file() && which("softhsm2-util") && which("pkcs11-tool"),
            "SoftHSM2 and OpenSC are needed for the PKCS#11 tests: apt-get install softhsm2 \
             opensc (scripts/test installs them)"
        );
        let tokens = dir.join("tokens");
        std::fs::create_dir_all(&tokens).unwrap();
        let conf = dir.join("softhsm2.conf");
        std::fs::write(
            &conf,
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
                tokens.display()
            ),
        )
        .unwrap();
        let hsm = Self { conf };
        hsm.tool(
            "softhsm2-util",
            &[
                "--init-token",
                "--free",
                "--label",
                TOKEN,
                "--so-pin",
                "so-pin-1",
                "--pin",
                PIN,
            ],
        );
        hsm
    }

    fn tool(&self, program: &str, args: &[&str]) -> String {
        let out = Command::new(program)
            .args(args)
            .env("SOFTHSM2_CONF", &self.conf)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "{program} {args:?}: {text}");
        text
    }

    /// Imports `key` as an AES-256 key that is sensitive and not extractable.
    fn import(&self, dir: &Path, label: &str, key: &[u8; 32]) {
        let file = dir.join(format!("{label}.bin"));
        std::fs::write(&file, key).unwrap();
        let shown = self.tool(
            "pkcs11-tool",
            &[
                "--module",
                MODULE,
                "--token-label",
                TOKEN,
                "--login",
                "--pin",
                PIN,
                "--write-object",
                file.to_str().unwrap(),
                "--type",
                "secrkey",
                "--key-type",
                "AES:32",
                "--label",
                label,
                "--sensitive",
                "--usage-decrypt",
            ],
        );
        assert!(!shown.contains("extractable"), "{shown}");
        // The only copy outside the token goes now.
        std::fs::remove_file(&file).unwrap();
    }

    fn conf(&self) -> &str {
        self.conf.to_str().unwrap()
    }
}

/// A child killed when dropped, so a failing assertion leaves no process behind (it would hold
/// whatever this test process holds, the machine's build lock among them).
struct Reaped(std::process::Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs the binary with `env` and waits at most 120 seconds for it to exit (a start that should
/// be refused but is not must not hang the suite); returns (success, stdout, stderr).
fn run_cli(
    dir: &Path,
    args: &[&str],
    env: &[(&str, &str)],
    _stdin: &str,
) -> (bool, String, String) {
    let child = Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env_clear()
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = Reaped(child);
    let read = |mut pipe: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            text
        })
    };
    let out = read(Box::new(child.0.stdout.take().unwrap()));
    let err = read(Box::new(child.0.stderr.take().unwrap()));
    for _ in 0..1200 {
        if let Some(status) = child.0.try_wait().unwrap() {
            return (status.success(), out.join().unwrap(), err.join().unwrap());
        }
        std::thread::park_timeout(Duration::from_millis(100));
    }
    panic!("gatehouse {args:?} did not exit within 120 s");
}

fn which(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The environment of a process whose master key is HSM key `label`.
fn hsm_env<'a>(hsm: &'a SoftHsm, label: &'a str, pin: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("SOFTHSM2_CONF", hsm.conf()),
        ("GATEHOUSE_MASTER_KEY_PKCS11__MODULE", MODULE),
        ("GATEHOUSE_MASTER_KEY_PKCS11__TOKEN_LABEL", TOKEN),
        ("GATEHOUSE_MASTER_KEY_PKCS11__KEY_LABEL", label),
        ("GATEHOUSE_PKCS11_PIN", pin),
    ]
}

/// Every file under `dir`, with its bytes.
fn files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files(&path));
        } else {
            out.push((path.clone(), std::fs::read(&path).unwrap()));
        }
    }
    out.sort();
    out
}

fn holds(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The (data keys under master version 1, under version 2) counted in `keys status`.
/// Active data keys wrapped under master versions 1 and 2. A data key the re-encryption job
/// retired (all its values moved) keeps the wrapping it had: rotation rewraps active keys only,
/// and a `serve` may have retired some before the rotation ran.
fn wrapped_under(status: &str) -> (usize, usize) {
    (
        status
            .matches("active, wrapped under master version 1,")
            .count(),
        status
            .matches("active, wrapped under master version 2,")
            .count(),
    )
}

/// Seals two values in each of `ORGS` organisations under the file key, then adds a second
/// data-key version to each without moving the values, so a later `serve` must open every one
/// of them (re-encryption) to finish.
async fn seed(config: &gatehouse::Config) -> Vec<OrgId> {
    let app = gatehouse::App::build(config).await.unwrap();
    let kernel = app.kernel();
    let mut orgs = Vec::new();
    for i in 0..ORGS {
        let org = OrgId::new(&SystemClock);
        let mut tx = kernel.store().begin().await.unwrap();
        tx.insert_organization(&OrganizationRecord {
            id: org,
            name: format!("hsm-{i}"),
            created_at: SystemClock.now(),
            keys_shredded_at: None,
        })
        .await
        .unwrap();
        let mut tx = tx.enter(&TenantScope::for_tests(org)).await.unwrap();
        for field in ["a", "b"] {
            let at = FieldRef {
                kind: SealedKind::TransitField,
                record_id: "secret",
                field,
            };
            kernel
                .keyring()
                .seal(tx.as_mut(), at, format!("{org}-{field}").as_bytes())
                .await
                .unwrap();
        }
        tx.commit(gatehouse_core::audit::Audited::for_tests())
            .await
            .unwrap();
        kernel.keyring().rotate_org(org).await.unwrap();
        orgs.push(org);
    }
    orgs
}

#[tokio::test]
async fn pkcs11_rotation_from_a_file_key_survives_kill_9_then_moves_between_hsm_keys() {
    let dir = temp_dir();
    let hsm = SoftHsm::new(&dir);
    let kek_a = [0xA5u8; 32];
    let kek_b: [u8; 32] = std::array::from_fn(|i| u8::try_from(i).unwrap() ^ 0x5C);
    hsm.import(&dir, "kek-a", &kek_a);
    hsm.import(&dir, "kek-b", &kek_b);

    // The file master key, outside the data directory.
    let key_file = dir.join("master.key");
    let file_key = gatehouse_crypto::random_key().unwrap();
    {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&key_file)
            .unwrap();
        f.write_all(file_key.to_base64().expose().as_bytes())
            .unwrap();
    }
    let data = dir.join("gatehouse-data");
    let mut raw = crate::support::raw_config(&dir);
    raw.data_dir = data.clone();
    raw.master_key_file = Some(key_file.clone());
    let config = gatehouse::Config::from_raw(raw, None).unwrap();
    let orgs = seed(&config).await;
    let key_file_text = key_file.to_str().unwrap();
    let file_env = [
        ("GATEHOUSE_MASTER_KEY_FILE", key_file_text),
        ("GATEHOUSE_LOG_LEVEL", "warn"),
        ("SOFTHSM2_CONF", hsm.conf()),
    ];

    // File key -> HSM key A, killed with SIGKILL after a few organisations.
    let rotate_to_a = [
        "keys",
        "rotate-master",
        "--new-pkcs11-key-label",
        "kek-a",
        "--new-pkcs11-module",
        MODULE,
        "--new-pkcs11-token-label",
        TOKEN,
    ];
    let child = Command::new(BIN)
        .args(rotate_to_a)
        .current_dir(&dir)
        .env_clear()
        .env("GATEHOUSE_MASTER_KEY_FILE", key_file_text)
        .env("GATEHOUSE_PKCS11_PIN", PIN)
        .env("SOFTHSM2_CONF", hsm.conf())
        .env("GATEHOUSE_LOG_LEVEL", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = Reaped(child);
    let mut rewrapped = 0;
    for line in BufReader::new(child.0.stderr.take().unwrap())
        .lines()
        .map_while(Result::ok)
    {
        if line.contains("rewrapped the organisation's data keys") {
            rewrapped += 1;
            if rewrapped == 10 {
                break;
            }
        }
    }
    assert_eq!(rewrapped, 10, "the rotation should log each organisation");
    Command::new("kill")
        .args(["-KILL", &child.0.id().to_string()])
        .status()
        .unwrap();
    child.0.wait().unwrap();

    // Part-way: some data keys under the file key (version 1), some under HSM key A (2).
    let (ok, status, err) = run_cli(&dir, &["keys", "status"], &file_env, "");
    assert!(ok, "{err}");
    let (old, new) = wrapped_under(&status);
    assert!(
        old > 0 && new >= 10 && old + new == 2 * ORGS,
        "killed part-way: {old} under the file key, {new} under the HSM key"
    );

    // Running it again finishes; the file key is then retired.
    let mut env = file_env.to_vec();
    env.push(("GATEHOUSE_PKCS11_PIN", PIN));
    let (ok, out, err) = run_cli(&dir, &rotate_to_a, &env, "");
    assert!(ok, "{err}");
    assert!(out.contains("master key version 2 is now current"), "{out}");
    let (ok, _, err) = run_cli(&dir, &["keys", "status"], &file_env, "");
    assert!(!ok && err.contains("retired"), "{err}");

    // A wrong PIN: start-up refused with a sentence naming the setting, no file touched.
    let before = files(&data);
    let mut wrong = hsm_env(&hsm, "kek-a", "0000-wrong");
    wrong.push(("GATEHOUSE_LISTEN", "127.0.0.1:0"));
    let (ok, _, err) = run_cli(&dir, &["serve"], &wrong, "");
    assert!(!ok);
    assert!(
        err.contains("master_key_pkcs11") && err.contains("refused the PIN"),
        "{err}"
    );
    assert!(!err.contains("0000-wrong"), "{err}");
    assert_eq!(files(&data), before, "a refused start changed the data");

    // `serve` on HSM key A starts (signing, platform and link keys unwrap inside the token).
    let env_a = hsm_env(&hsm, "kek-a", PIN);
    let server = super::start_with(&dir, &env_a);
    server.signal("TERM");
    let (code, _) = server.wait();
    assert_eq!(code, Some(0));

    // HSM key A -> HSM key B, then A is refused at start as retired.
    let (ok, out, err) = run_cli(
        &dir,
        &["keys", "rotate-master", "--new-pkcs11-key-label", "kek-b"],
        &env_a,
        "",
    );
    assert!(ok, "{err}");
    assert!(out.contains("master key version 3 is now current"), "{out}");
    let (ok, _, err) = run_cli(&dir, &["keys", "status"], &env_a, "");
    assert!(!ok && err.contains("version 2, which was retired"), "{err}");
    // A key of the token that was never registered is a wrong master key.
    hsm.import(&dir, "kek-c", &[0x3Cu8; 32]);
    let (ok, _, err) = run_cli(&dir, &["keys", "status"], &hsm_env(&hsm, "kek-c", PIN), "");
    assert!(
        !ok && err.contains("does not match any master-key version"),
        "{err}"
    );

    // `serve` on HSM key B reads every value sealed under the file key: its re-encryption job
    // opens each one (data keys unwrapped inside the token) and reseals it.
    let env_b = hsm_env(&hsm, "kek-b", PIN);
    let mut serve_env = env_b.clone();
    serve_env.push(("GATEHOUSE_KEYRING__REENCRYPT_INTERVAL_SECS", "1"));
    let server = super::start_with(&dir, &serve_env);
    let mut finished = false;
    for _ in 0..150 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let (ok, status, err) = run_cli(&dir, &["keys", "status"], &env_b, "");
        assert!(ok, "{err}");
        let waiting = status
            .lines()
            .filter(|l| l.ends_with("value(s) awaiting re-encryption"))
            .filter(|l| !l.ends_with(": 0 value(s) awaiting re-encryption"))
            .count();
        if waiting == 0 && status.matches("data key version 1: retired").count() == ORGS {
            assert!(status.contains("master key: version 3 in use"), "{status}");
            assert!(status.contains("master version 1: retired"), "{status}");
            assert!(status.contains("master version 2: retired"), "{status}");
            assert_eq!(wrapped_under(&status), (0, 0), "{status}");
            for org in &orgs {
                assert!(status.contains(&format!("org {org}: 0 value(s)")), "{org}");
            }
            finished = true;
            break;
        }
    }
    server.signal("TERM");
    let (code, log) = server.wait();
    assert!(
        finished,
        "serve on the HSM key did not re-encrypt every value: {log:#?}"
    );
    assert_eq!(code, Some(0));
    assert!(
        !log.iter().any(|l| l.contains("re-encryption pass failed")),
        "{log:#?}"
    );

    // Neither HSM key is anywhere in the data directory (database files included).
    let b64 = base64::engine::general_purpose::STANDARD;
    for (path, bytes) in files(&data) {
        for key in [&kek_a, &kek_b] {
            assert!(!holds(&bytes, key), "{} holds an HSM key", path.display());
            assert!(
                !holds(&bytes, b64.encode(key).as_bytes()),
                "{} holds an HSM key in base64",
                path.display()
            );
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
