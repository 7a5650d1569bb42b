//! Named subscriptions: delivery order, start positions, back-pressure, acks and checkpoints.

use std::time::Duration;

use crate::common::*;
use chronik::{
    ALL, DeleteMode, Error, ExpectedVersion, RecordedEvent, StartFrom, Subscription, SubscriptionMessage,
    SubscriptionOptions,
};

/// Receives until `count` events arrived, acking each batch; returns them.
async fn receive_acking(sub: &mut Subscription, count: usize) -> Vec<RecordedEvent> {
    let mut got = Vec::new();
    while got.len() < count {
        if let SubscriptionMessage::Events(batch) = next(sub).await {
            sub.ack(&batch).await.expect("ack");
            got.extend(batch);
        }
    }
    got
}

#[tokio::test]
async fn subscribed_arrives_before_events_then_caught_up() {
    let store = quick_store().await;
    store.append_to_stream("a", ExpectedVersion::NoStream, events("E", 1, 3)).await.unwrap();
    let mut sub = store.subscribe_to_all_streams("s", SubscriptionOptions::default()).await.unwrap();
    assert_eq!(next(&mut sub).await, SubscriptionMessage::Subscribed);
    let batch = next_events(&mut sub).await;
    assert_eq!(batch.iter().map(|e| e.event_number).collect::<Vec<_>>(), vec![1, 2, 3]);
    assert_eq!(next(&mut sub).await, SubscriptionMessage::CaughtUp);
    sub.ack(&batch).await.unwrap();
    // Live from here.
    store.append_to_stream("b", ExpectedVersion::NoStream, events("E", 4, 2)).await.unwrap();
    let live = receive_acking(&mut sub, 2).await;
    assert_eq!(
        live.iter().map(|e| (e.event_number, e.stream_uuid.as_str())).collect::<Vec<_>>(),
        vec![(4, "b"), (5, "b")]
    );
}

#[tokio::test]
async fn stream_subscription_numbers_by_stream_version_and_ignores_other_streams() {
    let store = quick_store().await;
    store.append_to_stream("other", ExpectedVersion::NoStream, events("E", 1, 2)).await.unwrap();
    store.append_to_stream("mine", ExpectedVersion::NoStream, events("E", 1, 2)).await.unwrap();
    let mut sub = store.subscribe_to_stream("mine", "s", SubscriptionOptions::default()).await.unwrap();
    assert_eq!(next(&mut sub).await, SubscriptionMessage::Subscribed);
    let got = receive_acking(&mut sub, 2).await;
    assert_eq!(got.iter().map(|e| e.event_number).collect::<Vec<_>>(), vec![1, 2]);
    store.append_to_stream("other", ExpectedVersion::Any, events("E", 3, 1)).await.unwrap();
    store.append_to_stream("mine", ExpectedVersion::Any, events("E", 3, 1)).await.unwrap();
    let live = receive_acking(&mut sub, 1).await;
    assert_eq!((live[0].event_number, live[0].stream_uuid.as_str(), live[0].global_position), (3, "mine", 6));
}

#[tokio::test]
async fn start_from_origin_current_and_after() {
    let store = quick_store().await;
    store.append_to_stream("a", ExpectedVersion::NoStream, events("E", 1, 5)).await.unwrap();
    let mut origin = store.subscribe_to_all_streams("origin", SubscriptionOptions::default()).await.unwrap();
    let mut current = store
        .subscribe_to_all_streams("current", SubscriptionOptions::default().start_from(StartFrom::Current))
        .await
        .unwrap();
    let mut after = store
        .subscribe_to_all_streams("after", SubscriptionOptions::default().start_from(StartFrom::After(3)))
        .await
        .unwrap();
    assert_eq!(receive_acking(&mut origin, 5).await.first().map(|e| e.event_number), Some(1));
    assert_eq!(receive_acking(&mut after, 2).await.iter().map(|e| e.event_number).collect::<Vec<_>>(), vec![4, 5]);
    assert_eq!(next(&mut current).await, SubscriptionMessage::Subscribed);
    assert_eq!(next(&mut current).await, SubscriptionMessage::CaughtUp);
    store.append_to_stream("a", ExpectedVersion::Any, events("E", 6, 1)).await.unwrap();
    assert_eq!(receive_acking(&mut current, 1).await[0].event_number, 6);
}

