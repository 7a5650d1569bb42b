//! Persistent subscriptions through the KurrentDB client: groups created, updated, listed,
//! described and deleted; consumers that ack, and nack with each action (retry, park and
//! replay, skip, stop); competing consumers; the errors KurrentDB's clients expect.

use std::time::Duration;

use kurrentdb::{
    AppendToStreamOptions, Error, NakAction, PersistentSubscription, PersistentSubscriptionOptions,
    PersistentSubscriptionToAllOptions, ReplayParkedMessagesOptions, StreamPosition, StreamState,
    SubscribeToPersistentSubscriptionOptions,
};

use crate::served::{Served, json_event, n_of};

const WAIT: Duration = Duration::from_secs(10);

async fn append(served: &Served, stream: &str, n: u64) {
    served
        .client
        .append_to_stream(stream, &AppendToStreamOptions::default().stream_state(StreamState::Any), json_event("E", n))
        .await
        .unwrap();
}

async fn consumer(served: &Served, stream: &str, group: &str) -> PersistentSubscription {
    served
        .client
        .subscribe_to_persistent_subscription(stream, group, &SubscribeToPersistentSubscriptionOptions::default())
        .await
        .expect("the consumer connects")
}

/// The next event's `n` and retry count.
async fn receive(subscription: &mut PersistentSubscription) -> (u64, usize, kurrentdb::ResolvedEvent) {
    loop {
        let event = tokio::time::timeout(WAIT, subscription.next_subscription_event())
            .await
            .expect("an event comes in time")
            .expect("the subscription goes on");
        if let kurrentdb::PersistentSubscriptionEvent::EventAppeared { retry_count, event } = event {
            return (n_of(event.event.as_ref().unwrap()), retry_count, event);
        }
    }
}

/// The group's parked events once there are `count` of them (acks and nacks travel on their
/// own, so the list changes a little after the calls return).
async fn parked_once(served: &Served, stream: &str, group: &str, count: usize) -> Vec<chronik::ParkedEvent> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let parked = served.store().parked_events(stream, group).await.unwrap();
        if parked.len() == count || tokio::time::Instant::now() > deadline {
            return parked;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn from_start() -> PersistentSubscriptionOptions {
    PersistentSubscriptionOptions::default().start_from(StreamPosition::Start)
}

#[tokio::test]
async fn a_group_delivers_to_its_consumer_and_keeps_its_checkpoint() {
    let served = Served::start().await;
    for n in 0..3 {
        append(&served, "orders", n).await;
    }
    served.client.create_persistent_subscription("orders", "billing", &from_start()).await.unwrap();
    let mut billing = consumer(&served, "orders", "billing").await;
    for expected in 0..3 {
        let (n, retries, event) = receive(&mut billing).await;
        assert_eq!((n, retries), (expected, 0));
        billing.ack(&event).await.unwrap();
    }
    append(&served, "orders", 3).await;
    let (n, _, event) = receive(&mut billing).await;
    assert_eq!(n, 3);
    billing.ack(&event).await.unwrap();

    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let info = served.store().subscription_info("orders", "billing").await.unwrap();
        if info.checkpoint == 4 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "checkpoint stuck at {}", info.checkpoint);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(billing);

    append(&served, "orders", 4).await;
    let mut again = consumer(&served, "orders", "billing").await;
    assert_eq!(receive(&mut again).await.0, 4, "a new consumer resumes after the checkpoint");
}

#[tokio::test]
async fn a_group_starts_at_the_revision_it_names() {
    let served = Served::start().await;
    for n in 0..5 {
        append(&served, "log", n).await;
    }
    let options = PersistentSubscriptionOptions::default().start_from(StreamPosition::Position(3));
    served.client.create_persistent_subscription("log", "tail", &options).await.unwrap();
    let mut tail = consumer(&served, "log", "tail").await;
    assert_eq!(receive(&mut tail).await.0, 3, "revision 3 is the first delivered");
}

