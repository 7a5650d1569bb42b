//! Stream metadata and retention: metadata versions and conflicts; `max_count`, `max_age` and
//! `truncate_before` on forward, backward and lazy reads, `stream_info` and subscriptions; `$all`
//! showing hidden events until a scavenge; the two deletes KurrentDB clients expect
//! (recreatable and tombstone).

use std::time::Duration;

use crate::common::{
    TestStore, WAIT, assert_invalid_mentioning, event, events, n_of, next, next_batch, numbers, positions, quick_store,
    receive, versions,
};
use chronik::{
    ALL, DeleteMode, Error, EventStore, ExpectedVersion, LiveMessage, RecordedEvent, StreamMetadata, StreamStatus,
    SubscriptionMessage, SubscriptionOptions,
};
use futures::TryStreamExt;

// ---------------------------------------------------------------------------------------------
// helpers

async fn fill(store: &EventStore, stream: &str, count: u64) {
    store.append_to_stream(stream, ExpectedVersion::Any, events("E", 1, count)).await.expect("append");
}

async fn set(store: &EventStore, stream: &str, meta: StreamMetadata) -> u64 {
    store.set_stream_metadata(stream, ExpectedVersion::Any, meta).await.expect("set metadata")
}

async fn forward(store: &EventStore, stream: &str) -> Vec<u64> {
    versions(&store.read_stream_forward(stream, 0, 1_000).await.expect("read forward"))
}

async fn backward(store: &EventStore, stream: &str) -> Vec<u64> {
    versions(&store.read_stream_backward(stream, None, 1_000).await.expect("read backward"))
}

async fn lazily(store: &EventStore, stream: &str) -> Vec<u64> {
    let forward: Vec<RecordedEvent> = store.stream_forward(stream, 0, 2).try_collect().await.expect("lazy forward");
    let backward: Vec<RecordedEvent> =
        store.stream_backward(stream, None, 2).try_collect().await.expect("lazy backward");
    let mut back = versions(&backward);
    back.reverse();
    assert_eq!(versions(&forward), back, "lazy reads both ways show the same entries");
    versions(&forward)
}

fn range(from: u64, to: u64) -> Vec<u64> {
    (from..=to).collect()
}

// ---------------------------------------------------------------------------------------------
// metadata values and versions

#[tokio::test]
async fn metadata_is_set_before_the_stream_exists_and_read_back_as_set() {
    let store = TestStore::start().await;
    let meta = StreamMetadata::default()
        .max_count(5)
        .max_age(Duration::from_secs(86_400))
        .truncate_before(3)
        .custom(serde_json::json!({ "owner": "billing", "tags": ["a", "b"], "nested": { "x": 1.5 } }));
    let v = store.set_stream_metadata("order-1", ExpectedVersion::NoStream, meta.clone()).await.unwrap();
    assert_eq!(v, 1);
    assert_eq!(store.stream_metadata("order-1").await.unwrap(), Some((1, meta.clone())));
    assert!(matches!(store.read_stream_forward("order-1", 0, 10).await, Err(Error::StreamNotFound)));
    assert!(store.stream_metadata("order-2").await.unwrap().is_none(), "no metadata: None");

    fill(&store, "order-1", 1).await;
    let info = store.stream_info("order-1").await.unwrap();
    assert_eq!(info.metadata, Some((1, meta)), "stream_info shows the metadata");
    let page = store.paginate_streams(chronik::PageRequest::default()).await.unwrap();
    assert_eq!(page.entries[0].metadata.as_ref().map(|m| m.0), Some(1), "so does a page of streams");
}

