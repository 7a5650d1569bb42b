//! chronik's benchmark suite: appends, reads, subscriptions, categories and filters, scavenging
//! and memory, each next to a raw
//! baseline of the same shape on the same database measured in the same run, on PostgreSQL
//! and on SQLite, plus the workload shapes of the Elixir EventStore's published benchmark in
//! µs/op, and (PostgreSQL) `chronik serve` through the KurrentDB client beside the same work in
//! process (`grpc`).
//!
//! ```text
//! cargo run --release --example bench                           # the whole suite (several minutes)
//! cargo run --release --example bench -- --quick                # a short version (about two minutes)
//! cargo run --release --example bench -- --backend sqlite       # one part only: postgres, sqlite, both
//! cargo run --release --example bench -- --json bench.json --chart docs/bench.svg
//! cargo run --release --example bench -- --only appends,grpc   # some sections only
//! ```
//!
//! **PostgreSQL** (every workload): the database is `CHRONIK_DATABASE_URL` (then
//! `DATABASE_URL`) if that is a `postgres://` URL, else `postgres://postgres@127.0.0.1:5432/postgres`.
//! Everything happens in two scratch schemas, `bench_<uuid>` (the store) and `bench_<uuid>_raw`
//! (the baselines' tables), dropped at the end, also when a workload fails.
//!
//! **SQLite** (appends, `$all` read, catch-up of one subscription; no server needed): the store
//! is `store.db` in a scratch directory `chronik-bench-<uuid>` under the system's temporary
//! directory, removed at the end, also when a workload fails. The baselines' table
//! `raw_events` lives in that same file, written and read through plain connections of their
//! own (see `sqlite`). Both sides run with `journal_mode = WAL` and `synchronous = FULL`: a
//! commit is on disk (the WAL synced) before it returns, which is what chronik promises of an
//! `Ok` append; `NORMAL` would be faster on both sides and lose the last commits on a power cut.
//!
//! Baselines: appends are timed against the same rows inserted into a copy of chronik's
//! `events` table (same columns, keys and indexes) with plain `INSERT`s, one statement (one
//! transaction on SQLite) per append; reads against plain `SELECT`s of the very rows chronik
//! reads. Absolute figures move from run to run on a shared machine; the ratios within one run
//! are what to compare.

mod append;
mod elixir;
mod grpc;
mod index;
mod measure;
mod memory;
mod payload;
mod read;
mod report;
mod retention;
mod sqlite;
mod subscribe;
mod telemetry;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use chronik::{Config, EventStore};
use clap::{Parser, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use sqlx::postgres::{PgPool, PgPoolOptions};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use uuid::Uuid;

use measure::{Backend, Row};
use payload::Raw;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
pub type Result<T, E = BoxError> = std::result::Result<T, E>;

/// Connections of chronik's (read) pool and of the baselines' pool: the same, so concurrent
/// readers get the same parallelism on both sides (on PostgreSQL together well under the
/// server's 100).
pub const POOL: u32 = 32;

/// The PostgreSQL part's database unless the environment names a `postgres://` one.
const POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

#[derive(Parser)]
#[command(about = "chronik's benchmark suite, against raw PostgreSQL and raw SQLite in the same run")]
struct Args {
    /// A short run (about two minutes), for a smoke test.
    #[arg(long)]
    quick: bool,
    /// Which part to run: on PostgreSQL, on SQLite, or both (PostgreSQL first).
    #[arg(long, value_enum, default_value_t = Parts::Both)]
    backend: Parts,
    /// Also write the figures as JSON to this file.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Also draw throughput by concurrency, chronik and raw, as an SVG chart to this file.
    #[arg(long, value_name = "FILE")]
    chart: Option<PathBuf>,
    /// Run these sections only (comma-separated; every section by default).
    #[arg(long, value_enum, value_delimiter = ',', value_name = "SECTIONS")]
    only: Vec<Section>,
}

/// The suite's sections, each a module of this example.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Section {
    Memory,
    Appends,
    Reads,
    Elixir,
    Subscriptions,
    Categories,
    Retention,
    Grpc,
    Telemetry,
}

/// What to run: a short or full run, and which sections (a bit per [`Section`]).
#[derive(Clone, Copy)]
pub struct Plan {
    pub quick: bool,
    sections: u16,
}

impl Plan {
    fn new(quick: bool, only: &[Section]) -> Plan {
        let sections = if only.is_empty() { u16::MAX } else { only.iter().fold(0, |bits, &s| bits | 1 << s as u16) };
        Plan { quick, sections }
    }

    /// Whether `section` runs.
    pub fn runs(self, section: Section) -> bool {
        self.sections & 1 << section as u16 != 0
    }
}

/// The parts `--backend` selects.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Parts {
    Postgres,
    Sqlite,
    Both,
}

impl Parts {
    fn backends(self) -> &'static [Backend] {
        match self {
            Parts::Postgres => &[Backend::Postgres],
            Parts::Sqlite => &[Backend::Sqlite],
            Parts::Both => &[Backend::Postgres, Backend::Sqlite],
        }
    }
}

