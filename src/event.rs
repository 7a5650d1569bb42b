//! The values that go in and come out of streams: [`EventData`] to append, [`RecordedEvent`]
//! as read, [`ExpectedVersion`] for optimistic concurrency, and stream metadata.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::metadata::StreamMetadata;
use crate::serializer::{self, BincodeSerializer, JsonSerializer, Serializer};

/// The name of the stream of all events, ordered by global position.
pub const ALL: &str = "$all";

/// An event to append: a type, a payload with its content type, optional JSON metadata and ids.
///
/// ```
/// use chronik::EventData;
/// #[derive(serde::Serialize)]
/// struct Deposited { amount: u64 }
///
/// let e = EventData::json("Deposited", &Deposited { amount: 10 })?
///     .with_metadata_json(&serde_json::json!({ "user": "ana" }))?;
/// assert_eq!(e.data, br#"{"amount":10}"#);
/// # Ok::<(), chronik::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct EventData {
    /// Unique id of the event (a new v4 UUID unless set); appending an id twice is rejected.
    pub event_id: Uuid,
    /// The event's type, e.g. `"Deposited"`. Must not be empty.
    pub event_type: String,
    /// Content type of `data` (see [`crate::JSON_CONTENT_TYPE`], [`crate::BINCODE_CONTENT_TYPE`]).
    pub content_type: String,
    /// The payload.
    pub data: Vec<u8>,
    /// Metadata, JSON-encoded.
    pub metadata: Option<Vec<u8>>,
    /// The id correlating this event with others of one workflow.
    pub correlation_id: Option<Uuid>,
    /// The id of the message that caused this event.
    pub causation_id: Option<Uuid>,
}

impl EventData {
    /// An event whose payload is `value` as JSON.
    pub fn json<T: Serialize + ?Sized>(event_type: impl Into<String>, value: &T) -> Result<Self> {
        Self::serialize_with(event_type, &JsonSerializer, value)
    }

    /// An event whose payload is `value` in bincode 2 (serde mode).
    pub fn binary<T: Serialize + ?Sized>(event_type: impl Into<String>, value: &T) -> Result<Self> {
        Self::serialize_with(event_type, &BincodeSerializer, value)
    }

    /// An event whose payload is `value` encoded by `serializer`.
    pub fn serialize_with<S: Serializer, T: Serialize + ?Sized>(
        event_type: impl Into<String>,
        serializer: &S,
        value: &T,
    ) -> Result<Self> {
        let data = serializer.serialize(value)?;
        Ok(Self::from_bytes(event_type, serializer.content_type(), data))
    }

    /// An event with an already encoded payload.
    pub fn from_bytes(
        event_type: impl Into<String>,
        content_type: impl Into<String>,
        data: impl Into<Vec<u8>>,
    ) -> Self {
        EventData {
            event_id: Uuid::new_v4(),
            event_type: event_type.into(),
            content_type: content_type.into(),
            data: data.into(),
            metadata: None,
            correlation_id: None,
            causation_id: None,
        }
    }

    /// Sets the metadata to `value` as JSON.
    pub fn with_metadata_json<T: Serialize + ?Sized>(mut self, value: &T) -> Result<Self> {
        self.metadata = Some(JsonSerializer.serialize(value)?);
        Ok(self)
    }

    /// Sets the metadata to already encoded JSON bytes.
    #[must_use]
    pub fn with_metadata_bytes(mut self, json: impl Into<Vec<u8>>) -> Self {
        self.metadata = Some(json.into());
        self
    }

    /// Sets the correlation id (`Uuid` or `Option<Uuid>`).
    #[must_use]
    pub fn with_correlation_id(mut self, id: impl Into<Option<Uuid>>) -> Self {
        self.correlation_id = id.into();
        self
    }

    /// Sets the causation id (`Uuid` or `Option<Uuid>`).
    #[must_use]
    pub fn with_causation_id(mut self, id: impl Into<Option<Uuid>>) -> Self {
        self.causation_id = id.into();
        self
    }

    /// Sets the event id (instead of a new v4 UUID); use it to make retries idempotent.
    #[must_use]
    pub fn with_event_id(mut self, id: Uuid) -> Self {
        self.event_id = id;
        self
    }

    /// Bytes this event counts against `max_event_size`: data plus metadata.
    pub fn payload_size(&self) -> usize {
        self.data.len() + self.metadata.as_ref().map_or(0, Vec::len)
    }
}

