//! Snapshots: one row per source, replaced on every record.

use super::PgStorage;
use crate::error::{Error, Result};
use crate::snapshot::SnapshotData;
use crate::storage::backend::Snapshots;
use crate::storage::{SnapshotRow, into_snapshot, signed};

const UPSERT: &str = "INSERT INTO snapshots (source_uuid, source_version, source_type, content_type, data, metadata, created_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7) \
     ON CONFLICT (source_uuid) DO UPDATE SET source_version = EXCLUDED.source_version, \
     source_type = EXCLUDED.source_type, content_type = EXCLUDED.content_type, data = EXCLUDED.data, \
     metadata = EXCLUDED.metadata, created_at = EXCLUDED.created_at";

const SELECT: &str = "SELECT source_uuid, source_version, source_type, content_type, data, metadata, created_at \
     FROM snapshots WHERE source_uuid = $1";

const DELETE: &str = "DELETE FROM snapshots WHERE source_uuid = $1";

impl Snapshots for PgStorage {
    async fn record_snapshot(&self, snapshot: &SnapshotData) -> Result<()> {
        sqlx::query(UPSERT)
            .bind(&snapshot.source_uuid)
            .bind(signed("source_version", snapshot.source_version)?)
            .bind(&snapshot.source_type)
            .bind(&snapshot.content_type)
            .bind(&snapshot.data)
            .bind(&snapshot.metadata)
            .bind(snapshot.created_at)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn read_snapshot(&self, source_uuid: &str) -> Result<SnapshotData> {
        let row: Option<SnapshotRow> = sqlx::query_as(SELECT).bind(source_uuid).fetch_optional(&self.pool).await?;
        into_snapshot(row.ok_or(Error::SnapshotNotFound)?)
    }

    async fn delete_snapshot(&self, source_uuid: &str) -> Result<()> {
        sqlx::query(DELETE).bind(source_uuid).execute(&self.pool).await?;
        Ok(())
    }
}
