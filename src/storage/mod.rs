//! The storage layer: SQL and nothing else. Plain async functions over a connection pool; it
//! knows nothing of actors. Each backend lives in its own module (`postgres/`, `sqlite/`); the
//! runtime and the facade call them through [`Storage`] and the session types below, which
//! dispatch to the backend the database URL selects, and through the request and row types
//! defined here, which every backend shares.

mod batch;
pub mod postgres;
mod rows;
pub mod sqlite;

use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::config::{Config, DatabaseOptions};
use crate::error::{Error, Result};
use crate::event::{AppendResult, DeleteMode, EventData, ExpectedVersion, RecordedEvent, StreamInfo};
use crate::page::{Page, PageRequest};
use crate::snapshot::SnapshotData;
use crate::subscription::{ParkedEvent, SubscriptionInfo};

pub use postgres::PgStorage;
pub(crate) use rows::{
    EVENT_COLUMNS, EventRow, InfoRow, NackRow, PageRow, ParkedRow, SnapshotRow, escape_like, into_events, into_info,
    into_nacks, into_parked, into_snapshot, into_subscription_info, signed, unsigned,
};
pub use sqlite::SqliteStorage;

/// One write the writer commits as part of a batch.
#[derive(Debug)]
pub struct WriteRequest {
    /// Target stream.
    pub stream: String,
    /// Optimistic-concurrency expectation, checked under the stream's row lock.
    pub expected: ExpectedVersion,
    /// What to write.
    pub op: WriteOp,
    /// Where the writing transaction is, so a caller whose reply was lost can learn the outcome.
    pub progress: WriteProgress,
}

/// The two kinds of writes that move a stream's version.
#[derive(Debug)]
pub enum WriteOp {
    /// Append new events (they also enter `$all`).
    Append(Vec<EventData>),
    /// Link already stored events, by id, into the stream.
    Link(Vec<Uuid>),
}

impl WriteOp {
    /// Number of entries this write adds to its stream.
    pub fn len(&self) -> usize {
        match self {
            WriteOp::Append(events) => events.len(),
            WriteOp::Link(ids) => ids.len(),
        }
    }

    /// Payload bytes carried by the write.
    pub fn payload_bytes(&self) -> usize {
        match self {
            WriteOp::Append(events) => events.iter().map(EventData::payload_size).sum(),
            WriteOp::Link(ids) => ids.len() * 16,
        }
    }
}

/// How far the writer got with a request, so a caller whose reply was lost can learn the
/// outcome from the database instead of guessing.
#[derive(Debug, Default)]
pub struct WriteProgress(Mutex<Attempt>);

/// The writer's latest attempt at a request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Attempt {
    /// Not sent to the database yet (or only in a transaction that never reached the `$all`
    /// lock, which cannot commit: every path to COMMIT goes through that lock).
    #[default]
    NotStarted,
    /// Sent in a one-statement fast-path batch that gives the request these positions.
    Fast {
        /// Global position of the request's first event.
        first_position: i64,
    },
    /// In the transaction with this id, which holds the `$all` lock.
    Locked {
        /// `txid_current()` of the transaction.
        txid: i64,
    },
    /// Sent on the embedded backend's one write connection, in a transaction that gives the
    /// request's first entry this number: the global position of its first event for an
    /// append, its first version in the stream for a link.
    Embedded {
        /// The number the request's first entry gets if the transaction commits.
        first: i64,
    },
}

impl WriteProgress {
    /// Records the writer's latest attempt.
    pub fn record(&self, attempt: Attempt) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = attempt;
    }

    /// The writer's latest attempt.
    pub fn attempt(&self) -> Attempt {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Direction of a read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Ascending event numbers.
    Forward,
    /// Descending event numbers.
    Backward,
}

/// What woke the notifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// A batch committed; every global position up to `last` is committed. `links` if the
    /// batch also linked events into streams (links never enter `$all`).
    Committed {
        /// The last global position of the batch (0 for a batch of links only).
        last: u64,
        /// Whether the batch wrote links.
        links: bool,
    },
    /// Wake-ups may have been missed (a lost LISTEN connection, an unreadable payload, a
    /// listener that fell behind): the notifier reads from its own position.
    Resync,
    /// The parked events of subscription row `id` were marked for replay.
    Replay(i32),
}

