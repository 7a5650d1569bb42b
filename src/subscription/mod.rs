//! What subscriptions are made of, as plain values: [`SubscriptionOptions`] (`options.rs`) with
//! the [`ConsumerStrategy`] of competing consumers (`strategy.rs`) and their stored form
//! (`stored.rs`); the messages a subscriber receives, the nack actions it answers with and the
//! stored and in-memory state of a subscription (`messages.rs`), with the figures of one running
//! on this node (`statistics.rs`). Nothing here knows an actor: storage and config use these
//! without pulling in the runtime.
//!
//! The subscription itself (queue, in-flight events, checkpoint, ownership) is an actor in
//! `runtime/subscription/`; the handles that talk to it ([`Subscription`](crate::Subscription),
//! [`LiveSubscription`](crate::LiveSubscription)) are in `runtime/handles/`.

mod messages;
mod options;
mod statistics;
pub(crate) mod stored;
mod strategy;

pub(crate) use messages::SubscriptionKey;
pub use messages::{
    DropReason, LIVE_BUFFER, LiveMessage, NackAction, ParkedEvent, SubscriptionInfo, SubscriptionMessage,
    SubscriptionPhase, SubscriptionStatus,
};
pub use options::{StartFrom, SubscriptionOptions};
pub use statistics::{ConsumerStatistics, RetriedEvent, SubscriptionStatistics};
pub use strategy::ConsumerStrategy;
