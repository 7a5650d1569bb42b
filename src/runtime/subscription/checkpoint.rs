//! Acks and the checkpoint: booking finished events, and writing the checkpoint through the
//! lock keeper (coalesced when only it moved, at once when more goes with it).

use ractor::ActorRef;

use super::{Acks, Finished, SubscriptionMsg, SubscriptionState};
use crate::error::{Error, Result};
use crate::runtime::locks::{LockMsg, WriteOutcome};
use crate::storage::SubscriptionWrite;
use crate::subscription::SubscriptionPhase;

impl SubscriptionState {
    /// Books an ack; [`checkpoint_soon`](Self::checkpoint_soon) then writes what it moved.
    pub(super) fn ack(&mut self, consumer: u64, incarnation: u64, acks: &Acks) -> Result<()> {
        if incarnation != self.incarnation {
            tracing::debug!(subscription = %self.key, "ack of a previous ownership ignored");
            return Ok(());
        }
        let finished = self.tracker.ack(consumer, acks)?;
        self.book(&finished);
        Ok(())
    }

    /// Books events that left for good (acked, skipped or parked).
    pub(super) fn book(&mut self, finished: &[Finished]) {
        for done in finished {
            if done.replay {
                self.cleared.push(done.number);
                self.parked.remove(&done.number);
            }
            self.forget_retries |= done.retried;
        }
        self.unpersisted_acks += finished.len() as u64;
    }

    /// Books events that left for good, writing the checkpoint past the threshold before it
    /// returns (for nacks, which answer once their records are written).
    pub(super) async fn finished(&mut self, myself: &ActorRef<SubscriptionMsg>, finished: &[Finished]) {
        self.book(finished);
        if self.unpersisted_acks >= self.options.checkpoint_threshold {
            self.persist(myself).await;
        }
    }

    /// Writes the checkpoint past the threshold (or, with `timer`, whatever moved) without
    /// waiting for it: a checkpoint that only moved is handed to the lock keeper, which writes
    /// the latest of every subscription in one round trip. Anything more (rows of replayed
    /// events, retry counts to forget) is written at once, as [`persist`](Self::persist) does.
    pub(super) async fn checkpoint_soon(&mut self, myself: &ActorRef<SubscriptionMsg>, timer: bool) {
        let checkpoint = self.tracker.acked();
        let moved = checkpoint > self.persisted;
        let due = timer || self.unpersisted_acks >= self.options.checkpoint_threshold;
        if !due {
            return;
        }
        let plain = moved && self.cleared.is_empty() && !self.forget_retries;
        if !plain || self.options.transient || self.phase == SubscriptionPhase::Waiting {
            return self.persist(myself).await;
        }
        let (Some(id), Ok(keeper)) = (self.row, self.ctx.locks.get()) else {
            // Restarting: the next ack or the timer writes it.
            return;
        };
        if keeper.cast(LockMsg::Checkpoint { id, owner: myself.clone(), checkpoint }).is_err() {
            return;
        }
        // Handed over: the keeper writes it, or tells this actor its lock is gone.
        self.written(checkpoint, true);
    }

    /// Writes the checkpoint if it moved (with the rows of replayed events that were acked).
    /// Failures leave it to the next ack or timer.
    pub(super) async fn persist(&mut self, myself: &ActorRef<SubscriptionMsg>) {
        let checkpoint = self.tracker.acked();
        let moved = checkpoint > self.persisted;
        if (!moved && self.cleared.is_empty()) || self.phase == SubscriptionPhase::Waiting {
            return;
        }
        if self.options.transient {
            return self.written(checkpoint, moved);
        }
        let write = SubscriptionWrite {
            checkpoint: moved.then_some(checkpoint),
            nacks: Vec::new(),
            cleared: self.cleared.clone(),
            forget_retries_upto: (moved && self.forget_retries).then_some(checkpoint),
        };
        match self.write(myself, write).await {
            WriteOutcome::Saved | WriteOutcome::RowGone => self.written(checkpoint, moved),
            WriteOutcome::NotOwner => {}
            WriteOutcome::Failed(e) => {
                tracing::warn!(subscription = %self.key, error = %e, "checkpoint write failed; retrying later");
            }
        }
    }

    /// Books a write of `checkpoint` (and of the rows of replayed events that went with it):
    /// parked events it passed no longer need remembering, nor do retry counts if it `moved`.
    fn written(&mut self, checkpoint: u64, moved: bool) {
        self.persisted = checkpoint;
        self.unpersisted_acks = 0;
        self.cleared.clear();
        self.forget_retries &= !moved;
        self.parked = self.parked.split_off(&(checkpoint + 1));
    }

    /// Writes through the lock keeper, on the connection holding this subscription's lock. A
    /// lost lock sends the subscription back to waiting.
    pub(super) async fn write(&mut self, myself: &ActorRef<SubscriptionMsg>, write: SubscriptionWrite) -> WriteOutcome {
        let Some(id) = self.row else { return WriteOutcome::NotOwner };
        let keeper = match self.ctx.locks.get() {
            Ok(keeper) => keeper,
            Err(e) => return WriteOutcome::Failed(e),
        };
        let owner = myself.get_id();
        let outcome = match ractor::call!(keeper, |reply| LockMsg::Write { id, owner, write, reply }) {
            Ok(outcome) => outcome,
            Err(e) => WriteOutcome::Failed(Error::Unavailable(format!("lock keeper: {e}"))),
        };
        match &outcome {
            WriteOutcome::NotOwner => self.lock_lost(myself),
            WriteOutcome::RowGone => {
                tracing::warn!(subscription = %self.key, "subscription row deleted elsewhere; nothing more is kept");
            }
            WriteOutcome::Saved | WriteOutcome::Failed(_) => {}
        }
        outcome
    }
}
