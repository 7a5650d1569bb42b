//! The protocol's facts, in one place: how KurrentDB's revisions, positions, ids, expected
//! states, events and errors correspond to chronik's. Plain functions; nothing here does I/O.
//!
//! - A stream **revision** counts from 0; chronik's stream **version** from 1: revision =
//!   version - 1.
//! - A **position** in `$all` is a commit/prepare pair; chronik has one global position and
//!   sends it as both.
//! - An event's system metadata (`type`, `content-type`, `created`) travels in a string map;
//!   the application's metadata (`custom_metadata`) is chronik's `metadata`, byte for byte.
//! - Errors become a status code plus the `exception` trailer (and the trailers that go with
//!   it) that KurrentDB's clients turn into their own exceptions.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use tonic::Status;
use tonic::metadata::{MetadataMap, MetadataValue};
use uuid::Uuid;

use super::proto::event_store::client::uuid::{Structured, Value as UuidValue};
use super::proto::{ProtoUuid, StreamIdentifier};
use crate::{Error, EventData, EventFilter, ExpectedVersion, RecordedEvent};

/// The stream revision of a chronik stream version (`version >= 1`).
pub(crate) fn revision_of(version: u64) -> u64 {
    version.saturating_sub(1)
}

/// The chronik stream version of a protocol revision.
pub(crate) fn version_of(revision: u64) -> Result<u64, Status> {
    revision
        .checked_add(1)
        .ok_or_else(|| Status::invalid_argument(format!("stream revision {revision} is out of range")))
}

/// The event type of a link, as KurrentDB names it.
pub(crate) const LINK_EVENT_TYPE: &str = "$>";

/// The event type of a stream's metadata event in its `$$<stream>` stream.
pub(crate) const METADATA_EVENT_TYPE: &str = "$metadata";

/// The prefix of the streams that carry another stream's metadata.
pub(crate) const METADATA_STREAM_PREFIX: &str = "$$";

/// The stream named by a request; the name must be UTF-8 and not empty.
pub(crate) fn stream_name(identifier: Option<StreamIdentifier>) -> Result<String, Status> {
    let bytes = identifier.map(|i| i.stream_name).unwrap_or_default();
    if bytes.is_empty() {
        return Err(Status::invalid_argument("the request names no stream (empty stream_identifier)"));
    }
    String::from_utf8(bytes.to_vec()).map_err(|_| Status::invalid_argument("the stream name is not valid UTF-8"))
}

/// The identifier of `stream` on the wire.
pub(crate) fn stream_identifier(stream: &str) -> StreamIdentifier {
    StreamIdentifier { stream_name: stream.as_bytes().to_vec() }
}

/// Which of the two forms of an event id the client asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum UuidForm {
    /// A string (`"01234567-..."`).
    #[default]
    String,
    /// Two signed 64-bit halves.
    Structured,
}

/// `id` on the wire in `form`.
pub(crate) fn proto_uuid(id: Uuid, form: UuidForm) -> ProtoUuid {
    let value = match form {
        UuidForm::String => UuidValue::String(id.to_string()),
        UuidForm::Structured => {
            let (high, low) = id.as_u64_pair();
            UuidValue::Structured(Structured { most_significant_bits: high as i64, least_significant_bits: low as i64 })
        }
    };
    ProtoUuid { value: Some(value) }
}

/// The id a client sent, in either form.
pub(crate) fn uuid_of(id: Option<ProtoUuid>, what: &str) -> Result<Uuid, Status> {
    match id.and_then(|id| id.value) {
        Some(UuidValue::String(text)) => {
            Uuid::parse_str(&text).map_err(|e| Status::invalid_argument(format!("{what} `{text}` is not a UUID: {e}")))
        }
        Some(UuidValue::Structured(s)) => {
            Ok(Uuid::from_u64_pair(s.most_significant_bits as u64, s.least_significant_bits as u64))
        }
        None => Err(Status::invalid_argument(format!("{what} is missing"))),
    }
}

/// The expected state a client sent with a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Expected {
    /// The stream is at this revision.
    Revision(u64),
    /// The stream does not exist.
    NoStream,
    /// Anything goes.
    Any,
    /// The stream exists.
    StreamExists,
}

