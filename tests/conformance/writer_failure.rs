//! Failures of the runtime: a killed writer actor never produces a false `Ok` (nor a lost one)
//! and the store keeps working; a shutdown commits what is queued. Terminated database
//! sessions are PostgreSQL's (`tests/writer_failure.rs`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chronik::{Error, EventStore, ExpectedVersion};

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_writer_never_yields_a_false_ok_and_the_store_recovers() {
    let store = TestStore::start().await;
    let stop = Arc::new(AtomicBool::new(false));
    let load = tokio::spawn({
        let (store, stop) = (store.store.clone(), Arc::clone(&stop));
        async move { append_until(&store, 20, stop).await }
    });

    let killed = crate::common::kill_writer_repeatedly(&store, 5).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::SeqCst);
    let outcomes = load.await.unwrap();

    assert!(outcomes.iter().any(|(_, o)| o.is_ok()));
    assert_outcomes_match_storage(&store, &outcomes).await;
    let restarted = chronik::testing::writer_actor(&store).expect("a writer runs again");
    assert!(!killed.contains(&restarted.get_id()));
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
