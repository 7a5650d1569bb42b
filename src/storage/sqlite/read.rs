//! Reads of one stream (its own events and its links, in version order) and of `$all` (by
//! global position): the rows, on read-only connections; what a read gives is the contract's
//! (`backend::Reads`). `$all` is gap-free up to the committed head: one connection writes, and
//! a reader sees whole transactions only.

use super::SqliteStorage;
use super::append::json;
use crate::error::Result;
use crate::filter::{EventFilter, FilterOn, Matcher};
use crate::index::Indexed;
use crate::storage::backend::Reads;
use crate::storage::retention::Window;
use crate::storage::{Direction, EVENT_COLUMNS, EventRow, StreamRow, find_stream_sql, index_columns};

const FIND_STREAM: &str = find_stream_sql!("?1");

/// Both halves are index range scans (`(stream_id, stream_version)` and the links' primary
/// key); the outer ORDER BY merges them. The retention window: versions from `?4` on, committed
/// at or after `?5` (when not NULL; times are stored as RFC 3339 text in UTC, which `julianday`
/// compares whatever their precision).
fn stream_sql(direction: Direction) -> String {
    let (cmp, order) = direction.sql();
    format!(
        "SELECT * FROM ( \
            SELECT * FROM (SELECT e.stream_version AS event_number, {EVENT_COLUMNS} FROM events e \
                WHERE e.stream_id = ?1 AND e.stream_version {cmp} ?2 AND e.stream_version >= ?4 \
                  AND (?5 IS NULL OR julianday(e.created_at) >= julianday(?5)) \
                ORDER BY e.stream_version {order} LIMIT ?3) \
            UNION ALL \
            SELECT * FROM (SELECT l.link_version AS event_number, {EVENT_COLUMNS} FROM links l \
                JOIN events e ON e.position = l.position \
                WHERE l.stream_id = ?1 AND l.link_version {cmp} ?2 AND l.link_version >= ?4 \
                  AND (?5 IS NULL OR julianday(l.created_at) >= julianday(?5)) \
                ORDER BY l.link_version {order} LIMIT ?3) \
         ) ORDER BY event_number {order} LIMIT ?3"
    )
}

fn all_sql(direction: Direction) -> String {
    let (cmp, order) = direction.sql();
    format!(
        "SELECT e.position AS event_number, {EVENT_COLUMNS} FROM events e \
         WHERE e.position {cmp} ?1 ORDER BY e.position {order} LIMIT ?2"
    )
}

/// Entries of one stream by version (its own events and its links), within the window `?3`,
/// `?4` (as in [`stream_sql`]).
fn stream_numbers_sql() -> String {
    format!(
        "SELECT * FROM ( \
            SELECT e.stream_version AS event_number, {EVENT_COLUMNS} FROM events e \
            WHERE e.stream_id = ?1 AND e.stream_version IN (SELECT value FROM json_each(?2)) \
              AND e.stream_version >= ?3 AND (?4 IS NULL OR julianday(e.created_at) >= julianday(?4)) \
            UNION ALL \
            SELECT l.link_version AS event_number, {EVENT_COLUMNS} FROM links l \
            JOIN events e ON e.position = l.position \
            WHERE l.stream_id = ?1 AND l.link_version IN (SELECT value FROM json_each(?2)) \
              AND l.link_version >= ?3 AND (?4 IS NULL OR julianday(l.created_at) >= julianday(?4)) \
         ) ORDER BY event_number"
    )
}

fn all_numbers_sql() -> String {
    format!(
        "SELECT e.position AS event_number, {EVENT_COLUMNS} FROM events e \
         WHERE e.position IN (SELECT value FROM json_each(?1)) ORDER BY e.position"
    )
}

/// Events of one index by number: `?1` its key, from `?2` in the direction, at most `?3`,
/// within the window `?4`, `?5`. An index range scan of its unique index.
fn index_sql(indexed: Indexed<'_>, direction: Direction) -> String {
    let (cmp, order) = direction.sql();
    let (key, number) = index_columns(indexed);
    format!(
        "SELECT e.{number} AS event_number, {EVENT_COLUMNS} FROM events e \
         WHERE e.{key} = ?1 AND e.{number} {cmp} ?2 AND e.{number} >= ?4 AND (?5 IS NULL OR julianday(e.created_at) >= julianday(?5)) \
         ORDER BY e.{number} {order} LIMIT ?3"
    )
}

/// Events of one index with the numbers `?2` (its key `?1`), within the window of the third and fourth parameters.
fn index_numbers_sql(indexed: Indexed<'_>) -> String {
    let (key, number) = index_columns(indexed);
    format!(
        "SELECT e.{number} AS event_number, {EVENT_COLUMNS} FROM events e \
         WHERE e.{key} = ?1 AND e.{number} IN (SELECT value FROM json_each(?2)) AND e.{number} >= ?3 AND (?4 IS NULL OR julianday(e.created_at) >= julianday(?4)) \
         ORDER BY e.{number}"
    )
}

