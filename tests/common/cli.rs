//! Running the built `chronik` binary on a test's own store of the binary's backend: a unique
//! schema on PostgreSQL, a `store.db` file in the test's scratch directory on SQLite. The store
//! is dropped (with `chronik drop --yes`) and the scratch directory removed when the test ends,
//! even on panic.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

use super::{Backend, database_url, sqlite_file};

/// One test's store and a scratch directory (the binary's working directory, so no
/// `config/chronik.toml` is picked up unless the test writes one there).
pub struct Cli {
    /// The `--database-url` of every run.
    pub url: String,
    /// The store's schema: a unique one on PostgreSQL, passed as `--schema`; on SQLite the
    /// default, `public`, which is not passed.
    pub schema: String,
    /// The scratch directory; on SQLite it holds the store's files too.
    pub dir: PathBuf,
}

impl Cli {
    pub fn new() -> Cli {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let dir = std::env::temp_dir().join(format!("chronik-cli-{id}"));
        std::fs::create_dir_all(&dir).expect("scratch directory");
        match crate::BACKEND {
            Backend::Postgres => {
                let schema = format!("t_cli_{id}").chars().take(63).collect();
                Cli { url: database_url(), schema, dir }
            }
            Backend::Sqlite => {
                let url = format!("sqlite:{}", dir.join("store.db").display());
                Cli { url, schema: "public".into(), dir }
            }
        }
    }

    /// The store's file on SQLite; `None` on PostgreSQL.
    pub fn store_file(&self) -> Option<PathBuf> {
        sqlite_file(&self.url)
    }

    /// The binary with this test's database, schema and working directory.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_chronik"));
        cmd.current_dir(&self.dir)
            .env_remove("CHRONIK_SCHEMA")
            .env("RUST_LOG", "warn")
            .args(["--database-url", &self.url]);
        if crate::BACKEND == Backend::Postgres {
            cmd.args(["--schema", &self.schema]);
        }
        cmd.args(args);
        cmd
    }

    /// Runs with stdin closed.
    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).stdin(Stdio::null()).output().expect("the binary runs")
    }

    /// Runs with `input` on stdin.
    pub fn run_with_input(&self, args: &[&str], input: &str) -> Output {
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
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(out.status.success(), "chronik {args:?} failed: {}", describe(&out));
        String::from_utf8(out.stdout).expect("utf-8 stdout")
    }

    /// Runs with `--json`, expects success and parses stdout.
    pub fn json(&self, args: &[&str]) -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let text = self.ok(&all);
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("chronik {args:?} printed no JSON ({e}): {text}"))
    }

    /// Runs, expects a command failure (status 1, one `error:` line) and returns that line.
    pub fn fail(&self, args: &[&str]) -> String {
        error_line(&self.run(args), args)
    }

    /// Writes a file into the scratch directory and returns its path.
    pub fn write_file(&self, name: &str, text: &str) -> String {
        let path = self.dir.join(name);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("directory");
        std::fs::write(&path, text).expect("write file");
        path.to_string_lossy().into_owned()
    }

    /// Whether every migration is applied (`chronik migrations` exits 0).
    pub fn store_exists(&self) -> bool {
        self.run(&["migrations"]).status.success()
    }
}

impl Drop for Cli {
    fn drop(&mut self) {
        let out = self.run(&["drop", "--yes"]);
        if !out.status.success() {
            let store = match crate::BACKEND {
                Backend::Postgres => format!("schema {}", self.schema),
                Backend::Sqlite => self.url.clone(),
            };
            eprintln!("could not drop test store ({store}): {}", describe(&out));
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Exit status, stdout and stderr, for assertion messages.
pub fn describe(out: &Output) -> String {
    format!(
        "{}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Checks that `out` is a command failure (status 1) with exactly one `error: ` line on stderr,
/// and returns that line.
pub fn error_line(out: &Output, args: &[&str]) -> String {
    assert_eq!(out.status.code(), Some(1), "chronik {args:?} should fail with status 1: {}", describe(out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error: ")).collect();
    assert_eq!(errors.len(), 1, "chronik {args:?} should print one error line: {}", describe(out));
    assert!(!stderr.contains("panicked"), "chronik {args:?} panicked: {}", describe(out));
    errors[0].to_string()
}
