//! Subscriber actors: the application implements [`Subscriber`], and the store runs it as a
//! supervised actor consuming a named subscription ([`EventStore::start_subscriber`]), or
//! starts every subscription the configuration declares ([`EventStore::start_subscribers`]).
//!
//! The actor itself (delivery, acks, failures, backoff) is in `runtime/subscriber.rs`; this
//! module is the application's side: the trait, the error a handler returns, and the handle.
//!
//! [`EventStore::start_subscriber`]: crate::EventStore::start_subscriber
//! [`EventStore::start_subscribers`]: crate::EventStore::start_subscribers

use std::collections::HashSet;
use std::error::Error as StdError;
use std::fmt;
use std::future::Future;

use futures::future::BoxFuture;
use ractor::ActorRef;
use ractor::rpc::CallResult;

use crate::error::{Error, Result};
use crate::event::RecordedEvent;
use crate::runtime::subscriber::RunnerMsg;
use crate::store::EventStore;
use crate::subscription::SubscriptionOptions;

/// Application code that consumes a named subscription, run by the store as an actor.
///
/// `handle` gets batches of consecutive events of one stream, in order. Returning `Ok` acks the
/// batch. Returning `Err` (or panicking) makes the actor back off (50 ms, doubling up to 5 s)
/// and deliver the unacked events again, in order, to the same value: after a failed batch of
/// several events it hands them over one at a time, so that the event that fails is found and
/// its failures counted. An event that fails more than `max_retry_count` times is parked
/// (see [`NackAction::Park`](crate::NackAction)) and processing goes on with the next one. The
/// error is logged with the subscription's name and the event number.
///
/// Delivery is at-least-once: an event can come again after a restart, so handlers should be
/// idempotent (for example, remember the last event number applied, in the same transaction as
/// the effect).
///
/// ```
/// use chronik::{HandlerError, RecordedEvent, Subscriber};
///
/// struct Counter {
///     seen: u64,
/// }
///
/// impl Subscriber for Counter {
///     async fn handle(&mut self, events: &[RecordedEvent]) -> Result<(), HandlerError> {
///         for event in events {
///             if event.event_type == "Poison" {
///                 // Not worth retrying: park it and go on.
///                 return Err(HandlerError::park(event, "cannot handle Poison events"));
///             }
///             self.seen += 1;
///         }
///         Ok(())
///     }
///
///     async fn caught_up(&mut self) {
///         println!("live after {} events", self.seen);
///     }
/// }
/// ```
pub trait Subscriber: Send + 'static {
    /// Processes a batch; `Ok` acks it.
    fn handle(&mut self, events: &[RecordedEvent]) -> impl Future<Output = Result<(), HandlerError>> + Send;

    /// Called each time the subscription has delivered its stored backlog and is live.
    fn caught_up(&mut self) -> impl Future<Output = ()> + Send {
        async {}
    }
}

/// Why a [`Subscriber`] could not process a batch.
///
/// Any error converts into it with `?`. [`at`](Self::at) names the event that failed (the events
/// before it in the batch count as processed and are acked); [`park`](Self::park) parks an
/// event at once, without retrying it, and processing goes on after it.
pub struct HandlerError {
    error: Box<dyn StdError + Send + Sync>,
    event: Option<u64>,
    park: bool,
}

impl HandlerError {
    /// An error, with no event named.
    pub fn new(error: impl Into<Box<dyn StdError + Send + Sync>>) -> Self {
        HandlerError { error: error.into(), event: None, park: false }
    }

    /// Parks `event` at once with `reason` (the events before it in the batch are acked; those
    /// after it are delivered next).
    pub fn park(event: &RecordedEvent, reason: impl Into<Box<dyn StdError + Send + Sync>>) -> Self {
        HandlerError { error: reason.into(), event: Some(event.event_number), park: true }
    }

    /// Names the event that failed: the events before it in the batch count as processed.
    #[must_use]
    pub fn at(mut self, event: &RecordedEvent) -> Self {
        self.event = Some(event.event_number);
        self
    }

    /// The event named as failed, if any.
    pub fn event_number(&self) -> Option<u64> {
        self.event
    }

    /// Whether the event is to be parked at once.
    pub fn parks(&self) -> bool {
        self.park
    }
}

impl<E: Into<Box<dyn StdError + Send + Sync>>> From<E> for HandlerError {
    fn from(error: E) -> Self {
        HandlerError::new(error)
    }
}

impl fmt::Display for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.error, f)
    }
}

impl fmt::Debug for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HandlerError")
            .field("error", &self.error)
            .field("event", &self.event)
            .field("park", &self.park)
            .finish()
    }
}

/// How long [`SubscriberHandle::stop`] waits for the actor to end.
const STOP_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Controls a running [`Subscriber`] actor. Cheap to clone; dropping it does not stop the actor
/// (the store's shutdown does).
#[derive(Clone)]
pub struct SubscriberHandle {
    stream: String,
    name: String,
    actor: ActorRef<RunnerMsg>,
}

impl fmt::Debug for SubscriberHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SubscriberHandle").field("stream", &self.stream).field("name", &self.name).finish()
    }
}