#[tokio::test]
async fn buffer_size_one_delivers_one_event_until_it_is_acked() {
    let store = quick_store().await;
    store.append_to_stream("a", ExpectedVersion::NoStream, events("E", 1, 3)).await.unwrap();
    let mut sub = store.subscribe_to_all_streams("s", SubscriptionOptions::default().buffer_size(1)).await.unwrap();
    assert_eq!(next(&mut sub).await, SubscriptionMessage::Subscribed);
    for n in 1..=3 {
        let batch = next_events(&mut sub).await;
        assert_eq!(batch.iter().map(|e| e.event_number).collect::<Vec<_>>(), vec![n]);
        // Nothing more until the ack (CaughtUp comes once the backlog is out, after the last).
        if n < 3 {
            expect_quiet(&mut sub, Duration::from_millis(200)).await;
        }
        sub.ack(&batch).await.unwrap();
    }
}

#[tokio::test]
async fn ack_of_an_event_not_in_flight_is_unexpected() {
    let store = quick_store().await;
    store.append_to_stream("a", ExpectedVersion::NoStream, events("E", 1, 2)).await.unwrap();
    let mut sub = store.subscribe_to_all_streams("s", SubscriptionOptions::default().buffer_size(1)).await.unwrap();
    assert_eq!(next(&mut sub).await, SubscriptionMessage::Subscribed);
    let batch = next_events(&mut sub).await;
    assert!(matches!(sub.ack_number(2).await, Err(Error::UnexpectedAck)), "2 is not in flight yet");
    assert!(matches!(sub.ack_number(99).await, Err(Error::UnexpectedAck)));
    sub.ack(&batch).await.unwrap();
    assert!(matches!(sub.ack(&batch).await, Err(Error::UnexpectedAck)), "acked twice");
}

#[tokio::test]
async fn checkpoint_follows_the_threshold_and_the_timer() {
    let store = quick_store().await;
    store.append_to_stream("a", ExpectedVersion::NoStream, events("E", 1, 10)).await.unwrap();
    let options = SubscriptionOptions::default()
        .buffer_size(1)
        .checkpoint_threshold(3)
        .checkpoint_after(Duration::from_millis(400));
    let mut sub = store.subscribe_to_all_streams("s", options).await.unwrap();
    assert_eq!(next(&mut sub).await, SubscriptionMessage::Subscribed);
    for expected_after_ack in [0, 0, 3, 3, 3, 6] {
        let batch = next_events(&mut sub).await;
        sub.ack(&batch).await.unwrap();
        assert_checkpoint(&store.store, ALL, "s", expected_after_ack, "").await;
    }
    // One more ack, below the threshold: the timer writes it.
    let batch = next_events(&mut sub).await;
    sub.ack(&batch).await.unwrap();
    assert_checkpoint(&store.store, ALL, "s", 6, "").await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_checkpoint(&store.store, ALL, "s", 7, "").await;
}

#[tokio::test]
async fn checkpoint_never_passes_an_unacked_event() {
    let store = quick_store().await;
    store.append_to_stream("a", ExpectedVersion::NoStream, events("E", 1, 4)).await.unwrap();
    let mut sub = store.subscribe_to_all_streams("s", SubscriptionOptions::default()).await.unwrap();
    assert_eq!(next(&mut sub).await, SubscriptionMessage::Subscribed);
    let batch = next_events(&mut sub).await;
    sub.ack(&batch[1..]).await.unwrap();
    assert_checkpoint(&store.store, ALL, "s", 0, "").await;
    sub.ack(&batch[..1]).await.unwrap();
    assert_checkpoint(&store.store, ALL, "s", 4, "").await;
}

