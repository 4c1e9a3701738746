//! `gatehouse serve` processes the drill starts, kills with SIGKILL and starts again: each one
//! in the same working directory (one `gatehouse.toml`, one data directory, so one master key and
//! one mail directory), on an ephemeral port learnt from its "listening on" log line.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_gatehouse");

/// How long a start may take before the drill gives up on it (a loaded CI machine).
const START_BOUND: Duration = Duration::from_secs(60);

#[derive(Debug, Default)]
struct Slot {
    child: Option<Child>,
    addr: Option<SocketAddr>,
    starts: u32,
}

/// The instances of one deployment, and the round-robin over the live ones.
#[derive(Debug)]
pub(crate) struct Fleet {
    dir: PathBuf,
    slots: Mutex<Vec<Slot>>,
    next: AtomicUsize,
    pub(crate) kills: AtomicUsize,
}

impl Fleet {
    /// `size` instances of the deployment configured in `dir/gatehouse.toml`, none started yet.
    pub(crate) fn new(dir: &Path, size: usize) -> Self {
        std::fs::create_dir_all(dir.join("logs")).unwrap();
        Self {
            dir: dir.to_owned(),
            slots: Mutex::new((0..size).map(|_| Slot::default()).collect()),
            next: AtomicUsize::new(0),
            kills: AtomicUsize::new(0),
        }
    }

    pub(crate) fn size(&self) -> usize {
        self.slots.lock().unwrap().len()
    }

    /// Starts instance `i` and waits until it listens (blocking: call from `spawn_blocking`).
    pub(crate) fn start(&self, i: usize) -> SocketAddr {
        let n = {
            let mut slots = self.slots.lock().unwrap();
            assert!(slots[i].child.is_none(), "instance {i} is already running");
            slots[i].starts += 1;
            slots[i].starts
        };
        let (child, addr) = spawn(&self.dir, &format!("i{i}-{n}"));
        let mut slots = self.slots.lock().unwrap();
        slots[i].child = Some(child);
        slots[i].addr = Some(addr);
        addr
    }

    /// SIGKILL for instance `i` (taken out of the rotation first), reaped.
    pub(crate) fn kill(&self, i: usize) {
        let child = {
            let mut slots = self.slots.lock().unwrap();
            slots[i].addr = None;
            slots[i].child.take()
        };
        if let Some(mut child) = child {
            // `Child::kill` is SIGKILL on Unix: no drain, no flush, no shutdown hook.
            child.kill().unwrap();
            child.wait().unwrap();
            self.kills.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// Stops instance `i` with SIGTERM (a clean shutdown) and waits for it, bounded.
    pub(crate) fn terminate(&self, i: usize) {
        let child = {
            let mut slots = self.slots.lock().unwrap();
            slots[i].addr = None;
            slots[i].child.take()
        };
        let Some(mut child) = child else { return };
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        let until = Instant::now() + Duration::from_secs(40);
        while Instant::now() < until {
            if child.try_wait().unwrap().is_some() {
                return;
            }
            std::thread::park_timeout(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("instance {i} did not exit within 40 s of SIGTERM");
    }

    /// Indexes of the instances that are up.
    pub(crate) fn live(&self) -> Vec<usize> {
        let slots = self.slots.lock().unwrap();
        (0..slots.len())
            .filter(|i| slots[*i].addr.is_some())
            .collect()
    }

    /// The addresses of the instances that are up.
    pub(crate) fn addrs(&self) -> Vec<SocketAddr> {
        self.slots
            .lock()
            .unwrap()
            .iter()
            .filter_map(|s| s.addr)
            .collect()
    }

    /// The next live instance's address, round-robin; `None` while every instance is down.
    pub(crate) fn pick(&self) -> Option<SocketAddr> {
        let slots = self.slots.lock().unwrap();
        let live: Vec<SocketAddr> = slots.iter().filter_map(|s| s.addr).collect();
        if live.is_empty() {
            return None;
        }
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        Some(live[n % live.len()])
    }

    /// The process id of instance `i`, while it runs.
    pub(crate) fn pid(&self, i: usize) -> Option<u32> {
        self.slots.lock().unwrap()[i].child.as_ref().map(Child::id)
    }

    /// Whether instance `i` is still running (it has not exited on its own).
    pub(crate) fn running(&self, i: usize) -> bool {
        let mut slots = self.slots.lock().unwrap();
        match slots[i].child.as_mut() {
            Some(child) => child.try_wait().unwrap().is_none(),
            None => false,
        }
    }

    /// Every log line every instance wrote, for the checks that read logs.
    pub(crate) fn log_lines(&self) -> Vec<String> {
        let mut lines = Vec::new();
        for entry in std::fs::read_dir(self.dir.join("logs")).unwrap() {
            let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
            lines.extend(text.lines().map(str::to_owned));
        }
        lines
    }
}

impl Drop for Fleet {
    // A failing drill must not leave servers running.
    fn drop(&mut self) {
        if let Ok(mut slots) = self.slots.lock() {
            for slot in slots.iter_mut() {
                if let Some(mut child) = slot.child.take() {
                    let _ = child.kill();
                    let _ = child.wait();
                }
            }
        }
    }
}

/// Starts `gatehouse serve` in `dir`; its log goes to `dir/logs/{name}.log`.
fn spawn(dir: &Path, name: &str) -> (Child, SocketAddr) {
    let mut child = Command::new(BIN)
        .arg("serve")
        .current_dir(dir)
        .env_clear()
        .env("GATEHOUSE_LISTEN", "127.0.0.1:0")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut file = std::fs::File::create(dir.join("logs").join(format!("{name}.log"))).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut told = false;
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = writeln!(file, "{line}");
            if !told && line.contains("listening on") {
                let json: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
                if let Some(addr) = json["address"].as_str() {
                    told = true;
                    let _ = tx.send(addr.to_owned());
                }
            }
        }
    });
    match rx.recv_timeout(START_BOUND) {
        Ok(addr) => (child, addr.parse().unwrap()),
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            let log =
                std::fs::read_to_string(dir.join("logs").join(format!("{name}.log"))).unwrap();
            panic!("instance {name} did not listen within {START_BOUND:?}; its log:\n{log}");
        }
    }
}
