//! Retried and parked events of named subscriptions on SQLite (`subscription_nacks`), and the
//! writes a subscription's owner makes through its lock session: checkpoint, retry counts,
//! parks, and the rows of replayed events it is done with.
//!
//! Reads go through the read pool; writes take their turn on the store's write connection.

use chrono::{DateTime, Utc};
use sqlx::{Connection, SqliteConnection};

use super::append::json;
use super::subscriptions::FIND;
use super::{LockSession, SqliteStorage};
use crate::error::Result;
use crate::storage::backend::{Nacks, OwnerWrites, Subscriptions};
use crate::storage::{
    NackRow, ParkedRow, StoredNack, SubscriptionWrite, Wake, commit_or_rollback, into_nacks, into_parked, signed,
};
use crate::subscription::ParkedEvent;

/// Moves the checkpoint (or, with NULL, only shows the row still exists).
pub(super) const TOUCH: &str =
    "UPDATE subscriptions SET last_seen = COALESCE(?2, last_seen), updated_at = ?3 WHERE subscription_id = ?1";

/// Records a retry count or a park; a park also ends a replay request.
const RECORD: &str = "INSERT INTO subscription_nacks \
         (subscription_id, event_number, retry_count, reason, parked_at, updated_at) \
     VALUES (?1, ?2, ?3, ?4, CASE WHEN ?5 THEN ?6 END, ?6) \
     ON CONFLICT (subscription_id, event_number) DO UPDATE SET retry_count = excluded.retry_count, \
         reason = excluded.reason, parked_at = excluded.parked_at, replay_requested = 0, \
         updated_at = excluded.updated_at";

const CLEAR: &str =
    "DELETE FROM subscription_nacks WHERE subscription_id = ?1 AND event_number IN (SELECT value FROM json_each(?2))";

/// Retry counts of events the checkpoint has passed are of no further use.
pub(super) const FORGET_RETRIES: &str =
    "DELETE FROM subscription_nacks WHERE subscription_id = ?1 AND event_number <= ?2 AND parked_at IS NULL";

/// What an owner needs when it takes a subscription: retry counts and parks after the
/// checkpoint, and every parked event whose replay was asked for.
const LOAD: &str = "SELECT event_number, retry_count, parked_at IS NOT NULL, replay_requested \
     FROM subscription_nacks WHERE subscription_id = ?1 AND (event_number > ?2 OR replay_requested) \
     ORDER BY event_number";

const REPLAY_REQUESTS: &str = "SELECT event_number, retry_count, 1, 1 FROM subscription_nacks \
     WHERE subscription_id = ?1 AND replay_requested ORDER BY event_number";

/// Marks the first `?3` parked events of a subscription's parked list (NULL: every one).
const REQUEST_REPLAY: &str = "UPDATE subscription_nacks SET replay_requested = 1, updated_at = ?2 \
     WHERE subscription_id = ?1 AND event_number IN (SELECT event_number FROM subscription_nacks \
         WHERE subscription_id = ?1 AND parked_at IS NOT NULL ORDER BY event_number LIMIT coalesce(?3, -1))";

const PARKED: &str = "SELECT n.event_number, n.retry_count, n.reason, n.parked_at, n.replay_requested \
     FROM subscription_nacks n JOIN subscriptions s USING (subscription_id) \
     WHERE s.stream_uuid = ?1 AND s.subscription_name = ?2 AND n.parked_at IS NOT NULL ORDER BY n.event_number";

impl Nacks for SqliteStorage {
    async fn load_nacks(&self, id: i32, checkpoint: u64) -> Result<Vec<StoredNack>> {
        let rows: Vec<NackRow> =
            sqlx::query_as(LOAD).bind(id).bind(signed("checkpoint", checkpoint)?).fetch_all(&self.inner.pool).await?;
        into_nacks(rows)
    }

    async fn replay_requests(&self, id: i32) -> Result<Vec<StoredNack>> {
        let rows: Vec<NackRow> = sqlx::query_as(REPLAY_REQUESTS).bind(id).fetch_all(&self.inner.pool).await?;
        into_nacks(rows)
    }

