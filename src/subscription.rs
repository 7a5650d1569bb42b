//! The subscriber's side of subscriptions: [`SubscriptionOptions`], the messages a subscriber
//! receives, and the handles ([`Subscription`] for a named, acked subscription,
//! [`LiveSubscription`] for a transient live-only listener).
//!
//! The subscription itself (queue, in-flight events, checkpoint, ownership) is an actor in
//! `runtime/subscription/`; a handle only receives its messages and sends acks.

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use ractor::rpc::CallResult;
use ractor::{ActorRef, RpcReplyPort};
use tokio::sync::{mpsc, watch};

use crate::error::{Error, Result};
use crate::event::RecordedEvent;
use crate::runtime::publisher::{Hub, ListenerId};
use crate::runtime::registry::{RegistryMsg, SubscriptionKey};
use crate::runtime::subscription::{Acks, Delivery, SubscriptionMsg};

/// Where a new named subscription starts. It applies when the subscription is first created;
/// afterwards the persisted checkpoint decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StartFrom {
    /// From the first event.
    #[default]
    Origin,
    /// After the last event stored when the subscription is created.
    Current,
    /// After event number `n`: the first event delivered is the first with `event_number > n`.
    After(u64),
}

type PartitionFn = Arc<dyn Fn(&RecordedEvent) -> u64 + Send + Sync>;
type SelectorFn = Arc<dyn Fn(&RecordedEvent) -> bool + Send + Sync>;

/// Options of a named subscription. The first subscriber's options hold while the subscription
/// runs on a node; later subscribers (competing consumers) join it as it is.
///
/// ```
/// use std::time::Duration;
/// use chronik::{StartFrom, SubscriptionOptions};
///
/// let options = SubscriptionOptions::default()
///     .start_from(StartFrom::Origin)
///     .buffer_size(100)
///     .max_size(1_000)
///     .concurrency_limit(4)
///     .partition_by(|e| e.stream_uuid.clone())
///     .selector(|e| e.event_type != "Noise")
///     .checkpoint_threshold(100)
///     .checkpoint_after(Duration::from_millis(200))
///     .message_timeout(Duration::from_secs(30))
///     .max_retry_count(10);
/// assert_eq!(options.buffer_size, 100);
/// ```
#[derive(Clone)]
#[non_exhaustive]
pub struct SubscriptionOptions {
    /// Where a new subscription starts (default [`StartFrom::Origin`]).
    pub start_from: StartFrom,
    /// Most events in flight (delivered, not acked) per subscriber (default 100).
    pub buffer_size: usize,
    /// Most events queued in memory; past it the subscription stops taking live events and
    /// reads from storage as it drains (default 1,000).
    pub max_size: usize,
    /// Most subscribers connected at once: competing consumers (default 1, exclusive).
    pub concurrency_limit: usize,
    /// Number of acked events after which the checkpoint is written (default 1: every ack).
    pub checkpoint_threshold: u64,
    /// Longest time an acked event waits for its checkpoint to be written (default 1 s).
    pub checkpoint_after: Duration,
    /// Longest time an event may stay in flight without an ack or a nack; past it, the event
    /// is retried as if nacked with [`NackAction::Retry`] (default 30 s).
    pub message_timeout: Duration,
    /// Most retries of one event (nacks with [`NackAction::Retry`], message timeouts, failures
    /// of a [`Subscriber`](crate::Subscriber)); the next one parks it (default 10).
    pub max_retry_count: u32,
    /// A transient subscription keeps no checkpoint, takes no lock and has no parked list: it
    /// starts from `start_from` every time and runs on every node that subscribes (default
    /// false).
    pub transient: bool,
    partition_by: Option<PartitionFn>,
    selector: Option<SelectorFn>,
}

impl Default for SubscriptionOptions {
    fn default() -> Self {
        SubscriptionOptions {
            start_from: StartFrom::Origin,
            buffer_size: 100,
            max_size: 1_000,
            concurrency_limit: 1,
            checkpoint_threshold: 1,
            checkpoint_after: Duration::from_secs(1),
            message_timeout: Duration::from_secs(30),
            max_retry_count: 10,
            transient: false,
            partition_by: None,
            selector: None,
        }
    }
}

