//! A small bank: commands append to account streams with optimistic concurrency, and two
//! Subscriber actors, declared in `examples/bank.toml`, react to the events:
//!
//! - `balances` projects every account's balance into a table, idempotent by position;
//! - `notifications` "sends" a message for each large withdrawal. It cannot reach an owner with
//!   no contact address: it parks that event, and once the address is known the parked event is
//!   replayed.
//!
//! ```text
//! cargo run --example bank
//! cargo run --example bank -- --keep   # keep the schema afterwards, to look at it
//! ```
//!
//! It needs PostgreSQL, where its read model lives (`database_url` in `examples/bank.toml`, or
//! `CHRONIK_DATABASE_URL`). Every run opens a fresh bank in a schema of its own,
//! `chronik_example_bank_` and a random suffix, and drops it at the end unless `--keep` is given.
//! `CHRONIK_SCHEMA` names another schema instead; it must not hold a store yet, and the example
//! then removes only what it created there.
//!
//! The store is stopped halfway while more money moves, then started again: both subscribers
//! resume after their checkpoints, and the balances are checked against a full read of `$all`.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chronik::{
    ALL, Config, Error, EventData, EventStore, ExpectedVersion, HandlerError, RecordedEvent, Subscriber, Subscribers,
};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use tracing_subscriber::EnvFilter;

type Result<T, E = Box<dyn std::error::Error + Send + Sync>> = std::result::Result<T, E>;

/// Withdrawals from this amount on are notified.
const LARGE: i64 = 500;

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
enum AccountEvent {
    Opened { owner: String },
    Deposited { amount: i64 },
    Withdrawn { amount: i64 },
}

impl AccountEvent {
    fn event_type(&self) -> &'static str {
        match self {
            AccountEvent::Opened { .. } => "AccountOpened",
            AccountEvent::Deposited { .. } => "MoneyDeposited",
            AccountEvent::Withdrawn { .. } => "MoneyWithdrawn",
        }
    }
}

fn decode(event: &RecordedEvent) -> chronik::Result<AccountEvent> {
    event.decode::<AccountEvent>()
}

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn")))
        .with_writer(std::io::stderr)
        .init();
    let keep = std::env::args().skip(1).any(|arg| arg == "--keep");
    let mut config = Config::from_file("examples/bank.toml")?;
    // A fresh bank on every run: a schema of its own, or an empty one CHRONIK_SCHEMA names.
    if std::env::var("CHRONIK_SCHEMA").is_ok_and(|s| !s.is_empty()) {
        if chronik::admin::migrations(&config).await?.iter().any(|m| m.is_applied()) {
            return Err(format!(
                "schema `{}` (CHRONIK_SCHEMA) already holds a store; the bank example opens a new bank in an empty schema",
                config.schema
            )
            .into());
        }
    } else {
        let run = uuid::Uuid::new_v4().simple().to_string();
        config = config.schema(format!("chronik_example_bank_{}", &run[..8]));
    }
    // The store first: it creates the schema, which the read model's tables then share.
    chronik::admin::init(&config).await?;
    let read_model = ReadModel::open(&config).await?;
    println!("== the store and the read model live in schema `{}`", config.schema);
    let contacts = Contacts::default();
    contacts.add("ana", "ana@example.com");
    contacts.add("bob", "bob@example.com");

    println!("== 1. start the store and the subscribers declared in examples/bank.toml");
    let store = EventStore::start(config.clone()).await?;
    let subscribers = start(&store, &read_model, &contacts).await?;
    println!("running subscribers: {:?}", subscribers.keys().collect::<Vec<_>>());

    println!("\n== 2. open accounts, move money; eight tellers race on ana's account");
    let bank = Bank { store: store.clone() };
    for owner in ["ana", "bob", "cy"] {
        bank.open(owner).await?;
        bank.deposit(owner, 1_000).await?;
    }
    let tellers: Vec<_> = (0..8)
        .map(|_| {
            let bank = bank.clone();
            tokio::spawn(async move { bank.withdraw("ana", 150).await })
        })
        .collect();
    let mut refused = 0;
    for teller in tellers {
        if let Err(e) = teller.await? {
            println!("teller: {e}");
            refused += 1;
        }
    }
    println!("{} withdrawals of 150 from ana's 1000 went through, {refused} were refused", 8 - refused);
    bank.withdraw("bob", 600).await?;
    bank.withdraw("cy", 700).await?; // cy left no contact address: the notification parks
    read_model.wait_for(&store).await?;
    read_model.print().await?;

    println!("\n== 3. the store stops; money moves while nothing projects; the store starts again");
    store.shutdown().await?;
    let teller = EventStore::start(config.clone()).await?;
    let bank = Bank { store: teller.clone() };
    bank.deposit("bob", 250).await?;
    bank.withdraw("bob", 500).await?;
    for s in teller.list_subscriptions().await? {
        println!("subscription `{}`: checkpoint {}, {} events behind", s.name, s.checkpoint, s.lag);
    }
    teller.shutdown().await?;
    let store = EventStore::start(config.clone()).await?;
    let _subscribers = start(&store, &read_model, &contacts).await?;
    read_model.wait_for(&store).await?;
    read_model.print().await?;

    println!("\n== 4. cy's address is found: replay the parked notification");
    for parked in store.parked_events(ALL, "notifications").await? {
        println!("parked: event {} ({})", parked.event_number, parked.reason);
    }
    contacts.add("cy", "cy@example.com");
    let marked = store.replay_parked(ALL, "notifications").await?;
    println!("{marked} parked event(s) marked for replay");
    read_model.wait_for_notifications(3).await?;
    // The replayed event leaves the parked list once it is acked, just after it was handled.
    let mut waited = 0;
    while !store.parked_events(ALL, "notifications").await?.is_empty() {
        waited += 1;
        assert!(waited < 300, "the replayed event did not leave the parked list");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    read_model.print().await?;

    println!("\n== 5. check the balances against a full read of $all");
    let expected = balances_from_all(&store).await?;
    assert_eq!(read_model.balances().await?, expected, "the read model differs from $all");
    println!("balances match $all: nothing lost across the restart, nothing applied twice");
    store.shutdown().await?;
    if keep {
        println!("\nkept schema `{}`", config.schema);
    } else {
        read_model.drop().await?;
        chronik::admin::drop(&config).await?;
    }
    read_model.pool.close().await;
    Ok(())
}

