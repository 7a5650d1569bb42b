//! Appending to several streams at once (`append_to_streams`): all or nothing, contiguous
//! positions in the given order, every expected version checked, a refusal naming its stream;
//! and appends after a recreatable delete, which see the stream as absent but continue its
//! numbering. A node racing a recreatable delete from another node is in `two_nodes.rs`
//! (PostgreSQL only).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::common::{TestStore, all_events, assert_all_holds, assert_stream_holds, event, events, n_of, seeded};
use chronik::{
    ALL, AppendResult, DeleteMode, Error, EventData, EventStore, ExpectedVersion, RecordedEvent, StreamAppend,
};
use uuid::Uuid;

use ExpectedVersion::{Any, Exact, NoStream, StreamExists};

// ---------------------------------------------------------------------------------------------
// helpers

async fn assert_stream_absent(store: &EventStore, stream: &str) {
    assert!(matches!(store.stream_info(stream).await, Err(Error::StreamNotFound)), "{stream} must not exist");
}

/// The stream a refused call names and why; panics on anything but `AppendFailed`.
fn append_failed<T: std::fmt::Debug>(outcome: chronik::Result<T>) -> (String, Error) {
    match outcome {
        Err(Error::AppendFailed { stream, source }) => (stream, *source),
        other => panic!("expected AppendFailed, got {other:?}"),
    }
}

/// Asserts `error` is `InvalidArgument` whose message names every one of `words`.
fn assert_invalid(error: &Error, words: &[&str]) {
    match error {
        Error::InvalidArgument(message) => {
            let lower = message.to_lowercase();
            for word in words {
                assert!(lower.contains(&word.to_lowercase()), "message {message:?} should mention {word:?}");
            }
        }
        other => panic!("expected InvalidArgument mentioning {words:?}, got {other:?}"),
    }
}

/// (stream version, first position, last position) of each result.
fn placed(results: &[AppendResult]) -> Vec<(u64, u64, u64)> {
    results.iter().map(|r| (r.stream_version, r.first_position, r.last_position)).collect()
}

/// The events of `$all` by id.
fn by_id(all: &[RecordedEvent]) -> HashMap<Uuid, &RecordedEvent> {
    all.iter().map(|e| (e.event_id, e)).collect()
}

/// A stream's version now (0 if it has no events).
async fn version_of(store: &EventStore, stream: &str) -> u64 {
    match store.stream_info(stream).await {
        Ok(info) => info.stream_version,
        Err(Error::StreamNotFound) => 0,
        Err(e) => panic!("stream_info({stream}): {e}"),
    }
}

/// Asserts that each part of an accepted call is stored where its result says: its events, in
/// order, at contiguous positions that follow the previous part's, in its stream.
fn assert_stored_as_reported(all: &[RecordedEvent], parts: &[(String, Vec<Uuid>)], results: &[AppendResult]) {
    let stored = by_id(all);
    assert_eq!(results.len(), parts.len(), "one result per part");
    for (i, ((stream, ids), r)) in parts.iter().zip(results).enumerate() {
        if i > 0 {
            assert_eq!(r.first_position, results[i - 1].last_position + 1, "part {i} follows part {}", i - 1);
        }
        assert_eq!(r.last_position - r.first_position + 1, ids.len() as u64, "positions of part {i}");
        for (k, id) in ids.iter().enumerate() {
            let e = stored.get(id).unwrap_or_else(|| panic!("part {i}: event {id} reported stored but is not"));
            assert_eq!(e.stream_uuid, *stream);
            assert_eq!(e.global_position, r.first_position + k as u64, "position of event {k} of part {i}");
            assert_eq!(e.stream_version, r.stream_version - (ids.len() - 1 - k) as u64, "version of event {k}");
        }
    }
}

/// The streams and event ids of a call's parts.
fn parts_of(parts: &[StreamAppend]) -> Vec<(String, Vec<Uuid>)> {
    parts.iter().map(|p| (p.stream.clone(), p.events.iter().map(|e| e.event_id).collect())).collect()
}

// ---------------------------------------------------------------------------------------------
// appending to several streams

