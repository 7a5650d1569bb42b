//! Administration of a store's database objects: what the CLI commands of the same names do.
//!
//! ```no_run
//! # async fn demo() -> chronik::Result<()> {
//! let config = chronik::Config::from_file("config/chronik.toml")?.schema("accounts");
//! chronik::admin::create(&config).await?;   // the database, if absent
//! chronik::admin::init(&config).await?;     // the schema and its tables
//! for m in chronik::admin::migrations(&config).await? {
//!     println!("{} {} {}", m.version, m.description, m.is_applied());
//! }
//! # Ok(()) }
//! ```

use crate::config::{Config, DatabaseOptions};
use crate::error::Result;
use crate::storage::{postgres, sqlite};

pub use crate::storage::MigrationStatus;

/// Creates the database named in `database_url` if it does not exist; returns whether it did.
/// On SQLite: the file (and its directory).
pub async fn create(config: &Config) -> Result<bool> {
    config.validate()?;
    match config.database_options()? {
        DatabaseOptions::Postgres => postgres::create_database(config).await,
        DatabaseOptions::Sqlite(options) => sqlite::create_database(&config.database_url, &options).await,
    }
}

/// Creates the store (on PostgreSQL its schema) if needed and applies all migrations; returns
/// how many were applied (0 for a store that is up to date). Safe to run concurrently and
/// repeatedly.
pub async fn init(config: &Config) -> Result<usize> {
    config.validate()?;
    match config.database_options()? {
        DatabaseOptions::Postgres => postgres::init_store(config).await,
        DatabaseOptions::Sqlite(options) => sqlite::init_store(&config.database_url, &options).await,
    }
}

/// Applies pending migrations to an existing store; returns how many were applied.
/// A schema (or SQLite file) without a store is an [`crate::Error::Migration`].
pub async fn migrate(config: &Config) -> Result<usize> {
    config.validate()?;
    match config.database_options()? {
        DatabaseOptions::Postgres => postgres::migrate_store(config).await,
        DatabaseOptions::Sqlite(options) => sqlite::migrate_store(&config.database_url, &options).await,
    }
}

/// Every migration of this build and whether the store has it.
pub async fn migrations(config: &Config) -> Result<Vec<MigrationStatus>> {
    config.validate()?;
    match config.database_options()? {
        DatabaseOptions::Postgres => postgres::migration_status(config).await,
        DatabaseOptions::Sqlite(options) => sqlite::migration_status(&config.database_url, &options).await,
    }
}

/// Removes the store: on PostgreSQL its schema with everything in it (for the `public` schema:
/// the store's tables and functions only); on SQLite its file. Returns whether there was a
/// store to remove.
pub async fn drop(config: &Config) -> Result<bool> {
    config.validate()?;
    match config.database_options()? {
        DatabaseOptions::Postgres => postgres::drop_store(config).await,
        DatabaseOptions::Sqlite(options) => sqlite::drop_store(&config.database_url, &options).await,
    }
}

/// Drops the store and initializes it again, empty.
pub async fn reset(config: &Config) -> Result<()> {
    drop(config).await?;
    init(config).await?;
    Ok(())
}
