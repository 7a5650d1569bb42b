//! Reads: on PostgreSQL, one stream forward (100 and 10,000 events) by 1, 10 and 100
//! concurrent readers; on both backends, `$all` forward as a stream of 1,000,000 events.
//!
//! Baseline: plain `SELECT`s of the very rows chronik reads (its own `events` table), decoded
//! into the same columns: by stream id and version for a stream (the id looked up once, before
//! timing), in 1,000-row pages by position for `$all`.

use std::pin::pin;
use std::sync::Arc;
use std::time::Instant;

use chronik::{ALL, ExpectedVersion};
use futures::{StreamExt, TryStreamExt};

use crate::measure::{Backend, Group, Measured, Op, Row, Target, Workers};
use crate::payload::{COLUMNS, PAGE, RawRow, append_backlog, events, raw_pages};
use crate::{Bench, Result};

/// (events in the stream, readers, reads per reader in a full run).
const SHAPES: [(u64, usize, usize); 5] =
    [(100, 1, 1_000), (100, 10, 200), (100, 100, 20), (10_000, 1, 20), (10_000, 10, 4)];

/// `$all` is read as a stream of this many events (a tenth of it with `--quick`).
const ALL_EVENTS: u64 = 1_000_000;

pub fn steps(backend: Backend) -> usize {
    match backend {
        Backend::Postgres => SHAPES.len() + 2,
        Backend::Sqlite => 2,
    }
}

pub async fn run(bench: &Bench) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    if bench.backend() == Backend::Postgres {
        rows.extend(stream_reads(bench).await?);
    }
    rows.push(all_forward(bench).await?);
    Ok(rows)
}

async fn stream_reads(bench: &Bench) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    let mut streams = Vec::new();
    for size in [100, 10_000] {
        let (stream, id) = seeded_stream(bench, size).await?;
        streams.push((size, stream, id));
    }
    for (size, readers, reads) in SHAPES {
        let reads = if bench.quick { (reads / 5).max(2) } else { reads };
        let name = format!("{readers} readers x {size}-event stream reads");
        bench.step(&name);
        let (_, stream, id) = streams.iter().find(|(s, _, _)| *s == size).ok_or("stream set up above")?.clone();
        let raw = Workers { tasks: readers, per_task: reads, op: raw_stream_read(bench, id, size)? }.run().await?;
        let chronik = Workers { tasks: readers, per_task: reads, op: stream_read(bench, &stream, size) }.run().await?;
        rows.push(Row::compared(Group::Read, name, chronik, "SELECT by stream id", raw).concurrency(readers));
    }
    Ok(rows)
}

/// `$all` topped up to [`ALL_EVENTS`], then read whole by chronik and by paged `SELECT`s.
async fn all_forward(bench: &Bench) -> Result<Row> {
    let target = if bench.quick { ALL_EVENTS / 10 } else { ALL_EVENTS };
    bench.step(&format!("filling $all to {target} events"));
    let head = bench.store.stream_info(ALL).await?.stream_version;
    append_backlog(bench, target.saturating_sub(head)).await?;
    let name = format!("$all forward, streamed in {PAGE}-event pages");
    bench.step(&name);
    let raw = raw_pages(bench, vec![(1, target)]).await?;
    let chronik = all_streamed(bench, target).await?;
    Ok(Row::compared(Group::Read, name, chronik, "paged SELECT by position", raw).target(Target::RatioAtLeast(0.5)))
}

/// A fresh stream holding `count` events (100-event appends): its name and the store's id of it.
pub async fn seeded_stream(bench: &Bench, count: u64) -> Result<(String, i64)> {
    let (_, stream) = bench.fresh_stream();
    let first = bench.payloads(count);
    for offset in (0..count).step_by(100) {
        let batch = events(first + offset, 100.min(count - offset));
        bench.store.append_to_stream(&stream, ExpectedVersion::Exact(offset), batch).await?;
    }
    let lookup = format!("SELECT stream_id FROM {} WHERE stream_uuid = $1", bench.store_table("streams"));
    let (id,): (i64,) = sqlx::query_as(&lookup).bind(&stream).fetch_one(bench.postgres()?).await?;
    Ok((stream, id))
}

/// One read of the whole `size`-event `stream` through chronik.
pub fn stream_read(bench: &Bench, stream: &str, size: u64) -> Op {
    let (store, stream) = (bench.store.clone(), Arc::<str>::from(stream));
    Arc::new(move |_, _| {
        let (store, stream) = (store.clone(), Arc::clone(&stream));
        Box::pin(async move { Ok(store.read_stream_forward(&stream, 1, size).await?.len() as u64) })
    })
}

/// The same read as a plain `SELECT` by the stream's id (PostgreSQL).
pub fn raw_stream_read(bench: &Bench, stream_id: i64, size: u64) -> Result<Op> {
    let sql: Arc<str> = format!(
        "SELECT {COLUMNS} FROM {} WHERE stream_id = $1 AND stream_version >= 1 ORDER BY stream_version LIMIT $2",
        bench.store_table("events")
    )
    .into();
    let pool = bench.postgres()?.clone();
    Ok(Arc::new(move |_, _| {
        let (pool, sql) = (pool.clone(), Arc::clone(&sql));
        Box::pin(async move {
            let rows: Vec<RawRow> = sqlx::query_as(&sql).bind(stream_id).bind(size as i64).fetch_all(&pool).await?;
            Ok(rows.len() as u64)
        })
    }))
}

/// `$all` from the start as a lazy stream of events, `count` of them; each page timed.
async fn all_streamed(bench: &Bench, count: u64) -> Result<Measured> {
    let started = Instant::now();
    let mut measured = Measured::default();
    let mut all = pin!(bench.store.stream_all_forward(0, PAGE as u64).take(count as usize).try_chunks(PAGE as usize));
    let mut page_started = Instant::now();
    while let Some(page) = all.try_next().await.map_err(|e| e.1)? {
        measured.events += page.len() as u64;
        measured.latencies.push(page_started.elapsed());
        page_started = Instant::now();
    }
    measured.elapsed = started.elapsed();
    Ok(measured)
}