#[tokio::test]
async fn resubscribing_resumes_after_the_last_acked_event() {
    let store = quick_store().await;
    store.append_to_stream("a", ExpectedVersion::NoStream, events("E", 1, 5)).await.unwrap();
    let mut sub = store.subscribe_to_all_streams("s", SubscriptionOptions::default().buffer_size(2)).await.unwrap();
    assert_eq!(next(&mut sub).await, SubscriptionMessage::Subscribed);
    let batch = next_events(&mut sub).await;
    sub.ack(&batch).await.unwrap();
    sub.unsubscribe().await.unwrap();
    let mut again = store.subscribe_to_all_streams("s", SubscriptionOptions::default()).await.unwrap();
    assert_eq!(next(&mut again).await, SubscriptionMessage::Subscribed);
    let got = receive_acking(&mut again, 3).await;
    assert_eq!(got.iter().map(|e| e.event_number).collect::<Vec<_>>(), vec![3, 4, 5]);
}

#[tokio::test]
async fn transient_subscription_starts_over_every_time() {
    let store = quick_store().await;
    store.append_to_stream("a", ExpectedVersion::NoStream, events("E", 1, 3)).await.unwrap();
    for _ in 0..2 {
        let options = SubscriptionOptions::default().transient(true);
        let mut sub = store.subscribe_to_all_streams("t", options).await.unwrap();
        assert_eq!(next(&mut sub).await, SubscriptionMessage::Subscribed);
        assert_eq!(receive_acking(&mut sub, 3).await[0].event_number, 1);
        sub.unsubscribe().await.unwrap();
    }
    assert!(store.list_subscriptions().await.unwrap().is_empty(), "transient subscriptions are not stored");
}

#[tokio::test]
async fn same_name_twice_is_rejected_and_concurrency_limit_is_enforced() {
    let store = quick_store().await;
    let _first = store.subscribe_to_all_streams("s", SubscriptionOptions::default()).await.unwrap();
    let err = store.subscribe_to_all_streams("s", SubscriptionOptions::default()).await.unwrap_err();
    assert!(matches!(err, Error::SubscriptionAlreadyExists), "{err}");
    let options = SubscriptionOptions::default().concurrency_limit(2);
    let _a = store.subscribe_to_all_streams("c", options.clone()).await.unwrap();
    let _b = store.subscribe_to_all_streams("c", options.clone()).await.unwrap();
    let err = store.subscribe_to_all_streams("c", options).await.unwrap_err();
    assert!(matches!(err, Error::TooManySubscribers), "{err}");
}

#[tokio::test]
async fn selector_rejected_events_still_move_the_checkpoint() {
    let store = quick_store().await;
    store
        .append_to_stream("a", ExpectedVersion::NoStream, vec![event("Keep", 1), event("Noise", 2), event("Noise", 3)])
        .await
        .unwrap();
    let options = SubscriptionOptions::default().selector(|e| e.event_type != "Noise");
    let mut sub = store.subscribe_to_all_streams("s", options).await.unwrap();
    assert_eq!(next(&mut sub).await, SubscriptionMessage::Subscribed);
    let got = receive_acking(&mut sub, 1).await;
    assert_eq!(got.iter().map(|e| e.event_type.as_str()).collect::<Vec<_>>(), vec!["Keep"]);
    assert_checkpoint(&store.store, ALL, "s", 3, "").await;
}