#[tokio::test]
async fn two_streams_appended_together_get_contiguous_positions_in_the_given_order() {
    let store = TestStore::start().await;
    seeded(&store, "stock-7", 3).await;
    let results = store
        .append_to_streams(vec![
            StreamAppend::new("order-1", NoStream, events("Placed", 1, 2)),
            StreamAppend::new("stock-7", Exact(3), vec![event("Reserved", 4)]),
        ])
        .await
        .unwrap();
    assert_eq!(placed(&results), [(2, 4, 5), (4, 6, 6)]);

    assert_stream_holds(&store, "order-1", &[1, 2]).await;
    assert_stream_holds(&store, "stock-7", &[1, 2, 3, 4]).await;
    let seen: Vec<(u64, String, u64)> =
        all_events(&store).await.iter().map(|e| (e.event_number, e.stream_uuid.clone(), e.stream_version)).collect();
    let expected = [(4, "order-1", 1), (5, "order-1", 2), (6, "stock-7", 4)];
    assert_eq!(seen[3..], expected.map(|(p, s, v)| (p, s.to_string(), v)));
    assert_all_holds(&store, 6).await;
}

#[tokio::test]
async fn three_streams_appended_together_take_one_version_range_each() {
    let store = TestStore::start().await;
    seeded(&store, "b", 2).await;
    let parts = vec![
        StreamAppend::new("c", Any, events("C", 1, 3)),
        StreamAppend::new("a", Exact(0), vec![event("A", 1)]),
        StreamAppend::new("b", StreamExists, events("B", 3, 2)),
    ];
    let shape = parts_of(&parts);
    let results = store.append_to_streams(parts).await.unwrap();
    assert_eq!(placed(&results), [(3, 3, 5), (1, 6, 6), (4, 7, 8)]);

    let all = all_events(&store).await;
    assert_stored_as_reported(&all, &shape, &results);
    let order: Vec<&str> = all[2..].iter().map(|e| e.stream_uuid.as_str()).collect();
    assert_eq!(order, ["c", "c", "c", "a", "b", "b"]);
    assert_stream_holds(&store, "a", &[1]).await;
    assert_stream_holds(&store, "b", &[1, 2, 3, 4]).await;
    assert_stream_holds(&store, "c", &[1, 2, 3]).await;
    assert_all_holds(&store, 8).await;
}

#[tokio::test]
async fn the_same_stream_twice_in_one_call_sees_the_version_its_first_part_produced() {
    let store = TestStore::start().await;
    seeded(&store, "s", 1).await;
    let results = store
        .append_to_streams(vec![
            StreamAppend::new("s", Exact(1), vec![event("E", 2)]),
            StreamAppend::new("other", NoStream, vec![event("E", 1)]),
            StreamAppend::new("s", Exact(2), events("E", 3, 2)),
        ])
        .await
        .unwrap();
    assert_eq!(placed(&results), [(2, 2, 2), (1, 3, 3), (4, 4, 5)]);
    assert_stream_holds(&store, "s", &[1, 2, 3, 4]).await;

    // A second part that expects what the stream was before the first one is refused.
    let (stream, source) = append_failed(
        store
            .append_to_streams(vec![
                StreamAppend::new("s", Exact(4), vec![event("E", 5)]),
                StreamAppend::new("s", Exact(4), vec![event("E", 6)]),
            ])
            .await,
    );
    assert_eq!(stream, "s");
    assert!(matches!(source, Error::WrongExpectedVersion { expected: 4, actual: 5 }), "{source:?}");
    assert_stream_holds(&store, "s", &[1, 2, 3, 4]).await;
    assert_all_holds(&store, 5).await;
}

// ---------------------------------------------------------------------------------------------
// all or nothing

