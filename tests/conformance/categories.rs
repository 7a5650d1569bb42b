//! `$ce-<category>` and `$et-<type>` streams: numbering (1, 2, 3, … in `$all` order, gap-free
//! also under concurrent writers), reads both ways, stream info, named subscriptions resuming
//! after a restart, live listeners, and what hard deletes and scavenges leave of them.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::common::{
    TestStore, WAIT, assert_invalid_mentioning, event, events, n_of, next, numbers, positions, quick_store, receive,
};
use chronik::{
    DeleteMode, Error, EventData, EventStore, ExpectedVersion, LiveMessage, RecordedEvent, StreamMetadata,
    SubscriptionMessage, SubscriptionOptions,
};
use futures::TryStreamExt;

fn typed(event_type: &str, n: u64) -> EventData {
    EventData::json(event_type, &serde_json::json!({ "n": n })).expect("serializable")
}

async fn read(store: &EventStore, stream: &str) -> Vec<RecordedEvent> {
    store.read_stream_forward(stream, 0, 10_000).await.expect("read")
}

/// `(stream, version)` of each event.
fn origins(events: &[RecordedEvent]) -> Vec<(String, u64)> {
    events.iter().map(|e| (e.stream_uuid.clone(), e.stream_version)).collect()
}

#[tokio::test]
async fn category_and_type_streams_number_events_in_all_order() {
    let store = TestStore::start().await;
    store
        .append_to_stream("account-1", ExpectedVersion::Any, vec![typed("Opened", 1), typed("Deposited", 2)])
        .await
        .unwrap();
    store.append_to_stream("order-1", ExpectedVersion::Any, vec![typed("Placed", 3)]).await.unwrap();
    store
        .append_to_stream("account-2", ExpectedVersion::Any, vec![typed("Opened", 4), typed("Deposited", 5)])
        .await
        .unwrap();
    store.append_to_stream("singleton", ExpectedVersion::Any, vec![typed("Deposited", 6)]).await.unwrap();

    let accounts = read(&store, "$ce-account").await;
    assert_eq!(numbers(&accounts), vec![1, 2, 3, 4], "numbered in the category");
    assert_eq!(positions_of(&accounts), vec![1, 2, 4, 5], "in $all order");
    assert_eq!(
        origins(&accounts),
        vec![("account-1".into(), 1), ("account-1".into(), 2), ("account-2".into(), 1), ("account-2".into(), 2)],
        "stream_uuid and stream_version are the original's"
    );
    let deposits = read(&store, "$et-Deposited").await;
    assert_eq!(numbers(&deposits), vec![1, 2, 3]);
    assert_eq!(deposits.iter().map(n_of).collect::<Vec<_>>(), vec![2, 5, 6], "also from a stream without category");
    assert_eq!(numbers(&read(&store, "$ce-order").await), vec![1]);
    assert!(matches!(store.read_stream_forward("$ce-singleton", 0, 10).await, Err(Error::StreamNotFound)));
    assert!(matches!(store.read_stream_forward("$ce-nothing", 0, 10).await, Err(Error::StreamNotFound)));

    let info = store.stream_info("$ce-account").await.unwrap();
    assert_eq!(info.stream_version, 4, "the index's head");
    let listed = store.paginate_streams(chronik::PageRequest::default()).await.unwrap();
    assert!(listed.entries.iter().all(|s| !s.stream_uuid.starts_with('$')), "indexes are not listed");
    assert_eq!(store.stream_count().await.unwrap(), listed.total_entries, "nor counted");
}

fn positions_of(events: &[RecordedEvent]) -> Vec<u64> {
    events.iter().map(|e| e.global_position).collect()
}

#[tokio::test]
async fn index_streams_read_both_ways_in_pages_and_lazily() {
    let store = TestStore::start().await;
    for i in 0..5 {
        store.append_to_stream(&format!("account-{i}"), ExpectedVersion::Any, events("Deposited", 1, 2)).await.unwrap();
    }
    assert_eq!(numbers(&store.read_stream_forward("$ce-account", 4, 3).await.unwrap()), vec![4, 5, 6]);
    assert_eq!(numbers(&store.read_stream_backward("$ce-account", None, 3).await.unwrap()), vec![10, 9, 8]);
    assert_eq!(numbers(&store.read_stream_backward("$et-Deposited", Some(2), 5).await.unwrap()), vec![2, 1]);
    let lazy: Vec<RecordedEvent> = store.stream_forward("$ce-account", 0, 3).try_collect().await.unwrap();
    assert_eq!(numbers(&lazy), (1..=10).collect::<Vec<_>>());
    let back: Vec<RecordedEvent> = store.stream_backward("$et-Deposited", None, 4).try_collect().await.unwrap();
    assert_eq!(numbers(&back), (1..=10).rev().collect::<Vec<_>>());
}

