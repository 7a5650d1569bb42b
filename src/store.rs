//! The facade: [`EventStore`], a cheap `Clone` handle. It validates input, then either sends a
//! message to an actor (writes go to the writer) or calls storage directly (reads).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures::stream::{self, Stream, StreamExt, TryStreamExt};
use ractor::rpc::CallResult;
use ractor::{Actor, ActorCell, ActorId, ActorRef, ActorStatus, RpcReplyPort};
use tokio::sync::watch;
use uuid::Uuid;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::event::{ALL, AppendResult, DeleteMode, EventData, ExpectedVersion, RecordedEvent, StreamInfo};
use crate::page::{Page, PageRequest};
use crate::runtime::publisher::{Hub, Listener};
use crate::runtime::registry::{Connected, RegistryMsg, SubscriptionKey};
use crate::runtime::subscriber::{Runner, RunnerArgs};
use crate::runtime::subscription::SubscriptionMsg;
use crate::runtime::supervisor::{Supervisor, SupervisorArgs, SupervisorMsg};
use crate::runtime::writer::{self, BatchLimits, WriterMsg};
use crate::snapshot::SnapshotData;
use crate::storage::{Attempt, Direction, Storage, WriteOp, WriteProgress, WriteRequest};
use crate::subscriber::{Subscriber, SubscriberHandle, Subscribers};
use crate::subscription::{
    DropReason, LIVE_BUFFER, LiveSubscription, ParkedEvent, Subscription, SubscriptionInfo, SubscriptionOptions,
    SubscriptionStatus,
};

