//! What an application sees while PostgreSQL restarts under it (killed with `-m immediate`, so
//! every session dies mid-statement, then started again): every append either commits and says
//! `Ok`, or fails with `Unavailable` and stored nothing, or, only when the outcome truly cannot
//! be learned within `in_doubt_timeout`, fails with `InDoubt`. No false `Ok`, no false error.
//!
//! PostgreSQL only: it restarts a private PostgreSQL server.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chronik::{
    ALL, AppendResult, Error, EventStore, ExpectedVersion, RecordedEvent, Subscription, SubscriptionMessage,
    SubscriptionOptions,
};
use common::cluster::PrivateCluster;
use common::*;
use tokio::sync::mpsc;
use uuid::Uuid;

/// The backend of every store in this binary.
const BACKEND: common::Backend = common::Backend::Postgres;

/// One append as its caller saw it.
struct Attempted {
    stream: String,
    ids: Vec<Uuid>,
    outcome: chronik::Result<AppendResult>,
    took: Duration,
}

/// Appends two events at a time to `stream` until `stop`, keeping every outcome.
async fn append_until(store: EventStore, stream: String, stop: Arc<AtomicBool>) -> Vec<Attempted> {
    let mut attempts = Vec::new();
    let mut n = 0;
    while !stop.load(Ordering::SeqCst) {
        let batch = events("E", n, 2);
        n += 2;
        let ids = batch.iter().map(|e| e.event_id).collect();
        let started = std::time::Instant::now();
        let outcome = store.append_to_stream(&stream, ExpectedVersion::Any, batch).await;
        let failed = outcome.is_err();
        attempts.push(Attempted { stream: stream.clone(), ids, outcome, took: started.elapsed() });
        if failed {
            // The server is down: do not spin.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    attempts
}

/// Every event of `$all`, by id.
async fn stored_by_id(store: &EventStore) -> HashMap<Uuid, RecordedEvent> {
    let mut stored = HashMap::new();
    let mut from = 0;
    loop {
        let page = store.read_all_forward(from, 1_000).await.expect("read $all");
        let Some(last) = page.last() else { break };
        from = last.event_number + 1;
        stored.extend(page.into_iter().map(|e| (e.event_id, e)));
    }
    stored
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn appends_across_database_restarts_never_report_a_false_outcome() {
    init_tracing();
    let cluster = PrivateCluster::start().await;
    let config = cluster.config("appends").pool_size(4).in_doubt_timeout(Duration::from_secs(20));
    let store = EventStore::start(config).await.expect("store starts");
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> =
        (0..16).map(|w| tokio::spawn(append_until(store.clone(), format!("w-{w}"), Arc::clone(&stop)))).collect();

    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(400)).await;
        cluster.stop_immediately().await;
        tokio::time::sleep(Duration::from_millis(600)).await;
        cluster.start_again().await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::SeqCst);
    let mut attempts = Vec::new();
    for writer in writers {
        attempts.extend(writer.await.expect("writer task"));
    }

    let stored = stored_by_id(&store).await;
    let (mut ok, mut unavailable, mut in_doubt) = (0, 0, Vec::new());
    for attempt in &attempts {
        let found: Vec<&RecordedEvent> = attempt.ids.iter().filter_map(|id| stored.get(id)).collect();
        match &attempt.outcome {
            Ok(result) => {
                ok += 1;
                assert_eq!(found.len(), attempt.ids.len(), "a false Ok: {result:?} but its events are not stored");
                let positions: Vec<u64> = found.iter().map(|e| e.global_position).collect();
                assert_eq!(positions, (result.first_position..=result.last_position).collect::<Vec<_>>());
                assert!(found.iter().all(|e| e.stream_uuid == attempt.stream));
                assert_eq!(found.last().map(|e| e.stream_version), Some(result.stream_version));
            }
            Err(Error::Unavailable(why)) => {
                unavailable += 1;
                assert!(
                    found.is_empty(),
                    "a false error: Unavailable ({why}) but {} of its events are stored",
                    found.len()
                );
            }
            Err(Error::InDoubt(why)) => in_doubt.push(why.clone()),
            Err(e) => panic!("unexpected error: {e}"),
        }
    }
    // Nothing is stored that no caller appended, and no append is stored in part.
    let appended: usize = attempts.iter().map(|a| a.ids.len()).sum();
    assert!(stored.len() <= appended);
    for attempt in &attempts {
        let found = attempt.ids.iter().filter(|id| stored.contains_key(id)).count();
        assert!(
            found == 0 || found == attempt.ids.len(),
            "an append stored in part ({found} of {})",
            attempt.ids.len()
        );
    }
    assert!(in_doubt.is_empty(), "the server came back well within in_doubt_timeout, yet: {in_doubt:?}");
    // Appends were in flight while the server was down: they waited for it (or failed).
    let spanning = attempts.iter().filter(|a| a.took >= Duration::from_millis(500) || a.outcome.is_err()).count();
    assert!(spanning > 0, "no append met an outage");
    assert!(ok > 0);
    eprintln!("{} appends: {ok} ok, {unavailable} unavailable, {spanning} across an outage", attempts.len());
    store.shutdown().await.expect("shutdown");
}

/// A private server whose commits are held (see `PrivateCluster::hold_commit_replies`) and a
/// store on it, created before the hold so that its own creation commits.
async fn store_with_held_commits(prefix: &str, in_doubt_timeout: Duration) -> (PrivateCluster, EventStore) {
    init_tracing();
    let cluster = PrivateCluster::start().await;
    let config = cluster.config(prefix).in_doubt_timeout(in_doubt_timeout);
    chronik::admin::init(&config).await.expect("init");
    cluster.hold_commit_replies().await;
    let store = EventStore::start(config).await.expect("store starts");
    (cluster, store)
}

/// Appends that the server committed but never confirmed (their commit waits for a standby that
/// does not exist when the server is killed) are found committed once it is back: `Ok`, with the
/// positions they were given, not an error.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn appends_committed_just_before_a_crash_are_ok_once_the_database_is_back() {
    let (cluster, store) = store_with_held_commits("committed", Duration::from_secs(20)).await;
    let appends: Vec<_> = (0..8)
        .map(|i| {
            let store = store.clone();
            let batch = events("E", i, 3);
            let ids: Vec<Uuid> = batch.iter().map(|e| e.event_id).collect();
            let task = tokio::spawn(async move {
                store.append_to_stream(&format!("s-{i}"), ExpectedVersion::NoStream, batch).await
            });
            (ids, task)
        })
        .collect();
    // Let the commits reach the server's WAL, then kill it before it answers.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(appends.iter().all(|(_, task)| !task.is_finished()), "the commits are held");
    cluster.stop_immediately().await;
    // Down for longer than connect_timeout (2 s): asking the database cannot succeed on the
    // first attempt, only by waiting for it.
    tokio::time::sleep(Duration::from_secs(3)).await;
    cluster.forget_settings();
    cluster.start_again().await;

    let stored = {
        let mut outcomes = Vec::new();
        for (ids, task) in appends {
            outcomes.push((ids, task.await.expect("append task")));
        }
        let stored = stored_by_id(&store).await;
        for (ids, outcome) in &outcomes {
            let result = outcome.as_ref().unwrap_or_else(|e| panic!("a committed append was reported as {e:?}"));
            let positions: Vec<u64> = ids.iter().map(|id| stored[id].global_position).collect();
            assert_eq!(positions, (result.first_position..=result.last_position).collect::<Vec<_>>());
            assert_eq!(result.stream_version, 3);
        }
        stored
    };
    assert_eq!(stored.len(), 8 * 3);
    // In doubt are the writes whose COMMIT went out unanswered: the first batch's for sure; the
    // others may have waited behind its `$all` lock (never sent) or shared its batch.
    let s = store.statistics();
    let counts = (s.in_doubt_committed, s.in_doubt_not_committed, s.in_doubt_unknown);
    assert!(
        (1..=8).contains(&counts.0) && counts.0 + counts.1 <= 8 && counts.2 == 0,
        "held appends in doubt, then found committed (chronik_in_doubt_total counts the same): {counts:?}"
    );
    store.shutdown().await.expect("shutdown");
}

