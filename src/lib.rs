//! # chronik
//!
//! An event store for Rust applications: streams of immutable events, read by position, and
//! pushed to subscribers. They live in an embedded SQLite file (the default: no server to run)
//! or in PostgreSQL (several nodes on one store); the database URL chooses, and every call
//! behaves the same on both.
//!
//! ## Architecture
//!
//! Layers, each a folder or a file, each importing only from the ones before it:
//!
//! - **values** (`event.rs`, `metadata.rs`, `scavenge.rs`, `page.rs`, `snapshot.rs`,
//!   `serializer.rs`, `error.rs`, `subscriber.rs`, `subscription/`, `validate.rs`,
//!   `duration.rs`): what callers pass and get back, the [`Subscriber`] trait, and the input
//!   rules. No I/O, no actors.
//! - **`config/`**: [`Config`], read from TOML through serde; the subscription settings are
//!   [`SubscriptionOptions`] themselves, also in `[[subscriptions]]` entries.
//! - **`storage/`**: SQL and nothing else. A `Backend` trait says what a backend does (its
//!   sessions are associated types); PostgreSQL and SQLite implement it in folders that mirror
//!   each other file for file, and one enum picks the backend the database URL names. On
//!   PostgreSQL each store lives in its own schema (connections use it as `search_path`); on
//!   SQLite a store is a file, written by one process through one connection, whose writer
//!   wakes the notifier in memory. Both are created by embedded migrations.
//! - **`runtime/`**: a supervised tree of [`ractor`] actors per store, behind one face (the
//!   crate-private `Runtime`): the `Supervisor` restarts its children with backoff; the
//!   `Writer` owns appends and commits every queued append in ONE transaction (group commit),
//!   so many concurrent writers cost one round trip and one fsync per batch, not per append;
//!   the `Notifier` LISTENs for committed batches and reads each new `$all` range once per
//!   node; per-stream `Publisher`s (and one for `$all`), each the only owner of its listeners,
//!   fan it out; the `SubscriptionRegistry` runs one `Subscription` actor per named
//!   subscription (a state machine: waiting for ownership, catching up from storage, live;
//!   acks and nacks, retries, parked events, back-pressure, consumer strategies, stored
//!   settings, checkpoints), and the `LockKeeper`
//!   holds the advisory locks that give each named subscription one owner across nodes; with
//!   `scavenge_interval`, the `Scavenger` removes what stream retention hides. An
//!   application's [`Subscriber`]s run as actors too, their deliveries arriving straight in
//!   their mailboxes. Each restartable actor is found through a slot holding its current
//!   incarnation. Actors hold no state that is not in the database: a restarted one rebuilds
//!   from there. The handles an application holds ([`Subscription`], [`LiveSubscription`],
//!   [`SubscriberHandle`]) live here too.
//! - **the facade** ([`EventStore`], `store/`): a cheap `Clone` handle. It validates input,
//!   then makes one call: to the runtime for writes and for everything that runs, to storage
//!   for reads and for what is only stored. [`admin`] creates, migrates and drops stores.
//!   [`EventStore::join_cluster`] makes a process a member of the store's cluster (what gossip
//!   lists).
//! - **`server/`** (feature `server`, on by default): `chronik serve`, the KurrentDB gRPC
//!   protocol over the facade (tonic); it translates calls and owns nothing else.
//!
//! ## Guarantees
//!
//! - An append is atomic and durable before `Ok`; nothing of a failed append is stored, and
//!   [`EventStore::append_to_streams`] is one append across all its streams. If the
//!   writer or its connection dies while committing (a crash, a restarted database), the
//!   caller's outcome is looked up in the database (PostgreSQL: `txid_status`; SQLite: where
//!   the transaction put the events), waiting up to `in_doubt_timeout` for it to answer, so a
//!   crash yields neither a false `Ok` nor a false error: [`Error::Unavailable`] from an append
//!   means nothing was stored, and an outcome that could not be learned is
//!   [`Error::InDoubt`].
//! - Stream versions are contiguous from 1, and [`ExpectedVersion`] holds under concurrency.
//! - Global positions (`$all`) are handed out under a lock held until commit: unique,
//!   increasing in commit order, and gap-free up to the committed head (hard deletes may leave
//!   holes).
//! - Events are immutable in the database itself: triggers reject UPDATE and DELETE (and, on
//!   PostgreSQL, TRUNCATE) except a hard delete and a scavenge, each permitted for its own
//!   transaction only. Stream metadata ([`StreamMetadata`]) only hides events from their
//!   stream; a scavenge removes what it hides, and positions and versions are never reused.
//!
//! - A named subscription delivers every event after its checkpoint at least once, in order
//!   per stream (with competing consumers: per pinned stream or correlation id, or per
//!   `partition_by` key, as its [`ConsumerStrategy`] says), across actor crashes, lost
//!   connections, database and process restarts; its checkpoint only covers acked events. Its
//!   settings are stored with it and win over a later subscriber's, on any node.
//! - Memory is bounded: at most `buffer_size` events in flight per subscriber and `max_size`
//!   queued per subscription; past that a subscription reads from storage instead.
//!
//! ## Numbering
//!
//! Stream versions and global positions start at 1; 0 means "before the first event".
//!
//! ## Example
//!
//! ```no_run
//! use chronik::{
//!     Config, Error, EventData, EventStore, ExpectedVersion, SubscriptionMessage, SubscriptionOptions, ALL,
//! };
//!
//! # async fn demo() -> chronik::Result<()> {
//! let store = EventStore::start(Config::from_file("config/chronik.toml")?).await?;
//! let opened = EventData::json("Opened", &serde_json::json!({ "owner": "ana" }))?;
//! let r = store.append_to_stream("account-1", ExpectedVersion::NoStream, vec![opened]).await?;
//! assert_eq!(r.stream_version, 1);
//!
//! let again = EventData::json("Opened", &serde_json::json!({ "owner": "bob" }))?;
//! match store.append_to_stream("account-1", ExpectedVersion::NoStream, vec![again]).await {
//!     Err(Error::StreamExists) => { /* someone else opened it: reload and decide */ }
//!     other => { other?; }
//! }
//! let everything = store.read_all_forward(0, 1_000).await?;
//! let info = store.stream_info(ALL).await?;
//! assert_eq!(info.stream_version, everything.last().map_or(0, |e| e.event_number));
//!
//! // A persistent subscription: acked events move its checkpoint; it resumes after it.
//! let mut sub = store.subscribe_to_all_streams("projector", SubscriptionOptions::default()).await?;
//! while let Some(msg) = sub.recv().await {
//!     match msg {
//!         SubscriptionMessage::Events(batch) => sub.ack(&batch).await?,
//!         SubscriptionMessage::CaughtUp => break,
//!         _ => {}
//!     }
//! }
//! store.shutdown().await?;
//! # Ok(()) }
//! ```

