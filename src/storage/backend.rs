//! The backend contract: what a storage backend does, documented once, here. [`PgStorage`] and
//! [`SqliteStorage`] implement it; [`Storage`] and its session enums pick one at run time and
//! call it (an `enum`, so every call is static: no `dyn`, no boxing).
//!
//! Each trait is one room of a backend's folder, and both folders hold the same rooms:
//!
//! | trait | file | what |
//! |---|---|---|
//! | [`Backend`] | `mod.rs` | opening and closing a store; every trait below |
//! | [`Admin`] | `admin.rs` | creating, migrating and dropping a store |
//! | [`Appends`], [`WriterSession`] | `append.rs` | the writer's batches, in-doubt outcomes |
//! | [`Reads`] | `read.rs` | one stream's entries and `$all`, by number |
//! | [`Streams`] | `streams.rs` | stream info, pagination, deletes |
//! | [`Metadata`] | `metadata.rs` | stream metadata (retention rules, custom JSON) |
//! | `Scavenging`, `ScavengeSession` (in `storage/scavenge.rs`, beside the loop that drives them) | `scavenge.rs` | removing what retention hides |
//! | [`Snapshots`] | `snapshots.rs` | one snapshot per source |
//! | [`Subscriptions`], [`LockSession`], [`NotificationListener`] | `subscriptions.rs` | rows, settings, ownership, wake-ups |
//! | [`Nacks`], [`OwnerWrites`] | `nacks.rs` | retries and parks, and what an owner writes |
//!
//! The sessions a backend opens are associated types (`Appends::WriterSession`,
//! `Subscriptions::LockSession`, `Subscriptions::NotificationListener`), and each carries what
//! it writes through (a connection, the store), so no call can mix two backends. Where every
//! backend does the same around its SQL (a read, a page of streams), the trait does it once in
//! a provided method and the backend only fetches rows. Impls carry no docs but a line where a
//! backend goes its own way. Every method returns a `Send` future: the runtime awaits them in
//! spawned tasks and in actors.
//!
//! [`PgStorage`]: super::PgStorage
//! [`SqliteStorage`]: super::SqliteStorage
//! [`Storage`]: super::Storage

use std::sync::Arc;

use chrono::Utc;

use super::retention::Window;
use super::scavenge::Scavenging;
use super::{
    Direction, EventRow, IndexedEvent, InfoRow, MigrationStatus, PageRow, RetentionRow, StoredNack, StreamRow,
    SubscriptionRow, SubscriptionWrite, Wake, WriteOutcome, WriteRequest, escape_like, into_events, into_info, signed,
    unsigned,
};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::event::{ALL, AppendResult, DeleteMode, ExpectedVersion, RecordedEvent, StreamInfo};
use crate::filter::EventFilter;
use crate::index::Indexed;
use crate::metadata::StreamMetadata;
use crate::page::{Page, PageRequest};
use crate::snapshot::SnapshotData;
use crate::subscription::{ParkedEvent, StartFrom, SubscriptionInfo, SubscriptionOptions};

/// A storage backend: the store of one [`Config`], with every room of the contract.
pub(crate) trait Backend:
    Admin
    + Appends
    + Reads
    + Streams
    + Metadata
    + Scavenging
    + Snapshots
    + Subscriptions
    + Nacks
    + Clone
    + Send
    + Sync
    + Sized
    + 'static
{
    /// Opens the store `config` names, preparing it first: with `auto_init`, creating and
    /// migrating it as needed; otherwise checking that it exists and is up to date. A
    /// `database_url` the backend cannot parse is an [`Error::Config`] naming it.
    fn open(config: &Config) -> impl Future<Output = Result<Self>> + Send;

    /// Closes the connections (waiting for those in use) and releases what the store holds.
    fn close(&self) -> impl Future<Output = ()> + Send;

    /// The next part of `$all` from position `from` for a filtered subscription: the first
    /// `count` events that pass `filter` among at most `window` positions, how far the scan got
    /// (every position up to it was looked at: the caller may move past it), and whether that
    /// is the head. It never goes past the head read first, so nothing committed later is
    /// skipped.
    fn scan_all_filtered(
        &self,
        filter: &EventFilter,
        from: u64,
        count: u64,
        window: u64,
    ) -> impl Future<Output = Result<FilteredScan>> + Send {
        async move {
            let head = self.head(ALL).await?;
            if from > head || count == 0 {
                return Ok(FilteredScan {
                    events: Vec::new(),
                    scanned_to: from.saturating_sub(1).min(head),
                    at_head: from > head,
                });
            }
            let high = from.saturating_add(window.max(1) - 1).min(head);
            let rows = self
                .filtered_rows(
                    filter,
                    signed("position", from)?,
                    signed("position", high)?,
                    signed("count", count)?,
                    Direction::Forward,
                )
                .await?;
            let events = into_events(rows)?;
            let scanned_to = match events.last() {
                Some(last) if events.len() as u64 == count => last.event_number,
                _ => high,
            };
            Ok(FilteredScan { events, scanned_to, at_head: scanned_to >= head })
        }
    }
}

