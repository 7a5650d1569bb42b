//! Catch-up subscriptions through the KurrentDB client: a stream or `$all` from any start, the
//! caught-up signal, live events after it, server-side filters with checkpoints, and a client
//! that goes away (its subscription ends on the server).

use std::time::Duration;

use kurrentdb::{
    AppendToStreamOptions, StreamPosition, StreamState, SubscribeToAllOptions, SubscribeToStreamOptions,
    SubscriptionEvent, SubscriptionFilter,
};

use crate::served::{Served, json_event, n_of};

const WAIT: Duration = Duration::from_secs(10);

/// From the stream's first event (the client's default is its end: live only).
fn from_start() -> SubscribeToStreamOptions {
    SubscribeToStreamOptions::default().start_from(StreamPosition::Start)
}

/// `$all` from its first event.
fn all_from_start() -> SubscribeToAllOptions {
    SubscribeToAllOptions::default().position(StreamPosition::Start)
}

async fn append(served: &Served, stream: &str, event_type: &str, n: u64) {
    served
        .client
        .append_to_stream(
            stream,
            &AppendToStreamOptions::default().stream_state(StreamState::Any),
            json_event(event_type, n),
        )
        .await
        .unwrap();
}

/// The next event's `n`, or `CaughtUp` as `None`, skipping other notices.
async fn next(subscription: &mut kurrentdb::Subscription) -> Option<u64> {
    loop {
        let event = tokio::time::timeout(WAIT, subscription.next_subscription_event())
            .await
            .expect("the subscription answers in time")
            .expect("the subscription goes on");
        match event {
            SubscriptionEvent::EventAppeared(e) => return Some(n_of(e.event.as_ref().unwrap())),
            SubscriptionEvent::CaughtUp(_) => return None,
            _ => {}
        }
    }
}

#[tokio::test]
async fn a_stream_subscription_catches_up_says_so_and_goes_live() {
    let served = Served::start().await;
    for n in 0..3 {
        append(&served, "feed-1", "E", n).await;
    }
    let mut subscription = served.client.subscribe_to_stream("feed-1", &from_start()).await;
    assert_eq!(next(&mut subscription).await, Some(0));
    assert_eq!(next(&mut subscription).await, Some(1));
    assert_eq!(next(&mut subscription).await, Some(2));
    assert_eq!(next(&mut subscription).await, None, "caught up");
    append(&served, "feed-1", "E", 3).await;
    append(&served, "other", "E", 99).await;
    append(&served, "feed-1", "E", 4).await;
    assert_eq!(next(&mut subscription).await, Some(3));
    assert_eq!(next(&mut subscription).await, Some(4));
}

#[tokio::test]
async fn a_subscription_from_a_revision_starts_after_it() {
    let served = Served::start().await;
    for n in 0..5 {
        append(&served, "feed-2", "E", n).await;
    }
    let options = SubscribeToStreamOptions::default().start_from(StreamPosition::Position(2));
    let mut subscription = served.client.subscribe_to_stream("feed-2", &options).await;
    assert_eq!(next(&mut subscription).await, Some(3));
    assert_eq!(next(&mut subscription).await, Some(4));
    assert_eq!(next(&mut subscription).await, None);

    let live_only = SubscribeToStreamOptions::default().start_from(StreamPosition::End);
    let mut live = served.client.subscribe_to_stream("feed-2", &live_only).await;
    assert_eq!(next(&mut live).await, None, "nothing stored is delivered");
    append(&served, "feed-2", "E", 5).await;
    assert_eq!(next(&mut live).await, Some(5));
}

#[tokio::test]
async fn an_all_subscription_from_a_position_delivers_what_follows() {
    let served = Served::start().await;
    for n in 0..4 {
        append(&served, &format!("s-{n}"), "E", n).await;
    }
    let second = served.store().read_all_forward(0, 10).await.unwrap()[1].global_position;
    let from = kurrentdb::Position { commit: second, prepare: second };
    let options = SubscribeToAllOptions::default().position(StreamPosition::Position(from));
    let mut subscription = served.client.subscribe_to_all(&options).await;
    assert_eq!(next(&mut subscription).await, Some(2));
    assert_eq!(next(&mut subscription).await, Some(3));
    assert_eq!(next(&mut subscription).await, None);
    append(&served, "s-9", "E", 9).await;
    assert_eq!(next(&mut subscription).await, Some(9));
}