impl Expected {
    /// chronik's expected version for it.
    pub(crate) fn to_version(self) -> Result<ExpectedVersion, Status> {
        Ok(match self {
            Expected::Revision(revision) => ExpectedVersion::Exact(version_of(revision)?),
            Expected::NoStream => ExpectedVersion::NoStream,
            Expected::Any => ExpectedVersion::Any,
            Expected::StreamExists => ExpectedVersion::StreamExists,
        })
    }

    /// Whether a stream whose current state is `current` meets it.
    pub(crate) fn holds_for(self, current: Current) -> bool {
        match (self, current) {
            (Expected::Any, _) => true,
            (Expected::NoStream, Current::NoStream) => true,
            (Expected::StreamExists, Current::Revision(_)) => true,
            (Expected::Revision(r), Current::Revision(c)) => r == c,
            _ => false,
        }
    }

    /// The text KurrentDB puts in its `expected-version` trailer.
    pub(crate) fn trailer(self) -> String {
        match self {
            Expected::Revision(r) => r.to_string(),
            Expected::NoStream => "-1".into(),
            Expected::Any => "-2".into(),
            Expected::StreamExists => "-4".into(),
        }
    }
}

/// A stream's state as a write sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Current {
    /// At this revision.
    Revision(u64),
    /// Absent (never written, or deleted so that it may be written again).
    NoStream,
}

impl Current {
    /// The state of a stream at chronik `version` (0: absent).
    pub(crate) fn of_version(version: u64) -> Current {
        if version == 0 { Current::NoStream } else { Current::Revision(revision_of(version)) }
    }

    pub(crate) fn trailer(self) -> String {
        match self {
            Current::Revision(r) => r.to_string(),
            Current::NoStream => "-1".into(),
        }
    }
}

/// KurrentDB's ticks: 100-nanosecond intervals since the Unix epoch.
pub(crate) fn ticks_of(time: DateTime<Utc>) -> i64 {
    time.timestamp() * 10_000_000 + i64::from(time.timestamp_subsec_nanos() / 100)
}

/// A Protobuf timestamp of now.
pub(crate) fn timestamp_now() -> prost_types::Timestamp {
    let now = Utc::now();
    prost_types::Timestamp { seconds: now.timestamp(), nanos: now.timestamp_subsec_nanos() as i32 }
}

/// The parts of an event a client proposes, in any of the three message kinds that carry one.
pub(crate) struct Proposed {
    pub(crate) id: Option<ProtoUuid>,
    pub(crate) metadata: HashMap<String, String>,
    pub(crate) custom_metadata: Vec<u8>,
    pub(crate) data: Vec<u8>,
}

/// The content type KurrentDB's clients give binary events.
const OCTET_STREAM: &str = "application/octet-stream";

/// chronik's event for a proposed one. `$correlationId` and `$causationId` in JSON custom
/// metadata (the convention of KurrentDB's clients) become the event's correlation and
/// causation ids as well; the metadata itself is kept as sent.
pub(crate) fn event_data(proposed: Proposed) -> Result<EventData, Status> {
    let id = uuid_of(proposed.id, "the event id")?;
    let mut metadata = proposed.metadata;
    let event_type = metadata.remove("type").filter(|t| !t.is_empty()).ok_or_else(|| {
        Status::invalid_argument(format!("event {id} has no type (the `type` metadata entry is missing or empty)"))
    })?;
    let content_type = metadata.remove("content-type").unwrap_or_else(|| OCTET_STREAM.to_string());
    let mut event = EventData::from_bytes(event_type, content_type, proposed.data).with_event_id(id);
    if !proposed.custom_metadata.is_empty() {
        if let Ok(serde_json::Value::Object(fields)) = serde_json::from_slice(&proposed.custom_metadata) {
            let id_at = |key: &str| fields.get(key).and_then(|v| v.as_str()).and_then(|s| Uuid::parse_str(s).ok());
            event = event.with_correlation_id(id_at("$correlationId")).with_causation_id(id_at("$causationId"));
        }
        event = event.with_metadata_bytes(proposed.custom_metadata);
    }
    Ok(event)
}