/// Starts the subscribers the configuration declares.
async fn start(
    store: &EventStore,
    read_model: &ReadModel,
    contacts: &Contacts,
) -> chronik::Result<BTreeMap<String, chronik::SubscriberHandle>> {
    let subscribers = Subscribers::new()
        .add("balances", Balances { model: read_model.clone() })
        .add("notifications", Notifications { model: read_model.clone(), contacts: contacts.clone() });
    store.start_subscribers(subscribers).await
}

/// The command side: decisions on the current state of one account, appended with the version
/// they were made on. A concurrent change makes the append fail with `WrongExpectedVersion`;
/// the command then decides again on the new state.
#[derive(Clone)]
struct Bank {
    store: EventStore,
}

impl Bank {
    fn stream(owner: &str) -> String {
        format!("account-{owner}")
    }

    async fn open(&self, owner: &str) -> Result<()> {
        let opened = AccountEvent::Opened { owner: owner.to_string() };
        let event = EventData::json(opened.event_type(), &opened)?;
        self.store.append_to_stream(&Self::stream(owner), ExpectedVersion::NoStream, vec![event]).await?;
        Ok(())
    }

    async fn deposit(&self, owner: &str, amount: i64) -> Result<()> {
        self.decide(owner, |_| Ok(AccountEvent::Deposited { amount })).await
    }

    async fn withdraw(&self, owner: &str, amount: i64) -> Result<()> {
        self.decide(owner, |balance| {
            if balance < amount {
                return Err(format!("{owner} cannot withdraw {amount}: the balance is {balance}").into());
            }
            Ok(AccountEvent::Withdrawn { amount })
        })
        .await
    }

