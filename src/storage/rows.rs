//! Rows as every backend selects them, and their conversions to the API's types: corrupt
//! values (a negative count, a bad UUID) become errors here, not panics.

use std::time::Duration;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::event::{RecordedEvent, StreamInfo, StreamStatus};
use crate::index::Indexed;
use crate::metadata::StreamMetadata;
use crate::snapshot::SnapshotData;
use crate::storage::StoredNack;
use crate::storage::SubscriptionRow;
use crate::storage::retention::Retention;
use crate::subscription::{ParkedEvent, SubscriptionInfo, stored};

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
    category_number: Option<i64>,
    type_number: Option<i64>,
}

/// The columns of an event, given the alias `e` for `events`; the caller supplies
/// `event_number`.
pub(crate) const EVENT_COLUMNS: &str = "e.position, e.event_id, e.stream_uuid, e.stream_version, e.event_type, \
     e.content_type, e.correlation_id, e.causation_id, e.data, e.metadata, e.created_at, e.category_number, \
     e.type_number";

/// The key and number columns of an index (`$ce-…`: the category; `$et-…`: the event type).
pub(crate) fn index_columns(indexed: Indexed<'_>) -> (&'static str, &'static str) {
    match indexed {
        Indexed::Category(_) => ("category", "category_number"),
        Indexed::EventType(_) => ("event_type", "type_number"),
    }
}

/// An event of `$all` with its numbers in the category and event-type indexes, as the live path
/// routes it to the listeners of `$ce-…` and `$et-…` streams.
#[derive(Debug, Clone)]
pub(crate) struct IndexedEvent {
    pub(crate) event: RecordedEvent,
    /// Its number in its category's index (`None`: its stream has no category).
    pub(crate) category_number: Option<u64>,
    /// Its number in its type's index.
    pub(crate) type_number: Option<u64>,
}

impl TryFrom<EventRow> for IndexedEvent {
    type Error = Error;
    fn try_from(mut row: EventRow) -> Result<Self> {
        let category_number = row.category_number.take().map(|n| unsigned("category_number", n)).transpose()?;
        let type_number = row.type_number.take().map(|n| unsigned("type_number", n)).transpose()?;
        Ok(IndexedEvent { event: RecordedEvent::try_from(row)?, category_number, type_number })
    }
}

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

/// A stream as a read finds it: its id, whether it is a tombstone, its version and what hides
/// its entries.
#[derive(sqlx::FromRow)]
pub(crate) struct StreamRow {
    pub(crate) id: i64,
    pub(crate) deleted: bool,
    pub(crate) version: i64,
    #[sqlx(flatten)]
    pub(crate) retention: Retention,
}

/// Selects the [`StreamRow`] of the stream named by the parameter `$param` (`"$1"`, `"?1"`).
macro_rules! find_stream_sql {
    ($param:literal) => {
        concat!(
            "SELECT s.stream_id AS id, s.deleted_at IS NOT NULL AS deleted, s.stream_version AS version, ",
            "s.deleted_version, m.max_count, m.max_age_ms, m.truncate_before ",
            "FROM streams s LEFT JOIN stream_metadata m ON m.stream_uuid = s.stream_uuid WHERE s.stream_uuid = ",
            $param
        )
    };
}
pub(crate) use find_stream_sql;

/// A stream's id, name, version and retention, as the live path and a scavenge look them up.
#[derive(sqlx::FromRow)]
pub(crate) struct RetentionRow {
    pub(crate) id: i64,
    pub(crate) stream_uuid: String,
    pub(crate) version: i64,
    #[sqlx(flatten)]
    pub(crate) retention: Retention,
}

/// The columns of a [`RetentionRow`], from [`INFO_FROM`].
pub(crate) const RETENTION_COLUMNS: &str = "s.stream_id AS id, s.stream_uuid, s.stream_version AS version, \
     s.deleted_version, m.max_count, m.max_age_ms, m.truncate_before";

/// Streams (of [`INFO_FROM`]) whose retention can hide entries: a recreatable delete, or
/// metadata with a rule.
pub(crate) const HIDES_ANYTHING: &str = "(s.deleted_version > 0 OR m.max_count IS NOT NULL \
     OR m.max_age_ms IS NOT NULL OR m.truncate_before > 1)";

/// A stream row with its metadata, as `stream_info` and a page of streams select it (see
/// [`INFO_COLUMNS`]).
#[derive(sqlx::FromRow)]
pub(crate) struct InfoRow {
    stream_id: i64,
    stream_uuid: String,
    stream_version: i64,
    created_at: DateTime<Utc>,
    deleted_at: Option<DateTime<Utc>>,
    deleted_version: i64,
    #[sqlx(flatten)]
    metadata: MetadataRow,
}

