//! The `LockKeeper` actor: the node's ownership of named subscriptions.
//!
//! - **Owns** the storage's `LockSession` and which subscription actor holds which lock. On
//!   PostgreSQL the session is one dedicated connection holding the advisory lock of every
//!   subscription this node runs; on SQLite the process that holds the file owns every
//!   subscription, and the session only records which ones it runs.
//! - **Receives** `TryLock`, `Release` (from a subscription actor that stops, or for one that
//!   died), `Write` (retry counts, parks and the checkpoint with them, written through the
//!   session, so only a live owner can write them), `Checkpoint` (a moved checkpoint, written
//!   with the others pending in ONE round trip by `Flush`, which it sends itself), `Ping`
//!   (every retry interval) and `Check` (a ping on demand, when the database is back after an
//!   outage).
//! - **Persists** what the subscription actors ask it to write, before replying. Checkpoints
//!   are coalesced: while one round trip is under way, the next checkpoint of every
//!   subscription waits in `pending` (only the latest of each counts), so a subscription that
//!   writes its checkpoint after every ack costs a share of one round trip, not one each. A
//!   pending checkpoint goes with the next `Write` of its subscription, and before a `Release`
//!   or a shutdown lets go of the lock.
//! - **When the connection dies** (a failed ping or write), PostgreSQL has released every lock
//!   with it, and another node may take them over: it tells each holder `LockLost` at once, and
//!   they stop delivering and queue for their lock again.
//! - **On a crash**: its connection closes with it (releasing the locks); the supervisor starts
//!   a new keeper and has the registry tell every subscription actor its lock is lost.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort};

use super::subscription::SubscriptionMsg;
use crate::error::Result;
use crate::storage::{LockSession, Storage, SubscriptionWrite};

/// What became of a subscription's write.
#[derive(Debug)]
pub enum WriteOutcome {
    /// Written.
    Saved,
    /// The subscription's row is gone (the subscription was deleted).
    RowGone,
    /// The caller does not hold the lock (any more): it must not write.
    NotOwner,
    /// The write failed; the lock may still be held.
    Failed(crate::Error),
}

/// Messages of the lock keeper.
pub enum LockMsg {
    /// Take subscription `id`'s lock for `owner` if no other session holds it.
    TryLock {
        /// The subscription's id.
        id: i32,
        /// The subscription actor asking.
        owner: ActorRef<SubscriptionMsg>,
        /// Whether the lock is now held for `owner`.
        reply: RpcReplyPort<Result<bool>>,
    },
    /// Release the lock `owner` holds (it stopped or died), if any, after writing its pending
    /// checkpoint.
    Release {
        /// The subscription actor.
        owner: ActorId,
        /// Told once the checkpoint was written (or could not be) and the lock released.
        done: Option<RpcReplyPort<()>>,
    },
    /// Write subscription `id`'s changes if `owner` holds its lock.
    Write {
        /// The subscription's id.
        id: i32,
        /// The subscription actor writing.
        owner: ActorId,
        /// What to write.
        write: SubscriptionWrite,
        /// What became of it.
        reply: RpcReplyPort<WriteOutcome>,
    },
    /// Write subscription `id`'s checkpoint with the others pending, if `owner` holds its lock.
    Checkpoint {
        /// The subscription's id.
        id: i32,
        /// The subscription actor writing (told `LockLost` if it does not hold the lock).
        owner: ActorRef<SubscriptionMsg>,
        /// The new checkpoint.
        checkpoint: u64,
    },
    /// Write the pending checkpoints (sent by the keeper to itself).
    Flush,
    /// Check the connection (sent by a timer).
    Ping,
    /// Check the connection now and answer once every holder of a lock it lost was told
    /// (from the registry, when the database is back after an outage).
    Check(RpcReplyPort<()>),
}

/// The lock keeper actor.
pub struct LockKeeper;

/// Arguments of the lock keeper.
pub struct LockKeeperArgs {
    /// The store's storage.
    pub storage: Storage,
    /// How often the connection is checked while it holds locks.
    pub ping_interval: Duration,
}

/// The lock keeper's state.
pub struct LockKeeperState {
    storage: Storage,
    session: Option<LockSession>,
    held: HashMap<i32, ActorRef<SubscriptionMsg>>,
    /// Checkpoints to write with the next round trip, by subscription id.
    pending: BTreeMap<i32, u64>,
    flush_scheduled: bool,
}

