//! The one error type of chronik.
//!
//! Every variant carries (or is) a message a user can act on. Domain outcomes of appends and
//! reads (`WrongExpectedVersion`, `StreamNotFound`, ...) are plain variants so callers can match
//! on them; infrastructure failures are `Database` (the server answered with an error) or
//! `Unavailable` (no usable connection or runtime).

use std::fmt;

use uuid::Uuid;

/// The result type of every fallible chronik call.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in chronik.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration is invalid: the payload names the key and the reason.
    #[error("invalid configuration: {0}")]
    Config(ConfigError),

    /// An argument was rejected before anything was written; the message names the problem.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),

    /// The stream's current version does not match the expected version of the call.
    #[error("wrong expected version: expected {expected}, stream is at version {actual}")]
    WrongExpectedVersion {
        /// The version the caller expected (`ExpectedVersion::Exact`).
        expected: u64,
        /// The stream's version when the call was checked (0 for an absent stream).
        actual: u64,
    },

    /// `ExpectedVersion::NoStream` was given but the stream already has events.
    #[error("stream already exists (expected no stream)")]
    StreamExists,

    /// The stream does not exist (or `ExpectedVersion::StreamExists` was given for an absent one).
    #[error("stream not found")]
    StreamNotFound,

    /// The stream was soft-deleted: it can no longer be read or appended to.
    #[error("stream has been deleted")]
    StreamDeleted,

    /// An event with this id is already stored (an id repeated within one append is an
    /// [`Error::InvalidArgument`] naming both events).
    #[error("duplicate event id {0}: an event with this id is already stored")]
    DuplicateEvent(Uuid),

    /// One stream of [`append_to_streams`](crate::EventStore::append_to_streams) was refused
    /// (`source` says why: a wrong expected version, a deleted stream, a duplicate id, ...), so
    /// nothing of the whole call was stored.
    #[error("append to stream `{stream}` failed, so nothing was appended: {source}")]
    AppendFailed {
        /// The stream whose append was refused.
        stream: String,
        /// Why.
        source: Box<Error>,
    },

    /// `$all` is written by appending to other streams; it cannot be appended to.
    #[error("cannot append to the $all stream: append to a named stream instead")]
    CannotAppendToAllStream,

    /// `$all` cannot be deleted.
    #[error("cannot delete the $all stream")]
    CannotDeleteAllStream,

    /// An event referred to by id (for example in `link_to_stream`) does not exist.
    #[error("event not found")]
    NotFound,

    /// No snapshot is recorded for that source.
    #[error("snapshot not found")]
    SnapshotNotFound,

    /// The operation is disabled by configuration (hard deletes need `enable_hard_deletes = true`).
    #[error("operation not supported: hard deletes are disabled (set enable_hard_deletes = true)")]
    NotSupported,

    /// A named subscription with this name is already connected (and its `concurrency_limit`
    /// is 1), or, from [`create_subscription`](crate::EventStore::create_subscription), already
    /// stored.
    #[error(
        "subscription already exists: it is already stored (create) or has a subscriber and its concurrency_limit is 1 (subscribe)"
    )]
    SubscriptionAlreadyExists,

    /// The subscription already has `concurrency_limit` subscribers.
    #[error("too many subscribers: the subscription's concurrency_limit is reached")]
    TooManySubscribers,

    /// The named subscription runs (on this node or another), so what was asked (moving its
    /// checkpoint) cannot be done now: unsubscribe it everywhere first.
    #[error("subscription in use: a node runs it; unsubscribe it (on every node) first")]
    SubscriptionInUse,

    /// The store was opened read-only (`read_only = true`): the message says what it refused.
    #[error("read-only store: {0}")]
    ReadOnly(String),

    /// No subscription of that stream and name exists.
    #[error("subscription not found: no subscription of that stream and name")]
    SubscriptionNotFound,

    /// An ack named an event number that is not in flight for this subscriber.
    #[error("unexpected ack: event number not in flight for this subscriber")]
    UnexpectedAck,

    /// The store's schema is missing or not at the version this build expects.
    #[error("store schema: {0}")]
    Migration(String),

    /// Encoding or decoding an event payload failed.
    #[error("serialization failed: {0}")]
    Serialization(String),

    /// The database answered with an error.
    #[error("database error: {0}")]
    Database(#[source] sqlx::Error),

    /// The database or the store's runtime cannot be reached right now; the message says why.
    /// From an append or a link it also means that nothing of the write was stored (a write
    /// whose outcome cannot be learned is [`Error::InDoubt`]), so it is safe to retry.
    #[error("unavailable: {0}")]
    Unavailable(String),

    /// An append or link was sent to the database, and whether it committed could not be
    /// learned within `in_doubt_timeout` (the database stayed unreachable). It may or may not be
    /// stored: read the stream (or look its event ids up) before retrying, or retry with the same
    /// event ids, which a committed append rejects as [`Error::DuplicateEvent`].
    #[error("outcome unknown: {0}")]
    InDoubt(String),

    /// chronik refused to remove or change something it did not create (an administrative
    /// command on a schema or file that holds other data); the message names what, and nothing
    /// was changed.
    #[error("refused: {0}")]
    Refused(String),
}

