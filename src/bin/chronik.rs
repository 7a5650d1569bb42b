//! `chronik`: the command line tool of the chronik event store.
//!
//! It administers a store (`create`, `init`, `migrate`, `migrations`, `drop`, `reset`, `setup`)
//! and works with its streams (`append`, `read`, `info`, `streams`, `delete`), its named
//! subscriptions (`subscriptions`, and their parked events: `subscriptions parked`) and its live
//! events (`tail`).
//!
//! The configuration comes from `--config FILE`, else `config/chronik.toml` in the current
//! directory when it exists, else the defaults; the environment (`CHRONIK_DATABASE_URL`, then
//! `DATABASE_URL`; `CHRONIK_SCHEMA`) overrides the file and `--database-url` / `--schema`
//! override both.
//!
//! It works on both backends: `--database-url sqlite:data/chronik.db` (the default
//! configuration's store) or `--database-url postgres://...`.
//!
//! Output is a table for people, or JSON with `--json`. Failures print one line
//! `error: <message>` on stderr and exit with status 1; usage errors exit with status 2.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use chronik::{
    AppendResult, Config, DeleteMode, EventData, EventStore, ExpectedVersion, JSON_CONTENT_TYPE, LiveMessage, Page,
    PageRequest, ParkedEvent, RecordedEvent, SortBy, SortDirection, StreamInfo, SubscriptionInfo, admin,
};
use chrono::SecondsFormat;
use clap::{Args, Parser, Subcommand, ValueEnum};
use comfy_table::{Table, presets};
use serde_json::{Value, json};
use uuid::Uuid;

/// The configuration file used when `--config` is not given, relative to the current directory.
const DEFAULT_CONFIG_FILE: &str = "config/chronik.toml";

/// Widest `data` cell of the `read` table, in characters.
const DATA_CELL_WIDTH: usize = 60;

/// Widest `reason` cell of the `subscriptions parked` table, in characters (`--json` has it all).
const REASON_CELL_WIDTH: usize = 80;

/// The command line: global options and one command.
#[derive(Debug, Parser)]
#[command(name = "chronik", version, about = "Administer and inspect a chronik event store", long_about = None)]
#[command(args_override_self = true)]
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

    /// Print machine-readable JSON instead of tables.
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
    /// Remove the store: its schema and everything in it. Asks for confirmation.
    Drop(Confirm),
    /// Drop the store and initialize it again, empty. Asks for confirmation.
    Reset(Confirm),
    /// Create the database and initialize the store (`create` + `init`).
    Setup,
    /// Append one event with a JSON payload to a stream.
    Append(AppendArgs),
    /// Read events of a stream, or of `$all`.
    Read(ReadArgs),
    /// Show a stream's metadata (or `$all`'s).
    Info(InfoArgs),
    /// List the store's streams, a page at a time.
    Streams(StreamsArgs),
    /// Delete a stream (soft by default).
    Delete(DeleteArgs),
    /// List the store's named subscriptions (checkpoint, lag, owning session), or one's parked events.
    Subscriptions(SubscriptionsArgs),
    /// Print the events appended to a stream (or `$all`) from now on, until Ctrl-C.
    Tail(TailArgs),
}

/// Confirmation of a destructive command.
#[derive(Debug, Args)]
struct Confirm {
    /// Do not ask for confirmation.
    #[arg(long, short = 'y')]
    yes: bool,
}

/// Arguments of `append`.
#[derive(Debug, Args)]
struct AppendArgs {
    /// The stream to append to.
    stream: String,
    /// The event's type, e.g. `Deposited`.
    event_type: String,
    /// The event's payload: a JSON document (`-` reads it from stdin).
    data: String,
    /// JSON metadata of the event.
    #[arg(long, value_name = "JSON")]
    metadata: Option<String>,
    /// The version the stream must be at: any, no-stream, exists or a number.
    #[arg(long, value_name = "VERSION", default_value = "any", value_parser = parse_expected)]
    expected: ExpectedVersion,
    /// The event's id (default: a new random UUID); makes a retried append idempotent.
    #[arg(long, value_name = "UUID")]
    event_id: Option<Uuid>,
    /// Correlation id of the event.
    #[arg(long, value_name = "UUID")]
    correlation_id: Option<Uuid>,
    /// Causation id of the event.
    #[arg(long, value_name = "UUID")]
    causation_id: Option<Uuid>,
}

/// Arguments of `read`.
#[derive(Debug, Args)]
struct ReadArgs {
    /// The stream to read, or `$all` for every event by global position.
    stream: String,
    /// Read newest first.
    #[arg(long)]
    backward: bool,
    /// First version (global position for `$all`) to read; backward: the last one
    /// (default: the start, or the end when reading backward).
    #[arg(long, value_name = "N")]
    from: Option<u64>,
    /// Most events to read.
    #[arg(long, value_name = "N", default_value_t = 20)]
    count: u64,
}

