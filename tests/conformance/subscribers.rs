//! Subscriber actors: handlers run as supervised actors; failures back off and retry from the
//! checkpoint, an event that keeps failing is parked, and pause/resume/stop control delivery.
//! The configuration's `[[subscriptions]]` start them by name; a restarted store resumes them
//! after their checkpoint. The live-only listener never slows appends, and says what it lost.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::{TestStore, WAIT, assert_checkpoint, event, events, quick, quick_store};
use chronik::{
    ALL, Config, Error, EventStore, ExpectedVersion, HandlerError, LIVE_BUFFER, LiveMessage, LiveSubscription,
    RecordedEvent, Subscriber, SubscriberHandle, Subscribers, SubscriptionConfig, SubscriptionOptions,
    SubscriptionPhase,
};
use tokio::sync::mpsc;

/// Every event number a handler was given, in order (including failed attempts).
type Seen = Arc<Mutex<Vec<u64>>>;

/// Panics whenever it is given event `poison`; reports the events it handled successfully.
struct PanicsOn {
    poison: u64,
    seen: Seen,
    handled: mpsc::UnboundedSender<u64>,
}

impl Subscriber for PanicsOn {
    async fn handle(&mut self, events: &[RecordedEvent]) -> Result<(), HandlerError> {
        for event in events {
            self.seen.lock().unwrap().push(event.event_number);
            assert!(event.event_number != self.poison, "cannot handle event {}", self.poison);
        }
        for event in events {
            let _ = self.handled.send(event.event_number);
        }
        Ok(())
    }
}

async fn handled_until(rx: &mut mpsc::UnboundedReceiver<u64>, last: u64) -> Vec<u64> {
    let mut handled = Vec::new();
    while handled.last() != Some(&last) {
        match tokio::time::timeout(WAIT, rx.recv()).await {
            Ok(Some(n)) => handled.push(n),
            other => panic!("handled so far {handled:?}, then {other:?}"),
        }
    }
    handled
}

#[tokio::test]
async fn a_handler_that_panics_on_an_event_sees_it_again_until_it_is_parked_and_the_rest_arrive() {
    let store = quick_store().await;
    store.append_to_stream("acc-1", ExpectedVersion::NoStream, events("E", 1, 10)).await.unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let seen = Seen::default();
    let options = SubscriptionOptions::default().max_retry_count(2);
    let subscriber = PanicsOn { poison: 5, seen: Arc::clone(&seen), handled: tx };
    let handle = store.start_subscriber(ALL, "projector", options, subscriber).await.unwrap();

    let handled = handled_until(&mut rx, 10).await;
    assert_eq!(handled, vec![1, 2, 3, 4, 6, 7, 8, 9, 10], "each event handled once, 5 never");
    let attempts_on_5 = seen.lock().unwrap().iter().filter(|n| **n == 5).count();
    assert_eq!(attempts_on_5, 1 + 1 + 2, "once in the batch, once alone, then max_retry_count retries");
    let parked = store.parked_events(ALL, "projector").await.unwrap();
    assert_eq!(parked.iter().map(|p| (p.event_number, p.retry_count)).collect::<Vec<_>>(), vec![(5, 2)]);
    assert!(parked[0].reason.contains("cannot handle event 5"), "{}", parked[0].reason);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_checkpoint(&store, ALL, "projector", 10, "the parked event does not hold it back").await;
    handle.stop().await.unwrap();
    assert!(!handle.is_running());
}

/// The actor subscribes as it starts, so a refused subscription refuses the start with the
/// subscription's own error, and nothing is left running.
#[tokio::test]
async fn a_subscriber_on_a_name_already_taken_is_refused_with_the_subscriptions_error() {
    let store = quick_store().await;
    let (tx, _rx) = mpsc::unbounded_channel();
    let first = PanicsOn { poison: 0, seen: Seen::default(), handled: tx.clone() };
    let running = store.start_subscriber(ALL, "projector", SubscriptionOptions::default(), first).await.unwrap();
    let second = PanicsOn { poison: 0, seen: Seen::default(), handled: tx };
    let err = store.start_subscriber(ALL, "projector", SubscriptionOptions::default(), second).await.unwrap_err();
    assert!(matches!(err, Error::SubscriptionAlreadyExists), "{err:?}");
    assert!(running.is_running(), "the first one runs on");
    let status = store.subscription_status(ALL, "projector").await.unwrap();
    assert_eq!(status.subscribers, 1);
}

