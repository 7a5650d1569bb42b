//! Categories, event types and filters: a `Subscriber` keeps per-account balances and the
//! category's total from `$ce-account` (every event of every `account-…` stream, in `$all`
//! order, numbered 1, 2, 3, … in the category), without reading the other streams; `$et-…`
//! streams and a filtered read of `$all` answer the other questions.
//!
//! ```text
//! cargo run --example categories                  # a scratch SQLite file, removed at the end
//! CHRONIK_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres cargo run --example categories
//! ```
//!
//! On PostgreSQL the store is a schema of this run's own (`chronik_example_categories_…`),
//! dropped at the end. The example checks its figures and exits non-zero on a mismatch.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chronik::{
    Config, EventData, EventFilter, EventStore, ExpectedVersion, HandlerError, RecordedEvent, Subscriber,
    SubscriptionOptions,
};
use serde::{Deserialize, Serialize};
use tracing_subscriber::EnvFilter;

type Result<T, E = Box<dyn std::error::Error>> = std::result::Result<T, E>;

#[derive(Debug, Serialize, Deserialize)]
struct Deposited {
    amount: i64,
}

#[derive(Debug, Serialize, Deserialize)]
struct Withdrawn {
    amount: i64,
}

#[derive(Debug, Serialize, Deserialize)]
struct Placed {
    total: i64,
}

/// The read model: each account's balance, and how many events of the category it applied.
#[derive(Debug, Default)]
struct Balances {
    by_account: BTreeMap<String, i64>,
    applied: u64,
}

impl Balances {
    fn total(&self) -> i64 {
        self.by_account.values().sum()
    }
}

/// Applies `$ce-account` to the balances (a real read model would be a table, updated in the
/// same transaction as the category number it applied up to).
struct Projector {
    balances: Arc<Mutex<Balances>>,
}

impl Subscriber for Projector {
    async fn handle(&mut self, events: &[RecordedEvent]) -> Result<(), HandlerError> {
        let mut balances = self.balances.lock().unwrap_or_else(PoisonError::into_inner);
        for event in events {
            // `event_number` is the event's number in the category; `stream_uuid` and
            // `stream_version` are its own stream's.
            let change = match event.event_type.as_str() {
                "Deposited" => event.decode::<Deposited>().map_err(HandlerError::new)?.amount,
                "Withdrawn" => -event.decode::<Withdrawn>().map_err(HandlerError::new)?.amount,
                _ => 0,
            };
            *balances.by_account.entry(event.stream_uuid.clone()).or_default() += change;
            balances.applied = event.event_number;
        }
        Ok(())
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn")))
        .with_writer(std::io::stderr)
        .init();
    let run = uuid::Uuid::new_v4().simple().to_string();
    let from_env = Config::from_env();
    let (config, scratch) = if from_env.database_url.starts_with("postgres") {
        (from_env.schema(format!("chronik_example_categories_{}", &run[..12])), None)
    } else {
        let dir = std::env::temp_dir().join(format!("chronik-example-categories-{run}"));
        let url = format!("sqlite:{}", dir.join("store.db").display());
        (Config::default().database_url(url), Some(dir))
    };
    let outcome = demo(config.clone()).await;
    match scratch {
        Some(dir) => std::fs::remove_dir_all(dir)?,
        None => {
            chronik::admin::drop(&config).await?;
        }
    }
    outcome
}

async fn demo(config: Config) -> Result<()> {
    let store = EventStore::start(config).await?;
    println!("== appending to three accounts and two orders");
    let deposit = |amount| EventData::json("Deposited", &Deposited { amount });
    let withdraw = |amount| EventData::json("Withdrawn", &Withdrawn { amount });
    store.append_to_stream("account-ana", ExpectedVersion::NoStream, vec![deposit(100)?, withdraw(30)?]).await?;
    store
        .append_to_stream("order-1", ExpectedVersion::NoStream, vec![EventData::json("Placed", &Placed { total: 30 })?])
        .await?;
    store.append_to_stream("account-bob", ExpectedVersion::NoStream, vec![deposit(50)?]).await?;
    store
        .append_to_stream("order-2", ExpectedVersion::NoStream, vec![EventData::json("Placed", &Placed { total: 5 })?])
        .await?;
    store.append_to_stream("account-cy", ExpectedVersion::NoStream, vec![deposit(7)?, deposit(3)?]).await?;

    println!("== a Subscriber projects balances from $ce-account");
    let balances = Arc::new(Mutex::new(Balances::default()));
    let projector = Projector { balances: Arc::clone(&balances) };
    let handle = store.start_subscriber("$ce-account", "balances", SubscriptionOptions::default(), projector).await?;
    wait_until(&balances, 5).await?;
    store.append_to_stream("account-bob", ExpectedVersion::Exact(1), vec![withdraw(20)?]).await?;
    wait_until(&balances, 6).await?;
    {
        let balances = balances.lock().unwrap_or_else(PoisonError::into_inner);
        for (account, balance) in &balances.by_account {
            println!("   {account}: {balance}");
        }
        println!("   category total: {} after {} events of the category", balances.total(), balances.applied);
        check("balances", &balances.by_account.values().copied().collect::<Vec<_>>(), &vec![70, 30, 10])?;
        check("total", &balances.total(), &110)?;
    }
    handle.stop().await?;

    println!("== every Deposited event, whatever its stream: $et-Deposited");
    let deposits = store.read_stream_forward("$et-Deposited", 0, 100).await?;
    let deposited: i64 =
        deposits.iter().map(|e| e.decode::<Deposited>().map(|d| d.amount)).sum::<chronik::Result<i64>>()?;
    println!("   {} deposits, {deposited} in all", deposits.len());
    check("deposits", &deposited, &160)?;

    println!("== the orders, by a filtered read of $all (the database leaves the rest out)");
    let orders = store.read_all_filtered(&EventFilter::stream_prefix(["order-"]), 0, 100).await?;
    let placed: Vec<u64> = orders.iter().map(|e| e.global_position).collect();
    println!("   order events at positions {placed:?}");
    check("order positions", &placed, &vec![3, 5])?;

    store.shutdown().await?;
    Ok(())
}

/// Waits until the projector applied category number `number`.
async fn wait_until(balances: &Mutex<Balances>, number: u64) -> Result<()> {
    for _ in 0..500 {
        if balances.lock().unwrap_or_else(PoisonError::into_inner).applied >= number {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Err(format!("the projector did not reach category event {number} within 5 s").into())
}

fn check<T: PartialEq + std::fmt::Debug + ?Sized>(what: &str, got: &T, expected: &T) -> Result<()> {
    if got == expected { Ok(()) } else { Err(format!("{what}: expected {expected:?}, got {got:?}").into()) }
}
