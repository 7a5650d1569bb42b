//! What chronik measures, through the [`metrics`] facade: the names, their labels, and the
//! handles the runtime records into.
//!
//! chronik records and never exports: an application that wants the figures installs a
//! recorder of its choice (`metrics-exporter-prometheus`, a statsd or OpenTelemetry bridge, a
//! test's `DebuggingRecorder`) **before it starts the store**, since each store takes its
//! handles from the recorder installed at that moment; without one every handle is a no-op
//! costing a branch. `chronik serve --http` installs a Prometheus recorder and serves it at
//! `/metrics`.
//!
//! Every metric carries the label `store`: the PostgreSQL schema, or the SQLite file. Names
//! follow Prometheus' conventions (`chronik_` prefix, base units, `_total` for counters):
//!
//! | name | kind | labels | meaning |
//! |---|---|---|---|
//! | `chronik_appends_total` | counter | `outcome` = `ok`, `rejected`, `failed` | write calls (appends, links, multi-stream appends) by outcome: stored; refused by a check (wrong expected version, deleted stream, duplicate id, ...); failed (unavailable, in doubt) |
//! | `chronik_events_appended_total` | counter | | events (and links) stored |
//! | `chronik_append_duration_seconds` | histogram | | a write call's time, from the facade to its outcome |
//! | `chronik_batch_appends` | histogram | | write calls per group-commit transaction |
//! | `chronik_batch_events` | histogram | | events per group-commit transaction |
//! | `chronik_writer_restarts_total` | counter | | writer actors restarted after a crash |
//! | `chronik_in_doubt_total` | counter | `outcome` = `committed`, `not_committed`, `unknown` | writes whose transaction failed without an answer, by what the database then said (`unknown`: it did not say within `in_doubt_timeout`) |
//! | `chronik_head_position` | gauge | | the newest `$all` position this node has heard of |
//! | `chronik_notifier_lag_events` | gauge | | positions committed but not yet routed to this node's listeners |
//! | `chronik_scavenged_events_total` | counter | | events removed by scavenges run on this node |
//! | `chronik_scavenge_progress_ratio` | gauge | | the running scavenge's share of streams done (0 to 1; 1 when none runs) |
//!
//! Each named subscription running on this node has these, labelled `store`, `stream` and
//! `subscription` (events are numbered by stream version; for `$all`, by position):
//!
//! | name | kind | meaning |
//! |---|---|---|
//! | `chronik_subscription_lag_events` | gauge | the newest event of its stream this node knows minus the acked checkpoint (0 while another node owns it) |
//! | `chronik_subscription_queued_events` | gauge | events read or received and not yet delivered |
//! | `chronik_subscription_in_flight_events` | gauge | events delivered and not yet acked |
//! | `chronik_subscription_consumers` | gauge | subscribers connected here |
//! | `chronik_subscription_checkpoint` | gauge | the acked checkpoint |
//! | `chronik_subscription_checkpoint_writes_total` | counter | checkpoint writes (each written, or handed to the lock keeper which writes the latest of every subscription in one round trip) |
//! | `chronik_subscription_checkpoint_timestamp_seconds` | gauge | Unix time of the last checkpoint write: its age is `time() - chronik_subscription_checkpoint_timestamp_seconds` |
//! | `chronik_subscription_retries_total` | counter | events retried (nacked with `Retry`, failed by a subscriber actor, or not acked within `message_timeout`) |
//! | `chronik_subscription_parked_total` | counter | events parked |
//!
//! The parked events themselves are counted in the database (`EventStore::subscription_info`,
//! the admin UI, `chronik stats`), whichever node parked them.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use metrics::{Counter, Gauge, Histogram, Label, counter, gauge, histogram};

use crate::config::Config;
use crate::error::{Error, Result};
use crate::scavenge::{ScavengeOptions, ScavengeProgress, ScavengeReport};
use crate::storage::Storage;

