//! The store's metrics against hand counts: a recorder (over metrics-util's registry)
//! installed before the store starts sees every write call by outcome, the events stored, each
//! call's duration, every group-commit batch, the head position and a writer restart.

use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use chronik::metrics::{
    APPEND_DURATION, APPENDS, BATCH_APPENDS, BATCH_EVENTS, EVENTS_APPENDED, HEAD_POSITION, NOTIFIER_LAG,
    WRITER_RESTARTS, store_label,
};
use chronik::{Error, ExpectedVersion, StreamAppend};
use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};
use metrics_util::registry::{AtomicStorage, Registry};

use crate::common::*;

/// A recorder that keeps every value (counters, gauges, histogram samples) until read, and
/// reads without resetting.
struct Kept(Arc<Registry<Key, AtomicStorage>>);

impl Recorder for Kept {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        self.0.get_or_create_counter(key, |c| Counter::from_arc(Arc::clone(c)))
    }

    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        self.0.get_or_create_gauge(key, |g| Gauge::from_arc(Arc::clone(g)))
    }

    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        self.0.get_or_create_histogram(key, |h| Histogram::from_arc(Arc::clone(h)))
    }
}

/// One recorder for the whole test process (tests of one binary may share a process), installed
/// before any store starts; each test reads only the metrics of its own store.
fn registry() -> &'static Arc<Registry<Key, AtomicStorage>> {
    static REGISTRY: OnceLock<Arc<Registry<Key, AtomicStorage>>> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        let registry = Arc::new(Registry::atomic());
        metrics::set_global_recorder(Kept(Arc::clone(&registry))).expect("the only recorder of this process");
        registry
    })
}

/// The metric `name` of the store labelled `store` whose other labels are `labels` (`k=v`).
fn find<T>(handles: impl IntoIterator<Item = (Key, T)>, store: &str, name: &str, labels: &[&str]) -> Option<T> {
    handles.into_iter().find_map(|(key, handle)| {
        let mine = key.labels().any(|l| l.key() == "store" && l.value() == store);
        let others: Vec<String> =
            key.labels().filter(|l| l.key() != "store").map(|l| format!("{}={}", l.key(), l.value())).collect();
        (mine && key.name() == name && others == labels).then_some(handle)
    })
}

fn counter(store: &str, name: &str, labels: &[&str]) -> u64 {
    find(registry().get_counter_handles(), store, name, labels)
        .unwrap_or_else(|| panic!("no counter {name} {labels:?}"))
        .load(Ordering::SeqCst)
}

fn gauge(store: &str, name: &str) -> f64 {
    f64::from_bits(
        find(registry().get_gauge_handles(), store, name, &[])
            .unwrap_or_else(|| panic!("no gauge {name}"))
            .load(Ordering::SeqCst),
    )
}

fn samples(store: &str, name: &str) -> Vec<f64> {
    find(registry().get_histogram_handles(), store, name, &[]).unwrap_or_else(|| panic!("no histogram {name}")).data()
}

