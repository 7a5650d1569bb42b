//! Test support: every test gets a fresh, isolated store, removed when the test ends, even when
//! it panics. On PostgreSQL that store is a schema of its own; on SQLite it is a file of its own
//! in `<temp dir>/chronik-tests/`. Which backend is the test binary's choice: every binary that
//! declares `mod common;` defines `const BACKEND: common::Backend` at its crate root.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use chronik::{Config, EventData, EventStore};

pub mod cli;
pub mod cluster;
mod outcomes;
mod streams;
mod subscriptions;
#[allow(unused_imports)] // not every test binary uses them
pub use outcomes::*;
#[allow(unused_imports)] // not every test binary uses them
pub use streams::*;
#[allow(unused_imports)] // not every test binary uses them
pub use subscriptions::*;

/// The storage backend a test binary runs its stores on.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Backend {
    /// The PostgreSQL server of [`database_url`], one schema per test.
    Postgres,
    /// A SQLite file per test, under [`sqlite_dir`].
    Sqlite,
}

/// The PostgreSQL database the tests use.
pub fn database_url() -> String {
    std::env::var("CHRONIK_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// For a PostgreSQL store that cannot start because the server is away: how to get one.
pub fn server_hint(error: &chronik::Error) -> String {
    match (crate::BACKEND, error) {
        (Backend::Postgres, chronik::Error::Unavailable(_) | chronik::Error::Database(_)) => format!(
            "\n(PostgreSQL at {} is needed here: start it, or run `bash scripts/test`, which says how, \
             or `bash scripts/test --sqlite` for the SQLite half only)",
            database_url()
        ),
        _ => String::new(),
    }
}

/// A unique schema name for one test.
pub fn unique_schema(prefix: &str) -> String {
    format!("t_{prefix}_{}", uuid::Uuid::new_v4().simple()).chars().take(63).collect()
}

/// The directory of the tests' SQLite stores.
pub fn sqlite_dir() -> PathBuf {
    std::env::temp_dir().join("chronik-tests")
}

/// A fresh SQLite store file for one test (not created yet).
pub fn unique_sqlite_file(prefix: &str) -> PathBuf {
    sqlite_dir().join(format!("{prefix}_{}.db", uuid::Uuid::new_v4().simple()))
}

/// The file of a `sqlite:` URL; `None` for another backend or an in-memory store.
pub fn sqlite_file(database_url: &str) -> Option<PathBuf> {
    let rest = database_url.trim().strip_prefix("sqlite:")?;
    let rest = rest.strip_prefix("//").unwrap_or(rest);
    let path = rest.split('?').next().unwrap_or(rest);
    (!path.is_empty() && path != ":memory:").then(|| PathBuf::from(path))
}

/// Every file a SQLite store at `path` may have: the database, its write-ahead log, its shared
/// memory index and the lock that keeps a second store off the file.
pub fn sqlite_files(path: &Path) -> [PathBuf; 4] {
    let with = |suffix: &str| {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        PathBuf::from(name)
    };
    [path.to_path_buf(), with("-wal"), with("-shm"), with("-lock")]
}

/// A store of its own (schema or file), removed on drop.
pub struct TestStore {
    pub store: EventStore,
    pub config: Config,
    _guard: SchemaGuard,
}

impl std::ops::Deref for TestStore {
    type Target = EventStore;
    fn deref(&self) -> &EventStore {
        &self.store
    }
}

impl TestStore {
    pub async fn start() -> TestStore {
        Self::start_with(|c| c).await
    }

    pub async fn start_with(configure: impl FnOnce(Config) -> Config) -> TestStore {
        init_tracing();
        let config = configure(test_config("s"));
        let guard = SchemaGuard { config: config.clone() };
        let store =
            EventStore::start(config.clone()).await.unwrap_or_else(|e| panic!("store starts: {e}{}", server_hint(&e)));
        TestStore { store, config, _guard: guard }
    }
}

/// A small-pool configuration of a fresh store of the binary's backend: a new schema on
/// PostgreSQL, a new file on SQLite (whose schema stays the default, `public`).
pub fn test_config(prefix: &str) -> Config {
    match crate::BACKEND {
        Backend::Postgres => Config::default().database_url(database_url()).schema(unique_schema(prefix)).pool_size(4),
        Backend::Sqlite => {
            let file = unique_sqlite_file(prefix);
            Config::default().database_url(format!("sqlite:{}", file.display())).pool_size(4)
        }
    }
}

/// Removes the store of `config` when dropped: drops its schema on PostgreSQL, deletes its files
/// on SQLite.
pub struct SchemaGuard {
    pub config: Config,
}

impl SchemaGuard {
    pub fn new(config: &Config) -> SchemaGuard {
        SchemaGuard { config: config.clone() }
    }
}

impl Drop for SchemaGuard {
    fn drop(&mut self) {
        let config = self.config.clone();
        // Drop runs inside the test's runtime (or while unwinding): use a thread with its own.
        let outcome = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?
                .block_on(remove_store(&config))
        })
        .join();
        if let Ok(Err(e)) = outcome {
            let store = match crate::BACKEND {
                Backend::Postgres => format!("schema {}", self.config.schema),
                Backend::Sqlite => self.config.database_url.clone(),
            };
            eprintln!("could not remove test store ({store}): {e}");
        }
    }
}