impl fmt::Debug for SubscriptionOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SubscriptionOptions")
            .field("start_from", &self.start_from)
            .field("buffer_size", &self.buffer_size)
            .field("max_size", &self.max_size)
            .field("concurrency_limit", &self.concurrency_limit)
            .field("checkpoint_threshold", &self.checkpoint_threshold)
            .field("checkpoint_after", &self.checkpoint_after)
            .field("message_timeout", &self.message_timeout)
            .field("max_retry_count", &self.max_retry_count)
            .field("transient", &self.transient)
            .field("partition_by", &self.partition_by.is_some())
            .field("selector", &self.selector.is_some())
            .finish()
    }
}

impl SubscriptionOptions {
    /// Sets where a new subscription starts.
    #[must_use]
    pub fn start_from(mut self, start: StartFrom) -> Self {
        self.start_from = start;
        self
    }

    /// Sets the most events in flight per subscriber.
    #[must_use]
    pub fn buffer_size(mut self, events: usize) -> Self {
        self.buffer_size = events;
        self
    }

    /// Sets the most events queued in memory.
    #[must_use]
    pub fn max_size(mut self, events: usize) -> Self {
        self.max_size = events;
        self
    }

    /// Sets the most subscribers connected at once (competing consumers).
    #[must_use]
    pub fn concurrency_limit(mut self, subscribers: usize) -> Self {
        self.concurrency_limit = subscribers;
        self
    }

    /// Routes events with the same key to the same subscriber, in order, while any of them is in
    /// flight (for `concurrency_limit > 1`).
    #[must_use]
    pub fn partition_by<K, F>(mut self, key: F) -> Self
    where
        K: Hash,
        F: Fn(&RecordedEvent) -> K + Send + Sync + 'static,
    {
        let hasher = std::hash::RandomState::new();
        self.partition_by = Some(Arc::new(move |event| hasher.hash_one(key(event))));
        self
    }

    /// Delivers only the events for which `select` is true; the others count as acked.
    #[must_use]
    pub fn selector<F>(mut self, select: F) -> Self
    where
        F: Fn(&RecordedEvent) -> bool + Send + Sync + 'static,
    {
        self.selector = Some(Arc::new(select));
        self
    }

    /// Sets the number of acked events after which the checkpoint is written.
    #[must_use]
    pub fn checkpoint_threshold(mut self, events: u64) -> Self {
        self.checkpoint_threshold = events;
        self
    }

    /// Sets the longest time an acked event waits for its checkpoint to be written.
    #[must_use]
    pub fn checkpoint_after(mut self, after: Duration) -> Self {
        self.checkpoint_after = after;
        self
    }

    /// Sets the longest time an event may stay in flight before it is retried.
    #[must_use]
    pub fn message_timeout(mut self, timeout: Duration) -> Self {
        self.message_timeout = timeout;
        self
    }

    /// Sets the most retries of one event before it is parked.
    #[must_use]
    pub fn max_retry_count(mut self, retries: u32) -> Self {
        self.max_retry_count = retries;
        self
    }

    /// Makes the subscription transient (no checkpoint, no lock, no parked list).
    #[must_use]
    pub fn transient(mut self, transient: bool) -> Self {
        self.transient = transient;
        self
    }

    pub(crate) fn partition_of(&self, event: &RecordedEvent) -> Option<u64> {
        self.partition_by.as_ref().map(|key| key(event))
    }

    pub(crate) fn selects(&self, event: &RecordedEvent) -> bool {
        self.selector.as_ref().is_none_or(|select| select(event))
    }

    pub(crate) fn validate(&self) -> Result<()> {
        let positive = |name: &str, value: u64| {
            if value == 0 {
                Err(Error::invalid(format!("subscription option {name} must be at least 1")))
            } else {
                Ok(())
            }
        };
        positive("buffer_size", self.buffer_size as u64)?;
        positive("max_size", self.max_size as u64)?;
        positive("concurrency_limit", self.concurrency_limit as u64)?;
        positive("checkpoint_threshold", self.checkpoint_threshold)?;
        if self.message_timeout.is_zero() {
            return Err(Error::invalid("subscription option message_timeout must be longer than zero"));
        }
        if let StartFrom::After(n) = self.start_from
            && i64::try_from(n).is_err()
        {
            return Err(Error::invalid(format!("start_from After({n}) is larger than {}", i64::MAX)));
        }
        Ok(())
    }
}

