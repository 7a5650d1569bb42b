//! Named subscriptions on SQLite: their rows (checkpoints), their retried and parked events,
//! the process's ownership of them, and the in-memory wake-ups that replace LISTEN.
//!
//! The process that holds the file owns every subscription (no other node can run), so the
//! lock session only records which ones it runs, for `list_subscriptions`. Its writes take their
//! turn on the store's write connection, like every other write.

use chrono::{DateTime, Utc};
use sqlx::{Connection, SqliteConnection};
use tokio::sync::broadcast;

use super::SqliteStorage;
use super::append::json;
use crate::error::{Error, Result};
use crate::storage::{
    NackRow, ParkedRow, StoredNack, SubscriptionRow, SubscriptionWrite, Wake, into_nacks, into_parked,
    into_subscription_info, signed, unsigned,
};
use crate::subscription::{ParkedEvent, SubscriptionInfo};

const CREATE: &str = "INSERT INTO subscriptions (stream_uuid, subscription_name, last_seen, created_at, updated_at) \
     VALUES (?1, ?2, ?3, ?4, ?4) ON CONFLICT (stream_uuid, subscription_name) DO NOTHING";

const FIND: &str =
    "SELECT subscription_id, last_seen FROM subscriptions WHERE stream_uuid = ?1 AND subscription_name = ?2";

const DELETE: &str = "DELETE FROM subscriptions WHERE stream_uuid = ?1 AND subscription_name = ?2";

/// The stream's version, or for `$all` (row 0) the last global position; no row reads as 0.
const HEAD: &str = "SELECT stream_version FROM streams WHERE stream_uuid = ?1";

const LIST: &str = "SELECT s.subscription_id, s.stream_uuid, s.subscription_name, s.last_seen, \
         COALESCE(h.stream_version, 0), s.created_at, s.updated_at \
     FROM subscriptions s LEFT JOIN streams h ON h.stream_uuid = s.stream_uuid \
     ORDER BY s.stream_uuid, s.subscription_name";

/// Moves the checkpoint (or, with NULL, only shows the row still exists).
const TOUCH: &str =
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
const FORGET_RETRIES: &str =
    "DELETE FROM subscription_nacks WHERE subscription_id = ?1 AND event_number <= ?2 AND parked_at IS NULL";

/// What an owner needs when it takes a subscription: retry counts and parks after the
/// checkpoint, and every parked event whose replay was asked for.
const LOAD: &str = "SELECT event_number, retry_count, parked_at IS NOT NULL, replay_requested \
     FROM subscription_nacks WHERE subscription_id = ?1 AND (event_number > ?2 OR replay_requested) \
     ORDER BY event_number";

const REPLAY_REQUESTS: &str = "SELECT event_number, retry_count, 1, 1 FROM subscription_nacks \
     WHERE subscription_id = ?1 AND replay_requested ORDER BY event_number";

const REQUEST_REPLAY: &str = "UPDATE subscription_nacks SET replay_requested = 1, updated_at = ?2 \
     WHERE subscription_id = ?1 AND parked_at IS NOT NULL";

const PARKED: &str = "SELECT n.event_number, n.retry_count, n.reason, n.parked_at, n.replay_requested \
     FROM subscription_nacks n JOIN subscriptions s USING (subscription_id) \
     WHERE s.stream_uuid = ?1 AND s.subscription_name = ?2 AND n.parked_at IS NOT NULL ORDER BY n.event_number";

type ListRow = (i32, String, String, i64, i64, DateTime<Utc>, DateTime<Utc>);

impl SqliteStorage {
    /// The subscription's row, created with checkpoint `start` if it does not exist yet.
    pub async fn subscription_row(&self, stream: &str, name: &str, start: u64) -> Result<SubscriptionRow> {
        {
            let mut conn = self.write_connection().await?;
            sqlx::query(CREATE)
                .bind(stream)
                .bind(name)
                .bind(signed("start position", start)?)
                .bind(Utc::now())
                .execute(&mut *conn)
                .await?;
        }
        self.find_subscription(stream, name).await?.ok_or(Error::SubscriptionNotFound)
    }

