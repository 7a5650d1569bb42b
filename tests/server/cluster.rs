//! Several servers on one PostgreSQL store form a cluster: gossip, from any member, lists every
//! live member with one leader; a member that stops or dies drops out within seconds and the
//! lead moves; clients that discover through gossip find a member; what only one node may do
//! (running a persistent subscription group) works whichever member the client reached.
//! Each node is a store of its own on the same schema, as separate processes would be.

use std::time::Duration;

use chronik::server::proto::gossip::gossip_client::GossipClient;
use chronik::server::proto::gossip::member_info::VNodeState;
use chronik::server::{Server, ServerOptions};
use chronik::{EventStore, ExpectedVersion};
use kurrentdb::{Client, PersistentSubscriptionOptions, StreamPosition, SubscribeToPersistentSubscriptionOptions};
use sqlx::Connection;

use crate::common::TestStore;
use crate::served::json_event;

const WAIT: Duration = Duration::from_secs(15);

/// Another node on the same store.
async fn node(first: &TestStore) -> EventStore {
    EventStore::start(first.config.clone()).await.expect("a second node starts")
}

async fn serve(store: &EventStore) -> Server {
    Server::start(store.clone(), ServerOptions::insecure(([127, 0, 0, 1], 0).into())).await.expect("serves")
}

/// What gossip on `server` says: (port, leader) of each member, sorted by port.
async fn gossip(server: &Server) -> Vec<(u32, bool)> {
    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{}", server.local_addr())).unwrap();
    let mut client = GossipClient::new(endpoint.connect().await.expect("connects"));
    let members = client.read(()).await.expect("gossip answers").into_inner().members;
    let mut listed: Vec<(u32, bool)> = members
        .iter()
        .map(|m| {
            assert!(m.is_alive);
            (m.http_end_point.as_ref().expect("an endpoint").port, m.state == VNodeState::Leader as i32)
        })
        .collect();
    listed.sort_unstable();
    listed
}

/// Waits until gossip on `server` lists exactly the members `wanted` says, with one leader.
async fn until_listed(server: &Server, wanted: impl Fn(&[(u32, bool)]) -> bool) -> Vec<(u32, bool)> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let listed = gossip(server).await;
        if wanted(&listed) && listed.iter().filter(|(_, leader)| *leader).count() == 1 {
            return listed;
        }
        assert!(tokio::time::Instant::now() < deadline, "gossip still says {listed:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn port(server: &Server) -> u32 {
    u32::from(server.local_addr().port())
}

#[tokio::test]
async fn every_member_lists_the_same_members_and_one_leader() {
    let first = TestStore::start().await;
    let second = node(&first).await;
    let (a, b) = (serve(&first.store).await, serve(&second).await);
    let both = |l: &[(u32, bool)]| l.len() == 2;
    let from_a = until_listed(&a, both).await;
    let from_b = until_listed(&b, both).await;
    assert_eq!(from_a, from_b, "both members say the same");
    let ports: Vec<u32> = from_a.iter().map(|(p, _)| *p).collect();
    let mut expected = vec![port(&a), port(&b)];
    expected.sort_unstable();
    assert_eq!(ports, expected);
    let leader = from_a.iter().find(|(_, l)| *l).unwrap().0;
    assert_eq!(leader, port(&a), "the first to join leads");

    // The leader leaves: the other takes the lead.
    a.shutdown().await.unwrap();
    let alone = until_listed(&b, |l| l.len() == 1).await;
    assert_eq!(alone, vec![(port(&b), true)]);
    b.shutdown().await.unwrap();
    second.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_member_whose_session_dies_drops_out_and_the_lead_moves() {
    let first = TestStore::start().await;
    let second = node(&first).await;
    let (a, b) = (serve(&first.store).await, serve(&second).await);
    until_listed(&b, |l| l.len() == 2 && l.contains(&(port(&a), true))).await;

    // Kill the leader's membership session as a crash would (its connection goes away).
    let mut admin = sqlx::PgConnection::connect(&crate::common::database_url()).await.unwrap();
    let killed: Vec<(bool,)> = sqlx::query_as(&format!(
        "SELECT pg_terminate_backend(backend_pid) FROM {}.cluster_members WHERE port = $1",
        first.config.schema
    ))
    .bind(port(&a) as i32)
    .fetch_all(&mut admin)
    .await
    .unwrap();
    assert_eq!(killed, vec![(true,)]);
    let after = until_listed(&b, |l| l.contains(&(port(&b), true))).await;
    assert!(after.contains(&(port(&b), true)), "{after:?}");
    // The killed member's task joins again (as a follower now).
    until_listed(&b, |l| l.len() == 2 && l.contains(&(port(&a), false))).await;
    drop((a, b));
    second.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_discovering_client_and_a_group_work_through_any_member() {
    let first = TestStore::start().await;
    let second = node(&first).await;
    let (a, b) = (serve(&first.store).await, serve(&second).await);
    until_listed(&a, |l| l.len() == 2).await;

    let seeds = format!("{},{}", a.local_addr(), b.local_addr());
    let discovering =
        Client::new(format!("kurrentdb+discover://{seeds}?tls=false&nodePreference=leader").parse().unwrap()).unwrap();
    discovering
        .append_to_stream("orders", &Default::default(), json_event("Placed", 1))
        .await
        .expect("a discovering client finds a member");

    // A group created through one member is consumed through the other.
    let via_a = Client::new(format!("kurrentdb://{}?tls=false", a.local_addr()).parse().unwrap()).unwrap();
    let via_b = Client::new(format!("kurrentdb://{}?tls=false", b.local_addr()).parse().unwrap()).unwrap();
    let options = PersistentSubscriptionOptions::default().start_from(StreamPosition::Start);
    via_a.create_persistent_subscription("orders", "billing", &options).await.unwrap();
    let mut consumer = via_b
        .subscribe_to_persistent_subscription("orders", "billing", &SubscribeToPersistentSubscriptionOptions::default())
        .await
        .unwrap();
    let event = tokio::time::timeout(WAIT, consumer.next()).await.expect("delivered in time").unwrap();
    assert_eq!(crate::served::n_of(event.event.as_ref().unwrap()), 1);
    consumer.ack(&event).await.unwrap();
    second
        .append_to_stream(
            "orders",
            ExpectedVersion::Exact(1),
            vec![chronik::EventData::json("Placed", &serde_json::json!({ "n": 2 })).unwrap()],
        )
        .await
        .unwrap();
    let event = tokio::time::timeout(WAIT, consumer.next()).await.expect("a live event in time").unwrap();
    assert_eq!(crate::served::n_of(event.event.as_ref().unwrap()), 2);
    drop(consumer);
    second.shutdown().await.unwrap();
}