#[tokio::test]
async fn index_numbers_stay_gap_free_under_20_concurrent_writers() {
    let store = TestStore::start().await;
    let writers: Vec<_> = (0..20)
        .map(|w| {
            let store = store.store.clone();
            tokio::spawn(async move {
                for i in 0..10u64 {
                    let stream = format!("account-{}", (w + i) % 7);
                    let batch =
                        vec![typed("Deposited", i), typed(if i % 2 == 0 { "Withdrawn" } else { "Deposited" }, i)];
                    store.append_to_stream(&stream, ExpectedVersion::Any, batch).await.unwrap();
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
    let all = store.read_all_forward(0, 10_000).await.unwrap();
    let category = read(&store, "$ce-account").await;
    assert_eq!(numbers(&category), (1..=400).collect::<Vec<_>>(), "gap-free");
    assert_eq!(positions_of(&category), positions(&all), "in $all order");
    let mut by_type: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for e in &all {
        by_type.entry(e.event_type.clone()).or_default().push(e.global_position);
    }
    for (event_type, expected) in by_type {
        let indexed = read(&store, &format!("$et-{event_type}")).await;
        assert_eq!(numbers(&indexed), (1..=expected.len() as u64).collect::<Vec<_>>(), "{event_type} gap-free");
        assert_eq!(positions_of(&indexed), expected, "{event_type} in $all order");
    }
}

#[tokio::test]
async fn a_multi_stream_append_numbers_every_part_in_order() {
    let store = TestStore::start().await;
    store
        .append_to_streams(vec![
            chronik::StreamAppend::new("account-1", ExpectedVersion::Any, vec![typed("Moved", 1)]),
            chronik::StreamAppend::new("account-2", ExpectedVersion::Any, vec![typed("Moved", 2)]),
        ])
        .await
        .unwrap();
    let refused = store
        .append_to_streams(vec![
            chronik::StreamAppend::new("account-3", ExpectedVersion::Any, vec![typed("Moved", 3)]),
            chronik::StreamAppend::new("account-1", ExpectedVersion::NoStream, vec![typed("Moved", 4)]),
        ])
        .await;
    assert!(matches!(refused, Err(Error::AppendFailed { .. })));
    store.append_to_stream("account-4", ExpectedVersion::Any, vec![typed("Moved", 5)]).await.unwrap();
    let moved = read(&store, "$et-Moved").await;
    assert_eq!(numbers(&moved), vec![1, 2, 3], "the refused call took no numbers");
    assert_eq!(moved.iter().map(n_of).collect::<Vec<_>>(), vec![1, 2, 5]);
}

#[tokio::test]
async fn index_streams_are_the_stores_own() {
    let store = TestStore::start_with(|c| c.enable_hard_deletes(true)).await;
    store.append_to_stream("account-1", ExpectedVersion::Any, vec![event("E", 1)]).await.unwrap();
    assert_invalid_mentioning(
        store.append_to_stream("$ce-account", ExpectedVersion::Any, vec![event("E", 2)]).await,
        "$",
    );
    assert_invalid_mentioning(store.append_to_stream("$custom", ExpectedVersion::Any, vec![event("E", 2)]).await, "$");
    let stored = read(&store, "account-1").await;
    assert_invalid_mentioning(store.link_to_stream("$et-E", ExpectedVersion::Any, &stored).await, "$");
    for mode in [DeleteMode::Soft, DeleteMode::Hard, DeleteMode::Recreatable] {
        assert_invalid_mentioning(store.delete_stream("$ce-account", ExpectedVersion::Any, mode).await, "$");
    }
    match store
        .append_to_streams(vec![chronik::StreamAppend::new("$et-E", ExpectedVersion::Any, vec![event("E", 3)])])
        .await
    {
        Err(Error::AppendFailed { stream, source }) => {
            assert_eq!(stream, "$et-E");
            assert!(matches!(*source, Error::InvalidArgument(_)), "{source:?}");
        }
        other => panic!("refused, naming the stream: {other:?}"),
    }
    assert_eq!(store.read_all_forward(0, 10).await.unwrap().len(), 1, "nothing written");
}

#[tokio::test]
async fn hard_deletes_and_scavenges_take_index_entries_with_their_events() {
    let store = TestStore::start_with(|c| c.enable_hard_deletes(true)).await;
    store.append_to_stream("account-1", ExpectedVersion::Any, events("E", 1, 3)).await.unwrap();
    store.append_to_stream("account-2", ExpectedVersion::Any, events("E", 4, 3)).await.unwrap();
    store.append_to_stream("account-3", ExpectedVersion::Any, events("E", 7, 2)).await.unwrap();
    store.delete_stream("account-1", ExpectedVersion::Any, DeleteMode::Hard).await.unwrap();
    store.set_stream_metadata("account-2", ExpectedVersion::Any, StreamMetadata::default().max_count(1)).await.unwrap();
    assert_eq!(numbers(&read(&store, "$ce-account").await), vec![4, 5, 6, 7, 8], "until a scavenge");
    store.scavenge().await.unwrap();
    let left = read(&store, "$ce-account").await;
    assert_eq!(numbers(&left), vec![6, 7, 8], "holes where events went; numbers are never reused");
    assert_eq!(left.iter().map(n_of).collect::<Vec<_>>(), vec![6, 7, 8]);
    assert_eq!(numbers(&read(&store, "$et-E").await), vec![6, 7, 8]);
    store.append_to_stream("account-1", ExpectedVersion::NoStream, vec![event("E", 9)]).await.unwrap();
    assert_eq!(numbers(&read(&store, "$ce-account").await), vec![6, 7, 8, 9]);
}

#[tokio::test]
async fn a_subscription_to_a_category_catches_up_goes_live_and_resumes_after_a_restart() {
    let store = quick_store().await;
    store.append_to_stream("account-1", ExpectedVersion::Any, events("Deposited", 1, 2)).await.unwrap();
    store.append_to_stream("order-1", ExpectedVersion::Any, events("Placed", 3, 1)).await.unwrap();
    store.append_to_stream("account-2", ExpectedVersion::Any, events("Deposited", 4, 1)).await.unwrap();
    {
        let mut sub =
            store.subscribe_to_stream("$ce-account", "balances", SubscriptionOptions::default()).await.unwrap();
        assert!(matches!(next(&mut sub).await, SubscriptionMessage::Subscribed));
        let got = receive(&mut sub, 3).await;
        assert_eq!(numbers(&got), vec![1, 2, 3]);
        assert_eq!(got.iter().map(n_of).collect::<Vec<_>>(), vec![1, 2, 4]);
        sub.ack(&got).await.unwrap();
        loop {
            if let SubscriptionMessage::CaughtUp = next(&mut sub).await {
                break;
            }
        }
        store.append_to_stream("account-3", ExpectedVersion::Any, events("Deposited", 5, 1)).await.unwrap();
        let live = receive(&mut sub, 1).await;
        assert_eq!((numbers(&live), n_of(&live[0])), (vec![4], 5), "live, numbered in the category");
        sub.ack(&live).await.unwrap();
        crate::common::assert_checkpoint(&store, "$ce-account", "balances", 4, "acked through 4").await;
        store.unsubscribe_from_stream("$ce-account", "balances").await.unwrap();
    }
    store.append_to_stream("account-1", ExpectedVersion::Any, events("Deposited", 6, 2)).await.unwrap();
    let mut sub = store.subscribe_to_stream("$ce-account", "balances", SubscriptionOptions::default()).await.unwrap();
    assert!(matches!(next(&mut sub).await, SubscriptionMessage::Subscribed));
    let got = receive(&mut sub, 2).await;
    assert_eq!(numbers(&got), vec![5, 6], "resumed after its checkpoint");
    assert_eq!(got.iter().map(n_of).collect::<Vec<_>>(), vec![6, 7]);
}

#[tokio::test]
async fn a_live_listener_on_an_event_type_gets_only_that_type() {
    let store = TestStore::start().await;
    store.append_to_stream("account-1", ExpectedVersion::Any, vec![typed("Deposited", 1)]).await.unwrap();
    let mut live = store.subscribe("$et-Withdrawn").await.unwrap();
    store
        .append_to_stream("account-1", ExpectedVersion::Any, vec![typed("Deposited", 2), typed("Withdrawn", 3)])
        .await
        .unwrap();
    store.append_to_stream("account-2", ExpectedVersion::Any, vec![typed("Withdrawn", 4)]).await.unwrap();
    let mut got = Vec::new();
    while got.len() < 2 {
        match tokio::time::timeout(WAIT, live.recv()).await.expect("in time").expect("open") {
            LiveMessage::Events(events) => got.extend(events),
            other => panic!("events expected, got {other:?}"),
        }
    }
    assert_eq!(numbers(&got), vec![1, 2]);
    assert_eq!(got.iter().map(n_of).collect::<Vec<_>>(), vec![3, 4]);
    if let Ok(Some(msg)) = tokio::time::timeout(Duration::from_millis(300), live.recv()).await {
        panic!("nothing else: {msg:?}");
    }
}
