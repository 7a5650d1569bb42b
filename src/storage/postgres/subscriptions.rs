//! Named subscriptions in the database: their rows (checkpoints and settings), the per-node lock
//! session that owns them, and the LISTEN connection that wakes the notifier.
//!
//! Ownership is a session-level advisory lock keyed on the schema and the subscription id. One
//! dedicated connection per node (a [`LockSession`]) holds the locks of every subscription the
//! node runs, and checkpoints are written on that same connection: a node whose lock connection
//! died (and with it its locks) cannot move a checkpoint, because its writes fail with it.

use chrono::{DateTime, Utc};
use sqlx::postgres::{PgListener, PgPoolOptions};
use sqlx::{Connection, PgConnection};

use super::PgStorage;
use crate::error::{Error, Result};
use crate::storage::backend::{self, Subscriptions};
use crate::storage::{
    SubscriptionListRow, SubscriptionRow, SubscriptionRowRow, Wake, into_subscription_info, into_subscription_row,
    signed, unsigned,
};
use crate::subscription::{SubscriptionInfo, SubscriptionOptions, stored};

/// Creates the row with its settings; a row from before settings were stored gets them.
const CREATE: &str = "INSERT INTO subscriptions (stream_uuid, subscription_name, last_seen, settings) \
     VALUES ($1, $2, $3, $4) ON CONFLICT (stream_uuid, subscription_name) \
     DO UPDATE SET settings = EXCLUDED.settings WHERE subscriptions.settings IS NULL";

const CREATE_NEW: &str = "INSERT INTO subscriptions (stream_uuid, subscription_name, last_seen, settings) \
     VALUES ($1, $2, $3, $4) ON CONFLICT (stream_uuid, subscription_name) DO NOTHING";

const FIND: &str = "SELECT subscription_id, last_seen, settings FROM subscriptions \
     WHERE stream_uuid = $1 AND subscription_name = $2";

/// Stores the settings and wakes the owner, wherever it runs (the notification is delivered at
/// commit, after the new settings are visible).
const UPDATE_SETTINGS: &str = "WITH s AS (UPDATE subscriptions SET settings = $3 \
         WHERE stream_uuid = $1 AND subscription_name = $2 RETURNING subscription_id) \
     SELECT s.subscription_id FROM s \
     CROSS JOIN LATERAL (SELECT pg_notify($4, 'settings,' || s.subscription_id)) AS notified";

const SET_CHECKPOINT: &str = "UPDATE subscriptions SET last_seen = $2, updated_at = now() WHERE subscription_id = $1";

const DELETE: &str = "DELETE FROM subscriptions WHERE stream_uuid = $1 AND subscription_name = $2";

/// The stream's version, or for `$all` (row 0) the last global position; no row reads as 0.
const HEAD: &str = "SELECT stream_version FROM streams WHERE stream_uuid = $1";

/// The advisory lock key of subscription `$1`: the schema's oid in the high half, the
/// subscription id in the low half (`pg_locks` shows them as `classid` and `objid`).
macro_rules! lock_key {
    () => {
        "((to_regnamespace(current_schema())::oid::bigint << 32) | $1::bigint)"
    };
}

const TRY_LOCK: &str = concat!("SELECT pg_try_advisory_lock(", lock_key!(), ")");

const UNLOCK: &str = concat!("SELECT pg_advisory_unlock(", lock_key!(), ")");

/// Subscriptions with their stream's head, their settings, how many events they parked, and
/// the session that owns each, if any; `LIST` or `ONE` follows.
macro_rules! list {
    ($rest:literal) => {
        concat!(
            "SELECT s.stream_uuid, s.subscription_name, s.last_seen, COALESCE(h.stream_version, 0), \
                 s.created_at, s.updated_at, s.settings, \
                 (SELECT count(*) FROM subscription_nacks n \
                  WHERE n.subscription_id = s.subscription_id AND n.parked_at IS NOT NULL), \
                 o.pid, o.application_name \
             FROM subscriptions s \
             LEFT JOIN streams h ON h.stream_uuid = s.stream_uuid \
             LEFT JOIN LATERAL ( \
                 SELECT l.pid, a.application_name FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid \
                 WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 \
                   AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
                   AND l.classid = to_regnamespace(current_schema())::oid AND l.objid = s.subscription_id::oid \
                 LIMIT 1) o ON true ",
            $rest
        )
    };
}

