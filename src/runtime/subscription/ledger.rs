//! What a subscription owes the database, free of I/O: the checkpoint as last written, how many
//! finished events it does not cover yet, the parked events after it, the parked events asked
//! for again and not yet read, the rows of replayed events that are done with, and whether
//! stored retry counts may lie behind the checkpoint.
//!
//! The [`Tracker`](super::Tracker) says what is delivered and derives the checkpoint; the ledger
//! says what of it is written, and everything about parked events that outlives a delivery.
//! Parked events after the checkpoint are finished: when a catch-up reads them again they are
//! skipped, and once a written checkpoint passes them they need no remembering.

use std::collections::{BTreeSet, VecDeque};

use super::Finished;
use crate::storage::{StoredNack, SubscriptionWrite};

/// The parked and checkpoint bookkeeping of one ownership of a subscription.
#[derive(Debug, Default)]
pub struct Ledger {
    /// The checkpoint as last written (or handed to the lock keeper).
    persisted: u64,
    /// Events finished since then.
    unpersisted: u64,
    /// Parked events after the checkpoint: finished, so skipped when read again.
    parked: BTreeSet<u64>,
    /// Parked events to replay, not yet read, with their retry counts.
    replay_pending: VecDeque<(u64, u32)>,
    /// Replayed parked events that were finished: their rows go with the next write.
    cleared: Vec<u64>,
    /// Retry counts may be stored for events the checkpoint will pass.
    forget_retries: bool,
}

impl Ledger {
    /// The ledger of an ownership that resumes after `checkpoint`.
    pub fn new(checkpoint: u64) -> Self {
        Ledger { persisted: checkpoint, ..Ledger::default() }
    }

    /// The checkpoint as last written.
    pub fn persisted(&self) -> u64 {
        self.persisted
    }

    /// Takes back a parked event a previous owner recorded, the checkpoint being `acked`.
    pub fn restore_parked(&mut self, nack: &StoredNack, acked: u64) {
        let n = nack.event_number;
        if n > acked {
            self.parked.insert(n);
        }
        if nack.replay_requested {
            self.replay_pending.push_back((n, nack.retry_count));
        }
    }

    /// Whether event `n` is parked (and so skipped when read again).
    pub fn is_parked(&self, n: u64) -> bool {
        self.parked.contains(&n)
    }

    /// Books events that left for good (acked, skipped or parked before).
    pub fn book(&mut self, finished: &[Finished]) {
        for done in finished {
            if done.replay {
                self.cleared.push(done.number);
                self.parked.remove(&done.number);
            }
            self.forget_retries |= done.retried;
        }
        self.unpersisted += finished.len() as u64;
    }

    /// Books a park that was written: the event is finished and skipped when read again.
    pub fn park(&mut self, n: u64) {
        self.parked.insert(n);
        self.unpersisted += 1;
    }

    /// Whether at least `threshold` finished events are not written yet.
    pub fn due(&self, threshold: u64) -> bool {
        self.unpersisted >= threshold
    }

    /// Whether a write would hold more than the checkpoint (rows to delete, retry counts to
    /// forget).
    pub fn more_than_checkpoint(&self) -> bool {
        !self.cleared.is_empty() || self.forget_retries
    }

    /// Whether anything is owed with the checkpoint at `acked`.
    pub fn unwritten(&self, acked: u64) -> bool {
        acked > self.persisted || !self.cleared.is_empty()
    }

    /// What to write for checkpoint `acked`: `None` if nothing is owed.
    pub fn write_for(&self, acked: u64) -> Option<SubscriptionWrite> {
        let moved = acked > self.persisted;
        if !moved && self.cleared.is_empty() {
            return None;
        }
        Some(SubscriptionWrite {
            checkpoint: moved.then_some(acked),
            nacks: Vec::new(),
            cleared: self.cleared.clone(),
            forget_retries_upto: (moved && self.forget_retries).then_some(acked),
        })
    }

    /// Books a write of `checkpoint` (and of the rows of replayed events that went with it):
    /// parked events it passed no longer need remembering, nor do retry counts if it `moved`.
    pub fn written(&mut self, checkpoint: u64, moved: bool) {
        self.persisted = checkpoint;
        self.unpersisted = 0;
        self.cleared.clear();
        self.forget_retries &= !moved;
        self.parked = self.parked.split_off(&(checkpoint + 1));
    }

