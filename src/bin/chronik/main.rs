//! `chronik`: the command line tool of the chronik event store.
//!
//! It administers a store (`create`, `init`, `migrate`, `migrations`, `drop`, `reset`, `setup`)
//! and works with its streams (`append`, `read`, `info`, `streams`, `delete`, `tail`), their
//! retention (`metadata`, `scavenge`), its named subscriptions (`subscriptions`: the list,
//! one subscription's settings, parked events, checkpoints, deletion) and its snapshots (`snapshot`);
//! `stats` shows its figures and `serve` serves it (`serve.rs`, `stats.rs`). One file per group of
//! commands: `admin.rs`, `streams.rs`, `retention.rs`, `subscriptions.rs`, `snapshots.rs`; what
//! they print is shaped in `output.rs`.
//!
//! The configuration comes from `--config FILE`, else `config/chronik.toml` in the current
//! directory when it exists, else the defaults; the environment (`CHRONIK_DATABASE_URL`, then
//! `DATABASE_URL`; `CHRONIK_SCHEMA`) overrides the file and `--database-url` / `--schema`
//! override both.
//!
//! It works on both backends: `--database-url sqlite:data/chronik.db` (the default
//! configuration's store) or `--database-url postgres://...`. Commands that only read open the
//! store read-only, so on SQLite they work beside the application that writes the file.
//!
//! Output is a table for people, or JSON with `--json`. Failures print one line
//! `error: <message>` on stderr (with `--json`, also `{"error": {...}}` on stdout) and exit with
//! status 1; usage errors exit with status 2.

mod admin;
mod output;
mod retention;
mod serve;
mod snapshots;
mod stats;
mod streams;
mod subscriptions;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use chronik::{Config, EventStore};
use clap::{Parser, Subcommand};
use serde_json::json;

/// The configuration file used when `--config` is not given, relative to the current directory.
const DEFAULT_CONFIG_FILE: &str = "config/chronik.toml";

/// How often `tail` looks for new events when nothing wakes it (an SQLite store written by
/// another process).
const TAIL_POLL: Duration = Duration::from_millis(200);

/// What `serve` logs unless `RUST_LOG` says otherwise.
const SERVE_LOG: &str = "warn,chronik=info,tonic::transport::server=debug";

/// Examples shown by `chronik --help`.
const EXAMPLES: &str = "\
Examples:
  chronik setup                                   create the store (config/chronik.toml, or data/chronik.db)
  chronik append account-1 Deposited '{\"amount\": 10}' --expected no-stream
  chronik read account-1                          the first 20 events; --from N --count N for more
  chronik read '$all' --backward --count 5        the five newest events of the store
  chronik tail '$all'                             follow new events until Ctrl-C
  chronik metadata session-9 --max-age 1d         keep a day of events readable; `chronik scavenge` removes the rest
  chronik subscriptions                           checkpoints, lag and owners
  chronik subscriptions info '$all' projector     one subscription's settings and figures
  chronik stats --watch                           head, append rate, lag and parked events, refreshed
  chronik --json info account-1                   machine-readable output
  chronik --database-url postgres://postgres@127.0.0.1:5432/postgres --schema accounts setup

`$all` needs quotes in a shell. `chronik <command> --help` shows a command's options.";

/// The command line: global options and one command.
#[derive(Debug, Parser)]
#[command(name = "chronik", version, about = "Administer and inspect a chronik event store", long_about = None)]
#[command(args_override_self = true, after_help = EXAMPLES)]
struct Cli {
    /// TOML configuration file (default: config/chronik.toml when it exists, else the defaults).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,

    /// Database URL (`sqlite:path/to/file.db` or `postgres://...`); overrides the configuration
    /// file and the environment.
    #[arg(long, global = true, value_name = "URL")]
    database_url: Option<String>,

    /// PostgreSQL schema holding the store; overrides the configuration file and the environment.
    #[arg(long, global = true, value_name = "SCHEMA")]
    schema: Option<String>,

    /// Print machine-readable JSON instead of tables (errors too, on stdout).
    #[arg(long, global = true)]
    json: bool,

