//! A stream's metadata as KurrentDB's clients see it: the stream `$$<stream>`, whose events (of
//! type `$metadata`) hold JSON such as `{"$maxCount": 10, "$maxAge": 3600, "$tb": 5, ...}`.
//! chronik keeps only the latest metadata, with its version: writing `$$<stream>` sets it
//! ([`EventStore::set_stream_metadata`]), reading `$$<stream>` gives the latest as the one
//! event of that stream, at revision `version - 1`.
//!
//! The mapping: `$maxCount` is `max_count`, `$maxAge` (seconds) `max_age`, `$tb` (a revision)
//! `truncate_before` (a version, so `$tb + 1`); every other key (`$acl`, `$cacheControl`, the
//! application's own) is kept in `custom` and given back as set. chronik enforces no ACLs.

use std::time::Duration;

use chrono::DateTime;
use serde_json::{Map, Value};
use tonic::Status;

use super::mapping::{self, Current, Expected};
use super::streams::AppendOutcome;
use crate::{Error, EventData, EventStore, JSON_CONTENT_TYPE, RecordedEvent, StreamMetadata};

const MAX_COUNT: &str = "$maxCount";
const MAX_AGE: &str = "$maxAge";
const TRUNCATE_BEFORE: &str = "$tb";

/// Sets `stream`'s metadata from the last of `events` appended to `$$<stream>`.
pub(crate) async fn append(
    store: &EventStore,
    stream: &str,
    expected: Expected,
    events: Vec<EventData>,
) -> Result<AppendOutcome, Status> {
    let metadata_stream = format!("{}{stream}", mapping::METADATA_STREAM_PREFIX);
    let Some(event) = events.last() else {
        let current = current(store, stream).await?;
        return Ok(if expected.holds_for(current) {
            AppendOutcome::Done { current, position: None }
        } else {
            AppendOutcome::WrongExpectedVersion { expected, current }
        });
    };
    if event.event_type != mapping::METADATA_EVENT_TYPE {
        return Err(Status::invalid_argument(format!(
            "`{metadata_stream}` holds metadata: its events are of type `{}`, not `{}`",
            mapping::METADATA_EVENT_TYPE,
            event.event_type
        )));
    }
    let metadata = from_json(&event.data).map_err(|why| {
        Status::invalid_argument(format!("the metadata written to `{metadata_stream}` is not valid: {why}"))
    })?;
    // Only the latest metadata is kept: of several events in one append, the last one is set.
    match store.set_stream_metadata(stream, expected.to_version()?, metadata).await {
        Ok(version) => Ok(AppendOutcome::Done { current: Current::of_version(version), position: None }),
        Err(Error::WrongExpectedVersion { actual, .. }) => {
            Ok(AppendOutcome::WrongExpectedVersion { expected, current: Current::of_version(actual) })
        }
        Err(Error::StreamNotFound) => Ok(AppendOutcome::WrongExpectedVersion { expected, current: Current::NoStream }),
        Err(Error::StreamExists) => {
            Ok(AppendOutcome::WrongExpectedVersion { expected, current: current(store, stream).await? })
        }
        Err(e) => Err(mapping::status_of(&e, stream)),
    }
}

/// The state of `$$<stream>`.
async fn current(store: &EventStore, stream: &str) -> Result<Current, Status> {
    let latest = store.stream_metadata(stream).await.map_err(|e| mapping::status_of(&e, stream))?;
    Ok(latest.map_or(Current::NoStream, |(version, _)| Current::of_version(version)))
}

/// The event a read of `$$<stream>` gives: the latest metadata, if any.
pub(crate) async fn latest_event(store: &EventStore, stream: &str) -> Result<Option<RecordedEvent>, Status> {
    let latest = store.stream_metadata(stream).await.map_err(|e| mapping::status_of(&e, stream))?;
    let Some((version, metadata)) = latest else { return Ok(None) };
    let data = serde_json::to_vec(&to_json(&metadata)).map_err(|e| Status::internal(e.to_string()))?;
    let metadata_stream = format!("{}{stream}", mapping::METADATA_STREAM_PREFIX);
    Ok(Some(RecordedEvent {
        event_number: version,
        event_id: uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, format!("{version}@{metadata_stream}").as_bytes()),
        stream_uuid: metadata_stream,
        stream_version: version,
        // Metadata is not in `$all`, and when it was set is not recorded.
        global_position: 0,
        event_type: mapping::METADATA_EVENT_TYPE.to_string(),
        correlation_id: None,
        causation_id: None,
        data,
        metadata: None,
        content_type: JSON_CONTENT_TYPE.to_string(),
        created_at: DateTime::UNIX_EPOCH,
    }))
}

/// chronik's metadata for KurrentDB's JSON.
fn from_json(data: &[u8]) -> Result<StreamMetadata, String> {
    let value: Value = serde_json::from_slice(data).map_err(|e| format!("not JSON: {e}"))?;
    let Value::Object(mut fields) = value else { return Err("not a JSON object".into()) };
    let mut metadata = StreamMetadata::default();
    let whole = |key: &str, value: Value| {
        value.as_u64().ok_or_else(|| format!("`{key}` must be a whole number that is not negative, not {value}"))
    };
    if let Some(v) = fields.remove(MAX_COUNT).filter(|v| !v.is_null()) {
        metadata = metadata.max_count(whole(MAX_COUNT, v)?);
    }
    if let Some(v) = fields.remove(MAX_AGE).filter(|v| !v.is_null()) {
        metadata = metadata.max_age(Duration::from_secs(whole(MAX_AGE, v)?));
    }
    if let Some(v) = fields.remove(TRUNCATE_BEFORE).filter(|v| !v.is_null()) {
        let revision = whole(TRUNCATE_BEFORE, v)?;
        metadata = metadata.truncate_before(mapping::version_of(revision).map_err(|s| s.message().to_string())?);
    }
    if !fields.is_empty() {
        metadata = metadata.custom(Value::Object(fields));
    }
    Ok(metadata)
}

/// KurrentDB's JSON for chronik's metadata.
fn to_json(metadata: &StreamMetadata) -> Value {
    let mut fields = match &metadata.custom {
        Some(Value::Object(custom)) => custom.clone(),
        _ => Map::new(),
    };
    if let Some(count) = metadata.max_count {
        fields.insert(MAX_COUNT.into(), count.into());
    }
    if let Some(age) = metadata.max_age {
        fields.insert(MAX_AGE.into(), age.as_secs().into());
    }
    if let Some(version) = metadata.truncate_before {
        fields.insert(TRUNCATE_BEFORE.into(), mapping::revision_of(version).into());
    }
    Value::Object(fields)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kurrentdb_metadata_round_trips() {
        let json = br#"{"$maxCount":10,"$maxAge":3600,"$tb":4,"$acl":{"$r":"ana"},"owner":"billing"}"#;
        let metadata = from_json(json).unwrap();
        assert_eq!(metadata.max_count, Some(10));
        assert_eq!(metadata.max_age, Some(Duration::from_secs(3600)));
        assert_eq!(metadata.truncate_before, Some(5), "$tb is a revision, truncate_before a version");
        assert_eq!(to_json(&metadata), serde_json::from_slice::<Value>(json).unwrap());
    }

    #[test]
    fn invalid_metadata_names_the_key() {
        assert!(from_json(br#"{"$maxCount":-1}"#).unwrap_err().contains("$maxCount"));
        assert!(from_json(b"[1]").unwrap_err().contains("object"));
    }
}
