//! Test support: every test gets its own schema (a fresh, isolated store), dropped when the
//! test ends, even when it panics.

#![allow(dead_code)]

use chronik::{Config, EventData, EventStore};

mod subscriptions;
#[allow(unused_imports)] // not every test binary uses them
pub use subscriptions::*;

/// The database the tests use.
pub fn database_url() -> String {
    std::env::var("CHRONIK_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// A unique schema name for one test.
pub fn unique_schema(prefix: &str) -> String {
    format!("t_{prefix}_{}", uuid::Uuid::new_v4().simple()).chars().take(63).collect()
}

/// A store in its own schema; the schema is dropped on drop.
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
        let store = EventStore::start(config.clone()).await.expect("store starts");
        TestStore { store, config, _guard: guard }
    }
}

/// A small-pool configuration in a fresh schema.
pub fn test_config(prefix: &str) -> Config {
    Config::default().database_url(database_url()).schema(unique_schema(prefix)).pool_size(4)
}

/// Drops the schema of `config` when dropped.
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
                .block_on(async {
                    // A test that ends mid-transaction may leave a connection holding locks
                    // that DROP SCHEMA would wait for: end the store's sessions first.
                    use sqlx::Connection;
                    if let Ok(mut conn) = sqlx::PgConnection::connect(&database_url()).await {
                        let name = chronik::storage::postgres::application_name(&config.schema);
                        let _ = sqlx::query(
                            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                             WHERE application_name = $1 AND pid <> pg_backend_pid()",
                        )
                        .bind(name)
                        .execute(&mut conn)
                        .await;
                    }
                    chronik::admin::drop(&config).await
                })
                .map_err(|e| e.to_string())
        })
        .join();
        if let Ok(Err(e)) = outcome {
            eprintln!("could not drop test schema {}: {e}", self.config.schema);
        }
    }
}

/// A JSON event of type `t` with payload `{"n": n}`.
pub fn event(t: &str, n: u64) -> EventData {
    EventData::json(t, &serde_json::json!({ "n": n })).expect("serializable")
}

/// `count` events of type `t` numbered from `from`.
pub fn events(t: &str, from: u64, count: u64) -> Vec<EventData> {
    (from..from + count).map(|n| event(t, n)).collect()
}

/// A raw connection to the test database (for assertions and fault injection).
pub async fn raw_connection() -> sqlx::PgConnection {
    use sqlx::Connection;
    sqlx::PgConnection::connect(&database_url()).await.expect("connect")
}

/// Logs of the library in test output, filtered by `RUST_LOG` (default: warnings).
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into());
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_test_writer().try_init();
}
