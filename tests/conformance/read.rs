//! Reading: stream and `$all` reads, paging, lazy streams, stream metadata and stream listing.

use crate::common::{TestStore, assert_invalid_mentioning, event, events};
use chronik::{
    ALL, DeleteMode, Error, EventStore, ExpectedVersion, PageRequest, RecordedEvent, SortBy, SortDirection,
    StreamStatus,
};
use chrono::{Duration, Utc};
use futures::{StreamExt, TryStreamExt};

// ---------------------------------------------------------------------------------------------
// helpers

/// The `n` of a `{"n": n}` payload written by `common::event`.
fn n_of(e: &RecordedEvent) -> u64 {
    e.decode::<serde_json::Value>().expect("json payload")["n"].as_u64().expect("n")
}

fn numbers(evs: &[RecordedEvent]) -> Vec<u64> {
    evs.iter().map(|e| e.event_number).collect()
}

fn range(from: u64, to: u64) -> Vec<u64> {
    (from..=to).collect()
}

fn rev(from: u64, to: u64) -> Vec<u64> {
    (to..=from).rev().collect()
}

/// `count` single-event appends to `stream` (payload n = 1..=count).
async fn fill(store: &EventStore, stream: &str, count: u64) {
    store.append_to_stream(stream, ExpectedVersion::Any, events("E", 1, count)).await.unwrap();
}

/// Streams named `names`, each with one event, created in that order.
async fn create_streams(store: &EventStore, names: &[&str]) {
    for name in names {
        store.append_to_stream(name, ExpectedVersion::NoStream, vec![event("E", 1)]).await.unwrap();
    }
}

fn names(page: &chronik::Page<chronik::StreamInfo>) -> Vec<&str> {
    page.entries.iter().map(|s| s.stream_uuid.as_str()).collect()
}

// ---------------------------------------------------------------------------------------------
// stream reads

#[tokio::test]
async fn read_stream_forward_pages_by_start_version_and_count() {
    let store = TestStore::start().await;
    fill(&store, "s", 10).await;

    let from0 = store.read_stream_forward("s", 0, 100).await.unwrap();
    let from1 = store.read_stream_forward("s", 1, 100).await.unwrap();
    assert_eq!(numbers(&from0), range(1, 10), "start 0 is the first event");
    assert_eq!(from0, from1, "start 0 and start 1 read the same");
    assert_eq!(from0.iter().map(n_of).collect::<Vec<_>>(), range(1, 10));

    assert_eq!(numbers(&store.read_stream_forward("s", 0, 3).await.unwrap()), range(1, 3));
    assert_eq!(numbers(&store.read_stream_forward("s", 4, 3).await.unwrap()), range(4, 6));
    assert_eq!(numbers(&store.read_stream_forward("s", 8, 100).await.unwrap()), range(8, 10));
    assert_eq!(numbers(&store.read_stream_forward("s", 10, 1).await.unwrap()), vec![10]);
    assert!(store.read_stream_forward("s", 11, 10).await.unwrap().is_empty(), "past the end");
    assert!(store.read_stream_forward("s", 1, 0).await.unwrap().is_empty(), "count 0");

    // Paging by hand: next start = last version + 1.
    let mut seen = Vec::new();
    let mut start = 0;
    loop {
        let page = store.read_stream_forward("s", start, 4).await.unwrap();
        if page.is_empty() {
            break;
        }
        start = page.last().unwrap().event_number + 1;
        seen.extend(numbers(&page));
    }
    assert_eq!(seen, range(1, 10));
}

