//! Consumer strategies of competing consumers: round robin shares the queue among consumers
//! with room, dispatch-to-single fills one consumer before the next, and the pinned strategies
//! keep a stream (or a correlation id) on one consumer, in order, for as long as it is
//! connected, spreading a leaving consumer's streams over the others and giving a joining one
//! its share.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::common::*;
use chronik::{
    ALL, ConsumerStrategy, EventStore, ExpectedVersion, RecordedEvent, Subscription, SubscriptionMessage,
    SubscriptionOptions,
};

/// How long deliveries must be quiet before the tests look at what each consumer holds.
const QUIET: Duration = Duration::from_millis(500);

/// `count` consumers of `$all` subscription `name`, each past its `Subscribed`.
async fn consumers(store: &EventStore, name: &str, options: &SubscriptionOptions, count: usize) -> Vec<Subscription> {
    let mut subs = Vec::new();
    for _ in 0..count {
        subs.push(consumer(store, name, options).await);
    }
    subs
}

async fn consumer(store: &EventStore, name: &str, options: &SubscriptionOptions) -> Subscription {
    let mut sub = store.subscribe_to_all_streams(name, options.clone()).await.expect("subscribe");
    assert_eq!(next(&mut sub).await, SubscriptionMessage::Subscribed);
    sub
}

/// What each consumer receives until deliveries have been quiet for [`QUIET`], without acking.
async fn received(subs: &mut [Subscription]) -> Vec<Vec<RecordedEvent>> {
    let mut got = vec![Vec::new(); subs.len()];
    loop {
        let deadline = tokio::time::Instant::now() + QUIET;
        let mut quiet = true;
        for (sub, got) in subs.iter_mut().zip(&mut got) {
            while let Ok(msg) = tokio::time::timeout_at(deadline, sub.recv()).await {
                match msg {
                    Some(SubscriptionMessage::Events(batch)) => {
                        got.extend(batch);
                        quiet = false;
                    }
                    Some(SubscriptionMessage::Dropped(reason)) => panic!("consumer dropped: {reason}"),
                    Some(_) => {}
                    None => panic!("subscription closed"),
                }
            }
        }
        if quiet {
            return got;
        }
    }
}

/// Receives what each consumer gets until quiet, acks it all, and returns it.
async fn handled(subs: &mut [Subscription]) -> Vec<Vec<RecordedEvent>> {
    let got = received(subs).await;
    for (sub, events) in subs.iter().zip(&got) {
        if !events.is_empty() {
            sub.ack(events).await.expect("ack");
        }
    }
    got
}

/// Stream -> the consumers (by index) that got its events. Asserts that each consumer got each
/// stream's events in version order.
fn owners(got: &[Vec<RecordedEvent>]) -> BTreeMap<String, BTreeSet<usize>> {
    let mut owners: BTreeMap<String, BTreeSet<usize>> = BTreeMap::new();
    for (consumer, events) in got.iter().enumerate() {
        let mut last: BTreeMap<&str, u64> = BTreeMap::new();
        for event in events {
            let previous = last.insert(&event.stream_uuid, event.stream_version).unwrap_or(0);
            assert!(
                event.stream_version > previous,
                "consumer {consumer} got {} version {} after {previous}",
                event.stream_uuid,
                event.stream_version
            );
            owners.entry(event.stream_uuid.clone()).or_default().insert(consumer);
        }
    }
    owners
}

/// Stream -> its one consumer; fails if a stream went to several.
fn pinned(got: &[Vec<RecordedEvent>]) -> BTreeMap<String, usize> {
    owners(got)
        .into_iter()
        .map(|(stream, consumers)| {
            assert_eq!(consumers.len(), 1, "stream {stream} went to consumers {consumers:?}");
            (stream, consumers.into_iter().next().unwrap_or_default())
        })
        .collect()
}

/// Appends `per_stream` events to each of `streams` (`s-0`, `s-1`, ...), one event per append,
/// streams taking turns so that they interleave in `$all`.
async fn append_interleaved(store: &EventStore, streams: usize, per_stream: u64) {
    for _ in 0..per_stream {
        for s in 0..streams {
            store.append_to_stream(&format!("s-{s}"), ExpectedVersion::Any, events("E", 0, 1)).await.expect("append");
        }
    }
}

#[tokio::test]
async fn round_robin_consumers_with_room_share_the_queue_and_none_idles_while_events_are_queued() {
    let store = quick_store().await;
    let options = SubscriptionOptions::default()
        .concurrency_limit(3)
        .buffer_size(4)
        .consumer_strategy(ConsumerStrategy::RoundRobin);
    let mut subs = consumers(&store, "rr", &options, 3).await;
    store.append_to_stream("a", ExpectedVersion::NoStream, events("E", 1, 20)).await.unwrap();
    let got = received(&mut subs).await;
    let shares: Vec<Vec<u64>> = got.iter().map(|events| numbers(events)).collect();
    assert_eq!(shares, vec![vec![1, 4, 7, 10], vec![2, 5, 8, 11], vec![3, 6, 9, 12]], "each in turn, buffer_size each");
    let status = store.subscription_status(ALL, "rr").await.unwrap();
    assert_eq!((status.in_flight, status.queued), (12, 8));

    // The second consumer is done first: it gets queued events at once while the others work.
    subs[1].ack(&got[1]).await.unwrap();
    assert_eq!(numbers(&next_batch(&mut subs[1]).await), vec![13, 14, 15, 16]);
    subs[2].ack(&got[2]).await.unwrap();
    assert_eq!(numbers(&next_batch(&mut subs[2]).await), vec![17, 18, 19, 20]);
    let status = store.subscription_status(ALL, "rr").await.unwrap();
    assert_eq!((status.in_flight, status.queued), (12, 0));
}

