//! Creating, migrating and dropping an SQLite store. Migrations are embedded
//! (`migrations/sqlite`); each runs in its own transaction. Work on a file holds the file's
//! lock, so it never runs while a store (in this process or another) has the file open. Each
//! function takes the URL its options came from, which tells an in-memory database apart.

use std::path::Path;

use chrono::{DateTime, Utc};
use sqlx::migrate::Migrator;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{Connection, SqliteConnection};

use super::{Location, StoreLock, connect, create_parent, lock_path, no_store, tuned};
use crate::error::{Error, Result};
use crate::storage::MigrationStatus;

/// How long admin commands wait for the database to open.
const OPEN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// The migrations compiled into this build.
fn migrator() -> Migrator {
    sqlx::migrate!("./migrations/sqlite")
}

/// Opens the file with the store's settings, creating it if asked to.
async fn open(options: &SqliteConnectOptions, path: &Path, create: bool) -> Result<SqliteConnection> {
    let options = tuned(options.clone(), &Location::File(path.to_path_buf()), OPEN_TIMEOUT).create_if_missing(create);
    connect(&options, OPEN_TIMEOUT).await
}

/// Creates the file (and its directory) if it does not exist. An in-memory database lives only
/// inside its store, so admin commands have nothing to work on there. Returns whether it was created.
pub async fn create_database(url: &str, options: &SqliteConnectOptions) -> Result<bool> {
    let location = Location::of(url, options);
    let Some(path) = location.file() else { return Ok(false) };
    if path.exists() {
        return Ok(false);
    }
    create_parent(path)?;
    open(options, path, true).await?.close().await?;
    Ok(true)
}

/// Creates the file if needed and applies every pending migration. Returns how many were
/// applied.
pub async fn init_store(url: &str, options: &SqliteConnectOptions) -> Result<usize> {
    let location = Location::of(url, options);
    let Some(path) = location.file() else { return Ok(0) };
    create_parent(path)?;
    let _lock = StoreLock::acquire(path)?;
    let mut conn = open(options, path, true).await?;
    let applied = run_pending(&mut conn).await;
    conn.close().await?;
    applied
}

/// Applies pending migrations to an existing store. Returns how many were applied.
pub async fn migrate_store(url: &str, options: &SqliteConnectOptions) -> Result<usize> {
    let location = Location::of(url, options);
    let Some(path) = location.file() else { return Ok(0) };
    if !path.exists() {
        return Err(no_store(path));
    }
    let _lock = StoreLock::acquire(path)?;
    let mut conn = open(options, path, false).await?;
    let applied =
        if applied_versions(&mut conn).await?.is_empty() { Err(no_store(path)) } else { run_pending(&mut conn).await };
    conn.close().await?;
    applied
}

/// Every migration of this build and whether the store has it (all pending for a file that
/// does not exist; the file is not created).
pub async fn migration_status(url: &str, options: &SqliteConnectOptions) -> Result<Vec<MigrationStatus>> {
    let location = Location::of(url, options);
    let Some(path) = location.file().filter(|p| p.exists()) else {
        return Ok(MigrationStatus::of(&migrator(), &[]));
    };
    let mut conn = open(options, path, false).await?;
    let status = status_on(&mut conn).await;
    conn.close().await?;
    status
}

/// Removes the store's file with SQLite's companions (`-wal`, `-shm`) and its lock file.
/// Returns whether there was a file.
pub async fn drop_store(url: &str, options: &SqliteConnectOptions) -> Result<bool> {
    let location = Location::of(url, options);
    let Some(path) = location.file() else { return Ok(false) };
    if !path.exists() {
        return Ok(false);
    }
    let lock = StoreLock::acquire(path)?;
    for companion in ["", "-wal", "-shm"] {
        let mut name = path.as_os_str().to_owned();
        name.push(companion);
        match std::fs::remove_file(&name) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(Error::Unavailable(format!("cannot remove {}: {e}", Path::new(&name).display())));
            }
        }
    }
    drop(lock);
    std::fs::remove_file(lock_path(path)).ok();
    Ok(true)
}

/// The migration status read on an open connection.
pub(super) async fn status_on(conn: &mut SqliteConnection) -> Result<Vec<MigrationStatus>> {
    Ok(MigrationStatus::of(&migrator(), &applied_versions(conn).await?))
}

async fn applied_versions(conn: &mut SqliteConnection) -> Result<Vec<(i64, DateTime<Utc>)>> {
    let has_table: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations')",
    )
    .fetch_one(&mut *conn)
    .await?;
    if !has_table {
        return Ok(Vec::new());
    }
    Ok(sqlx::query_as("SELECT version, installed_on FROM _sqlx_migrations WHERE success ORDER BY version")
        .fetch_all(&mut *conn)
        .await?)
}

/// Applies pending migrations on `conn`; how many it applied.
pub(super) async fn run_pending(conn: &mut SqliteConnection) -> Result<usize> {
    let before = applied_versions(conn).await?.len();
    migrator()
        .run_direct(&mut *conn)
        .await
        .map_err(|e| Error::Migration(format!("applying migrations failed: {e}")))?;
    Ok(applied_versions(conn).await?.len().saturating_sub(before))
}