/// What a subscriber receives.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum SubscriptionMessage {
    /// This node owns the subscription and delivery starts (again, after a lost and retaken
    /// ownership or a restarted subscription actor: events after the checkpoint come again).
    Subscribed,
    /// Consecutive events of one source stream, at most `buffer_size`; ack them.
    Events(Vec<RecordedEvent>),
    /// The stored backlog has been delivered; the subscription is live. It is sent again each
    /// time the subscription fell behind and caught up.
    CaughtUp,
    /// The subscriber is disconnected; no message follows.
    Dropped(DropReason),
}

/// Why a subscriber was dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DropReason {
    /// The subscription was unsubscribed on this node.
    Unsubscribed,
    /// The subscription was deleted.
    Deleted,
    /// The store shut down.
    Shutdown,
    /// The subscriber nacked an event with [`NackAction::Stop`], giving this reason.
    Stopped(String),
    /// The subscription failed and could not be restarted.
    Failed(String),
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DropReason::Unsubscribed => f.write_str("unsubscribed"),
            DropReason::Deleted => f.write_str("subscription deleted"),
            DropReason::Shutdown => f.write_str("store shut down"),
            DropReason::Stopped(why) => write!(f, "stopped by the subscriber: {why}"),
            DropReason::Failed(why) => write!(f, "subscription failed: {why}"),
        }
    }
}

/// What a subscriber wants done with an event it could not process (see
/// [`Subscription::nack`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum NackAction {
    /// Deliver it again (to any subscriber; ahead of newer events, but after those already in
    /// flight), counting a retry; past `max_retry_count` retries it is parked instead.
    Retry,
    /// Record it in the subscription's parked list (with the reason, the time and its retry
    /// count) and move on: it no longer holds the checkpoint back.
    /// [`EventStore::replay_parked`](crate::EventStore::replay_parked) delivers it again.
    Park,
    /// Treat it as processed, like an ack.
    Skip,
    /// Disconnect this subscriber: it gets [`DropReason::Stopped`], and every event in flight
    /// for it (this one included, its retry count unchanged) goes to the other subscribers or
    /// the next one to connect.
    Stop,
}

impl fmt::Display for NackAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NackAction::Retry => "retry",
            NackAction::Park => "park",
            NackAction::Skip => "skip",
            NackAction::Stop => "stop",
        })
    }
}

/// A subscriber's connection to a named subscription.
///
/// Dropping it disconnects the subscriber: its in-flight events go back to the queue for the
/// other subscribers (or the next one to connect).
///
/// ```no_run
/// use chronik::{EventStore, SubscriptionMessage, SubscriptionOptions};
/// # async fn demo(store: EventStore) -> chronik::Result<()> {
/// let mut sub = store.subscribe_to_all_streams("projector", SubscriptionOptions::default()).await?;
/// while let Some(msg) = sub.recv().await {
///     match msg {
///         SubscriptionMessage::Events(batch) => {
///             // apply the batch, then:
///             sub.ack(&batch).await?;
///         }
///         SubscriptionMessage::Dropped(_) => break,
///         _ => {}
///     }
/// }
/// # Ok(()) }
/// ```
pub struct Subscription {
    key: SubscriptionKey,
    consumer: u64,
    /// `None` once a subscriber actor took it.
    rx: Option<mpsc::UnboundedReceiver<Delivery>>,
    actor: watch::Receiver<Option<ActorRef<SubscriptionMsg>>>,
    registry: ActorRef<RegistryMsg>,
    incarnation: u64,
    /// Deliveries of this incarnation older than this were taken back (a pause) and are stale.
    epoch: u64,
    connected: AtomicBool,
    /// `Dropped` was received: nothing follows.
    dropped: bool,
    /// Retry counts of delivered events that were retried before.
    retries: Mutex<HashMap<u64, u32>>,
}

impl fmt::Debug for Subscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription")
            .field("stream", &self.key.stream)
            .field("name", &self.key.name)
            .field("subscriber", &self.consumer)
            .finish_non_exhaustive()
    }
}

impl Subscription {
    pub(crate) fn new(
        key: SubscriptionKey,
        consumer: u64,
        rx: mpsc::UnboundedReceiver<Delivery>,
        actor: watch::Receiver<Option<ActorRef<SubscriptionMsg>>>,
        registry: ActorRef<RegistryMsg>,
    ) -> Self {
        Subscription {
            key,
            consumer,
            rx: Some(rx),
            actor,
            registry,
            incarnation: 0,
            epoch: 0,
            connected: AtomicBool::new(true),
            dropped: false,
            retries: Mutex::new(HashMap::new()),
        }
    }

