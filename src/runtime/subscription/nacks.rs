//! Nacks and what they lead to: retries (counted, and written before the events go back),
//! parks, pauses of a subscriber, message timeouts, and the replay of parked events.

use std::collections::HashSet;
use std::time::Instant;

use ractor::ActorRef;

use super::{Finished, READ_BATCH, SubscriptionMsg, SubscriptionState};
use crate::error::{Error, Result};
use crate::runtime::locks::WriteOutcome;
use crate::storage::{NackRecord, SubscriptionWrite};
use crate::subscription::NackAction;

impl SubscriptionState {
    pub(super) async fn nack(
        &mut self,
        myself: &ActorRef<SubscriptionMsg>,
        consumer: u64,
        incarnation: u64,
        number: u64,
        action: NackAction,
        reason: String,
    ) -> Result<()> {
        if incarnation != self.incarnation {
            tracing::debug!(subscription = %self.key, "nack of a previous ownership ignored");
            return Ok(());
        }
        self.tracker.check(consumer, number)?;
        tracing::debug!(subscription = %self.key, event_number = number, %action, reason, "event nacked");
        match action {
            NackAction::Skip => {
                let finished: Vec<Finished> = self.tracker.finish(number).into_iter().collect();
                self.rates.acked(Instant::now(), finished.len());
                self.finished(myself, &finished).await;
                Ok(())
            }
            NackAction::Park if self.options.transient => Err(Error::invalid(
                "a transient subscription has no parked list: nack with Retry, Skip or Stop instead",
            )),
            NackAction::Park => self.park(myself, vec![(number, reason)]).await,
            NackAction::Retry => self.retry(myself, vec![number], &reason).await,
            // The handle disconnects the subscriber through the registry, which takes its
            // events back.
            NackAction::Stop => Ok(()),
        }
    }

    /// Counts a retry of each event and puts it back in its lane; those past
    /// `max_retry_count` are parked instead. Retry counts are written before the events go
    /// back, so they hold across restarts.
    pub(super) async fn retry(
        &mut self,
        myself: &ActorRef<SubscriptionMsg>,
        numbers: Vec<u64>,
        reason: &str,
    ) -> Result<()> {
        let max = self.options.max_retry_count;
        let (mut again, mut parks, mut records) = (Vec::new(), Vec::new(), Vec::new());
        for n in numbers {
            let retry_count = self.tracker.retries(n) + 1;
            if retry_count > max {
                parks.push((n, format!("{reason} (parked after {max} retries)")));
                continue;
            }
            // A replayed event's row stays as parked: its count only lives here.
            if !self.options.transient && !self.tracker.is_replaying(n) {
                records.push(NackRecord { event_number: n, retry_count, reason: reason.to_string(), parked: false });
            }
            again.push(n);
        }
        if !records.is_empty() {
            let write = SubscriptionWrite { nacks: records, ..SubscriptionWrite::default() };
            match self.write(myself, write).await {
                // The next owner delivers these events again.
                WriteOutcome::NotOwner | WriteOutcome::RowGone => return Ok(()),
                WriteOutcome::Failed(e) => {
                    tracing::warn!(subscription = %self.key, error = %e, "retry count not stored; retrying anyway");
                }
                WriteOutcome::Saved => {}
            }
        }
        let mut let_go = false;
        self.metrics.retries.increment(again.len() as u64);
        for n in again {
            let_go |= self.tracker.retry(n, self.options.max_size);
        }
        if let_go {
            self.fall_behind(myself, 0);
        }
        if parks.is_empty() { Ok(()) } else { self.park(myself, parks).await }
    }

    /// Records events as parked, then lets them go: they no longer hold the checkpoint back.
    pub(super) async fn park(&mut self, myself: &ActorRef<SubscriptionMsg>, parks: Vec<(u64, String)>) -> Result<()> {
        if self.options.transient {
            for (n, reason) in &parks {
                tracing::warn!(subscription = %self.key, event_number = n, reason, "event dropped: a transient subscription has no parked list");
            }
            let finished: Vec<Finished> = parks.iter().filter_map(|(n, _)| self.tracker.finish(*n)).collect();
            self.finished(myself, &finished).await;
            return Ok(());
        }
        let nacks = parks
            .iter()
            .map(|(n, reason)| NackRecord {
                event_number: *n,
                retry_count: self.tracker.retries(*n),
                reason: reason.clone(),
                parked: true,
            })
            .collect();
        match self.write(myself, SubscriptionWrite { nacks, ..SubscriptionWrite::default() }).await {
            WriteOutcome::Saved => {}
            WriteOutcome::NotOwner | WriteOutcome::RowGone => return Ok(()),
            WriteOutcome::Failed(e) => return Err(e),
        }
        self.metrics.parked.increment(parks.len() as u64);
        for (n, reason) in &parks {
            tracing::warn!(subscription = %self.key, event_number = n, reason, "event parked");
            self.ledger.park(*n);
            // A replayed event parked again keeps its row (now parked again, not replaying).
            self.tracker.finish(*n);
        }
        if self.ledger.due(self.options.checkpoint_threshold) {
            self.persist(myself).await;
        }
        Ok(())
    }