/// The fields of an event on the wire, shared by the streams and persistent services (which
/// each have their own message type with these fields).
pub(crate) struct WireEvent {
    pub(crate) id: ProtoUuid,
    pub(crate) stream: StreamIdentifier,
    pub(crate) revision: u64,
    pub(crate) position: u64,
    pub(crate) metadata: HashMap<String, String>,
    pub(crate) custom_metadata: Vec<u8>,
    pub(crate) data: Vec<u8>,
}

/// Implements `From<WireEvent>` for the record types of the streams and persistent services
/// (two message types with the same fields).
macro_rules! record_from_wire {
    ($($record:path),*) => {
        $(impl From<WireEvent> for $record {
            fn from(event: WireEvent) -> Self {
                Self {
                    id: Some(event.id),
                    stream_identifier: Some(event.stream),
                    stream_revision: event.revision,
                    prepare_position: event.position,
                    commit_position: event.position,
                    metadata: event.metadata,
                    custom_metadata: event.custom_metadata,
                    data: event.data,
                }
            }
        })*
    };
}

record_from_wire!(
    super::proto::streams::read_resp::read_event::RecordedEvent,
    super::proto::persistent::read_resp::read_event::RecordedEvent
);

/// `event` as stored, on the wire.
pub(crate) fn wire_event(event: &RecordedEvent, form: UuidForm) -> WireEvent {
    WireEvent {
        id: proto_uuid(event.event_id, form),
        stream: stream_identifier(&event.stream_uuid),
        revision: revision_of(event.stream_version),
        position: event.global_position,
        metadata: system_metadata(&event.event_type, &event.content_type, event.created_at),
        custom_metadata: event.metadata.clone().unwrap_or_default(),
        data: event.data.clone(),
    }
}

/// The link through which `event` was read from `stream` (a linked stream, `$ce-` or `$et-`):
/// a `$>` event at the link's revision pointing at `revision@stream` of the original. chronik
/// keeps links out of `$all`, so the link carries the original's position, and its id is
/// derived from the link's place (the same link always has the same id).
pub(crate) fn wire_link(event: &RecordedEvent, stream: &str, form: UuidForm) -> WireEvent {
    let revision = revision_of(event.event_number);
    let id = Uuid::new_v5(&Uuid::NAMESPACE_OID, format!("{revision}@{stream}").as_bytes());
    WireEvent {
        id: proto_uuid(id, form),
        stream: stream_identifier(stream),
        revision,
        position: event.global_position,
        metadata: system_metadata(LINK_EVENT_TYPE, OCTET_STREAM, event.created_at),
        custom_metadata: Vec::new(),
        data: format!("{}@{}", revision_of(event.stream_version), event.stream_uuid).into_bytes(),
    }
}

/// The `type`, `content-type` and `created` entries of an event's system metadata.
pub(crate) fn system_metadata(event_type: &str, content_type: &str, created: DateTime<Utc>) -> HashMap<String, String> {
    HashMap::from([
        ("type".to_string(), event_type.to_string()),
        ("content-type".to_string(), content_type.to_string()),
        ("created".to_string(), ticks_of(created).to_string()),
    ])
}

/// The filter a client's expression asks for: any of `prefixes`, else `regex`, matched against
/// the stream id (`on_stream`) or the event type.
///
/// KurrentDB runs .NET regular expressions; chronik's have no look-around. A whole expression
/// of the form `^(?!(X))`, which KurrentDB's clients send to leave out what `X` matches at the
/// start (the Python client's default leaves out system events so), is the same as excluding
/// `^(?:X)`, and is read so.
pub(crate) fn expression_filter(prefixes: Vec<String>, regex: String, on_stream: bool) -> Result<EventFilter, Status> {
    if !prefixes.is_empty() {
        return Ok(if on_stream {
            EventFilter::stream_prefix(prefixes)
        } else {
            EventFilter::event_type_prefix(prefixes)
        });
    }
    if regex.is_empty() {
        return Err(Status::invalid_argument("a filter needs a regular expression or prefixes"));
    }
    let (pattern, exclude) = match negative_lookahead(&regex) {
        Some(inner) => (format!("^(?:{inner})"), true),
        None => (regex, false),
    };
    let filter = if on_stream { EventFilter::stream_regex(pattern) } else { EventFilter::event_type_regex(pattern) };
    Ok(if exclude { filter.exclude() } else { filter })
}

