//! The events every workload writes, byte for byte the same for chronik and for the raw
//! baseline; the raw baselines on each backend (where their rows go, what they read through)
//! and the PostgreSQL raw table's insert statements; filling `$all` with a backlog, and paging
//! it with plain `SELECT`s.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use chronik::{EventData, ExpectedVersion};
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::pool::PoolConnection;
use sqlx::postgres::PgPool;
use sqlx::{Postgres, Sqlite};
use uuid::Uuid;

use crate::measure::{Backend, Measured};
use crate::sqlite::{RAW_TABLE, RawSqlite};
use crate::{Bench, BoxError, Result};

pub const EVENT_TYPE: &str = "MoneyDeposited";
pub const CONTENT_TYPE: &str = "application/json";

/// The payload of one event: JSON of about 100 bytes.
#[derive(Serialize)]
struct Deposit<'a> {
    account: String,
    amount: u64,
    note: &'a str,
}

/// The `n`th event's data and metadata, as JSON bytes.
pub fn payload(n: u64) -> (Vec<u8>, Vec<u8>) {
    let data = Deposit {
        account: format!("acc-{}", n % 1_000),
        amount: n % 10_000,
        note: "monthly salary, transferred by standing order",
    };
    let data = serde_json::to_vec(&data).expect("a struct of strings and numbers serializes");
    let metadata = format!(r#"{{"user":"u-{}","source":"bench"}}"#, n % 50).into_bytes();
    (data, metadata)
}

/// The `n`th event for chronik.
pub fn event(n: u64) -> EventData {
    let (data, metadata) = payload(n);
    EventData::from_bytes(EVENT_TYPE, CONTENT_TYPE, data).with_metadata_bytes(metadata)
}

/// `count` events starting with payload `first`.
pub fn events(first: u64, count: u64) -> Vec<EventData> {
    (first..first + count).map(event).collect()
}

/// One autocommitted multi-row insert into the raw table `table`, from column arrays.
pub fn insert_batch_sql(table: &str) -> String {
    format!(
        "INSERT INTO {table} (position, event_id, stream_id, stream_uuid, stream_version, event_type, \
         content_type, correlation_id, causation_id, data, metadata, category, category_number, type_number) \
         SELECT * FROM UNNEST($1::bigint[], $2::uuid[], $3::bigint[], $4::text[], $5::bigint[], \
         $6::text[], $7::text[], $8::uuid[], $9::uuid[], $10::bytea[], $11::bytea[], $12::text[], \
         $13::bigint[], $14::bigint[])"
    )
}

/// One autocommitted one-row insert into the raw table `table`.
pub fn insert_row_sql(table: &str) -> String {
    format!(
        "INSERT INTO {table} (position, event_id, stream_id, stream_uuid, stream_version, event_type, \
         content_type, correlation_id, causation_id, data, metadata, category, category_number, type_number) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"
    )
}

/// Column arrays of one raw batch.
#[derive(Default)]
pub struct Rows {
    pub position: Vec<i64>,
    pub event_id: Vec<Uuid>,
    pub stream_id: Vec<i64>,
    pub stream_uuid: Vec<String>,
    pub stream_version: Vec<i64>,
    pub event_type: Vec<&'static str>,
    pub content_type: Vec<&'static str>,
    pub correlation_id: Vec<Option<Uuid>>,
    pub causation_id: Vec<Option<Uuid>>,
    pub data: Vec<Vec<u8>>,
    pub metadata: Vec<Option<Vec<u8>>>,
    /// The stream's category, as chronik's index keeps it.
    pub category: Vec<Option<String>>,
    /// The event's number in its category's and its type's index: its position, which is
    /// unique and increasing in both, so the raw side maintains the same indexes as chronik.
    pub index_number: Vec<Option<i64>>,
}

impl Rows {
    /// Adds the row of payload `n` at `position`, version `version` of stream `stream_id`.
    pub fn push(&mut self, position: i64, stream_id: i64, stream: &str, version: i64, n: u64) {
        let (data, metadata) = payload(n);
        self.position.push(position);
        self.event_id.push(Uuid::new_v4());
        self.stream_id.push(stream_id);
        self.stream_uuid.push(stream.to_string());
        self.stream_version.push(version);
        self.event_type.push(EVENT_TYPE);
        self.content_type.push(CONTENT_TYPE);
        self.correlation_id.push(None);
        self.causation_id.push(None);
        self.data.push(data);
        self.metadata.push(Some(metadata));
        let category = chronik::category_of(stream);
        self.index_number.push(category.map(|_| position));
        self.category.push(category.map(str::to_string));
    }

    /// Binds the arrays to [`insert_batch_sql`].
    pub fn bind<'q>(
        &'q self,
        query: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    ) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
        query
            .bind(&self.position)
            .bind(&self.event_id)
            .bind(&self.stream_id)
            .bind(&self.stream_uuid)
            .bind(&self.stream_version)
            .bind(&self.event_type)
            .bind(&self.content_type)
            .bind(&self.correlation_id)
            .bind(&self.causation_id)
            .bind(&self.data)
            .bind(&self.metadata)
            .bind(&self.category)
            .bind(&self.index_number)
            .bind(&self.position)
    }
}

