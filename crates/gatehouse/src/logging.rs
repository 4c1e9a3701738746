//! Log output: JSON lines (default) or text, on standard error. Every line written while a
//! request is handled carries that request's span (request id, method, route).
//!
//! Each thread appends its lines to a buffer of its own (no lock shared between request threads);
//! a background thread collects every buffer and writes it out every 20 ms, or as soon as one
//! passes 64 KiB, so a request never pays for a write system call or a contended lock. Lines of
//! one thread stay in order; lines of different threads written within the same 20 ms may be
//! interleaved out of timestamp order. `flush` writes what is pending; the CLI calls it before
//! exiting. A crash can lose at most the last 20 ms of lines.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

use crate::config::LogFormat;

const FLUSH_EVERY: Duration = Duration::from_millis(20);
const FLUSH_AT_BYTES: usize = 64 * 1024;
/// Past this, a writer writes its own buffer out rather than grow it without bound.
const HARD_LIMIT_BYTES: usize = 8 * 1024 * 1024;

type Buffer = Arc<Mutex<Vec<u8>>>;

#[derive(Debug)]
struct Shared {
    /// Every thread's buffer (a thread's is dropped once the thread has ended and it is empty).
    buffers: Mutex<Vec<Buffer>>,
    flusher: std::thread::Thread,
}

static SHARED: OnceLock<Shared> = OnceLock::new();

fn shared() -> &'static Shared {
    SHARED.get_or_init(|| {
        let flusher = std::thread::Builder::new()
            .name("gatehouse-log".into())
            .spawn(flusher)
            .map_or_else(|_| std::thread::current(), |h| h.thread().clone());
        Shared {
            buffers: Mutex::new(Vec::new()),
            flusher,
        }
    })
}

thread_local! {
    static MINE: Buffer = {
        let b: Buffer = Arc::new(Mutex::new(Vec::with_capacity(4096)));
        shared()
            .buffers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Arc::clone(&b));
        b
    };
}

/// Appends to this thread's buffer with `append`: lines go in whole and in order.
fn append_to_buffer(append: impl FnOnce(&mut Vec<u8>)) -> std::io::Result<()> {
    let mut append = Some(append);
    let buffered = MINE.try_with(|mine| {
        let mut buf = mine.lock().unwrap_or_else(PoisonError::into_inner);
        if buf.len() >= HARD_LIMIT_BYTES {
            // The flusher is behind (a stalled stderr): write our own out, in our own time.
            std::io::stderr().lock().write_all(&buf)?;
            buf.clear();
        }
        if let Some(f) = append.take() {
            f(&mut buf);
        }
        if buf.len() >= FLUSH_AT_BYTES {
            shared().flusher.unpark();
        }
        Ok(())
    });
    match (buffered, append) {
        (Ok(result), _) => result,
        // A line from a thread whose buffer is already gone (it is ending): written at once.
        (Err(_), Some(f)) => {
            let mut line = Vec::new();
            f(&mut line);
            std::io::stderr().lock().write_all(&line)
        }
        (Err(_), None) => Ok(()),
    }
}

/// Writes out every thread's pending lines; forgets the buffers of threads that have ended.
fn collect(spare: &mut Vec<u8>) {
    let Some(shared) = SHARED.get() else {
        return;
    };
    let buffers: Vec<Buffer> = {
        let mut all = shared
            .buffers
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // Held only here: its thread has ended. Kept one more round if lines are still in it.
        all.retain(|b| {
            Arc::strong_count(b) > 1 || !b.lock().unwrap_or_else(PoisonError::into_inner).is_empty()
        });
        all.clone()
    };
    for b in buffers {
        {
            let mut buf = b.lock().unwrap_or_else(PoisonError::into_inner);
            if buf.is_empty() {
                continue;
            }
            std::mem::swap(&mut *buf, spare);
        }
        let _ = std::io::stderr().lock().write_all(spare);
        spare.clear();
        // A burst must not pin its memory for ever.
        if spare.capacity() > 4 * FLUSH_AT_BYTES {
            spare.shrink_to(FLUSH_AT_BYTES);
        }
    }
}