#[tokio::test]
async fn metadata_has_its_own_version_with_the_rules_of_an_append() {
    let store = TestStore::start().await;
    fill(&store, "s", 4).await;
    let first = StreamMetadata::default().max_count(2);
    assert!(matches!(
        store.set_stream_metadata("s", ExpectedVersion::StreamExists, first.clone()).await,
        Err(Error::StreamNotFound)
    ));
    assert!(matches!(
        store.set_stream_metadata("s", ExpectedVersion::Exact(1), first.clone()).await,
        Err(Error::WrongExpectedVersion { expected: 1, actual: 0 })
    ));
    assert_eq!(store.set_stream_metadata("s", ExpectedVersion::Exact(0), first.clone()).await.unwrap(), 1);
    assert!(matches!(
        store.set_stream_metadata("s", ExpectedVersion::NoStream, first.clone()).await,
        Err(Error::StreamExists)
    ));
    let second = StreamMetadata::default().truncate_before(2);
    assert_eq!(store.set_stream_metadata("s", ExpectedVersion::Exact(1), second.clone()).await.unwrap(), 2);
    assert!(matches!(
        store.set_stream_metadata("s", ExpectedVersion::Exact(1), first.clone()).await,
        Err(Error::WrongExpectedVersion { expected: 1, actual: 2 })
    ));
    assert_eq!(store.set_stream_metadata("s", ExpectedVersion::StreamExists, second.clone()).await.unwrap(), 3);
    assert_eq!(store.set_stream_metadata("s", ExpectedVersion::Any, StreamMetadata::default()).await.unwrap(), 4);
    assert_eq!(store.stream_metadata("s").await.unwrap(), Some((4, StreamMetadata::default())), "replaced whole");
    assert_eq!(forward(&store, "s").await, range(1, 4), "empty metadata hides nothing");
    assert_eq!(store.stream_info("s").await.unwrap().stream_version, 4, "metadata never moves the stream's version");
}

#[tokio::test]
async fn of_concurrent_metadata_sets_with_one_expected_version_exactly_one_wins() {
    let store = TestStore::start().await;
    set(&store, "s", StreamMetadata::default()).await;
    let tasks: Vec<_> = (0..10u64)
        .map(|i| {
            let store = store.store.clone();
            tokio::spawn(async move {
                store
                    .set_stream_metadata("s", ExpectedVersion::Exact(1), StreamMetadata::default().max_count(i + 1))
                    .await
            })
        })
        .collect();
    let mut won = Vec::new();
    for (i, task) in tasks.into_iter().enumerate() {
        match task.await.unwrap() {
            Ok(v) => won.push((i, v)),
            Err(Error::WrongExpectedVersion { expected: 1, actual: 2 }) => {}
            Err(e) => panic!("unexpected: {e}"),
        }
    }
    assert_eq!(won.len(), 1, "exactly one winner: {won:?}");
    let (winner, version) = won[0];
    assert_eq!(version, 2);
    let (stored_version, stored) = store.stream_metadata("s").await.unwrap().unwrap();
    assert_eq!((stored_version, stored.max_count), (2, Some(winner as u64 + 1)), "the winner's value is stored");
}

#[tokio::test]
async fn metadata_a_store_cannot_hold_is_refused_and_nothing_is_stored() {
    let store = TestStore::start().await;
    assert_invalid_mentioning(
        store.set_stream_metadata("s", ExpectedVersion::Any, StreamMetadata::default().max_count(0)).await,
        "max_count",
    );
    assert_invalid_mentioning(
        store
            .set_stream_metadata("s", ExpectedVersion::Any, StreamMetadata::default().custom(serde_json::json!("x")))
            .await,
        "JSON object",
    );
    assert_invalid_mentioning(
        store.set_stream_metadata("s", ExpectedVersion::Any, StreamMetadata::default().max_age(Duration::ZERO)).await,
        "max_age",
    );
    assert_invalid_mentioning(
        store.set_stream_metadata(ALL, ExpectedVersion::Any, StreamMetadata::default()).await,
        "$all",
    );
    assert_invalid_mentioning(
        store.set_stream_metadata("", ExpectedVersion::Any, StreamMetadata::default()).await,
        "stream id",
    );
    assert!(store.stream_metadata("s").await.unwrap().is_none(), "nothing stored");
}

#[tokio::test]
async fn a_tombstone_takes_no_metadata() {
    let store = TestStore::start().await;
    fill(&store, "s", 1).await;
    store.delete_stream("s", ExpectedVersion::Any, DeleteMode::Soft).await.unwrap();
    assert!(matches!(
        store.set_stream_metadata("s", ExpectedVersion::Any, StreamMetadata::default().max_count(1)).await,
        Err(Error::StreamDeleted)
    ));
}

// ---------------------------------------------------------------------------------------------
// retention on reads