/// `chronik_appends_total`.
pub const APPENDS: &str = "chronik_appends_total";
/// `chronik_events_appended_total`.
pub const EVENTS_APPENDED: &str = "chronik_events_appended_total";
/// `chronik_append_duration_seconds`.
pub const APPEND_DURATION: &str = "chronik_append_duration_seconds";
/// `chronik_batch_appends`.
pub const BATCH_APPENDS: &str = "chronik_batch_appends";
/// `chronik_batch_events`.
pub const BATCH_EVENTS: &str = "chronik_batch_events";
/// `chronik_writer_restarts_total`.
pub const WRITER_RESTARTS: &str = "chronik_writer_restarts_total";
/// `chronik_in_doubt_total`.
pub const IN_DOUBT: &str = "chronik_in_doubt_total";
/// `chronik_head_position`.
pub const HEAD_POSITION: &str = "chronik_head_position";
/// `chronik_notifier_lag_events`.
pub const NOTIFIER_LAG: &str = "chronik_notifier_lag_events";
/// `chronik_subscription_lag_events`.
pub const SUBSCRIPTION_LAG: &str = "chronik_subscription_lag_events";
/// `chronik_subscription_queued_events`.
pub const SUBSCRIPTION_QUEUED: &str = "chronik_subscription_queued_events";
/// `chronik_subscription_in_flight_events`.
pub const SUBSCRIPTION_IN_FLIGHT: &str = "chronik_subscription_in_flight_events";
/// `chronik_subscription_consumers`.
pub const SUBSCRIPTION_CONSUMERS: &str = "chronik_subscription_consumers";
/// `chronik_subscription_checkpoint`.
pub const SUBSCRIPTION_CHECKPOINT: &str = "chronik_subscription_checkpoint";
/// `chronik_subscription_checkpoint_writes_total`.
pub const SUBSCRIPTION_CHECKPOINT_WRITES: &str = "chronik_subscription_checkpoint_writes_total";
/// `chronik_subscription_checkpoint_timestamp_seconds`.
pub const SUBSCRIPTION_CHECKPOINT_TIME: &str = "chronik_subscription_checkpoint_timestamp_seconds";
/// `chronik_subscription_retries_total`.
pub const SUBSCRIPTION_RETRIES: &str = "chronik_subscription_retries_total";
/// `chronik_subscription_parked_total`.
pub const SUBSCRIPTION_PARKED: &str = "chronik_subscription_parked_total";
/// `chronik_scavenged_events_total`.
pub const SCAVENGED: &str = "chronik_scavenged_events_total";
/// `chronik_scavenge_progress_ratio`.
pub const SCAVENGE_PROGRESS: &str = "chronik_scavenge_progress_ratio";

/// The handles of one store's store-wide metrics, taken once at start, and the store's own
/// tally of the same figures (kept whatever the recorder: [`EventStore::statistics`] and the
/// admin UI read it).
///
/// [`EventStore::statistics`]: crate::EventStore::statistics
#[derive(Clone)]
pub(crate) struct StoreMetrics {
    /// The `store` label.
    pub(crate) store: Arc<str>,
    pub(crate) tally: Arc<Tally>,
    appends_ok: Counter,
    appends_rejected: Counter,
    appends_failed: Counter,
    events_appended: Counter,
    append_duration: Histogram,
    batch_appends: Histogram,
    batch_events: Histogram,
    writer_restarts: Counter,
    in_doubt_committed: Counter,
    in_doubt_not_committed: Counter,
    in_doubt_unknown: Counter,
    head_position: Gauge,
    notifier_lag: Gauge,
    scavenged: Counter,
    scavenge_progress: Gauge,
}

/// The handles of one named subscription's metrics on this node (labels `store`, `stream`,
/// `subscription`), taken when its actor starts.
pub(crate) struct SubscriptionMetrics {
    lag: Gauge,
    queued: Gauge,
    in_flight: Gauge,
    consumers: Gauge,
    checkpoint: Gauge,
    checkpoint_writes: Counter,
    checkpoint_time: Gauge,
    pub(crate) retries: Counter,
    pub(crate) parked: Counter,
}

/// What a subscription's gauges show: its state after a message.
pub(crate) struct SubscriptionFigures {
    pub(crate) lag: u64,
    pub(crate) queued: usize,
    pub(crate) in_flight: usize,
    pub(crate) consumers: usize,
    pub(crate) checkpoint: u64,
}

