//! What only the SQLite backend does; the conformance suite (`conformance_sqlite.rs`) checks that
//! everything else behaves as on PostgreSQL. A store file admits one running store at a time (an
//! exclusive lock, released by `shutdown`); its schema is always `public`; starting creates the
//! file and its directories; `sqlite::memory:` is a private store for the life of one
//! `EventStore`; `chronik::admin` and the `chronik` binary work on a file.

mod common;

use std::path::PathBuf;

use chronik::{Config, Error, EventStore, ExpectedVersion, SubscriptionMessage, SubscriptionOptions, admin};
use common::cli::Cli;
use common::*;
use serde_json::Value;

/// The backend of every store in this binary.
const BACKEND: common::Backend = common::Backend::Sqlite;

/// The store file of a test's configuration.
fn file_of(config: &Config) -> PathBuf {
    sqlite_file(&config.database_url).expect("a sqlite file URL")
}

/// Whether `error` is the configuration error of `key`.
fn is_config_error(error: &Error, key: &str) -> bool {
    matches!(error, Error::Config(e) if e.key == key)
}

/// Removes a directory tree when dropped.
struct RemoveDir(PathBuf);

impl Drop for RemoveDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

// ---------------------------------------------------------------------------------------------
// one running store per file

#[tokio::test]
async fn a_second_store_on_a_file_in_use_is_unavailable_and_a_restart_after_shutdown_sees_the_data() {
    let first = TestStore::start().await;
    first.append_to_stream("acc-1", ExpectedVersion::NoStream, events("E", 1, 2)).await.unwrap();
    first.append_to_stream("acc-2", ExpectedVersion::NoStream, events("E", 3, 1)).await.unwrap();

    let err = EventStore::start(first.config.clone()).await.expect_err("the file is in use");
    assert!(matches!(&err, Error::Unavailable(m) if m.contains("in use")), "{err}");
    // The refused start left the running store alone.
    first.append_to_stream("acc-1", ExpectedVersion::Exact(2), events("E", 4, 1)).await.unwrap();
    let stream = first.read_stream_forward("acc-1", 0, 100).await.unwrap();
    let all = first.read_all_forward(0, 100).await.unwrap();
    assert_eq!(all.iter().map(|e| e.global_position).collect::<Vec<_>>(), [1, 2, 3, 4]);
    first.shutdown().await.unwrap();

    let restarted = EventStore::start(first.config.clone()).await.expect("the file is free after shutdown");
    assert_eq!(restarted.read_stream_forward("acc-1", 0, 100).await.unwrap(), stream);
    assert_eq!(restarted.read_all_forward(0, 100).await.unwrap(), all);
    let next = restarted.append_to_stream("acc-1", ExpectedVersion::Exact(3), events("E", 5, 1)).await.unwrap();
    assert_eq!((next.stream_version, next.first_position), (4, 5));
    restarted.shutdown().await.unwrap();
}

#[test]
fn the_cli_on_a_file_a_running_store_holds_fails_with_in_use_and_works_after_shutdown() {
    let cli = Cli::new();
    cli.ok(&["append", "acc-1", "Opened", "{}"]);

    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let config = Config::default().database_url(cli.url.as_str()).pool_size(2);
    let store = runtime.block_on(EventStore::start(config)).expect("store starts");
    let line = cli.fail(&["append", "acc-1", "Deposited", "{}"]);
    assert!(line.contains("in use"), "{line}");
    runtime.block_on(store.shutdown()).expect("shutdown");

    let events = cli.json(&["read", "acc-1"]);
    assert_eq!(events.as_array().map(Vec::len), Some(1), "the refused append stored nothing: {events}");
    assert_eq!(cli.json(&["append", "acc-1", "Deposited", "{}"])["stream_version"], 2);
}

/// The environment variable that makes [`hold_a_store_until_killed`] hold that store.
const HOLD: &str = "CHRONIK_TEST_HOLD_STORE";

/// Not a test of its own: the process another test starts (this test binary, running only this
/// test) to hold a store file open until it is killed.
#[tokio::test]
#[ignore = "run by a_process_killed_while_it_holds_the_file_leaves_it_usable_with_nothing_lost"]
async fn hold_a_store_until_killed() {
    let Ok(url) = std::env::var(HOLD) else { return };
    let store = EventStore::start(Config::default().database_url(url)).await.expect("the store opens");
    store.append_to_stream("held", ExpectedVersion::Any, events("E", 1, 1)).await.expect("append");
    println!("holding the store");
    std::future::pending::<()>().await;
}

