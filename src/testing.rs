//! Hooks for chronik's own tests: they reach into a running store to kill its actors (to
//! exercise supervision) or to find its database sessions. Not part of the API: hidden from the
//! docs, and free to change.

use ractor::ActorCell;

use crate::store::EventStore;
use crate::subscription::SubscriptionKey;

/// The `application_name` of a store's PostgreSQL connections (`pg_stat_activity` shows it).
pub fn application_name(schema: &str) -> String {
    crate::storage::postgres::application_name(schema)
}

/// The writer actor of a running store.
pub fn writer_actor(store: &EventStore) -> Option<ActorCell> {
    store.runtime().writer_cell()
}

/// The actor of a named subscription running on this node.
pub async fn subscription_actor(store: &EventStore, stream: &str, name: &str) -> Option<ActorCell> {
    store.runtime().subscription_cell(SubscriptionKey { stream: stream.to_string(), name: name.to_string() }).await
}

/// The publisher of `stream` (or `$all`), if one runs.
pub async fn publisher_actor(store: &EventStore, stream: &str) -> Option<ActorCell> {
    store.runtime().publisher_cell(stream).await
}

/// How many entries the store's subscriptions have looked at in storage while catching up (a
/// filtered scan of `$all` counts every position it passed over).
pub fn read_from_storage(store: &EventStore) -> u64 {
    store.runtime().read_from_storage()
}
