//! Two stores (nodes) on one schema. Each writer remembers what it last saw of the streams it
//! writes (its one-statement fast path); whatever the other node did meanwhile must be noticed.
//! Each node has its own writer, so their transactions really race in the database instead of
//! being serialised by one writer actor; a replay asked for on one node reaches the node running
//! the subscription through the database alone.
//!
//! PostgreSQL only: several stores on one database at once is what these tests are about, and
//! a SQLite store file admits one running store at a time.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chronik::{
    ALL, DeleteMode, Error, EventStore, ExpectedVersion, NackAction, StreamAppend, Subscription, SubscriptionMessage,
    SubscriptionOptions,
};
use common::*;

/// The backend of every store in this binary.
const BACKEND: common::Backend = common::Backend::Postgres;

/// How long a replay asked for on another node may take to reach the subscription.
const REPLAY_REACHES_OWNER: Duration = Duration::from_secs(5);

/// A second store handle on the same schema as `first` (another node).
async fn second_node(first: &TestStore) -> EventStore {
    EventStore::start(first.config.clone()).await.expect("second node starts")
}

/// The `Subscribed` that starts delivery.
async fn subscribed(sub: &mut Subscription) {
    assert_eq!(next(sub).await, SubscriptionMessage::Subscribed);
}

// ---------------------------------------------------------------------------------------------
// what one node's writer remembers

