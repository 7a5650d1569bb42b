//! Taking a subscription (its lock, its checkpoint and what a previous owner recorded), losing
//! it, and trying again: with a backoff after errors, at once when the database is back.

use std::sync::atomic::Ordering;

use ractor::ActorRef;

use super::{INCARNATIONS, MAX_BACKOFF_INTERVALS, SubscriptionMsg, SubscriptionState, Tracker};
use crate::error::{Error, Result};
use crate::runtime::locks::LockMsg;
use crate::storage::StoredNack;
use crate::subscription::{StartFrom, SubscriptionMessage, SubscriptionPhase};

impl SubscriptionState {
    /// Takes ownership (the lock, or nothing for a transient subscription) and starts catching
    /// up after the checkpoint.
    pub(super) async fn acquire(&mut self, myself: &ActorRef<SubscriptionMsg>) {
        if self.phase != SubscriptionPhase::Waiting {
            return;
        }
        match self.try_acquire(myself).await {
            Ok(Some((checkpoint, nacks))) => {
                self.acquire_failures = 0;
                self.incarnation = INCARNATIONS.fetch_add(1, Ordering::Relaxed);
                self.reset(checkpoint);
                for nack in nacks {
                    self.restore(nack);
                }
                self.persisted = checkpoint;
                self.live_to = 0;
                self.phase = SubscriptionPhase::CatchingUp;
                tracing::debug!(subscription = %self.key, checkpoint, "subscription owned; catching up");
                self.broadcast(SubscriptionMessage::Subscribed);
                let _ = myself.cast(SubscriptionMsg::FillReplay);
                let _ = myself.cast(SubscriptionMsg::CatchUp);
            }
            Ok(None) => {
                // Another node runs it: ask again within the retry interval.
                self.schedule_acquire(myself, self.ctx.retry_interval);
            }
            Err(e) => {
                self.acquire_failures += 1;
                let interval = self.ctx.retry_interval;
                let backoff = interval
                    .saturating_mul(2_u32.saturating_pow(self.acquire_failures.min(8) - 1))
                    .min(interval.saturating_mul(MAX_BACKOFF_INTERVALS));
                tracing::warn!(subscription = %self.key, error = %e, ?backoff, "cannot take the subscription; retrying");
                self.schedule_acquire(myself, backoff);
            }
        }
    }

    /// Schedules the next ownership attempt, replacing any scheduled before.
    pub(super) fn schedule_acquire(&mut self, myself: &ActorRef<SubscriptionMsg>, after: std::time::Duration) {
        self.acquire_attempt += 1;
        let attempt = self.acquire_attempt;
        if after.is_zero() {
            let _ = myself.cast(SubscriptionMsg::Acquire(attempt));
        } else {
            myself.send_after(after, move || SubscriptionMsg::Acquire(attempt));
        }
    }

    /// The database is back: what waits for a retry because of the outage is done now.
    pub(super) async fn database_back(&mut self, myself: &ActorRef<SubscriptionMsg>) {
        if self.phase == SubscriptionPhase::Waiting {
            tracing::debug!(subscription = %self.key, "database back; taking the subscription now");
            self.acquire_failures = 0;
            self.schedule_acquire(myself, std::time::Duration::ZERO);
        }
        if self.catch_up_retry {
            self.catch_up_retry = false;
            self.catch_up(myself).await;
        }
    }

    /// Forgets everything delivered under the previous ownership: it all comes again after
    /// `checkpoint`.
    pub(super) fn reset(&mut self, checkpoint: u64) {
        self.tracker = Tracker::new(self.options.buffer_size, checkpoint);
        self.unpersisted_acks = 0;
        self.parked.clear();
        self.replay_pending.clear();
        self.cleared.clear();
        self.forget_retries = false;
        self.caught_up_at = None;
    }

    /// Takes back what a previous owner recorded about one event.
    pub(super) fn restore(&mut self, nack: StoredNack) {
        let n = nack.event_number;
        if !nack.parked {
            self.tracker.set_retries(n, nack.retry_count);
            return;
        }
        if n > self.tracker.acked() {
            self.parked.insert(n);
        }
        if nack.replay_requested {
            self.replay_pending.push_back((n, nack.retry_count));
        }
    }

    /// The checkpoint to resume after and what was recorded about retried and parked events,
    /// once owned; `None` if another node owns it.
    pub(super) async fn try_acquire(
        &mut self,
        myself: &ActorRef<SubscriptionMsg>,
    ) -> Result<Option<(u64, Vec<StoredNack>)>> {
        if self.options.transient {
            return Ok(Some((self.start_position().await?, Vec::new())));
        }
        let storage = &self.ctx.storage;
        // The row is looked up (or created) once; retries while another node owns the
        // subscription only ask for the lock.
        let id = match self.row {
            Some(id) => id,
            None => {
                let start = self.start_position().await?;
                let row = self.ctx.storage.subscription_row(&self.key.stream, &self.key.name, start).await?;
                self.row = Some(row.id);
                row.id
            }
        };
        let keeper = self.ctx.locks.get()?;
        let owner = myself.clone();
        let locked = ractor::call!(keeper, |reply| LockMsg::TryLock { id, owner, reply })
            .map_err(|e| Error::Unavailable(format!("lock keeper: {e}")))??;
        if !locked {
            return Ok(None);
        }
        // Read after locking: the previous owner may have moved it until it let go.
        match storage.find_subscription(&self.key.stream, &self.key.name).await? {
            Some(row) if row.id == id => {
                let nacks = storage.load_nacks(id, row.last_seen).await?;
                Ok(Some((row.last_seen, nacks)))
            }
            _ => {
                // Deleted (perhaps re-created) meanwhile: let go and start over with its new row.
                self.row = None;
                let _ = keeper.cast(LockMsg::Release { owner: myself.get_id() });
                Err(Error::SubscriptionNotFound)
            }
        }
    }

    /// Where a new subscription starts, per `start_from`.
    pub(super) async fn start_position(&self) -> Result<u64> {
        match self.options.start_from {
            StartFrom::Origin => Ok(0),
            StartFrom::After(n) => Ok(n),
            StartFrom::Current => self.ctx.storage.head(&self.key.stream).await,
        }
    }

    pub(super) fn lock_lost(&mut self, myself: &ActorRef<SubscriptionMsg>) {
        if self.phase == SubscriptionPhase::Waiting || self.options.transient {
            return;
        }
        tracing::warn!(subscription = %self.key, "subscription ownership lost; waiting to take it again");
        self.phase = SubscriptionPhase::Waiting;
        // Acks of what was delivered so far are moot: it comes again under the next ownership.
        self.incarnation = INCARNATIONS.fetch_add(1, Ordering::Relaxed);
        self.reset(self.persisted);
        // After a retry interval, so that another node may take it over meanwhile (after a
        // database outage, `DatabaseBack` comes sooner).
        self.schedule_acquire(myself, self.ctx.retry_interval);
    }
}
