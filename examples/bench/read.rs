//! Reads: one stream forward (100 and 10,000 events) by 1, 10 and 100 concurrent readers, and
//! `$all` forward as a stream of 1,000,000 events.
//!
//! Baseline: plain `SELECT`s of the very rows chronik reads (its own `events` table), decoded
//! into the same columns: by stream id and version for a stream (the id looked up once, before
//! timing), in 1,000-row pages by position for `$all`.

use std::pin::pin;
use std::sync::Arc;
use std::time::Instant;

use chronik::{ALL, ExpectedVersion};
use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};
use uuid::Uuid;

use crate::measure::{Group, Measured, Op, Row, Target, Workers};
use crate::payload::events;
use crate::{Bench, BoxError, Result};

/// (events in the stream, readers, reads per reader in a full run).
const SHAPES: [(u64, usize, usize); 5] =
    [(100, 1, 1_000), (100, 10, 200), (100, 100, 20), (10_000, 1, 20), (10_000, 10, 4)];

/// `$all` is read as a stream of this many events (a tenth of it with `--quick`).
const ALL_EVENTS: u64 = 1_000_000;
/// Page size of `$all` streaming, chronik and raw.
const PAGE: u64 = 1_000;

pub const STEPS: usize = SHAPES.len() + 2;

/// The columns of an event row, as chronik decodes them.
pub type RawRow =
    (i64, Uuid, String, i64, String, String, Option<Uuid>, Option<Uuid>, Vec<u8>, Option<Vec<u8>>, DateTime<Utc>);

const COLUMNS: &str = "position, event_id, stream_uuid, stream_version, event_type, content_type, correlation_id, \
     causation_id, data, metadata, created_at";

pub async fn run(bench: &Bench) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    let mut streams = Vec::new();
    for size in [100, 10_000] {
        let (_, stream) = bench.fresh_stream();
        append_events(bench, &stream, size).await?;
        let (id,): (i64,) =
            sqlx::query_as(&format!("SELECT stream_id FROM {} WHERE stream_uuid = $1", bench.store_table("streams")))
                .bind(&stream)
                .fetch_one(&bench.pool)
                .await?;
        streams.push((size, stream, id));
    }
    for (size, readers, reads) in SHAPES {
        let reads = if bench.quick { (reads / 5).max(2) } else { reads };
        let name = format!("{readers} readers x {size}-event stream reads");
        bench.step(&name);
        let (_, stream, id) = streams.iter().find(|(s, _, _)| *s == size).ok_or("stream set up above")?.clone();
        let raw = stream_reads_raw(bench, id, size, readers, reads).await?;
        let chronik = stream_reads(bench, &stream, size, readers, reads).await?;
        rows.push(Row::compared(Group::Read, name, chronik, "SELECT by stream id", raw).concurrency(readers));
    }

    let target = if bench.quick { ALL_EVENTS / 10 } else { ALL_EVENTS };
    bench.step(&format!("filling $all to {target} events"));
    fill_all(bench, target).await?;
    let name = format!("$all forward, streamed in {PAGE}-event pages");
    bench.step(&name);
    let raw = all_raw(bench, target).await?;
    let chronik = all_streamed(bench, target).await?;
    rows.push(
        Row::compared(Group::Read, name, chronik, "paged SELECT by position", raw).target(Target::RatioAtLeast(0.5)),
    );
    Ok(rows)
}

/// Appends `count` events to `stream` in 100-event appends.
pub async fn append_events(bench: &Bench, stream: &str, count: u64) -> Result<()> {
    let first = bench.payloads(count);
    for offset in (0..count).step_by(100) {
        let batch = events(first + offset, 100.min(count - offset));
        bench.store.append_to_stream(stream, ExpectedVersion::Exact(offset), batch).await?;
    }
    Ok(())
}

