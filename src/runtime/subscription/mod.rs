//! The `Subscription` actor: one per named subscription running on this node. Its state
//! machine:
//!
//! ```text
//!   Waiting ──lock taken──► CatchingUp ──short read──► Live
//!      ▲                      ▲   │                     │
//!      └──── lock lost ───────┴───┴── gap, Missed, or queue at max_size
//! ```
//!
//! - **Owns** the subscribers' channels, the queue of events not yet delivered (at most
//!   `max_size`), the events in flight per subscriber and partition (at most `buffer_size`
//!   each), and the checkpoint (see [`tracker`]).
//! - **Receives** `Connect`/`Disconnect` of subscribers (from the registry), `Ack`, `Live`
//!   feeds (from its publisher), `Acquire` and `CatchUp` (sent to itself), `LockLost` (from the
//!   lock keeper), `FlushCheckpoint` (its timer), `Status` and `Stop`.
//! - **Persists** the checkpoint through the lock keeper (on the connection that holds its
//!   lock): when `checkpoint_threshold` events were acked, `checkpoint_after` after an
//!   unwritten ack, and when it stops. The timer only writes; it never changes the phase.
//! - **On a crash**: the registry restarts it with the same subscribers; it retakes the lock
//!   and resumes after the persisted checkpoint, so subscribers see `Subscribed` and the
//!   unacked events again (at-least-once, never a gap).
//!
//! Live feeds bound nothing by themselves (mailboxes are unbounded), so the actor takes live
//! events only while its queue has room; past `max_size` it drops them and reads from storage
//! as the queue drains, which is what keeps a subscriber that never acks from growing memory.

pub mod tracker;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::mpsc;

pub use self::tracker::{Acks, Tracker};
use super::Context;
use super::locks::{CheckpointOutcome, LockMsg};
use super::publisher::{Listener, ListenerId, LiveFeed};
use super::registry::SubscriptionKey;
use crate::error::{Error, Result};
use crate::event::{ALL, RecordedEvent};
use crate::storage::postgres::Direction;
use crate::subscription::{
    DropReason, StartFrom, SubscriptionMessage, SubscriptionOptions, SubscriptionPhase, SubscriptionStatus,
};

/// Most events one catch-up read takes.
const READ_BATCH: usize = 1_000;
/// After errors, attempts to take the lock back off up to this many retry intervals.
const MAX_BACKOFF_INTERVALS: u32 = 8;

/// Tells deliveries of one ownership apart from another's, across actors and restarts.
static INCARNATIONS: AtomicU64 = AtomicU64::new(1);

/// A message on a subscriber's channel, tagged with the incarnation that sent it so acks of a
/// previous one can be ignored.
#[derive(Debug)]
pub struct Delivery {
    /// The ownership that sent it.
    pub incarnation: u64,
    /// The message.
    pub message: SubscriptionMessage,
}

/// A connected subscriber, as the actor sees it.
#[derive(Debug, Clone)]
pub struct Consumer {
    /// Its id within the registry.
    pub id: u64,
    /// Its channel (bounded in practice by `buffer_size` in flight).
    pub tx: mpsc::UnboundedSender<Delivery>,
}

/// Messages of a subscription actor.
pub enum SubscriptionMsg {
    /// A subscriber joined.
    Connect(Consumer),
    /// A subscriber left: its in-flight events go back to the queue.
    Disconnect(u64),
    /// A subscriber acks events.
    Ack {
        /// The subscriber.
        consumer: u64,
        /// The incarnation of the delivery being acked.
        incarnation: u64,
        /// What it acks.
        acks: Acks,
        /// `Ok`, or `UnexpectedAck`.
        reply: RpcReplyPort<Result<()>>,
    },
    /// What the publisher saw committed.
    Live(LiveFeed),
    /// Try to take ownership (sent to itself).
    Acquire,
    /// Read the next part of the backlog (sent to itself).
    CatchUp,
    /// The lock keeper lost this node's locks.
    LockLost,
    /// Write the checkpoint if acks are unwritten (timer).
    FlushCheckpoint,
    /// The in-memory state.
    Status(RpcReplyPort<SubscriptionStatus>),
    /// Write the checkpoint, release the lock, drop the subscribers with `reason` and stop.
    Stop(DropReason, RpcReplyPort<()>),
}

/// The subscription actor.
pub struct SubscriptionActor;