/// Every batch a handler was given, when, and whether it succeeded.
type Attempts = Arc<Mutex<Vec<Attempt>>>;

#[derive(Debug, Clone)]
struct Attempt {
    events: Vec<u64>,
    at: Instant,
    ok: bool,
}

/// Fails, without naming an event, the first `failures` times it is given event `fail_on`.
struct FailsTimes {
    fail_on: u64,
    failures: u32,
    attempts: Attempts,
    handled: mpsc::UnboundedSender<u64>,
}

impl Subscriber for FailsTimes {
    async fn handle(&mut self, events: &[RecordedEvent]) -> Result<(), HandlerError> {
        let numbers: Vec<u64> = events.iter().map(|e| e.event_number).collect();
        let fail = self.failures > 0 && numbers.contains(&self.fail_on);
        self.attempts.lock().unwrap().push(Attempt { events: numbers.clone(), at: Instant::now(), ok: !fail });
        if fail {
            self.failures -= 1;
            return Err(HandlerError::new(format!("transient failure on event {}", self.fail_on)));
        }
        for n in numbers {
            let _ = self.handled.send(n);
        }
        Ok(())
    }
}

/// Handles events one by one, parking event `poison` at once.
struct ParksOn {
    poison: u64,
    seen: Seen,
    handled: mpsc::UnboundedSender<u64>,
}

impl Subscriber for ParksOn {
    async fn handle(&mut self, events: &[RecordedEvent]) -> Result<(), HandlerError> {
        for event in events {
            self.seen.lock().unwrap().push(event.event_number);
            if event.event_number == self.poison {
                return Err(HandlerError::park(event, format!("event {} is poison", event.event_number)));
            }
            let _ = self.handled.send(event.event_number);
        }
        Ok(())
    }
}

/// Handles events one by one and fails on event `poison`, naming it.
struct FailsAt {
    poison: u64,
    seen: Seen,
    handled: mpsc::UnboundedSender<u64>,
}

impl Subscriber for FailsAt {
    async fn handle(&mut self, events: &[RecordedEvent]) -> Result<(), HandlerError> {
        for event in events {
            self.seen.lock().unwrap().push(event.event_number);
            if event.event_number == self.poison {
                return Err(HandlerError::new(format!("cannot apply event {}", event.event_number)).at(event));
            }
            let _ = self.handled.send(event.event_number);
        }
        Ok(())
    }
}

/// What a [`Recorder`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Report {
    Handled(u64),
    CaughtUp,
}

/// Acks every batch, reporting each event it handled and each `caught_up`.
struct Recorder {
    reports: mpsc::UnboundedSender<Report>,
}

impl Subscriber for Recorder {
    async fn handle(&mut self, events: &[RecordedEvent]) -> Result<(), HandlerError> {
        for event in events {
            let _ = self.reports.send(Report::Handled(event.event_number));
        }
        Ok(())
    }

    async fn caught_up(&mut self) {
        let _ = self.reports.send(Report::CaughtUp);
    }
}

fn recorder() -> (Recorder, mpsc::UnboundedReceiver<Report>) {
    let (reports, rx) = mpsc::unbounded_channel();
    (Recorder { reports }, rx)
}

/// The reports until `Handled(last)` (each within [`WAIT`]).
async fn reports_through(rx: &mut mpsc::UnboundedReceiver<Report>, last: u64) -> Vec<Report> {
    let mut got = Vec::new();
    while got.last() != Some(&Report::Handled(last)) {
        match tokio::time::timeout(WAIT, rx.recv()).await {
            Ok(Some(report)) => got.push(report),
            other => panic!("reports so far {got:?}, then {other:?}"),
        }
    }
    got
}