impl Actor for LockKeeper {
    type Msg = LockMsg;
    type State = LockKeeperState;
    type Arguments = LockKeeperArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<LockMsg>,
        args: LockKeeperArgs,
    ) -> Result<LockKeeperState, ActorProcessingErr> {
        myself.send_interval(args.ping_interval, || LockMsg::Ping);
        Ok(LockKeeperState {
            storage: args.storage,
            session: None,
            held: HashMap::new(),
            pending: BTreeMap::new(),
            flush_scheduled: false,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<LockMsg>,
        msg: LockMsg,
        state: &mut LockKeeperState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            LockMsg::TryLock { id, owner, reply } => {
                let _ = reply.send(state.try_lock(id, owner).await);
            }
            LockMsg::Checkpoint { id, owner, checkpoint } => {
                if state.held.get(&id).is_none_or(|h| h.get_id() != owner.get_id()) {
                    let _ = owner.cast(SubscriptionMsg::LockLost);
                } else {
                    let pending = state.pending.entry(id).or_insert(checkpoint);
                    *pending = (*pending).max(checkpoint);
                    if !state.flush_scheduled {
                        // Behind every message already queued: those checkpoints join this round trip.
                        state.flush_scheduled = true;
                        let _ = myself.cast(LockMsg::Flush);
                    }
                }
            }
            LockMsg::Flush => {
                state.flush_scheduled = false;
                state.flush().await;
            }
            LockMsg::Release { owner, done } => {
                // What it acked is written before another node can take over.
                state.flush().await;
                let held: Vec<i32> =
                    state.held.iter().filter(|(_, h)| h.get_id() == owner).map(|(id, _)| *id).collect();
                for id in held {
                    state.held.remove(&id);
                    if let Some(session) = state.session.as_mut()
                        && let Err(e) = session.unlock(id).await
                    {
                        state.lost(&format!("unlock failed: {e}"));
                    }
                }
                if let Some(done) = done {
                    let _ = done.send(());
                }
            }
            LockMsg::Write { id, owner, write, reply } => {
                let outcome = state.write(id, owner, &write).await;
                let _ = reply.send(outcome);
            }
            LockMsg::Ping => {
                // Also a retry of checkpoints whose write failed.
                state.flush().await;
                state.ping().await;
            }
            LockMsg::Check(reply) => {
                state.ping().await;
                let _ = reply.send(());
            }
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<LockMsg>,
        state: &mut LockKeeperState,
    ) -> Result<(), ActorProcessingErr> {
        state.flush().await;
        if let Some(session) = state.session.take() {
            session.close().await;
        }
        Ok(())
    }
}

impl LockKeeperState {
    async fn try_lock(&mut self, id: i32, owner: ActorRef<SubscriptionMsg>) -> Result<bool> {
        if let Some(holder) = self.held.get(&id) {
            // The lock is this node's already: a restarted subscription actor takes it over
            // from its dead predecessor. Two live actors never ask for one subscription.
            if holder.get_id() != owner.get_id() {
                self.held.insert(id, owner);
            }
            return Ok(true);
        }
        let session = match self.session.as_mut() {
            Some(session) => session,
            None => self.session.insert(self.storage.open_lock_session().await?),
        };
        match session.try_lock(id).await {
            Ok(true) => {
                self.held.insert(id, owner);
                Ok(true)
            }
            Ok(false) => Ok(false),
            Err(e) => {
                self.lost(&format!("lock request failed: {e}"));
                Err(e)
            }
        }
    }

    /// Checks the connection while it holds locks.
    async fn ping(&mut self) {
        if !self.held.is_empty()
            && let Some(session) = self.session.as_mut()
            && let Err(e) = session.ping().await
        {
            self.lost(&format!("ping failed: {e}"));
        }
    }

    /// Writes every pending checkpoint in one round trip. A failed write keeps them pending for
    /// the next ping; a lost connection drops them with the locks (their holders are told, and
    /// deliver again from the stored checkpoints).
    async fn flush(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let Some(session) = self.session.as_mut() else {
            // No connection, so no lock: their holders were told when it went.
            self.pending.clear();
            return;
        };
        let checkpoints: Vec<(i32, u64)> = self.pending.iter().map(|(id, c)| (*id, *c)).collect();
        match session.write_checkpoints(&checkpoints).await {
            Ok(gone) => {
                for id in gone {
                    tracing::warn!(
                        subscription_id = id,
                        "subscription row deleted elsewhere; its checkpoint is not kept"
                    );
                }
                self.pending.clear();
            }
            Err(e @ crate::Error::Unavailable(_)) => self.lost(&format!("checkpoint write failed: {e}")),
            Err(e) => {
                tracing::warn!(error = %e, subscriptions = checkpoints.len(), "checkpoint write failed; retrying at the next ping");
            }
        }
    }

    async fn write(&mut self, id: i32, owner: ActorId, write: &SubscriptionWrite) -> WriteOutcome {
        if self.held.get(&id).is_none_or(|h| h.get_id() != owner) {
            return WriteOutcome::NotOwner;
        }
        let Some(session) = self.session.as_mut() else { return WriteOutcome::NotOwner };
        // A checkpoint still pending goes with this write.
        let merged = self.pending.remove(&id).filter(|p| write.checkpoint.is_none_or(|c| c < *p)).map(|p| {
            let mut merged = write.clone();
            merged.checkpoint = Some(p);
            merged
        });
        let write = merged.as_ref().unwrap_or(write);
        match session.write(id, write).await {
            Ok(true) => WriteOutcome::Saved,
            Ok(false) => WriteOutcome::RowGone,
            Err(e @ crate::Error::Unavailable(_)) => {
                self.lost(&format!("subscription write failed: {e}"));
                WriteOutcome::NotOwner
            }
            Err(e) => WriteOutcome::Failed(e),
        }
    }

    /// The connection is gone, and every lock with it: tell every holder.
    fn lost(&mut self, why: &str) {
        tracing::warn!(reason = why, subscriptions = self.held.len(), "lock connection lost; ownership released");
        // Dropped, not closed: there is nobody left to say goodbye to.
        self.session = None;
        self.pending.clear();
        for (_, holder) in self.held.drain() {
            let _ = holder.cast(SubscriptionMsg::LockLost);
        }
    }
}
