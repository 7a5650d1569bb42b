//! The facade: [`EventStore`], a cheap `Clone` handle. It validates input, then makes one call:
//! to the [`Runtime`] for writes and everything that runs (subscriptions, listeners,
//! subscribers), to storage for reads and what is only stored.
//!
//! This file holds the lifecycle, writes, reads and snapshots; `subscriptions.rs` the named
//! subscriptions, subscriber actors and live listeners; `validate.rs` the input checks.

use std::sync::Arc;

use futures::stream::{self, Stream, StreamExt, TryStreamExt};
use uuid::Uuid;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::event::{
    ALL, AppendResult, DeleteMode, EventData, ExpectedVersion, RecordedEvent, StreamAppend, StreamInfo,
};
use crate::filter::EventFilter;
use crate::page::{Page, PageRequest};
use crate::runtime::Runtime;
use crate::snapshot::SnapshotData;
use crate::spans;
use crate::storage::{Direction, Storage, WriteOp, WriteRequest};
use crate::validate;

mod cluster;
mod retention;
mod subscribers;
mod subscriptions;

pub use subscribers::Subscribers;

/// A handle to a running store. Clones share one runtime; it is `Send + Sync`.
///
/// ```no_run
/// use chronik::{Config, EventData, EventStore, ExpectedVersion};
/// # async fn demo() -> chronik::Result<()> {
/// let store = EventStore::start(Config::from_file("config/chronik.toml")?.schema("demo")).await?;
/// let e = EventData::json("Opened", &serde_json::json!({ "owner": "ana" }))?;
/// store.append_to_stream("account-1", ExpectedVersion::NoStream, vec![e]).await?;
/// let events = store.read_stream_forward("account-1", 0, 100).await?;
/// assert_eq!(events[0].event_type, "Opened");
/// store.shutdown().await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct EventStore {
    inner: Arc<Inner>,
}

struct Inner {
    config: Config,
    storage: Storage,
    runtime: Runtime,
    started_at: chrono::DateTime<chrono::Utc>,
}

impl std::fmt::Debug for EventStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventStore").field("schema", &self.inner.config.schema).finish_non_exhaustive()
    }
}

/// Anything that names a stored event for [`EventStore::link_to_stream`]: a `Uuid` or a
/// [`RecordedEvent`] (owned or borrowed).
pub trait EventRef {
    /// The event's id.
    fn event_id(&self) -> Uuid;
}

impl EventRef for Uuid {
    fn event_id(&self) -> Uuid {
        *self
    }
}

impl EventRef for RecordedEvent {
    fn event_id(&self) -> Uuid {
        self.event_id
    }
}

impl<T: EventRef + ?Sized> EventRef for &T {
    fn event_id(&self) -> Uuid {
        (**self).event_id()
    }
}

impl EventStore {
    /// Validates the configuration, prepares the schema (`auto_init`) and starts the supervised
    /// actor tree.
    pub async fn start(config: Config) -> Result<EventStore> {
        config.validate()?;
        let storage = Storage::open(&config).await?;
        let runtime = Runtime::start(&config, storage.clone()).await?;
        tracing::info!(schema = %config.schema, "chronik store started");
        let started_at = chrono::Utc::now();
        Ok(EventStore { inner: Arc::new(Inner { config, storage, runtime, started_at }) })
    }

    /// Commits what is queued, stops the actors and closes the pool. Further calls on any clone
    /// return [`Error::Unavailable`]. Calling it twice is harmless.
    pub async fn shutdown(&self) -> Result<()> {
        if self.inner.runtime.shutdown().await {
            tracing::info!(schema = %self.inner.config.schema, "chronik store stopped");
        }
        Ok(())
    }