/// What [`Backend::scan_all_filtered`] found.
#[derive(Debug)]
pub(crate) struct FilteredScan {
    /// The events that passed the filter, in order.
    pub(crate) events: Vec<RecordedEvent>,
    /// Every position up to this one was looked at.
    pub(crate) scanned_to: u64,
    /// The scan reached the head it read first.
    pub(crate) at_head: bool,
}

/// Administration of a store's database objects (what `chronik::admin` does). Each takes the
/// configuration, not a store: the store may not exist yet.
pub(crate) trait Admin {
    /// Creates the database named in `database_url` if it does not exist; whether it did.
    fn create_database(config: &Config) -> impl Future<Output = Result<bool>> + Send;

    /// Creates the store if needed and applies every pending migration; how many it applied.
    /// Safe to run concurrently and repeatedly.
    fn init_store(config: &Config) -> impl Future<Output = Result<usize>> + Send;

    /// Applies pending migrations to an existing store; how many it applied. A store that does
    /// not exist is an [`Error::Migration`].
    fn migrate_store(config: &Config) -> impl Future<Output = Result<usize>> + Send;

    /// Every migration of this build and whether the store has it.
    fn migration_status(config: &Config) -> impl Future<Output = Result<Vec<MigrationStatus>>> + Send;

    /// Removes the store; whether there was one to remove. Only what chronik created goes:
    /// anything else in the way is an [`Error::Refused`] naming it, with nothing removed.
    fn drop_store(config: &Config) -> impl Future<Output = Result<bool>> + Send;
}

/// The writer's batches.
pub(crate) trait Appends {
    /// What the writer keeps between batches; it carries what it writes through.
    type WriterSession: WriterSession;

    /// Opens a session for the writer.
    fn open_writer_session(&self) -> impl Future<Output = Result<Self::WriterSession>> + Send;

    /// Finds out what became of a request whose writer stopped before replying.
    ///
    /// `Ok(Some(results))`: it committed (one result per part). `Ok(None)`: nothing of it was
    /// stored. `Err`: the outcome could not be learned (the database is unreachable).
    fn resolve_in_doubt(
        &self,
        request: &WriteRequest,
    ) -> impl Future<Output = Result<Option<Vec<AppendResult>>>> + Send;
}

/// The writer's session: commits batches.
pub(crate) trait WriterSession: Send {
    /// Commits `requests` in one transaction. The outer `Err` means the transaction failed and
    /// nothing was written; otherwise each request has its own outcome, in order: all of its
    /// parts stored, or none.
    fn write_batch(&mut self, requests: &[Arc<WriteRequest>])
    -> impl Future<Output = Result<Vec<WriteOutcome>>> + Send;

    /// Ends the session politely.
    fn close(self) -> impl Future<Output = ()> + Send;
}

/// Reads of one stream (its own events and its links, in version order) and of `$all` (by
/// global position). A backend fetches rows; the reads themselves (what a missing or deleted
/// stream gives, what its retention hides, what an empty count or a number past `i64::MAX`
/// gives) are the same on every backend, and written once here.
pub(crate) trait Reads: Sync {
    /// The row of `stream` with its retention; `None` if it has none.
    fn find_stream(&self, stream: &str) -> impl Future<Output = Result<Option<StreamRow>>> + Send;

    /// Up to `count` entries of stream `id` from version `from` (inclusive) in `direction`,
    /// numbered by their version in it, within `window`.
    fn stream_rows(
        &self,
        id: i64,
        from: i64,
        count: i64,
        direction: Direction,
        window: Window,
    ) -> impl Future<Output = Result<Vec<EventRow>>> + Send;

    /// Up to `count` events of `$all` at positions in `low..=high` that pass `filter`, from
    /// `low` forward or from `high` backward; only those leave the database.
    fn filtered_rows(
        &self,
        filter: &EventFilter,
        low: i64,
        high: i64,
        count: i64,
        direction: Direction,
    ) -> impl Future<Output = Result<Vec<EventRow>>> + Send;