#[tokio::test]
async fn read_stream_backward_reads_from_the_end_or_from_a_version() {
    let store = TestStore::start().await;
    fill(&store, "s", 10).await;

    let all = store.read_stream_backward("s", None, 100).await.unwrap();
    assert_eq!(numbers(&all), rev(10, 1));
    assert_eq!(all.iter().map(n_of).collect::<Vec<_>>(), rev(10, 1));
    assert_eq!(numbers(&store.read_stream_backward("s", None, 3).await.unwrap()), rev(10, 8));
    assert_eq!(numbers(&store.read_stream_backward("s", Some(5), 3).await.unwrap()), rev(5, 3));
    assert_eq!(numbers(&store.read_stream_backward("s", Some(2), 10).await.unwrap()), rev(2, 1));
    assert_eq!(numbers(&store.read_stream_backward("s", Some(1), 10).await.unwrap()), vec![1]);
    assert_eq!(numbers(&store.read_stream_backward("s", Some(50), 2).await.unwrap()), rev(10, 9), "past the end");
    assert!(store.read_stream_backward("s", Some(0), 10).await.unwrap().is_empty(), "before the first event");
    assert!(store.read_stream_backward("s", None, 0).await.unwrap().is_empty(), "count 0");
}

#[tokio::test]
async fn read_all_forward_pages_by_global_position() {
    let store = TestStore::start().await;
    for i in 0..9u64 {
        let stream = ["a", "b", "c"][i as usize % 3];
        store.append_to_stream(stream, ExpectedVersion::Any, vec![event("E", i + 1)]).await.unwrap();
    }
    let all = store.read_all_forward(0, 100).await.unwrap();
    assert_eq!(numbers(&all), range(1, 9));
    assert_eq!(all.iter().map(n_of).collect::<Vec<_>>(), range(1, 9));
    assert_eq!(store.read_all_forward(1, 100).await.unwrap(), all, "start 0 and 1 read the same");
    assert_eq!(numbers(&store.read_all_forward(0, 4).await.unwrap()), range(1, 4));
    assert_eq!(numbers(&store.read_all_forward(5, 4).await.unwrap()), range(5, 8));
    assert_eq!(numbers(&store.read_all_forward(9, 4).await.unwrap()), vec![9]);
    assert!(store.read_all_forward(10, 4).await.unwrap().is_empty());
    assert!(store.read_all_forward(0, 0).await.unwrap().is_empty());
}

#[tokio::test]
async fn read_all_backward_reads_from_the_end_or_from_a_position() {
    let store = TestStore::start().await;
    fill(&store, "a", 4).await;
    fill(&store, "b", 4).await;
    assert_eq!(numbers(&store.read_all_backward(None, 100).await.unwrap()), rev(8, 1));
    assert_eq!(numbers(&store.read_all_backward(None, 3).await.unwrap()), rev(8, 6));
    assert_eq!(numbers(&store.read_all_backward(Some(5), 3).await.unwrap()), rev(5, 3));
    assert_eq!(numbers(&store.read_all_backward(Some(2), 3).await.unwrap()), rev(2, 1));
    assert_eq!(numbers(&store.read_all_backward(Some(100), 1).await.unwrap()), vec![8]);
    assert!(store.read_all_backward(Some(0), 3).await.unwrap().is_empty());
}

#[tokio::test]
async fn reading_an_unknown_stream_is_stream_not_found() {
    let store = TestStore::start().await;
    fill(&store, "known", 1).await;
    assert!(matches!(store.read_stream_forward("unknown", 0, 10).await, Err(Error::StreamNotFound)));
    assert!(matches!(store.read_stream_backward("unknown", None, 10).await, Err(Error::StreamNotFound)));
    assert!(matches!(store.read_stream_forward("Known", 0, 10).await, Err(Error::StreamNotFound)), "case matters");
    let first = store.stream_forward("unknown", 0, 10).next().await;
    assert!(matches!(first, Some(Err(Error::StreamNotFound))), "got {first:?}");
    let first = store.stream_backward("unknown", None, 10).next().await;
    assert!(matches!(first, Some(Err(Error::StreamNotFound))), "got {first:?}");
}