    /// Asks for parked event `n` again, unless it is already asked for or done with (replayed
    /// with its row not yet deleted); whether it was queued.
    pub fn request_replay(&mut self, n: u64, retries: u32) -> bool {
        if self.cleared.contains(&n) || self.replay_pending.iter().any(|p| p.0 == n) {
            return false;
        }
        self.replay_pending.push_back((n, retries));
        true
    }

    /// How many parked events are asked for again and not read yet.
    pub fn replays_pending(&self) -> usize {
        self.replay_pending.len()
    }

    /// Takes up to `max` parked events to read for replay, oldest request first.
    pub fn take_replays(&mut self, max: usize) -> Vec<(u64, u32)> {
        let take = self.replay_pending.len().min(max);
        self.replay_pending.drain(..take).collect()
    }

    /// Puts back replays that could not be read, ahead of the others.
    pub fn untake_replays(&mut self, chunk: Vec<(u64, u32)>) {
        for item in chunk.into_iter().rev() {
            self.replay_pending.push_front(item);
        }
    }

    /// A parked event asked for again is gone (hard-deleted): nothing to replay, its row goes.
    pub fn replay_gone(&mut self, n: u64) {
        self.cleared.push(n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finished(number: u64, replay: bool, retried: bool) -> Finished {
        Finished { number, replay, retried }
    }

    fn stored(n: u64, replay_requested: bool) -> StoredNack {
        StoredNack { event_number: n, retry_count: 2, parked: true, replay_requested }
    }

    #[test]
    fn a_plain_ack_owes_only_the_checkpoint() {
        let mut ledger = Ledger::new(3);
        assert!(ledger.write_for(3).is_none(), "nothing moved");
        ledger.book(&[finished(4, false, false)]);
        assert!(ledger.due(1) && !ledger.more_than_checkpoint());
        let write = ledger.write_for(4).expect("the checkpoint moved");
        assert_eq!((write.checkpoint, write.cleared.len(), write.forget_retries_upto), (Some(4), 0, None));
        ledger.written(4, true);
        assert!(!ledger.unwritten(4) && !ledger.due(1));
    }

    #[test]
    fn a_finished_replay_clears_its_row_and_forgets_it_was_parked() {
        let mut ledger = Ledger::new(10);
        ledger.restore_parked(&stored(5, true), 10);
        ledger.restore_parked(&stored(12, false), 10);
        assert!(!ledger.is_parked(5), "behind the checkpoint: not read again anyway");
        assert!(ledger.is_parked(12));
        assert_eq!(ledger.take_replays(10), vec![(5, 2)]);
        ledger.book(&[finished(5, true, true)]);
        assert!(ledger.more_than_checkpoint() && ledger.unwritten(10));
        let write = ledger.write_for(10).expect("the row is owed");
        assert_eq!((write.checkpoint, write.cleared), (None, vec![5]));
        ledger.written(10, false);
        assert!(!ledger.unwritten(10));
        assert!(ledger.more_than_checkpoint(), "retry counts still to forget once the checkpoint moves");
        let write = ledger.write_for(11).expect("moved");
        assert_eq!(write.forget_retries_upto, Some(11));
    }

    #[test]
    fn a_written_checkpoint_forgets_the_parked_events_it_passed() {
        let mut ledger = Ledger::new(0);
        ledger.park(3);
        ledger.park(8);
        ledger.written(5, true);
        assert!(!ledger.is_parked(3) && ledger.is_parked(8));
    }

    #[test]
    fn a_replay_is_asked_for_once_and_comes_back_first_when_unread() {
        let mut ledger = Ledger::new(0);
        assert!(ledger.request_replay(4, 1));
        assert!(!ledger.request_replay(4, 1), "already asked for");
        assert!(ledger.request_replay(6, 0));
        let chunk = ledger.take_replays(1);
        assert_eq!(ledger.replays_pending(), 1);
        ledger.untake_replays(chunk);
        assert_eq!(ledger.take_replays(10), vec![(4, 1), (6, 0)]);
        ledger.replay_gone(6);
        assert!(!ledger.request_replay(6, 0), "done with until its row is deleted");
    }
}