/// What every workload of one part shares.
pub struct Bench {
    /// The store under test.
    pub store: EventStore,
    pub config: Config,
    /// The baselines' connections and table.
    pub raw: Raw,
    pub quick: bool,
    plan: Plan,
    progress: ProgressBar,
    next_stream: AtomicU64,
    next_payload: AtomicU64,
    /// Global positions handed out in the raw table.
    pub raw_positions: Arc<AtomicI64>,
}

impl Bench {
    pub fn new(store: EventStore, config: Config, raw: Raw, plan: Plan, progress: ProgressBar) -> Bench {
        Bench {
            store,
            config,
            raw,
            quick: plan.quick,
            plan,
            progress,
            next_stream: AtomicU64::new(0),
            next_payload: AtomicU64::new(0),
            raw_positions: Arc::new(AtomicI64::new(0)),
        }
    }

    /// The database this part runs on.
    pub fn backend(&self) -> Backend {
        self.raw.backend()
    }

    /// The baselines' pool, for the workloads only the PostgreSQL part runs.
    pub fn postgres(&self) -> Result<&PgPool> {
        match &self.raw {
            Raw::Postgres { pool, .. } => Ok(pool),
            Raw::Sqlite(_) => Err("a PostgreSQL-only workload ran in the SQLite part".into()),
        }
    }

    /// A stream name no workload used before (its number is the raw table's `stream_id`).
    pub fn fresh_stream(&self) -> (i64, String) {
        let n = self.next_stream.fetch_add(1, Ordering::Relaxed) + 1;
        (n as i64, format!("account-{n}"))
    }

    /// The first of `count` payload numbers no workload used before.
    pub fn payloads(&self, count: u64) -> u64 {
        self.next_payload.fetch_add(count, Ordering::Relaxed) + 1
    }

    /// One of the store's own tables (the read baselines read its `events`).
    pub fn store_table(&self, table: &str) -> String {
        match self.backend() {
            Backend::Postgres => format!("{}.{table}", self.config.schema),
            Backend::Sqlite => table.to_string(),
        }
    }

    /// Says which workload runs now.
    pub fn step(&self, what: &str) {
        self.progress.set_message(format!("{}: {what}", self.backend().name()));
        self.progress.inc(1);
    }

    /// Prints a line above the progress bar.
    pub fn say(&self, line: &str) {
        self.progress.println(line);
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
    let (filter, reload) = tracing_subscriber::reload::Layer::new(filter);
    let _ = SPANS.set(reload);
    tracing_subscriber::registry()
        .with(filter)
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
        .init();
    let args = Args::parse();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let backends = args.backend.backends();
    let names: Vec<&str> = backends.iter().map(|b| b.name()).collect();
    println!(
        "chronik benchmark ({}, {}): {cores} cores",
        if args.quick { "quick" } else { "full" },
        names.join(" and ")
    );
    let plan = Plan::new(args.quick, &args.only);
    let progress = ProgressBar::new(backends.iter().map(|&b| steps(b, plan)).sum::<usize>() as u64);
    progress.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} {msg}")
            .map_err(|e| format!("progress bar template: {e}"))?
            .progress_chars("=> "),
    );
    let mut rows = Vec::new();
    for &backend in backends {
        rows.extend(match backend {
            Backend::Postgres => postgres(plan, &progress).await?,
            Backend::Sqlite => sqlite::run(plan, &progress).await?,
        });
    }
    // Last: it installs the process' metrics recorder.
    if plan.runs(Section::Telemetry) && backends.contains(&Backend::Postgres) {
        rows.extend(postgres_telemetry(plan, &progress).await?);
    }
    progress.finish_and_clear();
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

/// Progress steps of one part.
fn steps(backend: Backend, plan: Plan) -> usize {
    let postgres = backend == Backend::Postgres;
    [
        (Section::Memory, if postgres { memory::STEPS } else { 0 }),
        (Section::Appends, append::steps(backend)),
        (Section::Reads, read::steps(backend)),
        (Section::Elixir, if postgres { elixir::STEPS } else { 0 }),
        (Section::Subscriptions, subscribe::steps(backend)),
        (Section::Categories, index::steps(backend)),
        (Section::Retention, retention::steps(backend)),
        (Section::Grpc, if postgres { grpc::STEPS } else { 0 }),
        (Section::Telemetry, if postgres { telemetry::STEPS } else { 0 }),
    ]
    .into_iter()
    .filter(|&(section, _)| plan.runs(section))
    .map(|(_, steps)| steps)
    .sum()
}

/// The filter of the suite's `tracing` subscriber, reloadable: the telemetry section switches
/// chronik's spans on and off with it.
static SPANS: std::sync::OnceLock<tracing_subscriber::reload::Handle<EnvFilter, tracing_subscriber::Registry>> =
    std::sync::OnceLock::new();

