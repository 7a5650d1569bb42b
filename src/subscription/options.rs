//! How a named subscription behaves: where it starts, back-pressure, competing consumers,
//! partitions, checkpoints, retries. Plain values; nothing here knows an actor.
//!
//! [`SubscriptionOptions`] is the one definition of these settings: a `[[subscriptions]]`
//! entry of the configuration file holds the same keys (read through their `Deserialize`), and
//! the settings stored with a subscription are the same keys as JSON (written through their
//! `Serialize`, read back by `stored.rs`), so a new option is a field here, with its doc,
//! default and builder method.

use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::sync::Arc;
use std::time::Duration;

use serde::de::{self, Deserialize, Deserializer, Unexpected};
use serde::{Serialize, Serializer};

use super::ConsumerStrategy;
use crate::error::{Error, Result};
use crate::event::RecordedEvent;
use crate::filter::EventFilter;

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

/// As settings write it: `"origin"`, `"current"`, or the event number to start after.
impl Serialize for StartFrom {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            StartFrom::Origin => serializer.serialize_str("origin"),
            StartFrom::Current => serializer.serialize_str("current"),
            StartFrom::After(n) => serializer.serialize_u64(*n),
        }
    }
}

/// As settings write it: `"origin"`, `"current"`, or the event number to start after.
impl<'de> Deserialize<'de> for StartFrom {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        struct Visitor;
        impl de::Visitor<'_> for Visitor {
            type Value = StartFrom;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("\"origin\", \"current\" or an event number")
            }

            fn visit_str<E: de::Error>(self, s: &str) -> std::result::Result<StartFrom, E> {
                match s {
                    "origin" => Ok(StartFrom::Origin),
                    "current" => Ok(StartFrom::Current),
                    _ => Err(E::invalid_value(Unexpected::Str(s), &self)),
                }
            }

            fn visit_u64<E: de::Error>(self, n: u64) -> std::result::Result<StartFrom, E> {
                Ok(StartFrom::After(n))
            }

            fn visit_i64<E: de::Error>(self, n: i64) -> std::result::Result<StartFrom, E> {
                u64::try_from(n).map(StartFrom::After).map_err(|_| E::invalid_value(Unexpected::Signed(n), &self))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// A function the options hold (`partition_by`, `selector`). Clones of the options share it;
/// `Debug` shows only that it is there, and it is equal only to itself.
struct Hook<F: ?Sized>(Arc<F>);

impl<F: ?Sized> Clone for Hook<F> {
    fn clone(&self) -> Self {
        Hook(Arc::clone(&self.0))
    }
}

impl<F: ?Sized> fmt::Debug for Hook<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Fn")
    }
}

