//! Taking a subscription (its lock, its checkpoint and what a previous owner recorded), losing
//! it, and trying again: with a backoff after errors, at once when the database is back.

use std::sync::atomic::Ordering;

use ractor::ActorRef;

use super::state::Phase;
use super::{INCARNATIONS, MAX_BACKOFF_INTERVALS, SubscriptionMsg, SubscriptionState};
use crate::error::{Error, Result};
use crate::runtime::locks::LockMsg;
use crate::storage::StoredNack;
use crate::subscription::{SubscriptionMessage, SubscriptionOptions};

impl SubscriptionState {
    /// Takes ownership (the lock, or nothing for a transient subscription) and starts catching
    /// up after the checkpoint, if `attempt` is the one due while waiting.
    pub(super) async fn acquire(&mut self, myself: &ActorRef<SubscriptionMsg>, attempt: u64) {
        let Phase::Waiting { failures, attempt: due } = self.phase else { return };
        if attempt != due {
            return;
        }
        match self.try_acquire(myself).await {
            Ok(Some((checkpoint, nacks, settings))) => {
                self.incarnation = INCARNATIONS.fetch_add(1, Ordering::Relaxed);
                if let Some(settings) = settings {
                    self.adopt(myself, settings);
                }
                self.reset(checkpoint);
                // Where its stream ends now, for its lag (live events move it on).
                match self.ctx.storage.head(&self.key.stream).await {
                    Ok(head) => self.head = self.head.max(head),
                    Err(e) => {
                        tracing::debug!(subscription = %self.key, error = %e, "head not read; lag counts from what arrives")
                    }
                }
                for nack in nacks {
                    self.restore(nack);
                }
                self.phase = Phase::catching_up(0);
                tracing::debug!(subscription = %self.key, checkpoint, "subscription owned; catching up");
                self.broadcast(SubscriptionMessage::Subscribed);
                let _ = myself.cast(SubscriptionMsg::FillReplay);
                let _ = myself.cast(SubscriptionMsg::CatchUp);
            }
            Ok(None) => {
                // Another node runs it: ask again within the retry interval.
                self.wait(myself, failures, self.ctx.retry_interval);
            }
            Err(e) => {
                let failures = failures + 1;
                let interval = self.ctx.retry_interval;
                let backoff = interval
                    .saturating_mul(2_u32.saturating_pow(failures.min(8) - 1))
                    .min(interval.saturating_mul(MAX_BACKOFF_INTERVALS));
                tracing::warn!(subscription = %self.key, error = %e, ?backoff, "cannot take the subscription; retrying");
                self.wait(myself, failures, backoff);
            }
        }
    }

    /// Waits (again) for ownership, with the next attempt due `after`, replacing any scheduled
    /// before.
    pub(super) fn wait(&mut self, myself: &ActorRef<SubscriptionMsg>, failures: u32, after: std::time::Duration) {
        let attempt = Phase::next_attempt();
        self.phase = Phase::Waiting { failures, attempt };
        if after.is_zero() {
            let _ = myself.cast(SubscriptionMsg::Acquire(attempt));
        } else {
            myself.send_after(after, move || SubscriptionMsg::Acquire(attempt));
        }
    }

    /// The database is back: what waits for a retry because of the outage is done now.
    pub(super) async fn database_back(&mut self, myself: &ActorRef<SubscriptionMsg>) {
        match self.phase {
            Phase::Waiting { .. } => {
                tracing::debug!(subscription = %self.key, "database back; taking the subscription now");
                self.wait(myself, 0, std::time::Duration::ZERO);
            }
            Phase::CatchingUp { retry_due: true, .. } => self.retry_catch_up(myself).await,
            Phase::CatchingUp { .. } | Phase::Live { .. } => {}
        }
    }

    /// Takes back what a previous owner recorded about one event: its retry count, or that it
    /// is parked (and perhaps asked for again).
    pub(super) fn restore(&mut self, nack: StoredNack) {
        if nack.parked {
            self.ledger.restore_parked(&nack, self.tracker.acked());
        } else {
            self.tracker.set_retries(nack.event_number, nack.retry_count);
        }
    }

    /// The checkpoint to resume after, what was recorded about retried and parked events, and
    /// the stored settings, once owned; `None` if another node owns it.
    pub(super) async fn try_acquire(
        &mut self,
        myself: &ActorRef<SubscriptionMsg>,
    ) -> Result<Option<(u64, Vec<StoredNack>, Option<SubscriptionOptions>)>> {
        if self.options.transient {
            let start = self.ctx.storage.start_position(&self.key.stream, self.options.start_from).await?;
            return Ok(Some((start, Vec::new(), None)));
        }
        let storage = &self.ctx.storage;
        // The row is looked up (or created) once; retries while another node owns the
        // subscription only ask for the lock.
        let id = match self.row {
            Some(id) => id,
            None => {
                let (stream, name) = (&self.key.stream, &self.key.name);
                let start = storage.start_position(stream, self.options.start_from).await?;
                let row = storage.subscription_row(stream, name, start, &self.options).await?;
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
                Ok(Some((row.last_seen, nacks, row.settings)))
            }
            _ => {
                // Deleted (perhaps re-created) meanwhile: let go and start over with its new row.
                self.row = None;
                let _ = keeper.cast(LockMsg::Release { owner: myself.get_id(), done: None });
                Err(Error::SubscriptionNotFound)
            }
        }
    }

    pub(super) fn lock_lost(&mut self, myself: &ActorRef<SubscriptionMsg>) {
        if !self.phase.is_owned() || self.options.transient {
            return;
        }
        tracing::warn!(subscription = %self.key, "subscription ownership lost; waiting to take it again");
        // Acks of what was delivered so far are moot: it comes again under the next ownership.
        self.incarnation = INCARNATIONS.fetch_add(1, Ordering::Relaxed);
        self.reset(self.ledger.persisted());
        // After a retry interval, so that another node may take it over meanwhile (after a
        // database outage, `DatabaseBack` comes sooner).
        self.wait(myself, 0, self.ctx.retry_interval);
    }
}