#[tokio::test]
async fn one_stale_expected_version_among_several_parts_stores_nothing_and_names_that_stream() {
    let store = TestStore::start().await;
    seeded(&store, "a", 2).await;
    seeded(&store, "b", 3).await;
    // The stale part first, in the middle, and last.
    for stale in 0..3 {
        let mut parts = vec![
            StreamAppend::new("a", Exact(2), vec![event("E", 3)]),
            StreamAppend::new("new", NoStream, vec![event("E", 1)]),
            StreamAppend::new("b", Exact(3), vec![event("E", 4)]),
        ];
        let wrong = if parts[stale].stream == "new" { Exact(7) } else { Exact(1) };
        parts[stale].expected = wrong;
        let stream = parts[stale].stream.clone();
        let (named, source) = append_failed(store.append_to_streams(parts).await);
        assert_eq!(named, stream, "the stale part is {stale}");
        let at = match stream.as_str() {
            "a" => 2,
            "b" => 3,
            _ => 0,
        };
        match source {
            Error::WrongExpectedVersion { expected, actual } => assert_eq!((Exact(expected), actual), (wrong, at)),
            other => panic!("{stream}: expected WrongExpectedVersion, got {other:?}"),
        }
        assert_stream_holds(&store, "a", &[1, 2]).await;
        assert_stream_holds(&store, "b", &[1, 2, 3]).await;
        assert_stream_absent(&store, "new").await;
        assert_all_holds(&store, 5).await;
    }
}

#[tokio::test]
async fn a_part_expecting_no_stream_of_an_existing_stream_is_stream_exists_and_stores_nothing() {
    let store = TestStore::start().await;
    seeded(&store, "a", 1).await;
    let (stream, source) = append_failed(
        store
            .append_to_streams(vec![
                StreamAppend::new("fresh", NoStream, vec![event("E", 1)]),
                StreamAppend::new("a", NoStream, vec![event("E", 2)]),
            ])
            .await,
    );
    assert_eq!(stream, "a");
    assert!(matches!(source, Error::StreamExists), "{source:?}");
    assert_stream_absent(&store, "fresh").await;
    assert_stream_holds(&store, "a", &[1]).await;
    assert_all_holds(&store, 1).await;
}

#[tokio::test]
async fn a_part_expecting_an_absent_stream_to_exist_is_stream_not_found_and_stores_nothing() {
    let store = TestStore::start().await;
    seeded(&store, "a", 1).await;
    let (stream, source) = append_failed(
        store
            .append_to_streams(vec![
                StreamAppend::new("a", Exact(1), vec![event("E", 2)]),
                StreamAppend::new("ghost", StreamExists, vec![event("E", 1)]),
            ])
            .await,
    );
    assert_eq!(stream, "ghost");
    assert!(matches!(source, Error::StreamNotFound), "{source:?}");
    assert_stream_absent(&store, "ghost").await;
    assert_stream_holds(&store, "a", &[1]).await;
    assert_all_holds(&store, 1).await;
}

#[tokio::test]
async fn a_part_on_a_soft_deleted_stream_is_stream_deleted_and_stores_nothing() {
    let store = TestStore::start().await;
    seeded(&store, "gone", 2).await;
    seeded(&store, "a", 1).await;
    store.delete_stream("gone", Exact(2), DeleteMode::Soft).await.unwrap();
    for expected in [Any, NoStream, StreamExists, Exact(2)] {
        let (stream, source) = append_failed(
            store
                .append_to_streams(vec![
                    StreamAppend::new("a", Any, vec![event("E", 2)]),
                    StreamAppend::new("gone", expected, vec![event("E", 3)]),
                ])
                .await,
        );
        assert_eq!(stream, "gone");
        assert!(matches!(source, Error::StreamDeleted), "{expected:?}: {source:?}");
    }
    assert_stream_holds(&store, "a", &[1]).await;
    assert_all_holds(&store, 3).await;
}

#[tokio::test]
async fn an_event_id_twice_in_one_call_is_refused_before_anything_is_sent() {
    let store = TestStore::start().await;
    let shared = event("E", 1);
    let id = shared.event_id.to_string();
    let (stream, source) = append_failed(
        store
            .append_to_streams(vec![
                StreamAppend::new("first", NoStream, vec![event("E", 0), shared.clone()]),
                StreamAppend::new("second", NoStream, vec![shared]),
            ])
            .await,
    );
    assert_eq!(stream, "second", "the later place is named");
    assert_invalid(&source, &[&id, "event 1 of part 0", "event 0 of part 1", "`first`", "`second`"]);
    assert_stream_absent(&store, "first").await;
    assert_stream_absent(&store, "second").await;
    assert_all_holds(&store, 0).await;
}