#[tokio::test]
async fn filtered_all_subscriptions_get_only_matching_events() {
    let served = Served::start().await;
    append(&served, "account-1", "Opened", 1).await;
    append(&served, "order-1", "Placed", 2).await;
    append(&served, "account-2", "Deposited", 3).await;

    let by_stream = SubscriptionFilter::on_stream_name().add_prefix("account-");
    let mut accounts = served.client.subscribe_to_all(&all_from_start().filter(by_stream)).await;
    let by_type = SubscriptionFilter::on_event_type().regex("^Pla");
    let mut placed = served.client.subscribe_to_all(&all_from_start().filter(by_type)).await;

    assert_eq!(next(&mut accounts).await, Some(1));
    assert_eq!(next(&mut accounts).await, Some(3));
    assert_eq!(next(&mut accounts).await, None);
    assert_eq!(next(&mut placed).await, Some(2));
    assert_eq!(next(&mut placed).await, None);

    append(&served, "order-2", "Placed", 4).await;
    append(&served, "account-3", "Opened", 5).await;
    assert_eq!(next(&mut accounts).await, Some(5));
    assert_eq!(next(&mut placed).await, Some(4));
}

#[tokio::test]
async fn a_filter_whose_pattern_does_not_compile_is_refused() {
    let served = Served::start().await;
    let broken = SubscriptionFilter::on_event_type().regex("(unclosed");
    let mut subscription = served.client.subscribe_to_all(&all_from_start().filter(broken)).await;
    let outcome = tokio::time::timeout(WAIT, subscription.next_subscription_event()).await.expect("answered");
    match outcome {
        Err(kurrentdb::Error::Grpc { code, message }) => {
            // The client's own tonic (another version than the server's) names the code.
            assert_eq!(format!("{code:?}"), "InvalidArgument");
            assert!(message.contains("(unclosed"), "{message}");
        }
        other => panic!("expected an invalid argument, got {other:?}"),
    }
}

#[tokio::test]
async fn a_category_subscription_resolves_links() {
    let served = Served::start().await;
    append(&served, "user-1", "Registered", 1).await;
    append(&served, "team-1", "Formed", 2).await;
    let options = from_start().resolve_link_tos();
    let mut users = served.client.subscribe_to_stream("$ce-user", &options).await;
    assert_eq!(next(&mut users).await, Some(1));
    assert_eq!(next(&mut users).await, None);
    append(&served, "user-2", "Registered", 3).await;
    assert_eq!(next(&mut users).await, Some(3));
}

