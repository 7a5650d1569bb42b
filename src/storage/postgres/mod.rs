//! The PostgreSQL backend: a pool whose connections have the store's schema as `search_path`,
//! so every statement here uses unqualified names and stores in different schemas never see
//! each other.

mod admin;
mod append;
mod metadata;
mod nacks;
mod read;
mod scavenge;
mod snapshots;
mod streams;
mod subscriptions;

pub use append::WriterSession;
pub use subscriptions::{LockSession, NotificationListener};

use std::str::FromStr;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{Connection, PgConnection};

use crate::config::{Config, redact};
use crate::error::{Error, Result};
use crate::storage::backend::{Admin, Backend};

/// The PostgreSQL storage of one store (one schema).
#[derive(Debug, Clone)]
pub struct PgStorage {
    pool: PgPool,
    connect_options: PgConnectOptions,
    connect_timeout: std::time::Duration,
    schema: String,
    hard_deletes: bool,
}

impl Backend for PgStorage {
    async fn open(config: &Config) -> Result<PgStorage> {
        if config.auto_init && !config.read_only {
            PgStorage::init_store(config).await?;
        } else {
            admin::check_up_to_date(config).await?;
        }
        PgStorage::connect_lazy(config)
    }

    async fn close(&self) {
        self.pool.close().await;
    }
}

impl PgStorage {
    /// Opens a pool of `config.pool_size` connections to the store's schema (lazily: the first
    /// use connects).
    fn connect_lazy(config: &Config) -> Result<Self> {
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
    fn channel(&self) -> String {
        format!("chronik.{}.events", self.schema)
    }
}

/// Opens a connection, giving up after `timeout`: a server that accepts the TCP connection but
/// never answers (or a host that drops packets) must not hang the caller.
async fn connect_within(options: &PgConnectOptions, timeout: std::time::Duration) -> Result<PgConnection> {
    match tokio::time::timeout(timeout, PgConnection::connect_with(options)).await {
        Ok(conn) => Ok(conn?),
        Err(_) => Err(Error::Unavailable(format!(
            "no answer from PostgreSQL at {}:{} within connect_timeout ({timeout:?})",
            options.get_host(),
            options.get_port()
        ))),
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
fn store_connect_options(config: &Config) -> Result<PgConnectOptions> {
    Ok(connect_options(config)?
        .application_name(&application_name(&config.schema))
        .options([("search_path", config.schema.as_str()), ("enable_seqscan", "off")]))
}

/// `chronik <schema>`, so `pg_stat_activity` shows which store a connection serves
/// (PostgreSQL keeps the first 63 bytes).
pub fn application_name(schema: &str) -> String {
    format!("chronik {schema}")
}

/// Options for the maintenance database of the server (`postgres`), for CREATE DATABASE.
fn maintenance_options(config: &Config) -> Result<PgConnectOptions> {
    Ok(connect_options(config)?.database("postgres").application_name("chronik"))
}

/// The connection options `database_url` spells; one it does not is an [`Error::Config`]
/// naming the key (its password hidden).
fn connect_options(config: &Config) -> Result<PgConnectOptions> {
    let url = config.database_url.trim();
    PgConnectOptions::from_str(url)
        .map_err(|e| Error::config("database_url", format!("cannot parse `{}`: {e}", redact(url))))
}