impl SubscriptionMetrics {
    pub(crate) fn new(store: &StoreMetrics, stream: &str, name: &str) -> SubscriptionMetrics {
        let labels = || {
            vec![
                Label::new("store", store.store.to_string()),
                Label::new("stream", stream.to_string()),
                Label::new("subscription", name.to_string()),
            ]
        };
        SubscriptionMetrics {
            lag: gauge!(SUBSCRIPTION_LAG, labels()),
            queued: gauge!(SUBSCRIPTION_QUEUED, labels()),
            in_flight: gauge!(SUBSCRIPTION_IN_FLIGHT, labels()),
            consumers: gauge!(SUBSCRIPTION_CONSUMERS, labels()),
            checkpoint: gauge!(SUBSCRIPTION_CHECKPOINT, labels()),
            checkpoint_writes: counter!(SUBSCRIPTION_CHECKPOINT_WRITES, labels()),
            checkpoint_time: gauge!(SUBSCRIPTION_CHECKPOINT_TIME, labels()),
            retries: counter!(SUBSCRIPTION_RETRIES, labels()),
            parked: counter!(SUBSCRIPTION_PARKED, labels()),
        }
    }

    /// Sets the gauges to the subscription's state.
    pub(crate) fn show(&self, figures: &SubscriptionFigures) {
        self.lag.set(figures.lag as f64);
        self.queued.set(figures.queued as f64);
        self.in_flight.set(figures.in_flight as f64);
        self.consumers.set(figures.consumers as f64);
        self.checkpoint.set(figures.checkpoint as f64);
    }

    /// The checkpoint was written (or handed to the lock keeper, which writes it next).
    pub(crate) fn checkpoint_written(&self) {
        self.checkpoint_writes.increment(1);
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        self.checkpoint_time.set(now.as_secs_f64());
    }
}

/// A store's counts since it started, in plain atomics: what [`StoreMetrics`] records, kept
/// for the store itself.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    pub(crate) appends_ok: AtomicU64,
    pub(crate) appends_rejected: AtomicU64,
    pub(crate) appends_failed: AtomicU64,
    pub(crate) events_appended: AtomicU64,
    pub(crate) batches: AtomicU64,
    pub(crate) batch_appends: AtomicU64,
    pub(crate) batch_events: AtomicU64,
    pub(crate) writer_restarts: AtomicU64,
    pub(crate) in_doubt_committed: AtomicU64,
    pub(crate) in_doubt_not_committed: AtomicU64,
    pub(crate) in_doubt_unknown: AtomicU64,
    pub(crate) head_position: AtomicU64,
    pub(crate) notifier_lag: AtomicU64,
}

impl Tally {
    fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// The value of one of its counts.
    pub(crate) fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

impl StoreMetrics {
    /// Handles from the recorder installed now, labelled with the store `config` names.
    pub(crate) fn new(config: &Config) -> StoreMetrics {
        describe();
        let store = store_label(config);
        let labels = |outcome: &'static str| vec![Label::new("store", store.clone()), Label::new("outcome", outcome)];
        let plain = || vec![Label::new("store", store.clone())];
        StoreMetrics {
            store: store.as_str().into(),
            tally: Arc::default(),
            appends_ok: counter!(APPENDS, labels("ok")),
            appends_rejected: counter!(APPENDS, labels("rejected")),
            appends_failed: counter!(APPENDS, labels("failed")),
            events_appended: counter!(EVENTS_APPENDED, plain()),
            append_duration: histogram!(APPEND_DURATION, plain()),
            batch_appends: histogram!(BATCH_APPENDS, plain()),
            batch_events: histogram!(BATCH_EVENTS, plain()),
            writer_restarts: counter!(WRITER_RESTARTS, plain()),
            in_doubt_committed: counter!(IN_DOUBT, labels("committed")),
            in_doubt_not_committed: counter!(IN_DOUBT, labels("not_committed")),
            in_doubt_unknown: counter!(IN_DOUBT, labels("unknown")),
            head_position: gauge!(HEAD_POSITION, plain()),
            notifier_lag: gauge!(NOTIFIER_LAG, plain()),
            scavenged: counter!(SCAVENGED, plain()),
            scavenge_progress: gauge!(SCAVENGE_PROGRESS, plain()),
        }
    }

    /// A write call ended after `elapsed`: stored with `events` events, or refused with `error`.
    pub(crate) fn write_ended(&self, elapsed: Duration, outcome: Result<u64, &Error>) {
        self.append_duration.record(elapsed.as_secs_f64());
        match outcome {
            Ok(events) => {
                self.appends_ok.increment(1);
                self.events_appended.increment(events);
                Tally::add(&self.tally.appends_ok, 1);
                Tally::add(&self.tally.events_appended, events);
            }
            Err(Error::Unavailable(_) | Error::InDoubt(_) | Error::Database(_)) => {
                self.appends_failed.increment(1);
                Tally::add(&self.tally.appends_failed, 1);
            }
            Err(_) => {
                self.appends_rejected.increment(1);
                Tally::add(&self.tally.appends_rejected, 1);
            }
        }
    }