/// When the database stays away longer than `in_doubt_timeout`, an append whose commit it never
/// confirmed fails with `InDoubt` (it may be stored), never with `Unavailable` (which would say
/// it is not); once the server is back, the stream shows it was stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_outcome_that_cannot_be_learned_in_time_is_in_doubt_not_unavailable() {
    let (cluster, store) = store_with_held_commits("doubt", Duration::from_millis(800)).await;
    let append = {
        let store = store.clone();
        tokio::spawn(async move { store.append_to_stream("held", ExpectedVersion::NoStream, events("E", 2, 2)).await })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!append.is_finished(), "the commit is held");
    cluster.stop_immediately().await;
    let outcome = tokio::time::timeout(WAIT, append).await.expect("the append gives up").expect("append task");
    let Err(Error::InDoubt(why)) = outcome else { panic!("expected InDoubt, got {outcome:?}") };
    assert!(why.contains("held") && why.contains("in_doubt_timeout"), "{why}");

    cluster.forget_settings();
    cluster.start_again().await;
    let stored = store.read_stream_forward("held", 0, 10).await.expect("read back after the restart");
    assert_eq!(stored.len(), 2, "it had committed");
    assert_eq!(store.statistics().in_doubt_unknown, 1, "counted as unknown");
    store.shutdown().await.expect("shutdown");
}