#[test]
fn a_process_killed_while_it_holds_the_file_leaves_it_usable_with_nothing_lost() {
    let cli = Cli::new();
    cli.ok(&["append", "acc-1", "Opened", "{}"]);
    // A process holding the store; SIGKILL gives it no chance to clean up.
    let mut holder = std::process::Command::new(std::env::current_exe().expect("this test binary"))
        .args(["--exact", "hold_a_store_until_killed", "--ignored", "--nocapture"])
        .env(HOLD, &cli.url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("the holder runs");
    let mut stdout = std::io::BufReader::new(holder.stdout.take().expect("stdout"));
    let mut line = String::new();
    while !line.contains("holding the store") {
        line.clear();
        assert!(std::io::BufRead::read_line(&mut stdout, &mut line).expect("holder prints") > 0, "the holder ended");
    }
    assert!(cli.fail(&["append", "acc-1", "Deposited", "{}"]).contains("in use"), "the holder has the file");
    // Reading beside it works: the CLI opens the file read-only.
    assert_eq!(cli.json(&["read", "$all"]).as_array().map(Vec::len), Some(2));
    holder.kill().expect("SIGKILL");
    holder.wait().expect("the holder ends");

    assert_eq!(cli.json(&["append", "acc-1", "Deposited", "{}"])["stream_version"], 2);
    let events = cli.json(&["read", "$all"]);
    assert_eq!(events.as_array().map(Vec::len), Some(3), "{events}");
}

#[tokio::test]
async fn the_cli_reads_and_tails_a_store_file_while_the_application_writes_it() {
    let cli = Cli::new();
    let config = Config::default()
        .database_url(cli.url.clone())
        .notification_poll_interval(std::time::Duration::from_millis(100));
    let store = EventStore::start(config).await.expect("the application's store");
    store.append_to_stream("acc-1", ExpectedVersion::NoStream, events("E", 1, 2)).await.unwrap();
    assert_eq!(cli.json(&["read", "acc-1"]).as_array().map(Vec::len), Some(2), "read beside the application");
    assert_eq!(cli.json(&["info", "$all"])["stream_version"], 2);
    assert!(cli.ok(&["subscriptions"]).contains("no subscriptions"));

    let mut tail = cli
        .command(&["--json", "tail", "$all", "--count", "2"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("tail runs");
    let mut stderr = std::io::BufReader::new(tail.stderr.take().expect("stderr"));
    let mut first = String::new();
    std::io::BufRead::read_line(&mut stderr, &mut first).expect("tail prints");
    assert!(first.contains("following"), "{first}");
    // The application goes on writing while tail runs.
    store.append_to_stream("acc-1", ExpectedVersion::Exact(2), events("E", 3, 2)).await.expect("not blocked by tail");
    let out = tokio::task::spawn_blocking(move || tail.wait_with_output()).await.unwrap().expect("tail ends");
    assert!(out.status.success(), "{}", common::cli::describe(&out));
    let lines: Vec<Value> =
        String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).expect("JSON line")).collect();
    assert_eq!(lines.iter().map(|e| e["global_position"].as_u64().unwrap()).collect::<Vec<_>>(), vec![3, 4]);

    // Writing commands are refused while the application has the file, and change nothing.
    assert!(cli.fail(&["append", "acc-1", "E", "{}"]).contains("in use"));
    store.shutdown().await.unwrap();
}

// ---------------------------------------------------------------------------------------------
// configuration

#[tokio::test]
async fn a_schema_other_than_public_is_a_config_error_naming_schema() {
    let config = test_config("schema").schema("accounts");
    let _guard = SchemaGuard::new(&config);
    let err = config.validate().expect_err("schema is not public");
    assert!(is_config_error(&err, "schema"), "{err}");
    let err = EventStore::start(config.clone()).await.expect_err("schema is not public");
    assert!(is_config_error(&err, "schema"), "{err}");
    assert!(config.schema("public").validate().is_ok(), "the default schema is the one allowed");
}

#[tokio::test]
async fn a_store_in_a_directory_that_does_not_exist_creates_the_directories_and_the_file() {
    let root = sqlite_dir().join(format!("dirs_{}", uuid::Uuid::new_v4().simple()));
    let _cleanup = RemoveDir(root.clone());
    let file = root.join("new/dir/store.db");
    assert!(!root.exists());

    let store = TestStore::start_with(|c| c.database_url(format!("sqlite:{}", file.display()))).await;
    assert!(file.is_file(), "{} exists once the store started", file.display());
    store.append_to_stream("acc-1", ExpectedVersion::NoStream, events("E", 1, 2)).await.unwrap();
    assert_eq!(store.read_stream_forward("acc-1", 0, 10).await.unwrap().len(), 2);
    store.shutdown().await.unwrap();
}

// ---------------------------------------------------------------------------------------------
// in memory

#[tokio::test]
async fn memory_stores_append_read_and_subscribe_each_on_its_own() {
    init_tracing();
    let config = quick(Config::default().database_url("sqlite::memory:").pool_size(4));
    let one = EventStore::start(config.clone()).await.expect("a memory store starts");
    let other = EventStore::start(config).await.expect("a second memory store starts: nothing is shared");

    let appended = one.append_to_stream("acc-1", ExpectedVersion::NoStream, events("E", 1, 3)).await.unwrap();
    assert_eq!((appended.stream_version, appended.last_position), (3, 3));
    let read = one.read_stream_forward("acc-1", 0, 10).await.unwrap();
    assert_eq!(numbers(&read), [1, 2, 3]);
    assert_eq!(read[2].decode::<serde_json::Value>().unwrap(), serde_json::json!({ "n": 3 }));

    let mut sub = one.subscribe_to_all_streams("projector", SubscriptionOptions::default()).await.unwrap();
    assert_eq!(next(&mut sub).await, SubscriptionMessage::Subscribed);
    let backlog = receive(&mut sub, 3).await;
    assert_eq!(numbers(&backlog), [1, 2, 3]);
    sub.ack(&backlog).await.unwrap();
    one.append_to_stream("acc-2", ExpectedVersion::NoStream, events("E", 4, 1)).await.unwrap();
    let live = receive(&mut sub, 1).await;
    assert_eq!((live[0].event_number, live[0].stream_uuid.as_str()), (4, "acc-2"));
    sub.ack(&live).await.unwrap();

    assert!(other.read_all_forward(0, 10).await.unwrap().is_empty(), "the other memory store is empty");
    assert!(matches!(other.stream_info("acc-1").await, Err(Error::StreamNotFound)));
    let own = other.append_to_stream("acc-1", ExpectedVersion::NoStream, events("F", 1, 1)).await.unwrap();
    assert_eq!((own.stream_version, own.first_position), (1, 1));
    assert_eq!(one.read_all_forward(0, 10).await.unwrap().len(), 4, "nothing of the other store arrived");

    drop(sub);
    one.shutdown().await.unwrap();
    other.shutdown().await.unwrap();
}

// ---------------------------------------------------------------------------------------------
// administration of a file

#[tokio::test]
async fn admin_initializes_migrates_and_drops_a_store_file() {
    let config = test_config("admin");
    let _guard = SchemaGuard::new(&config);
    let file = file_of(&config);

    let pending = admin::migrations(&config).await.unwrap();
    assert!(!pending.is_empty());
    assert!(pending.iter().all(|m| !m.is_applied()), "a fresh path has every migration pending: {pending:?}");
    let err = admin::migrate(&config).await.expect_err("no store to migrate");
    assert!(matches!(err, Error::Migration(_)), "{err}");

    assert_eq!(admin::init(&config).await.unwrap(), pending.len(), "init applies every migration");
    let applied = admin::migrations(&config).await.unwrap();
    assert!(applied.iter().all(|m| m.is_applied()), "{applied:?}");
    assert_eq!(admin::init(&config).await.unwrap(), 0, "init is idempotent");
    assert_eq!(admin::migrate(&config).await.unwrap(), 0);
    assert!(file.is_file());

    let store = EventStore::start(config.clone().auto_init(false)).await.expect("the initialized file starts");
    store.append_to_stream("acc-1", ExpectedVersion::NoStream, events("E", 1, 1)).await.unwrap();
    store.shutdown().await.unwrap();

    assert!(admin::drop(&config).await.unwrap(), "there was a store to drop");
    for path in sqlite_files(&file) {
        assert!(!path.exists(), "{} is removed", path.display());
    }
    assert!(!admin::drop(&config).await.unwrap(), "nothing left to drop");
}

#[tokio::test]
async fn drop_removes_nothing_from_a_file_that_is_not_only_a_chronik_store() {
    let dir = sqlite_dir().join(format!("foreign-{}", uuid::Uuid::new_v4().simple()));
    let _cleanup = RemoveDir(dir.clone());
    std::fs::create_dir_all(&dir).unwrap();
    let config_of = |file: &std::path::Path| Config::default().database_url(format!("sqlite:{}", file.display()));

    // A file that is not a database at all.
    let notes = dir.join("notes.db");
    std::fs::write(&notes, "my notes, not a database").unwrap();
    let err = admin::drop(&config_of(&notes)).await.unwrap_err();
    assert!(matches!(err, Error::Refused(ref m) if m.contains("not an SQLite database")), "{err}");
    assert_eq!(std::fs::read_to_string(&notes).unwrap(), "my notes, not a database");

    // An application's own SQLite database, without a store.
    let app = dir.join("app.db");
    let raw = |file: &std::path::Path, sql: &'static str| {
        let url = format!("sqlite:{}?mode=rwc", file.display());
        async move {
            use sqlx::Connection;
            let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
            sqlx::raw_sql(sql).execute(&mut conn).await.unwrap();
            conn.close().await.unwrap();
        }
    };
    raw(&app, "CREATE TABLE customers (id INTEGER PRIMARY KEY); INSERT INTO customers VALUES (7)").await;
    assert!(!admin::drop(&config_of(&app)).await.unwrap(), "no store in it");
    assert!(app.exists(), "the application's database is kept");

    // A store with the application's table beside it.
    let shared = dir.join("shared.db");
    let store = EventStore::start(config_of(&shared)).await.unwrap();
    store.append_to_stream("s", ExpectedVersion::NoStream, events("E", 1, 1)).await.unwrap();
    store.shutdown().await.unwrap();
    raw(&shared, "CREATE TABLE customers (id INTEGER PRIMARY KEY)").await;
    let err = admin::drop(&config_of(&shared)).await.unwrap_err();
    assert!(matches!(err, Error::Refused(ref m) if m.contains("table customers")), "{err}");
    let store = EventStore::start(config_of(&shared).auto_init(false)).await.expect("the store is intact");
    assert_eq!(store.read_all_forward(0, 10).await.unwrap().len(), 1);
    store.shutdown().await.unwrap();

    // `create` leaves an empty database, which `drop` may remove.
    let empty = dir.join("empty.db");
    assert!(admin::create(&config_of(&empty)).await.unwrap());
    assert!(!admin::drop(&config_of(&empty)).await.unwrap(), "no store was in it");
    assert!(!empty.exists(), "an empty database holds nothing to lose");
}

