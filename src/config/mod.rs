//! Configuration: `config/chronik.toml`, builder overrides and environment overrides.
//!
//! Precedence, lowest first: [`Config::default`], the TOML file, the environment
//! (`CHRONIK_DATABASE_URL`, then `DATABASE_URL`; `CHRONIK_SCHEMA`), builder calls made after
//! loading. Values are checked by [`Config::validate`] (which [`crate::EventStore::start`]
//! calls), so a builder chain never panics and every mistake is an [`Error::Config`] that names
//! the key.
//!
//! This file holds [`Config`]; `subscriptions.rs` the `[[subscriptions]]` entries; `de.rs`
//! reading the parsed TOML into them through serde (errors that name the key, durations, where
//! a key is written). The keys of the file are the fields' names: a new setting is a field with
//! its doc, default and builder method.

use std::path::Path;
use std::time::Duration;

mod de;
mod server;
mod subscriptions;

pub use server::{ServerConfig, ServerUser};
pub use subscriptions::SubscriptionConfig;

use self::de::{from_toml, key_offset, line_and_column};
use crate::error::{Error, Result};

/// Default `database_url`: an SQLite file under `./data/`, so a first run needs no server.
pub const DEFAULT_DATABASE_URL: &str = "sqlite:data/chronik.db";

/// The schema every SQLite store uses (SQLite has no schemas; the file is the store).
pub const DEFAULT_SCHEMA: &str = "public";

/// Settings of one store. Every field has a builder method of the same name, and is the key of
/// the same name in the TOML file ([`Config::from_file`]). `Config` implements serde's
/// `Deserialize` too, so it can be one part of an application's own settings: keys left out
/// keep their defaults, unknown keys are refused, durations are milliseconds or a string with a
/// unit (`"250ms"`, `"2s"`).
///
/// ```
/// use chronik::Config;
/// use std::time::Duration;
///
/// let config = Config::default()
///     .database_url("postgres://postgres@127.0.0.1:5432/test")
///     .schema("accounts")
///     .pool_size(4)
///     .enable_hard_deletes(true)
///     .subscription_retry_interval(Duration::from_millis(500));
/// assert!(config.validate().is_ok());
/// ```
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct Config {
    /// Where the store lives, which also selects the backend: `sqlite:path/to/file.db` (or
    /// `sqlite::memory:`) for the embedded SQLite backend, `postgres://user@host:port/database`
    /// for PostgreSQL. Default `sqlite:data/chronik.db`.
    pub database_url: String,
    /// PostgreSQL schema holding this store; each schema is an isolated store. Default `public`.
    /// SQLite has no schemas (the file is the store): there it must stay `public`.
    pub schema: String,
    /// Connections in the store's pool (the writer uses one at a time). Default 10.
    pub pool_size: u32,
    /// Create the schema and apply migrations on start when needed. Default true.
    pub auto_init: bool,
    /// Allow `DeleteMode::Hard`. Default false.
    pub enable_hard_deletes: bool,
    /// Open the store for reading only: reads, stream info and live listeners work, every write
    /// (appends, deletes, snapshots, named subscriptions) is [`Error::ReadOnly`], and nothing is
    /// created or migrated (the store must exist and be up to date). An SQLite file opened this
    /// way is not locked, so it can be read beside the process that writes it. Default false.
    pub read_only: bool,
    /// Largest `data` + `metadata` of one event, in bytes. Default 8 MiB.
    pub max_event_size: usize,
    /// How long any connection attempt may take (start, pool, writer, lock and LISTEN
    /// connections, admin commands) before `Error::Unavailable`. Default 5 s.
    #[serde(deserialize_with = "crate::duration::deserialize")]
    pub connect_timeout: Duration,
    /// How long an append whose transaction was cut off (the connection or the writer died
    /// while it committed) waits for the database to learn whether it committed, before it
    /// gives up with `Error::InDoubt`. Default 30 s.
    #[serde(deserialize_with = "crate::duration::deserialize")]
    pub in_doubt_timeout: Duration,
    /// Pause between attempts to (re)connect a subscription or take its lock. Default 1 s.
    #[serde(deserialize_with = "crate::duration::deserialize")]
    pub subscription_retry_interval: Duration,
    /// How often the notifier reads `$all` even without a notification. Default 1 s.
    #[serde(deserialize_with = "crate::duration::deserialize")]
    pub notification_poll_interval: Duration,
    /// Most appends the writer commits in one transaction. Default 1,000.
    pub writer_max_batch_appends: usize,
    /// Most events the writer commits in one transaction (a larger single append still goes
    /// alone). Default 10,000.
    pub writer_max_batch_events: usize,
    /// Most payload bytes the writer commits in one transaction (a larger single append still
    /// goes alone). Default 64 MiB.
    pub writer_max_batch_bytes: usize,
    /// Run a scavenge ([`EventStore::scavenge`](crate::EventStore::scavenge)) this long after
    /// the store starts and after each scavenge ends; `None` (`"off"` in the file): never.
    /// With several nodes on one PostgreSQL store, one runs it at a time. Default off.
    #[serde(deserialize_with = "crate::duration::deserialize_off")]
    pub scavenge_interval: Option<Duration>,
    /// Named subscriptions the application runs as [`Subscriber`](crate::Subscriber) actors
    /// ([`EventStore::start_subscribers`](crate::EventStore::start_subscribers)); the TOML
    /// file's `[[subscriptions]]` entries. Default none.
    pub subscriptions: Vec<SubscriptionConfig>,
    /// How `chronik serve` listens and whom it lets in; the file's `[server]` section.
    pub server: ServerConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            database_url: DEFAULT_DATABASE_URL.to_string(),
            schema: DEFAULT_SCHEMA.to_string(),
            pool_size: 10,
            auto_init: true,
            enable_hard_deletes: false,
            read_only: false,
            max_event_size: 8 * 1024 * 1024,
            connect_timeout: Duration::from_secs(5),
            in_doubt_timeout: Duration::from_secs(30),
            subscription_retry_interval: Duration::from_secs(1),
            notification_poll_interval: Duration::from_secs(1),
            writer_max_batch_appends: 1_000,
            writer_max_batch_events: 10_000,
            writer_max_batch_bytes: 64 * 1024 * 1024,
            scavenge_interval: None,
            subscriptions: Vec::new(),
            server: ServerConfig::default(),
        }
    }
}

