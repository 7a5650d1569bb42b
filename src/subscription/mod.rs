//! The subscriber's side of subscriptions: [`SubscriptionOptions`] (`options.rs`), the messages
//! a subscriber receives and the stored and in-memory state of a subscription (`messages.rs`),
//! and the handles: [`Subscription`] for a named, acked subscription (`handle.rs`) and
//! [`LiveSubscription`] for a transient live-only listener (`live.rs`).
//!
//! The subscription itself (queue, in-flight events, checkpoint, ownership) is an actor in
//! `runtime/subscription/`; a handle only receives its messages and sends acks.

mod handle;
mod live;
mod messages;
mod options;

pub use handle::Subscription;
pub use live::{LIVE_BUFFER, LiveMessage, LiveSubscription};
pub use messages::{
    DropReason, NackAction, ParkedEvent, SubscriptionInfo, SubscriptionMessage, SubscriptionPhase, SubscriptionStatus,
};
pub use options::{StartFrom, SubscriptionOptions};