    /// The subscribed stream (or `$all`).
    pub fn stream(&self) -> &str {
        &self.key.stream
    }

    /// The subscription's name.
    pub fn name(&self) -> &str {
        &self.key.name
    }

    /// The next message; `None` once the subscriber is disconnected (after
    /// [`SubscriptionMessage::Dropped`], nothing more is received).
    pub async fn recv(&mut self) -> Option<SubscriptionMessage> {
        if self.dropped {
            return None;
        }
        loop {
            let delivery = self.rx.as_mut()?.recv().await?;
            if let Some(message) = self.accept(delivery) {
                return Some(message);
            }
        }
    }

    /// Hands the receiving half of the channel to a subscriber actor, which passes what it
    /// receives through [`accept`](Self::accept).
    pub(crate) fn take_receiver(&mut self) -> Option<mpsc::UnboundedReceiver<Delivery>> {
        self.rx.take()
    }

    /// The message of a delivery, or `None` if it is stale (taken back by a pause).
    pub(crate) fn accept(&mut self, delivery: Delivery) -> Option<SubscriptionMessage> {
        if delivery.incarnation == self.incarnation && delivery.epoch < self.epoch {
            return None;
        }
        if delivery.incarnation != self.incarnation {
            self.incarnation = delivery.incarnation;
            self.epoch = delivery.epoch;
            self.retry_counts().clear();
        }
        match &delivery.message {
            SubscriptionMessage::Dropped(_) => {
                self.connected.store(false, Ordering::Relaxed);
                self.dropped = true;
            }
            SubscriptionMessage::Events(_) if !delivery.retries.is_empty() => {
                self.retry_counts().extend(delivery.retries.iter().copied());
            }
            _ => {}
        }
        Some(delivery.message)
    }

    /// How many times this delivered event was retried before (0 on its first delivery): by
    /// [`NackAction::Retry`], a message timeout or a failed
    /// [`Subscriber`](crate::Subscriber). Known until the event is acked or nacked.
    pub fn retry_count(&self, event: &RecordedEvent) -> u32 {
        self.retry_counts().get(&event.event_number).copied().unwrap_or(0)
    }

