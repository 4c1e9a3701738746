//! Private engines for tests that need a PostgreSQL or Redis server of their own: each one is
//! started on a free loopback port in its own temporary directory, can be stopped, killed and
//! started again on the same port (for drills), and with certificates from `gatehouse dev-cert`
//! offers TLS. Also `gatehouse serve` as a child process, and the dev-cert command itself.
//!
//! PostgreSQL's `initdb` and `pg_ctl` refuse to run as root, so as root they run as the
//! `postgres` user (`runuser`) in a directory it owns. Nothing here skips: a missing binary is a
//! failure that says what to install.
#![allow(
    dead_code, // each test binary uses the part it needs
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_gatehouse");

/// A loopback port nothing listens on at the time of asking.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A new directory under the system's temporary directory.
pub fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("gh-{tag}-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Waits (at most `bound`) until something accepts TCP connections on the loopback `port`.
/// Blocking, like the child processes these helpers run (`pg_ctl` waits the same way): nothing
/// else in the test's runtime has work while a server starts.
#[allow(clippy::disallowed_methods)] // a child process's start, not domain time
pub fn wait_for_port(port: u16, bound: Duration) {
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < bound,
            "nothing listens on 127.0.0.1:{port} after {bound:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// What `gatehouse dev-cert` writes.
#[derive(Debug, Clone)]
pub struct DevCert {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Runs `gatehouse dev-cert --out DIR [--name N ...]` (no names: its defaults, localhost,
/// 127.0.0.1 and ::1).
pub fn dev_cert(out: &Path, names: &[&str]) -> DevCert {
    let mut cmd = Command::new(BIN);
    cmd.arg("dev-cert").arg("--out").arg(out).env_clear();
    for n in names {
        cmd.args(["--name", n]);
    }
    let done = cmd.output().unwrap();
    assert!(
        done.status.success(),
        "dev-cert failed: {}",
        String::from_utf8_lossy(&done.stderr)
    );
    DevCert {
        ca: out.join("ca.pem"),
        cert: out.join("cert.pem"),
        key: out.join("key.pem"),
    }
}

fn running_as_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// A PostgreSQL program: on the PATH, else in Debian's versioned directory (newest first).
fn pg_bin(name: &str) -> PathBuf {
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    let mut debian: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| {
            d.filter_map(|e| e.ok().map(|e| e.path().join("bin")))
                .collect()
        })
        .unwrap_or_default();
    debian.sort();
    debian.reverse();
    on_path
        .into_iter()
        .chain(debian)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("PostgreSQL's {name} must be installed for this test"))
}

fn id_of_postgres(flag: &str) -> u32 {
    let out = Command::new("id")
        .args([flag, "postgres"])
        .output()
        .unwrap();
    assert!(out.status.success(), "as root, this needs a postgres user");
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

/// A PostgreSQL cluster of the test's own: superuser `postgres` without a password (trust), on
/// 127.0.0.1 at `port()`, its socket in its own directory. With TLS, plain TCP connections are
/// refused by the server itself (`hostnossl ... reject`), so any connection that works over TCP
/// is encrypted.
#[derive(Debug)]
pub struct PrivatePostgres {
    root: PathBuf,
    data: PathBuf,
    port: u16,
    as_postgres: bool,
}

impl PrivatePostgres {
    /// Initialises a cluster and starts it; `tls`: the server certificate and key it offers.
    pub fn start(tls: Option<&DevCert>) -> Self {
        let root = temp_dir("pg");
        let as_postgres = running_as_root();
        let data = root.join("data");
        let port = free_port();
        let pg = Self {
            root,
            data,
            port,
            as_postgres,
        };
        let mut conf = format!(
            "port = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{root}'\n\
             fsync = off\nsynchronous_commit = off\nfull_page_writes = off\nmax_connections = 60\n",
            root = pg.root.display()
        );
        let mut hba = "local all all trust\n".to_owned();
        if let Some(tls) = tls {
            let cert = pg.root.join("server.crt");
            let key = pg.root.join("server.key");
            std::fs::copy(&tls.cert, &cert).unwrap();
            std::fs::copy(&tls.key, &key).unwrap();
            std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
            conf.push_str(&format!(
                "ssl = on\nssl_cert_file = '{}'\nssl_key_file = '{}'\n",
                cert.display(),
                key.display()
            ));
            hba.push_str(
                "hostssl all all 127.0.0.1/32 trust\nhostnossl all all 0.0.0.0/0 reject\n",
            );
        } else {
            hba.push_str("host all all 127.0.0.1/32 trust\n");
        }
        pg.give_to_postgres(&pg.root);
        let init = pg
            .command("initdb")
            .arg("-D")
            .arg(&pg.data)
            .args(["-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C"])
            .args(["--no-sync", "--no-instructions"])
            .output()
            .unwrap();
        assert!(
            init.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&init.stderr)
        );
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(pg.data.join("postgresql.conf"))
            .unwrap();
        file.write_all(conf.as_bytes()).unwrap();
        std::fs::write(pg.data.join("pg_hba.conf"), hba).unwrap();
        pg.give_to_postgres(&pg.root);
        pg.start_again();
        pg
    }

    /// As root: hands `path` and everything under it to the postgres user.
    fn give_to_postgres(&self, path: &Path) {
        if !self.as_postgres {
            return;
        }
        let (uid, gid) = (id_of_postgres("-u"), id_of_postgres("-g"));
        let mut todo = vec![path.to_path_buf()];
        while let Some(p) = todo.pop() {
            std::os::unix::fs::chown(&p, Some(uid), Some(gid)).unwrap();
            if p.is_dir() {
                todo.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
            }
        }
    }

    fn command(&self, name: &str) -> Command {
        let bin = pg_bin(name);
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(bin);
            c
        } else {
            Command::new(bin)
        };
        cmd.stdin(Stdio::null());
        cmd
    }

    fn pg_ctl(&self, args: &[&str]) -> std::process::Output {
        self.command("pg_ctl")
            .arg("-D")
            .arg(&self.data)
            .args(args)
            .output()
            .unwrap()
    }

    /// Starts the server (again), waiting until it accepts connections (at most 30 s).
    pub fn start_again(&self) {
        let log = self.root.join("postgres.log");
        let log = log.display().to_string();
        let out = self.pg_ctl(&["-l", &log, "-w", "-t", "30", "start"]);
        assert!(
            out.status.success(),
            "pg_ctl start failed: {}{}",
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }

    /// A clean shutdown (`-m fast`: sessions are ended, then the server stops).
    pub fn stop(&self) {
        let out = self.pg_ctl(&["-w", "-t", "30", "-m", "fast", "stop"]);
        assert!(out.status.success(), "pg_ctl stop failed");
    }

    /// As close to a crash as pg_ctl offers (`-m immediate`: no checkpoint, recovery at start).
    pub fn kill(&self) {
        let out = self.pg_ctl(&["-w", "-t", "30", "-m", "immediate", "stop"]);
        assert!(out.status.success(), "pg_ctl stop -m immediate failed");
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `postgres://postgres@HOST:PORT/postgres` with `params` (`sslmode=...`) as its query.
    pub fn url(&self, host: &str, params: &str) -> String {
        let query = if params.is_empty() {
            String::new()
        } else {
            format!("?{params}")
        };
        format!("postgres://postgres@{host}:{}/postgres{query}", self.port)
    }

    /// The server's log, for a failure message.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.root.join("postgres.log")).unwrap_or_default()
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let _ = self.pg_ctl(&["-m", "immediate", "stop"]);
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// A redis-server of the test's own on 127.0.0.1. With TLS it listens only on its TLS port
/// (`--port 0`), so every client that gets an answer spoke TLS.
#[derive(Debug)]
pub struct PrivateRedis {
    child: Option<Child>,
    port: u16,
    tls: Option<DevCert>,
}

impl PrivateRedis {
    pub fn start(tls: Option<&DevCert>) -> Self {
        let mut redis = Self {
            child: None,
            port: free_port(),
            tls: tls.cloned(),
        };
        redis.start_again();
        redis
    }

    /// Starts it (again) on the same port, waiting until it accepts connections (at most 10 s).
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "redis-server is already running");
        let port = self.port.to_string();
        let mut cmd = Command::new("redis-server");
        cmd.args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]);
        match &self.tls {
            Some(t) => {
                cmd.args(["--port", "0", "--tls-port", &port])
                    .arg("--tls-cert-file")
                    .arg(&t.cert)
                    .arg("--tls-key-file")
                    .arg(&t.key)
                    .arg("--tls-ca-cert-file")
                    .arg(&t.ca)
                    .args(["--tls-auth-clients", "no"]);
            }
            None => {
                cmd.args(["--port", &port]);
            }
        }
        let child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect(
                "redis-server (Debian's redis-server package, built with TLS) must be installed",
            );
        self.child = Some(child);
        wait_for_port(self.port, Duration::from_secs(10));
    }

    /// SIGKILL, and waits for it to be gone.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `rediss://127.0.0.1:PORT` with TLS, else `redis://...`.
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() {
            "rediss"
        } else {
            "redis"
        };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `gatehouse serve` as a child process, its standard error read line by line.
#[derive(Debug)]
pub struct Serve {
    child: Child,
    lines: Receiver<String>,
    /// The address of `listen`, from the "listening on" line.
    pub address: String,
}

/// Starts `gatehouse serve` in `dir` with only `env` (plus `GATEHOUSE_LISTEN=127.0.0.1:0`) and
/// waits (at most `bound`) for it to listen. `Err` when it exits first: its exit status and
/// everything it wrote on standard error.
pub fn serve(dir: &Path, env: &[(&str, String)], bound: Duration) -> Result<Serve, String> {
    let mut child = Command::new(BIN)
        .arg("serve")
        .current_dir(dir)
        .env_clear()
        .env("GATEHOUSE_LISTEN", "127.0.0.1:0")
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let started = Instant::now();
    let mut seen = Vec::new();
    loop {
        let left = bound.saturating_sub(started.elapsed());
        match lines.recv_timeout(left) {
            Ok(line) => {
                let json: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
                if json["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with("listening on"))
                {
                    let address = json["address"].as_str().unwrap().to_owned();
                    return Ok(Serve {
                        child,
                        lines,
                        address,
                    });
                }
                seen.push(line);
            }
            Err(RecvTimeoutError::Disconnected) => {
                let status = child.wait().unwrap();
                return Err(format!("{status}\n{}", seen.join("\n")));
            }
            Err(RecvTimeoutError::Timeout) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "gatehouse serve neither listened nor exited within {bound:?}:\n{}",
                    seen.join("\n")
                );
            }
        }
    }
}

impl Serve {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    /// Waits (at most `bound`) for a line containing `needle` among those written since it
    /// started listening (its log is written by a buffered thread, so not at once). `Err`: the
    /// lines seen meanwhile.
    pub fn wait_for_line(&self, needle: &str, bound: Duration) -> Result<String, String> {
        let started = Instant::now();
        let mut seen = Vec::new();
        loop {
            let left = bound.saturating_sub(started.elapsed());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return Ok(line),
                Ok(line) => seen.push(line),
                Err(_) => return Err(seen.join("\n")),
            }
        }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
