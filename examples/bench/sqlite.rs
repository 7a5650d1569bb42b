//! The SQLite part of the suite: a store in a scratch file, and its raw baselines in the same
//! file, through plain connections of their own with the store's settings (`journal_mode =
//! WAL`, `synchronous = FULL`, as `storage/sqlite` sets them).
//!
//! - **The raw table** `raw_events` is made from the DDL SQLite keeps for chronik's `events`
//!   (`sqlite_master`), renamed: the same columns, STRICT types, CHECKs, primary key and unique
//!   indexes, so it cannot drift from the migrations; not the triggers, which only fire on
//!   UPDATE and DELETE.
//! - **Raw appends**: one transaction per append holding multi-row `INSERT … VALUES` of up to
//!   128 rows (chronik's writer cuts its inserts the same way), on ONE connection that every raw
//!   writer takes its turn on, first come first served (a fair mutex). SQLite lets one writer in
//!   at a time however many connections there are; a connection per writer with a busy timeout
//!   would add SQLite's busy back-off sleeps (up to 100 ms each) to the baseline, so the shared
//!   connection is the baseline's best case, and the same shape as chronik's single write
//!   connection.
//! - **Raw reads**: read-only connections, as many as chronik's read pool, paging chronik's own
//!   `events` rows.
//!
//! The store's `-lock` companion keeps other chronik stores out of the file, not plain
//! connections; the two sides never write at the same time (the workloads alternate them).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chronik::{Config, EventStore};
use chrono::Utc;
use indicatif::ProgressBar;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{ConnectOptions, Connection, SqliteConnection};
use tokio::sync::Mutex;
use uuid::Uuid;

use crate::measure::Row;
use crate::payload::{Raw, Rows};
use crate::{Bench, POOL, Result};

/// The raw copy of chronik's `events` table, in the store's file.
pub const RAW_TABLE: &str = "raw_events";

/// Rows per multi-row `INSERT` (chronik's writer uses the same cut).
const ROWS_PER_INSERT: usize = 128;

const INSERT: &str = "INSERT INTO raw_events (position, event_id, stream_id, stream_uuid, stream_version, \
     event_type, content_type, correlation_id, causation_id, data, metadata, created_at, category, category_number, \
     type_number) VALUES ";
const PARAMS: usize = 15;

