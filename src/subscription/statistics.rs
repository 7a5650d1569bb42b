//! The figures of a named subscription running on this node, as
//! [`SubscriptionInfo::live`](crate::SubscriptionInfo::live) gives them: its subscribers, what is
//! queued and in flight, the events being retried, and rates. Plain values; nothing here knows
//! an actor.

use std::time::Duration;

use super::{SubscriptionOptions, SubscriptionStatus};

/// What a subscription this node owns is doing now (see
/// [`EventStore::subscription_info`](crate::EventStore::subscription_info)).
///
/// The rates count in one-second steps over `rate_window`: the current second and the 59 before
/// it, or fewer when this node took the subscription less than a minute ago (ownership starts
/// the count afresh).
///
/// ```no_run
/// use chronik::{ALL, EventStore};
/// # async fn demo(store: EventStore) -> chronik::Result<()> {
/// let info = store.subscription_info(ALL, "projector").await?;
/// if let Some(live) = &info.live {
///     println!("{} queued, {:.1} acks/s", live.status.queued, live.acked_per_second());
///     for consumer in &live.consumers {
///         println!("subscriber {}: {} in flight", consumer.id, consumer.in_flight);
///     }
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SubscriptionStatistics {
    /// The settings it runs with here: the stored ones (once this node has heard of their latest
    /// change) with the functions this node started it with.
    pub settings: SubscriptionOptions,
    /// Phase, queue, events in flight, acked and written checkpoint.
    pub status: SubscriptionStatus,
    /// The connected subscribers, in connection order.
    pub consumers: Vec<ConsumerStatistics>,
    /// Events queued or in flight that were retried before, oldest first, with how often.
    pub retrying: Vec<RetriedEvent>,
    /// Events handed to subscribers within `rate_window` (an event delivered again counts again).
    pub delivered_recently: u64,
    /// Events acked (or nacked with `Skip`) within `rate_window`.
    pub acked_recently: u64,
    /// The time `delivered_recently` and `acked_recently` cover: 60 s, or less when this node
    /// took the subscription less than a minute ago.
    pub rate_window: Duration,
    /// How long ago the last ack (or `Skip`) came; since this node took the subscription if
    /// none came since. With events queued or in flight, a long one means a stalled consumer.
    pub since_last_ack: Duration,
}

impl SubscriptionStatistics {
    /// Events delivered per second over `rate_window` (a window under a second counts as one).
    pub fn delivered_per_second(&self) -> f64 {
        per_second(self.delivered_recently, self.rate_window)
    }

    /// Events acked per second over `rate_window` (a window under a second counts as one).
    pub fn acked_per_second(&self) -> f64 {
        per_second(self.acked_recently, self.rate_window)
    }
}

fn per_second(count: u64, window: Duration) -> f64 {
    count as f64 / window.as_secs_f64().max(1.0)
}

/// One connected subscriber of a subscription (see [`SubscriptionStatistics::consumers`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConsumerStatistics {
    /// Its id within this node ([`Subscription::subscriber_id`](crate::Subscription::subscriber_id)).
    pub id: u64,
    /// Events delivered to it and not yet acked.
    pub in_flight: usize,
    /// The most it may have in flight: its own buffer size within the subscription's.
    pub buffer_size: usize,
    /// Whether it is paused (a paused [`SubscriberHandle`](crate::SubscriberHandle), or a
    /// subscriber actor backing off after a failure).
    pub paused: bool,
}

/// An event that was retried and is queued or in flight again (see
/// [`SubscriptionStatistics::retrying`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct RetriedEvent {
    /// Its number within the subscription.
    pub event_number: u64,
    /// How often it was retried so far.
    pub retry_count: u32,
}

impl RetriedEvent {
    /// Event `event_number`, retried `retry_count` times.
    pub fn new(event_number: u64, retry_count: u32) -> Self {
        RetriedEvent { event_number, retry_count }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_divide_by_the_window_and_never_by_less_than_a_second() {
        assert_eq!(per_second(120, Duration::from_secs(60)), 2.0);
        assert_eq!(per_second(5, Duration::from_millis(200)), 5.0);
    }
}
