//! TLS (D4), checked with the real `openssl s_client`: TLS 1.3 only by default, TLS 1.2 with
//! ECDHE and AEAD suites only when asked for, HSTS and the client's address over HTTPS,
//! certificate reload on SIGHUP and on file change without a restart, a bad replacement kept
//! out, and `gatehouse dev-cert`'s chain verifying against its own CA.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use gatehouse::config::RawConfig;
use gatehouse::config::tls::TlsConfig;
use gatehouse::dev_cert_cmd::{DevCertFiles, generate};
use gatehouse::tls::TlsReloader;
use gatehouse::{App, Config};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::support::{raw_config, temp_dir};

const BIN: &str = env!("CARGO_BIN_EXE_gatehouse");

struct TlsServer {
    addr: std::net::SocketAddr,
    dir: PathBuf,
    files: DevCertFiles,
    tls: Arc<TlsReloader>,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// Starts the real `App` over TLS with a fresh dev certificate, on 127.0.0.1:0.
async fn start(min_version: &str, edit: impl FnOnce(&mut RawConfig)) -> TlsServer {
    let dir = temp_dir();
    let files = generate(&dir.join("tls")).unwrap();
    start_with(dir, files, min_version, None, edit).await
}

async fn start_with(
    dir: PathBuf,
    files: DevCertFiles,
    min_version: &str,
    poll: Option<Duration>,
    edit: impl FnOnce(&mut RawConfig),
) -> TlsServer {
    let mut raw = raw_config(&dir);
    raw.tls = TlsConfig {
        cert_file: Some(files.cert.clone()),
        key_file: Some(files.key.clone()),
        min_version: min_version.to_owned(),
    };
    edit(&mut raw);
    let config = Config::from_raw(raw, None).unwrap();
    let app = App::build(&config).await.unwrap();
    let tls = Arc::clone(app.tls().expect("[tls] is configured"));
    if let Some(every) = poll {
        tls.set_poll_interval(every);
    }
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(app.serve(listener, async move {
        let _ = stopped.await;
    }));
    TlsServer {
        addr,
        dir,
        files,
        tls,
        stop,
        task,
    }
}

impl TlsServer {
    /// Graceful shutdown, as for plain HTTP: `serve` returns Ok.
    async fn stop(self) {
        let _ = self.stop.send(());
        tokio::time::timeout(Duration::from_secs(30), self.task)
            .await
            .expect("TLS server drains and stops")
            .unwrap()
            .unwrap();
        let _ = std::fs::remove_dir_all(&self.dir);
    }

