//! The store's schema: migrations, isolation between schemas, immutability in the database.
//!
//! PostgreSQL only: these tests are about PostgreSQL schemas (several stores in one database) and
//! check the tables with raw SQL. The SQLite store's migrations are tested in `sqlite.rs`.

mod common;

use chronik::{Config, Error, EventStore, ExpectedVersion, admin};
use common::*;
use sqlx::Connection;

/// The backend of every store in this binary.
const BACKEND: common::Backend = common::Backend::Postgres;

#[tokio::test]
async fn start_initializes_a_fresh_schema_and_records_its_version() {
    let store = TestStore::start().await;
    let status = admin::migrations(&store.config).await.unwrap();
    assert!(!status.is_empty());
    assert!(status.iter().all(|m| m.is_applied()), "{status:?}");
    assert_eq!(admin::init(&store.config).await.unwrap(), 0, "init is idempotent");
    assert_eq!(admin::migrate(&store.config).await.unwrap(), 0);
}

#[tokio::test]
async fn start_without_auto_init_on_an_empty_schema_is_a_clear_error() {
    let config = test_config("noinit").auto_init(false);
    let _guard = SchemaGuard::new(&config);
    let err = EventStore::start(config.clone()).await.unwrap_err();
    assert!(matches!(err, Error::Migration(ref m) if m.contains("chronik init")), "{err}");
    let err = admin::migrate(&config).await.unwrap_err();
    assert!(matches!(err, Error::Migration(_)), "{err}");
    assert!(admin::migrations(&config).await.unwrap().iter().all(|m| !m.is_applied()));

    admin::init(&config).await.unwrap();
    let store = EventStore::start(config).await.unwrap();
    store.shutdown().await.unwrap();
}

#[tokio::test]
async fn concurrent_inits_of_one_schema_all_succeed() {
    let config = test_config("race");
    let _guard = SchemaGuard::new(&config);
    let inits: Vec<_> = (0..4)
        .map(|_| {
            tokio::spawn({
                let c = config.clone();
                async move { admin::init(&c).await }
            })
        })
        .collect();
    let mut applied = 0;
    for init in inits {
        applied += init.await.unwrap().unwrap();
    }
    assert_eq!(applied, admin::migrations(&config).await.unwrap().len());
}

#[tokio::test]
async fn stores_in_different_schemas_do_not_see_each_other() {
    let one = TestStore::start().await;
    let two = TestStore::start().await;
    one.append_to_stream("same", ExpectedVersion::NoStream, events("One", 1, 2)).await.unwrap();
    two.append_to_stream("same", ExpectedVersion::NoStream, events("Two", 1, 1)).await.unwrap();
    assert_eq!(one.read_stream_forward("same", 0, 10).await.unwrap().len(), 2);
    let read = two.read_all_forward(0, 10).await.unwrap();
    assert_eq!(read.len(), 1);
    assert_eq!(read[0].event_type, "Two");
}

#[tokio::test]
async fn drop_and_reset_remove_the_store() {
    let config = test_config("drop");
    let _guard = SchemaGuard::new(&config);
    let store = EventStore::start(config.clone()).await.unwrap();
    store.append_to_stream("s", ExpectedVersion::NoStream, events("E", 1, 1)).await.unwrap();
    store.shutdown().await.unwrap();

    admin::reset(&config).await.unwrap();
    let store = EventStore::start(config.clone()).await.unwrap();
    assert!(store.read_all_forward(0, 10).await.unwrap().is_empty());
    store.shutdown().await.unwrap();

    assert!(admin::drop(&config).await.unwrap());
    assert!(!admin::drop(&config).await.unwrap());
    assert!(admin::migrations(&config).await.unwrap().iter().all(|m| !m.is_applied()));
    assert!(!schema_exists(&config.schema).await, "the schema chronik created is gone");
}

/// Runs one statement on the test database.
async fn sql(statement: &str) {
    let mut conn = raw_connection().await;
    sqlx::raw_sql(statement).execute(&mut conn).await.unwrap_or_else(|e| panic!("{statement}: {e}"));
}

async fn exists(query: &str) -> bool {
    let mut conn = raw_connection().await;
    sqlx::query_scalar::<_, bool>(query).fetch_one(&mut conn).await.unwrap_or_else(|e| panic!("{query}: {e}"))
}

async fn schema_exists(schema: &str) -> bool {
    exists(&format!("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = '{schema}')")).await
}

/// Removes a schema the test made itself (chronik's `drop` rightly leaves it alone).
struct OwnSchema(String);

impl Drop for OwnSchema {
    fn drop(&mut self) {
        let statement = format!("DROP SCHEMA IF EXISTS {} CASCADE", self.0);
        std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(sql(&statement))
        })
        .join()
        .ok();
    }
}

