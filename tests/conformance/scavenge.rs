//! Scavenging: what retention hides leaves the database, and nothing else does; a dry run only
//! measures; links go with the events they point at; it is safe beside writers and
//! subscriptions, and a scavenge stopped half-way is finished by the next one.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use crate::common::{TestStore, WAIT, event, events, n_of, next, numbers, positions, quick_store, versions};
use chronik::{
    DeleteMode, Error, EventStore, ExpectedVersion, RecordedEvent, ScavengeOptions, ScavengeReport, StreamMetadata,
    SubscriptionMessage, SubscriptionOptions,
};

async fn fill(store: &EventStore, stream: &str, count: u64) {
    store.append_to_stream(stream, ExpectedVersion::Any, events("E", 1, count)).await.expect("append");
}

async fn set(store: &EventStore, stream: &str, meta: StreamMetadata) {
    store.set_stream_metadata(stream, ExpectedVersion::Any, meta).await.expect("set metadata");
}

async fn all(store: &EventStore) -> Vec<RecordedEvent> {
    store.read_all_forward(0, 1_000_000).await.expect("read $all")
}

async fn stream_versions(store: &EventStore, stream: &str) -> Vec<u64> {
    versions(&store.read_stream_forward(stream, 0, 1_000_000).await.expect("read stream"))
}

/// `(stream, version)` of every event in `$all`.
async fn stored(store: &EventStore) -> BTreeSet<(String, u64)> {
    all(store).await.into_iter().map(|e| (e.stream_uuid, e.stream_version)).collect()
}

fn range(stream: &str, from: u64, to: u64) -> Vec<(String, u64)> {
    (from..=to).map(|v| (stream.to_string(), v)).collect()
}

/// A scavenge that keeps being refused while another one lets go of the store.
async fn scavenge_when_free(store: &EventStore) -> ScavengeReport {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match store.scavenge().await {
            Err(Error::Unavailable(m)) if m.contains("already running") && tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            other => return other.expect("scavenge"),
        }
    }
}

/// Streams with every kind of retention, and their expected survivors in `$all`.
async fn mixed_store(store: &EventStore) -> BTreeSet<(String, u64)> {
    fill(store, "count", 10).await;
    set(store, "count", StreamMetadata::default().max_count(2)).await;
    fill(store, "truncated", 6).await;
    set(store, "truncated", StreamMetadata::default().truncate_before(4)).await;
    fill(store, "plain", 5).await;
    set(store, "plain", StreamMetadata::default().custom(serde_json::json!({ "owner": "x" }))).await;
    fill(store, "recreated", 3).await;
    store.delete_stream("recreated", ExpectedVersion::Any, DeleteMode::Recreatable).await.unwrap();
    store.append_to_stream("recreated", ExpectedVersion::NoStream, vec![event("E", 4)]).await.unwrap();
    fill(store, "tombstone", 2).await;
    store.delete_stream("tombstone", ExpectedVersion::Any, DeleteMode::Soft).await.unwrap();
    let mut survivors = BTreeSet::new();
    survivors.extend(range("count", 9, 10));
    survivors.extend(range("truncated", 4, 6));
    survivors.extend(range("plain", 1, 5));
    survivors.extend(range("recreated", 4, 4));
    survivors.extend(range("tombstone", 1, 2));
    survivors
}

#[tokio::test]
async fn a_scavenge_removes_exactly_what_retention_hides() {
    let store = TestStore::start().await;
    let survivors = mixed_store(&store).await;
    let head = store.stream_info(chronik::ALL).await.unwrap().stream_version;
    assert_eq!(head, 27);

    let planned = store.scavenge_with(ScavengeOptions::default().dry_run(true)).await.unwrap();
    assert!(planned.dry_run);
    assert_eq!(planned.events_removed, 8 + 3 + 3, "max_count, truncate_before, recreatable delete");
    assert_eq!(all(&store).await.len(), 27, "a dry run removes nothing");

    let done = store.scavenge().await.unwrap();
    assert_eq!((done.dry_run, done.events_removed, done.links_removed), (false, 14, 0));
    assert_eq!(done.streams_scanned, 3, "the streams whose retention can hide something");
    assert_eq!(done.bytes_removed, planned.bytes_removed);
    assert!(done.bytes_removed >= 14 * 7, "at least the {{\"n\":..}} payloads: {}", done.bytes_removed);
    assert_eq!(stored(&store).await, survivors, "nothing invisible remains, nothing readable is gone");
    assert_eq!(stream_versions(&store, "count").await, vec![9, 10]);
    assert_eq!(stream_versions(&store, "truncated").await, vec![4, 5, 6]);
    assert_eq!(stream_versions(&store, "recreated").await, vec![4]);
    assert!(matches!(store.read_stream_forward("tombstone", 0, 10).await, Err(Error::StreamDeleted)));

    let again = store.scavenge().await.unwrap();
    assert_eq!(again.events_removed, 0, "nothing left to remove");
    let r = store.append_to_stream("count", ExpectedVersion::Exact(10), vec![event("E", 11)]).await.unwrap();
    assert_eq!((r.stream_version, r.first_position), (11, head + 1), "versions and positions are never reused");
    assert_eq!(stream_versions(&store, "count").await, vec![10, 11]);
}