impl<F: ?Sized> PartialEq for Hook<F> {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl<F: ?Sized> Eq for Hook<F> {}

type PartitionFn = dyn Fn(&RecordedEvent) -> u64 + Send + Sync;
type SelectorFn = dyn Fn(&RecordedEvent) -> bool + Send + Sync;

/// Options of a named subscription.
///
/// **Stored settings win.** A persistent subscription keeps its settings (every option but the
/// functions) in the database, written when it is created and by
/// [`EventStore::update_subscription`](crate::EventStore::update_subscription). A subscriber
/// that joins it later, on this node or another, or after a restart, gets the stored settings,
/// not the ones it passed. The functions (`partition_by`, `selector`) cannot be stored: on each
/// node, those of the subscriber that started the subscription there hold. Competing consumers
/// that join a subscription already running on their node join it as it is. A transient
/// subscription stores nothing: each node runs it with the options it was started with.
///
/// Every option but the functions can also be written in a settings file: a `[[subscriptions]]`
/// entry of [`Config`](crate::Config) takes these keys, durations as milliseconds or a string
/// with a unit (`"250ms"`, `"2s"`). Keys left out keep their defaults; an unknown key is an
/// error. Serialized (as the database stores them, as JSON text) durations are strings with
/// units and the functions are left out. Two options are equal when their settings are and
/// they share the same functions (or neither has one).
///
/// ```
/// use std::time::Duration;
/// use chronik::{ConsumerStrategy, StartFrom, SubscriptionOptions};
///
/// let options = SubscriptionOptions::default()
///     .start_from(StartFrom::Origin)
///     .buffer_size(100)
///     .max_size(1_000)
///     .concurrency_limit(4)
///     .consumer_strategy(ConsumerStrategy::RoundRobin)
///     .partition_by(|e| e.stream_uuid.clone())
///     .selector(|e| e.event_type != "Noise")
///     .checkpoint_threshold(100)
///     .checkpoint_after(Duration::from_millis(200))
///     .message_timeout(Duration::from_secs(30))
///     .max_retry_count(10);
/// assert_eq!(options.buffer_size, 100);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
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
    /// How competing consumers share the events (default [`ConsumerStrategy::RoundRobin`]).
    pub consumer_strategy: ConsumerStrategy,
    /// Number of acked events after which the checkpoint is written (default 1: every ack).
    pub checkpoint_threshold: u64,
    /// Longest time an acked event waits for its checkpoint to be written (default 1 s).
    #[serde(deserialize_with = "crate::duration::deserialize", serialize_with = "crate::duration::serialize")]
    pub checkpoint_after: Duration,
    /// Longest time an event may stay in flight without an ack or a nack; past it, the event
    /// is retried as if nacked with [`NackAction::Retry`](crate::NackAction::Retry) (default 30 s).
    #[serde(deserialize_with = "crate::duration::deserialize", serialize_with = "crate::duration::serialize")]
    pub message_timeout: Duration,
    /// Most retries of one event (nacks with [`NackAction::Retry`](crate::NackAction::Retry), message timeouts, failures
    /// of a [`Subscriber`](crate::Subscriber)); the next one parks it (default 10).
    pub max_retry_count: u32,
    /// A transient subscription keeps no checkpoint, takes no lock and has no parked list: it
    /// starts from `start_from` every time and runs on every node that subscribes (default
    /// false).
    pub transient: bool,
    /// Only the events this passes are delivered (default: every event). On `$all` the
    /// database applies it while the subscription catches up, and the checkpoint moves past
    /// the events it leaves out, so a restart does not read them again.
    pub filter: Option<EventFilter>,
    /// This subscriber's own most events in flight, below the subscription's `buffer_size`
    /// (default: none, `buffer_size` applies). Each competing consumer may ask for its own; it
    /// is not part of the stored settings, and a later subscriber's never changes another's.
    #[serde(skip)]
    pub subscriber_buffer_size: Option<usize>,
    #[serde(skip)]
    partition_by: Option<Hook<PartitionFn>>,
    #[serde(skip)]
    selector: Option<Hook<SelectorFn>>,
}