#[tokio::test]
async fn a_soft_deleted_stream_delivers_nothing_while_all_still_does() {
    let store = quick_store().await;
    store.append_to_stream("gone", ExpectedVersion::NoStream, events("E", 1, 2)).await.unwrap();
    store.delete_stream("gone", ExpectedVersion::Any, DeleteMode::Soft).await.unwrap();
    let mut stream_sub = store.subscribe_to_stream("gone", "s", SubscriptionOptions::default()).await.unwrap();
    let mut all_sub = store.subscribe_to_all_streams("s", SubscriptionOptions::default()).await.unwrap();
    assert_eq!(next(&mut stream_sub).await, SubscriptionMessage::Subscribed);
    assert_eq!(next(&mut stream_sub).await, SubscriptionMessage::CaughtUp);
    expect_quiet(&mut stream_sub, Duration::from_millis(300)).await;
    assert_eq!(receive_acking(&mut all_sub, 2).await.len(), 2);
}

#[tokio::test]
async fn delete_subscription_forgets_the_checkpoint() {
    let store = quick_store().await;
    store.append_to_stream("a", ExpectedVersion::NoStream, events("E", 1, 2)).await.unwrap();
    let mut sub = store.subscribe_to_all_streams("s", SubscriptionOptions::default()).await.unwrap();
    assert_eq!(next(&mut sub).await, SubscriptionMessage::Subscribed);
    receive_acking(&mut sub, 2).await;
    store.delete_subscription(ALL, "s").await.unwrap();
    assert_eq!(dropped(&mut sub).await, chronik::DropReason::Deleted);
    assert!(matches!(store.delete_subscription(ALL, "s").await, Err(Error::SubscriptionNotFound)));
    let mut again = store.subscribe_to_all_streams("s", SubscriptionOptions::default()).await.unwrap();
    assert_eq!(next(&mut again).await, SubscriptionMessage::Subscribed);
    assert_eq!(receive_acking(&mut again, 2).await[0].event_number, 1);
}

#[tokio::test]
async fn live_listener_gets_events_committed_after_it_subscribed() {
    let store = quick_store().await;
    // The very first listener of a fresh store gets the very first append.
    let mut live = store.subscribe(ALL).await.unwrap();
    store.append_to_stream("a", ExpectedVersion::NoStream, events("E", 1, 2)).await.unwrap();
    let Some(chronik::LiveMessage::Events(got)) = tokio::time::timeout(WAIT, live.recv()).await.unwrap() else {
        panic!("live events expected")
    };
    assert_eq!(got.iter().map(|e| e.event_number).collect::<Vec<_>>(), vec![1, 2]);
    let mut stream_live = store.subscribe("b").await.unwrap();
    store.append_to_stream("b", ExpectedVersion::NoStream, events("E", 3, 2)).await.unwrap();
    let Some(chronik::LiveMessage::Events(got)) = tokio::time::timeout(WAIT, live.recv()).await.unwrap() else {
        panic!("live events expected")
    };
    assert_eq!(got.iter().map(|e| e.event_number).collect::<Vec<_>>(), vec![3, 4]);
    let Some(chronik::LiveMessage::Events(got)) = tokio::time::timeout(WAIT, stream_live.recv()).await.unwrap() else {
        panic!("live events expected")
    };
    assert_eq!(got.iter().map(|e| e.event_number).collect::<Vec<_>>(), vec![1, 2]);
}

/// The next events a live listener receives (skipping nothing: a `Lagged` fails the test).
async fn next_live(live: &mut chronik::LiveSubscription) -> Vec<RecordedEvent> {
    match tokio::time::timeout(WAIT, live.recv()).await {
        Ok(Some(chronik::LiveMessage::Events(events))) => events,
        other => panic!("live events expected, got {other:?}"),
    }
}

