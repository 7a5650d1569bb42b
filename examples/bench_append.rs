//! Append throughput of chronik against raw PostgreSQL inserts, measured in the same run.
//!
//! ```text
//! cargo run --release --example bench_append            # full run (a few seconds)
//! cargo run --release --example bench_append -- --quick # smaller counts
//! ```
//!
//! The database is `CHRONIK_DATABASE_URL` (then `DATABASE_URL`), by default
//! `postgres://postgres@127.0.0.1:5432/postgres`. Everything happens in two scratch schemas,
//! `bench_<uuid>` (the chronik store) and `bench_<uuid>_raw` (the baseline table), which are
//! dropped at the end, also when the benchmark fails.
//!
//! Workloads (see PERFORMANCE.md for the targets):
//! - **(a)** 1 writer appending 100-event batches to a handful of streams (`ExpectedVersion::Any`),
//!   against **(a-raw)**: 1 connection sending one autocommitted 100-row
//!   `INSERT … SELECT * FROM UNNEST(arrays)` per batch;
//! - **(b)** 100 tasks each appending 1 event per call to its own stream, against **(b-raw)**:
//!   100 tasks over a 32-connection pool, one autocommitted one-row `INSERT` per event.
//!
//! The raw table has the same columns, types, primary key and unique indexes as chronik's
//! `events` table; payloads are byte-for-byte the same. Each workload is warmed up before it is
//! timed. Figures move from run to run; the ratios within one run are what to compare.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use chronik::{Config, EventData, EventStore, ExpectedVersion};
use comfy_table::presets::UTF8_FULL;
use comfy_table::{CellAlignment, Table};
use serde::Serialize;
use sqlx::Connection;
use sqlx::postgres::{PgConnection, PgPool, PgPoolOptions};
use tracing_subscriber::EnvFilter;
use uuid::Uuid;

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Result<T, E = BoxError> = std::result::Result<T, E>;

/// Events per append call in workload (a).
const BATCH: usize = 100;
/// Streams workload (a) cycles through.
const A_STREAMS: usize = 4;
/// Concurrent writers in workload (b).
const B_TASKS: usize = 100;
/// Connections of the raw pool in workload (b-raw).
const RAW_POOL: u32 = 32;
/// Connections of chronik's pool.
const CHRONIK_POOL: u32 = 8;

const EVENT_TYPE: &str = "MoneyDeposited";
const CONTENT_TYPE: &str = "application/json";

/// How much work each workload does.
#[derive(Debug, Clone, Copy)]
struct Sizes {
    a_warmup: usize,
    a_appends: usize,
    b_warmup_per_task: usize,
    b_per_task: usize,
}

impl Sizes {
    fn new(quick: bool) -> Sizes {
        if quick {
            Sizes { a_warmup: 5, a_appends: 50, b_warmup_per_task: 3, b_per_task: 30 }
        } else {
            Sizes { a_warmup: 20, a_appends: 300, b_warmup_per_task: 10, b_per_task: 200 }
        }
    }
}

/// The payload of one event: JSON of about 100 bytes.
#[derive(Serialize)]
struct Deposit<'a> {
    account: String,
    amount: u64,
    note: &'a str,
}