    /// The owner is this process: it is woken in memory.
    async fn request_replay(&self, stream: &str, name: &str, limit: Option<u64>) -> Result<Option<(i32, u64)>> {
        let limit = limit.map(|l| signed("replay limit", l)).transpose()?;
        let marked = {
            let mut conn = self.write_connection().await?;
            let row: Option<(i32,)> = sqlx::query_as(FIND).bind(stream).bind(name).fetch_optional(&mut *conn).await?;
            let Some((id,)) = row else { return Ok(None) };
            let done = sqlx::query(REQUEST_REPLAY).bind(id).bind(Utc::now()).bind(limit).execute(&mut *conn).await?;
            (id, done.rows_affected())
        };
        self.announce(Wake::Replay(marked.0));
        Ok(Some(marked))
    }

    async fn parked_events(&self, stream: &str, name: &str) -> Result<Option<Vec<ParkedEvent>>> {
        if self.find_subscription(stream, name).await?.is_none() {
            return Ok(None);
        }
        let rows: Vec<ParkedRow> = sqlx::query_as(PARKED).bind(stream).bind(name).fetch_all(&self.inner.pool).await?;
        into_parked(rows).map(Some)
    }
}

impl OwnerWrites for LockSession {
    /// In one transaction (one sync).
    async fn write_checkpoints(&mut self, checkpoints: &[(i32, u64)]) -> Result<Vec<i32>> {
        let mut conn = self.storage.write_connection().await?;
        let now = Utc::now();
        let mut tx = Connection::begin(&mut *conn).await?;
        let mut gone = Vec::new();
        for &(id, checkpoint) in checkpoints {
            let done =
                sqlx::query(TOUCH).bind(id).bind(signed("checkpoint", checkpoint)?).bind(now).execute(&mut *tx).await?;
            if done.rows_affected() == 0 {
                gone.push(id);
            }
        }
        tx.commit().await?;
        Ok(gone)
    }

    async fn write(&mut self, subscription_id: i32, write: &SubscriptionWrite) -> Result<bool> {
        let checkpoint = write.checkpoint.map(|c| signed("checkpoint", c)).transpose()?;
        let mut conn = self.storage.write_connection().await?;
        let now = Utc::now();
        if write.checkpoint_only() {
            let done = sqlx::query(TOUCH).bind(subscription_id).bind(checkpoint).bind(now).execute(&mut *conn).await?;
            return Ok(done.rows_affected() > 0);
        }
        let mut tx = Connection::begin(&mut *conn).await?;
        match write_in(&mut tx, subscription_id, checkpoint, write, now).await {
            Ok(false) => {
                tx.rollback().await?;
                Ok(false)
            }
            outcome => commit_or_rollback(tx, outcome).await,
        }
    }
}

async fn write_in(
    conn: &mut SqliteConnection,
    subscription_id: i32,
    checkpoint: Option<i64>,
    write: &SubscriptionWrite,
    now: DateTime<Utc>,
) -> Result<bool> {
    let done = sqlx::query(TOUCH).bind(subscription_id).bind(checkpoint).bind(now).execute(&mut *conn).await?;
    if done.rows_affected() == 0 {
        return Ok(false);
    }
    for nack in &write.nacks {
        sqlx::query(RECORD)
            .bind(subscription_id)
            .bind(signed("event number", nack.event_number)?)
            .bind(i64::from(nack.retry_count))
            .bind(&nack.reason)
            .bind(nack.parked)
            .bind(now)
            .execute(&mut *conn)
            .await?;
    }
    if !write.cleared.is_empty() {
        let numbers = write.cleared.iter().map(|n| signed("event number", *n)).collect::<Result<Vec<_>>>()?;
        sqlx::query(CLEAR).bind(subscription_id).bind(json(&numbers)).execute(&mut *conn).await?;
    }
    if let Some(upto) = write.forget_retries_upto {
        sqlx::query(FORGET_RETRIES).bind(subscription_id).bind(signed("checkpoint", upto)?).execute(&mut *conn).await?;
    }
    Ok(true)
}
