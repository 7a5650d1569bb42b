//! What subscribers receive and report: messages, drop reasons, nack actions, and the state of
//! a subscription as stored (`SubscriptionInfo`, `ParkedEvent`) and in memory
//! (`SubscriptionStatus`). Plain values; nothing here knows an actor.

use std::fmt;

use chrono::{DateTime, Utc};

use super::{SubscriptionOptions, SubscriptionStatistics};
use crate::event::RecordedEvent;

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

/// A named subscription: stream (or `$all`) and name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct SubscriptionKey {
    /// The subscribed stream, or `$all`.
    pub(crate) stream: String,
    /// The subscription's name.
    pub(crate) name: String,
}

impl fmt::Display for SubscriptionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.stream, self.name)
    }
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
/// [`Subscription::nack`](crate::Subscription::nack)).
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

/// A named subscription: as stored (settings, checkpoint, lag, owner, parked events) and, from
/// [`EventStore::subscription_info`](crate::EventStore::subscription_info) on the node that owns
/// it, as it runs (`live`). [`EventStore::list_subscriptions`](crate::EventStore::list_subscriptions)
/// gives the stored figures of every subscription.
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
    // Added with consumer strategies and subscription management:
    /// Its stored settings (see [`SubscriptionOptions`]: stored settings win over a later
    /// subscriber's), without the functions, which are not stored. `None` for a subscription
    /// created by a version of chronik that stored no settings and not run since.
    pub settings: Option<SubscriptionOptions>,
    /// How many of its events are parked (see
    /// [`EventStore::parked_events`](crate::EventStore::parked_events)).
    pub parked: u64,
    /// What it is doing now, when this node owns it; `None` when another node runs it or none
    /// does, while this node waits to take it over, and always from `list_subscriptions`.
    pub live: Option<SubscriptionStatistics>,
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

/// What a [`LiveSubscription`](crate::LiveSubscription) receives.
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

/// Undelivered messages a [`LiveSubscription`](crate::LiveSubscription) holds before it drops events.
pub const LIVE_BUFFER: usize = 1_024;
