//! Managing named subscriptions: settings stored with the subscription (and winning over a later
//! subscriber's), `update_subscription` reaching the running subscribers, and
//! `subscription_info` giving the stored and the live figures.

use std::time::Duration;

use crate::common::*;
use chronik::{
    ALL, ConsumerStrategy, Error, EventStore, ExpectedVersion, NackAction, RetriedEvent, SubscriptionInfo,
    SubscriptionMessage, SubscriptionOptions,
};

/// The info of `stream`/`name` once its stored checkpoint is `checkpoint` (written moments
/// after the ack that moved it).
async fn info_at_checkpoint(store: &EventStore, stream: &str, name: &str, checkpoint: u64) -> SubscriptionInfo {
    assert_checkpoint(store, stream, name, checkpoint, "the acks so far").await;
    store.subscription_info(stream, name).await.expect("subscription info")
}

#[tokio::test]
async fn a_lower_buffer_size_holds_for_the_running_subscriber_once_updated() {
    let store = quick_store().await;
    store.append_to_stream("a", ExpectedVersion::NoStream, events("E", 1, 30)).await.unwrap();
    let options = SubscriptionOptions::default().buffer_size(10);
    let mut sub = store.subscribe_to_all_streams("s", options.clone()).await.unwrap();
    let first = next_batch(&mut sub).await;
    assert_eq!(first.len(), 10);

    store.update_subscription(ALL, "s", options.buffer_size(3)).await.unwrap();
    let info = store.subscription_info(ALL, "s").await.unwrap();
    assert_eq!(info.settings.map(|s| s.buffer_size), Some(3), "stored");
    let live = info.live.expect("runs here");
    assert_eq!((live.settings.buffer_size, live.status.in_flight), (3, 10), "in flight stays; the new size holds");

    sub.ack(&first).await.unwrap();
    let mut got = first.len();
    while got < 30 {
        let batch = next_batch(&mut sub).await;
        assert!(batch.len() <= 3, "a batch of {} over the new buffer_size", batch.len());
        let st = store.subscription_status(ALL, "s").await.unwrap();
        assert!(st.in_flight <= 3, "{st:?}");
        got += batch.len();
        sub.ack(&batch).await.unwrap();
    }
}

#[tokio::test]
async fn a_changed_message_timeout_and_max_retry_count_hold_for_the_event_in_flight() {
    let store = quick_store().await;
    store.append_to_stream("a", ExpectedVersion::NoStream, events("E", 1, 1)).await.unwrap();
    let options = SubscriptionOptions::default().message_timeout(Duration::from_secs(3_600)).max_retry_count(10);
    let mut sub = store.subscribe_to_all_streams("s", options.clone()).await.unwrap();
    let held = next_batch(&mut sub).await;
    assert_eq!((numbers(&held), sub.retry_count(&held[0])), (vec![1], 0));

    // Not acked: with the new timeout it comes again within moments, once, then it is parked.
    let settings = options.message_timeout(Duration::from_millis(200)).max_retry_count(1);
    store.update_subscription(ALL, "s", settings).await.unwrap();
    let again = next_batch(&mut sub).await;
    assert_eq!((numbers(&again), sub.retry_count(&again[0])), (vec![1], 1));
    let deadline = tokio::time::Instant::now() + WAIT;
    while store.parked_events(ALL, "s").await.unwrap().is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "event 1 not parked after its second timeout");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let parked = store.parked_events(ALL, "s").await.unwrap();
    assert_eq!((parked[0].event_number, parked[0].retry_count), (1, 1));
}

