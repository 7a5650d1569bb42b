//! Subscription figures of chronik: catch-up throughput against a raw PostgreSQL read of the
//! same rows, end-to-end latency at a steady append rate, and memory of idle subscriptions.
//!
//! ```text
//! cargo run --release --example bench_subscriptions            # full run (about a minute)
//! cargo run --release --example bench_subscriptions -- --quick # smaller counts
//! ```
//!
//! The database is `CHRONIK_DATABASE_URL` (then `DATABASE_URL`), by default
//! `postgres://postgres@127.0.0.1:5432/postgres`. Everything happens in a scratch schema,
//! `bench_<uuid>`, dropped at the end, also when the benchmark fails.
//!
//! - **catch-up**: a backlog of 1,000,000 events (100-event appends over 100 streams) is
//!   delivered to one named `$all` subscription that acks every batch; against **raw**: one
//!   connection reading the same rows in 1,000-row pages by position (`SELECT * FROM events
//!   WHERE position >= $1 ORDER BY position LIMIT 1000`), which is the floor of any catch-up.
//! - **latency**: one writer appends one event every millisecond (1,000 events/s) for a few
//!   seconds; a live subscription acks each batch; latency is from the append call to the
//!   subscriber receiving the event.
//! - **memory**: RSS of this process before and after 1,000 named subscriptions (one per
//!   stream) are started and idle.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chronik::{Config, EventData, EventStore, ExpectedVersion, SubscriptionMessage, SubscriptionOptions};
use futures::StreamExt;
use sqlx::Connection;
use tracing_subscriber::EnvFilter;
use uuid::Uuid;

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Result<T, E = BoxError> = std::result::Result<T, E>;

struct Sizes {
    backlog: u64,
    latency_seconds: u64,
    idle_subscriptions: usize,
}

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .init();
    let quick = std::env::args().any(|a| a == "--quick");
    let sizes = if quick {
        Sizes { backlog: 100_000, latency_seconds: 2, idle_subscriptions: 200 }
    } else {
        Sizes { backlog: 1_000_000, latency_seconds: 10, idle_subscriptions: 1_000 }
    };
    let url = std::env::var("CHRONIK_DATABASE_URL")
        .or_else(|_| std::env::var("DATABASE_URL"))
        .unwrap_or_else(|_| chronik::DEFAULT_DATABASE_URL.to_string());
    let schema = format!("bench_{}", Uuid::new_v4().simple());
    let config = Config::default().database_url(url.clone()).schema(schema.clone()).pool_size(8);
    let outcome = run(&config, &url, &sizes).await;
    if let Err(e) = chronik::admin::drop(&config).await {
        eprintln!("could not drop scratch schema {schema}: {e}");
    }
    outcome
}

async fn run(config: &Config, url: &str, sizes: &Sizes) -> Result<()> {
    let rss_start = rss_kib();
    let store = EventStore::start(config.clone()).await?;
    println!("machine: {} cores; backlog {} events", std::thread::available_parallelism()?, sizes.backlog);

    fill_backlog(&store, sizes.backlog).await?;
    let raw = raw_read(url, &config.schema, sizes.backlog).await?;
    let catch_up = catch_up(&store, sizes.backlog).await?;
    println!(
        "catch-up:  chronik {:>9.0} events/s delivered+acked | raw paged SELECT {:>9.0} rows/s | ratio {:.2}",
        catch_up,
        raw,
        catch_up / raw
    );

    let (p50, p99, count) = latency(&store, sizes.latency_seconds).await?;
    println!("latency:   {count} events at 1,000/s: append -> subscriber p50 {p50:.2} ms, p99 {p99:.2} ms");

    let before = rss_kib();
    let subscriptions = idle_subscriptions(&store, sizes.idle_subscriptions).await?;
    let after = rss_kib();
    println!(
        "memory:    {} idle named subscriptions: RSS {:.1} MiB -> {:.1} MiB (+{:.1} MiB; process started at {:.1} MiB)",
        subscriptions.len(),
        before as f64 / 1024.0,
        after as f64 / 1024.0,
        (after.saturating_sub(before)) as f64 / 1024.0,
        rss_start as f64 / 1024.0,
    );
    drop(subscriptions);
    store.shutdown().await?;
    Ok(())
}