    /// This store's figures on this node: write calls and events since it started here, group
    /// commits, the writer's state and restarts, the head position, the read pool.
    ///
    /// ```no_run
    /// # async fn demo(store: chronik::EventStore) {
    /// let s = store.statistics();
    /// println!("head {}, {} events in {} batches", s.head_position, s.events_appended, s.batches);
    /// # }
    /// ```
    pub fn statistics(&self) -> crate::metrics::StoreStatistics {
        let store = crate::metrics::store_label(&self.inner.config);
        self.inner.runtime.statistics(store, self.inner.started_at)
    }

    /// The configuration the store was started with.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// [`ensure_open`](Self::ensure_open), and not read-only: `what` names the refused write.
    fn ensure_writable(&self, what: &str) -> Result<()> {
        self.ensure_open()?;
        if self.inner.config.read_only {
            return Err(Error::ReadOnly(format!("it was opened with read_only = true and cannot {what}")));
        }
        Ok(())
    }

    fn ensure_open(&self) -> Result<()> {
        if self.inner.runtime.is_shut_down() {
            return Err(Error::Unavailable("the store has been shut down".into()));
        }
        Ok(())
    }

    /// Appends events to a stream if it is at the `expected` version; atomic and durable before
    /// `Ok`. See the crate docs for the rules and errors.
    pub async fn append_to_stream(
        &self,
        stream: &str,
        expected: ExpectedVersion,
        events: impl IntoIterator<Item = EventData>,
    ) -> Result<AppendResult> {
        self.ensure_writable("append")?;
        let events: Vec<EventData> = events.into_iter().collect();
        if stream == ALL {
            return Err(Error::CannotAppendToAllStream);
        }
        validate::writable_stream(stream)?;
        if events.is_empty() {
            return Err(Error::invalid("no events to append: the event list is empty"));
        }
        validate::events(&events, self.inner.config.max_event_size)?;
        self.inner.runtime.write_one(WriteRequest::single(stream.to_string(), expected, WriteOp::Append(events))).await
    }

    /// Appends to several streams at once, all or nothing, in one transaction: each
    /// [`StreamAppend`]'s expected version is checked (in the given order, each seeing the
    /// versions the earlier ones of the call produced, so a stream may come twice) and if any
    /// fails, nothing of the call is stored. The events get contiguous `$all` positions in the
    /// order given; the results come back one per [`StreamAppend`], in order.
    ///
    /// A refused part is [`Error::AppendFailed`] naming its stream, with the reason as `source`
    /// ([`Error::WrongExpectedVersion`], [`Error::StreamExists`], [`Error::StreamNotFound`],
    /// [`Error::StreamDeleted`], [`Error::DuplicateEvent`], or the [`Error::InvalidArgument`] or
    /// [`Error::CannotAppendToAllStream`] of a part that [`append_to_stream`](Self::append_to_stream)
    /// would refuse), also when there is only one part. An event id that comes twice in the call
    /// is refused before anything is sent, naming both places, under the stream of the later
    /// one. An empty list is [`Error::InvalidArgument`].
    ///
    /// ```no_run
    /// use chronik::{Error, EventData, EventStore, ExpectedVersion, StreamAppend};
    /// # async fn demo(store: EventStore) -> chronik::Result<()> {
    /// let placed = EventData::json("OrderPlaced", &serde_json::json!({ "sku": "stock-7", "qty": 1 }))?;
    /// let reserved = EventData::json("StockReserved", &serde_json::json!({ "order": "order-1", "qty": 1 }))?;
    /// let outcome = store
    ///     .append_to_streams(vec![
    ///         StreamAppend::new("order-1", ExpectedVersion::NoStream, vec![placed]),
    ///         StreamAppend::new("stock-7", ExpectedVersion::Exact(3), vec![reserved]),
    ///     ])
    ///     .await;
    /// match outcome {
    ///     Ok(results) => {
    ///         let (order, stock) = (results[0], results[1]);
    ///         assert_eq!((order.stream_version, stock.stream_version), (1, 4));
    ///         assert_eq!(stock.first_position, order.last_position + 1);
    ///     }
    ///     Err(Error::AppendFailed { stream, source }) => {
    ///         // Nothing of the call was stored: reload `stream` and decide again.
    ///         eprintln!("{stream} refused the append: {source}");
    ///     }
    ///     Err(other) => return Err(other),
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn append_to_streams(
        &self,
        appends: impl IntoIterator<Item = StreamAppend>,
    ) -> Result<Vec<AppendResult>> {
        self.ensure_writable("append")?;
        let appends: Vec<StreamAppend> = appends.into_iter().collect();
        validate::stream_appends(&appends, self.inner.config.max_event_size)?;
        self.inner.runtime.write(WriteRequest::multi_stream(appends)).await
    }