    /// A group-commit transaction is about to start with `appends` write calls of `events`.
    pub(crate) fn batch(&self, appends: usize, events: usize) {
        self.batch_appends.record(appends as f64);
        self.batch_events.record(events as f64);
        Tally::add(&self.tally.batches, 1);
        Tally::add(&self.tally.batch_appends, appends as u64);
        Tally::add(&self.tally.batch_events, events as u64);
    }

    /// The writer actor was restarted after a crash.
    pub(crate) fn writer_restarted(&self) {
        self.writer_restarts.increment(1);
        Tally::add(&self.tally.writer_restarts, 1);
    }

    /// Runs a scavenge on `storage`, showing its progress (share of streams done) and counting
    /// the events it removes; a dry run only runs.
    pub(crate) async fn scavenge(&self, storage: &Storage, mut options: ScavengeOptions) -> Result<ScavengeReport> {
        if options.dry_run {
            return storage.scavenge(&options).await;
        }
        let (progress, scavenged) = (self.scavenge_progress.clone(), self.scavenged.clone());
        let counted = Arc::new(AtomicU64::new(0));
        let also = options.progress.take();
        options.progress = Some(Arc::new(move |p: &ScavengeProgress| {
            progress.set(if p.streams_total == 0 { 1.0 } else { p.streams_done as f64 / p.streams_total as f64 });
            scavenged.increment(p.events_removed.saturating_sub(counted.swap(p.events_removed, Ordering::Relaxed)));
            if let Some(also) = &also {
                also(p);
            }
        }));
        self.scavenge_progress.set(0.0);
        let report = storage.scavenge(&options).await;
        self.scavenge_progress.set(1.0);
        report
    }

    /// The notifier has routed up to `cursor` of the `head` it knows.
    pub(crate) fn routed(&self, cursor: u64, head: u64) {
        self.head_position.set(head as f64);
        self.notifier_lag.set(head.saturating_sub(cursor) as f64);
        self.tally.head_position.fetch_max(head, Ordering::Relaxed);
        self.tally.notifier_lag.store(head.saturating_sub(cursor), Ordering::Relaxed);
    }