/// The `n`th event's data and metadata, as JSON bytes (identical for chronik and raw).
fn payload(n: u64) -> (Vec<u8>, Vec<u8>) {
    let data = Deposit {
        account: format!("acc-{}", n % 1_000),
        amount: n % 10_000,
        note: "monthly salary, transferred by standing order",
    };
    let data = serde_json::to_vec(&data).expect("a struct of strings and numbers serializes");
    let metadata = format!(r#"{{"user":"u-{}","source":"bench"}}"#, n % 50).into_bytes();
    (data, metadata)
}

fn chronik_event(n: u64) -> EventData {
    let (data, metadata) = payload(n);
    EventData::from_bytes(EVENT_TYPE, CONTENT_TYPE, data).with_metadata_bytes(metadata)
}

/// What a timed workload produced (summed over rounds).
#[derive(Default)]
struct Measured {
    events: usize,
    elapsed: Duration,
    /// Duration of every append call (chronik) or INSERT statement (raw).
    latencies: Vec<Duration>,
}

impl Measured {
    fn add(&mut self, other: Measured) {
        self.events += other.events;
        self.elapsed += other.elapsed;
        self.latencies.extend(other.latencies);
    }

    fn rate(&self) -> f64 {
        self.events as f64 / self.elapsed.as_secs_f64()
    }

    /// Nearest-rank percentile of the per-call latencies, in milliseconds.
    fn percentile_ms(&self, q: f64) -> f64 {
        let mut sorted = self.latencies.clone();
        sorted.sort_unstable();
        if sorted.is_empty() {
            return 0.0;
        }
        let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
        sorted[rank - 1].as_secs_f64() * 1_000.0
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn")))
        .with_writer(std::io::stderr)
        .init();

    let quick = std::env::args().skip(1).any(|a| a == "--quick");
    let sizes = Sizes::new(quick);
    let schema = format!("bench_{}", Uuid::new_v4().simple());
    let raw_schema = format!("{schema}_raw");
    let config = Config::from_env().schema(schema.as_str()).pool_size(CHRONIK_POOL);

    let raw_pool = PgPoolOptions::new().max_connections(RAW_POOL).connect(&config.database_url).await?;
    let server: String = sqlx::query_scalar("SHOW server_version").fetch_one(&raw_pool).await?;
    println!(
        "bench_append ({}): PostgreSQL {server}, chronik schema {schema} (pool {CHRONIK_POOL}), raw schema {raw_schema}",
        if quick { "quick" } else { "full" }
    );

    let outcome = run(&config, &raw_pool, &raw_schema, sizes).await;

    // Clean up whatever happened above.
    if let Err(e) = chronik::admin::drop(&config).await {
        eprintln!("could not drop the bench store {schema}: {e}");
    }
    if let Err(e) = sqlx::query(&format!("DROP SCHEMA IF EXISTS {raw_schema} CASCADE")).execute(&raw_pool).await {
        eprintln!("could not drop the raw schema {raw_schema}: {e}");
    }
    raw_pool.close().await;
    outcome
}

/// Timed work is split into rounds that alternate chronik and raw, so load that drifts during
/// the run (other processes, checkpoints) hits both sides alike.
const ROUNDS: usize = 3;

async fn run(config: &Config, raw_pool: &PgPool, raw_schema: &str, sizes: Sizes) -> Result<()> {
    let store = EventStore::start(config.clone()).await?;
    create_raw_table(raw_pool, raw_schema, &config.schema).await?;
    let mut conn = PgConnection::connect(&config.database_url).await?;
    let mut bench = Bench {
        store: &store,
        raw_table: format!("{raw_schema}.events"),
        positions: Arc::new(AtomicI64::new(0)),
        seq: 0,
        next_stream: 0,
    };

    // (a) 1 writer, 100-event appends.
    eprintln!("(a) 1 writer x {BATCH}-event appends: {} appends per side, {ROUNDS} rounds", sizes.a_appends);
    bench.raw_batched(&mut conn, sizes.a_warmup).await?;
    bench.chronik_batched(sizes.a_warmup).await?;
    let (mut a, mut a_raw) = (Measured::default(), Measured::default());
    for round in 0..ROUNDS {
        let appends = share(sizes.a_appends, round);
        if round % 2 == 0 {
            a_raw.add(bench.raw_batched(&mut conn, appends).await?);
            a.add(bench.chronik_batched(appends).await?);
        } else {
            a.add(bench.chronik_batched(appends).await?);
            a_raw.add(bench.raw_batched(&mut conn, appends).await?);
        }
    }
    conn.close().await?;

    // (b) 100 writers, 1-event appends.
    eprintln!(
        "(b) {B_TASKS} writers x 1-event appends: {} appends per writer and side, {ROUNDS} rounds",
        sizes.b_per_task
    );
    bench.raw_single(raw_pool, sizes.b_warmup_per_task).await?;
    bench.chronik_single(sizes.b_warmup_per_task).await?;
    let (mut b, mut b_raw) = (Measured::default(), Measured::default());
    for round in 0..ROUNDS {
        let per_task = share(sizes.b_per_task, round);
        if round % 2 == 0 {
            b_raw.add(bench.raw_single(raw_pool, per_task).await?);
            b.add(bench.chronik_single(per_task).await?);
        } else {
            b.add(bench.chronik_single(per_task).await?);
            b_raw.add(bench.raw_single(raw_pool, per_task).await?);
        }
    }

    store.shutdown().await?;
    print_report(&a, &a_raw, &b, &b_raw);
    print_scan_stats(raw_pool, &config.schema).await?;
    Ok(())
}

/// Sequential scans of chronik's `events` table during the run. Appends look event ids up by
/// index, so after the first few (tiny-table) batches this should stay flat; millions of rows
/// read here mean a cached query plan scans the whole table on every append.
async fn print_scan_stats(pool: &PgPool, schema: &str) -> Result<()> {
    // The store's backends report their statistics when they exit, just after shutdown.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let stats: Option<(i64, i64)> = sqlx::query_as(
        "SELECT seq_scan, seq_tup_read FROM pg_stat_user_tables WHERE schemaname = $1 AND relname = 'events'",
    )
    .bind(schema)
    .fetch_optional(pool)
    .await?;
    if let Some((scans, rows)) = stats {
        println!("chronik `events` table during the run: {scans} sequential scans reading {rows} rows in total");
    }
    Ok(())
}

/// Round `round`'s part of `total` (the parts add up to `total`).
fn share(total: usize, round: usize) -> usize {
    total / ROUNDS + usize::from(round < total % ROUNDS)
}

/// The baseline table: a copy of chronik's `events` table in `chronik_schema` (columns, types,
/// defaults, constraints, primary key and unique indexes; not its triggers, which only fire on
/// UPDATE and DELETE anyway), so the shape cannot drift from the migrations.
async fn create_raw_table(pool: &PgPool, schema: &str, chronik_schema: &str) -> Result<()> {
    sqlx::query(&format!("CREATE SCHEMA {schema}")).execute(pool).await?;
    sqlx::query(&format!("CREATE TABLE {schema}.events (LIKE {chronik_schema}.events INCLUDING ALL)"))
        .execute(pool)
        .await?;
    Ok(())
}

/// Shared state of the workloads.
struct Bench<'a> {
    store: &'a EventStore,
    /// `<raw schema>.events`.
    raw_table: String,
    /// Global positions handed out in the raw table.
    positions: Arc<AtomicI64>,
    /// Payload numbers.
    seq: u64,
    /// Stream numbers: every workload call writes to fresh streams.
    next_stream: i64,
}