/// Every subscription.
const LIST: &str = list!("ORDER BY s.stream_uuid, s.subscription_name");

/// One subscription.
const ONE: &str = list!("WHERE s.stream_uuid = $1 AND s.subscription_name = $2");

type ListRow =
    (String, String, i64, i64, DateTime<Utc>, DateTime<Utc>, Option<String>, i64, Option<i32>, Option<String>);

fn listed(
    (stream, name, last_seen, head, created_at, updated_at, settings, parked, pid, application): ListRow,
) -> Result<SubscriptionInfo> {
    let row: SubscriptionListRow = (stream, name, last_seen, head, created_at, updated_at, settings, parked);
    into_subscription_info(row, pid, application)
}

impl PgStorage {
    /// Runs `sql`, `CREATE` or `CREATE_NEW`, for a subscription's row: the rows it wrote.
    async fn insert_subscription(
        &self,
        sql: &str,
        stream: &str,
        name: &str,
        start: u64,
        settings: &SubscriptionOptions,
    ) -> Result<u64> {
        let done = sqlx::query(sql)
            .bind(stream)
            .bind(name)
            .bind(signed("start position", start)?)
            .bind(stored::to_json(settings)?)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }
}

impl Subscriptions for PgStorage {
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
            sqlx::query_as(FIND).bind(stream).bind(name).fetch_optional(&self.pool).await?;
        row.map(into_subscription_row).transpose()
    }

    async fn update_settings(&self, stream: &str, name: &str, settings: &SubscriptionOptions) -> Result<Option<i32>> {
        let id = sqlx::query_scalar(UPDATE_SETTINGS)
            .bind(stream)
            .bind(name)
            .bind(stored::to_json(settings)?)
            .bind(self.channel())
            .fetch_optional(&self.pool)
            .await?;
        Ok(id)
    }

    async fn subscription_info(&self, stream: &str, name: &str) -> Result<Option<SubscriptionInfo>> {
        let row: Option<ListRow> = sqlx::query_as(ONE).bind(stream).bind(name).fetch_optional(&self.pool).await?;
        row.map(listed).transpose()
    }

    async fn delete_subscription(&self, stream: &str, name: &str) -> Result<bool> {
        let done = sqlx::query(DELETE).bind(stream).bind(name).execute(&self.pool).await?;
        Ok(done.rows_affected() > 0)
    }

    /// On a connection of its own, it takes the subscription's lock (so no owner can write
    /// meanwhile), writes and lets go.
    async fn set_checkpoint(&self, stream: &str, name: &str, checkpoint: u64) -> Result<bool> {
        let Some(row) = self.find_subscription(stream, name).await? else { return Ok(false) };
        let mut conn = super::connect_within(&self.connect_options, self.connect_timeout).await?;
        let (locked,): (bool,) = sqlx::query_as(TRY_LOCK).bind(row.id).fetch_one(&mut conn).await?;
        if !locked {
            conn.close().await.ok();
            return Err(Error::SubscriptionInUse);
        }
        let outcome = async {
            let mut tx = conn.begin().await?;
            let moved = sqlx::query(SET_CHECKPOINT)
                .bind(row.id)
                .bind(signed("checkpoint", checkpoint)?)
                .execute(&mut *tx)
                .await?;
            sqlx::query(super::nacks::FORGET_RETRIES)
                .bind(row.id)
                .bind(signed("checkpoint", checkpoint)?)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(moved.rows_affected() > 0)
        }
        .await;
        // Closing the connection lets go of the lock whatever happened above.
        conn.close().await.ok();
        outcome
    }

    async fn head(&self, stream: &str) -> Result<u64> {
        let row: Option<(i64,)> = sqlx::query_as(HEAD).bind(stream).fetch_optional(&self.pool).await?;
        row.map_or(Ok(0), |(version,)| unsigned("stream_version", version))
    }

    async fn list_subscriptions(&self) -> Result<Vec<SubscriptionInfo>> {
        let rows: Vec<ListRow> = sqlx::query_as(LIST).fetch_all(&self.pool).await?;
        rows.into_iter().map(listed).collect()
    }

    /// A dedicated connection.
    async fn open_lock_session(&self) -> Result<LockSession> {
        let conn = super::connect_within(&self.connect_options, self.connect_timeout).await?;
        Ok(LockSession { conn })
    }

    /// A LISTEN connection on the store's channel (its own pool of one connection, so it never
    /// takes one from the store's pool).
    async fn listen(&self) -> Result<NotificationListener> {
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(self.connect_timeout)
            .connect_lazy_with(self.connect_options.clone());
        // The pool bounds the connection attempt by `acquire_timeout`; the LISTEN itself by the
        // same timeout, so a server that stops answering cannot hold the notifier's task.
        let mut listener = PgListener::connect_with(&pool).await?;
        tokio::time::timeout(self.connect_timeout, listener.listen(&self.channel()))
            .await
            .map_err(|_| Error::Unavailable(format!("LISTEN got no answer within {:?}", self.connect_timeout)))??;
        Ok(NotificationListener { listener })
    }
}

