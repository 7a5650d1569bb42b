//! The storage layer: SQL and nothing else. Plain async functions over a connection pool; it
//! knows nothing of actors. Each backend lives in its own folder (`postgres/`, `sqlite/`, the
//! same files in each) and implements the contract in `backend.rs`, where every operation is
//! documented once. The runtime and the facade call them through [`Storage`] and the session
//! enums below: runtime switches to the backend the database URL selects, one delegating line
//! per operation. The request and row types defined here (and in `rows.rs`) every backend
//! shares.

mod backend;

pub(crate) use backend::FilteredScan;
use scavenge::Scavenging;
mod batch;
pub(crate) mod members;
pub mod postgres;
pub(crate) mod retention;
mod rows;
pub(crate) mod scavenge;
pub mod sqlite;

use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, Utc};
use uuid::Uuid;

use self::backend::{
    Admin, Appends, Backend, LockSession as _, Metadata, Nacks, NotificationListener as _, OwnerWrites as _, Reads,
    Snapshots, Streams, Subscriptions, WriterSession as _,
};
use self::members::{MemberEntry, MemberSession as _, Membership};
use crate::cluster::ClusterMember;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::event::{AppendResult, DeleteMode, EventData, ExpectedVersion, RecordedEvent, StreamAppend, StreamInfo};
use crate::filter::EventFilter;
use crate::metadata::StreamMetadata;
use crate::page::{Page, PageRequest};
use crate::scavenge::{ScavengeOptions, ScavengeReport};
use crate::snapshot::SnapshotData;
use crate::subscription::{ParkedEvent, StartFrom, SubscriptionInfo, SubscriptionOptions};

pub use postgres::PgStorage;
pub(crate) use rows::{
    EVENT_COLUMNS, EventRow, HIDES_ANYTHING, INFO_COLUMNS, INFO_FROM, IndexedEvent, InfoRow, METADATA_COLUMNS,
    MetadataRow, NackRow, PageRow, ParkedRow, RETENTION_COLUMNS, RetentionRow, SnapshotRow, StreamRow,
    SubscriptionListRow, SubscriptionRowRow, escape_like, find_stream_sql, index_columns, into_events, into_info,
    into_nacks, into_parked, into_snapshot, into_subscription_info, into_subscription_row, signed, unsigned,
};
pub use sqlite::SqliteStorage;

/// One caller's write, which the writer commits as part of a batch: all of its parts or none.
#[derive(Debug)]
pub struct WriteRequest {
    /// The writes to streams, in order: each is checked against the versions the earlier ones
    /// produced (the same stream may come twice), and their events take contiguous positions in
    /// this order.
    pub parts: Vec<StreamWrite>,
    /// Made by [`append_to_streams`](crate::EventStore::append_to_streams): a refused part is
    /// reported as [`Error::AppendFailed`] naming its stream (also when it is the only part).
    /// Otherwise (one append or one link) the part's own error is the request's.
    pub multi_stream: bool,
    /// Where the writing transaction is, so a caller whose reply was lost can learn the outcome.
    pub progress: WriteProgress,
}

/// What the writer answers for a request: one result per part, in order, or why nothing of it
/// was stored.
pub type WriteOutcome = Result<Vec<AppendResult>>;

impl WriteRequest {
    /// A request of one part: an append or a link, whose refusal is the part's own error.
    pub fn single(stream: String, expected: ExpectedVersion, op: WriteOp) -> WriteRequest {
        WriteRequest {
            parts: vec![StreamWrite { stream, expected, op }],
            multi_stream: false,
            progress: WriteProgress::default(),
        }
    }

    /// The request of one [`append_to_streams`](crate::EventStore::append_to_streams) call:
    /// appends only (a link is always alone in its request).
    pub fn multi_stream(appends: Vec<StreamAppend>) -> WriteRequest {
        let parts = appends
            .into_iter()
            .map(|a| StreamWrite { stream: a.stream, expected: a.expected, op: WriteOp::Append(a.events) })
            .collect();
        WriteRequest { parts, multi_stream: true, progress: WriteProgress::default() }
    }

    /// Entries the request adds to its streams, over all parts.
    pub fn len(&self) -> usize {
        self.parts.iter().map(|p| p.op.len()).sum()
    }

    /// Payload bytes carried by the request, over all parts.
    pub fn payload_bytes(&self) -> usize {
        self.parts.iter().map(|p| p.op.payload_bytes()).sum()
    }