/// Arguments of `info`.
#[derive(Debug, Args)]
struct InfoArgs {
    /// The stream, or `$all`.
    stream: String,
}

/// Arguments of `streams`.
#[derive(Debug, Args)]
struct StreamsArgs {
    /// Only streams whose name contains this text (case-insensitive).
    #[arg(long, value_name = "TEXT")]
    search: Option<String>,
    /// Page number, from 1.
    #[arg(long, value_name = "N", default_value_t = 1)]
    page: u64,
    /// Streams per page (1 to 1000).
    #[arg(long, value_name = "N", default_value_t = 50)]
    page_size: u64,
    /// Ordering column.
    #[arg(long, value_enum, default_value_t = SortKey::Id)]
    sort: SortKey,
    /// Largest first.
    #[arg(long)]
    desc: bool,
    /// Leave out soft-deleted streams.
    #[arg(long)]
    exclude_deleted: bool,
}

/// Ordering columns of `streams`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum SortKey {
    /// Creation order (internal stream id).
    Id,
    /// Stream name.
    Name,
    /// Stream version.
    Version,
    /// Creation time.
    Created,
}

impl From<SortKey> for SortBy {
    fn from(key: SortKey) -> SortBy {
        match key {
            SortKey::Id => SortBy::StreamId,
            SortKey::Name => SortBy::StreamUuid,
            SortKey::Version => SortBy::StreamVersion,
            SortKey::Created => SortBy::CreatedAt,
        }
    }
}

/// Arguments of `delete`.
#[derive(Debug, Args)]
struct DeleteArgs {
    /// The stream to delete.
    stream: String,
    /// Remove the stream's events everywhere (needs `enable_hard_deletes = true`).
    #[arg(long)]
    hard: bool,
    /// The version the stream must be at: any, no-stream, exists or a number.
    #[arg(long, value_name = "VERSION", default_value = "any", value_parser = parse_expected)]
    expected: ExpectedVersion,
}

/// Arguments of `subscriptions`: without a subcommand, the list of subscriptions.
#[derive(Debug, Args)]
struct SubscriptionsArgs {
    /// Instead of listing the subscriptions.
    #[command(subcommand)]
    command: Option<SubscriptionsCommand>,
}

/// The subcommands of `subscriptions`.
#[derive(Debug, Subcommand)]
enum SubscriptionsCommand {
    /// List the parked events of a named subscription, or mark them for replay (`... NAME replay`).
    Parked(ParkedArgs),
}

/// Arguments of `subscriptions parked`.
#[derive(Debug, Args)]
struct ParkedArgs {
    /// The subscription's stream, or `$all`.
    stream: String,
    /// The subscription's name.
    name: String,
    /// `replay`: mark every parked event for replay instead of listing them.
    ///
    /// The subscription delivers them again, ahead of new events (once it runs, if it runs
    /// nowhere now).
    // A value rather than a subcommand: a subcommand would shadow a stream named `replay`.
    #[arg(value_enum, value_name = "replay", hide_possible_values = true)]
    action: Option<ParkedAction>,
}

/// What `subscriptions parked` does besides listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ParkedAction {
    /// Mark every parked event for replay: the subscription delivers them again, ahead of new
    /// events (once it runs, if it runs nowhere now).
    Replay,
}

/// Arguments of `tail`.
#[derive(Debug, Args)]
struct TailArgs {
    /// The stream to follow, or `$all` for every stream.
    stream: String,
    /// Exit after this many events (default: run until Ctrl-C).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    count: Option<u64>,
}

/// Parses `any`, `no-stream`, `exists` (or `stream-exists`) or a version number.
fn parse_expected(text: &str) -> Result<ExpectedVersion, String> {
    match text.trim().to_ascii_lowercase().replace('_', "-").as_str() {
        "any" => Ok(ExpectedVersion::Any),
        "no-stream" => Ok(ExpectedVersion::NoStream),
        "exists" | "stream-exists" => Ok(ExpectedVersion::StreamExists),
        other => other
            .parse::<u64>()
            .map(ExpectedVersion::Exact)
            .map_err(|_| format!("`{text}` is not a version: use any, no-stream, exists or a number")),
    }
}

/// A failed command: the one-line message printed after `error: `.
#[derive(Debug)]
struct Failure(String);

impl Failure {
    /// A failure with this message.
    fn new(message: impl Into<String>) -> Failure {
        Failure(message.into())
    }
}

impl From<chronik::Error> for Failure {
    fn from(err: chronik::Error) -> Failure {
        Failure(err.to_string())
    }
}

/// Adds what the command was doing to a library error.
trait Context<T> {
    /// Prefixes the error's message with `what`.
    fn context(self, what: impl FnOnce() -> String) -> Result<T, Failure>;
}

impl<T> Context<T> for chronik::Result<T> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T, Failure> {
        self.map_err(|e| Failure(format!("{}: {e}", what())))
    }
}

