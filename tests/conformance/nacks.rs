//! Nacks of named subscriptions: what a subscriber can rely on when it cannot process an event.
//! `Retry` delivers it again with a retry count (and parks it past `max_retry_count`), `Park`
//! records it in the subscription's parked list and moves on, `Skip` counts as an ack, `Stop`
//! disconnects the subscriber and hands its events to the others. An event neither acked nor
//! nacked within `message_timeout` counts as retried. Parked events come again, once, when a
//! replay is asked for (from another node too: see `two_nodes.rs`, PostgreSQL only). Retry counts
//! and parks survive a restart.

use std::time::{Duration, Instant};

use crate::common::*;
use chronik::{
    ALL, DropReason, Error, EventStore, ExpectedVersion, NackAction, ParkedEvent, RecordedEvent, Subscription,
    SubscriptionMessage, SubscriptionOptions,
};

/// No events (and no drop) within `within`; a `CaughtUp` may still come.
async fn expect_no_events(sub: &mut Subscription, within: Duration) {
    let deadline = tokio::time::Instant::now() + within;
    while let Ok(Some(msg)) = tokio::time::timeout_at(deadline, sub.recv()).await {
        assert_eq!(msg, SubscriptionMessage::CaughtUp, "expected no events");
    }
}

/// Every message until the channel ends (`CaughtUp` left out); panics if it does not end.
async fn messages_until_closed(sub: &mut Subscription) -> Vec<SubscriptionMessage> {
    let mut got = Vec::new();
    loop {
        match tokio::time::timeout(WAIT, sub.recv()).await {
            Ok(Some(SubscriptionMessage::CaughtUp)) => {}
            Ok(Some(msg)) => got.push(msg),
            Ok(None) => return got,
            Err(_) => panic!("the subscriber's channel did not end; received {got:?}"),
        }
    }
}

/// The `Subscribed` that starts delivery.
async fn subscribed(sub: &mut Subscription) {
    assert_eq!(next(sub).await, SubscriptionMessage::Subscribed);
}

/// The parked list of `$all`/`name`.
async fn parked(store: &EventStore, name: &str) -> Vec<ParkedEvent> {
    store.parked_events(ALL, name).await.expect("parked events")
}

fn parked_numbers(parked: &[ParkedEvent]) -> Vec<u64> {
    parked.iter().map(|p| p.event_number).collect()
}