/// The columns of an [`InfoRow`], from `streams s LEFT JOIN stream_metadata m` (see
/// [`INFO_FROM`]).
pub(crate) const INFO_COLUMNS: &str = "s.stream_id, s.stream_uuid, s.stream_version, s.created_at, s.deleted_at, \
     s.deleted_version, m.metadata_version, m.max_count, m.max_age_ms, m.truncate_before, m.custom";

/// Streams with their metadata, as every backend joins them.
pub(crate) const INFO_FROM: &str = "streams s LEFT JOIN stream_metadata m ON m.stream_uuid = s.stream_uuid";

/// A stream row of a page: [`InfoRow`] and the count of all matching rows.
#[derive(sqlx::FromRow)]
pub(crate) struct PageRow {
    #[sqlx(flatten)]
    pub(crate) info: InfoRow,
    pub(crate) total: i64,
}

impl InfoRow {
    /// Whether a recreatable delete emptied the stream (reads say it is not found).
    pub(crate) fn reads_as_absent(&self) -> bool {
        self.deleted_version > 0 && self.stream_version <= self.deleted_version
    }
}

pub(crate) fn into_info(row: InfoRow) -> Result<StreamInfo> {
    let recreatably_deleted = row.reads_as_absent();
    Ok(StreamInfo {
        stream_uuid: row.stream_uuid,
        stream_id: unsigned("stream_id", row.stream_id)?,
        stream_version: unsigned("stream_version", row.stream_version)?,
        created_at: row.created_at,
        status: if row.deleted_at.is_some() || recreatably_deleted {
            StreamStatus::Deleted
        } else {
            StreamStatus::Created
        },
        deleted_at: row.deleted_at,
        metadata: row.metadata.into_metadata()?,
    })
}

/// A `stream_metadata` row (all `None` when a join found none).
#[derive(sqlx::FromRow)]
pub(crate) struct MetadataRow {
    metadata_version: Option<i64>,
    max_count: Option<i64>,
    max_age_ms: Option<i64>,
    truncate_before: Option<i64>,
    custom: Option<String>,
}

/// The columns of a [`MetadataRow`] in `stream_metadata`.
pub(crate) const METADATA_COLUMNS: &str = "metadata_version, max_count, max_age_ms, truncate_before, custom";

impl MetadataRow {
    /// The metadata and its version; `None` if the stream has none.
    pub(crate) fn into_metadata(self) -> Result<Option<(u64, StreamMetadata)>> {
        let Some(version) = self.metadata_version else { return Ok(None) };
        let corrupt = |column: &str, value: &str| {
            Error::Database(sqlx::Error::Decode(format!("corrupt stream metadata: {column} = {value}").into()))
        };
        let custom = self
            .custom
            .map(|text| serde_json::from_str(&text).map_err(|e| corrupt("custom", &format!("{text} ({e})"))))
            .transpose()?;
        let metadata = StreamMetadata {
            max_count: self.max_count.map(|v| unsigned("max_count", v)).transpose()?,
            max_age: self.max_age_ms.map(|ms| unsigned("max_age_ms", ms).map(Duration::from_millis)).transpose()?,
            truncate_before: self.truncate_before.map(|v| unsigned("truncate_before", v)).transpose()?,
            custom,
        };
        Ok(Some((unsigned("metadata_version", version)?, metadata)))
    }
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

/// A subscription's row: id, checkpoint, stored settings (JSON text).
pub(crate) type SubscriptionRowRow = (i32, i64, Option<String>);

/// A subscription's row, with its settings read back (see `subscription/stored.rs`).
pub(crate) fn into_subscription_row((id, last_seen, settings): SubscriptionRowRow) -> Result<SubscriptionRow> {
    Ok(SubscriptionRow {
        id,
        last_seen: unsigned("last_seen", last_seen)?,
        settings: settings.as_deref().and_then(stored::from_json),
    })
}

/// A subscription as listed: stream, name, checkpoint, its stream's head, created, updated,
/// stored settings (JSON text), parked events.
pub(crate) type SubscriptionListRow = (String, String, i64, i64, DateTime<Utc>, DateTime<Utc>, Option<String>, i64);

/// A listed subscription with its owner (process id and application name), if one runs it.
pub(crate) fn into_subscription_info(
    (stream, name, last_seen, head, created_at, updated_at, settings, parked): SubscriptionListRow,
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
        settings: settings.as_deref().and_then(stored::from_json),
        parked: unsigned("parked", parked)?,
        live: None,
    })
}
