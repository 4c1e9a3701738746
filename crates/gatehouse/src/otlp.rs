//! OpenTelemetry span export over OTLP/HTTP (E2, `[otlp]`, cargo feature `otlp`).
//!
//! The HTTP layer hands every finished request to [`SpanExporter::record`], which records one
//! SERVER span through the OpenTelemetry SDK: its trace id is the caller's `traceparent` trace
//! id, or else the request's own id, its parent the caller's span when `traceparent` named one. Spans leave through the SDK's batch processor, which runs on a
//! thread of its own with a bounded queue: a request only ever enqueues (and the span is dropped
//! when the queue is full), so a slow or absent collector never holds up a response.
//!
//! Export outcomes feed the metrics: every failed batch counts in
//! `gatehouse_errors_total{component="otlp"}` and sets `gatehouse_degraded{feature="otlp"}` to 1,
//! the next successful one sets it back to 0.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use gatehouse_core::telemetry::metrics;
use gatehouse_http::{AccessLine, AccessLog};
use opentelemetry::trace::{
    Span as _, SpanContext, SpanId, SpanKind, Status, TraceContextExt as _, TraceFlags, TraceId,
    TraceState, Tracer as _, TracerProvider as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::{Protocol, WithExportConfig as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, IdGenerator, RandomIdGenerator, Sampler, SdkTracer,
    SdkTracerProvider, SpanData,
};

use crate::config::otlp::OtlpSettings;

/// How long the batch processor waits before sending what it holds: short, so spans reach the
/// collector about as soon as their requests end, without a request ever waiting for it.
const SCHEDULED_DELAY: Duration = Duration::from_millis(500);

/// Records one span per finished request and exports them in batches.
#[derive(Debug)]
pub struct SpanExporter {
    provider: SdkTracerProvider,
    tracer: SdkTracer,
    /// How long shutdown may spend sending the last batch.
    shutdown_timeout: Duration,
}

impl SpanExporter {
    /// Builds the exporter and its batch thread. Nothing is sent until a request ends, so an
    /// unreachable collector is not a start-up failure (it degrades export, see the module doc).
    pub fn start(settings: &OtlpSettings) -> Result<Self, String> {
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpJson)
            .with_endpoint(settings.endpoint.clone())
            .with_timeout(settings.timeout)
            .build()
            .map_err(|e| format!("otlp: cannot build the exporter: {e}"))?;
        let processor = BatchSpanProcessor::builder(Watched::new(exporter))
            .with_batch_config(
                BatchConfigBuilder::default()
                    .with_scheduled_delay(SCHEDULED_DELAY)
                    .build(),
            )
            .build();
        let provider = SdkTracerProvider::builder()
            // Every request is exported: the caller's sampled flag is not kept with the request,
            // and a security kernel's request volume is small enough to send whole.
            .with_sampler(Sampler::AlwaysOn)
            .with_id_generator(RequestIds::default())
            .with_resource(
                Resource::builder()
                    .with_service_name(settings.service_name.clone())
                    .build(),
            )
            .with_span_processor(processor)
            .build();
        let tracer = provider.tracer("gatehouse");
        tracing::info!(endpoint = %settings.endpoint, "exporting request spans over OTLP/HTTP");
        Ok(Self {
            provider,
            tracer,
            shutdown_timeout: settings.timeout + Duration::from_secs(1),
        })
    }

    /// Sends what is queued and stops the batch thread. Blocks for at most the export timeout
    /// and a second: call it off the async workers (`spawn_blocking`).
    pub fn shutdown(&self) {
        if let Err(e) = self.provider.shutdown_with_timeout(self.shutdown_timeout) {
            tracing::warn!(error = %e, "the last request spans may not have reached the collector");
        }
    }
}

/// Stops `exporter` once the server has stopped, so the last requests' spans are sent now rather
/// than lost with the process.
pub async fn shutdown(exporter: std::sync::Arc<SpanExporter>) {
    if tokio::task::spawn_blocking(move || exporter.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("the OTLP exporter's shutdown did not finish");
    }
}

