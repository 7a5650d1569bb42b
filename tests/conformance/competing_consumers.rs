//! Named subscriptions under concurrency and back-pressure: competing consumers share the work
//! without duplicates, partitions stay on one consumer at a time and in order, a dead
//! consumer's events go to the others, a subscriber that never acks keeps memory bounded, and
//! many subscriptions on `$all` each see every event once and in order while writers race.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::*;
use chronik::{
    ALL, EventStore, ExpectedVersion, RecordedEvent, Subscription, SubscriptionMessage, SubscriptionOptions,
    SubscriptionStatus,
};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How long the tests keep listening after the last expected event, for duplicates.
const QUIET: Duration = Duration::from_millis(500);

async fn quick_store(pool_size: u32) -> TestStore {
    TestStore::start_with(|c| quick(c.pool_size(pool_size))).await
}

/// Fails if an `Events` batch arrives within `within` (`Subscribed`/`CaughtUp` are fine).
async fn expect_no_events(sub: &mut Subscription, within: Duration) {
    let deadline = tokio::time::Instant::now() + within;
    while let Ok(msg) = tokio::time::timeout_at(deadline, sub.recv()).await {
        match msg {
            Some(SubscriptionMessage::Events(batch)) => panic!("expected no events, got {:?}", numbers(&batch)),
            Some(SubscriptionMessage::Dropped(reason)) => panic!("subscriber dropped: {reason}"),
            Some(_) => {}
            None => panic!("subscription closed"),
        }
    }
}

/// Polls `check` until it is true, for at most `WAIT`.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + WAIT;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn status(store: &EventStore, name: &str) -> SubscriptionStatus {
    store.subscription_status(ALL, name).await.expect("subscription runs here")
}

