//! A projector: keeps a read model (account balances in a PostgreSQL table) up to date from
//! `$all` with a named, persistent subscription, and survives being stopped and started.
//!
//! It needs PostgreSQL, where its read model lives: `CHRONIK_DATABASE_URL` names the database,
//! by default `postgres://postgres@127.0.0.1:5432/postgres`.
//!
//! ```text
//! cargo run --example projector
//! cargo run --example projector -- --keep   # keep the schema afterwards, to look at it
//! ```
//!
//! The store and the read model live in a schema of this run's own, `chronik_example_projector_`
//! and a random suffix, which the example drops at the end (unless `--keep` is given). With
//! `CHRONIK_SCHEMA` they live in that schema instead, and the example removes nothing there.
//!
//! How the read model stays exact, whatever happens between two events:
//! - Each batch is applied in ONE read-model transaction, which also stores the global position
//!   the read model has applied up to (table `projections`).
//! - Events at or below that position are skipped. The subscription delivers every event at
//!   least once: after a crash between the commit and the ack, the batch comes again, and
//!   applying it again changes nothing.
//! - The batch is acked only after the commit, so the subscription's checkpoint never gets
//!   ahead of the read model.

use std::collections::BTreeMap;
use std::pin::pin;
use std::time::Duration;

use chronik::{
    ALL, Config, EventData, EventStore, ExpectedVersion, RecordedEvent, SubscriptionMessage, SubscriptionOptions,
};
use futures::TryStreamExt;
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use tracing_subscriber::EnvFilter;
use uuid::Uuid;

type Result<T, E = Box<dyn std::error::Error>> = std::result::Result<T, E>;

/// The named subscription of `$all` that feeds the read model; its checkpoint is stored in the
/// event store.
const SUBSCRIPTION: &str = "balances";

// The events, as in the quickstart.

