//! How a subscription with competing consumers shares its events out: [`ConsumerStrategy`], a
//! plain value (KurrentDB's strategies, with their semantics). The dispatch itself is the
//! runtime's (`runtime/subscription/tracker.rs` and `pins.rs`).

use std::fmt;

/// How a named subscription with several subscribers (`concurrency_limit > 1`) chooses the
/// subscriber of each event. KurrentDB's consumer strategies, with their semantics; set with
/// [`SubscriptionOptions::consumer_strategy`](crate::SubscriptionOptions::consumer_strategy).
///
/// Whatever the strategy, a subscriber never has more than `buffer_size` events in flight, and
/// events it still holds when it disconnects go back to the queue for the others.
///
/// | strategy | who gets an event | order |
/// |---|---|---|
/// | `RoundRobin` | the next subscriber with room, in turn | none across subscribers |
/// | `DispatchToSingle` | one subscriber until it is full, then the next, in connection order | none across subscribers |
/// | `Pinned` | the subscriber its stream is pinned to | per stream |
/// | `PinnedByCorrelation` | the subscriber its correlation id is pinned to | per correlation id |
///
/// [`partition_by`](crate::SubscriptionOptions::partition_by), when given, is the key instead of
/// the strategy's own: with `RoundRobin` and `DispatchToSingle` a key with events in flight
/// stays with the subscriber that has them (and is free to move once they are acked); with
/// `Pinned` and `PinnedByCorrelation` it is pinned like a stream.
///
/// In a settings file (`[[subscriptions]]`) and in stored settings it is written in snake case:
/// `"round_robin"`, `"dispatch_to_single"`, `"pinned"`, `"pinned_by_correlation"`.
///
/// ```
/// use chronik::{ConsumerStrategy, SubscriptionOptions};
///
/// let options = SubscriptionOptions::default().concurrency_limit(4).consumer_strategy(ConsumerStrategy::Pinned);
/// assert_eq!(options.consumer_strategy, ConsumerStrategy::Pinned);
/// assert_eq!(ConsumerStrategy::default(), ConsumerStrategy::RoundRobin);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ConsumerStrategy {
    /// Each event goes to the next subscriber that has room, in turn: subscribers with room
    /// share the queue, and none idles while events are queued (the default).
    #[default]
    RoundRobin,
    /// One subscriber gets every event until it is full (`buffer_size` in flight), then the next
    /// one in connection order with room, which keeps them until it is full in turn.
    DispatchToSingle,
    /// Every event of a stream (`stream_uuid`) goes to the same subscriber for as long as that
    /// subscriber is connected, in order; events of a stream whose subscriber is full (or
    /// paused) wait for it while the others' events pass.
    ///
    /// Streams are pinned in 1,024 hash buckets. A bucket is pinned, when its first event comes,
    /// to the subscriber with the fewest buckets. When a subscriber leaves, its buckets are
    /// pinned again as their next events come, to the remaining subscribers with the fewest; a
    /// subscriber that joins takes over buckets from those above their fair share (buckets with
    /// nothing in flight first). A bucket that moves while events of one of its streams are in
    /// flight at its old subscriber delivers that stream's next events only once those are
    /// acked, so a stream is never in flight at two subscribers and stays in order.
    Pinned,
    /// Like [`Pinned`](Self::Pinned), by the event's `correlation_id` (an event without one by its
    /// stream).
    PinnedByCorrelation,
}

impl ConsumerStrategy {
    /// Whether events are pinned to subscribers by a key (`Pinned`, `PinnedByCorrelation`).
    pub fn is_pinned(self) -> bool {
        matches!(self, ConsumerStrategy::Pinned | ConsumerStrategy::PinnedByCorrelation)
    }
}

impl fmt::Display for ConsumerStrategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ConsumerStrategy::RoundRobin => "round_robin",
            ConsumerStrategy::DispatchToSingle => "dispatch_to_single",
            ConsumerStrategy::Pinned => "pinned",
            ConsumerStrategy::PinnedByCorrelation => "pinned_by_correlation",
        })
    }
}
