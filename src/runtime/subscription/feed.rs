//! What flows to subscribers: catch-up reads from storage, live feeds from the publisher, and
//! handing queued events to subscribers with room (with `CaughtUp` once the backlog is out).

use std::time::Instant;

use ractor::ActorRef;

use super::{READ_BATCH, SubscriptionMsg, SubscriptionState};
use crate::error::Error;
use crate::event::RecordedEvent;
use crate::runtime::publisher::LiveFeed;
use crate::storage::Direction;
use crate::subscription::{SubscriptionMessage, SubscriptionPhase};

impl SubscriptionState {
    /// A stalled catch-up reads again once the queue is down to this many events.
    pub(super) fn low_water(&self) -> usize {
        self.options.max_size / 2
    }

    /// Reads the next part of the backlog into the queue (as much as it has room for).
    pub(super) async fn catch_up(&mut self, myself: &ActorRef<SubscriptionMsg>) {
        if self.phase != SubscriptionPhase::CatchingUp {
            return;
        }
        let room = self.options.max_size.saturating_sub(self.tracker.queued()).min(READ_BATCH);
        // A read of a few events costs a round trip like a read of a thousand: wait until the
        // queue has drained to half (or the read can be full-sized) before reading again.
        if room == 0 || (room < READ_BATCH && self.tracker.queued() > self.low_water()) {
            self.catch_up_stalled = true;
            return;
        }
        self.catch_up_stalled = false;
        let from = self.tracker.received() + 1;
        let read = if self.is_all() {
            self.ctx.storage.read_all(from, room as u64, Direction::Forward).await
        } else {
            match self.ctx.storage.read_stream(&self.key.stream, from, room as u64, Direction::Forward).await {
                // Nothing to deliver from a stream that does not exist (yet) or is deleted.
                Err(Error::StreamNotFound | Error::StreamDeleted) => Ok(Vec::new()),
                other => other,
            }
        };
        let events = match read {
            Ok(events) => events,
            Err(e) => {
                tracing::warn!(subscription = %self.key, error = %e, "catch-up read failed; retrying");
                self.catch_up_retry = true;
                myself.send_after(self.ctx.retry_interval, || SubscriptionMsg::RetryCatchUp);
                return;
            }
        };
        let short = events.len() < room;
        for event in events {
            self.take(event);
        }
        if short {
            // Every live range seen before this read was committed before it: positions up to
            // its end that the read did not return are holes.
            if self.is_all() {
                self.tracker.skip_to(self.live_to);
            }
            self.phase = SubscriptionPhase::Live;
            self.caught_up_at = Some(self.tracker.received());
        } else {
            let _ = myself.cast(SubscriptionMsg::CatchUp);
        }
    }

    /// A subscriber left: its in-flight events go back to the queue; any the queue had to let
    /// go of are read from storage again.
    pub(super) fn disconnect(&mut self, myself: &ActorRef<SubscriptionMsg>, id: u64) {
        self.consumers.retain(|c| c.id != id);
        self.paused.remove(&id);
        self.epochs.remove(&id);
        self.release(myself, id);
    }

    /// Takes back the events in flight at a subscriber.
    pub(super) fn release(&mut self, myself: &ActorRef<SubscriptionMsg>, id: u64) {
        if self.tracker.release(id, self.options.max_size) && self.phase == SubscriptionPhase::Live {
            self.fall_behind(myself);
        }
    }

    /// Queues an event, or skips it if it is parked or the selector rejects it.
    pub(super) fn take(&mut self, event: RecordedEvent) {
        if !self.parked.contains(&event.event_number) && self.options.selects(&event) {
            let partition = self.options.partition_of(&event);
            self.tracker.push(event, partition);
        } else {
            self.tracker.skip_to(event.event_number);
        }
    }

    pub(super) fn fall_behind(&mut self, myself: &ActorRef<SubscriptionMsg>) {
        self.phase = SubscriptionPhase::CatchingUp;
        self.caught_up_at = None;
        let _ = myself.cast(SubscriptionMsg::CatchUp);
    }

    /// Takes live events while live and there is room; anything else sends it back to storage.
    pub(super) fn take_live(&mut self, myself: &ActorRef<SubscriptionMsg>, feed: LiveFeed) {
        let (after, to, events) = match (self.phase, feed) {
            (SubscriptionPhase::Waiting, _) => return,
            (SubscriptionPhase::CatchingUp, LiveFeed::Events { to, .. }) => {
                if self.is_all() {
                    self.live_to = self.live_to.max(to);
                }
                return;
            }
            (SubscriptionPhase::CatchingUp, LiveFeed::Missed) => return,
            (SubscriptionPhase::Live, LiveFeed::Missed) => return self.fall_behind(myself),
            (SubscriptionPhase::Live, LiveFeed::Events { after, to, events }) => (after, to, events),
        };
        let all = self.is_all();
        if all && after > self.tracker.received() {
            self.live_to = self.live_to.max(to);
            return self.fall_behind(myself);
        }
        for event in events.iter() {
            if event.event_number <= self.tracker.received() {
                continue;
            }
            let gap = !all && event.event_number != self.tracker.received() + 1;
            if gap || self.tracker.queued() >= self.options.max_size {
                return self.fall_behind(myself);
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
        if self.phase != SubscriptionPhase::Waiting {
            let ids: Vec<u64> = self.consumers.iter().map(|c| c.id).filter(|id| !self.paused.contains(id)).collect();
            for (id, batch) in self.tracker.dispatch(&ids) {
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
            if self.phase == SubscriptionPhase::Live
                && let Some(end) = self.caught_up_at
                && self.tracker.first_queued().is_none_or(|n| n > end)
            {
                self.caught_up_at = None;
                self.broadcast(SubscriptionMessage::CaughtUp);
            }
            if self.catch_up_stalled && self.tracker.queued() <= self.low_water() {
                self.catch_up_stalled = false;
                let _ = myself.cast(SubscriptionMsg::CatchUp);
            }
            if self.tracker.replay_queued() == 0 && !self.replay_pending.is_empty() {
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
        let unwritten = self.tracker.acked() > self.persisted || !self.cleared.is_empty();
        if unwritten && !self.flush_scheduled && self.phase != SubscriptionPhase::Waiting {
            self.flush_scheduled = true;
            myself.send_after(self.options.checkpoint_after, || SubscriptionMsg::FlushCheckpoint);
        }
    }
}