/// Appends 100-event batches from 10 writers to fresh streams until `$all` holds `target` events.
pub async fn fill_all(bench: &Bench, target: u64) -> Result<()> {
    const WRITERS: u64 = 10;
    let head = bench.store.stream_info(ALL).await?.stream_version;
    let missing = target.saturating_sub(head);
    let per_writer = missing.div_ceil(WRITERS * 100) * 100;
    let writers: Vec<_> = (0..WRITERS)
        .map(|_| {
            let (_, stream) = bench.fresh_stream();
            let (store, first) = (bench.store.clone(), bench.payloads(per_writer));
            tokio::spawn(async move {
                for offset in (0..per_writer).step_by(100) {
                    store
                        .append_to_stream(&stream, ExpectedVersion::Exact(offset), events(first + offset, 100))
                        .await?;
                }
                Ok::<_, BoxError>(())
            })
        })
        .collect();
    for writer in writers {
        writer.await??;
    }
    Ok(())
}

/// `readers` tasks each reading the whole `size`-event `stream` `reads` times; each read timed.
async fn stream_reads(bench: &Bench, stream: &str, size: u64, readers: usize, reads: usize) -> Result<Measured> {
    let stream: Arc<str> = stream.into();
    let store = bench.store.clone();
    timed_readers(readers, reads, move || {
        let (store, stream) = (store.clone(), Arc::clone(&stream));
        async move { Ok(store.read_stream_forward(&stream, 1, size).await?.len() as u64) }
    })
    .await
}

async fn stream_reads_raw(bench: &Bench, stream_id: i64, size: u64, readers: usize, reads: usize) -> Result<Measured> {
    let sql: Arc<str> = format!(
        "SELECT {COLUMNS} FROM {} WHERE stream_id = $1 AND stream_version >= 1 ORDER BY stream_version LIMIT $2",
        bench.store_table("events")
    )
    .into();
    let pool = bench.pool.clone();
    timed_readers(readers, reads, move || {
        let (pool, sql) = (pool.clone(), Arc::clone(&sql));
        async move {
            let rows: Vec<RawRow> = sqlx::query_as(&sql).bind(stream_id).bind(size as i64).fetch_all(&pool).await?;
            Ok(rows.len() as u64)
        }
    })
    .await
}

/// Runs `readers` tasks making `reads` timed calls of `read` each.
async fn timed_readers<F, Fut>(readers: usize, reads: usize, read: F) -> Result<Measured>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<u64>> + Send + 'static,
{
    let op: Op = Arc::new(move |_, _| Box::pin(read()));
    Workers { tasks: readers, per_task: reads, op }.run().await
}

/// `$all` from the start as a lazy stream of events, `count` of them; each page timed.
async fn all_streamed(bench: &Bench, count: u64) -> Result<Measured> {
    let started = Instant::now();
    let mut measured = Measured::default();
    let mut all = pin!(bench.store.stream_all_forward(0, PAGE).take(count as usize).try_chunks(PAGE as usize));
    let mut page_started = Instant::now();
    while let Some(page) = all.try_next().await.map_err(|e| e.1)? {
        measured.events += page.len() as u64;
        measured.latencies.push(page_started.elapsed());
        page_started = Instant::now();
    }
    measured.elapsed = started.elapsed();
    Ok(measured)
}

async fn all_raw(bench: &Bench, count: u64) -> Result<Measured> {
    let sql = format!(
        "SELECT {COLUMNS} FROM {} WHERE position >= $1 ORDER BY position LIMIT $2",
        bench.store_table("events")
    );
    let mut conn = bench.pool.acquire().await?;
    let started = Instant::now();
    let mut measured = Measured::default();
    let mut from = 1;
    while measured.events < count {
        let page_started = Instant::now();
        let limit = PAGE.min(count - measured.events) as i64;
        let rows: Vec<RawRow> = sqlx::query_as(&sql).bind(from).bind(limit).fetch_all(&mut *conn).await?;
        let Some(last) = rows.last() else { break };
        from = last.0 + 1;
        measured.events += rows.len() as u64;
        measured.latencies.push(page_started.elapsed());
    }
    measured.elapsed = started.elapsed();
    Ok(measured)
}