fn flusher() {
    let mut spare = Vec::with_capacity(FLUSH_AT_BYTES);
    loop {
        std::thread::park_timeout(FLUSH_EVERY);
        collect(&mut spare);
    }
}

/// Writes every pending line to standard error now.
pub fn flush() {
    collect(&mut Vec::new());
}

#[derive(Debug, Clone, Copy)]
struct Batched;

#[derive(Debug)]
struct BatchedLine;

impl Write for BatchedLine {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        append_to_buffer(|buf| buf.extend_from_slice(bytes))?;
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

/// Set by `init` when lines are JSON: access lines then bypass `tracing` (see [`JsonAccessLog`]).
static JSON_LINES: OnceLock<()> = OnceLock::new();

/// The access log for the HTTP layer: JSON lines written straight into the buffer, with the same
/// keys `tracing`'s JSON formatter would write (`timestamp`, `level`, `message`, `request_id`,
/// `method`, `route`, `status`, `latency_us`, `target`). `None` (access lines go through
/// `tracing`) for text output, or when INFO lines of the HTTP layer are filtered out.
pub fn access_log() -> Option<std::sync::Arc<dyn gatehouse_http::AccessLog>> {
    let info = tracing::enabled!(target: ACCESS_TARGET, tracing::Level::INFO);
    (JSON_LINES.get().is_some() && info).then(|| {
        std::sync::Arc::new(JsonAccessLog) as std::sync::Arc<dyn gatehouse_http::AccessLog>
    })
}

const ACCESS_TARGET: &str = "gatehouse_http::middleware::request_id";

#[derive(Debug)]
struct JsonAccessLog;

impl gatehouse_http::AccessLog for JsonAccessLog {
    fn record(&self, l: &gatehouse_http::AccessLine<'_>) {
        // Written field by field, without `fmt` or a serializer and straight into the shared
        // buffer: this runs for every request, and formatting and copying were most of the
        // logging layer's cost (callgrind, bench/run.py).
        let _ = append_to_buffer(|buf| write_access_line(buf, l));
    }
}

fn write_access_line(line: &mut Vec<u8>, l: &gatehouse_http::AccessLine<'_>) {
    line.extend_from_slice(b"{\"timestamp\":\"");
    access_timestamp(line);
    line.extend_from_slice(if l.status >= 500 {
        b"\",\"level\":\"ERROR\""
    } else {
        b"\",\"level\":\"INFO\""
    });
    // The request id is 32 lowercase hex characters and the method an HTTP token, by
    // construction (request_id.rs, `http::Method`): neither can need escaping.
    line.extend_from_slice(b",\"message\":\"request completed\",\"request_id\":\"");
    line.extend_from_slice(l.request_id.as_bytes());
    line.extend_from_slice(b"\",\"method\":\"");
    line.extend_from_slice(l.method.as_bytes());
    line.push(b'"');
    line.extend_from_slice(b",\"route\":");
    json_str(line, l.route);
    line.extend_from_slice(b",\"status\":");
    line.extend_from_slice(itoa::Buffer::new().format(l.status).as_bytes());
    json_u64(line, "latency_us", l.latency_us);
    if let Some(ip) = &l.info.client_ip {
        // An address's text never needs escaping.
        line.extend_from_slice(b",\"client_ip\":\"");
        line.extend_from_slice(ip.to_string().as_bytes());
        line.push(b'"');
    }
    if let Some(o) = l.info.organization.get() {
        json_uuid(line, "organization_id", o);
    }
    if let Some(u) = l.info.user.get() {
        json_uuid(line, "user_id", u);
    }
    if let Some(t) = &l.info.trace_id {
        line.extend_from_slice(b",\"trace_id\":");
        json_str(line, t);
    }
    if let Some(p) = &l.info.parent_span_id {
        line.extend_from_slice(b",\"parent_span_id\":");
        json_str(line, p);
    }
    for (name, value) in l.info.stages.iter().filter(|(_, v)| *v > 0) {
        json_u64(line, name, value);
    }
    line.extend_from_slice(b",\"target\":\"");
    line.extend_from_slice(ACCESS_TARGET.as_bytes());
    line.extend_from_slice(b"\"}\n");
}

/// A JSON string: copied as is when nothing in it needs escaping (ids, methods and route
/// templates never do), else through serde_json.
fn json_str(out: &mut Vec<u8>, s: &str) {
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else {
        let _ = serde_json::to_writer(&mut *out, s);
    }
}

/// `,"name":value`; `name` is one of our own field names.
fn json_u64(out: &mut Vec<u8>, name: &str, value: u64) {
    out.extend_from_slice(b",\"");
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\":");
    out.extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
}

