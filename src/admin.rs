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

use crate::config::Config;
use crate::error::Result;
use crate::storage::Storage;

pub use crate::storage::MigrationStatus;

/// Creates the database named in `database_url` if it does not exist; returns whether it did.
/// On SQLite: the file (and its directory).
pub async fn create(config: &Config) -> Result<bool> {
    config.validate()?;
    Storage::create_database(config).await
}

/// Creates the store (on PostgreSQL its schema) if needed and applies all migrations; returns
/// how many were applied (0 for a store that is up to date). Safe to run concurrently and
/// repeatedly.
pub async fn init(config: &Config) -> Result<usize> {
    config.validate()?;
    Storage::init_store(config).await
}

/// Applies pending migrations to an existing store; returns how many were applied.
/// A schema (or SQLite file) without a store is an [`crate::Error::Migration`].
pub async fn migrate(config: &Config) -> Result<usize> {
    config.validate()?;
    Storage::migrate_store(config).await
}

/// Every migration of this build and whether the store has it.
pub async fn migrations(config: &Config) -> Result<Vec<MigrationStatus>> {
    config.validate()?;
    Storage::migration_status(config).await
}

/// Removes the store: on PostgreSQL its schema with everything in it (for the `public` schema:
/// the store's tables and functions only); on SQLite its file. Returns whether there was a
/// store to remove.
pub async fn drop(config: &Config) -> Result<bool> {
    config.validate()?;
    Storage::drop_store(config).await
}

/// Drops the store and initializes it again, empty.
pub async fn reset(config: &Config) -> Result<()> {
    drop(config).await?;
    init(config).await?;
    Ok(())
}