#[tokio::test]
async fn max_count_keeps_only_the_newest_entries_readable_in_every_read() {
    let store = TestStore::start().await;
    fill(&store, "s", 10).await;
    set(&store, "s", StreamMetadata::default().max_count(3)).await;
    assert_eq!(forward(&store, "s").await, range(8, 10));
    assert_eq!(backward(&store, "s").await, vec![10, 9, 8]);
    assert_eq!(lazily(&store, "s").await, range(8, 10));
    assert_eq!(versions(&store.read_stream_forward("s", 2, 2).await.unwrap()), vec![8, 9], "a start below is raised");
    assert!(store.read_stream_backward("s", Some(7), 5).await.unwrap().is_empty(), "nothing readable at or below 7");

    fill(&store, "s", 2).await;
    assert_eq!(forward(&store, "s").await, range(10, 12), "the window moves with the stream at once");
    let info = store.stream_info("s").await.unwrap();
    assert_eq!((info.stream_version, info.status), (12, StreamStatus::Created), "versions are never renumbered");
}

#[tokio::test]
async fn truncate_before_hides_the_versions_below_it() {
    let store = TestStore::start().await;
    fill(&store, "s", 6).await;
    set(&store, "s", StreamMetadata::default().truncate_before(4)).await;
    assert_eq!(forward(&store, "s").await, range(4, 6));
    assert_eq!(backward(&store, "s").await, vec![6, 5, 4]);
    assert_eq!(lazily(&store, "s").await, range(4, 6));

    set(&store, "s", StreamMetadata::default().truncate_before(10)).await;
    assert_eq!(forward(&store, "s").await, Vec::<u64>::new(), "truncated past its end: empty, still there");
    fill(&store, "s", 5).await;
    assert_eq!(forward(&store, "s").await, range(10, 11), "entries from the truncation on show as they come");

    set(&store, "s", StreamMetadata::default()).await;
    assert_eq!(forward(&store, "s").await, range(1, 11), "until a scavenge, loosening shows them again");
}

#[tokio::test]
async fn max_age_hides_entries_committed_before_the_cutoff() {
    let store = TestStore::start().await;
    fill(&store, "s", 3).await;
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    fill(&store, "s", 2).await;
    let all = store.read_stream_forward("s", 0, 10).await.unwrap();
    // A cutoff half-way through the pause (the read follows within moments).
    let gap = all[3].created_at - all[2].created_at;
    let age = chrono::Utc::now() - (all[2].created_at + gap / 2);
    set(&store, "s", StreamMetadata::default().max_age(age.to_std().unwrap())).await;
    assert_eq!(forward(&store, "s").await, range(4, 5));
    assert_eq!(backward(&store, "s").await, vec![5, 4]);
    assert_eq!(lazily(&store, "s").await, range(4, 5));
    assert_eq!(store.read_all_forward(0, 10).await.unwrap().len(), 5, "$all still shows them");

    set(&store, "s", StreamMetadata::default().max_age(Duration::from_millis(1))).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(forward(&store, "s").await, Vec::<u64>::new(), "all expired: empty, but the stream is there");
    assert_eq!(store.stream_info("s").await.unwrap().stream_version, 5);
}

#[tokio::test]
async fn all_shows_the_hidden_events_until_a_scavenge() {
    let store = TestStore::start().await;
    fill(&store, "a", 5).await;
    fill(&store, "b", 2).await;
    set(&store, "a", StreamMetadata::default().max_count(1)).await;
    assert_eq!(forward(&store, "a").await, vec![5]);
    assert_eq!(positions(&store.read_all_forward(0, 100).await.unwrap()), range(1, 7));
    assert_eq!(positions(&store.read_all_backward(None, 100).await.unwrap()).len(), 7);
}

#[tokio::test]
async fn retention_applies_to_a_stream_of_links_by_link_version() {
    let store = TestStore::start().await;
    fill(&store, "src", 4).await;
    let source = store.read_stream_forward("src", 0, 10).await.unwrap();
    store.link_to_stream("links", ExpectedVersion::Any, &source).await.unwrap();
    set(&store, "links", StreamMetadata::default().max_count(2)).await;
    let linked = store.read_stream_forward("links", 0, 10).await.unwrap();
    assert_eq!(numbers(&linked), vec![3, 4], "link versions");
    assert_eq!(linked.iter().map(n_of).collect::<Vec<_>>(), vec![3, 4], "the linked events");
    assert_eq!(forward(&store, "src").await, range(1, 4), "the source stream is untouched");
}