    /// The ids of the events it appends, over all parts, in order.
    pub fn appended_ids(&self) -> impl Iterator<Item = Uuid> + '_ {
        self.parts
            .iter()
            .filter_map(|p| match &p.op {
                WriteOp::Append(events) => Some(events.iter().map(|e| e.event_id)),
                WriteOp::Link(_) => None,
            })
            .flatten()
    }

    /// The link this request makes (stream, linked ids), if it is one. A link is always alone
    /// in its request.
    pub fn link(&self) -> Option<(&str, &[Uuid])> {
        match self.parts.as_slice() {
            [StreamWrite { stream, op: WriteOp::Link(ids), .. }] => Some((stream, ids)),
            _ => None,
        }
    }

    /// The streams it writes to, for messages: `` `a` `` or `` `a`, `b` ``.
    pub fn streams(&self) -> String {
        let names: Vec<String> = self.parts.iter().map(|p| format!("`{}`", p.stream)).collect();
        names.join(", ")
    }

    /// How the writer reports that `part` was refused with `error` (nothing of the request is
    /// stored either way).
    pub(crate) fn refusal(&self, part: &StreamWrite, error: Error) -> Error {
        if self.multi_stream {
            Error::AppendFailed { stream: part.stream.clone(), source: Box::new(error) }
        } else {
            error
        }
    }
}

/// One stream's write within a [`WriteRequest`].
#[derive(Debug)]
pub struct StreamWrite {
    /// Target stream.
    pub stream: String,
    /// Optimistic-concurrency expectation, checked against the stream as the batch found it and
    /// as the writes before this one left it.
    pub expected: ExpectedVersion,
    /// What to write.
    pub op: WriteOp,
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
    /// Sent in a one-statement fast-path batch that gives the request's events contiguous
    /// positions from this one on (all its parts, in order).
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
    /// request's first entry this number: the global position of its first event for appends
    /// (the events of all its parts follow, in order), its first version in the stream for a
    /// link.
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

impl Direction {
    /// How a read's SQL says it, on every backend: the comparison with its start and the order.
    pub(crate) fn sql(self) -> (&'static str, &'static str) {
        match self {
            Direction::Forward => (">=", "ASC"),
            Direction::Backward => ("<=", "DESC"),
        }
    }
}

/// What woke the notifier.
#[derive(Debug, Clone, PartialEq, Eq)]
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
    /// The settings of subscription row `id` were changed: the node running it reloads them.
    Settings(i32),
    /// What hides entries of this stream changed (its metadata was set, or it was deleted
    /// recreatably): live paths and subscriptions of it apply the new retention.
    Retention(String),
}

/// A subscription's row: its id, its checkpoint and its settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionRow {
    /// The row's id (on PostgreSQL, the low half of its advisory lock key).
    pub id: i32,
    /// The checkpoint: every event up to this event number was acked.
    pub last_seen: u64,
    /// Its stored settings; `None` if a version that stored none created it, or they cannot be
    /// read.
    pub settings: Option<SubscriptionOptions>,
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