pub mod admin;
mod cluster;
mod config;
mod duration;
mod error;
mod event;
mod filter;
mod index;
pub mod json;
mod metadata;
pub mod metrics;
#[cfg(feature = "otel")]
pub mod otel;
mod page;
mod runtime;
mod scavenge;
mod serializer;
#[cfg(feature = "server")]
pub mod server;
mod snapshot;
mod spans;
mod storage;
mod store;
mod subscriber;
mod subscription;
#[doc(hidden)]
pub mod testing;
mod validate;

pub use cluster::ClusterMember;
pub use config::{Config, DEFAULT_DATABASE_URL, ServerConfig, ServerUser, SubscriptionConfig};
pub use error::{ConfigError, Error, Result};
pub use event::{
    ALL, AppendResult, DeleteMode, EventData, ExpectedVersion, RecordedEvent, StreamAppend, StreamInfo, StreamStatus,
};
pub use filter::EventFilter;
pub use index::{CATEGORY_PREFIX, EVENT_TYPE_PREFIX, category_of};
pub use metadata::StreamMetadata;
pub use page::{Page, PageRequest, SortBy, SortDirection};
pub use runtime::{ClusterMembership, LiveSubscription, SubscriberHandle, Subscription};
pub use scavenge::{ScavengeOptions, ScavengeProgress, ScavengeReport};
pub use serializer::{BINCODE_CONTENT_TYPE, BincodeSerializer, JSON_CONTENT_TYPE, JsonSerializer, Serializer};
pub use snapshot::SnapshotData;
pub use store::{EventRef, EventStore, Subscribers};
pub use subscriber::{HandlerError, Subscriber};
pub use subscription::{
    ConsumerStatistics, ConsumerStrategy, DropReason, LIVE_BUFFER, LiveMessage, NackAction, ParkedEvent, RetriedEvent,
    StartFrom, SubscriptionInfo, SubscriptionMessage, SubscriptionOptions, SubscriptionPhase, SubscriptionStatistics,
    SubscriptionStatus,
};
pub use validate::{MAX_EVENT_TYPE_BYTES, MAX_STREAM_ID_BYTES};

/// The README's examples, compiled as doctests so they cannot drift from the API.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
