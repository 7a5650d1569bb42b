//! Appending: expected-version rules, concurrency, global positions, duplicates, input
//! validation and payload round trips. Races between two nodes (two stores on one database)
//! are in `two_nodes.rs`, PostgreSQL only.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::common::{
    TestStore, all_events, assert_all_holds, assert_stream_holds, event, events, n_of, positions, seeded,
    stream_events, versions,
};
use chronik::{
    ALL, BINCODE_CONTENT_TYPE, DeleteMode, Error, EventData, EventStore, ExpectedVersion, JSON_CONTENT_TYPE,
    MAX_STREAM_ID_BYTES, Serializer,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

// ---------------------------------------------------------------------------------------------
// helpers

async fn assert_stream_absent(store: &EventStore, stream: &str) {
    assert!(matches!(store.stream_info(stream).await, Err(Error::StreamNotFound)), "{stream} must not exist");
    assert!(matches!(store.read_stream_forward(stream, 0, 10).await, Err(Error::StreamNotFound)));
}

/// Asserts `result` is `InvalidArgument` whose message names every one of `words`.
fn assert_invalid<T: std::fmt::Debug>(result: chronik::Result<T>, words: &[&str]) {
    match result {
        Err(Error::InvalidArgument(message)) => {
            let lower = message.to_lowercase();
            for word in words {
                assert!(lower.contains(&word.to_lowercase()), "message {message:?} should mention {word:?}");
            }
        }
        other => panic!("expected InvalidArgument mentioning {words:?}, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// expected version on a fresh stream

#[tokio::test]
async fn append_with_any_to_a_fresh_stream_creates_it_at_version_one() {
    let store = TestStore::start().await;
    let r = store.append_to_stream("acc-1", ExpectedVersion::Any, vec![event("Opened", 1)]).await.unwrap();
    assert_eq!((r.stream_version, r.first_position, r.last_position), (1, 1, 1));
    assert_stream_holds(&store, "acc-1", &[1]).await;
    assert_all_holds(&store, 1).await;
}

#[tokio::test]
async fn append_with_no_stream_to_a_fresh_stream_creates_it() {
    let store = TestStore::start().await;
    let r = store.append_to_stream("acc-1", ExpectedVersion::NoStream, events("Opened", 1, 3)).await.unwrap();
    assert_eq!((r.stream_version, r.first_position, r.last_position), (3, 1, 3));
    assert_stream_holds(&store, "acc-1", &[1, 2, 3]).await;
    assert_all_holds(&store, 3).await;
}

#[tokio::test]
async fn append_with_exact_zero_to_a_fresh_stream_creates_it() {
    let store = TestStore::start().await;
    let r = store.append_to_stream("acc-1", ExpectedVersion::Exact(0), events("Opened", 1, 2)).await.unwrap();
    assert_eq!((r.stream_version, r.first_position, r.last_position), (2, 1, 2));
    assert_stream_holds(&store, "acc-1", &[1, 2]).await;
}

#[tokio::test]
async fn append_with_stream_exists_to_a_fresh_stream_is_stream_not_found_and_writes_nothing() {
    let store = TestStore::start().await;
    let r = store.append_to_stream("acc-1", ExpectedVersion::StreamExists, vec![event("E", 1)]).await;
    assert!(matches!(r, Err(Error::StreamNotFound)), "got {r:?}");
    assert_stream_absent(&store, "acc-1").await;
    assert_all_holds(&store, 0).await;
}

#[tokio::test]
async fn append_with_exact_nonzero_to_a_fresh_stream_is_wrong_expected_version_and_writes_nothing() {
    let store = TestStore::start().await;
    for n in [1, 5] {
        let r = store.append_to_stream("acc-1", ExpectedVersion::Exact(n), vec![event("E", 1)]).await;
        assert!(
            matches!(r, Err(Error::WrongExpectedVersion { expected, actual: 0 }) if expected == n),
            "Exact({n}) on a fresh stream: got {r:?}"
        );
    }
    assert_stream_absent(&store, "acc-1").await;
    assert_all_holds(&store, 0).await;
}

// ---------------------------------------------------------------------------------------------
// expected version on an existing stream

#[tokio::test]
async fn append_with_any_to_an_existing_stream_appends_after_its_last_version() {
    let store = TestStore::start().await;
    seeded(&store, "acc-1", 2).await;
    let r = store.append_to_stream("acc-1", ExpectedVersion::Any, events("E", 3, 2)).await.unwrap();
    assert_eq!((r.stream_version, r.first_position, r.last_position), (4, 3, 4));
    assert_stream_holds(&store, "acc-1", &[1, 2, 3, 4]).await;
}

#[tokio::test]
async fn append_with_stream_exists_to_an_existing_stream_appends() {
    let store = TestStore::start().await;
    seeded(&store, "acc-1", 1).await;
    let r = store.append_to_stream("acc-1", ExpectedVersion::StreamExists, vec![event("E", 2)]).await.unwrap();
    assert_eq!((r.stream_version, r.first_position, r.last_position), (2, 2, 2));
    assert_stream_holds(&store, "acc-1", &[1, 2]).await;
}

#[tokio::test]
async fn append_with_matching_exact_version_appends() {
    let store = TestStore::start().await;
    seeded(&store, "acc-1", 3).await;
    let r = store.append_to_stream("acc-1", ExpectedVersion::Exact(3), events("E", 4, 2)).await.unwrap();
    assert_eq!((r.stream_version, r.first_position, r.last_position), (5, 4, 5));
    let r = store.append_to_stream("acc-1", ExpectedVersion::Exact(5), vec![event("E", 6)]).await.unwrap();
    assert_eq!(r.stream_version, 6);
    assert_stream_holds(&store, "acc-1", &[1, 2, 3, 4, 5, 6]).await;
}

#[tokio::test]
async fn append_with_no_stream_to_an_existing_stream_is_stream_exists_and_writes_nothing() {
    let store = TestStore::start().await;
    seeded(&store, "acc-1", 2).await;
    let r = store.append_to_stream("acc-1", ExpectedVersion::NoStream, vec![event("E", 3)]).await;
    assert!(matches!(r, Err(Error::StreamExists)), "got {r:?}");
    assert_stream_holds(&store, "acc-1", &[1, 2]).await;
    assert_all_holds(&store, 2).await;
}

#[tokio::test]
async fn append_with_stale_expected_version_is_rejected() {
    let store = TestStore::start().await;
    seeded(&store, "acc-1", 3).await;
    for stale in [0, 1, 2, 4, 100] {
        let r = store.append_to_stream("acc-1", ExpectedVersion::Exact(stale), events("E", 10, 2)).await;
        assert!(
            matches!(r, Err(Error::WrongExpectedVersion { expected, actual: 3 }) if expected == stale),
            "Exact({stale}) at version 3: got {r:?}"
        );
    }
    assert_stream_holds(&store, "acc-1", &[1, 2, 3]).await;
    assert_all_holds(&store, 3).await;
}

#[tokio::test]
async fn rejected_appends_do_not_consume_global_positions() {
    let store = TestStore::start().await;
    seeded(&store, "a", 1).await;
    assert!(store.append_to_stream("a", ExpectedVersion::NoStream, vec![event("E", 9)]).await.is_err());
    assert!(store.append_to_stream("b", ExpectedVersion::StreamExists, vec![event("E", 9)]).await.is_err());
    assert!(store.append_to_stream("a", ExpectedVersion::Exact(7), vec![event("E", 9)]).await.is_err());
    let r = store.append_to_stream("b", ExpectedVersion::NoStream, vec![event("E", 1)]).await.unwrap();
    assert_eq!((r.stream_version, r.first_position, r.last_position), (1, 2, 2));
    assert_all_holds(&store, 2).await;
}

#[tokio::test]
async fn append_to_a_soft_deleted_stream_is_stream_deleted_whatever_the_expected_version() {
    let store = TestStore::start().await;
    seeded(&store, "acc-1", 2).await;
    store.delete_stream("acc-1", ExpectedVersion::Exact(2), DeleteMode::Soft).await.unwrap();
    for expected in [
        ExpectedVersion::Any,
        ExpectedVersion::NoStream,
        ExpectedVersion::StreamExists,
        ExpectedVersion::Exact(0),
        ExpectedVersion::Exact(2),
    ] {
        let r = store.append_to_stream("acc-1", expected, vec![event("E", 3)]).await;
        assert!(matches!(r, Err(Error::StreamDeleted)), "{expected:?}: got {r:?}");
    }
    // Its events stay in $all, and nothing was added.
    assert_all_holds(&store, 2).await;
}

// ---------------------------------------------------------------------------------------------
// concurrency

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_with_the_same_exact_version_let_exactly_one_win() {
    let store = TestStore::start().await;
    seeded(&store, "race", 3).await;
    let tasks: Vec<_> = (0..20u64)
        .map(|i| {
            let store = store.store.clone();
            tokio::spawn(async move {
                store.append_to_stream("race", ExpectedVersion::Exact(3), vec![event("Raced", 100 + i)]).await
            })
        })
        .collect();
    let mut winners = Vec::new();
    for (i, task) in tasks.into_iter().enumerate() {
        match task.await.unwrap() {
            Ok(r) => {
                assert_eq!((r.stream_version, r.first_position, r.last_position), (4, 4, 4));
                winners.push(100 + i as u64);
            }
            Err(Error::WrongExpectedVersion { expected: 3, actual: 4 }) => {}
            Err(e) => panic!("loser {i} must see WrongExpectedVersion {{ 3, 4 }}, got {e:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one append wins");
    assert_stream_holds(&store, "race", &[1, 2, 3, winners[0]]).await;
    assert_all_holds(&store, 4).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_any_appends_all_succeed_with_contiguous_versions() {
    let store = TestStore::start().await;
    let tasks: Vec<_> = (1..=20u64)
        .map(|i| {
            let store = store.store.clone();
            tokio::spawn(async move { store.append_to_stream("busy", ExpectedVersion::Any, vec![event("E", i)]).await })
        })
        .collect();
    let mut versions_returned = Vec::new();
    for task in tasks {
        let r = task.await.unwrap().expect("every Any append succeeds");
        assert_eq!(r.first_position, r.last_position);
        versions_returned.push(r.stream_version);
    }
    versions_returned.sort_unstable();
    assert_eq!(versions_returned, (1..=20).collect::<Vec<_>>(), "each append got its own version");

    let evs = stream_events(&store, "busy").await;
    assert_eq!(versions(&evs), (1..=20).collect::<Vec<_>>());
    let mut ns: Vec<u64> = evs.iter().map(n_of).collect();
    ns.sort_unstable();
    assert_eq!(ns, (1..=20).collect::<Vec<_>>(), "each event stored exactly once");
    assert_all_holds(&store, 20).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_sharing_an_event_id_store_it_only_once() {
    let store = TestStore::start().await;
    let shared = Uuid::new_v4();
    let tasks: Vec<_> = (0..10u64)
        .map(|i| {
            let store = store.store.clone();
            tokio::spawn(async move {
                let batch = vec![event("Own", i), event("Shared", 1000 + i).with_event_id(shared)];
                (i, store.append_to_stream(&format!("s-{i}"), ExpectedVersion::NoStream, batch).await)
            })
        })
        .collect();
    let mut winner = None;
    for task in tasks {
        let (i, r) = task.await.unwrap();
        match r {
            Ok(_) => {
                assert!(winner.replace(i).is_none(), "two appends stored the same event id");
            }
            Err(Error::DuplicateEvent(id)) => assert_eq!(id, shared),
            Err(e) => panic!("expected DuplicateEvent, got {e:?}"),
        }
    }
    let winner = winner.expect("one append wins");
    for i in 0..10 {
        if i == winner {
            assert_stream_holds(&store, &format!("s-{i}"), &[i, 1000 + i]).await;
        } else {
            assert_stream_absent(&store, &format!("s-{i}")).await;
        }
    }
    assert_all_holds(&store, 2).await;
}

#[tokio::test]
async fn interleaved_appends_get_global_positions_in_append_order() {
    let store = TestStore::start().await;
    let plan = [("A", 1), ("B", 1), ("A", 2), ("B", 2)];
    for (i, (stream, version)) in plan.iter().enumerate() {
        let r = store.append_to_stream(stream, ExpectedVersion::Any, vec![event("E", i as u64 + 1)]).await.unwrap();
        assert_eq!((r.stream_version, r.first_position, r.last_position), (*version, i as u64 + 1, i as u64 + 1));
    }
    let all = all_events(&store).await;
    let seen: Vec<(u64, &str, u64, u64)> =
        all.iter().map(|e| (e.event_number, e.stream_uuid.as_str(), e.stream_version, n_of(e))).collect();
    assert_eq!(seen, vec![(1, "A", 1, 1), (2, "B", 1, 2), (3, "A", 2, 3), (4, "B", 2, 4)]);
    assert!(all.iter().all(|e| e.global_position == e.event_number));
}

#[tokio::test]
async fn one_append_of_8001_events_stores_them_all_contiguously() {
    let store = TestStore::start().await;
    seeded(&store, "before", 1).await;
    let r = store.append_to_stream("big", ExpectedVersion::NoStream, events("Bulk", 1, 8_001)).await.unwrap();
    assert_eq!((r.stream_version, r.first_position, r.last_position), (8_001, 2, 8_002));

    let evs = stream_events(&store, "big").await;
    assert_eq!(evs.len(), 8_001);
    for (i, e) in evs.iter().enumerate() {
        let i = i as u64;
        assert_eq!(e.stream_version, i + 1);
        assert_eq!(e.event_number, i + 1);
        assert_eq!(e.global_position, i + 2);
        assert_eq!(n_of(e), i + 1);
    }
    assert_all_holds(&store, 8_002).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_writers_over_many_streams_keep_versions_and_positions_contiguous() {
    const TASKS: u64 = 10;
    const APPENDS: u64 = 50;
    const STREAMS: u64 = 5;
    let store = TestStore::start().await;
    let tasks: Vec<_> = (0..TASKS)
        .map(|t| {
            let store = store.store.clone();
            tokio::spawn(async move {
                for i in 0..APPENDS {
                    let stream = format!("w-{}", (t + i) % STREAMS);
                    let e = event("W", t * 1_000 + i);
                    store.append_to_stream(&stream, ExpectedVersion::Any, vec![e]).await.expect("append");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }

    let mut total = 0;
    for s in 0..STREAMS {
        let evs = stream_events(&store, &format!("w-{s}")).await;
        assert_eq!(versions(&evs), (1..=evs.len() as u64).collect::<Vec<_>>(), "w-{s} versions contiguous");
        total += evs.len() as u64;
    }
    assert_eq!(total, TASKS * APPENDS);

    let all = all_events(&store).await;
    assert_eq!(positions(&all), (1..=TASKS * APPENDS).collect::<Vec<_>>());
    let ids: HashSet<Uuid> = all.iter().map(|e| e.event_id).collect();
    assert_eq!(ids.len(), all.len(), "every event stored once");
    // Each writer's appends were sequential, so they appear in $all in its order.
    let mut last_of_task: HashMap<u64, u64> = HashMap::new();
    for e in &all {
        let n = n_of(e);
        let (t, i) = (n / 1_000, n % 1_000);
        assert_eq!(e.stream_uuid, format!("w-{}", (t + i) % STREAMS));
        if let Some(previous) = last_of_task.insert(t, i) {
            assert!(previous < i, "writer {t}: {i} appears after {previous}");
        }
    }
    assert_eq!(last_of_task.len() as u64, TASKS);
    assert!(last_of_task.values().all(|&i| i == APPENDS - 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_of_all_never_see_a_gap_while_writers_append() {
    const WRITERS: u64 = 8;
    const APPENDS: u64 = 30;
    let store = TestStore::start().await;
    let done = Arc::new(AtomicBool::new(false));

    let reader = {
        let (store, done) = (store.store.clone(), Arc::clone(&done));
        tokio::spawn(async move {
            let mut last_k = 0;
            let mut reads = 0;
            loop {
                let finished = done.load(Ordering::SeqCst);
                let all = store.read_all_forward(0, 1_000_000).await.expect("read $all");
                let k = all.len() as u64;
                assert_eq!(positions(&all), (1..=k).collect::<Vec<_>>(), "read {reads}: $all must be 1..={k}");
                assert!(k >= last_k, "read {reads}: $all shrank from {last_k} to {k}");
                // Within the visible prefix every stream is a contiguous prefix too.
                let mut next_version: HashMap<&str, u64> = HashMap::new();
                for e in &all {
                    let v = next_version.entry(e.stream_uuid.as_str()).or_insert(1);
                    assert_eq!(e.stream_version, *v, "read {reads}: version gap in {}", e.stream_uuid);
                    *v += 1;
                }
                last_k = k;
                reads += 1;
                if finished {
                    return (last_k, reads);
                }
            }
        })
    };

    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let store = store.store.clone();
            tokio::spawn(async move {
                for i in 0..APPENDS {
                    let stream = format!("g-{}", (w + i) % 6);
                    let batch = events("G", w * 1_000 + i * 10, 1 + (i % 3));
                    store.append_to_stream(&stream, ExpectedVersion::Any, batch).await.expect("append");
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
    done.store(true, Ordering::SeqCst);

    let expected_total: u64 = WRITERS * (0..APPENDS).map(|i| 1 + (i % 3)).sum::<u64>();
    let (seen, reads) = reader.await.unwrap();
    assert_eq!(seen, expected_total, "the final read sees everything");
    assert!(reads >= 2, "the reader ran while writers appended ({reads} reads)");
    assert_all_holds(&store, expected_total).await;
}

// ---------------------------------------------------------------------------------------------
// duplicate event ids

#[tokio::test]
async fn the_same_event_id_twice_in_one_append_is_invalid_naming_both_events_and_stores_nothing() {
    let store = TestStore::start().await;
    let id = Uuid::new_v4();
    let batch = vec![event("E", 1), event("E", 2).with_event_id(id), event("E", 3), event("E", 4).with_event_id(id)];
    let r = store.append_to_stream("dup", ExpectedVersion::Any, batch).await;
    assert_invalid(r, &["events 1 and 3", &id.to_string(), "same event_id"]);
    assert_stream_absent(&store, "dup").await;
    assert_all_holds(&store, 0).await;
}

#[tokio::test]
async fn an_event_id_already_stored_in_the_same_stream_is_a_duplicate_and_stores_nothing() {
    let store = TestStore::start().await;
    let id = Uuid::new_v4();
    store.append_to_stream("dup", ExpectedVersion::NoStream, vec![event("E", 1).with_event_id(id)]).await.unwrap();
    let retry = vec![event("E", 2), event("E", 3).with_event_id(id), event("E", 4)];
    let r = store.append_to_stream("dup", ExpectedVersion::Exact(1), retry).await;
    assert!(matches!(r, Err(Error::DuplicateEvent(d)) if d == id), "got {r:?}");
    assert_stream_holds(&store, "dup", &[1]).await;
    assert_all_holds(&store, 1).await;
}

#[tokio::test]
async fn an_event_id_already_stored_in_another_stream_is_a_duplicate_and_stores_nothing() {
    let store = TestStore::start().await;
    let id = Uuid::new_v4();
    store.append_to_stream("first", ExpectedVersion::NoStream, vec![event("E", 1).with_event_id(id)]).await.unwrap();
    seeded(&store, "second", 2).await;

    let r = store.append_to_stream("second", ExpectedVersion::Any, vec![event("E", 3).with_event_id(id)]).await;
    assert!(matches!(r, Err(Error::DuplicateEvent(d)) if d == id), "existing stream: got {r:?}");
    let r = store
        .append_to_stream("third", ExpectedVersion::Any, vec![event("E", 1), event("E", 2).with_event_id(id)])
        .await;
    assert!(matches!(r, Err(Error::DuplicateEvent(d)) if d == id), "new stream: got {r:?}");

    assert_stream_holds(&store, "first", &[1]).await;
    assert_stream_holds(&store, "second", &[1, 2]).await;
    assert_stream_absent(&store, "third").await;
    assert_all_holds(&store, 3).await;
    let stored = all_events(&store).await;
    assert_eq!(stored.iter().filter(|e| e.event_id == id).count(), 1);
    assert_eq!(stored.iter().find(|e| e.event_id == id).unwrap().stream_uuid, "first");
}

// ---------------------------------------------------------------------------------------------
// invalid input

#[tokio::test]
async fn appending_to_all_is_rejected() {
    let store = TestStore::start().await;
    for expected in [ExpectedVersion::Any, ExpectedVersion::NoStream, ExpectedVersion::Exact(0)] {
        let r = store.append_to_stream(ALL, expected, vec![event("E", 1)]).await;
        assert!(matches!(r, Err(Error::CannotAppendToAllStream)), "got {r:?}");
    }
    assert_all_holds(&store, 0).await;
}

#[tokio::test]
async fn append_with_an_empty_event_list_is_invalid() {
    let store = TestStore::start().await;
    assert_invalid(store.append_to_stream("s", ExpectedVersion::Any, Vec::new()).await, &["empty", "event"]);
    assert_stream_absent(&store, "s").await;
    assert_all_holds(&store, 0).await;
}

#[tokio::test]
async fn append_with_an_empty_stream_id_is_invalid() {
    let store = TestStore::start().await;
    assert_invalid(
        store.append_to_stream("", ExpectedVersion::Any, vec![event("E", 1)]).await,
        &["stream id", "empty"],
    );
    assert_all_holds(&store, 0).await;
}

#[tokio::test]
async fn append_with_an_over_long_stream_id_is_invalid_and_the_limit_itself_is_accepted() {
    let store = TestStore::start().await;
    let too_long = "x".repeat(MAX_STREAM_ID_BYTES + 1);
    assert_invalid(
        store.append_to_stream(&too_long, ExpectedVersion::Any, vec![event("E", 1)]).await,
        &["stream id", &MAX_STREAM_ID_BYTES.to_string()],
    );
    // The limit is in bytes: a multi-byte string short in chars but long in bytes is rejected.
    let wide = "ü".repeat(MAX_STREAM_ID_BYTES / 2 + 1);
    assert!(wide.chars().count() <= MAX_STREAM_ID_BYTES);
    assert_invalid(store.append_to_stream(&wide, ExpectedVersion::Any, vec![event("E", 1)]).await, &["stream id"]);
    assert_all_holds(&store, 0).await;

    let at_limit = "y".repeat(MAX_STREAM_ID_BYTES);
    store.append_to_stream(&at_limit, ExpectedVersion::NoStream, vec![event("E", 1)]).await.unwrap();
    assert_stream_holds(&store, &at_limit, &[1]).await;
}

#[tokio::test]
async fn append_with_an_empty_event_type_is_invalid() {
    let store = TestStore::start().await;
    let r = store.append_to_stream("s", ExpectedVersion::Any, vec![event("", 1)]).await;
    assert_invalid(r, &["event_type", "empty"]);
    assert_stream_absent(&store, "s").await;
    assert_all_holds(&store, 0).await;
}

#[tokio::test]
async fn append_with_a_payload_over_max_event_size_is_invalid() {
    let store = TestStore::start_with(|c| c.max_event_size(100)).await;
    let big = EventData::from_bytes("Big", "application/octet-stream", vec![7u8; 101]);
    assert_invalid(store.append_to_stream("s", ExpectedVersion::Any, vec![big]).await, &["max_event_size", "101"]);
    // Metadata counts against the limit too.
    let with_meta =
        EventData::from_bytes("Big", "application/octet-stream", vec![7u8; 60]).with_metadata_bytes(json_string(41));
    assert_invalid(store.append_to_stream("s", ExpectedVersion::Any, vec![with_meta]).await, &["max_event_size"]);
    assert_stream_absent(&store, "s").await;
    assert_all_holds(&store, 0).await;

    // Exactly at the limit is fine.
    let fits =
        EventData::from_bytes("Fits", "application/octet-stream", vec![7u8; 60]).with_metadata_bytes(json_string(40));
    store.append_to_stream("s", ExpectedVersion::NoStream, vec![fits]).await.unwrap();
    let stored = stream_events(&store, "s").await;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].data, vec![7u8; 60]);
}

/// A JSON string document of exactly `bytes` bytes.
fn json_string(bytes: usize) -> Vec<u8> {
    format!("\"{}\"", "x".repeat(bytes - 2)).into_bytes()
}

#[tokio::test]
async fn metadata_that_is_not_json_is_invalid_naming_the_event_and_stores_nothing() {
    let store = TestStore::start().await;
    for (metadata, why) in [
        (b"{user: ana}".to_vec(), "not JSON"),
        (b"".to_vec(), "not JSON"),
        (b"{\"a\":1} trailing".to_vec(), "not JSON"),
        (vec![b'"', 0xff, b'"'], "UTF-8"),
    ] {
        let mut batch = events("Good", 1, 3);
        batch[2] = batch[2].clone().with_metadata_bytes(metadata.clone());
        let id = batch[2].event_id.to_string();
        let r = store.append_to_stream("s", ExpectedVersion::Any, batch).await;
        assert_invalid(r, &["event 2", &id, "metadata", why]);
    }
    assert_stream_absent(&store, "s").await;
    assert_all_holds(&store, 0).await;
    // JSON of any kind is metadata enough.
    for metadata in ["null", "[1,2]", "\"text\"", " {\"a\": 1} "] {
        let e = event("Good", 1).with_metadata_bytes(metadata.as_bytes().to_vec());
        store.append_to_stream("s", ExpectedVersion::Any, vec![e]).await.unwrap();
    }
}

#[tokio::test]
async fn data_labelled_json_that_is_not_json_is_invalid_and_other_content_types_are_opaque() {
    let store = TestStore::start().await;
    for content_type in ["application/json", "application/json; charset=utf-8", "application/vnd.acme.order+json"] {
        let bad = EventData::from_bytes("Bad", content_type, b"not { json".to_vec());
        let id = bad.event_id.to_string();
        let r = store.append_to_stream("s", ExpectedVersion::Any, vec![event("Good", 1), bad]).await;
        assert_invalid(r, &["event 1", &id, "data", content_type, "not JSON"]);
    }
    let not_utf8 = EventData::from_bytes("Bad", "application/json", vec![b'"', 0xc3, b'"']);
    assert_invalid(store.append_to_stream("s", ExpectedVersion::Any, vec![not_utf8]).await, &["data", "UTF-8"]);
    assert_stream_absent(&store, "s").await;
    assert_all_holds(&store, 0).await;
    // Bytes under any other content type are the application's business.
    let opaque = EventData::from_bytes("Blob", "text/plain", b"not { json".to_vec());
    store.append_to_stream("s", ExpectedVersion::NoStream, vec![opaque]).await.unwrap();
}

#[tokio::test]
async fn an_append_with_one_bad_event_among_good_ones_stores_nothing() {
    let store = TestStore::start_with(|c| c.max_event_size(1_000)).await;
    seeded(&store, "s", 1).await;

    let mut batch = events("Good", 2, 5);
    batch.insert(3, event("", 99));
    assert_invalid(store.append_to_stream("s", ExpectedVersion::Any, batch).await, &["event 3", "event_type"]);

    let mut batch = events("Good", 2, 5);
    batch.push(EventData::from_bytes("Huge", "application/octet-stream", vec![0u8; 1_001]));
    assert_invalid(store.append_to_stream("s", ExpectedVersion::Any, batch).await, &["event 5", "max_event_size"]);

    let mut batch = events("Good", 2, 5);
    batch[1] = EventData::from_bytes("NoContentType", "", b"{}".to_vec());
    assert_invalid(store.append_to_stream("s", ExpectedVersion::Any, batch).await, &["content_type"]);

    assert_stream_holds(&store, "s", &[1]).await;
    assert_all_holds(&store, 1).await;
}

// ---------------------------------------------------------------------------------------------
// round trips

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Deposited {
    amount: u64,
    note: String,
    tags: Vec<String>,
    rate: Option<f64>,
}

fn deposited() -> Deposited {
    Deposited {
        amount: 4_200,
        note: "café ☕ — ünïcödé 日本 🚀".into(),
        tags: vec!["a".into(), "".into()],
        rate: Some(0.5),
    }
}

#[tokio::test]
async fn unicode_stream_ids_event_types_and_payloads_round_trip() {
    let store = TestStore::start().await;
    let stream = "konto-ü-日本-🚀";
    let payload = serde_json::json!({ "name": "Zoë 🚀", "city": "東京", "rtl": "مرحبا", "nul_free": "a\u{7f}b" });
    let e = EventData::json("Überwiesen-送金", &payload).unwrap();
    let r = store.append_to_stream(stream, ExpectedVersion::NoStream, vec![e]).await.unwrap();
    assert_eq!(r.stream_version, 1);

    let read = stream_events(&store, stream).await;
    assert_eq!(read.len(), 1);
    assert_eq!(read[0].stream_uuid, stream);
    assert_eq!(read[0].event_type, "Überwiesen-送金");
    assert_eq!(read[0].decode::<serde_json::Value>().unwrap(), payload);
    let all = all_events(&store).await;
    assert_eq!(all[0].stream_uuid, stream);
    assert_eq!(store.stream_info(stream).await.unwrap().stream_uuid, stream);
}

#[tokio::test]
async fn json_payloads_round_trip_and_decode_by_content_type() {
    let store = TestStore::start().await;
    let value = deposited();
    let e = EventData::json("Deposited", &value).unwrap();
    let bytes = e.data.clone();
    let id = e.event_id;
    store.append_to_stream("j", ExpectedVersion::NoStream, vec![e]).await.unwrap();

    let read = stream_events(&store, "j").await.remove(0);
    assert_eq!(read.event_id, id);
    assert_eq!(read.content_type, JSON_CONTENT_TYPE);
    assert_eq!(read.data, bytes);
    assert_eq!(read.decode::<Deposited>().unwrap(), value);
    assert_eq!(read.decode_with::<_, Deposited>(&chronik::JsonSerializer).unwrap(), value);
    assert!(read.metadata.is_none());
    assert!(matches!(read.decode_metadata::<serde_json::Value>(), Err(Error::Serialization(_))));
}

#[tokio::test]
async fn bincode_payloads_round_trip_and_decode_by_content_type() {
    let store = TestStore::start().await;
    let value = deposited();
    let e = EventData::binary("Deposited", &value).unwrap();
    assert_eq!(e.content_type, BINCODE_CONTENT_TYPE);
    let bytes = e.data.clone();
    store.append_to_stream("b", ExpectedVersion::NoStream, vec![e]).await.unwrap();

    let read = stream_events(&store, "b").await.remove(0);
    assert_eq!(read.content_type, BINCODE_CONTENT_TYPE);
    assert_eq!(read.data, bytes);
    assert_eq!(read.decode::<Deposited>().unwrap(), value);
    assert_eq!(read.decode_with::<_, Deposited>(&chronik::BincodeSerializer).unwrap(), value);
}

/// A custom format: JSON with every byte flipped, so no built-in decoder can read it.
struct Flipped;

impl Serializer for Flipped {
    fn content_type(&self) -> &str {
        "application/x-flipped"
    }
    fn serialize<T: Serialize + ?Sized>(&self, value: &T) -> chronik::Result<Vec<u8>> {
        let json = serde_json::to_vec(value).map_err(|e| Error::Serialization(e.to_string()))?;
        Ok(json.into_iter().map(|b| !b).collect())
    }
    fn deserialize<T: serde::de::DeserializeOwned>(&self, bytes: &[u8]) -> chronik::Result<T> {
        let json: Vec<u8> = bytes.iter().map(|b| !b).collect();
        serde_json::from_slice(&json).map_err(|e| Error::Serialization(e.to_string()))
    }
}

#[tokio::test]
async fn custom_content_types_round_trip_with_decode_with() {
    let store = TestStore::start().await;
    let value = deposited();
    let bytes = Flipped.serialize(&value).unwrap();
    let raw = EventData::from_bytes("Deposited", "application/x-flipped", bytes.clone());
    let via_trait = EventData::serialize_with("Deposited", &Flipped, &value).unwrap();
    assert_eq!(via_trait.content_type, "application/x-flipped");
    // Arbitrary bytes, including NUL and invalid UTF-8, are kept as they are.
    let opaque = EventData::from_bytes("Blob", "application/octet-stream", vec![0u8, 159, 146, 150, 255, 0]);
    store.append_to_stream("c", ExpectedVersion::NoStream, vec![raw, via_trait, opaque]).await.unwrap();

    let read = stream_events(&store, "c").await;
    for e in &read[..2] {
        assert_eq!(e.content_type, "application/x-flipped");
        assert_eq!(e.data, bytes);
        assert_eq!(e.decode_with::<_, Deposited>(&Flipped).unwrap(), value);
        match e.decode::<Deposited>() {
            Err(Error::Serialization(message)) => assert!(message.contains("application/x-flipped"), "{message}"),
            other => panic!("decode of a custom content type must fail, got {other:?}"),
        }
    }
    assert_eq!(read[2].content_type, "application/octet-stream");
    assert_eq!(read[2].data, vec![0u8, 159, 146, 150, 255, 0]);
}

#[tokio::test]
async fn correlation_and_causation_ids_and_metadata_round_trip() {
    let store = TestStore::start().await;
    let (correlation, causation) = (Uuid::new_v4(), Uuid::new_v4());
    let metadata = serde_json::json!({ "user": "ana", "ip": "10.0.0.1", "nested": { "ü": [1, 2, 3] } });
    let full = event("Full", 1)
        .with_metadata_json(&metadata)
        .unwrap()
        .with_correlation_id(correlation)
        .with_causation_id(Some(causation));
    let bare = event("Bare", 2);
    let (full_id, bare_id) = (full.event_id, bare.event_id);
    store.append_to_stream("m", ExpectedVersion::NoStream, vec![full, bare]).await.unwrap();

    for read in [stream_events(&store, "m").await, all_events(&store).await] {
        let (f, b) = (&read[0], &read[1]);
        assert_eq!((f.event_id, f.event_type.as_str()), (full_id, "Full"));
        assert_eq!(f.correlation_id, Some(correlation));
        assert_eq!(f.causation_id, Some(causation));
        assert_eq!(f.decode_metadata::<serde_json::Value>().unwrap(), metadata);
        assert_eq!(serde_json::from_slice::<serde_json::Value>(f.metadata.as_ref().unwrap()).unwrap(), metadata);

        assert_eq!((b.event_id, b.event_type.as_str()), (bare_id, "Bare"));
        assert_eq!((b.correlation_id, b.causation_id, b.metadata.as_ref()), (None, None, None));
    }
}