/// Appends `per_append` events to each of `streams` streams (`s-0`, `s-1`, ...) `rounds` times,
/// every stream from its own task, so the streams interleave in `$all`. Stream versions and the
/// payload numbers continue from `first_round`.
async fn append_rounds(store: &EventStore, streams: usize, first_round: u64, rounds: u64, per_append: u64) {
    let writers: Vec<JoinHandle<()>> = (0..streams)
        .map(|s| {
            let store = store.clone();
            tokio::spawn(async move {
                let stream = format!("s-{s}");
                for round in first_round..first_round + rounds {
                    let version = round * per_append;
                    let expected =
                        if version == 0 { ExpectedVersion::NoStream } else { ExpectedVersion::Exact(version) };
                    store
                        .append_to_stream(&stream, expected, events("E", version + 1, per_append))
                        .await
                        .expect("append");
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.expect("writer task");
    }
}

/// One batch as a competing consumer handled it. `received` and `ack_sent` are ticks of one
/// clock shared by every consumer of a test: `received` is read after the batch came out of the
/// channel, `ack_sent` just before the ack was sent (the subscription sees the ack after it).
#[derive(Debug, Clone)]
struct Handled {
    consumer: usize,
    events: Vec<RecordedEvent>,
    received: u64,
    ack_sent: u64,
}

#[derive(Default)]
struct Journal {
    clock: AtomicU64,
    events: AtomicUsize,
    batches: Mutex<Vec<Handled>>,
}

impl Journal {
    fn tick(&self) -> u64 {
        self.clock.fetch_add(1, Ordering::SeqCst)
    }

    fn event_count(&self) -> usize {
        self.events.load(Ordering::SeqCst)
    }

    fn batches(&self) -> Vec<Handled> {
        self.batches.lock().unwrap().clone()
    }

    /// (event number, consumer) of every event handled, in the order they were journaled.
    fn deliveries(&self) -> Vec<(u64, usize)> {
        self.batches().iter().flat_map(|h| h.events.iter().map(move |e| (e.event_number, h.consumer))).collect()
    }
}

/// A competing consumer: receives, waits `ack_delay` (the work), acks, and journals every
/// batch, until told to stop; then hands its subscription back (still connected, so nothing is
/// redelivered while the test inspects the journal).
fn spawn_consumer(
    mut sub: Subscription,
    consumer: usize,
    journal: Arc<Journal>,
    ack_delay: Duration,
    mut stop: watch::Receiver<bool>,
) -> JoinHandle<Subscription> {
    tokio::spawn(async move {
        loop {
            let msg = tokio::select! {
                msg = sub.recv() => msg,
                _ = stop.wait_for(|stop| *stop) => return sub,
            };
            match msg {
                Some(SubscriptionMessage::Events(batch)) => {
                    let received = journal.tick();
                    if !ack_delay.is_zero() {
                        tokio::time::sleep(ack_delay).await;
                    }
                    let ack_sent = journal.tick();
                    sub.ack(&batch).await.unwrap_or_else(|e| panic!("consumer {consumer} cannot ack: {e}"));
                    let count = batch.len();
                    journal.batches.lock().unwrap().push(Handled { consumer, events: batch, received, ack_sent });
                    journal.events.fetch_add(count, Ordering::SeqCst);
                }
                Some(SubscriptionMessage::Dropped(reason)) => panic!("consumer {consumer} dropped: {reason}"),
                Some(_) => {}
                None => panic!("consumer {consumer}: subscription closed"),
            }
        }
    })
}

/// Waits until the consumers journaled `total` events, then `QUIET` more for late duplicates;
/// stops the consumers and returns their subscriptions. A consumer that panics fails the test
/// with its own message.
async fn run_until(
    journal: &Journal,
    total: usize,
    consumers: Vec<JoinHandle<Subscription>>,
    stop: watch::Sender<bool>,
) -> Vec<Subscription> {
    let deadline = Instant::now() + WAIT;
    while journal.event_count() < total {
        if let Some(done) = consumers.iter().position(JoinHandle::is_finished) {
            let outcome = consumers.into_iter().nth(done).unwrap().await;
            panic!("consumer {done} ended early: {:?}", outcome.err());
        }
        assert!(Instant::now() < deadline, "only {} of {total} events handled in {WAIT:?}", journal.event_count());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(QUIET).await;
    stop.send_replace(true);
    let mut subs = Vec::new();
    for consumer in consumers {
        subs.push(consumer.await.expect("consumer task"));
    }
    subs
}

/// Asserts every event number in `1..=total` was handled exactly once.
fn assert_exactly_once(deliveries: &[(u64, usize)], total: u64) {
    let mut by_number: BTreeMap<u64, Vec<usize>> = BTreeMap::new();
    for (n, consumer) in deliveries {
        by_number.entry(*n).or_default().push(*consumer);
    }
    let twice: Vec<_> = by_number.iter().filter(|(_, c)| c.len() > 1).collect();
    assert!(twice.is_empty(), "delivered more than once (event: consumers): {twice:?}");
    let missing: Vec<u64> = (1..=total).filter(|n| !by_number.contains_key(n)).collect();
    assert!(missing.is_empty(), "never delivered: {missing:?}");
    let unknown: Vec<u64> = by_number.keys().copied().filter(|n| *n > total).collect();
    assert!(unknown.is_empty(), "delivered events that were never appended: {unknown:?}");
}

/// What each consumer holds (not acked) once deliveries have settled for `QUIET`.
async fn held_by(subs: &mut [Subscription]) -> Vec<Vec<u64>> {
    let mut held = vec![Vec::new(); subs.len()];
    let deadline = tokio::time::Instant::now() + QUIET;
    for (sub, held) in subs.iter_mut().zip(&mut held) {
        while let Ok(msg) = tokio::time::timeout_at(deadline, sub.recv()).await {
            match msg {
                Some(SubscriptionMessage::Events(batch)) => held.extend(numbers(&batch)),
                Some(SubscriptionMessage::Dropped(reason)) => panic!("subscriber dropped: {reason}"),
                Some(_) => {}
                None => panic!("subscription closed"),
            }
        }
    }
    held
}

async fn connected(store: &EventStore, name: &str, options: &SubscriptionOptions, count: usize) -> Vec<Subscription> {
    let mut subs = Vec::new();
    for _ in 0..count {
        let mut sub = store.subscribe_to_all_streams(name, options.clone()).await.unwrap();
        assert_eq!(next(&mut sub).await, SubscriptionMessage::Subscribed);
        subs.push(sub);
    }
    subs
}

/// Consumers with room share the queue in turn: no consumer idles while events wait.
#[tokio::test]
async fn consumers_with_room_share_the_queue_and_none_idles_while_events_wait() {
    let store = quick_store(4).await;
    let options = SubscriptionOptions::default().concurrency_limit(2).buffer_size(10);
    let mut subs = connected(&store, "pair", &options, 2).await;
    store.append_to_stream("a", ExpectedVersion::NoStream, events("E", 1, 10)).await.unwrap();
    let held = held_by(&mut subs).await;
    assert_eq!(held, vec![vec![1, 3, 5, 7, 9], vec![2, 4, 6, 8, 10]], "each of two consumers takes every other event");

    // With partitions: a partition with events in flight stays with its consumer, a new one
    // goes to the next consumer with room, and nothing waits while its consumer has room.
    let options = SubscriptionOptions::default()
        .start_from(chronik::StartFrom::Current)
        .concurrency_limit(3)
        .buffer_size(3)
        .partition_by(|e| e.event_number % 2);
    let mut subs = connected(&store, "parity", &options, 3).await;
    store.append_to_stream("b", ExpectedVersion::NoStream, events("E", 11, 6)).await.unwrap();
    let mut held = held_by(&mut subs).await;
    held.retain(|events| !events.is_empty());
    held.sort();
    assert_eq!(held, vec![vec![11, 13, 15], vec![12, 14, 16]], "both partitions at work, none waiting");
}

/// Three consumers of one subscription split the events between them: each event goes to
/// exactly one of them (nobody disconnected, so nothing is redelivered), together they get all
/// of them, and every one of them does part of the work.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn competing_consumers_get_disjoint_events_that_together_are_all_events() {
    let store = quick_store(4).await;
    // 10 streams x 30 events: half before subscribing (catch-up), half while consuming (live).
    append_rounds(&store, 10, 0, 3, 5).await;
    let options = SubscriptionOptions::default().concurrency_limit(3).buffer_size(10);
    let journal = Arc::new(Journal::default());
    let (stop, stopped) = watch::channel(false);
    let mut consumers = Vec::new();
    for consumer in 0..3 {
        let sub = store.subscribe_to_all_streams("workers", options.clone()).await.unwrap();
        consumers.push(spawn_consumer(sub, consumer, Arc::clone(&journal), Duration::from_millis(2), stopped.clone()));
    }
    append_rounds(&store, 10, 3, 3, 5).await;
    let _subs = run_until(&journal, 300, consumers, stop).await;

    assert_exactly_once(&journal.deliveries(), 300);
    for consumer in 0..3 {
        let share = journal.deliveries().iter().filter(|(_, c)| *c == consumer).count();
        assert!(share > 0, "consumer {consumer} got nothing: the work is not shared");
    }
    for handled in journal.batches() {
        let batch = &handled.events;
        assert!(batch.len() <= 10, "a batch of {} events is over buffer_size", batch.len());
        assert!(batch.iter().all(|e| e.stream_uuid == batch[0].stream_uuid), "a batch mixes streams");
        assert!(batch.windows(2).all(|w| w[0].event_number < w[1].event_number), "a batch out of order");
    }
    let st = status(&store, "workers").await;
    assert_eq!((st.subscribers, st.in_flight, st.queued, st.acked), (3, 0, 0, 300), "{st:?}");
    eventually("the checkpoint reaches the last event", || async {
        stored_checkpoint(&store, ALL, "workers").await == 300
    })
    .await;
}

/// With `partition_by(stream)`, a stream's events are in flight at one consumer at a time: a
/// consumer gets a stream's events only once every consumer that had earlier events of that
/// stream acked them. So each stream is delivered in order, across consumers too.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn partitioned_consumers_hold_a_stream_one_at_a_time_and_in_order() {
    let store = quick_store(4).await;
    append_rounds(&store, 10, 0, 4, 3).await;
    let options = SubscriptionOptions::default()
        .concurrency_limit(3)
        .buffer_size(5)
        .partition_by(|e: &RecordedEvent| e.stream_uuid.clone());
    let journal = Arc::new(Journal::default());
    let (stop, stopped) = watch::channel(false);
    let mut consumers = Vec::new();
    // Slow acks, at different speeds, so partitions are held a while and change hands.
    for (consumer, delay) in [1, 3, 5].into_iter().enumerate() {
        let sub = store.subscribe_to_all_streams("partitioned", options.clone()).await.unwrap();
        let delay = Duration::from_millis(delay);
        consumers.push(spawn_consumer(sub, consumer, Arc::clone(&journal), delay, stopped.clone()));
    }
    append_rounds(&store, 10, 4, 6, 3).await;
    let _subs = run_until(&journal, 300, consumers, stop).await;
    assert_exactly_once(&journal.deliveries(), 300);

    let mut by_stream: HashMap<String, Vec<Handled>> = HashMap::new();
    for handled in journal.batches() {
        let stream = handled.events[0].stream_uuid.clone();
        assert!(handled.events.iter().all(|e| e.stream_uuid == stream), "a batch mixes streams");
        by_stream.entry(stream).or_default().push(handled);
    }
    assert_eq!(by_stream.len(), 10);
    let mut handovers = 0;
    for (stream, mut batches) in by_stream {
        batches.sort_by_key(|h| h.received);
        // No overlap: a consumer receives the stream only after every other consumer that got
        // earlier events of it sent their ack.
        for (i, later) in batches.iter().enumerate() {
            for earlier in &batches[..i] {
                assert!(
                    earlier.consumer == later.consumer || earlier.ack_sent < later.received,
                    "stream {stream}: consumer {} received {:?} while consumer {} still held {:?}",
                    later.consumer,
                    numbers(&later.events),
                    earlier.consumer,
                    numbers(&earlier.events),
                );
            }
        }
        handovers += batches.windows(2).filter(|w| w[0].consumer != w[1].consumer).count();
        // In order: each consumer's share, and the stream as a whole in delivery order.
        for consumer in 0..3 {
            let versions: Vec<u64> = batches
                .iter()
                .filter(|h| h.consumer == consumer)
                .flat_map(|h| h.events.iter().map(|e| e.stream_version))
                .collect();
            assert!(versions.windows(2).all(|w| w[0] < w[1]), "stream {stream}, consumer {consumer}: {versions:?}");
        }
        let versions: Vec<u64> = batches.iter().flat_map(|h| h.events.iter().map(|e| e.stream_version)).collect();
        assert_eq!(versions, (1..=30).collect::<Vec<u64>>(), "stream {stream} out of order across consumers");
        let positions: Vec<u64> = batches.iter().flat_map(|h| h.events.iter().map(|e| e.global_position)).collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "stream {stream}: positions {positions:?}");
    }
    for consumer in 0..3 {
        assert!(journal.batches().iter().any(|h| h.consumer == consumer), "consumer {consumer} got nothing");
    }
    eprintln!("partitions changed consumer {handovers} times");
}

/// A subscriber dropped with events in flight: they go to the other consumer, which can ack
/// them, and the checkpoint, held back by them until then, reaches the last event.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dropped_consumers_in_flight_events_go_to_another_consumer() {
    let store = quick_store(4).await;
    store.append_to_stream("a", ExpectedVersion::NoStream, events("E", 1, 50)).await.unwrap();
    let options = SubscriptionOptions::default().concurrency_limit(2).buffer_size(10);
    let mut victim = store.subscribe_to_all_streams("s", options.clone()).await.unwrap();
    assert_eq!(next(&mut victim).await, SubscriptionMessage::Subscribed);
    let held = numbers(&next_batch(&mut victim).await);
    assert_eq!(held, (1..=10).collect::<Vec<u64>>(), "the first consumer gets the first buffer_size events");

    let mut survivor = store.subscribe_to_all_streams("s", options).await.unwrap();
    let mut got = Vec::new();
    while got.len() < 40 {
        let batch = next_batch(&mut survivor).await;
        survivor.ack(&batch).await.unwrap();
        got.extend(numbers(&batch));
    }
    assert_eq!(got, (11..=50).collect::<Vec<u64>>());
    // The victim's events are its own while it is connected.
    expect_no_events(&mut survivor, Duration::from_millis(300)).await;
    let st = status(&store, "s").await;
    assert_eq!((st.in_flight, st.acked), (10, 0), "{st:?}");
    assert_checkpoint(&store, ALL, "s", 0, "1..=10 are not acked").await;

    drop(victim);
    let mut again = Vec::new();
    while again.len() < held.len() {
        let batch = next_batch(&mut survivor).await;
        survivor.ack(&batch).await.expect("the survivor acks the dead consumer's events");
        again.extend(numbers(&batch));
    }
    assert_eq!(again, held, "the dead consumer's events, in order");
    expect_no_events(&mut survivor, Duration::from_millis(300)).await;
    eventually("the checkpoint reaches the last event", || async { stored_checkpoint(&store, ALL, "s").await == 50 })
        .await;
    let st = status(&store, "s").await;
    assert_eq!((st.subscribers, st.in_flight, st.queued, st.acked), (1, 0, 0, 50), "{st:?}");
}

/// A consumer whose task is aborted while it holds events: the remaining consumers of the
/// group get those events and ack them, exactly once between them, and the checkpoint reaches
/// the last event.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_aborted_consumer_tasks_events_go_to_the_remaining_consumers() {
    let store = quick_store(4).await;
    for s in 0..5 {
        store.append_to_stream(&format!("s-{s}"), ExpectedVersion::NoStream, events("E", 1, 20)).await.unwrap();
    }
    let options = SubscriptionOptions::default().concurrency_limit(3).buffer_size(10);
    let mut victim = store.subscribe_to_all_streams("s", options.clone()).await.unwrap();
    let (held_tx, held_rx) = tokio::sync::oneshot::channel();
    let victim_task = tokio::spawn(async move {
        let batch = next_batch(&mut victim).await;
        held_tx.send(numbers(&batch)).unwrap();
        // Busy "working" on it, never acking, until aborted.
        std::future::pending::<()>().await;
        drop(victim);
    });
    let held = held_rx.await.unwrap();
    assert!(!held.is_empty());

    let journal = Arc::new(Journal::default());
    let (stop, stopped) = watch::channel(false);
    let mut consumers = Vec::new();
    for consumer in 0..2 {
        let sub = store.subscribe_to_all_streams("s", options.clone()).await.unwrap();
        consumers.push(spawn_consumer(sub, consumer, Arc::clone(&journal), Duration::from_millis(1), stopped.clone()));
    }
    eventually("the others handled everything but the held events", || async {
        journal.event_count() >= 100 - held.len()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(journal.event_count(), 100 - held.len(), "held events are not given away while their consumer lives");
    assert!(journal.deliveries().iter().all(|(n, _)| !held.contains(n)));
    assert_checkpoint(&store, ALL, "s", held[0] - 1, "the checkpoint waits for the held events").await;

    victim_task.abort();
    assert!(victim_task.await.unwrap_err().is_cancelled());
    let _subs = run_until(&journal, 100, consumers, stop).await;
    assert_exactly_once(&journal.deliveries(), 100);
    let redelivered: Vec<u64> = journal
        .deliveries()
        .iter()
        .map(|(n, _)| *n)
        .filter(|n| held.contains(n))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(redelivered, held);
    eventually("the checkpoint reaches the last event", || async { stored_checkpoint(&store, ALL, "s").await == 100 })
        .await;
    let st = status(&store, "s").await;
    assert_eq!((st.subscribers, st.in_flight, st.queued, st.acked), (2, 0, 0, 100), "{st:?}");
}

/// A subscriber that never acks while 100,000 events are written: the subscription holds at
/// most `max_size` queued and `buffer_size` in flight, whatever the writers do (it reads the
/// rest from storage later). Once the subscriber acks, every event arrives once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_subscriber_that_never_acks_keeps_memory_bounded_then_gets_everything_in_order() {
    const TOTAL: u64 = 100_000;
    const WRITERS: u64 = 4;
    const PER_APPEND: u64 = 100;
    const BUFFER: usize = 10;
    const MAX: usize = 500;
    let store = quick_store(4).await;
    // It holds its first events unacked for as long as the writers run: no message timeout.
    let options =
        SubscriptionOptions::default().buffer_size(BUFFER).max_size(MAX).message_timeout(Duration::from_secs(3_600));
    let mut sub = store.subscribe_to_all_streams("slow", options).await.unwrap();
    assert_eq!(next(&mut sub).await, SubscriptionMessage::Subscribed);

    let started = Instant::now();
    let writers: Vec<JoinHandle<()>> = (0..WRITERS)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                let stream = format!("w-{w}");
                for a in 0..TOTAL / WRITERS / PER_APPEND {
                    let data = events("E", a * PER_APPEND + 1, PER_APPEND);
                    store.append_to_stream(&stream, ExpectedVersion::Any, data).await.expect("append");
                }
            })
        })
        .collect();
    // Watch the subscription while the writers run.
    let mut samples = 0;
    let mut most_queued = 0;
    let mut most_in_flight = 0;
    while !writers.iter().all(JoinHandle::is_finished) {
        let st = status(&store, "slow").await;
        assert!(st.queued <= MAX, "{} queued, over max_size {MAX}: {st:?}", st.queued);
        assert!(st.in_flight <= BUFFER, "{} in flight, over buffer_size {BUFFER}: {st:?}", st.in_flight);
        most_queued = most_queued.max(st.queued);
        most_in_flight = most_in_flight.max(st.in_flight);
        samples += 1;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for writer in writers {
        writer.await.expect("writer task");
    }
    let appended = started.elapsed();
    assert_eq!(store.stream_info(ALL).await.unwrap().stream_version, TOTAL);
    // Let it settle: it fills its queue from storage, then stops taking anything.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let st = status(&store, "slow").await;
    eprintln!(
        "{TOTAL} events appended in {appended:?}; {samples} samples, most queued {most_queued}, most in flight \
         {most_in_flight}; settled: {st:?}"
    );
    assert_eq!(st.acked, 0, "{st:?}");
    assert!(st.queued <= MAX && st.peak_queued <= MAX, "queue over max_size: {st:?}");
    assert!(st.in_flight <= BUFFER, "{st:?}");
    assert!(st.last_received <= (MAX + BUFFER) as u64, "took in more than it can hold: {st:?}");

    // Now it acks: everything arrives, once and in order.
    let started = Instant::now();
    let mut expected = 1;
    while expected <= TOTAL {
        let batch = next_batch(&mut sub).await;
        assert!(batch.len() <= BUFFER, "batch of {} over buffer_size", batch.len());
        for event in &batch {
            assert_eq!(event.event_number, expected, "out of order, duplicated or missing");
            expected += 1;
        }
        sub.ack(&batch).await.unwrap();
    }
    let drained = started.elapsed();
    expect_no_events(&mut sub, Duration::from_millis(300)).await;
    let st = status(&store, "slow").await;
    eprintln!("drained in {drained:?}; {st:?}");
    assert!(st.peak_queued <= MAX, "queue over max_size while draining: {st:?}");
    assert_eq!((st.acked, st.in_flight, st.queued), (TOTAL, 0, 0), "{st:?}");
    eventually("the checkpoint reaches the last event", || async {
        stored_checkpoint(&store, ALL, "slow").await == TOTAL
    })
    .await;
}

