//! Acks and the checkpoint: booking finished events, and writing the checkpoint through the
//! lock keeper (coalesced when only it moved, at once when more goes with it).

use std::time::Instant;

use ractor::ActorRef;

use super::{Acks, Finished, SubscriptionMsg, SubscriptionState};
use crate::error::{Error, Result};
use crate::runtime::locks::{LockMsg, WriteOutcome};
use crate::storage::SubscriptionWrite;

impl SubscriptionState {
    /// Books an ack; [`checkpoint_soon`](Self::checkpoint_soon) then writes what it moved.
    pub(super) fn ack(&mut self, consumer: u64, incarnation: u64, acks: &Acks) -> Result<()> {
        if incarnation != self.incarnation {
            tracing::debug!(subscription = %self.key, "ack of a previous ownership ignored");
            return Ok(());
        }
        let finished = self.tracker.ack(consumer, acks)?;
        self.rates.acked(Instant::now(), finished.len());
        self.ledger.book(&finished);
        Ok(())
    }

    /// Books events that left for good, writing the checkpoint past the threshold before it
    /// returns (for nacks, which answer once their records are written).
    pub(super) async fn finished(&mut self, myself: &ActorRef<SubscriptionMsg>, finished: &[Finished]) {
        self.ledger.book(finished);
        if self.ledger.due(self.options.checkpoint_threshold) {
            self.persist(myself).await;
        }
    }

    /// Writes the checkpoint past the threshold (or, with `timer`, whatever moved) without
    /// waiting for it: a checkpoint that only moved is handed to the lock keeper, which writes
    /// the latest of every subscription in one round trip. Anything more (rows of replayed
    /// events, retry counts to forget) is written at once, as [`persist`](Self::persist) does.
    pub(super) async fn checkpoint_soon(&mut self, myself: &ActorRef<SubscriptionMsg>, timer: bool) {
        let checkpoint = self.tracker.acked();
        let moved = checkpoint > self.ledger.persisted();
        if !timer && !self.ledger.due(self.options.checkpoint_threshold) {
            return;
        }
        let plain = moved && !self.ledger.more_than_checkpoint();
        if !plain || self.options.transient || !self.phase.is_owned() {
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
        self.ledger.written(checkpoint, true);
        self.metrics.checkpoint_written();
    }

    /// Writes the checkpoint if it moved (with the rows of replayed events that were acked).
    /// Failures leave it to the next ack or timer.
    pub(super) async fn persist(&mut self, myself: &ActorRef<SubscriptionMsg>) {
        let checkpoint = self.tracker.acked();
        let moved = checkpoint > self.ledger.persisted();
        let Some(write) = self.ledger.write_for(checkpoint).filter(|_| self.phase.is_owned()) else { return };
        if self.options.transient {
            return self.ledger.written(checkpoint, moved);
        }
        match self.write(myself, write).await {
            WriteOutcome::Saved | WriteOutcome::RowGone => {
                self.ledger.written(checkpoint, moved);
                self.metrics.checkpoint_written();
            }
            WriteOutcome::NotOwner => {}
            WriteOutcome::Failed(e) => {
                tracing::warn!(subscription = %self.key, error = %e, "checkpoint write failed; retrying later");
            }
        }
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