    /// Up to `count` events of `$all` from global position `from` (inclusive) in `direction`.
    fn all_rows(
        &self,
        from: i64,
        count: i64,
        direction: Direction,
    ) -> impl Future<Output = Result<Vec<EventRow>>> + Send;

    /// Up to `count` events of index `indexed` (`$ce-…`, `$et-…`) from number `from`
    /// (inclusive) in `direction`, numbered in it, within `window`.
    fn index_rows(
        &self,
        indexed: Indexed<'_>,
        from: i64,
        count: i64,
        direction: Direction,
        window: Window,
    ) -> impl Future<Output = Result<Vec<EventRow>>> + Send;

    /// The events of index `indexed` with these numbers, in order, within `window`.
    fn index_rows_at(
        &self,
        indexed: Indexed<'_>,
        numbers: &[i64],
        window: Window,
    ) -> impl Future<Output = Result<Vec<EventRow>>> + Send;

    /// The entries of stream `id` with these versions, in order, within `window`.
    fn stream_rows_at(
        &self,
        id: i64,
        numbers: &[i64],
        window: Window,
    ) -> impl Future<Output = Result<Vec<EventRow>>> + Send;

    /// The events of `$all` at these positions, in order.
    fn all_rows_at(&self, numbers: &[i64]) -> impl Future<Output = Result<Vec<EventRow>>> + Send;

    /// Up to `count` entries of `stream` from version `from` (inclusive) in `direction`.
    fn read_stream(
        &self,
        stream: &str,
        from: u64,
        count: u64,
        direction: Direction,
    ) -> impl Future<Output = Result<Vec<RecordedEvent>>> + Send {
        async move {
            let (id, window) = readable(self.find_stream(stream).await?)?;
            if count == 0 {
                return Ok(Vec::new());
            }
            let (from, count) = (signed("version", from)?, signed("count", count)?);
            let rows = match Indexed::of(stream) {
                Some(indexed) => self.index_rows(indexed, from, count, direction, window).await?,
                None => self.stream_rows(id, from, count, direction, window).await?,
            };
            into_events(rows)
        }
    }

    /// Up to `count` events of `$all` from global position `from` (inclusive) in `direction`.
    fn read_all(
        &self,
        from: u64,
        count: u64,
        direction: Direction,
    ) -> impl Future<Output = Result<Vec<RecordedEvent>>> + Send {
        async move {
            if count == 0 {
                return Ok(Vec::new());
            }
            into_events(self.all_rows(signed("position", from)?, signed("count", count)?, direction).await?)
        }
    }

    /// Up to `count` events of `$all` that pass `filter`, from global position `from`
    /// (inclusive) in `direction`.
    fn read_all_filtered(
        &self,
        filter: &EventFilter,
        from: u64,
        count: u64,
        direction: Direction,
    ) -> impl Future<Output = Result<Vec<RecordedEvent>>> + Send {
        async move {
            filter.check()?;
            if count == 0 {
                return Ok(Vec::new());
            }
            let from = signed("position", from)?;
            let (low, high) = match direction {
                Direction::Forward => (from, i64::MAX),
                Direction::Backward => (1, from),
            };
            into_events(self.filtered_rows(filter, low, high, signed("count", count)?, direction).await?)
        }
    }

    /// Up to `count` events of `$all` from global position `from` (inclusive), forward, with
    /// their numbers in the category and event-type indexes (for the live path).
    fn read_all_indexed(&self, from: u64, count: u64) -> impl Future<Output = Result<Vec<IndexedEvent>>> + Send {
        async move {
            if count == 0 {
                return Ok(Vec::new());
            }
            let rows = self.all_rows(signed("position", from)?, signed("count", count)?, Direction::Forward).await?;
            rows.into_iter().map(IndexedEvent::try_from).collect()
        }
    }

    /// The entries of `stream` (or `$all`) with these event numbers, in order; numbers with no
    /// entry (hard-deleted, or a deleted stream) are left out.
    fn read_numbers(&self, stream: &str, numbers: &[u64]) -> impl Future<Output = Result<Vec<RecordedEvent>>> + Send {
        async move {
            let numbers = numbers.iter().map(|n| signed("event number", *n)).collect::<Result<Vec<i64>>>()?;
            let rows = if stream == ALL {
                self.all_rows_at(&numbers).await?
            } else {
                match readable(self.find_stream(stream).await?) {
                    Ok((_, window)) if let Some(indexed) = Indexed::of(stream) => {
                        self.index_rows_at(indexed, &numbers, window).await?
                    }
                    Ok((id, window)) => self.stream_rows_at(id, &numbers, window).await?,
                    Err(Error::StreamNotFound | Error::StreamDeleted) => return Ok(Vec::new()),
                    Err(e) => return Err(e),
                }
            };
            into_events(rows)
        }
    }
}

