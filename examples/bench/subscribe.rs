//! Subscriptions: catch-up of the `$all` backlog to one, ten and four competing subscribers, and
//! end-to-end latency of live delivery at 1,000 events/s; on SQLite, the catch-up of one.
//!
//! - **catch-up, 1 subscription**: every event of `$all` (topped up to 1,000,000 events, 50,000
//!   with `--quick`, if the earlier workloads left fewer) delivered to one named subscription
//!   from `Origin` that acks every batch (`buffer_size` 1,000, `checkpoint_threshold` 1,000,
//!   `max_size` the default 1,000); against **raw**: one connection reading the same rows of the
//!   store's `events` table in 1,000-row pages by position, every column decoded, which is the
//!   floor of any catch-up. One latency per delivered batch (its wait and its ack) or page.
//! - **catch-up, 10 subscriptions**: ten named subscriptions at once, each receiving every
//!   event (events/s counts all deliveries); raw: ten connections each paging every row.
//! - **competing consumers**: one subscription with `concurrency_limit` 4 and four subscribers
//!   acking their share of `$all`; raw: four connections paging disjoint quarters of the rows.
//! - **live latency**: one writer appends one event per millisecond to a live subscription;
//!   latency runs from the append call to the subscriber receiving the event. Raw: the same
//!   cadence of one-row `INSERT`s each notifying (`pg_notify`) in the same autocommitted
//!   statement, received by a `PgListener`; latency runs from the statement's start to the
//!   notification's arrival.
//!
//! - **checkpoint per ack, 16 appenders**: a live named `$all` subscription with
//!   `checkpoint_threshold` 1, acking every batch, follows 16 tasks appending single events
//!   to streams of their own; chronik: events delivered per second from the first append until
//!   the last one was delivered; baseline: the appends it follows, in the same run (a ratio near
//!   1 means delivery, checkpoints included, keeps up with them). It also reports how far
//!   behind the subscription was when the appends ended.
//!
//! A chronik catch-up stops after 30 s (`--quick`) or 120 s, so a pathologically slow one
//! cannot stall the suite; its figure is then what was delivered in that time (and it says so).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use chronik::{ALL, ExpectedVersion, StartFrom, Subscription, SubscriptionMessage, SubscriptionOptions};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use sqlx::postgres::PgListener;
use tokio::sync::watch;
use uuid::Uuid;

use crate::measure::{Backend, Group, Measured, Row, Target};
use crate::payload::{Rows, append_backlog, event, insert_row_sql, raw_pages};
use crate::{Bench, BoxError, Result};

pub fn steps(backend: Backend) -> usize {
    match backend {
        Backend::Postgres => 10,
        Backend::Sqlite => 4,
    }
}

/// Appenders of the checkpoint-per-ack workload.
const FOLLOWED_APPENDERS: usize = 16;

/// Longest wait for any one subscription message before the workload is called stuck.
const STUCK: Duration = Duration::from_secs(60);

pub async fn run(bench: &Bench) -> Result<Vec<Row>> {
    let target: u64 = if bench.quick { 50_000 } else { 1_000_000 };
    let mut rows = Vec::new();

    bench.step("subscriptions: backlog of $all");
    let mut head = bench.store.stream_info(ALL).await?.stream_version;
    if head < target {
        let started = Instant::now();
        append_backlog(bench, target - head).await?;
        let before = head;
        head = bench.store.stream_info(ALL).await?.stream_version;
        bench.say(&format!(
            "{}: subscriptions: $all topped up from {before} to {head} events in {:.1} s",
            bench.backend().name(),
            started.elapsed().as_secs_f64()
        ));
    }

    let name = "catch-up of $all, 1 subscription";
    bench.step("subscriptions: catch-up, raw, 1 connection");
    let raw = raw_pages(bench, vec![(1, head)]).await?;
    bench.step(name);
    let chronik = catch_up(bench, &["bench-catch-up".to_string()], head).await?;
    let row = Row::compared(Group::Subscriptions, name, chronik, "1 connection paging 1,000-row SELECTs", raw);
    rows.push(match bench.backend() {
        Backend::Postgres => row.concurrency(1).target(Target::RateAtLeast(100_000.0)),
        Backend::Sqlite => row,
    });

    let name = format!("checkpoint per ack, {FOLLOWED_APPENDERS} appenders");
    bench.step(&format!("subscriptions: {name}"));
    let appends = if bench.quick { 500 } else { 3_000 };
    let (delivered, appended) = checkpoint_per_ack(bench, appends).await?;
    rows.push(
        Row::compared(Group::Subscriptions, name, delivered, "the 1-event appends it follows", appended)
            .target(Target::RatioAtLeast(0.9)),
    );
    if bench.backend() == Backend::Postgres {
        rows.extend(postgres_only(bench, head).await?);
    }
    Ok(rows)
}

