//! Stream metadata (`stream_info`, pagination) and deletes.
//!
//! Deletes lock only the stream's row, never `$all`, so the lock order of the writer (`$all`,
//! then streams) cannot deadlock with them.

use sqlx::PgConnection;

use super::PgStorage;
use crate::error::{Error, Result};
use crate::event::{ALL, DeleteMode, ExpectedVersion, StreamInfo};
use crate::page::{Page, PageRequest};
use crate::storage::{InfoRow, PageRow, escape_like, into_info, signed, unsigned};

const STREAM_INFO: &str =
    "SELECT stream_id, stream_uuid, stream_version, created_at, deleted_at FROM streams WHERE stream_uuid = $1";

const LOCK_STREAM: &str =
    "SELECT stream_id, stream_version, deleted_at IS NOT NULL FROM streams WHERE stream_uuid = $1 FOR UPDATE";

const SOFT_DELETE: &str = "UPDATE streams SET deleted_at = now() WHERE stream_id = $1";

/// Hard delete: links pointing at the stream's events, the stream's own links, its events, its
/// row. The trigger that keeps events immutable lets these DELETEs through only because the
/// transaction set `chronik.enable_hard_deletes` with SET LOCAL.
const ALLOW_HARD_DELETE: &str = "SELECT set_config('chronik.enable_hard_deletes', 'on', true)";
const DELETE_LINKS_TO_STREAM: &str =
    "DELETE FROM links WHERE position = ANY(ARRAY(SELECT position FROM events WHERE stream_id = $1))";
const DELETE_LINKS_OF_STREAM: &str = "DELETE FROM links WHERE stream_id = $1";
const DELETE_EVENTS_OF_STREAM: &str = "DELETE FROM events WHERE stream_id = $1";
const DELETE_STREAM_ROW: &str = "DELETE FROM streams WHERE stream_id = $1";

/// The streams a page request lists: never `$all`; `$1` an escaped search text or NULL, `$2`
/// whether soft-deleted streams are included.
const LISTED_STREAMS: &str = "stream_id <> 0 \
     AND ($1::text IS NULL OR stream_uuid ILIKE '%' || $1 || '%' ESCAPE '\\') AND ($2 OR deleted_at IS NULL)";

impl PgStorage {
    /// Metadata of a stream (or of `$all`); `StreamNotFound` if it has none.
    pub async fn stream_info(&self, stream: &str) -> Result<StreamInfo> {
        let row: Option<InfoRow> = sqlx::query_as(STREAM_INFO).bind(stream).fetch_optional(&self.pool).await?;
        row.map(into_info).unwrap_or(Err(Error::StreamNotFound))
    }

    /// One page of streams (never `$all`).
    pub async fn paginate_streams(&self, request: &PageRequest) -> Result<Page<StreamInfo>> {
        let sql = format!(
            "SELECT stream_id, stream_uuid, stream_version, created_at, deleted_at, count(*) OVER () \
             FROM streams WHERE {LISTED_STREAMS} ORDER BY {} LIMIT $3 OFFSET $4",
            request.order_by()
        );
        let search = request.search.as_deref().map(escape_like);
        let rows: Vec<PageRow> = sqlx::query_as(&sql)
            .bind(search)
            .bind(request.include_deleted)
            .bind(signed("page_size", request.page_size)?)
            .bind(signed("page offset", request.offset())?)
            .fetch_all(&self.pool)
            .await?;
        let total_entries = match rows.first() {
            Some(row) => unsigned("count", row.5)?,
            // An empty page past the end still reports the real total.
            None if request.page > 1 => self.count_streams(request).await?,
            None => 0,
        };
        let entries =
            rows.into_iter().map(|(a, b, c, d, e, _)| into_info((a, b, c, d, e))).collect::<Result<Vec<_>>>()?;
        Ok(Page::of(request, entries, total_entries))
    }

    async fn count_streams(&self, request: &PageRequest) -> Result<u64> {
        let count: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM streams WHERE {LISTED_STREAMS}"))
            .bind(request.search.as_deref().map(escape_like))
            .bind(request.include_deleted)
            .fetch_one(&self.pool)
            .await?;
        unsigned("count", count)
    }

    /// Deletes a stream after checking `expected` under its row lock.
    pub async fn delete_stream(&self, stream: &str, expected: ExpectedVersion, mode: DeleteMode) -> Result<()> {
        if stream == ALL {
            return Err(Error::CannotDeleteAllStream);
        }
        if mode == DeleteMode::Hard && !self.hard_deletes {
            return Err(Error::NotSupported);
        }
        let mut tx = self.pool.begin().await?;
        match delete_locked(&mut tx, stream, expected, mode).await {
            Ok(()) => Ok(tx.commit().await?),
            Err(e) => {
                // Release the row lock now, not when the pool next touches the connection.
                tx.rollback().await.ok();
                Err(e)
            }
        }
    }
}

async fn delete_locked(
    conn: &mut PgConnection,
    stream: &str,
    expected: ExpectedVersion,
    mode: DeleteMode,
) -> Result<()> {
    let row: Option<(i64, i64, bool)> = sqlx::query_as(LOCK_STREAM).bind(stream).fetch_optional(&mut *conn).await?;
    let Some((id, version, deleted)) = row else {
        return Err(Error::StreamNotFound);
    };
    // A soft-deleted stream can still be hard-deleted (to purge it); deleting it softly
    // twice is an error like any other use of a deleted stream.
    let soft_deleted_purge = deleted && mode == DeleteMode::Hard;
    if !soft_deleted_purge {
        expected.check(Some(unsigned("stream_version", version)?), deleted)?;
    }
    match mode {
        DeleteMode::Soft => {
            sqlx::query(SOFT_DELETE).bind(id).execute(&mut *conn).await?;
        }
        DeleteMode::Hard => {
            sqlx::query(ALLOW_HARD_DELETE).execute(&mut *conn).await?;
            for statement in
                [DELETE_LINKS_TO_STREAM, DELETE_LINKS_OF_STREAM, DELETE_EVENTS_OF_STREAM, DELETE_STREAM_ROW]
            {
                sqlx::query(statement).bind(id).execute(&mut *conn).await?;
            }
        }
    }
    Ok(())
}