/// `X` of a pattern that is exactly `^(?!X)` (the group closing at the very end).
fn negative_lookahead(pattern: &str) -> Option<&str> {
    let inner = pattern.strip_prefix("^(?!")?;
    let (mut depth, mut escaped, mut in_class) = (1usize, false, false);
    for (index, c) in inner.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '[' if !in_class => in_class = true,
            ']' if in_class => in_class = false,
            '(' if !in_class => depth += 1,
            ')' if !in_class => {
                depth -= 1;
                if depth == 0 {
                    return (index + 1 == inner.len()).then(|| &inner[..index]);
                }
            }
            _ => {}
        }
    }
    None
}

/// Whether `event`, read from `stream`, came through a link (or an index stream).
pub(crate) fn is_linked(event: &RecordedEvent, stream: &str) -> bool {
    stream != crate::ALL && event.stream_uuid != stream
}

/// The deadline a client gave its call (the `grpc-timeout` header: an integer and a unit,
/// `H`, `M`, `S`, `m`, `u` or `n`). tonic ends a call whose response has not started by then;
/// streamed responses (reads, subscriptions) end themselves with it.
pub(crate) fn deadline_of(metadata: &MetadataMap) -> Option<std::time::Duration> {
    use std::time::Duration;
    let text = metadata.get("grpc-timeout")?.to_str().ok()?;
    let (digits, unit) = text.split_at(text.len().checked_sub(1)?);
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.saturating_mul(3600)),
        "M" => Duration::from_secs(n.saturating_mul(60)),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// The status of a call whose deadline passed.
pub(crate) fn deadline_exceeded() -> Status {
    Status::deadline_exceeded("the call's deadline passed")
}

/// The status KurrentDB's clients expect for `error`. Wrong expected versions are answered in
/// the body of an append, not here; `stream` is the stream the call was about.
pub(crate) fn status_of(error: &Error, stream: &str) -> Status {
    match error {
        Error::StreamDeleted => stream_deleted(stream),
        Error::StreamNotFound => with_trailers(
            Status::not_found(format!("stream `{stream}` was not found")),
            &[("exception", "stream-not-found"), ("stream-name", stream)],
        ),
        Error::AppendFailed { stream, source } => status_of(source, stream),
        Error::InvalidArgument(_)
        | Error::CannotAppendToAllStream
        | Error::CannotDeleteAllStream
        | Error::Serialization(_)
        | Error::Config(_) => Status::invalid_argument(error.to_string()),
        Error::DuplicateEvent(_) => Status::already_exists(error.to_string()),
        Error::NotFound | Error::SnapshotNotFound => Status::not_found(error.to_string()),
        Error::NotSupported | Error::ReadOnly(_) | Error::Refused(_) | Error::SubscriptionInUse => {
            Status::failed_precondition(error.to_string())
        }
        Error::Unavailable(_) | Error::Database(_) => Status::unavailable(error.to_string()),
        // The outcome is not known: neither a success nor a failure may be reported.
        Error::InDoubt(_) => Status::unknown(error.to_string()),
        _ => Status::internal(error.to_string()),
    }
}

/// A write refused because the stream's state did not match, as a status (deletes and
/// tombstones answer so; appends answer in their body).
pub(crate) fn wrong_expected_version(stream: &str, expected: Expected, current: Current) -> Status {
    let (expected_text, current_text) = (expected.trailer(), current.trailer());
    with_trailers(
        Status::failed_precondition(format!(
            "wrong expected version for stream `{stream}`: expected {expected_text}, actual {current_text}"
        )),
        &[
            ("exception", "wrong-expected-version"),
            ("stream-name", stream),
            ("expected-version", &expected_text),
            ("actual-version", &current_text),
        ],
    )
}

/// The stream is tombstoned.
pub(crate) fn stream_deleted(stream: &str) -> Status {
    with_trailers(
        Status::failed_precondition(format!("stream `{stream}` is deleted")),
        &[("exception", "stream-deleted"), ("stream-name", stream)],
    )
}