/// The workloads the SQLite part leaves out: more subscriptions at once, and live latency.
async fn postgres_only(bench: &Bench, head: u64) -> Result<Vec<Row>> {
    let latency_seconds: u64 = if bench.quick { 2 } else { 10 };
    let mut rows = Vec::new();
    let name = "catch-up of $all, 10 subscriptions";
    bench.step("subscriptions: catch-up, raw, 10 connections");
    let raw = raw_pages(bench, vec![(1, head); 10]).await?;
    bench.step(name);
    let names: Vec<String> = (1..=10).map(|n| format!("bench-catch-up-{n}")).collect();
    let chronik = catch_up(bench, &names, head).await?;
    rows.push(
        Row::compared(Group::Subscriptions, name, chronik, "10 connections each paging every row", raw).concurrency(10),
    );

    let name = "competing consumers on $all, 4 subscribers";
    bench.step("subscriptions: competing consumers, raw, 4 connections");
    let quarter = head.div_ceil(4);
    let quarters = (0..4).map(|k| (k * quarter + 1, ((k + 1) * quarter).min(head))).collect();
    let raw = raw_pages(bench, quarters).await?;
    bench.step(name);
    let chronik = competing(bench, "bench-competing", 4, head).await?;
    rows.push(
        Row::compared(Group::Subscriptions, name, chronik, "4 connections paging a quarter each", raw).concurrency(4),
    );

    let name = "live latency at 1,000 events/s";
    bench.step("subscriptions: live latency, raw, INSERT + pg_notify");
    let raw = raw_latency(bench, latency_seconds * 1_000).await?;
    bench.step(name);
    let chronik = live_latency(bench, latency_seconds * 1_000).await?;
    rows.push(
        Row::compared(Group::Subscriptions, name, chronik, "1-row INSERT + pg_notify to a PgListener", raw)
            .target(Target::P99BelowMs(10.0)),
    );
    Ok(rows)
}

/// A live subscription writing its checkpoint after every ack, following
/// `FOLLOWED_APPENDERS` tasks that each append `appends` single events: `(delivered, appended)`.
async fn checkpoint_per_ack(bench: &Bench, appends: usize) -> Result<(Measured, Measured)> {
    let name = "bench-checkpoint-per-ack";
    let options = SubscriptionOptions::default().start_from(StartFrom::Current).checkpoint_threshold(1);
    let mut sub = bench.store.subscribe_to_all_streams(name, options).await?;
    while next(&mut sub).await? != SubscriptionMessage::CaughtUp {}
    let total = (FOLLOWED_APPENDERS * appends) as u64;
    let streams: Arc<Vec<String>> = Arc::new((0..FOLLOWED_APPENDERS).map(|_| bench.fresh_stream().1).collect());
    let first = bench.payloads(total);
    let store = bench.store.clone();
    let op: crate::measure::Op = Arc::new(move |task, i| {
        let (store, stream) = (store.clone(), streams[task].clone());
        let payload = first + (task * appends + i) as u64;
        Box::pin(async move {
            store.append_to_stream(&stream, ExpectedVersion::Any, vec![event(payload)]).await?;
            Ok(1)
        })
    });
    let delivered = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let appenders = {
        let delivered = Arc::clone(&delivered);
        tokio::spawn(async move {
            let measured = crate::measure::Workers { tasks: FOLLOWED_APPENDERS, per_task: appends, op }.run().await?;
            Ok::<_, BoxError>((measured, delivered.load(Ordering::Relaxed)))
        })
    };
    let (mut received, mut latencies, mut mark) = (0_u64, Vec::new(), Instant::now());
    while received < total {
        if let SubscriptionMessage::Events(batch) = next(&mut sub).await? {
            received += batch.len() as u64;
            delivered.store(received, Ordering::Relaxed);
            sub.ack(&batch).await?;
            latencies.push(mark.elapsed());
            mark = Instant::now();
        }
    }
    let elapsed = started.elapsed();
    let (appended, delivered_when_done) = appenders.await??;
    sub.unsubscribe().await?;
    let measured = Measured { events: received, elapsed, latencies, cpu: None };
    bench.say(&format!(
        "subscriptions: checkpoint per ack: {} events in {} batches ({:.1} each); {} events behind when the appends ended",
        measured.events,
        measured.latencies.len(),
        measured.events as f64 / measured.latencies.len().max(1) as f64,
        total - delivered_when_done.min(total),
    ));
    Ok((measured, appended))
}