/// A publisher is supervised and owns its listeners: killed, it takes them with it. The named
/// subscription on its stream listens to the successor and delivers what was appended
/// meanwhile; the live listener is told it may have missed events and gets the next ones.
#[tokio::test]
async fn a_killed_publisher_is_replaced_and_its_listeners_carry_on() {
    let store = quick_store().await;
    let mut sub = store.subscribe_to_stream("s", "p", SubscriptionOptions::default()).await.unwrap();
    assert_eq!(next(&mut sub).await, SubscriptionMessage::Subscribed);
    let mut live = store.subscribe("s").await.unwrap();
    store.append_to_stream("s", ExpectedVersion::NoStream, events("E", 1, 1)).await.unwrap();
    assert_eq!(receive_acking(&mut sub, 1).await[0].event_number, 1);
    assert_eq!(next_live(&mut live).await[0].event_number, 1);

    let killed = chronik::testing::publisher_actor(&store, "s").await.expect("the stream has a publisher");
    killed.kill();
    match tokio::time::timeout(WAIT, live.recv()).await {
        Ok(Some(chronik::LiveMessage::Lagged { missed: None })) => {}
        other => panic!("the listener should hear it may have missed events, got {other:?}"),
    }
    store.append_to_stream("s", ExpectedVersion::Exact(1), events("E", 2, 2)).await.unwrap();

    let got = receive_acking(&mut sub, 2).await;
    assert_eq!(got.iter().map(|e| e.event_number).collect::<Vec<_>>(), vec![2, 3]);
    let mut live_got = Vec::new();
    while live_got.len() < 2 {
        live_got.extend(next_live(&mut live).await.into_iter().map(|e| e.event_number));
    }
    assert_eq!(live_got, vec![2, 3]);
    let successor = chronik::testing::publisher_actor(&store, "s").await.expect("a publisher runs again");
    assert_ne!(successor.get_id(), killed.get_id());
}

#[tokio::test]
async fn a_live_listener_never_sees_events_committed_before_it_subscribed() {
    let store = quick_store().await;
    // Each round: history just committed, then a listener, then one more event. The listener
    // must get exactly that one, whether or not the store had seen the history's wake-up yet.
    for round in 0..20u64 {
        let stream = format!("s-{round}");
        store.append_to_stream(&stream, ExpectedVersion::NoStream, events("Old", 1, 2)).await.unwrap();
        let mut all = store.subscribe(ALL).await.unwrap();
        let mut one = store.subscribe(&stream).await.unwrap();
        let new = store.append_to_stream(&stream, ExpectedVersion::Exact(2), events("New", 3, 1)).await.unwrap();
        let got = next_live(&mut all).await;
        assert_eq!(numbers(&got), vec![new.last_position], "round {round}: $all listener");
        let got = next_live(&mut one).await;
        assert_eq!(numbers(&got), vec![3], "round {round}: stream listener");
        assert!(got.iter().all(|e| e.event_type == "New"));
    }
}

#[tokio::test]
async fn links_reach_a_live_stream_subscription_without_another_append() {
    let store = quick_store().await;
    let appended = store.append_to_stream("source", ExpectedVersion::NoStream, events("E", 1, 2)).await.unwrap();
    assert_eq!(appended.last_position, 2);
    let mut sub = store.subscribe_to_stream("picked", "s", SubscriptionOptions::default()).await.unwrap();
    assert_eq!(next(&mut sub).await, SubscriptionMessage::Subscribed);
    assert_eq!(next(&mut sub).await, SubscriptionMessage::CaughtUp);
    // Links never enter `$all`: the stream's subscription learns of them from the link batch's
    // notification.
    let source = store.read_stream_forward("source", 0, 10).await.unwrap();
    store.link_to_stream("picked", ExpectedVersion::NoStream, &source).await.unwrap();
    let got = receive_acking(&mut sub, 2).await;
    assert_eq!(
        got.iter().map(|e| (e.event_number, e.stream_uuid.as_str())).collect::<Vec<_>>(),
        vec![(1, "source"), (2, "source")]
    );
}