/// A subscription's row: its id and its checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubscriptionRow {
    /// The row's id (on PostgreSQL, the low half of its advisory lock key).
    pub id: i32,
    /// The checkpoint: every event up to this event number was acked.
    pub last_seen: u64,
}

/// A retry or a park to record for one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NackRecord {
    /// The event's number within the subscription (stream version, or global position).
    pub event_number: u64,
    /// Times it was retried so far.
    pub retry_count: u32,
    /// Why (the subscriber's reason, or the message timeout).
    pub reason: String,
    /// Parked (it no longer holds the checkpoint back) rather than being retried.
    pub parked: bool,
}

/// Changes of one subscription, written together by its owner.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubscriptionWrite {
    /// The new checkpoint, if it moved.
    pub checkpoint: Option<u64>,
    /// Retries and parks to record.
    pub nacks: Vec<NackRecord>,
    /// Parked events that were replayed and acked (or skipped): their rows go.
    pub cleared: Vec<u64>,
    /// Forget retry counts of events up to this number (the checkpoint passed them).
    pub forget_retries_upto: Option<u64>,
}

impl SubscriptionWrite {
    /// Only the checkpoint moves: one statement, no transaction.
    pub(crate) fn checkpoint_only(&self) -> bool {
        self.nacks.is_empty() && self.cleared.is_empty() && self.forget_retries_upto.is_none()
    }
}

/// A stored retry or park of a subscription, as an owner loads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredNack {
    /// The event's number within the subscription.
    pub event_number: u64,
    /// Times it was retried.
    pub retry_count: u32,
    /// Whether it is parked.
    pub parked: bool,
    /// Whether a replay of it was asked for.
    pub replay_requested: bool,
}

/// One migration and whether the store has it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct MigrationStatus {
    /// The migration's version (its file name's number).
    pub version: i64,
    /// What it does.
    pub description: String,
    /// When it was applied; `None` while pending.
    pub applied_at: Option<DateTime<Utc>>,
}

impl MigrationStatus {
    /// Whether the migration is applied.
    pub fn is_applied(&self) -> bool {
        self.applied_at.is_some()
    }

    /// Every migration of `migrator`, with the applied ones' times from `applied`.
    pub(crate) fn of(migrator: &sqlx::migrate::Migrator, applied: &[(i64, DateTime<Utc>)]) -> Vec<MigrationStatus> {
        migrator
            .iter()
            .map(|m| MigrationStatus {
                version: m.version,
                description: m.description.to_string(),
                applied_at: applied.iter().find(|(v, _)| *v == m.version).map(|(_, at)| *at),
            })
            .collect()
    }
}

/// The applied migrations (version, checksum) that are not this build's: the migration table
/// is shared with another tool, so the store's objects cannot be told from that tool's.
pub(crate) fn foreign_migrations(migrator: &sqlx::migrate::Migrator, applied: &[(i64, Vec<u8>)]) -> Vec<String> {
    applied
        .iter()
        .filter(|(version, checksum)| !migrator.iter().any(|m| m.version == *version && *m.checksum == **checksum))
        .map(|(version, _)| version.to_string())
        .collect()
}

/// Checks that a store has every migration of this build (for `auto_init = false`); `store`
/// names it in the error (a schema, a file).
pub(crate) fn require_up_to_date(status: &[MigrationStatus], store: &str) -> Result<()> {
    if status.iter().all(|m| !m.is_applied()) {
        return Err(Error::Migration(format!(
            "{store} holds no chronik store; run `chronik init` or set auto_init = true"
        )));
    }
    if let Some(pending) = status.iter().find(|m| !m.is_applied()) {
        return Err(Error::Migration(format!(
            "migration {} ({}) is pending; run `chronik migrate`",
            pending.version, pending.description
        )));
    }
    Ok(())
}

