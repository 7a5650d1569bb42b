//! The subscriber's side of subscriptions: [`SubscriptionOptions`], the messages a subscriber
//! receives, and the handles ([`Subscription`] for a named, acked subscription,
//! [`LiveSubscription`] for a transient live-only listener).
//!
//! The subscription itself (queue, in-flight events, checkpoint, ownership) is an actor in
//! `runtime/subscription/`; a handle only receives its messages and sends acks.

use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use ractor::ActorRef;
use ractor::rpc::CallResult;
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
///     .checkpoint_after(Duration::from_millis(200));
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
    /// A transient subscription keeps no checkpoint and takes no lock: it starts from
    /// `start_from` every time and runs on every node that subscribes (default false).
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

    /// Makes the subscription transient (no checkpoint, no lock).
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
    /// The subscription failed and could not be restarted.
    Failed(String),
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DropReason::Unsubscribed => f.write_str("unsubscribed"),
            DropReason::Deleted => f.write_str("subscription deleted"),
            DropReason::Shutdown => f.write_str("store shut down"),
            DropReason::Failed(why) => write!(f, "subscription failed: {why}"),
        }
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
    rx: mpsc::UnboundedReceiver<Delivery>,
    actor: watch::Receiver<Option<ActorRef<SubscriptionMsg>>>,
    registry: ActorRef<RegistryMsg>,
    incarnation: u64,
    connected: bool,
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
        Subscription { key, consumer, rx, actor, registry, incarnation: 0, connected: true }
    }

    /// The subscribed stream (or `$all`).
    pub fn stream(&self) -> &str {
        &self.key.stream
    }

    /// The subscription's name.
    pub fn name(&self) -> &str {
        &self.key.name
    }

    /// The next message; `None` once the subscriber is disconnected.
    pub async fn recv(&mut self) -> Option<SubscriptionMessage> {
        let delivery = self.rx.recv().await?;
        self.incarnation = delivery.incarnation;
        if matches!(delivery.message, SubscriptionMessage::Dropped(_)) {
            self.connected = false;
        }
        Some(delivery.message)
    }

    /// Acks these delivered events (by event number). Every one must be in flight for this
    /// subscriber, else [`Error::UnexpectedAck`] and nothing is acked.
    ///
    /// Acks of events delivered before the subscription restarted or changed owner are ignored:
    /// those events are delivered again from the checkpoint.
    pub async fn ack(&self, events: &[RecordedEvent]) -> Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        self.send_ack(Acks::Events(events.iter().map(|e| e.event_number).collect())).await
    }

    /// Acks event number `n` and every older event in flight for this subscriber. `n` must be in
    /// flight for this subscriber, else [`Error::UnexpectedAck`].
    pub async fn ack_number(&self, n: u64) -> Result<()> {
        self.send_ack(Acks::UpTo(n)).await
    }

    async fn send_ack(&self, acks: Acks) -> Result<()> {
        let Some(actor) = self.actor.borrow().clone() else {
            tracing::debug!(subscription = %self.key, "ack while the subscription restarts: its events come again");
            return Ok(());
        };
        let (consumer, incarnation) = (self.consumer, self.incarnation);
        match actor.call(|reply| SubscriptionMsg::Ack { consumer, incarnation, acks, reply }, None).await {
            Ok(CallResult::Success(result)) => result,
            _ => {
                tracing::debug!(subscription = %self.key, "ack to a stopped subscription: its events come again");
                Ok(())
            }
        }
    }

    /// Disconnects this subscriber (its in-flight events go to the others); the last one to
    /// leave stops the subscription on this node, writing its checkpoint first.
    pub async fn unsubscribe(mut self) -> Result<()> {
        self.connected = false;
        let (key, consumer) = (self.key.clone(), self.consumer);
        match self.registry.call(|reply| RegistryMsg::Disconnect { key, consumer, reply: Some(reply) }, None).await {
            Ok(CallResult::Success(())) => Ok(()),
            _ => Err(Error::Unavailable("the store's subscription registry has stopped".into())),
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if self.connected {
            let (key, consumer) = (self.key.clone(), self.consumer);
            // A stopped registry has already disconnected everyone.
            let _ = self.registry.cast(RegistryMsg::Disconnect { key, consumer, reply: None });
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
}

impl fmt::Debug for LiveSubscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LiveSubscription").field("stream", &self.stream).finish_non_exhaustive()
    }
}

/// Undelivered messages a [`LiveSubscription`] holds before it drops events.
pub const LIVE_BUFFER: usize = 1_024;

impl LiveSubscription {
    pub(crate) fn new(stream: String, id: ListenerId, rx: mpsc::Receiver<LiveMessage>, hub: Arc<Hub>) -> Self {
        LiveSubscription { stream, id, rx, hub }
    }

    /// The stream listened to (or `$all`).
    pub fn stream(&self) -> &str {
        &self.stream
    }

    /// The next message; `None` once the store has shut down.
    pub async fn recv(&mut self) -> Option<LiveMessage> {
        self.rx.recv().await
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
}
