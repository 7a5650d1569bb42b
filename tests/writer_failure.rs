//! Failure of the runtime and of connections: a killed writer actor and terminated database
//! sessions never produce a false `Ok` (nor a lost one), and the store keeps working.
//!
//! PostgreSQL only: the faults are injected with raw SQL (terminating the store's sessions).

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chronik::{AppendResult, Error, EventStore, ExpectedVersion, RecordedEvent};
use common::*;
use uuid::Uuid;

/// The backend of every store in this binary.
const BACKEND: common::Backend = common::Backend::Postgres;

/// Appends single events from `writers` tasks until `stop` is set; returns every attempt's id
/// and outcome.
async fn append_until(
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
async fn assert_outcomes_match_storage(store: &EventStore, outcomes: &[(Uuid, Result<AppendResult, Error>)]) {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_writer_never_yields_a_false_ok_and_the_store_recovers() {
    let store = TestStore::start().await;
    let stop = Arc::new(AtomicBool::new(false));
    let load = tokio::spawn({
        let (store, stop) = (store.store.clone(), Arc::clone(&stop));
        async move { append_until(&store, 20, stop).await }
    });

    let mut killed = Vec::new();
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(60)).await;
        let writer = loop {
            match store.writer_actor() {
                Some(w) if !killed.contains(&w.get_id()) => break w,
                _ => tokio::time::sleep(Duration::from_millis(5)).await,
            }
        };
        killed.push(writer.get_id());
        writer.kill();
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::SeqCst);
    let outcomes = load.await.unwrap();

    assert!(outcomes.iter().any(|(_, o)| o.is_ok()));
    assert_outcomes_match_storage(&store, &outcomes).await;
    let restarted = store.writer_actor().expect("a writer runs again");
    assert!(!killed.contains(&restarted.get_id()));
    let r = store.append_to_stream("after", ExpectedVersion::NoStream, events("E", 1, 1)).await.unwrap();
    assert_eq!(r.stream_version, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminated_database_sessions_fail_appends_cleanly_and_the_pool_recovers() {
    let store = TestStore::start().await;
    let stop = Arc::new(AtomicBool::new(false));
    let load = tokio::spawn({
        let (store, stop) = (store.store.clone(), Arc::clone(&stop));
        async move { append_until(&store, 20, stop).await }
    });

    let mut admin = raw_connection().await;
    let name = chronik::storage::postgres::application_name(&store.config.schema);
    let mut terminated = 0_i64;
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(60)).await;
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1) t",
        )
        .bind(&name)
        .fetch_one(&mut admin)
        .await
        .unwrap();
        terminated += n;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::SeqCst);
    let outcomes = load.await.unwrap();

    assert!(terminated > 0, "no session was terminated");
    assert_outcomes_match_storage(&store, &outcomes).await;
    let r = store.append_to_stream("after", ExpectedVersion::NoStream, events("E", 1, 1)).await.unwrap();
    assert_eq!(r.stream_version, 1);
}

#[tokio::test]
async fn shutdown_commits_queued_appends_and_later_calls_are_unavailable() {
    let store = TestStore::start().await;
    let pending: Vec<_> = (0..50)
        .map(|n| {
            let store = store.store.clone();
            tokio::spawn(async move { store.append_to_stream("s", ExpectedVersion::Any, events("E", n, 1)).await })
        })
        .collect();
    tokio::task::yield_now().await;
    store.shutdown().await.unwrap();
    let mut ok = 0;
    for p in pending {
        match p.await.unwrap() {
            Ok(_) => ok += 1,
            Err(e) => assert!(matches!(e, Error::Unavailable(_)), "{e}"),
        }
    }
    let err = store.read_all_forward(0, 10).await.unwrap_err();
    assert!(matches!(err, Error::Unavailable(_)), "{err}");
    store.shutdown().await.unwrap();

    let reopened = EventStore::start(store.config.clone()).await.unwrap();
    assert_eq!(reopened.read_all_forward(0, 100).await.unwrap().len(), ok);
    reopened.shutdown().await.unwrap();
}