    /// An in-doubt write was settled: `Some(true)` committed, `Some(false)` not, `None` unknown.
    pub(crate) fn in_doubt(&self, committed: Option<bool>) {
        match committed {
            Some(true) => {
                self.in_doubt_committed.increment(1);
                Tally::add(&self.tally.in_doubt_committed, 1);
            }
            Some(false) => {
                self.in_doubt_not_committed.increment(1);
                Tally::add(&self.tally.in_doubt_not_committed, 1);
            }
            None => {
                self.in_doubt_unknown.increment(1);
                Tally::add(&self.tally.in_doubt_unknown, 1);
            }
        }
    }
}

/// A store's figures on this node, as [`EventStore::statistics`] gives them: counts since the
/// store was started in this process (whatever the recorder), where the writer is, and the
/// store's database connections. The admin UI's dashboard shows them.
///
/// [`EventStore::statistics`]: crate::EventStore::statistics
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct StoreStatistics {
    /// The store, as the `store` label names it (its schema, or its SQLite file).
    pub store: String,
    /// `postgres` or `sqlite`.
    pub backend: &'static str,
    /// When the store was started in this process.
    pub started_at: chrono::DateTime<chrono::Utc>,
    /// Write calls that stored their events.
    pub appends_ok: u64,
    /// Write calls refused by a check (wrong expected version, deleted stream, ...).
    pub appends_rejected: u64,
    /// Write calls that failed (database unavailable, in doubt).
    pub appends_failed: u64,
    /// Events and links stored.
    pub events_appended: u64,
    /// Group-commit transactions.
    pub batches: u64,
    /// Write calls in those transactions.
    pub batch_appends: u64,
    /// Events in those transactions.
    pub batch_events: u64,
    /// Times the writer actor was restarted after a crash.
    pub writer_restarts: u64,
    /// Writes whose commit was in doubt and then found committed.
    pub in_doubt_committed: u64,
    /// Writes whose commit was in doubt and then found not committed.
    pub in_doubt_not_committed: u64,
    /// Writes whose commit was in doubt and stayed so (`Error::InDoubt`).
    pub in_doubt_unknown: u64,
    /// Whether a writer actor runs now (false while it restarts).
    pub writer_running: bool,
    /// The newest `$all` position this node has heard of.
    pub head_position: u64,
    /// Positions committed but not yet routed to this node's listeners.
    pub notifier_lag: u64,
    /// The store's open database connections (its read pool; the writer's and the lock
    /// keeper's own connections are not in it).
    pub database_connections: u32,
    /// Of those, the idle ones.
    pub database_idle: u32,
}

impl Tally {
    /// The counts into `statistics`.
    pub(crate) fn fill(&self, statistics: &mut StoreStatistics) {
        statistics.appends_ok = Tally::get(&self.appends_ok);
        statistics.appends_rejected = Tally::get(&self.appends_rejected);
        statistics.appends_failed = Tally::get(&self.appends_failed);
        statistics.events_appended = Tally::get(&self.events_appended);
        statistics.batches = Tally::get(&self.batches);
        statistics.batch_appends = Tally::get(&self.batch_appends);
        statistics.batch_events = Tally::get(&self.batch_events);
        statistics.writer_restarts = Tally::get(&self.writer_restarts);
        statistics.in_doubt_committed = Tally::get(&self.in_doubt_committed);
        statistics.in_doubt_not_committed = Tally::get(&self.in_doubt_not_committed);
        statistics.in_doubt_unknown = Tally::get(&self.in_doubt_unknown);
        statistics.head_position = Tally::get(&self.head_position);
        statistics.notifier_lag = Tally::get(&self.notifier_lag);
    }
}

/// The `store` label of the metrics of `config`'s store: its schema on PostgreSQL, its file on
/// SQLite.
pub fn store_label(config: &Config) -> String {
    if config.is_sqlite() {
        let url = config.database_url.trim();
        let path = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")).unwrap_or(url);
        path.split('?').next().unwrap_or(path).to_string()
    } else {
        config.schema.clone()
    }
}

/// Registers every metric's description and unit with the recorder (once per recorder call;
/// recorders ignore repeats).
fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(APPENDS, Unit::Count, "write calls by outcome: ok, rejected by a check, failed");
    describe_counter!(EVENTS_APPENDED, Unit::Count, "events and links stored");
    describe_histogram!(APPEND_DURATION, Unit::Seconds, "a write call's time from the facade to its outcome");
    describe_histogram!(BATCH_APPENDS, Unit::Count, "write calls per group-commit transaction");
    describe_histogram!(BATCH_EVENTS, Unit::Count, "events per group-commit transaction");
    describe_counter!(WRITER_RESTARTS, Unit::Count, "writer actors restarted after a crash");
    describe_counter!(IN_DOUBT, Unit::Count, "writes whose commit was in doubt, by what the database then said");
    describe_gauge!(HEAD_POSITION, Unit::Count, "the newest $all position this node has heard of");
    describe_gauge!(NOTIFIER_LAG, Unit::Count, "positions committed but not yet routed to this node's listeners");
    describe_gauge!(SUBSCRIPTION_LAG, Unit::Count, "events of the subscription's stream after its acked checkpoint");
    describe_gauge!(SUBSCRIPTION_QUEUED, Unit::Count, "events read or received, not yet delivered");
    describe_gauge!(SUBSCRIPTION_IN_FLIGHT, Unit::Count, "events delivered, not yet acked");
    describe_gauge!(SUBSCRIPTION_CONSUMERS, Unit::Count, "subscribers connected on this node");
    describe_gauge!(SUBSCRIPTION_CHECKPOINT, Unit::Count, "the acked checkpoint (event number, or position for $all)");
    describe_counter!(SUBSCRIPTION_CHECKPOINT_WRITES, Unit::Count, "checkpoint writes");
    describe_gauge!(SUBSCRIPTION_CHECKPOINT_TIME, Unit::Seconds, "when the checkpoint was last written (Unix time)");
    describe_counter!(SUBSCRIPTION_RETRIES, Unit::Count, "events retried (nacked with Retry, failed, timed out)");
    describe_counter!(SUBSCRIPTION_PARKED, Unit::Count, "events parked");
    describe_counter!(SCAVENGED, Unit::Count, "events removed by scavenges");
    describe_gauge!(
        SCAVENGE_PROGRESS,
        Unit::Count,
        "the running scavenge's share of streams done, 0 to 1 (1 when none runs)"
    );
}
