//! Links, soft and hard deletes, snapshots.

use crate::common::*;
use chronik::{ALL, DeleteMode, Error, ExpectedVersion, SnapshotData, StreamStatus};

#[tokio::test]
async fn linked_stream_reads_keep_the_original_stream_and_version() {
    let store = TestStore::start().await;
    store.append_to_stream("a", ExpectedVersion::NoStream, events("A", 1, 2)).await.unwrap();
    store.append_to_stream("b", ExpectedVersion::NoStream, events("B", 1, 3)).await.unwrap();
    let a = store.read_stream_forward("a", 0, 10).await.unwrap();
    let b = store.read_stream_forward("b", 0, 10).await.unwrap();

    let r = store.link_to_stream("picks", ExpectedVersion::NoStream, [&b[2], &a[0]]).await.unwrap();
    assert_eq!(r.stream_version, 2);
    assert_eq!((r.first_position, r.last_position), (5, 1));

    let picks = store.read_stream_forward("picks", 0, 10).await.unwrap();
    let seen: Vec<_> = picks.iter().map(|e| (e.event_number, e.stream_uuid.as_str(), e.stream_version)).collect();
    assert_eq!(seen, vec![(1, "b", 3), (2, "a", 1)]);
    assert_eq!(picks[0].event_id, b[2].event_id);
    assert_eq!(picks[0].data, b[2].data);

    let backward = store.read_stream_backward("picks", None, 10).await.unwrap();
    assert_eq!(backward.iter().map(|e| e.event_number).collect::<Vec<_>>(), vec![2, 1]);
    assert_eq!(store.stream_info("picks").await.unwrap().stream_version, 2);
    // Links never enter $all.
    assert_eq!(store.read_all_forward(0, 100).await.unwrap().len(), 5);
    assert_eq!(store.stream_info(ALL).await.unwrap().stream_version, 5);
}

#[tokio::test]
async fn links_and_own_events_share_one_version_sequence() {
    let store = TestStore::start().await;
    store.append_to_stream("src", ExpectedVersion::NoStream, events("S", 1, 1)).await.unwrap();
    let src = store.read_stream_forward("src", 0, 1).await.unwrap();
    store.append_to_stream("mix", ExpectedVersion::NoStream, events("M", 1, 1)).await.unwrap();
    store.link_to_stream("mix", ExpectedVersion::Exact(1), src.iter().map(|e| e.event_id)).await.unwrap();
    store.append_to_stream("mix", ExpectedVersion::Exact(2), events("M", 2, 1)).await.unwrap();
    let mix = store.read_stream_forward("mix", 0, 10).await.unwrap();
    let seen: Vec<_> = mix.iter().map(|e| (e.event_number, e.stream_uuid.as_str())).collect();
    assert_eq!(seen, vec![(1, "mix"), (2, "src"), (3, "mix")]);
}

#[tokio::test]
async fn link_rules_are_enforced_and_nothing_is_half_linked() {
    let store = TestStore::start().await;
    store.append_to_stream("a", ExpectedVersion::NoStream, events("A", 1, 2)).await.unwrap();
    let a = store.read_stream_forward("a", 0, 10).await.unwrap();

    let unknown = uuid::Uuid::new_v4();
    let err = store.link_to_stream("l", ExpectedVersion::Any, [a[0].event_id, unknown]).await.unwrap_err();
    assert!(matches!(err, Error::NotFound), "{err}");
    assert!(matches!(store.stream_info("l").await, Err(Error::StreamNotFound)));

    store.link_to_stream("l", ExpectedVersion::NoStream, [a[0].event_id]).await.unwrap();
    let err = store.link_to_stream("l", ExpectedVersion::Any, [a[1].event_id, a[0].event_id]).await.unwrap_err();
    assert!(matches!(err, Error::DuplicateEvent(id) if id == a[0].event_id), "{err}");
    let err = store.link_to_stream("l", ExpectedVersion::Any, [a[1].event_id, a[1].event_id]).await.unwrap_err();
    assert!(matches!(err, Error::DuplicateEvent(id) if id == a[1].event_id), "{err}");
    // An event is already in its own stream.
    let err = store.link_to_stream("a", ExpectedVersion::Any, [a[0].event_id]).await.unwrap_err();
    assert!(matches!(err, Error::DuplicateEvent(_)), "{err}");

    let err = store.link_to_stream("l", ExpectedVersion::Exact(5), [a[1].event_id]).await.unwrap_err();
    assert!(matches!(err, Error::WrongExpectedVersion { expected: 5, actual: 1 }), "{err}");
    let err = store.link_to_stream("l", ExpectedVersion::NoStream, [a[1].event_id]).await.unwrap_err();
    assert!(matches!(err, Error::StreamExists), "{err}");
    let err = store.link_to_stream("fresh", ExpectedVersion::StreamExists, [a[1].event_id]).await.unwrap_err();
    assert!(matches!(err, Error::StreamNotFound), "{err}");
    let err = store.link_to_stream(ALL, ExpectedVersion::Any, [a[1].event_id]).await.unwrap_err();
    assert!(matches!(err, Error::CannotAppendToAllStream), "{err}");
    let none: [uuid::Uuid; 0] = [];
    assert!(matches!(store.link_to_stream("l", ExpectedVersion::Any, none).await, Err(Error::InvalidArgument(_))));

    assert_eq!(store.read_stream_forward("l", 0, 10).await.unwrap().len(), 1);
    assert_eq!(store.stream_info("l").await.unwrap().stream_version, 1);
}

