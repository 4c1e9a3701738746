//! Log output: JSON lines (default) or text, on standard error. Every line written while a
//! request is handled carries that request's span (request id, method, route).
//!
//! Lines are appended to an in-memory buffer that a background thread writes out every 20 ms, or
//! at once when it passes 64 KiB, so a request never pays for a write system call of its own.
//! `flush` writes what is pending; the CLI calls it before exiting. A crash can lose at most the
//! last 20 ms of lines.

use std::io::Write;
use std::sync::{Arc, Condvar, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

use crate::config::LogFormat;

const FLUSH_EVERY: Duration = Duration::from_millis(20);
const FLUSH_AT_BYTES: usize = 64 * 1024;
/// Past this, a writer waits for the flusher rather than grow the buffer without bound.
const HARD_LIMIT_BYTES: usize = 8 * 1024 * 1024;

#[derive(Debug, Default)]
struct Shared {
    buf: Mutex<Vec<u8>>,
    wake: Condvar,
}

static SHARED: OnceLock<Arc<Shared>> = OnceLock::new();

fn shared() -> &'static Arc<Shared> {
    SHARED.get_or_init(|| {
        let shared = Arc::new(Shared::default());
        let for_thread = Arc::clone(&shared);
        let _ = std::thread::Builder::new()
            .name("gatehouse-log".into())
            .spawn(move || flusher(&for_thread));
        shared
    })
}

fn flusher(shared: &Shared) {
    loop {
        let pending = {
            let guard = shared.buf.lock().unwrap_or_else(PoisonError::into_inner);
            let (mut guard, _) = shared
                .wake
                .wait_timeout_while(guard, FLUSH_EVERY, |b| b.len() < FLUSH_AT_BYTES)
                .unwrap_or_else(PoisonError::into_inner);
            std::mem::take(&mut *guard)
        };
        if !pending.is_empty() {
            let _ = std::io::stderr().lock().write_all(&pending);
        }
    }
}

/// Writes every pending line to standard error now.
pub fn flush() {
    if let Some(shared) = SHARED.get() {
        let pending =
            std::mem::take(&mut *shared.buf.lock().unwrap_or_else(PoisonError::into_inner));
        let _ = std::io::stderr().lock().write_all(&pending);
    }
}

#[derive(Debug, Clone, Copy)]
struct Batched;

#[derive(Debug)]
struct BatchedLine;

impl Write for BatchedLine {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let shared = shared();
        let mut buf = shared.buf.lock().unwrap_or_else(PoisonError::into_inner);
        if buf.len() >= HARD_LIMIT_BYTES {
            let pending = std::mem::take(&mut *buf);
            drop(buf);
            std::io::stderr().lock().write_all(&pending)?;
            buf = shared.buf.lock().unwrap_or_else(PoisonError::into_inner);
        }
        buf.extend_from_slice(bytes);
        if buf.len() >= FLUSH_AT_BYTES {
            shared.wake.notify_one();
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Batched {
    type Writer = BatchedLine;

    fn make_writer(&'a self) -> Self::Writer {
        BatchedLine
    }
}

pub fn init(format: LogFormat, level: &str) {
    let filter = EnvFilter::try_new(level).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(Batched);
    // A second init (tests build several apps in one process) keeps the first subscriber.
    let _ = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
        LogFormat::Text => builder.with_ansi(false).try_init(),
    };
}