/// The events handled until `last`, leaving out `CaughtUp`.
async fn handled_through(rx: &mut mpsc::UnboundedReceiver<Report>, last: u64) -> Vec<u64> {
    reports_through(rx, last)
        .await
        .into_iter()
        .filter_map(|r| match r {
            Report::Handled(n) => Some(n),
            Report::CaughtUp => None,
        })
        .collect()
}

/// Waits for the first `CaughtUp`, returning the events handled before it.
async fn handled_until_caught_up(rx: &mut mpsc::UnboundedReceiver<Report>) -> Vec<u64> {
    let mut handled = Vec::new();
    loop {
        match tokio::time::timeout(WAIT, rx.recv()).await {
            Ok(Some(Report::CaughtUp)) => return handled,
            Ok(Some(Report::Handled(n))) => handled.push(n),
            other => panic!("handled so far {handled:?}, then {other:?} instead of caught_up"),
        }
    }
}

/// Fails if anything arrives on `rx` within `within`.
async fn expect_nothing<T: std::fmt::Debug>(rx: &mut mpsc::UnboundedReceiver<T>, within: Duration, what: &str) {
    if let Ok(Some(got)) = tokio::time::timeout(within, rx.recv()).await {
        panic!("{what}: expected nothing within {within:?}, got {got:?}");
    }
}