impl Bench<'_> {
    /// `count` fresh stream numbers.
    fn fresh_streams(&mut self, count: usize) -> std::ops::Range<i64> {
        let first = self.next_stream + 1;
        self.next_stream += count as i64;
        first..self.next_stream + 1
    }

    fn next_payload(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// (a): `appends` calls of [`BATCH`] events, cycling through [`A_STREAMS`] streams.
    async fn chronik_batched(&mut self, appends: usize) -> Result<Measured> {
        let streams: Vec<String> = self.fresh_streams(A_STREAMS).map(stream_name).collect();
        let mut latencies = Vec::with_capacity(appends);
        let started = Instant::now();
        for i in 0..appends {
            let events: Vec<EventData> = (0..BATCH).map(|_| chronik_event(self.next_payload())).collect();
            let call = Instant::now();
            self.store.append_to_stream(&streams[i % A_STREAMS], ExpectedVersion::Any, events).await?;
            latencies.push(call.elapsed());
        }
        Ok(Measured { events: appends * BATCH, elapsed: started.elapsed(), latencies })
    }

    /// (a-raw): `statements` autocommitted 100-row `INSERT … SELECT * FROM UNNEST(…)` on one
    /// connection, cycling through [`A_STREAMS`] streams like (a).
    async fn raw_batched(&mut self, conn: &mut PgConnection, statements: usize) -> Result<Measured> {
        let sql = format!(
            "INSERT INTO {} (position, event_id, stream_id, stream_uuid, stream_version, event_type, \
             content_type, correlation_id, causation_id, data, metadata) \
             SELECT * FROM UNNEST($1::bigint[], $2::uuid[], $3::bigint[], $4::text[], $5::bigint[], \
             $6::text[], $7::text[], $8::uuid[], $9::uuid[], $10::bytea[], $11::bytea[])",
            self.raw_table
        );
        let streams: Vec<i64> = self.fresh_streams(A_STREAMS).collect();
        let mut versions = [0_i64; A_STREAMS];
        let mut latencies = Vec::with_capacity(statements);
        let started = Instant::now();
        for i in 0..statements {
            let slot = i % A_STREAMS;
            let mut rows = Rows::default();
            for _ in 0..BATCH {
                versions[slot] += 1;
                let (data, metadata) = payload(self.next_payload());
                rows.position.push(self.positions.fetch_add(1, Ordering::Relaxed) + 1);
                rows.event_id.push(Uuid::new_v4());
                rows.stream_id.push(streams[slot]);
                rows.stream_uuid.push(stream_name(streams[slot]));
                rows.stream_version.push(versions[slot]);
                rows.event_type.push(EVENT_TYPE);
                rows.content_type.push(CONTENT_TYPE);
                rows.correlation_id.push(None);
                rows.causation_id.push(None);
                rows.data.push(data);
                rows.metadata.push(Some(metadata));
            }
            let call = Instant::now();
            sqlx::query(&sql)
                .bind(&rows.position)
                .bind(&rows.event_id)
                .bind(&rows.stream_id)
                .bind(&rows.stream_uuid)
                .bind(&rows.stream_version)
                .bind(&rows.event_type)
                .bind(&rows.content_type)
                .bind(&rows.correlation_id)
                .bind(&rows.causation_id)
                .bind(&rows.data)
                .bind(&rows.metadata)
                .execute(&mut *conn)
                .await?;
            latencies.push(call.elapsed());
        }
        Ok(Measured { events: statements * BATCH, elapsed: started.elapsed(), latencies })
    }

    /// (b): [`B_TASKS`] tasks, each appending `per_task` single events to its own stream.
    async fn chronik_single(&mut self, per_task: usize) -> Result<Measured> {
        let store = self.store.clone();
        // Appended with `Any`: the version argument only numbers the raw rows.
        self.single_event_writers(per_task, move |stream, _version, payload_no| {
            let store = store.clone();
            async move {
                let event = chronik_event(payload_no);
                store.append_to_stream(&stream_name(stream), ExpectedVersion::Any, vec![event]).await?;
                Ok(())
            }
        })
        .await
    }

    /// (b-raw): [`B_TASKS`] tasks over the pool, each inserting `per_task` rows of its own
    /// stream, one autocommitted one-row INSERT each.
    async fn raw_single(&mut self, pool: &PgPool, per_task: usize) -> Result<Measured> {
        let sql: Arc<str> = format!(
            "INSERT INTO {} (position, event_id, stream_id, stream_uuid, stream_version, event_type, \
             content_type, correlation_id, causation_id, data, metadata) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            self.raw_table
        )
        .into();
        let (pool, positions) = (pool.clone(), Arc::clone(&self.positions));
        self.single_event_writers(per_task, move |stream, version, payload_no| {
            let (pool, sql, positions) = (pool.clone(), Arc::clone(&sql), Arc::clone(&positions));
            async move {
                let (data, metadata) = payload(payload_no);
                sqlx::query(&sql)
                    .bind(positions.fetch_add(1, Ordering::Relaxed) + 1)
                    .bind(Uuid::new_v4())
                    .bind(stream)
                    .bind(stream_name(stream))
                    .bind(version)
                    .bind(EVENT_TYPE)
                    .bind(CONTENT_TYPE)
                    .bind(None::<Uuid>)
                    .bind(None::<Uuid>)
                    .bind(data)
                    .bind(Some(metadata))
                    .execute(&pool)
                    .await?;
                Ok(())
            }
        })
        .await
    }

    /// Runs [`B_TASKS`] tasks, each making `per_task` calls of `write(stream, version,
    /// payload number)` for its own fresh stream, and times every call.
    async fn single_event_writers<F, Fut>(&mut self, per_task: usize, write: F) -> Result<Measured>
    where
        F: Fn(i64, i64, u64) -> Fut + Clone + Send + 'static,
        Fut: Future<Output = Result<()>> + Send,
    {
        let streams = self.fresh_streams(B_TASKS);
        let first_payload = self.seq;
        self.seq += (B_TASKS * per_task) as u64;
        let started = Instant::now();
        let tasks: Vec<_> = streams
            .enumerate()
            .map(|(task, stream)| {
                let write = write.clone();
                tokio::spawn(async move {
                    let mut latencies = Vec::with_capacity(per_task);
                    for i in 0..per_task {
                        let call = Instant::now();
                        write(stream, i as i64 + 1, first_payload + (task * per_task + i) as u64).await?;
                        latencies.push(call.elapsed());
                    }
                    Ok::<_, BoxError>(latencies)
                })
            })
            .collect();
        let mut latencies = Vec::with_capacity(B_TASKS * per_task);
        for task in tasks {
            latencies.extend(task.await??);
        }
        Ok(Measured { events: B_TASKS * per_task, elapsed: started.elapsed(), latencies })
    }
}