#[tokio::test]
async fn reading_a_soft_deleted_stream_is_stream_deleted_but_its_events_stay_in_all() {
    let store = TestStore::start().await;
    fill(&store, "gone", 2).await;
    fill(&store, "kept", 1).await;
    store.delete_stream("gone", ExpectedVersion::Any, DeleteMode::Soft).await.unwrap();
    assert!(matches!(store.read_stream_forward("gone", 0, 10).await, Err(Error::StreamDeleted)));
    assert!(matches!(store.read_stream_backward("gone", None, 10).await, Err(Error::StreamDeleted)));
    let all = store.read_all_forward(0, 10).await.unwrap();
    assert_eq!(all.iter().map(|e| e.stream_uuid.as_str()).collect::<Vec<_>>(), vec!["gone", "gone", "kept"]);
}

#[tokio::test]
async fn an_empty_store_reads_all_as_empty() {
    let store = TestStore::start().await;
    assert_eq!(store.read_all_forward(0, 100).await.unwrap(), vec![]);
    assert_eq!(store.read_all_backward(None, 100).await.unwrap(), vec![]);
    assert_eq!(store.read_stream_forward(ALL, 0, 100).await.unwrap(), vec![]);
    assert_eq!(store.read_stream_backward(ALL, None, 100).await.unwrap(), vec![]);
    assert!(collect(store.stream_all_forward(0, 10)).await.is_empty());
    assert!(collect(store.stream_all_backward(None, 10)).await.is_empty());
}

#[tokio::test]
async fn reading_the_all_stream_by_name_reads_like_read_all() {
    let store = TestStore::start().await;
    fill(&store, "a", 3).await;
    fill(&store, "b", 3).await;
    fill(&store, "a", 1).await;
    assert_eq!(store.read_stream_forward(ALL, 0, 100).await.unwrap(), store.read_all_forward(0, 100).await.unwrap());
    assert_eq!(store.read_stream_forward(ALL, 3, 2).await.unwrap(), store.read_all_forward(3, 2).await.unwrap());
    assert_eq!(numbers(&store.read_stream_forward(ALL, 3, 2).await.unwrap()), vec![3, 4]);
    assert_eq!(
        store.read_stream_backward(ALL, None, 100).await.unwrap(),
        store.read_all_backward(None, 100).await.unwrap()
    );
    assert_eq!(
        store.read_stream_backward(ALL, Some(5), 2).await.unwrap(),
        store.read_all_backward(Some(5), 2).await.unwrap()
    );
    assert_eq!(numbers(&collect(store.stream_forward(ALL, 0, 2)).await), range(1, 7));
}

#[tokio::test]
async fn event_number_is_the_stream_version_in_stream_reads_and_the_global_position_in_all() {
    let store = TestStore::start().await;
    // Positions: a1=1 b1=2 a2=3 b2=4 a3=5
    for stream in ["a", "b", "a", "b", "a"] {
        store.append_to_stream(stream, ExpectedVersion::Any, vec![event("E", 0)]).await.unwrap();
    }
    let a = store.read_stream_forward("a", 0, 10).await.unwrap();
    assert_eq!(numbers(&a), vec![1, 2, 3]);
    assert_eq!(a.iter().map(|e| e.stream_version).collect::<Vec<_>>(), vec![1, 2, 3]);
    assert_eq!(a.iter().map(|e| e.global_position).collect::<Vec<_>>(), vec![1, 3, 5]);

    let all = store.read_all_forward(0, 10).await.unwrap();
    assert_eq!(numbers(&all), range(1, 5));
    assert_eq!(
        all.iter().map(|e| (e.stream_uuid.as_str(), e.stream_version)).collect::<Vec<_>>(),
        vec![("a", 1), ("b", 1), ("a", 2), ("b", 2), ("a", 3)]
    );
    assert!(all.iter().all(|e| e.global_position == e.event_number));
    // The same event read both ways differs only in event_number.
    let mut from_all = all[2].clone();
    from_all.event_number = a[1].event_number;
    assert_eq!(from_all, a[1]);
}

// ---------------------------------------------------------------------------------------------
// lazy streams

/// More entries than any test stores.
const COLLECT_LIMIT: usize = 10_000;

