//! Rows as every backend selects them, and their conversions to the API's types: corrupt
//! values (a negative count, a bad UUID) become errors here, not panics.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::event::{RecordedEvent, StreamInfo, StreamStatus};
use crate::snapshot::SnapshotData;
use crate::storage::StoredNack;
use crate::subscription::{ParkedEvent, SubscriptionInfo};

/// Converts a stored integer that must not be negative; a negative one is a corrupt row.
pub(crate) fn unsigned(column: &str, value: i64) -> Result<u64> {
    u64::try_from(value).map_err(|_| {
        Error::Database(sqlx::Error::Decode(format!("corrupt row: {column} = {value} is negative").into()))
    })
}

/// Converts an API integer to a database bigint; values past `i64::MAX` are invalid arguments.
pub(crate) fn signed(what: &str, value: u64) -> Result<i64> {
    i64::try_from(value).map_err(|_| Error::invalid(format!("{what} {value} is larger than {}", i64::MAX)))
}

/// A stored retry count (the tables' CHECK keeps it non-negative).
pub(crate) fn retry_count(value: i64) -> Result<u32> {
    unsigned("retry_count", value).map(|n| u32::try_from(n).unwrap_or(u32::MAX))
}

/// An event row as selected by every read of every backend (see `EVENT_COLUMNS`).
#[derive(sqlx::FromRow)]
pub(crate) struct EventRow {
    event_number: i64,
    position: i64,
    event_id: Uuid,
    stream_uuid: String,
    stream_version: i64,
    event_type: String,
    content_type: String,
    correlation_id: Option<Uuid>,
    causation_id: Option<Uuid>,
    data: Vec<u8>,
    metadata: Option<Vec<u8>>,
    created_at: DateTime<Utc>,
}

/// The columns of an event, given the alias `e` for `events`; the caller supplies
/// `event_number`.
pub(crate) const EVENT_COLUMNS: &str = "e.position, e.event_id, e.stream_uuid, e.stream_version, e.event_type, \
     e.content_type, e.correlation_id, e.causation_id, e.data, e.metadata, e.created_at";

impl TryFrom<EventRow> for RecordedEvent {
    type Error = Error;
    fn try_from(row: EventRow) -> Result<Self> {
        Ok(RecordedEvent {
            event_number: unsigned("event_number", row.event_number)?,
            event_id: row.event_id,
            stream_uuid: row.stream_uuid,
            stream_version: unsigned("stream_version", row.stream_version)?,
            global_position: unsigned("position", row.position)?,
            event_type: row.event_type,
            correlation_id: row.correlation_id,
            causation_id: row.causation_id,
            data: row.data,
            metadata: row.metadata,
            content_type: row.content_type,
            created_at: row.created_at,
        })
    }
}

pub(crate) fn into_events(rows: Vec<EventRow>) -> Result<Vec<RecordedEvent>> {
    rows.into_iter().map(RecordedEvent::try_from).collect()
}

/// A stream row: id, name, version, created, deleted.
pub(crate) type InfoRow = (i64, String, i64, DateTime<Utc>, Option<DateTime<Utc>>);

/// A stream row of a page: [`InfoRow`] and the count of all matching rows.
pub(crate) type PageRow = (i64, String, i64, DateTime<Utc>, Option<DateTime<Utc>>, i64);

pub(crate) fn into_info((id, uuid, version, created_at, deleted_at): InfoRow) -> Result<StreamInfo> {
    Ok(StreamInfo {
        stream_uuid: uuid,
        stream_id: unsigned("stream_id", id)?,
        stream_version: unsigned("stream_version", version)?,
        created_at,
        deleted_at,
        status: if deleted_at.is_some() { StreamStatus::Deleted } else { StreamStatus::Created },
        metadata: None,
    })
}

/// A snapshot row: source, version, type, content type, data, metadata, created.
pub(crate) type SnapshotRow = (String, i64, String, String, Vec<u8>, Option<Vec<u8>>, DateTime<Utc>);

pub(crate) fn into_snapshot(row: SnapshotRow) -> Result<SnapshotData> {
    let (source_uuid, version, source_type, content_type, data, metadata, created_at) = row;
    Ok(SnapshotData {
        source_uuid,
        source_version: unsigned("source_version", version)?,
        source_type,
        content_type,
        data,
        metadata,
        created_at,
    })
}

/// Escapes `%`, `_` and `\` so a search matches them literally (with `ESCAPE '\'`).
pub(crate) fn escape_like(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A `subscription_nacks` row as an owner loads it: event number, retry count, parked, replay
/// requested.
pub(crate) type NackRow = (i64, i64, bool, bool);

pub(crate) fn into_nacks(rows: Vec<NackRow>) -> Result<Vec<StoredNack>> {
    rows.into_iter()
        .map(|(number, retries, parked, replay_requested)| {
            Ok(StoredNack {
                event_number: unsigned("event_number", number)?,
                retry_count: retry_count(retries)?,
                parked,
                replay_requested,
            })
        })
        .collect()
}

/// A parked event's row: event number, retry count, reason, parked at, replay requested.
pub(crate) type ParkedRow = (i64, i64, String, DateTime<Utc>, bool);

pub(crate) fn into_parked(rows: Vec<ParkedRow>) -> Result<Vec<ParkedEvent>> {
    rows.into_iter()
        .map(|(number, retries, reason, parked_at, replay_requested)| {
            Ok(ParkedEvent {
                event_number: unsigned("event_number", number)?,
                retry_count: retry_count(retries)?,
                reason,
                parked_at,
                replay_requested,
            })
        })
        .collect()
}

/// A subscription as listed: stream, name, checkpoint, its stream's head, created, updated.
pub(crate) type SubscriptionListRow = (String, String, i64, i64, DateTime<Utc>, DateTime<Utc>);

/// A listed subscription with its owner (process id and application name), if one runs it.
pub(crate) fn into_subscription_info(
    (stream, name, last_seen, head, created_at, updated_at): SubscriptionListRow,
    owner_pid: Option<i32>,
    owner_application: Option<String>,
) -> Result<SubscriptionInfo> {
    let checkpoint = unsigned("last_seen", last_seen)?;
    let head = unsigned("stream_version", head)?;
    Ok(SubscriptionInfo {
        stream,
        name,
        checkpoint,
        head,
        lag: head.saturating_sub(checkpoint),
        owner_pid,
        owner_application,
        created_at,
        updated_at,
    })
}