    async fn s_client(&self, args: &[&str], input: &[u8]) -> Handshake {
        s_client(self.addr, args, input).await
    }
}

/// What `openssl s_client` said: whether it exited 0, and its stdout and stderr.
#[derive(Debug)]
struct Handshake {
    ok: bool,
    stdout: String,
    stderr: String,
}

impl Handshake {
    fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
}

/// Runs a command (bounded to 30 s by coreutils' `timeout`) on a blocking thread, feeding it
/// `input` on standard input.
async fn run(program: &str, args: Vec<String>, input: Vec<u8>) -> Handshake {
    let program = program.to_owned();
    tokio::task::spawn_blocking(move || {
        use std::io::Write;
        let mut child = Command::new("timeout")
            .arg("30")
            .arg(&program)
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
        let mut stdin = child.stdin.take().unwrap();
        let _ = stdin.write_all(&input);
        drop(stdin);
        let out = child.wait_with_output().unwrap();
        Handshake {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    })
    .await
    .unwrap()
}

async fn s_client(addr: std::net::SocketAddr, args: &[&str], input: &[u8]) -> Handshake {
    let mut all = vec![
        "s_client".to_owned(),
        "-connect".to_owned(),
        addr.to_string(),
        "-servername".to_owned(),
        "localhost".to_owned(),
    ];
    all.extend(args.iter().map(|s| (*s).to_owned()));
    run("/usr/bin/openssl", all, input.to_vec()).await
}

/// Sends one HTTP/1.1 request over TLS and returns the raw response.
async fn https(addr: std::net::SocketAddr, request: &str) -> String {
    let h = s_client(addr, &["-quiet", "-ign_eof"], request.as_bytes()).await;
    assert!(h.ok, "{}", h.all());
    h.stdout
}

/// The serial number of the certificate the server presents, as `openssl x509 -serial` prints it.
async fn served_serial(addr: std::net::SocketAddr) -> String {
    let h = s_client(addr, &["-showcerts"], b"").await;
    assert!(h.ok, "{}", h.all());
    let start = h.stdout.find("-----BEGIN CERTIFICATE-----").unwrap();
    let end = h.stdout.find("-----END CERTIFICATE-----").unwrap() + 25;
    serial_of_pem(&h.stdout[start..end]).await
}

async fn serial_of_pem(pem: &str) -> String {
    let h = run(
        "/usr/bin/openssl",
        vec!["x509".into(), "-noout".into(), "-serial".into()],
        pem.as_bytes().to_vec(),
    )
    .await;
    assert!(h.ok, "{}", h.all());
    h.stdout.trim().to_owned()
}

async fn file_serial(path: &Path) -> String {
    serial_of_pem(&std::fs::read_to_string(path).unwrap()).await
}

/// Moves a new certificate and key into place the way a renewal would: each written aside,
/// then renamed over the old one.
fn replace_files(from: &DevCertFiles, to: &DevCertFiles) {
    for (src, dst) in [(&from.key, &to.key), (&from.cert, &to.cert)] {
        let aside = dst.with_extension("new");
        std::fs::copy(src, &aside).unwrap();
        std::fs::set_permissions(&aside, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::rename(&aside, dst).unwrap();
    }
}

#[tokio::test]
async fn default_refuses_tls12_and_accepts_tls13() {
    let server = start("1.3", |_| {}).await;
    let h = server.s_client(&["-tls1_2", "-brief"], b"").await;
    assert!(!h.ok, "TLS 1.2 must be refused by default: {}", h.all());
    assert!(!h.all().contains("CONNECTION ESTABLISHED"), "{}", h.all());
    let h = server.s_client(&["-tls1_3", "-brief"], b"").await;
    assert!(h.ok, "{}", h.all());
    let all = h.all();
    assert!(all.contains("CONNECTION ESTABLISHED"), "{all}");
    assert!(all.contains("Protocol version: TLSv1.3"), "{all}");
    // ALPN: HTTP/1.1 only.
    let h = server
        .s_client(&["-tls1_3", "-alpn", "h2,http/1.1"], b"")
        .await;
    assert!(h.all().contains("ALPN protocol: http/1.1"), "{}", h.all());
    server.stop().await;
}

#[tokio::test]
async fn min_version_12_accepts_tls12_with_ecdhe_aead_suites_only() {
    let server = start("1.2", |_| {}).await;
    let h = server.s_client(&["-tls1_2", "-brief"], b"").await;
    assert!(h.ok, "{}", h.all());
    let all = h.all();
    assert!(all.contains("Protocol version: TLSv1.2"), "{all}");
    assert!(
        all.contains("Ciphersuite: ECDHE-ECDSA-AES256-GCM-SHA384"),
        "{all}"
    );
    // TLS 1.3 still works.
    let h = server.s_client(&["-tls1_3", "-brief"], b"").await;
    assert!(h.ok && h.all().contains("TLSv1.3"), "{}", h.all());
    // Each TLS 1.2 suite the client is limited to: only ECDHE with AEAD is accepted.
    for (suite, accepted) in [
        ("ECDHE-ECDSA-AES128-GCM-SHA256", true),
        ("ECDHE-ECDSA-CHACHA20-POLY1305", true),
        ("ECDHE-ECDSA-AES256-SHA384", false),
        ("ECDHE-ECDSA-AES128-SHA", false),
        ("AES128-GCM-SHA256", false),
        ("AES256-SHA256", false),
        ("DHE-RSA-AES128-GCM-SHA256", false),
    ] {
        let h = server
            .s_client(&["-tls1_2", "-brief", "-cipher", suite], b"")
            .await;
        assert_eq!(h.ok, accepted, "{suite}: {}", h.all());
    }
    server.stop().await;
}

#[tokio::test]
async fn https_responses_carry_hsts_and_the_clients_address_reaches_the_limiter() {
    // Trusting 127.0.0.1 as a proxy, each forwarded address has its own quota; that needs the
    // peer address (ConnectInfo) on TLS connections too. Without it every request would share
    // one "unknown" bucket and the second would be refused.
    let server = start("1.3", |raw| {
        raw.rate_limits.enabled = true;
        raw.rate_limits.per_ip.auth = 1;
        raw.trusted_proxies = vec!["127.0.0.1".into()];
    })
    .await;
    let res = https(
        server.addr,
        "GET /health/live HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(res.starts_with("HTTP/1.1 200"), "{res}");
    let lower = res.to_ascii_lowercase();
    assert!(
        lower.contains("strict-transport-security: max-age=31536000; includesubdomains"),
        "{res}"
    );
    let login = |xff: &str| {
        let body = r#"{"email":"nobody@example.com","password":"whatever-it-is"}"#;
        format!(
            "POST /v1/auth/login HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\
             Content-Type: application/json\r\nX-Forwarded-For: {xff}\r\n\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        )
    };
    for (xff, status) in [
        ("198.51.100.1", "401"),
        ("198.51.100.2", "401"),
        ("198.51.100.1", "429"),
    ] {
        let res = https(server.addr, &login(xff)).await;
        assert!(
            res.starts_with(&format!("HTTP/1.1 {status}")),
            "{xff}: {res}"
        );
        assert!(
            res.to_ascii_lowercase()
                .contains("strict-transport-security:"),
            "{res}"
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn sighup_serves_a_replaced_certificate_without_restart() {
    // Install a SIGHUP handler in this process first, so a signal that arrives before the
    // server's own listener exists cannot end the test process.
    let _guard = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).unwrap();
    let dir = temp_dir();
    let files = generate(&dir.join("tls")).unwrap();
    // Polling effectively off: only the signal can cause the reload seen here.
    let server = start_with(
        dir.clone(),
        files,
        "1.3",
        Some(Duration::from_secs(3600)),
        |_| {},
    )
    .await;
    let old = served_serial(server.addr).await;
    assert_eq!(old, file_serial(&server.files.cert).await);
    let second = generate(&dir.join("second")).unwrap();
    let new = file_serial(&second.cert).await;
    assert_ne!(old, new);
    replace_files(&second, &server.files);
    // Still the old certificate: nothing told the server yet.
    assert_eq!(served_serial(server.addr).await, old);
    let pid = std::process::id().to_string();
    let mut served = old.clone();
    for _ in 0..20 {
        let status = Command::new("kill").args(["-HUP", &pid]).status().unwrap();
        assert!(status.success());
        tokio::time::sleep(Duration::from_millis(250)).await;
        served = served_serial(server.addr).await;
        if served == new {
            break;
        }
    }
    assert_eq!(served, new, "after SIGHUP the new certificate is served");
    assert!(
        !server.task.is_finished(),
        "the same server, never restarted"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_changed_certificate_file_is_picked_up_without_a_signal() {
    let dir = temp_dir();
    let files = generate(&dir.join("tls")).unwrap();
    let server = start_with(
        dir.clone(),
        files,
        "1.3",
        Some(Duration::from_millis(200)),
        |_| {},
    )
    .await;
    let old = served_serial(server.addr).await;
    let second = generate(&dir.join("second")).unwrap();
    let new = file_serial(&second.cert).await;
    replace_files(&second, &server.files);
    let mut served = old.clone();
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        served = served_serial(server.addr).await;
        if served == new {
            break;
        }
    }
    assert_eq!(
        served, new,
        "the new certificate is served after the file changed"
    );
    assert!(!server.task.is_finished());
    server.stop().await;
}

#[tokio::test]
async fn a_bad_replacement_is_refused_and_the_old_certificate_stays() {
    let dir = temp_dir();
    let files = generate(&dir.join("tls")).unwrap();
    let server = start_with(
        dir.clone(),
        files,
        "1.3",
        Some(Duration::from_millis(200)),
        |_| {},
    )
    .await;
    let old = served_serial(server.addr).await;
    let cert = server.files.cert.clone();
    let good = std::fs::read(&cert).unwrap();
    // Garbage, then a certificate whose key is not the configured one.
    std::fs::write(&cert, "-----BEGIN CERTIFICATE-----\nnot base64\n").unwrap();
    let err = server.tls.reload().unwrap_err();
    assert!(err.starts_with("tls.cert_file:"), "{err}");
    let other = generate(&dir.join("other")).unwrap();
    std::fs::copy(&other.cert, &cert).unwrap();
    let err = server.tls.reload().unwrap_err();
    assert!(err.contains("does not match"), "{err}");
    // The poller sees the change too and fails the same way; give it a few rounds.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        served_serial(server.addr).await,
        old,
        "old certificate kept"
    );
    assert!(
        !server.task.is_finished(),
        "a bad file never stops the server"
    );
    // Putting the right file back is picked up again.
    std::fs::write(&cert, good).unwrap();
    server.tls.reload().unwrap();
    assert_eq!(served_serial(server.addr).await, old);
    server.stop().await;
}

#[tokio::test]
async fn dev_cert_writes_a_ca_whose_chain_verifies_and_prints_the_tls_lines() {
    let dir = temp_dir();
    let out = dir.join("dev tls");
    let res = tokio::task::spawn_blocking({
        let out = out.clone();
        move || {
            Command::new(BIN)
                .args(["dev-cert", "--out"])
                .arg(&out)
                .env_clear()
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    assert!(res.status.success(), "{res:?}");
    let stdout = String::from_utf8(res.stdout).unwrap();
    let out_abs = std::fs::canonicalize(&out).unwrap();
    assert!(stdout.contains("[tls]"), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "cert_file = \"{}\"",
            out_abs.join("cert.pem").display()
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "key_file = \"{}\"",
            out_abs.join("key.pem").display()
        )),
        "{stdout}"
    );
    let mode = |name: &str| {
        std::fs::metadata(out.join(name))
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode("key.pem"), 0o600);
    assert_eq!(mode("ca-key.pem"), 0o600);
    // Running it again overwrites nothing.
    let again = Command::new(BIN)
        .args(["dev-cert", "--out"])
        .arg(&out)
        .env_clear()
        .output()
        .unwrap();
    assert!(!again.status.success());

    let files = DevCertFiles {
        ca: out.join("ca.pem"),
        ca_key: out.join("ca-key.pem"),
        cert: out.join("cert.pem"),
        key: out.join("key.pem"),
    };
    let ca = files.ca.display().to_string();
    let server = start_with(dir.clone(), files, "1.3", None, |_| {}).await;
    for name in ["-verify_hostname", "-verify_ip"] {
        let value = if name == "-verify_ip" {
            "127.0.0.1"
        } else {
            "localhost"
        };
        let h = server
            .s_client(
                &[
                    "-brief",
                    "-CAfile",
                    &ca,
                    "-verify_return_error",
                    name,
                    value,
                ],
                b"",
            )
            .await;
        assert!(h.ok, "{}", h.all());
        assert!(h.all().contains("Verification: OK"), "{}", h.all());
    }
    // Another CA does not vouch for it, and the dev CA is not for other names.
    let stranger = generate(&dir.join("stranger")).unwrap();
    let h = server
        .s_client(
            &[
                "-brief",
                "-CAfile",
                &stranger.ca.display().to_string(),
                "-verify_return_error",
            ],
            b"",
        )
        .await;
    assert!(!h.ok, "{}", h.all());
    let h = server
        .s_client(
            &[
                "-brief",
                "-CAfile",
                &ca,
                "-verify_return_error",
                "-verify_hostname",
                "example.com",
            ],
            b"",
        )
        .await;
    assert!(!h.ok, "{}", h.all());
    server.stop().await;
}