/// The storage of one store, on the backend its database URL selects. Cloning is cheap (the
/// backends share their pools).
#[derive(Debug, Clone)]
pub enum Storage {
    /// A schema of a PostgreSQL database.
    Postgres(Box<PgStorage>),
    /// An SQLite file (or an in-memory database).
    Sqlite(SqliteStorage),
}

/// Calls the same method on whichever backend `$storage` is.
macro_rules! dispatch {
    ($storage:expr, $backend:ident => $call:expr) => {
        match $storage {
            Storage::Postgres($backend) => $call,
            Storage::Sqlite($backend) => $call,
        }
    };
}

impl Storage {
    /// Opens the store `config` names, preparing it first: with `auto_init`, creating and
    /// migrating it as needed; otherwise checking that it exists and is up to date.
    pub async fn open(config: &Config) -> Result<Storage> {
        match config.database_options()? {
            DatabaseOptions::Postgres => {
                if config.auto_init && !config.read_only {
                    postgres::init_store(config).await?;
                } else {
                    postgres::check_up_to_date(config).await?;
                }
                Ok(Storage::Postgres(Box::new(PgStorage::connect_lazy(config)?)))
            }
            DatabaseOptions::Sqlite(options) => Ok(Storage::Sqlite(SqliteStorage::open(config, *options).await?)),
        }
    }

    /// Closes the connections (waiting for those in use) and releases what the store holds.
    pub async fn close(&self) {
        dispatch!(self, s => s.close().await)
    }

    /// Opens a session for the writer.
    pub async fn open_writer_session(&self) -> Result<WriterSession> {
        match self {
            Storage::Postgres(s) => s.open_writer_session().await.map(WriterSession::Postgres),
            Storage::Sqlite(s) => s.open_writer_session().await.map(WriterSession::Sqlite),
        }
    }

    /// Commits `requests` in one transaction in the writer's session. The outer `Err` means
    /// the transaction failed and nothing was written; otherwise each request has its own
    /// outcome, in order.
    pub async fn write_batch(
        &self,
        session: &mut WriterSession,
        requests: &[Arc<WriteRequest>],
    ) -> Result<Vec<Result<AppendResult>>> {
        match (self, session) {
            (Storage::Postgres(s), WriterSession::Postgres(session)) => s.write_batch(session, requests).await,
            (Storage::Sqlite(s), WriterSession::Sqlite(session)) => s.write_batch(session, requests).await,
            _ => Err(Error::Unavailable("a writer session of another backend".into())),
        }
    }

    /// Finds out what became of a request whose writer stopped before replying.
    ///
    /// `Ok(Some(result))`: it committed. `Ok(None)`: nothing of it was stored. `Err`: the
    /// outcome could not be learned (the database is unreachable).
    pub async fn resolve_in_doubt(&self, request: &WriteRequest) -> Result<Option<AppendResult>> {
        dispatch!(self, s => s.resolve_in_doubt(request).await)
    }

    /// Up to `count` entries of `stream` from version `from` (inclusive) in `direction`.
    pub async fn read_stream(
        &self,
        stream: &str,
        from: u64,
        count: u64,
        direction: Direction,
    ) -> Result<Vec<RecordedEvent>> {
        dispatch!(self, s => s.read_stream(stream, from, count, direction).await)
    }

    /// Up to `count` events of `$all` from global position `from` (inclusive) in `direction`.
    pub async fn read_all(&self, from: u64, count: u64, direction: Direction) -> Result<Vec<RecordedEvent>> {
        dispatch!(self, s => s.read_all(from, count, direction).await)
    }

    /// The entries of `stream` (or `$all`) with these event numbers, in order; numbers with no
    /// entry (hard-deleted, or a deleted stream) are left out.
    pub async fn read_numbers(&self, stream: &str, numbers: &[u64]) -> Result<Vec<RecordedEvent>> {
        dispatch!(self, s => s.read_numbers(stream, numbers).await)
    }

    /// Metadata of a stream (or of `$all`); `StreamNotFound` if it has none.
    pub async fn stream_info(&self, stream: &str) -> Result<StreamInfo> {
        dispatch!(self, s => s.stream_info(stream).await)
    }