    /// The subscription's row, if it exists.
    pub async fn find_subscription(&self, stream: &str, name: &str) -> Result<Option<SubscriptionRow>> {
        let row: Option<(i32, i64)> =
            sqlx::query_as(FIND).bind(stream).bind(name).fetch_optional(&self.inner.pool).await?;
        row.map(|(id, last_seen)| Ok(SubscriptionRow { id, last_seen: unsigned("last_seen", last_seen)? })).transpose()
    }

    /// Deletes the subscription's row (its checkpoint, retries and parks); whether there was one.
    pub async fn delete_subscription(&self, stream: &str, name: &str) -> Result<bool> {
        let mut conn = self.write_connection().await?;
        let done = sqlx::query(DELETE).bind(stream).bind(name).execute(&mut *conn).await?;
        Ok(done.rows_affected() > 0)
    }

    /// Moves the subscription's checkpoint to `checkpoint` while this process does not run it
    /// (no other process can: the file is this one's), forgetting retry counts it passed (parked
    /// events stay parked). `Ok(false)` if the subscription does not exist;
    /// [`Error::SubscriptionInUse`] if this process runs it.
    pub async fn set_checkpoint(&self, stream: &str, name: &str, checkpoint: u64) -> Result<bool> {
        let Some(row) = self.find_subscription(stream, name).await? else { return Ok(false) };
        let mut conn = self.write_connection().await?;
        // Checked with the write connection held: an owner taking it now writes after this.
        if self.inner.owned.lock().unwrap_or_else(std::sync::PoisonError::into_inner).contains(&row.id) {
            return Err(Error::SubscriptionInUse);
        }
        let value = signed("checkpoint", checkpoint)?;
        let mut tx = Connection::begin(&mut *conn).await?;
        let moved = sqlx::query(TOUCH).bind(row.id).bind(value).bind(Utc::now()).execute(&mut *tx).await?;
        sqlx::query(FORGET_RETRIES).bind(row.id).bind(value).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(moved.rows_affected() > 0)
    }

    /// The last event number of `stream` (for `$all`, the last global position); 0 if the
    /// stream has no row.
    pub async fn head(&self, stream: &str) -> Result<u64> {
        let row: Option<i64> = sqlx::query_scalar(HEAD).bind(stream).fetch_optional(&self.inner.pool).await?;
        row.map_or(Ok(0), |version| unsigned("stream_version", version))
    }

    /// Every subscription of the store, with checkpoint, lag and owner (this process, for the
    /// ones it runs).
    pub async fn list_subscriptions(&self) -> Result<Vec<SubscriptionInfo>> {
        let rows: Vec<ListRow> = sqlx::query_as(LIST).fetch_all(&self.inner.pool).await?;
        let owned = self.inner.owned.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        let pid = i32::try_from(std::process::id()).ok();
        rows.into_iter()
            .map(|(id, stream, name, last_seen, head, created_at, updated_at)| {
                let mine = owned.contains(&id);
                let application = mine.then(|| format!("chronik {}", self.inner.label));
                into_subscription_info(
                    (stream, name, last_seen, head, created_at, updated_at),
                    pid.filter(|_| mine),
                    application,
                )
            })
            .collect()
    }

    /// The process's lock session.
    pub fn lock_session(&self) -> LockSession {
        LockSession { storage: self.clone() }
    }

    /// Listens for the writer's announcements.
    pub fn listen(&self) -> NotificationListener {
        NotificationListener { wakes: self.inner.wakes.subscribe() }
    }

    /// Retry counts and parks after `checkpoint`, and every parked event to replay, of
    /// subscription `id`.
    pub async fn load_nacks(&self, id: i32, checkpoint: u64) -> Result<Vec<StoredNack>> {
        let rows: Vec<NackRow> =
            sqlx::query_as(LOAD).bind(id).bind(signed("checkpoint", checkpoint)?).fetch_all(&self.inner.pool).await?;
        into_nacks(rows)
    }

    /// Parked events of subscription `id` whose replay was asked for.
    pub async fn replay_requests(&self, id: i32) -> Result<Vec<StoredNack>> {
        let rows: Vec<NackRow> = sqlx::query_as(REPLAY_REQUESTS).bind(id).fetch_all(&self.inner.pool).await?;
        into_nacks(rows)
    }