#[tokio::test]
async fn an_event_id_already_stored_refuses_the_whole_call() {
    let store = TestStore::start().await;
    let stored = event("E", 1);
    store.append_to_stream("old", NoStream, vec![stored.clone()]).await.unwrap();
    let (stream, source) = append_failed(
        store
            .append_to_streams(vec![
                StreamAppend::new("a", NoStream, vec![event("E", 1)]),
                StreamAppend::new("b", NoStream, vec![event("E", 1), stored.clone()]),
            ])
            .await,
    );
    assert_eq!(stream, "b");
    assert!(matches!(source, Error::DuplicateEvent(id) if id == stored.event_id), "{source:?}");
    assert_stream_absent(&store, "a").await;
    assert_stream_absent(&store, "b").await;
    assert_all_holds(&store, 1).await;
}

#[tokio::test]
async fn one_part_is_refused_as_append_failed_while_append_to_stream_keeps_its_own_errors() {
    let store = TestStore::start().await;
    seeded(&store, "a", 1).await;
    let (stream, source) =
        append_failed(store.append_to_streams(vec![StreamAppend::new("a", NoStream, vec![event("E", 2)])]).await);
    assert_eq!(stream, "a");
    assert!(matches!(source, Error::StreamExists), "{source:?}");
    let r = store.append_to_stream("a", NoStream, vec![event("E", 2)]).await;
    assert!(matches!(r, Err(Error::StreamExists)), "{r:?}");

    let results = store.append_to_streams(vec![StreamAppend::new("a", Exact(1), vec![event("E", 2)])]).await.unwrap();
    assert_eq!(placed(&results), [(2, 2, 2)]);
}

#[tokio::test]
async fn parts_are_checked_like_appends_and_an_empty_call_is_invalid() {
    let store = TestStore::start_with(|c| c.max_event_size(100)).await;
    let good = || StreamAppend::new("good", Any, vec![event("E", 1)]);

    let r = store.append_to_streams(Vec::new()).await;
    match r {
        Err(e @ Error::InvalidArgument(_)) => assert_invalid(&e, &["empty"]),
        other => panic!("an empty call: {other:?}"),
    }

    let (stream, source) =
        append_failed(store.append_to_streams(vec![good(), StreamAppend::new(ALL, Any, vec![event("E", 1)])]).await);
    assert_eq!(stream, ALL);
    assert!(matches!(source, Error::CannotAppendToAllStream), "{source:?}");

    let (stream, source) =
        append_failed(store.append_to_streams(vec![good(), StreamAppend::new("", Any, vec![event("E", 1)])]).await);
    assert_eq!(stream, "");
    assert_invalid(&source, &["stream id", "empty"]);

    let (stream, source) =
        append_failed(store.append_to_streams(vec![good(), StreamAppend::new("idle", Any, Vec::new())]).await);
    assert_eq!(stream, "idle");
    assert_invalid(&source, &["`idle`", "empty"]);

    let big = EventData::from_bytes("Big", "application/octet-stream", vec![7u8; 101]);
    let (stream, source) = append_failed(
        store.append_to_streams(vec![StreamAppend::new("big", Any, vec![event("E", 1), big]), good()]).await,
    );
    assert_eq!(stream, "big");
    assert_invalid(&source, &["event 1", "max_event_size"]);

    let (stream, source) = append_failed(
        store.append_to_streams(vec![good(), StreamAppend::new("untyped", Any, vec![event("", 1)])]).await,
    );
    assert_eq!(stream, "untyped");
    assert_invalid(&source, &["event 0", "event_type"]);

    for stream in ["good", "idle", "big", "untyped"] {
        assert_stream_absent(&store, stream).await;
    }
    assert_all_holds(&store, 0).await;
}

