//! Tests of the `chronik` binary: each runs the built executable against PostgreSQL
//! (`CHRONIK_DATABASE_URL`, default `postgres://postgres@127.0.0.1:5432/test`) in a schema of
//! its own, which is dropped (with `chronik drop --yes`) when the test ends, even on panic.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

/// The database the tests use.
fn database_url() -> String {
    std::env::var("CHRONIK_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// One test's store: a unique schema and a scratch directory (the binary's working directory,
/// so no `config/chronik.toml` is picked up unless the test writes one there).
struct Cli {
    url: String,
    schema: String,
    dir: PathBuf,
}

impl Cli {
    fn new() -> Cli {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let schema: String = format!("t_cli_{id}").chars().take(63).collect();
        let dir = std::env::temp_dir().join(format!("chronik-cli-{id}"));
        std::fs::create_dir_all(&dir).expect("scratch directory");
        Cli { url: database_url(), schema, dir }
    }

    /// The binary with this test's database, schema and working directory.
    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_chronik"));
        cmd.current_dir(&self.dir)
            .env_remove("CHRONIK_SCHEMA")
            .env("RUST_LOG", "warn")
            .args(["--database-url", &self.url, "--schema", &self.schema])
            .args(args);
        cmd
    }

    /// Runs with stdin closed.
    fn run(&self, args: &[&str]) -> Output {
        self.command(args).stdin(Stdio::null()).output().expect("the binary runs")
    }

    /// Runs with `input` on stdin.
    fn run_with_input(&self, args: &[&str], input: &str) -> Output {
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the binary runs");
        child.stdin.take().expect("stdin").write_all(input.as_bytes()).expect("write stdin");
        child.wait_with_output().expect("the binary finishes")
    }

    /// Runs, expects success and returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(out.status.success(), "chronik {args:?} failed: {}", describe(&out));
        String::from_utf8(out.stdout).expect("utf-8 stdout")
    }

    /// Runs with `--json`, expects success and parses stdout.
    fn json(&self, args: &[&str]) -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let text = self.ok(&all);
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("chronik {args:?} printed no JSON ({e}): {text}"))
    }

    /// Runs, expects a command failure (status 1, one `error:` line) and returns that line.
    fn fail(&self, args: &[&str]) -> String {
        error_line(&self.run(args), args)
    }

    /// Writes a file into the scratch directory and returns its path.
    fn write_file(&self, name: &str, text: &str) -> String {
        let path = self.dir.join(name);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("directory");
        std::fs::write(&path, text).expect("write file");
        path.to_string_lossy().into_owned()
    }

    /// Whether every migration is applied (`chronik migrations` exits 0).
    fn store_exists(&self) -> bool {
        self.run(&["migrations"]).status.success()
    }
}

impl Drop for Cli {
    fn drop(&mut self) {
        let out = self.run(&["drop", "--yes"]);
        if !out.status.success() {
            eprintln!("could not drop test schema {}: {}", self.schema, describe(&out));
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Exit status, stdout and stderr, for assertion messages.
fn describe(out: &Output) -> String {
    format!(
        "{}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Checks that `out` is a command failure (status 1) with exactly one `error: ` line on stderr,
/// and returns that line.
fn error_line(out: &Output, args: &[&str]) -> String {
    assert_eq!(out.status.code(), Some(1), "chronik {args:?} should fail with status 1: {}", describe(out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error: ")).collect();
    assert_eq!(errors.len(), 1, "chronik {args:?} should print one error line: {}", describe(out));
    assert!(!stderr.contains("panicked"), "chronik {args:?} panicked: {}", describe(out));
    errors[0].to_string()
}

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
fn a_bad_config_file_names_the_key() {
    let cli = Cli::new();
    let config = cli.write_file("bad.toml", "pool_sise = 3\n");
    let line = cli.fail(&["--config", &config, "migrations"]);
    assert!(line.contains("pool_sise") && line.contains("unknown key"), "{line}");

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