/// Enables chronik's spans (`chronik=info`) or not (the default filter, `warn`).
pub fn spans(on: bool) -> Result<()> {
    let filter = EnvFilter::new(if on { "warn,chronik=info" } else { "warn" });
    match SPANS.get() {
        Some(reload) => reload.reload(filter).map_err(|e| format!("cannot switch the spans: {e}").into()),
        None => Err("the tracing subscriber is not reloadable".into()),
    }
}

/// The telemetry section on PostgreSQL, in a scratch schema dropped at the end.
async fn postgres_telemetry(plan: Plan, progress: &ProgressBar) -> Result<Vec<Row>> {
    let schema = format!("bench_{}", Uuid::new_v4().simple());
    let config = Config::from_env();
    let url = if config.is_sqlite() { POSTGRES_URL.to_string() } else { config.database_url.clone() };
    let config = config.database_url(url).schema(schema.as_str()).pool_size(POOL);
    let pool = PgPoolOptions::new().max_connections(2).connect(&config.database_url).await?;
    let raw = Raw::Postgres { pool: pool.clone(), schema: format!("{schema}_raw").into() };
    let outcome = telemetry::run(plan, progress, &config, raw).await;
    if let Err(e) = chronik::admin::drop(&config).await {
        eprintln!("could not drop the bench store {schema}: {e}");
    }
    pool.close().await;
    outcome
}

/// The PostgreSQL part, in scratch schemas dropped at the end whatever happened.
async fn postgres(plan: Plan, progress: &ProgressBar) -> Result<Vec<Row>> {
    let schema = format!("bench_{}", Uuid::new_v4().simple());
    let raw_schema = format!("{schema}_raw");
    let config = Config::from_env();
    let url = if config.is_sqlite() { POSTGRES_URL.to_string() } else { config.database_url.clone() };
    let config = config.database_url(url).schema(schema.as_str()).pool_size(POOL);
    let pool = PgPoolOptions::new().max_connections(POOL).connect(&config.database_url).await?;
    let server: String = sqlx::query_scalar("SHOW server_version").fetch_one(&pool).await?;
    progress.println(format!("PostgreSQL {server}: store schema {schema}, baselines in {raw_schema}"));

    let outcome = postgres_workloads(plan, progress, &config, &pool, &raw_schema).await;

    // Clean up whatever happened above.
    if let Err(e) = chronik::admin::drop(&config).await {
        eprintln!("could not drop the bench store {schema}: {e}");
    }
    if let Err(e) = sqlx::query(&format!("DROP SCHEMA IF EXISTS {raw_schema} CASCADE")).execute(&pool).await {
        eprintln!("could not drop the raw schema {raw_schema}: {e}");
    }
    pool.close().await;
    outcome
}

async fn postgres_workloads(
    plan: Plan,
    progress: &ProgressBar,
    config: &Config,
    pool: &PgPool,
    raw_schema: &str,
) -> Result<Vec<Row>> {
    let store = EventStore::start(config.clone()).await?;
    sqlx::query(&format!("CREATE SCHEMA {raw_schema}")).execute(pool).await?;
    // A copy of chronik's `events` table: columns, types, defaults, constraints, primary key and
    // unique indexes (not its triggers, which only fire on UPDATE and DELETE anyway), so the
    // shape cannot drift from the migrations.
    let copy = format!("CREATE TABLE {raw_schema}.events (LIKE {}.events INCLUDING ALL)", config.schema);
    sqlx::query(&copy).execute(pool).await?;
    let raw = Raw::Postgres { pool: pool.clone(), schema: raw_schema.into() };
    workloads(&Bench::new(store, config.clone(), raw, plan, progress.clone())).await
}

/// The workloads of one part (each leaves out what its backend does not run), then the store's
/// shutdown.
pub async fn workloads(bench: &Bench) -> Result<Vec<Row>> {
    let postgres = bench.backend() == Backend::Postgres;
    let runs = |section| bench.plan.runs(section);
    let mut rows = Vec::new();
    // Memory first, while the process holds nothing else: its figures are the process's RSS.
    if postgres && runs(Section::Memory) {
        rows.extend(memory::run(bench).await?);
    }
    if runs(Section::Appends) {
        rows.extend(append::run(bench).await?);
    }
    if runs(Section::Reads) {
        rows.extend(read::run(bench).await?);
    }
    if postgres && runs(Section::Elixir) {
        rows.extend(elixir::run(bench).await?);
    }
    if runs(Section::Subscriptions) {
        rows.extend(subscribe::run(bench).await?);
    }
    if runs(Section::Categories) {
        rows.extend(index::run(bench).await?);
    }
    if runs(Section::Retention) {
        rows.extend(retention::run(bench).await?);
    }
    if postgres && runs(Section::Grpc) {
        rows.extend(grpc::run(bench).await?);
    }
    bench.store.shutdown().await?;
    Ok(rows.into_iter().map(|row| row.on(bench.backend())).collect())
}