macro_rules! builder {
    ($($(#[$doc:meta])* $name:ident: $ty:ty),* $(,)?) => {
        $(
            $(#[$doc])*
            #[must_use]
            pub fn $name(mut self, value: $ty) -> Self {
                self.$name = value.into();
                self
            }
        )*
    };
}

impl Config {
    builder! {
        /// Sets `database_url`.
        database_url: impl Into<String>,
        /// Sets `schema`.
        schema: impl Into<String>,
        /// Sets `pool_size`.
        pool_size: u32,
        /// Sets `auto_init`.
        auto_init: bool,
        /// Sets `enable_hard_deletes`.
        enable_hard_deletes: bool,
        /// Sets `read_only`.
        read_only: bool,
        /// Sets `max_event_size` (bytes).
        max_event_size: usize,
        /// Sets `connect_timeout`.
        connect_timeout: Duration,
        /// Sets `in_doubt_timeout`.
        in_doubt_timeout: Duration,
        /// Sets `subscription_retry_interval`.
        subscription_retry_interval: Duration,
        /// Sets `notification_poll_interval`.
        notification_poll_interval: Duration,
        /// Sets `writer_max_batch_appends`.
        writer_max_batch_appends: usize,
        /// Sets `writer_max_batch_events`.
        writer_max_batch_events: usize,
        /// Sets `writer_max_batch_bytes`.
        writer_max_batch_bytes: usize,
        /// Sets `scavenge_interval` (a `Duration`, or `None` for off).
        scavenge_interval: impl Into<Option<Duration>>,
        /// Sets `subscriptions` (the `[[subscriptions]]` entries).
        subscriptions: Vec<SubscriptionConfig>,
        /// Sets `server` (the `[server]` section).
        server: ServerConfig,
    }

    /// Reads a TOML file, then applies the environment overrides.
    ///
    /// Unknown keys, wrong types and invalid values are [`Error::Config`] naming the key.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Config> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::config(path.display().to_string(), format!("cannot read file: {e}")))?;
        Config::from_toml_str(&text)
            .map_err(|e| match e {
                Error::Config(mut c) => {
                    c.reason = format!("{} (in {})", c.reason, path.display());
                    Error::Config(c)
                }
                other => other,
            })
            .map(Config::with_env_overrides)
    }

    /// [`Config::default`] with the environment overrides applied.
    pub fn from_env() -> Config {
        Config::default().with_env_overrides()
    }

    /// Parses TOML text (no environment overrides) and validates it. An error names the key
    /// and, when the text shows where, its line and column.
    pub fn from_toml_str(text: &str) -> Result<Config> {
        let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
            let at = e.span().map(|span| format!(" ({})", line_and_column(text, span.start))).unwrap_or_default();
            Error::config("<file>", format!("not valid TOML{at}: {}", e.message().trim()))
        })?;
        let parsed = from_toml::<Config>(&toml::Value::Table(table));
        parsed.and_then(|config| config.validate().map(|()| config)).map_err(|e| match e {
            Error::Config(mut c) => {
                if let Some(offset) = key_offset(text, &c.key) {
                    c.reason = format!("{} ({})", c.reason, line_and_column(text, offset));
                }
                Error::Config(c)
            }
            other => other,
        })
    }

    /// Applies `CHRONIK_DATABASE_URL` (else `DATABASE_URL`) and `CHRONIK_SCHEMA` when set.
    #[must_use]
    pub fn with_env_overrides(mut self) -> Config {
        let non_empty = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        if let Some(url) = non_empty("CHRONIK_DATABASE_URL").or_else(|| non_empty("DATABASE_URL")) {
            self.database_url = url;
        }
        if let Some(schema) = non_empty("CHRONIK_SCHEMA") {
            self.schema = schema;
        }
        self
    }

    /// Checks every value; the error names the first key that is wrong.
    pub fn validate(&self) -> Result<()> {
        // The scheme only: the backend it selects parses the rest, before it connects.
        let url = self.database_url.trim();
        if !(self.is_sqlite() || url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(Error::config(
                "database_url",
                format!(
                    "`{}` is neither an sqlite: URL (sqlite:path/to/file.db, sqlite::memory:) nor a postgres:// URL",
                    redact(url)
                ),
            ));
        }
        validate_schema_name(&self.schema)?;
        if self.is_sqlite() && self.schema != DEFAULT_SCHEMA {
            return Err(Error::config(
                "schema",
                format!(
                    "`{}`: schemas are PostgreSQL's; an SQLite store is its file, so leave schema at \"{DEFAULT_SCHEMA}\" \
                     and give each store its own file",
                    self.schema
                ),
            ));
        }
        let positive = |key: &str, ok: bool| {
            if ok { Ok(()) } else { Err(Error::config(key, "must be greater than zero")) }
        };
        positive("pool_size", self.pool_size > 0)?;
        if self.pool_size > 1_000 {
            return Err(Error::config("pool_size", "must be at most 1000"));
        }
        positive("max_event_size", self.max_event_size > 0)?;
        if self.max_event_size > MAX_EVENT_SIZE_LIMIT {
            return Err(Error::config(
                "max_event_size",
                format!("must be at most {MAX_EVENT_SIZE_LIMIT} bytes (PostgreSQL's field limit is 1 GiB)"),
            ));
        }
        positive("connect_timeout", !self.connect_timeout.is_zero())?;
        positive("in_doubt_timeout", !self.in_doubt_timeout.is_zero())?;
        positive("subscription_retry_interval", !self.subscription_retry_interval.is_zero())?;
        positive("notification_poll_interval", !self.notification_poll_interval.is_zero())?;
        positive("writer_max_batch_appends", self.writer_max_batch_appends > 0)?;
        positive("writer_max_batch_events", self.writer_max_batch_events > 0)?;
        positive("writer_max_batch_bytes", self.writer_max_batch_bytes > 0)?;
        if self.scavenge_interval.is_some_and(|d| d.is_zero()) {
            return Err(Error::config("scavenge_interval", "must be greater than zero, or \"off\""));
        }
        for (index, entry) in self.subscriptions.iter().enumerate() {
            entry.validate(index)?;
            if self.subscriptions[..index].iter().any(|other| other.name == entry.name) {
                return Err(Error::config(
                    format!("subscriptions[{index}].name"),
                    format!("`{}` is declared twice; names map to implementations, so each must be unique", entry.name),
                ));
            }
        }
        self.server.validate()
    }

    /// Whether the store lives in SQLite (`database_url` starts with `sqlite:`).
    pub fn is_sqlite(&self) -> bool {
        self.database_url.trim().starts_with("sqlite:")
    }
}