// ---------------------------------------------------------------------------------------------
// deletes KurrentDB clients expect

#[tokio::test]
async fn a_recreatable_delete_reads_as_not_found_until_the_next_append_continues_the_numbering() {
    let store = TestStore::start().await;
    fill(&store, "s", 3).await;
    store.delete_stream("s", ExpectedVersion::Exact(3), DeleteMode::Recreatable).await.unwrap();
    assert!(matches!(store.read_stream_forward("s", 0, 10).await, Err(Error::StreamNotFound)));
    assert!(matches!(store.read_stream_backward("s", None, 10).await, Err(Error::StreamNotFound)));
    assert!(matches!(store.stream_info("s").await, Err(Error::StreamNotFound)));
    assert_eq!(store.read_all_forward(0, 10).await.unwrap().len(), 3, "$all shows them until a scavenge");
    let listed = store.paginate_streams(chronik::PageRequest::default().include_deleted(false)).await.unwrap();
    assert!(listed.entries.is_empty(), "not listed as a live stream");
    let with_deleted = store.paginate_streams(chronik::PageRequest::default()).await.unwrap();
    assert_eq!(with_deleted.entries[0].status, StreamStatus::Deleted);

    let r = store.append_to_stream("s", ExpectedVersion::NoStream, vec![event("E", 4)]).await.unwrap();
    assert_eq!(r.stream_version, 4, "the numbering continues");
    let read = store.read_stream_forward("s", 0, 10).await.unwrap();
    assert_eq!((versions(&read), read.iter().map(n_of).collect::<Vec<_>>()), (vec![4], vec![4]), "older stay hidden");
    assert_eq!(store.stream_info("s").await.unwrap().stream_version, 4);
    assert_eq!(store.read_all_forward(0, 10).await.unwrap().len(), 4);
}

#[tokio::test]
async fn a_tombstone_refuses_reads_and_appends_forever() {
    let store = TestStore::start().await;
    fill(&store, "s", 2).await;
    store.delete_stream("s", ExpectedVersion::Any, DeleteMode::Soft).await.unwrap();
    assert!(matches!(store.read_stream_forward("s", 0, 10).await, Err(Error::StreamDeleted)));
    for expected in [ExpectedVersion::Any, ExpectedVersion::NoStream, ExpectedVersion::Exact(2)] {
        assert!(matches!(store.append_to_stream("s", expected, vec![event("E", 3)]).await, Err(Error::StreamDeleted)));
    }
    assert!(matches!(
        store.delete_stream("s", ExpectedVersion::Any, DeleteMode::Recreatable).await,
        Err(Error::StreamDeleted)
    ));
    assert_eq!(store.read_all_forward(0, 10).await.unwrap().len(), 2, "its events stay in $all");
}

#[tokio::test]
async fn a_hard_delete_also_forgets_the_metadata() {
    let store = TestStore::start_with(|c| c.enable_hard_deletes(true)).await;
    fill(&store, "s", 3).await;
    set(&store, "s", StreamMetadata::default().max_count(1)).await;
    store.delete_stream("s", ExpectedVersion::Any, DeleteMode::Hard).await.unwrap();
    assert!(store.stream_metadata("s").await.unwrap().is_none(), "as if the stream never existed");
    fill(&store, "s", 2).await;
    assert_eq!(forward(&store, "s").await, range(1, 2));
}

// ---------------------------------------------------------------------------------------------
// subscriptions

#[tokio::test]
async fn a_catch_up_subscription_starts_at_the_first_readable_version_and_its_checkpoint_moves_on() {
    let store = quick_store().await;
    fill(&store, "s", 10).await;
    set(&store, "s", StreamMetadata::default().truncate_before(7)).await;
    let mut sub = store.subscribe_to_stream("s", "proj", SubscriptionOptions::default()).await.unwrap();
    assert!(matches!(next(&mut sub).await, SubscriptionMessage::Subscribed));
    let got = receive(&mut sub, 4).await;
    assert_eq!(numbers(&got), range(7, 10));
    sub.ack(&got).await.unwrap();
    crate::common::assert_checkpoint(&store, "s", "proj", 10, "past the hidden versions").await;
}