#[tokio::test]
async fn drop_removes_only_the_store_from_a_schema_that_holds_the_applications_tables() {
    let config = test_config("shared");
    let _own = OwnSchema(config.schema.clone());
    let schema = &config.schema;
    sql(&format!("CREATE SCHEMA {schema}; CREATE TABLE {schema}.customers (id int PRIMARY KEY); INSERT INTO {schema}.customers VALUES (7)")).await;
    let store = EventStore::start(config.clone()).await.unwrap();
    store.append_to_stream("s", ExpectedVersion::NoStream, events("E", 1, 1)).await.unwrap();
    store.shutdown().await.unwrap();

    assert!(admin::drop(&config).await.unwrap(), "there was a store");
    assert!(admin::migrations(&config).await.unwrap().iter().all(|m| !m.is_applied()));
    assert!(exists(&format!("SELECT count(*) = 1 FROM {schema}.customers")).await, "the application's row is kept");
    assert!(schema_exists(schema).await, "a schema chronik did not create is kept");
    assert!(!exists(&format!("SELECT to_regclass('{schema}.events') IS NOT NULL")).await);
    assert!(!admin::drop(&config).await.unwrap(), "nothing left to drop");
    // reset leaves the application's table alone too.
    admin::init(&config).await.unwrap();
    admin::reset(&config).await.unwrap();
    assert!(exists(&format!("SELECT count(*) = 1 FROM {schema}.customers")).await);
}

#[tokio::test]
async fn drop_of_a_schema_without_a_store_removes_nothing() {
    let config = test_config("nostore");
    let _own = OwnSchema(config.schema.clone());
    let schema = &config.schema;
    // Tables that happen to have chronik's names are still not chronik's.
    sql(&format!(
        "CREATE SCHEMA {schema}; CREATE TABLE {schema}.events (id int); CREATE TABLE {schema}.customers (id int)"
    ))
    .await;
    assert!(!admin::drop(&config).await.unwrap());
    assert!(
        exists(&format!(
            "SELECT to_regclass('{schema}.events') IS NOT NULL AND to_regclass('{schema}.customers') IS NOT NULL"
        ))
        .await
    );
}

#[tokio::test]
async fn drop_refuses_when_the_applications_objects_depend_on_the_store() {
    let config = test_config("dependent");
    let _guard = SchemaGuard::new(&config);
    let store = EventStore::start(config.clone()).await.unwrap();
    store.append_to_stream("s", ExpectedVersion::NoStream, events("E", 1, 1)).await.unwrap();
    store.shutdown().await.unwrap();
    let schema = &config.schema;
    sql(&format!("CREATE VIEW {schema}.event_types AS SELECT DISTINCT event_type FROM {schema}.events")).await;

    let err = admin::drop(&config).await.unwrap_err();
    assert!(
        matches!(err, Error::Refused(ref m) if m.contains("event_types") && m.contains("Nothing was removed")),
        "{err}"
    );
    // Nothing was removed: the store still opens with its event.
    let store = EventStore::start(config.clone().auto_init(false)).await.unwrap();
    assert_eq!(store.read_all_forward(0, 10).await.unwrap().len(), 1);
    store.shutdown().await.unwrap();

    sql(&format!("DROP VIEW {schema}.event_types")).await;
    assert!(admin::drop(&config).await.unwrap());
    assert!(!schema_exists(schema).await, "the schema chronik created goes with its store");
}

#[tokio::test]
async fn drop_refuses_a_migration_table_shared_with_another_tool() {
    let config = test_config("sharedmig");
    let _guard = SchemaGuard::new(&config);
    admin::init(&config).await.unwrap();
    let schema = &config.schema;
    sql(&format!(
        "INSERT INTO {schema}._sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (1, 'the application''s own', true, '\\x00', 0)"
    ))
    .await;
    let err = admin::drop(&config).await.unwrap_err();
    assert!(matches!(err, Error::Refused(ref m) if m.contains("not chronik's")), "{err}");
    assert!(admin::migrations(&config).await.unwrap().iter().all(|m| m.is_applied()), "nothing was removed");
    sql(&format!("DELETE FROM {schema}._sqlx_migrations WHERE version = 1")).await;
}

#[tokio::test]
async fn a_schema_chronik_created_is_kept_by_drop_once_the_application_put_a_table_in_it() {
    let config = test_config("adopted");
    let _own = OwnSchema(config.schema.clone());
    admin::init(&config).await.unwrap();
    let schema = &config.schema;
    sql(&format!("CREATE TABLE {schema}.orders (id int); INSERT INTO {schema}.orders VALUES (1)")).await;
    assert!(admin::drop(&config).await.unwrap());
    assert!(schema_exists(schema).await, "the schema holds the application's table, so it stays");
    assert!(exists(&format!("SELECT count(*) = 1 FROM {schema}.orders")).await);
    assert!(admin::migrations(&config).await.unwrap().iter().all(|m| !m.is_applied()), "the store is gone");
}