#[tokio::test]
async fn a_client_that_goes_away_ends_its_subscription_on_the_server() {
    let served = Served::start().await;
    append(&served, "feed-3", "E", 0).await;
    let mut subscription = served.client.subscribe_to_stream("feed-3", &from_start()).await;
    let id = match subscription.next_subscription_event().await.expect("the subscription starts") {
        SubscriptionEvent::Confirmed(id) => id,
        other => panic!("the confirmation comes first, not {other:?}"),
    };
    assert_eq!(next(&mut subscription).await, Some(0));
    let name = format!("grpc-{id}");
    assert!(served.store().subscription_status("feed-3", &name).await.is_ok(), "the server runs it as `{name}`");
    assert!(served.store().list_subscriptions().await.unwrap().is_empty(), "a catch-up subscription is not stored");

    drop(subscription);
    let deadline = tokio::time::Instant::now() + WAIT;
    while served.store().subscription_status("feed-3", &name).await.is_ok() {
        assert!(tokio::time::Instant::now() < deadline, "the server still runs `{name}` after its client left");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_server_that_shuts_down_ends_its_subscriptions_and_leaves_the_store_running() {
    let served = Served::start().await;
    append(&served, "feed-4", "E", 0).await;
    let mut subscription = served.client.subscribe_to_stream("feed-4", &from_start()).await;
    assert_eq!(next(&mut subscription).await, Some(0));
    let Served { client, server, store } = served;
    server.shutdown().await.expect("a clean stop");
    let ended = tokio::time::timeout(WAIT, async {
        loop {
            match subscription.next_subscription_event().await {
                Err(e) => return e,
                Ok(SubscriptionEvent::EventAppeared(e)) => panic!("no event after the stop: {e:?}"),
                Ok(_) => {}
            }
        }
    })
    .await
    .expect("the subscription ends");
    assert!(!matches!(ended, kurrentdb::Error::WrongExpectedVersion { .. }), "{ended:?}");
    drop(client);
    let event = chronik::EventData::json("E", &serde_json::json!({ "n": 1 })).unwrap();
    store.append_to_stream("feed-4", chronik::ExpectedVersion::Exact(1), vec![event]).await.expect("the store goes on");
}

#[tokio::test]
async fn a_deadline_ends_a_subscription_on_both_sides() {
    // (The Rust client sends no deadline with subscriptions; the protocol's own client does.)
    use chronik::server::proto::streams::read_req::options::{self as o, stream_options::RevisionOption};
    use chronik::server::proto::streams::streams_client::StreamsClient;
    use chronik::server::proto::streams::{ReadReq, read_req, read_resp};

    let served = Served::start().await;
    append(&served, "quiet", "E", 0).await;
    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{}", served.server.local_addr())).unwrap();
    let mut client = StreamsClient::new(endpoint.connect().await.unwrap());
    let options = read_req::Options {
        stream_option: Some(o::StreamOption::Stream(o::StreamOptions {
            stream_identifier: Some(chronik::server::proto::StreamIdentifier { stream_name: b"quiet".to_vec() }),
            revision_option: Some(RevisionOption::Start(())),
        })),
        count_option: Some(o::CountOption::Subscription(o::SubscriptionOptions {})),
        filter_option: Some(o::FilterOption::NoFilter(())),
        uuid_option: Some(o::UuidOption { content: Some(o::uuid_option::Content::String(())) }),
        ..Default::default()
    };
    let mut request = tonic::Request::new(ReadReq { options: Some(options) });
    request.set_timeout(Duration::from_millis(500));
    let mut read = client.read(request).await.expect("the subscription starts").into_inner();
    let id = match read.message().await.unwrap().and_then(|r| r.content) {
        Some(read_resp::Content::Confirmation(c)) => c.subscription_id,
        other => panic!("the confirmation comes first, not {other:?}"),
    };
    let ended = tokio::time::timeout(WAIT, async {
        loop {
            match read.message().await {
                Ok(Some(_)) => {}
                Ok(None) => panic!("the subscription ended without a status"),
                Err(status) => return status,
            }
        }
    })
    .await
    .expect("the deadline ends the subscription");
    assert_eq!(ended.code(), tonic::Code::DeadlineExceeded, "{ended:?}");
    let name = format!("grpc-{id}");
    let deadline = tokio::time::Instant::now() + WAIT;
    while served.store().subscription_status("quiet", &name).await.is_ok() {
        assert!(tokio::time::Instant::now() < deadline, "the server still runs `{name}` past its deadline");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_filtered_subscription_reports_its_progress_through_what_did_not_pass() {
    let served = Served::start().await;
    for n in 0..5 {
        append(&served, "noise-1", "Noise", n).await;
    }
    let last = served.store().read_all_backward(None, 1).await.unwrap()[0].global_position;
    let wanted = SubscriptionFilter::on_stream_name().add_prefix("wanted-");
    let mut subscription = served.client.subscribe_to_all(&all_from_start().filter(wanted)).await;
    assert_eq!(checkpoint_reaching(&mut subscription, last).await, last);
    append(&served, "noise-2", "Noise", 9).await;
    let later = served.store().read_all_backward(None, 1).await.unwrap()[0].global_position;
    assert_eq!(checkpoint_reaching(&mut subscription, later).await, later);
}

/// The position of the first checkpoint at or past `target` (no event may pass the filter).
async fn checkpoint_reaching(subscription: &mut kurrentdb::Subscription, target: u64) -> u64 {
    let reached = async {
        loop {
            match subscription.next_subscription_event().await.expect("the subscription goes on") {
                SubscriptionEvent::Checkpoint(position) if position.commit >= target => return position.commit,
                SubscriptionEvent::EventAppeared(e) => panic!("nothing passes the filter: {e:?}"),
                _ => {}
            }
        }
    };
    tokio::time::timeout(WAIT, reached).await.expect("a checkpoint in time")
}