/// Ends a transaction by what happened in it: commits on `Ok`; on an error rolls back at once
/// (releasing its locks now, not when the pool next touches the connection) and returns it.
pub(crate) async fn commit_or_rollback<DB: sqlx::Database, T>(
    tx: sqlx::Transaction<'_, DB>,
    outcome: Result<T>,
) -> Result<T> {
    match outcome {
        Ok(value) => {
            tx.commit().await?;
            Ok(value)
        }
        Err(e) => {
            tx.rollback().await.ok();
            Err(e)
        }
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

/// The storage of one store, on the backend its database URL selects: the runtime switch over
/// the [`backend`] contract. Cloning is cheap (the backends share their pools).
#[derive(Debug, Clone)]
pub enum Storage {
    /// A schema of a PostgreSQL database.
    Postgres(Box<PgStorage>),
    /// An SQLite file (or an in-memory database).
    Sqlite(SqliteStorage),
}

/// Runs `$call` with `$backend` naming the backend type `$config`'s database URL selects: the
/// one place where a URL picks a backend.
macro_rules! by_url {
    ($config:expr, $backend:ident => $call:expr) => {
        if $config.is_sqlite() {
            type $backend = SqliteStorage;
            $call
        } else {
            type $backend = PgStorage;
            $call
        }
    };
}

/// One-line delegates of a runtime switch (an enum with a `Postgres` and a `Sqlite` variant):
/// each method calls the [`backend`] method of the same name, documented there, on the value
/// inside. `=> Switch` puts a session the backend opened into the session switch `Switch`.
macro_rules! delegate {
    (@call $self:ident, $switch:ident, $name:ident($($arg:ident),*) $(=> $wrap:ident)?) => {
        match $self {
            $switch::Postgres(backend) => backend.$name($($arg),*).await $(.map($wrap::Postgres))?,
            $switch::Sqlite(backend) => backend.$name($($arg),*).await $(.map($wrap::Sqlite))?,
        }
    };
    ($switch:ident;) => {};
    ($switch:ident; fn $name:ident(&self $(, $arg:ident: $ty:ty)*) $(-> $ret:ty)? $(=> $wrap:ident)?; $($rest:tt)*) => {
        pub async fn $name(&self $(, $arg: $ty)*) $(-> $ret)? {
            delegate!(@call self, $switch, $name($($arg),*) $(=> $wrap)?)
        }
        delegate!($switch; $($rest)*);
    };
    ($switch:ident; fn $name:ident(&mut self $(, $arg:ident: $ty:ty)*) $(-> $ret:ty)?; $($rest:tt)*) => {
        pub async fn $name(&mut self $(, $arg: $ty)*) $(-> $ret)? {
            delegate!(@call self, $switch, $name($($arg),*))
        }
        delegate!($switch; $($rest)*);
    };
    ($switch:ident; fn $name:ident(self); $($rest:tt)*) => {
        pub async fn $name(self) {
            delegate!(@call self, $switch, $name())
        }
        delegate!($switch; $($rest)*);
    };
}

/// Each method is the [`backend`] operation of the same name; the associated functions take the
/// backend from the URL, the methods the backend the store is on.
impl Storage {
    pub async fn open(config: &Config) -> Result<Storage> {
        by_url!(config, B => B::open(config).await.map(Storage::from))
    }

    pub async fn create_database(config: &Config) -> Result<bool> {
        by_url!(config, B => B::create_database(config).await)
    }

    pub async fn init_store(config: &Config) -> Result<usize> {
        by_url!(config, B => B::init_store(config).await)
    }

    pub async fn migrate_store(config: &Config) -> Result<usize> {
        by_url!(config, B => B::migrate_store(config).await)
    }

    pub async fn migration_status(config: &Config) -> Result<Vec<MigrationStatus>> {
        by_url!(config, B => B::migration_status(config).await)
    }

    pub async fn drop_store(config: &Config) -> Result<bool> {
        by_url!(config, B => B::drop_store(config).await)
    }

    delegate! { Storage;
        fn close(&self);
        fn open_writer_session(&self) -> Result<WriterSession> => WriterSession;
        fn resolve_in_doubt(&self, request: &WriteRequest) -> Result<Option<Vec<AppendResult>>>;
        fn read_stream(&self, stream: &str, from: u64, count: u64, direction: Direction) -> Result<Vec<RecordedEvent>>;
        fn read_all(&self, from: u64, count: u64, direction: Direction) -> Result<Vec<RecordedEvent>>;
        fn read_all_indexed(&self, from: u64, count: u64) -> Result<Vec<IndexedEvent>>;
        fn read_all_filtered(&self, filter: &EventFilter, from: u64, count: u64, direction: Direction) -> Result<Vec<RecordedEvent>>;
        fn scan_all_filtered(&self, filter: &EventFilter, from: u64, count: u64, window: u64) -> Result<FilteredScan>;
        fn read_numbers(&self, stream: &str, numbers: &[u64]) -> Result<Vec<RecordedEvent>>;
        fn stream_info(&self, stream: &str) -> Result<StreamInfo>;
        fn paginate_streams(&self, request: &PageRequest) -> Result<Page<StreamInfo>>;
        fn count_streams(&self, request: &PageRequest, search: Option<&str>) -> Result<u64>;
        fn delete_stream(&self, stream: &str, expected: ExpectedVersion, mode: DeleteMode) -> Result<()>;
        fn set_stream_metadata(&self, stream: &str, expected: ExpectedVersion, metadata: &StreamMetadata) -> Result<u64>;
        fn stream_metadata(&self, stream: &str) -> Result<Option<(u64, StreamMetadata)>>;
        fn retentions(&self, streams: &[&str]) -> Result<Vec<RetentionRow>>;
        fn record_snapshot(&self, snapshot: &SnapshotData) -> Result<()>;
        fn read_snapshot(&self, source_uuid: &str) -> Result<SnapshotData>;
        fn delete_snapshot(&self, source_uuid: &str) -> Result<()>;
        fn subscription_row(&self, stream: &str, name: &str, start: u64, settings: &SubscriptionOptions) -> Result<SubscriptionRow>;
        fn create_subscription(&self, stream: &str, name: &str, start: u64, settings: &SubscriptionOptions) -> Result<bool>;
        fn find_subscription(&self, stream: &str, name: &str) -> Result<Option<SubscriptionRow>>;
        fn update_settings(&self, stream: &str, name: &str, settings: &SubscriptionOptions) -> Result<Option<i32>>;
        fn subscription_info(&self, stream: &str, name: &str) -> Result<Option<SubscriptionInfo>>;
        fn delete_subscription(&self, stream: &str, name: &str) -> Result<bool>;
        fn set_checkpoint(&self, stream: &str, name: &str, checkpoint: u64) -> Result<bool>;
        fn head(&self, stream: &str) -> Result<u64>;
        fn start_position(&self, stream: &str, start_from: StartFrom) -> Result<u64>;
        fn list_subscriptions(&self) -> Result<Vec<SubscriptionInfo>>;
        fn open_lock_session(&self) -> Result<LockSession> => LockSession;
        fn listen(&self) -> Result<NotificationListener> => NotificationListener;
        fn load_nacks(&self, id: i32, checkpoint: u64) -> Result<Vec<StoredNack>>;
        fn replay_requests(&self, id: i32) -> Result<Vec<StoredNack>>;
        fn request_replay(&self, stream: &str, name: &str, limit: Option<u64>) -> Result<Option<(i32, u64)>>;
        fn parked_events(&self, stream: &str, name: &str) -> Result<Option<Vec<ParkedEvent>>>;
        fn join(&self, member: &MemberEntry) -> Result<MemberSession> => MemberSession;
        fn members(&self) -> Result<Vec<ClusterMember>>;
    }
}

impl Storage {
    /// `postgres` or `sqlite`.
    pub fn backend_name(&self) -> &'static str {
        match self {
            Storage::Postgres(_) => "postgres",
            Storage::Sqlite(_) => "sqlite",
        }
    }

    /// The read pool's open connections and, of those, the idle ones.
    pub fn pool_status(&self) -> (u32, u32) {
        match self {
            Storage::Postgres(backend) => backend.pool_status(),
            Storage::Sqlite(backend) => backend.pool_status(),
        }
    }

    /// Removes what retention hides (or measures it, in a dry run): see `scavenge.rs`.
    pub async fn scavenge(&self, options: &ScavengeOptions) -> Result<ScavengeReport> {
        match self {
            Storage::Postgres(backend) => scavenge::run(backend.open_scavenge().await?, options).await,
            Storage::Sqlite(backend) => scavenge::run(backend.open_scavenge().await?, options).await,
        }
    }
}

impl From<PgStorage> for Storage {
    fn from(storage: PgStorage) -> Storage {
        Storage::Postgres(Box::new(storage))
    }
}

impl From<SqliteStorage> for Storage {
    fn from(storage: SqliteStorage) -> Storage {
        Storage::Sqlite(storage)
    }
}

/// The writer's session: what it keeps between batches, and what it writes through.
#[derive(Debug)]
pub enum WriterSession {
    /// Its own PostgreSQL connection and what it remembers of the store (the fast path).
    Postgres(postgres::WriterSession),
    /// A turn on the store's one write connection.
    Sqlite(sqlite::WriterSession),
}

impl WriterSession {
    delegate! { WriterSession;
        fn write_batch(&mut self, requests: &[Arc<WriteRequest>]) -> Result<Vec<WriteOutcome>>;
        fn close(self);
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
    delegate! { LockSession;
        fn try_lock(&mut self, subscription_id: i32) -> Result<bool>;
        fn unlock(&mut self, subscription_id: i32) -> Result<()>;
        fn ping(&mut self) -> Result<()>;
        fn write_checkpoints(&mut self, checkpoints: &[(i32, u64)]) -> Result<Vec<i32>>;
        fn write(&mut self, subscription_id: i32, write: &SubscriptionWrite) -> Result<bool>;
        fn close(self);
    }
}

/// The session that keeps one member in the store's cluster.
#[derive(Debug)]
pub enum MemberSession {
    /// A dedicated connection holding the member's row (and the lead, once it has it).
    Postgres(postgres::MemberSession),
    /// An entry in this process's memory.
    Sqlite(sqlite::MemberSession),
}

impl MemberSession {
    delegate! { MemberSession;
        fn beat(&mut self) -> Result<bool>;
        fn leave(self);
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
    delegate! { NotificationListener;
        fn recv(&mut self) -> Result<Wake>;
    }
}