    /// Stops delivering to a subscriber and takes its events back; the subscriber's new epoch.
    pub(super) async fn pause(
        &mut self,
        myself: &ActorRef<SubscriptionMsg>,
        consumer: u64,
        incarnation: u64,
        retry: Option<(u64, String)>,
    ) -> u64 {
        if let Some((n, reason)) = retry
            && incarnation == self.incarnation
            && self.tracker.check(consumer, n).is_ok()
            && let Err(e) = self.retry(myself, vec![n], &reason).await
        {
            tracing::warn!(subscription = %self.key, error = %e, "failed event not parked; it comes again");
        }
        self.paused.insert(consumer);
        let epoch = self.epochs.entry(consumer).or_default();
        *epoch += 1;
        let epoch = *epoch;
        self.release(myself, consumer);
        epoch
    }

    /// Retries the events in flight for longer than `message_timeout`.
    pub(super) async fn sweep(&mut self, myself: &ActorRef<SubscriptionMsg>) {
        if !self.phase.is_owned() {
            return;
        }
        let expired = self.tracker.expired(Instant::now(), self.options.message_timeout);
        if expired.is_empty() {
            return;
        }
        tracing::warn!(subscription = %self.key, events = expired.len(), timeout = ?self.options.message_timeout, "events neither acked nor nacked in time; retrying them");
        if let Err(e) = self.retry(myself, expired, "message timeout").await {
            tracing::warn!(subscription = %self.key, error = %e, "timed-out events not parked; they come again");
        }
    }

    /// Queues the parked events of row `id` marked for replay, ahead of new events.
    pub(super) async fn replay_parked(&mut self, myself: &ActorRef<SubscriptionMsg>, id: i32) -> Result<()> {
        if self.row != Some(id) || !self.phase.is_owned() {
            // Not this one, or not owned yet: taking ownership loads the requests.
            return Ok(());
        }
        let requests = self.ctx.storage.replay_requests(id).await?;
        for request in requests {
            let n = request.event_number;
            // Already replaying; the ledger knows whether it is asked for or done with already.
            if !self.tracker.is_replaying(n) {
                self.ledger.request_replay(n, request.retry_count);
            }
        }
        self.fill_replay(myself).await;
        Ok(())
    }

    /// Reads parked events to replay into the replay lane, up to `READ_BATCH` at a time.
    pub(super) async fn fill_replay(&mut self, myself: &ActorRef<SubscriptionMsg>) {
        while self.phase.is_owned() && self.tracker.replay_queued() < READ_BATCH && self.ledger.replays_pending() > 0 {
            let chunk = self.ledger.take_replays(READ_BATCH);
            let numbers: Vec<u64> = chunk.iter().map(|c| c.0).collect();
            let events = match self.ctx.storage.read_numbers(&self.key.stream, &numbers).await {
                Ok(events) => events,
                Err(e) => {
                    tracing::warn!(subscription = %self.key, error = %e, "cannot read parked events to replay; retrying");
                    self.ledger.untake_replays(chunk);
                    myself.send_after(self.ctx.retry_interval, || SubscriptionMsg::FillReplay);
                    return;
                }
            };
            let found: HashSet<u64> = events.iter().map(|e| e.event_number).collect();
            for (n, retries) in chunk {
                if !found.contains(&n) {
                    // Hard-deleted since it was parked: nothing to replay, its row can go.
                    self.ledger.replay_gone(n);
                } else {
                    self.tracker.set_retries(n, retries);
                }
            }
            for event in events {
                let partition = self.options.partition_of(&event);
                self.tracker.push_replay(event, partition);
            }
        }
    }
}