#[tokio::test]
async fn a_scavenge_removes_expired_events() {
    let store = TestStore::start().await;
    fill(&store, "s", 3).await;
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    fill(&store, "s", 2).await;
    let before = store.read_stream_forward("s", 0, 10).await.unwrap();
    let gap = before[3].created_at - before[2].created_at;
    let age = chrono::Utc::now() - (before[2].created_at + gap / 2);
    set(&store, "s", StreamMetadata::default().max_age(age.to_std().unwrap())).await;
    let done = store.scavenge().await.unwrap();
    assert_eq!(done.events_removed, 3);
    assert_eq!(stored(&store).await, range("s", 4, 5).into_iter().collect());
}

#[tokio::test]
async fn links_go_with_the_events_they_point_at_and_with_their_own_retention() {
    let store = TestStore::start().await;
    fill(&store, "src", 4).await;
    let source = store.read_stream_forward("src", 0, 10).await.unwrap();
    store.link_to_stream("all-links", ExpectedVersion::Any, &source).await.unwrap();
    store.link_to_stream("few-links", ExpectedVersion::Any, &source).await.unwrap();
    set(&store, "src", StreamMetadata::default().max_count(3)).await;
    set(&store, "few-links", StreamMetadata::default().max_count(1)).await;

    let planned = store.scavenge_with(ScavengeOptions::default().dry_run(true)).await.unwrap();
    let done = store.scavenge().await.unwrap();
    // src loses event 1; the links to it go from both streams; few-links also loses its links 2, 3.
    assert_eq!((done.events_removed, done.links_removed), (1, 4));
    assert_eq!((planned.events_removed, planned.links_removed), (1, 4));
    let all_links = store.read_stream_forward("all-links", 0, 10).await.unwrap();
    assert_eq!(numbers(&all_links), vec![2, 3, 4], "a link to a removed event leaves a hole, never a renumbering");
    assert_eq!(all_links.iter().map(n_of).collect::<Vec<_>>(), vec![2, 3, 4]);
    assert_eq!(numbers(&store.read_stream_forward("few-links", 0, 10).await.unwrap()), vec![4]);
    assert_eq!(store.scavenge().await.unwrap().links_removed, 0);
}

#[tokio::test]
async fn only_one_scavenge_of_a_store_runs_at_a_time() {
    let store = TestStore::start().await;
    for i in 0..20 {
        fill(&store, &format!("s-{i}"), 30).await;
        set(&store, &format!("s-{i}"), StreamMetadata::default().max_count(1)).await;
    }
    let progressed = Arc::new(tokio::sync::Notify::new());
    let signal = progressed.clone();
    let options = ScavengeOptions::default().batch_size(5).on_progress(move |_| signal.notify_one());
    let mut first = Box::pin(store.scavenge_with(options));
    tokio::select! {
        outcome = &mut first => panic!("the first scavenge ended before reporting progress: {outcome:?}"),
        () = progressed.notified() => {}
    }
    // The first one is under way (suspended between two steps, holding the store).
    match store.scavenge().await {
        Err(Error::Unavailable(message)) => assert!(message.contains("already running"), "{message}"),
        other => panic!("a second scavenge must be refused, got {other:?}"),
    }
    let report = first.await.unwrap();
    assert_eq!(report.events_removed, 20 * 29);
    assert_eq!(store.scavenge().await.unwrap().events_removed, 0, "the store is free again");
}

#[tokio::test]
async fn a_scavenge_stopped_half_way_is_finished_by_the_next_one() {
    let store = TestStore::start().await;
    for i in 0..10 {
        fill(&store, &format!("s-{i}"), 50).await;
        set(&store, &format!("s-{i}"), StreamMetadata::default().max_count(5)).await;
    }
    let batches = Arc::new(AtomicU64::new(0));
    let progressed = Arc::new(tokio::sync::Notify::new());
    let (count, signal) = (batches.clone(), progressed.clone());
    let options = ScavengeOptions::default().batch_size(20).on_progress(move |p| {
        if p.events_removed > 0 {
            count.fetch_add(1, Ordering::SeqCst);
            signal.notify_one();
        }
    });
    let mut scavenge = Box::pin(store.scavenge_with(options));
    while batches.load(Ordering::SeqCst) < 3 {
        tokio::select! {
            outcome = &mut scavenge => panic!("the scavenge ended before it was stopped: {outcome:?}"),
            () = progressed.notified() => {}
        }
    }
    // Killed: the future is dropped wherever it is (possibly inside its next transaction).
    drop(scavenge);
    let half = all(&store).await.len() as u64;
    assert!(half < 500 && half > 50, "stopped half-way: {half} events left");

    let rest = scavenge_when_free(&store).await;
    // The dropped scavenge's last transaction may have been committing when it was dropped,
    // and commit after `half` was counted: at most one batch (20) less is left to remove.
    let left = half - 50;
    assert!(
        (left.saturating_sub(20)..=left).contains(&rest.events_removed),
        "the next scavenge removes the rest: {} of {left}",
        rest.events_removed
    );
    let mut expected = BTreeSet::new();
    for i in 0..10 {
        expected.extend(range(&format!("s-{i}"), 46, 50));
    }
    assert_eq!(stored(&store).await, expected);
}

