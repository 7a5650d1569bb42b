//! The workload shapes of the Elixir EventStore's published benchmark, timed per operation
//! (µs/op) like theirs: one operation is N concurrent writers each appending 100 events to a
//! stream of its own, N concurrent readers each reading a 100-event stream, or a subscription
//! receiving and acking 100 freshly appended events.
//!
//! Their published figures (README of commanded/eventstore, 100-event appends and reads) are
//! shown beside ours where they published one. They come from another machine, so only the
//! order of magnitude compares; the raw baseline of the same shape, measured here, is the
//! like-for-like reference.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chronik::{ExpectedVersion, SubscriptionMessage, SubscriptionOptions};

use crate::append::raw_appends;
use crate::measure::{Group, Measured, Op, Row, Workers};
use crate::payload::events;
use crate::read::{raw_stream_read, seeded_stream, stream_read};
use crate::{Bench, Result};

/// Writers (and readers) of the published shapes.
const CONCURRENCY: [usize; 4] = [1, 10, 20, 50];
/// Events per append, per read and per subscription operation.
const EVENTS: u64 = 100;

/// The published µs/op of the Elixir EventStore: appends and reads by 1 and 50 processes.
fn published(what: &str, concurrency: usize) -> Option<f64> {
    match (what, concurrency) {
        ("append", 1) => Some(20_289.0),
        ("append", 50) => Some(582_351.0),
        ("read", 1) => Some(3_675.0),
        ("read", 50) => Some(188_245.0),
        _ => None,
    }
}

pub const STEPS: usize = 2 * CONCURRENCY.len() + 1;

pub async fn run(bench: &Bench) -> Result<Vec<Row>> {
    let operations = if bench.quick { 5 } else { 30 };
    let mut rows = Vec::new();
    for writers in CONCURRENCY {
        let name = format!("{writers} writers append {EVENTS} events each");
        bench.step(&name);
        let (chronik, raw) = appends(bench, writers, operations).await?;
        let mut row = Row::compared(Group::Elixir, name, chronik, "UNNEST INSERT per append", raw);
        if let Some(us) = published("append", writers) {
            row = row.elixir(us);
        }
        rows.push(row);
    }
    let (stream, id) = seeded_stream(bench, EVENTS).await?;
    for readers in CONCURRENCY {
        let name = format!("{readers} readers read {EVENTS} events each");
        bench.step(&name);
        let (chronik, raw) = reads(bench, &stream, id, readers, operations).await?;
        let mut row = Row::compared(Group::Elixir, name, chronik, "SELECT by stream id", raw);
        if let Some(us) = published("read", readers) {
            row = row.elixir(us);
        }
        rows.push(row);
    }
    let name = format!("a subscription receives and acks {EVENTS} events");
    bench.step(&name);
    rows.push(Row::alone(Group::Elixir, name, subscription(bench, operations).await?));
    Ok(rows)
}

/// Times one operation (which returns the events it moved) into `measured`.
async fn timed<F, Fut>(measured: &mut Measured, operation: F) -> Result<()>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<u64>>,
{
    let started = Instant::now();
    measured.events += operation().await?;
    let took = started.elapsed();
    measured.latencies.push(took);
    measured.elapsed += took;
    Ok(())
}

async fn appends(bench: &Bench, writers: usize, operations: usize) -> Result<(Measured, Measured)> {
    let (mut chronik, mut raw) = (Measured::default(), Measured::default());
    for operation in 0..operations {
        let streams: Vec<(i64, String)> = (0..writers).map(|_| bench.fresh_stream()).collect();
        let first = bench.payloads(2 * writers as u64 * EVENTS);
        let store = bench.store.clone();
        let names: Arc<Vec<String>> = Arc::new(streams.iter().map(|s| s.1.clone()).collect());
        let append: Op = Arc::new(move |task, _| {
            let (store, stream) = (store.clone(), names[task].clone());
            Box::pin(async move {
                let batch = events(first + task as u64 * EVENTS, EVENTS);
                store.append_to_stream(&stream, ExpectedVersion::NoStream, batch).await?;
                Ok(EVENTS)
            })
        });
        let chronik_side = Workers { tasks: writers, per_task: 1, op: append };
        let raw_first = first + writers as u64 * EVENTS;
        let place =
            move |task: usize, _| (streams[task].0, streams[task].1.clone(), 0, raw_first + task as u64 * EVENTS);
        let raw_side = Workers { tasks: writers, per_task: 1, op: raw_appends(bench, EVENTS, place) };
        if operation % 2 == 0 {
            timed(&mut chronik, || async { Ok(chronik_side.run().await?.events) }).await?;
            timed(&mut raw, || async { Ok(raw_side.run().await?.events) }).await?;
        } else {
            timed(&mut raw, || async { Ok(raw_side.run().await?.events) }).await?;
            timed(&mut chronik, || async { Ok(chronik_side.run().await?.events) }).await?;
        }
    }
    Ok((chronik, raw))
}

async fn reads(
    bench: &Bench,
    stream: &str,
    stream_id: i64,
    readers: usize,
    operations: usize,
) -> Result<(Measured, Measured)> {
    // One operation: every reader reads the stream once.
    let chronik_side = Workers { tasks: readers, per_task: 1, op: stream_read(bench, stream, EVENTS) };
    let raw_side = Workers { tasks: readers, per_task: 1, op: raw_stream_read(bench, stream_id, EVENTS)? };
    let (mut chronik, mut raw) = (Measured::default(), Measured::default());
    for _ in 0..operations {
        timed(&mut chronik, || async { Ok(chronik_side.run().await?.events) }).await?;
        timed(&mut raw, || async { Ok(raw_side.run().await?.events) }).await?;
    }
    Ok((chronik, raw))
}

/// One operation: append 100 events to the subscribed stream, then receive and ack them all.
async fn subscription(bench: &Bench, operations: usize) -> Result<Measured> {
    let (_, stream) = bench.fresh_stream();
    let options = SubscriptionOptions::default().buffer_size(EVENTS as usize).checkpoint_threshold(EVENTS);
    let mut sub = bench.store.subscribe_to_stream(&stream, "elixir-shape", options).await?;
    // Owned and caught up (on an empty stream) before timing.
    loop {
        match tokio::time::timeout(Duration::from_secs(30), sub.recv()).await? {
            Some(SubscriptionMessage::CaughtUp) => break,
            Some(SubscriptionMessage::Dropped(reason)) => return Err(format!("subscription dropped: {reason}").into()),
            None => return Err("subscription closed".into()),
            _ => {}
        }
    }
    let mut measured = Measured::default();
    for operation in 0..operations {
        let first = bench.payloads(EVENTS);
        timed(&mut measured, || async {
            let version = operation as u64 * EVENTS;
            bench.store.append_to_stream(&stream, ExpectedVersion::Exact(version), events(first, EVENTS)).await?;
            let mut received = 0;
            while received < EVENTS {
                match tokio::time::timeout(Duration::from_secs(30), sub.recv()).await? {
                    Some(SubscriptionMessage::Events(batch)) => {
                        received += batch.len() as u64;
                        sub.ack(&batch).await?;
                    }
                    Some(SubscriptionMessage::Dropped(reason)) => {
                        return Err(format!("subscription dropped: {reason}").into());
                    }
                    None => return Err("subscription closed".into()),
                    Some(_) => {}
                }
            }
            Ok(received)
        })
        .await?;
    }
    sub.unsubscribe().await?;
    Ok(measured)
}