/// Appends `total` events as 100-event appends over 100 streams, 4 appenders at a time.
async fn fill_backlog(store: &EventStore, total: u64) -> Result<()> {
    let started = Instant::now();
    let appends = total / 100;
    let mut tasks = Vec::new();
    for writer in 0..4 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut n = writer;
            while n < appends {
                let events: Vec<EventData> = (0..100)
                    .map(|i| EventData::json("Deposited", &serde_json::json!({ "n": n * 100 + i, "amount": 10 })))
                    .collect::<chronik::Result<_>>()?;
                store.append_to_stream(&format!("account-{}", n % 100), ExpectedVersion::Any, events).await?;
                n += 4;
            }
            Ok::<_, chronik::Error>(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    println!("backlog:   {total} events appended in {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

/// Rows per second of a paged read of the backlog on one raw connection.
async fn raw_read(url: &str, schema: &str, total: u64) -> Result<f64> {
    let mut conn = sqlx::PgConnection::connect(url).await?;
    let sql = format!("SELECT * FROM {schema}.events WHERE position >= $1 ORDER BY position LIMIT 1000");
    let started = Instant::now();
    let (mut from, mut read) = (1_i64, 0_u64);
    loop {
        let rows = sqlx::query(&sql).bind(from).fetch_all(&mut conn).await?;
        let Some(last) = rows.last() else { break };
        read += rows.len() as u64;
        from = sqlx::Row::try_get::<i64, _>(last, "position")? + 1;
    }
    assert_eq!(read, total, "raw read saw every event");
    Ok(read as f64 / started.elapsed().as_secs_f64())
}

/// Events per second delivered and acked from the backlog to one `$all` subscription.
async fn catch_up(store: &EventStore, total: u64) -> Result<f64> {
    let options = SubscriptionOptions::default().buffer_size(1_000).max_size(10_000).checkpoint_threshold(1_000);
    let started = Instant::now();
    let mut sub = store.subscribe_to_all_streams("catch-up", options).await?;
    let mut received = 0_u64;
    let mut last = 0;
    while received < total {
        match sub.recv().await {
            Some(SubscriptionMessage::Events(batch)) => {
                for event in &batch {
                    assert!(event.event_number > last, "in order");
                    last = event.event_number;
                }
                received += batch.len() as u64;
                sub.ack(&batch).await?;
            }
            Some(_) => {}
            None => return Err("subscription ended".into()),
        }
    }
    let rate = received as f64 / started.elapsed().as_secs_f64();
    sub.unsubscribe().await?;
    Ok(rate)
}

/// p50, p99 (ms) and count of append-call -> subscriber latencies at 1,000 events/s.
async fn latency(store: &EventStore, seconds: u64) -> Result<(f64, f64, usize)> {
    let options = SubscriptionOptions::default().start_from(chronik::StartFrom::Current);
    let mut sub = store.subscribe_to_all_streams("latency", options).await?;
    // Wait until live.
    while let Some(msg) = sub.recv().await {
        if msg == SubscriptionMessage::CaughtUp {
            break;
        }
    }
    let sent: Arc<Mutex<HashMap<Uuid, Instant>>> = Arc::default();
    let total = seconds * 1_000;
    let writer = {
        let (store, sent) = (store.clone(), Arc::clone(&sent));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(1));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            let mut pending = futures::stream::FuturesUnordered::new();
            for n in 0..total {
                tick.tick().await;
                let event = EventData::json("Ping", &serde_json::json!({ "n": n }))?;
                sent.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(event.event_id, Instant::now());
                let store = store.clone();
                pending.push(async move { store.append_to_stream("pings", ExpectedVersion::Any, vec![event]).await });
                // Drain finished appends without waiting, so the rate stays steady.
                while let Some(Some(done)) = futures::FutureExt::now_or_never(pending.next()) {
                    done?;
                }
            }
            while let Some(done) = pending.next().await {
                done?;
            }
            Ok::<_, chronik::Error>(())
        })
    };
    let mut latencies = Vec::with_capacity(total as usize);
    while (latencies.len() as u64) < total {
        match tokio::time::timeout(Duration::from_secs(10), sub.recv()).await? {
            Some(SubscriptionMessage::Events(batch)) => {
                let now = Instant::now();
                {
                    let sent = sent.lock().map_err(|_| "poisoned")?;
                    for event in &batch {
                        if let Some(at) = sent.get(&event.event_id) {
                            latencies.push(now.duration_since(*at).as_secs_f64() * 1_000.0);
                        }
                    }
                }
                sub.ack(&batch).await?;
            }
            Some(_) => {}
            None => return Err("subscription ended".into()),
        }
    }
    writer.await??;
    sub.unsubscribe().await?;
    latencies.sort_by(f64::total_cmp);
    let at = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    Ok((at(0.50), at(0.99), latencies.len()))
}

/// Starts `count` named subscriptions (one per stream) and waits until each is live.
async fn idle_subscriptions(store: &EventStore, count: usize) -> Result<Vec<chronik::Subscription>> {
    let mut subscriptions = Vec::with_capacity(count);
    for n in 0..count {
        let sub = store.subscribe_to_stream(&format!("idle-{n}"), "idle", SubscriptionOptions::default()).await?;
        subscriptions.push(sub);
    }
    for sub in &mut subscriptions {
        while let Some(msg) = tokio::time::timeout(Duration::from_secs(30), sub.recv()).await? {
            if msg == SubscriptionMessage::CaughtUp {
                break;
            }
        }
    }
    Ok(subscriptions)
}

/// Resident set size of this process, in KiB (Linux).
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}