/// Arguments of a subscription actor.
pub struct SubscriptionArgs {
    /// The store's runtime context.
    pub ctx: Context,
    /// Stream and name.
    pub key: SubscriptionKey,
    /// Its options.
    pub options: SubscriptionOptions,
    /// The subscribers connected when it starts.
    pub consumers: Vec<Consumer>,
    /// Its listener id at the publisher (chosen by the registry, which removes it if the actor
    /// crashes).
    pub listener: ListenerId,
}

/// A subscription actor's state.
pub struct SubscriptionState {
    ctx: Context,
    key: SubscriptionKey,
    options: SubscriptionOptions,
    consumers: Vec<Consumer>,
    listener: ListenerId,
    phase: SubscriptionPhase,
    tracker: Tracker,
    /// The row's id once known (persistent subscriptions only).
    row: Option<i32>,
    incarnation: u64,
    persisted: u64,
    unpersisted_acks: u64,
    flush_scheduled: bool,
    /// Highest `$all` position of a live range seen while catching up.
    live_to: u64,
    /// The backlog ends here; `CaughtUp` is sent once it has all been delivered.
    caught_up_at: Option<u64>,
    /// A catch-up read is due once the queue has room.
    catch_up_stalled: bool,
    acquire_failures: u32,
}

impl Actor for SubscriptionActor {
    type Msg = SubscriptionMsg;
    type State = SubscriptionState;
    type Arguments = SubscriptionArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<SubscriptionMsg>,
        args: SubscriptionArgs,
    ) -> Result<SubscriptionState, ActorProcessingErr> {
        args.ctx.hub.listen(&args.key.stream, args.listener, Listener::Subscription(myself.clone())).await?;
        let state = SubscriptionState {
            tracker: Tracker::new(args.options.buffer_size, 0),
            ctx: args.ctx,
            key: args.key,
            options: args.options,
            consumers: args.consumers,
            listener: args.listener,
            phase: SubscriptionPhase::Waiting,
            row: None,
            incarnation: INCARNATIONS.fetch_add(1, Ordering::Relaxed),
            persisted: 0,
            unpersisted_acks: 0,
            flush_scheduled: false,
            live_to: 0,
            caught_up_at: None,
            catch_up_stalled: false,
            acquire_failures: 0,
        };
        myself.cast(SubscriptionMsg::Acquire)?;
        Ok(state)
    }

    async fn handle(
        &self,
        myself: ActorRef<SubscriptionMsg>,
        msg: SubscriptionMsg,
        state: &mut SubscriptionState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            SubscriptionMsg::Connect(consumer) => {
                if state.phase != SubscriptionPhase::Waiting {
                    send(&consumer, state.incarnation, SubscriptionMessage::Subscribed);
                }
                state.consumers.push(consumer);
            }
            SubscriptionMsg::Disconnect(id) => state.disconnect(&myself, id),
            SubscriptionMsg::Ack { consumer, incarnation, acks, reply } => {
                let outcome = state.ack(&myself, consumer, incarnation, &acks).await;
                let _ = reply.send(outcome);
            }
            SubscriptionMsg::Live(feed) => state.take_live(&myself, feed),
            SubscriptionMsg::Acquire => state.acquire(&myself).await,
            SubscriptionMsg::CatchUp => state.catch_up(&myself).await,
            SubscriptionMsg::LockLost => state.lock_lost(&myself),
            SubscriptionMsg::FlushCheckpoint => {
                state.flush_scheduled = false;
                state.persist(&myself).await;
            }
            SubscriptionMsg::Status(reply) => {
                let _ = reply.send(state.status());
            }
            SubscriptionMsg::Stop(reason, reply) => {
                state.stop(&myself, reason).await;
                let _ = reply.send(());
                myself.stop(None);
                return Ok(());
            }
        }
        state.deliver(&myself);
        Ok(())
    }
}

fn send(consumer: &Consumer, incarnation: u64, message: SubscriptionMessage) -> bool {
    consumer.tx.send(Delivery { incarnation, message }).is_ok()
}

impl SubscriptionState {
    fn is_all(&self) -> bool {
        self.key.stream == ALL
    }

    fn broadcast(&self, message: SubscriptionMessage) {
        for consumer in &self.consumers {
            send(consumer, self.incarnation, message.clone());
        }
    }

