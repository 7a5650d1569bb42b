//! A store of the binary's backend served over the KurrentDB protocol, and a client of it.

use chronik::server::{Server, ServerOptions};
use chronik::{Config, EventStore};
use kurrentdb::Client;

use crate::common::TestStore;

/// A fresh store, a server on it (127.0.0.1, a free port) and a KurrentDB client connected to it.
pub struct Served {
    pub client: Client,
    pub server: Server,
    pub store: TestStore,
}

impl Served {
    pub async fn start() -> Served {
        Self::start_with(|c| c).await
    }

    pub async fn start_with(configure: impl FnOnce(Config) -> Config) -> Served {
        let store = TestStore::start_with(configure).await;
        let server = Server::start(store.store.clone(), ServerOptions::insecure(([127, 0, 0, 1], 0).into()))
            .await
            .expect("the server starts");
        let client = client_of(&server, "kurrentdb");
        Served { client, server, store }
    }

    /// The store behind the server, as the application embedding it sees it.
    pub fn store(&self) -> &EventStore {
        &self.store.store
    }

    /// Another client of the same server, connecting with `scheme` (`kurrentdb`, or
    /// `kurrentdb+discover` to find the node through gossip).
    pub fn client(&self, scheme: &str) -> Client {
        client_of(&self.server, scheme)
    }
}

fn client_of(server: &Server, scheme: &str) -> Client {
    let url = format!("{scheme}://{}?tls=false", server.local_addr());
    Client::new(url.parse().expect("a valid connection string")).expect("the client is created")
}

/// A JSON event of the KurrentDB client.
pub fn json_event(event_type: &str, n: u64) -> kurrentdb::EventData {
    kurrentdb::EventData::json(event_type, &serde_json::json!({ "n": n })).expect("serializable")
}

/// Every event of a read, as the client gives them.
pub async fn all_of(mut read: kurrentdb::ReadStream) -> Vec<kurrentdb::ResolvedEvent> {
    let mut events = Vec::new();
    while let Some(event) = read.next().await.expect("the read goes on") {
        events.push(event);
    }
    events
}

/// The `n` field of each event's JSON payload (of the event a link points at, if resolved).
pub fn ns(events: &[kurrentdb::ResolvedEvent]) -> Vec<u64> {
    events.iter().map(|e| n_of(e.event.as_ref().expect("an event"))).collect()
}

/// The `n` field of an event's JSON payload.
pub fn n_of(event: &kurrentdb::RecordedEvent) -> u64 {
    event.as_json::<serde_json::Value>().expect("JSON")["n"].as_u64().expect("n")
}