#[tokio::test]
async fn write_calls_events_batches_and_the_head_are_counted() {
    registry();
    let store = TestStore::start().await;
    let label = store_label(&store.config);
    for n in 0..3 {
        store.append_to_stream(&format!("m-{n}"), ExpectedVersion::NoStream, events("E", 1, 2)).await.unwrap();
    }
    let both = vec![
        StreamAppend::new("m-0", ExpectedVersion::Exact(2), events("E", 3, 1)),
        StreamAppend::new("m-3", ExpectedVersion::NoStream, events("E", 1, 1)),
    ];
    store.append_to_streams(both).await.unwrap();
    let refused = store.append_to_stream("m-1", ExpectedVersion::Exact(7), events("E", 3, 1)).await;
    assert!(matches!(refused, Err(Error::WrongExpectedVersion { .. })), "{refused:?}");
    let linked = store.read_stream_forward("m-2", 1, 1).await.unwrap();
    store.link_to_stream("m-links", ExpectedVersion::NoStream, &linked).await.unwrap();

    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while gauge(&label, HEAD_POSITION) != 8.0 {
        assert!(tokio::time::Instant::now() < deadline, "the head reaches 8 (links take no position)");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(gauge(&label, NOTIFIER_LAG), 0.0);
    assert_eq!(counter(&label, APPENDS, &["outcome=ok"]), 5, "3 appends, 1 multi-stream append, 1 link");
    assert_eq!(counter(&label, APPENDS, &["outcome=rejected"]), 1);
    assert_eq!(counter(&label, APPENDS, &["outcome=failed"]), 0);
    assert_eq!(counter(&label, EVENTS_APPENDED, &[]), 3 * 2 + 2 + 1, "events and the link");
    let durations = samples(&label, APPEND_DURATION);
    assert_eq!(durations.len(), 6, "one duration per call");
    assert!(durations.iter().all(|s| *s > 0.0 && *s < 10.0), "{durations:?}");
    // Calls made one after another: each its own batch, the refused one too.
    assert_eq!(samples(&label, BATCH_APPENDS), vec![1.0; 6]);
    assert_eq!(samples(&label, BATCH_EVENTS), vec![2.0, 2.0, 2.0, 2.0, 1.0, 1.0]);
    assert_eq!(counter(&label, WRITER_RESTARTS, &[]), 0);
}

#[tokio::test]
async fn concurrent_appends_share_batches_and_a_killed_writer_is_counted() {
    registry();
    let store = TestStore::start().await;
    let label = store_label(&store.config);
    let calls: Vec<_> = (0..50)
        .map(|n| {
            let store = store.store.clone();
            tokio::spawn(async move {
                store.append_to_stream(&format!("c-{n}"), ExpectedVersion::Any, events("E", 1, 1)).await
            })
        })
        .collect();
    for call in calls {
        call.await.unwrap().unwrap();
    }
    let batches = samples(&label, BATCH_APPENDS);
    assert_eq!(batches.iter().sum::<f64>(), 50.0, "every call in exactly one batch: {batches:?}");
    assert!(batches.len() < 50, "concurrent calls share transactions: {batches:?}");
    assert_eq!(samples(&label, BATCH_EVENTS).iter().sum::<f64>(), 50.0);
    assert_eq!(counter(&label, APPENDS, &["outcome=ok"]), 50);

    kill_writer_repeatedly(&store, 1).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while counter(&label, WRITER_RESTARTS, &[]) == 0 {
        assert!(tokio::time::Instant::now() < deadline, "the restart is counted");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    store.append_to_stream("after", ExpectedVersion::NoStream, events("E", 1, 1)).await.unwrap();
    assert_eq!(counter(&label, WRITER_RESTARTS, &[]), 1);
    assert_eq!(counter(&label, APPENDS, &["outcome=ok"]), 51);
}

/// Waits until `check` holds (gauges are set after the actor handled a message, just after it
/// answered it).
async fn eventually(what: &str, check: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !check() {
        assert!(tokio::time::Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn labelled_gauge(store: &str, name: &str, labels: &[&str]) -> f64 {
    f64::from_bits(
        find(registry().get_gauge_handles(), store, name, labels)
            .unwrap_or_else(|| panic!("no gauge {name} {labels:?}"))
            .load(Ordering::SeqCst),
    )
}

#[tokio::test]
async fn a_subscription_shows_its_lag_flight_retries_parks_and_checkpoints() {
    use chronik::metrics::{
        SUBSCRIPTION_CHECKPOINT, SUBSCRIPTION_CHECKPOINT_TIME, SUBSCRIPTION_CHECKPOINT_WRITES, SUBSCRIPTION_CONSUMERS,
        SUBSCRIPTION_IN_FLIGHT, SUBSCRIPTION_LAG, SUBSCRIPTION_PARKED, SUBSCRIPTION_QUEUED, SUBSCRIPTION_RETRIES,
    };
    use chronik::{NackAction, SubscriptionMessage, SubscriptionOptions};
    registry();
    let store = TestStore::start().await;
    let label = store_label(&store.config);
    let of = ["stream=work", "subscription=workers"];
    store.append_to_stream("work", ExpectedVersion::NoStream, events("E", 1, 5)).await.unwrap();
    let options = SubscriptionOptions::default().max_retry_count(1).checkpoint_threshold(1).buffer_size(5);
    let mut sub = store.subscribe_to_stream("work", "workers", options).await.unwrap();
    assert_eq!(next(&mut sub).await, SubscriptionMessage::Subscribed);
    let got = receive(&mut sub, 5).await;
    let g = |name: &str| labelled_gauge(&label, name, &of);
    let c = |name: &str| counter(&label, name, &of);
    eventually("five in flight, none queued, all behind", || {
        (g(SUBSCRIPTION_IN_FLIGHT), g(SUBSCRIPTION_QUEUED), g(SUBSCRIPTION_LAG)) == (5.0, 0.0, 5.0)
    })
    .await;
    assert_eq!(g(SUBSCRIPTION_CONSUMERS), 1.0);

    sub.ack(&got[..2]).await.unwrap();
    eventually("acked 2: checkpoint 2, lag 3, written", || {
        (g(SUBSCRIPTION_CHECKPOINT), g(SUBSCRIPTION_LAG), g(SUBSCRIPTION_IN_FLIGHT)) == (2.0, 3.0, 3.0)
            && c(SUBSCRIPTION_CHECKPOINT_WRITES) >= 1
    })
    .await;
    let written_at = g(SUBSCRIPTION_CHECKPOINT_TIME);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
    assert!((now - written_at).abs() < 30.0, "a Unix time of just now: {written_at}");

    sub.nack(&got[2], NackAction::Retry, "try again").await.unwrap();
    assert_eq!(c(SUBSCRIPTION_RETRIES), 1);
    let again = receive(&mut sub, 1).await;
    assert_eq!(again[0].event_number, 3);
    sub.nack(&again[0], NackAction::Retry, "still failing").await.unwrap();
    assert_eq!((c(SUBSCRIPTION_RETRIES), c(SUBSCRIPTION_PARKED)), (1, 1), "past max_retry_count: parked, not retried");
    sub.ack(&got[3..]).await.unwrap();
    eventually("all done: lag 0, nothing in flight", || {
        (g(SUBSCRIPTION_CHECKPOINT), g(SUBSCRIPTION_LAG), g(SUBSCRIPTION_IN_FLIGHT)) == (5.0, 0.0, 0.0)
    })
    .await;

    store.append_to_stream("work", ExpectedVersion::Exact(5), events("E", 6, 2)).await.unwrap();
    let fresh = receive(&mut sub, 2).await;
    eventually("two new, in flight", || (g(SUBSCRIPTION_LAG), g(SUBSCRIPTION_IN_FLIGHT)) == (2.0, 2.0)).await;
    sub.ack(&fresh).await.unwrap();
    store.unsubscribe_from_stream("work", "workers").await.unwrap();
    eventually("stopped here: zeros but the checkpoint", || {
        (g(SUBSCRIPTION_CONSUMERS), g(SUBSCRIPTION_LAG), g(SUBSCRIPTION_CHECKPOINT)) == (0.0, 0.0, 7.0)
    })
    .await;
}

#[tokio::test]
async fn scavenges_count_what_they_remove() {
    use chronik::StreamMetadata;
    use chronik::metrics::{SCAVENGE_PROGRESS, SCAVENGED};
    registry();
    let store = TestStore::start().await;
    let label = store_label(&store.config);
    for stream in ["keep-2", "keep-3"] {
        store.append_to_stream(stream, ExpectedVersion::NoStream, events("E", 1, 6)).await.unwrap();
    }
    store
        .set_stream_metadata("keep-2", ExpectedVersion::NoStream, StreamMetadata::default().max_count(2))
        .await
        .unwrap();
    store
        .set_stream_metadata("keep-3", ExpectedVersion::NoStream, StreamMetadata::default().max_count(3))
        .await
        .unwrap();
    let planned = store.scavenge_with(chronik::ScavengeOptions::default().dry_run(true)).await.unwrap();
    assert_eq!(planned.events_removed, 7);
    let report = store.scavenge_with(chronik::ScavengeOptions::default().batch_size(2)).await.unwrap();
    assert_eq!(report.events_removed, 7);
    assert_eq!(counter(&label, SCAVENGED, &[]), 7, "a dry run removes nothing and is not counted");
    assert_eq!(gauge(&label, SCAVENGE_PROGRESS), 1.0);
}