/// Consumes a subscription, acking everything, and reports each event number with when it came.
fn consume(
    mut sub: Subscription,
    name: &'static str,
    report: mpsc::UnboundedSender<(&'static str, u64, std::time::Instant)>,
) {
    tokio::spawn(async move {
        while let Some(msg) = sub.recv().await {
            if let SubscriptionMessage::Events(batch) = msg {
                let at = std::time::Instant::now();
                for event in &batch {
                    let _ = report.send((name, event.event_number, at));
                }
                // During an outage the ack may fail; the events then come again.
                let _ = sub.ack(&batch).await;
            }
        }
    });
}

/// Waits until every subscription in `names` reported event `n`; when each did.
async fn delivered(
    reports: &mut mpsc::UnboundedReceiver<(&'static str, u64, std::time::Instant)>,
    names: &[&'static str],
    n: u64,
) -> HashMap<&'static str, std::time::Instant> {
    let mut seen = HashMap::new();
    while seen.len() < names.len() {
        let (name, number, at) =
            tokio::time::timeout(WAIT, reports.recv()).await.expect("delivery").expect("consumers run");
        if number == n {
            seen.entry(name).or_insert(at);
        }
    }
    seen
}

/// Named subscriptions back off while the database is away, but once it accepts connections
/// again they resume within about a second, as appends and live listeners do: the store reacts
/// to its LISTEN connection coming back instead of waiting out a long backoff.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn named_subscriptions_resume_soon_after_the_database_is_back() {
    init_tracing();
    let cluster = PrivateCluster::start().await;
    // The default retry interval: the backoff grows to 8 of them during a long outage.
    let config = cluster.config("resume").subscription_retry_interval(Duration::from_secs(1));
    let store = EventStore::start(config).await.expect("store starts");
    let names = ["projector", "mailer", "audit"];
    let (report, mut reports) = mpsc::unbounded_channel();
    for name in names {
        let sub = store.subscribe_to_stream(ALL, name, SubscriptionOptions::default()).await.expect("subscribe");
        consume(sub, name, report.clone());
    }
    store.append_to_stream("a", ExpectedVersion::NoStream, events("E", 1, 1)).await.unwrap();
    delivered(&mut reports, &names, 1).await;

    cluster.stop_immediately().await;
    tokio::time::sleep(Duration::from_secs(6)).await;
    cluster.start_again().await;
    let back = std::time::Instant::now();
    let appended = store.append_to_stream("a", ExpectedVersion::Exact(1), events("E", 2, 1)).await.unwrap();
    let appended_after = back.elapsed();
    let arrivals = delivered(&mut reports, &names, appended.last_position).await;
    for (name, at) in arrivals {
        let after = at.duration_since(back);
        eprintln!("{name}: delivered {after:?} after the server was back (the append took {appended_after:?})");
        assert!(after < Duration::from_millis(2_500), "{name} resumed only {after:?} after the server was back");
    }
    store.shutdown().await.expect("shutdown");
}

/// `/health` of the HTTP face turns unready (503, naming the database) while the database is
/// down, and ready again once it is back; `/health/live` answers throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn health_turns_unready_while_the_database_is_down_and_ready_when_it_returns() {
    use chronik::server::ServerOptions;
    use chronik::server::http::{HttpOptions, HttpServer};
    init_tracing();
    let cluster = PrivateCluster::start().await;
    let config = cluster.config("health");
    chronik::admin::init(&config).await.expect("init");
    let store = EventStore::start(config).await.expect("store starts");
    let http =
        HttpServer::start(store.clone(), ServerOptions::insecure(([127, 0, 0, 1], 0).into()), HttpOptions::new())
            .await
            .expect("the HTTP face starts");
    let url = format!("http://{}/health", http.local_addr());
    let client = reqwest::Client::new();
    let health = async |client: &reqwest::Client| {
        let response = client.get(&url).send().await.expect("an answer");
        let status = response.status().as_u16();
        (status, response.json::<serde_json::Value>().await.expect("JSON"))
    };
    let (status, body) = health(&client).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("ready")), "{body}");

    cluster.stop_immediately().await;
    let (status, body) = health(&client).await;
    assert_eq!((status, body["status"].as_str()), (503, Some("unready")), "{body}");
    assert_eq!(body["checks"]["database"]["ok"], false, "{body}");
    assert!(body["checks"]["database"]["error"].as_str().is_some_and(|e| !e.is_empty()), "{body}");
    let live = client.get(format!("http://{}/health/live", http.local_addr())).send().await.expect("an answer");
    assert_eq!(live.status().as_u16(), 200, "the process itself is alive");

    cluster.start_again().await;
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let (status, body) = health(&client).await;
        if status == 200 {
            assert_eq!(body["checks"]["database"]["ok"], true);
            break;
        }
        assert!(std::time::Instant::now() < deadline, "still unready after the database came back: {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    http.shutdown().await.expect("the HTTP face stops");
    store.shutdown().await.expect("shutdown");
}
