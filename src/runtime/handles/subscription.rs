//! [`Subscription`]: a subscriber's handle on a named subscription. It receives the actor's
//! messages and sends acks and nacks to whichever actor runs the subscription now.

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use tracing::Instrument;

use ractor::RpcReplyPort;
use ractor::rpc::CallResult;
use tokio::sync::mpsc;

use crate::error::Result;
use crate::event::RecordedEvent;
use crate::runtime::registry::RegistryMsg;
use crate::runtime::slot::ActorSlot;
use crate::runtime::subscription::{Acks, Delivery, SubscriptionMsg};
use crate::subscription::{DropReason, NackAction, SubscriptionKey, SubscriptionMessage};

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
    /// `None` for a subscriber actor's, whose deliveries go to its mailbox.
    rx: Option<mpsc::UnboundedReceiver<Delivery>>,
    actor: ActorSlot<SubscriptionMsg>,
    registry: ActorSlot<RegistryMsg>,
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
        rx: Option<mpsc::UnboundedReceiver<Delivery>>,
        actor: ActorSlot<SubscriptionMsg>,
        registry: ActorSlot<RegistryMsg>,
    ) -> Self {
        Subscription {
            key,
            consumer,
            rx,
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

    /// This subscriber's id within its node, as
    /// [`SubscriptionStatistics::consumers`](crate::SubscriptionStatistics::consumers) lists it.
    pub fn subscriber_id(&self) -> u64 {
        self.consumer
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
    /// subscriber, else [`Error::UnexpectedAck`](crate::Error::UnexpectedAck) and nothing is acked.
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
        let span = crate::spans::ack(&self.key, events);
        self.call(|consumer, incarnation, reply| SubscriptionMsg::Ack {
            consumer,
            incarnation,
            acks: Acks::Events(numbers),
            reply,
        })
        .instrument(span)
        .await
    }

    /// Acks event number `n` and every older event in flight for this subscriber. `n` must be in
    /// flight for this subscriber, else [`Error::UnexpectedAck`](crate::Error::UnexpectedAck).
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
    /// be in flight for this subscriber, else [`Error::UnexpectedAck`](crate::Error::UnexpectedAck).
    ///
    /// [`NackAction::Park`] on a transient subscription is [`Error::InvalidArgument`](crate::Error::InvalidArgument): it has no
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
        let Some(actor) = self.actor.current() else {
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
        self.registry.ask(request).await
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if self.connected.load(Ordering::Relaxed) {
            let (key, consumer) = (self.key.clone(), self.consumer);
            // A stopped registry has already disconnected everyone.
            self.registry.tell(RegistryMsg::Disconnect { key, consumer, reason: None, reply: None });
        }
    }
}