    /// Links already stored events (by id, or the events themselves) into `stream`, checking
    /// `expected` like an append. Links never enter `$all`.
    pub async fn link_to_stream<I>(&self, stream: &str, expected: ExpectedVersion, events: I) -> Result<AppendResult>
    where
        I: IntoIterator,
        I::Item: EventRef,
    {
        self.ensure_writable("link events")?;
        let ids: Vec<Uuid> = events.into_iter().map(|e| e.event_id()).collect();
        if stream == ALL {
            return Err(Error::CannotAppendToAllStream);
        }
        validate::writable_stream(stream)?;
        if ids.is_empty() {
            return Err(Error::invalid("no events to link: the event list is empty"));
        }
        self.inner.runtime.write_one(WriteRequest::single(stream.to_string(), expected, WriteOp::Link(ids))).await
    }

    /// Reads up to `count` entries of `stream` with version >= `start` (0 or 1: the first).
    /// `stream` may be [`ALL`].
    pub async fn read_stream_forward(&self, stream: &str, start: u64, count: u64) -> Result<Vec<RecordedEvent>> {
        self.ensure_open()?;
        if stream == ALL {
            return self.read_all_forward(start, count).await;
        }
        validate::stream_id(stream)?;
        let read = self.inner.storage.read_stream(stream, start, count, Direction::Forward);
        spans::traced(spans::read(stream, Some(start), count, "forward"), read).await
    }

    /// Reads up to `count` entries of `stream` with version <= `start`, newest first
    /// (`None`: from the end). `stream` may be [`ALL`].
    pub async fn read_stream_backward(
        &self,
        stream: &str,
        start: Option<u64>,
        count: u64,
    ) -> Result<Vec<RecordedEvent>> {
        self.ensure_open()?;
        if stream == ALL {
            return self.read_all_backward(start, count).await;
        }
        validate::stream_id(stream)?;
        let read = self.inner.storage.read_stream(stream, start.unwrap_or(i64::MAX as u64), count, Direction::Backward);
        spans::traced(spans::read(stream, start, count, "backward"), read).await
    }

    /// Reads up to `count` events of `$all` with global position >= `start`.
    pub async fn read_all_forward(&self, start: u64, count: u64) -> Result<Vec<RecordedEvent>> {
        self.ensure_open()?;
        let read = self.inner.storage.read_all(start, count, Direction::Forward);
        spans::traced(spans::read(ALL, Some(start), count, "forward"), read).await
    }

    /// Reads up to `count` events of `$all` that pass `filter`, with global position >= `start`.
    /// The database applies the filter: only matching events leave it. A regular expression
    /// that does not compile is [`Error::InvalidArgument`] naming it.
    ///
    /// ```no_run
    /// use chronik::{EventFilter, EventStore};
    /// # async fn demo(store: EventStore) -> chronik::Result<()> {
    /// let money = EventFilter::stream_prefix(["account-", "order-"]);
    /// for event in store.read_all_filtered(&money, 0, 1_000).await? {
    ///     assert!(event.stream_uuid.starts_with("account-") || event.stream_uuid.starts_with("order-"));
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn read_all_filtered(&self, filter: &EventFilter, start: u64, count: u64) -> Result<Vec<RecordedEvent>> {
        self.ensure_open()?;
        let read = self.inner.storage.read_all_filtered(filter, start, count, Direction::Forward);
        spans::traced(spans::read(ALL, Some(start), count, "forward"), read).await
    }

