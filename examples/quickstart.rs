//! A tour of chronik: open a store, append events to a few bank-account streams, handle an
//! optimistic-concurrency conflict, read a stream and `$all`, and look at stream metadata.
//!
//! It needs no database server: `config/chronik.toml` puts the store in the SQLite file
//! `data/chronik.db`, created on first use. Point `CHRONIK_DATABASE_URL` at PostgreSQL to run the
//! same code there; the store then lives in the schema `chronik_example_quickstart` (unless
//! `CHRONIK_SCHEMA` names another one).
//!
//! ```text
//! cargo run --example quickstart
//! CHRONIK_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres cargo run --example quickstart
//! RUST_LOG=chronik=debug cargo run --example quickstart   # more logging (on stderr)
//! ```
//!
//! Stream ids carry a per-run suffix, so the example can be run again and again against the
//! same store.

use std::pin::pin;

use chronik::{ALL, AppendResult, Config, Error, EventData, EventStore, ExpectedVersion, RecordedEvent};
use futures::TryStreamExt;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tracing_subscriber::EnvFilter;
use uuid::Uuid;

// The events of an account. Any `Serialize` type can be an event payload; `EventData::json`
// stores it as JSON and `RecordedEvent::decode` turns it back into the type.

#[derive(Debug, Serialize, Deserialize)]
struct AccountOpened {
    owner: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct MoneyDeposited {
    amount: u64,
}

#[derive(Debug, Serialize, Deserialize)]
struct MoneyWithdrawn {
    amount: u64,
}

#[tokio::main]
async fn main() -> chronik::Result<()> {
    // Logs (chronik's own included) go to stderr; RUST_LOG overrides the level.
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .with_writer(std::io::stderr)
        .init();

    // 1. Open the store. `from_file` applies CHRONIK_DATABASE_URL / CHRONIK_SCHEMA on top of the
    //    file. On PostgreSQL this example uses its own schema unless CHRONIK_SCHEMA chose one;
    //    an SQLite store is its file.
    let mut config = Config::from_file("config/chronik.toml")?;
    let schema_from_env = std::env::var("CHRONIK_SCHEMA").is_ok_and(|s| !s.is_empty());
    if config.is_sqlite() {
        println!("== opening the store in {}", config.database_url);
    } else {
        if !schema_from_env {
            config = config.schema("chronik_example_quickstart");
        }
        println!("== opening the store in schema `{}`", config.schema);
    }
    let store = EventStore::start(config).await?;

    // A suffix unique to this run keeps the stream ids fresh on every run.
    let run = Uuid::new_v4().simple().to_string()[..8].to_string();
    let ana = format!("account-ana-{run}");
    let bob = format!("account-bob-{run}");
    let cy = format!("account-cy-{run}");

    // 2. Append. `NoStream` says "this stream must not exist yet": opening an account twice fails
    //    with `Error::StreamExists`. Several events in one call are stored atomically.
    println!("\n== opening three accounts");
    let correlation = Uuid::new_v4();
    for (stream, owner, deposit) in [(&ana, "ana", 100), (&bob, "bob", 250), (&cy, "cy", 40)] {
        let events = vec![
            EventData::json("AccountOpened", &AccountOpened { owner: owner.into() })?
                .with_metadata_json(&json!({ "user": owner, "channel": "quickstart" }))?
                .with_correlation_id(correlation),
            EventData::json("MoneyDeposited", &MoneyDeposited { amount: deposit })?
                .with_metadata_json(&json!({ "user": owner, "channel": "quickstart" }))?
                .with_correlation_id(correlation),
        ];
        let r = store.append_to_stream(stream, ExpectedVersion::NoStream, events).await?;
        println!(
            "{stream}: now at version {}, stored at global positions {}..={}",
            r.stream_version, r.first_position, r.last_position
        );
    }
    let again = EventData::json("AccountOpened", &AccountOpened { owner: "mallory".into() })?;
    match store.append_to_stream(&ana, ExpectedVersion::NoStream, vec![again]).await {
        Err(Error::StreamExists) => println!("{ana}: opening it a second time is rejected (StreamExists)"),
        other => panic!("expected Error::StreamExists, got {other:?}"),
    }

    // 3. Optimistic concurrency. Two writers load Ana's account at the same version and both
    //    withdraw, each appending with `ExpectedVersion::Exact(version they loaded)`. The store
    //    lets exactly one of them through; the other gets `Error::WrongExpectedVersion`, re-reads
    //    the stream, checks its business rule against the fresh state and tries again.
    println!("\n== two writers withdraw from {ana} at the same time");
    let seen = Account::load(&store, &ana).await?;
    println!("both writers loaded {ana}: balance {}, version {}", seen.balance, seen.version);
    let (first, second) = tokio::join!(
        withdraw(&store, "writer 1", &ana, 30, seen.clone()),
        withdraw(&store, "writer 2", &ana, 50, seen.clone()),
    );
    first?;
    second?;

    // 4. Read a stream forward: from version 0 (the start), up to 100 events.
    println!("\n== {ana}, read forward");
    for event in store.read_stream_forward(&ana, 0, 100).await? {
        println!(
            "  v{} {:<15} {:<20} (global position {})",
            event.event_number,
            event.event_type,
            String::from_utf8_lossy(&event.data),
            event.global_position
        );
    }
    println!("  balance now: {}", Account::load(&store, &ana).await?.balance);

    // 5. `$all` holds every event of every stream in commit order. Read it backward from the
    //    end (`None`) to see the newest events first.
    println!("\n== the last 5 events in $all, newest first");
    for event in store.read_all_backward(None, 5).await? {
        println!("  #{} {}@{} {}", event.event_number, event.stream_uuid, event.stream_version, event.event_type);
    }

    // 6. Stream metadata. For `$all`, `stream_version` is the last global position.
    println!("\n== stream info");
    for stream in [ana.as_str(), ALL] {
        let info = store.stream_info(stream).await?;
        println!(
            "  {}: id {}, version {}, status {:?}, created {}",
            info.stream_uuid,
            info.stream_id,
            info.stream_version,
            info.status,
            info.created_at.format("%Y-%m-%d %H:%M:%S%.3f UTC")
        );
    }

    // Reading an unknown stream is an error the caller can match on.
    match store.read_stream_forward(&format!("account-nobody-{run}"), 0, 10).await {
        Err(Error::StreamNotFound) => println!("  account-nobody-{run}: StreamNotFound"),
        other => panic!("expected Error::StreamNotFound, got {other:?}"),
    }

    store.shutdown().await?;
    println!("\ndone: run it again and it appends to fresh streams in the same store");
    Ok(())
}

/// An account as rebuilt from its events, with the stream version it was rebuilt at.
#[derive(Debug, Clone, Default)]
struct Account {
    balance: u64,
    version: u64,
}

impl Account {
    /// Reads the account's stream and folds its events; an absent stream is an empty account.
    async fn load(store: &EventStore, stream: &str) -> chronik::Result<Account> {
        let mut account = Account::default();
        // `stream_forward` reads lazily, 500 events per query, however long the stream is.
        let mut events = pin!(store.stream_forward(stream, 0, 500));
        loop {
            match events.try_next().await {
                Ok(Some(event)) => account.apply(&event)?,
                Ok(None) | Err(Error::StreamNotFound) => return Ok(account),
                Err(other) => return Err(other),
            }
        }
    }