#[tokio::test]
async fn a_scavenge_beside_writers_and_subscriptions_loses_nothing_readable() {
    let store = quick_store().await;
    const STREAMS: usize = 6;
    const KEEP: u64 = 5;
    for i in 0..STREAMS {
        set(&store, &format!("s-{i}"), StreamMetadata::default().max_count(KEEP)).await;
    }
    // A named subscription on one stream, acking everything it gets, and one on $all.
    let mut on_stream = store.subscribe_to_stream("s-0", "proj", SubscriptionOptions::default()).await.unwrap();
    let mut on_all = store.subscribe_to_all_streams("all", SubscriptionOptions::default()).await.unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..STREAMS)
        .map(|i| {
            let (store, stop) = (store.store.clone(), stop.clone());
            tokio::spawn(async move {
                let mut n = 0;
                while !stop.load(Ordering::SeqCst) {
                    n += 1;
                    store.append_to_stream(&format!("s-{i}"), ExpectedVersion::Any, events("E", n, 3)).await.unwrap();
                }
            })
        })
        .collect();
    let consumer = |mut sub: chronik::Subscription, stop: Arc<AtomicBool>| {
        tokio::spawn(async move {
            let mut got: Vec<RecordedEvent> = Vec::new();
            loop {
                let msg = tokio::time::timeout(Duration::from_millis(500), sub.recv()).await;
                match msg {
                    Ok(Some(SubscriptionMessage::Events(batch))) => {
                        sub.ack(&batch).await.unwrap();
                        got.extend(batch);
                    }
                    Ok(Some(SubscriptionMessage::Dropped(reason))) => panic!("dropped: {reason}"),
                    Ok(Some(_)) => {}
                    Ok(None) => panic!("closed"),
                    Err(_) if stop.load(Ordering::SeqCst) => return got,
                    Err(_) => {}
                }
            }
        })
    };
    assert!(matches!(next(&mut on_stream).await, SubscriptionMessage::Subscribed));
    assert!(matches!(next(&mut on_all).await, SubscriptionMessage::Subscribed));
    let stream_consumer = consumer(on_stream, stop.clone());
    let all_consumer = consumer(on_all, stop.clone());
    let mut removed = 0;
    for _ in 0..8 {
        removed += scavenge_when_free(&store).await.events_removed;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, Ordering::SeqCst);
    for writer in writers {
        writer.await.unwrap();
    }
    removed += store.scavenge().await.unwrap().events_removed;
    assert!(removed > 0, "the scavenges removed something while the writers ran");

    // Every stream holds exactly its newest KEEP events, and $all exactly those.
    let mut expected = BTreeSet::new();
    let mut heads = BTreeMap::new();
    for i in 0..STREAMS {
        let stream = format!("s-{i}");
        let head = store.stream_info(&stream).await.unwrap().stream_version;
        assert_eq!(stream_versions(&store, &stream).await, (head - KEEP + 1..=head).collect::<Vec<_>>(), "{stream}");
        expected.extend(range(&stream, head - KEEP + 1, head));
        heads.insert(stream, head);
    }
    let everything = all(&store).await;
    assert_eq!(everything.iter().map(|e| (e.stream_uuid.clone(), e.stream_version)).collect::<BTreeSet<_>>(), expected);
    let pos = positions(&everything);
    assert!(pos.windows(2).all(|w| w[0] < w[1]), "positions increase and are unique");
    let total: u64 = heads.values().sum();
    assert_eq!(store.stream_info(chronik::ALL).await.unwrap().stream_version, total, "no position reused");

    // The subscriptions got events in order, and every event still stored.
    let on_stream = stream_consumer.await.unwrap();
    let on_all = all_consumer.await.unwrap();
    let stream_numbers = numbers(&on_stream);
    assert!(stream_numbers.windows(2).all(|w| w[0] < w[1]), "in order per stream");
    let head0 = heads["s-0"];
    assert!(
        (head0 - KEEP + 1..=head0).all(|v| stream_numbers.contains(&v)),
        "the stream subscription got every readable event"
    );
    let all_numbers: BTreeSet<u64> = numbers(&on_all).into_iter().collect();
    assert!(pos.iter().all(|p| all_numbers.contains(p)), "the $all subscription got every event still stored");
}

#[tokio::test]
async fn with_a_scavenge_interval_the_store_scavenges_by_itself() {
    let store = TestStore::start_with(|c| c.scavenge_interval(Duration::from_millis(100))).await;
    fill(&store, "s", 10).await;
    set(&store, "s", StreamMetadata::default().max_count(3)).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    while all(&store).await.len() > 3 {
        assert!(tokio::time::Instant::now() < deadline, "the scheduled scavenge did not run");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(stored(&store).await, range("s", 8, 10).into_iter().collect());
    store.shutdown().await.unwrap();
}