// ---------------------------------------------------------------------------------------------
// concurrency

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_multi_stream_appends_with_exact_versions_store_exactly_the_winners() {
    const WRITERS: u64 = 20;
    const ROUNDS: u64 = 4;
    const STREAMS: u64 = 4;
    let store = TestStore::start().await;
    let tasks: Vec<_> = (0..WRITERS)
        .map(|w| {
            let store = store.store.clone();
            tokio::spawn(async move {
                let mut outcomes = Vec::new();
                for round in 0..ROUNDS {
                    // Two distinct streams of four, so the writers overlap.
                    let names = [w % STREAMS, (w + 1 + round % (STREAMS - 1)) % STREAMS].map(|s| format!("o-{s}"));
                    let mut parts = Vec::new();
                    for (k, name) in names.iter().enumerate() {
                        let expected = Exact(version_of(&store, name).await);
                        let n = w * 1_000 + round * 10 + k as u64;
                        parts.push(StreamAppend::new(name.as_str(), expected, events("M", n, 1 + k as u64)));
                    }
                    let shape = parts_of(&parts);
                    outcomes.push((shape, store.append_to_streams(parts).await));
                }
                outcomes
            })
        })
        .collect();
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.extend(task.await.unwrap());
    }

    let all = all_events(&store).await;
    let stored = by_id(&all);
    let mut winners = 0;
    let mut winning_events = 0;
    for (shape, outcome) in &outcomes {
        match outcome {
            Ok(results) => {
                winners += 1;
                winning_events += shape.iter().map(|(_, ids)| ids.len()).sum::<usize>();
                assert_stored_as_reported(&all, shape, results);
            }
            Err(Error::AppendFailed { stream, source }) => {
                assert!(shape.iter().any(|(s, _)| s == stream), "{stream} is not a stream of the call");
                assert!(matches!(**source, Error::WrongExpectedVersion { .. }), "{source:?}");
                for id in shape.iter().flat_map(|(_, ids)| ids) {
                    assert!(!stored.contains_key(id), "a refused call stored {id}");
                }
            }
            Err(e) => panic!("unexpected error: {e:?}"),
        }
    }
    assert!(winners > 0, "some calls win");
    assert_eq!(all.len(), winning_events, "only the winners' events are stored");
    assert_eq!(all.iter().map(|e| e.global_position).collect::<Vec<_>>(), (1..=all.len() as u64).collect::<Vec<_>>());
    for s in 0..STREAMS {
        let stream = format!("o-{s}");
        let versions: Vec<u64> = all.iter().filter(|e| e.stream_uuid == stream).map(|e| e.stream_version).collect();
        assert_eq!(versions, (1..=versions.len() as u64).collect::<Vec<_>>(), "{stream} versions contiguous");
        assert_eq!(version_of(&store, &stream).await, versions.len() as u64);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_stream_appends_sharing_batches_with_refused_appends_are_not_disturbed() {
    let store = TestStore::start().await;
    seeded(&store, "x", 2).await;
    /// What each call is expected to come to.
    enum Call {
        Refused(chronik::Result<AppendResult>),
        Single(chronik::Result<AppendResult>),
        Pair(chronik::Result<Vec<AppendResult>>),
        RefusedPair(chronik::Result<Vec<AppendResult>>),
    }
    let mut tasks = Vec::new();
    for i in 0..8u64 {
        let s = store.store.clone();
        tasks.push(tokio::spawn(async move {
            Call::Refused(s.append_to_stream("x", Exact(i % 2), vec![event("Stale", i)]).await)
        }));
        let s = store.store.clone();
        tasks.push(tokio::spawn(async move {
            Call::Pair(
                s.append_to_streams(vec![
                    StreamAppend::new(format!("p-{i}"), NoStream, vec![event("P", i)]),
                    StreamAppend::new(format!("q-{i}"), NoStream, events("Q", i, 2)),
                ])
                .await,
            )
        }));
        let s = store.store.clone();
        tasks.push(tokio::spawn(async move {
            Call::RefusedPair(
                s.append_to_streams(vec![
                    StreamAppend::new(format!("r-{i}"), NoStream, vec![event("R", i)]),
                    StreamAppend::new("x", NoStream, vec![event("X", i)]),
                ])
                .await,
            )
        }));
        let s = store.store.clone();
        tasks.push(tokio::spawn(async move {
            Call::Single(s.append_to_stream(&format!("y-{i}"), NoStream, vec![event("Y", i)]).await)
        }));
    }
    for task in tasks {
        match task.await.unwrap() {
            Call::Refused(r) => assert!(matches!(r, Err(Error::WrongExpectedVersion { actual: 2, .. })), "{r:?}"),
            Call::Single(r) => assert_eq!(r.unwrap().stream_version, 1),
            Call::Pair(r) => {
                let results = r.unwrap();
                assert_eq!(results.iter().map(|r| r.stream_version).collect::<Vec<_>>(), [1, 2]);
                assert_eq!(results[1].first_position, results[0].last_position + 1);
            }
            Call::RefusedPair(r) => {
                let (stream, source) = append_failed(r);
                assert_eq!(stream, "x");
                assert!(matches!(source, Error::StreamExists), "{source:?}");
            }
        }
    }
    assert_stream_holds(&store, "x", &[1, 2]).await;
    for i in 0..8 {
        assert_stream_holds(&store, &format!("p-{i}"), &[i]).await;
        assert_stream_holds(&store, &format!("q-{i}"), &[i, i + 1]).await;
        assert_stream_holds(&store, &format!("y-{i}"), &[i]).await;
        assert_stream_absent(&store, &format!("r-{i}")).await;
    }
    assert_all_holds(&store, 2 + 8 * 4).await;
}

// ---------------------------------------------------------------------------------------------
// a killed writer

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_writer_never_yields_a_false_outcome_for_a_multi_stream_append() {
    let store = TestStore::start().await;
    let stop = Arc::new(AtomicBool::new(false));
    let load: Vec<_> = (0..20u64)
        .map(|w| {
            let (store, stop) = (store.store.clone(), Arc::clone(&stop));
            tokio::spawn(async move {
                let mut outcomes = Vec::new();
                let mut n = 0;
                while !stop.load(Ordering::SeqCst) {
                    let parts: Vec<StreamAppend> = (0..2 + w % 2)
                        .map(|k| StreamAppend::new(format!("m-{}", (w + k) % 5), Any, events("M", n, 1 + k)))
                        .collect();
                    let shape = parts_of(&parts);
                    outcomes.push((shape, store.append_to_streams(parts).await));
                    n += 10;
                }
                outcomes
            })
        })
        .collect();

    crate::common::kill_writer_repeatedly(&store, 5).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::SeqCst);
    let mut outcomes = Vec::new();
    for task in load {
        outcomes.extend(task.await.unwrap());
    }

    let all = all_events(&store).await;
    let stored = by_id(&all);
    assert_eq!(stored.len(), all.len(), "an event is stored twice");
    let mut told = 0;
    for (shape, outcome) in &outcomes {
        let ids: Vec<&Uuid> = shape.iter().flat_map(|(_, ids)| ids).collect();
        match outcome {
            Ok(results) => {
                told += ids.len();
                assert_stored_as_reported(&all, shape, results);
            }
            Err(e) => {
                assert!(matches!(e, Error::Unavailable(_)), "unexpected error kind: {e}");
                assert!(ids.iter().all(|id| !stored.contains_key(id)), "false error: `{e}` but stored");
            }
        }
    }
    assert!(outcomes.iter().any(|(_, o)| o.is_ok()));
    assert_eq!(told, all.len(), "stored events that no caller was told about");
    assert_eq!(all.iter().map(|e| e.global_position).collect::<Vec<_>>(), (1..=all.len() as u64).collect::<Vec<_>>());
    let after = store.append_to_streams(vec![StreamAppend::new("after", NoStream, vec![event("E", 1)])]).await;
    assert_eq!(after.unwrap()[0].stream_version, 1);
}