/// Waits until `$all`/`name` has `count` parked events; returns them.
async fn wait_for_parked(store: &EventStore, name: &str, count: usize) -> Vec<ParkedEvent> {
    let deadline = Instant::now() + WAIT;
    loop {
        let list = parked(store, name).await;
        if list.len() >= count {
            return list;
        }
        assert!(Instant::now() < deadline, "{count} parked events expected, found {list:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The stored event at global position `n`, as a `$all` subscription numbers it.
async fn stored_event(store: &EventStore, n: u64) -> RecordedEvent {
    let all = store.read_all_forward(0, 100).await.expect("read $all");
    all.into_iter().find(|e| e.event_number == n).unwrap_or_else(|| panic!("no event at position {n}"))
}

#[tokio::test]
async fn retry_redelivers_ahead_of_newer_events_with_an_incremented_count() {
    let store = quick_store().await;
    store.append_to_stream("a", ExpectedVersion::NoStream, events("E", 1, 5)).await.unwrap();
    let mut sub = store.subscribe_to_all_streams("s", SubscriptionOptions::default().buffer_size(3)).await.unwrap();
    subscribed(&mut sub).await;
    let first = next_batch(&mut sub).await;
    assert_eq!(numbers(&first), vec![1, 2, 3]);
    assert!(first.iter().all(|e| sub.retry_count(e) == 0), "first deliveries were never retried");

    // 1 and 3 stay in flight; 4 and 5 are queued: the retried 2 comes before them.
    sub.nack(&first[1], NackAction::Retry, "database busy").await.unwrap();
    let again = next_batch(&mut sub).await;
    assert_eq!(numbers(&again), vec![2]);
    assert_eq!(sub.retry_count(&again[0]), 1);
    sub.nack(&again[0], NackAction::Retry, "database still busy").await.unwrap();
    let third = next_batch(&mut sub).await;
    assert_eq!(numbers(&third), vec![2]);
    assert_eq!(sub.retry_count(&third[0]), 2);
    assert_eq!(sub.retry_count(&first[0]), 0, "only the retried event counts retries");

    // The checkpoint stops before the retried event, however much after it is acked.
    sub.ack(&[first[0].clone(), first[2].clone()]).await.unwrap();
    assert_checkpoint(&store.store, ALL, "s", 1, "").await;
    let rest = next_batch(&mut sub).await;
    assert_eq!(numbers(&rest), vec![4, 5]);
    sub.ack(&rest).await.unwrap();
    assert_checkpoint(&store.store, ALL, "s", 1, "2 is still not acked").await;
    sub.ack(&third).await.unwrap();
    assert_checkpoint(&store.store, ALL, "s", 5, "").await;
    assert!(parked(&store.store, "s").await.is_empty(), "a retried event is not parked");
    expect_no_events(&mut sub, Duration::from_millis(300)).await;
}

#[tokio::test]
async fn retry_past_max_retry_count_parks_the_event_and_the_subscription_moves_on() {
    let store = quick_store().await;
    store.append_to_stream("a", ExpectedVersion::NoStream, events("E", 1, 3)).await.unwrap();
    let options = SubscriptionOptions::default().max_retry_count(2);
    let mut sub = store.subscribe_to_all_streams("s", options).await.unwrap();
    subscribed(&mut sub).await;
    let batch = next_batch(&mut sub).await;
    assert_eq!(numbers(&batch), vec![1, 2, 3]);

    sub.nack(&batch[0], NackAction::Retry, "broken").await.unwrap();
    let once = next_batch(&mut sub).await;
    assert_eq!((numbers(&once), sub.retry_count(&once[0])), (vec![1], 1));
    sub.nack(&once[0], NackAction::Retry, "broken").await.unwrap();
    let twice = next_batch(&mut sub).await;
    assert_eq!((numbers(&twice), sub.retry_count(&twice[0])), (vec![1], 2));
    // The third retry is one too many.
    sub.nack(&twice[0], NackAction::Retry, "still broken").await.unwrap();

    let list = parked(&store.store, "s").await;
    assert_eq!(parked_numbers(&list), vec![1]);
    assert_eq!(list[0].retry_count, 2);
    assert!(list[0].reason.contains("still broken"), "reason: {:?}", list[0].reason);
    assert!(!list[0].replay_requested);
    expect_no_events(&mut sub, Duration::from_millis(300)).await;

    // It no longer holds the checkpoint back.
    sub.ack(&batch[1..]).await.unwrap();
    assert_checkpoint(&store.store, ALL, "s", 3, "").await;
    store.append_to_stream("a", ExpectedVersion::Exact(3), events("E", 4, 1)).await.unwrap();
    let live = next_batch(&mut sub).await;
    assert_eq!(numbers(&live), vec![4]);
    sub.ack(&live).await.unwrap();
    assert_checkpoint(&store.store, ALL, "s", 4, "").await;
}

#[tokio::test]
async fn park_records_the_event_and_it_is_not_delivered_again_after_resubscribing() {
    let store = quick_store().await;
    store.append_to_stream("a", ExpectedVersion::NoStream, events("E", 1, 3)).await.unwrap();
    let mut sub = store.subscribe_to_all_streams("s", SubscriptionOptions::default()).await.unwrap();
    subscribed(&mut sub).await;
    let batch = next_batch(&mut sub).await;
    assert_eq!(numbers(&batch), vec![1, 2, 3]);

    let before = chrono::Utc::now();
    sub.nack(&batch[2], NackAction::Park, "poison message").await.unwrap();
    let after = chrono::Utc::now();
    let list = parked(&store.store, "s").await;
    assert_eq!(parked_numbers(&list), vec![3]);
    assert_eq!((list[0].retry_count, list[0].reason.as_str(), list[0].replay_requested), (0, "poison message", false));
    let slack = chrono::Duration::seconds(2);
    assert!(
        list[0].parked_at >= before - slack && list[0].parked_at <= after + slack,
        "parked at {} (nacked between {before} and {after})",
        list[0].parked_at
    );
    assert!(matches!(sub.ack(&batch[2..]).await, Err(Error::UnexpectedAck)), "a parked event is no longer in flight");

    // 2 is left unacked, so the checkpoint stays before the parked 3.
    sub.ack(&batch[..1]).await.unwrap();
    assert_checkpoint(&store.store, ALL, "s", 1, "").await;
    sub.unsubscribe().await.unwrap();

    let mut again = store.subscribe_to_all_streams("s", SubscriptionOptions::default()).await.unwrap();
    subscribed(&mut again).await;
    let redelivered = next_batch(&mut again).await;
    assert_eq!(numbers(&redelivered), vec![2], "the parked 3 is not delivered again");
    again.ack(&redelivered).await.unwrap();
    expect_no_events(&mut again, Duration::from_millis(300)).await;
    assert_checkpoint(&store.store, ALL, "s", 3, "the checkpoint passes the parked event").await;
    assert_eq!(parked_numbers(&parked(&store.store, "s").await), vec![3], "it stays parked");
}

#[tokio::test]
async fn skip_counts_as_an_ack() {
    let store = quick_store().await;
    store.append_to_stream("a", ExpectedVersion::NoStream, events("E", 1, 3)).await.unwrap();
    let mut sub = store.subscribe_to_all_streams("s", SubscriptionOptions::default()).await.unwrap();
    subscribed(&mut sub).await;
    let batch = next_batch(&mut sub).await;
    assert_eq!(numbers(&batch), vec![1, 2, 3]);

    sub.nack(&batch[1], NackAction::Skip, "not interesting").await.unwrap();
    assert!(matches!(sub.ack(&batch[1..2]).await, Err(Error::UnexpectedAck)), "a skipped event is done");
    sub.ack(&batch[..1]).await.unwrap();
    assert_checkpoint(&store.store, ALL, "s", 2, "the checkpoint moves past the skipped event").await;
    expect_no_events(&mut sub, Duration::from_millis(300)).await;
    assert!(parked(&store.store, "s").await.is_empty(), "a skipped event is not parked");

    // Resubscribing with 3 unacked: 3 comes again, the skipped 2 does not.
    sub.unsubscribe().await.unwrap();
    let mut again = store.subscribe_to_all_streams("s", SubscriptionOptions::default()).await.unwrap();
    subscribed(&mut again).await;
    let redelivered = next_batch(&mut again).await;
    assert_eq!(numbers(&redelivered), vec![3]);
    again.ack(&redelivered).await.unwrap();
    assert_checkpoint(&store.store, ALL, "s", 3, "").await;
}

#[tokio::test]
async fn stop_drops_the_subscriber_and_hands_its_events_in_flight_to_the_other_one() {
    let store = quick_store().await;
    let options = SubscriptionOptions::default().concurrency_limit(2).buffer_size(2);
    let mut a = store.subscribe_to_all_streams("s", options.clone()).await.unwrap();
    let mut b = store.subscribe_to_all_streams("s", options).await.unwrap();
    subscribed(&mut a).await;
    subscribed(&mut b).await;
    store.append_to_stream("x", ExpectedVersion::NoStream, events("E", 1, 4)).await.unwrap();
    // Two each: neither acks, and each takes at most two.
    let at_a = receive(&mut a, 2).await;
    let at_b = receive(&mut b, 2).await;
    let mut all = [numbers(&at_a), numbers(&at_b)].concat();
    all.sort();
    assert_eq!(all, vec![1, 2, 3, 4]);
    b.ack(&at_b).await.unwrap();

    a.nack(&at_a[1], NackAction::Stop, "shutting this worker down").await.unwrap();
    assert_eq!(
        messages_until_closed(&mut a).await,
        vec![SubscriptionMessage::Dropped(DropReason::Stopped("shutting this worker down".into()))],
        "Dropped(Stopped), then the channel ends"
    );

    // Both of a's events, the nacked one included, go to b, without a retry counted.
    let handed = receive(&mut b, 2).await;
    assert_eq!(numbers(&handed), numbers(&at_a));
    assert!(handed.iter().all(|e| b.retry_count(e) == 0), "Stop counts no retry");
    b.ack(&handed).await.unwrap();
    assert_checkpoint(&store.store, ALL, "s", 4, "").await;
    assert!(parked(&store.store, "s").await.is_empty());
}

#[tokio::test]
async fn stop_of_the_only_subscriber_drops_it_and_the_next_subscriber_gets_its_events() {
    let store = quick_store().await;
    store.append_to_stream("a", ExpectedVersion::NoStream, events("E", 1, 2)).await.unwrap();
    let mut sub = store.subscribe_to_all_streams("s", SubscriptionOptions::default()).await.unwrap();
    subscribed(&mut sub).await;
    let batch = next_batch(&mut sub).await;
    assert_eq!(numbers(&batch), vec![1, 2]);

    sub.nack(&batch[0], NackAction::Stop, "cannot continue").await.unwrap();
    assert_eq!(
        messages_until_closed(&mut sub).await,
        vec![SubscriptionMessage::Dropped(DropReason::Stopped("cannot continue".into()))],
        "Dropped(Stopped), then the channel ends"
    );

    let mut next_one = store.subscribe_to_all_streams("s", SubscriptionOptions::default()).await.unwrap();
    subscribed(&mut next_one).await;
    let again = receive(&mut next_one, 2).await;
    assert_eq!(numbers(&again), vec![1, 2]);
    assert_eq!(next_one.retry_count(&again[0]), 0, "Stop counts no retry");
    next_one.ack(&again).await.unwrap();
    assert_checkpoint(&store.store, ALL, "s", 2, "").await;
}

#[tokio::test]
async fn an_event_neither_acked_nor_nacked_within_message_timeout_comes_again() {
    let store = quick_store().await;
    store.append_to_stream("a", ExpectedVersion::NoStream, events("E", 1, 1)).await.unwrap();
    let options = SubscriptionOptions::default().message_timeout(Duration::from_millis(300));
    let mut sub = store.subscribe_to_all_streams("s", options).await.unwrap();
    subscribed(&mut sub).await;
    let batch = next_batch(&mut sub).await;
    assert_eq!((numbers(&batch), sub.retry_count(&batch[0])), (vec![1], 0));

    // Not before the timeout, but soon after it.
    expect_no_events(&mut sub, Duration::from_millis(150)).await;
    let again = next_batch(&mut sub).await;
    assert_eq!((numbers(&again), sub.retry_count(&again[0])), (vec![1], 1));
    assert_checkpoint(&store.store, ALL, "s", 0, "").await;
    sub.ack(&again).await.unwrap();
    assert_checkpoint(&store.store, ALL, "s", 1, "").await;
    // Acked: it times out no more.
    expect_no_events(&mut sub, Duration::from_millis(700)).await;
    assert!(parked(&store.store, "s").await.is_empty());
}

#[tokio::test]
async fn message_timeouts_count_as_retries_and_park_the_event_past_max_retry_count() {
    let store = quick_store().await;
    store.append_to_stream("a", ExpectedVersion::NoStream, events("E", 1, 1)).await.unwrap();
    let options = SubscriptionOptions::default().message_timeout(Duration::from_millis(200)).max_retry_count(1);
    let mut sub = store.subscribe_to_all_streams("s", options).await.unwrap();
    subscribed(&mut sub).await;
    assert_eq!(numbers(&next_batch(&mut sub).await), vec![1]);
    let again = next_batch(&mut sub).await;
    assert_eq!((numbers(&again), sub.retry_count(&again[0])), (vec![1], 1));

    let list = wait_for_parked(&store.store, "s", 1).await;
    assert_eq!((parked_numbers(&list), list[0].retry_count), (vec![1], 1));
    assert!(list[0].reason.contains("timeout"), "reason: {:?}", list[0].reason);
    store.append_to_stream("a", ExpectedVersion::Exact(1), events("E", 2, 1)).await.unwrap();
    let live = next_batch(&mut sub).await;
    assert_eq!(numbers(&live), vec![2], "the parked event is not delivered again");
    sub.ack(&live).await.unwrap();
    assert_checkpoint(&store.store, ALL, "s", 2, "").await;
}

#[tokio::test]
async fn replay_parked_delivers_parked_events_once_before_newer_events() {
    let store = quick_store().await;
    store.append_to_stream("a", ExpectedVersion::NoStream, events("E", 1, 4)).await.unwrap();
    let mut sub = store.subscribe_to_all_streams("s", SubscriptionOptions::default()).await.unwrap();
    subscribed(&mut sub).await;
    let batch = next_batch(&mut sub).await;
    assert_eq!(numbers(&batch), vec![1, 2, 3, 4]);
    sub.nack(&batch[0], NackAction::Park, "bad one").await.unwrap();
    sub.nack(&batch[2], NackAction::Park, "bad three").await.unwrap();
    sub.ack(&[batch[1].clone(), batch[3].clone()]).await.unwrap();
    assert_checkpoint(&store.store, ALL, "s", 4, "").await;
    let list = parked(&store.store, "s").await;
    assert_eq!(parked_numbers(&list), vec![1, 3]);
    assert!(list.iter().all(|p| !p.replay_requested));

    assert_eq!(store.replay_parked(ALL, "s").await.unwrap(), 2);
    store.append_to_stream("b", ExpectedVersion::NoStream, events("E", 5, 2)).await.unwrap();
    let got = receive(&mut sub, 4).await;
    assert_eq!(numbers(&got), vec![1, 3, 5, 6], "the replayed events come before the new ones");
    assert!(got.iter().all(|e| sub.retry_count(e) == 0));
    let list = parked(&store.store, "s").await;
    assert_eq!(parked_numbers(&list), vec![1, 3], "parked until acked");
    assert!(list.iter().all(|p| p.replay_requested));

    sub.ack(&got).await.unwrap();
    assert_no_parked_events(&store.store, ALL, "s", "acked replayed events leave the parked list").await;
    assert_checkpoint(&store.store, ALL, "s", 6, "").await;
    assert_eq!(store.replay_parked(ALL, "s").await.unwrap(), 0);
    expect_quiet(&mut sub, Duration::from_millis(500)).await;
}

#[tokio::test]
async fn replay_parked_first_replays_only_the_head_of_the_parked_list() {
    let store = quick_store().await;
    store.append_to_stream("a", ExpectedVersion::NoStream, events("E", 1, 4)).await.unwrap();
    let mut sub = store.subscribe_to_all_streams("s", SubscriptionOptions::default()).await.unwrap();
    subscribed(&mut sub).await;
    let batch = next_batch(&mut sub).await;
    for (event, why) in batch[..3].iter().zip(["one", "two", "three"]) {
        sub.nack(event, NackAction::Park, why).await.unwrap();
    }
    sub.ack(&batch[3..]).await.unwrap();
    let list = wait_for_parked(&store.store, "s", 3).await;
    assert_eq!(parked_numbers(&list), vec![1, 2, 3]);

    assert_eq!(store.replay_parked_first(ALL, "s", 2).await.unwrap(), 2);
    let got = receive(&mut sub, 2).await;
    assert_eq!(numbers(&got), vec![1, 2], "the first two of the parked list");
    sub.ack(&got).await.unwrap();
    expect_quiet(&mut sub, Duration::from_millis(300)).await;
    let deadline = Instant::now() + WAIT;
    let list = loop {
        let list = parked(&store.store, "s").await;
        if list.len() == 1 || Instant::now() > deadline {
            break list;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(parked_numbers(&list), vec![3], "acked replays leave, the rest stays parked");
    assert!(!list[0].replay_requested);

    assert_eq!(store.replay_parked_first(ALL, "s", 0).await.unwrap(), 0, "nothing asked, nothing marked");
    assert_eq!(store.replay_parked_first(ALL, "s", 10).await.unwrap(), 1, "fewer parked than asked");
    assert_eq!(numbers(&receive(&mut sub, 1).await), vec![3]);
    assert!(matches!(store.replay_parked_first(ALL, "nobody", 1).await, Err(Error::SubscriptionNotFound)));
}

#[tokio::test]
async fn replayed_events_go_ahead_of_events_already_queued() {
    let store = quick_store().await;
    store.append_to_stream("a", ExpectedVersion::NoStream, events("E", 1, 2)).await.unwrap();
    let mut sub = store.subscribe_to_all_streams("s", SubscriptionOptions::default().buffer_size(1)).await.unwrap();
    subscribed(&mut sub).await;
    let first = next_batch(&mut sub).await;
    assert_eq!(numbers(&first), vec![1]);
    sub.nack(&first[0], NackAction::Park, "later").await.unwrap();
    let second = next_batch(&mut sub).await;
    assert_eq!(numbers(&second), vec![2]);
    // 2 stays in flight, so 3 and 4 wait in the queue when the replay is asked for.
    store.append_to_stream("a", ExpectedVersion::Exact(2), events("E", 3, 2)).await.unwrap();
    expect_no_events(&mut sub, Duration::from_millis(200)).await;
    assert_eq!(store.replay_parked(ALL, "s").await.unwrap(), 1);

    sub.ack(&second).await.unwrap();
    let mut order = Vec::new();
    for _ in 0..3 {
        let batch = next_batch(&mut sub).await;
        sub.ack(&batch).await.unwrap();
        order.extend(numbers(&batch));
    }
    assert_eq!(order, vec![1, 3, 4], "the replayed 1 goes ahead of the queued 3 and 4");
    assert!(parked(&store.store, "s").await.is_empty());
    assert_checkpoint(&store.store, ALL, "s", 4, "").await;
}

#[tokio::test]
async fn a_replayed_event_nacked_with_park_stays_parked() {
    let store = quick_store().await;
    store.append_to_stream("a", ExpectedVersion::NoStream, events("E", 1, 2)).await.unwrap();
    let mut sub = store.subscribe_to_all_streams("s", SubscriptionOptions::default()).await.unwrap();
    subscribed(&mut sub).await;
    let batch = next_batch(&mut sub).await;
    sub.nack(&batch[0], NackAction::Park, "first attempt").await.unwrap();
    sub.ack(&batch[1..]).await.unwrap();

    assert_eq!(store.replay_parked(ALL, "s").await.unwrap(), 1);
    let replayed = receive(&mut sub, 1).await;
    assert_eq!(numbers(&replayed), vec![1]);
    sub.nack(&replayed[0], NackAction::Park, "second attempt").await.unwrap();
    let list = parked(&store.store, "s").await;
    assert_eq!(parked_numbers(&list), vec![1]);
    assert_eq!((list[0].reason.as_str(), list[0].replay_requested), ("second attempt", false));
    expect_no_events(&mut sub, Duration::from_millis(300)).await;

    // Still replayable.
    assert_eq!(store.replay_parked(ALL, "s").await.unwrap(), 1);
    let replayed = receive(&mut sub, 1).await;
    assert_eq!(numbers(&replayed), vec![1]);
    sub.ack(&replayed).await.unwrap();
    assert_no_parked_events(&store.store, ALL, "s", "acked after its replay").await;
}

#[tokio::test]
async fn retry_counts_and_parks_survive_a_restart() {
    let store = quick_store().await;
    store.append_to_stream("a", ExpectedVersion::NoStream, events("E", 1, 3)).await.unwrap();
    let mut sub = store.subscribe_to_all_streams("s", SubscriptionOptions::default()).await.unwrap();
    subscribed(&mut sub).await;
    let batch = next_batch(&mut sub).await;
    assert_eq!(numbers(&batch), vec![1, 2, 3]);
    sub.nack(&batch[0], NackAction::Retry, "flaky").await.unwrap();
    let again = next_batch(&mut sub).await;
    assert_eq!((numbers(&again), sub.retry_count(&again[0])), (vec![1], 1));
    sub.nack(&batch[1], NackAction::Park, "poison").await.unwrap();
    store.shutdown().await.unwrap();
    assert_eq!(dropped(&mut sub).await, DropReason::Shutdown);
    drop(sub);

    let restarted = EventStore::start(store.config.clone()).await.expect("store restarts");
    let mut sub = restarted.subscribe_to_all_streams("s", SubscriptionOptions::default()).await.unwrap();
    subscribed(&mut sub).await;
    let got = receive(&mut sub, 2).await;
    assert_eq!(numbers(&got), vec![1, 3], "the parked 2 is not delivered again");
    assert_eq!((sub.retry_count(&got[0]), sub.retry_count(&got[1])), (1, 0));
    let list = parked(&restarted, "s").await;
    assert_eq!(parked_numbers(&list), vec![2]);
    assert_eq!((list[0].reason.as_str(), list[0].retry_count), ("poison", 0));

    sub.ack(&got).await.unwrap();
    assert_checkpoint(&restarted, ALL, "s", 3, "").await;
    expect_no_events(&mut sub, Duration::from_millis(300)).await;
    restarted.shutdown().await.unwrap();
}

#[tokio::test]
async fn nack_of_an_event_not_in_flight_for_the_subscriber_is_unexpected() {
    let store = quick_store().await;
    store.append_to_stream("a", ExpectedVersion::NoStream, events("E", 1, 3)).await.unwrap();
    let options = SubscriptionOptions::default().buffer_size(1).concurrency_limit(2);
    let mut a = store.subscribe_to_all_streams("s", options.clone()).await.unwrap();
    subscribed(&mut a).await;
    let at_a = next_batch(&mut a).await;
    assert_eq!(numbers(&at_a), vec![1]);

    let not_delivered = stored_event(&store.store, 3).await;
    for action in [NackAction::Retry, NackAction::Park, NackAction::Skip, NackAction::Stop] {
        let outcome = a.nack(&not_delivered, action, "not mine").await;
        assert!(matches!(outcome, Err(Error::UnexpectedAck)), "{action} of an undelivered event: {outcome:?}");
    }
    let mut ghost = at_a[0].clone();
    ghost.event_number = 99;
    assert!(matches!(a.nack(&ghost, NackAction::Retry, "no such event").await, Err(Error::UnexpectedAck)));

    // In flight, but for another subscriber.
    let mut b = store.subscribe_to_all_streams("s", options).await.unwrap();
    subscribed(&mut b).await;
    let at_b = next_batch(&mut b).await;
    assert_eq!(numbers(&at_b), vec![2]);
    assert!(matches!(a.nack(&at_b[0], NackAction::Retry, "not mine").await, Err(Error::UnexpectedAck)));
    assert!(matches!(b.nack(&at_a[0], NackAction::Park, "not mine").await, Err(Error::UnexpectedAck)));

    // Acked already.
    a.ack(&at_a).await.unwrap();
    assert!(matches!(a.nack(&at_a[0], NackAction::Retry, "too late").await, Err(Error::UnexpectedAck)));
    assert!(parked(&store.store, "s").await.is_empty(), "rejected nacks park nothing");
    b.ack(&at_b).await.unwrap();
}

#[tokio::test]
async fn park_on_a_transient_subscription_is_an_invalid_argument() {
    let store = quick_store().await;
    store.append_to_stream("a", ExpectedVersion::NoStream, events("E", 1, 1)).await.unwrap();
    let mut sub = store.subscribe_to_all_streams("t", SubscriptionOptions::default().transient(true)).await.unwrap();
    subscribed(&mut sub).await;
    let batch = next_batch(&mut sub).await;
    let err = sub.nack(&batch[0], NackAction::Park, "nowhere to park").await.unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(_)), "{err}");

    // The event is still in flight: the other actions work.
    sub.nack(&batch[0], NackAction::Retry, "try again").await.unwrap();
    let again = next_batch(&mut sub).await;
    assert_eq!((numbers(&again), sub.retry_count(&again[0])), (vec![1], 1));
    sub.ack(&again).await.unwrap();
}

#[tokio::test]
async fn parked_events_and_replay_of_an_unknown_subscription_are_not_found() {
    let store = quick_store().await;
    store.append_to_stream("a", ExpectedVersion::NoStream, events("E", 1, 1)).await.unwrap();
    assert!(matches!(store.parked_events(ALL, "nobody").await, Err(Error::SubscriptionNotFound)));
    assert!(matches!(store.replay_parked(ALL, "nobody").await, Err(Error::SubscriptionNotFound)));
    // A subscription of that name on another stream is another subscription.
    let mut sub = store.subscribe_to_stream("a", "s", SubscriptionOptions::default()).await.unwrap();
    subscribed(&mut sub).await;
    assert!(store.parked_events("a", "s").await.unwrap().is_empty());
    assert!(matches!(store.parked_events(ALL, "s").await, Err(Error::SubscriptionNotFound)));
    assert!(matches!(store.replay_parked(ALL, "s").await, Err(Error::SubscriptionNotFound)));
    // A transient subscription is not stored: it has no parked list.
    let mut transient =
        store.subscribe_to_all_streams("t", SubscriptionOptions::default().transient(true)).await.unwrap();
    subscribed(&mut transient).await;
    assert!(matches!(store.parked_events(ALL, "t").await, Err(Error::SubscriptionNotFound)));
    assert!(matches!(store.replay_parked(ALL, "t").await, Err(Error::SubscriptionNotFound)));
}