impl AccessLog for SpanExporter {
    fn record(&self, line: &AccessLine<'_>) {
        // The caller's trace when it sent one, so our spans join it; else our request id.
        let trace = line.info.trace_id.as_deref().unwrap_or(line.request_id);
        let Ok(trace_id) = TraceId::from_hex(trace) else {
            return;
        };
        if trace_id == TraceId::INVALID {
            return;
        }
        let parent = match line.info.parent_span_id.as_deref().map(SpanId::from_hex) {
            Some(Ok(id)) if id != SpanId::INVALID => {
                Context::new().with_remote_span_context(SpanContext::new(
                    trace_id,
                    id,
                    TraceFlags::SAMPLED,
                    true,
                    TraceState::default(),
                ))
            }
            _ => Context::new(),
        };
        #[allow(clippy::disallowed_methods)] // span timestamps are wall-clock time by definition
        let end = SystemTime::now();
        let start = end
            .checked_sub(Duration::from_micros(line.latency_us))
            .unwrap_or(end);
        let mut attributes = vec![
            KeyValue::new("http.request.method", line.method.to_owned()),
            KeyValue::new("http.route", line.route.to_owned()),
            KeyValue::new("http.response.status_code", i64::from(line.status)),
        ];
        if let Some(org) = line.info.organization.get() {
            attributes.push(KeyValue::new("gatehouse.organization_id", org.to_string()));
        }
        if let Some(user) = line.info.user.get() {
            attributes.push(KeyValue::new("enduser.id", user.to_string()));
        }
        for (name, value) in line.info.stages.nonzero() {
            attributes.push(KeyValue::new(
                stage_key(name),
                i64::try_from(value).unwrap_or(i64::MAX),
            ));
        }
        let builder = self
            .tracer
            .span_builder(format!("{} {}", line.method, line.route))
            .with_kind(SpanKind::Server)
            .with_start_time(start)
            .with_attributes(attributes);
        // Without a parent the SDK asks the id generator for the trace id: hand it the request's.
        NEXT_TRACE_ID.with(|next| next.set(Some(trace_id)));
        let mut span = builder.start_with_context(&self.tracer, &parent);
        NEXT_TRACE_ID.with(|next| next.set(None));
        if line.status >= 500 {
            span.set_status(Status::error(""));
        }
        span.end_with_timestamp(end);
    }
}

/// The attribute name of a stage timing from `Stages::nonzero`.
fn stage_key(name: &'static str) -> &'static str {
    match name {
        "hash_wait_us" => "gatehouse.stage.hash_wait_us",
        "hash_us" => "gatehouse.stage.hash_us",
        "token_us" => "gatehouse.stage.token_us",
        "store_us" => "gatehouse.stage.store_us",
        "store_txs" => "gatehouse.stage.store_txs",
        other => other,
    }
}

thread_local! {
    /// The trace id the next root span made on this thread must carry (set around one
    /// `start_with_context` call in `record`).
    static NEXT_TRACE_ID: Cell<Option<TraceId>> = const { Cell::new(None) };
}

/// Span ids are random; a root span's trace id is the request id, so the exported trace and the
/// log lines (and `x-request-id`) name the same trace.
#[derive(Debug, Default)]
struct RequestIds(RandomIdGenerator);

impl IdGenerator for RequestIds {
    fn new_trace_id(&self) -> TraceId {
        NEXT_TRACE_ID
            .with(Cell::take)
            .unwrap_or_else(|| self.0.new_trace_id())
    }

    fn new_span_id(&self) -> SpanId {
        self.0.new_span_id()
    }
}

/// The OTLP exporter, with each batch's outcome recorded in the metrics and the log (the SDK is
/// built without its internal logging, so this is where a failing collector shows).
#[derive(Debug)]
struct Watched<E> {
    inner: E,
    failing: AtomicBool,
}

impl<E> Watched<E> {
    fn new(inner: E) -> Self {
        metrics::set_degraded("otlp", false);
        Self {
            inner,
            failing: AtomicBool::new(false),
        }
    }
}

impl<E: opentelemetry_sdk::trace::SpanExporter> opentelemetry_sdk::trace::SpanExporter
    for Watched<E>
{
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let spans = batch.len();
        let result = self.inner.export(batch).await;
        match &result {
            Ok(()) => {
                metrics::set_degraded("otlp", false);
                if self.failing.swap(false, Ordering::Relaxed) {
                    tracing::info!("the OTLP collector accepts spans again");
                }
            }
            Err(e) => {
                metrics::error("otlp");
                metrics::set_degraded("otlp", true);
                // Once per outage: the batch thread retries every half second.
                if !self.failing.swap(true, Ordering::Relaxed) {
                    tracing::warn!(error = %e, dropped_spans = spans, "OTLP export failed; spans are dropped until the collector answers");
                }
            }
        }
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}