impl Default for SubscriptionOptions {
    fn default() -> Self {
        SubscriptionOptions {
            start_from: StartFrom::Origin,
            buffer_size: 100,
            max_size: 1_000,
            concurrency_limit: 1,
            consumer_strategy: ConsumerStrategy::RoundRobin,
            checkpoint_threshold: 1,
            checkpoint_after: Duration::from_secs(1),
            message_timeout: Duration::from_secs(30),
            max_retry_count: 10,
            transient: false,
            filter: None,
            subscriber_buffer_size: None,
            partition_by: None,
            selector: None,
        }
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

    /// Sets how competing consumers share the events (see [`ConsumerStrategy`]).
    #[must_use]
    pub fn consumer_strategy(mut self, strategy: ConsumerStrategy) -> Self {
        self.consumer_strategy = strategy;
        self
    }

    /// Routes events with the same key to the same subscriber, in order (for
    /// `concurrency_limit > 1`): the key takes the place of the strategy's own. With
    /// [`ConsumerStrategy::RoundRobin`] (or `DispatchToSingle`) a key stays on its subscriber
    /// while any of its events is in flight and may move once they are acked; with
    /// [`ConsumerStrategy::Pinned`] (or `PinnedByCorrelation`) it is pinned to its subscriber
    /// for as long as that one is connected. A function is not stored with the subscription's
    /// settings: each node uses the one of the subscriber that started the subscription there.
    #[must_use]
    pub fn partition_by<K, F>(mut self, key: F) -> Self
    where
        K: Hash,
        F: Fn(&RecordedEvent) -> K + Send + Sync + 'static,
    {
        let hasher = std::hash::RandomState::new();
        self.partition_by = Some(Hook(Arc::new(move |event| hasher.hash_one(key(event)))));
        self
    }

    /// Delivers only the events for which `select` is true; the others count as acked. Like
    /// `partition_by`, it is not stored: each node uses the one it started the subscription with.
    #[must_use]
    pub fn selector<F>(mut self, select: F) -> Self
    where
        F: Fn(&RecordedEvent) -> bool + Send + Sync + 'static,
    {
        self.selector = Some(Hook(Arc::new(select)));
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

    /// The key that keeps events together on one subscriber: `partition_by`'s, else the
    /// strategy's (the stream for `Pinned`, the correlation id or else the stream for
    /// `PinnedByCorrelation`), else none.
    pub(crate) fn partition_of(&self, event: &RecordedEvent) -> Option<u64> {
        if let Some(key) = &self.partition_by {
            return Some((key.0)(event));
        }
        // Hashed alike within the process, which is all an assignment in memory needs.
        let hasher = std::hash::BuildHasherDefault::<std::hash::DefaultHasher>::default();
        match (self.consumer_strategy, event.correlation_id) {
            (ConsumerStrategy::PinnedByCorrelation, Some(id)) => Some(hasher.hash_one(id)),
            (ConsumerStrategy::Pinned | ConsumerStrategy::PinnedByCorrelation, _) => {
                Some(hasher.hash_one(&event.stream_uuid))
            }
            _ => None,
        }
    }

    /// These settings with what is not stored (`partition_by`, `selector`,
    /// `subscriber_buffer_size`) taken from `node`: what a node or a subscriber runs when the
    /// settings come from the database.
    pub(crate) fn with_functions_of(mut self, node: &SubscriptionOptions) -> Self {
        self.partition_by.clone_from(&node.partition_by);
        self.selector.clone_from(&node.selector);
        self.subscriber_buffer_size = node.subscriber_buffer_size;
        self
    }

    /// The settings alone, without the functions: what is stored.
    pub(crate) fn settings(&self) -> SubscriptionOptions {
        SubscriptionOptions { partition_by: None, selector: None, subscriber_buffer_size: None, ..self.clone() }
    }

    /// Caps this subscriber's events in flight at `events` (never above `buffer_size`), for
    /// a consumer that wants fewer at a time than the subscription's other consumers.
    #[must_use]
    pub fn subscriber_buffer_size(mut self, events: usize) -> Self {
        self.subscriber_buffer_size = Some(events);
        self
    }

    /// Delivers only the events `filter` passes.
    #[must_use]
    pub fn filter(mut self, filter: EventFilter) -> Self {
        self.filter = Some(filter);
        self
    }

    /// Whether `event` is delivered: the filter and the selector pass it.
    pub(crate) fn selects(&self, event: &RecordedEvent) -> bool {
        self.filter.as_ref().is_none_or(|f| f.admits(event))
            && self.selector.as_ref().is_none_or(|select| (select.0)(event))
    }

    pub(crate) fn validate(&self) -> Result<()> {
        if let Some(filter) = &self.filter {
            filter.check()?;
        }
        let positive = |name: &str, value: u64| {
            if value == 0 {
                Err(Error::invalid(format!("subscription option {name} must be at least 1")))
            } else {
                Ok(())
            }
        };
        positive("buffer_size", self.buffer_size as u64)?;
        if let Some(own) = self.subscriber_buffer_size {
            positive("subscriber_buffer_size", own as u64)?;
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_are_equal_when_their_settings_are_and_they_share_their_functions() {
        let selective = SubscriptionOptions::default().selector(|e| e.event_type != "Noise");
        assert_eq!(selective, selective.clone());
        assert_ne!(selective, SubscriptionOptions::default());
        assert_ne!(selective, SubscriptionOptions::default().selector(|e| e.event_type != "Noise"));
        assert_ne!(SubscriptionOptions::default().buffer_size(2), SubscriptionOptions::default());
        assert!(format!("{selective:?}").contains("selector: Some(Fn)"));
    }

    fn event(stream: &str, correlation: Option<uuid::Uuid>) -> RecordedEvent {
        let mut event = crate::event::test_event(stream, "T");
        event.correlation_id = correlation;
        event
    }

    #[test]
    fn the_key_is_partition_bys_else_the_strategys() {
        let shared = Some(uuid::Uuid::new_v4());
        let (a, b) = (event("a", shared), event("b", shared));
        let round_robin = SubscriptionOptions::default();
        assert_eq!((round_robin.partition_of(&a), round_robin.partition_of(&b)), (None, None));
        let pinned = SubscriptionOptions::default().consumer_strategy(ConsumerStrategy::Pinned);
        assert_ne!(pinned.partition_of(&a), pinned.partition_of(&b), "by stream");
        assert_eq!(pinned.partition_of(&a), pinned.partition_of(&event("a", None)));
        let by_correlation = SubscriptionOptions::default().consumer_strategy(ConsumerStrategy::PinnedByCorrelation);
        assert_eq!(by_correlation.partition_of(&a), by_correlation.partition_of(&b), "by correlation id");
        assert_eq!(by_correlation.partition_of(&event("c", None)), pinned.partition_of(&event("c", None)));
        let custom = pinned.partition_by(|_| 7_u8);
        assert_eq!(custom.partition_of(&a), custom.partition_of(&b), "partition_by's key instead");
    }
}