/// Polls `probe` until it is true, failing after [`WAIT`].
async fn eventually<F, Fut>(what: &str, mut probe: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + WAIT;
    while !probe().await {
        assert!(Instant::now() < deadline, "not within {WAIT:?}: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn checkpoint_reaches(store: &EventStore, name: &str, n: u64) {
    eventually(&format!("the stored checkpoint of {name} reaches {n}"), || async {
        store.list_subscriptions().await.unwrap().iter().any(|s| s.stream == ALL && s.name == name && s.checkpoint >= n)
    })
    .await;
    assert_checkpoint(store, ALL, name, n, "the checkpoint stops at the last event").await;
}

fn count(seen: &Seen, n: u64) -> usize {
    seen.lock().unwrap().iter().filter(|m| **m == n).count()
}

#[tokio::test]
async fn a_failed_batch_is_retried_after_a_backoff_from_the_oldest_unacked_event_in_order() {
    let store = quick_store().await;
    store.append_to_stream("acc-1", ExpectedVersion::NoStream, events("E", 1, 10)).await.unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let attempts = Attempts::default();
    let subscriber = FailsTimes { fail_on: 3, failures: 2, attempts: Arc::clone(&attempts), handled: tx };
    let _handle = store.start_subscriber(ALL, "projector", SubscriptionOptions::default(), subscriber).await.unwrap();

    let handled = handled_until(&mut rx, 10).await;
    assert_eq!(handled, (1..=10).collect::<Vec<_>>(), "each event handled exactly once, in order");
    expect_nothing(&mut rx, Duration::from_millis(300), "no event is handled twice").await;
    checkpoint_reaches(&store, "projector", 10).await;
    assert!(store.parked_events(ALL, "projector").await.unwrap().is_empty(), "a failure that passes parks nothing");

    let attempts = attempts.lock().unwrap().clone();
    assert_eq!(attempts.iter().filter(|a| !a.ok).count(), 2, "{attempts:?}");
    assert_eq!(attempts.iter().filter(|a| a.events.contains(&3)).count(), 3, "event 3 failed twice: {attempts:?}");
    let mut next = 1;
    for (i, attempt) in attempts.iter().enumerate() {
        assert_eq!(attempt.events[0], next, "attempt {i} starts at the oldest unacked event: {attempts:?}");
        assert!(attempt.events.windows(2).all(|w| w[1] == w[0] + 1), "attempt {i} is in order: {attempts:?}");
        if attempt.ok {
            next = attempt.events[attempt.events.len() - 1] + 1;
        }
        if i > 0 && !attempts[i - 1].ok {
            let waited = attempt.at - attempts[i - 1].at;
            assert!(
                waited >= Duration::from_millis(45),
                "attempt {i} came {waited:?} after a failure, without backoff"
            );
        }
    }
    assert_eq!(next, 11, "{attempts:?}");
}

#[tokio::test]
async fn a_parked_event_is_not_retried_the_events_before_it_are_acked_and_those_after_it_handled() {
    let store = quick_store().await;
    store.append_to_stream("acc-1", ExpectedVersion::NoStream, events("E", 1, 10)).await.unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let seen = Seen::default();
    let subscriber = ParksOn { poison: 5, seen: Arc::clone(&seen), handled: tx };
    let _handle = store.start_subscriber(ALL, "projector", SubscriptionOptions::default(), subscriber).await.unwrap();

    let handled = handled_until(&mut rx, 10).await;
    assert_eq!(handled, vec![1, 2, 3, 4, 6, 7, 8, 9, 10], "each event handled once, 5 never");
    expect_nothing(&mut rx, Duration::from_millis(300), "no event is handled twice").await;
    assert_eq!(*seen.lock().unwrap(), (1..=10).collect::<Vec<_>>(), "every event given once: 5 was not retried");
    let parked = store.parked_events(ALL, "projector").await.unwrap();
    assert_eq!(parked.iter().map(|p| (p.event_number, p.retry_count)).collect::<Vec<_>>(), vec![(5, 0)]);
    assert!(parked[0].reason.contains("event 5 is poison"), "{}", parked[0].reason);
    checkpoint_reaches(&store, "projector", 10).await;
}

#[tokio::test]
async fn a_failure_at_an_event_acks_the_events_before_it_and_retries_only_that_one_until_it_is_parked() {
    let store = quick_store().await;
    store.append_to_stream("acc-1", ExpectedVersion::NoStream, events("E", 1, 10)).await.unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let seen = Seen::default();
    let options = SubscriptionOptions::default().max_retry_count(2);
    let subscriber = FailsAt { poison: 5, seen: Arc::clone(&seen), handled: tx };
    let _handle = store.start_subscriber(ALL, "projector", options, subscriber).await.unwrap();

    let handled = handled_until(&mut rx, 10).await;
    assert_eq!(handled, vec![1, 2, 3, 4, 6, 7, 8, 9, 10], "each event handled once, 5 never");
    expect_nothing(&mut rx, Duration::from_millis(300), "no event is handled twice").await;
    for n in 1..=4 {
        assert_eq!(count(&seen, n), 1, "event {n} was acked with the failure: not given again; {seen:?}");
    }
    assert_eq!(count(&seen, 5), 1 + 2, "once, then max_retry_count retries; {seen:?}");
    let parked = store.parked_events(ALL, "projector").await.unwrap();
    assert_eq!(parked.iter().map(|p| (p.event_number, p.retry_count)).collect::<Vec<_>>(), vec![(5, 2)]);
    assert!(parked[0].reason.contains("cannot apply event 5"), "{}", parked[0].reason);
    checkpoint_reaches(&store, "projector", 10).await;
}

#[tokio::test]
async fn pause_stops_delivery_keeping_ownership_and_resume_delivers_the_backlog_in_order() {
    let store = quick_store().await;
    store.append_to_stream("acc-1", ExpectedVersion::NoStream, events("E", 1, 5)).await.unwrap();
    let (subscriber, mut rx) = recorder();
    let handle = store.start_subscriber(ALL, "projector", SubscriptionOptions::default(), subscriber).await.unwrap();
    assert_eq!(handled_until_caught_up(&mut rx).await, vec![1, 2, 3, 4, 5]);
    checkpoint_reaches(&store, "projector", 5).await;

    handle.pause().await.unwrap();
    for n in 6..=25 {
        store.append_to_stream("acc-1", ExpectedVersion::Any, vec![event("E", n)]).await.unwrap();
    }
    expect_nothing(&mut rx, Duration::from_millis(500), "a paused subscriber").await;
    assert!(handle.is_running());
    let status = store.subscription_status(ALL, "projector").await.unwrap();
    assert_eq!(status.paused, 1, "{status:?}");
    assert_ne!(status.phase, SubscriptionPhase::Waiting, "the node keeps ownership: {status:?}");
    assert_eq!(status.acked, 5, "{status:?}");
    let info = store.list_subscriptions().await.unwrap();
    let info = info.iter().find(|s| s.name == "projector").unwrap();
    assert!(info.owner_pid.is_some(), "a paused subscription stays owned: {info:?}");
    assert_eq!((info.checkpoint, info.lag), (5, 20), "{info:?}");

    handle.resume().await.unwrap();
    assert_eq!(handled_through(&mut rx, 25).await, (6..=25).collect::<Vec<_>>(), "the backlog, in order, once");
    expect_nothing(&mut rx, Duration::from_millis(300), "no event is handled twice").await;
    assert_eq!(store.subscription_status(ALL, "projector").await.unwrap().paused, 0);
    checkpoint_reaches(&store, "projector", 25).await;
}

#[tokio::test]
async fn stop_disconnects_the_subscriber_and_a_new_one_resumes_after_the_checkpoint() {
    let store = quick_store().await;
    store.append_to_stream("acc-1", ExpectedVersion::NoStream, events("E", 1, 5)).await.unwrap();
    // The checkpoint is only written when the subscription stops.
    let options =
        || SubscriptionOptions::default().checkpoint_threshold(1_000).checkpoint_after(Duration::from_secs(600));
    let (subscriber, mut rx) = recorder();
    let handle = store.start_subscriber(ALL, "projector", options(), subscriber).await.unwrap();
    assert_eq!(handled_until_caught_up(&mut rx).await, vec![1, 2, 3, 4, 5]);

    handle.stop().await.unwrap();
    assert!(!handle.is_running(), "the actor has stopped");
    assert!(
        matches!(store.subscription_status(ALL, "projector").await, Err(Error::SubscriptionNotFound)),
        "the subscription no longer runs on this node"
    );
    assert_checkpoint(&store, ALL, "projector", 5, "stopping wrote the checkpoint").await;
    handle.stop().await.expect("stopping a stopped subscriber is not an error");
    assert!(matches!(handle.pause().await, Err(Error::Unavailable(_))));

    store.append_to_stream("acc-1", ExpectedVersion::Any, events("E", 6, 5)).await.unwrap();
    expect_nothing(&mut rx, Duration::from_millis(300), "a stopped subscriber").await;
    let (subscriber, mut rx) = recorder();
    let again = store.start_subscriber(ALL, "projector", options(), subscriber).await.unwrap();
    assert_eq!(handled_until_caught_up(&mut rx).await, vec![6, 7, 8, 9, 10], "after the checkpoint, nothing twice");
    assert!(again.is_running());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_stop_returns_the_subscriber_is_not_running_on_a_multi_threaded_runtime() {
    let store = quick_store().await;
    store.append_to_stream("acc-1", ExpectedVersion::NoStream, events("E", 1, 1)).await.unwrap();
    // A race shows in some rounds only: run enough of them to see it.
    let mut still_running = Vec::new();
    for round in 1..=20 {
        let (subscriber, mut rx) = recorder();
        let handle =
            store.start_subscriber(ALL, "projector", SubscriptionOptions::default(), subscriber).await.unwrap();
        handled_until_caught_up(&mut rx).await;
        handle.stop().await.unwrap();
        if handle.is_running() {
            still_running.push(round);
        }
    }
    assert_eq!(still_running, Vec::<u32>::new(), "rounds where is_running() was true after stop() returned");
}

#[tokio::test]
async fn a_subscriber_started_after_a_store_restart_gets_exactly_the_events_after_the_last_acked_one() {
    let first = quick_store().await;
    first.append_to_stream("acc-1", ExpectedVersion::NoStream, events("E", 1, 5)).await.unwrap();
    // The checkpoint is only written when the subscription stops: at shutdown.
    let options =
        || SubscriptionOptions::default().checkpoint_threshold(1_000).checkpoint_after(Duration::from_secs(600));
    let (subscriber, mut rx) = recorder();
    let handle = first.start_subscriber(ALL, "projector", options(), subscriber).await.unwrap();
    assert_eq!(handled_until_caught_up(&mut rx).await, vec![1, 2, 3, 4, 5]);
    eventually("the subscription has the acks of events 1-5", || async {
        first.subscription_status(ALL, "projector").await.is_ok_and(|s| s.acked == 5)
    })
    .await;

    first.shutdown().await.unwrap();
    assert!(!handle.is_running(), "the subscriber stops with its store");

    let second = EventStore::start(first.config.clone()).await.unwrap();
    let checkpoint =
        second.list_subscriptions().await.unwrap().iter().find(|s| s.name == "projector").map(|s| s.checkpoint);
    assert_eq!(checkpoint, Some(5), "shutdown wrote the checkpoint");
    second.append_to_stream("acc-1", ExpectedVersion::Exact(5), events("E", 6, 5)).await.unwrap();
    let (subscriber, mut rx) = recorder();
    let _handle = second.start_subscriber(ALL, "projector", options(), subscriber).await.unwrap();
    let handled = handled_until_caught_up(&mut rx).await;
    assert_eq!(handled, vec![6, 7, 8, 9, 10], "no event missed, none repeated");
    second.append_to_stream("acc-1", ExpectedVersion::Exact(10), events("E", 11, 1)).await.unwrap();
    assert_eq!(handled_through(&mut rx, 11).await, vec![11]);
    second.shutdown().await.unwrap();
}

#[tokio::test]
async fn caught_up_is_called_once_the_whole_backlog_is_handled() {
    let store = quick_store().await;
    for (i, stream) in ["a", "b", "c", "d", "e"].into_iter().enumerate() {
        store.append_to_stream(stream, ExpectedVersion::NoStream, events("E", i as u64 * 50 + 1, 50)).await.unwrap();
    }
    let (subscriber, mut rx) = recorder();
    let options = SubscriptionOptions::default().buffer_size(20);
    let _handle = store.start_subscriber(ALL, "projector", options, subscriber).await.unwrap();

    let handled = handled_until_caught_up(&mut rx).await;
    assert_eq!(handled, (1..=250).collect::<Vec<_>>(), "caught_up comes after the backlog, not before");
    expect_nothing(&mut rx, Duration::from_millis(300), "caught_up is called once for the backlog").await;
    store.append_to_stream("a", ExpectedVersion::Exact(50), events("E", 251, 1)).await.unwrap();
    assert_eq!(handled_through(&mut rx, 251).await, vec![251], "live events follow");
}

#[tokio::test]
async fn caught_up_is_called_at_once_when_there_is_no_backlog() {
    let store = quick_store().await;
    let (subscriber, mut rx) = recorder();
    let _handle = store.start_subscriber(ALL, "projector", SubscriptionOptions::default(), subscriber).await.unwrap();
    assert_eq!(handled_until_caught_up(&mut rx).await, Vec::<u64>::new());
}

/// A config declaring `projector` and `mailer` (both on `$all`, from the origin).
fn declaring_projector_and_mailer(config: Config) -> Config {
    quick(config).subscriptions(vec![SubscriptionConfig::new(ALL, "projector"), SubscriptionConfig::new(ALL, "mailer")])
}

#[tokio::test]
async fn start_subscribers_starts_every_declared_subscription_with_its_implementation() {
    let store = TestStore::start_with(declaring_projector_and_mailer).await;
    store.append_to_stream("acc-1", ExpectedVersion::NoStream, events("E", 1, 3)).await.unwrap();
    let (projector, mut projected) = recorder();
    let (mailer, mut mailed) = recorder();
    let handles = store.start_subscribers(Subscribers::new().add("projector", projector).add("mailer", mailer)).await;
    let handles = handles.unwrap();
    assert_eq!(handles.keys().map(String::as_str).collect::<Vec<_>>(), ["mailer", "projector"]);
    assert!(handles.values().all(SubscriberHandle::is_running));
    assert_eq!((handles["mailer"].stream(), handles["mailer"].name()), (ALL, "mailer"));

    store.append_to_stream("acc-1", ExpectedVersion::Exact(3), events("E", 4, 2)).await.unwrap();
    assert_eq!(handled_through(&mut projected, 5).await, vec![1, 2, 3, 4, 5]);
    assert_eq!(handled_through(&mut mailed, 5).await, vec![1, 2, 3, 4, 5]);
    for name in ["projector", "mailer"] {
        assert_eq!(store.subscription_status(ALL, name).await.unwrap().subscribers, 1, "{name}");
    }
}

#[tokio::test]
async fn subscriptions_declared_in_toml_start_with_their_options() {
    const TOML: &str = r#"
        [[subscriptions]]
        name = "projector"

        [[subscriptions]]
        name = "mailer"
        stream = "acc-1"
        start_from = "current"
    "#;
    let store = TestStore::start_with(|test| {
        let config = Config::from_toml_str(TOML).unwrap();
        quick(config.database_url(test.database_url).schema(test.schema).pool_size(test.pool_size))
    })
    .await;
    store.append_to_stream("acc-1", ExpectedVersion::NoStream, events("E", 1, 3)).await.unwrap();
    let (projector, mut projected) = recorder();
    let (mailer, mut mailed) = recorder();
    let handles =
        store.start_subscribers(Subscribers::new().add("mailer", mailer).add("projector", projector)).await.unwrap();
    assert_eq!(handles["mailer"].stream(), "acc-1");
    // Once caught up, the mailer's start position ("current": after event 3) is set.
    assert_eq!(handled_until_caught_up(&mut mailed).await, Vec::<u64>::new(), "the mailer starts at the current end");
    assert_eq!(handled_until_caught_up(&mut projected).await, vec![1, 2, 3], "the projector starts at the origin");

    store.append_to_stream("other", ExpectedVersion::NoStream, events("E", 4, 1)).await.unwrap();
    store.append_to_stream("acc-1", ExpectedVersion::Exact(3), events("E", 5, 2)).await.unwrap();
    assert_eq!(handled_through(&mut projected, 6).await, vec![4, 5, 6]);
    assert_eq!(handled_through(&mut mailed, 5).await, vec![4, 5], "the mailer sees acc-1 only, by stream version");
}

#[tokio::test]
async fn a_declared_subscription_without_an_implementation_is_a_config_error_and_nothing_starts() {
    let store = TestStore::start_with(declaring_projector_and_mailer).await;
    let (projector, mut projected) = recorder();
    let err = store.start_subscribers(Subscribers::new().add("projector", projector)).await.unwrap_err();
    match &err {
        Error::Config(c) => {
            assert_eq!(c.key, "subscriptions", "{err}");
            assert!(c.reason.contains("mailer"), "the reason names the missing implementation: {err}");
        }
        other => panic!("a config error expected, got {other:?}"),
    }
    assert_nothing_started(&store, &["projector", "mailer"]).await;
    expect_nothing(&mut projected, Duration::from_millis(300), "a subscriber that was not started").await;
}

#[tokio::test]
async fn an_implementation_without_a_declaration_is_a_config_error_naming_it_and_nothing_starts() {
    let store = TestStore::start_with(declaring_projector_and_mailer).await;
    let (projector, _) = recorder();
    let (mailer, _) = recorder();
    let (auditor, _) = recorder();
    let subscribers = Subscribers::new().add("projector", projector).add("mailer", mailer).add("auditor", auditor);
    let err = store.start_subscribers(subscribers).await.unwrap_err();
    match &err {
        Error::Config(c) => {
            assert_eq!(c.key, "subscriptions", "{err}");
            assert!(c.reason.contains("auditor"), "the reason names the undeclared implementation: {err}");
        }
        other => panic!("a config error expected, got {other:?}"),
    }
    assert_nothing_started(&store, &["projector", "mailer", "auditor"]).await;
}

async fn assert_nothing_started(store: &EventStore, names: &[&str]) {
    for name in names {
        assert!(
            matches!(store.subscription_status(ALL, name).await, Err(Error::SubscriptionNotFound)),
            "{name} does not run"
        );
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(store.list_subscriptions().await.unwrap(), vec![], "no subscription was created");
}

/// Appends `appends` single events from `tasks` concurrent tasks; how long it took.
async fn timed_appends(store: &EventStore, prefix: &str, appends: u64, tasks: u64) -> Duration {
    let started = Instant::now();
    let mut running = tokio::task::JoinSet::new();
    for task in 0..tasks {
        let (store, stream) = (store.clone(), format!("{prefix}-{task}"));
        running.spawn(async move {
            for n in 0..appends / tasks {
                store.append_to_stream(&stream, ExpectedVersion::Exact(n), vec![event("E", n + 1)]).await.unwrap();
            }
        });
    }
    while let Some(done) = running.join_next().await {
        done.expect("every append succeeds");
    }
    started.elapsed()
}

/// Appends one event and waits until `witness` (a live listener that is read) got it: the
/// publishers routed this append on its own, so every live listener got one message for it.
async fn append_routed_alone(store: &EventStore, witness: &mut LiveSubscription, stream: &str, n: u64) -> u64 {
    let appended = store.append_to_stream(stream, ExpectedVersion::Exact(n - 1), vec![event("E", n)]).await.unwrap();
    loop {
        match tokio::time::timeout(WAIT, witness.recv()).await {
            Ok(Some(LiveMessage::Events(events)))
                if events.iter().any(|e| e.event_number == appended.last_position) =>
            {
                return appended.last_position;
            }
            Ok(Some(LiveMessage::Events(_) | LiveMessage::Lagged { .. })) => {}
            other => panic!("the witness listener expected event {}, got {other:?}", appended.last_position),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_listener_that_is_never_read_does_not_slow_appends_and_reports_what_it_lost() {
    const APPENDS: u64 = 5_000;
    const TASKS: u64 = 10;
    const ALONE: u64 = LIVE_BUFFER as u64 + 100;
    let store = quick_store().await;
    let baseline = timed_appends(&store, "baseline", APPENDS, TASKS).await;

    let mut live = store.subscribe(ALL).await.unwrap();
    let head = store.stream_info(ALL).await.unwrap().stream_version;
    let stuck = timed_appends(&store, "stuck", APPENDS, TASKS).await;
    // Timings are reported, not asserted (a shared machine is too noisy); what is asserted is
    // that every append completed with the listener stuck, and that it holds a bounded buffer.
    eprintln!("{APPENDS} appends: {baseline:?} without a listener, {stuck:?} with one that is never read");
    // The writer batches concurrent appends, so the listener may have got fewer than
    // LIVE_BUFFER messages so far: more appends, each routed on its own, overflow it for sure.
    let mut witness = store.subscribe(ALL).await.unwrap();
    for n in 1..=ALONE {
        append_routed_alone(&store, &mut witness, "alone", n).await;
    }
    drop(witness);
    // The publisher may still be handing the last one to the stuck listener.
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Everything is routed: read what the listener holds.
    let (mut messages, mut delivered, mut missed) = (0, Vec::new(), Vec::new());
    while let Ok(Some(message)) = tokio::time::timeout(Duration::from_millis(300), live.recv()).await {
        messages += 1;
        match message {
            LiveMessage::Events(events) => delivered.extend(events.iter().map(|e| e.event_number)),
            LiveMessage::Lagged { missed: m } => missed.push(m),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(messages <= LIVE_BUFFER, "the listener held {messages} messages, over LIVE_BUFFER ({LIVE_BUFFER})");
    assert!(messages > 0, "the listener got nothing");

    // The next append tells the listener what it lost, then events flow again.
    let last = store.append_to_stream("after", ExpectedVersion::NoStream, vec![event("E", 1)]).await.unwrap();
    loop {
        match tokio::time::timeout(WAIT, live.recv()).await {
            Ok(Some(LiveMessage::Lagged { missed: m })) => missed.push(m),
            Ok(Some(LiveMessage::Events(events))) => {
                let numbers: Vec<u64> = events.iter().map(|e| e.event_number).collect();
                delivered.extend(&numbers);
                if numbers.contains(&last.last_position) {
                    break;
                }
            }
            other => panic!("expected the event appended after the lag, got {other:?}"),
        }
    }
    assert!(!missed.is_empty(), "a listener that fell {} messages behind was told it lagged", ALONE + 1);
    assert!(delivered.windows(2).all(|w| w[0] < w[1]), "what it got is in order, without repeats");
    let after_head = delivered.iter().filter(|n| **n > head).count() as u64;
    let appended = APPENDS + ALONE + 1;
    if let Some(missed) = missed.iter().copied().sum::<Option<u64>>() {
        assert!(
            after_head + missed >= appended,
            "{appended} events appended: {after_head} delivered and {missed} counted missed"
        );
    }
}
