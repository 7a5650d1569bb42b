//! Categories and filters, on both backends, in a store of at least 1,000,000 events (100,000
//! with `--quick`; the earlier workloads left them) where one category, `target`, holds 1% of
//! them (100 streams `target-…`):
//!
//! - **category read**: `$ce-target` streamed in 1,000-event pages, against the same number of
//!   events read as one stream (chronik against chronik; three rounds each, alternating which
//!   goes first): an index read should cost what a stream read costs, not what reading `$all`
//!   costs.
//! - **category catch-up**: a named subscription on `$ce-target` catching up from its origin,
//!   against one on that one stream.
//! - **filtered catch-up**: a named `$all` subscription with `EventFilter::stream_prefix(["target-"])`
//!   catching up over the whole store, against raw: one `SELECT` of the very rows it delivers,
//!   with the same condition, in 1,000-row pages by position (the database's own filtering).
//!
//! Rates count the category's events (those delivered), not the positions passed over.

use std::time::{Duration, Instant};

use chronik::{ALL, EventFilter, ExpectedVersion, SubscriptionMessage, SubscriptionOptions};
use futures::TryStreamExt;

use crate::measure::{Backend, Group, Measured, Row};
use crate::payload::{COLUMNS, PAGE, RawRow, append_backlog, events};
use crate::{Bench, BoxError, Result};

/// The store's size the workloads want (a tenth with `--quick`).
const STORE: u64 = 1_000_000;
/// Streams of the `target` category; each holds a hundredth of the category.
const STREAMS: u64 = 100;
/// Rounds of the reads and catch-ups, alternating which side goes first.
const ROUNDS: usize = 3;

pub fn steps(_backend: Backend) -> usize {
    4
}

pub async fn run(bench: &Bench) -> Result<Vec<Row>> {
    bench.step("categories: a store with a 1% category");
    let wanted = if bench.quick { STORE / 10 } else { STORE };
    let head = bench.store.stream_info(ALL).await?.stream_version;
    if head < wanted {
        append_backlog(bench, wanted - head).await?;
    }
    let size = bench.store.stream_info(ALL).await?.stream_version;
    let category = size / 100;
    let per_stream = category / STREAMS;
    let first = bench.payloads(2 * category);
    for s in 0..STREAMS {
        let batch = events(first + s * per_stream, per_stream);
        bench.store.append_to_stream(&format!("target-{s}"), ExpectedVersion::NoStream, batch).await?;
    }
    let single = format!("single-{}", uuid::Uuid::new_v4().simple());
    for chunk in 0..STREAMS {
        let batch = events(first + category + chunk * per_stream, per_stream);
        bench.store.append_to_stream(&single, ExpectedVersion::Any, batch).await?;
    }
    let count = STREAMS * per_stream;
    let mut rows = Vec::new();

    let name = format!("read $ce-target ({count} events, 1% of {size}), 1,000-event pages");
    bench.step(&name);
    let (mut index, mut stream) = (Measured::default(), Measured::default());
    for round in 0..ROUNDS {
        // Alternating which goes first, so a cold cache hits both alike.
        if round % 2 == 0 {
            index.add(read_whole(bench, "$ce-target").await?);
            stream.add(read_whole(bench, &single).await?);
        } else {
            stream.add(read_whole(bench, &single).await?);
            index.add(read_whole(bench, "$ce-target").await?);
        }
    }
    rows.push(Row::compared(Group::Categories, name, index, "the same number read as one stream", stream));

    let name = format!("catch-up of $ce-target ({count} events), 1 subscription");
    bench.step(&name);
    let (mut index, mut stream) = (Measured::default(), Measured::default());
    for round in 0..ROUNDS {
        let plain = SubscriptionOptions::default;
        if round % 2 == 0 {
            index.add(catch_up(bench, "$ce-target", plain(), count).await?);
            stream.add(catch_up(bench, &single, plain(), count).await?);
        } else {
            stream.add(catch_up(bench, &single, plain(), count).await?);
            index.add(catch_up(bench, "$ce-target", plain(), count).await?);
        }
    }
    rows.push(Row::compared(Group::Categories, name, index, "catch-up of one stream as long", stream));

    let name = format!("filtered $all catch-up, stream prefix matching 1% of {size}");
    bench.step(&name);
    let options = SubscriptionOptions::default().filter(EventFilter::stream_prefix(["target-"]));
    let filtered = catch_up(bench, ALL, options, count).await?;
    let raw = raw_filtered(bench, size + count).await?;
    let baseline = "paged SELECT of the same rows, same condition";
    rows.push(Row::compared(Group::Categories, name, filtered, baseline, raw));
    Ok(rows)
}