/// The options of the catch-up workloads.
fn catch_up_options() -> SubscriptionOptions {
    SubscriptionOptions::default().buffer_size(1_000).max_size(1_000).checkpoint_threshold(1_000)
}

/// The next message of `sub`, failing if the subscription ended or nothing came for a minute.
async fn next(sub: &mut Subscription) -> Result<SubscriptionMessage> {
    match tokio::time::timeout(STUCK, sub.recv()).await {
        Err(_) => Err(format!("subscription {}: no message for {} s", sub.name(), STUCK.as_secs()).into()),
        Ok(None) => Err(format!("subscription {} ended", sub.name()).into()),
        Ok(Some(SubscriptionMessage::Dropped(why))) => {
            Err(format!("subscription {} dropped: {why}", sub.name()).into())
        }
        Ok(Some(message)) => Ok(message),
    }
}

/// Named `$all` subscriptions from `Origin`, one per name and all at once, each receiving and
/// acking every event up to `head` (or as many as it can until `bench`'s deadline); one latency
/// per delivered batch (receipt and ack).
pub async fn catch_up(bench: &Bench, names: &[String], head: u64) -> Result<Measured> {
    let started = Instant::now();
    let deadline = started + deadline(bench);
    let tasks: Vec<_> = names
        .iter()
        .map(|name| {
            let (store, name) = (bench.store.clone(), name.clone());
            tokio::spawn(async move {
                let mut sub = store.subscribe_to_all_streams(&name, catch_up_options()).await?;
                let (mut received, mut last, mut latencies) = (0_u64, 0_u64, Vec::new());
                let mut mark = Instant::now();
                // (A timeout alone would not stop a subscription that always has a message ready.)
                while last < head && Instant::now() < deadline {
                    let Ok(message) = tokio::time::timeout_at(deadline.into(), next(&mut sub)).await else { break };
                    if let SubscriptionMessage::Events(batch) = message? {
                        for event in &batch {
                            if event.event_number <= last {
                                return Err(format!("{name}: event {} after {last}", event.event_number).into());
                            }
                            last = event.event_number;
                        }
                        received += batch.len() as u64;
                        sub.ack(&batch).await?;
                        latencies.push(mark.elapsed());
                        mark = Instant::now();
                    }
                }
                let done = Instant::now();
                sub.unsubscribe().await?;
                Ok::<_, BoxError>((received, latencies, done))
            })
        })
        .collect();
    let mut measured = Measured::default();
    let mut finished = started;
    for task in tasks {
        let (received, latencies, done) = task.await??;
        measured.events += received;
        measured.latencies.extend(latencies);
        finished = finished.max(done);
    }
    measured.elapsed = finished - started;
    let what = format!("catch-up, {} subscription{}", names.len(), if names.len() == 1 { "" } else { "s" });
    say_batches(bench, &what, &measured, names.len() as u64 * head);
    Ok(measured)
}

/// The longest a chronik catch-up workload runs: past it, the figure is what was delivered so
/// far over the time taken.
fn deadline(bench: &Bench) -> Duration {
    Duration::from_secs(if bench.quick { 30 } else { 120 })
}