#[tokio::test]
async fn each_nack_action_does_what_kurrentdb_does() {
    let served = Served::start().await;
    for n in 0..3 {
        append(&served, "jobs", n).await;
    }
    served.client.create_persistent_subscription("jobs", "workers", &from_start()).await.unwrap();
    let mut workers = consumer(&served, "jobs", "workers").await;
    let mut delivered = std::collections::HashMap::new();
    for _ in 0..3 {
        let (n, retries, event) = receive(&mut workers).await;
        assert_eq!(retries, 0);
        delivered.insert(n, event);
    }
    workers.nack(&delivered[&0], NakAction::Retry, "try again").await.unwrap();
    let (n, retries, again) = receive(&mut workers).await;
    assert_eq!((n, retries), (0, 1), "a retried event comes again with its retry count");
    workers.nack(&again, NakAction::Park, "poison").await.unwrap();
    workers.nack(&delivered[&1], NakAction::Skip, "not needed").await.unwrap();
    workers.ack(&delivered[&2]).await.unwrap();

    let parked = parked_once(&served, "jobs", "workers", 1).await;
    assert_eq!(parked.len(), 1);
    assert_eq!((parked[0].event_number, parked[0].reason.as_str()), (1, "poison"));
    let info = served.client.get_persistent_subscription_info("jobs", "workers", &Default::default()).await.unwrap();
    assert_eq!(info.stats.parked_message_count, 1);

    served.client.replay_parked_messages("jobs", "workers", &ReplayParkedMessagesOptions::default()).await.unwrap();
    let (n, _, replayed) = receive(&mut workers).await;
    assert_eq!(n, 0, "the parked event is delivered again");
    workers.ack(&replayed).await.unwrap();

    append(&served, "jobs", 3).await;
    let (n, _, last) = receive(&mut workers).await;
    assert_eq!(n, 3);
    workers.nack(&last, NakAction::Stop, "shutting down").await.unwrap();
    let ended = tokio::time::timeout(WAIT, async {
        loop {
            if workers.next_subscription_event().await.is_err() {
                break;
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "Stop ends the consumer's subscription");
    let mut next_one = consumer(&served, "jobs", "workers").await;
    assert_eq!(receive(&mut next_one).await.0, 3, "the stopped consumer's event goes to the next consumer");
}

#[tokio::test]
async fn replay_with_stop_at_replays_the_first_parked_events_only() {
    let served = Served::start().await;
    for n in 0..3 {
        append(&served, "tasks", n).await;
    }
    served.client.create_persistent_subscription("tasks", "workers", &from_start()).await.unwrap();
    let mut workers = consumer(&served, "tasks", "workers").await;
    for _ in 0..3 {
        let (_, _, event) = receive(&mut workers).await;
        workers.nack(&event, NakAction::Park, "later").await.unwrap();
    }
    assert_eq!(parked_once(&served, "tasks", "workers", 3).await.len(), 3);

    let first_two = ReplayParkedMessagesOptions::default().stop_at(2);
    served.client.replay_parked_messages("tasks", "workers", &first_two).await.unwrap();
    let mut replayed = Vec::new();
    for _ in 0..2 {
        let (n, _, event) = receive(&mut workers).await;
        replayed.push(n);
        workers.ack(&event).await.unwrap();
    }
    assert_eq!(replayed, vec![0, 1]);
    let nothing = tokio::time::timeout(Duration::from_millis(300), workers.next_subscription_event()).await;
    assert!(nothing.is_err(), "the third stays parked: {nothing:?}");
    let parked = parked_once(&served, "tasks", "workers", 1).await;
    let numbers: Vec<u64> = parked.iter().map(|p| p.event_number).collect();
    assert_eq!(numbers, vec![3], "the event at revision 2 (version 3) stays parked");
}

#[tokio::test]
async fn a_consumer_gets_no_more_in_flight_than_the_buffer_size_it_asks_for() {
    let served = Served::start().await;
    for n in 0..6 {
        append(&served, "orders", n).await;
    }
    served.client.create_persistent_subscription("orders", "billing", &from_start()).await.unwrap();
    let two = SubscribeToPersistentSubscriptionOptions::default().buffer_size(2);
    let mut small = served.client.subscribe_to_persistent_subscription("orders", "billing", &two).await.unwrap();
    let (first, _, a) = receive(&mut small).await;
    let (second, _, b) = receive(&mut small).await;
    assert_eq!((first, second), (0, 1));
    let more = tokio::time::timeout(Duration::from_millis(300), small.next_subscription_event()).await;
    assert!(more.is_err(), "a third event while two are in flight: {more:?}");
    let info = served.client.get_persistent_subscription_info("orders", "billing", &Default::default()).await.unwrap();
    let connection = &info.connections[0];
    assert_eq!((connection.in_flight_messages, connection.available_slots), (2, 0));

    small.ack(&a).await.unwrap();
    small.ack(&b).await.unwrap();
    assert_eq!(receive(&mut small).await.0, 2, "acks make room again");
}

#[tokio::test]
async fn competing_consumers_share_a_group_up_to_its_limit() {
    let served = Served::start().await;
    let options = from_start().max_subscriber_count(2);
    served.client.create_persistent_subscription("tasks", "pool", &options).await.unwrap();
    let first = consumer(&served, "tasks", "pool").await;
    let second = consumer(&served, "tasks", "pool").await;
    let third = served
        .client
        .subscribe_to_persistent_subscription("tasks", "pool", &SubscribeToPersistentSubscriptionOptions::default())
        .await;
    assert!(third.is_err(), "a third consumer is over max_subscriber_count");

    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    for (who, mut subscription) in [(1, first), (2, second)] {
        let tx = tx.clone();
        tokio::spawn(async move {
            while let Ok(event) = subscription.next().await {
                subscription.ack(&event).await.unwrap();
                if tx.send((who, n_of(event.event.as_ref().unwrap()))).is_err() {
                    return;
                }
            }
        });
    }
    for n in 0..40 {
        append(&served, "tasks", n).await;
    }
    let mut got = Vec::new();
    let (mut by_first, mut by_second) = (0, 0);
    while got.len() < 40 {
        let (who, n) = tokio::time::timeout(WAIT, rx.recv()).await.expect("events keep coming").unwrap();
        got.push(n);
        if who == 1 { by_first += 1 } else { by_second += 1 }
    }
    got.sort_unstable();
    assert_eq!(got, (0..40).collect::<Vec<_>>(), "each event once");
    assert!(by_first > 0 && by_second > 0, "round robin shares: {by_first} and {by_second}");
}

#[tokio::test]
async fn groups_are_created_once_listed_updated_described_and_deleted() {
    let served = Served::start().await;
    let client = &served.client;
    client.create_persistent_subscription("stock", "audit", &from_start()).await.unwrap();
    let again = client.create_persistent_subscription("stock", "audit", &from_start()).await;
    assert!(matches!(again, Err(Error::ResourceAlreadyExists)), "{again:?}");
    client
        .create_persistent_subscription_to_all("everything", &PersistentSubscriptionToAllOptions::default())
        .await
        .unwrap();

    let listed = client.list_all_persistent_subscriptions(&Default::default()).await.unwrap();
    let mut names: Vec<_> = listed.iter().map(|i| (i.event_source.clone(), i.group_name.clone())).collect();
    names.sort();
    assert_eq!(names, vec![("$all".into(), "everything".into()), ("stock".into(), "audit".into())]);

    let updated = from_start().max_retry_count(2).message_timeout(Duration::from_secs(7));
    client.update_persistent_subscription("stock", "audit", &updated).await.unwrap();
    let info = client.get_persistent_subscription_info("stock", "audit", &Default::default()).await.unwrap();
    let settings = info.settings.expect("settings");
    assert_eq!((settings.max_retry_count, settings.message_timeout), (2, Duration::from_secs(7)));
    let stored = served.store().subscription_info("stock", "audit").await.unwrap().settings.unwrap();
    assert_eq!(stored.max_retry_count, 2);

    client.delete_persistent_subscription("stock", "audit", &Default::default()).await.unwrap();
    let gone = client.get_persistent_subscription_info("stock", "audit", &Default::default()).await;
    assert!(matches!(gone, Err(Error::ResourceNotFound)), "{gone:?}");
    let missing = client.delete_persistent_subscription("stock", "audit", &Default::default()).await;
    assert!(matches!(missing, Err(Error::ResourceNotFound)), "{missing:?}");
}

#[tokio::test]
async fn a_consumer_of_a_group_that_does_not_exist_is_told_so() {
    let served = Served::start().await;
    let outcome = served
        .client
        .subscribe_to_persistent_subscription("nowhere", "nobody", &SubscribeToPersistentSubscriptionOptions::default())
        .await;
    assert!(matches!(outcome, Err(Error::ResourceNotFound)), "{:?}", outcome.err());
    assert!(served.store().list_subscriptions().await.unwrap().is_empty(), "nothing was created by trying");
}

#[tokio::test]
async fn a_group_on_all_with_a_filter_gets_only_matching_events() {
    let served = Served::start().await;
    append(&served, "invoice-1", 1).await;
    append(&served, "email-1", 2).await;
    append(&served, "invoice-2", 3).await;
    let filter = kurrentdb::SubscriptionFilter::on_stream_name().add_prefix("invoice-");
    let options = PersistentSubscriptionToAllOptions::default().start_from(StreamPosition::Start).filter(filter);
    served.client.create_persistent_subscription_to_all("invoices", &options).await.unwrap();
    let mut invoices = served
        .client
        .subscribe_to_persistent_subscription_to_all("invoices", &SubscribeToPersistentSubscriptionOptions::default())
        .await
        .unwrap();
    let (first, _, event) = receive(&mut invoices).await;
    invoices.ack(&event).await.unwrap();
    let (second, _, event) = receive(&mut invoices).await;
    invoices.ack(&event).await.unwrap();
    assert_eq!((first, second), (1, 3));
}