    /// What to do.
    #[command(subcommand)]
    command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
enum Command {
    /// Create the database named in the database URL, if it does not exist.
    Create,
    /// Create the store's schema and tables (applies every migration); safe to repeat.
    Init,
    /// Apply pending migrations to an existing store.
    Migrate,
    /// List the migrations and whether they are applied; exits with 1 when any is pending.
    Migrations,
    /// Remove the store: chronik's own tables and functions (and its schema or file, if nothing
    /// else is in it). Asks for confirmation.
    Drop(admin::Confirm),
    /// Drop the store and initialize it again, empty. Asks for confirmation.
    Reset(admin::Confirm),
    /// Create the database and initialize the store (`create` + `init`).
    Setup,
    /// Append one event with a JSON payload to a stream.
    #[command(after_help = streams::APPEND_EXAMPLES)]
    Append(streams::AppendArgs),
    /// Read events of a stream, or of `$all`.
    #[command(after_help = streams::READ_EXAMPLES)]
    Read(streams::ReadArgs),
    /// Show a stream's metadata (or `$all`'s).
    Info(streams::InfoArgs),
    /// List the store's streams, a page at a time.
    Streams(streams::StreamsArgs),
    /// Delete a stream: a tombstone by default, --recreatable or --hard.
    Delete(streams::DeleteArgs),
    /// Show a stream's metadata (retention rules, custom JSON), or change it.
    #[command(after_help = retention::METADATA_EXAMPLES)]
    Metadata(retention::MetadataArgs),
    /// Remove from the database what stream retention hides.
    #[command(after_help = retention::SCAVENGE_EXAMPLES)]
    Scavenge(retention::ScavengeArgs),
    /// Named subscriptions: the list (checkpoint, lag, owning session), one subscription's
    /// settings, parked events, checkpoints, deletion.
    #[command(after_help = subscriptions::EXAMPLES)]
    Subscriptions(subscriptions::SubscriptionsArgs),
    /// Show or delete the snapshot of a source.
    #[command(after_help = snapshots::EXAMPLES)]
    Snapshot(snapshots::SnapshotArgs),
    /// Print the events appended to a stream (or `$all`) from now on, until Ctrl-C.
    Tail(streams::TailArgs),
    /// The store's figures: head, streams, append rate, subscriptions' lag and parked events,
    /// nodes; `--watch` refreshes them.
    #[command(after_help = stats::EXAMPLES)]
    Stats(stats::StatsArgs),
    /// Serve the store over the KurrentDB gRPC protocol (for KurrentDB clients in any language)
    /// until SIGINT or SIGTERM.
    #[command(after_help = serve::EXAMPLES)]
    Serve(serve::ServeArgs),
}

/// A failed command: the one-line message printed after `error: `, and what kind of failure it
/// is (for `--json`).
#[derive(Debug)]
pub(crate) struct Failure {
    message: String,
    kind: &'static str,
}

impl Failure {
    /// A failure of the command itself (bad input, an aborted confirmation).
    pub(crate) fn new(message: impl Into<String>) -> Failure {
        Failure { message: message.into(), kind: "command" }
    }

    /// The same failure (its kind) with another message.
    pub(crate) fn with_message(self, message: &str) -> Failure {
        Failure { message: message.to_string(), ..self }
    }

    /// What it says.
    pub(crate) fn message(&self) -> &str {
        &self.message
    }
}

impl From<chronik::Error> for Failure {
    fn from(err: chronik::Error) -> Failure {
        Failure { kind: chronik::Error::kind(&err), message: with_hint(&err) }
    }
}

/// Adds what the command was doing to a library error.
pub(crate) trait Context<T> {
    /// Prefixes the error's message with `what`.
    fn context(self, what: impl FnOnce() -> String) -> Result<T, Failure>;
}

impl<T> Context<T> for chronik::Result<T> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T, Failure> {
        self.map_err(|e| {
            let failure = Failure::from(e);
            Failure { message: format!("{}: {}", what(), failure.message), ..failure }
        })
    }
}

/// What a command produces: an exit status (output is already printed).
pub(crate) type Outcome = Result<ExitCode, Failure>;

