//! Named subscriptions under failure: a lost LISTEN connection, a restarted PostgreSQL server,
//! a second node taking over, a crashed subscription actor and a shutdown. Each test states
//! what a subscriber can rely on: every event after the persisted checkpoint is delivered again
//! (at-least-once, never a gap), and only the node holding the lock delivers.
//!
//! PostgreSQL only: the faults are injected with raw SQL and a private PostgreSQL server, and a
//! takeover needs several nodes on one database.

mod common;

use std::time::{Duration, Instant};

use chronik::{
    ALL, DropReason, EventStore, ExpectedVersion, Subscription, SubscriptionMessage, SubscriptionOptions,
    SubscriptionPhase,
};
use common::cluster::PrivateCluster;
use common::*;

/// The backend of every store in this binary.
const BACKEND: common::Backend = common::Backend::Postgres;

/// How long a takeover may take: a few retry intervals, with room for a loaded machine.
const TAKEOVER: Duration = Duration::from_secs(3);

/// Receives until `count` events arrived, acking each batch; returns their numbers. Nothing but
/// events and `CaughtUp` may arrive meanwhile.
async fn receive_acking(sub: &mut Subscription, count: usize) -> Vec<u64> {
    let mut got = Vec::new();
    while got.len() < count {
        match next(sub).await {
            SubscriptionMessage::Events(batch) => {
                sub.ack(&batch).await.expect("ack");
                got.extend(batch.iter().map(|e| e.event_number));
            }
            SubscriptionMessage::CaughtUp => {}
            other => panic!("events expected, got {other:?}"),
        }
    }
    got
}

/// Skips messages (acking events) until `Subscribed`; panics on `Dropped`.
async fn until_subscribed(sub: &mut Subscription, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match next_within(sub, left).await {
            SubscriptionMessage::Subscribed => return,
            SubscriptionMessage::Events(batch) => sub.ack(&batch).await.expect("ack"),
            SubscriptionMessage::CaughtUp => {}
            SubscriptionMessage::Dropped(reason) => panic!("dropped while waiting for Subscribed: {reason}"),
            other => panic!("unexpected {other:?}"),
        }
    }
}

