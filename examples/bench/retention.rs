//! Retention, on both backends: appends to streams that all carry metadata, and a scavenge of a
//! store of 1,000,000 events (100,000 with `--quick`) in streams of 100 events, each with
//! `max_count` 10, so nine tenths of them are removed.
//!
//! Baselines: for the appends, the same appends to streams without metadata, chronik and
//! chronik alternating over the same rounds (stream metadata must cost appends nothing); for
//! the scavenge, the same rows copied into a raw table with the same keys and indexes (and no
//! triggers), deleted by plain `DELETE`s of the same batch size (one autocommitted statement,
//! or one transaction on SQLite, per batch of streams), by stream id and version.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use std::time::Duration;

use chronik::{ExpectedVersion, ScavengeOptions, StreamMetadata};

use crate::append::{ROUNDS, Workload, alternate, stream_appends};
use crate::measure::{Backend, Group, Measured, Row, Target};
use crate::payload::{Raw, events};
use crate::{Bench, BoxError, Result};

/// Events in the scavenged store (a tenth of it with `--quick`).
const EVENTS: u64 = 1_000_000;
/// Events per stream, and how many of them each stream keeps.
const PER_STREAM: u64 = 100;
const KEEP: u64 = 10;
/// Concurrent writers filling the store.
const WRITERS: u64 = 10;

/// Writers, events per append, and appends per writer over all rounds in a full run, of the
/// appends to streams with metadata.
const APPEND_SHAPES: [(usize, u64, usize); 2] = [(100, 1, 100), (1, 100, 300)];

pub fn steps(_backend: Backend) -> usize {
    APPEND_SHAPES.len() + 1
}

pub async fn run(bench: &Bench) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    for (writers, per_append, appends) in APPEND_SHAPES {
        let appends = if bench.quick { (appends / 5).max(3) } else { appends };
        let name = format!("{writers} writers x {per_append}-event appends, metadata on every stream");
        bench.step(&name);
        // Streams for the warm-up and every round, their metadata set before any is timed.
        let with_metadata = Mutex::new(streams_with_metadata(bench, writers * (ROUNDS + 1)).await?);
        let (chronik, plain) = alternate(bench, appends, |bench, appends| {
            let mut pool = with_metadata.lock().unwrap_or_else(PoisonError::into_inner);
            let at = pool.len().saturating_sub(writers);
            let streams = pool.split_off(at);
            let plain = (0..writers).map(|_| bench.fresh_stream().1).collect();
            Workload {
                chronik: stream_appends(bench, streams, per_append, appends),
                raw: stream_appends(bench, plain, per_append, appends),
            }
        })
        .await?;
        let row = Row::compared(Group::Retention, name, chronik, "the same appends, no metadata", plain)
            .target(Target::RatioAtLeast(0.9));
        rows.push(row);
    }
    rows.push(scavenge(bench).await?);
    Ok(rows)
}

/// `count` fresh streams, each with metadata (a `max_count` it never reaches, a `max_age` and
/// custom JSON), not created yet.
async fn streams_with_metadata(bench: &Bench, count: usize) -> Result<Vec<String>> {
    let metadata = StreamMetadata::default()
        .max_count(1_000_000)
        .max_age(Duration::from_secs(86_400))
        .custom(serde_json::json!({ "owner": "bench" }));
    let mut streams = Vec::with_capacity(count);
    for _ in 0..count {
        let stream = bench.fresh_stream().1;
        bench.store.set_stream_metadata(&stream, ExpectedVersion::NoStream, metadata.clone()).await?;
        streams.push(stream);
    }
    Ok(streams)
}

async fn scavenge(bench: &Bench) -> Result<Row> {
    let total = if bench.quick { EVENTS / 10 } else { EVENTS };
    let streams = total / PER_STREAM;
    let name = format!("scavenge {total} events in {streams} streams, max_count {KEEP}");
    bench.step(&name);
    let ids = fill(bench, streams).await?;
    let raw_table = copy_rows(bench, &ids).await?;
    let batch = ScavengeOptions::DEFAULT_BATCH_SIZE;

    let started = Instant::now();
    let report = bench.store.scavenge_with(ScavengeOptions::default().batch_size(batch)).await?;
    let chronik =
        Measured { events: report.events_removed, elapsed: started.elapsed(), latencies: Vec::new(), cpu: None };
    let expected = streams * (PER_STREAM - KEEP);
    if report.events_removed != expected {
        return Err(format!("the scavenge removed {} events, not {expected}", report.events_removed).into());
    }

    let raw = raw_delete(bench, &raw_table, &ids, batch).await?;
    let baseline = match bench.backend() {
        Backend::Postgres => "DELETE by stream id and version, 1 statement per batch",
        Backend::Sqlite => "DELETE by stream id and version, 1 tx per batch",
    };
    Ok(Row::compared(Group::Retention, name, chronik, baseline, raw))
}