/// Says how the deliveries were batched, and whether the workload stopped at its deadline
/// before delivering all `expected`.
fn say_batches(bench: &Bench, what: &str, measured: &Measured, expected: u64) {
    let stopped = if measured.events < expected {
        format!("; STOPPED at the deadline with {} of {expected} deliveries done", measured.events)
    } else {
        String::new()
    };
    bench.say(&format!(
        "subscriptions: {what}: {} events in {} batches ({:.1} events each) in {:.1} s{stopped}",
        measured.events,
        measured.latencies.len(),
        measured.events as f64 / measured.latencies.len().max(1) as f64,
        measured.elapsed.as_secs_f64(),
    ));
}

/// One subscription with `consumers` competing subscribers acking what they get, from
/// `Origin` until every event up to `head` was delivered and acked (or the deadline).
async fn competing(bench: &Bench, name: &str, consumers: usize, head: u64) -> Result<Measured> {
    let options = catch_up_options().concurrency_limit(consumers);
    let delivered = Arc::new(AtomicU64::new(0));
    let (done_tx, done_rx) = watch::channel(false);
    let done_tx = Arc::new(done_tx);
    let started = Instant::now();
    let deadline = tokio::time::Instant::from(started + deadline(bench));
    let mut tasks = Vec::with_capacity(consumers);
    for _ in 0..consumers {
        let mut sub = bench.store.subscribe_to_all_streams(name, options.clone()).await?;
        let (delivered, done_tx, mut done_rx) = (Arc::clone(&delivered), Arc::clone(&done_tx), done_rx.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut mark = Instant::now();
            while tokio::time::Instant::now() < deadline {
                let message = tokio::select! {
                    _ = done_rx.wait_for(|done| *done) => break,
                    () = tokio::time::sleep_until(deadline) => break,
                    message = next(&mut sub) => message?,
                };
                if let SubscriptionMessage::Events(batch) = message {
                    sub.ack(&batch).await?;
                    latencies.push(mark.elapsed());
                    mark = Instant::now();
                    if delivered.fetch_add(batch.len() as u64, Ordering::Relaxed) + batch.len() as u64 >= head {
                        done_tx.send_replace(true);
                    }
                }
            }
            Ok::<_, BoxError>((sub, latencies, Instant::now()))
        }));
    }
    let mut measured = Measured::default();
    let mut subs = Vec::with_capacity(consumers);
    let mut finished = started;
    for task in tasks {
        let (sub, latencies, done) = task.await??;
        measured.latencies.extend(latencies);
        subs.push(sub);
        finished = finished.max(done);
    }
    measured.elapsed = finished - started;
    measured.events = delivered.load(Ordering::Relaxed);
    say_batches(bench, &format!("{consumers} competing consumers"), &measured, head);
    for sub in subs {
        sub.unsubscribe().await?;
    }
    Ok(measured)
}

/// Start instants of what was sent, by key.
type Sent<K> = Arc<Mutex<HashMap<K, Instant>>>;

fn sent_at<K: std::hash::Hash + Eq>(sent: &Sent<K>, key: &K) -> Option<Instant> {
    sent.lock().unwrap_or_else(PoisonError::into_inner).remove(key)
}

/// Calls `send(n)` for `n` in `0..total`, one per millisecond, without waiting for one call to
/// finish before the next starts (so the rate stays steady).
async fn at_one_per_ms<F, Fut>(total: u64, send: F) -> Result<()>
where
    F: Fn(u64) -> Fut,
    Fut: Future<Output = Result<()>>,
{
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut pending = FuturesUnordered::new();
    for n in 0..total {
        tick.tick().await;
        pending.push(send(n));
        while let Some(Some(done)) = futures::FutureExt::now_or_never(pending.next()) {
            done?;
        }
    }
    while let Some(done) = pending.next().await {
        done?;
    }
    Ok(())
}