    fn retry_counts(&self) -> std::sync::MutexGuard<'_, HashMap<u64, u32>> {
        self.retries.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Acks these delivered events (by event number). Every one must be in flight for this
    /// subscriber, else [`Error::UnexpectedAck`] and nothing is acked.
    ///
    /// Acks of events delivered before the subscription restarted or changed owner are ignored:
    /// those events are delivered again from the checkpoint.
    ///
    /// It returns once the subscription has booked the ack. The checkpoint it moves (past
    /// `checkpoint_threshold`) is written right after, together with those of the node's other
    /// subscriptions, and in any case before an unsubscribe or a shutdown returns; a crash in
    /// between delivers those events again.
    pub async fn ack(&self, events: &[RecordedEvent]) -> Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        let numbers: Vec<u64> = events.iter().map(|e| e.event_number).collect();
        self.forget_retries(|n| numbers.contains(&n));
        self.call(|consumer, incarnation, reply| SubscriptionMsg::Ack {
            consumer,
            incarnation,
            acks: Acks::Events(numbers),
            reply,
        })
        .await
    }

    /// Acks event number `n` and every older event in flight for this subscriber. `n` must be in
    /// flight for this subscriber, else [`Error::UnexpectedAck`].
    pub async fn ack_number(&self, n: u64) -> Result<()> {
        self.forget_retries(|k| k <= n);
        self.call(|consumer, incarnation, reply| SubscriptionMsg::Ack {
            consumer,
            incarnation,
            acks: Acks::UpTo(n),
            reply,
        })
        .await
    }

    /// Tells the subscription this delivered event could not be processed, and what to do with
    /// it (see [`NackAction`]); `reason` is logged and stored with a parked event. The event must
    /// be in flight for this subscriber, else [`Error::UnexpectedAck`].
    ///
    /// [`NackAction::Park`] on a transient subscription is [`Error::InvalidArgument`]: it has no
    /// parked list. After [`NackAction::Stop`] this subscriber receives
    /// [`DropReason::Stopped`] and nothing more.
    pub async fn nack(&self, event: &RecordedEvent, action: NackAction, reason: impl Into<String>) -> Result<()> {
        let (number, reason) = (event.event_number, reason.into());
        let why = reason.clone();
        self.call(|consumer, incarnation, reply| SubscriptionMsg::Nack {
            consumer,
            incarnation,
            number,
            action,
            reason: why,
            reply,
        })
        .await?;
        self.forget_retries(|n| n == number);
        if action == NackAction::Stop && self.connected.swap(false, Ordering::Relaxed) {
            self.disconnect(Some(DropReason::Stopped(reason))).await?;
        }
        Ok(())
    }

    fn forget_retries(&self, acked: impl Fn(u64) -> bool) {
        let mut retries = self.retry_counts();
        if !retries.is_empty() {
            retries.retain(|n, _| !acked(*n));
        }
    }

    /// Sends the current subscription actor a request from this subscriber. A request to a
    /// subscription that is restarting or stopped is moot: its events come again.
    async fn call<T: Send + Default + 'static>(
        &self,
        request: impl FnOnce(u64, u64, RpcReplyPort<Result<T>>) -> SubscriptionMsg,
    ) -> Result<T> {
        let Some(actor) = self.actor.borrow().clone() else {
            tracing::debug!(subscription = %self.key, "request while the subscription restarts: its events come again");
            return Ok(T::default());
        };
        let (consumer, incarnation) = (self.consumer, self.incarnation);
        match actor.call(|reply| request(consumer, incarnation, reply), None).await {
            Ok(CallResult::Success(result)) => result,
            _ => {
                tracing::debug!(subscription = %self.key, "request to a stopped subscription: its events come again");
                Ok(T::default())
            }
        }
    }

    /// Stops delivery to this subscriber and gives its events in flight back (to the others,
    /// or to itself on [`resume`](Self::resume)); deliveries already on their way are
    /// discarded. The subscription keeps running and keeps its ownership. With `retry`, that
    /// event (it must be in flight here) also counts a retry, and is parked past
    /// `max_retry_count`.
    pub(crate) async fn pause(&mut self, retry: Option<(u64, String)>) -> Result<()> {
        let epoch = self
            .call(|consumer, incarnation, reply| SubscriptionMsg::Pause { consumer, incarnation, retry, reply })
            .await?;
        self.epoch = self.epoch.max(epoch);
        Ok(())
    }

    /// Resumes delivery to this subscriber after [`pause`](Self::pause).
    pub(crate) async fn resume(&self) -> Result<()> {
        self.call(|consumer, _, reply| SubscriptionMsg::Resume { consumer, reply }).await
    }

    /// Disconnects this subscriber (its in-flight events go to the others); the last one to
    /// leave stops the subscription on this node, writing its checkpoint first.
    pub async fn unsubscribe(self) -> Result<()> {
        if self.connected.swap(false, Ordering::Relaxed) {
            self.disconnect(None).await?;
        }
        Ok(())
    }

    async fn disconnect(&self, reason: Option<DropReason>) -> Result<()> {
        let (key, consumer) = (self.key.clone(), self.consumer);
        let request = |reply| RegistryMsg::Disconnect { key, consumer, reason, reply: Some(reply) };
        match self.registry.call(request, None).await {
            Ok(CallResult::Success(())) => Ok(()),
            _ => Err(Error::Unavailable("the store's subscription registry has stopped".into())),
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if self.connected.load(Ordering::Relaxed) {
            let (key, consumer) = (self.key.clone(), self.consumer);
            // A stopped registry has already disconnected everyone.
            let _ = self.registry.cast(RegistryMsg::Disconnect { key, consumer, reason: None, reply: None });
        }
    }
}

/// What a [`LiveSubscription`] receives.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum LiveMessage {
    /// Events committed since the previous message (of the subscribed stream; for `$all`, of
    /// every stream), in order.
    Events(Vec<RecordedEvent>),
    /// The listener fell behind and events were dropped for it: `missed` of them, or an unknown
    /// number (`None`). The listener never slows writers or grows memory.
    Lagged {
        /// How many events were dropped, if known.
        missed: Option<u64>,
    },
}

/// A transient, live-only listener (`store.subscribe(stream)`): events committed after it was
/// created, no acks, no checkpoint. It holds at most `LIVE_BUFFER` undelivered messages and
/// reports [`LiveMessage::Lagged`] instead of growing. Dropping it stops it.
pub struct LiveSubscription {
    stream: String,
    id: ListenerId,
    rx: mpsc::Receiver<LiveMessage>,
    hub: Arc<Hub>,
    /// The `$all` head when the listener was created: events at or below it were committed
    /// before, and are not the listener's (the notifier may not have routed them yet).
    after: u64,
}