/// `streams` fresh streams of `PER_STREAM` events each, from `WRITERS` writers, each stream
/// then given `max_count` `KEEP`; their ids in the raw tables' numbering (names `account-<id>`).
async fn fill(bench: &Bench, streams: u64) -> Result<Arc<Vec<(i64, String)>>> {
    let names: Arc<Vec<(i64, String)>> = Arc::new((0..streams).map(|_| bench.fresh_stream()).collect());
    let first = bench.payloads(streams * PER_STREAM);
    let next = Arc::new(AtomicU64::new(0));
    let writers: Vec<_> = (0..WRITERS)
        .map(|_| {
            let (store, names, next) = (bench.store.clone(), Arc::clone(&names), Arc::clone(&next));
            tokio::spawn(async move {
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    let Some((_, stream)) = names.get(n as usize) else { return Ok::<_, BoxError>(()) };
                    let batch = events(first + n * PER_STREAM, PER_STREAM);
                    store.append_to_stream(stream, ExpectedVersion::NoStream, batch).await?;
                    let meta = StreamMetadata::default().max_count(KEEP);
                    store.set_stream_metadata(stream, ExpectedVersion::NoStream, meta).await?;
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await??;
    }
    Ok(names)
}

/// Copies the rows of `streams` into a raw table shaped like `events` (keys and indexes, no
/// triggers), numbering their streams by the ids of `streams`; its name.
async fn copy_rows(bench: &Bench, streams: &[(i64, String)]) -> Result<String> {
    let names: Vec<&str> = streams.iter().map(|(_, name)| name.as_str()).collect();
    let ids: Vec<i64> = streams.iter().map(|(id, _)| *id).collect();
    let events = bench.store_table("events");
    match &bench.raw {
        Raw::Postgres { pool, schema } => {
            let table = format!("{schema}.scavenged");
            sqlx::query(&format!("CREATE TABLE {table} (LIKE {events} INCLUDING ALL)")).execute(pool).await?;
            // Through the store's `streams` (by name, then its events by stream id): index lookups.
            let streams_table = bench.store_table("streams");
            let copy = format!(
                "INSERT INTO {table} SELECT e.position, e.event_id, n.id, e.stream_uuid, e.stream_version, \
                     e.event_type, e.content_type, e.correlation_id, e.causation_id, e.data, e.metadata, e.created_at, \
                     e.category, e.category_number, e.type_number \
                 FROM UNNEST($1::text[], $2::bigint[]) AS n(name, id) \
                 JOIN {streams_table} s ON s.stream_uuid = n.name JOIN {events} e ON e.stream_id = s.stream_id"
            );
            sqlx::query(&copy).bind(&names).bind(&ids).execute(pool).await?;
            sqlx::query(&format!("ANALYZE {table}")).execute(pool).await?;
            Ok(table)
        }
        Raw::Sqlite(raw) => raw.copy_events("scavenged", streams).await.map(|()| "scavenged".to_string()),
    }
}

/// Deletes from `table` what the scavenge removed from the store (versions 1..=PER_STREAM-KEEP of
/// each stream), `batch` rows at a time: a batch is the streams whose rows it holds.
async fn raw_delete(bench: &Bench, table: &str, streams: &[(i64, String)], batch: usize) -> Result<Measured> {
    let per_batch = (batch as u64 / (PER_STREAM - KEEP)).max(1) as usize;
    let floor = (PER_STREAM - KEEP + 1) as i64;
    let started = Instant::now();
    let mut removed = 0;
    for chunk in streams.chunks(per_batch) {
        let ids: Vec<i64> = chunk.iter().map(|(id, _)| *id).collect();
        removed += match &bench.raw {
            Raw::Postgres { pool, .. } => {
                let sql = format!("DELETE FROM {table} WHERE stream_id = ANY($1) AND stream_version < $2");
                sqlx::query(&sql).bind(&ids).bind(floor).execute(pool).await?.rows_affected()
            }
            Raw::Sqlite(raw) => raw.delete_below(table, &ids, floor).await?,
        };
    }
    Ok(Measured { events: removed, elapsed: started.elapsed(), latencies: Vec::new(), cpu: None })
}