fn options() -> SubscriptionOptions {
    SubscriptionOptions::default().buffer_size(1_000).checkpoint_threshold(1_000).max_size(1_000)
}

/// Every event of `stream`, in pages of 1,000; one latency per page is not kept.
async fn read_whole(bench: &Bench, stream: &str) -> Result<Measured> {
    let started = Instant::now();
    let events: Vec<_> = bench.store.stream_forward(stream, 0, PAGE as u64).try_collect().await?;
    Ok(Measured { events: events.len() as u64, elapsed: started.elapsed(), latencies: Vec::new(), cpu: None })
}

/// A named subscription on `stream` from its origin until it delivered `count` events; one
/// latency per batch.
async fn catch_up(bench: &Bench, stream: &str, extra: SubscriptionOptions, count: u64) -> Result<Measured> {
    let name = format!("bench-index-{}", uuid::Uuid::new_v4().simple());
    let mut options = options();
    options.filter = extra.filter;
    let started = Instant::now();
    let mut sub = match stream {
        ALL => bench.store.subscribe_to_all_streams(&name, options).await?,
        _ => bench.store.subscribe_to_stream(stream, &name, options).await?,
    };
    let (mut received, mut latencies, mut mark) = (0, Vec::new(), Instant::now());
    while received < count {
        let message = tokio::time::timeout(Duration::from_secs(60), sub.recv()).await;
        match message.map_err(|_| format!("{stream}: no message for 60 s"))? {
            Some(SubscriptionMessage::Events(batch)) => {
                received += batch.len() as u64;
                sub.ack(&batch).await?;
                latencies.push(mark.elapsed());
                mark = Instant::now();
            }
            Some(SubscriptionMessage::Dropped(reason)) => return Err(format!("{stream}: dropped: {reason}").into()),
            Some(_) => {}
            None => return Err(BoxError::from(format!("{stream}: the subscription ended"))),
        }
    }
    let elapsed = started.elapsed();
    sub.unsubscribe().await?;
    Ok(Measured { events: received, elapsed, latencies, cpu: None })
}

/// The rows of the `target` category read raw with the filter's condition, in 1,000-row pages
/// by position up to `head`, every column decoded.
async fn raw_filtered(bench: &Bench, head: u64) -> Result<Measured> {
    let table = bench.store_table("events");
    let condition = match bench.backend() {
        Backend::Postgres => "starts_with(stream_uuid, 'target-')",
        Backend::Sqlite => "substr(stream_uuid, 1, 7) = 'target-'",
    };
    let sql = format!("SELECT {COLUMNS} FROM {table} WHERE position >= $1 AND {condition} ORDER BY position LIMIT $2");
    let started = Instant::now();
    let (mut from, mut read) = (1_i64, 0_u64);
    loop {
        let rows: Vec<RawRow> = match &bench.raw {
            crate::payload::Raw::Postgres { pool, .. } => {
                sqlx::query_as(&sql).bind(from).bind(PAGE).fetch_all(pool).await?
            }
            crate::payload::Raw::Sqlite(raw) => {
                sqlx::query_as(&sql).bind(from).bind(PAGE).fetch_all(&raw.readers).await?
            }
        };
        read += rows.len() as u64;
        match rows.last() {
            Some(last) if rows.len() as i64 == PAGE && (last.0 as u64) < head => from = last.0 + 1,
            _ => break,
        }
    }
    Ok(Measured { events: read, elapsed: started.elapsed(), latencies: Vec::new(), cpu: None })
}