/// The raw baselines of one part of the suite.
#[derive(Clone)]
pub enum Raw {
    /// The baselines' pool; their table is `events` in the scratch schema `schema`.
    Postgres { pool: PgPool, schema: Arc<str> },
    /// The baselines' connections to the store's own file; their table is `raw_events`.
    Sqlite(RawSqlite),
}

impl Raw {
    pub fn backend(&self) -> Backend {
        match self {
            Raw::Postgres { .. } => Backend::Postgres,
            Raw::Sqlite(_) => Backend::Sqlite,
        }
    }

    /// The raw copy of chronik's `events` table.
    pub fn table(&self) -> String {
        match self {
            Raw::Postgres { schema, .. } => format!("{schema}.events"),
            Raw::Sqlite(_) => RAW_TABLE.to_string(),
        }
    }

    /// One raw append of `rows`: one autocommitted statement on PostgreSQL (a one-row
    /// `INSERT`, or an `INSERT … SELECT * FROM UNNEST` of column arrays), one transaction of
    /// multi-row `INSERT`s on SQLite.
    pub async fn append(&self, rows: &Rows) -> Result<()> {
        let pool = match self {
            Raw::Sqlite(raw) => return raw.append(rows).await,
            Raw::Postgres { pool, .. } => pool,
        };
        let table = self.table();
        if rows.position.len() == 1 {
            sqlx::query(&insert_row_sql(&table))
                .bind(rows.position[0])
                .bind(rows.event_id[0])
                .bind(rows.stream_id[0])
                .bind(&rows.stream_uuid[0])
                .bind(rows.stream_version[0])
                .bind(rows.event_type[0])
                .bind(rows.content_type[0])
                .bind(rows.correlation_id[0])
                .bind(rows.causation_id[0])
                .bind(&rows.data[0])
                .bind(&rows.metadata[0])
                .bind(&rows.category[0])
                .bind(rows.index_number[0])
                .bind(rows.position[0])
                .execute(pool)
                .await?;
        } else {
            rows.bind(sqlx::query(&insert_batch_sql(&table))).execute(pool).await?;
        }
        Ok(())
    }

    /// A connection of its own for a reader of the store's rows.
    async fn reader(&self) -> Result<Reader> {
        Ok(match self {
            Raw::Postgres { pool, .. } => Reader::Postgres(pool.acquire().await?),
            Raw::Sqlite(raw) => Reader::Sqlite(raw.readers.acquire().await?),
        })
    }
}

/// A raw reader's connection.
enum Reader {
    Postgres(PoolConnection<Postgres>),
    Sqlite(PoolConnection<Sqlite>),
}

