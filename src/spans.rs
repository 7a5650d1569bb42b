//! The `tracing` spans chronik opens, in one place so their names and fields stay the same
//! everywhere (the README lists them):
//!
//! | span | where | fields |
//! |---|---|---|
//! | `chronik.append` | a write call (append, link, multi-stream append), from the facade to its outcome | `stream`, `events`, `correlation_id`, `causation_id`, `trace_parent` (of its first event), then `outcome` and `position` |
//! | `chronik.batch` | one group-commit transaction in the writer (a root: it serves many calls) | `appends`, `events` |
//! | `chronik.read` | a read of a stream or of `$all` | `stream`, `from`, `count`, `direction`, then `events` |
//! | `chronik.deliver` | a [`Subscriber`](crate::Subscriber)'s `handle` of a batch | `subscription`, `events`, `first`, `last`, `correlation_id`, `causation_id`, `trace_parent` |
//! | `chronik.ack` (`debug`) | an ack of a named subscription's events | `subscription`, `events`, `first`, `last` |
//!
//! `trace_parent` is the W3C `traceparent` an application put in the event's JSON metadata
//! (`{"traceparent": "00-…"}`); with the `otel` feature a subscriber's `chronik.deliver` span
//! continues that trace (see `chronik::otel`).

use tracing::{Span, field};

use crate::event::RecordedEvent;
use crate::storage::{WriteOp, WriteRequest};

/// The metadata key holding a W3C trace context.
pub(crate) const TRACEPARENT: &str = "traceparent";

/// The span of a write call.
pub(crate) fn append(request: &WriteRequest) -> Span {
    let span = tracing::info_span!(
        "chronik.append",
        stream = %Streams(request),
        events = request.len(),
        correlation_id = field::Empty,
        causation_id = field::Empty,
        trace_parent = field::Empty,
        outcome = field::Empty,
        position = field::Empty,
    );
    if !span.is_disabled() {
        let first = request.parts.iter().find_map(|p| match &p.op {
            WriteOp::Append(events) => events.first(),
            WriteOp::Link(_) => None,
        });
        if let Some(event) = first {
            record_ids(&span, event.correlation_id, event.causation_id, event.metadata.as_deref());
        }
    }
    span
}

/// The streams a request writes to, comma-separated, formatted only when a span is recorded.
struct Streams<'a>(&'a WriteRequest);

impl std::fmt::Display for Streams<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, part) in self.0.parts.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            f.write_str(&part.stream)?;
        }
        Ok(())
    }
}

/// The span of a group-commit transaction.
pub(crate) fn batch(appends: usize, events: usize) -> Span {
    // A root: a batch serves many calls, not the one whose message happened to start it.
    tracing::info_span!(parent: None, "chronik.batch", appends, events)
}

/// The span of a read; `events` is recorded once it returned.
pub(crate) fn read(stream: &str, from: Option<u64>, count: u64, direction: &'static str) -> Span {
    tracing::info_span!("chronik.read", stream, from, count, direction, events = field::Empty)
}

/// Runs a read in its span, recording how many events it returned.
pub(crate) async fn traced(
    span: Span,
    read: impl Future<Output = crate::Result<Vec<RecordedEvent>>>,
) -> crate::Result<Vec<RecordedEvent>> {
    use tracing::Instrument;
    let events = read.instrument(span.clone()).await;
    if let Ok(events) = &events {
        span.record("events", events.len());
    }
    events
}

/// The span of a subscriber's handling of `events`.
pub(crate) fn deliver(subscription: &str, events: &[RecordedEvent]) -> Span {
    let span = tracing::info_span!(
        "chronik.deliver",
        subscription,
        events = events.len(),
        first = events.first().map(|e| e.event_number),
        last = events.last().map(|e| e.event_number),
        correlation_id = field::Empty,
        causation_id = field::Empty,
        trace_parent = field::Empty,
    );
    if !span.is_disabled()
        && let Some(event) = events.first()
    {
        record_ids(&span, event.correlation_id, event.causation_id, event.metadata.as_deref());
    }
    span
}

/// The span of an ack: at `debug` level, since a fast subscription acks many small batches
/// (at `info` with a formatting subscriber it cost 12% of a catch-up's throughput).
pub(crate) fn ack(subscription: &impl std::fmt::Display, events: &[RecordedEvent]) -> Span {
    tracing::debug_span!(
        "chronik.ack",
        subscription = %subscription,
        events = events.len(),
        first = events.first().map(|e| e.event_number),
        last = events.last().map(|e| e.event_number),
    )
}

fn record_ids(span: &Span, correlation: Option<uuid::Uuid>, causation: Option<uuid::Uuid>, metadata: Option<&[u8]>) {
    if let Some(id) = correlation {
        span.record("correlation_id", field::display(id));
    }
    if let Some(id) = causation {
        span.record("causation_id", field::display(id));
    }
    if let Some(parent) = metadata.and_then(trace_parent) {
        span.record("trace_parent", parent);
    }
}

/// The W3C `traceparent` of JSON metadata that has one.
pub(crate) fn trace_parent(metadata: &[u8]) -> Option<String> {
    // Cheap refusal of the common case: metadata without a trace context is not parsed.
    if !metadata.windows(TRACEPARENT.len()).any(|w| w == TRACEPARENT.as_bytes()) {
        return None;
    }
    let value: serde_json::Value = serde_json::from_slice(metadata).ok()?;
    value.get(TRACEPARENT)?.as_str().map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::trace_parent;

    #[test]
    fn the_trace_parent_is_read_from_json_metadata() {
        let parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        let metadata = format!(r#"{{"user": "a", "traceparent": "{parent}"}}"#);
        assert_eq!(trace_parent(metadata.as_bytes()).as_deref(), Some(parent));
        assert_eq!(trace_parent(br#"{"user": "a"}"#), None);
        assert_eq!(trace_parent(b"traceparent but not JSON"), None);
        assert_eq!(trace_parent(br#"{"traceparent": 7}"#), None);
    }
}
