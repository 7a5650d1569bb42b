//! Named subscriptions on SQLite: their rows (checkpoints and settings), the process's ownership
//! of them, and the in-memory wake-ups that replace LISTEN.
//!
//! The process that holds the file owns every subscription (no other node can run), so the
//! lock session only records which ones it runs, for `list_subscriptions`. What an owner writes
//! through it (`nacks.rs`) takes its turn on the store's write connection, like every other
//! write.

use chrono::{DateTime, Utc};
use sqlx::Connection;
use tokio::sync::broadcast;

use super::SqliteStorage;
use super::nacks::{FORGET_RETRIES, TOUCH};
use crate::error::{Error, Result};
use crate::storage::backend::{self, Subscriptions};
use crate::storage::{
    SubscriptionListRow, SubscriptionRow, SubscriptionRowRow, Wake, into_subscription_info, into_subscription_row,
    signed, unsigned,
};
use crate::subscription::{SubscriptionInfo, SubscriptionOptions, stored};

/// Creates the row with its settings; a row from before settings were stored gets them.
const CREATE: &str = "INSERT INTO subscriptions \
         (stream_uuid, subscription_name, last_seen, created_at, updated_at, settings) \
     VALUES (?1, ?2, ?3, ?4, ?4, ?5) ON CONFLICT (stream_uuid, subscription_name) \
     DO UPDATE SET settings = excluded.settings WHERE subscriptions.settings IS NULL";

const CREATE_NEW: &str = "INSERT INTO subscriptions \
         (stream_uuid, subscription_name, last_seen, created_at, updated_at, settings) \
     VALUES (?1, ?2, ?3, ?4, ?4, ?5) ON CONFLICT (stream_uuid, subscription_name) DO NOTHING";

pub(super) const FIND: &str = "SELECT subscription_id, last_seen, settings FROM subscriptions \
     WHERE stream_uuid = ?1 AND subscription_name = ?2";

const UPDATE_SETTINGS: &str = "UPDATE subscriptions SET settings = ?2 WHERE subscription_id = ?1";

const DELETE: &str = "DELETE FROM subscriptions WHERE stream_uuid = ?1 AND subscription_name = ?2";

/// The stream's version, or for `$all` (row 0) the last global position; no row reads as 0.
const HEAD: &str = "SELECT stream_version FROM streams WHERE stream_uuid = ?1";

/// Subscriptions with their stream's head, their settings and how many events they parked;
/// `LIST` or `ONE` follows.
macro_rules! list {
    ($rest:literal) => {
        concat!(
            "SELECT s.subscription_id, s.stream_uuid, s.subscription_name, s.last_seen, \
                 COALESCE(h.stream_version, 0), s.created_at, s.updated_at, s.settings, \
                 (SELECT count(*) FROM subscription_nacks n \
                  WHERE n.subscription_id = s.subscription_id AND n.parked_at IS NOT NULL) \
             FROM subscriptions s LEFT JOIN streams h ON h.stream_uuid = s.stream_uuid ",
            $rest
        )
    };
}

/// Every subscription.
const LIST: &str = list!("ORDER BY s.stream_uuid, s.subscription_name");

/// One subscription.
const ONE: &str = list!("WHERE s.stream_uuid = ?1 AND s.subscription_name = ?2");

type ListRow = (i32, String, String, i64, i64, DateTime<Utc>, DateTime<Utc>, Option<String>, i64);

impl SqliteStorage {
    /// Runs `sql`, `CREATE` or `CREATE_NEW`, for a subscription's row: the rows it wrote.
    async fn insert_subscription(
        &self,
        sql: &str,
        stream: &str,
        name: &str,
        start: u64,
        settings: &SubscriptionOptions,
    ) -> Result<u64> {
        let mut conn = self.write_connection().await?;
        let done = sqlx::query(sql)
            .bind(stream)
            .bind(name)
            .bind(signed("start position", start)?)
            .bind(Utc::now())
            .bind(stored::to_json(settings)?)
            .execute(&mut *conn)
            .await?;
        Ok(done.rows_affected())
    }
}

impl Subscriptions for SqliteStorage {
    type LockSession = LockSession;
    type NotificationListener = NotificationListener;

    async fn subscription_row(
        &self,
        stream: &str,
        name: &str,
        start: u64,
        settings: &SubscriptionOptions,
    ) -> Result<SubscriptionRow> {
        self.insert_subscription(CREATE, stream, name, start, settings).await?;
        self.find_subscription(stream, name).await?.ok_or(Error::SubscriptionNotFound)
    }

    async fn create_subscription(
        &self,
        stream: &str,
        name: &str,
        start: u64,
        settings: &SubscriptionOptions,
    ) -> Result<bool> {
        Ok(self.insert_subscription(CREATE_NEW, stream, name, start, settings).await? > 0)
    }

    async fn find_subscription(&self, stream: &str, name: &str) -> Result<Option<SubscriptionRow>> {
        let row: Option<SubscriptionRowRow> =
            sqlx::query_as(FIND).bind(stream).bind(name).fetch_optional(&self.inner.pool).await?;
        row.map(into_subscription_row).transpose()
    }