/// Fifty subscriptions on `$all` while ten writers append concurrently: each one receives every
/// event exactly once, in global-position order, and ends with its checkpoint on the last one.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_subscriptions_each_get_every_event_once_in_order_during_concurrent_writes() {
    const SUBSCRIPTIONS: usize = 50;
    const WRITERS: usize = 10;
    const APPENDS: u64 = 20;
    const PER_APPEND: u64 = 5;
    const TOTAL: u64 = WRITERS as u64 * APPENDS * PER_APPEND;
    let store = quick_store(6).await;
    let mut subscribers = Vec::new();
    // One after the other, each running before the next starts (subscriptions started at the
    // same instant can lose their live feed: see `subscriptions_started_at_once_all_get_live_events`).
    for i in 0..SUBSCRIPTIONS {
        let name = format!("sub-{i}");
        let mut sub = store.subscribe_to_all_streams(&name, SubscriptionOptions::default()).await.unwrap();
        assert_eq!(next(&mut sub).await, SubscriptionMessage::Subscribed);
        subscribers.push(tokio::spawn(async move {
            let mut got: Vec<u64> = Vec::new();
            while (got.len() as u64) < TOTAL {
                let batch = next_batch(&mut sub).await;
                sub.ack(&batch).await.unwrap();
                got.extend(numbers(&batch));
            }
            expect_no_events(&mut sub, QUIET).await;
            sub.unsubscribe().await.unwrap();
            (name, got)
        }));
    }
    append_rounds(&store, WRITERS, 0, APPENDS, PER_APPEND).await;
    let last = store.stream_info(ALL).await.unwrap().stream_version;
    assert_eq!(last, TOTAL);

    for subscriber in subscribers {
        let (name, got) = subscriber.await.expect("subscriber task");
        assert!(got.windows(2).all(|w| w[0] < w[1]), "{name}: not in global-position order");
        assert_eq!(got, (1..=TOTAL).collect::<Vec<u64>>(), "{name}: not every event exactly once");
    }
    let stored = store.list_subscriptions().await.unwrap();
    assert_eq!(stored.len(), SUBSCRIPTIONS);
    for info in stored {
        assert_eq!(info.checkpoint, TOTAL, "{}: checkpoint written when it stopped", info.name);
    }
}