/// Collects a lazy stream, bounded so that a stream that never ends (repeating entries) fails
/// the test instead of hanging it.
async fn collect(s: impl futures::Stream<Item = chronik::Result<RecordedEvent>>) -> Vec<RecordedEvent> {
    s.take(COLLECT_LIMIT).try_collect().await.expect("stream reads")
}

#[tokio::test]
async fn stream_forward_crosses_batch_boundaries_without_gaps_or_duplicates() {
    let store = TestStore::start().await;
    fill(&store, "s25", 25).await;
    fill(&store, "s20", 20).await;
    for batch in [1, 3, 10, 24, 25, 26, 1000] {
        assert_eq!(numbers(&collect(store.stream_forward("s25", 0, batch)).await), range(1, 25), "s25 batch {batch}");
    }
    for batch in [10, 5, 20, 1] {
        assert_eq!(numbers(&collect(store.stream_forward("s20", 0, batch)).await), range(1, 20), "s20 batch {batch}");
    }
    assert_eq!(numbers(&collect(store.stream_forward("s25", 7, 10)).await), range(7, 25));
    assert_eq!(numbers(&collect(store.stream_forward("s25", 1, 10)).await), range(1, 25));
    assert!(collect(store.stream_forward("s25", 26, 10)).await.is_empty());
    let payloads: Vec<u64> = collect(store.stream_forward("s25", 0, 10)).await.iter().map(n_of).collect();
    assert_eq!(payloads, range(1, 25));
}

#[tokio::test]
async fn stream_backward_crosses_batch_boundaries_without_gaps_or_duplicates() {
    let store = TestStore::start().await;
    fill(&store, "s25", 25).await;
    fill(&store, "s20", 20).await;
    for batch in [1, 3, 10, 25, 26] {
        assert_eq!(numbers(&collect(store.stream_backward("s25", None, batch)).await), rev(25, 1), "batch {batch}");
    }
    for batch in [10, 5, 20] {
        assert_eq!(numbers(&collect(store.stream_backward("s20", None, batch)).await), rev(20, 1), "batch {batch}");
    }
    assert_eq!(numbers(&collect(store.stream_backward("s25", Some(17), 5)).await), rev(17, 1));
    assert_eq!(numbers(&collect(store.stream_backward("s25", Some(10), 10)).await), rev(10, 1));
}

#[tokio::test]
async fn stream_all_forward_and_backward_cross_batch_boundaries_without_gaps_or_duplicates() {
    let store = TestStore::start().await;
    for i in 0..25u64 {
        let stream = format!("s-{}", i % 4);
        store.append_to_stream(&stream, ExpectedVersion::Any, vec![event("E", i + 1)]).await.unwrap();
    }
    for batch in [1, 7, 10, 25, 100] {
        let forward = collect(store.stream_all_forward(0, batch)).await;
        assert_eq!(numbers(&forward), range(1, 25), "forward batch {batch}");
        assert_eq!(forward.iter().map(n_of).collect::<Vec<_>>(), range(1, 25));
        assert_eq!(numbers(&collect(store.stream_all_backward(None, batch)).await), rev(25, 1), "back {batch}");
    }
    assert_eq!(numbers(&collect(store.stream_all_forward(11, 10)).await), range(11, 25));
    assert_eq!(numbers(&collect(store.stream_all_backward(Some(20), 10)).await), rev(20, 1));

    // Exact multiple of the batch size.
    fill(&store, "more", 15).await; // now 40 events
    assert_eq!(numbers(&collect(store.stream_all_forward(0, 10)).await), range(1, 40));
    assert_eq!(numbers(&collect(store.stream_all_forward(0, 20)).await), range(1, 40));
    assert_eq!(numbers(&collect(store.stream_all_backward(None, 10)).await), rev(40, 1));
}

#[tokio::test]
async fn lazy_streams_can_be_consumed_partially() {
    let store = TestStore::start().await;
    fill(&store, "s", 30).await;
    let first: Vec<RecordedEvent> = store.stream_forward("s", 0, 4).take(6).try_collect().await.unwrap();
    assert_eq!(numbers(&first), range(1, 6));
    let last: Vec<RecordedEvent> = store.stream_all_backward(None, 4).take(5).try_collect().await.unwrap();
    assert_eq!(numbers(&last), rev(30, 26));
}