    /// Marks every parked event of the subscription for replay and wakes its owner (this
    /// process): the subscription's id and how many events are marked, or `None` if it does not
    /// exist.
    pub async fn request_replay(&self, stream: &str, name: &str) -> Result<Option<(i32, u64)>> {
        let marked = {
            let mut conn = self.write_connection().await?;
            let row: Option<(i32,)> = sqlx::query_as(FIND).bind(stream).bind(name).fetch_optional(&mut *conn).await?;
            let Some((id,)) = row else { return Ok(None) };
            let done = sqlx::query(REQUEST_REPLAY).bind(id).bind(Utc::now()).execute(&mut *conn).await?;
            (id, done.rows_affected())
        };
        self.announce(Wake::Replay(marked.0));
        Ok(Some(marked))
    }

    /// The parked events of a subscription, oldest first; `None` if it does not exist.
    pub async fn parked_events(&self, stream: &str, name: &str) -> Result<Option<Vec<ParkedEvent>>> {
        if self.find_subscription(stream, name).await?.is_none() {
            return Ok(None);
        }
        let rows: Vec<ParkedRow> = sqlx::query_as(PARKED).bind(stream).bind(name).fetch_all(&self.inner.pool).await?;
        into_parked(rows).map(Some)
    }
}

/// The process's ownership of named subscriptions: the file lock already excludes every other
/// process, so taking a subscription always succeeds; the session records which ones it runs.
#[derive(Debug)]
pub struct LockSession {
    storage: SqliteStorage,
}

impl LockSession {
    /// Takes the subscription (no other process can hold it).
    pub fn try_lock(&mut self, subscription_id: i32) -> bool {
        self.owned().insert(subscription_id);
        true
    }

    /// Releases the subscription.
    pub fn unlock(&mut self, subscription_id: i32) {
        self.owned().remove(&subscription_id);
    }

    /// Checks that the store is still open (it holds the file, and with it every subscription),
    /// without waiting for a write in progress: a connection in use is an open one.
    pub async fn ping(&mut self) -> Result<()> {
        match self.storage.inner.write.try_lock() {
            Ok(conn) if conn.is_none() => Err(self.storage.closed()),
            _ => Ok(()),
        }
    }

    /// Releases every subscription.
    pub fn close(self) {
        self.owned().clear();
    }

    fn owned(&self) -> std::sync::MutexGuard<'_, std::collections::HashSet<i32>> {
        self.storage.inner.owned.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Moves the checkpoints of several subscriptions in one transaction (one sync); returns the
    /// ids whose rows are gone (deleted), for which nothing was written.
    pub async fn write_checkpoints(&mut self, checkpoints: &[(i32, u64)]) -> Result<Vec<i32>> {
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

    /// Writes a subscription's changes in one transaction; `false` if its row is gone (it was
    /// deleted), in which case nothing is written.
    pub async fn write(&mut self, subscription_id: i32, write: &SubscriptionWrite) -> Result<bool> {
        let checkpoint = write.checkpoint.map(|c| signed("checkpoint", c)).transpose()?;
        let mut conn = self.storage.write_connection().await?;
        let now = Utc::now();
        if write.checkpoint_only() {
            let done = sqlx::query(TOUCH).bind(subscription_id).bind(checkpoint).bind(now).execute(&mut *conn).await?;
            return Ok(done.rows_affected() > 0);
        }
        let mut tx = Connection::begin(&mut *conn).await?;
        match write_in(&mut tx, subscription_id, checkpoint, write, now).await {
            Ok(true) => {
                tx.commit().await?;
                Ok(true)
            }
            Ok(false) => {
                tx.rollback().await?;
                Ok(false)
            }
            Err(e) => {
                tx.rollback().await.ok();
                Err(e)
            }
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

/// The notifier's end of the writer's announcements.
pub struct NotificationListener {
    wakes: broadcast::Receiver<Wake>,
}

impl NotificationListener {
    /// The next announcement; a listener that fell behind is told to resync.
    pub async fn recv(&mut self) -> Result<Wake> {
        match self.wakes.recv().await {
            Ok(wake) => Ok(wake),
            Err(broadcast::error::RecvError::Lagged(_)) => Ok(Wake::Resync),
            Err(broadcast::error::RecvError::Closed) => Err(Error::Unavailable("the store has been closed".into())),
        }
    }
}