#[tokio::test]
async fn soft_deleted_stream_is_hidden_from_stream_reads_but_stays_in_all() {
    let store = TestStore::start().await;
    store.append_to_stream("gone", ExpectedVersion::NoStream, events("G", 1, 2)).await.unwrap();
    store.append_to_stream("kept", ExpectedVersion::NoStream, events("K", 1, 1)).await.unwrap();

    let err = store.delete_stream("gone", ExpectedVersion::Exact(1), DeleteMode::Soft).await.unwrap_err();
    assert!(matches!(err, Error::WrongExpectedVersion { expected: 1, actual: 2 }), "{err}");
    store.delete_stream("gone", ExpectedVersion::Exact(2), DeleteMode::Soft).await.unwrap();

    assert!(matches!(store.read_stream_forward("gone", 0, 10).await, Err(Error::StreamDeleted)));
    assert!(matches!(store.read_stream_backward("gone", None, 10).await, Err(Error::StreamDeleted)));
    let err = store.append_to_stream("gone", ExpectedVersion::Any, events("G", 3, 1)).await.unwrap_err();
    assert!(matches!(err, Error::StreamDeleted), "{err}");
    assert!(matches!(
        store.delete_stream("gone", ExpectedVersion::Any, DeleteMode::Soft).await,
        Err(Error::StreamDeleted)
    ));

    let info = store.stream_info("gone").await.unwrap();
    assert_eq!(info.status, StreamStatus::Deleted);
    assert!(info.deleted_at.is_some());
    let all = store.read_all_forward(0, 10).await.unwrap();
    assert_eq!(all.iter().filter(|e| e.stream_uuid == "gone").count(), 2);
    assert_eq!(all.len(), 3);
}

#[tokio::test]
async fn delete_checks_its_arguments() {
    let store = TestStore::start().await;
    assert!(matches!(
        store.delete_stream(ALL, ExpectedVersion::Any, DeleteMode::Soft).await,
        Err(Error::CannotDeleteAllStream)
    ));
    assert!(matches!(
        store.delete_stream("nope", ExpectedVersion::Any, DeleteMode::Soft).await,
        Err(Error::StreamNotFound)
    ));
    store.append_to_stream("s", ExpectedVersion::NoStream, events("S", 1, 1)).await.unwrap();
    assert!(matches!(
        store.delete_stream("s", ExpectedVersion::NoStream, DeleteMode::Soft).await,
        Err(Error::StreamExists)
    ));
}

#[tokio::test]
async fn hard_delete_is_refused_unless_enabled() {
    let store = TestStore::start().await;
    store.append_to_stream("s", ExpectedVersion::NoStream, events("S", 1, 2)).await.unwrap();
    let err = store.delete_stream("s", ExpectedVersion::Any, DeleteMode::Hard).await.unwrap_err();
    assert!(matches!(err, Error::NotSupported), "{err}");
    assert_eq!(store.read_stream_forward("s", 0, 10).await.unwrap().len(), 2);
}

#[tokio::test]
async fn hard_delete_removes_events_everywhere_and_positions_are_not_reused() {
    let store = TestStore::start_with(|c| c.enable_hard_deletes(true)).await;
    store.append_to_stream("a", ExpectedVersion::NoStream, events("A", 1, 1)).await.unwrap();
    store.append_to_stream("doomed", ExpectedVersion::NoStream, events("D", 1, 2)).await.unwrap();
    store.append_to_stream("a", ExpectedVersion::Exact(1), events("A", 2, 1)).await.unwrap();
    let doomed = store.read_stream_forward("doomed", 0, 10).await.unwrap();
    store.link_to_stream("links", ExpectedVersion::NoStream, &doomed[..1]).await.unwrap();

    store.delete_stream("doomed", ExpectedVersion::Exact(2), DeleteMode::Hard).await.unwrap();

    assert!(matches!(store.read_stream_forward("doomed", 0, 10).await, Err(Error::StreamNotFound)));
    let all: Vec<u64> = store.read_all_forward(0, 10).await.unwrap().iter().map(|e| e.event_number).collect();
    assert_eq!(all, vec![1, 4]);
    assert!(store.read_stream_forward("links", 0, 10).await.unwrap().is_empty());

    let r = store.append_to_stream("doomed", ExpectedVersion::NoStream, events("D", 9, 1)).await.unwrap();
    assert_eq!((r.stream_version, r.first_position), (1, 5));
    assert_eq!(store.stream_info(ALL).await.unwrap().stream_version, 5);
}

#[tokio::test]
async fn snapshots_are_recorded_replaced_read_and_deleted() {
    let store = TestStore::start().await;
    assert!(matches!(store.read_snapshot("acc-1").await, Err(Error::SnapshotNotFound)));

    let first = SnapshotData::json("acc-1", 3, "Account", &serde_json::json!({ "balance": 30 })).unwrap();
    store.record_snapshot(first.clone()).await.unwrap();
    assert_eq!(store.read_snapshot("acc-1").await.unwrap(), first);

    let second = SnapshotData::json("acc-1", 7, "Account", &serde_json::json!({ "balance": 70, "név": "ünïcødé" }))
        .unwrap()
        .with_metadata_json(&serde_json::json!({ "by": "test" }))
        .unwrap();
    store.record_snapshot(second.clone()).await.unwrap();
    let read = store.read_snapshot("acc-1").await.unwrap();
    assert_eq!(read, second);
    assert_eq!(read.decode::<serde_json::Value>().unwrap()["balance"], 70);

    store.delete_snapshot("acc-1").await.unwrap();
    store.delete_snapshot("acc-1").await.unwrap();
    assert!(matches!(store.read_snapshot("acc-1").await, Err(Error::SnapshotNotFound)));
}