/// What a command produces: an exit status (output is already printed).
type Outcome = Result<ExitCode, Failure>;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    match run(cli).await {
        Ok(code) => code,
        Err(Failure(message)) => {
            // One line, whatever the message holds.
            let line = message.split_whitespace().collect::<Vec<_>>().join(" ");
            eprintln!("error: {line}");
            ExitCode::FAILURE
        }
    }
}

/// Logs to stderr, filtered by `RUST_LOG` (default `warn`).
fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    // A second initialization cannot happen here; ignore the error rather than panic.
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}

/// Loads the configuration and runs the command.
async fn run(cli: Cli) -> Outcome {
    let config = load_config(cli.config.as_deref(), cli.database_url, cli.schema)?;
    let json = cli.json;
    match cli.command {
        Command::Create => create(&config, json).await,
        Command::Init => init(&config, json).await,
        Command::Migrate => migrate(&config, json).await,
        Command::Migrations => migrations(&config, json).await,
        Command::Drop(confirm) => drop_store(&config, confirm.yes, json).await,
        Command::Reset(confirm) => reset(&config, confirm.yes, json).await,
        Command::Setup => setup(&config, json).await,
        Command::Append(args) => {
            let event = build_event(&args)?;
            with_store(config, false, async |store| append(store, &args, event, json).await).await
        }
        Command::Read(args) => with_store(config, true, async |store| read(store, &args, json).await).await,
        Command::Info(args) => with_store(config, true, async |store| info(store, &args, json).await).await,
        Command::Streams(args) => with_store(config, true, async |store| streams(store, &args, json).await).await,
        Command::Delete(args) => with_store(config, true, async |store| delete(store, &args, json).await).await,
        Command::Subscriptions(SubscriptionsArgs { command: None }) => {
            with_store(config, true, async |store| subscriptions(store, json).await).await
        }
        Command::Subscriptions(SubscriptionsArgs { command: Some(SubscriptionsCommand::Parked(args)) }) => {
            match args.action {
                None => with_store(config, true, async |store| parked(store, &args, json).await).await,
                Some(ParkedAction::Replay) => {
                    with_store(config, true, async |store| replay_parked(store, &args, json).await).await
                }
            }
        }
        Command::Tail(args) => with_store(config, true, async |store| tail(store, &args, json).await).await,
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
    Ok(config)
}

/// Starts the store, runs `command` on it and shuts the store down, whatever the outcome.
///
/// With `existing_only`, a schema that holds no store is an error instead of being created by
/// `auto_init`: reading or deleting must not create a store because of a mistyped schema.
async fn with_store(config: Config, existing_only: bool, command: impl AsyncFnOnce(&EventStore) -> Outcome) -> Outcome {
    if existing_only {
        let status = admin::migrations(&config).await?;
        if !status.iter().any(|m| m.is_applied()) {
            return Err(Failure::new(format!(
                "{} holds no chronik store; run `chronik setup` (or `chronik init`) first",
                place(&config)
            )));
        }
    }
    let store = EventStore::start(config).await.context(|| "cannot start the store".into())?;
    let outcome = command(&store).await;
    let stopped = store.shutdown().await;
    let code = outcome?;
    stopped.context(|| "cannot shut the store down cleanly".into())?;
    Ok(code)
}

/// `create`.
async fn create(config: &Config, json: bool) -> Outcome {
    let database = database_name(&config.database_url);
    let created = admin::create(config).await.context(|| format!("cannot create database `{database}`"))?;
    if json {
        print_json(&json!({ "database": database, "created": created }))?;
    } else if created {
        print_line(&format!("created database `{database}`"))?;
    } else {
        print_line(&format!("database `{database}` already exists"))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `init`.
async fn init(config: &Config, json: bool) -> Outcome {
    let applied = admin::init(config).await.context(|| format!("cannot initialize {}", place(config)))?;
    report_migrated(config, "initialized", applied, json)
}

/// `migrate`.
async fn migrate(config: &Config, json: bool) -> Outcome {
    let applied = admin::migrate(config).await.context(|| format!("cannot migrate {}", place(config)))?;
    report_migrated(config, "migrated", applied, json)
}

/// Prints the result of `init`, `migrate` or `setup`.
fn report_migrated(config: &Config, what: &str, applied: usize, json: bool) -> Outcome {
    if json {
        print_json(&json!({ "schema": config.schema, "applied_migrations": applied }))?;
    } else if applied == 0 {
        print_line(&format!("store in {} is up to date", place(config)))?;
    } else {
        let plural = if applied == 1 { "" } else { "s" };
        print_line(&format!("{what} store in {} ({applied} migration{plural} applied)", place(config)))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `migrations`: exit status 1 when any migration is pending.
async fn migrations(config: &Config, json: bool) -> Outcome {
    let status =
        admin::migrations(config).await.context(|| format!("cannot read the migrations of {}", place(config)))?;
    if json {
        print_json(&serde_json::to_value(&status).map_err(|e| Failure::new(e.to_string()))?)?;
    } else {
        let mut table = new_table(["version", "description", "applied_at"]);
        for m in &status {
            let applied = m
                .applied_at
                .map_or_else(|| "pending".to_string(), |at| at.to_rfc3339_opts(SecondsFormat::Micros, true));
            table.add_row(vec![m.version.to_string(), m.description.clone(), applied]);
        }
        print_line(&table.to_string())?;
    }
    let pending = status.iter().filter(|m| !m.is_applied()).count();
    if pending > 0 {
        if !json {
            let plural = if pending == 1 { "" } else { "s" };
            eprintln!("{pending} migration{plural} pending: run `chronik migrate` (or `chronik init`)");
        }
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// `drop`.
async fn drop_store(config: &Config, yes: bool, json: bool) -> Outcome {
    confirm(config, "Drop", yes).await?;
    let dropped = admin::drop(config).await.context(|| format!("cannot drop the store in `{}`", config.schema))?;
    if json {
        print_json(&json!({ "schema": config.schema, "dropped": dropped }))?;
    } else if dropped && !config.is_sqlite() {
        print_line(&format!(
            "dropped the store in {}: chronik's own tables and functions (anything else there is kept)",
            place(config)
        ))?;
    } else if dropped {
        print_line(&format!("dropped the store in {}", place(config)))?;
    } else {
        print_line(&format!("no store in {}: nothing to drop", place(config)))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `reset`.
async fn reset(config: &Config, yes: bool, json: bool) -> Outcome {
    confirm(config, "Reset", yes).await?;
    admin::reset(config).await.context(|| format!("cannot reset the store in `{}`", config.schema))?;
    if json {
        print_json(&json!({ "schema": config.schema, "reset": true }))?;
    } else {
        print_line(&format!("reset the store in {}: it is empty now", place(config)))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `setup`: `create` then `init`.
async fn setup(config: &Config, json: bool) -> Outcome {
    let database = database_name(&config.database_url);
    let created = admin::create(config).await.context(|| format!("cannot create database `{database}`"))?;
    let applied = admin::init(config).await.context(|| format!("cannot initialize {}", place(config)))?;
    if json {
        print_json(&json!({
            "database": database,
            "created": created,
            "schema": config.schema,
            "applied_migrations": applied,
        }))?;
        return Ok(ExitCode::SUCCESS);
    }
    if created {
        print_line(&format!("created database `{database}`"))?;
    }
    report_migrated(config, "initialized", applied, false)
}

/// Asks `<verb> store in schema X of database Y? [y/N]` on stderr unless `yes`; anything but
/// `y`/`yes` (including a closed stdin) aborts.
async fn confirm(config: &Config, verb: &str, yes: bool) -> Result<(), Failure> {
    if yes {
        return Ok(());
    }
    let question = format!("{verb} store in {}? [y/N] ", place_in_database(config));
    let answer = tokio::task::spawn_blocking(move || {
        let mut stderr = std::io::stderr();
        // The prompt is best effort: a closed stderr must not stop the answer being read.
        let _ = stderr.write_all(question.as_bytes()).and_then(|()| stderr.flush());
        let mut line = String::new();
        match std::io::stdin().lock().read_line(&mut line) {
            Ok(0) | Err(_) => None,
            Ok(_) => Some(line),
        }
    })
    .await
    .map_err(|e| Failure::new(format!("cannot read the confirmation: {e}")))?;
    let Some(answer) = answer else {
        eprintln!();
        return Err(Failure::new(format!(
            "aborted: no confirmation on stdin (pass --yes); {} left unchanged",
            place(config)
        )));
    };
    if !std::io::stdin().is_terminal() {
        // The answer came from a pipe, so no echo ended the prompt's line.
        eprintln!();
    }
    confirmed(&answer, config)
}

/// Whether `answer` is `y` or `yes` (any case).
fn confirmed(answer: &str, config: &Config) -> Result<(), Failure> {
    match answer.trim().to_ascii_lowercase().as_str() {
        "y" | "yes" => Ok(()),
        _ => Err(Failure::new(format!("aborted; {} left unchanged", place(config)))),
    }
}

/// Where the store is, for messages: its schema on PostgreSQL, its file on SQLite.
fn place(config: &Config) -> String {
    if config.is_sqlite() {
        format!("`{}`", database_name(&config.database_url))
    } else {
        format!("schema `{}`", config.schema)
    }
}

/// [`place`] with the database of a schema too, for the confirmation question.
fn place_in_database(config: &Config) -> String {
    if config.is_sqlite() {
        format!("file {}", database_name(&config.database_url))
    } else {
        format!("schema {} of database {}", config.schema, database_name(&config.database_url))
    }
}

/// The database of a URL, for messages (never the password): the database name of a
/// PostgreSQL URL, the file of an SQLite one.
fn database_name(url: &str) -> String {
    if let Some(file) = url.strip_prefix("sqlite:") {
        let file = file.trim_start_matches("//");
        return file.split('?').next().unwrap_or_default().to_string();
    }
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let rest = rest.split(['?', '#']).next().unwrap_or_default();
    let after_user = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    match after_user.split_once('/') {
        Some((_, name)) if !name.is_empty() => name.to_string(),
        _ => "(default)".to_string(),
    }
}

/// Checks the JSON payload and metadata of `append` and builds the event.
fn build_event(args: &AppendArgs) -> Result<EventData, Failure> {
    let data = if args.data == "-" {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
            .map_err(|e| Failure::new(format!("cannot read the event data from stdin: {e}")))?;
        text
    } else {
        args.data.clone()
    };
    serde_json::from_str::<Value>(&data).map_err(|e| Failure::new(format!("event data is not valid JSON: {e}")))?;
    let mut event = EventData::from_bytes(args.event_type.as_str(), JSON_CONTENT_TYPE, data.trim().as_bytes());
    if let Some(metadata) = &args.metadata {
        serde_json::from_str::<Value>(metadata)
            .map_err(|e| Failure::new(format!("--metadata is not valid JSON: {e}")))?;
        event = event.with_metadata_bytes(metadata.trim().as_bytes());
    }
    if let Some(id) = args.event_id {
        event = event.with_event_id(id);
    }
    Ok(event.with_correlation_id(args.correlation_id).with_causation_id(args.causation_id))
}

/// `append`.
async fn append(store: &EventStore, args: &AppendArgs, event: EventData, json: bool) -> Outcome {
    let event_id = event.event_id;
    let result: AppendResult = store
        .append_to_stream(&args.stream, args.expected, vec![event])
        .await
        .context(|| format!("cannot append to stream `{}`", args.stream))?;
    if json {
        print_json(&json!({
            "stream": args.stream,
            "event_id": event_id,
            "stream_version": result.stream_version,
            "first_position": result.first_position,
            "last_position": result.last_position,
        }))?;
    } else {
        print_line(&format!(
            "appended event {event_id} to `{}`: stream version {}, position {}",
            args.stream,
            result.stream_version,
            if result.first_position == result.last_position {
                result.first_position.to_string()
            } else {
                format!("{}..{}", result.first_position, result.last_position)
            }
        ))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `read`.
async fn read(store: &EventStore, args: &ReadArgs, json: bool) -> Outcome {
    let events = if args.backward {
        store.read_stream_backward(&args.stream, args.from, args.count).await
    } else {
        store.read_stream_forward(&args.stream, args.from.unwrap_or(0), args.count).await
    }
    .context(|| format!("cannot read stream `{}`", args.stream))?;
    if json {
        print_json(&Value::Array(events.iter().map(event_json).collect()))?;
        return Ok(ExitCode::SUCCESS);
    }
    if events.is_empty() {
        let from = args.from.map(|n| format!(" from {n}")).unwrap_or_default();
        print_line(&format!("no events in `{}`{from}", args.stream))?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut table = new_table(["event_number", "event_type", "stream", "position", "created_at", "data"]);
    for e in &events {
        table.add_row(vec![
            e.event_number.to_string(),
            e.event_type.clone(),
            format!("{}@{}", e.stream_uuid, e.stream_version),
            e.global_position.to_string(),
            e.created_at.to_rfc3339_opts(SecondsFormat::Micros, true),
            truncate(&data_text(e), DATA_CELL_WIDTH),
        ]);
    }
    print_line(&table.to_string())?;
    Ok(ExitCode::SUCCESS)
}

/// `info`.
async fn info(store: &EventStore, args: &InfoArgs, json: bool) -> Outcome {
    let info: StreamInfo =
        store.stream_info(&args.stream).await.context(|| format!("cannot read stream `{}`", args.stream))?;
    if json {
        print_json(&serde_json::to_value(&info).map_err(|e| Failure::new(e.to_string()))?)?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut table = new_table(["key", "value"]);
    table.add_row(vec!["stream_uuid".to_string(), info.stream_uuid.clone()]);
    table.add_row(vec!["stream_id".to_string(), info.stream_id.to_string()]);
    table.add_row(vec!["stream_version".to_string(), info.stream_version.to_string()]);
    table.add_row(vec!["status".to_string(), status_text(&info).to_string()]);
    table.add_row(vec!["created_at".to_string(), info.created_at.to_rfc3339_opts(SecondsFormat::Micros, true)]);
    table.add_row(vec![
        "deleted_at".to_string(),
        info.deleted_at.map_or_else(|| "-".to_string(), |t| t.to_rfc3339_opts(SecondsFormat::Micros, true)),
    ]);
    print_line(&table.to_string())?;
    Ok(ExitCode::SUCCESS)
}

/// `streams`.
async fn streams(store: &EventStore, args: &StreamsArgs, json: bool) -> Outcome {
    let mut request = PageRequest::default()
        .page(args.page)
        .page_size(args.page_size)
        .sort_by(args.sort.into())
        .sort_direction(if args.desc { SortDirection::Descending } else { SortDirection::Ascending })
        .include_deleted(!args.exclude_deleted);
    if let Some(search) = &args.search {
        request = request.search(search.as_str());
    }
    let page: Page<StreamInfo> = store.paginate_streams(request).await.context(|| "cannot list streams".into())?;
    if json {
        print_json(&serde_json::to_value(&page).map_err(|e| Failure::new(e.to_string()))?)?;
        return Ok(ExitCode::SUCCESS);
    }
    if !page.entries.is_empty() {
        let mut table = new_table(["stream_uuid", "stream_id", "version", "status", "created_at", "deleted_at"]);
        for s in &page.entries {
            table.add_row(vec![
                s.stream_uuid.clone(),
                s.stream_id.to_string(),
                s.stream_version.to_string(),
                status_text(s).to_string(),
                s.created_at.to_rfc3339_opts(SecondsFormat::Micros, true),
                s.deleted_at.map_or_else(|| "-".to_string(), |t| t.to_rfc3339_opts(SecondsFormat::Micros, true)),
            ]);
        }
        print_line(&table.to_string())?;
    }
    let plural = if page.total_entries == 1 { "" } else { "s" };
    print_line(&format!(
        "page {} of {} ({} stream{plural})",
        page.page_number,
        page.total_pages.max(1),
        page.total_entries
    ))?;
    Ok(ExitCode::SUCCESS)
}

/// `delete`.
async fn delete(store: &EventStore, args: &DeleteArgs, json: bool) -> Outcome {
    let (mode, name) = if args.hard { (DeleteMode::Hard, "hard") } else { (DeleteMode::Soft, "soft") };
    store
        .delete_stream(&args.stream, args.expected, mode)
        .await
        .context(|| format!("cannot delete stream `{}`", args.stream))?;
    if json {
        print_json(&json!({ "stream": args.stream, "deleted": true, "mode": name }))?;
    } else {
        print_line(&format!("deleted stream `{}` ({name} delete)", args.stream))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `subscriptions`.
async fn subscriptions(store: &EventStore, json: bool) -> Outcome {
    let list = store.list_subscriptions().await.context(|| "cannot list subscriptions".into())?;
    if json {
        print_json(&Value::Array(list.iter().map(subscription_json).collect()))?;
        return Ok(ExitCode::SUCCESS);
    }
    if list.is_empty() {
        print_line(&format!("no subscriptions in {}", place(store.config())))?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut table = new_table(["stream", "name", "checkpoint", "head", "lag", "owner", "updated_at"]);
    for s in &list {
        let owner = match (s.owner_pid, &s.owner_application) {
            (Some(pid), Some(application)) if !application.is_empty() => format!("pid {pid} ({application})"),
            (Some(pid), _) => format!("pid {pid}"),
            (None, _) => "-".to_string(),
        };
        table.add_row(vec![
            s.stream.clone(),
            s.name.clone(),
            s.checkpoint.to_string(),
            s.head.to_string(),
            s.lag.to_string(),
            owner,
            s.updated_at.to_rfc3339_opts(SecondsFormat::Micros, true),
        ]);
    }
    print_line(&table.to_string())?;
    Ok(ExitCode::SUCCESS)
}

/// A subscription for `--json`.
fn subscription_json(s: &SubscriptionInfo) -> Value {
    json!({
        "stream": s.stream,
        "name": s.name,
        "checkpoint": s.checkpoint,
        "head": s.head,
        "lag": s.lag,
        "owner_pid": s.owner_pid,
        "owner_application": s.owner_application,
        "created_at": s.created_at,
        "updated_at": s.updated_at,
    })
}

/// `subscriptions parked STREAM NAME`.
async fn parked(store: &EventStore, args: &ParkedArgs, json: bool) -> Outcome {
    let (stream, name) = (&args.stream, &args.name);
    let list = store
        .parked_events(stream, name)
        .await
        .context(|| format!("cannot list the parked events of subscription `{name}` on `{stream}`"))?;
    if json {
        print_json(&Value::Array(list.iter().map(parked_json).collect()))?;
        return Ok(ExitCode::SUCCESS);
    }
    if list.is_empty() {
        print_line(&format!("no parked events in subscription `{name}` on `{stream}`"))?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut table = new_table(["event_number", "retry_count", "reason", "parked_at", "replay_requested"]);
    for p in &list {
        table.add_row(vec![
            p.event_number.to_string(),
            p.retry_count.to_string(),
            truncate(&one_line(&p.reason), REASON_CELL_WIDTH),
            p.parked_at.to_rfc3339_opts(SecondsFormat::Micros, true),
            if p.replay_requested { "yes" } else { "no" }.to_string(),
        ]);
    }
    print_line(&table.to_string())?;
    let requested = list.iter().filter(|p| p.replay_requested).count();
    let plural = if list.len() == 1 { "" } else { "s" };
    let summary = format!("{} parked event{plural} in subscription `{name}` on `{stream}`", list.len());
    if requested == list.len() {
        print_line(&format!("{summary}, all marked for replay"))?;
    } else {
        let command = format!("chronik subscriptions parked {} {} replay", shell_word(stream), shell_word(name));
        let marked = if requested == 0 { String::new() } else { format!(", {requested} marked for replay") };
        print_line(&format!("{summary}{marked}; `{command}` delivers them again"))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `subscriptions parked STREAM NAME replay`.
async fn replay_parked(store: &EventStore, args: &ParkedArgs, json: bool) -> Outcome {
    let (stream, name) = (&args.stream, &args.name);
    let marked = store
        .replay_parked(stream, name)
        .await
        .context(|| format!("cannot replay the parked events of subscription `{name}` on `{stream}`"))?;
    if json {
        print_json(&json!({ "stream": stream, "name": name, "marked": marked }))?;
    } else if marked == 0 {
        print_line(&format!("no parked events in subscription `{name}` on `{stream}`: nothing to replay"))?;
    } else {
        let plural = if marked == 1 { "" } else { "s" };
        let them = if marked == 1 { "it" } else { "them" };
        print_line(&format!(
            "{marked} parked event{plural} of subscription `{name}` on `{stream}` marked for replay; \
             the subscription's owner delivers {them} again (once it runs, if it runs nowhere now)"
        ))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// A parked event for `--json`.
fn parked_json(p: &ParkedEvent) -> Value {
    json!({
        "event_number": p.event_number,
        "retry_count": p.retry_count,
        "reason": p.reason,
        "parked_at": p.parked_at,
        "replay_requested": p.replay_requested,
    })
}

/// `text` on one line: each run of whitespace (newlines included) becomes one space.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `word` as one POSIX shell word: as is when it holds only safe characters, else single-quoted
/// (`$all` becomes `'$all'`).
fn shell_word(word: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "-_./:@%+=,".contains(c);
    if !word.is_empty() && word.chars().all(safe) {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// `tail`: prints each event committed to the stream from now on, one line each, until Ctrl-C,
/// `--count` events, or a closed stdout.
async fn tail(store: &EventStore, args: &TailArgs, json: bool) -> Outcome {
    let mut live = store.subscribe(&args.stream).await.context(|| format!("cannot follow stream `{}`", args.stream))?;
    // Tests and scripts wait for this line before appending.
    eprintln!("following `{}`: waiting for new events (Ctrl-C to stop)", args.stream);
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let mut printed = 0;
    loop {
        let message = tokio::select! {
            signal = &mut ctrl_c => {
                signal.map_err(|e| Failure::new(format!("cannot wait for Ctrl-C: {e}")))?;
                return Ok(ExitCode::SUCCESS);
            }
            message = live.recv() => message,
        };
        match message {
            Some(LiveMessage::Events(events)) => {
                for e in &events {
                    let line = if json {
                        serde_json::to_string(&event_json(e)).map_err(|e| Failure::new(e.to_string()))?
                    } else {
                        tail_line(e)
                    };
                    if !print_live_line(&line)? {
                        // Nobody reads any more (`chronik tail x | head -3`).
                        return Ok(ExitCode::SUCCESS);
                    }
                    printed += 1;
                    if args.count.is_some_and(|count| printed >= count) {
                        return Ok(ExitCode::SUCCESS);
                    }
                }
            }
            Some(LiveMessage::Lagged { missed }) => match missed {
                Some(n) => eprintln!(
                    "warning: fell behind and missed {n} event{}; `chronik read` shows them",
                    if n == 1 { "" } else { "s" }
                ),
                None => eprintln!("warning: events may have been missed; `chronik read` shows them"),
            },
            Some(_) => {}
            None => return Err(Failure::new(format!("stopped following `{}`: the store shut down", args.stream))),
        }
    }
}

/// One event as a `tail` line: `<event_number> <stream>@<version> <type> <data>`.
fn tail_line(e: &RecordedEvent) -> String {
    format!("{} {}@{} {} {}", e.event_number, e.stream_uuid, e.stream_version, e.event_type, data_text(e))
}

/// `created` or `deleted`.
fn status_text(info: &StreamInfo) -> &'static str {
    if info.deleted_at.is_some() { "deleted" } else { "created" }
}

/// An event for `--json`: JSON payloads and metadata decoded, anything else as a hex string
/// (`data_encoding` / `metadata_encoding` say which).
fn event_json(e: &RecordedEvent) -> Value {
    let (data, data_encoding) = payload_json(&e.data, e.content_type == JSON_CONTENT_TYPE);
    let (metadata, metadata_encoding) = match &e.metadata {
        Some(bytes) => payload_json(bytes, true),
        None => (Value::Null, "json"),
    };
    json!({
        "event_number": e.event_number,
        "event_id": e.event_id,
        "stream_uuid": e.stream_uuid,
        "stream_version": e.stream_version,
        "global_position": e.global_position,
        "event_type": e.event_type,
        "content_type": e.content_type,
        "correlation_id": e.correlation_id,
        "causation_id": e.causation_id,
        "created_at": e.created_at,
        "data": data,
        "data_encoding": data_encoding,
        "metadata": metadata,
        "metadata_encoding": metadata_encoding,
    })
}

/// Decoded JSON when `is_json` and the bytes parse, else a hex string; with the encoding used.
fn payload_json(bytes: &[u8], is_json: bool) -> (Value, &'static str) {
    if is_json && let Ok(value) = serde_json::from_slice::<Value>(bytes) {
        return (value, "json");
    }
    (Value::String(hex(bytes)), "hex")
}

/// Lower-case hex digits of `bytes`.
fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0x0f)] as char);
    }
    out
}

/// The `data` cell of the `read` table (and of a `tail` line): compact JSON, else `<N bytes content_type>`.
fn data_text(e: &RecordedEvent) -> String {
    if e.content_type == JSON_CONTENT_TYPE && serde_json::from_slice::<serde::de::IgnoredAny>(&e.data).is_ok() {
        // Valid JSON: shown as stored (key order kept), without its insignificant whitespace.
        return compact_json(&String::from_utf8_lossy(&e.data));
    }
    format!("<{} bytes {}>", e.data.len(), e.content_type)
}

/// Valid JSON text without the whitespace outside strings.
fn compact_json(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let (mut in_string, mut escaped) = (false, false);
    for c in text.chars() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if c == '"' {
            in_string = true;
            out.push(c);
        } else if !c.is_whitespace() {
            out.push(c);
        }
    }
    out
}

/// `text` cut to at most `width` characters, ending in `…` when cut.
fn truncate(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(width.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// A table with these column headers.
fn new_table<const N: usize>(headers: [&str; N]) -> Table {
    let mut table = Table::new();
    table.load_preset(presets::UTF8_FULL_CONDENSED).set_header(headers.to_vec());
    table
}

/// Pretty-printed JSON on stdout.
fn print_json(value: &Value) -> Result<(), Failure> {
    let text = serde_json::to_string_pretty(value).map_err(|e| Failure::new(e.to_string()))?;
    print_line(&text)
}

/// One line (or block) on stdout. A closed pipe (`chronik read x | head`) is not an error.
fn print_line(text: &str) -> Result<(), Failure> {
    print_live_line(text).map(|_| ())
}

/// One line on stdout; `false` once stdout is closed (the reader went away).
fn print_live_line(text: &str) -> Result<bool, Failure> {
    let mut stdout = std::io::stdout().lock();
    match writeln!(stdout, "{text}").and_then(|()| stdout.flush()) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(false),
        Err(e) => Err(Failure::new(format!("cannot write to stdout: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expected_versions_parse() {
        assert_eq!(parse_expected("any"), Ok(ExpectedVersion::Any));
        assert_eq!(parse_expected("no-stream"), Ok(ExpectedVersion::NoStream));
        assert_eq!(parse_expected("no_stream"), Ok(ExpectedVersion::NoStream));
        assert_eq!(parse_expected("exists"), Ok(ExpectedVersion::StreamExists));
        assert_eq!(parse_expected("7"), Ok(ExpectedVersion::Exact(7)));
        assert!(parse_expected("-1").is_err());
        assert!(parse_expected("soon").is_err());
    }

    #[test]
    fn database_names_hide_credentials() {
        assert_eq!(database_name("postgres://u:secret@h:5432/test?sslmode=disable"), "test");
        assert_eq!(database_name("postgres://h"), "(default)");
        assert_eq!(database_name("postgresql://u@h/db"), "db");
    }

    #[test]
    fn cells_are_truncated_on_char_boundaries() {
        assert_eq!(truncate("short", 10), "short");
        assert_eq!(truncate("ééééééé", 4), "ééé…");
        assert_eq!(hex(&[0, 15, 255]), "000fff");
        assert_eq!(compact_json("{ \"b\" : [1, 2],\n \"a\": \"x \\\" y\" }"), r#"{"b":[1,2],"a":"x \" y"}"#);
    }

    #[test]
    fn shell_words_are_quoted_when_needed() {
        assert_eq!(shell_word("acc-1"), "acc-1");
        assert_eq!(shell_word("$all"), "'$all'");
        assert_eq!(shell_word("it's"), r"'it'\''s'");
        assert_eq!(shell_word(""), "''");
        assert_eq!(one_line("a\n  b\tc "), "a b c");
    }

    #[test]
    fn subscriptions_parse_with_and_without_subcommands() {
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
    }

    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
