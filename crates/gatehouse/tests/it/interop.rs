//! Independent implementations the tests check Gatehouse against: PyJWT (JWT/JWKS), pyotp
//! (TOTP), aiosmtpd (an SMTP server), standardwebhooks (Standard Webhooks, for Python and, with
//! Node, for JavaScript), dnslib (a DNS server) and dkimpy (DKIM), in a virtual environment under the target directory made
//! on first use from PyPI (pinned). Fails loudly, never skips, when it cannot be made.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

static MAKING: Mutex<()> = Mutex::new(());

pub fn python() -> PathBuf {
    let _one_at_a_time = MAKING
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("interop-venv");
    let python = venv.join("bin").join("python");
    let has = |py: &Path| {
        Command::new(py)
            .args([
                "-c",
                "import jwt, cryptography, pyotp, aiosmtpd, standardwebhooks, dnslib, dkim",
            ])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if !has(&python) {
        // nextest runs tests in separate processes: each builds its own environment beside the
        // final one and moves it into place, so nobody ever uses a half-made one.
        let tmp = venv.with_extension(format!("tmp-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        let made = Command::new("python3")
            .args(["-m", "venv", "--system-site-packages"])
            .arg(&tmp)
            .status()
            .expect("python3 is needed for the interop tests");
        assert!(made.success(), "python3 -m venv failed");
        let tmp_python = tmp.join("bin").join("python");
        let installed = Command::new(&tmp_python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "pyjwt==2.15.1",
                "cryptography>=3.4",
                "pyotp==2.9.0",
                "aiosmtpd==1.4.6",
                "standardwebhooks==1.3.0",
                "dnslib==0.9.26",
                "dkimpy==1.1.8",
            ])
            .status()
            .unwrap();
        assert!(
            installed.success(),
            "pip install of the interop packages failed"
        );
        assert!(has(&tmp_python), "the interop packages did not install");
        if std::fs::rename(&tmp, &venv).is_err() {
            if has(&python) {
                // Another process finished first.
                let _ = std::fs::remove_dir_all(&tmp);
            } else {
                // An older, incomplete environment: replace it.
                let _ = std::fs::remove_dir_all(&venv);
                if std::fs::rename(&tmp, &venv).is_err() {
                    let _ = std::fs::remove_dir_all(&tmp);
                }
            }
        }
    }
    assert!(
        has(&python),
        "the interop packages are not importable in {}",
        venv.display()
    );
    python
}

/// The TOTP code pyotp computes for base32 `secret` at unix time `at`.
pub fn pyotp_code(secret: &str, at: i64) -> String {
    let out = Command::new(python())
        .args([
            "-c",
            "import pyotp, sys; print(pyotp.TOTP(sys.argv[1]).at(int(sys.argv[2])))",
            secret,
            &at.to_string(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// aiosmtpd on 127.0.0.1:`port`, keeping each message as a file.
pub struct SmtpSink {
    pub port: u16,
    pub dir: PathBuf,
    child: Option<Child>,
    /// Refuses every recipient with 550 (a permanent refusal).
    refuse: bool,
}

/// A free port on 127.0.0.1 (bound and released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl SmtpSink {
    /// A sink not yet listening: its port refuses connections until `start`.
    pub fn stopped() -> Self {
        let dir = crate::support::temp_dir().join("smtp-sink");
        std::fs::create_dir_all(&dir).unwrap();
        Self {
            port: free_port(),
            dir,
            child: None,
            refuse: false,
        }
    }

    /// A started sink that refuses every recipient for good (550).
    pub fn refusing() -> Self {
        let mut sink = Self::stopped();
        sink.refuse = true;
        sink.start();
        sink
    }

    pub fn started() -> Self {
        let mut sink = Self::stopped();
        sink.start();
        sink
    }

    pub fn start(&mut self) {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop/smtp_sink.py");
        let mut child = Command::new(python())
            .arg(script)
            .arg(self.port.to_string())
            .arg(&self.dir)
            .args(self.refuse.then_some("refuse"))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the SMTP sink must start");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready", "the SMTP sink did not start");
        self.child = Some(child);
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The messages received so far, oldest first.
    pub fn messages(&self) -> Vec<String> {
        let mut names: Vec<_> = std::fs::read_dir(&self.dir)
            .unwrap()
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "eml"))
            .collect();
        names.sort();
        names
            .iter()
            .map(|p| std::fs::read_to_string(p).unwrap())
            .collect()
    }

    /// The raw messages received so far (headers and MIME body as sent), oldest first.
    pub fn raw_messages(&self) -> Vec<String> {
        let mut names: Vec<_> = std::fs::read_dir(&self.dir)
            .unwrap()
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "raw"))
            .collect();
        names.sort();
        names
            .iter()
            .map(|p| String::from_utf8_lossy(&std::fs::read(p).unwrap()).into_owned())
            .collect()
    }

    /// Waits (up to 20 s) until `n` messages arrived; returns them all.
    pub async fn wait_for(&self, n: usize) -> Vec<String> {
        for _ in 0..200 {
            let m = self.messages();
            if m.len() >= n {
                return m;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("expected {n} messages, got {}", self.messages().len());
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The token of the first `{path}?token=...` link in a message's decoded text.
pub fn link_token(message: &str, path: &str) -> String {
    let marker = format!("{path}?token=");
    let start = message
        .find(&marker)
        .unwrap_or_else(|| panic!("no {path} link in {message}"))
        + marker.len();
    message[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect()
}

static NODE_MAKING: Mutex<()> = Mutex::new(());

/// A directory whose `node_modules` holds the official Standard Webhooks library for JavaScript
/// (standardwebhooks from npm, pinned), installed on first use.
pub fn node_modules() -> PathBuf {
    npm_package("interop-node", "standardwebhooks", "standardwebhooks@1.3.0")
}

/// A directory under the test target's temporary directory whose `node_modules` holds `spec`
/// (`name@version`, pinned) from npm, installed on first use. It is made beside the final
/// directory and moved into place, so a concurrent test process never uses a half-made one.
pub fn npm_package(dir_name: &str, name: &str, spec: &str) -> PathBuf {
    let _one_at_a_time = NODE_MAKING
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(dir_name);
    let marker = dir.join(format!("node_modules/{name}/package.json"));
    if !marker.exists() {
        let tmp = dir.with_extension(format!("tmp-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp).unwrap();
        let installed = Command::new("npm")
            .args(["install", "--no-audit", "--no-fund", "--silent", "--prefix"])
            .arg(&tmp)
            .arg(spec)
            .status()
            .unwrap_or_else(|e| panic!("npm is needed to install {spec}: {e}"));
        assert!(installed.success(), "npm install {spec} failed");
        if std::fs::rename(&tmp, &dir).is_err() {
            let _ = std::fs::remove_dir_all(&tmp);
        }
    }
    assert!(
        marker.exists(),
        "{name} is not installed in {}",
        dir.display()
    );
    dir
}

/// A webhook receiver verifying with an official Standard Webhooks library.
pub struct WebhookReceiver {
    pub port: u16,
    pub secret_file: PathBuf,
    out: PathBuf,
    child: Child,
}

/// One request a receiver saw.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Received {
    pub id: String,
    pub verified: bool,
    pub status: u16,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    #[serde(default)]
    pub signatures: usize,
}

impl WebhookReceiver {
    fn spawn(mut cmd: Command, port: u16, secret_file: PathBuf, out: PathBuf) -> Self {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the webhook receiver must start");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready", "the webhook receiver did not start");
        Self {
            port,
            secret_file,
            out,
            child,
        }
    }

    fn files() -> (u16, PathBuf, PathBuf) {
        let dir = crate::support::temp_dir().join("receiver");
        std::fs::create_dir_all(&dir).unwrap();
        let secret = dir.join("secret");
        std::fs::write(&secret, "").unwrap();
        (free_port(), secret, dir.join("received.jsonl"))
    }

    /// Python's `standardwebhooks`, answering 500 to the first `fail_first` requests.
    pub fn python(fail_first: u32) -> Self {
        Self::python_on(free_port(), fail_first)
    }

    /// [`Self::python`] on a given port.
    pub fn python_on(port: u16, fail_first: u32) -> Self {
        let (_, secret, out) = Self::files();
        let mut cmd = Command::new(python());
        cmd.arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/interop/webhook_receiver.py"
        ))
        .arg(port.to_string())
        .arg(&secret)
        .arg(&out)
        .arg(fail_first.to_string());
        Self::spawn(cmd, port, secret, out)
    }

    /// JavaScript's `standardwebhooks`, on Node.
    pub fn node() -> Self {
        let modules = node_modules();
        let (port, secret, out) = Self::files();
        let mut cmd = Command::new("node");
        cmd.arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/interop/webhook_receiver.js"
        ))
        .arg(port.to_string())
        .arg(&secret)
        .arg(&out)
        .env("NODE_PATH", modules.join("node_modules"));
        Self::spawn(cmd, port, secret, out)
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// The secrets it verifies with (one per line).
    pub fn set_secrets(&self, secrets: &[&str]) {
        std::fs::write(&self.secret_file, secrets.join("\n")).unwrap();
    }

    pub fn received(&self) -> Vec<Received> {
        std::fs::read_to_string(&self.out)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// Waits (up to 20 s of real time) until `pred` holds of what was received.
    pub async fn wait_until(
        &self,
        what: &str,
        pred: impl Fn(&[Received]) -> bool,
    ) -> Vec<Received> {
        for _ in 0..200 {
            let r = self.received();
            if pred(&r) {
                return r;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("{what}: the receiver saw {:#?}", self.received());
    }
}

impl Drop for WebhookReceiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A DNS server (dnslib) answering from a zone file the test may rewrite at any time.
pub struct DnsServer {
    pub port: u16,
    zone: PathBuf,
    child: Child,
}

impl DnsServer {
    pub fn start(zone: &serde_json::Value) -> Self {
        let dir = crate::support::temp_dir().join("dns");
        std::fs::create_dir_all(&dir).unwrap();
        let zone_file = dir.join("zone.json");
        std::fs::write(&zone_file, zone.to_string()).unwrap();
        let port = free_udp_port();
        let mut child = Command::new(python())
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/interop/dns_server.py"
            ))
            .arg(port.to_string())
            .arg(&zone_file)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the DNS server must start");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready", "the DNS server did not start");
        Self {
            port,
            zone: zone_file,
            child,
        }
    }

    /// The zone being served.
    pub fn zone(&self) -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(&self.zone).unwrap()).unwrap()
    }

    pub fn set_zone(&self, zone: &serde_json::Value) {
        let tmp = self.zone.with_extension("tmp");
        std::fs::write(&tmp, zone.to_string()).unwrap();
        std::fs::rename(&tmp, &self.zone).unwrap();
    }

    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Every query answered so far, as "name. TYPE".
    pub fn queries(&self) -> Vec<String> {
        let mut log = self.zone.clone().into_os_string();
        log.push(".log");
        std::fs::read_to_string(log)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free UDP port on 127.0.0.1 (bound and released).
pub fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