// ---------------------------------------------------------------------------------------------
// appends after a recreatable delete

#[tokio::test]
async fn an_append_after_a_recreatable_delete_continues_the_stream_numbering() {
    let store = TestStore::start().await;
    seeded(&store, "s", 3).await;
    store.delete_stream("s", Exact(3), DeleteMode::Recreatable).await.unwrap();
    let r = store.append_to_stream("s", NoStream, vec![event("E", 4)]).await.unwrap();
    assert_eq!((r.stream_version, r.first_position, r.last_position), (4, 4, 4));
    assert_eq!(version_of(&store, "s").await, 4);
    let last = all_events(&store).await.pop().unwrap();
    assert_eq!((last.stream_uuid.as_str(), last.stream_version, n_of(&last)), ("s", 4, 4));
    // From then on it is a stream like any other.
    let r = store.append_to_stream("s", Exact(4), vec![event("E", 5)]).await.unwrap();
    assert_eq!(r.stream_version, 5);
    let r = store.append_to_stream("s", NoStream, vec![event("E", 6)]).await;
    assert!(matches!(r, Err(Error::StreamExists)), "{r:?}");
    assert_all_holds(&store, 5).await;
}

#[tokio::test]
async fn after_a_recreatable_delete_the_stream_is_absent_to_expected_versions() {
    let store = TestStore::start().await;
    seeded(&store, "s", 3).await;
    // The writer knows the stream well before it is deleted.
    store.append_to_stream("s", StreamExists, vec![event("E", 4)]).await.unwrap();
    store.append_to_stream("s", Exact(4), vec![event("E", 5)]).await.unwrap();
    store.delete_stream("s", Any, DeleteMode::Recreatable).await.unwrap();

    let r = store.append_to_stream("s", StreamExists, vec![event("E", 6)]).await;
    assert!(matches!(r, Err(Error::StreamNotFound)), "StreamExists: {r:?}");
    let r = store.append_to_stream("s", Exact(5), vec![event("E", 6)]).await;
    assert!(matches!(r, Err(Error::WrongExpectedVersion { expected: 5, actual: 0 })), "Exact(5): {r:?}");
    let (stream, source) =
        append_failed(store.append_to_streams(vec![StreamAppend::new("s", StreamExists, vec![event("E", 6)])]).await);
    assert_eq!(stream, "s");
    assert!(matches!(source, Error::StreamNotFound), "{source:?}");
    assert_all_holds(&store, 5).await;

    let r = store.append_to_stream("s", Exact(0), vec![event("E", 6)]).await.unwrap();
    assert_eq!((r.stream_version, r.first_position), (6, 6));
}

