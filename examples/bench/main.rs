//! chronik's benchmark suite: appends, reads, subscriptions and memory, each next to a raw
//! PostgreSQL baseline of the same shape measured in the same run, plus the workload shapes of
//! the Elixir EventStore's published benchmark in µs/op.
//!
//! ```text
//! cargo run --release --example bench                           # the whole suite (several minutes)
//! cargo run --release --example bench -- --quick                # a short version (under a minute)
//! cargo run --release --example bench -- --json bench.json --chart docs/bench.svg
//! ```
//!
//! The database is `CHRONIK_DATABASE_URL` (then `DATABASE_URL`), by default
//! `postgres://postgres@127.0.0.1:5432/postgres`. Everything happens in two scratch schemas,
//! `bench_<uuid>` (the store) and `bench_<uuid>_raw` (the baselines' tables), dropped at the
//! end, also when a workload fails.
//!
//! Baselines: appends are timed against the same rows inserted into a copy of chronik's
//! `events` table (same columns, keys and indexes) with plain `INSERT`s, one statement per
//! append; reads against plain `SELECT`s of the very rows chronik reads. Absolute figures move
//! from run to run on a shared machine; the ratios within one run are what to compare.

mod append;
mod elixir;
mod measure;
mod memory;
mod payload;
mod read;
mod report;
mod subscribe;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use chronik::{Config, EventStore};
use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use sqlx::postgres::{PgPool, PgPoolOptions};
use tracing_subscriber::EnvFilter;
use uuid::Uuid;

use measure::Row;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
pub type Result<T, E = BoxError> = std::result::Result<T, E>;

/// Connections of chronik's pool and of the baselines' pool: the same, so concurrent readers
/// get the same parallelism on both sides (together well under the server's 100).
pub const POOL: u32 = 32;

#[derive(Parser)]
#[command(about = "chronik's benchmark suite, against raw PostgreSQL in the same run")]
struct Args {
    /// A short run (under a minute), for a smoke test.
    #[arg(long)]
    quick: bool,
    /// Also write the figures as JSON to this file.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Also draw throughput by concurrency, chronik and raw, as an SVG chart to this file.
    #[arg(long, value_name = "FILE")]
    chart: Option<PathBuf>,
}

/// What every workload shares.
pub struct Bench {
    /// The store under test.
    pub store: EventStore,
    pub config: Config,
    /// The baselines' connections.
    pub pool: PgPool,
    /// The schema of the baselines' tables.
    pub raw_schema: String,
    pub quick: bool,
    progress: ProgressBar,
    next_stream: AtomicU64,
    next_payload: AtomicU64,
    /// Global positions handed out in the raw table.
    pub raw_positions: Arc<AtomicI64>,
}

impl Bench {
    /// A stream name no workload used before (its number is the raw table's `stream_id`).
    pub fn fresh_stream(&self) -> (i64, String) {
        let n = self.next_stream.fetch_add(1, Ordering::Relaxed) + 1;
        (n as i64, format!("account-{n}"))
    }

    /// The first of `count` payload numbers no workload used before.
    pub fn payloads(&self, count: u64) -> u64 {
        self.next_payload.fetch_add(count, Ordering::Relaxed) + 1
    }

    /// The raw copy of chronik's `events` table.
    pub fn raw_table(&self) -> String {
        format!("{}.events", self.raw_schema)
    }

    /// The store's own `events` table, read by the read baselines.
    pub fn store_table(&self, table: &str) -> String {
        format!("{}.{table}", self.config.schema)
    }

    /// Says which workload runs now.
    pub fn step(&self, what: &str) {
        self.progress.set_message(what.to_string());
        self.progress.inc(1);
    }

    /// Prints a line above the progress bar.
    pub fn say(&self, line: &str) {
        self.progress.println(line);
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn")))
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let schema = format!("bench_{}", Uuid::new_v4().simple());
    let raw_schema = format!("{schema}_raw");
    let config = Config::from_env().schema(schema.as_str()).pool_size(POOL);
    let pool = PgPoolOptions::new().max_connections(POOL).connect(&config.database_url).await?;
    let server: String = sqlx::query_scalar("SHOW server_version").fetch_one(&pool).await?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "chronik benchmark ({}): {cores} cores, PostgreSQL {server}; store schema {schema}, baselines in {raw_schema}",
        if args.quick { "quick" } else { "full" }
    );

    let outcome = run(&args, &config, &pool, &raw_schema).await;

    // Clean up whatever happened above.
    if let Err(e) = chronik::admin::drop(&config).await {
        eprintln!("could not drop the bench store {schema}: {e}");
    }
    if let Err(e) = sqlx::query(&format!("DROP SCHEMA IF EXISTS {raw_schema} CASCADE")).execute(&pool).await {
        eprintln!("could not drop the raw schema {raw_schema}: {e}");
    }
    pool.close().await;
    let rows = outcome?;
    report::print(&rows);
    if let Some(path) = &args.json {
        report::write_json(&rows, path, args.quick)?;
        println!("figures written to {}", path.display());
    }
    if let Some(path) = &args.chart {
        report::write_chart(&rows, path)?;
        println!("chart written to {}", path.display());
    }
    Ok(())
}

async fn run(args: &Args, config: &Config, pool: &PgPool, raw_schema: &str) -> Result<Vec<Row>> {
    let store = EventStore::start(config.clone()).await?;
    sqlx::query(&format!("CREATE SCHEMA {raw_schema}")).execute(pool).await?;
    // A copy of chronik's `events` table: columns, types, defaults, constraints, primary key and
    // unique indexes (not its triggers, which only fire on UPDATE and DELETE anyway), so the
    // shape cannot drift from the migrations.
    let copy = format!("CREATE TABLE {raw_schema}.events (LIKE {}.events INCLUDING ALL)", config.schema);
    sqlx::query(&copy).execute(pool).await?;

    let progress =
        ProgressBar::new((append::STEPS + read::STEPS + subscribe::STEPS + memory::STEPS + elixir::STEPS) as u64);
    progress.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} {msg}")
            .map_err(|e| format!("progress bar template: {e}"))?
            .progress_chars("=> "),
    );
    let bench = Bench {
        store,
        config: config.clone(),
        pool: pool.clone(),
        raw_schema: raw_schema.to_string(),
        quick: args.quick,
        progress,
        next_stream: AtomicU64::new(0),
        next_payload: AtomicU64::new(0),
        raw_positions: Arc::new(AtomicI64::new(0)),
    };
    // Memory first, while the process holds nothing else: its figures are the process's RSS.
    let mut rows = memory::run(&bench).await?;
    rows.extend(append::run(&bench).await?);
    rows.extend(read::run(&bench).await?);
    rows.extend(elixir::run(&bench).await?);
    rows.extend(subscribe::run(&bench).await?);
    bench.progress.finish_and_clear();
    bench.store.shutdown().await?;
    Ok(rows)
}