impl fmt::Debug for LiveSubscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LiveSubscription").field("stream", &self.stream).finish_non_exhaustive()
    }
}

/// Undelivered messages a [`LiveSubscription`] holds before it drops events.
pub const LIVE_BUFFER: usize = 1_024;

impl LiveSubscription {
    pub(crate) fn new(
        stream: String,
        id: ListenerId,
        rx: mpsc::Receiver<LiveMessage>,
        hub: Arc<Hub>,
        after: u64,
    ) -> Self {
        LiveSubscription { stream, id, rx, hub, after }
    }

    /// The stream listened to (or `$all`).
    pub fn stream(&self) -> &str {
        &self.stream
    }

    /// The next message; `None` once the store has shut down.
    pub async fn recv(&mut self) -> Option<LiveMessage> {
        loop {
            match self.rx.recv().await? {
                LiveMessage::Events(mut events) => {
                    events.retain(|e| e.global_position > self.after);
                    if !events.is_empty() {
                        return Some(LiveMessage::Events(events));
                    }
                }
                other => return Some(other),
            }
        }
    }
}

impl Drop for LiveSubscription {
    fn drop(&mut self) {
        let (hub, stream, id) = (Arc::clone(&self.hub), std::mem::take(&mut self.stream), self.id);
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move { hub.unlisten(&stream, id).await });
        }
    }
}

/// A named subscription as stored: checkpoint, lag and owner (see
/// [`EventStore::list_subscriptions`](crate::EventStore::list_subscriptions)).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SubscriptionInfo {
    /// The subscribed stream (or `$all`).
    pub stream: String,
    /// The subscription's name.
    pub name: String,
    /// Every event up to this event number was acked.
    pub checkpoint: u64,
    /// The stream's last event number (for `$all`, the last global position).
    pub head: u64,
    /// `head - checkpoint`: events not yet acked (hard deletes make it an upper bound).
    pub lag: u64,
    /// The PostgreSQL backend pid of the session holding the subscription's lock, if a node
    /// runs it.
    pub owner_pid: Option<i32>,
    /// That session's `application_name` (`chronik <schema>`).
    pub owner_application: Option<String>,
    /// When the subscription was created.
    pub created_at: DateTime<Utc>,
    /// When its checkpoint was last written.
    pub updated_at: DateTime<Utc>,
}

/// An event in a subscription's parked list (see
/// [`EventStore::parked_events`](crate::EventStore::parked_events)).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ParkedEvent {
    /// Its number within the subscription: the stream version, or for `$all` the global
    /// position.
    pub event_number: u64,
    /// How many times it was retried before it was parked.
    pub retry_count: u32,
    /// Why it was parked (the subscriber's reason, or the retries that ran out).
    pub reason: String,
    /// When it was parked.
    pub parked_at: DateTime<Utc>,
    /// Whether a replay was asked for and it has not been acked since.
    pub replay_requested: bool,
}

/// Where a subscription running on this node is (see
/// [`EventStore::subscription_status`](crate::EventStore::subscription_status)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SubscriptionPhase {
    /// Waiting for ownership (another node holds the lock, or the database is unreachable).
    Waiting,
    /// Reading the backlog from storage.
    CatchingUp,
    /// Taking live events as they are committed.
    Live,
}

/// The in-memory state of a subscription running on this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct SubscriptionStatus {
    /// Where the state machine is.
    pub phase: SubscriptionPhase,
    /// Connected subscribers.
    pub subscribers: usize,
    /// Events queued, not yet delivered.
    pub queued: usize,
    /// Most events ever queued at once (never above `max_size`).
    pub peak_queued: usize,
    /// Events delivered and not yet acked.
    pub in_flight: usize,
    /// The last event number taken into the subscription (queued, in flight or acked).
    pub last_received: u64,
    /// The checkpoint as acked (every event up to it was acked).
    pub acked: u64,
    /// The checkpoint as last written to the database.
    pub persisted: u64,
    /// Replayed parked events queued or in flight.
    pub replaying: usize,
    /// Subscribers paused (their [`SubscriberHandle`](crate::SubscriberHandle) was paused).
    pub paused: usize,
}