#[tokio::test]
async fn any_appends_after_a_recreatable_delete_continue_the_numbering() {
    let store = TestStore::start().await;
    seeded(&store, "s", 2).await;
    store.delete_stream("s", Exact(2), DeleteMode::Recreatable).await.unwrap();
    let r = store.append_to_stream("s", Any, events("E", 3, 2)).await.unwrap();
    assert_eq!((r.stream_version, r.first_position, r.last_position), (4, 3, 4));
}

#[tokio::test]
async fn a_stream_can_be_deleted_recreatably_again() {
    let store = TestStore::start().await;
    seeded(&store, "s", 3).await;
    store.delete_stream("s", Exact(3), DeleteMode::Recreatable).await.unwrap();
    let r = store.append_to_stream("s", NoStream, events("E", 4, 2)).await.unwrap();
    assert_eq!(r.stream_version, 5);
    store.delete_stream("s", Exact(5), DeleteMode::Recreatable).await.unwrap();
    let r = store.append_to_stream("s", StreamExists, vec![event("E", 6)]).await;
    assert!(matches!(r, Err(Error::StreamNotFound)), "{r:?}");
    let r = store.append_to_stream("s", NoStream, vec![event("E", 6)]).await.unwrap();
    assert_eq!(r.stream_version, 6);
    assert_eq!(version_of(&store, "s").await, 6);
    assert_all_holds(&store, 6).await;
}

#[tokio::test]
async fn a_multi_stream_append_recreates_a_recreatably_deleted_stream_or_leaves_it_absent() {
    let store = TestStore::start().await;
    seeded(&store, "s", 3).await;
    seeded(&store, "t", 1).await;
    store.delete_stream("s", Any, DeleteMode::Recreatable).await.unwrap();

    // Refused by another part: `s` stays absent.
    let (stream, _) = append_failed(
        store
            .append_to_streams(vec![
                StreamAppend::new("s", NoStream, vec![event("E", 4)]),
                StreamAppend::new("t", NoStream, vec![event("E", 2)]),
            ])
            .await,
    );
    assert_eq!(stream, "t");
    let r = store.append_to_stream("s", StreamExists, vec![event("E", 4)]).await;
    assert!(matches!(r, Err(Error::StreamNotFound)), "{r:?}");

    let results = store
        .append_to_streams(vec![
            StreamAppend::new("s", NoStream, vec![event("E", 4)]),
            StreamAppend::new("s", Exact(4), vec![event("E", 5)]),
            StreamAppend::new("t", Exact(1), vec![event("E", 2)]),
        ])
        .await
        .unwrap();
    assert_eq!(placed(&results), [(4, 5, 5), (5, 6, 6), (2, 7, 7)]);
    assert_all_holds(&store, 7).await;
}
