//! A scavenge, the same on every backend: it walks the streams whose retention can hide
//! entries, in id order and in chunks, and has the backend's [`ScavengeSession`] remove what
//! each chunk's retention hides now, in transactions of at most `batch_size` events (or, in a
//! dry run, only measure it).
//!
//! It keeps no state of its own: what it removes is what the stored retention hides at the
//! moment of each transaction, so a scavenge that stopped half-way (killed, or its connection
//! lost) left every committed batch done and the rest as it was, and the next one simply
//! finds the rest. Positions and versions are never reused: only rows go.

use std::time::Instant;

use chrono::{DateTime, Utc};

use super::RetentionRow;
use super::retention::Window;
use crate::error::Result;
use crate::scavenge::{ScavengeOptions, ScavengeProgress, ScavengeReport};

/// Streams looked at per chunk.
const STREAMS_PER_CHUNK: i64 = 500;

/// What one transaction of a scavenge removed (or would remove).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Removed {
    /// Events.
    pub events: u64,
    /// Links (hidden ones of streams of links, and those pointing at removed events).
    pub links: u64,
    /// Data and metadata bytes of the events.
    pub bytes: u64,
    /// The batch was full: the chunk may hold more.
    pub more: bool,
    /// The stream of the last event a full batch removed: the streams before it in the chunk
    /// (worked through in order) are done.
    pub last_stream: Option<i64>,
}

impl Removed {
    /// What a dry run measured: counts and bytes as a database returns them.
    pub(crate) fn measured(events: i64, links: i64, bytes: i64) -> Result<Removed> {
        Ok(Removed {
            events: super::unsigned("count", events)?,
            links: super::unsigned("count", links)?,
            bytes: super::unsigned("bytes", bytes)?,
            more: false,
            last_stream: None,
        })
    }

    /// What a batch of at most `limit` rows removed: its events as `(position, stream id, data
    /// and metadata bytes)`, the links pointing at them and the hidden links of streams of links
    /// it removed.
    pub(crate) fn batch(events: &[(i64, i64, i64)], links_to: u64, own_links: u64, limit: i64) -> Result<Removed> {
        let bytes: i64 = events.iter().map(|(_, _, bytes)| *bytes).sum();
        Ok(Removed {
            events: events.len() as u64,
            links: links_to + own_links,
            bytes: super::unsigned("bytes", bytes)?,
            more: events.len() as i64 >= limit || own_links as i64 >= limit,
            last_stream: events.iter().map(|(_, stream, _)| *stream).max(),
        })
    }
}

/// Scavenging, a room of the backend contract (see `backend.rs`): removing what retention hides.
pub(crate) trait Scavenging {
    /// The session a scavenge works through.
    type ScavengeSession: ScavengeSession;

    /// Opens the store's one scavenge session: another one running (in any process or node)
    /// is [`Error::Unavailable`] saying so.
    fn open_scavenge(&self) -> impl Future<Output = Result<Self::ScavengeSession>> + Send;
}

/// A running scavenge: it finds the streams whose retention can hide entries and removes what
/// it hides, each batch in one transaction that the immutability triggers let through.
pub(crate) trait ScavengeSession: Send {
    /// How many streams have a retention that can hide entries.
    fn count_candidates(&mut self) -> impl Future<Output = Result<u64>> + Send;

    /// The ids of up to `limit` such streams with an id above `after`, in id order.
    fn candidates(&mut self, after: i64, limit: i64) -> impl Future<Output = Result<Vec<i64>>> + Send;

    /// Removes, in one transaction, up to `limit` events and up to `limit` links that the
    /// retention of streams `ids` hides now, with the links that point at the removed events.
    /// The retention is held while it works: a metadata write that would show them again waits.
    fn remove(&mut self, ids: &[i64], limit: i64) -> impl Future<Output = Result<Removed>> + Send;

    /// What [`remove`](Self::remove) would take from streams `ids`, all of it, removing nothing.
    fn measure(&mut self, ids: &[i64]) -> impl Future<Output = Result<Removed>> + Send;

    /// Ends the session (and with it its claim on the store).
    fn close(self) -> impl Future<Output = ()> + Send;
}

/// The window of each of `rows` now, as column arrays (ids, floors, cutoffs) for a statement.
pub(crate) fn windows(rows: &[RetentionRow]) -> (Vec<i64>, Vec<i64>, Vec<Option<DateTime<Utc>>>) {
    let now = Utc::now();
    let windows: Vec<Window> = rows.iter().map(|r| r.retention.window(r.version, now)).collect();
    (
        rows.iter().map(|r| r.id).collect(),
        windows.iter().map(|w| w.floor).collect(),
        windows.iter().map(|w| w.cutoff).collect(),
    )
}

/// Runs a scavenge on `session` and closes it.
pub(crate) async fn run<S: ScavengeSession>(mut session: S, options: &ScavengeOptions) -> Result<ScavengeReport> {
    let outcome = walk(&mut session, options).await;
    session.close().await;
    outcome
}

async fn walk<S: ScavengeSession>(session: &mut S, options: &ScavengeOptions) -> Result<ScavengeReport> {
    let started = Instant::now();
    let batch = i64::try_from(options.batch_size).unwrap_or(i64::MAX).max(1);
    let mut progress = ScavengeProgress { streams_total: session.count_candidates().await?, ..Default::default() };
    let mut links = 0;
    let report = |progress: &ScavengeProgress| {
        if let Some(report) = &options.progress {
            report(progress);
        }
    };
    report(&progress);
    let mut after = 0;
    loop {
        let chunk = session.candidates(after, STREAMS_PER_CHUNK).await?;
        let Some(&last) = chunk.last() else { break };
        loop {
            let removed =
                if options.dry_run { session.measure(&chunk).await? } else { session.remove(&chunk, batch).await? };
            progress.events_removed += removed.events;
            progress.bytes_removed += removed.bytes;
            links += removed.links;
            if !removed.more {
                break;
            }
            report(&progress);
        }
        progress.streams_done += chunk.len() as u64;
        progress.streams_total = progress.streams_total.max(progress.streams_done);
        report(&progress);
        after = last;
    }
    let report = ScavengeReport {
        dry_run: options.dry_run,
        streams_scanned: progress.streams_done,
        events_removed: progress.events_removed,
        links_removed: links,
        bytes_removed: progress.bytes_removed,
        elapsed: started.elapsed(),
    };
    if !options.dry_run {
        tracing::info!(
            streams = report.streams_scanned,
            events = report.events_removed,
            links = report.links_removed,
            bytes = report.bytes_removed,
            elapsed = ?report.elapsed,
            "scavenge done"
        );
    }
    Ok(report)
}