    async fn decide(&self, owner: &str, decide: impl Fn(i64) -> Result<AccountEvent>) -> Result<()> {
        let stream = Self::stream(owner);
        loop {
            let history = self.store.read_stream_forward(&stream, 1, 10_000).await?;
            let balance = history.iter().map(decode).try_fold(0, |sum, e| e.map(|e| sum + change(&e)))?;
            let event = decide(balance)?;
            let data = EventData::json(event.event_type(), &event)?;
            let expected = ExpectedVersion::Exact(history.len() as u64);
            match self.store.append_to_stream(&stream, expected, vec![data]).await {
                Ok(_) => return Ok(()),
                // Someone else changed the account since it was read: decide again.
                Err(Error::WrongExpectedVersion { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }
}

fn change(event: &AccountEvent) -> i64 {
    match event {
        AccountEvent::Opened { .. } => 0,
        AccountEvent::Deposited { amount } => *amount,
        AccountEvent::Withdrawn { amount } => -amount,
    }
}

/// The `balances` subscriber: applies each batch in one transaction, with the position it
/// reached, and skips what it already applied (a batch can come twice after a restart).
struct Balances {
    model: ReadModel,
}

impl Subscriber for Balances {
    async fn handle(&mut self, events: &[RecordedEvent]) -> Result<(), HandlerError> {
        let model = &self.model;
        let mut tx = model.pool.begin().await?;
        let (applied,): (i64,) =
            sqlx::query_as(&model.sql("SELECT position FROM {s}.projection FOR UPDATE")).fetch_one(&mut *tx).await?;
        for event in events.iter().filter(|e| e.global_position as i64 > applied) {
            let delta = change(&decode(event).map_err(|e| HandlerError::new(e).at(event))?);
            sqlx::query(&model.sql(
                "INSERT INTO {s}.balances (account, balance) VALUES ($1, $2) \
                 ON CONFLICT (account) DO UPDATE SET balance = {s}.balances.balance + $2",
            ))
            .bind(&event.stream_uuid)
            .bind(delta)
            .execute(&mut *tx)
            .await?;
        }
        let last = events.iter().map(|e| e.global_position as i64).max().unwrap_or(applied).max(applied);
        sqlx::query(&model.sql("UPDATE {s}.projection SET position = $1")).bind(last).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn caught_up(&mut self) {
        println!("balances: caught up, now live");
    }
}

/// Contact addresses by owner (a stand-in for a customer database).
#[derive(Clone, Default)]
struct Contacts(Arc<Mutex<HashMap<String, String>>>);

impl Contacts {
    fn add(&self, owner: &str, address: &str) {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(owner.into(), address.into());
    }

    fn of(&self, owner: &str) -> Option<String> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(owner).cloned()
    }
}

/// The `notifications` subscriber: one message per large withdrawal, recorded in the
/// `notifications` table (keyed by position, so a redelivered event sends nothing twice).
struct Notifications {
    model: ReadModel,
    contacts: Contacts,
}

impl Subscriber for Notifications {
    async fn handle(&mut self, events: &[RecordedEvent]) -> Result<(), HandlerError> {
        for event in events {
            let AccountEvent::Withdrawn { amount } = decode(event).map_err(|e| HandlerError::new(e).at(event))? else {
                continue;
            };
            if amount < LARGE {
                continue;
            }
            let owner = event.stream_uuid.trim_start_matches("account-");
            let Some(address) = self.contacts.of(owner) else {
                // Retrying cannot help: park it, and replay it once the address is known.
                return Err(HandlerError::park(event, format!("no contact address for {owner}")));
            };
            let text = format!("to {address}: {amount} was withdrawn from your account");
            let insert = "INSERT INTO {s}.notifications (position, message) VALUES ($1, $2) ON CONFLICT DO NOTHING";
            sqlx::query(&self.model.sql(insert))
                .bind(event.global_position as i64)
                .bind(&text)
                .execute(&self.model.pool)
                .await
                .map_err(|e| HandlerError::new(e).at(event))?;
            println!("notifications: {text}");
        }
        Ok(())
    }
}

/// The read model's tables, in the store's schema.
#[derive(Clone)]
struct ReadModel {
    pool: PgPool,
    schema: String,
}

impl ReadModel {
    /// Connects and creates the tables (an existing table of the same name stops the example:
    /// it never writes into tables it did not create).
    async fn open(config: &Config) -> Result<ReadModel> {
        let pool = PgPoolOptions::new().max_connections(3).connect(&config.database_url).await?;
        let model = ReadModel { pool, schema: config.schema.clone() };
        sqlx::raw_sql(&model.sql(
            "CREATE TABLE {s}.balances (account text PRIMARY KEY, balance bigint NOT NULL);
             CREATE TABLE {s}.projection (position bigint NOT NULL);
             INSERT INTO {s}.projection VALUES (0);
             CREATE TABLE {s}.notifications (position bigint PRIMARY KEY, message text NOT NULL);",
        ))
        .execute(&model.pool)
        .await?;
        Ok(model)
    }

    async fn drop(&self) -> Result<()> {
        let drop = "DROP TABLE {s}.balances, {s}.projection, {s}.notifications";
        sqlx::raw_sql(&self.sql(drop)).execute(&self.pool).await?;
        Ok(())
    }

    /// `sql` with `{s}` replaced by the schema (chronik allows only lower-case letters, digits
    /// and `_` in schema names, so it can go into SQL text as it is).
    fn sql(&self, sql: &str) -> String {
        sql.replace("{s}", &self.schema)
    }

    async fn count(&self, sql: &str) -> Result<i64> {
        let (n,): (i64,) = sqlx::query_as(&self.sql(sql)).fetch_one(&self.pool).await?;
        Ok(n)
    }

    /// Waits until the balances have applied everything in `$all`.
    async fn wait_for(&self, store: &EventStore) -> Result<()> {
        let head = store.stream_info(ALL).await?.stream_version as i64;
        for _ in 0..300 {
            if self.count("SELECT position FROM {s}.projection").await? >= head {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err("the balances did not catch up within 15 s".into())
    }

    async fn wait_for_notifications(&self, count: i64) -> Result<()> {
        for _ in 0..300 {
            if self.count("SELECT count(*) FROM {s}.notifications").await? >= count {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(format!("fewer than {count} notifications within 15 s").into())
    }

    async fn balances(&self) -> Result<BTreeMap<String, i64>> {
        let rows: Vec<(String, i64)> =
            sqlx::query_as(&self.sql("SELECT account, balance FROM {s}.balances")).fetch_all(&self.pool).await?;
        Ok(rows.into_iter().collect())
    }

    async fn print(&self) -> Result<()> {
        for (account, balance) in self.balances().await? {
            println!("  {account:<12} {balance:>6}");
        }
        println!("  notifications sent: {}", self.count("SELECT count(*) FROM {s}.notifications").await?);
        Ok(())
    }
}

/// The balances computed from a full read of `$all`.
async fn balances_from_all(store: &EventStore) -> Result<BTreeMap<String, i64>> {
    let mut balances = BTreeMap::new();
    for event in store.read_all_forward(0, 100_000).await? {
        *balances.entry(event.stream_uuid.clone()).or_insert(0) += change(&decode(&event)?);
    }
    Ok(balances)
}
