//! Stream metadata (`stream_info`, pagination), deletes and snapshots. Deletes and snapshot
//! writes take their turn on the write connection.

use chrono::Utc;
use sqlx::{Connection, SqliteConnection};

use super::SqliteStorage;
use crate::error::{Error, Result};
use crate::event::{ALL, DeleteMode, ExpectedVersion, StreamInfo};
use crate::page::{Page, PageRequest};
use crate::snapshot::SnapshotData;
use crate::storage::{InfoRow, PageRow, SnapshotRow, escape_like, into_info, into_snapshot, signed, unsigned};

const STREAM_INFO: &str =
    "SELECT stream_id, stream_uuid, stream_version, created_at, deleted_at FROM streams WHERE stream_uuid = ?1";

const FIND_STREAM: &str =
    "SELECT stream_id, stream_version, deleted_at IS NOT NULL FROM streams WHERE stream_uuid = ?1";

const SOFT_DELETE: &str = "UPDATE streams SET deleted_at = ?2 WHERE stream_id = ?1";

/// Hard delete: links pointing at the stream's events, the stream's own links, its events, its
/// row. The triggers that keep events immutable let these DELETEs through only while the
/// transaction holds a row in `hard_delete_permits`, which it takes out again before committing.
const PERMIT_HARD_DELETE: &str = "INSERT INTO hard_delete_permits (permit) VALUES (1)";
const END_HARD_DELETE_PERMIT: &str = "DELETE FROM hard_delete_permits";
const DELETE_LINKS_TO_STREAM: &str =
    "DELETE FROM links WHERE position IN (SELECT position FROM events WHERE stream_id = ?1)";
const DELETE_LINKS_OF_STREAM: &str = "DELETE FROM links WHERE stream_id = ?1";
const DELETE_EVENTS_OF_STREAM: &str = "DELETE FROM events WHERE stream_id = ?1";
const DELETE_STREAM_ROW: &str = "DELETE FROM streams WHERE stream_id = ?1";

/// The streams a page request lists: never `$all`; `?1` an escaped search text or NULL, `?2`
/// whether soft-deleted streams are included. SQLite's LIKE ignores ASCII case, like ILIKE.
const LISTED_STREAMS: &str =
    "stream_id <> 0 AND (?1 IS NULL OR stream_uuid LIKE '%' || ?1 || '%' ESCAPE '\\') AND (?2 OR deleted_at IS NULL)";

const UPSERT_SNAPSHOT: &str = "INSERT INTO snapshots \
     (source_uuid, source_version, source_type, content_type, data, metadata, created_at) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
     ON CONFLICT (source_uuid) DO UPDATE SET source_version = excluded.source_version, \
     source_type = excluded.source_type, content_type = excluded.content_type, data = excluded.data, \
     metadata = excluded.metadata, created_at = excluded.created_at";

const SELECT_SNAPSHOT: &str = "SELECT source_uuid, source_version, source_type, content_type, data, metadata, \
     created_at FROM snapshots WHERE source_uuid = ?1";

const DELETE_SNAPSHOT: &str = "DELETE FROM snapshots WHERE source_uuid = ?1";

impl SqliteStorage {
    /// Metadata of a stream (or of `$all`); `StreamNotFound` if it has none.
    pub async fn stream_info(&self, stream: &str) -> Result<StreamInfo> {
        let row: Option<InfoRow> = sqlx::query_as(STREAM_INFO).bind(stream).fetch_optional(&self.inner.pool).await?;
        row.map(into_info).unwrap_or(Err(Error::StreamNotFound))
    }

    /// One page of streams (never `$all`).
    pub async fn paginate_streams(&self, request: &PageRequest) -> Result<Page<StreamInfo>> {
        let sql = format!(
            "SELECT stream_id, stream_uuid, stream_version, created_at, deleted_at, count(*) OVER () \
             FROM streams WHERE {LISTED_STREAMS} ORDER BY {} LIMIT ?3 OFFSET ?4",
            request.order_by()
        );
        let search = request.search.as_deref().map(escape_like);
        let rows: Vec<PageRow> = sqlx::query_as(&sql)
            .bind(&search)
            .bind(request.include_deleted)
            .bind(signed("page_size", request.page_size)?)
            .bind(signed("page offset", request.offset())?)
            .fetch_all(&self.inner.pool)
            .await?;
        let total_entries = match rows.first() {
            Some(row) => unsigned("count", row.5)?,
            // An empty page past the end still reports the real total.
            None if request.page > 1 => {
                let count: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM streams WHERE {LISTED_STREAMS}"))
                    .bind(&search)
                    .bind(request.include_deleted)
                    .fetch_one(&self.inner.pool)
                    .await?;
                unsigned("count", count)?
            }
            None => 0,
        };
        let entries =
            rows.into_iter().map(|(a, b, c, d, e, _)| into_info((a, b, c, d, e))).collect::<Result<Vec<_>>>()?;
        Ok(Page::of(request, entries, total_entries))
    }