/// The condition `filter` sets on the event `e`, with its value as the parameter `?4`: a
/// prefix test against a JSON array of prefixes (compared byte for byte: SQLite's LIKE would
/// ignore case), or a regular expression (`REGEXP`, Rust's `regex`, registered on every
/// connection).
fn filter_sql(filter: &EventFilter) -> String {
    let (on, matcher, exclude) = filter.parts();
    let column = match on {
        FilterOn::Stream => "e.stream_uuid",
        FilterOn::EventType => "e.event_type",
    };
    let matched = match matcher {
        Matcher::Prefixes(_) => {
            format!("EXISTS (SELECT 1 FROM json_each(?4) p WHERE substr({column}, 1, length(p.value)) = p.value)")
        }
        Matcher::Regex(_) => format!("{column} REGEXP ?4"),
    };
    if exclude { format!("NOT ({matched})") } else { matched }
}

/// Events of `$all` at positions `?1..=?2` that pass a filter (see [`filter_sql`]), at most
/// `?3`: a range scan of the primary key, the filter applied in the database.
fn filtered_sql(filter: &EventFilter, direction: Direction) -> String {
    let (_, order) = direction.sql();
    let condition = filter_sql(filter);
    format!(
        "SELECT e.position AS event_number, {EVENT_COLUMNS} FROM events e \
         WHERE e.position >= ?1 AND e.position <= ?2 AND {condition} ORDER BY e.position {order} LIMIT ?3"
    )
}

impl Reads for SqliteStorage {
    async fn find_stream(&self, stream: &str) -> Result<Option<StreamRow>> {
        Ok(sqlx::query_as(FIND_STREAM).bind(stream).fetch_optional(&self.inner.pool).await?)
    }

    async fn stream_rows(
        &self,
        id: i64,
        from: i64,
        count: i64,
        direction: Direction,
        window: Window,
    ) -> Result<Vec<EventRow>> {
        Ok(sqlx::query_as(&stream_sql(direction))
            .bind(id)
            .bind(from)
            .bind(count)
            .bind(window.floor)
            .bind(window.cutoff)
            .fetch_all(&self.inner.pool)
            .await?)
    }

    async fn filtered_rows(
        &self,
        filter: &EventFilter,
        low: i64,
        high: i64,
        count: i64,
        direction: Direction,
    ) -> Result<Vec<EventRow>> {
        let sql = filtered_sql(filter, direction);
        let value = match filter.parts().1 {
            Matcher::Prefixes(prefixes) => json(prefixes),
            Matcher::Regex(pattern) => pattern.clone(),
        };
        Ok(sqlx::query_as(&sql).bind(low).bind(high).bind(count).bind(value).fetch_all(&self.inner.pool).await?)
    }

    async fn all_rows(&self, from: i64, count: i64, direction: Direction) -> Result<Vec<EventRow>> {
        Ok(sqlx::query_as(&all_sql(direction)).bind(from).bind(count).fetch_all(&self.inner.pool).await?)
    }

    async fn index_rows(
        &self,
        indexed: Indexed<'_>,
        from: i64,
        count: i64,
        direction: Direction,
        window: Window,
    ) -> Result<Vec<EventRow>> {
        Ok(sqlx::query_as(&index_sql(indexed, direction))
            .bind(indexed.key())
            .bind(from)
            .bind(count)
            .bind(window.floor)
            .bind(window.cutoff)
            .fetch_all(&self.inner.pool)
            .await?)
    }

    async fn index_rows_at(&self, indexed: Indexed<'_>, numbers: &[i64], window: Window) -> Result<Vec<EventRow>> {
        Ok(sqlx::query_as(&index_numbers_sql(indexed))
            .bind(indexed.key())
            .bind(json(numbers))
            .bind(window.floor)
            .bind(window.cutoff)
            .fetch_all(&self.inner.pool)
            .await?)
    }

    async fn stream_rows_at(&self, id: i64, numbers: &[i64], window: Window) -> Result<Vec<EventRow>> {
        Ok(sqlx::query_as(&stream_numbers_sql())
            .bind(id)
            .bind(json(numbers))
            .bind(window.floor)
            .bind(window.cutoff)
            .fetch_all(&self.inner.pool)
            .await?)
    }

    async fn all_rows_at(&self, numbers: &[i64]) -> Result<Vec<EventRow>> {
        Ok(sqlx::query_as(&all_numbers_sql()).bind(json(numbers)).fetch_all(&self.inner.pool).await?)
    }
}