#[derive(Debug, Serialize, Deserialize)]
struct AccountOpened {
    owner: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct MoneyDeposited {
    amount: i64,
}

#[derive(Debug, Serialize, Deserialize)]
struct MoneyWithdrawn {
    amount: i64,
}

/// The database when `CHRONIK_DATABASE_URL` does not name a PostgreSQL one.
const POSTGRES: &str = "postgres://postgres@127.0.0.1:5432/postgres";

#[tokio::main]
async fn main() -> Result<()> {
    // Logs go to stderr; RUST_LOG overrides the level.
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn")))
        .with_writer(std::io::stderr)
        .init();
    let keep = std::env::args().skip(1).any(|arg| arg == "--keep");

    // The configuration, as in the quickstart: the file, then CHRONIK_DATABASE_URL /
    // CHRONIK_SCHEMA; the example's own schema unless CHRONIK_SCHEMA chose one. The read model
    // is PostgreSQL tables, so the store is there too.
    let mut config = Config::from_file("config/chronik.toml")?;
    if config.is_sqlite() {
        config = config.database_url(POSTGRES);
    }
    // Stream ids (and the schema) unique to this run, so the example can run again and again.
    let run = Uuid::new_v4().simple().to_string()[..8].to_string();
    let schema_from_env = std::env::var("CHRONIK_SCHEMA").is_ok_and(|s| !s.is_empty());
    if !schema_from_env {
        config = config.schema(format!("chronik_example_projector_{run}"));
    }
    println!("== store and read model in schema `{}`", config.schema);

    let accounts = ["ana", "bob", "cy"].map(|owner| (owner, format!("account-{owner}-{run}")));

    // 1. Some history, then the projector: it starts from the first event of `$all` and stops
    //    once the read model has caught up.
    println!("\n== 1. append, then run the projector until it has caught up");
    let store = EventStore::start(config.clone()).await?;
    for (owner, stream) in &accounts {
        let opened = EventData::json("AccountOpened", &AccountOpened { owner: owner.to_string() })?;
        store.append_to_stream(stream, ExpectedVersion::NoStream, vec![opened]).await?;
    }
    append_activity(&store, &accounts, 1..=40).await?;
    let read_model = ReadModel::open(&config).await?;
    run_projector(&store, &read_model).await?;
    read_model.print().await?;
    // Shutting down stops the subscription; its checkpoint stays in the store.
    store.shutdown().await?;

    // 2. While no projector runs, another process appends.
    println!("\n== 2. the projector is stopped; a second store appends more events");
    let writer = EventStore::start(config.clone()).await?;
    append_activity(&writer, &accounts, 41..=70).await?;
    for s in writer.list_subscriptions().await? {
        println!("subscription `{}` of {}: checkpoint {}, {} events behind", s.name, s.stream, s.checkpoint, s.lag);
    }
    writer.shutdown().await?;

    // 3. The projector starts again: the subscription resumes after its checkpoint, so only the
    //    new events are delivered.
    println!("\n== 3. the projector starts again and resumes where it stopped");
    let store = EventStore::start(config.clone()).await?;
    run_projector(&store, &read_model).await?;
    read_model.print().await?;

    // 4. A crash between a commit and its ack would deliver that batch again. Replaying events
    //    the read model already has changes nothing.
    println!("\n== 4. events delivered a second time are skipped");
    let replay = store.read_all_forward(0, 50).await?;
    let outcome = read_model.apply(&replay).await?;
    println!("replayed {} events: {} applied, {} skipped", replay.len(), outcome.applied, outcome.skipped);
    assert_eq!(outcome.applied, 0, "a replayed event must not be applied twice");

    // 5. Check: the read model equals the balances computed from a full read of `$all`, and it
    //    has applied every position up to the head.
    println!("\n== 5. check against a full read of $all");
    let expected = balances_from_all(&store).await?;
    let actual = read_model.balances().await?;
    assert_eq!(actual, expected, "the read model differs from a full read of $all");
    let head = store.stream_info(ALL).await?.stream_version;
    assert_eq!(read_model.position().await?, head, "the read model has not applied every event");
    println!("the read model matches $all up to position {head}: no missed or double-applied events");
    store.shutdown().await?;

    if keep || schema_from_env {
        read_model.close().await;
        println!("\nkept schema `{}`: look at {0}.account_balances and {0}.projections", config.schema);
    } else {
        // Everything in the schema was made by this run: the read model's tables, then the store
        // (whose schema goes with it, as chronik created it).
        read_model.drop().await?;
        read_model.close().await;
        chronik::admin::drop(&config).await?;
        println!("\ndropped schema `{}` (pass --keep to keep it)", config.schema);
    }
    Ok(())
}

/// The projector: applies each delivered batch to the read model, then acks it.
///
/// A real projector runs until its application stops; this one returns once the read model has
/// applied everything stored when it started, so the example can go on.
async fn run_projector(store: &EventStore, read_model: &ReadModel) -> Result<()> {
    let head = store.stream_info(ALL).await?.stream_version;
    let mut position = read_model.position().await?;
    println!("projector: read model at position {position}, $all at {head}");
    let mut subscription = store.subscribe_to_all_streams(SUBSCRIPTION, SubscriptionOptions::default()).await?;
    let (mut batches, mut applied, mut skipped) = (0, 0, 0);
    while position < head {
        let message = tokio::time::timeout(Duration::from_secs(30), subscription.recv()).await?;
        match message {
            Some(SubscriptionMessage::Events(batch)) => {
                let outcome = read_model.apply(&batch).await?;
                // Ack after the commit: a crash before this line delivers the batch again,
                // and `apply` skips what it already has.
                subscription.ack(&batch).await?;
                (batches, applied, skipped) = (batches + 1, applied + outcome.applied, skipped + outcome.skipped);
                position = outcome.position;
            }
            Some(SubscriptionMessage::Subscribed) => println!("projector: subscribed to $all as `{SUBSCRIPTION}`"),
            Some(SubscriptionMessage::CaughtUp) => println!("projector: caught up, now live"),
            Some(SubscriptionMessage::Dropped(reason)) => return Err(format!("subscription dropped: {reason}").into()),
            Some(_) => {}
            None => return Err("the subscription closed".into()),
        }
    }
    println!("projector: {batches} batches, {applied} events applied, {skipped} skipped; at position {position}");
    // Writes the checkpoint and lets another node (or the next run) take the subscription over.
    subscription.unsubscribe().await?;
    Ok(())
}

/// What an event does to the read model: `(account, change of balance)`, or `None` for an
/// event that is not about an account.
fn balance_change(event: &RecordedEvent) -> chronik::Result<Option<(String, i64)>> {
    let delta = match event.event_type.as_str() {
        "AccountOpened" => 0,
        "MoneyDeposited" => event.decode::<MoneyDeposited>()?.amount,
        "MoneyWithdrawn" => -event.decode::<MoneyWithdrawn>()?.amount,
        _ => return Ok(None),
    };
    Ok(Some((event.stream_uuid.clone(), delta)))
}

/// An account's row in the read model.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Balance {
    balance: i64,
    /// Events applied to the account: a double-applied event shows here even when its amount
    /// would cancel out.
    events: i64,
}

/// The outcome of applying a batch.
struct Applied {
    applied: usize,
    skipped: usize,
    /// The position the read model has applied up to, after the batch.
    position: u64,
}

/// The read model: one row per account, and the `$all` position it has applied up to.
///
/// It lives in the store's schema here, to be dropped with it. It could as well be in another
/// schema or database: what matters is that the balances and the position are written in one
/// transaction.
struct ReadModel {
    pool: PgPool,
    /// `<schema>.account_balances`.
    balances: String,
    /// `<schema>.projections`: one row per projection, with its position.
    projections: String,
}