/// One event per millisecond appended to a fresh stream, received by a live named `$all`
/// subscription that acks every batch; latency from the append call to the receipt.
pub async fn live_latency(bench: &Bench, total: u64) -> Result<Measured> {
    // A name of its own each time: a subscription left behind would resume from its checkpoint.
    let name = format!("bench-latency-{}", Uuid::new_v4().simple());
    let options = SubscriptionOptions::default().start_from(StartFrom::Current);
    let mut sub = bench.store.subscribe_to_all_streams(&name, options).await?;
    while next(&mut sub).await? != SubscriptionMessage::CaughtUp {}
    let sent: Sent<Uuid> = Arc::default();
    let stream = bench.fresh_stream().1;
    let first = bench.payloads(total);
    let started = Instant::now();
    let writer = {
        let (store, sent) = (bench.store.clone(), Arc::clone(&sent));
        tokio::spawn(async move {
            at_one_per_ms(total, |n| {
                let (store, sent, stream) = (store.clone(), Arc::clone(&sent), stream.clone());
                async move {
                    let event = event(first + n);
                    sent.lock().unwrap_or_else(PoisonError::into_inner).insert(event.event_id, Instant::now());
                    store.append_to_stream(&stream, ExpectedVersion::Any, vec![event]).await?;
                    Ok(())
                }
            })
            .await
        })
    };
    let mut latencies = Vec::with_capacity(total as usize);
    while (latencies.len() as u64) < total {
        if let SubscriptionMessage::Events(batch) = next(&mut sub).await? {
            let now = Instant::now();
            for event in &batch {
                if let Some(at) = sent_at(&sent, &event.event_id) {
                    latencies.push(now - at);
                }
            }
            sub.ack(&batch).await?;
        }
    }
    let elapsed = started.elapsed();
    writer.await??;
    sub.unsubscribe().await?;
    bench.store.delete_subscription(ALL, &name).await?;
    Ok(Measured { events: total, elapsed, latencies, cpu: None })
}

/// The raw side of [`live_latency`]: one autocommitted `INSERT` + `pg_notify` statement per
/// millisecond over the raw pool, received by a `PgListener` on a connection of its own.
async fn raw_latency(bench: &Bench, total: u64) -> Result<Measured> {
    let pool = bench.postgres()?.clone();
    let channel = format!("{}_latency", bench.config.schema);
    let mut listener = PgListener::connect(&bench.config.database_url).await?;
    listener.listen(&channel).await?;
    let sql: Arc<str> = format!(
        "WITH inserted AS ({} RETURNING position) SELECT pg_notify('{channel}', position::text) FROM inserted",
        insert_row_sql(&bench.raw.table())
    )
    .into();
    let sent: Sent<i64> = Arc::default();
    let (stream_id, stream) = bench.fresh_stream();
    let first = bench.payloads(total);
    let started = Instant::now();
    let writer = {
        let (sent, positions) = (Arc::clone(&sent), Arc::clone(&bench.raw_positions));
        tokio::spawn(async move {
            at_one_per_ms(total, |n| {
                let (pool, sent, sql, stream) = (pool.clone(), Arc::clone(&sent), Arc::clone(&sql), stream.clone());
                let position = positions.fetch_add(1, Ordering::Relaxed) + 1;
                async move {
                    let mut row = Rows::default();
                    row.push(position, stream_id, &stream, n as i64 + 1, first + n);
                    sent.lock().unwrap_or_else(PoisonError::into_inner).insert(position, Instant::now());
                    sqlx::query(&sql)
                        .bind(position)
                        .bind(row.event_id[0])
                        .bind(stream_id)
                        .bind(&stream)
                        .bind(row.stream_version[0])
                        .bind(row.event_type[0])
                        .bind(row.content_type[0])
                        .bind(None::<Uuid>)
                        .bind(None::<Uuid>)
                        .bind(&row.data[0])
                        .bind(&row.metadata[0])
                        .bind(&row.category[0])
                        .bind(row.index_number[0])
                        .bind(position)
                        .execute(&pool)
                        .await?;
                    Ok(())
                }
            })
            .await
        })
    };
    let mut latencies = Vec::with_capacity(total as usize);
    while (latencies.len() as u64) < total {
        let notification = match tokio::time::timeout(STUCK, listener.recv()).await {
            Ok(notification) => notification?,
            Err(_) => return Err(format!("no notification for {} s", STUCK.as_secs()).into()),
        };
        let now = Instant::now();
        let position: i64 = notification.payload().parse()?;
        if let Some(at) = sent_at(&sent, &position) {
            latencies.push(now - at);
        }
    }
    let elapsed = started.elapsed();
    writer.await??;
    listener.unlisten(&channel).await?;
    Ok(Measured { events: total, elapsed, latencies, cpu: None })
}