#[tokio::test]
async fn lazy_streams_with_batch_size_zero_are_invalid() {
    let store = TestStore::start().await;
    fill(&store, "s", 3).await;
    assert_invalid_mentioning(store.stream_forward("s", 0, 0).try_collect::<Vec<_>>().await, "batch_size");
    assert_invalid_mentioning(store.stream_all_forward(0, 0).try_collect::<Vec<_>>().await, "batch_size");
}

#[tokio::test]
async fn stream_all_skips_hard_delete_holes_without_duplicates() {
    let store = TestStore::start_with(|c| c.enable_hard_deletes(true)).await;
    // Positions 1..=12; "doomed" holds 3, 6, 9, 12 (including the head).
    for i in 0..12u64 {
        let stream = ["keep-1", "keep-2", "doomed"][i as usize % 3];
        store.append_to_stream(stream, ExpectedVersion::Any, vec![event("E", i + 1)]).await.unwrap();
    }
    store.delete_stream("doomed", ExpectedVersion::Any, DeleteMode::Hard).await.unwrap();
    let survivors = vec![1, 2, 4, 5, 7, 8, 10, 11];
    let mut survivors_back = survivors.clone();
    survivors_back.reverse();

    assert_eq!(numbers(&store.read_all_forward(0, 100).await.unwrap()), survivors);
    for batch in [1, 2, 3, 4, 8, 100] {
        let forward = collect(store.stream_all_forward(0, batch)).await;
        assert_eq!(numbers(&forward), survivors, "forward batch {batch}");
        assert_eq!(forward.iter().map(n_of).collect::<Vec<_>>(), survivors, "payloads, batch {batch}");
        assert!(forward.iter().all(|e| e.stream_uuid != "doomed"));
        assert_eq!(numbers(&collect(store.stream_all_backward(None, batch)).await), survivors_back, "back {batch}");
    }
    assert_eq!(numbers(&collect(store.stream_all_forward(3, 2)).await), vec![4, 5, 7, 8, 10, 11]);
    assert_eq!(numbers(&collect(store.stream_all_backward(Some(9), 2)).await), vec![8, 7, 5, 4, 2, 1]);

    // The deleted stream is gone; positions are never reused.
    assert!(matches!(store.read_stream_forward("doomed", 0, 10).await, Err(Error::StreamNotFound)));
    assert!(matches!(store.stream_info("doomed").await, Err(Error::StreamNotFound)));
    assert_eq!(store.stream_info(ALL).await.unwrap().stream_version, 12);
    let r = store.append_to_stream("keep-1", ExpectedVersion::Any, vec![event("E", 13)]).await.unwrap();
    assert_eq!((r.first_position, r.stream_version), (13, 5));
    let mut expected = survivors;
    expected.push(13);
    assert_eq!(numbers(&collect(store.stream_all_forward(0, 3)).await), expected);
}

// ---------------------------------------------------------------------------------------------
// stream_info

#[tokio::test]
async fn stream_info_reports_version_status_and_creation_time() {
    let store = TestStore::start().await;
    let before = Utc::now() - Duration::seconds(5);
    fill(&store, "other", 1).await;
    fill(&store, "acc-1", 3).await;
    fill(&store, "acc-1", 2).await;
    let after = Utc::now() + Duration::seconds(5);

    let info = store.stream_info("acc-1").await.unwrap();
    assert_eq!(info.stream_uuid, "acc-1");
    assert_eq!(info.stream_version, 5);
    assert_eq!(info.status, StreamStatus::Created);
    assert_eq!(info.deleted_at, None);
    assert!(info.stream_id > 0);
    assert_ne!(info.stream_id, store.stream_info("other").await.unwrap().stream_id);
    assert!(info.created_at > before && info.created_at < after, "created_at {}", info.created_at);
    let first_event = &store.read_stream_forward("acc-1", 0, 1).await.unwrap()[0];
    assert!(info.created_at <= first_event.created_at + Duration::milliseconds(1));

    store.delete_stream("acc-1", ExpectedVersion::Exact(5), DeleteMode::Soft).await.unwrap();
    let deleted = store.stream_info("acc-1").await.unwrap();
    assert_eq!(deleted.status, StreamStatus::Deleted);
    assert!(deleted.deleted_at.is_some_and(|at| at > before && at < Utc::now() + Duration::seconds(5)));
    assert_eq!(deleted.stream_version, 5);
}