impl Reader {
    /// The rows of `sql` (a `SELECT` of [`COLUMNS`] with the bounds `$1` and `$2`).
    async fn fetch(&mut self, sql: &str, first: i64, second: i64) -> Result<Vec<RawRow>> {
        Ok(match self {
            Reader::Postgres(conn) => sqlx::query_as(sql).bind(first).bind(second).fetch_all(&mut **conn).await?,
            Reader::Sqlite(conn) => sqlx::query_as(sql).bind(first).bind(second).fetch_all(&mut **conn).await?,
        })
    }
}

/// The columns of an event row, as chronik decodes them.
pub const COLUMNS: &str = "position, event_id, stream_uuid, stream_version, event_type, content_type, correlation_id, \
     causation_id, data, metadata, created_at";

/// An event row decoded like chronik decodes one (the columns of [`COLUMNS`]).
pub type RawRow =
    (i64, Uuid, String, i64, String, String, Option<Uuid>, Option<Uuid>, Vec<u8>, Option<Vec<u8>>, DateTime<Utc>);

/// Page size of every paged read, chronik's and raw.
pub const PAGE: i64 = 1_000;
/// Concurrent writers filling a backlog.
const WRITERS: u64 = 10;
/// Events per append of a backlog.
const PER_APPEND: u64 = 100;

/// Appends `total` events (rounded up to whole appends) as 100-event appends to fresh streams,
/// from 10 concurrent writers; returns the events appended.
pub async fn append_backlog(bench: &Bench, total: u64) -> Result<u64> {
    let appends = total.div_ceil(PER_APPEND);
    let streams: Arc<Vec<String>> = Arc::new((0..appends).map(|_| bench.fresh_stream().1).collect());
    let first = bench.payloads(appends * PER_APPEND);
    let next = Arc::new(AtomicU64::new(0));
    let writers: Vec<_> = (0..WRITERS)
        .map(|_| {
            let (store, streams, next) = (bench.store.clone(), Arc::clone(&streams), Arc::clone(&next));
            tokio::spawn(async move {
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= appends {
                        return Ok::<_, BoxError>(());
                    }
                    let batch = events(first + n * PER_APPEND, PER_APPEND);
                    store.append_to_stream(&streams[n as usize], ExpectedVersion::NoStream, batch).await?;
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await??;
    }
    Ok(appends * PER_APPEND)
}

/// Readers paging the store's `events` table concurrently, each over its own inclusive range of
/// positions, on a raw connection of its own; one latency per page.
pub async fn raw_pages(bench: &Bench, ranges: Vec<(u64, u64)>) -> Result<Measured> {
    let sql = format!(
        "SELECT {COLUMNS} FROM {} WHERE position >= $1 ORDER BY position LIMIT $2",
        bench.store_table("events")
    );
    let sql: Arc<str> = sql.into();
    let mut readers = Vec::with_capacity(ranges.len());
    for _ in &ranges {
        readers.push(bench.raw.reader().await?);
    }
    let started = Instant::now();
    let tasks: Vec<_> = ranges
        .into_iter()
        .zip(readers)
        .map(|((from, to), mut reader)| {
            let sql = Arc::clone(&sql);
            tokio::spawn(async move {
                let (mut from, to) = (from as i64, to as i64);
                let (mut read, mut latencies) = (0_u64, Vec::new());
                while from <= to {
                    let page = Instant::now();
                    let rows = reader.fetch(&sql, from, PAGE.min(to - from + 1)).await?;
                    latencies.push(page.elapsed());
                    let Some(last) = rows.last() else { break };
                    from = last.0 + 1;
                    read += rows.len() as u64;
                }
                Ok::<_, BoxError>((read, latencies, Instant::now()))
            })
        })
        .collect();
    let mut measured = Measured::default();
    let mut finished = started;
    for task in tasks {
        let (read, latencies, done) = task.await??;
        measured.events += read;
        measured.latencies.extend(latencies);
        finished = finished.max(done);
    }
    measured.elapsed = finished - started;
    Ok(measured)
}