/// The id of a readable stream and the window its retention leaves readable now:
/// [`Error::StreamDeleted`] for a tombstone, [`Error::StreamNotFound`] for no row or a stream
/// a recreatable delete emptied.
fn readable(row: Option<StreamRow>) -> Result<(i64, Window)> {
    match row {
        None => Err(Error::StreamNotFound),
        Some(row) if row.deleted => Err(Error::StreamDeleted),
        Some(row) if row.retention.reads_as_absent(row.version) => Err(Error::StreamNotFound),
        Some(row) => Ok((row.id, row.retention.window(row.version, Utc::now()))),
    }
}

/// Stream metadata and deletes. A backend fetches a page's rows; what a page holds (and its
/// total, also past the end) is the same on every backend, and written once here. A delete
/// applies [`may_delete`] and [`stream_to_delete`].
pub(crate) trait Streams: Sync {
    /// The row of a stream (or of `$all`) with its metadata, if it has one.
    fn info_row(&self, stream: &str) -> impl Future<Output = Result<Option<InfoRow>>> + Send;

    /// The rows of one page of the streams `request` lists (never `$all`), in its order, each
    /// with the count of all of them; `search` is the request's, escaped for `LIKE`.
    fn page_rows(
        &self,
        request: &PageRequest,
        search: Option<&str>,
    ) -> impl Future<Output = Result<Vec<PageRow>>> + Send;

    /// How many streams `request` lists (`search` as for [`Streams::page_rows`]).
    fn count_streams(&self, request: &PageRequest, search: Option<&str>) -> impl Future<Output = Result<u64>> + Send;

    /// Deletes a stream after checking `expected`, with no write to the stream in between.
    fn delete_stream(
        &self,
        stream: &str,
        expected: ExpectedVersion,
        mode: DeleteMode,
    ) -> impl Future<Output = Result<()>> + Send;

    /// What the store knows of a stream (or of `$all`); `StreamNotFound` if it has no row, or a
    /// recreatable delete emptied it (it reads as not found).
    fn stream_info(&self, stream: &str) -> impl Future<Output = Result<StreamInfo>> + Send {
        async move {
            match self.info_row(stream).await? {
                Some(row) if !row.reads_as_absent() => into_info(row),
                _ => Err(Error::StreamNotFound),
            }
        }
    }

    /// One page of streams (never `$all`).
    fn paginate_streams(&self, request: &PageRequest) -> impl Future<Output = Result<Page<StreamInfo>>> + Send {
        async move {
            let search = request.search.as_deref().map(escape_like);
            let rows = self.page_rows(request, search.as_deref()).await?;
            let total_entries = match rows.first() {
                Some(row) => unsigned("count", row.total)?,
                // An empty page past the end still reports the real total.
                None if request.page > 1 => self.count_streams(request, search.as_deref()).await?,
                None => 0,
            };
            let entries = rows.into_iter().map(|row| into_info(row.info)).collect::<Result<Vec<_>>>()?;
            Ok(Page::of(request, entries, total_entries))
        }
    }
}

/// What a delete checks before it touches the stream: `$all` is never deleted, and a hard
/// delete needs `enable_hard_deletes`.
pub(super) fn may_delete(stream: &str, mode: DeleteMode, hard_deletes: bool) -> Result<()> {
    if stream == ALL {
        return Err(Error::CannotDeleteAllStream);
    }
    if mode == DeleteMode::Hard && !hard_deletes {
        return Err(Error::NotSupported);
    }
    Ok(())
}

/// The id of the stream a delete removes, from its row (id, version, deleted, deleted version)
/// as the delete read it, once `expected` holds. A soft-deleted stream can still be
/// hard-deleted (to purge it); deleting it softly twice is an error like any other use of a
/// deleted stream. A stream deleted recreatably is absent to `expected` until its next append.
pub(super) fn stream_to_delete(
    row: Option<(i64, i64, bool, i64)>,
    expected: ExpectedVersion,
    mode: DeleteMode,
) -> Result<i64> {
    let Some((id, version, deleted, deleted_version)) = row else {
        return Err(Error::StreamNotFound);
    };
    if !(deleted && mode == DeleteMode::Hard) {
        let current = (version > deleted_version).then(|| unsigned("stream_version", version)).transpose()?;
        expected.check(current, deleted)?;
    }
    Ok(id)
}