#[tokio::test]
async fn stream_info_of_all_reports_the_last_global_position() {
    let store = TestStore::start().await;
    let empty = store.stream_info(ALL).await.unwrap();
    assert_eq!((empty.stream_uuid.as_str(), empty.stream_id, empty.stream_version), (ALL, 0, 0));
    assert_eq!(empty.status, StreamStatus::Created);

    fill(&store, "a", 3).await;
    fill(&store, "b", 4).await;
    let info = store.stream_info(ALL).await.unwrap();
    assert_eq!((info.stream_uuid.as_str(), info.stream_id, info.stream_version), (ALL, 0, 7));
    let last = store.read_all_backward(None, 1).await.unwrap();
    assert_eq!(info.stream_version, last[0].event_number);
}

#[tokio::test]
async fn stream_info_of_an_unknown_stream_is_stream_not_found() {
    let store = TestStore::start().await;
    assert!(matches!(store.stream_info("nope").await, Err(Error::StreamNotFound)));
    fill(&store, "yes", 1).await;
    assert!(matches!(store.stream_info("nope").await, Err(Error::StreamNotFound)));
    assert!(matches!(store.stream_info("YES").await, Err(Error::StreamNotFound)));
}

#[tokio::test]
async fn recorded_events_have_a_created_at_close_to_now() {
    let store = TestStore::start().await;
    let before = Utc::now();
    fill(&store, "s", 3).await;
    let after = Utc::now();
    for e in store.read_all_forward(0, 10).await.unwrap() {
        assert!(e.created_at >= before - Duration::seconds(2), "{} before {before}", e.created_at);
        assert!(e.created_at <= after + Duration::seconds(2), "{} after {after}", e.created_at);
    }
}

// ---------------------------------------------------------------------------------------------
// paginate_streams

#[tokio::test]
async fn paginate_streams_on_an_empty_store_is_an_empty_page() {
    let store = TestStore::start().await;
    let page = store.paginate_streams(PageRequest::default()).await.unwrap();
    assert!(page.entries.is_empty());
    assert_eq!((page.page_number, page.page_size, page.total_entries, page.total_pages), (1, 50, 0, 0));
}

#[tokio::test]
async fn paginate_streams_never_lists_all() {
    let store = TestStore::start().await;
    create_streams(&store, &["a", "b"]).await;
    let page = store.paginate_streams(PageRequest::default()).await.unwrap();
    assert_eq!(names(&page), vec!["a", "b"]);
    assert_eq!(page.total_entries, 2);
    assert!(page.entries.iter().all(|s| s.stream_uuid != ALL && s.stream_id != 0));
    let searched = store.paginate_streams(PageRequest::default().search("all")).await.unwrap();
    assert!(searched.entries.is_empty(), "{:?}", names(&searched));
    assert_eq!(searched.total_entries, 0);
}

