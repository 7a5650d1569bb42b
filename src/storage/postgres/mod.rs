//! The PostgreSQL backend: a pool whose connections have the store's schema as `search_path`,
//! so every statement here uses unqualified names and stores in different schemas never see
//! each other.

mod admin;
mod append;
mod nacks;
mod read;
mod snapshots;
mod streams;
mod subscriptions;

pub(crate) use admin::check_up_to_date;
pub use admin::{MigrationStatus, create_database, drop_store, init_store, migrate_store, migration_status};
pub use append::WriterSession;
pub use nacks::{NackRecord, StoredNack, SubscriptionWrite};
pub use read::Direction;
pub use subscriptions::{LockSession, NotificationListener, SubscriptionRow, Wake};

use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use uuid::Uuid;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::event::RecordedEvent;

/// The PostgreSQL storage of one store (one schema).
#[derive(Debug, Clone)]
pub struct PgStorage {
    pool: PgPool,
    connect_options: PgConnectOptions,
    connect_timeout: std::time::Duration,
    schema: String,
    hard_deletes: bool,
}

impl PgStorage {
    /// Opens a pool of `config.pool_size` connections to the store's schema (lazily: the first
    /// use connects).
    pub fn connect_lazy(config: &Config) -> Result<Self> {
        let connect_options = store_connect_options(config)?;
        let pool = PgPoolOptions::new()
            .max_connections(config.pool_size)
            .acquire_timeout(config.connect_timeout)
            .connect_lazy_with(connect_options.clone());
        Ok(PgStorage {
            pool,
            connect_options,
            connect_timeout: config.connect_timeout,
            schema: config.schema.clone(),
            hard_deletes: config.enable_hard_deletes,
        })
    }

    /// The NOTIFY channel on which the writer announces committed positions.
    pub fn channel(&self) -> String {
        format!("chronik.{}.events", self.schema)
    }

    /// Closes the pool, waiting for connections in use to be returned.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Connection options for the store: the URL plus `search_path`, `application_name` and
/// `enable_seqscan = off`.
///
/// Every statement of the store has an index to follow. Prepared statements are cached per
/// connection, and PostgreSQL may switch one to a generic plan while the store is still small,
/// where a sequential scan looks cheapest; that plan would then be kept as the tables grow,
/// turning each append into a table scan under the `$all` lock (seen in benchmarks). Forcing
/// custom plans instead costs a planning pass per statement (about 20% of append throughput);
/// penalising sequential scans keeps the cached plans on the indexes for free.
pub(crate) fn store_connect_options(config: &Config) -> Result<PgConnectOptions> {
    Ok(config
        .connect_options()?
        .application_name(&application_name(&config.schema))
        .options([("search_path", config.schema.as_str()), ("enable_seqscan", "off")]))
}

/// `chronik <schema>`, so `pg_stat_activity` shows which store a connection serves
/// (PostgreSQL keeps the first 63 bytes).
pub fn application_name(schema: &str) -> String {
    format!("chronik {schema}")
}

/// Converts a stored integer that must not be negative; a negative one is a corrupt row.
pub(crate) fn unsigned(column: &str, value: i64) -> Result<u64> {
    u64::try_from(value).map_err(|_| {
        Error::Database(sqlx::Error::Decode(format!("corrupt row: {column} = {value} is negative").into()))
    })
}

/// Converts an API integer to a database bigint; values past `i64::MAX` are invalid arguments.
pub(crate) fn signed(what: &str, value: u64) -> Result<i64> {
    i64::try_from(value).map_err(|_| Error::invalid(format!("{what} {value} is larger than {}", i64::MAX)))
}

/// An event row as selected by every read (see `EVENT_COLUMNS`).
#[derive(sqlx::FromRow)]
pub(crate) struct EventRow {
    event_number: i64,
    position: i64,
    event_id: Uuid,
    stream_uuid: String,
    stream_version: i64,
    event_type: String,
    content_type: String,
    correlation_id: Option<Uuid>,
    causation_id: Option<Uuid>,
    data: Vec<u8>,
    metadata: Option<Vec<u8>>,
    created_at: DateTime<Utc>,
}

/// The columns of an event, given the alias `e` for `events`; the caller supplies
/// `event_number`.
pub(crate) const EVENT_COLUMNS: &str = "e.position, e.event_id, e.stream_uuid, e.stream_version, e.event_type, \
     e.content_type, e.correlation_id, e.causation_id, e.data, e.metadata, e.created_at";

impl TryFrom<EventRow> for RecordedEvent {
    type Error = Error;
    fn try_from(row: EventRow) -> Result<Self> {
        Ok(RecordedEvent {
            event_number: unsigned("event_number", row.event_number)?,
            event_id: row.event_id,
            stream_uuid: row.stream_uuid,
            stream_version: unsigned("stream_version", row.stream_version)?,
            global_position: unsigned("position", row.position)?,
            event_type: row.event_type,
            correlation_id: row.correlation_id,
            causation_id: row.causation_id,
            data: row.data,
            metadata: row.metadata,
            content_type: row.content_type,
            created_at: row.created_at,
        })
    }
}

pub(crate) fn into_events(rows: Vec<EventRow>) -> Result<Vec<RecordedEvent>> {
    rows.into_iter().map(RecordedEvent::try_from).collect()
}

/// Options for the maintenance database of the server (`postgres`), for CREATE DATABASE.
pub(crate) fn maintenance_options(config: &Config) -> Result<PgConnectOptions> {
    Ok(config.connect_options()?.database("postgres").application_name("chronik"))
}
