//! What flows to subscribers: catch-up reads from storage, live feeds from the publisher, and
//! handing queued events to subscribers with room (with `CaughtUp` once the backlog is out).

use std::time::Instant;

use chrono::{DateTime, Utc};
use ractor::ActorRef;

use super::state::Phase;
use super::{READ_BATCH, SubscriptionMsg, SubscriptionState};

/// Positions of `$all` one filtered catch-up read looks at, at most: a filter that passes few
/// events still answers (and moves the checkpoint) after each window.
const FILTER_WINDOW: u64 = 10_000;
use crate::error::Error;
use crate::event::RecordedEvent;
use crate::runtime::publisher::LiveFeed;
use crate::storage::Direction;
use crate::subscription::SubscriptionMessage;

impl SubscriptionState {
    /// A stalled catch-up reads again once the queue is down to this many events.
    pub(super) fn low_water(&self) -> usize {
        self.options.max_size / 2
    }

    /// Reads the next part of the backlog into the queue (as much as it has room for).
    pub(super) async fn catch_up(&mut self, myself: &ActorRef<SubscriptionMsg>) {
        let Phase::CatchingUp { live_to, .. } = self.phase else { return };
        let room = self.options.max_size.saturating_sub(self.tracker.queued()).min(READ_BATCH);
        // A read of a few events costs a round trip like a read of a thousand: wait until the
        // queue has drained to half (or the read can be full-sized) before reading again.
        let stalled = room == 0 || (room < READ_BATCH && self.tracker.queued() > self.low_water());
        self.phase = Phase::CatchingUp { live_to, stalled, retry_due: false };
        if stalled {
            return;
        }
        let from = self.tracker.received() + 1;
        let read = match (&self.options.filter, self.is_all()) {
            // The database applies the filter; every position the scan looked at is done.
            (Some(filter), true) => self
                .ctx
                .storage
                .scan_all_filtered(filter, from, room as u64, FILTER_WINDOW)
                .await
                .map(|scan| (scan.events, Some(scan.scanned_to), scan.at_head)),
            (_, true) => self.ctx.storage.read_all(from, room as u64, Direction::Forward).await.map(|events| {
                let short = events.len() < room;
                (events, None, short)
            }),
            (_, false) => {
                match self.ctx.storage.read_stream(&self.key.stream, from, room as u64, Direction::Forward).await {
                    // Nothing to deliver from a stream that does not exist (yet) or is deleted.
                    Err(Error::StreamNotFound | Error::StreamDeleted) => Ok((Vec::new(), None, true)),
                    other => other.map(|events| {
                        let short = events.len() < room;
                        (events, None, short)
                    }),
                }
            }
        };
        let (events, scanned_to, short) = match read {
            Ok(read) => read,
            Err(e) => {
                tracing::warn!(subscription = %self.key, error = %e, "catch-up read failed; retrying");
                self.phase = Phase::CatchingUp { live_to, stalled: false, retry_due: true };
                myself.send_after(self.ctx.retry_interval, || SubscriptionMsg::RetryCatchUp);
                return;
            }
        };
        let looked_at = scanned_to.map_or(events.len() as u64, |to| (to + 1).saturating_sub(from));
        self.ctx.read_from_storage.fetch_add(looked_at, std::sync::atomic::Ordering::Relaxed);
        for event in events {
            self.take(event);
        }
        if let Some(scanned_to) = scanned_to {
            self.tracker.skip_to(scanned_to);
        }
        if short {
            // Every live range seen before this read was committed before it: positions up to
            // its end that the read did not return are holes. Live feeds that arrived during
            // the read only raised `live_to`, which the phase still holds.
            if let Phase::CatchingUp { live_to, .. } = self.phase
                && self.is_all()
            {
                self.tracker.skip_to(live_to);
            }
            self.phase = Phase::Live { caught_up_at: Some(self.tracker.received()) };
        } else {
            let _ = myself.cast(SubscriptionMsg::CatchUp);
        }
    }

    /// The timer of a failed catch-up read: read again, if that read is still due.
    pub(super) async fn retry_catch_up(&mut self, myself: &ActorRef<SubscriptionMsg>) {
        if let Phase::CatchingUp { retry_due: true, live_to, stalled } = self.phase {
            self.phase = Phase::CatchingUp { live_to, stalled, retry_due: false };
            self.catch_up(myself).await;
        }
    }

    /// A subscriber left: its in-flight events go back to the queue; any the queue had to let
    /// go of are read from storage again.
    pub(super) fn disconnect(&mut self, myself: &ActorRef<SubscriptionMsg>, id: u64) {
        self.consumers.retain(|c| c.id != id);
        self.paused.remove(&id);
        self.epochs.remove(&id);
        if self.tracker.leave(id, self.options.max_size) {
            self.fall_behind(myself, 0);
        }
    }

    /// Takes back the events in flight at a subscriber.
    pub(super) fn release(&mut self, myself: &ActorRef<SubscriptionMsg>, id: u64) {
        if self.tracker.release(id, self.options.max_size) {
            self.fall_behind(myself, 0);
        }
    }