/// The name of stream number `n` (the raw table's `stream_id` is `n`).
fn stream_name(n: i64) -> String {
    format!("account-{n}")
}

/// Column arrays of one raw batch.
#[derive(Default)]
struct Rows {
    position: Vec<i64>,
    event_id: Vec<Uuid>,
    stream_id: Vec<i64>,
    stream_uuid: Vec<String>,
    stream_version: Vec<i64>,
    event_type: Vec<&'static str>,
    content_type: Vec<&'static str>,
    correlation_id: Vec<Option<Uuid>>,
    causation_id: Vec<Option<Uuid>>,
    data: Vec<Vec<u8>>,
    metadata: Vec<Option<Vec<u8>>>,
}

fn print_report(a: &Measured, a_raw: &Measured, b: &Measured, b_raw: &Measured) {
    let mut table = Table::new();
    table.load_preset(UTF8_FULL).set_header(vec![
        "workload",
        "events",
        "seconds",
        "events/s",
        "raw events/s",
        "ratio",
        "target",
        "p50 ms/call",
        "p99 ms/call",
    ]);
    let row = |name: &str, m: &Measured, raw: Option<(&Measured, f64)>| {
        let (raw_rate, ratio, target) = match raw {
            Some((r, target)) => {
                let ratio = m.rate() / r.rate();
                let verdict = if ratio >= target { "met" } else { "MISSED" };
                (format!("{:.0}", r.rate()), format!("{ratio:.2}x"), format!(">= {target:.1}x {verdict}"))
            }
            None => ("-".into(), "-".into(), "-".into()),
        };
        vec![
            name.to_string(),
            m.events.to_string(),
            format!("{:.3}", m.elapsed.as_secs_f64()),
            format!("{:.0}", m.rate()),
            raw_rate,
            ratio,
            target,
            format!("{:.2}", m.percentile_ms(0.50)),
            format!("{:.2}", m.percentile_ms(0.99)),
        ]
    };
    table.add_row(row(&format!("(a) chronik, 1 writer x {BATCH}-event appends"), a, Some((a_raw, 0.5))));
    table.add_row(row(&format!("(a-raw) 1 conn x {BATCH}-row UNNEST INSERT"), a_raw, None));
    table.add_row(row(&format!("(b) chronik, {B_TASKS} writers x 1-event appends"), b, Some((b_raw, 3.0))));
    table.add_row(row(&format!("(b-raw) {B_TASKS} tasks/{RAW_POOL} conns x 1-row INSERT"), b_raw, None));
    for column in 1..=8 {
        if let Some(c) = table.column_mut(column) {
            c.set_cell_alignment(CellAlignment::Right);
        }
    }
    println!("{table}");
    println!(
        "(b) chronik vs the batched raw rate (a-raw), the physical ceiling for many single-event writers: {:.2}x",
        b.rate() / a_raw.rate()
    );
    println!("targets (PERFORMANCE.md): (a) >= 0.5x raw batched; (b) >= 3x raw one-row-per-transaction");
}
