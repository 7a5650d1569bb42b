//! Terminated database sessions never produce a false `Ok` (nor a lost one), and the pool
//! recovers. The backend-neutral failures (a killed writer, shutdown) are in
//! `conformance/writer_failure.rs`.
//!
//! PostgreSQL only: the faults are injected with raw SQL (terminating the store's sessions).

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chronik::ExpectedVersion;
use common::*;

/// The backend of every store in this binary.
const BACKEND: common::Backend = common::Backend::Postgres;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminated_database_sessions_fail_appends_cleanly_and_the_pool_recovers() {
    let store = TestStore::start().await;
    let stop = Arc::new(AtomicBool::new(false));
    let load = tokio::spawn({
        let (store, stop) = (store.store.clone(), Arc::clone(&stop));
        async move { append_until(&store, 20, stop).await }
    });

    let mut admin = raw_connection().await;
    let name = chronik::testing::application_name(&store.config.schema);
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
