//! The `Streams` service through the KurrentDB client: appends with every expected state,
//! reads of streams and `$all` both ways, deletes and tombstones, stream metadata through
//! `$$<stream>`, batch appends, `$ce-` streams as links, what the server says it supports.

use std::time::Duration;

use chronik::{ALL, ExpectedVersion};
use kurrentdb::{
    AppendToStreamOptions, CurrentRevision, DeleteStreamOptions, Error, ReadAllOptions, ReadStreamOptions,
    StreamMetadata, StreamPosition, StreamState, TombstoneStreamOptions,
};

use crate::served::{Served, all_of, json_event, n_of, ns};

fn expecting(state: StreamState) -> AppendToStreamOptions {
    AppendToStreamOptions::default().stream_state(state)
}

#[tokio::test]
async fn appended_events_read_back_with_revisions_from_zero_and_chronik_positions() {
    let served = Served::start().await;
    let id = uuid::Uuid::new_v4();
    let events = vec![
        json_event("Opened", 0).id(id).metadata_as_json(&serde_json::json!({ "user": "ana" })).unwrap(),
        json_event("Deposited", 1),
        json_event("Deposited", 2),
    ];
    let written = served.client.append_to_stream("account-1", &expecting(StreamState::NoStream), events).await.unwrap();
    assert_eq!(written.next_expected_version, 2, "three events: revisions 0, 1, 2");

    let stored = served.store().read_stream_forward("account-1", 0, 10).await.unwrap();
    assert_eq!(stored.len(), 3);
    assert_eq!(written.position.commit, stored[2].global_position);
    assert_eq!(stored[0].event_id, id);
    assert_eq!(stored[0].event_type, "Opened");
    assert_eq!(stored[0].content_type, "application/json");
    assert_eq!(stored[0].metadata.as_deref(), Some(br#"{"user":"ana"}"#.as_slice()));

    let read = all_of(served.client.read_stream("account-1", &ReadStreamOptions::default()).await.unwrap()).await;
    assert_eq!(ns(&read), vec![0, 1, 2]);
    let first = read[0].get_original_event();
    assert_eq!((first.id, first.revision, first.event_type.as_str()), (id, 0, "Opened"));
    assert_eq!(first.position.commit, stored[0].global_position);
    assert!(first.is_json);
    assert_eq!(first.custom_metadata.as_ref(), br#"{"user":"ana"}"#);
    // `created` travels in 100 ns ticks; this client keeps whole seconds of it.
    assert_eq!(first.created.timestamp(), stored[0].created_at.timestamp(), "created is the commit time");
    assert_eq!(first.stream_id(), "account-1");
}

#[tokio::test]
async fn every_expected_state_is_checked_as_kurrentdb_does() {
    let served = Served::start().await;
    let client = &served.client;
    let append = |state| async move { client.append_to_stream("s-1", &expecting(state), json_event("E", 0)).await };

    let absent = append(StreamState::StreamExists).await.unwrap_err();
    assert!(
        matches!(
            absent,
            Error::WrongExpectedVersion { expected: StreamState::StreamExists, current: CurrentRevision::NoStream }
        ),
        "{absent:?}"
    );
    let wrong = append(StreamState::StreamRevision(0)).await.unwrap_err();
    assert!(matches!(wrong, Error::WrongExpectedVersion { current: CurrentRevision::NoStream, .. }), "{wrong:?}");

    assert_eq!(append(StreamState::NoStream).await.unwrap().next_expected_version, 0);
    assert_eq!(append(StreamState::Any).await.unwrap().next_expected_version, 1);
    assert_eq!(append(StreamState::StreamExists).await.unwrap().next_expected_version, 2);
    assert_eq!(append(StreamState::StreamRevision(2)).await.unwrap().next_expected_version, 3);

    let exists = append(StreamState::NoStream).await.unwrap_err();
    assert!(
        matches!(
            exists,
            Error::WrongExpectedVersion { expected: StreamState::NoStream, current: CurrentRevision::Current(3) }
        ),
        "{exists:?}"
    );
    let stale = append(StreamState::StreamRevision(1)).await.unwrap_err();
    assert!(
        matches!(
            stale,
            Error::WrongExpectedVersion {
                expected: StreamState::StreamRevision(1),
                current: CurrentRevision::Current(3)
            }
        ),
        "{stale:?}"
    );
    assert_eq!(served.store().stream_info("s-1").await.unwrap().stream_version, 4, "refused appends wrote nothing");
}

#[tokio::test]
async fn an_append_sent_again_is_answered_as_the_first_was() {
    let served = Served::start().await;
    let client = &served.client;
    let (a, b) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
    let batch = || vec![json_event("E", 0).id(a), json_event("E", 1).id(b)];
    let first = client.append_to_stream("retried", &expecting(StreamState::NoStream), batch()).await.unwrap();
    let again = client.append_to_stream("retried", &expecting(StreamState::NoStream), batch()).await.unwrap();
    assert_eq!((again.next_expected_version, again.position), (first.next_expected_version, first.position));
    let any = client.append_to_stream("retried", &expecting(StreamState::Any), batch()).await.unwrap();
    assert_eq!(any.next_expected_version, 1);
    client.append_to_stream("retried", &expecting(StreamState::Any), json_event("E", 2)).await.unwrap();
    let after = client
        .append_to_stream("retried", &expecting(StreamState::StreamRevision(0)), vec![json_event("E", 1).id(b)])
        .await;
    assert_eq!(after.unwrap().next_expected_version, 1, "the event after revision 0 is this one");
    assert_eq!(served.store().stream_info("retried").await.unwrap().stream_version, 3, "nothing was stored twice");

    let mixed = client
        .append_to_stream("retried", &expecting(StreamState::Any), vec![json_event("E", 9), json_event("E", 0).id(a)])
        .await;
    assert!(matches!(mixed, Err(Error::ResourceAlreadyExists)), "{mixed:?}");
}

#[tokio::test]
async fn concurrent_clients_with_the_same_expected_revision_see_one_winner() {
    let served = Served::start().await;
    served.client.append_to_stream("race", &expecting(StreamState::NoStream), json_event("E", 0)).await.unwrap();
    let tasks: Vec<_> = (0..10)
        .map(|n| {
            let client = served.client("kurrentdb");
            tokio::spawn(async move {
                client.append_to_stream("race", &expecting(StreamState::StreamRevision(0)), json_event("E", n)).await
            })
        })
        .collect();
    let mut won = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(result) => {
                won += 1;
                assert_eq!(result.next_expected_version, 1);
            }
            Err(Error::WrongExpectedVersion { current: CurrentRevision::Current(1), .. }) => {}
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(won, 1);
}

#[tokio::test]
async fn streams_and_all_read_both_ways_from_any_point() {
    let served = Served::start().await;
    let events: Vec<_> = (0..10).map(|n| json_event("E", n)).collect();
    served.client.append_to_stream("counter", &expecting(StreamState::Any), events).await.unwrap();
    let client = &served.client;
    let read = |options: ReadStreamOptions| async move {
        all_of(client.read_stream("counter", &options).await.unwrap()).await
    };

    assert_eq!(ns(&read(ReadStreamOptions::default().position(StreamPosition::Position(7))).await), vec![7, 8, 9]);
    assert_eq!(ns(&read(ReadStreamOptions::default().max_count(2)).await), vec![0, 1]);
    let backward = ReadStreamOptions::default().backwards().position(StreamPosition::End).max_count(3);
    assert_eq!(ns(&read(backward).await), vec![9, 8, 7]);
    let from_two = ReadStreamOptions::default().backwards().position(StreamPosition::Position(2));
    assert_eq!(ns(&read(from_two).await), vec![2, 1, 0]);
    assert!(read(ReadStreamOptions::default().position(StreamPosition::End).forwards()).await.is_empty());

    let all = all_of(served.client.read_all(&ReadAllOptions::default()).await.unwrap()).await;
    assert_eq!(ns(&all), (0..10).collect::<Vec<_>>());
    let positions: Vec<u64> = all.iter().map(|e| e.get_original_event().position.commit).collect();
    let stored: Vec<u64> =
        served.store().read_all_forward(0, 100).await.unwrap().iter().map(|e| e.global_position).collect();
    assert_eq!(positions, stored);

    let last_two = ReadAllOptions::default().backwards().position(StreamPosition::End).max_count(2);
    assert_eq!(ns(&all_of(served.client.read_all(&last_two).await.unwrap()).await), vec![9, 8]);
    let before = kurrentdb::Position { commit: positions[5], prepare: positions[5] };
    let before_sixth = ReadAllOptions::default().backwards().position(StreamPosition::Position(before)).max_count(2);
    assert_eq!(ns(&all_of(served.client.read_all(&before_sixth).await.unwrap()).await), vec![4, 3]);
    let from_sixth = ReadAllOptions::default().position(StreamPosition::Position(before)).max_count(2);
    assert_eq!(ns(&all_of(served.client.read_all(&from_sixth).await.unwrap()).await), vec![5, 6]);
}

#[tokio::test]
async fn a_missing_stream_reads_as_not_found() {
    let served = Served::start().await;
    let mut read = served.client.read_stream("nobody", &ReadStreamOptions::default()).await.unwrap();
    assert!(matches!(read.next().await, Err(Error::ResourceNotFound)));
}

#[tokio::test]
async fn a_deleted_stream_is_gone_until_written_again_and_keeps_counting() {
    let served = Served::start().await;
    let client = &served.client;
    client
        .append_to_stream("cart-1", &expecting(StreamState::NoStream), vec![json_event("E", 0), json_event("E", 1)])
        .await
        .unwrap();

    let stale = client
        .delete_stream("cart-1", &DeleteStreamOptions::default().stream_state(StreamState::StreamRevision(0)))
        .await;
    assert!(stale.is_err(), "a delete checks the expected revision too");
    client
        .delete_stream("cart-1", &DeleteStreamOptions::default().stream_state(StreamState::StreamRevision(1)))
        .await
        .unwrap();
    let mut read = client.read_stream("cart-1", &ReadStreamOptions::default()).await.unwrap();
    assert!(matches!(read.next().await, Err(Error::ResourceNotFound)));

    let again = client.append_to_stream("cart-1", &expecting(StreamState::NoStream), json_event("E", 2)).await.unwrap();
    assert_eq!(again.next_expected_version, 2, "revisions go on after a delete");
    assert_eq!(ns(&all_of(client.read_stream("cart-1", &ReadStreamOptions::default()).await.unwrap()).await), vec![2]);
}

#[tokio::test]
async fn a_tombstoned_stream_refuses_reads_and_writes() {
    let served = Served::start().await;
    let client = &served.client;
    client.append_to_stream("gone", &expecting(StreamState::Any), json_event("E", 0)).await.unwrap();
    client.tombstone_stream("gone", &TombstoneStreamOptions::default()).await.unwrap();

    let mut read = client.read_stream("gone", &ReadStreamOptions::default()).await.unwrap();
    assert!(matches!(read.next().await, Err(Error::ResourceDeleted)));
    let write = client.append_to_stream("gone", &expecting(StreamState::Any), json_event("E", 1)).await;
    assert!(matches!(write, Err(Error::ResourceDeleted)), "{write:?}");
    assert_eq!(served.store().stream_info("gone").await.unwrap().status, chronik::StreamStatus::Deleted);
}

#[tokio::test]
async fn stream_metadata_travels_through_the_metadata_stream_and_applies() {
    let served = Served::start().await;
    let client = &served.client;
    let events: Vec<_> = (0..5).map(|n| json_event("E", n)).collect();
    client.append_to_stream("session-1", &expecting(StreamState::Any), events).await.unwrap();
    assert!(client.get_stream_metadata("session-1", &ReadStreamOptions::default()).await.unwrap().is_not_found());

    let metadata = StreamMetadata::builder()
        .max_count(2)
        .max_age(Duration::from_secs(3_600))
        .insert_custom_property("owner", "billing")
        .build();
    let set = client.set_stream_metadata("session-1", &expecting(StreamState::NoStream), &metadata).await.unwrap();
    assert_eq!(set.next_expected_version, 0);

    let kurrentdb::StreamMetadataResult::Success(read) =
        client.get_stream_metadata("session-1", &ReadStreamOptions::default()).await.unwrap()
    else {
        panic!("metadata is set");
    };
    assert_eq!(read.version(), 0);
    assert_eq!(read.metadata().max_count, Some(2));
    assert_eq!(read.metadata().max_age, Some(Duration::from_secs(3_600)));
    assert_eq!(read.metadata().custom_properties.get("owner"), Some(&serde_json::json!("billing")));

    let (version, stored) = served.store().stream_metadata("session-1").await.unwrap().expect("stored");
    assert_eq!((version, stored.max_count), (1, Some(2)));
    assert_eq!(
        ns(&all_of(client.read_stream("session-1", &ReadStreamOptions::default()).await.unwrap()).await),
        vec![3, 4]
    );

    let stale =
        client.set_stream_metadata("session-1", &expecting(StreamState::NoStream), &metadata).await.unwrap_err();
    assert!(matches!(stale, Error::WrongExpectedVersion { current: CurrentRevision::Current(0), .. }), "{stale:?}");
}

#[tokio::test]
async fn a_category_reads_as_links_to_its_events() {
    let served = Served::start().await;
    let client = &served.client;
    client.append_to_stream("account-1", &expecting(StreamState::Any), json_event("Opened", 1)).await.unwrap();
    client.append_to_stream("order-1", &expecting(StreamState::Any), json_event("Placed", 2)).await.unwrap();
    client.append_to_stream("account-2", &expecting(StreamState::Any), json_event("Opened", 3)).await.unwrap();

    let resolved = ReadStreamOptions::default().resolve_link_tos();
    let read = all_of(client.read_stream("$ce-account", &resolved).await.unwrap()).await;
    assert_eq!(ns(&read), vec![1, 3]);
    let link = read[1].link.as_ref().expect("resolved through a link");
    assert_eq!((link.stream_id(), link.revision, link.event_type.as_str()), ("$ce-account", 1, "$>"));
    assert_eq!(link.data.as_ref(), b"0@account-2");
    assert_eq!(read[1].event.as_ref().unwrap().stream_id(), "account-2");

    let unresolved = all_of(client.read_stream("$ce-account", &ReadStreamOptions::default()).await.unwrap()).await;
    let first = unresolved[0].get_original_event();
    assert_eq!((first.event_type.as_str(), first.data.as_ref()), ("$>", b"0@account-1".as_slice()));
    assert!(unresolved[0].link.is_none());
}

#[tokio::test]
async fn batch_appends_are_answered_one_by_one() {
    let served = Served::start().await;
    let batch = served.client.batch_append(&Default::default()).await.unwrap();
    let first = batch.append_to_stream("batch-1", StreamState::NoStream, vec![json_event("E", 0), json_event("E", 1)]);
    let second = batch.append_to_stream("batch-2", StreamState::StreamRevision(5), vec![json_event("E", 2)]);
    assert_eq!(first.await.unwrap().current_revision(), Some(1));
    let refused = second.await.unwrap_err();
    assert!(!matches!(refused, Error::ServerError(_)), "a refusal, not a failure: {refused:?}");
    assert_eq!(served.store().stream_info("batch-1").await.unwrap().stream_version, 2);
    assert!(served.store().stream_info("batch-2").await.is_err(), "nothing of the refused batch was written");
    drop(batch);
    assert_eq!(served.store().read_all_forward(0, 10).await.unwrap().len(), 2);
}

#[tokio::test]
async fn the_server_says_what_it_supports() {
    let served = Served::start().await;
    let info = served.client.server_info().await.unwrap();
    let version = info.version();
    assert_eq!((version.major(), version.minor()), (24, 10), "the KurrentDB protocol version chronik speaks");
    // The optional calls a client uses only when they are listed work: batch appends and
    // groups on `$all` (the client refuses them itself otherwise).
    let batch = served.client.batch_append(&Default::default()).await.expect("batch appends are listed");
    let written = batch.append_to_stream("listed", StreamState::Any, vec![json_event("E", 0)]).await.unwrap();
    assert_eq!(written.current_revision(), Some(0));
    let to_all = kurrentdb::PersistentSubscriptionToAllOptions::default();
    served.client.create_persistent_subscription_to_all("listed", &to_all).await.expect("groups on $all are listed");
}

#[tokio::test]
async fn a_client_discovering_through_gossip_finds_the_node() {
    let served = Served::start().await;
    let discovering = served.client("kurrentdb+discover");
    discovering.append_to_stream("found", &expecting(StreamState::Any), json_event("E", 7)).await.unwrap();
    let read = all_of(discovering.read_stream("found", &ReadStreamOptions::default()).await.unwrap()).await;
    assert_eq!(n_of(read[0].event.as_ref().unwrap()), 7);
}

#[tokio::test]
async fn what_an_embedding_application_writes_the_client_reads() {
    let served = Served::start().await;
    let event = chronik::EventData::json("Local", &serde_json::json!({ "n": 42 })).unwrap();
    served.store().append_to_stream("local-1", ExpectedVersion::NoStream, vec![event]).await.unwrap();
    let read = all_of(served.client.read_stream("local-1", &ReadStreamOptions::default()).await.unwrap()).await;
    assert_eq!(ns(&read), vec![42]);
    assert_eq!(served.store().stream_info(ALL).await.unwrap().stream_version, 1);
}
