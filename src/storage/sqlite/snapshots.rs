//! Snapshots: one row per source, replaced on every record. Writes take their turn on the
//! write connection.

use super::SqliteStorage;
use crate::error::{Error, Result};
use crate::snapshot::SnapshotData;
use crate::storage::backend::Snapshots;
use crate::storage::{SnapshotRow, into_snapshot, signed};

const UPSERT: &str = "INSERT INTO snapshots \
     (source_uuid, source_version, source_type, content_type, data, metadata, created_at) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
     ON CONFLICT (source_uuid) DO UPDATE SET source_version = excluded.source_version, \
     source_type = excluded.source_type, content_type = excluded.content_type, data = excluded.data, \
     metadata = excluded.metadata, created_at = excluded.created_at";

const SELECT: &str = "SELECT source_uuid, source_version, source_type, content_type, data, metadata, \
     created_at FROM snapshots WHERE source_uuid = ?1";

const DELETE: &str = "DELETE FROM snapshots WHERE source_uuid = ?1";

impl Snapshots for SqliteStorage {
    async fn record_snapshot(&self, snapshot: &SnapshotData) -> Result<()> {
        let mut conn = self.write_connection().await?;
        sqlx::query(UPSERT)
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

    async fn read_snapshot(&self, source_uuid: &str) -> Result<SnapshotData> {
        let row: Option<SnapshotRow> =
            sqlx::query_as(SELECT).bind(source_uuid).fetch_optional(&self.inner.pool).await?;
        into_snapshot(row.ok_or(Error::SnapshotNotFound)?)
    }

    async fn delete_snapshot(&self, source_uuid: &str) -> Result<()> {
        let mut conn = self.write_connection().await?;
        sqlx::query(DELETE).bind(source_uuid).execute(&mut *conn).await?;
        Ok(())
    }
}