    /// One page of streams (never `$all`).
    pub async fn paginate_streams(&self, request: &PageRequest) -> Result<Page<StreamInfo>> {
        dispatch!(self, s => s.paginate_streams(request).await)
    }

    /// Deletes a stream after checking `expected` under its lock.
    pub async fn delete_stream(&self, stream: &str, expected: ExpectedVersion, mode: DeleteMode) -> Result<()> {
        dispatch!(self, s => s.delete_stream(stream, expected, mode).await)
    }

    /// Records (or replaces) the snapshot of `snapshot.source_uuid`.
    pub async fn record_snapshot(&self, snapshot: &SnapshotData) -> Result<()> {
        dispatch!(self, s => s.record_snapshot(snapshot).await)
    }

    /// Reads the snapshot of a source: `SnapshotNotFound` if there is none.
    pub async fn read_snapshot(&self, source_uuid: &str) -> Result<SnapshotData> {
        dispatch!(self, s => s.read_snapshot(source_uuid).await)
    }

    /// Deletes the snapshot of a source (no error if there is none).
    pub async fn delete_snapshot(&self, source_uuid: &str) -> Result<()> {
        dispatch!(self, s => s.delete_snapshot(source_uuid).await)
    }

    /// The subscription's row, created with checkpoint `start` if it does not exist yet.
    pub async fn subscription_row(&self, stream: &str, name: &str, start: u64) -> Result<SubscriptionRow> {
        dispatch!(self, s => s.subscription_row(stream, name, start).await)
    }

    /// The subscription's row, if it exists.
    pub async fn find_subscription(&self, stream: &str, name: &str) -> Result<Option<SubscriptionRow>> {
        dispatch!(self, s => s.find_subscription(stream, name).await)
    }

    /// Deletes the subscription's row (its checkpoint); whether there was one.
    pub async fn delete_subscription(&self, stream: &str, name: &str) -> Result<bool> {
        dispatch!(self, s => s.delete_subscription(stream, name).await)
    }

    /// Moves a subscription's checkpoint while no node runs it; `false` if it does not exist,
    /// [`Error::SubscriptionInUse`] while it runs.
    pub async fn set_checkpoint(&self, stream: &str, name: &str, checkpoint: u64) -> Result<bool> {
        dispatch!(self, s => s.set_checkpoint(stream, name, checkpoint).await)
    }

    /// The last event number of `stream` (for `$all`, the last global position); 0 if the
    /// stream has no row.
    pub async fn head(&self, stream: &str) -> Result<u64> {
        dispatch!(self, s => s.head(stream).await)
    }

    /// Every subscription of the store, with checkpoint, lag and owner.
    pub async fn list_subscriptions(&self) -> Result<Vec<SubscriptionInfo>> {
        dispatch!(self, s => s.list_subscriptions().await)
    }

    /// Opens the node's lock session, which owns named subscriptions and writes for them.
    pub async fn open_lock_session(&self) -> Result<LockSession> {
        match self {
            Storage::Postgres(s) => s.open_lock_session().await.map(LockSession::Postgres),
            Storage::Sqlite(s) => Ok(LockSession::Sqlite(s.lock_session())),
        }
    }

    /// Starts listening for the writer's wake-ups.
    pub async fn listen(&self) -> Result<NotificationListener> {
        match self {
            Storage::Postgres(s) => s.listen().await.map(NotificationListener::Postgres),
            Storage::Sqlite(s) => Ok(NotificationListener::Sqlite(s.listen())),
        }
    }

    /// Retry counts and parks after `checkpoint`, and every parked event to replay, of
    /// subscription `id`.
    pub async fn load_nacks(&self, id: i32, checkpoint: u64) -> Result<Vec<StoredNack>> {
        dispatch!(self, s => s.load_nacks(id, checkpoint).await)
    }

    /// Parked events of subscription `id` whose replay was asked for.
    pub async fn replay_requests(&self, id: i32) -> Result<Vec<StoredNack>> {
        dispatch!(self, s => s.replay_requests(id).await)
    }

