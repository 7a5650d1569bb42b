//! chronik's records as JSON, one shape wherever they leave the process: the CLI's `--json`
//! output and the admin UI's HTTP API (`chronik::server::http`) give the same fields.
//!
//! Payloads stored as JSON come out as JSON; anything else (bincode, bytes) as a hex string,
//! with `data_encoding` / `metadata_encoding` saying which.
//!
//! ```
//! use chronik::json;
//! assert_eq!(json::hex(&[0, 15, 255]), "000fff");
//! assert_eq!(json::payload(br#"{"a":1}"#, true).0["a"], 1);
//! assert_eq!(json::payload(b"\x01\x02", false), (serde_json::json!("0102"), "hex"));
//! ```

use serde_json::{Value, json};

use crate::{JSON_CONTENT_TYPE, ParkedEvent, RecordedEvent, StreamInfo, StreamMetadata, SubscriptionInfo};

/// An event: its numbers, ids, type and times, its data and metadata decoded when they are JSON.
pub fn event(e: &RecordedEvent) -> Value {
    let (data, data_encoding) = payload(&e.data, e.content_type == JSON_CONTENT_TYPE);
    let (metadata, metadata_encoding) = match &e.metadata {
        Some(bytes) => payload(bytes, true),
        None => (Value::Null, "json"),
    };
    json!({
        "event_number": e.event_number,
        "event_id": e.event_id,
        "stream_uuid": e.stream_uuid,
        "stream_version": e.stream_version,
        "global_position": e.global_position,
        "event_type": e.event_type,
        "content_type": e.content_type,
        "correlation_id": e.correlation_id,
        "causation_id": e.causation_id,
        "created_at": e.created_at,
        "data": data,
        "data_encoding": data_encoding,
        "metadata": metadata,
        "metadata_encoding": metadata_encoding,
    })
}

/// Decoded JSON when `is_json` and the bytes parse, else a hex string; with the encoding used
/// (`json` or `hex`).
pub fn payload(bytes: &[u8], is_json: bool) -> (Value, &'static str) {
    if is_json && let Ok(value) = serde_json::from_slice::<Value>(bytes) {
        return (value, "json");
    }
    (Value::String(hex(bytes)), "hex")
}

/// Lower-case hex digits of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0x0f)] as char);
    }
    out
}

/// A named subscription as stored: stream, name, checkpoint, head, lag, owner and times (its
/// settings, parked count and live figures are [`subscription_details`]'s).
pub fn subscription(s: &SubscriptionInfo) -> Value {
    json!({
        "stream": s.stream,
        "name": s.name,
        "checkpoint": s.checkpoint,
        "head": s.head,
        "lag": s.lag,
        "owner_pid": s.owner_pid,
        "owner_application": s.owner_application,
        "created_at": s.created_at,
        "updated_at": s.updated_at,
    })
}

/// [`subscription`] with its parked count, its stored settings and, when it runs in this
/// process, what it is doing (`live`: phase, queue, in flight, consumers, retries, rates).
pub fn subscription_details(s: &SubscriptionInfo) -> Value {
    let mut value = subscription(s);
    value["parked"] = json!(s.parked);
    value["settings"] =
        s.settings.as_ref().and_then(|settings| serde_json::to_value(settings).ok()).unwrap_or_default();
    value["live"] = match &s.live {
        None => Value::Null,
        Some(live) => {
            let status = &live.status;
            let phase = match status.phase {
                crate::SubscriptionPhase::Waiting => "waiting",
                crate::SubscriptionPhase::CatchingUp => "catching_up",
                crate::SubscriptionPhase::Live => "live",
            };
            json!({
                "phase": phase,
                "subscribers": status.subscribers,
                "queued": status.queued,
                "in_flight": status.in_flight,
                "last_received": status.last_received,
                "acked": status.acked,
                "persisted": status.persisted,
                "replaying": status.replaying,
                "paused": status.paused,
                "consumers": live.consumers.iter().map(|c| json!({
                    "id": c.id, "in_flight": c.in_flight, "buffer_size": c.buffer_size, "paused": c.paused,
                })).collect::<Vec<_>>(),
                "retrying": live.retrying.iter().map(|r| json!({
                    "event_number": r.event_number, "retry_count": r.retry_count,
                })).collect::<Vec<_>>(),
                "delivered_per_second": live.delivered_per_second(),
                "acked_per_second": live.acked_per_second(),
            })
        }
    };
    value
}

/// A parked event of a subscription: its number, retries, reason and time.
pub fn parked(p: &ParkedEvent) -> Value {
    json!({
        "event_number": p.event_number,
        "retry_count": p.retry_count,
        "reason": p.reason,
        "parked_at": p.parked_at,
        "replay_requested": p.replay_requested,
    })
}

/// A stream: name, id, version (its last event's number), times, status and metadata.
pub fn stream(s: &StreamInfo) -> Value {
    json!({
        "stream": s.stream_uuid,
        "stream_id": s.stream_id,
        "version": s.stream_version,
        "created_at": s.created_at,
        "deleted_at": s.deleted_at,
        "status": match s.status {
            crate::StreamStatus::Created => "active",
            crate::StreamStatus::Deleted => "deleted",
        },
        "metadata": s.metadata.as_ref().map(|(_, metadata)| stream_metadata(metadata)),
        "metadata_version": s.metadata.as_ref().map(|(version, _)| version),
    })
}

/// A stream's metadata: `max_count`, `max_age` (a duration such as `1h 30m`),
/// `truncate_before`, `custom`; unset fields are `null`.
pub fn stream_metadata(m: &StreamMetadata) -> Value {
    json!({
        "max_count": m.max_count,
        "max_age": m.max_age.map(|age| humantime::format_duration(age).to_string()),
        "truncate_before": m.truncate_before,
        "custom": m.custom,
    })
}
