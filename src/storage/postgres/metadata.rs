//! Stream metadata: one row per stream name in `stream_metadata`, replaced by each set with
//! the next version. A set locks the row (`FOR UPDATE`) to check the expected version, so
//! concurrent sets of one stream take turns and exactly one of several with the same expected
//! version wins; the first set of a stream races on the primary key instead, and the loser
//! checks again against the row the winner wrote. A scavenge holds the rows of the streams it
//! works on (`FOR SHARE`), so a set that would make events readable again waits for it.

use sqlx::PgConnection;

use super::PgStorage;
use crate::error::{Error, Result};
use crate::event::ExpectedVersion;
use crate::metadata::StreamMetadata;
use crate::storage::backend::{Metadata, may_set_metadata};
use crate::storage::{
    INFO_FROM, METADATA_COLUMNS, MetadataRow, RETENTION_COLUMNS, RetentionRow, commit_or_rollback, unsigned,
};

const TOMBSTONE: &str = "SELECT deleted_at IS NOT NULL FROM streams WHERE stream_uuid = $1";

const LOCK: &str = "SELECT metadata_version FROM stream_metadata WHERE stream_uuid = $1 FOR UPDATE";

const INSERT: &str = "INSERT INTO stream_metadata \
     (stream_uuid, metadata_version, max_count, max_age_ms, truncate_before, custom) \
     VALUES ($1, 1, $2, $3, $4, $5) ON CONFLICT (stream_uuid) DO NOTHING RETURNING metadata_version";

const UPDATE: &str = "UPDATE stream_metadata SET metadata_version = metadata_version + 1, max_count = $2, \
     max_age_ms = $3, truncate_before = $4, custom = $5, updated_at = now() \
     WHERE stream_uuid = $1 RETURNING metadata_version";

impl Metadata for PgStorage {
    async fn set_stream_metadata(
        &self,
        stream: &str,
        expected: ExpectedVersion,
        metadata: &StreamMetadata,
    ) -> Result<u64> {
        let custom = metadata.custom.as_ref().map(ToString::to_string);
        let mut tx = self.pool.begin().await?;
        let outcome = async {
            let deleted: Option<bool> = sqlx::query_scalar(TOMBSTONE).bind(stream).fetch_optional(&mut *tx).await?;
            // A first set that loses the race for the row checks again against the winner's.
            for _ in 0..2 {
                let current: Option<i64> = sqlx::query_scalar(LOCK).bind(stream).fetch_optional(&mut *tx).await?;
                may_set_metadata(deleted, expected, current)?;
                let statement = if current.is_some() { UPDATE } else { INSERT };
                let written: Option<i64> = write(&mut tx, statement, stream, metadata, custom.as_deref()).await?;
                if let Some(version) = written {
                    self.notify_retention(&mut tx, stream).await?;
                    return unsigned("metadata_version", version);
                }
            }
            Err(Error::Unavailable(format!("the metadata of `{stream}` kept changing; retry")))
        }
        .await;
        commit_or_rollback(tx, outcome).await
    }

    async fn stream_metadata(&self, stream: &str) -> Result<Option<(u64, StreamMetadata)>> {
        let sql = format!("SELECT {METADATA_COLUMNS} FROM stream_metadata WHERE stream_uuid = $1");
        let row: Option<MetadataRow> = sqlx::query_as(&sql).bind(stream).fetch_optional(&self.pool).await?;
        Ok(row.map(MetadataRow::into_metadata).transpose()?.flatten())
    }

    async fn retentions(&self, streams: &[&str]) -> Result<Vec<RetentionRow>> {
        let sql = format!("SELECT {RETENTION_COLUMNS} FROM {INFO_FROM} WHERE s.stream_uuid = ANY($1)");
        Ok(sqlx::query_as(&sql).bind(streams).fetch_all(&self.pool).await?)
    }
}

/// Runs `INSERT` or `UPDATE` with the metadata's values; the version written, if a row was.
async fn write(
    conn: &mut PgConnection,
    statement: &str,
    stream: &str,
    metadata: &StreamMetadata,
    custom: Option<&str>,
) -> Result<Option<i64>> {
    let to_i64 = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    Ok(sqlx::query_scalar(statement)
        .bind(stream)
        .bind(metadata.max_count.map(to_i64))
        .bind(metadata.max_age_ms())
        .bind(metadata.truncate_before.map(to_i64))
        .bind(custom)
        .fetch_optional(&mut *conn)
        .await?)
}