/// What is wrong with a configuration: the key and the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The configuration key (for example `pool_size`), or the file when it cannot be read.
    pub key: String,
    /// Why the value was rejected.
    pub reason: String,
}

impl ConfigError {
    pub(crate) fn new(key: impl Into<String>, reason: impl Into<String>) -> Self {
        ConfigError { key: key.into(), reason: reason.into() }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}`: {}", self.key, self.reason)
    }
}

impl Error {
    /// A short snake_case name of the variant (`wrong_expected_version`, `stream_not_found`,
    /// `unavailable`, ...): the `kind` of the CLI's `--json` errors and of the HTTP API's.
    ///
    /// ```
    /// assert_eq!(chronik::Error::StreamNotFound.kind(), "stream_not_found");
    /// ```
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Config(_) => "config",
            Error::InvalidArgument(_) | Error::CannotAppendToAllStream | Error::CannotDeleteAllStream => {
                "invalid_argument"
            }
            Error::WrongExpectedVersion { .. } => "wrong_expected_version",
            Error::StreamExists => "stream_exists",
            Error::StreamNotFound => "stream_not_found",
            Error::StreamDeleted => "stream_deleted",
            Error::DuplicateEvent(_) => "duplicate_event",
            Error::AppendFailed { .. } => "append_failed",
            Error::NotFound => "not_found",
            Error::SnapshotNotFound => "snapshot_not_found",
            Error::NotSupported => "not_supported",
            Error::SubscriptionAlreadyExists => "subscription_already_exists",
            Error::TooManySubscribers => "too_many_subscribers",
            Error::SubscriptionInUse => "subscription_in_use",
            Error::ReadOnly(_) => "read_only",
            Error::SubscriptionNotFound => "subscription_not_found",
            Error::UnexpectedAck => "unexpected_ack",
            Error::Migration(_) => "migration",
            Error::Serialization(_) => "serialization",
            Error::Database(_) => "database",
            Error::Unavailable(_) => "unavailable",
            Error::InDoubt(_) => "in_doubt",
            Error::Refused(_) => "refused",
        }
    }

    pub(crate) fn config(key: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Config(ConfigError::new(key, reason))
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Error::InvalidArgument(message.into())
    }
}

impl From<sqlx::Error> for Error {
    /// Connection-level failures become `Unavailable`; everything the server reported is
    /// `Database`.
    fn from(err: sqlx::Error) -> Self {
        match err {
            sqlx::Error::Io(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed
            | sqlx::Error::Tls(_) => Error::Unavailable(format!("database connection: {err}")),
            sqlx::Error::Database(ref db) if is_connection_loss(db.code().as_deref()) => {
                Error::Unavailable(format!("database connection: {err}"))
            }
            sqlx::Error::Database(ref db) if is_sqlite_busy(db.as_ref()) => {
                Error::Unavailable(format!("database busy: {err}"))
            }
            other => Error::Database(other),
        }
    }
}

/// SQLSTATE classes that mean the session is gone (admin shutdown, crash, connection failure).
fn is_connection_loss(code: Option<&str>) -> bool {
    matches!(code, Some(c) if c.starts_with("08") || c.starts_with("57P"))
}

/// SQLite's BUSY and LOCKED (and their extended codes): the database is held by someone else
/// for longer than the busy timeout.
fn is_sqlite_busy(db: &dyn sqlx::error::DatabaseError) -> bool {
    db.try_downcast_ref::<sqlx::sqlite::SqliteError>()
        .and_then(sqlx::error::DatabaseError::code)
        .and_then(|code| code.parse::<i32>().ok())
        .is_some_and(|code| matches!(code & 0xff, 5 | 6))
}