/// A consumer that leaves with events in flight while the queue is full: its events go back to
/// the queue for the others, but the queue still never holds more than `max_size` (the status
/// says `peak_queued` is never above it), and the remaining consumer still gets every event.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_consumer_leaving_a_full_queue_does_not_push_it_past_max_size() {
    const MAX: usize = 20;
    let store = quick_store(4).await;
    store.append_to_stream("a", ExpectedVersion::NoStream, events("E", 1, 100)).await.unwrap();
    let options = SubscriptionOptions::default().concurrency_limit(2).buffer_size(10).max_size(MAX);
    let mut leaving = store.subscribe_to_all_streams("s", options.clone()).await.unwrap();
    assert_eq!(numbers(&next_batch(&mut leaving).await), (1..=10).collect::<Vec<u64>>());
    let mut staying = store.subscribe_to_all_streams("s", options).await.unwrap();
    let first = next_batch(&mut staying).await;
    assert_eq!(numbers(&first), (11..=20).collect::<Vec<u64>>());
    eventually("the queue is full", || async { status(&store, "s").await.queued == MAX }).await;

    drop(leaving);
    eventually("the leaving consumer is gone", || async { status(&store, "s").await.subscribers == 1 }).await;
    let st = status(&store, "s").await;
    assert!(st.queued <= MAX && st.peak_queued <= MAX, "queue over max_size {MAX}: {st:?}");

    staying.ack(&first).await.unwrap();
    let mut got: BTreeSet<u64> = numbers(&first).into_iter().collect();
    while got.len() < 100 {
        let batch = next_batch(&mut staying).await;
        staying.ack(&batch).await.unwrap();
        for n in numbers(&batch) {
            assert!(got.insert(n), "event {n} delivered twice to the same consumer");
        }
    }
    assert_eq!(got, (1..=100).collect::<BTreeSet<u64>>());
    let st = status(&store, "s").await;
    assert!(st.peak_queued <= MAX, "queue over max_size {MAX}: {st:?}");
}

