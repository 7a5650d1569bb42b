//! The values of a scavenge: what to do ([`ScavengeOptions`]), how far it got
//! ([`ScavengeProgress`]) and what it did ([`ScavengeReport`]). See
//! [`EventStore::scavenge`](crate::EventStore::scavenge).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

/// How a scavenge runs. `Default`: for real, in batches of [`ScavengeOptions::DEFAULT_BATCH_SIZE`]
/// events, reporting no progress.
///
/// ```
/// use chronik::ScavengeOptions;
/// let options = ScavengeOptions::default()
///     .dry_run(true)
///     .batch_size(1_000)
///     .on_progress(|p| eprintln!("{} of {} streams", p.streams_done, p.streams_total));
/// ```
#[derive(Clone)]
pub struct ScavengeOptions {
    pub(crate) dry_run: bool,
    pub(crate) batch_size: usize,
    pub(crate) progress: Option<ProgressReport>,
}

/// What [`ScavengeOptions::on_progress`] calls.
pub(crate) type ProgressReport = Arc<dyn Fn(&ScavengeProgress) + Send + Sync>;

impl ScavengeOptions {
    /// Events removed per transaction unless set.
    pub const DEFAULT_BATCH_SIZE: usize = 5_000;

    /// Only measure what a scavenge would remove; remove nothing.
    #[must_use]
    pub fn dry_run(mut self, dry_run: bool) -> Self {
        self.dry_run = dry_run;
        self
    }

    /// Most events removed in one transaction (at least 1): smaller batches hold the database's
    /// locks (on SQLite, its one write connection) for shorter moments.
    #[must_use]
    pub fn batch_size(mut self, events: usize) -> Self {
        self.batch_size = events.max(1);
        self
    }

    /// Calls `report` after every batch with the progress so far.
    #[must_use]
    pub fn on_progress(mut self, report: impl Fn(&ScavengeProgress) + Send + Sync + 'static) -> Self {
        self.progress = Some(Arc::new(report));
        self
    }
}

impl Default for ScavengeOptions {
    fn default() -> Self {
        ScavengeOptions { dry_run: false, batch_size: Self::DEFAULT_BATCH_SIZE, progress: None }
    }
}

impl fmt::Debug for ScavengeOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScavengeOptions")
            .field("dry_run", &self.dry_run)
            .field("batch_size", &self.batch_size)
            .field("progress", &self.progress.is_some())
            .finish()
    }
}

/// How far a running scavenge got.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct ScavengeProgress {
    /// Streams whose retention can hide entries, done so far.
    pub streams_done: u64,
    /// Such streams when the scavenge started.
    pub streams_total: u64,
    /// Events removed so far (to be removed, in a dry run).
    pub events_removed: u64,
    /// Their data and metadata, in bytes.
    pub bytes_removed: u64,
}

/// What a scavenge removed (or, in a dry run, would remove).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct ScavengeReport {
    /// Whether it was a dry run (nothing was removed).
    pub dry_run: bool,
    /// Streams whose retention can hide entries (metadata with a rule, or a recreatable
    /// delete), all looked at.
    pub streams_scanned: u64,
    /// Events removed from the store (from their stream and from `$all`).
    pub events_removed: u64,
    /// Links removed: those of streams of links that retention hid, and those that pointed at
    /// removed events.
    pub links_removed: u64,
    /// The data and metadata of the removed events, in bytes: space the database reuses for
    /// new rows (PostgreSQL once autovacuum has passed; SQLite from its free list; neither
    /// file shrinks by itself).
    pub bytes_removed: u64,
    /// How long it took (in JSON: `elapsed_seconds`).
    #[serde(rename = "elapsed_seconds", serialize_with = "seconds")]
    pub elapsed: Duration,
}

fn seconds<S: serde::Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_f64(value.as_secs_f64())
}