#[tokio::test]
async fn dispatch_to_single_fills_one_consumer_before_the_next_in_connection_order() {
    let store = quick_store().await;
    let options = SubscriptionOptions::default()
        .concurrency_limit(3)
        .buffer_size(5)
        .consumer_strategy(ConsumerStrategy::DispatchToSingle);
    let mut subs = consumers(&store, "single", &options, 3).await;
    store.append_to_stream("a", ExpectedVersion::NoStream, events("E", 1, 3)).await.unwrap();
    store.append_to_stream("b", ExpectedVersion::NoStream, events("E", 4, 9)).await.unwrap();
    let got = received(&mut subs).await;
    let shares: Vec<Vec<u64>> = got.iter().map(|events| numbers(events)).collect();
    assert_eq!(shares, vec![(1..=5).collect::<Vec<u64>>(), (6..=10).collect(), vec![11, 12]]);

    // The third still has room: it stays the one being filled.
    store.append_to_stream("b", ExpectedVersion::Any, events("E", 13, 3)).await.unwrap();
    assert_eq!(numbers(&receive(&mut subs[2], 3).await), vec![13, 14, 15]);
}

#[tokio::test]
async fn pinned_keeps_each_stream_on_one_consumer_in_order_and_rebalances_when_consumers_leave_and_join() {
    const STREAMS: usize = 9;
    let store = quick_store().await;
    let options = SubscriptionOptions::default()
        .concurrency_limit(4)
        .buffer_size(100)
        .consumer_strategy(ConsumerStrategy::Pinned);
    let mut subs = consumers(&store, "pinned", &options, 3).await;

    append_interleaved(&store, STREAMS, 3).await;
    let first = pinned(&handled(&mut subs).await);
    assert_eq!(first.len(), STREAMS);
    let used: BTreeSet<usize> = first.values().copied().collect();
    assert_eq!(used.len(), 3, "the streams are spread over every consumer: {first:?}");

    // Nothing is in flight between rounds: each stream still goes to the same consumer.
    append_interleaved(&store, STREAMS, 2).await;
    assert_eq!(pinned(&handled(&mut subs).await), first, "a stream stays with its consumer while it is connected");

    // The first consumer leaves: its streams go to the others, the others' streams stay.
    let leaving = subs.remove(0);
    leaving.unsubscribe().await.unwrap();
    append_interleaved(&store, STREAMS, 2).await;
    let after_leave = pinned(&handled(&mut subs).await);
    assert_eq!(after_leave.len(), STREAMS);
    for (stream, consumer) in &first {
        if *consumer != 0 {
            assert_eq!(after_leave[stream], consumer - 1, "stream {stream} stays with its consumer");
        }
    }

    // A new consumer joins: it takes over a share of the streams; none is split.
    subs.push(consumer(&store, "pinned", &options).await);
    append_interleaved(&store, STREAMS, 2).await;
    let after_join = pinned(&handled(&mut subs).await);
    assert_eq!(after_join.len(), STREAMS);
    let share = after_join.values().filter(|c| **c == 2).count();
    assert!(share >= 2, "the new consumer takes about a third of the streams, got {share}: {after_join:?}");
}

#[tokio::test]
async fn pinned_by_correlation_keeps_a_correlation_on_one_consumer_across_streams() {
    let store = quick_store().await;
    let options = SubscriptionOptions::default()
        .concurrency_limit(2)
        .buffer_size(100)
        .consumer_strategy(ConsumerStrategy::PinnedByCorrelation);
    let mut subs = consumers(&store, "correlated", &options, 2).await;
    let correlations = [uuid::Uuid::new_v4(), uuid::Uuid::new_v4(), uuid::Uuid::new_v4(), uuid::Uuid::new_v4()];
    for round in 0..3_u64 {
        for (i, correlation) in correlations.iter().enumerate() {
            let event = event("E", round).with_correlation_id(*correlation);
            let stream = format!("order-{}", (i + round as usize) % 3);
            store.append_to_stream(&stream, ExpectedVersion::Any, vec![event]).await.unwrap();
        }
    }
    let got = handled(&mut subs).await;
    let mut by_correlation: BTreeMap<uuid::Uuid, BTreeSet<usize>> = BTreeMap::new();
    for (consumer, events) in got.iter().enumerate() {
        assert!(events.windows(2).all(|w| w[0].event_number < w[1].event_number), "in order");
        for event in events {
            let correlation = event.correlation_id.expect("correlated");
            by_correlation.entry(correlation).or_default().insert(consumer);
        }
    }
    assert_eq!(by_correlation.len(), 4);
    assert!(by_correlation.values().all(|c| c.len() == 1), "a correlation on one consumer: {by_correlation:?}");
    assert_eq!(got.iter().filter(|events| !events.is_empty()).count(), 2, "both consumers at work");
}