    fn apply(&mut self, event: &RecordedEvent) -> chronik::Result<()> {
        match event.event_type.as_str() {
            "MoneyDeposited" => self.balance += event.decode::<MoneyDeposited>()?.amount,
            "MoneyWithdrawn" => self.balance -= event.decode::<MoneyWithdrawn>()?.amount,
            _ => {}
        }
        self.version = event.stream_version;
        Ok(())
    }
}

/// A command handler: decide against `account` (the state at `account.version`), append with
/// `Exact(account.version)`, and on a conflict reload and decide again.
///
/// Returns `None` when the withdrawal is refused for lack of funds.
async fn withdraw(
    store: &EventStore,
    writer: &str,
    stream: &str,
    amount: u64,
    mut account: Account,
) -> chronik::Result<Option<AppendResult>> {
    loop {
        if account.balance < amount {
            println!("{writer}: refuses to withdraw {amount}, the balance is only {}", account.balance);
            return Ok(None);
        }
        let event = EventData::json("MoneyWithdrawn", &MoneyWithdrawn { amount })?;
        match store.append_to_stream(stream, ExpectedVersion::Exact(account.version), vec![event]).await {
            Ok(r) => {
                println!("{writer}: withdrew {amount} at version {}", r.stream_version);
                return Ok(Some(r));
            }
            Err(Error::WrongExpectedVersion { expected, actual }) => {
                println!("{writer}: conflict, expected version {expected} but the stream is at {actual}; reloading");
                account = Account::load(store, stream).await?;
            }
            Err(other) => return Err(other),
        }
    }
}
