//! The handles the application holds on running actors: [`Subscription`] (a subscriber of a
//! named subscription: receives its messages, sends acks and nacks to whichever actor runs it
//! now), [`LiveSubscription`] (a live-only listener at a publisher) and [`SubscriberHandle`]
//! (pause, resume and stop a subscriber actor). Each holds what it needs to find its actor;
//! none holds state the actor depends on.

mod live;
mod subscriber;
mod subscription;

pub use live::LiveSubscription;
pub use subscriber::SubscriberHandle;
pub use subscription::Subscription;