/// After a `Subscribed`, receives (acking) until every event in `expected` arrived under the
/// latest ownership; returns the numbers delivered under it, in order. A further `Subscribed`
/// (ownership lost and retaken again) starts the collection over, as the subscriber would.
async fn receive_after_subscribed(sub: &mut Subscription, expected: std::ops::RangeInclusive<u64>) -> Vec<u64> {
    let mut got: Vec<u64> = Vec::new();
    while !expected.clone().all(|n| got.contains(&n)) {
        match next(sub).await {
            SubscriptionMessage::Events(batch) => {
                sub.ack(&batch).await.expect("ack");
                got.extend(batch.iter().map(|e| e.event_number));
            }
            SubscriptionMessage::Subscribed => got.clear(),
            SubscriptionMessage::CaughtUp => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    got
}

/// Nothing is delivered within `within`: no events, no new ownership. A `CaughtUp` may still
/// come (the end of a read the node did before it lost the subscription).
async fn expect_no_delivery(sub: &mut Subscription, within: Duration) {
    let deadline = tokio::time::Instant::now() + within;
    while let Ok(Some(msg)) = tokio::time::timeout_at(deadline, sub.recv()).await {
        assert_eq!(msg, SubscriptionMessage::CaughtUp, "expected no delivery");
    }
}

async fn info(store: &EventStore, name: &str) -> chronik::SubscriptionInfo {
    let all = store.list_subscriptions().await.expect("list subscriptions");
    all.into_iter().find(|s| s.stream == ALL && s.name == name).expect("subscription stored")
}

/// Waits until some session owns the subscription; returns its pid.
async fn owner_pid(store: &EventStore, name: &str) -> i32 {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(pid) = info(store, name).await.owner_pid {
            return pid;
        }
        assert!(Instant::now() < deadline, "nobody owns subscription {name}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn wait_for_phase(store: &EventStore, name: &str, phase: SubscriptionPhase) {
    let deadline = Instant::now() + WAIT;
    loop {
        let status = store.subscription_status(ALL, name).await.expect("subscription runs here");
        if status.phase == phase {
            return;
        }
        assert!(Instant::now() < deadline, "subscription {name} is still {:?}, not {phase:?}", status.phase);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The pids of the store's sessions whose last statement was a LISTEN.
async fn listen_pids(admin: &mut sqlx::PgConnection, schema: &str) -> Vec<i32> {
    sqlx::query_scalar(
        "SELECT pid FROM pg_stat_activity WHERE application_name = $1 AND query LIKE 'LISTEN%' ORDER BY pid",
    )
    .bind(chronik::testing::application_name(schema))
    .fetch_all(admin)
    .await
    .expect("pg_stat_activity")
}

/// Waits until the store LISTENs on exactly one session other than `except`; returns its pid.
async fn listening_session(admin: &mut sqlx::PgConnection, schema: &str, except: Option<i32>) -> i32 {
    let deadline = Instant::now() + WAIT;
    loop {
        let pids: Vec<i32> = listen_pids(admin, schema).await.into_iter().filter(|p| Some(*p) != except).collect();
        match pids[..] {
            [pid] => return pid,
            [] => assert!(Instant::now() < deadline, "the store does not LISTEN"),
            _ => panic!("the store LISTENs on more than one session: {pids:?}"),
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Terminates a backend and waits until it is gone (its locks released).
async fn terminate(admin: &mut sqlx::PgConnection, pid: i32) {
    let done: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1, 5000)")
        .bind(pid)
        .fetch_one(admin)
        .await
        .expect("pg_terminate_backend");
    assert!(done, "backend {pid} did not terminate");
}

/// Appends, retrying while the store reconnects to a restarted server. A write whose outcome
/// was unknown and that did commit shows up as the stream already existing.
async fn append_retrying(store: &EventStore, stream: &str, events: Vec<chronik::EventData>) {
    let deadline = Instant::now() + WAIT;
    let mut retried = false;
    loop {
        match store.append_to_stream(stream, ExpectedVersion::NoStream, events.clone()).await {
            Ok(_) => break,
            Err(chronik::Error::WrongExpectedVersion { .. }) if retried => break,
            Err(chronik::Error::Unavailable(why)) => {
                assert!(Instant::now() < deadline, "appends still fail: {why}");
                retried = true;
                tokio::time::sleep(RETRY).await;
            }
            Err(e) => panic!("append failed: {e}"),
        }
    }
    let stored = store.read_stream_forward(stream, 0, 100).await.expect("read back");
    assert_eq!(stored.len(), events.len(), "{stream} holds the appended events once");
}

async fn allow_connections(admin: &mut sqlx::PgConnection, database: &str, allow: bool) {
    sqlx::query(&format!("ALTER DATABASE \"{database}\" WITH ALLOW_CONNECTIONS {allow}"))
        .execute(admin)
        .await
        .expect("alter database");
}

#[tokio::test]
async fn events_appended_while_the_listen_connection_is_down_are_delivered_without_another_append() {
    init_tracing();
    let cluster = PrivateCluster::start().await;
    // No poll within the test: only the notifier re-reading once its LISTEN connection is back
    // can deliver what was committed while it was down.
    let config = cluster.config("listen").notification_poll_interval(Duration::from_secs(60));
    let schema = config.schema.clone();
    let store = EventStore::start(config).await.expect("store starts");
    store.append_to_stream("a", ExpectedVersion::NoStream, events("E", 1, 2)).await.unwrap();
    let mut sub = store.subscribe_to_all_streams("s", SubscriptionOptions::default()).await.unwrap();
    assert_eq!(next(&mut sub).await, SubscriptionMessage::Subscribed);
    assert_eq!(receive_acking(&mut sub, 2).await, vec![1, 2]);
    assert_eq!(next(&mut sub).await, SubscriptionMessage::CaughtUp);

    // The LISTEN connection dies and cannot come back (the database refuses new connections;
    // the store's other sessions stay) while events are committed: their notification is lost.
    let mut admin = cluster.admin().await;
    let listening = listening_session(&mut admin, &schema, None).await;
    allow_connections(&mut admin, "postgres", false).await;
    terminate(&mut admin, listening).await;
    store.append_to_stream("b", ExpectedVersion::NoStream, events("E", 3, 3)).await.unwrap();
    expect_quiet(&mut sub, 5 * RETRY).await;
    assert_eq!(listen_pids(&mut admin, &schema).await, Vec::<i32>::new(), "nobody LISTENs meanwhile");

    // Once it can reconnect, the events come without another append.
    allow_connections(&mut admin, "postgres", true).await;
    assert_eq!(receive_acking(&mut sub, 3).await, vec![3, 4, 5]);
    let again = listening_session(&mut admin, &schema, Some(listening)).await;
    assert_ne!(again, listening, "the store LISTENs on a new session");
    store.append_to_stream("c", ExpectedVersion::NoStream, events("E", 6, 1)).await.unwrap();
    assert_eq!(receive_acking(&mut sub, 1).await, vec![6], "notifications work again");
    store.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_live_subscription_resumes_after_a_postgresql_restart_without_missing_an_event() {
    init_tracing();
    let cluster = PrivateCluster::start().await;
    let store = EventStore::start(cluster.config("restart")).await.expect("store starts");
    store.append_to_stream("a", ExpectedVersion::NoStream, events("E", 1, 3)).await.unwrap();
    let mut sub = store.subscribe_to_all_streams("s", SubscriptionOptions::default()).await.unwrap();
    assert_eq!(next(&mut sub).await, SubscriptionMessage::Subscribed);
    let batch = next_events(&mut sub).await;
    assert_eq!(batch.iter().map(|e| e.event_number).collect::<Vec<_>>(), vec![1, 2, 3]);
    sub.ack(&batch[..2]).await.unwrap();
    assert_eq!(next(&mut sub).await, SubscriptionMessage::CaughtUp);
    assert_checkpoint(&store, ALL, "s", 2, "event 3 is delivered but not acked").await;

    cluster.crash_and_restart().await;
    append_retrying(&store, "b", events("E", 4, 2)).await;

    // The node owns the subscription again and delivers from the checkpoint: the unacked 3, then
    // what was appended after the restart.
    until_subscribed(&mut sub, WAIT).await;
    let got = receive_after_subscribed(&mut sub, 3..=5).await;
    assert_eq!(got.first(), Some(&3), "delivery resumes right after the checkpoint: {got:?}");
    let mut distinct = got.clone();
    distinct.dedup();
    assert_eq!(distinct, vec![3, 4, 5], "in order, nothing missing: {got:?}");
    store.append_to_stream("c", ExpectedVersion::NoStream, events("E", 6, 1)).await.unwrap();
    assert_eq!(receive_acking(&mut sub, 1).await, vec![6], "live again");
    assert_checkpoint(&store, ALL, "s", 6, "").await;
    store.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_second_node_takes_over_the_subscription_when_the_owning_node_shuts_down() {
    let first = TestStore::start_with(quick).await;
    let second = EventStore::start(first.config.clone()).await.expect("second node starts");
    let mut on_first = first.subscribe_to_all_streams("s", SubscriptionOptions::default()).await.unwrap();
    assert_eq!(next(&mut on_first).await, SubscriptionMessage::Subscribed);
    assert_eq!(next(&mut on_first).await, SubscriptionMessage::CaughtUp, "nothing stored yet");
    let first_pid = owner_pid(&first, "s").await;
    let mut on_second = second.subscribe_to_all_streams("s", SubscriptionOptions::default()).await.unwrap();

    first.append_to_stream("a", ExpectedVersion::NoStream, events("E", 1, 4)).await.unwrap();
    let got = receive(&mut on_first, 4).await;
    assert_eq!(got.iter().map(|e| e.event_number).collect::<Vec<_>>(), vec![1, 2, 3, 4]);
    on_first.ack_number(2).await.unwrap();
    expect_quiet(&mut on_second, 5 * RETRY).await;
    assert_eq!(second.subscription_status(ALL, "s").await.unwrap().phase, SubscriptionPhase::Waiting);
    assert_eq!(owner_pid(&second, "s").await, first_pid);

    first.shutdown().await.unwrap();
    assert_eq!(dropped(&mut on_first).await, DropReason::Shutdown);
    assert_eq!(next_within(&mut on_second, TAKEOVER).await, SubscriptionMessage::Subscribed);
    assert_eq!(receive_acking(&mut on_second, 2).await, vec![3, 4], "from the first node's checkpoint");
    second.append_to_stream("b", ExpectedVersion::NoStream, events("E", 5, 1)).await.unwrap();
    assert_eq!(receive_acking(&mut on_second, 1).await, vec![5]);
    let second_pid = owner_pid(&second, "s").await;
    assert_ne!(second_pid, first_pid, "the owner changed");
    assert_checkpoint(&second, ALL, "s", 5, "").await;
    second.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_second_node_takes_over_when_the_owners_lock_connection_dies_and_the_first_node_stops_delivering() {
    let first = TestStore::start_with(quick).await;
    // The second node retries sooner than the first can notice its loss (one ping interval) and
    // retry (one more): the second one takes the lock.
    let second = EventStore::start(first.config.clone().subscription_retry_interval(RETRY / 2))
        .await
        .expect("second node starts");
    let mut on_first = first.subscribe_to_all_streams("s", SubscriptionOptions::default()).await.unwrap();
    assert_eq!(next(&mut on_first).await, SubscriptionMessage::Subscribed);
    assert_eq!(next(&mut on_first).await, SubscriptionMessage::CaughtUp, "nothing stored yet");
    let mut on_second = second.subscribe_to_all_streams("s", SubscriptionOptions::default()).await.unwrap();
    first.append_to_stream("a", ExpectedVersion::NoStream, events("E", 1, 4)).await.unwrap();
    let delivered = receive(&mut on_first, 4).await;
    on_first.ack(&delivered[..2]).await.unwrap();
    expect_quiet(&mut on_second, 5 * RETRY).await;
    let first_pid = owner_pid(&first, "s").await;

    let mut admin = raw_connection().await;
    terminate(&mut admin, first_pid).await;
    assert_eq!(next_within(&mut on_second, TAKEOVER).await, SubscriptionMessage::Subscribed);
    // The first node's acks of what it delivered before are accepted and ignored: they cannot
    // move the checkpoint any more.
    on_first.ack(&delivered[2..]).await.expect("a stale ack is not an error");
    assert_checkpoint(&second, ALL, "s", 2, "").await;
    assert_eq!(receive_acking(&mut on_second, 2).await, vec![3, 4], "from the checkpoint");
    assert_checkpoint(&second, ALL, "s", 4, "").await;

    wait_for_phase(&first, "s", SubscriptionPhase::Waiting).await;
    second.append_to_stream("b", ExpectedVersion::NoStream, events("E", 5, 2)).await.unwrap();
    assert_eq!(receive_acking(&mut on_second, 2).await, vec![5, 6]);
    expect_no_delivery(&mut on_first, 3 * RETRY).await;
    let second_pid = owner_pid(&second, "s").await;
    assert_ne!(second_pid, first_pid, "the owner changed");
    assert_eq!(first.subscription_status(ALL, "s").await.unwrap().phase, SubscriptionPhase::Waiting);
    second.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_killed_subscription_actor_is_restarted_and_redelivers_every_event_after_the_checkpoint() {
    let store = TestStore::start_with(quick).await;
    store.append_to_stream("a", ExpectedVersion::NoStream, events("E", 1, 10)).await.unwrap();
    let options = SubscriptionOptions::default().checkpoint_threshold(1);
    let mut sub = store.subscribe_to_all_streams("s", options).await.unwrap();
    assert_eq!(next(&mut sub).await, SubscriptionMessage::Subscribed);
    let batch = next_events(&mut sub).await;
    assert_eq!(batch.iter().map(|e| e.event_number).collect::<Vec<_>>(), (1..=10).collect::<Vec<_>>());
    sub.ack_number(4).await.unwrap();
    assert_checkpoint(&store, ALL, "s", 4, "").await;

    let crashed = chronik::testing::subscription_actor(&store, ALL, "s").await.expect("the subscription runs");
    crashed.kill();
    // Acks of the dead actor's delivery are ignored: those events come again.
    sub.ack(&batch[4..]).await.expect("a stale ack is not an error");
    assert_checkpoint(&store, ALL, "s", 4, "").await;

    loop {
        match next(&mut sub).await {
            SubscriptionMessage::Subscribed => break,
            SubscriptionMessage::CaughtUp => {} // the first actor's, sent before it died
            other => panic!("Subscribed expected, got {other:?}"),
        }
    }
    let got = receive_after_subscribed(&mut sub, 5..=10).await;
    assert_eq!(got.first(), Some(&5), "redelivery starts right after the checkpoint: {got:?}");
    let mut distinct = got.clone();
    distinct.dedup();
    assert_eq!(distinct, (5..=10).collect::<Vec<_>>(), "in order, nothing missing: {got:?}");
    let restarted = chronik::testing::subscription_actor(&store, ALL, "s").await.expect("the subscription runs again");
    assert_ne!(restarted.get_id(), crashed.get_id());

    store.append_to_stream("b", ExpectedVersion::NoStream, events("E", 11, 2)).await.unwrap();
    assert_eq!(receive_acking(&mut sub, 2).await, vec![11, 12], "live after the restart");
    assert_checkpoint(&store, ALL, "s", 12, "").await;
}

#[tokio::test]
async fn shutdown_writes_the_checkpoint_of_acked_events_and_drops_the_subscriber() {
    let store = TestStore::start_with(quick).await;
    store.append_to_stream("a", ExpectedVersion::NoStream, events("E", 1, 5)).await.unwrap();
    let options =
        SubscriptionOptions::default().checkpoint_threshold(1_000).checkpoint_after(Duration::from_secs(3_600));
    let mut sub = store.subscribe_to_all_streams("s", options).await.unwrap();
    assert_eq!(next(&mut sub).await, SubscriptionMessage::Subscribed);
    assert_eq!(receive_acking(&mut sub, 5).await, vec![1, 2, 3, 4, 5]);
    assert_checkpoint(&store, ALL, "s", 0, "neither the threshold nor the timer has written it").await;

    store.shutdown().await.unwrap();
    assert_eq!(dropped(&mut sub).await, DropReason::Shutdown);
    let sql = format!(
        "SELECT last_seen FROM \"{}\".subscriptions WHERE stream_uuid = $1 AND subscription_name = $2",
        store.config.schema
    );
    let last_seen: i64 =
        sqlx::query_scalar(&sql).bind(ALL).bind("s").fetch_one(&mut raw_connection().await).await.unwrap();
    assert_eq!(last_seen, 5);
}

#[tokio::test]
async fn a_subscription_unsubscribed_while_its_crashed_actor_awaits_restart_can_be_taken_over_by_another_node() {
    // The actor dies holding the lock; before the registry restarts it, its last subscriber
    // leaves. Nothing runs the subscription on the first node any more, so another node must be
    // able to take it.
    let first = TestStore::start_with(quick).await;
    let second = EventStore::start(first.config.clone()).await.expect("second node starts");
    let mut on_first = first.subscribe_to_all_streams("s", SubscriptionOptions::default()).await.unwrap();
    assert_eq!(next(&mut on_first).await, SubscriptionMessage::Subscribed);
    let mut on_second = second.subscribe_to_all_streams("s", SubscriptionOptions::default()).await.unwrap();
    expect_quiet(&mut on_second, 3 * RETRY).await;

    chronik::testing::subscription_actor(&first, ALL, "s").await.expect("the subscription runs").kill();
    on_first.unsubscribe().await.unwrap();
    assert!(
        chronik::testing::subscription_actor(&first, ALL, "s").await.is_none(),
        "it no longer runs on the first node"
    );
    assert_eq!(next_within(&mut on_second, TAKEOVER).await, SubscriptionMessage::Subscribed);
    second.shutdown().await.unwrap();
}

/// A checkpoint write that waits (here: its row is locked by another session) holds back
/// neither the ack that moved it nor the subscription: acks return and events are delivered
/// meanwhile, and the checkpoint is written once the row is free.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_slow_checkpoint_write_holds_back_neither_acks_nor_delivery() {
    let store = TestStore::start_with(quick).await;
    let options = SubscriptionOptions::default().checkpoint_threshold(1);
    let mut sub = store.subscribe_to_all_streams("s", options).await.unwrap();
    assert_eq!(next(&mut sub).await, SubscriptionMessage::Subscribed);
    assert_eq!(next(&mut sub).await, SubscriptionMessage::CaughtUp);

    use sqlx::Connection;
    let mut blocker = raw_connection().await;
    let mut tx = blocker.begin().await.unwrap();
    let lock = format!("SELECT 1 FROM {}.subscriptions WHERE subscription_name = 's' FOR UPDATE", store.config.schema);
    sqlx::query(&lock).execute(&mut *tx).await.unwrap();
    // The checkpoint of each batch cannot be written, yet acks return and the events come.
    for n in 1..=3 {
        store.append_to_stream(&format!("s-{n}"), ExpectedVersion::NoStream, events("E", n, 1)).await.unwrap();
        let batch =
            tokio::time::timeout(Duration::from_secs(5), next_events(&mut sub)).await.expect("delivery goes on");
        assert_eq!(batch[0].event_number, n);
        tokio::time::timeout(Duration::from_secs(5), sub.ack(&batch)).await.expect("the ack returns").unwrap();
    }
    assert_eq!(info(&store, "s").await.checkpoint, 0, "the row is still locked");

    tx.rollback().await.unwrap();
    assert_checkpoint(&store, ALL, "s", 3, "written once the row is free").await;
}