/// An event as stored, read from a stream or from `$all`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecordedEvent {
    /// Position in the stream that was read: the stream version for a stream read, the global
    /// position for `$all`, the link's version for a stream of links.
    pub event_number: u64,
    /// The event's unique id.
    pub event_id: Uuid,
    /// The stream the event was originally appended to.
    pub stream_uuid: String,
    /// The event's version in its original stream.
    pub stream_version: u64,
    /// The event's global position in `$all`.
    pub global_position: u64,
    /// The event's type.
    pub event_type: String,
    /// Correlation id, if any.
    pub correlation_id: Option<Uuid>,
    /// Causation id, if any.
    pub causation_id: Option<Uuid>,
    /// The payload.
    pub data: Vec<u8>,
    /// JSON metadata, if any.
    pub metadata: Option<Vec<u8>>,
    /// Content type of `data`.
    pub content_type: String,
    /// When the event was committed.
    pub created_at: DateTime<Utc>,
}

impl RecordedEvent {
    /// Decodes `data` with the built-in serializer for its content type (JSON or bincode).
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T> {
        serializer::decode_builtin(&self.content_type, &self.data)
    }

    /// Decodes `data` with a custom serializer.
    pub fn decode_with<S: Serializer, T: DeserializeOwned>(&self, serializer: &S) -> Result<T> {
        serializer.deserialize(&self.data)
    }

    /// Decodes the JSON metadata; an event without metadata is an [`Error::Serialization`].
    pub fn decode_metadata<T: DeserializeOwned>(&self) -> Result<T> {
        match &self.metadata {
            Some(bytes) => JsonSerializer.deserialize(bytes),
            None => Err(Error::Serialization(format!("event {} has no metadata", self.event_id))),
        }
    }
}

/// The version a stream must be at for a write to proceed (optimistic concurrency).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExpectedVersion {
    /// Any state: absent or at any version.
    Any,
    /// The stream must not exist.
    NoStream,
    /// The stream must exist (have at least one event).
    StreamExists,
    /// The stream must be exactly at this version (`Exact(0)`: absent).
    Exact(u64),
}

impl std::fmt::Display for ExpectedVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExpectedVersion::Any => f.write_str("any"),
            ExpectedVersion::NoStream => f.write_str("no stream"),
            ExpectedVersion::StreamExists => f.write_str("stream exists"),
            ExpectedVersion::Exact(v) => write!(f, "{v}"),
        }
    }
}

impl ExpectedVersion {
    /// Checks this expectation against a stream's state, in the order of the API contract.
    /// `current` is `None` for an absent stream.
    pub(crate) fn check(self, current: Option<u64>, deleted: bool) -> Result<()> {
        if deleted {
            return Err(Error::StreamDeleted);
        }
        match (self, current) {
            (ExpectedVersion::Any, _) => Ok(()),
            (ExpectedVersion::NoStream | ExpectedVersion::Exact(0), None) => Ok(()),
            (ExpectedVersion::StreamExists, None) => Err(Error::StreamNotFound),
            (ExpectedVersion::Exact(n), None) => Err(Error::WrongExpectedVersion { expected: n, actual: 0 }),
            (ExpectedVersion::StreamExists, Some(_)) => Ok(()),
            (ExpectedVersion::NoStream, Some(_)) => Err(Error::StreamExists),
            (ExpectedVersion::Exact(n), Some(v)) if n == v => Ok(()),
            (ExpectedVersion::Exact(n), Some(v)) => Err(Error::WrongExpectedVersion { expected: n, actual: v }),
        }
    }
}

/// What a successful append (or link) produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct AppendResult {
    /// The stream's version after the append: the version of its last appended event.
    pub stream_version: u64,
    /// Global position of the first appended event (for links: of the first linked event).
    pub first_position: u64,
    /// Global position of the last appended event (for links: of the last linked event).
    pub last_position: u64,
}

/// Whether a stream is live or soft-deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StreamStatus {
    /// The stream can be read and appended to.
    Created,
    /// The stream was soft-deleted.
    Deleted,
}

/// What the store knows of a stream.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct StreamInfo {
    /// The stream's name.
    pub stream_uuid: String,
    /// The store's internal id of the stream (`0` is `$all`).
    pub stream_id: u64,
    /// The version of the stream's last event (for `$all`: the last global position).
    pub stream_version: u64,
    /// When the stream's first event was appended.
    pub created_at: DateTime<Utc>,
    /// When the stream was soft-deleted.
    pub deleted_at: Option<DateTime<Utc>>,
    /// Live or deleted.
    pub status: StreamStatus,
    /// The stream's metadata (retention rules, custom JSON) with its version, if any was set
    /// (see [`crate::EventStore::set_stream_metadata`]).
    pub metadata: Option<(u64, StreamMetadata)>,
}