/// `,"name":"<hyphenated uuid>"`.
fn json_uuid(out: &mut Vec<u8>, name: &str, id: &uuid::Uuid) {
    out.extend_from_slice(b",\"");
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\":\"");
    out.extend_from_slice(
        id.hyphenated()
            .encode_lower(&mut uuid::Uuid::encode_buffer())
            .as_bytes(),
    );
    out.push(b'"');
}

/// The access line's timestamp, in the format of `tracing`'s (RFC 3339, UTC, microseconds), e.g.
/// `2026-12-02T11:55:01.123456Z`. The part up to the seconds is formatted once per second per
/// thread and reused: this line is written for every request.
fn access_timestamp(out: &mut Vec<u8>) {
    use std::cell::RefCell;
    use tracing_subscriber::fmt::time::FormatTime as _;
    thread_local! {
        static SECOND: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
    }
    // Wall-clock time for a log line, not domain time: the injected clock is for expiry.
    #[allow(clippy::disallowed_methods)]
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    SECOND.with_borrow_mut(|(secs, prefix)| {
        if *secs != now.as_secs() {
            let mut full = String::with_capacity(32);
            let _ = tracing_subscriber::fmt::time::SystemTime
                .format_time(&mut tracing_subscriber::fmt::format::Writer::new(&mut full));
            // `YYYY-MM-DDTHH:MM:SS` is the first 19 characters.
            *prefix = full.get(..19).unwrap_or_default().to_owned();
            *secs = now.as_secs();
        }
        out.extend_from_slice(prefix.as_bytes());
    });
    let mut buf = itoa::Buffer::new();
    let micros = buf.format(now.subsec_micros());
    out.push(b'.');
    out.extend(std::iter::repeat_n(
        b'0',
        6usize.saturating_sub(micros.len()),
    ));
    out.extend_from_slice(micros.as_bytes());
    out.push(b'Z');
}

pub fn init(format: LogFormat, level: &str) {
    if format == LogFormat::Json {
        let _ = JSON_LINES.set(());
    }
    let filter = EnvFilter::try_new(level).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(Batched);
    // A second init (tests build several apps in one process) keeps the first subscriber.
    let _ = match format {
        LogFormat::Json => builder.event_format(JsonLines).try_init(),
        LogFormat::Text => builder.with_ansi(false).try_init(),
    };
}

/// JSON lines: `timestamp`, `level`, the event's fields (`message` among them) flattened, `target`,
/// and, inside a request, `span` with the request's `request_id`, `method`, `route` and
/// `parent_span_id` (from the task-local the HTTP layer keeps; see
/// `gatehouse_http::current_request`).
struct JsonLines;