#[tokio::test]
async fn alternating_nodes_append_with_contiguous_versions_and_positions() {
    let a = TestStore::start().await;
    let b = second_node(&a).await;
    for n in 0..20 {
        let ra = a.append_to_stream("shared", ExpectedVersion::Any, events("A", n, 1)).await.unwrap();
        assert_eq!(ra.stream_version, 2 * n + 1);
        let rb = b.append_to_stream("shared", ExpectedVersion::Exact(2 * n + 1), events("B", n, 1)).await.unwrap();
        assert_eq!((rb.stream_version, rb.first_position), (2 * n + 2, 2 * n + 2));
    }
    let read = a.read_stream_forward("shared", 0, 100).await.unwrap();
    assert_eq!(read.iter().map(|e| e.stream_version).collect::<Vec<_>>(), (1..=40).collect::<Vec<_>>());
    // A node whose memory is stale still checks expected versions against the real stream.
    let err = a.append_to_stream("shared", ExpectedVersion::Exact(39), events("A", 99, 1)).await.unwrap_err();
    assert!(matches!(err, Error::WrongExpectedVersion { expected: 39, actual: 40 }), "{err}");
    b.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_stream_soft_deleted_by_another_node_rejects_the_next_append() {
    let a = TestStore::start().await;
    let b = second_node(&a).await;
    a.append_to_stream("s", ExpectedVersion::NoStream, events("E", 1, 1)).await.unwrap();
    a.append_to_stream("s", ExpectedVersion::Exact(1), events("E", 2, 1)).await.unwrap();
    b.delete_stream("s", ExpectedVersion::Exact(2), DeleteMode::Soft).await.unwrap();
    let err = a.append_to_stream("s", ExpectedVersion::Any, events("E", 3, 1)).await.unwrap_err();
    assert!(matches!(err, Error::StreamDeleted), "{err}");
    assert_eq!(a.read_all_forward(0, 10).await.unwrap().len(), 2);
    b.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_stream_deleted_recreatably_by_another_node_is_absent_to_the_next_append() {
    let a = TestStore::start().await;
    let b = second_node(&a).await;
    // The second append goes through `a`'s fast path: its writer remembers the stream.
    a.append_to_stream("s", ExpectedVersion::NoStream, events("E", 1, 2)).await.unwrap();
    a.append_to_stream("s", ExpectedVersion::Exact(2), events("E", 3, 1)).await.unwrap();
    b.delete_stream("s", ExpectedVersion::Exact(3), DeleteMode::Recreatable).await.unwrap();

    let err = a.append_to_stream("s", ExpectedVersion::StreamExists, events("E", 4, 1)).await.unwrap_err();
    assert!(matches!(err, Error::StreamNotFound), "{err}");
    let err = a
        .append_to_streams(vec![StreamAppend::new("s", ExpectedVersion::Exact(3), events("E", 4, 1))])
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::AppendFailed { stream, source }
            if stream == "s" && matches!(**source, Error::WrongExpectedVersion { expected: 3, actual: 0 })),
        "{err}"
    );
    assert_eq!(a.read_all_forward(0, 10).await.unwrap().len(), 3);
    // It is absent, and its numbering continues.
    let r = a.append_to_stream("s", ExpectedVersion::NoStream, events("E", 4, 1)).await.unwrap();
    assert_eq!((r.stream_version, r.first_position), (4, 4));
    b.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_stream_hard_deleted_by_another_node_starts_over_at_version_one() {
    let a = TestStore::start_with(|c| c.enable_hard_deletes(true)).await;
    let b = second_node(&a).await;
    a.append_to_stream("s", ExpectedVersion::NoStream, events("E", 1, 2)).await.unwrap();
    a.append_to_stream("s", ExpectedVersion::Exact(2), events("E", 3, 1)).await.unwrap();
    b.delete_stream("s", ExpectedVersion::Any, DeleteMode::Hard).await.unwrap();
    let r = a.append_to_stream("s", ExpectedVersion::Any, events("E", 4, 1)).await.unwrap();
    assert_eq!((r.stream_version, r.first_position), (1, 4));
    let err = a.append_to_stream("s", ExpectedVersion::Exact(3), events("E", 5, 1)).await.unwrap_err();
    assert!(matches!(err, Error::WrongExpectedVersion { expected: 3, actual: 1 }), "{err}");
    b.shutdown().await.unwrap();
}

#[tokio::test]
async fn an_event_id_stored_by_another_node_is_a_duplicate() {
    let a = TestStore::start().await;
    let b = second_node(&a).await;
    a.append_to_stream("s", ExpectedVersion::NoStream, events("E", 1, 1)).await.unwrap();
    let shared = event("E", 2);
    b.append_to_stream("other", ExpectedVersion::NoStream, vec![shared.clone()]).await.unwrap();
    let err = a.append_to_stream("s", ExpectedVersion::Exact(1), vec![shared.clone()]).await.unwrap_err();
    assert!(matches!(err, Error::DuplicateEvent(id) if id == shared.event_id), "{err}");
    assert_eq!(a.stream_info("s").await.unwrap().stream_version, 1);
    b.shutdown().await.unwrap();
}

// ---------------------------------------------------------------------------------------------
// appends racing in the database

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_exact_appends_from_two_nodes_let_exactly_one_win() {
    let store = TestStore::start().await;
    let other = second_node(&store).await;
    seeded(&store, "race", 2).await;
    let tasks: Vec<_> = (0..20u64)
        .map(|i| {
            let node = if i % 2 == 0 { store.store.clone() } else { other.clone() };
            tokio::spawn(async move {
                node.append_to_stream("race", ExpectedVersion::Exact(2), events("Raced", 100 + i * 10, 2)).await
            })
        })
        .collect();
    let mut winners = Vec::new();
    for (i, task) in tasks.into_iter().enumerate() {
        match task.await.unwrap() {
            Ok(r) => {
                assert_eq!((r.stream_version, r.first_position, r.last_position), (4, 3, 4));
                winners.push(100 + i as u64 * 10);
            }
            Err(Error::WrongExpectedVersion { expected: 2, actual: 4 }) => {}
            Err(e) => panic!("loser {i} must see WrongExpectedVersion {{ 2, 4 }}, got {e:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one append wins");
    assert_stream_holds(&store, "race", &[1, 2, winners[0], winners[0] + 1]).await;
    assert_all_holds(&store, 4).await;
    other.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_of_all_never_see_a_gap_while_two_nodes_append() {
    const WRITERS: u64 = 8;
    const APPENDS: u64 = 30;
    let store = TestStore::start().await;
    let other = second_node(&store).await;
    let done = Arc::new(AtomicBool::new(false));

    let readers: Vec<_> = [store.store.clone(), other.clone()]
        .into_iter()
        .map(|node| {
            let done = Arc::clone(&done);
            tokio::spawn(async move {
                let mut last_k = 0;
                loop {
                    let finished = done.load(Ordering::SeqCst);
                    let all = node.read_all_forward(0, 1_000_000).await.expect("read $all");
                    let k = all.len() as u64;
                    assert_eq!(positions(&all), (1..=k).collect::<Vec<_>>(), "$all must be exactly 1..={k}");
                    assert!(k >= last_k, "$all shrank from {last_k} to {k}");
                    last_k = k;
                    if finished {
                        return last_k;
                    }
                }
            })
        })
        .collect();

    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let node = if w % 2 == 0 { store.store.clone() } else { other.clone() };
            tokio::spawn(async move {
                for i in 0..APPENDS {
                    let stream = format!("g-{}", (w + i) % 5);
                    let batch = events("G", w * 1_000 + i * 10, 1 + (i % 2));
                    node.append_to_stream(&stream, ExpectedVersion::Any, batch).await.expect("append");
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
    done.store(true, Ordering::SeqCst);

    let expected_total: u64 = WRITERS * (0..APPENDS).map(|i| 1 + (i % 2)).sum::<u64>();
    for reader in readers {
        assert_eq!(reader.await.unwrap(), expected_total);
    }
    assert_all_holds(&store, expected_total).await;
    for s in 0..5 {
        let evs = stream_events(&store, &format!("g-{s}")).await;
        assert_eq!(versions(&evs), (1..=evs.len() as u64).collect::<Vec<_>>(), "g-{s} versions contiguous");
    }
    other.shutdown().await.unwrap();
}

// ---------------------------------------------------------------------------------------------
// subscriptions

#[tokio::test]
async fn a_replay_asked_for_on_another_node_reaches_the_node_running_the_subscription() {
    let first = quick_store().await;
    first.append_to_stream("a", ExpectedVersion::NoStream, events("E", 1, 3)).await.unwrap();
    let mut sub = first.subscribe_to_all_streams("s", SubscriptionOptions::default()).await.unwrap();
    subscribed(&mut sub).await;
    let batch = next_batch(&mut sub).await;
    assert_eq!(numbers(&batch), vec![1, 2, 3]);
    sub.nack(&batch[0], NackAction::Park, "bad one").await.unwrap();
    sub.nack(&batch[2], NackAction::Park, "bad three").await.unwrap();
    sub.ack(&batch[1..2]).await.unwrap();
    assert_checkpoint(&first.store, ALL, "s", 3, "1 and 3 parked, 2 acked").await;

    // Another process (the CLI, another node) asks; only the database connects them.
    let second = EventStore::start(first.config.clone()).await.expect("second node starts");
    assert_eq!(second.replay_parked(ALL, "s").await.unwrap(), 2);
    let got = tokio::time::timeout(REPLAY_REACHES_OWNER, receive(&mut sub, 2))
        .await
        .expect("the replay reaches the subscription's node");
    assert_eq!(numbers(&got), vec![1, 3]);
    sub.ack(&got).await.unwrap();
    assert_no_parked_events(&second, ALL, "s", "acked after its replay").await;
    second.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_checkpoint_cannot_be_moved_while_another_node_runs_the_subscription() {
    let first = quick_store().await;
    first.append_to_stream("a", ExpectedVersion::NoStream, events("E", 1, 3)).await.unwrap();
    let mut sub = first.subscribe_to_all_streams("s", SubscriptionOptions::default()).await.unwrap();
    subscribed(&mut sub).await;
    let second = second_node(&first).await;
    let err = second.set_subscription_checkpoint(ALL, "s", 2).await.unwrap_err();
    assert!(matches!(err, Error::SubscriptionInUse), "{err}");

    sub.unsubscribe().await.unwrap();
    second.set_subscription_checkpoint(ALL, "s", 2).await.expect("nobody runs it now");
    let mut again = first.subscribe_to_all_streams("s", SubscriptionOptions::default()).await.unwrap();
    subscribed(&mut again).await;
    assert_eq!(numbers(&next_batch(&mut again).await), vec![3]);
    second.shutdown().await.unwrap();
}

#[tokio::test]
async fn settings_updated_on_another_node_reach_the_node_running_the_subscription() {
    let first = quick_store().await;
    first.append_to_stream("a", ExpectedVersion::NoStream, events("E", 1, 30)).await.unwrap();
    let options = SubscriptionOptions::default().buffer_size(10);
    let mut sub = first.subscribe_to_all_streams("s", options.clone()).await.unwrap();
    subscribed(&mut sub).await;
    let held = next_batch(&mut sub).await;
    assert_eq!(held.len(), 10);

    // Another node changes the settings; only the database connects them.
    let second = second_node(&first).await;
    second.update_subscription(ALL, "s", options.buffer_size(2).max_retry_count(3)).await.unwrap();
    let stored = second.subscription_info(ALL, "s").await.unwrap();
    assert!(stored.live.is_none(), "the second node does not run it");
    assert_eq!(stored.settings.as_ref().map(|s| (s.buffer_size, s.max_retry_count)), Some((2, 3)));
    let deadline = tokio::time::Instant::now() + REPLAY_REACHES_OWNER;
    loop {
        let live = first.subscription_info(ALL, "s").await.unwrap().live.expect("the first node runs it");
        if live.settings.buffer_size == 2 {
            assert_eq!(live.settings.max_retry_count, 3);
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the change did not reach the owner: {:?}", live.settings);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    sub.ack(&held).await.unwrap();
    let mut got = held.len();
    while got < 30 {
        let batch = next_batch(&mut sub).await;
        assert!(batch.len() <= 2, "a batch of {} over the buffer_size set on the other node", batch.len());
        sub.ack(&batch).await.unwrap();
        got += batch.len();
    }
    second.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_node_taking_over_runs_the_stored_settings_not_its_subscribers() {
    let first = quick_store().await;
    first.append_to_stream("a", ExpectedVersion::NoStream, events("E", 1, 6)).await.unwrap();
    let created = SubscriptionOptions::default().buffer_size(2).concurrency_limit(2);
    let mut on_first = first.subscribe_to_all_streams("s", created.clone()).await.unwrap();
    subscribed(&mut on_first).await;
    let second = second_node(&first).await;
    let mut on_second = second.subscribe_to_all_streams("s", SubscriptionOptions::default()).await.unwrap();
    let _also_on_second = second.subscribe_to_all_streams("s", SubscriptionOptions::default()).await.unwrap();

    on_first.unsubscribe().await.unwrap();
    subscribed(&mut on_second).await;
    let live = second.subscription_info(ALL, "s").await.unwrap().live.expect("the second node took it over");
    assert_eq!(live.settings, created);
    assert!(next_batch(&mut on_second).await.len() <= 2);
    second.shutdown().await.unwrap();
}