#[tokio::test]
async fn a_moved_checkpoint_is_where_the_next_subscriber_resumes() {
    let store = quick_store().await;
    store.append_to_stream("a", ExpectedVersion::NoStream, events("E", 1, 5)).await.unwrap();
    let mut sub = store.subscribe_to_all_streams("s", SubscriptionOptions::default()).await.unwrap();
    assert_eq!(next(&mut sub).await, SubscriptionMessage::Subscribed);
    receive_acking(&mut sub, 5).await;
    let err = store.set_subscription_checkpoint(ALL, "s", 2).await.unwrap_err();
    assert!(matches!(err, Error::SubscriptionInUse), "{err}");
    sub.unsubscribe().await.unwrap();
    assert_checkpoint(&store, ALL, "s", 5, "written when it stopped").await;

    // Back: events 3..5 come again.
    store.set_subscription_checkpoint(ALL, "s", 2).await.unwrap();
    assert_checkpoint(&store, ALL, "s", 2, "moved back").await;
    let mut sub = store.subscribe_to_all_streams("s", SubscriptionOptions::default()).await.unwrap();
    assert_eq!(next(&mut sub).await, SubscriptionMessage::Subscribed);
    assert_eq!(numbers(&receive_acking(&mut sub, 3).await), vec![3, 4, 5]);
    sub.unsubscribe().await.unwrap();

    // Forward, past the head: nothing old comes, the next append does.
    store.set_subscription_checkpoint(ALL, "s", 8).await.unwrap();
    store.append_to_stream("a", ExpectedVersion::Exact(5), events("E", 6, 4)).await.unwrap();
    let mut sub = store.subscribe_to_all_streams("s", SubscriptionOptions::default()).await.unwrap();
    assert_eq!(next(&mut sub).await, SubscriptionMessage::Subscribed);
    assert_eq!(numbers(&receive_acking(&mut sub, 1).await), vec![9]);
    sub.unsubscribe().await.unwrap();

    let err = store.set_subscription_checkpoint(ALL, "nobody", 1).await.unwrap_err();
    assert!(matches!(err, Error::SubscriptionNotFound), "{err}");
}

#[tokio::test]
async fn a_read_only_store_reads_and_follows_beside_the_writing_one_and_refuses_writes() {
    let store = quick_store().await;
    store.append_to_stream("a", ExpectedVersion::NoStream, events("E", 1, 2)).await.unwrap();
    let reader =
        chronik::EventStore::start(store.config.clone().read_only(true)).await.expect("opens beside the writer");
    assert_eq!(numbers(&reader.read_stream_forward("a", 0, 10).await.unwrap()), vec![1, 2]);
    assert_eq!(reader.stream_info(ALL).await.unwrap().stream_version, 2);

    let mut live = reader.subscribe(ALL).await.unwrap();
    store.append_to_stream("a", ExpectedVersion::Exact(2), events("E", 3, 1)).await.unwrap();
    match tokio::time::timeout(WAIT, live.recv()).await {
        Ok(Some(chronik::LiveMessage::Events(got))) => assert_eq!(numbers(&got), vec![3]),
        other => panic!("live events expected, got {other:?}"),
    }

    let refused = reader.append_to_stream("a", ExpectedVersion::Any, events("E", 4, 1)).await.unwrap_err();
    assert!(matches!(refused, Error::ReadOnly(ref m) if m.contains("append")), "{refused}");
    let refused = reader.subscribe_to_all_streams("s", SubscriptionOptions::default()).await.unwrap_err();
    assert!(matches!(refused, Error::ReadOnly(_)), "{refused}");
    let refused = reader.delete_stream("a", ExpectedVersion::Any, DeleteMode::Soft).await.unwrap_err();
    assert!(matches!(refused, Error::ReadOnly(_)), "{refused}");
    assert_eq!(store.read_all_forward(0, 10).await.unwrap().len(), 3, "nothing was written");
    reader.shutdown().await.unwrap();

    // A store that does not exist is not created for reading.
    let missing = test_config("readonly").read_only(true);
    let _guard = SchemaGuard::new(&missing);
    let err = chronik::EventStore::start(missing).await.unwrap_err();
    assert!(matches!(err, Error::Migration(ref m) if m.contains("holds no chronik store")), "{err}");
}