    /// Drops the queued events that the stream's retention hides now (they count as skipped, so
    /// the checkpoint moves past them); `$all` shows every event until a scavenge. Events in
    /// flight stay with their subscribers.
    pub(super) async fn retention_changed(&mut self) {
        if self.is_all() {
            return;
        }
        let stream = self.key.stream.as_str();
        let rows = match self.ctx.storage.retentions(&[stream]).await {
            Ok(rows) => rows,
            Err(e) => {
                // Reads from storage apply it anyway; only what is queued now may still go out.
                tracing::warn!(subscription = %self.key, error = %e, "cannot read the stream's new retention");
                return;
            }
        };
        let Some(row) = rows.into_iter().next() else { return };
        let window = row.retention.window(row.version, Utc::now());
        let dropped = self.tracker.drop_queued(|e| {
            let version = i64::try_from(e.event_number).unwrap_or(i64::MAX);
            // A linked event's own commit time is not the link's: only the version decides.
            let created_at = if e.stream_uuid == stream { e.created_at } else { DateTime::<Utc>::MAX_UTC };
            !window.shows(version, created_at)
        });
        if dropped > 0 {
            tracing::debug!(subscription = %self.key, dropped, "dropped queued events the stream's retention hides");
        }
    }

    /// Queues an event, or skips it if it is parked or the filter or selector leave it out.
    pub(super) fn take(&mut self, event: RecordedEvent) {
        if !self.ledger.is_parked(event.event_number) && self.options.selects(&event) {
            let partition = self.options.partition_of(&event);
            self.tracker.push(event, partition);
        } else {
            self.tracker.skip_to(event.event_number);
        }
    }

    /// A live subscription that can no longer take live events (a gap, a missed feed, a full
    /// queue) reads from storage again, remembering live ranges up to `live_to`; a phase that is
    /// not live is left as it is.
    pub(super) fn fall_behind(&mut self, myself: &ActorRef<SubscriptionMsg>, live_to: u64) {
        if let Phase::Live { .. } = self.phase {
            self.phase = Phase::catching_up(live_to);
            let _ = myself.cast(SubscriptionMsg::CatchUp);
        }
    }

    /// Takes live events while live and there is room; anything else sends it back to storage.
    pub(super) fn take_live(&mut self, myself: &ActorRef<SubscriptionMsg>, feed: LiveFeed) {
        let all = self.is_all();
        if let LiveFeed::Events { to, events, .. } = &feed {
            let newest = if all { Some(*to) } else { events.last().map(|e| e.event_number) };
            self.head = self.head.max(newest.unwrap_or(0));
        }
        let (after, to, events) = match (&mut self.phase, feed) {
            (Phase::Waiting { .. }, _) | (Phase::CatchingUp { .. }, LiveFeed::Missed) => return,
            (Phase::CatchingUp { live_to, .. }, LiveFeed::Events { to, .. }) => {
                if all {
                    *live_to = (*live_to).max(to);
                }
                return;
            }
            (Phase::Live { .. }, LiveFeed::Missed) => return self.fall_behind(myself, 0),
            (Phase::Live { .. }, LiveFeed::Events { after, to, events }) => (after, to, events),
        };
        if all && after > self.tracker.received() {
            return self.fall_behind(myself, to);
        }
        for event in events.iter() {
            if event.event_number <= self.tracker.received() {
                continue;
            }
            let gap = !all && event.event_number != self.tracker.received() + 1;
            if gap || self.tracker.queued() >= self.options.max_size {
                return self.fall_behind(myself, 0);
            }
            self.take(event.clone());
        }
        if all {
            self.tracker.skip_to(to);
        }
    }

    /// Hands queued events to subscribers with room, says `CaughtUp` once the backlog is out,
    /// resumes a stalled catch-up or replay, and arms the checkpoint and message timers.
    pub(super) fn deliver(&mut self, myself: &ActorRef<SubscriptionMsg>) {
        if self.phase.is_owned() {
            let ids: Vec<u64> = self.consumers.iter().map(|c| c.id).filter(|id| !self.paused.contains(id)).collect();
            let batches = self.tracker.dispatch(&ids);
            self.rates.delivered(Instant::now(), batches.iter().map(|(_, batch)| batch.len()).sum());
            for (id, batch) in batches {
                let retries: Vec<(u64, u32)> = batch
                    .iter()
                    .map(|e| (e.event_number, self.tracker.retries(e.event_number)))
                    .filter(|(_, count)| *count > 0)
                    .collect();
                let delivered = self
                    .consumers
                    .iter()
                    .find(|c| c.id == id)
                    .is_some_and(|c| self.send(c, SubscriptionMessage::Events(batch), retries));
                if !delivered {
                    // Its handle is gone; the registry's Disconnect follows.
                    self.disconnect(myself, id);
                }
            }
            match self.phase {
                Phase::Live { caught_up_at: Some(end) } if self.tracker.first_queued().is_none_or(|n| n > end) => {
                    self.phase = Phase::Live { caught_up_at: None };
                    self.broadcast(SubscriptionMessage::CaughtUp);
                }
                Phase::CatchingUp { live_to, stalled: true, retry_due }
                    if self.tracker.queued() <= self.low_water() =>
                {
                    self.phase = Phase::CatchingUp { live_to, stalled: false, retry_due };
                    let _ = myself.cast(SubscriptionMsg::CatchUp);
                }
                _ => {}
            }
            if self.tracker.replay_queued() == 0 && self.ledger.replays_pending() > 0 {
                let _ = myself.cast(SubscriptionMsg::FillReplay);
            }
            if !self.sweep_scheduled
                && let Some(oldest) = self.tracker.oldest_delivery()
            {
                self.sweep_scheduled = true;
                let due = (oldest + self.options.message_timeout).saturating_duration_since(Instant::now());
                myself.send_after(due, || SubscriptionMsg::Sweep);
            }
        }
        if self.ledger.unwritten(self.tracker.acked()) && !self.flush_scheduled && self.phase.is_owned() {
            self.flush_scheduled = true;
            myself.send_after(self.options.checkpoint_after, || SubscriptionMsg::FlushCheckpoint);
        }
    }
}