/// The error's message, with what to do about the mistakes a newcomer makes first.
fn with_hint(err: &chronik::Error) -> String {
    if let chronik::Error::Database(sqlx::Error::Database(db)) = err
        && db.code().as_deref() == Some("3D000")
    {
        return format!("{err}; `chronik create` (or `chronik setup`) creates it");
    }
    err.to_string()
}

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().collect();
    let json = args.iter().any(|a| a == "--json");
    let cli = match Cli::try_parse_from(&args) {
        Ok(cli) => cli,
        Err(e) => return usage_error(e, json),
    };
    let otlp = match &cli.command {
        Command::Serve(args) => serve::otlp_endpoint(args),
        _ => None,
    };
    let exporting = match init_tracing(matches!(cli.command, Command::Serve(_)), otlp) {
        Ok(exporting) => exporting,
        Err(Failure { message, .. }) => {
            eprintln!("error: {message}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = run(cli).await;
    serve::stop_exporting(exporting);
    match outcome {
        Ok(code) => code,
        Err(Failure { message, kind }) => {
            // One line, whatever the message holds.
            let line = message.split_whitespace().collect::<Vec<_>>().join(" ");
            if json {
                println!("{}", json!({ "error": { "kind": kind, "message": line } }));
            }
            eprintln!("error: {line}");
            ExitCode::FAILURE
        }
    }
}

/// A usage error (status 2), as clap prints it; with `--json`, also as JSON on stdout. Help and
/// the version are not errors.
fn usage_error(e: clap::Error, json: bool) -> ExitCode {
    use clap::error::ErrorKind;
    let informational = matches!(
        e.kind(),
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    );
    if json && !informational {
        let rendered = e.render().to_string();
        let message = rendered.lines().next().unwrap_or_default().trim_start_matches("error: ").to_string();
        println!("{}", json!({ "error": { "kind": "usage", "message": message } }));
    }
    e.exit()
}

/// Logs to stderr, filtered by `RUST_LOG` (default `warn`; for `serve` also chronik's own
/// notices and a line per failed client connection, which tonic says at debug level).
/// With an OTLP endpoint (`serve --otlp-endpoint`, feature `otel`), spans are also exported
/// there; the exporter is returned to be flushed at the end.
fn init_tracing(serving: bool, otlp: Option<&str>) -> Result<serve::Exporting, Failure> {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let default = if serving { SERVE_LOG } else { "warn" };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let (exporting, layer) = serve::exporting(otlp)?;
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    // A second initialization cannot happen here; ignore the error rather than panic.
    let _ = tracing_subscriber::registry().with(filter).with(fmt).with(layer).try_init();
    Ok(exporting)
}

/// Loads the configuration and runs the command.
async fn run(cli: Cli) -> Outcome {
    let config = load_config(cli.config.as_deref(), cli.database_url, cli.schema)?;
    let json = cli.json;
    match cli.command {
        Command::Create => admin::create(&config, json).await,
        Command::Init => admin::init(&config, json).await,
        Command::Migrate => admin::migrate(&config, json).await,
        Command::Migrations => admin::migrations(&config, json).await,
        Command::Drop(confirm) => admin::drop_store(&config, confirm.yes, json).await,
        Command::Reset(confirm) => admin::reset(&config, confirm.yes, json).await,
        Command::Setup => admin::setup(&config, json).await,
        Command::Append(args) => {
            let event = streams::build_event(&args)?;
            with_store(config, false, async |store| streams::append(store, &args, event, json).await).await
        }
        Command::Read(args) => with_reader(config, async |store| streams::read(store, &args, json).await).await,
        Command::Info(args) => with_reader(config, async |store| streams::info(store, &args, json).await).await,
        Command::Streams(args) => with_reader(config, async |store| streams::streams(store, &args, json).await).await,
        Command::Delete(args) => {
            with_store(config, true, async |store| streams::delete(store, &args, json).await).await
        }
        Command::Metadata(args) => retention::metadata(config, args, json).await,
        Command::Scavenge(args) => retention::scavenge(config, args, json).await,
        Command::Subscriptions(args) => subscriptions::run(config, args, json).await,
        Command::Snapshot(args) => snapshots::run(config, args, json).await,
        Command::Tail(args) => {
            let poll = config.notification_poll_interval.min(TAIL_POLL);
            let config = config.notification_poll_interval(poll);
            with_reader(config, async |store| streams::tail(store, &args, json).await).await
        }
        Command::Stats(args) => with_reader(config, async |store| stats::stats(store, &args, json).await).await,
        Command::Serve(args) => serve::serve(config, args, json).await,
    }
}

/// The configuration: `--config`, else `config/chronik.toml` when present, else the defaults
/// (both with environment overrides), then the command line overrides.
fn load_config(file: Option<&Path>, database_url: Option<String>, schema: Option<String>) -> Result<Config, Failure> {
    let mut config = match file {
        Some(path) => Config::from_file(path)?,
        None if Path::new(DEFAULT_CONFIG_FILE).is_file() => Config::from_file(DEFAULT_CONFIG_FILE)?,
        None => Config::from_env(),
    };
    if let Some(url) = database_url {
        config = config.database_url(url);
    }
    if let Some(schema) = schema {
        config = config.schema(schema);
    }
    config.validate()?;
    if config.is_sqlite() && (config.database_url.contains(":memory:") || config.database_url.contains("mode=memory")) {
        return Err(Failure {
            kind: "config",
            message: format!(
                "`{}` is an in-memory SQLite store: it lives inside the one process that opens it, so the CLI \
                 can neither reach an application's nor keep one of its own; give a file instead, e.g. \
                 --database-url sqlite:data/chronik.db",
                config.database_url
            ),
        });
    }
    Ok(config)
}

/// Starts the store, runs `command` on it and shuts the store down, whatever the outcome.
///
/// With `existing_only`, a schema that holds no store is an error instead of being created by
/// `auto_init`: deleting must not create a store because of a mistyped schema.
pub(crate) async fn with_store(
    config: Config,
    existing_only: bool,
    command: impl AsyncFnOnce(&EventStore) -> Outcome,
) -> Outcome {
    if existing_only {
        require_store(&config).await?;
    }
    on_store(config, command).await
}

/// Like [`with_store`] on an existing store, opened read-only: it never creates or migrates
/// anything, and an SQLite file is read beside the application that writes it.
pub(crate) async fn with_reader(config: Config, command: impl AsyncFnOnce(&EventStore) -> Outcome) -> Outcome {
    require_store(&config).await?;
    on_store(config.read_only(true), command).await
}

/// Starts the store, runs `command` and shuts the store down, whatever the outcome.
async fn on_store(config: Config, command: impl AsyncFnOnce(&EventStore) -> Outcome) -> Outcome {
    let store = EventStore::start(config).await.context(|| "cannot open the store".into())?;
    let outcome = command(&store).await;
    let stopped = store.shutdown().await;
    let code = outcome?;
    stopped.context(|| "cannot close the store cleanly".into())?;
    Ok(code)
}

/// Fails unless the configured place holds a store.
async fn require_store(config: &Config) -> Result<(), Failure> {
    let status = chronik::admin::migrations(config).await?;
    if !status.iter().any(|m| m.is_applied()) {
        return Err(Failure::new(format!(
            "{} holds no chronik store; run `chronik setup` (or `chronik init`) first",
            admin::place(config)
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscriptions_parse_with_and_without_subcommands() {
        use subscriptions::{ParkedAction, SubscriptionsCommand};
        let parse = |args: &[&str]| Cli::try_parse_from(std::iter::once("chronik").chain(args.iter().copied()));
        let sub = |cli: Cli| match cli.command {
            Command::Subscriptions(args) => args.command,
            other => panic!("not `subscriptions`: {other:?}"),
        };
        assert!(sub(parse(&["subscriptions"]).expect("parses")).is_none());
        let Some(SubscriptionsCommand::Parked(args)) =
            sub(parse(&["--json", "subscriptions", "parked", "$all", "p"]).expect("parses"))
        else {
            panic!("not `parked`");
        };
        assert_eq!((args.stream.as_str(), args.name.as_str()), ("$all", "p"));
        assert!(args.action.is_none());
        let Some(SubscriptionsCommand::Parked(args)) =
            sub(parse(&["subscriptions", "parked", "acc-1", "audit", "replay"]).expect("parses"))
        else {
            panic!("not `parked`");
        };
        assert_eq!((args.stream.as_str(), args.name.as_str()), ("acc-1", "audit"));
        assert_eq!(args.action, Some(ParkedAction::Replay));
        // `replay` and `help` are names like any other in the stream and name places.
        let Some(SubscriptionsCommand::Parked(args)) =
            sub(parse(&["subscriptions", "parked", "replay", "help", "replay"]).expect("parses"))
        else {
            panic!("not `parked`");
        };
        assert_eq!(
            (args.stream.as_str(), args.name.as_str(), args.action),
            ("replay", "help", Some(ParkedAction::Replay))
        );
        // Both the stream and the name are needed; nothing else follows them but `replay`.
        assert!(parse(&["subscriptions", "parked", "acc-1"]).is_err());
        assert!(parse(&["subscriptions", "parked", "acc-1", "audit", "replay", "now"]).is_err());
        assert!(parse(&["subscriptions", "parked", "acc-1", "audit", "replay-all"]).is_err());
        assert!(parse(&["subscriptions", "audit"]).is_err());
        let Some(SubscriptionsCommand::Checkpoint(args)) =
            sub(parse(&["subscriptions", "checkpoint", "$all", "p", "--set", "7"]).expect("parses"))
        else {
            panic!("not `checkpoint`");
        };
        assert_eq!((args.stream.as_str(), args.name.as_str(), args.set), ("$all", "p", Some(7)));
        let Some(SubscriptionsCommand::Info(args)) =
            sub(parse(&["subscriptions", "info", "$all", "p"]).expect("parses"))
        else {
            panic!("not `info`");
        };
        assert_eq!((args.stream.as_str(), args.name.as_str()), ("$all", "p"));
        assert!(parse(&["subscriptions", "info", "$all"]).is_err());
    }

    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
