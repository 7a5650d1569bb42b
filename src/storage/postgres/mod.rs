//! The PostgreSQL backend: a pool whose connections have the store's schema as `search_path`,
//! so every statement here uses unqualified names and stores in different schemas never see
//! each other.

mod admin;
mod append;
mod members;
mod metadata;
mod nacks;
mod read;
mod scavenge;
mod snapshots;
mod streams;
mod subscriptions;

pub use append::WriterSession;
pub use members::MemberSession;
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
    /// The pool's open connections and, of those, the idle ones.
    pub fn pool_status(&self) -> (u32, u32) {
        (self.pool.size(), u32::try_from(self.pool.num_idle()).unwrap_or(u32::MAX))
    }

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
        channel_of(&self.schema)
    }
}

/// The NOTIFY channel of the store in `schema`: `chronik.<schema>.events`, or, when that is
/// longer than the 63 bytes PostgreSQL allows a channel name, the schema's first 32 bytes and a
/// hash of the whole name (FNV-1a, the same on every node and build), still one per schema.
fn channel_of(schema: &str) -> String {
    const MAX_CHANNEL_BYTES: usize = 63;
    let plain = format!("chronik.{schema}.events");
    if plain.len() <= MAX_CHANNEL_BYTES {
        return plain;
    }
    let hash = schema.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
    // Schema names are ASCII (see `config::validate_schema_name`): any byte is a char boundary.
    format!("chronik.{}.{hash:016x}", &schema[..32.min(schema.len())])
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

/// Connection options for the store: the URL plus `search_path`, `application_name`,
/// `enable_seqscan = off` and `jit = off`.
///
/// Every statement of the store has an index to follow. Prepared statements are cached per
/// connection, and PostgreSQL may switch one to a generic plan while the store is still small,
/// where a sequential scan looks cheapest; that plan would then be kept as the tables grow,
/// turning each append into a table scan under the `$all` lock (seen in benchmarks). Forcing
/// custom plans instead costs a planning pass per statement (about 20% of append throughput);
/// penalising sequential scans keeps the cached plans on the indexes for free.
///
/// The penalty is added to a plan's cost, so a statement that has to scan (a small table such
/// as `cluster_members`, `pg_stat_activity`) looks expensive enough for PostgreSQL to compile
/// it to machine code with LLVM on every execution: tens of milliseconds to a second of CPU
/// for a statement that runs in microseconds (seen as 15% of the machine's CPU under 100
/// concurrent appends). The store's statements are short; none gains from JIT.
fn store_connect_options(config: &Config) -> Result<PgConnectOptions> {
    Ok(connect_options(config)?.application_name(&application_name(&config.schema)).options([
        ("search_path", config.schema.as_str()),
        ("enable_seqscan", "off"),
        ("jit", "off"),
    ]))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channels_fit_postgresql_names_and_stay_one_per_schema() {
        assert_eq!(channel_of("accounts"), "chronik.accounts.events");
        let long = "s".repeat(63);
        let other = format!("{}t", "s".repeat(62));
        assert!(channel_of(&long).len() <= 63, "{}", channel_of(&long));
        assert_ne!(channel_of(&long), channel_of(&other));
        assert_eq!(channel_of(&long), channel_of(&long.clone()));
    }
}
