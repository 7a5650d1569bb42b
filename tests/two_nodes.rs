//! Two stores (nodes) on one schema: each writer remembers what it last saw of the streams it
//! writes (its one-statement fast path); whatever the other node did meanwhile must be noticed.

mod common;

use chronik::{DeleteMode, Error, EventStore, ExpectedVersion};
use common::*;

async fn second_node(first: &TestStore) -> EventStore {
    EventStore::start(first.config.clone()).await.expect("second node starts")
}

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
