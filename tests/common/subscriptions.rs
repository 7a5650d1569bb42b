//! Helpers of the subscription tests: quick retry intervals, receiving with a timeout, and
//! reading the stored checkpoint.

use std::time::Duration;

use chronik::{Config, DropReason, EventStore, RecordedEvent, Subscription, SubscriptionMessage};

use super::TestStore;

/// The longest a test waits for one message.
pub const WAIT: Duration = Duration::from_secs(20);
/// The retry interval of the subscription tests' stores: ownership, lock pings, reconnects.
pub const RETRY: Duration = Duration::from_millis(100);

/// Short retry and poll intervals, so takeovers and recoveries happen within a test.
pub fn quick(config: Config) -> Config {
    config.subscription_retry_interval(RETRY).notification_poll_interval(Duration::from_millis(200))
}

/// A store with [`quick`] intervals.
pub async fn quick_store() -> TestStore {
    TestStore::start_with(quick).await
}

/// The next message within `within`.
pub async fn next_within(sub: &mut Subscription, within: Duration) -> SubscriptionMessage {
    tokio::time::timeout(within, sub.recv())
        .await
        .unwrap_or_else(|_| panic!("no message within {within:?}"))
        .expect("subscription open")
}

/// The next message within [`WAIT`].
pub async fn next(sub: &mut Subscription) -> SubscriptionMessage {
    next_within(sub, WAIT).await
}

/// The next message, which must be a batch of events.
pub async fn next_events(sub: &mut Subscription) -> Vec<RecordedEvent> {
    match next(sub).await {
        SubscriptionMessage::Events(batch) => batch,
        other => panic!("events expected, got {other:?}"),
    }
}

/// The next `Events` batch, skipping `Subscribed` and `CaughtUp`.
pub async fn next_batch(sub: &mut Subscription) -> Vec<RecordedEvent> {
    loop {
        match next(sub).await {
            SubscriptionMessage::Events(batch) => return batch,
            SubscriptionMessage::Dropped(reason) => panic!("subscriber dropped: {reason}"),
            _ => {}
        }
    }
}

/// Receives (without acking) until `count` events arrived; `CaughtUp` may come meanwhile.
pub async fn receive(sub: &mut Subscription, count: usize) -> Vec<RecordedEvent> {
    let mut got = Vec::new();
    while got.len() < count {
        match next(sub).await {
            SubscriptionMessage::Events(batch) => got.extend(batch),
            SubscriptionMessage::CaughtUp => {}
            other => panic!("events expected, got {other:?}"),
        }
    }
    got
}

/// Skips messages until `Dropped`, then checks the channel ends.
pub async fn dropped(sub: &mut Subscription) -> DropReason {
    loop {
        if let SubscriptionMessage::Dropped(reason) = next(sub).await {
            assert!(sub.recv().await.is_none(), "nothing follows Dropped");
            return reason;
        }
    }
}

/// Fails if any message arrives within `within`.
pub async fn expect_quiet(sub: &mut Subscription, within: Duration) {
    if let Ok(Some(msg)) = tokio::time::timeout(within, sub.recv()).await {
        panic!("expected nothing, got {msg:?}");
    }
}

/// The event numbers of `events`.
pub fn numbers(events: &[RecordedEvent]) -> Vec<u64> {
    events.iter().map(|e| e.event_number).collect()
}

/// Asserts that the checkpoint stored for `stream`/`name` is (or, within moments, becomes)
/// `expected` and stays there: an ack returns once the subscription has booked it, and the
/// checkpoint it moved is written right after, coalesced with those of other subscriptions.
pub async fn assert_checkpoint(store: &EventStore, stream: &str, name: &str, expected: u64, why: &str) {
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut stored = stored_checkpoint(store, stream, name).await;
    while stored != expected && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
        stored = stored_checkpoint(store, stream, name).await;
    }
    assert_eq!(stored, expected, "checkpoint of {stream}/{name}: {why}");
    // Not only on its way past it.
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(stored_checkpoint(store, stream, name).await, expected, "checkpoint of {stream}/{name} moved on: {why}");
}

/// Waits until the subscription `stream`/`name` has no parked events left (an acked replayed
/// event leaves the list with the checkpoint write that follows its ack).
pub async fn assert_no_parked_events(store: &EventStore, stream: &str, name: &str, why: &str) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let parked = store.parked_events(stream, name).await.expect("parked events");
        if parked.is_empty() {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "{stream}/{name} still has parked events {parked:?}: {why}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The checkpoint stored in the database for `stream`/`name`.
pub async fn stored_checkpoint(store: &EventStore, stream: &str, name: &str) -> u64 {
    let all = store.list_subscriptions().await.expect("list subscriptions");
    all.iter().find(|s| s.stream == stream && s.name == name).map(|s| s.checkpoint).expect("subscription stored")
}