/// Stream metadata: the latest value of each stream with a version of its own, and the
/// retention of streams the live path routes events to.
pub(crate) trait Metadata: Sync {
    /// Sets the metadata of `stream` if its current metadata version meets `expected` (the
    /// rules of an append, where no metadata is "no stream"), and tells every node's notifier
    /// ([`Wake::Retention`]); the new version, counting from 1. A tombstone (a soft-deleted
    /// stream) is [`Error::StreamDeleted`]; a stream that does not exist yet is fine.
    fn set_stream_metadata(
        &self,
        stream: &str,
        expected: ExpectedVersion,
        metadata: &StreamMetadata,
    ) -> impl Future<Output = Result<u64>> + Send;

    /// The latest metadata of `stream` with its version, if any was set.
    fn stream_metadata(&self, stream: &str) -> impl Future<Output = Result<Option<(u64, StreamMetadata)>>> + Send;

    /// The version and retention of each of `streams` that has a row, in no order.
    fn retentions(&self, streams: &[&str]) -> impl Future<Output = Result<Vec<RetentionRow>>> + Send;
}

/// What a metadata write checks: the stream is not a tombstone (`deleted`, from its row if it
/// has one), and `expected` holds against the current metadata version.
pub(super) fn may_set_metadata(deleted: Option<bool>, expected: ExpectedVersion, current: Option<i64>) -> Result<()> {
    if deleted == Some(true) {
        return Err(Error::StreamDeleted);
    }
    expected.check(current.map(|v| unsigned("metadata_version", v)).transpose()?, false)
}

/// Snapshots: one per source, replaced on every record.
pub(crate) trait Snapshots {
    /// Records (or replaces) the snapshot of `snapshot.source_uuid`.
    fn record_snapshot(&self, snapshot: &SnapshotData) -> impl Future<Output = Result<()>> + Send;

    /// Reads the snapshot of a source: `SnapshotNotFound` if there is none.
    fn read_snapshot(&self, source_uuid: &str) -> impl Future<Output = Result<SnapshotData>> + Send;

    /// Deletes the snapshot of a source (no error if there is none).
    fn delete_snapshot(&self, source_uuid: &str) -> impl Future<Output = Result<()>> + Send;
}

/// Named subscriptions: their rows (checkpoints), their ownership and the wake-ups of the
/// notifier.
pub(crate) trait Subscriptions {
    /// The session through which a node owns named subscriptions and writes for them.
    type LockSession: LockSession;

    /// Where the notifier hears of commits.
    type NotificationListener: NotificationListener;

    /// The subscription's row, created with checkpoint `start` and `settings` if it does not
    /// exist yet; a row without settings (created before they were stored) gets `settings`.
    fn subscription_row(
        &self,
        stream: &str,
        name: &str,
        start: u64,
        settings: &SubscriptionOptions,
    ) -> impl Future<Output = Result<SubscriptionRow>> + Send;

    /// Creates the subscription's row with checkpoint `start` and `settings`; `false` (and
    /// nothing changed) if it exists.
    fn create_subscription(
        &self,
        stream: &str,
        name: &str,
        start: u64,
        settings: &SubscriptionOptions,
    ) -> impl Future<Output = Result<bool>> + Send;

    /// The subscription's row, if it exists.
    fn find_subscription(
        &self,
        stream: &str,
        name: &str,
    ) -> impl Future<Output = Result<Option<SubscriptionRow>>> + Send;

    /// Stores the subscription's settings and wakes the node running it, wherever it runs
    /// ([`Wake::Settings`]): the row's id, or `None` if the subscription does not exist.
    fn update_settings(
        &self,
        stream: &str,
        name: &str,
        settings: &SubscriptionOptions,
    ) -> impl Future<Output = Result<Option<i32>>> + Send;

    /// The subscription as stored, with checkpoint, lag, owner, settings and parked count
    /// (`live` is `None`); `None` if it does not exist.
    fn subscription_info(
        &self,
        stream: &str,
        name: &str,
    ) -> impl Future<Output = Result<Option<SubscriptionInfo>>> + Send;