/// The connection holding a node's subscription locks; checkpoints are written through it.
#[derive(Debug)]
pub struct LockSession {
    pub(super) conn: PgConnection,
}

impl backend::LockSession for LockSession {
    async fn try_lock(&mut self, subscription_id: i32) -> Result<bool> {
        let (locked,): (bool,) = sqlx::query_as(TRY_LOCK).bind(subscription_id).fetch_one(&mut self.conn).await?;
        Ok(locked)
    }

    async fn unlock(&mut self, subscription_id: i32) -> Result<()> {
        sqlx::query(UNLOCK).bind(subscription_id).execute(&mut self.conn).await?;
        Ok(())
    }

    async fn ping(&mut self) -> Result<()> {
        self.conn.ping().await?;
        Ok(())
    }

    async fn close(self) {
        if let Err(e) = self.conn.close().await {
            tracing::debug!(error = %e, "lock connection did not close cleanly");
        }
    }
}

/// The LISTEN connection on the store's channel.
pub struct NotificationListener {
    listener: PgListener,
}

impl backend::NotificationListener for NotificationListener {
    /// An error means the connection is lost: the notifier opens a new listener, and knows
    /// from that when the database is back.
    async fn recv(&mut self) -> Result<Wake> {
        match self.listener.try_recv().await? {
            None => Err(Error::Unavailable("the LISTEN connection was lost".into())),
            Some(notification) => Ok(parse_payload(notification.payload())),
        }
    }
}

const NOTIFY: &str = "SELECT pg_notify($1, $2)";

impl PgStorage {
    /// Tells every node's notifier, when the transaction on `conn` commits, that what hides
    /// entries of `stream` changed (its metadata, or a recreatable delete).
    pub(super) async fn notify_retention(&self, conn: &mut PgConnection, stream: &str) -> Result<()> {
        let payload = format!("retention,{stream}");
        sqlx::query(NOTIFY).bind(self.channel()).bind(payload).execute(&mut *conn).await?;
        Ok(())
    }
}

/// Parses the writer's payload `first,last,links` (see `append.rs`), a replay request (see
/// `nacks.rs`), a settings change (`UPDATE_SETTINGS`) or a retention change
/// ([`PgStorage::notify_retention`]). A payload it cannot read still wakes the notifier, which
/// then reads from its own position.
fn parse_payload(payload: &str) -> Wake {
    if let Some(id) = payload.strip_prefix("replay,") {
        return id.parse().map_or(Wake::Resync, Wake::Replay);
    }
    if let Some(id) = payload.strip_prefix("settings,") {
        return id.parse().map_or(Wake::Resync, Wake::Settings);
    }
    if let Some(stream) = payload.strip_prefix("retention,") {
        return Wake::Retention(stream.to_string());
    }
    let mut parts = payload.split(',');
    let _first = parts.next();
    let last = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    let links = parts.next() == Some("1");
    if last == 0 && !links {
        return Wake::Resync;
    }
    Wake::Committed { last, links }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_are_parsed_and_unreadable_ones_still_wake() {
        assert_eq!(parse_payload("5,9,0"), Wake::Committed { last: 9, links: false });
        assert_eq!(parse_payload("5,9,1"), Wake::Committed { last: 9, links: true });
        assert_eq!(parse_payload("0,0,1"), Wake::Committed { last: 0, links: true });
        assert_eq!(parse_payload("garbage"), Wake::Resync);
        assert_eq!(parse_payload("replay,42"), Wake::Replay(42));
        assert_eq!(parse_payload("replay,x"), Wake::Resync);
        assert_eq!(parse_payload("settings,7"), Wake::Settings(7));
        assert_eq!(parse_payload("retention,order-1,2"), Wake::Retention("order-1,2".into()));
    }
}
