//! Filtered `$all`: each kind of `EventFilter` (stream and event-type prefixes and regular
//! expressions, exclude, system events) on reads both ways, named subscriptions and live
//! listeners; a pattern that does not compile; and a filtered subscription whose checkpoint
//! moves past what it skipped, so a restart does not read it again.

use std::time::Duration;

use crate::common::{TestStore, WAIT, assert_invalid_mentioning, next, numbers, quick_store, receive};
use chronik::{
    EventData, EventFilter, EventStore, ExpectedVersion, LiveMessage, RecordedEvent, SubscriptionMessage,
    SubscriptionOptions,
};

fn typed(event_type: &str) -> EventData {
    EventData::json(event_type, &serde_json::json!({})).expect("serializable")
}

/// account-1: Opened, Deposited; order-1: Placed; account-2: Deposited; audit-1: $checked;
/// Order-2: Placed (upper case).
async fn mixed(store: &EventStore) {
    for (stream, types) in [
        ("account-1", vec!["Opened", "Deposited"]),
        ("order-1", vec!["Placed"]),
        ("account-2", vec!["Deposited"]),
        ("audit-1", vec!["$checked"]),
        ("Order-2", vec!["Placed"]),
    ] {
        let events: Vec<EventData> = types.into_iter().map(typed).collect();
        store.append_to_stream(stream, ExpectedVersion::Any, events).await.unwrap();
    }
}

fn positions(events: &[RecordedEvent]) -> Vec<u64> {
    events.iter().map(|e| e.global_position).collect()
}