impl ReadModel {
    /// Connects and creates the tables if needed.
    async fn open(config: &Config) -> Result<ReadModel> {
        let pool = PgPoolOptions::new().max_connections(2).connect(&config.database_url).await?;
        // chronik accepts only lower-case letters, digits and `_` in schema names, so the name
        // can go into the SQL text as it is.
        let schema = &config.schema;
        let model = ReadModel {
            pool,
            balances: format!("{schema}.account_balances"),
            projections: format!("{schema}.projections"),
        };
        let create = format!(
            "CREATE TABLE IF NOT EXISTS {balances} (
                 account text PRIMARY KEY,
                 balance bigint NOT NULL,
                 events bigint NOT NULL
             );
             CREATE TABLE IF NOT EXISTS {projections} (
                 name text PRIMARY KEY,
                 position bigint NOT NULL
             );
             INSERT INTO {projections} (name, position) VALUES ('{SUBSCRIPTION}', 0) ON CONFLICT DO NOTHING;",
            balances = model.balances,
            projections = model.projections,
        );
        sqlx::raw_sql(&create).execute(&model.pool).await?;
        Ok(model)
    }

    /// Drops the read model's tables.
    async fn drop(&self) -> Result<()> {
        sqlx::raw_sql(&format!("DROP TABLE {}, {}", self.balances, self.projections)).execute(&self.pool).await?;
        Ok(())
    }

    /// Applies the events above the stored position and moves the position, in one transaction.
    async fn apply(&self, events: &[RecordedEvent]) -> Result<Applied> {
        let mut tx = self.pool.begin().await?;
        // FOR UPDATE: a second projector applying the same batch waits here, then skips it.
        let (stored,): (i64,) =
            sqlx::query_as(&format!("SELECT position FROM {} WHERE name = $1 FOR UPDATE", self.projections))
                .bind(SUBSCRIPTION)
                .fetch_one(&mut *tx)
                .await?;
        let mut position = u64::try_from(stored)?;
        let (mut applied, mut skipped) = (0, 0);
        for event in events {
            if event.global_position <= position {
                skipped += 1;
                continue;
            }
            if let Some((account, delta)) = balance_change(event)? {
                sqlx::query(&format!(
                    "INSERT INTO {0} (account, balance, events) VALUES ($1, $2, 1)
                     ON CONFLICT (account) DO UPDATE
                     SET balance = {0}.balance + EXCLUDED.balance, events = {0}.events + 1",
                    self.balances
                ))
                .bind(account)
                .bind(delta)
                .execute(&mut *tx)
                .await?;
            }
            position = event.global_position;
            applied += 1;
        }
        sqlx::query(&format!("UPDATE {} SET position = $2 WHERE name = $1", self.projections))
            .bind(SUBSCRIPTION)
            .bind(i64::try_from(position)?)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Applied { applied, skipped, position })
    }

    /// The `$all` position the read model has applied up to.
    async fn position(&self) -> Result<u64> {
        let (position,): (i64,) = sqlx::query_as(&format!("SELECT position FROM {} WHERE name = $1", self.projections))
            .bind(SUBSCRIPTION)
            .fetch_one(&self.pool)
            .await?;
        Ok(u64::try_from(position)?)
    }

    /// Every account's row.
    async fn balances(&self) -> Result<BTreeMap<String, Balance>> {
        let rows: Vec<(String, i64, i64)> =
            sqlx::query_as(&format!("SELECT account, balance, events FROM {}", self.balances))
                .fetch_all(&self.pool)
                .await?;
        Ok(rows.into_iter().map(|(account, balance, events)| (account, Balance { balance, events })).collect())
    }

    async fn print(&self) -> Result<()> {
        for (account, b) in self.balances().await? {
            println!("  {account:<22} balance {:>5}  ({} events)", b.balance, b.events);
        }
        Ok(())
    }

    async fn close(&self) {
        self.pool.close().await;
    }
}

/// The balances computed from scratch: every event of `$all`, read in pages of 500.
async fn balances_from_all(store: &EventStore) -> Result<BTreeMap<String, Balance>> {
    let mut balances: BTreeMap<String, Balance> = BTreeMap::new();
    let mut events = pin!(store.stream_all_forward(0, 500));
    while let Some(event) = events.try_next().await? {
        if let Some((account, delta)) = balance_change(&event)? {
            let row = balances.entry(account).or_default();
            row.balance += delta;
            row.events += 1;
        }
    }
    Ok(balances)
}

/// Deposits and withdrawals on the accounts, a few events per append.
async fn append_activity(
    store: &EventStore,
    accounts: &[(&str, String)],
    steps: std::ops::RangeInclusive<usize>,
) -> chronik::Result<()> {
    let mut appended = 0;
    for step in steps {
        let (_, stream) = &accounts[step % accounts.len()];
        let amount = (step * 37 % 90 + 10) as i64;
        let mut events = vec![EventData::json("MoneyDeposited", &MoneyDeposited { amount })?];
        if step % 2 == 0 {
            events.push(EventData::json("MoneyWithdrawn", &MoneyWithdrawn { amount: amount / 2 })?);
        }
        appended += events.len();
        store.append_to_stream(stream, ExpectedVersion::Any, events).await?;
    }
    println!("appended {appended} events");
    Ok(())
}
