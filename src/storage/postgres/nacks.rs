//! Retried and parked events of named subscriptions (`subscription_nacks`), and the writes a
//! subscription's owner makes on its lock connection: checkpoint, retry counts, parks, and the
//! rows of replayed events it is done with.
//!
//! Reads go through the pool; writes go through the [`LockSession`] that holds the
//! subscription's lock, so a node that lost ownership cannot record anything.

use sqlx::{Acquire, Connection};

use super::{LockSession, PgStorage};
use crate::error::Result;
use crate::storage::backend::{Nacks, OwnerWrites, Subscriptions};
use crate::storage::{NackRow, ParkedRow, StoredNack, SubscriptionWrite, into_nacks, into_parked, signed, unsigned};
use crate::subscription::ParkedEvent;

/// Moves the checkpoint (or, with NULL, only locks the row to show it still exists).
const TOUCH: &str =
    "UPDATE subscriptions SET last_seen = COALESCE($2, last_seen), updated_at = now() WHERE subscription_id = $1";

/// Records retry counts and parks; a park also ends a replay request.
const RECORD: &str = "INSERT INTO subscription_nacks AS n (subscription_id, event_number, retry_count, reason, parked_at) \
     SELECT $1, u.event_number, u.retry_count, u.reason, CASE WHEN u.parked THEN now() END \
     FROM UNNEST($2::bigint[], $3::integer[], $4::text[], $5::boolean[]) AS u (event_number, retry_count, reason, parked) \
     ON CONFLICT (subscription_id, event_number) DO UPDATE SET retry_count = EXCLUDED.retry_count, \
         reason = EXCLUDED.reason, parked_at = EXCLUDED.parked_at, replay_requested = false, updated_at = now()";

/// Moves the checkpoints of many subscriptions in one statement; the rows that still exist
/// come back.
const CHECKPOINTS: &str = "UPDATE subscriptions s SET last_seen = u.last_seen, updated_at = now() \
     FROM UNNEST($1::integer[], $2::bigint[]) AS u (subscription_id, last_seen) \
     WHERE s.subscription_id = u.subscription_id RETURNING s.subscription_id";

const CLEAR: &str = "DELETE FROM subscription_nacks WHERE subscription_id = $1 AND event_number = ANY($2)";

/// Retry counts of events the checkpoint has passed are of no further use.
pub(super) const FORGET_RETRIES: &str =
    "DELETE FROM subscription_nacks WHERE subscription_id = $1 AND event_number <= $2 AND parked_at IS NULL";

/// What an owner needs when it takes a subscription: retry counts and parks after the
/// checkpoint, and every parked event whose replay was asked for.
const LOAD: &str = "SELECT event_number, retry_count::bigint, parked_at IS NOT NULL, replay_requested FROM subscription_nacks \
     WHERE subscription_id = $1 AND (event_number > $2 OR replay_requested) ORDER BY event_number";

const REPLAY_REQUESTS: &str = "SELECT event_number, retry_count::bigint, true, true FROM subscription_nacks \
     WHERE subscription_id = $1 AND replay_requested ORDER BY event_number";

/// Marks the parked events of a subscription for replay (the first `$4` of its parked list;
/// NULL: every one) and wakes its owner, wherever it runs (the notification is delivered at
/// commit, after the marks are visible).
const REQUEST_REPLAY: &str = "WITH s AS (SELECT subscription_id FROM subscriptions \
         WHERE stream_uuid = $1 AND subscription_name = $2), \
     chosen AS (SELECT n.subscription_id, n.event_number FROM subscription_nacks n JOIN s USING (subscription_id) \
         WHERE n.parked_at IS NOT NULL ORDER BY n.event_number LIMIT $4), \
     marked AS (UPDATE subscription_nacks n SET replay_requested = true, updated_at = now() FROM chosen c \
         WHERE n.subscription_id = c.subscription_id AND n.event_number = c.event_number RETURNING 1) \
     SELECT s.subscription_id, (SELECT count(*) FROM marked) FROM s \
     CROSS JOIN LATERAL (SELECT pg_notify($3, 'replay,' || s.subscription_id)) AS notified";

const PARKED: &str = "SELECT n.event_number, n.retry_count::bigint, n.reason, n.parked_at, n.replay_requested \
     FROM subscription_nacks n JOIN subscriptions s USING (subscription_id) \
     WHERE s.stream_uuid = $1 AND s.subscription_name = $2 AND n.parked_at IS NOT NULL ORDER BY n.event_number";

