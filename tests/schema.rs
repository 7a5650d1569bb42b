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
    // The hard-delete permission is scoped to its own transaction.
    let mut tx = conn.begin().await.unwrap();
    sqlx::query("SELECT set_config('chronik.enable_hard_deletes', 'on', true)").execute(&mut *tx).await.unwrap();
    sqlx::query(&format!("DELETE FROM {schema}.events")).execute(&mut *tx).await.unwrap();
    tx.rollback().await.unwrap();
    let err = sqlx::query(&format!("DELETE FROM {schema}.events")).execute(&mut conn).await.unwrap_err();
    assert!(err.to_string().contains("immutable"), "{err}");
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
