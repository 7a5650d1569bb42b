//! OpenTelemetry (feature `otel`): chronik's spans (see the README's "Tracing") exported over
//! OTLP, and W3C trace context carried from a writer to its subscribers in event metadata.
//!
//! An application builds a tracer provider for its collector, adds [`layer`] to its `tracing`
//! subscriber, and keeps the provider until it stops (dropping it flushes what is buffered):
//!
//! ```no_run
//! use tracing_subscriber::layer::SubscriberExt;
//! use tracing_subscriber::util::SubscriberInitExt;
//! # fn demo() -> chronik::Result<()> {
//! let provider = chronik::otel::tracer_provider("http://127.0.0.1:4317", "billing")?;
//! tracing_subscriber::registry()
//!     .with(tracing_subscriber::EnvFilter::new("info"))
//!     .with(chronik::otel::layer(&provider))
//!     .init();
//! // ... run the application ...
//! provider.shutdown().ok();
//! # Ok(()) }
//! ```
//!
//! **Continuing a trace in subscribers.** [`with_trace_context`] puts the current span's trace
//! context into an event's JSON metadata (`{"traceparent": "00-<trace>-<span>-01"}`, W3C Trace
//! Context). Each [`Subscriber`](crate::Subscriber)'s `chronik.deliver` span then continues
//! that trace: the work a projection does for an event shows up in the trace of the request
//! that wrote it. Code that reads events itself calls [`continue_trace`] on its own span.
//! Without the feature the `traceparent` is still shown, as the spans' `trace_parent` field.
//! `chronik serve --otlp-endpoint URL` exports the server's spans the same way.

use std::collections::HashMap;

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{SdkTracerProvider, Tracer};
use tracing::Span;
use tracing_opentelemetry::{OpenTelemetryLayer, OpenTelemetrySpanExt};
use tracing_subscriber::registry::LookupSpan;

use crate::spans::{TRACEPARENT, trace_parent};
use crate::{Error, EventData, RecordedEvent, Result};

/// A tracer provider that sends spans to the OTLP/gRPC collector at `endpoint` (such as
/// `http://127.0.0.1:4317`), in batches, as service `service_name`. It needs a tokio runtime.
/// Keep it while the application runs; `shutdown` (or dropping it) sends what is left.
///
/// Errors: [`Error::InvalidArgument`] if the exporter cannot be built from `endpoint`.
pub fn tracer_provider(endpoint: &str, service_name: &str) -> Result<SdkTracerProvider> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint)
        .build()
        .map_err(|e| Error::InvalidArgument(format!("cannot export spans to {endpoint}: {e}")))?;
    let resource = opentelemetry_sdk::Resource::builder().with_service_name(service_name.to_string()).build();
    Ok(SdkTracerProvider::builder().with_batch_exporter(exporter).with_resource(resource).build())
}

/// The `tracing` layer that hands spans to `provider` (add it to the application's
/// subscriber).
pub fn layer<S>(provider: &SdkTracerProvider) -> OpenTelemetryLayer<S, Tracer>
where
    S: tracing::Subscriber + for<'span> LookupSpan<'span>,
{
    tracing_opentelemetry::layer().with_tracer(provider.tracer("chronik"))
}

/// The current span's W3C trace context (`traceparent`), if it belongs to a trace.
pub fn current_trace_parent() -> Option<String> {
    let mut carrier = Carrier::default();
    TraceContextPropagator::new().inject_context(&Span::current().context(), &mut carrier);
    carrier.0.remove(TRACEPARENT)
}

/// `event` with the current span's trace context added to its metadata (a JSON object; the
/// other keys stay). Unchanged outside a trace.
///
/// Errors: [`Error::InvalidArgument`] if the event's metadata is not a JSON object.
pub fn with_trace_context(mut event: EventData) -> Result<EventData> {
    let Some(parent) = current_trace_parent() else { return Ok(event) };
    let mut metadata = match &event.metadata {
        None => serde_json::Map::new(),
        Some(bytes) => match serde_json::from_slice::<serde_json::Value>(bytes) {
            Ok(serde_json::Value::Object(map)) => map,
            _ => {
                return Err(Error::InvalidArgument(format!(
                    "event {}: its metadata is not a JSON object, so no trace context can be added to it",
                    event.event_id
                )));
            }
        },
    };
    metadata.insert(TRACEPARENT.into(), serde_json::Value::String(parent));
    event.metadata = Some(serde_json::to_vec(&metadata).map_err(|e| Error::Serialization(e.to_string()))?);
    Ok(event)
}

/// Makes `span` part of the trace whose context the first of `events` that has one carries in
/// its metadata (see [`with_trace_context`]); nothing if none has.
pub fn continue_trace(span: &Span, events: &[RecordedEvent]) {
    let Some(parent) = events.iter().find_map(|e| e.metadata.as_deref().and_then(trace_parent)) else { return };
    let carrier = Carrier(HashMap::from([(TRACEPARENT.to_string(), parent)]));
    let context = TraceContextPropagator::new().extract(&carrier);
    if let Err(e) = span.set_parent(context) {
        tracing::debug!(error = %e, "the span cannot join the event's trace");
    }
}

/// Where the propagator reads and writes trace context.
#[derive(Default)]
struct Carrier(HashMap<String, String>);

impl opentelemetry::propagation::Injector for Carrier {
    fn set(&mut self, key: &str, value: String) {
        self.0.insert(key.to_string(), value);
    }
}

impl opentelemetry::propagation::Extractor for Carrier {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(String::as_str).collect()
    }
}
