//! Helpers of the failure tests: a load of concurrent single-event appends, and the check that
//! every outcome a caller got matches what is stored.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use chronik::{AppendResult, Error, EventStore, ExpectedVersion, RecordedEvent};
use uuid::Uuid;

use super::event;

/// Kills the store's writer `times` times, every 60 ms, each time the incarnation the
/// supervisor started after the last kill; the ids of the killed ones.
pub async fn kill_writer_repeatedly(store: &EventStore, times: usize) -> Vec<ractor::ActorId> {
    let mut killed = Vec::new();
    for _ in 0..times {
        tokio::time::sleep(std::time::Duration::from_millis(60)).await;
        let writer = loop {
            match chronik::testing::writer_actor(store) {
                Some(w) if !killed.contains(&w.get_id()) => break w,
                _ => tokio::time::sleep(std::time::Duration::from_millis(5)).await,
            }
        };
        killed.push(writer.get_id());
        writer.kill();
    }
    killed
}

/// Appends single events from `writers` tasks until `stop` is set; returns every attempt's id
/// and outcome.
pub async fn append_until(
    store: &EventStore,
    writers: usize,
    stop: Arc<AtomicBool>,
) -> Vec<(Uuid, Result<AppendResult, Error>)> {
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            let (store, stop) = (store.clone(), Arc::clone(&stop));
            tokio::spawn(async move {
                let mut outcomes = Vec::new();
                let mut n = 0;
                while !stop.load(Ordering::SeqCst) {
                    let e = event("E", n);
                    let id = e.event_id;
                    let outcome = store.append_to_stream(&format!("s-{}", w % 5), ExpectedVersion::Any, vec![e]).await;
                    outcomes.push((id, outcome));
                    n += 1;
                }
                outcomes
            })
        })
        .collect();
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.expect("writer task"));
    }
    all
}

/// Every `Ok` is stored exactly where it says; every `Err` stored nothing; nothing else is stored.
pub async fn assert_outcomes_match_storage(store: &EventStore, outcomes: &[(Uuid, Result<AppendResult, Error>)]) {
    let stored: Vec<RecordedEvent> = store.read_all_forward(0, 1_000_000).await.unwrap();
    let by_id: HashMap<Uuid, &RecordedEvent> = stored.iter().map(|e| (e.event_id, e)).collect();
    assert_eq!(by_id.len(), stored.len(), "an event is stored twice");
    let mut oks = 0;
    for (id, outcome) in outcomes {
        match outcome {
            Ok(r) => {
                oks += 1;
                let e = by_id.get(id).unwrap_or_else(|| panic!("false Ok: {id} reported {r:?} but is not stored"));
                assert_eq!((e.global_position, e.stream_version), (r.first_position, r.stream_version));
            }
            Err(err) => {
                assert!(matches!(err, Error::Unavailable(_)), "unexpected error kind: {err}");
                assert!(!by_id.contains_key(id), "false error: {id} failed with `{err}` but is stored");
            }
        }
    }
    assert_eq!(oks, stored.len(), "stored events that no caller was told about");
    let positions: Vec<u64> = stored.iter().map(|e| e.global_position).collect();
    assert_eq!(positions, (1..=stored.len() as u64).collect::<Vec<_>>(), "$all has gaps");
}
