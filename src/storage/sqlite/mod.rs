//! The SQLite backend: the embedded default, for a store with no database server.
//!
//! **One writing process.** A store's file has a companion `<file>-lock`, locked exclusively
//! (an OS file lock, released when the process ends however it ends) for as long as a store runs
//! on it, and while `chronik init`, `migrate` or `drop` work on it. A second process, or a second
//! store in the same process, is refused with [`Error::Unavailable`] naming the holder's pid.
//!
//! **One write connection.** Every write (the writer's batches, deletes, snapshots, checkpoints,
//! retries and parks) takes turns on one connection behind a mutex, so writes never meet
//! SQLite's `SQLITE_BUSY`, and whoever holds the connection knows no other write is in flight.
//! Reads use a pool of read-only connections; in WAL mode they never wait for the writer.
//!
//! **Durability.** `journal_mode = WAL` and `synchronous = FULL`: a commit is on disk (the WAL
//! is synced) before the writer answers, as on PostgreSQL. `NORMAL` would sync only at
//! checkpoints and could lose the last commits on a power cut, which would break the promise
//! that an `Ok` append is durable.
//!
//! **Wake-ups.** With one process there is nothing to LISTEN to: the writer announces each
//! commit to the notifier in memory (a broadcast channel), and a replay request of parked events
//! does the same. Ownership of named subscriptions is the process's own: the file lock already
//! excludes every other node.

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

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{ConnectOptions, Connection, SqliteConnection};
use tokio::sync::{MappedMutexGuard, MutexGuard, broadcast};

use crate::config::Config;
use crate::error::{Error, Result};
use crate::storage::Wake;
use crate::storage::backend::Backend;

/// Wake-ups buffered for a notifier that is busy; past that it is told to resync.
const WAKE_BUFFER: usize = 1_024;

/// The SQLite storage of one store (one file, or one in-memory database).
#[derive(Debug, Clone)]
pub struct SqliteStorage {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// Read-only connections for reads.
    pool: SqlitePool,
    /// The one write connection; `None` once closed.
    write: tokio::sync::Mutex<Option<SqliteConnection>>,
    /// The writer's announcements to the notifier.
    wakes: broadcast::Sender<Wake>,
    /// Subscriptions this process runs (what `list_subscriptions` reports as owned).
    owned: Mutex<HashSet<i32>>,
    /// The exclusive lock on the file (`None` for an in-memory database, and once closed).
    lock: Mutex<Option<StoreLock>>,
    hard_deletes: bool,
    /// A scavenge runs (see `scavenge.rs`).
    scavenging: AtomicBool,
    /// The file (or `:memory:`), for messages and `list_subscriptions`.
    label: String,
    /// This process's members of the store's cluster.
    members: members::Members,
}

impl Backend for SqliteStorage {
    /// Takes the file's lock first, then creates and migrates the store or checks it, then
    /// opens the read pool.
    async fn open(config: &Config) -> Result<SqliteStorage> {
        let options = connect_options(config)?;
        let location = Location::of(&config.database_url, &options);
        if config.read_only {
            return Self::open_read_only(config, options, location).await;
        }
        let lock = match &location {
            Location::Memory => None,
            Location::File(path) => {
                if config.auto_init {
                    create_parent(path)?;
                } else if !path.exists() {
                    return Err(no_store(path));
                }
                Some(StoreLock::acquire(path)?)
            }
        };
        let options = tuned(options, &location, config.connect_timeout).create_if_missing(config.auto_init);
        let mut conn = connect(&options, config.connect_timeout).await?;
        if config.auto_init {
            admin::run_pending(&mut conn).await?;
        } else {
            let status = admin::status_on(&mut conn).await?;
            crate::storage::require_up_to_date(&status, &location.to_string())?;
        }
        let read_options = match location {
            Location::File(_) => options.clone().read_only(true),
            // A shared in-memory database is only shared by connections that can write it.
            Location::Memory => options.clone(),
        };
        Ok(Self::with(config, read_options, Some(conn), lock, &location))
    }

    /// Releases the file too, so another store may open it.
    async fn close(&self) {
        self.inner.pool.close().await;
        if let Some(conn) = self.inner.write.lock().await.take()
            && let Err(e) = conn.close().await
        {
            tracing::debug!(error = %e, "write connection did not close cleanly");
        }
        self.inner.owned.lock().unwrap_or_else(PoisonError::into_inner).clear();
        self.inner.lock.lock().unwrap_or_else(PoisonError::into_inner).take();
    }
}

impl SqliteStorage {
    /// The read pool's open connections and, of those, the idle ones.
    pub fn pool_status(&self) -> (u32, u32) {
        let pool = &self.inner.pool;
        (pool.size(), u32::try_from(pool.num_idle()).unwrap_or(u32::MAX))
    }

    /// The storage of an opened store: a read pool on `read_options`, the write connection (if
    /// any) and the file's lock (if held).
    fn with(
        config: &Config,
        read_options: SqliteConnectOptions,
        write: Option<SqliteConnection>,
        lock: Option<StoreLock>,
        location: &Location,
    ) -> SqliteStorage {
        let pool = SqlitePoolOptions::new()
            .max_connections(config.pool_size)
            .acquire_timeout(config.connect_timeout)
            .connect_lazy_with(read_options);
        SqliteStorage {
            inner: Arc::new(Inner {
                pool,
                write: tokio::sync::Mutex::new(write),
                wakes: broadcast::channel(WAKE_BUFFER).0,
                owned: Mutex::new(HashSet::new()),
                lock: Mutex::new(lock),
                hard_deletes: config.enable_hard_deletes,
                scavenging: AtomicBool::new(false),
                label: location.to_string(),
                members: members::Members::default(),
            }),
        }
    }

