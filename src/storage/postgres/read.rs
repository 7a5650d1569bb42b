//! Reads of one stream (its own events and its links, in version order) and of `$all` (by
//! global position). Reads need no lock: `$all` is gap-free up to the committed head because
//! positions are handed out under the `$all` row lock held until commit.

use super::{EVENT_COLUMNS, EventRow, PgStorage, into_events, signed};
use crate::error::{Error, Result};
use crate::event::RecordedEvent;
use crate::storage::Direction;

const FIND_STREAM: &str = "SELECT stream_id, deleted_at IS NOT NULL FROM streams WHERE stream_uuid = $1";

fn stream_sql(direction: Direction) -> String {
    let (cmp, order) = match direction {
        Direction::Forward => (">=", "ASC"),
        Direction::Backward => ("<=", "DESC"),
    };
    // Both halves are index range scans ((stream_id, stream_version) and the links primary
    // key); the outer ORDER BY merges them. Linked events are fetched by a LATERAL lookup so the
    // plan stays a primary-key probe per link (a hash join would read all of `events`).
    format!(
        "SELECT * FROM ( \
            (SELECT e.stream_version AS event_number, {EVENT_COLUMNS} FROM events e \
             WHERE e.stream_id = $1 AND e.stream_version {cmp} $2 ORDER BY e.stream_version {order} LIMIT $3) \
            UNION ALL \
            (SELECT l.link_version AS event_number, {EVENT_COLUMNS} FROM links l \
             CROSS JOIN LATERAL (SELECT * FROM events WHERE position = l.position) e \
             WHERE l.stream_id = $1 AND l.link_version {cmp} $2 ORDER BY l.link_version {order} LIMIT $3) \
         ) entries ORDER BY event_number {order} LIMIT $3"
    )
}

fn all_sql(direction: Direction) -> String {
    let (cmp, order) = match direction {
        Direction::Forward => (">=", "ASC"),
        Direction::Backward => ("<=", "DESC"),
    };
    format!(
        "SELECT e.position AS event_number, {EVENT_COLUMNS} FROM events e \
         WHERE e.position {cmp} $1 ORDER BY e.position {order} LIMIT $2"
    )
}

/// Entries of one stream by version (its own events and its links).
fn stream_numbers_sql() -> String {
    format!(
        "SELECT * FROM ( \
            SELECT e.stream_version AS event_number, {EVENT_COLUMNS} FROM events e \
            WHERE e.stream_id = $1 AND e.stream_version = ANY($2) \
            UNION ALL \
            SELECT l.link_version AS event_number, {EVENT_COLUMNS} FROM links l \
            CROSS JOIN LATERAL (SELECT * FROM events WHERE position = l.position) e \
            WHERE l.stream_id = $1 AND l.link_version = ANY($2) \
         ) entries ORDER BY event_number"
    )
}

fn all_numbers_sql() -> String {
    format!(
        "SELECT e.position AS event_number, {EVENT_COLUMNS} FROM events e WHERE e.position = ANY($1) ORDER BY e.position"
    )
}

impl PgStorage {
    /// The internal id of a live stream: `StreamNotFound` / `StreamDeleted` otherwise.
    pub(crate) async fn live_stream_id(&self, stream: &str) -> Result<i64> {
        let row: Option<(i64, bool)> = sqlx::query_as(FIND_STREAM).bind(stream).fetch_optional(&self.pool).await?;
        match row {
            None => Err(Error::StreamNotFound),
            Some((_, true)) => Err(Error::StreamDeleted),
            Some((id, false)) => Ok(id),
        }
    }

    /// Up to `count` entries of `stream` from version `from` (inclusive) in `direction`.
    pub async fn read_stream(
        &self,
        stream: &str,
        from: u64,
        count: u64,
        direction: Direction,
    ) -> Result<Vec<RecordedEvent>> {
        let id = self.live_stream_id(stream).await?;
        if count == 0 {
            return Ok(Vec::new());
        }
        let rows: Vec<EventRow> = sqlx::query_as(&stream_sql(direction))
            .bind(id)
            .bind(signed("version", from)?)
            .bind(signed("count", count)?)
            .fetch_all(&self.pool)
            .await?;
        into_events(rows)
    }

    /// Up to `count` events of `$all` from global position `from` (inclusive) in `direction`.
    pub async fn read_all(&self, from: u64, count: u64, direction: Direction) -> Result<Vec<RecordedEvent>> {
        if count == 0 {
            return Ok(Vec::new());
        }
        let rows: Vec<EventRow> = sqlx::query_as(&all_sql(direction))
            .bind(signed("position", from)?)
            .bind(signed("count", count)?)
            .fetch_all(&self.pool)
            .await?;
        into_events(rows)
    }

    /// The entries of `stream` (or `$all`) with these event numbers, in order; numbers with no
    /// entry (hard-deleted, or a deleted stream) are left out.
    pub async fn read_numbers(&self, stream: &str, numbers: &[u64]) -> Result<Vec<RecordedEvent>> {
        let numbers = numbers.iter().map(|n| signed("event number", *n)).collect::<Result<Vec<i64>>>()?;
        let rows: Vec<EventRow> = if stream == crate::event::ALL {
            sqlx::query_as(&all_numbers_sql()).bind(numbers).fetch_all(&self.pool).await?
        } else {
            let id = match self.live_stream_id(stream).await {
                Ok(id) => id,
                Err(Error::StreamNotFound | Error::StreamDeleted) => return Ok(Vec::new()),
                Err(e) => return Err(e),
            };
            sqlx::query_as(&stream_numbers_sql()).bind(id).bind(numbers).fetch_all(&self.pool).await?
        };
        into_events(rows)
    }
}