#[tokio::test]
async fn paginate_streams_search_is_a_case_insensitive_substring_match() {
    let store = TestStore::start().await;
    create_streams(&store, &["Account-1", "ACCOUNT-2", "order-1", "sub-account-3", "acc"]).await;
    for search in ["account", "ACCOUNT", "cCoUnT"] {
        let page = store.paginate_streams(PageRequest::default().search(search)).await.unwrap();
        assert_eq!(names(&page), vec!["Account-1", "ACCOUNT-2", "sub-account-3"], "search {search:?}");
        assert_eq!((page.total_entries, page.total_pages), (3, 1));
    }
    let page = store.paginate_streams(PageRequest::default().search("-1")).await.unwrap();
    assert_eq!(names(&page), vec!["Account-1", "order-1"]);
    let page = store.paginate_streams(PageRequest::default().search("zzz")).await.unwrap();
    assert!(page.entries.is_empty());
    assert_eq!((page.total_entries, page.total_pages), (0, 0));
    let page = store.paginate_streams(PageRequest::default().search("")).await.unwrap();
    assert_eq!(page.total_entries, 5, "an empty search matches everything");
}

#[tokio::test]
async fn paginate_streams_search_treats_wildcards_literally() {
    let store = TestStore::start().await;
    create_streams(&store, &["100%-done", "100x-done", "a_b", "axb", r"back\slash", "plain"]).await;
    let search = |text: &str| {
        let store = store.store.clone();
        let text = text.to_string();
        async move { store.paginate_streams(PageRequest::default().search(text)).await.unwrap() }
    };
    assert_eq!(names(&search("%").await), vec!["100%-done"]);
    assert_eq!(names(&search("100%").await), vec!["100%-done"]);
    assert_eq!(names(&search("_").await), vec!["a_b"]);
    assert_eq!(names(&search("a_b").await), vec!["a_b"]);
    assert_eq!(names(&search(r"\").await), vec![r"back\slash"]);
    assert_eq!(names(&search(r"k\s").await), vec![r"back\slash"]);
    assert!(search("%%").await.entries.is_empty());
}

#[tokio::test]
async fn paginate_streams_pages_and_counts_totals() {
    let store = TestStore::start().await;
    let all = ["s1", "s2", "s3", "s4", "s5", "s6", "s7"];
    create_streams(&store, &all).await;

    let mut listed = Vec::new();
    for (page_number, expected_len) in [(1, 3), (2, 3), (3, 1)] {
        let page = store.paginate_streams(PageRequest::default().page(page_number).page_size(3)).await.unwrap();
        assert_eq!(page.entries.len(), expected_len, "page {page_number}");
        assert_eq!((page.page_number, page.page_size), (page_number, 3));
        assert_eq!((page.total_entries, page.total_pages), (7, 3));
        listed.extend(names(&page).into_iter().map(String::from));
    }
    assert_eq!(listed, all, "pages cover every stream once, in creation order");

    let past_end = store.paginate_streams(PageRequest::default().page(4).page_size(3)).await.unwrap();
    assert!(past_end.entries.is_empty());
    assert_eq!((past_end.page_number, past_end.total_entries, past_end.total_pages), (4, 7, 3));

    let exact = store.paginate_streams(PageRequest::default().page_size(7)).await.unwrap();
    assert_eq!((exact.entries.len(), exact.total_pages), (7, 1));
    let single = store.paginate_streams(PageRequest::default().page(5).page_size(1)).await.unwrap();
    assert_eq!((names(&single), single.total_pages), (vec!["s5"], 7));

    // Totals count the filtered streams only.
    store.append_to_stream("other", ExpectedVersion::NoStream, vec![event("E", 1)]).await.unwrap();
    let filtered = store.paginate_streams(PageRequest::default().search("s").page(2).page_size(5)).await.unwrap();
    assert_eq!(names(&filtered), vec!["s6", "s7"]);
    assert_eq!((filtered.total_entries, filtered.total_pages), (7, 2));
}

#[tokio::test]
async fn paginate_streams_sorts_by_the_requested_column_and_direction() {
    let store = TestStore::start().await;
    // Created in this order, with these versions.
    for (name, count) in [("s-c", 2), ("s-a", 5), ("s-d", 1), ("s-b", 3)] {
        store.append_to_stream(name, ExpectedVersion::NoStream, events("E", 1, count)).await.unwrap();
    }
    let sorted = |by: SortBy, direction: SortDirection| {
        let store = store.store.clone();
        async move {
            let page = store.paginate_streams(PageRequest::default().sort_by(by).sort_direction(direction)).await;
            page.unwrap().entries.into_iter().map(|s| s.stream_uuid).collect::<Vec<_>>()
        }
    };
    use SortDirection::{Ascending, Descending};
    assert_eq!(sorted(SortBy::StreamId, Ascending).await, ["s-c", "s-a", "s-d", "s-b"]);
    assert_eq!(sorted(SortBy::StreamId, Descending).await, ["s-b", "s-d", "s-a", "s-c"]);
    assert_eq!(sorted(SortBy::StreamUuid, Ascending).await, ["s-a", "s-b", "s-c", "s-d"]);
    assert_eq!(sorted(SortBy::StreamUuid, Descending).await, ["s-d", "s-c", "s-b", "s-a"]);
    assert_eq!(sorted(SortBy::StreamVersion, Ascending).await, ["s-d", "s-c", "s-b", "s-a"]);
    assert_eq!(sorted(SortBy::StreamVersion, Descending).await, ["s-a", "s-b", "s-c", "s-d"]);
    assert_eq!(sorted(SortBy::CreatedAt, Ascending).await, ["s-c", "s-a", "s-d", "s-b"]);
    assert_eq!(sorted(SortBy::CreatedAt, Descending).await, ["s-b", "s-d", "s-a", "s-c"]);

    // Sorting applies before paging.
    let page = store
        .paginate_streams(
            PageRequest::default().sort_by(SortBy::StreamVersion).sort_direction(Descending).page(2).page_size(2),
        )
        .await
        .unwrap();
    assert_eq!(names(&page), vec!["s-c", "s-d"]);
    assert_eq!(page.entries.iter().map(|s| s.stream_version).collect::<Vec<_>>(), vec![2, 1]);
}

#[tokio::test]
async fn paginate_streams_lists_soft_deleted_streams_unless_asked_not_to() {
    let store = TestStore::start().await;
    create_streams(&store, &["live", "dead"]).await;
    store.delete_stream("dead", ExpectedVersion::Any, DeleteMode::Soft).await.unwrap();
    let page = store.paginate_streams(PageRequest::default()).await.unwrap();
    assert_eq!(names(&page), vec!["live", "dead"]);
    assert_eq!(page.entries[1].status, StreamStatus::Deleted);
    assert_eq!(page.entries[0].status, StreamStatus::Created);
    let page = store.paginate_streams(PageRequest::default().include_deleted(false)).await.unwrap();
    assert_eq!(names(&page), vec!["live"]);
    assert_eq!(page.total_entries, 1);
}

#[tokio::test]
async fn stream_count_counts_what_the_default_page_lists() {
    let store = TestStore::start().await;
    assert_eq!(store.stream_count().await.unwrap(), 0);
    create_streams(&store, &["live", "dead", "gone"]).await;
    store.delete_stream("dead", ExpectedVersion::Any, DeleteMode::Soft).await.unwrap();
    store.delete_stream("gone", ExpectedVersion::Any, DeleteMode::Recreatable).await.unwrap();
    let page = store.paginate_streams(PageRequest::default()).await.unwrap();
    assert_eq!(store.stream_count().await.unwrap(), page.total_entries, "{:?}", names(&page));
    assert_eq!(page.total_entries, 3, "soft-deleted and emptied streams are listed by default, $all never");
}

#[tokio::test]
async fn paginate_streams_rejects_page_zero_and_bad_page_sizes() {
    let store = TestStore::start().await;
    create_streams(&store, &["a"]).await;
    assert_invalid_mentioning(store.paginate_streams(PageRequest::default().page(0)).await, "page");
    assert_invalid_mentioning(store.paginate_streams(PageRequest::default().page_size(0)).await, "page_size");
    assert_invalid_mentioning(store.paginate_streams(PageRequest::default().page_size(1_001)).await, "page_size");
    let max = store.paginate_streams(PageRequest::default().page_size(1_000)).await.unwrap();
    assert_eq!(names(&max), vec!["a"]);
}