    /// Opens an existing store file for reading only: no lock (a writing process may hold the
    /// file, and WAL lets readers in beside it), no write connection.
    async fn open_read_only(
        config: &Config,
        options: SqliteConnectOptions,
        location: Location,
    ) -> Result<SqliteStorage> {
        let Location::File(path) = &location else {
            return Err(Error::config(
                "read_only",
                "an in-memory SQLite store exists only inside the store that created it: there is nothing to open read-only",
            ));
        };
        if !path.exists() {
            return Err(no_store(path));
        }
        let options = tuned(options, &location, config.connect_timeout).read_only(true).create_if_missing(false);
        let mut conn = connect(&options, config.connect_timeout).await?;
        let status = admin::status_on(&mut conn).await;
        conn.close().await.ok();
        crate::storage::require_up_to_date(&status?, &location.to_string())?;
        Ok(Self::with(config, options, None, None, &location))
    }

    /// The write connection, once every write before this one is done.
    async fn write_connection(&self) -> Result<MappedMutexGuard<'_, SqliteConnection>> {
        let guard = self.inner.write.lock().await;
        MutexGuard::try_map(guard, Option::as_mut).map_err(|_| self.closed())
    }

    fn closed(&self) -> Error {
        Error::Unavailable(format!("the SQLite store {} is closed", self.inner.label))
    }

    /// Tells the notifier about a commit (nobody listening is fine: nothing to wake).
    fn announce(&self, wake: Wake) {
        let _ = self.inner.wakes.send(wake);
    }
}

/// Where an SQLite store lives.
enum Location {
    File(PathBuf),
    Memory,
}

impl Location {
    /// From the URL, which says `:memory:` or `mode=memory` (sqlx keeps the mode to itself),
    /// and the options, which hold the file; every caller tells them apart this way.
    fn of(url: &str, options: &SqliteConnectOptions) -> Location {
        if url.contains(":memory:") || url.contains("mode=memory") {
            Location::Memory
        } else {
            Location::File(options.get_filename().to_path_buf())
        }
    }

    /// The file, or `None` in memory.
    fn file(&self) -> Option<&Path> {
        match self {
            Location::File(path) => Some(path),
            Location::Memory => None,
        }
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::File(path) => write!(f, "{}", path.display()),
            Location::Memory => f.write_str(":memory:"),
        }
    }
}

/// The connection options `database_url` spells; one it does not is an [`Error::Config`]
/// naming the key.
fn connect_options(config: &Config) -> Result<SqliteConnectOptions> {
    let url = config.database_url.trim();
    SqliteConnectOptions::from_str(url).map_err(|e| Error::config("database_url", format!("cannot parse `{url}`: {e}")))
}

/// The store's settings on every connection: WAL and a synced commit for files (see the
/// module docs), foreign keys (retries and parks go with their subscription), a busy timeout
/// for the moments a reader meets a WAL checkpoint, and `REGEXP` for event filters.
fn tuned(options: SqliteConnectOptions, location: &Location, timeout: Duration) -> SqliteConnectOptions {
    let options = options.foreign_keys(true).busy_timeout(timeout).synchronous(SqliteSynchronous::Full).with_regexp();
    match location {
        Location::File(_) => options.journal_mode(SqliteJournalMode::Wal),
        Location::Memory => options,
    }
    .disable_statement_logging()
}

async fn connect(options: &SqliteConnectOptions, timeout: Duration) -> Result<SqliteConnection> {
    match tokio::time::timeout(timeout, SqliteConnection::connect_with(options)).await {
        Ok(conn) => Ok(conn?),
        Err(_) => Err(Error::Unavailable(format!("the SQLite database did not open within {timeout:?}"))),
    }
}

fn create_parent(path: &Path) -> Result<()> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => std::fs::create_dir_all(dir)
            .map_err(|e| Error::Unavailable(format!("cannot create the directory {}: {e}", dir.display()))),
        _ => Ok(()),
    }
}

fn no_store(path: &Path) -> Error {
    Error::Migration(format!(
        "{} holds no chronik store; run `chronik init` (or start with auto_init = true)",
        path.display()
    ))
}

/// The lock that makes one process the writer of a store file: an exclusive lock on
/// `<file>-lock`, which holds the owner's process id for the message of whoever is refused.
#[derive(Debug)]
struct StoreLock {
    _file: File,
}

impl StoreLock {
    fn acquire(path: &Path) -> Result<StoreLock> {
        let lock_path = lock_path(path);
        let failed = |e: std::io::Error| Error::Unavailable(format!("cannot lock {}: {e}", lock_path.display()));
        let mut file =
            OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&lock_path).map_err(failed)?;
        match file.try_lock() {
            Ok(()) => {
                file.set_len(0).map_err(failed)?;
                file.rewind().map_err(failed)?;
                write!(file, "{}", std::process::id()).map_err(failed)?;
                Ok(StoreLock { _file: file })
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut owner = String::new();
                let _ = file.read_to_string(&mut owner);
                let owner = owner.trim();
                let who = if owner == std::process::id().to_string() {
                    "another store of this process".to_string()
                } else {
                    format!("another process (pid {owner})")
                };
                Err(Error::Unavailable(format!(
                    "the SQLite store {} is in use by {who}: an SQLite store has one writing process; \
                     stop the other one first, or use PostgreSQL to run several nodes on one store",
                    path.display()
                )))
            }
            Err(std::fs::TryLockError::Error(e)) => Err(failed(e)),
        }
    }
}

/// `<file>-lock`, beside SQLite's own `-wal` and `-shm`.
fn lock_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push("-lock");
    PathBuf::from(name)
}