    /// Reads up to `count` events of `$all` that pass `filter`, with global position <= `start`,
    /// newest first (`None`: from the end).
    pub async fn read_all_filtered_backward(
        &self,
        filter: &EventFilter,
        start: Option<u64>,
        count: u64,
    ) -> Result<Vec<RecordedEvent>> {
        self.ensure_open()?;
        let read =
            self.inner.storage.read_all_filtered(filter, start.unwrap_or(i64::MAX as u64), count, Direction::Backward);
        spans::traced(spans::read(ALL, start, count, "backward"), read).await
    }

    /// Reads up to `count` events of `$all` with global position <= `start`, newest first
    /// (`None`: from the end).
    pub async fn read_all_backward(&self, start: Option<u64>, count: u64) -> Result<Vec<RecordedEvent>> {
        self.ensure_open()?;
        let read = self.inner.storage.read_all(start.unwrap_or(i64::MAX as u64), count, Direction::Backward);
        spans::traced(spans::read(ALL, start, count, "backward"), read).await
    }

    /// Streams `stream` forward from version `start`, reading `batch_size` entries at a time,
    /// lazily. Ends at the last entry present when the final batch was read.
    pub fn stream_forward(
        &self,
        stream: &str,
        start: u64,
        batch_size: u64,
    ) -> impl Stream<Item = Result<RecordedEvent>> + Send + 'static {
        let (store, stream) = (self.clone(), stream.to_string());
        paged(Some(start), batch_size, Direction::Forward, move |from, n| {
            let (store, stream) = (store.clone(), stream.clone());
            async move { store.read_stream_forward(&stream, from, n).await }
        })
    }

    /// Streams `stream` backward from version `start` (`None`: the end), lazily.
    pub fn stream_backward(
        &self,
        stream: &str,
        start: Option<u64>,
        batch_size: u64,
    ) -> impl Stream<Item = Result<RecordedEvent>> + Send + 'static {
        let (store, stream) = (self.clone(), stream.to_string());
        paged(Some(start.unwrap_or(i64::MAX as u64)), batch_size, Direction::Backward, move |from, n| {
            let (store, stream) = (store.clone(), stream.clone());
            async move { store.read_stream_backward(&stream, Some(from), n).await }
        })
    }

    /// Streams `$all` forward from global position `start`, lazily.
    pub fn stream_all_forward(
        &self,
        start: u64,
        batch_size: u64,
    ) -> impl Stream<Item = Result<RecordedEvent>> + Send + 'static {
        let store = self.clone();
        paged(Some(start), batch_size, Direction::Forward, move |from, n| {
            let store = store.clone();
            async move { store.read_all_forward(from, n).await }
        })
    }

    /// Streams `$all` backward from global position `start` (`None`: the end), lazily.
    pub fn stream_all_backward(
        &self,
        start: Option<u64>,
        batch_size: u64,
    ) -> impl Stream<Item = Result<RecordedEvent>> + Send + 'static {
        let store = self.clone();
        paged(Some(start.unwrap_or(i64::MAX as u64)), batch_size, Direction::Backward, move |from, n| {
            let store = store.clone();
            async move { store.read_all_backward(Some(from), n).await }
        })
    }

    /// A stream's metadata; for [`ALL`], `stream_version` is the last global position.
    pub async fn stream_info(&self, stream: &str) -> Result<StreamInfo> {
        self.ensure_open()?;
        validate::stream_id(stream)?;
        self.inner.storage.stream_info(stream).await
    }

    /// One page of the store's streams (`$all` is not listed).
    pub async fn paginate_streams(&self, request: PageRequest) -> Result<Page<StreamInfo>> {
        self.ensure_open()?;
        if request.page == 0 {
            return Err(Error::invalid("page numbers start at 1"));
        }
        if request.page_size == 0 || request.page_size > 1_000 {
            return Err(Error::invalid(format!("page_size must be 1 to 1000, not {}", request.page_size)));
        }
        self.inner.storage.paginate_streams(&request).await
    }

    /// How many streams [`paginate_streams`](Self::paginate_streams) lists with the default
    /// request: the application's streams, soft-deleted ones included; not `$all` nor the
    /// `$ce-`/`$et-` indexes. One count without a page: about half the cost of a page's
    /// `total_entries`, and still a scan of every stream.
    pub async fn stream_count(&self) -> Result<u64> {
        self.ensure_open()?;
        self.inner.storage.count_streams(&PageRequest::default(), None).await
    }

    /// Deletes a stream: `Soft` hides it from stream reads (its events stay in `$all`); `Hard`
    /// removes its events everywhere (needs `enable_hard_deletes`).
    pub async fn delete_stream(&self, stream: &str, expected: ExpectedVersion, mode: DeleteMode) -> Result<()> {
        self.ensure_writable("delete streams")?;
        if stream == ALL {
            return Err(Error::CannotDeleteAllStream);
        }
        validate::writable_stream(stream)?;
        self.inner.storage.delete_stream(stream, expected, mode).await
    }

    /// Records a snapshot, replacing the source's previous one.
    pub async fn record_snapshot(&self, snapshot: SnapshotData) -> Result<()> {
        self.ensure_writable("record snapshots")?;
        if snapshot.source_uuid.is_empty() || snapshot.source_uuid.contains('\0') {
            return Err(Error::invalid("snapshot source_uuid is empty or contains a NUL character"));
        }
        if snapshot.source_type.contains('\0') || snapshot.content_type.contains('\0') {
            return Err(Error::invalid("snapshot source_type or content_type contains a NUL character"));
        }
        let size = snapshot.data.len() + snapshot.metadata.as_ref().map_or(0, Vec::len);
        if size > self.inner.config.max_event_size {
            return Err(Error::invalid(format!(
                "snapshot data + metadata is {size} bytes, over max_event_size ({} bytes)",
                self.inner.config.max_event_size
            )));
        }
        self.inner.storage.record_snapshot(&snapshot).await
    }

    /// Reads a source's snapshot: [`Error::SnapshotNotFound`] if none is recorded.
    pub async fn read_snapshot(&self, source_uuid: &str) -> Result<SnapshotData> {
        self.ensure_open()?;
        self.inner.storage.read_snapshot(source_uuid).await
    }

    /// Deletes a source's snapshot; deleting one that does not exist is not an error.
    pub async fn delete_snapshot(&self, source_uuid: &str) -> Result<()> {
        self.ensure_writable("delete snapshots")?;
        self.inner.storage.delete_snapshot(source_uuid).await
    }
}