#[tokio::test]
async fn a_schema_that_existed_before_init_is_kept_by_drop() {
    let config = test_config("preexisting");
    let _own = OwnSchema(config.schema.clone());
    sql(&format!("CREATE SCHEMA {}", config.schema)).await;
    admin::init(&config).await.unwrap();
    assert!(admin::drop(&config).await.unwrap());
    assert!(schema_exists(&config.schema).await, "chronik did not create it, so it does not remove it");
}

#[tokio::test]
async fn events_cannot_be_updated_deleted_or_truncated_in_the_database() {
    let store = TestStore::start().await;
    store.append_to_stream("s", ExpectedVersion::NoStream, events("E", 1, 1)).await.unwrap();
    let stored = store.read_stream_forward("s", 0, 1).await.unwrap();
    store.link_to_stream("l", ExpectedVersion::NoStream, &stored).await.unwrap();
    let schema = &store.config.schema;
    let mut conn = raw_connection().await;
    for statement in [
        format!("UPDATE {schema}.events SET event_type = 'Forged'"),
        format!("DELETE FROM {schema}.events"),
        format!("TRUNCATE {schema}.events"),
        format!("UPDATE {schema}.links SET position = 1"),
        format!("DELETE FROM {schema}.links"),
    ] {
        let err = sqlx::query(&statement).execute(&mut conn).await.unwrap_err();
        assert!(err.to_string().contains("immutable"), "{statement}: {err}");
    }
    // The permissions of a hard delete and of a scavenge are scoped to their own transaction,
    // also once a scavenge ran.
    store.scavenge().await.unwrap();
    for setting in ["chronik.enable_hard_deletes", "chronik.scavenge"] {
        let mut tx = conn.begin().await.unwrap();
        sqlx::query(&format!("SELECT set_config('{setting}', 'on', true)")).execute(&mut *tx).await.unwrap();
        sqlx::query(&format!("DELETE FROM {schema}.events")).execute(&mut *tx).await.unwrap();
        tx.rollback().await.unwrap();
        let err = sqlx::query(&format!("DELETE FROM {schema}.events")).execute(&mut conn).await.unwrap_err();
        assert!(err.to_string().contains("immutable"), "{setting}: {err}");
    }
    assert_eq!(store.read_all_forward(0, 10).await.unwrap().len(), 1);
}

#[tokio::test]
async fn invalid_configuration_is_rejected_before_connecting() {
    for (config, key) in [
        (Config::default().database_url("http://example"), "database_url"),
        (Config::default().database_url("postgres://[bad"), "database_url"),
        (Config::default().schema("Drop Table"), "schema"),
        (Config::default().schema(""), "schema"),
        (Config::default().pool_size(0), "pool_size"),
        (Config::default().max_event_size(0), "max_event_size"),
    ] {
        let err = EventStore::start(config).await.unwrap_err();
        assert!(matches!(err, Error::Config(ref c) if c.key == key), "{key}: {err}");
        assert!(err.to_string().contains(key), "{err}");
    }
    let path = std::env::temp_dir().join(format!("chronik-bad-{}.toml", uuid::Uuid::new_v4()));
    std::fs::write(&path, "schema = 42\n").unwrap();
    let err = Config::from_file(&path).unwrap_err();
    std::fs::remove_file(&path).ok();
    assert!(matches!(err, Error::Config(ref c) if c.key == "schema"), "{err}");
    let err = Config::from_file("/nonexistent/chronik.toml").unwrap_err();
    assert!(matches!(err, Error::Config(_)), "{err}");
}

#[tokio::test]
async fn an_unreachable_database_is_unavailable_not_a_panic() {
    let config = Config::default()
        .database_url("postgres://postgres@127.0.0.1:1/test")
        .schema("t_unreachable")
        .connect_timeout(std::time::Duration::from_millis(500));
    let err = EventStore::start(config).await.unwrap_err();
    assert!(matches!(err, Error::Unavailable(_)), "{err}");
}

/// A TCP server that accepts connections and never answers; it stops when dropped.
struct SilentServer {
    port: u16,
    task: tokio::task::JoinHandle<()>,
}

impl SilentServer {
    async fn start() -> SilentServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket);
            }
        });
        SilentServer { port, task }
    }
}