#[tokio::test]
async fn each_kind_of_filter_reads_only_its_events_both_ways() {
    let store = TestStore::start().await;
    mixed(&store).await;
    let read = async |filter: EventFilter| {
        let forward = positions(&store.read_all_filtered(&filter, 0, 100).await.unwrap());
        let mut backward = positions(&store.read_all_filtered_backward(&filter, None, 100).await.unwrap());
        backward.reverse();
        assert_eq!(forward, backward, "{filter:?} both ways");
        forward
    };
    assert_eq!(
        read(EventFilter::stream_prefix(["account-", "order-"])).await,
        vec![1, 2, 3, 4],
        "prefixes are case-sensitive"
    );
    assert_eq!(read(EventFilter::stream_prefix(["account-"]).exclude()).await, vec![3, 5, 6]);
    assert_eq!(read(EventFilter::stream_regex(r"^[a-z]+-1$")).await, vec![1, 2, 3, 5]);
    assert_eq!(read(EventFilter::stream_regex("der")).await, vec![3, 6], "matched anywhere in the id");
    assert_eq!(read(EventFilter::event_type_prefix(["Dep", "Pla"])).await, vec![2, 3, 4, 6]);
    assert_eq!(read(EventFilter::event_type_regex("^(Opened|Placed)$")).await, vec![1, 3, 6]);
    assert_eq!(read(EventFilter::event_type_regex("^[A-Z]").exclude()).await, vec![5]);
    assert_eq!(read(EventFilter::exclude_system_events()).await, vec![1, 2, 3, 4, 6]);

    let money = EventFilter::stream_prefix(["account-"]);
    assert_eq!(positions(&store.read_all_filtered(&money, 2, 1).await.unwrap()), vec![2], "from and count");
    assert_eq!(positions(&store.read_all_filtered_backward(&money, Some(3), 5).await.unwrap()), vec![2, 1]);
    assert!(store.read_all_filtered(&money, 0, 0).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_pattern_that_does_not_compile_is_an_invalid_argument_naming_it() {
    let store = TestStore::start().await;
    mixed(&store).await;
    let broken = EventFilter::stream_regex("account-(");
    assert_invalid_mentioning(store.read_all_filtered(&broken, 0, 10).await, "`account-(`");
    assert_invalid_mentioning(store.read_all_filtered_backward(&broken, None, 10).await, "`account-(`");
    assert_invalid_mentioning(store.subscribe_filtered(chronik::ALL, broken.clone()).await, "`account-(`");
    let options = SubscriptionOptions::default().filter(EventFilter::event_type_regex("[unclosed"));
    assert_invalid_mentioning(store.subscribe_to_all_streams("s", options).await, "`[unclosed`");
}

#[tokio::test]
async fn a_filtered_subscription_gets_only_what_passes_in_catch_up_and_live() {
    let store = quick_store().await;
    mixed(&store).await;
    let options = SubscriptionOptions::default().filter(EventFilter::event_type_prefix(["Deposited"]));
    let mut sub = store.subscribe_to_all_streams("deposits", options).await.unwrap();
    assert!(matches!(next(&mut sub).await, SubscriptionMessage::Subscribed));
    let got = receive(&mut sub, 2).await;
    assert_eq!(numbers(&got), vec![2, 4]);
    sub.ack(&got).await.unwrap();
    loop {
        if let SubscriptionMessage::CaughtUp = next(&mut sub).await {
            break;
        }
    }
    crate::common::assert_checkpoint(&store, chronik::ALL, "deposits", 6, "past what the filter skipped").await;
    store.append_to_stream("order-9", ExpectedVersion::Any, vec![typed("Placed")]).await.unwrap();
    store.append_to_stream("account-9", ExpectedVersion::Any, vec![typed("Deposited")]).await.unwrap();
    let live = receive(&mut sub, 1).await;
    assert_eq!(numbers(&live), vec![8]);
    sub.ack(&live).await.unwrap();
    crate::common::assert_checkpoint(&store, chronik::ALL, "deposits", 8, "live").await;
}

#[tokio::test]
async fn a_filtered_subscription_restarted_after_100000_skipped_events_does_not_read_them_again() {
    let store = quick_store().await;
    let wanted = EventFilter::stream_prefix(["wanted-"]);
    store.append_to_stream("wanted-1", ExpectedVersion::Any, vec![typed("Hit")]).await.unwrap();
    let noise = tokio::spawn({
        let store = store.store.clone();
        async move {
            for i in 0..1_000 {
                let batch: Vec<EventData> = (0..100).map(|_| typed("Noise")).collect();
                store.append_to_stream(&format!("noise-{}", i % 10), ExpectedVersion::Any, batch).await.unwrap();
            }
        }
    });
    noise.await.unwrap();
    store.append_to_stream("wanted-2", ExpectedVersion::Any, vec![typed("Hit")]).await.unwrap();
    let head = 100_002;

    let options = || SubscriptionOptions::default().filter(wanted.clone());
    {
        let mut sub = store.subscribe_to_all_streams("hits", options()).await.unwrap();
        assert!(matches!(next(&mut sub).await, SubscriptionMessage::Subscribed));
        let got = receive(&mut sub, 2).await;
        assert_eq!(numbers(&got), vec![1, head]);
        sub.ack(&got).await.unwrap();
        crate::common::assert_checkpoint(&store, chronik::ALL, "hits", head, "acked").await;
        store.unsubscribe_from_all_streams("hits").await.unwrap();
    }
    let read_before = chronik::testing::read_from_storage(&store);
    assert!(read_before >= head, "the first run looked at every position once: {read_before}");

    store.append_to_stream("wanted-3", ExpectedVersion::Any, vec![typed("Hit")]).await.unwrap();
    let mut sub = store.subscribe_to_all_streams("hits", options()).await.unwrap();
    assert!(matches!(next(&mut sub).await, SubscriptionMessage::Subscribed));
    let got = receive(&mut sub, 1).await;
    assert_eq!(numbers(&got), vec![head + 1]);
    let read_after = chronik::testing::read_from_storage(&store) - read_before;
    assert!(read_after <= 1, "the restart read only what came after the checkpoint, not the 100,000: {read_after}");
}

#[tokio::test]
async fn the_checkpoint_moves_past_skipped_events_even_when_nothing_passes() {
    let store = quick_store().await;
    for _ in 0..5 {
        store.append_to_stream("noise-1", ExpectedVersion::Any, vec![typed("Noise")]).await.unwrap();
    }
    let options = SubscriptionOptions::default().filter(EventFilter::stream_prefix(["wanted-"]));
    let mut sub = store.subscribe_to_all_streams("quiet", options).await.unwrap();
    assert!(matches!(next(&mut sub).await, SubscriptionMessage::Subscribed));
    assert!(matches!(next(&mut sub).await, SubscriptionMessage::CaughtUp));
    crate::common::assert_checkpoint(&store, chronik::ALL, "quiet", 5, "nothing passed, all was skipped").await;
    store.append_to_stream("noise-2", ExpectedVersion::Any, vec![typed("Noise")]).await.unwrap();
    crate::common::assert_checkpoint(&store, chronik::ALL, "quiet", 6, "live events skipped too").await;
}

#[tokio::test]
async fn a_filtered_live_listener_gets_only_what_passes() {
    let store = TestStore::start().await;
    let mut live = store.subscribe_filtered(chronik::ALL, EventFilter::exclude_system_events()).await.unwrap();
    mixed(&store).await;
    let mut got = Vec::new();
    while got.len() < 5 {
        match tokio::time::timeout(WAIT, live.recv()).await.expect("in time").expect("open") {
            LiveMessage::Events(events) => got.extend(events),
            other => panic!("events expected, got {other:?}"),
        }
    }
    assert_eq!(positions(&got), vec![1, 2, 3, 4, 6]);
    if let Ok(Some(msg)) = tokio::time::timeout(Duration::from_millis(300), live.recv()).await {
        panic!("nothing else: {msg:?}");
    }
}

#[tokio::test]
async fn a_subscriptions_filter_is_stored_and_cannot_change() {
    let store = quick_store().await;
    let filter = EventFilter::stream_prefix(["wanted-"]);
    let mut sub =
        store.subscribe_to_all_streams("kept", SubscriptionOptions::default().filter(filter.clone())).await.unwrap();
    assert!(matches!(next(&mut sub).await, SubscriptionMessage::Subscribed));
    let info = store.subscription_info(chronik::ALL, "kept").await.unwrap();
    assert_eq!(info.settings.and_then(|s| s.filter), Some(filter.clone()), "stored with the settings");
    let other = SubscriptionOptions::default().filter(EventFilter::stream_prefix(["other-"]));
    assert_invalid_mentioning(store.update_subscription(chronik::ALL, "kept", other).await, "filter");
    let same = SubscriptionOptions::default().filter(filter).buffer_size(5);
    store.update_subscription(chronik::ALL, "kept", same).await.unwrap();
}