/// A lazy stream of entries read in pages: each page starts after the last entry of the
/// previous one (by event number, so holes left by hard deletes are skipped, never repeated),
/// and a short page ends it.
fn paged<F, Fut>(
    start: Option<u64>,
    batch_size: u64,
    direction: Direction,
    fetch: F,
) -> impl Stream<Item = Result<RecordedEvent>> + Send + 'static
where
    F: Fn(u64, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Vec<RecordedEvent>>> + Send + 'static,
{
    let fetch = Arc::new(fetch);
    stream::try_unfold(start, move |next| {
        let fetch = Arc::clone(&fetch);
        async move {
            let Some(from) = next else { return Ok(None) };
            if batch_size == 0 {
                return Err(Error::invalid("batch_size must be greater than zero"));
            }
            let page = fetch(from, batch_size).await?;
            let following = match (page.last(), direction) {
                _ if (page.len() as u64) < batch_size => None,
                (Some(last), Direction::Forward) => last.event_number.checked_add(1),
                (Some(last), Direction::Backward) => last.event_number.checked_sub(1).filter(|n| *n > 0),
                (None, _) => None,
            };
            if page.is_empty() { Ok(None) } else { Ok(Some((page, following))) }
        }
    })
    .map_ok(|page| stream::iter(page.into_iter().map(Ok)))
    .try_flatten()
    .boxed()
}