    /// Marks every parked event of the subscription for replay and wakes its owner: the
    /// subscription's id and how many events are marked, or `None` if it does not exist.
    pub async fn request_replay(&self, stream: &str, name: &str) -> Result<Option<(i32, u64)>> {
        dispatch!(self, s => s.request_replay(stream, name).await)
    }

    /// The parked events of a subscription, oldest first; `None` if it does not exist.
    pub async fn parked_events(&self, stream: &str, name: &str) -> Result<Option<Vec<ParkedEvent>>> {
        dispatch!(self, s => s.parked_events(stream, name).await)
    }
}

/// The writer's session: what it keeps between batches.
#[derive(Debug)]
pub enum WriterSession {
    /// Its own PostgreSQL connection and what it remembers of the store (the fast path).
    Postgres(postgres::WriterSession),
    /// A turn on the store's one write connection.
    Sqlite(sqlite::WriterSession),
}

impl WriterSession {
    /// Ends the session politely.
    pub async fn close(self) {
        match self {
            WriterSession::Postgres(session) => session.close().await,
            WriterSession::Sqlite(_) => {}
        }
    }
}

/// The session through which a node owns named subscriptions and writes their checkpoints,
/// retry counts and parks: only a live owner can write them.
#[derive(Debug)]
pub enum LockSession {
    /// A dedicated connection holding advisory locks.
    Postgres(postgres::LockSession),
    /// The store's process, which holds the file: it owns every subscription.
    Sqlite(sqlite::LockSession),
}

impl LockSession {
    /// Takes the subscription's lock if no other session holds it.
    pub async fn try_lock(&mut self, subscription_id: i32) -> Result<bool> {
        match self {
            LockSession::Postgres(session) => session.try_lock(subscription_id).await,
            LockSession::Sqlite(session) => Ok(session.try_lock(subscription_id)),
        }
    }

    /// Releases the subscription's lock.
    pub async fn unlock(&mut self, subscription_id: i32) -> Result<()> {
        match self {
            LockSession::Postgres(session) => session.unlock(subscription_id).await,
            LockSession::Sqlite(session) => {
                session.unlock(subscription_id);
                Ok(())
            }
        }
    }

    /// Checks that the session (and with it every lock it holds) is alive.
    pub async fn ping(&mut self) -> Result<()> {
        match self {
            LockSession::Postgres(session) => session.ping().await,
            LockSession::Sqlite(session) => session.ping().await,
        }
    }

    /// Moves the checkpoints of several subscriptions with one round trip; returns the ids whose
    /// rows are gone (deleted), for which nothing was written.
    pub async fn write_checkpoints(&mut self, checkpoints: &[(i32, u64)]) -> Result<Vec<i32>> {
        match self {
            LockSession::Postgres(session) => session.write_checkpoints(checkpoints).await,
            LockSession::Sqlite(session) => session.write_checkpoints(checkpoints).await,
        }
    }

    /// Writes a subscription's changes in one transaction; `false` if its row is gone (it was
    /// deleted), in which case nothing is written.
    pub async fn write(&mut self, subscription_id: i32, write: &SubscriptionWrite) -> Result<bool> {
        match self {
            LockSession::Postgres(session) => session.write(subscription_id, write).await,
            LockSession::Sqlite(session) => session.write(subscription_id, write).await,
        }
    }

    /// Ends the session, releasing its locks.
    pub async fn close(self) {
        match self {
            LockSession::Postgres(session) => session.close().await,
            LockSession::Sqlite(session) => session.close(),
        }
    }
}

/// Where the notifier hears of commits.
pub enum NotificationListener {
    /// A LISTEN connection on the store's channel.
    Postgres(postgres::NotificationListener),
    /// The writer's in-process announcements.
    Sqlite(sqlite::NotificationListener),
}

impl NotificationListener {
    /// The next wake-up. An error means the listener cannot go on (it is opened again).
    pub async fn recv(&mut self) -> Result<Wake> {
        match self {
            NotificationListener::Postgres(listener) => listener.recv().await,
            NotificationListener::Sqlite(listener) => listener.recv().await,
        }
    }
}