/// Largest accepted `max_event_size`: 512 MiB, well under PostgreSQL's 1 GiB field limit.
const MAX_EVENT_SIZE_LIMIT: usize = 512 * 1024 * 1024;

/// Schema names are restricted to plain lower-case SQL identifiers so they never need quoting
/// surprises in `search_path`, channel names or advisory-lock keys.
pub(crate) fn validate_schema_name(schema: &str) -> Result<()> {
    let mut chars = schema.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_lowercase() || c == '_');
    let rest_ok = chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !first_ok || !rest_ok || schema.len() > 63 {
        return Err(Error::config(
            "schema",
            format!(
                "`{schema}` is not a valid schema name: use 1-63 lower-case letters, digits and underscores, starting with a letter or underscore"
            ),
        ));
    }
    if schema.starts_with("pg_") {
        return Err(Error::config("schema", "names starting with pg_ are reserved by PostgreSQL"));
    }
    Ok(())
}

/// Hides the password of a URL in messages.
pub(crate) fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            match userinfo.find(':') {
                Some(colon) => format!("{}{}:***{}", &url[..scheme_end + 3], &userinfo[..colon], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::subscription::{ConsumerStrategy, StartFrom, SubscriptionOptions};

    #[test]
    fn unknown_key_is_named() {
        let err = Config::from_toml_str("pool_sise = 3").unwrap_err();
        assert!(matches!(err, Error::Config(ref c) if c.key == "pool_sise"), "{err}");
    }

    #[test]
    fn errors_say_where_and_what_was_meant() {
        let err = Config::from_toml_str("schema = \"a\"\npool_sise = 3").unwrap_err();
        assert!(
            matches!(err, Error::Config(ref c) if c.reason.contains("did you mean `pool_size`?") && c.reason.contains("line 2, column 1")),
            "{err}"
        );
        let err = Config::from_toml_str("pool_size = 3\nconnect_timeout = 5s").unwrap_err();
        assert!(matches!(err, Error::Config(ref c) if c.reason.contains("not valid TOML (line 2")), "{err}");
        let text = "[[subscriptions]]\nname = \"a\"\n\n[[subscriptions]]\nname = \"b\"\n  buffer_sise = 3";
        let err = Config::from_toml_str(text).unwrap_err();
        assert!(
            matches!(err, Error::Config(ref c) if c.key == "subscriptions[1].buffer_sise"
                && c.reason.contains("did you mean `buffer_size`?") && c.reason.contains("line 6, column 3")),
            "{err}"
        );
        let err = Config::from_toml_str("\n\nschema = 42").unwrap_err();
        assert!(matches!(err, Error::Config(ref c) if c.key == "schema" && c.reason.contains("line 3")), "{err}");
        let err = Config::from_toml_str("colour = 1").unwrap_err();
        assert!(matches!(err, Error::Config(ref c) if c.reason.contains("the keys are database_url")), "{err}");
    }

    #[test]
    fn wrong_type_is_named() {
        let err = Config::from_toml_str("pool_size = \"ten\"").unwrap_err();
        assert!(matches!(err, Error::Config(ref c) if c.key == "pool_size" && c.reason.contains("integer")), "{err}");
    }

    #[test]
    fn durations_accept_milliseconds_and_units() -> Result<()> {
        let c = Config::from_toml_str("subscription_retry_interval = 250\nnotification_poll_interval = \"2s\"")?;
        assert_eq!(c.subscription_retry_interval, Duration::from_millis(250));
        assert_eq!(c.notification_poll_interval, Duration::from_secs(2));
        let err = Config::from_toml_str("connect_timeout = \"soon\"").unwrap_err();
        assert!(matches!(err, Error::Config(ref c) if c.key == "connect_timeout"), "{err}");
        Ok(())
    }

    #[test]
    fn bad_url_and_schema_are_named() {
        let err = Config::default().database_url("mysql://x").validate().unwrap_err();
        assert!(matches!(err, Error::Config(ref c) if c.key == "database_url"), "{err}");
        let err = Config::default().schema("Bad-Name").validate().unwrap_err();
        assert!(matches!(err, Error::Config(ref c) if c.key == "schema"), "{err}");
        let err = Config::default().pool_size(0).validate().unwrap_err();
        assert!(matches!(err, Error::Config(ref c) if c.key == "pool_size"), "{err}");
    }

    #[test]
    fn subscription_entries_are_checked_and_named() -> Result<()> {
        let err = Config::from_toml_str("[[subscriptions]]\nstream = \"a\"").unwrap_err();
        assert!(matches!(err, Error::Config(ref c) if c.key == "subscriptions[0].name"), "{err}");
        let err = Config::from_toml_str("[[subscriptions]]\nname = \"p\"\nbuffer_sise = 3").unwrap_err();
        assert!(matches!(err, Error::Config(ref c) if c.key == "subscriptions[0].buffer_sise"), "{err}");
        let err = Config::from_toml_str("[[subscriptions]]\nname = \"p\"\nstart_from = \"now\"").unwrap_err();
        assert!(matches!(err, Error::Config(ref c) if c.key == "subscriptions[0].start_from"), "{err}");
        let err = Config::from_toml_str("[[subscriptions]]\nname = \"p\"\nconsumer_strategy = \"sticky\"").unwrap_err();
        assert!(
            matches!(err, Error::Config(ref c) if c.key == "subscriptions[0].consumer_strategy"
                && c.reason.contains("round_robin")),
            "{err}"
        );
        let err = Config::from_toml_str("[[subscriptions]]\nname = \"p\"\nbuffer_size = 0").unwrap_err();
        assert!(
            matches!(err, Error::Config(ref c) if c.key == "subscriptions[0]" && c.reason.contains("buffer_size")),
            "{err}"
        );
        let twice = "[[subscriptions]]\nname = \"p\"\n[[subscriptions]]\nname = \"p\"\nstream = \"s\"";
        let err = Config::from_toml_str(twice).unwrap_err();
        assert!(matches!(err, Error::Config(ref c) if c.key == "subscriptions[1].name"), "{err}");
        let c = Config::from_toml_str("[[subscriptions]]\nname = \"p\"\nstart_from = 7")?;
        assert_eq!((c.subscriptions[0].stream.as_str(), c.subscriptions[0].start_from), ("$all", StartFrom::After(7)));
        Ok(())
    }

    #[test]
    fn unknown_keys_of_an_entry_are_named_with_its_index_and_every_key_of_an_entry() {
        let text = "[[subscriptions]]\nname = \"a\"\n\n[[subscriptions]]\nname = \"b\"\nstrem = \"s\"";
        let err = Config::from_toml_str(text).unwrap_err();
        assert!(
            matches!(err, Error::Config(ref c) if c.key == "subscriptions[1].strem"
                && c.reason.contains("did you mean `stream`?") && c.reason.contains("line 6, column 1")),
            "{err}"
        );
        let err = Config::from_toml_str("[[subscriptions]]\nname = \"a\"\ncolour = 1").unwrap_err();
        assert!(
            matches!(err, Error::Config(ref c) if c.key == "subscriptions[0].colour"
                && c.reason.contains("the keys are name, stream, start_from, buffer_size,")),
            "{err}"
        );
    }

    #[test]
    fn every_subscription_option_is_a_key_of_an_entry() -> Result<()> {
        let text = r#"
            [[subscriptions]]
            name = "p"
            stream = "account-1"
            start_from = "current"
            buffer_size = 2
            max_size = 3
            concurrency_limit = 4
            consumer_strategy = "pinned_by_correlation"
            checkpoint_threshold = 5
            checkpoint_after = "6ms"
            message_timeout = 7
            max_retry_count = 8
            transient = true
        "#;
        let c = Config::from_toml_str(text)?;
        let entry = &c.subscriptions[0];
        let options = SubscriptionOptions::default()
            .start_from(StartFrom::Current)
            .buffer_size(2)
            .max_size(3)
            .concurrency_limit(4)
            .consumer_strategy(ConsumerStrategy::PinnedByCorrelation)
            .checkpoint_threshold(5)
            .checkpoint_after(Duration::from_millis(6))
            .message_timeout(Duration::from_millis(7))
            .max_retry_count(8)
            .transient(true);
        assert_eq!((entry.name.as_str(), entry.stream.as_str()), ("p", "account-1"));
        assert_eq!(entry.options(), options);
        Ok(())
    }

    #[test]
    fn wrong_types_say_what_was_expected_and_what_was_found() {
        let reason = |text: &str| match Config::from_toml_str(text) {
            Err(Error::Config(c)) => format!("{}: {}", c.key, c.reason),
            other => format!("{other:?}"),
        };
        assert_eq!(
            reason("auto_init = \"yes\""),
            "auto_init: expected true or false, found string `\"yes\"` (line 1, column 1)"
        );
        assert_eq!(reason("pool_size = -1"), "pool_size: -1 is out of range (line 1, column 1)");
        assert!(reason("[subscriptions]\nname = \"a\"").contains("write each entry as [[subscriptions]]"));
        assert_eq!(
            reason("[[subscriptions]]\nname = \"p\"\nstart_from = \"now\""),
            "subscriptions[0].start_from: expected \"origin\", \"current\" or an event number, found string `\"now\"` (line 3, column 1)"
        );
        assert_eq!(
            reason("[[subscriptions]]\nname = \"p\"\nmessage_timeout = -5"),
            "subscriptions[0].message_timeout: -5 is negative (line 3, column 1)"
        );
    }

    #[test]
    fn config_is_a_part_of_an_applications_own_settings() -> std::result::Result<(), toml::de::Error> {
        #[derive(serde::Deserialize)]
        struct Settings {
            store: Config,
        }
        let text = "[store]\nschema = \"accounts\"\nconnect_timeout = \"2s\"\n\n[[store.subscriptions]]\nname = \"p\"\nstart_from = 3";
        let settings: Settings = toml::from_str(text)?;
        assert_eq!(
            (settings.store.schema.as_str(), settings.store.connect_timeout),
            ("accounts", Duration::from_secs(2))
        );
        assert_eq!(settings.store.subscriptions[0].start_from, StartFrom::After(3));
        let unknown = toml::from_str::<Settings>("[[store.subscriptions]]\nname = \"p\"\nbuffer_sise = 3");
        assert!(unknown.is_err_and(|e| e.message().contains("buffer_sise")));
        Ok(())
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(redact("postgres://u:secret@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
    }

    #[test]
    fn a_subscription_entry_takes_a_filter() -> Result<()> {
        let text = "[[subscriptions]]\nname = \"mailer\"\nfilter = { event_type_regex = \"^Order\", exclude = true }\n";
        let config = Config::from_toml_str(text)?;
        let expected = crate::EventFilter::event_type_regex("^Order").exclude();
        assert_eq!(config.subscriptions[0].filter.as_ref(), Some(&expected));
        let broken = "[[subscriptions]]\nname = \"m\"\nfilter = { stream_prefix = [\"a\"], stream_regex = \"b\" }\n";
        match Config::from_toml_str(broken) {
            Err(Error::Config(c)) => assert!(c.key.contains("filter") && c.reason.contains("exactly one"), "{c}"),
            other => panic!("{other:?}"),
        }
        Ok(())
    }

    #[test]
    fn scavenge_interval_is_off_or_a_positive_duration() -> Result<()> {
        assert_eq!(Config::from_toml_str("scavenge_interval = \"off\"")?.scavenge_interval, None);
        assert_eq!(
            Config::from_toml_str("scavenge_interval = \"6h\"")?.scavenge_interval,
            Some(Duration::from_secs(21_600))
        );
        assert_eq!(
            Config::from_toml_str("scavenge_interval = 250")?.scavenge_interval,
            Some(Duration::from_millis(250))
        );
        for bad in ["scavenge_interval = 0", "scavenge_interval = \"soon\"", "scavenge_interval = true"] {
            match Config::from_toml_str(bad) {
                Err(Error::Config(c)) => assert_eq!(c.key, "scavenge_interval", "{bad}: {c}"),
                other => panic!("{bad}: {other:?}"),
            }
        }
        assert_eq!(
            Config::default().scavenge_interval(Duration::from_secs(1)).scavenge_interval,
            Some(Duration::from_secs(1))
        );
        Ok(())
    }

    #[test]
    fn shipped_config_file_holds_the_defaults() -> Result<()> {
        let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/chronik.toml"))
            .map_err(|e| Error::config("config/chronik.toml", e.to_string()))?;
        assert_eq!(Config::from_toml_str(&text)?, Config::default());
        Ok(())
    }
}
