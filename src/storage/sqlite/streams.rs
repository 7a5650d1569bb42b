//! What the store knows of streams (`stream_info`, pagination) and deletes. Deletes take their turn on the
//! write connection, so nothing else writes while one checks and deletes.

use chrono::Utc;
use sqlx::{Connection, SqliteConnection};

use super::SqliteStorage;
use crate::error::Result;
use crate::event::{DeleteMode, ExpectedVersion};
use crate::page::PageRequest;
use crate::storage::backend::{Streams, may_delete, stream_to_delete};
use crate::storage::{INFO_COLUMNS, INFO_FROM, InfoRow, PageRow, Wake, commit_or_rollback, signed, unsigned};

const FIND_STREAM: &str =
    "SELECT stream_id, stream_version, deleted_at IS NOT NULL, deleted_version FROM streams WHERE stream_uuid = ?1";

const SOFT_DELETE: &str = "UPDATE streams SET deleted_at = ?2 WHERE stream_id = ?1";

/// A recreatable delete: every entry so far is gone from the stream (a scavenge removes the
/// events), which reads as not found until its next append.
const RECREATABLE_DELETE: &str = "UPDATE streams SET deleted_version = stream_version WHERE stream_id = ?1";

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
/// The name is free again, as if the stream never existed: its metadata goes too.
const DELETE_METADATA: &str = "DELETE FROM stream_metadata WHERE stream_uuid = ?1";

/// The streams a page request lists: the application's (never `$all`, nor the `$ce-`/`$et-`
/// indexes); `?1` an escaped search text or NULL, `?2`
/// whether deleted streams are included (soft-deleted, or emptied by a recreatable delete).
/// SQLite's LIKE ignores ASCII case, like ILIKE.
const LISTED_STREAMS: &str = "s.stream_id <> 0 AND s.stream_uuid NOT LIKE '$ce-%' AND s.stream_uuid NOT LIKE '$et-%' AND (?1 IS NULL OR s.stream_uuid LIKE '%' || ?1 || '%' ESCAPE '\\') \
     AND (?2 OR (s.deleted_at IS NULL AND (s.deleted_version = 0 OR s.stream_version > s.deleted_version)))";

impl Streams for SqliteStorage {
    async fn info_row(&self, stream: &str) -> Result<Option<InfoRow>> {
        let sql = format!("SELECT {INFO_COLUMNS} FROM {INFO_FROM} WHERE s.stream_uuid = ?1");
        Ok(sqlx::query_as(&sql).bind(stream).fetch_optional(&self.inner.pool).await?)
    }

    async fn page_rows(&self, request: &PageRequest, search: Option<&str>) -> Result<Vec<PageRow>> {
        let sql = format!(
            "SELECT {INFO_COLUMNS}, count(*) OVER () AS total \
             FROM {INFO_FROM} WHERE {LISTED_STREAMS} ORDER BY {} LIMIT ?3 OFFSET ?4",
            request.order_by()
        );
        Ok(sqlx::query_as(&sql)
            .bind(search)
            .bind(request.include_deleted)
            .bind(signed("page_size", request.page_size)?)
            .bind(signed("page offset", request.offset())?)
            .fetch_all(&self.inner.pool)
            .await?)
    }

    async fn count_streams(&self, request: &PageRequest, search: Option<&str>) -> Result<u64> {
        let count: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM streams s WHERE {LISTED_STREAMS}"))
            .bind(search)
            .bind(request.include_deleted)
            .fetch_one(&self.inner.pool)
            .await?;
        unsigned("count", count)
    }

    /// On the write connection: nothing else writes meanwhile.
    async fn delete_stream(&self, stream: &str, expected: ExpectedVersion, mode: DeleteMode) -> Result<()> {
        may_delete(stream, mode, self.inner.hard_deletes)?;
        let mut conn = self.write_connection().await?;
        let mut tx = Connection::begin(&mut *conn).await?;
        let outcome = delete_in(&mut tx, stream, expected, mode).await;
        commit_or_rollback(tx, outcome).await?;
        if mode == DeleteMode::Recreatable {
            // Live paths and subscriptions drop what the delete made unreadable.
            self.announce(Wake::Retention(stream.into()));
        }
        Ok(())
    }
}

async fn delete_in(
    conn: &mut SqliteConnection,
    stream: &str,
    expected: ExpectedVersion,
    mode: DeleteMode,
) -> Result<()> {
    let row = sqlx::query_as(FIND_STREAM).bind(stream).fetch_optional(&mut *conn).await?;
    let id = stream_to_delete(row, expected, mode)?;
    match mode {
        DeleteMode::Soft => {
            sqlx::query(SOFT_DELETE).bind(id).bind(Utc::now()).execute(&mut *conn).await?;
        }
        DeleteMode::Recreatable => {
            sqlx::query(RECREATABLE_DELETE).bind(id).execute(&mut *conn).await?;
        }
        DeleteMode::Hard => {
            sqlx::query(PERMIT_HARD_DELETE).execute(&mut *conn).await?;
            for statement in
                [DELETE_LINKS_TO_STREAM, DELETE_LINKS_OF_STREAM, DELETE_EVENTS_OF_STREAM, DELETE_STREAM_ROW]
            {
                sqlx::query(statement).bind(id).execute(&mut *conn).await?;
            }
            sqlx::query(DELETE_METADATA).bind(stream).execute(&mut *conn).await?;
            sqlx::query(END_HARD_DELETE_PERMIT).execute(&mut *conn).await?;
        }
    }
    Ok(())
}