/// Longest accepted stream id, in bytes.
pub const MAX_STREAM_ID_BYTES: usize = 1024;
/// Longest accepted event type, in bytes.
pub const MAX_EVENT_TYPE_BYTES: usize = 1024;

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
    supervisor: ActorRef<SupervisorMsg>,
    writer: watch::Receiver<Option<ActorRef<WriterMsg>>>,
    registry: watch::Receiver<Option<ActorRef<RegistryMsg>>>,
    hub: Arc<Hub>,
    closed: AtomicBool,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The last handle is gone without `shutdown`: stop the actors so no task outlives the
        // store. Queued writes have no caller left to answer.
        if !self.closed.load(Ordering::SeqCst) {
            self.supervisor.stop(Some("last EventStore handle dropped".into()));
        }
    }
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
        let (writer_slot, writer) = watch::channel(None);
        let (registry_slot, registry) = watch::channel(None);
        let hub = Arc::new(Hub::default());
        let args = SupervisorArgs {
            storage: storage.clone(),
            limits: BatchLimits {
                appends: config.writer_max_batch_appends,
                events: config.writer_max_batch_events,
                bytes: config.writer_max_batch_bytes,
            },
            in_doubt_timeout: config.in_doubt_timeout,
            hub: Arc::clone(&hub),
            retry_interval: config.subscription_retry_interval,
            poll_interval: config.notification_poll_interval,
            writer_slot,
            registry_slot,
        };
        let (supervisor, _handle) = Actor::spawn(None, Supervisor, args)
            .await
            .map_err(|e| Error::Unavailable(format!("cannot start the store's supervisor: {e}")))?;
        tracing::info!(schema = %config.schema, "chronik store started");
        Ok(EventStore {
            inner: Arc::new(Inner {
                config,
                storage,
                supervisor,
                writer,
                registry,
                hub,
                closed: AtomicBool::new(false),
            }),
        })
    }

    /// Commits what is queued, stops the actors and closes the pool. Further calls on any clone
    /// return [`Error::Unavailable`]. Calling it twice is harmless.
    pub async fn shutdown(&self) -> Result<()> {
        if self.inner.closed.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        let supervisor = &self.inner.supervisor;
        if let Err(e) = ractor::call!(supervisor, SupervisorMsg::Shutdown) {
            tracing::warn!(error = %e, "supervisor did not confirm shutdown");
        }
        supervisor.stop_and_wait(None, Some(std::time::Duration::from_secs(10))).await.ok();
        self.inner.storage.close().await;
        tracing::info!(schema = %self.inner.config.schema, "chronik store stopped");
        Ok(())
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
        if self.inner.closed.load(Ordering::SeqCst) {
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
        validate_stream_id(stream)?;
        if events.is_empty() {
            return Err(Error::invalid("no events to append: the event list is empty"));
        }
        let mut ids = std::collections::HashMap::with_capacity(events.len());
        for (index, event) in events.iter().enumerate() {
            self.validate_event(index, event)?;
            if let Some(first) = ids.insert(event.event_id, index) {
                return Err(Error::invalid(format!(
                    "events {first} and {index} have the same event_id {}: each event of an append needs its own id",
                    event.event_id
                )));
            }
        }
        self.write(WriteRequest {
            stream: stream.to_string(),
            expected,
            op: WriteOp::Append(events),
            progress: WriteProgress::default(),
        })
        .await
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
        validate_stream_id(stream)?;
        if ids.is_empty() {
            return Err(Error::invalid("no events to link: the event list is empty"));
        }
        self.write(WriteRequest {
            stream: stream.to_string(),
            expected,
            op: WriteOp::Link(ids),
            progress: WriteProgress::default(),
        })
        .await
    }

    async fn write(&self, request: WriteRequest) -> Result<AppendResult> {
        let request = Arc::new(request);
        // A request the writer lost before its transaction reached the `$all` lock cannot have
        // committed (every commit goes through that lock), so it is handed to the restarted
        // writer again; a few times at most, in case the request itself is what kills it.
        let mut attempts = 0;
        let mut dead = None;
        let lost = loop {
            attempts += 1;
            let writer = self.current_writer(dead).await?;
            let lost = match writer.call(|reply| WriterMsg::Write(Arc::clone(&request), reply), None).await {
                Ok(CallResult::Success(outcome)) => return outcome,
                Ok(_) => "the writer stopped before answering".to_string(),
                Err(e) => format!("the writer could not be reached: {e}"),
            };
            if attempts >= 3 || request.progress.attempt() != Attempt::NotStarted {
                break lost;
            }
            tracing::debug!(reason = %lost, "write lost before it reached the database; resubmitting");
            dead = Some(writer.get_id());
        };
        // The writer stopped (crash, kill, shutdown) with the request in its hands. Ask the
        // database what became of it instead of guessing: never a false Ok, and no false error
        // for a request that did commit.
        match writer::resolve(&self.inner.storage, &request, self.inner.config.in_doubt_timeout).await? {
            Some(result) => Ok(result),
            None => Err(Error::Unavailable(format!("{lost}; nothing of this write was stored, retry it"))),
        }
    }

    /// The live writer, waiting (up to `connect_timeout`) while the supervisor restarts it.
    /// `dead` is a writer the caller saw fail: it is not handed out again, so callers wait for
    /// its successor instead of spinning on it.
    async fn current_writer(&self, dead: Option<ActorId>) -> Result<ActorRef<WriterMsg>> {
        let usable = |w: &Option<ActorRef<WriterMsg>>| {
            w.as_ref().is_some_and(|w| {
                Some(w.get_id()) != dead
                    && matches!(w.get_status(), ActorStatus::Running | ActorStatus::Starting | ActorStatus::Upgrading)
            })
        };
        let mut slot = self.inner.writer.clone();
        let wait = slot.wait_for(usable);
        match tokio::time::timeout(self.inner.config.connect_timeout, wait).await {
            Ok(Ok(writer)) => writer.clone().ok_or_else(|| Error::Unavailable("the writer is restarting".into())),
            Ok(Err(_)) => Err(Error::Unavailable("the store's runtime has stopped".into())),
            Err(_) => Err(Error::Unavailable(format!(
                "no running writer within {:?}: the store's runtime is restarting or has given up",
                self.inner.config.connect_timeout
            ))),
        }
    }

    fn validate_event(&self, index: usize, event: &EventData) -> Result<()> {
        let name = |what: &str| format!("event {index} ({}): {what}", event.event_id);
        if event.event_type.is_empty() {
            return Err(Error::invalid(name("event_type is empty")));
        }
        if event.event_type.len() > MAX_EVENT_TYPE_BYTES {
            return Err(Error::invalid(name(&format!("event_type is longer than {MAX_EVENT_TYPE_BYTES} bytes"))));
        }
        if event.event_type.contains('\0') {
            return Err(Error::invalid(name("event_type contains a NUL character")));
        }
        if event.content_type.is_empty() || event.content_type.contains('\0') {
            return Err(Error::invalid(name("content_type is empty or contains a NUL character")));
        }
        if let Some(metadata) = &event.metadata
            && let Err(e) = check_json(metadata)
        {
            return Err(Error::invalid(name(&format!("metadata is not JSON ({e}); metadata must be a JSON document"))));
        }
        if is_json(&event.content_type)
            && let Err(e) = check_json(&event.data)
        {
            return Err(Error::invalid(name(&format!(
                "data is labelled `{}` but is not JSON ({e}); send JSON or label it with its own content type",
                event.content_type
            ))));
        }
        let size = event.payload_size();
        if size > self.inner.config.max_event_size {
            return Err(Error::invalid(name(&format!(
                "data + metadata is {size} bytes, over max_event_size ({} bytes)",
                self.inner.config.max_event_size
            ))));
        }
        Ok(())
    }

    /// Reads up to `count` entries of `stream` with version >= `start` (0 or 1: the first).
    /// `stream` may be [`ALL`].
    pub async fn read_stream_forward(&self, stream: &str, start: u64, count: u64) -> Result<Vec<RecordedEvent>> {
        self.ensure_open()?;
        if stream == ALL {
            return self.read_all_forward(start, count).await;
        }
        validate_stream_id(stream)?;
        self.inner.storage.read_stream(stream, start, count, Direction::Forward).await
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
        validate_stream_id(stream)?;
        self.inner.storage.read_stream(stream, start.unwrap_or(i64::MAX as u64), count, Direction::Backward).await
    }

    /// Reads up to `count` events of `$all` with global position >= `start`.
    pub async fn read_all_forward(&self, start: u64, count: u64) -> Result<Vec<RecordedEvent>> {
        self.ensure_open()?;
        self.inner.storage.read_all(start, count, Direction::Forward).await
    }

    /// Reads up to `count` events of `$all` with global position <= `start`, newest first
    /// (`None`: from the end).
    pub async fn read_all_backward(&self, start: Option<u64>, count: u64) -> Result<Vec<RecordedEvent>> {
        self.ensure_open()?;
        self.inner.storage.read_all(start.unwrap_or(i64::MAX as u64), count, Direction::Backward).await
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
        validate_stream_id(stream)?;
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

    /// Deletes a stream: `Soft` hides it from stream reads (its events stay in `$all`); `Hard`
    /// removes its events everywhere (needs `enable_hard_deletes`).
    pub async fn delete_stream(&self, stream: &str, expected: ExpectedVersion, mode: DeleteMode) -> Result<()> {
        self.ensure_writable("delete streams")?;
        if stream == ALL {
            return Err(Error::CannotDeleteAllStream);
        }
        validate_stream_id(stream)?;
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

    /// Connects to the named subscription `name` of `stream` (starting it on this node if
    /// needed). The first message is [`SubscriptionMessage::Subscribed`](crate::SubscriptionMessage),
    /// once this node owns the subscription (another node may own it: this one then waits and
    /// takes over when it goes).
    ///
    /// Errors: [`Error::SubscriptionAlreadyExists`] if it has a subscriber and its
    /// `concurrency_limit` is 1, [`Error::TooManySubscribers`] past the limit,
    /// [`Error::InvalidArgument`] for invalid options or stream ids.
    pub async fn subscribe_to_stream(
        &self,
        stream: &str,
        name: &str,
        options: SubscriptionOptions,
    ) -> Result<Subscription> {
        self.ensure_writable("run named subscriptions (they keep checkpoints); live listeners work")?;
        let key = self.subscription_key(stream, name)?;
        let request = key.clone();
        let connected: Connected =
            self.ask_registry(|reply| RegistryMsg::Subscribe { key: request, options, reply }).await??;
        Ok(Subscription::new(key, connected.consumer, connected.rx, connected.actor, self.registry()?))
    }

    /// Connects to the named subscription `name` of `$all` (see
    /// [`subscribe_to_stream`](Self::subscribe_to_stream)).
    pub async fn subscribe_to_all_streams(&self, name: &str, options: SubscriptionOptions) -> Result<Subscription> {
        self.subscribe_to_stream(ALL, name, options).await
    }

    /// Stops the named subscription on this node: writes its checkpoint, releases its lock
    /// (another node may take it over) and drops its subscribers with
    /// [`DropReason::Unsubscribed`]. Its checkpoint stays. Not running here is not an error.
    pub async fn unsubscribe_from_stream(&self, stream: &str, name: &str) -> Result<()> {
        self.stop_subscription(stream, name, DropReason::Unsubscribed).await.map(|_| ())
    }

    /// Stops the named subscription of `$all` on this node (see
    /// [`unsubscribe_from_stream`](Self::unsubscribe_from_stream)).
    pub async fn unsubscribe_from_all_streams(&self, name: &str) -> Result<()> {
        self.unsubscribe_from_stream(ALL, name).await
    }

    /// Deletes the named subscription: stops it on this node (subscribers get
    /// [`DropReason::Deleted`]) and deletes its checkpoint, so subscribing again starts from
    /// `start_from`. [`Error::SubscriptionNotFound`] if it neither runs here nor is stored.
    pub async fn delete_subscription(&self, stream: &str, name: &str) -> Result<()> {
        self.ensure_writable("delete subscriptions")?;
        let running = self.stop_subscription(stream, name, DropReason::Deleted).await?;
        let stored = self.inner.storage.delete_subscription(stream, name).await?;
        if running || stored { Ok(()) } else { Err(Error::SubscriptionNotFound) }
    }

    async fn stop_subscription(&self, stream: &str, name: &str, reason: DropReason) -> Result<bool> {
        let key = self.subscription_key(stream, name)?;
        self.ask_registry(|reply| RegistryMsg::Unsubscribe { key, reason, reply }).await
    }

    /// Moves the checkpoint of a named subscription that runs nowhere: the next subscriber
    /// resumes after `checkpoint` (back, to process events again; forward, to skip them). Retry
    /// counts of events it passes are forgotten; parked events stay parked.
    ///
    /// [`Error::SubscriptionInUse`] while a node (this one or another) runs the subscription:
    /// unsubscribe it everywhere first. [`Error::SubscriptionNotFound`] if it does not exist.
    pub async fn set_subscription_checkpoint(&self, stream: &str, name: &str, checkpoint: u64) -> Result<()> {
        self.ensure_writable("move checkpoints")?;
        self.subscription_key(stream, name)?;
        if self.running_subscription(stream, name).await?.is_some() {
            return Err(Error::SubscriptionInUse);
        }
        if self.inner.storage.set_checkpoint(stream, name, checkpoint).await? {
            Ok(())
        } else {
            Err(Error::SubscriptionNotFound)
        }
    }

    /// The in-memory state of a named subscription running on this node;
    /// [`Error::SubscriptionNotFound`] if it does not run here.
    pub async fn subscription_status(&self, stream: &str, name: &str) -> Result<SubscriptionStatus> {
        self.ensure_open()?;
        let actor = self.running_subscription(stream, name).await?.ok_or(Error::SubscriptionNotFound)?;
        match actor.call(SubscriptionMsg::Status, None).await {
            Ok(CallResult::Success(status)) => Ok(status),
            _ => Err(Error::Unavailable("the subscription is restarting".into())),
        }
    }

    /// Every named subscription stored in this store, with its checkpoint, its lag behind its
    /// stream and the database session that owns it (whichever node runs it).
    pub async fn list_subscriptions(&self) -> Result<Vec<SubscriptionInfo>> {
        self.ensure_open()?;
        self.inner.storage.list_subscriptions().await
    }

    /// Runs `subscriber` as a supervised actor consuming the named subscription `name` of
    /// `stream` (or [`ALL`]): one of its subscribers, like
    /// [`subscribe_to_stream`](Self::subscribe_to_stream) (same errors). `Ok` from
    /// [`Subscriber::handle`] acks the batch; an `Err` or a panic makes it back off and take
    /// the unacked events again, in order, parking an event that keeps failing past
    /// `max_retry_count` (see [`Subscriber`]). The actor stops with the store, on
    /// [`SubscriberHandle::stop`], or when the subscription is unsubscribed or deleted.
    ///
    /// ```no_run
    /// use chronik::{EventStore, HandlerError, RecordedEvent, Subscriber, SubscriptionOptions, ALL};
    ///
    /// struct Printer;
    /// impl Subscriber for Printer {
    ///     async fn handle(&mut self, events: &[RecordedEvent]) -> Result<(), HandlerError> {
    ///         for event in events {
    ///             println!("{} {}", event.event_number, event.event_type);
    ///         }
    ///         Ok(())
    ///     }
    /// }
    ///
    /// # async fn demo(store: EventStore) -> chronik::Result<()> {
    /// let printer = store.start_subscriber(ALL, "printer", SubscriptionOptions::default(), Printer).await?;
    /// printer.pause().await?;
    /// printer.resume().await?;
    /// printer.stop().await?;
    /// # Ok(()) }
    /// ```
    pub async fn start_subscriber<S: Subscriber>(
        &self,
        stream: &str,
        name: &str,
        options: SubscriptionOptions,
        subscriber: S,
    ) -> Result<SubscriberHandle> {
        let mut subscription = self.subscribe_to_stream(stream, name, options).await?;
        let rx = subscription
            .take_receiver()
            .ok_or_else(|| Error::Unavailable("the subscription's receiver is already taken".into()))?;
        let args = RunnerArgs { subscriber, subscription, rx };
        let (actor, _) = Actor::spawn_linked(None, Runner::<S>::new(), args, self.inner.supervisor.get_cell())
            .await
            .map_err(|e| Error::Unavailable(format!("cannot start subscriber {stream}/{name}: {e}")))?;
        Ok(SubscriberHandle::new(stream.to_string(), name.to_string(), actor))
    }

    /// Starts every subscription the configuration declares (`[[subscriptions]]`, see
    /// [`Config::subscriptions`]) with the implementation `subscribers` gives for its name, and
    /// returns their handles by name. A declared name with no implementation, or an
    /// implementation with no declaration, is an [`Error::Config`] and nothing is started; if
    /// one fails to start, those already started are stopped again.
    ///
    /// ```no_run
    /// use chronik::{Config, EventStore, HandlerError, RecordedEvent, Subscriber, Subscribers};
    ///
    /// struct Projector;
    /// impl Subscriber for Projector {
    ///     async fn handle(&mut self, _events: &[RecordedEvent]) -> Result<(), HandlerError> {
    ///         Ok(())
    ///     }
    /// }
    ///
    /// # async fn demo() -> chronik::Result<()> {
    /// // Usually a file (`Config::from_file`); its `[[subscriptions]]` entries declare the names.
    /// let config = Config::from_toml_str(
    ///     r#"
    ///     database_url = "sqlite:data/app.db"
    ///     [[subscriptions]]
    ///     name = "projector"
    ///     "#,
    /// )?;
    /// let store = EventStore::start(config).await?;
    /// let handles = store.start_subscribers(Subscribers::new().add("projector", Projector)).await?;
    /// handles["projector"].pause().await?;
    /// # Ok(()) }
    /// ```
    pub async fn start_subscribers(&self, mut subscribers: Subscribers) -> Result<BTreeMap<String, SubscriberHandle>> {
        self.ensure_open()?;
        let declared = &self.inner.config.subscriptions;
        subscribers.check(&declared.iter().map(|d| d.name.as_str()).collect::<Vec<_>>())?;
        let mut handles = BTreeMap::new();
        for entry in declared {
            let started = match subscribers.take(&entry.name) {
                Some(start) => start(self.clone(), entry.stream.clone(), entry.name.clone(), entry.options()).await,
                None => Err(Error::config("subscriptions", format!("no implementation for `{}`", entry.name))),
            };
            match started {
                Ok(handle) => {
                    handles.insert(entry.name.clone(), handle);
                }
                Err(e) => {
                    for handle in handles.values() {
                        let _ = handle.stop().await;
                    }
                    return Err(e);
                }
            }
        }
        Ok(handles)
    }

    /// Delivers the parked events of a named subscription again, ahead of new events, once
    /// each: a replayed event leaves the parked list when it is acked or skipped (nacked with
    /// [`NackAction::Park`](crate::NackAction) it stays parked). Works from any process: the
    /// events are marked for replay in the database and the node that owns the subscription,
    /// wherever it runs, is notified (a subscription that runs nowhere replays them when it
    /// next starts). Returns how many parked events are marked;
    /// [`Error::SubscriptionNotFound`] if the subscription does not exist.
    pub async fn replay_parked(&self, stream: &str, name: &str) -> Result<u64> {
        self.ensure_writable("replay parked events")?;
        self.subscription_key(stream, name)?;
        let (id, marked) = self.inner.storage.request_replay(stream, name).await?.ok_or(Error::SubscriptionNotFound)?;
        // Running here: wait until the events are queued, so that they come before anything
        // appended after this call returns.
        if let Some(actor) = self.running_subscription(stream, name).await?
            && let Ok(CallResult::Success(queued)) =
                actor.call(|reply| SubscriptionMsg::ReplayParked { id, reply: Some(reply) }, None).await
        {
            queued?;
        }
        Ok(marked)
    }

    /// The parked events of a named subscription, oldest first (see
    /// [`NackAction::Park`](crate::NackAction)); [`Error::SubscriptionNotFound`] if it does not
    /// exist.
    pub async fn parked_events(&self, stream: &str, name: &str) -> Result<Vec<ParkedEvent>> {
        self.subscription_key(stream, name)?;
        self.inner.storage.parked_events(stream, name).await?.ok_or(Error::SubscriptionNotFound)
    }

    /// A transient, live-only listener on `stream` (or [`ALL`]): events committed from now on,
    /// no acks, no checkpoint. It never slows writers: if it falls [`LIVE_BUFFER`] messages
    /// behind, it drops events and says so ([`LiveMessage::Lagged`](crate::LiveMessage)).
    pub async fn subscribe(&self, stream: &str) -> Result<LiveSubscription> {
        self.ensure_open()?;
        validate_stream_id(stream)?;
        let (tx, rx) = tokio::sync::mpsc::channel(LIVE_BUFFER);
        let id = self.inner.hub.next_id();
        // Listening first, then reading the head: every event committed after the head was read
        // reaches the listener, and everything at or below it is filtered out (the notifier
        // routes what it reads from its own cursor, which may still be behind the head).
        self.inner.hub.listen(stream, id, Listener::Live(tx)).await?;
        let after = match self.inner.storage.head(ALL).await {
            Ok(head) => head,
            Err(e) => {
                self.inner.hub.unlisten(stream, id).await;
                return Err(e);
            }
        };
        Ok(LiveSubscription::new(stream.to_string(), id, rx, Arc::clone(&self.inner.hub), after))
    }

    /// The key of a named subscription, once the store is open and both names are valid.
    fn subscription_key(&self, stream: &str, name: &str) -> Result<SubscriptionKey> {
        self.ensure_open()?;
        validate_stream_id(stream)?;
        validate_subscription_name(name)?;
        Ok(SubscriptionKey { stream: stream.to_string(), name: name.to_string() })
    }

    fn registry(&self) -> Result<ActorRef<RegistryMsg>> {
        self.inner
            .registry
            .borrow()
            .clone()
            .ok_or_else(|| Error::Unavailable("the subscription registry is restarting".into()))
    }

    /// Sends the registry a request and waits for its answer.
    async fn ask_registry<T: Send + 'static>(&self, request: impl FnOnce(RpcReplyPort<T>) -> RegistryMsg) -> Result<T> {
        match self.registry()?.call(request, None).await {
            Ok(CallResult::Success(answer)) => Ok(answer),
            _ => Err(Error::Unavailable("the subscription registry stopped".into())),
        }
    }

    /// The actor of a named subscription, if it runs on this node.
    async fn running_subscription(&self, stream: &str, name: &str) -> Result<Option<ActorRef<SubscriptionMsg>>> {
        let key = SubscriptionKey { stream: stream.to_string(), name: name.to_string() };
        self.ask_registry(|reply| RegistryMsg::Actor { key, reply }).await
    }

    /// The actor of a named subscription running on this node, for tests that kill it to
    /// exercise supervision.
    #[doc(hidden)]
    pub async fn subscription_actor(&self, stream: &str, name: &str) -> Option<ActorCell> {
        self.running_subscription(stream, name).await.ok().flatten().map(|a| a.get_cell())
    }

    /// The writer actor, for tests that kill it to exercise supervision.
    #[doc(hidden)]
    pub fn writer_actor(&self) -> Option<ActorCell> {
        self.inner.writer.borrow().as_ref().map(ActorRef::get_cell)
    }
}

/// Checks that `bytes` are one JSON document in UTF-8 (as RFC 8259 requires), without building it.
fn check_json(bytes: &[u8]) -> std::result::Result<(), String> {
    let text = std::str::from_utf8(bytes).map_err(|e| format!("not UTF-8: {e}"))?;
    serde_json::from_str::<serde::de::IgnoredAny>(text).map(|_| ()).map_err(|e| e.to_string())
}

/// Whether a content type says JSON: `application/json` or a `+json` type such as
/// `application/vnd.acme+json`, with or without parameters (`; charset=utf-8`).
fn is_json(content_type: &str) -> bool {
    let media = content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    media == crate::JSON_CONTENT_TYPE || (media.starts_with("application/") && media.ends_with("+json"))
}

fn validate_subscription_name(name: &str) -> Result<()> {
    validate_name("subscription name", name)
}

fn validate_stream_id(stream: &str) -> Result<()> {
    validate_name("stream id", stream)
}

/// A stream id or subscription name: not empty, at most `MAX_STREAM_ID_BYTES`, no NUL.
pub(crate) fn validate_name(what: &str, name: &str) -> Result<()> {
    if name.is_empty() {
        return Err(Error::invalid(format!("{what} is empty")));
    }
    if name.len() > MAX_STREAM_ID_BYTES {
        return Err(Error::invalid(format!(
            "{what} is {} bytes long, over the limit of {MAX_STREAM_ID_BYTES}",
            name.len()
        )));
    }
    if name.contains('\0') {
        return Err(Error::invalid(format!("{what} contains a NUL character")));
    }
    Ok(())
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