// ---------------------------------------------------------------------------------------------
// the CLI on a file

#[test]
fn the_cli_sets_up_a_store_file_and_round_trips_appends_and_reads() {
    let cli = Cli::new();
    let file = cli.store_file().expect("a store file");
    assert!(!cli.store_exists());

    let setup = cli.json(&["setup"]);
    assert!(setup["applied_migrations"].as_u64().is_some_and(|n| n > 0), "{setup}");
    assert!(file.is_file(), "setup creates {}", file.display());
    let stdout = cli.ok(&["migrations"]);
    assert!(!stdout.contains("pending"), "{stdout}");
    assert_eq!(cli.json(&["setup"])["applied_migrations"], 0);
    assert!(cli.ok(&["init"]).contains("up to date"));
    assert!(cli.ok(&["migrate"]).contains("up to date"));

    let id = uuid::Uuid::new_v4().to_string();
    let appended = cli.json(&[
        "append",
        "acc-1",
        "Opened",
        r#"{ "owner": "ana", "limit": 10 }"#,
        "--expected",
        "no-stream",
        "--metadata",
        r#"{"user":"ana"}"#,
        "--event-id",
        &id,
    ]);
    assert_eq!(appended["stream_version"], 1, "{appended}");
    assert_eq!((&appended["first_position"], &appended["last_position"]), (&1.into(), &1.into()), "{appended}");
    assert_eq!(appended["event_id"], id.as_str(), "{appended}");
    let stdout = cli.ok(&["append", "acc-1", "Deposited", r#"{"amount":5}"#, "--expected", "1"]);
    assert!(stdout.contains("stream version 2"), "{stdout}");
    cli.ok(&["append", "acc-2", "Opened", "{}"]);
    let line = cli.fail(&["append", "acc-1", "Deposited", "{}", "--expected", "1"]);
    assert!(line.contains("wrong expected version"), "{line}");

    let table = cli.ok(&["read", "acc-1"]);
    assert!(table.contains("acc-1@1") && table.contains("acc-1@2"), "{table}");
    assert!(table.contains(r#"{"owner":"ana","limit":10}"#), "data is shown compact, as stored: {table}");
    let events = cli.json(&["read", "acc-1"]);
    let events = events.as_array().expect("array");
    assert_eq!(events.len(), 2);
    assert_eq!(events[0]["event_id"], id.as_str());
    assert_eq!(events[0]["event_type"], "Opened");
    assert_eq!(events[0]["data"], serde_json::json!({ "owner": "ana", "limit": 10 }));
    assert_eq!(events[0]["metadata"], serde_json::json!({ "user": "ana" }));
    assert_eq!(events[1]["data"], serde_json::json!({ "amount": 5 }));
    assert!(events[1]["metadata"].is_null());

    let all = cli.json(&["read", "$all"]);
    let positions: Vec<(u64, &str)> = all
        .as_array()
        .expect("array")
        .iter()
        .map(|e| (e["global_position"].as_u64().expect("position"), e["stream_uuid"].as_str().expect("stream")))
        .collect();
    assert_eq!(positions, [(1, "acc-1"), (2, "acc-1"), (3, "acc-2")], "{all}");
    let info: Value = cli.json(&["info", "$all"]);
    assert_eq!(info["stream_version"], 3, "{info}");
}

/// Takes a store file back to before migration 3 (no category and type indexes), as a store
/// written by an older chronik is.
async fn without_the_indexes(config: &Config) {
    use sqlx::Connection;
    let mut conn = sqlx::SqliteConnection::connect(&config.database_url).await.unwrap();
    for statement in [
        "DROP INDEX events_by_category",
        "DROP INDEX events_by_type",
        "ALTER TABLE events DROP COLUMN category",
        "ALTER TABLE events DROP COLUMN category_number",
        "ALTER TABLE events DROP COLUMN type_number",
        "DELETE FROM streams WHERE stream_uuid LIKE '$ce-%' OR stream_uuid LIKE '$et-%'",
        "DELETE FROM _sqlx_migrations WHERE version = 20260101000003",
    ] {
        sqlx::query(statement).execute(&mut conn).await.unwrap_or_else(|e| panic!("{statement}: {e}"));
    }
    conn.close().await.unwrap();
}

#[tokio::test]
async fn migrating_an_older_store_file_numbers_its_events_in_the_indexes() {
    let config = test_config("backfill");
    let _guard = SchemaGuard::new(&config);
    let store = EventStore::start(config.clone()).await.unwrap();
    for (stream, event_type) in [("account-1", "Opened"), ("order-1", "Placed"), ("account-2", "Opened")] {
        store.append_to_stream(stream, ExpectedVersion::Any, events(event_type, 1, 2)).await.unwrap();
    }
    store.shutdown().await.unwrap();
    without_the_indexes(&config).await;

    assert_eq!(admin::migrate(&config).await.unwrap(), 1);
    let store = EventStore::start(config.clone()).await.unwrap();
    let accounts = store.read_stream_forward("$ce-account", 0, 100).await.unwrap();
    let numbered: Vec<(u64, u64)> = accounts.iter().map(|e| (e.event_number, e.global_position)).collect();
    assert_eq!(numbered, vec![(1, 1), (2, 2), (3, 5), (4, 6)]);
    let opened = store.read_stream_forward("$et-Opened", 0, 100).await.unwrap();
    assert_eq!(opened.iter().map(|e| e.global_position).collect::<Vec<_>>(), vec![1, 2, 5, 6]);
    store.append_to_stream("account-3", ExpectedVersion::Any, events("Opened", 1, 1)).await.unwrap();
    assert_eq!(store.stream_info("$et-Opened").await.unwrap().stream_version, 5);
    store.shutdown().await.unwrap();
}
