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

use std::time::Duration;

use metrics::{Counter, Gauge, Histogram, Label, counter, gauge, histogram};

use crate::config::Config;
use crate::error::Error;

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

/// The handles of one store's store-wide metrics, taken once at start.
#[derive(Clone)]
pub(crate) struct StoreMetrics {
    appends_ok: Counter,
    appends_rejected: Counter,
    appends_failed: Counter,
    events_appended: Counter,
    append_duration: Histogram,
    batch_appends: Histogram,
    batch_events: Histogram,
    pub(crate) writer_restarts: Counter,
    in_doubt_committed: Counter,
    in_doubt_not_committed: Counter,
    in_doubt_unknown: Counter,
    pub(crate) head_position: Gauge,
    pub(crate) notifier_lag: Gauge,
}

impl StoreMetrics {
    /// Handles from the recorder installed now, labelled with the store `config` names.
    pub(crate) fn new(config: &Config) -> StoreMetrics {
        describe();
        let store = store_label(config);
        let labels = |outcome: &'static str| vec![Label::new("store", store.clone()), Label::new("outcome", outcome)];
        let plain = || vec![Label::new("store", store.clone())];
        StoreMetrics {
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
        }
    }

    /// A write call ended after `elapsed`: stored with `events` events, or refused with `error`.
    pub(crate) fn write_ended(&self, elapsed: Duration, outcome: Result<u64, &Error>) {
        self.append_duration.record(elapsed.as_secs_f64());
        match outcome {
            Ok(events) => {
                self.appends_ok.increment(1);
                self.events_appended.increment(events);
            }
            Err(Error::Unavailable(_) | Error::InDoubt(_) | Error::Database(_)) => self.appends_failed.increment(1),
            Err(_) => self.appends_rejected.increment(1),
        }
    }

    /// A group-commit transaction is about to start with `appends` write calls of `events`.
    pub(crate) fn batch(&self, appends: usize, events: usize) {
        self.batch_appends.record(appends as f64);
        self.batch_events.record(events as f64);
    }

    /// An in-doubt write was settled: `Some(true)` committed, `Some(false)` not, `None` unknown.
    pub(crate) fn in_doubt(&self, committed: Option<bool>) {
        match committed {
            Some(true) => self.in_doubt_committed.increment(1),
            Some(false) => self.in_doubt_not_committed.increment(1),
            None => self.in_doubt_unknown.increment(1),
        }
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
}