fn numbers(values: &[u64]) -> Result<Vec<i64>> {
    values.iter().map(|n| signed("event number", *n)).collect()
}

impl Nacks for PgStorage {
    async fn load_nacks(&self, id: i32, checkpoint: u64) -> Result<Vec<StoredNack>> {
        let rows: Vec<NackRow> =
            sqlx::query_as(LOAD).bind(id).bind(signed("checkpoint", checkpoint)?).fetch_all(&self.pool).await?;
        into_nacks(rows)
    }

    async fn replay_requests(&self, id: i32) -> Result<Vec<StoredNack>> {
        let rows: Vec<NackRow> = sqlx::query_as(REPLAY_REQUESTS).bind(id).fetch_all(&self.pool).await?;
        into_nacks(rows)
    }

    async fn request_replay(&self, stream: &str, name: &str, limit: Option<u64>) -> Result<Option<(i32, u64)>> {
        let limit = limit.map(|l| signed("replay limit", l)).transpose()?;
        let row: Option<(i32, i64)> = sqlx::query_as(REQUEST_REPLAY)
            .bind(stream)
            .bind(name)
            .bind(self.channel())
            .bind(limit)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|(id, count)| Ok((id, unsigned("count", count)?))).transpose()
    }

    async fn parked_events(&self, stream: &str, name: &str) -> Result<Option<Vec<ParkedEvent>>> {
        if self.find_subscription(stream, name).await?.is_none() {
            return Ok(None);
        }
        let rows: Vec<ParkedRow> = sqlx::query_as(PARKED).bind(stream).bind(name).fetch_all(&self.pool).await?;
        into_parked(rows).map(Some)
    }
}

impl OwnerWrites for LockSession {
    /// In one round trip.
    async fn write_checkpoints(&mut self, checkpoints: &[(i32, u64)]) -> Result<Vec<i32>> {
        let ids: Vec<i32> = checkpoints.iter().map(|(id, _)| *id).collect();
        let values = numbers(&checkpoints.iter().map(|(_, c)| *c).collect::<Vec<_>>())?;
        let written: Vec<i32> =
            sqlx::query_scalar(CHECKPOINTS).bind(&ids).bind(values).fetch_all(&mut self.conn).await?;
        Ok(ids.into_iter().filter(|id| !written.contains(id)).collect())
    }

    async fn write(&mut self, subscription_id: i32, write: &SubscriptionWrite) -> Result<bool> {
        let checkpoint = write.checkpoint.map(|c| signed("checkpoint", c)).transpose()?;
        if write.checkpoint_only() {
            let done = sqlx::query(TOUCH).bind(subscription_id).bind(checkpoint).execute(&mut self.conn).await?;
            return Ok(done.rows_affected() > 0);
        }
        let mut tx = Connection::begin(&mut self.conn).await?;
        let conn = tx.acquire().await?;
        let done = sqlx::query(TOUCH).bind(subscription_id).bind(checkpoint).execute(&mut *conn).await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        if !write.nacks.is_empty() {
            let numbers = numbers(&write.nacks.iter().map(|n| n.event_number).collect::<Vec<_>>())?;
            let retries: Vec<i32> =
                write.nacks.iter().map(|n| i32::try_from(n.retry_count).unwrap_or(i32::MAX)).collect();
            let reasons: Vec<&str> = write.nacks.iter().map(|n| n.reason.as_str()).collect();
            let parked: Vec<bool> = write.nacks.iter().map(|n| n.parked).collect();
            sqlx::query(RECORD)
                .bind(subscription_id)
                .bind(numbers)
                .bind(retries)
                .bind(reasons)
                .bind(parked)
                .execute(&mut *conn)
                .await?;
        }
        if !write.cleared.is_empty() {
            sqlx::query(CLEAR).bind(subscription_id).bind(numbers(&write.cleared)?).execute(&mut *conn).await?;
        }
        if let Some(upto) = write.forget_retries_upto {
            sqlx::query(FORGET_RETRIES)
                .bind(subscription_id)
                .bind(signed("checkpoint", upto)?)
                .execute(&mut *conn)
                .await?;
        }
        tx.commit().await?;
        Ok(true)
    }
}