#[tokio::test]
async fn a_subscription_resumes_past_versions_hidden_after_its_checkpoint() {
    let store = quick_store().await;
    fill(&store, "s", 3).await;
    {
        let mut sub = store.subscribe_to_stream("s", "proj", SubscriptionOptions::default()).await.unwrap();
        assert!(matches!(next(&mut sub).await, SubscriptionMessage::Subscribed));
        let got = receive(&mut sub, 3).await;
        sub.ack(&got).await.unwrap();
        crate::common::assert_checkpoint(&store, "s", "proj", 3, "acked").await;
        store.unsubscribe_from_stream("s", "proj").await.unwrap();
    }
    fill(&store, "s", 7).await;
    set(&store, "s", StreamMetadata::default().max_count(2)).await;
    let mut sub = store.subscribe_to_stream("s", "proj", SubscriptionOptions::default()).await.unwrap();
    assert!(matches!(next(&mut sub).await, SubscriptionMessage::Subscribed));
    let got = receive(&mut sub, 2).await;
    assert_eq!(numbers(&got), vec![9, 10], "versions 4-8 are hidden");
    sub.ack(&got).await.unwrap();
    crate::common::assert_checkpoint(&store, "s", "proj", 10, "moved past the hidden range").await;
}

#[tokio::test]
async fn a_live_subscription_is_not_given_what_the_retention_hides() {
    let store = quick_store().await;
    fill(&store, "s", 2).await;
    let mut sub = store.subscribe_to_stream("s", "proj", SubscriptionOptions::default()).await.unwrap();
    assert!(matches!(next(&mut sub).await, SubscriptionMessage::Subscribed));
    let got = receive(&mut sub, 2).await;
    sub.ack(&got).await.unwrap();
    loop {
        if let SubscriptionMessage::CaughtUp = next(&mut sub).await {
            break;
        }
    }
    // Versions up to 5 are hidden before they exist; then three come in one append.
    set(&store, "s", StreamMetadata::default().truncate_before(6)).await;
    store.append_to_stream("s", ExpectedVersion::Exact(2), events("E", 3, 5)).await.unwrap();
    let got = next_batch(&mut sub).await;
    assert_eq!(numbers(&got), vec![6, 7]);
    sub.ack(&got).await.unwrap();
    crate::common::assert_checkpoint(&store, "s", "proj", 7, "past the hidden live range").await;
}

#[tokio::test]
async fn queued_events_that_become_hidden_are_not_delivered() {
    let store = quick_store().await;
    fill(&store, "s", 20).await;
    // One event in flight at a time; the rest wait in the subscription's queue.
    let options = SubscriptionOptions::default().buffer_size(1);
    let mut sub = store.subscribe_to_stream("s", "proj", options).await.unwrap();
    let first = next_batch(&mut sub).await;
    assert_eq!(numbers(&first), vec![1]);
    set(&store, "s", StreamMetadata::default().truncate_before(15)).await;
    // The notification reaches the subscription in moments; until then 2 might still go out.
    tokio::time::sleep(Duration::from_millis(300)).await;
    sub.ack(&first).await.unwrap();
    let next = next_batch(&mut sub).await;
    assert_eq!(numbers(&next), vec![15], "2-14 were dropped from the queue");
}

#[tokio::test]
async fn a_live_only_listener_gets_only_readable_events() {
    let store = TestStore::start().await;
    fill(&store, "s", 1).await;
    set(&store, "s", StreamMetadata::default().max_count(2)).await;
    let mut live = store.subscribe("s").await.unwrap();
    store.append_to_stream("s", ExpectedVersion::Any, events("E", 2, 4)).await.unwrap();
    let got = match tokio::time::timeout(WAIT, live.recv()).await.expect("in time").expect("open") {
        LiveMessage::Events(events) => events,
        other => panic!("events expected, got {other:?}"),
    };
    assert_eq!(numbers(&got), vec![4, 5], "the newest 2 of the 4 appended together");
}
