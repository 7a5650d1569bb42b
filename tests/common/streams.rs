//! Reading a whole stream or `$all` back, and asserting what a store holds (the append tests,
//! on one node and on two).

use chronik::{ALL, EventStore, ExpectedVersion, RecordedEvent};

use super::events;

/// Everything in `$all`.
pub async fn all_events(store: &EventStore) -> Vec<RecordedEvent> {
    store.read_all_forward(0, 1_000_000).await.expect("read $all")
}

/// Everything in one stream.
pub async fn stream_events(store: &EventStore, stream: &str) -> Vec<RecordedEvent> {
    store.read_stream_forward(stream, 0, 1_000_000).await.expect("read stream")
}

/// The `n` of a `{"n": n}` payload written by `common::event`.
pub fn n_of(e: &RecordedEvent) -> u64 {
    e.decode::<serde_json::Value>().expect("json payload")["n"].as_u64().expect("n")
}

pub fn versions(evs: &[RecordedEvent]) -> Vec<u64> {
    evs.iter().map(|e| e.stream_version).collect()
}

pub fn positions(evs: &[RecordedEvent]) -> Vec<u64> {
    evs.iter().map(|e| e.event_number).collect()
}

/// Asserts the store holds exactly `count` events in `$all` and that the head did not move.
pub async fn assert_all_holds(store: &EventStore, count: u64) {
    let all = all_events(store).await;
    assert_eq!(all.len() as u64, count, "events in $all");
    assert_eq!(positions(&all), (1..=count).collect::<Vec<_>>(), "positions in $all");
    assert_eq!(store.stream_info(ALL).await.expect("$all info").stream_version, count, "$all head");
}

/// Asserts `stream` holds exactly the events numbered `ns` (payload `n`), at versions 1..
pub async fn assert_stream_holds(store: &EventStore, stream: &str, ns: &[u64]) {
    let evs = stream_events(store, stream).await;
    assert_eq!(evs.iter().map(n_of).collect::<Vec<_>>(), ns, "payloads of {stream}");
    assert_eq!(versions(&evs), (1..=ns.len() as u64).collect::<Vec<_>>(), "versions of {stream}");
    assert_eq!(store.stream_info(stream).await.expect("stream info").stream_version, ns.len() as u64);
}

/// A stream with `count` events (payloads 1..=count).
pub async fn seeded(store: &EventStore, stream: &str, count: u64) {
    let r = store.append_to_stream(stream, ExpectedVersion::NoStream, events("Seed", 1, count)).await.unwrap();
    assert_eq!(r.stream_version, count);
}
