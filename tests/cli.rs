//! Tests of the `chronik` binary: each runs the built executable against PostgreSQL
//! (`CHRONIK_DATABASE_URL`, default `postgres://postgres@127.0.0.1:5432/test`) in a schema of
//! its own, which is dropped (with `chronik drop --yes`) when the test ends, even on panic.
//!
//! PostgreSQL only: these tests name schemas, check the PostgreSQL session that owns a
//! subscription, and run the binary while a library store is running on the same database,
//! which a SQLite file does not allow. The binary on SQLite is tested in `sqlite.rs`.

mod common;

use std::process::{Command, Stdio};

use common::cli::{Cli, describe, error_line};
use common::database_url;
use serde_json::Value;

/// The backend of every store in this binary.
const BACKEND: common::Backend = common::Backend::Postgres;

#[test]
fn migrations_on_an_empty_schema_are_pending() {
    let cli = Cli::new();
    let out = cli.run(&["migrations"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("pending"), "{}", describe(&out));
    assert!(stdout.contains("create store"), "{}", describe(&out));

    let out = cli.run(&["--json", "migrations"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let list: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert!(!list.as_array().expect("array").is_empty());
    assert!(list.as_array().unwrap().iter().all(|m| m["applied_at"].is_null()), "{list}");

    // Reading commands do not create a store in an empty schema.
    let line = cli.fail(&["read", "$all"]);
    assert!(line.contains("holds no chronik store"), "{line}");
    assert!(!cli.store_exists());
}

#[test]
fn setup_applies_every_migration() {
    let cli = Cli::new();
    let stdout = cli.ok(&["setup"]);
    assert!(stdout.contains(&cli.schema), "{stdout}");
    let stdout = cli.ok(&["migrations"]);
    assert!(!stdout.contains("pending"), "{stdout}");
    assert!(stdout.contains("create store"), "{stdout}");
    let list = cli.json(&["migrations"]);
    assert!(list.as_array().unwrap().iter().all(|m| m["applied_at"].is_string()), "{list}");
    // Repeating is harmless; `init` and `migrate` report an up-to-date store.
    assert_eq!(cli.json(&["setup"])["applied_migrations"], 0);
    assert!(cli.ok(&["init"]).contains("up to date"));
    assert!(cli.ok(&["migrate"]).contains("up to date"));
}

#[test]
fn append_and_read_round_trip() {
    let cli = Cli::new();
    cli.ok(&["setup"]);
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
    assert_eq!(appended["first_position"], 1, "{appended}");
    assert_eq!(appended["last_position"], 1, "{appended}");
    assert_eq!(appended["event_id"], id.as_str(), "{appended}");
    let stdout = cli.ok(&["append", "acc-1", "Deposited", r#"{"amount":5}"#, "--expected", "1"]);
    assert!(stdout.contains("stream version 2"), "{stdout}");

    let table = cli.ok(&["read", "acc-1"]);
    assert!(table.contains("Opened") && table.contains("Deposited"), "{table}");
    assert!(table.contains("acc-1@1") && table.contains("acc-1@2"), "{table}");
    assert!(table.contains(r#"{"owner":"ana","limit":10}"#), "data is shown compact, as stored: {table}");

    let events = cli.json(&["read", "acc-1"]);
    let events = events.as_array().expect("array");
    assert_eq!(events.len(), 2);
    assert_eq!(events[0]["event_number"], 1);
    assert_eq!(events[0]["event_id"], id.as_str());
    assert_eq!(events[0]["event_type"], "Opened");
    assert_eq!(events[0]["content_type"], "application/json");
    assert_eq!(events[0]["data"], serde_json::json!({ "owner": "ana", "limit": 10 }));
    assert_eq!(events[0]["metadata"], serde_json::json!({ "user": "ana" }));
    assert_eq!(events[1]["data"], serde_json::json!({ "amount": 5 }));
    assert!(events[1]["metadata"].is_null());

    let backward = cli.json(&["read", "acc-1", "--backward", "--count", "1"]);
    assert_eq!(backward.as_array().unwrap().len(), 1);
    assert_eq!(backward[0]["stream_version"], 2);
    let from = cli.json(&["read", "acc-1", "--from", "2"]);
    assert_eq!(from.as_array().unwrap().len(), 1);
    assert_eq!(from[0]["event_type"], "Deposited");
}

#[test]
fn read_all_lists_every_stream_by_position() {
    let cli = Cli::new();
    assert!(cli.ok(&["setup"]).contains("initialized"));
    cli.ok(&["append", "a", "E", "1"]);
    cli.ok(&["append", "b", "E", "[true]"]);
    cli.ok(&["append", "a", "E", r#""text""#]);

    let table = cli.ok(&["read", "$all"]);
    assert!(table.contains("a@1") && table.contains("b@1") && table.contains("a@2"), "{table}");
    let all = cli.json(&["read", "$all"]);
    let numbers: Vec<u64> = all.as_array().unwrap().iter().map(|e| e["event_number"].as_u64().unwrap()).collect();
    assert_eq!(numbers, [1, 2, 3]);
    assert_eq!(all[1]["stream_uuid"], "b");
    assert_eq!(all[1]["data"], serde_json::json!([true]));
    let last = cli.json(&["read", "$all", "--backward", "--count", "1"]);
    assert_eq!(last[0]["global_position"], 3);
    assert_eq!(last[0]["data"], "text");
}

#[test]
fn wrong_expected_version_fails_with_a_clear_error() {
    let cli = Cli::new();
    cli.ok(&["append", "s", "E", "{}"]);
    let line = cli.fail(&["append", "s", "E", "{}", "--expected", "5"]);
    assert!(line.contains("wrong expected version") && line.contains('5') && line.contains('1'), "{line}");
    let line = cli.fail(&["append", "s", "E", "{}", "--expected", "no-stream"]);
    assert!(line.contains("already exists"), "{line}");
    let line = cli.fail(&["append", "other", "E", "{}", "--expected", "exists"]);
    assert!(line.contains("not found"), "{line}");
    // Nothing of the failed appends was stored.
    assert_eq!(cli.json(&["read", "$all"]).as_array().unwrap().len(), 1);
    // A malformed expectation is a usage error.
    let out = cli.run(&["append", "s", "E", "{}", "--expected", "soon"]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
}

#[test]
fn info_shows_stream_metadata() {
    let cli = Cli::new();
    cli.ok(&["append", "acc-1", "E", "{}"]);
    cli.ok(&["append", "acc-1", "E", "{}"]);
    let table = cli.ok(&["info", "acc-1"]);
    assert!(table.contains("stream_version") && table.contains("acc-1") && table.contains("created"), "{table}");
    let info = cli.json(&["info", "acc-1"]);
    assert_eq!(info["stream_uuid"], "acc-1");
    assert_eq!(info["stream_version"], 2);
    assert_eq!(info["status"], "created");
    assert!(info["deleted_at"].is_null());
    let all = cli.json(&["info", "$all"]);
    assert_eq!(all["stream_version"], 2);
    let line = cli.fail(&["info", "missing"]);
    assert!(line.contains("missing") && line.contains("not found"), "{line}");
}

#[test]
fn streams_are_searched_and_paged() {
    let cli = Cli::new();
    for stream in ["account-1", "account-2", "order-1"] {
        cli.ok(&["append", stream, "E", "{}"]);
    }
    let table = cli.ok(&["streams", "--search", "ACCOUNT"]);
    assert!(table.contains("account-1") && table.contains("account-2"), "{table}");
    assert!(!table.contains("order-1"), "{table}");
    assert!(table.contains("page 1 of 1 (2 streams)"), "{table}");

    let page = cli.json(&["streams", "--search", "account", "--page-size", "1", "--page", "2", "--sort", "name"]);
    assert_eq!(page["total_entries"], 2, "{page}");
    assert_eq!(page["total_pages"], 2, "{page}");
    assert_eq!(page["entries"].as_array().unwrap().len(), 1, "{page}");
    assert_eq!(page["entries"][0]["stream_uuid"], "account-2", "{page}");
    let newest = cli.json(&["streams", "--sort", "id", "--desc", "--page-size", "1"]);
    assert_eq!(newest["entries"][0]["stream_uuid"], "order-1", "{newest}");
    let line = cli.fail(&["streams", "--page", "0"]);
    assert!(line.contains("page"), "{line}");
}

#[test]
fn soft_delete_hides_the_stream() {
    let cli = Cli::new();
    cli.ok(&["append", "doomed", "E", r#"{"n":1}"#]);
    let line = cli.fail(&["delete", "doomed", "--expected", "7"]);
    assert!(line.contains("wrong expected version"), "{line}");
    assert!(cli.ok(&["delete", "doomed", "--expected", "1"]).contains("deleted"));
    let line = cli.fail(&["read", "doomed"]);
    assert!(line.contains("doomed") && line.contains("deleted"), "{line}");
    assert_eq!(cli.json(&["info", "$all"])["stream_version"], 1);
    // The events stay in $all.
    assert_eq!(cli.json(&["read", "$all"]).as_array().unwrap().len(), 1);
    let line = cli.fail(&["delete", "$all"]);
    assert!(line.contains("$all"), "{line}");
}

#[test]
fn hard_delete_needs_enable_hard_deletes() {
    let cli = Cli::new();
    cli.ok(&["append", "gone", "E", "{}"]);
    let line = cli.fail(&["delete", "gone", "--hard"]);
    assert!(line.contains("enable_hard_deletes"), "{line}");
    assert_eq!(cli.json(&["read", "gone"]).as_array().unwrap().len(), 1);

    let config = cli.write_file("hard.toml", "enable_hard_deletes = true\npool_size = 2\n");
    let deleted = cli.json(&["--config", &config, "delete", "gone", "--hard"]);
    assert_eq!(deleted["mode"], "hard", "{deleted}");
    assert!(cli.json(&["read", "$all"]).as_array().unwrap().is_empty());
}

#[test]
fn drop_asks_for_confirmation() {
    let cli = Cli::new();
    cli.ok(&["setup"]);
    cli.ok(&["append", "kept", "E", "{}"]);

    let out = cli.run(&["drop"]);
    let line = error_line(&out, &["drop"]);
    assert!(line.contains("aborted"), "{line}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&format!("Drop store in schema {} of database", cli.schema)), "{stderr}");
    assert!(cli.store_exists());

    let out = cli.run_with_input(&["drop"], "n\n");
    assert!(error_line(&out, &["drop"]).contains("aborted"));
    let out = cli.run_with_input(&["reset"], "maybe\n");
    assert!(error_line(&out, &["reset"]).contains("aborted"));
    assert_eq!(cli.json(&["read", "kept"]).as_array().unwrap().len(), 1);

    let out = cli.run_with_input(&["reset"], "y\n");
    assert!(out.status.success(), "{}", describe(&out));
    assert!(cli.json(&["read", "$all"]).as_array().unwrap().is_empty());

    let out = cli.run_with_input(&["drop"], "yes\n");
    assert!(out.status.success(), "{}", describe(&out));
    assert!(!cli.store_exists());
    assert_eq!(cli.json(&["drop", "--yes"])["dropped"], false);
}

#[test]
fn drop_on_a_schema_holding_the_applications_table_keeps_the_table() {
    let cli = Cli::new();
    let schema = cli.schema.clone();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let connect = || async {
        use sqlx::Connection;
        sqlx::PgConnection::connect(&cli.url).await.unwrap()
    };
    let psql =
        |sql: String| runtime.block_on(async { sqlx::raw_sql(&sql).execute(&mut connect().await).await.unwrap() });
    let count = |sql: String| {
        runtime.block_on(async { sqlx::query_scalar::<_, i64>(&sql).fetch_one(&mut connect().await).await.unwrap() })
    };
    psql(format!(
        "CREATE SCHEMA {schema}; CREATE TABLE {schema}.customers (id bigint); INSERT INTO {schema}.customers VALUES (7)"
    ));
    cli.ok(&["setup"]);
    cli.ok(&["append", "acc-1", "Opened", "{}"]);

    let stdout = cli.ok(&["drop", "--yes"]);
    assert!(stdout.contains("dropped the store") && stdout.contains("kept"), "{stdout}");
    assert!(!cli.store_exists());
    assert_eq!(count(format!("SELECT count(*) FROM {schema}.customers")), 1, "the application's row is kept");
    psql(format!("DROP SCHEMA {schema} CASCADE"));
}

#[test]
fn a_bad_config_file_names_the_key() {
    let cli = Cli::new();
    let config = cli.write_file("bad.toml", "pool_sise = 3\n");
    let line = cli.fail(&["--config", &config, "migrations"]);
    assert!(line.contains("pool_sise") && line.contains("unknown key"), "{line}");
    assert!(line.contains("did you mean `pool_size`?") && line.contains("line 1, column 1"), "{line}");
    let broken = cli.write_file("broken.toml", "pool_size = 3\nconnect_timeout = 5s\n");
    let line = cli.fail(&["--config", &broken, "migrations"]);
    assert!(line.contains("not valid TOML (line 2"), "{line}");

    // config/chronik.toml in the working directory is used without --config.
    cli.write_file("config/chronik.toml", "schema = 42\n");
    let out = cli.command(&["info", "x"]).stdin(Stdio::null()).output().expect("runs");
    let line = error_line(&out, &["info", "x"]);
    assert!(line.contains("schema") && line.contains("string"), "{line}");
    std::fs::remove_file(cli.dir.join("config/chronik.toml")).expect("remove");

    let line = cli.fail(&["--config", "/nonexistent/chronik.toml", "migrations"]);
    assert!(line.contains("cannot read file"), "{line}");
    let line = cli.fail(&["--schema", "Bad-Name", "migrations"]);
    assert!(line.contains("schema"), "{line}");
}

#[test]
fn invalid_json_data_is_rejected() {
    let cli = Cli::new();
    let line = cli.fail(&["append", "s", "E", "{amount: 1}"]);
    assert!(line.contains("not valid JSON") && line.contains("column"), "{line}");
    let line = cli.fail(&["append", "s", "E", "{}", "--metadata", "nope"]);
    assert!(line.contains("--metadata") && line.contains("not valid JSON"), "{line}");
    let out = cli.run(&["append", "s", "E", "{}", "--event-id", "not-a-uuid"]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    // Nothing was stored (nor even a store created).
    assert!(!cli.store_exists());
    // Data can come from stdin.
    let out = cli.run_with_input(&["--json", "append", "s", "E", "-"], "{\"from\": \"stdin\"}\n");
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(cli.json(&["read", "s"])[0]["data"]["from"], "stdin");
}

/// A running `chronik` process whose stdout and stderr lines arrive on channels, so a test can
/// wait for a line with a timeout while the process keeps running.
struct Running {
    child: std::process::Child,
    stdout: std::sync::mpsc::Receiver<String>,
    stderr: std::sync::mpsc::Receiver<String>,
    /// Every stderr line read so far, for assertion messages.
    stderr_seen: Vec<String>,
}

impl Running {
    fn spawn(cli: &Cli, args: &[&str]) -> Running {
        let mut child = cli
            .command(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the binary runs");
        let stdout = lines_of(child.stdout.take().expect("stdout"));
        let stderr = lines_of(child.stderr.take().expect("stderr"));
        Running { child, stdout, stderr, stderr_seen: Vec::new() }
    }

    /// Waits (up to `within`) for a stderr line containing `text`.
    fn wait_for_stderr(&mut self, text: &str, within: std::time::Duration) {
        let deadline = std::time::Instant::now() + within;
        while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
            match self.stderr.recv_timeout(left) {
                Ok(line) => {
                    let found = line.contains(text);
                    self.stderr_seen.push(line);
                    if found {
                        return;
                    }
                }
                Err(_) => break,
            }
        }
        panic!("no stderr line with {text:?} within {within:?}; stderr so far: {:?}", self.stderr_seen);
    }

    /// The next stdout line, if one comes within `within`.
    fn next_line(&self, within: std::time::Duration) -> Option<String> {
        self.stdout.recv_timeout(within).ok()
    }

    /// Waits (up to 30 s) for the process to end; its status, remaining stdout and all stderr.
    fn finish(mut self) -> (std::process::ExitStatus, Vec<String>, String) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                break status;
            }
            if std::time::Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("chronik did not exit; stderr so far: {:?}", self.stderr_seen);
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        // The readers end with the pipes.
        let rest: Vec<String> = self.stdout.iter().collect();
        self.stderr_seen.extend(self.stderr.iter());
        (status, rest, self.stderr_seen.join("\n"))
    }
}

/// The lines of a pipe, read on a thread of their own.
fn lines_of(pipe: impl std::io::Read + Send + 'static) -> std::sync::mpsc::Receiver<String> {
    use std::io::BufRead;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(pipe).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

/// Appends `Ping` events to `stream` until `tail` prints a line, and returns that line.
///
/// The first events committed right after a live listener starts can be reported to it as
/// missed instead of delivered (a warning on stderr), so one event is not enough to know the
/// tail is live.
fn ping_until_printed(cli: &Cli, tail: &Running, stream: &str) -> String {
    for n in 1..=10 {
        cli.ok(&["append", stream, "Ping", &format!(r#"{{"n":{n}}}"#)]);
        if let Some(line) = tail.next_line(std::time::Duration::from_secs(1)) {
            return line;
        }
    }
    panic!("tail printed nothing for 10 appends to `{stream}`; stderr so far: {:?}", tail.stderr_seen);
}

#[test]
fn subscriptions_list_checkpoint_lag_and_owner() {
    let cli = Cli::new();
    cli.ok(&["setup"]);
    assert!(cli.ok(&["subscriptions"]).contains("no subscriptions"));
    assert_eq!(cli.json(&["subscriptions"]), serde_json::json!([]));
    for n in 1..=5 {
        cli.ok(&["append", "acc-1", "Deposited", &format!(r#"{{"amount":{n}}}"#)]);
    }

    // Two subscriptions made through the library: `audit` on acc-1 acks 3 of its 5 events,
    // `projector` on $all acks none.
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let config = chronik::Config::default().database_url(cli.url.as_str()).schema(cli.schema.as_str()).pool_size(2);
    let (store, audit, projector) = runtime.block_on(async {
        let store = chronik::EventStore::start(config).await.expect("store starts");
        let options = chronik::SubscriptionOptions::default;
        let mut audit = store.subscribe_to_stream("acc-1", "audit", options()).await.expect("subscribe");
        let projector = store.subscribe_to_all_streams("projector", options()).await.expect("subscribe");
        loop {
            let message = tokio::time::timeout(std::time::Duration::from_secs(10), audit.recv()).await;
            if let Ok(Some(chronik::SubscriptionMessage::Events(batch))) = message {
                assert_eq!(batch.first().map(|e| e.event_number), Some(1));
                break;
            }
            assert!(message.is_ok(), "no events within 10 s");
        }
        audit.ack_number(3).await.expect("ack");
        (store, audit, projector)
    });

    // The subscription's actor writes the checkpoint right after the ack.
    let named = |list: &Value, name: &str| -> Value {
        let entries = list.as_array().expect("array");
        entries.iter().find(|s| s["name"] == name).cloned().unwrap_or_else(|| panic!("no `{name}` in {list}"))
    };
    let mut list = Value::Null;
    for _ in 0..100 {
        list = cli.json(&["subscriptions"]);
        if named(&list, "audit")["checkpoint"] == 3 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let entries = list.as_array().expect("array");
    assert_eq!(entries.len(), 2, "{list}");
    let all = named(&list, "projector");
    assert_eq!(all["stream"], "$all", "{list}");
    assert_eq!((&all["checkpoint"], &all["head"], &all["lag"]), (&0.into(), &5.into(), &5.into()), "{list}");
    let audit_info = named(&list, "audit");
    assert_eq!(audit_info["stream"], "acc-1", "{list}");
    assert_eq!(
        (&audit_info["checkpoint"], &audit_info["head"], &audit_info["lag"]),
        (&3.into(), &5.into(), &2.into()),
        "{list}"
    );
    // The library's store owns both, so its session is named.
    let application = format!("chronik {}", cli.schema);
    for entry in entries {
        assert!(entry["owner_pid"].as_i64().is_some_and(|pid| pid > 0), "{list}");
        assert_eq!(entry["owner_application"], application.as_str(), "{list}");
        assert!(entry["updated_at"].is_string() && entry["created_at"].is_string(), "{list}");
    }

    let table = cli.ok(&["subscriptions"]);
    assert!(table.contains("checkpoint") && table.contains("lag") && table.contains("owner"), "{table}");
    let audit_row = table.lines().find(|l| l.contains("audit")).unwrap_or_else(|| panic!("no audit row: {table}"));
    let cells: Vec<&str> = audit_row.split(['│', '┆']).map(str::trim).filter(|c| !c.is_empty()).collect();
    assert_eq!(&cells[..5], ["acc-1", "audit", "3", "5", "2"], "{table}");
    assert!(cells[5].starts_with("pid ") && cells[5].contains(&application), "{table}");

    // Stopped, the subscriptions keep their checkpoints and have no owner.
    runtime.block_on(async {
        drop((audit, projector));
        store.shutdown().await.expect("shutdown");
    });
    let list = cli.json(&["subscriptions"]);
    assert_eq!(named(&list, "audit")["checkpoint"], 3, "{list}");
    assert!(list.as_array().unwrap().iter().all(|s| s["owner_pid"].is_null()), "{list}");
    let table = cli.ok(&["subscriptions"]);
    assert!(!table.contains("pid "), "{table}");
}

#[test]
fn tail_prints_events_appended_after_it_started() {
    let cli = Cli::new();
    cli.ok(&["setup"]);
    cli.ok(&["append", "orders", "Old", r#"{"n":0}"#]);
    let mut tail = Running::spawn(&cli, &["--json", "tail", "orders", "--count", "4"]);
    tail.wait_for_stderr("following `orders`", std::time::Duration::from_secs(30));

    let mut lines = vec![ping_until_printed(&cli, &tail, "orders")];
    cli.ok(&["append", "other", "Noise", "{}"]);
    for (event_type, data) in [("Placed", r#"{"id": 7}"#), ("Paid", r#"{"id": 7, "amount": 12}"#), ("Shipped", "{}")] {
        cli.ok(&["append", "orders", event_type, data]);
    }
    let (status, rest, stderr) = tail.finish();
    assert!(status.success(), "tail failed: {status}\n{stderr}");
    assert!(!stderr.contains("error:"), "{stderr}");
    lines.extend(rest);
    assert_eq!(lines.len(), 4, "--count 4 prints 4 lines: {lines:#?}\n{stderr}");

    let events: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not one JSON object per line ({e}): {l}")))
        .collect();
    assert!(events.iter().all(|e| e["stream_uuid"] == "orders"), "only `orders`: {lines:#?}");
    // Each line is one event: the first is a Ping (more if a late one arrived), then the
    // appends in order.
    let types: Vec<&str> = events.iter().map(|e| e["event_type"].as_str().unwrap()).collect();
    let pings = types.iter().take_while(|t| **t == "Ping").count();
    assert!(pings >= 1, "{types:?}");
    assert_eq!(types[pings..], ["Placed", "Paid", "Shipped"][..4 - pings], "{types:?}");
    let versions: Vec<u64> = events.iter().map(|e| e["stream_version"].as_u64().unwrap()).collect();
    assert!(versions.windows(2).all(|w| w[1] == w[0] + 1), "consecutive versions: {versions:?}");
    assert_eq!(events[pings]["data"], serde_json::json!({ "id": 7 }), "{lines:#?}");
    // A stream tail numbers by stream version.
    assert!(events.iter().all(|e| e["event_number"] == e["stream_version"]), "{lines:#?}");
}

#[cfg(unix)]
#[test]
fn tail_all_stops_cleanly_on_ctrl_c() {
    let cli = Cli::new();
    cli.ok(&["setup"]);
    let mut tail = Running::spawn(&cli, &["tail", "$all"]);
    tail.wait_for_stderr("following `$all`", std::time::Duration::from_secs(30));
    let line = ping_until_printed(&cli, &tail, "acc-1");
    // `<position> <stream>@<version> <type> <data>`
    let fields: Vec<&str> = line.splitn(4, ' ').collect();
    assert!(fields[0].parse::<u64>().is_ok(), "{line}");
    assert!(fields[1].starts_with("acc-1@"), "{line}");
    assert_eq!(fields[2], "Ping", "{line}");
    assert!(fields[3].starts_with(r#"{"n":"#), "{line}");
    cli.ok(&["append", "acc-2", "Deposited", r#"{ "amount": 5 }"#]);
    // (A late Ping may come first.)
    let line = std::iter::from_fn(|| tail.next_line(std::time::Duration::from_secs(10)))
        .find(|l| !l.contains(" Ping "))
        .expect("a line for acc-2");
    assert!(line.ends_with(r#" acc-2@1 Deposited {"amount":5}"#), "{line}");

    let kill = Command::new("kill").args(["-INT", &tail.child.id().to_string()]).status().expect("kill runs");
    assert!(kill.success());
    let (status, rest, stderr) = tail.finish();
    assert_eq!(status.code(), Some(0), "Ctrl-C is a clean stop: {stderr}");
    assert!(rest.is_empty(), "{rest:?}");
    assert!(!stderr.contains("error:") && !stderr.contains("panicked"), "{stderr}");
}

#[test]
fn tail_rejects_bad_stream_ids() {
    let cli = Cli::new();
    // No store in the schema: refused, as for `read`, and none is created.
    let line = cli.fail(&["tail", "orders", "--count", "1"]);
    assert!(line.contains("holds no chronik store"), "{line}");
    assert!(!cli.store_exists());

    cli.ok(&["setup"]);
    let line = cli.fail(&["tail", ""]);
    assert!(line.contains("cannot follow stream") && line.contains("stream id is empty"), "{line}");
    let long = "x".repeat(chronik::MAX_STREAM_ID_BYTES + 1);
    let line = cli.fail(&["tail", &long]);
    assert!(line.contains("over the limit"), "{line}");
    let out = cli.run(&["tail", "orders", "--count", "0"]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
}

/// The next events `sub` receives (other messages skipped), waiting up to 10 s for them.
async fn next_events(sub: &mut chronik::Subscription) -> Vec<chronik::RecordedEvent> {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match tokio::time::timeout_at(deadline, sub.recv()).await {
            Ok(Some(chronik::SubscriptionMessage::Events(batch))) => return batch,
            Ok(Some(_)) => {}
            Ok(None) => panic!("the subscription ended"),
            Err(_) => panic!("no events within 10 s"),
        }
    }
}

/// Receives events until `count` arrived (in any number of batches).
async fn receive(sub: &mut chronik::Subscription, count: usize) -> Vec<chronik::RecordedEvent> {
    let mut events = Vec::new();
    while events.len() < count {
        events.extend(next_events(sub).await);
    }
    assert_eq!(events.len(), count, "{events:#?}");
    events
}

/// The event numbers of a JSON list of parked events.
fn parked_numbers(list: &Value) -> Vec<u64> {
    list.as_array().expect("array").iter().map(|p| p["event_number"].as_u64().expect("event_number")).collect()
}

/// The trimmed cells of a table row.
fn cells(row: &str) -> Vec<&str> {
    row.split(['│', '┆']).map(str::trim).filter(|c| !c.is_empty()).collect()
}

#[test]
fn parked_events_are_listed_and_replayed() {
    let cli = Cli::new();
    cli.ok(&["setup"]);
    for n in 1..=4 {
        cli.ok(&["append", "acc-1", "Deposited", &format!(r#"{{"amount":{n}}}"#)]);
    }

    // Through the library: `audit` on acc-1 acks events 1 and 3 and parks 2 and 4; `projector`
    // on $all parks nothing. The subscriber keeps running, so a replay reaches it.
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let config = chronik::Config::default().database_url(cli.url.as_str()).schema(cli.schema.as_str()).pool_size(2);
    let (store, mut audit, projector) = runtime.block_on(async {
        let store = chronik::EventStore::start(config).await.expect("store starts");
        let options = chronik::SubscriptionOptions::default;
        let mut audit = store.subscribe_to_stream("acc-1", "audit", options()).await.expect("subscribe");
        let projector = store.subscribe_to_all_streams("projector", options()).await.expect("subscribe");
        for event in receive(&mut audit, 4).await {
            if event.event_number % 2 == 0 {
                let reason = format!("amount {} is even:\n  refused", event.event_number);
                audit.nack(&event, chronik::NackAction::Park, reason).await.expect("park");
            } else {
                audit.ack(std::slice::from_ref(&event)).await.expect("ack");
            }
        }
        (store, audit, projector)
    });

    // The table: one row per parked event (the reason on one line), then a summary that says
    // how to replay them.
    let table = cli.ok(&["subscriptions", "parked", "acc-1", "audit"]);
    for header in ["event_number", "retry_count", "reason", "parked_at", "replay_requested"] {
        assert!(table.contains(header), "no {header} column: {table}");
    }
    let rows: Vec<Vec<&str>> = table.lines().filter(|l| l.contains("is even")).map(cells).collect();
    assert_eq!(rows.len(), 2, "{table}");
    assert_eq!(&rows[0][..3], ["2", "0", "amount 2 is even: refused"], "{table}");
    assert_eq!(&rows[1][..3], ["4", "0", "amount 4 is even: refused"], "{table}");
    assert!(rows.iter().all(|r| r[3].ends_with('Z') && r[4] == "no"), "{table}");
    assert!(table.contains("2 parked events in subscription `audit` on `acc-1`"), "{table}");
    assert!(table.contains("`chronik subscriptions parked acc-1 audit replay`"), "{table}");

    let list = cli.json(&["subscriptions", "parked", "acc-1", "audit"]);
    assert_eq!(parked_numbers(&list), [2, 4], "{list}");
    let first = &list[0];
    assert_eq!(first["reason"], "amount 2 is even:\n  refused", "the reason as given: {list}");
    assert_eq!(first["retry_count"], 0, "{list}");
    assert_eq!(first["replay_requested"], false, "{list}");
    assert!(first["parked_at"].as_str().is_some_and(|t| t.parse::<chrono::DateTime<chrono::Utc>>().is_ok()), "{list}");

    // `$all` works as a stream argument; a subscription with nothing parked says so.
    let empty = cli.ok(&["subscriptions", "parked", "$all", "projector"]);
    assert!(empty.contains("no parked events in subscription `projector` on `$all`"), "{empty}");
    assert_eq!(cli.json(&["subscriptions", "parked", "$all", "projector"]), serde_json::json!([]));
    let nothing = cli.ok(&["subscriptions", "parked", "$all", "projector", "replay"]);
    assert!(nothing.contains("nothing to replay"), "{nothing}");
    assert_eq!(cli.json(&["subscriptions", "parked", "$all", "projector", "replay"])["marked"], 0);

    // `replay --json`: both are marked, and the running subscriber receives them again.
    let replayed = cli.json(&["subscriptions", "parked", "acc-1", "audit", "replay"]);
    assert_eq!(replayed, serde_json::json!({ "stream": "acc-1", "name": "audit", "marked": 2 }));
    let again = runtime.block_on(receive(&mut audit, 2));
    assert_eq!(again.iter().map(|e| e.event_number).collect::<Vec<_>>(), [2, 4]);
    let parked = runtime.block_on(store.parked_events("acc-1", "audit")).expect("parked events");
    assert_eq!(parked.iter().map(|p| p.event_number).collect::<Vec<_>>(), [2, 4], "{parked:?}");
    assert!(parked.iter().all(|p| p.replay_requested), "{parked:?}");
    let table = cli.ok(&["subscriptions", "parked", "acc-1", "audit"]);
    let rows: Vec<Vec<&str>> = table.lines().filter(|l| l.contains("is even")).map(cells).collect();
    assert!(rows.len() == 2 && rows.iter().all(|r| r[4] == "yes"), "{table}");
    assert!(table.contains("2 parked events in subscription `audit` on `acc-1`, all marked for replay"), "{table}");

    // Parked again, they are no longer marked; the table form of `replay` marks them again.
    runtime.block_on(async {
        for event in &again {
            audit.nack(event, chronik::NackAction::Park, "still refused").await.expect("park");
        }
    });
    let list = cli.json(&["subscriptions", "parked", "acc-1", "audit"]);
    assert_eq!(parked_numbers(&list), [2, 4], "{list}");
    assert!(list.as_array().unwrap().iter().all(|p| p["replay_requested"] == false), "{list}");
    assert!(list.as_array().unwrap().iter().all(|p| p["reason"] == "still refused"), "{list}");
    // `--first 1` replays the head of the list only; a plain `replay` then marks both (the
    // first is replaying already, so only the second comes).
    let stdout = cli.ok(&["subscriptions", "parked", "acc-1", "audit", "replay", "--first", "1"]);
    assert!(stdout.contains("1 parked event of subscription `audit` on `acc-1` marked for replay"), "{stdout}");
    let mut again = runtime.block_on(receive(&mut audit, 1));
    assert_eq!(again[0].event_number, 2);
    let list = cli.json(&["subscriptions", "parked", "acc-1", "audit"]);
    let marks: Vec<&Value> = list.as_array().unwrap().iter().map(|p| &p["replay_requested"]).collect();
    assert_eq!(marks, [true, false], "{list}");
    let stdout = cli.ok(&["subscriptions", "parked", "acc-1", "audit", "replay"]);
    assert!(stdout.contains("2 parked events of subscription `audit` on `acc-1` marked for replay"), "{stdout}");
    again.extend(runtime.block_on(receive(&mut audit, 1)));
    assert_eq!(again.iter().map(|e| e.event_number).collect::<Vec<_>>(), [2, 4]);
    let parked = runtime.block_on(store.parked_events("acc-1", "audit")).expect("parked events");
    assert!(parked.len() == 2 && parked.iter().all(|p| p.replay_requested), "{parked:?}");

    // Acked, they leave the parked list.
    runtime.block_on(audit.ack(&again)).expect("ack");
    let mut list = Value::Null;
    for _ in 0..100 {
        list = cli.json(&["subscriptions", "parked", "acc-1", "audit"]);
        if list == serde_json::json!([]) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(list, serde_json::json!([]), "acked replays leave the parked list");
    assert!(cli.ok(&["subscriptions", "parked", "acc-1", "audit"]).contains("no parked events"));

    // The plain listing is unchanged.
    assert_eq!(cli.json(&["subscriptions"]).as_array().map(Vec::len), Some(2));
    runtime.block_on(async {
        drop((audit, projector));
        store.shutdown().await.expect("shutdown");
    });
}

#[test]
fn parked_events_of_an_unknown_subscription_are_an_error() {
    let cli = Cli::new();
    // No store in the schema: refused, and none is created.
    let line = cli.fail(&["subscriptions", "parked", "acc-1", "audit"]);
    assert!(line.contains("holds no chronik store"), "{line}");
    assert!(!cli.store_exists());

    cli.ok(&["setup"]);
    cli.ok(&["append", "acc-1", "Deposited", "{}"]);
    let line = cli.fail(&["subscriptions", "parked", "acc-1", "audit"]);
    assert!(line.contains("`audit` on `acc-1`") && line.contains("subscription not found"), "{line}");
    let line = cli.fail(&["--json", "subscriptions", "parked", "$all", "nobody", "replay"]);
    assert!(line.contains("cannot replay") && line.contains("`nobody` on `$all`"), "{line}");
    assert!(line.contains("subscription not found"), "{line}");
    let line = cli.fail(&["subscriptions", "parked", "", "audit"]);
    assert!(line.contains("stream id is empty"), "{line}");

    // Usage errors: the stream and the name are both needed, and only `replay` may follow.
    for args in [
        &["subscriptions", "parked", "acc-1"][..],
        &["subscriptions", "parked", "acc-1", "audit", "again"],
        &["subscriptions", "audit"],
    ] {
        let out = cli.run(args);
        assert_eq!(out.status.code(), Some(2), "chronik {args:?}: {}", describe(&out));
    }
}

#[test]
fn commands_against_a_server_that_never_answers_fail_within_connect_timeout() {
    // A server that accepts connections and never answers.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for socket in listener.incoming() {
            held.push(socket);
        }
    });
    let cli = Cli::new();
    let config = cli.write_file("silent.toml", "connect_timeout = \"500ms\"\n");
    let url = format!("postgres://postgres@127.0.0.1:{port}/test");
    for command in [&["info", "$all"][..], &["read", "s"], &["migrations"], &["setup"]] {
        let started = std::time::Instant::now();
        let mut args = vec!["--config", config.as_str(), "--database-url", url.as_str()];
        args.extend_from_slice(command);
        let line = cli.fail(&args);
        assert!(line.contains("within connect_timeout"), "{command:?}: {line}");
        assert!(started.elapsed() < std::time::Duration::from_secs(10), "{command:?} took {:?}", started.elapsed());
    }
}

#[test]
fn read_says_when_more_events_follow() {
    let cli = Cli::new();
    cli.ok(&["setup"]);
    for n in 1..=25 {
        cli.ok(&["append", "many", "E", &format!("{{\"n\": {n}}}")]);
    }
    let out = cli.ok(&["read", "many"]);
    assert!(out.contains("more events follow") && out.contains("chronik read many --from 21"), "{out}");
    let out = cli.ok(&["read", "many", "--from", "21"]);
    assert!(!out.contains("more events follow"), "{out}");
    let out = cli.ok(&["read", "many", "--backward", "--count", "5"]);
    assert!(out.contains("chronik read many --backward --from 20"), "{out}");
    assert_eq!(cli.json(&["read", "many"]).as_array().map(Vec::len), Some(20), "JSON holds exactly --count events");
}

#[test]
fn errors_are_json_under_json_and_say_what_to_do() {
    let cli = Cli::new();
    cli.ok(&["setup"]);
    let out = cli.run(&["--json", "read", "nope"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let error: Value = serde_json::from_slice(&out.stdout).expect("a JSON error on stdout");
    assert_eq!(error["error"]["kind"], "stream_not_found", "{error}");
    assert!(error["error"]["message"].as_str().unwrap().contains("nope"), "{error}");

    let out = cli.run(&["--json", "read"]);
    assert_eq!(out.status.code(), Some(2), "a usage error: {}", describe(&out));
    let error: Value = serde_json::from_slice(&out.stdout).expect("a JSON usage error on stdout");
    assert_eq!(error["error"]["kind"], "usage", "{error}");

    let line = cli.fail(&["--database-url", "sqlite::memory:", "--schema", "public", "read", "$all"]);
    assert!(line.contains("in-memory") && line.contains("give a file"), "{line}");

    let missing = format!("{}/chronik_no_such_database", database_url().rsplit_once('/').unwrap().0);
    let line = cli.fail(&["--database-url", &missing, "migrations"]);
    assert!(line.contains("does not exist") && line.contains("chronik create"), "{line}");

    let help = cli.ok(&["--help"]);
    assert!(help.contains("Examples:") && help.contains("chronik tail '$all'"), "{help}");
    assert!(cli.ok(&["read", "--help"]).contains("Examples:"));
    assert!(cli.ok(&["subscriptions", "--help"]).contains("Examples:"));
}

#[test]
fn subscriptions_info_shows_the_stored_settings_checkpoint_and_parked_count() {
    let cli = Cli::new();
    cli.ok(&["setup"]);
    for n in 1..=3 {
        cli.ok(&["append", "acc-1", "E", &format!("{{\"n\": {n}}}")]);
    }
    let config = chronik::Config::default().database_url(cli.url.clone()).schema(cli.schema.as_str()).pool_size(2);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let (store, sub) = runtime.block_on(async {
        let store = chronik::EventStore::start(config).await.expect("store");
        let options = chronik::SubscriptionOptions::default()
            .buffer_size(2)
            .concurrency_limit(2)
            .consumer_strategy(chronik::ConsumerStrategy::Pinned);
        let mut sub = store.subscribe_to_all_streams("projector", options).await.unwrap();
        let got = receive(&mut sub, 2).await;
        sub.nack(&got[0], chronik::NackAction::Park, "bad").await.unwrap();
        sub.ack(&got[1..]).await.unwrap();
        (store, sub)
    });
    let mut shown = Value::Null;
    for _ in 0..100 {
        shown = cli.json(&["subscriptions", "info", "$all", "projector"]);
        if shown["checkpoint"] == 2 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(
        (shown["checkpoint"].as_u64(), shown["head"].as_u64(), shown["lag"].as_u64()),
        (Some(2), Some(3), Some(1))
    );
    assert_eq!(shown["parked"].as_u64(), Some(1), "{shown}");
    assert!(shown["owner_pid"].as_i64().is_some(), "the library's store runs it: {shown}");
    let settings = &shown["settings"];
    assert_eq!((settings["buffer_size"].as_u64(), settings["concurrency_limit"].as_u64()), (Some(2), Some(2)));
    assert_eq!((&settings["consumer_strategy"], &settings["message_timeout"]), (&"pinned".into(), &"30s".into()));

    let table = cli.ok(&["subscriptions", "info", "$all", "projector"]);
    let row = |field: &str| -> Vec<String> {
        let line =
            table.lines().find(|l| l.contains(&format!(" {field} "))).unwrap_or_else(|| panic!("no {field}: {table}"));
        line.split(['│', '┆']).map(str::trim).filter(|c| !c.is_empty()).map(str::to_string).collect()
    };
    assert_eq!(row("parked"), ["parked", "1"], "{table}");
    assert_eq!(row("consumer_strategy"), ["consumer_strategy", "pinned"], "{table}");
    assert_eq!(row("buffer_size"), ["buffer_size", "2"], "{table}");

    runtime.block_on(async {
        sub.unsubscribe().await.unwrap();
        store.shutdown().await.unwrap();
    });
    let line = cli.fail(&["subscriptions", "info", "$all", "nobody"]);
    assert!(line.contains("cannot show subscription `nobody` on `$all`: subscription not found"), "{line}");
}

#[test]
fn subscriptions_checkpoints_and_snapshots_are_managed_from_the_cli() {
    let cli = Cli::new();
    cli.ok(&["setup"]);
    for n in 1..=4 {
        cli.ok(&["append", "acc-1", "E", &format!("{{\"n\": {n}}}")]);
    }
    let config = chronik::Config::default().database_url(cli.url.clone()).schema(cli.schema.as_str()).pool_size(2);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let store = runtime.block_on(async {
        let store = chronik::EventStore::start(config).await.expect("store");
        let mut sub =
            store.subscribe_to_all_streams("projector", chronik::SubscriptionOptions::default()).await.unwrap();
        let got = receive(&mut sub, 4).await;
        sub.ack(&got).await.unwrap();
        sub.unsubscribe().await.unwrap();
        let snapshot =
            chronik::SnapshotData::json("acc-1", 4, "Account", &serde_json::json!({ "balance": 10 })).unwrap();
        store.record_snapshot(snapshot).await.unwrap();
        store
    });
    let shown = cli.json(&["subscriptions", "checkpoint", "$all", "projector"]);
    assert_eq!((shown["checkpoint"].as_u64(), shown["lag"].as_u64()), (Some(4), Some(0)), "{shown}");
    let moved = cli.json(&["subscriptions", "checkpoint", "$all", "projector", "--set", "1"]);
    assert_eq!((moved["previous"].as_u64(), moved["checkpoint"].as_u64()), (Some(4), Some(1)), "{moved}");
    assert!(cli.ok(&["subscriptions", "checkpoint", "$all", "projector"]).contains("checkpoint 1, head 4, 3 behind"));

    // Refused while a node runs it.
    let sub = runtime.block_on(async {
        let mut sub =
            store.subscribe_to_all_streams("projector", chronik::SubscriptionOptions::default()).await.unwrap();
        assert_eq!(numbers(&receive(&mut sub, 3).await), vec![2, 3, 4], "resumes after the moved checkpoint");
        sub
    });
    let line = cli.fail(&["subscriptions", "checkpoint", "$all", "projector", "--set", "0"]);
    assert!(line.contains("subscription in use"), "{line}");
    runtime.block_on(async { sub.unsubscribe().await.unwrap() });

    let out = cli.run(&["subscriptions", "delete", "$all", "projector"]);
    assert!(error_line(&out, &["subscriptions", "delete"]).contains("aborted"), "asks first");
    cli.ok(&["subscriptions", "delete", "$all", "projector", "--yes"]);
    assert!(cli.ok(&["subscriptions"]).contains("no subscriptions"));
    let line = cli.fail(&["subscriptions", "checkpoint", "$all", "projector"]);
    assert!(line.contains("no subscription `projector`"), "{line}");

    let snapshot = cli.json(&["snapshot", "show", "acc-1"]);
    assert_eq!((snapshot["source_version"].as_u64(), &snapshot["data"]["balance"]), (Some(4), &Value::from(10)));
    assert!(cli.ok(&["snapshot", "show", "acc-1"]).contains("Account"));
    cli.ok(&["snapshot", "delete", "acc-1"]);
    assert!(cli.fail(&["snapshot", "show", "acc-1"]).contains("snapshot not found"));
    runtime.block_on(async { store.shutdown().await.unwrap() });
}

fn numbers(events: &[chronik::RecordedEvent]) -> Vec<u64> {
    events.iter().map(|e| e.event_number).collect()
}

#[test]
fn stream_metadata_is_shown_changed_and_cleared_from_the_cli() {
    let cli = Cli::new();
    for n in 1..=5 {
        cli.ok(&["append", "acc-1", "Deposited", &format!(r#"{{"n":{n}}}"#)]);
    }
    assert!(cli.ok(&["metadata", "acc-1"]).contains("has no metadata"));
    let set = cli.json(&["metadata", "acc-1", "--max-count", "2", "--custom", r#"{"owner":"billing"}"#]);
    assert_eq!(set["version"], 1, "{set}");
    assert_eq!(set["metadata"]["max_count"], 2, "{set}");
    assert_eq!(set["metadata"]["custom"]["owner"], "billing", "{set}");
    let read = cli.json(&["read", "acc-1"]);
    let versions: Vec<u64> = read.as_array().unwrap().iter().map(|e| e["stream_version"].as_u64().unwrap()).collect();
    assert_eq!(versions, vec![4, 5], "reads honour it at once");

    // Options not given keep their value; `none` drops one.
    let changed = cli.json(&["metadata", "acc-1", "--max-count", "none", "--max-age", "1d", "--truncate-before", "3"]);
    assert_eq!(changed["version"], 2, "{changed}");
    assert!(changed["metadata"]["max_count"].is_null(), "{changed}");
    assert_eq!(changed["metadata"]["max_age"], "1day", "{changed}");
    assert_eq!(changed["metadata"]["custom"]["owner"], "billing", "{changed}");
    let table = cli.ok(&["info", "acc-1"]);
    assert!(table.contains("metadata.truncate_before") && table.contains("1day"), "{table}");

    let line = cli.fail(&["metadata", "acc-1", "--max-count", "7", "--expected", "1"]);
    assert!(line.contains("wrong expected version"), "{line}");
    let out = cli.run(&["metadata", "acc-1", "--max-count", "0"]);
    assert_eq!(out.status.code(), Some(2), "a usage error: {}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least 1"), "{}", describe(&out));
    assert_eq!(cli.json(&["metadata", "acc-1"])["version"], 2, "nothing changed");
}

#[test]
fn scavenge_reports_what_it_would_remove_then_removes_it() {
    let cli = Cli::new();
    for n in 1..=5 {
        cli.ok(&["append", "acc-1", "Deposited", &format!(r#"{{"n":{n}}}"#)]);
    }
    cli.ok(&["append", "other", "E", "{}"]);
    cli.ok(&["metadata", "acc-1", "--max-count", "2"]);
    let planned = cli.json(&["scavenge", "--dry-run"]);
    assert_eq!((planned["dry_run"].as_bool(), planned["events_removed"].as_u64()), (Some(true), Some(3)), "{planned}");
    assert_eq!(cli.json(&["read", "$all"]).as_array().unwrap().len(), 6, "a dry run removes nothing");
    let text = cli.ok(&["scavenge"]);
    assert!(text.contains("removed 3 events"), "{text}");
    let left: Vec<String> =
        cli.json(&["read", "$all"]).as_array().unwrap().iter().map(|e| e["stream_version"].to_string()).collect();
    assert_eq!(left, vec!["4", "5", "1"], "acc-1@4, acc-1@5, other@1");
    assert_eq!(cli.json(&["scavenge"])["events_removed"], 0);
}

#[test]
fn a_recreatable_delete_from_the_cli_lets_the_stream_continue() {
    let cli = Cli::new();
    cli.ok(&["append", "acc-1", "E", "{}"]);
    cli.ok(&["append", "acc-1", "E", "{}"]);
    assert_eq!(cli.json(&["delete", "acc-1", "--recreatable"])["mode"], "recreatable");
    let line = cli.fail(&["read", "acc-1"]);
    assert!(line.contains("not found"), "{line}");
    let appended = cli.json(&["append", "acc-1", "E", "{}", "--expected", "no-stream"]);
    assert_eq!(appended["stream_version"], 3, "{appended}");
    let out = cli.run(&["delete", "acc-1", "--recreatable", "--hard"]);
    assert_eq!(out.status.code(), Some(2), "one kind of delete at a time: {}", describe(&out));
}

#[test]
fn a_scavenge_killed_half_way_is_finished_by_the_next_one() {
    let cli = Cli::new();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let config = chronik::Config::default().database_url(cli.url.clone()).schema(cli.schema.clone()).pool_size(2);
        let store = chronik::EventStore::start(config).await.expect("store starts");
        for i in 0..20 {
            let stream = format!("s-{i}");
            let events: Vec<chronik::EventData> = (0..100).map(|n| common::event("E", n)).collect();
            store.append_to_stream(&stream, chronik::ExpectedVersion::Any, events).await.unwrap();
            let meta = chronik::StreamMetadata::default().max_count(1);
            store.set_stream_metadata(&stream, chronik::ExpectedVersion::Any, meta).await.unwrap();
        }
        store.shutdown().await.unwrap();
    });
    // One event per transaction, so it is surely killed half-way.
    let mut child =
        cli.command(&["scavenge", "--batch-size", "1"]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let total = || cli.json(&["read", "$all", "--count", "10000"]).as_array().unwrap().len();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while total() == 2_000 {
        assert!(std::time::Instant::now() < deadline, "the scavenge removed nothing");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().expect("kill -9");
    child.wait().expect("reaped");
    let left = total();
    assert!(left > 20 && left < 2_000, "killed half-way: {left} events left");

    let report = cli.json(&["scavenge"]);
    assert_eq!(report["events_removed"].as_u64(), Some(left as u64 - 20), "{report}");
    assert_eq!(total(), 20, "one event per stream is left");
}

#[test]
fn stats_show_the_head_streams_subscriptions_and_with_watch_the_rate() {
    let cli = Cli::new();
    cli.ok(&["setup"]);
    for n in 1..=3 {
        cli.ok(&["append", &format!("acc-{}", n % 2), "Deposited", &format!(r#"{{"amount":{n}}}"#)]);
    }
    let stats = cli.json(&["stats"]);
    assert_eq!((stats["head_position"].as_u64(), stats["streams"].as_u64()), (Some(3), Some(2)), "{stats}");
    assert_eq!(stats["appended_per_second"], Value::Null, "a rate needs --watch");
    assert_eq!(stats["subscriptions"], serde_json::json!([]));
    let table = cli.ok(&["stats"]);
    assert!(table.contains("head position") && table.contains("streams"), "{table}");

    let out = cli.run(&["--json", "stats", "--watch", "0.2", "--count", "2"]);
    assert!(out.status.success(), "{}", describe(&out));
    let lines: Vec<Value> =
        String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).expect("JSON lines")).collect();
    assert_eq!(lines.len(), 2, "one object per refresh");
    assert_eq!(lines[1]["appended_per_second"], 0.0, "nothing appended between the refreshes");

    let line = cli.fail(&["stats", "--watch", "0"]);
    assert!(line.contains("--watch"), "{line}");
}