/// The SQLite part in a scratch directory under the system's temporary directory, removed at
/// the end whatever happened.
pub async fn run(plan: crate::Plan, progress: &ProgressBar) -> Result<Vec<Row>> {
    let dir = std::env::temp_dir().join(format!("chronik-bench-{}", Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir)
        .map_err(|e| format!("could not create the scratch directory {}: {e}", dir.display()))?;

    let outcome = workloads_in(&dir, plan, progress).await;

    // Clean up whatever happened above.
    if let Err(e) = std::fs::remove_dir_all(&dir) {
        eprintln!("could not remove the scratch directory {}: {e}", dir.display());
    }
    outcome
}

async fn workloads_in(dir: &Path, plan: crate::Plan, progress: &ProgressBar) -> Result<Vec<Row>> {
    let file = dir.join("store.db");
    let config = Config::default().database_url(format!("sqlite:{}", file.display())).pool_size(POOL);
    let store = EventStore::start(config.clone()).await?;
    let outcome = match RawSqlite::open(&file, config.connect_timeout).await {
        Ok(raw) => {
            let bench = Bench::new(store.clone(), config, Raw::Sqlite(raw.clone()), plan, progress.clone());
            progress.println(format!(
                "SQLite {}: store {}, baselines in its table {RAW_TABLE}; journal_mode = WAL, synchronous = FULL",
                raw.version,
                file.display()
            ));
            let rows = crate::workloads(&bench).await;
            raw.close().await;
            rows
        }
        Err(e) => Err(e),
    };
    // Closed before its directory goes (a no-op unless something failed before the workloads
    // shut it down).
    if let Err(e) = store.shutdown().await {
        eprintln!("the SQLite bench store did not shut down cleanly: {e}");
    }
    outcome
}

/// The raw baselines' connections to the store's file.
#[derive(Clone)]
pub struct RawSqlite {
    /// The one connection every raw writer takes its turn on; `None` once closed.
    writer: Arc<Mutex<Option<SqliteConnection>>>,
    /// Read-only connections for the read baselines.
    pub readers: SqlitePool,
    /// SQLite's version.
    pub version: String,
}

impl RawSqlite {
    /// Opens the connections with the store's settings, checks them, and creates the raw table.
    async fn open(file: &Path, busy_timeout: Duration) -> Result<RawSqlite> {
        let options = SqliteConnectOptions::new()
            .filename(file)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(busy_timeout)
            .disable_statement_logging();
        let mut writer = SqliteConnection::connect_with(&options).await?;
        let journal: String = sqlx::query_scalar("PRAGMA journal_mode").fetch_one(&mut writer).await?;
        let synchronous: i64 = sqlx::query_scalar("PRAGMA synchronous").fetch_one(&mut writer).await?;
        // 2 is FULL.
        if journal != "wal" || synchronous != 2 {
            return Err(format!("raw SQLite connection: journal_mode {journal}, synchronous {synchronous}").into());
        }
        let version: String = sqlx::query_scalar("SELECT sqlite_version()").fetch_one(&mut writer).await?;
        copy_events_table(&mut writer, RAW_TABLE).await?;
        let readers = SqlitePoolOptions::new().max_connections(POOL).connect_lazy_with(options.read_only(true));
        Ok(RawSqlite { writer: Arc::new(Mutex::new(Some(writer))), readers, version })
    }

    /// One transaction of multi-row `INSERT`s of `rows`, in its turn on the write connection.
    pub async fn append(&self, rows: &Rows) -> Result<()> {
        let mut writer = self.writer.lock().await;
        let conn = writer.as_mut().ok_or("the raw SQLite connection is closed")?;
        let created_at = Utc::now();
        let mut tx = conn.begin().await?;
        let all: Vec<usize> = (0..rows.position.len()).collect();
        for chunk in all.chunks(ROWS_PER_INSERT) {
            let sql = insert_sql(chunk.len());
            let mut query = sqlx::query(&sql);
            for &i in chunk {
                query = query
                    .bind(rows.position[i])
                    .bind(rows.event_id[i])
                    .bind(rows.stream_id[i])
                    .bind(&rows.stream_uuid[i])
                    .bind(rows.stream_version[i])
                    .bind(rows.event_type[i])
                    .bind(rows.content_type[i])
                    .bind(rows.correlation_id[i])
                    .bind(rows.causation_id[i])
                    .bind(&rows.data[i])
                    .bind(&rows.metadata[i])
                    .bind(created_at)
                    .bind(&rows.category[i])
                    .bind(rows.index_number[i])
                    .bind(rows.position[i]);
            }
            query.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Creates `table` shaped like `events` and copies into it the rows of `streams` (id, name),
    /// with their streams numbered by those ids.
    pub async fn copy_events(&self, table: &str, streams: &[(i64, String)]) -> Result<()> {
        let mut writer = self.writer.lock().await;
        let conn = writer.as_mut().ok_or("the raw SQLite connection is closed")?;
        copy_events_table(conn, table).await?;
        let pairs: Vec<serde_json::Value> = streams.iter().map(|(id, name)| serde_json::json!([id, name])).collect();
        let copy = format!(
            "INSERT INTO {table} SELECT e.position, e.event_id, json_extract(n.value, '$[0]'), e.stream_uuid, \
                 e.stream_version, e.event_type, e.content_type, e.correlation_id, e.causation_id, e.data, \
                 e.metadata, e.created_at, e.category, e.category_number, e.type_number \
             FROM json_each(?1) n CROSS JOIN streams s ON s.stream_uuid = json_extract(n.value, '$[1]') \
             CROSS JOIN events e ON e.stream_id = s.stream_id"
        );
        sqlx::query(&copy).bind(serde_json::Value::Array(pairs).to_string()).execute(&mut *conn).await?;
        Ok(())
    }

    /// Deletes the rows of streams `ids` below version `floor` from `table`, in one transaction;
    /// how many.
    pub async fn delete_below(&self, table: &str, ids: &[i64], floor: i64) -> Result<u64> {
        let mut writer = self.writer.lock().await;
        let conn = writer.as_mut().ok_or("the raw SQLite connection is closed")?;
        let mut tx = conn.begin().await?;
        let sql =
            format!("DELETE FROM {table} WHERE stream_id IN (SELECT value FROM json_each(?1)) AND stream_version < ?2");
        let ids = serde_json::to_string(ids)?;
        let removed = sqlx::query(&sql).bind(ids).bind(floor).execute(&mut *tx).await?.rows_affected();
        tx.commit().await?;
        Ok(removed)
    }

    async fn close(self) {
        self.readers.close().await;
        if let Some(writer) = self.writer.lock().await.take()
            && let Err(e) = writer.close().await
        {
            eprintln!("the raw SQLite connection did not close cleanly: {e}");
        }
    }
}

/// Creates `name` from the DDL of the store's `events` table, with its indexes.
async fn copy_events_table(conn: &mut SqliteConnection, name: &str) -> Result<()> {
    let ddl: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT type, name, sql FROM sqlite_master WHERE tbl_name = 'events' AND sql IS NOT NULL \
         AND type IN ('table', 'index') ORDER BY type DESC",
    )
    .fetch_all(&mut *conn)
    .await?;
    for (kind, index, sql) in ddl {
        let copy = match kind.as_str() {
            "table" => sql.replacen("CREATE TABLE events", &format!("CREATE TABLE {name}"), 1),
            _ => sql.replacen(&format!(" {index} ON events "), &format!(" {name}_{index} ON {name} "), 1),
        };
        if copy == sql {
            return Err(format!("could not rename the events table in its DDL: {sql}").into());
        }
        sqlx::query(&copy).execute(&mut *conn).await?;
    }
    Ok(())
}

/// [`INSERT`] with `rows` groups of placeholders.
fn insert_sql(rows: usize) -> String {
    let group = format!("({})", ["?"; PARAMS].join(", "));
    format!("{INSERT}{}", vec![group; rows].join(", "))
}