/// `status` with trailers added (values that are not valid header text are left out).
pub(crate) fn with_trailers(status: Status, trailers: &[(&'static str, &str)]) -> Status {
    let mut metadata = MetadataMap::new();
    for (key, value) in trailers {
        if let Ok(value) = MetadataValue::try_from(*value) {
            metadata.insert(*key, value);
        }
    }
    Status::with_metadata(status.code(), status.message(), metadata)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revisions_count_from_zero_and_versions_from_one() {
        assert_eq!(revision_of(1), 0);
        assert_eq!(version_of(0).unwrap(), 1);
        assert!(version_of(u64::MAX).is_err());
    }

    #[test]
    fn both_uuid_forms_round_trip() {
        let id = Uuid::new_v4();
        for form in [UuidForm::String, UuidForm::Structured] {
            assert_eq!(uuid_of(Some(proto_uuid(id, form)), "id").unwrap(), id);
        }
        let err = uuid_of(Some(ProtoUuid { value: Some(UuidValue::String("nope".into())) }), "the event id");
        assert!(err.unwrap_err().message().contains("`nope`"));
    }

    #[test]
    fn ticks_are_hundred_nanoseconds_since_the_epoch() {
        let time = DateTime::from_timestamp(1, 500).unwrap();
        assert_eq!(ticks_of(time), 10_000_005);
    }

    #[test]
    fn expected_states_match_kurrentdb() {
        assert!(Expected::NoStream.holds_for(Current::NoStream));
        assert!(!Expected::NoStream.holds_for(Current::Revision(0)));
        assert!(Expected::StreamExists.holds_for(Current::Revision(3)));
        assert!(Expected::Revision(3).holds_for(Current::Revision(3)));
        assert!(!Expected::Revision(0).holds_for(Current::NoStream));
        assert_eq!(Expected::Revision(0).to_version().unwrap(), ExpectedVersion::Exact(1));
    }

    #[test]
    fn correlation_ids_in_custom_metadata_are_taken() {
        let correlation = Uuid::new_v4();
        let proposed = Proposed {
            id: Some(proto_uuid(Uuid::new_v4(), UuidForm::String)),
            metadata: HashMap::from([("type".into(), "Deposited".into())]),
            custom_metadata: format!(r#"{{"$correlationId":"{correlation}"}}"#).into_bytes(),
            data: b"{}".to_vec(),
        };
        let event = event_data(proposed).unwrap();
        assert_eq!(event.correlation_id, Some(correlation));
        assert_eq!(event.content_type, OCTET_STREAM);
    }

    #[test]
    fn a_whole_negative_lookahead_is_read_as_an_exclusion() {
        let python_default = r"^(?!(\$.+$|PersistentConfig\d+$|Result$))";
        assert_eq!(negative_lookahead(python_default), Some(r"(\$.+$|PersistentConfig\d+$|Result$)"));
        let filter = expression_filter(vec![], python_default.into(), false).unwrap();
        assert_eq!(filter, EventFilter::event_type_regex(r"^(?:(\$.+$|PersistentConfig\d+$|Result$))").exclude());
        assert_eq!(negative_lookahead(r"^(?!a)b"), None, "something follows the look-ahead");
        assert_eq!(negative_lookahead(r"^(?![)]x)"), Some("[)]x"));
        assert_eq!(expression_filter(vec![], "^[^$].*".into(), true).unwrap(), EventFilter::stream_regex("^[^$].*"));
    }

    #[test]
    fn deadlines_are_read_in_every_unit() {
        let mut metadata = MetadataMap::new();
        assert_eq!(deadline_of(&metadata), None);
        for (text, expected) in [("2S", 2_000), ("1500m", 1_500), ("1M", 60_000), ("3000000u", 3_000)] {
            metadata.insert("grpc-timeout", MetadataValue::try_from(text).unwrap());
            assert_eq!(deadline_of(&metadata), Some(std::time::Duration::from_millis(expected)), "{text}");
        }
        metadata.insert("grpc-timeout", MetadataValue::from_static("soon"));
        assert_eq!(deadline_of(&metadata), None);
    }

    #[test]
    fn a_proposed_event_without_a_type_is_refused() {
        let proposed = Proposed {
            id: Some(proto_uuid(Uuid::new_v4(), UuidForm::String)),
            metadata: HashMap::new(),
            custom_metadata: vec![],
            data: vec![],
        };
        assert!(event_data(proposed).unwrap_err().message().contains("no type"));
    }
}
