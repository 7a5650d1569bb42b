//! The `otel` feature against a stand-in OTLP collector (the protocol's own generated gRPC
//! service, on 127.0.0.1): chronik's spans arrive with their names and fields, and a
//! subscriber's `chronik.deliver` span continues the trace whose context the writer put in the
//! event's metadata. Built with `--features otel` (`scripts/test` runs it).

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chronik::{EventData, ExpectedVersion, HandlerError, RecordedEvent, Subscriber, SubscriptionOptions};
use opentelemetry::trace::TraceContextExt;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{TraceService, TraceServiceServer};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use opentelemetry_proto::tonic::common::v1::any_value;
use opentelemetry_proto::tonic::trace::v1::Span;
use tokio::sync::mpsc;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use common::*;

/// The backend of every store in this binary.
const BACKEND: common::Backend = common::Backend::Sqlite;

/// Keeps every span it is sent.
#[derive(Clone, Default)]
struct Collector(Arc<Mutex<Vec<Span>>>);

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut kept = self.0.lock().unwrap();
        for resource in request.into_inner().resource_spans {
            for scope in resource.scope_spans {
                kept.extend(scope.spans);
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse { partial_success: None }))
    }
}

/// A string attribute of a span.
fn attribute(span: &Span, key: &str) -> Option<String> {
    let value = span.attributes.iter().find(|a| a.key == key)?.value.as_ref()?.value.as_ref()?;
    Some(match value {
        any_value::Value::StringValue(s) => s.clone(),
        any_value::Value::IntValue(i) => i.to_string(),
        other => format!("{other:?}"),
    })
}

/// Tells the test which trace each batch was handled in.
struct Projector(mpsc::UnboundedSender<opentelemetry::trace::TraceId>);

impl Subscriber for Projector {
    async fn handle(&mut self, _events: &[RecordedEvent]) -> Result<(), HandlerError> {
        let context = tracing::Span::current().context();
        let _ = self.0.send(context.span().span_context().trace_id());
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_are_exported_and_subscribers_continue_the_writers_trace() {
    let collector = Collector::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let serving = tonic::transport::Server::builder()
        .add_service(TraceServiceServer::new(collector.clone()))
        .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener));
    tokio::spawn(serving);
    let provider = chronik::otel::tracer_provider(&format!("http://{address}"), "otel-test").expect("a provider");
    tracing_subscriber::registry()
        .with(tracing_subscriber::EnvFilter::new("chronik=debug,otel=info"))
        .with(chronik::otel::layer(&provider))
        .init();

    let store = TestStore::start().await;
    let (seen, mut handled) = mpsc::unbounded_channel();
    let _projector =
        store.start_subscriber("traced", "projector", SubscriptionOptions::default(), Projector(seen)).await.unwrap();
    let correlation = uuid::Uuid::new_v4();
    let request = tracing::info_span!("request");
    let written_in = async {
        let mut event = EventData::json("Traced", &serde_json::json!({ "n": 1 })).unwrap();
        event.correlation_id = Some(correlation);
        let event = chronik::otel::with_trace_context(event).expect("JSON metadata");
        assert!(String::from_utf8_lossy(event.metadata.as_deref().unwrap()).contains("\"traceparent\":\"00-"));
        store.append_to_stream("traced", ExpectedVersion::NoStream, vec![event]).await.unwrap();
        tracing::Span::current().context().span().span_context().trace_id()
    }
    .instrument(request)
    .await;
    let handled_in = tokio::time::timeout(WAIT, handled.recv()).await.expect("handled in time").unwrap();
    assert_eq!(handled_in, written_in, "the subscriber's work belongs to the writer's trace");
    store.read_stream_forward("traced", 0, 10).await.unwrap();

    let deadline = Instant::now() + WAIT;
    let wanted = ["chronik.append", "chronik.batch", "chronik.read", "chronik.deliver", "chronik.ack"];
    let spans = loop {
        provider.force_flush().expect("flushed");
        let spans = collector.0.lock().unwrap().clone();
        if wanted.iter().all(|name| spans.iter().any(|s| s.name == *name)) {
            break spans;
        }
        let names: Vec<&str> = spans.iter().map(|s| s.name.as_str()).collect();
        assert!(Instant::now() < deadline, "missing spans; the collector got {names:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let named = |name: &str| spans.iter().find(|s| s.name == name).unwrap();
    let append = named("chronik.append");
    assert_eq!(attribute(append, "stream").as_deref(), Some("traced"));
    assert_eq!(attribute(append, "correlation_id"), Some(correlation.to_string()));
    assert_eq!(attribute(append, "outcome").as_deref(), Some("ok"));
    assert_eq!(append.trace_id, written_in.to_bytes().to_vec(), "the append is part of the request");
    let deliver = named("chronik.deliver");
    assert_eq!(deliver.trace_id, written_in.to_bytes().to_vec(), "delivery continues the writer's trace");
    assert_eq!(attribute(deliver, "subscription").as_deref(), Some("traced/projector"));
    assert!(attribute(deliver, "trace_parent").is_some_and(|p| p.starts_with("00-")));
    let read = spans.iter().find(|s| s.name == "chronik.read" && attribute(s, "stream").as_deref() == Some("traced"));
    assert_eq!(read.and_then(|r| attribute(r, "events")).as_deref(), Some("1"));
    provider.shutdown().expect("the provider stops");
}