/// How [`crate::EventStore::delete_stream`] deletes.
///
/// | mode | reads after it | an append after it | its events in `$all` | KurrentDB |
/// |---|---|---|---|---|
/// | `Recreatable` | [`Error::StreamNotFound`] | recreates it, versions continue | until a scavenge | delete (soft delete) |
/// | `Soft` | [`Error::StreamDeleted`] | [`Error::StreamDeleted`], forever | kept | tombstone (hard delete) |
/// | `Hard` | [`Error::StreamNotFound`] | starts it again at version 1 | removed at once | none |
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DeleteMode {
    /// A tombstone: the stream can never be read or appended to again
    /// ([`Error::StreamDeleted`]); its events stay in `$all`.
    Soft,
    /// Remove the stream's events everywhere at once, and the stream with them: the name is free
    /// again, as if the stream never existed (needs `enable_hard_deletes`).
    Hard,
    /// Delete the stream so that it can be recreated: reads say [`Error::StreamNotFound`] and
    /// for an append it is absent (`ExpectedVersion::NoStream` holds), but the next append
    /// continues its version numbering, and the events from before stay unreadable in it. They
    /// stay in `$all` until a scavenge removes them. This is KurrentDB's delete (a truncate
    /// before the next version), which its clients expect.
    Recreatable,
}

/// The events to append to one stream, as part of [`crate::EventStore::append_to_streams`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StreamAppend {
    /// The target stream.
    pub stream: String,
    /// The version it must be at, checked like an append's.
    pub expected: ExpectedVersion,
    /// The events, in order.
    pub events: Vec<EventData>,
}

impl StreamAppend {
    /// Appends `events` to `stream` if it is at `expected`.
    pub fn new(
        stream: impl Into<String>,
        expected: ExpectedVersion,
        events: impl IntoIterator<Item = EventData>,
    ) -> Self {
        StreamAppend { stream: stream.into(), expected, events: events.into_iter().collect() }
    }
}

/// An event of `stream` with type `event_type`, numbered 1, an empty JSON payload and no ids
/// beside its own: what the unit tests of filters, options and the like look at.
#[cfg(test)]
pub(crate) fn test_event(stream: &str, event_type: &str) -> RecordedEvent {
    RecordedEvent {
        event_number: 1,
        event_id: Uuid::new_v4(),
        stream_uuid: stream.into(),
        stream_version: 1,
        global_position: 1,
        event_type: event_type.into(),
        correlation_id: None,
        causation_id: None,
        data: Vec::new(),
        metadata: None,
        content_type: "application/json".into(),
        created_at: Utc::now(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expected_version_rules_follow_the_contract() {
        use ExpectedVersion::*;
        assert!(Any.check(None, false).is_ok());
        assert!(NoStream.check(None, false).is_ok());
        assert!(Exact(0).check(None, false).is_ok());
        assert!(matches!(StreamExists.check(None, false), Err(Error::StreamNotFound)));
        assert!(matches!(Exact(2).check(None, false), Err(Error::WrongExpectedVersion { expected: 2, actual: 0 })));
        assert!(Any.check(Some(3), false).is_ok());
        assert!(StreamExists.check(Some(3), false).is_ok());
        assert!(Exact(3).check(Some(3), false).is_ok());
        assert!(matches!(NoStream.check(Some(3), false), Err(Error::StreamExists)));
        assert!(matches!(Exact(2).check(Some(3), false), Err(Error::WrongExpectedVersion { expected: 2, actual: 3 })));
        assert!(matches!(Any.check(Some(3), true), Err(Error::StreamDeleted)));
    }

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Deposited {
        amount: u64,
        note: String,
    }

    fn recorded(e: EventData) -> RecordedEvent {
        RecordedEvent {
            event_number: 1,
            event_id: e.event_id,
            stream_uuid: "s".into(),
            stream_version: 1,
            global_position: 1,
            event_type: e.event_type,
            correlation_id: None,
            causation_id: None,
            data: e.data,
            metadata: e.metadata,
            content_type: e.content_type,
            created_at: Utc::now(),
        }
    }

    #[test]
    fn json_and_bincode_round_trip_by_content_type() -> Result<()> {
        let value = Deposited { amount: 7, note: "café ☕".into() };
        for e in [EventData::json("D", &value)?, EventData::binary("D", &value)?] {
            assert_eq!(recorded(e).decode::<Deposited>()?, value);
        }
        Ok(())
    }

    #[test]
    fn unknown_content_type_needs_a_serializer() {
        let e = recorded(EventData::from_bytes("D", "application/x-mine", vec![1, 2]));
        assert!(matches!(e.decode::<u8>(), Err(Error::Serialization(_))));
    }
}