impl<S, N> tracing_subscriber::fmt::FormatEvent<S, N> for JsonLines
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> tracing_subscriber::fmt::FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        mut w: tracing_subscriber::fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        use tracing_subscriber::fmt::time::FormatTime as _;
        let mut timestamp = String::with_capacity(32);
        tracing_subscriber::fmt::time::SystemTime.format_time(
            &mut tracing_subscriber::fmt::format::Writer::new(&mut timestamp),
        )?;
        let mut fields = JsonFields(serde_json::Map::new());
        event.record(&mut fields);
        let mut line = serde_json::Map::new();
        line.insert("timestamp".into(), timestamp.into());
        line.insert(
            "level".into(),
            event.metadata().level().as_str().to_owned().into(),
        );
        line.extend(fields.0);
        line.insert("target".into(), event.metadata().target().to_owned().into());
        if let Some(r) = gatehouse_http::current_request() {
            let mut span = serde_json::Map::new();
            span.insert("request_id".into(), r.request_id.clone().into());
            span.insert("method".into(), r.method.clone().into());
            span.insert("route".into(), r.route.clone().into());
            if let Some(t) = &r.trace_id {
                span.insert("trace_id".into(), t.clone().into());
            }
            if let Some(p) = &r.parent_span_id {
                span.insert("parent_span_id".into(), p.clone().into());
            }
            if let Some(o) = r.organization.get() {
                span.insert("organization_id".into(), o.to_string().into());
            }
            if let Some(u) = r.user.get() {
                span.insert("user_id".into(), u.to_string().into());
            }
            line.insert("span".into(), span.into());
        }
        let text = serde_json::to_string(&line).map_err(|_| std::fmt::Error)?;
        writeln!(w, "{text}")
    }
}

/// Collects an event's fields as JSON values.
struct JsonFields(serde_json::Map<String, serde_json::Value>);

impl tracing::field::Visit for JsonFields {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.into());
    }
    fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
        self.0.insert(field.name().to_owned(), value.into());
    }
    fn record_i64(&mut self, field: &tracing::field::Field, value: i64) {
        self.0.insert(field.name().to_owned(), value.into());
    }
    fn record_bool(&mut self, field: &tracing::field::Field, value: bool) {
        self.0.insert(field.name().to_owned(), value.into());
    }
    fn record_f64(&mut self, field: &tracing::field::Field, value: f64) {
        self.0.insert(field.name().to_owned(), value.into());
    }
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0
            .insert(field.name().to_owned(), format!("{value:?}").into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_line_pieces_are_json_whatever_they_hold() {
        let mut out = b"[".to_vec();
        json_str(&mut out, "/v1/api-keys/{id}");
        out.push(b',');
        json_str(&mut out, "a \"quoted\" \\ path\n");
        out.push(b']');
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v[0], "/v1/api-keys/{id}");
        assert_eq!(v[1], "a \"quoted\" \\ path\n");
        let mut obj = b"{\"x\":1".to_vec();
        json_u64(&mut obj, "latency_us", 1234);
        json_uuid(&mut obj, "user_id", &uuid::Uuid::max());
        obj.push(b'}');
        let v: serde_json::Value = serde_json::from_slice(&obj).unwrap();
        assert_eq!(v["latency_us"], 1234);
        assert_eq!(v["user_id"], "ffffffff-ffff-ffff-ffff-ffffffffffff");
        for n in [
            0u128,
            1,
            0x0123_4567_89ab_cdef_fedc_ba98_7654_3210,
            u128::MAX / 3,
        ] {
            let id = uuid::Uuid::from_u128(n);
            let mut out = b"{\"x\":1".to_vec();
            json_uuid(&mut out, "id", &id);
            out.push(b'}');
            let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
            assert_eq!(v["id"], id.to_string());
        }
    }

    #[test]
    fn access_timestamps_are_rfc3339_with_microseconds() {
        let mut out = Vec::new();
        access_timestamp(&mut out);
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text.len(), 27, "{text}");
        assert!(
            time::OffsetDateTime::parse(&text, &time::format_description::well_known::Rfc3339)
                .is_ok(),
            "{text}"
        );
    }
}