    /// The owner is this process: it is woken in memory.
    async fn update_settings(&self, stream: &str, name: &str, settings: &SubscriptionOptions) -> Result<Option<i32>> {
        let settings = stored::to_json(settings)?;
        let id = {
            let mut conn = self.write_connection().await?;
            let row: Option<(i32,)> = sqlx::query_as(FIND).bind(stream).bind(name).fetch_optional(&mut *conn).await?;
            let Some((id,)) = row else { return Ok(None) };
            sqlx::query(UPDATE_SETTINGS).bind(id).bind(settings).execute(&mut *conn).await?;
            id
        };
        self.announce(Wake::Settings(id));
        Ok(Some(id))
    }

    async fn subscription_info(&self, stream: &str, name: &str) -> Result<Option<SubscriptionInfo>> {
        let row: Option<ListRow> = sqlx::query_as(ONE).bind(stream).bind(name).fetch_optional(&self.inner.pool).await?;
        row.map(|row| self.listed(row)).transpose()
    }

    async fn delete_subscription(&self, stream: &str, name: &str) -> Result<bool> {
        let mut conn = self.write_connection().await?;
        let done = sqlx::query(DELETE).bind(stream).bind(name).execute(&mut *conn).await?;
        Ok(done.rows_affected() > 0)
    }

    /// In use only if this process runs it: no other process can (the file is this one's).
    async fn set_checkpoint(&self, stream: &str, name: &str, checkpoint: u64) -> Result<bool> {
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

    async fn head(&self, stream: &str) -> Result<u64> {
        let row: Option<i64> = sqlx::query_scalar(HEAD).bind(stream).fetch_optional(&self.inner.pool).await?;
        row.map_or(Ok(0), |version| unsigned("stream_version", version))
    }

    /// The owner is this process, for the ones it runs.
    async fn list_subscriptions(&self) -> Result<Vec<SubscriptionInfo>> {
        let rows: Vec<ListRow> = sqlx::query_as(LIST).fetch_all(&self.inner.pool).await?;
        rows.into_iter().map(|row| self.listed(row)).collect()
    }

    /// The process's own: nothing to connect.
    async fn open_lock_session(&self) -> Result<LockSession> {
        Ok(LockSession { storage: self.clone() })
    }

    /// The writer's announcements, in memory.
    async fn listen(&self) -> Result<NotificationListener> {
        Ok(NotificationListener { wakes: self.inner.wakes.subscribe() })
    }
}

impl SqliteStorage {
    /// A listed subscription, owned by this process if it runs it.
    fn listed(
        &self,
        (id, stream, name, last_seen, head, created_at, updated_at, settings, parked): ListRow,
    ) -> Result<SubscriptionInfo> {
        let mine = self.inner.owned.lock().unwrap_or_else(std::sync::PoisonError::into_inner).contains(&id);
        let pid = i32::try_from(std::process::id()).ok().filter(|_| mine);
        let application = mine.then(|| format!("chronik {}", self.inner.label));
        let row: SubscriptionListRow = (stream, name, last_seen, head, created_at, updated_at, settings, parked);
        into_subscription_info(row, pid, application)
    }
}

/// The process's ownership of named subscriptions: the file lock already excludes every other
/// process, so taking a subscription always succeeds; the session records which ones it runs.
#[derive(Debug)]
pub struct LockSession {
    pub(super) storage: SqliteStorage,
}

impl backend::LockSession for LockSession {
    /// Always (no other process can hold it).
    async fn try_lock(&mut self, subscription_id: i32) -> Result<bool> {
        self.owned().insert(subscription_id);
        Ok(true)
    }

    async fn unlock(&mut self, subscription_id: i32) -> Result<()> {
        self.owned().remove(&subscription_id);
        Ok(())
    }

    /// Whether the store is still open (it holds the file, and with it every subscription),
    /// without waiting for a write in progress: a connection in use is an open one.
    async fn ping(&mut self) -> Result<()> {
        match self.storage.inner.write.try_lock() {
            Ok(conn) if conn.is_none() => Err(self.storage.closed()),
            _ => Ok(()),
        }
    }

    async fn close(self) {
        self.owned().clear();
    }
}

impl LockSession {
    fn owned(&self) -> std::sync::MutexGuard<'_, std::collections::HashSet<i32>> {
        self.storage.inner.owned.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The notifier's end of the writer's announcements.
pub struct NotificationListener {
    wakes: broadcast::Receiver<Wake>,
}

impl backend::NotificationListener for NotificationListener {
    /// A listener that fell behind is told to resync.
    async fn recv(&mut self) -> Result<Wake> {
        match self.wakes.recv().await {
            Ok(wake) => Ok(wake),
            Err(broadcast::error::RecvError::Lagged(_)) => Ok(Wake::Resync),
            Err(broadcast::error::RecvError::Closed) => Err(Error::Unavailable("the store has been closed".into())),
        }
    }
}