/// Removes the store of `config`, whatever state the test left it in.
async fn remove_store(config: &Config) -> Result<(), String> {
    match crate::BACKEND {
        Backend::Postgres => {
            // A test that ends mid-transaction may leave a connection holding locks that DROP
            // SCHEMA would wait for: end the store's sessions first.
            use sqlx::Connection;
            if let Ok(mut conn) = sqlx::PgConnection::connect(&database_url()).await {
                let name = chronik::testing::application_name(&config.schema);
                let _ = sqlx::query(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                     WHERE application_name = $1 AND pid <> pg_backend_pid()",
                )
                .bind(name)
                .execute(&mut conn)
                .await;
            }
            chronik::admin::drop(config).await.map(|_| ()).map_err(|e| e.to_string())
        }
        Backend::Sqlite => {
            // A store the test did not shut down still holds the file, so `drop` may refuse:
            // whatever it leaves is deleted by hand (an open file may be unlinked).
            let _ = chronik::admin::drop(config).await;
            let Some(file) = sqlite_file(&config.database_url) else { return Ok(()) };
            for path in sqlite_files(&file) {
                match std::fs::remove_file(&path) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                        return Err(format!("{}: {e}", path.display()));
                    }
                    _ => {}
                }
            }
            Ok(())
        }
    }
}

/// A JSON event of type `t` with payload `{"n": n}`.
pub fn event(t: &str, n: u64) -> EventData {
    EventData::json(t, &serde_json::json!({ "n": n })).expect("serializable")
}

/// Asserts that `result` is an [`chronik::Error::InvalidArgument`] whose message holds `word`.
pub fn assert_invalid_mentioning<T: std::fmt::Debug>(result: chronik::Result<T>, word: &str) {
    match result {
        Err(chronik::Error::InvalidArgument(message)) => {
            assert!(message.contains(word), "{message:?} should mention {word:?}")
        }
        other => panic!("expected InvalidArgument mentioning {word:?}, got {other:?}"),
    }
}

/// `count` events of type `t` numbered from `from`.
pub fn events(t: &str, from: u64, count: u64) -> Vec<EventData> {
    (from..from + count).map(|n| event(t, n)).collect()
}

/// A raw connection to the PostgreSQL test database (for assertions and fault injection).
/// PostgreSQL only: the binaries that use it are PostgreSQL-only binaries.
pub async fn raw_connection() -> sqlx::PgConnection {
    assert_eq!(crate::BACKEND, Backend::Postgres, "raw_connection() is PostgreSQL-only");
    use sqlx::Connection;
    sqlx::PgConnection::connect(&database_url()).await.expect("connect")
}

/// Logs of the library in test output, filtered by `RUST_LOG` (default: warnings).
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into());
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_test_writer().try_init();
}