/// Subscriptions started at the same moment (here ten at once, in rounds, each round after the
/// previous ones stopped) all receive the events appended afterwards, live.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn subscriptions_started_at_once_all_get_live_events() {
    const AT_ONCE: usize = 10;
    let store = quick_store(4).await;
    for round in 0..10_u64 {
        let starting: Vec<JoinHandle<Subscription>> = (0..AT_ONCE)
            .map(|i| {
                let store = store.clone();
                tokio::spawn(async move {
                    let name = format!("r{round}-{i}");
                    let options = SubscriptionOptions::default().start_from(chronik::StartFrom::Current);
                    let mut sub = store.subscribe_to_all_streams(&name, options).await.unwrap();
                    assert_eq!(next(&mut sub).await, SubscriptionMessage::Subscribed);
                    sub
                })
            })
            .collect();
        let mut subs = Vec::new();
        for sub in starting {
            subs.push(sub.await.expect("subscribing task"));
        }
        store.append_to_stream("a", ExpectedVersion::Exact(round), events("E", round + 1, 1)).await.unwrap();
        for sub in &mut subs {
            let batch = next_batch(sub).await;
            assert_eq!(numbers(&batch), vec![round + 1], "round {round}: {}", sub.name());
            sub.ack(&batch).await.unwrap();
        }
        for sub in subs {
            sub.unsubscribe().await.unwrap();
        }
    }
}

/// The same for live listeners, deterministically: on one thread, the second `subscribe` comes
/// before the publisher the first one started has begun running.
#[tokio::test]
async fn live_listeners_started_back_to_back_both_get_events() {
    let store = quick_store(4).await;
    let mut first = store.subscribe(ALL).await.unwrap();
    let mut second = store.subscribe(ALL).await.unwrap();
    store.append_to_stream("a", ExpectedVersion::NoStream, events("E", 1, 2)).await.unwrap();
    for (which, live) in [("first", &mut first), ("second", &mut second)] {
        let msg = tokio::time::timeout(Duration::from_secs(3), live.recv()).await;
        let Ok(Some(chronik::LiveMessage::Events(got))) = msg else { panic!("{which} listener got {msg:?}") };
        assert_eq!(numbers(&got), vec![1, 2], "{which} listener");
    }
}