impl SubscriberHandle {
    pub(crate) fn new(stream: String, name: String, actor: ActorRef<RunnerMsg>) -> Self {
        SubscriberHandle { stream, name, actor }
    }

    /// The subscribed stream (or `$all`).
    pub fn stream(&self) -> &str {
        &self.stream
    }

    /// The subscription's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Stops delivery: the events not yet handled go back to the subscription (its other
    /// subscribers, or this one on [`resume`](Self::resume)). This node keeps ownership of the
    /// subscription, and the checkpoint stays where the acks left it; appends go on.
    pub async fn pause(&self) -> Result<()> {
        self.ask(RunnerMsg::Pause).await
    }

    /// Resumes delivery after [`pause`](Self::pause): the backlog comes in order.
    pub async fn resume(&self) -> Result<()> {
        self.ask(RunnerMsg::Resume).await
    }

    /// Stops the actor and disconnects it from the subscription (the last subscriber to leave
    /// stops the subscription on this node, writing its checkpoint). Stopping a stopped actor is
    /// not an error.
    pub async fn stop(&self) -> Result<()> {
        let outcome = match self.actor.call(RunnerMsg::Stop, None).await {
            Ok(CallResult::Success(result)) => result,
            // Already stopped.
            _ => Ok(()),
        };
        // The actor replies before it ends: return once it has.
        if self.actor.wait(Some(STOP_WAIT)).await.is_err() {
            return Err(Error::Unavailable(format!(
                "subscriber {}/{} did not stop within {STOP_WAIT:?}",
                self.stream, self.name
            )));
        }
        outcome
    }

    /// Whether the actor still runs (it stops on [`stop`](Self::stop), when the store shuts
    /// down, or when the subscription is deleted or unsubscribed).
    pub fn is_running(&self) -> bool {
        matches!(self.actor.get_status(), ractor::ActorStatus::Running | ractor::ActorStatus::Starting)
    }

    async fn ask(&self, request: fn(ractor::RpcReplyPort<Result<()>>) -> RunnerMsg) -> Result<()> {
        match self.actor.call(request, None).await {
            Ok(CallResult::Success(result)) => result,
            _ => Err(Error::Unavailable(format!("subscriber {}/{} has stopped", self.stream, self.name))),
        }
    }
}

/// Starts one implementation: store, stream, name, options.
pub(crate) type Starter = Box<
    dyn FnOnce(EventStore, String, String, SubscriptionOptions) -> BoxFuture<'static, Result<SubscriberHandle>> + Send,
>;

/// The [`Subscriber`] implementations of an application, by the names its configuration
/// declares them under (`[[subscriptions]]`), for [`EventStore::start_subscribers`].
///
/// ```
/// use chronik::{HandlerError, RecordedEvent, Subscriber, Subscribers};
///
/// struct Projector;
/// impl Subscriber for Projector {
///     async fn handle(&mut self, _events: &[RecordedEvent]) -> Result<(), HandlerError> {
///         Ok(())
///     }
/// }
///
/// let subscribers = Subscribers::new().add("projector", Projector);
/// assert_eq!(subscribers.names().collect::<Vec<_>>(), ["projector"]);
/// ```
///
/// [`EventStore::start_subscribers`]: crate::EventStore::start_subscribers
#[derive(Default)]
pub struct Subscribers {
    starters: Vec<(String, Starter)>,
}

impl fmt::Debug for Subscribers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}

impl Subscribers {
    /// No implementations yet.
    pub fn new() -> Self {
        Subscribers::default()
    }

    /// Adds the implementation of the subscription declared as `name`.
    #[must_use]
    pub fn add<S: Subscriber>(mut self, name: impl Into<String>, subscriber: S) -> Self {
        let starter: Starter = Box::new(move |store: EventStore, stream: String, name: String, options| {
            Box::pin(async move { store.start_subscriber(&stream, &name, options, subscriber).await })
        });
        self.starters.push((name.into(), starter));
        self
    }

    /// The names given implementations, in the order they were added.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.starters.iter().map(|(name, _)| name.as_str())
    }

    /// Checks the names against the declared ones: each declared name needs exactly one
    /// implementation and each implementation a declaration.
    pub(crate) fn check(&self, declared: &[&str]) -> Result<()> {
        let mut given = HashSet::new();
        for name in self.names() {
            if !given.insert(name) {
                return Err(Error::config(
                    "subscriptions",
                    format!("`{name}` was given two Subscriber implementations"),
                ));
            }
            if !declared.contains(&name) {
                return Err(Error::config(
                    "subscriptions",
                    format!(
                        "a Subscriber implementation was given for `{name}`, but no [[subscriptions]] entry declares it"
                    ),
                ));
            }
        }
        if let Some(missing) = declared.iter().find(|name| !given.contains(*name)) {
            return Err(Error::config(
                "subscriptions",
                format!(
                    "`{missing}` is declared in [[subscriptions]] but no Subscriber implementation was given for it"
                ),
            ));
        }
        Ok(())
    }

    /// Takes out the starter of `name`.
    pub(crate) fn take(&mut self, name: &str) -> Option<Starter> {
        let index = self.starters.iter().position(|(n, _)| n == name)?;
        Some(self.starters.swap_remove(index).1)
    }
}