    /// Deletes the subscription's row (its checkpoint, retries and parks); whether there was
    /// one.
    fn delete_subscription(&self, stream: &str, name: &str) -> impl Future<Output = Result<bool>> + Send;

    /// Moves a subscription's checkpoint while no node runs it, forgetting the retry counts it
    /// passed (parked events stay parked). `Ok(false)` if the subscription does not exist;
    /// [`Error::SubscriptionInUse`] while a node runs it.
    fn set_checkpoint(&self, stream: &str, name: &str, checkpoint: u64) -> impl Future<Output = Result<bool>> + Send;

    /// The last event number of `stream` (for `$all`, the last global position); 0 if the
    /// stream has no row.
    fn head(&self, stream: &str) -> impl Future<Output = Result<u64>> + Send;

    /// The checkpoint a subscription created now starts from, by `start_from`: 0, `n`, or the
    /// head of `stream`.
    fn start_position(&self, stream: &str, start_from: StartFrom) -> impl Future<Output = Result<u64>> + Send
    where
        Self: Sync,
    {
        async move {
            match start_from {
                StartFrom::Origin => Ok(0),
                StartFrom::After(n) => Ok(n),
                StartFrom::Current => self.head(stream).await,
            }
        }
    }

    /// Every subscription of the store, with checkpoint, lag and owner.
    fn list_subscriptions(&self) -> impl Future<Output = Result<Vec<SubscriptionInfo>>> + Send;

    /// Opens the node's lock session.
    fn open_lock_session(&self) -> impl Future<Output = Result<Self::LockSession>> + Send;

    /// Starts listening for the writer's wake-ups.
    fn listen(&self) -> impl Future<Output = Result<Self::NotificationListener>> + Send;
}

/// The session through which a node owns named subscriptions: only a live owner can write
/// their checkpoints, retry counts and parks ([`OwnerWrites`]).
pub(crate) trait LockSession: OwnerWrites + Send {
    /// Takes the subscription's lock if no other session holds it.
    fn try_lock(&mut self, subscription_id: i32) -> impl Future<Output = Result<bool>> + Send;

    /// Releases the subscription's lock.
    fn unlock(&mut self, subscription_id: i32) -> impl Future<Output = Result<()>> + Send;

    /// Checks that the session (and with it every lock it holds) is alive.
    fn ping(&mut self) -> impl Future<Output = Result<()>> + Send;

    /// Ends the session, releasing its locks.
    fn close(self) -> impl Future<Output = ()> + Send;
}

/// Where the notifier hears of commits.
pub(crate) trait NotificationListener: Send {
    /// The next wake-up. An error means the listener cannot go on (it is opened again).
    fn recv(&mut self) -> impl Future<Output = Result<Wake>> + Send;
}

/// Retried and parked events of named subscriptions.
pub(crate) trait Nacks {
    /// Retry counts and parks after `checkpoint`, and every parked event to replay, of
    /// subscription `id`.
    fn load_nacks(&self, id: i32, checkpoint: u64) -> impl Future<Output = Result<Vec<StoredNack>>> + Send;

    /// Parked events of subscription `id` whose replay was asked for.
    fn replay_requests(&self, id: i32) -> impl Future<Output = Result<Vec<StoredNack>>> + Send;

    /// Marks the parked events of the subscription for replay (every one, or the first `limit`
    /// of its parked list) and wakes its owner, wherever it runs: the subscription's id and how
    /// many events are marked, or `None` if it does not exist.
    fn request_replay(
        &self,
        stream: &str,
        name: &str,
        limit: Option<u64>,
    ) -> impl Future<Output = Result<Option<(i32, u64)>>> + Send;

    /// The parked events of a subscription, oldest first; `None` if it does not exist.
    fn parked_events(&self, stream: &str, name: &str) -> impl Future<Output = Result<Option<Vec<ParkedEvent>>>> + Send;
}

/// What the owner of a subscription writes through its [`LockSession`].
pub(crate) trait OwnerWrites {
    /// Moves the checkpoints of several subscriptions at once; returns the ids whose rows are
    /// gone (deleted), for which nothing was written.
    fn write_checkpoints(&mut self, checkpoints: &[(i32, u64)]) -> impl Future<Output = Result<Vec<i32>>> + Send;

    /// Writes a subscription's changes in one transaction; `false` if its row is gone (it was
    /// deleted), in which case nothing is written.
    fn write(&mut self, subscription_id: i32, write: &SubscriptionWrite) -> impl Future<Output = Result<bool>> + Send;
}