    /// Takes ownership (the lock, or nothing for a transient subscription) and starts catching
    /// up after the checkpoint.
    async fn acquire(&mut self, myself: &ActorRef<SubscriptionMsg>) {
        if self.phase != SubscriptionPhase::Waiting {
            return;
        }
        match self.try_acquire(myself).await {
            Ok(Some(checkpoint)) => {
                self.acquire_failures = 0;
                self.incarnation = INCARNATIONS.fetch_add(1, Ordering::Relaxed);
                self.tracker = Tracker::new(self.options.buffer_size, checkpoint);
                self.persisted = checkpoint;
                self.unpersisted_acks = 0;
                self.live_to = 0;
                self.phase = SubscriptionPhase::CatchingUp;
                tracing::debug!(subscription = %self.key, checkpoint, "subscription owned; catching up");
                self.broadcast(SubscriptionMessage::Subscribed);
                let _ = myself.cast(SubscriptionMsg::CatchUp);
            }
            Ok(None) => {
                // Another node runs it: ask again within the retry interval.
                myself.send_after(self.ctx.retry_interval, || SubscriptionMsg::Acquire);
            }
            Err(e) => {
                self.acquire_failures += 1;
                let interval = self.ctx.retry_interval;
                let backoff = interval
                    .saturating_mul(2_u32.saturating_pow(self.acquire_failures.min(8) - 1))
                    .min(interval.saturating_mul(MAX_BACKOFF_INTERVALS));
                tracing::warn!(subscription = %self.key, error = %e, ?backoff, "cannot take the subscription; retrying");
                myself.send_after(backoff, || SubscriptionMsg::Acquire);
            }
        }
    }

