//! Creating, migrating and dropping an SQLite store. Migrations are embedded
//! (`migrations/sqlite`); each runs in its own transaction. Work on a file holds the file's
//! lock, so it never runs while a store (in this process or another) has the file open. An
//! in-memory database lives only inside its store, so they have nothing to work on there.

use std::path::Path;

use chrono::{DateTime, Utc};
use sqlx::migrate::Migrator;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{Connection, SqliteConnection};

use super::{Location, SqliteStorage, StoreLock, connect, connect_options, create_parent, lock_path, no_store, tuned};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::storage::MigrationStatus;
use crate::storage::backend::Admin;

/// How long admin commands wait for the database to open.
const OPEN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// The migrations compiled into this build.
fn migrator() -> Migrator {
    sqlx::migrate!("./migrations/sqlite")
}

/// What an admin command works on: the options of `database_url` and where they lead (the URL
/// tells an in-memory database apart).
fn target(config: &Config) -> Result<(SqliteConnectOptions, Location)> {
    let options = connect_options(config)?;
    let location = Location::of(&config.database_url, &options);
    Ok((options, location))
}

/// Opens the file with the store's settings, creating it if asked to.
async fn open(options: &SqliteConnectOptions, path: &Path, create: bool) -> Result<SqliteConnection> {
    let options = tuned(options.clone(), &Location::File(path.to_path_buf()), OPEN_TIMEOUT).create_if_missing(create);
    connect(&options, OPEN_TIMEOUT).await
}

impl Admin for SqliteStorage {
    /// The file (and its directory).
    async fn create_database(config: &Config) -> Result<bool> {
        let (options, location) = target(config)?;
        let Some(path) = location.file() else { return Ok(false) };
        if path.exists() {
            return Ok(false);
        }
        create_parent(path)?;
        open(&options, path, true).await?.close().await?;
        Ok(true)
    }

    async fn init_store(config: &Config) -> Result<usize> {
        let (options, location) = target(config)?;
        let Some(path) = location.file() else { return Ok(0) };
        create_parent(path)?;
        let _lock = StoreLock::acquire(path)?;
        let mut conn = open(&options, path, true).await?;
        let applied = run_pending(&mut conn).await;
        conn.close().await?;
        applied
    }

    async fn migrate_store(config: &Config) -> Result<usize> {
        let (options, location) = target(config)?;
        let Some(path) = location.file() else { return Ok(0) };
        if !path.exists() {
            return Err(no_store(path));
        }
        let _lock = StoreLock::acquire(path)?;
        let mut conn = open(&options, path, false).await?;
        let applied = if applied_versions(&mut conn).await?.is_empty() {
            Err(no_store(path))
        } else {
            run_pending(&mut conn).await
        };
        conn.close().await?;
        applied
    }

    /// All pending for a file that does not exist (the file is not created).
    async fn migration_status(config: &Config) -> Result<Vec<MigrationStatus>> {
        let (options, location) = target(config)?;
        let Some(path) = location.file().filter(|p| p.exists()) else {
            return Ok(MigrationStatus::of(&migrator(), &[]));
        };
        let mut conn = open(&options, path, false).await?;
        let status = status_on(&mut conn).await;
        conn.close().await?;
        status
    }

    /// On SQLite: the store's file with SQLite's companions (`-wal`, `-shm`) and its lock file,
    /// when it holds a chronik store and nothing else (or nothing at all, as `create` leaves it).
    /// A file that is not an SQLite database, or holds tables of someone else, or migrations that
    /// are not chronik's, is refused; an SQLite database without a store is left alone (`false`).
    async fn drop_store(config: &Config) -> Result<bool> {
        let (options, location) = target(config)?;
        let Some(path) = location.file() else { return Ok(false) };
        if !path.exists() {
            return Ok(false);
        }
        let lock = StoreLock::acquire(path)?;
        let holds_store = match what_it_holds(&options, path).await? {
            Holds::Nothing => false,
            Holds::Store => true,
            Holds::NoStore => return Ok(false),
        };
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
        Ok(holds_store)
    }
}

/// What a file holds, as far as `drop` is concerned.
enum Holds {
    /// Nothing at all: an empty file, or a database without a single object.
    Nothing,
    /// A chronik store and nothing else.
    Store,
    /// An SQLite database with no chronik store in it (and nothing of chronik's).
    NoStore,
}

/// The tables chronik's migrations create; indexes and triggers on them are theirs too.
const TABLES: [&str; 9] = [
    "streams",
    "events",
    "links",
    "stream_metadata",
    "snapshots",
    "subscriptions",
    "subscription_nacks",
    "hard_delete_permits",
    "_sqlx_migrations",
];

/// The first 16 bytes of every SQLite database file.
const SQLITE_HEADER: &[u8; 16] = b"SQLite format 3\0";

/// Reads what the file holds without changing it; an [`Error::Refused`] if it holds anything
/// chronik did not create.
async fn what_it_holds(options: &SqliteConnectOptions, path: &Path) -> Result<Holds> {
    let refused = |what: String| {
        Error::Refused(format!("{} {what}, so chronik does not remove it; nothing was removed", path.display()))
    };
    let mut header = Vec::with_capacity(16);
    std::fs::File::open(path)
        .and_then(|f| std::io::Read::read_to_end(&mut std::io::Read::take(f, 16), &mut header))
        .map_err(|e| Error::Unavailable(format!("cannot read {}: {e}", path.display())))?;
    if header.is_empty() {
        return Ok(Holds::Nothing);
    }
    if header.as_slice() != SQLITE_HEADER {
        return Err(refused("is not an SQLite database (and so not a chronik store)".into()));
    }
    let read_only = options.clone().read_only(true).create_if_missing(false);
    let mut conn = connect(&read_only, OPEN_TIMEOUT).await?;
    let objects: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT type, name, tbl_name FROM sqlite_master WHERE name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY type, name",
    )
    .fetch_all(&mut conn)
    .await?;
    let applied: Vec<(i64, Vec<u8>)> =
        if objects.iter().any(|(kind, name, _)| kind == "table" && name == "_sqlx_migrations") {
            sqlx::query_as("SELECT version, checksum FROM _sqlx_migrations WHERE success ORDER BY version")
                .fetch_all(&mut conn)
                .await?
        } else {
            Vec::new()
        };
    conn.close().await.ok();
    if objects.is_empty() {
        return Ok(Holds::Nothing);
    }
    let foreign: Vec<String> = objects
        .iter()
        .filter(|(_, _, table)| !TABLES.contains(&table.as_str()))
        .map(|(kind, name, _)| format!("{kind} {name}"))
        .collect();
    if applied.is_empty() {
        return if foreign.len() == objects.len() {
            Ok(Holds::NoStore)
        } else {
            Err(refused(format!("holds no chronik store but tables named like chronik's ({})", names(&objects))))
        };
    }
    let foreign_migrations = crate::storage::foreign_migrations(&migrator(), &applied);
    if !foreign_migrations.is_empty() {
        return Err(refused(format!(
            "records migrations that are not chronik's ({}) in its _sqlx_migrations table",
            foreign_migrations.join(", ")
        )));
    }
    if !foreign.is_empty() {
        return Err(refused(format!("holds objects chronik did not create beside its store ({})", foreign.join(", "))));
    }
    Ok(Holds::Store)
}

fn names(objects: &[(String, String, String)]) -> String {
    objects.iter().map(|(kind, name, _)| format!("{kind} {name}")).collect::<Vec<_>>().join(", ")
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