    /// Deletes a stream after checking `expected`; nothing else writes meanwhile.
    pub async fn delete_stream(&self, stream: &str, expected: ExpectedVersion, mode: DeleteMode) -> Result<()> {
        if stream == ALL {
            return Err(Error::CannotDeleteAllStream);
        }
        if mode == DeleteMode::Hard && !self.inner.hard_deletes {
            return Err(Error::NotSupported);
        }
        let mut conn = self.write_connection().await?;
        let mut tx = Connection::begin(&mut *conn).await?;
        match delete_in(&mut tx, stream, expected, mode).await {
            Ok(()) => Ok(tx.commit().await?),
            Err(e) => {
                tx.rollback().await.ok();
                Err(e)
            }
        }
    }

    /// Records (or replaces) the snapshot of `snapshot.source_uuid`.
    pub async fn record_snapshot(&self, snapshot: &SnapshotData) -> Result<()> {
        let mut conn = self.write_connection().await?;
        sqlx::query(UPSERT_SNAPSHOT)
            .bind(&snapshot.source_uuid)
            .bind(signed("source_version", snapshot.source_version)?)
            .bind(&snapshot.source_type)
            .bind(&snapshot.content_type)
            .bind(&snapshot.data)
            .bind(&snapshot.metadata)
            .bind(snapshot.created_at)
            .execute(&mut *conn)
            .await?;
        Ok(())
    }

    /// Reads the snapshot of a source: `SnapshotNotFound` if there is none.
    pub async fn read_snapshot(&self, source_uuid: &str) -> Result<SnapshotData> {
        let row: Option<SnapshotRow> =
            sqlx::query_as(SELECT_SNAPSHOT).bind(source_uuid).fetch_optional(&self.inner.pool).await?;
        into_snapshot(row.ok_or(Error::SnapshotNotFound)?)
    }

    /// Deletes the snapshot of a source (no error if there is none).
    pub async fn delete_snapshot(&self, source_uuid: &str) -> Result<()> {
        let mut conn = self.write_connection().await?;
        sqlx::query(DELETE_SNAPSHOT).bind(source_uuid).execute(&mut *conn).await?;
        Ok(())
    }
}

async fn delete_in(
    conn: &mut SqliteConnection,
    stream: &str,
    expected: ExpectedVersion,
    mode: DeleteMode,
) -> Result<()> {
    let row: Option<(i64, i64, bool)> = sqlx::query_as(FIND_STREAM).bind(stream).fetch_optional(&mut *conn).await?;
    let Some((id, version, deleted)) = row else {
        return Err(Error::StreamNotFound);
    };
    // A soft-deleted stream can still be hard-deleted (to purge it); deleting it softly
    // twice is an error like any other use of a deleted stream.
    if !(deleted && mode == DeleteMode::Hard) {
        expected.check(Some(unsigned("stream_version", version)?), deleted)?;
    }
    match mode {
        DeleteMode::Soft => {
            sqlx::query(SOFT_DELETE).bind(id).bind(Utc::now()).execute(&mut *conn).await?;
        }
        DeleteMode::Hard => {
            sqlx::query(PERMIT_HARD_DELETE).execute(&mut *conn).await?;
            for statement in
                [DELETE_LINKS_TO_STREAM, DELETE_LINKS_OF_STREAM, DELETE_EVENTS_OF_STREAM, DELETE_STREAM_ROW]
            {
                sqlx::query(statement).bind(id).execute(&mut *conn).await?;
            }
            sqlx::query(END_HARD_DELETE_PERMIT).execute(&mut *conn).await?;
        }
    }
    Ok(())
}
