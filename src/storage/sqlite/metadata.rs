//! Stream metadata: one row per stream name in `stream_metadata`, replaced by each set with
//! the next version. A set takes its turn on the write connection, so nothing else writes
//! between its check of the expected version and its write.

use chrono::Utc;
use sqlx::{Connection, SqliteConnection};

use super::SqliteStorage;
use super::append::json;
use crate::error::Result;
use crate::event::ExpectedVersion;
use crate::metadata::StreamMetadata;
use crate::storage::backend::{Metadata, may_set_metadata};
use crate::storage::{
    INFO_FROM, METADATA_COLUMNS, MetadataRow, RETENTION_COLUMNS, RetentionRow, Wake, commit_or_rollback, unsigned,
};

const TOMBSTONE: &str = "SELECT deleted_at IS NOT NULL FROM streams WHERE stream_uuid = ?1";

const CURRENT: &str = "SELECT metadata_version FROM stream_metadata WHERE stream_uuid = ?1";

const UPSERT: &str = "INSERT INTO stream_metadata \
     (stream_uuid, metadata_version, max_count, max_age_ms, truncate_before, custom, updated_at) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
     ON CONFLICT (stream_uuid) DO UPDATE SET metadata_version = excluded.metadata_version, \
     max_count = excluded.max_count, max_age_ms = excluded.max_age_ms, \
     truncate_before = excluded.truncate_before, custom = excluded.custom, updated_at = excluded.updated_at";

impl Metadata for SqliteStorage {
    /// On the write connection: nothing else writes meanwhile.
    async fn set_stream_metadata(
        &self,
        stream: &str,
        expected: ExpectedVersion,
        metadata: &StreamMetadata,
    ) -> Result<u64> {
        let version = {
            let mut conn = self.write_connection().await?;
            let mut tx = Connection::begin(&mut *conn).await?;
            let outcome = set_in(&mut tx, stream, expected, metadata).await;
            commit_or_rollback(tx, outcome).await?
        };
        self.announce(Wake::Retention(stream.to_string()));
        Ok(version)
    }

    async fn stream_metadata(&self, stream: &str) -> Result<Option<(u64, StreamMetadata)>> {
        let sql = format!("SELECT {METADATA_COLUMNS} FROM stream_metadata WHERE stream_uuid = ?1");
        let row: Option<MetadataRow> = sqlx::query_as(&sql).bind(stream).fetch_optional(&self.inner.pool).await?;
        Ok(row.map(MetadataRow::into_metadata).transpose()?.flatten())
    }

    async fn retentions(&self, streams: &[&str]) -> Result<Vec<RetentionRow>> {
        let sql = format!(
            "SELECT {RETENTION_COLUMNS} FROM {INFO_FROM} WHERE s.stream_uuid IN (SELECT value FROM json_each(?1))"
        );
        Ok(sqlx::query_as(&sql).bind(json(streams)).fetch_all(&self.inner.pool).await?)
    }
}

async fn set_in(
    conn: &mut SqliteConnection,
    stream: &str,
    expected: ExpectedVersion,
    metadata: &StreamMetadata,
) -> Result<u64> {
    let deleted: Option<bool> = sqlx::query_scalar(TOMBSTONE).bind(stream).fetch_optional(&mut *conn).await?;
    let current: Option<i64> = sqlx::query_scalar(CURRENT).bind(stream).fetch_optional(&mut *conn).await?;
    may_set_metadata(deleted, expected, current)?;
    let version = current.unwrap_or(0) + 1;
    let to_i64 = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    sqlx::query(UPSERT)
        .bind(stream)
        .bind(version)
        .bind(metadata.max_count.map(to_i64))
        .bind(metadata.max_age_ms())
        .bind(metadata.truncate_before.map(to_i64))
        .bind(metadata.custom.as_ref().map(ToString::to_string))
        .bind(Utc::now())
        .execute(&mut *conn)
        .await?;
    unsigned("metadata_version", version)
}
