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

use super::backend::ScavengeSession;
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