    /// The checkpoint to resume after, once owned; `None` if another node owns it.
    async fn try_acquire(&mut self, myself: &ActorRef<SubscriptionMsg>) -> Result<Option<u64>> {
        if self.options.transient {
            return self.start_position().await.map(Some);
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
        let keeper = self.ctx.lock_keeper()?;
        let owner = myself.clone();
        let locked = ractor::call!(keeper, |reply| LockMsg::TryLock { id, owner, reply })
            .map_err(|e| Error::Unavailable(format!("lock keeper: {e}")))??;
        if !locked {
            return Ok(None);
        }
        // Read after locking: the previous owner may have moved it until it let go.
        match storage.find_subscription(&self.key.stream, &self.key.name).await? {
            Some(row) if row.id == id => Ok(Some(row.last_seen)),
            _ => {
                // Deleted (perhaps re-created) meanwhile: let go and start over with its new row.
                self.row = None;
                let _ = keeper.cast(LockMsg::Release { owner: myself.get_id() });
                Err(Error::SubscriptionNotFound)
            }
        }
    }

    /// Where a new subscription starts, per `start_from`.
    async fn start_position(&self) -> Result<u64> {
        match self.options.start_from {
            StartFrom::Origin => Ok(0),
            StartFrom::After(n) => Ok(n),
            StartFrom::Current => self.ctx.storage.head(&self.key.stream).await,
        }
    }

    fn lock_lost(&mut self, myself: &ActorRef<SubscriptionMsg>) {
        if self.phase == SubscriptionPhase::Waiting || self.options.transient {
            return;
        }
        tracing::warn!(subscription = %self.key, "subscription ownership lost; waiting to take it again");
        self.phase = SubscriptionPhase::Waiting;
        // Acks of what was delivered so far are moot: it comes again under the next ownership.
        self.incarnation = INCARNATIONS.fetch_add(1, Ordering::Relaxed);
        self.tracker = Tracker::new(self.options.buffer_size, self.persisted);
        self.caught_up_at = None;
        myself.send_after(self.ctx.retry_interval, || SubscriptionMsg::Acquire);
    }

    /// Reads the next part of the backlog into the queue (as much as it has room for).
    async fn catch_up(&mut self, myself: &ActorRef<SubscriptionMsg>) {
        if self.phase != SubscriptionPhase::CatchingUp {
            return;
        }
        let room = self.options.max_size.saturating_sub(self.tracker.queued()).min(READ_BATCH);
        if room == 0 {
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
                myself.send_after(self.ctx.retry_interval, || SubscriptionMsg::CatchUp);
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
    fn disconnect(&mut self, myself: &ActorRef<SubscriptionMsg>, id: u64) {
        self.consumers.retain(|c| c.id != id);
        if self.tracker.disconnect(id, self.options.max_size) && self.phase == SubscriptionPhase::Live {
            self.fall_behind(myself);
        }
    }

    /// Queues an event, or skips it if the selector rejects it.
    fn take(&mut self, event: RecordedEvent) {
        if self.options.selects(&event) {
            let partition = self.options.partition_of(&event);
            self.tracker.push(event, partition);
        } else {
            self.tracker.skip_to(event.event_number);
        }
    }

    fn fall_behind(&mut self, myself: &ActorRef<SubscriptionMsg>) {
        self.phase = SubscriptionPhase::CatchingUp;
        self.caught_up_at = None;
        let _ = myself.cast(SubscriptionMsg::CatchUp);
    }

    /// Takes live events while live and there is room; anything else sends it back to storage.
    fn take_live(&mut self, myself: &ActorRef<SubscriptionMsg>, feed: LiveFeed) {
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

    async fn ack(
        &mut self,
        myself: &ActorRef<SubscriptionMsg>,
        consumer: u64,
        incarnation: u64,
        acks: &Acks,
    ) -> Result<()> {
        if incarnation != self.incarnation {
            tracing::debug!(subscription = %self.key, "ack of a previous ownership ignored");
            return Ok(());
        }
        let acked = self.tracker.ack(consumer, acks)?;
        self.unpersisted_acks += acked as u64;
        if self.unpersisted_acks >= self.options.checkpoint_threshold {
            self.persist(myself).await;
        }
        Ok(())
    }

    /// Hands queued events to subscribers with room, says `CaughtUp` once the backlog is out,
    /// resumes a stalled catch-up, and arms the checkpoint timer if anything is unwritten.
    fn deliver(&mut self, myself: &ActorRef<SubscriptionMsg>) {
        if self.phase != SubscriptionPhase::Waiting {
            let ids: Vec<u64> = self.consumers.iter().map(|c| c.id).collect();
            for (id, batch) in self.tracker.dispatch(&ids) {
                let delivered = self
                    .consumers
                    .iter()
                    .find(|c| c.id == id)
                    .is_some_and(|c| send(c, self.incarnation, SubscriptionMessage::Events(batch)));
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
            if self.catch_up_stalled && self.tracker.queued() < self.options.max_size {
                self.catch_up_stalled = false;
                let _ = myself.cast(SubscriptionMsg::CatchUp);
            }
        }
        if self.tracker.acked() > self.persisted && !self.flush_scheduled && self.phase != SubscriptionPhase::Waiting {
            self.flush_scheduled = true;
            myself.send_after(self.options.checkpoint_after, || SubscriptionMsg::FlushCheckpoint);
        }
    }

    /// Writes the checkpoint if it moved. Failures leave it to the next ack or timer.
    async fn persist(&mut self, myself: &ActorRef<SubscriptionMsg>) {
        let checkpoint = self.tracker.acked();
        if checkpoint <= self.persisted || self.phase == SubscriptionPhase::Waiting {
            return;
        }
        if self.options.transient {
            self.persisted = checkpoint;
            self.unpersisted_acks = 0;
            return;
        }
        let (Some(id), Ok(keeper)) = (self.row, self.ctx.lock_keeper()) else { return };
        let owner = myself.get_id();
        let outcome = ractor::call!(keeper, |reply| LockMsg::SaveCheckpoint { id, owner, checkpoint, reply });
        match outcome {
            Ok(CheckpointOutcome::Saved) => {
                self.persisted = checkpoint;
                self.unpersisted_acks = 0;
            }
            Ok(CheckpointOutcome::RowGone) => {
                tracing::warn!(subscription = %self.key, "subscription row deleted elsewhere; checkpoint not kept");
                self.persisted = checkpoint;
                self.unpersisted_acks = 0;
            }
            Ok(CheckpointOutcome::NotOwner) => self.lock_lost(myself),
            Ok(CheckpointOutcome::Failed(e)) => {
                tracing::warn!(subscription = %self.key, error = %e, "checkpoint write failed; retrying later");
            }
            Err(e) => tracing::warn!(subscription = %self.key, error = %e, "lock keeper unreachable"),
        }
    }

    async fn stop(&mut self, myself: &ActorRef<SubscriptionMsg>, reason: DropReason) {
        self.persist(myself).await;
        if let Ok(keeper) = self.ctx.lock_keeper() {
            let _ = keeper.cast(LockMsg::Release { owner: myself.get_id() });
        }
        self.broadcast(SubscriptionMessage::Dropped(reason));
        self.consumers.clear();
        self.ctx.hub.unlisten(&self.key.stream, self.listener).await;
        self.phase = SubscriptionPhase::Waiting;
    }

    fn status(&self) -> SubscriptionStatus {
        SubscriptionStatus {
            phase: self.phase,
            subscribers: self.consumers.len(),
            queued: self.tracker.queued(),
            peak_queued: self.tracker.peak_queued(),
            in_flight: self.tracker.in_flight(),
            last_received: self.tracker.received(),
            acked: self.tracker.acked(),
            persisted: self.persisted,
        }
    }
}
