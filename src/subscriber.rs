//! The application's side of subscriber actors: the [`Subscriber`] trait it implements and the
//! [`HandlerError`] a handler returns. Plain values: the store runs an implementation as a
//! supervised actor ([`EventStore::start_subscriber`], `runtime/subscriber.rs`), or starts every
//! subscription the configuration declares ([`EventStore::start_subscribers`]).
//!
//! [`EventStore::start_subscriber`]: crate::EventStore::start_subscriber
//! [`EventStore::start_subscribers`]: crate::EventStore::start_subscribers

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;

use crate::error::Result;
use crate::event::RecordedEvent;

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