#[tokio::test]
async fn stored_settings_win_over_a_later_subscribers_options_after_a_restart() {
    let store = quick_store().await;
    store.append_to_stream("a", ExpectedVersion::NoStream, events("E", 1, 12)).await.unwrap();
    let created = SubscriptionOptions::default()
        .buffer_size(3)
        .concurrency_limit(2)
        .consumer_strategy(ConsumerStrategy::DispatchToSingle);
    let sub = store.subscribe_to_all_streams("s", created.clone()).await.unwrap();
    sub.unsubscribe().await.unwrap();
    store.shutdown().await.unwrap();

    let restarted = EventStore::start(store.config.clone()).await.expect("the store starts again");
    let info = restarted.subscription_info(ALL, "s").await.unwrap();
    assert_eq!(info.settings.as_ref(), Some(&created), "{info:?}");
    // Subscribers with the defaults (one subscriber, 100 in flight) get the stored settings.
    let mut first = restarted.subscribe_to_all_streams("s", SubscriptionOptions::default()).await.unwrap();
    let mut second = restarted.subscribe_to_all_streams("s", SubscriptionOptions::default()).await.unwrap();
    assert_eq!(numbers(&next_batch(&mut first).await), vec![1, 2, 3], "buffer_size 3, filled first");
    assert_eq!(numbers(&next_batch(&mut second).await), vec![4, 5, 6], "then the next one");
    let err = restarted.subscribe_to_all_streams("s", SubscriptionOptions::default()).await.unwrap_err();
    assert!(matches!(err, Error::TooManySubscribers), "{err}");
    let live = restarted.subscription_info(ALL, "s").await.unwrap().live.expect("runs here");
    assert_eq!(live.settings, created);
    restarted.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_lowered_concurrency_limit_keeps_the_connected_subscribers_and_refuses_new_ones() {
    let store = quick_store().await;
    let options = SubscriptionOptions::default().concurrency_limit(3).buffer_size(1);
    let mut subs = Vec::new();
    for _ in 0..3 {
        subs.push(store.subscribe_to_all_streams("s", options.clone()).await.unwrap());
    }
    store.update_subscription(ALL, "s", options.clone().concurrency_limit(2)).await.unwrap();
    let err = store.subscribe_to_all_streams("s", options.clone()).await.unwrap_err();
    assert!(matches!(err, Error::TooManySubscribers), "{err}");
    store.append_to_stream("a", ExpectedVersion::NoStream, events("E", 1, 3)).await.unwrap();
    for (i, sub) in subs.iter_mut().enumerate() {
        assert_eq!(numbers(&next_batch(sub).await), vec![i as u64 + 1], "subscriber {i} stays connected");
    }
    let live = store.subscription_info(ALL, "s").await.unwrap().live.expect("runs here");
    assert_eq!(live.consumers.len(), 3);
    assert_eq!(
        live.consumers.iter().map(|c| c.id).collect::<Vec<_>>(),
        subs.iter().map(|s| s.subscriber_id()).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn unknown_subscriptions_and_settings_that_cannot_be_stored_are_refused() {
    let store = quick_store().await;
    let err = store.update_subscription(ALL, "nobody", SubscriptionOptions::default()).await.unwrap_err();
    assert!(matches!(err, Error::SubscriptionNotFound), "{err}");
    let err = store.subscription_info(ALL, "nobody").await.unwrap_err();
    assert!(matches!(err, Error::SubscriptionNotFound), "{err}");

    let transient = SubscriptionOptions::default().transient(true);
    let mut sub = store.subscribe_to_all_streams("passing", transient.clone()).await.unwrap();
    assert_eq!(next(&mut sub).await, SubscriptionMessage::Subscribed);
    let err = store.subscription_info(ALL, "passing").await.unwrap_err();
    assert!(matches!(err, Error::SubscriptionNotFound), "a transient subscription is not stored: {err}");

    let _stored = store.subscribe_to_all_streams("s", SubscriptionOptions::default()).await.unwrap();
    assert_invalid_mentioning(store.update_subscription(ALL, "s", transient).await, "transient");
    let zero = SubscriptionOptions::default().buffer_size(0);
    assert_invalid_mentioning(store.update_subscription(ALL, "s", zero).await, "buffer_size");
}

#[tokio::test]
async fn start_from_is_kept_as_stored_by_an_update() {
    let store = quick_store().await;
    store.append_to_stream("a", ExpectedVersion::NoStream, events("E", 1, 3)).await.unwrap();
    let created = SubscriptionOptions::default().start_from(chronik::StartFrom::Current);
    let sub = store.subscribe_to_all_streams("s", created).await.unwrap();
    store.update_subscription(ALL, "s", SubscriptionOptions::default().max_retry_count(2)).await.unwrap();
    let settings = store.subscription_info(ALL, "s").await.unwrap().settings.expect("stored");
    assert_eq!((settings.start_from, settings.max_retry_count), (chronik::StartFrom::Current, 2));
    sub.unsubscribe().await.unwrap();
}

#[tokio::test]
async fn subscription_info_figures_match_a_hand_count() {
    let store = quick_store().await;
    store.append_to_stream("a", ExpectedVersion::NoStream, events("E", 1, 12)).await.unwrap();
    let options = SubscriptionOptions::default().buffer_size(4).message_timeout(Duration::from_secs(3_600));
    let mut sub = store.subscribe_to_stream("a", "s", options.clone()).await.unwrap();
    let batch = next_batch(&mut sub).await;
    assert_eq!(numbers(&batch), vec![1, 2, 3, 4]);

    // 4 is retried (it comes back at once: a retried event goes out as soon as there is room),
    // 3 is parked, 1 is acked (which frees room for 5 and 6).
    sub.nack(&batch[3], NackAction::Retry, "later").await.unwrap();
    assert_eq!(numbers(&next_batch(&mut sub).await), vec![4]);
    sub.nack(&batch[2], NackAction::Park, "bad").await.unwrap();
    sub.ack(&batch[..1]).await.unwrap();
    assert_eq!(numbers(&next_batch(&mut sub).await), vec![5, 6]);

    let info = info_at_checkpoint(&store, "a", "s", 1).await;
    assert_eq!((info.stream.as_str(), info.name.as_str()), ("a", "s"));
    assert_eq!((info.checkpoint, info.head, info.lag, info.parked), (1, 12, 11, 1));
    assert!(info.owner_pid.is_some(), "this node owns it");
    assert_eq!(info.settings.as_ref(), Some(&options));
    let live = info.live.expect("runs here");
    assert_eq!(live.settings, options);
    let st = live.status;
    assert_eq!((st.subscribers, st.in_flight, st.queued, st.acked, st.last_received), (1, 4, 6, 1, 12), "{st:?}");
    assert_eq!(live.consumers.len(), 1);
    let consumer = live.consumers[0];
    assert_eq!((consumer.id, consumer.in_flight, consumer.paused), (sub.subscriber_id(), 4, false));
    assert_eq!(live.retrying, vec![RetriedEvent::new(4, 1)]);
    assert_eq!((live.delivered_recently, live.acked_recently), (7, 1), "1-4, 4 again, 5 and 6; one ack");
    assert!(live.rate_window <= Duration::from_secs(60));
    assert!(live.delivered_per_second() > 0.0 && live.acked_per_second() > 0.0);

    // The list has the stored figures, never the live ones.
    let listed = store.list_subscriptions().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!((listed[0].parked, listed[0].settings.as_ref(), listed[0].live.as_ref()), (1, Some(&options), None));

    // Once it runs nowhere (its lock is let go moments after the unsubscribe): the stored
    // figures, no live ones.
    sub.unsubscribe().await.unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    let info = loop {
        let info = store.subscription_info("a", "s").await.unwrap();
        if info.owner_pid.is_none() || tokio::time::Instant::now() > deadline {
            break info;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!((info.checkpoint, info.lag, info.parked, info.owner_pid), (1, 11, 1, None));
    assert!(info.live.is_none());
}