impl Drop for SilentServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[tokio::test]
async fn a_server_that_never_answers_is_unavailable_within_connect_timeout() {
    let server = SilentServer::start().await;
    let timeout = std::time::Duration::from_millis(500);
    let config = Config::default()
        .database_url(format!("postgres://postgres@127.0.0.1:{}/test", server.port))
        .schema("t_silent")
        .connect_timeout(timeout);
    // Each call may make a few connection attempts in a row, each bounded by the timeout.
    let bound = timeout * 6;
    let started = std::time::Instant::now();
    let err =
        tokio::time::timeout(bound, EventStore::start(config.clone())).await.expect("start gives up").unwrap_err();
    assert!(matches!(err, Error::Unavailable(ref m) if m.contains("connect_timeout")), "{err}");
    assert!(started.elapsed() >= timeout, "it waited for the server first");
    for (what, outcome) in [
        ("migrations", tokio::time::timeout(bound, admin::migrations(&config)).await.map(|r| r.map(|_| ()))),
        ("init", tokio::time::timeout(bound, admin::init(&config)).await.map(|r| r.map(|_| ()))),
        ("create", tokio::time::timeout(bound, admin::create(&config)).await.map(|r| r.map(|_| ()))),
        ("drop", tokio::time::timeout(bound, admin::drop(&config)).await.map(|r| r.map(|_| ()))),
    ] {
        let err = outcome.unwrap_or_else(|_| panic!("{what} hangs")).unwrap_err();
        assert!(matches!(err, Error::Unavailable(_)), "{what}: {err}");
    }
}

/// Takes a store back to before migration 6 (no category and type indexes), as a store written
/// by an older chronik is.
async fn without_the_indexes(schema: &str) {
    for statement in [
        format!("DROP INDEX {schema}.events_by_category"),
        format!("DROP INDEX {schema}.events_by_type"),
        format!(
            "ALTER TABLE {schema}.events DROP COLUMN category, DROP COLUMN category_number, DROP COLUMN type_number"
        ),
        format!("DELETE FROM {schema}.streams WHERE stream_uuid LIKE '$ce-%' OR stream_uuid LIKE '$et-%'"),
        format!("DELETE FROM {schema}._sqlx_migrations WHERE version = 20260101000006"),
    ] {
        sql(&statement).await;
    }
}

#[tokio::test]
async fn migrating_an_older_store_numbers_its_events_in_the_indexes() {
    let config = test_config("backfill");
    let _guard = SchemaGuard::new(&config);
    let store = EventStore::start(config.clone()).await.unwrap();
    for (stream, event_type) in
        [("account-1", "Opened"), ("order-1", "Placed"), ("account-2", "Opened"), ("solo", "Placed")]
    {
        store.append_to_stream(stream, ExpectedVersion::Any, events(event_type, 1, 2)).await.unwrap();
    }
    store.shutdown().await.unwrap();
    without_the_indexes(&config.schema).await;

    assert_eq!(admin::migrate(&config).await.unwrap(), 1);
    let store = EventStore::start(config.clone()).await.unwrap();
    let accounts = store.read_stream_forward("$ce-account", 0, 100).await.unwrap();
    let numbered: Vec<(u64, u64)> = accounts.iter().map(|e| (e.event_number, e.global_position)).collect();
    assert_eq!(numbered, vec![(1, 1), (2, 2), (3, 5), (4, 6)], "numbered in $all order");
    let placed = store.read_stream_forward("$et-Placed", 0, 100).await.unwrap();
    assert_eq!(placed.iter().map(|e| e.global_position).collect::<Vec<_>>(), vec![3, 4, 7, 8]);
    assert!(matches!(store.read_stream_forward("$ce-solo", 0, 10).await, Err(Error::StreamNotFound)));
    // New events continue each index's numbering.
    store.append_to_stream("account-3", ExpectedVersion::Any, events("Placed", 1, 1)).await.unwrap();
    assert_eq!(store.stream_info("$ce-account").await.unwrap().stream_version, 5);
    assert_eq!(store.read_stream_backward("$et-Placed", None, 1).await.unwrap()[0].event_number, 5);
    store.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_stream_in_the_way_of_the_indexes_stops_the_migration_with_its_name() {
    let config = test_config("backfill_taken");
    let _guard = SchemaGuard::new(&config);
    let store = EventStore::start(config.clone()).await.unwrap();
    store.append_to_stream("account-1", ExpectedVersion::Any, events("E", 1, 1)).await.unwrap();
    store.shutdown().await.unwrap();
    without_the_indexes(&config.schema).await;
    sql(&format!("INSERT INTO {}.streams (stream_uuid, stream_version) VALUES ('$ce-legacy', 1)", config.schema)).await;
    let err = admin::migrate(&config).await.unwrap_err();
    assert!(err.to_string().contains("$ce-legacy"), "{err}");
}
