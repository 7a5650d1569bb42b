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
//!   It also owns the retry counts, the parked events after the checkpoint (skipped when read
//!   again) and the parked events being replayed.
//! - **Receives** `Connect`/`Disconnect` of subscribers (from the registry), `Ack`, `Nack`,
//!   `Pause`/`Resume` (from a subscriber actor), `Live` feeds (from its publisher), `Acquire`,
//!   `CatchUp` and `FillReplay` (sent to itself), `ReplayParked` (from the facade or, through
//!   the registry, a notification), `LockLost` (from the lock keeper), `DatabaseBack` (from the
//!   registry, after an outage: retries waiting out a backoff are made at once),
//!   `FlushCheckpoint`, `Sweep` and `RetryCatchUp` (its timers), `Status` and `Stop`.
//! - **Persists** through the lock keeper (on the connection that holds its lock): retry
//!   counts and parks before it answers the nack that caused them; the checkpoint (with the
//!   rows of replayed events that were acked) when `checkpoint_threshold` events were
//!   finished, `checkpoint_after` after an unwritten one, and when it stops. The timers only
//!   write and retry; they never change the phase.
//! - **On a crash**: the registry restarts it with the same subscribers; it retakes the lock
//!   and resumes after the persisted checkpoint with the stored retry counts and parks, so
//!   subscribers see `Subscribed` and the unacked events again (at-least-once, never a gap).
//!
//! Live feeds bound nothing by themselves (mailboxes are unbounded), so the actor takes live
//! events only while its queue has room; past `max_size` it drops them and reads from storage
//! as the queue drains, which is what keeps a subscriber that never acks from growing memory.

pub mod tracker;

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use tokio::sync::mpsc;

pub use self::tracker::{Acks, Finished, Tracker};
use super::Context;
use super::locks::{LockMsg, WriteOutcome};
use super::publisher::{Listener, ListenerId, LiveFeed};
use super::registry::SubscriptionKey;
use crate::error::{Error, Result};
use crate::event::{ALL, RecordedEvent};
use crate::storage::{Direction, NackRecord, StoredNack, SubscriptionWrite};
use crate::subscription::{
    DropReason, NackAction, StartFrom, SubscriptionMessage, SubscriptionOptions, SubscriptionPhase, SubscriptionStatus,
};

/// Most events one catch-up read takes.
const READ_BATCH: usize = 1_000;
/// After errors, attempts to take the lock back off up to this many retry intervals.
const MAX_BACKOFF_INTERVALS: u32 = 8;

/// Tells deliveries of one ownership apart from another's, across actors and restarts.
static INCARNATIONS: AtomicU64 = AtomicU64::new(1);

/// A message on a subscriber's channel, tagged with the incarnation that sent it so acks of a
/// previous one can be ignored, and with the subscriber's epoch so deliveries taken back by a
/// pause can be told from the ones after it.
#[derive(Debug)]
pub struct Delivery {
    /// The ownership that sent it.
    pub incarnation: u64,
    /// The subscriber's pause count within the incarnation when it was sent.
    pub epoch: u64,
    /// Retry counts of the delivered events that were retried before.
    pub retries: Vec<(u64, u32)>,
    /// The message.
    pub message: SubscriptionMessage,
}

impl Delivery {
    /// A message outside any incarnation (the registry's last word to a subscriber).
    pub fn last_word(message: SubscriptionMessage) -> Self {
        Delivery { incarnation: 0, epoch: 0, retries: Vec::new(), message }
    }
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
    /// A subscriber nacks an event.
    Nack {
        /// The subscriber.
        consumer: u64,
        /// The incarnation of the delivery being nacked.
        incarnation: u64,
        /// The event.
        number: u64,
        /// What to do with it.
        action: NackAction,
        /// Why.
        reason: String,
        /// `Ok`, `UnexpectedAck`, or why a park could not be recorded.
        reply: RpcReplyPort<Result<()>>,
    },
    /// Stop delivering to a subscriber and take back its events in flight (a subscriber actor
    /// pausing, or backing off after a failure: then `retry` names the event that failed).
    Pause {
        /// The subscriber.
        consumer: u64,
        /// The incarnation of the deliveries it has.
        incarnation: u64,
        /// The event whose failure counts as a retry, and why it failed.
        retry: Option<(u64, String)>,
        /// The subscriber's new epoch: deliveries from before it are stale.
        reply: RpcReplyPort<Result<u64>>,
    },
    /// Deliver to a paused subscriber again.
    Resume {
        /// The subscriber.
        consumer: u64,
        /// Done.
        reply: RpcReplyPort<Result<()>>,
    },
    /// Replay the parked events of subscription row `id` marked for replay (ignored by the
    /// other subscriptions).
    ReplayParked {
        /// The subscription's row id.
        id: i32,
        /// Answered once the events are queued, if given.
        reply: Option<RpcReplyPort<Result<()>>>,
    },
    /// Read the next parked events to replay (sent to itself).
    FillReplay,
    /// What the publisher saw committed.
    Live(LiveFeed),
    /// Try to take ownership (sent to itself; only the latest scheduled attempt counts).
    Acquire(u64),
    /// Read the next part of the backlog (sent to itself).
    CatchUp,
    /// Read the backlog again after a failed read, if still due (its timer).
    RetryCatchUp,
    /// The database accepts connections again after an outage (from the registry): attempts
    /// waiting out a backoff are made now.
    DatabaseBack,
    /// The lock keeper lost this node's locks.
    LockLost,
    /// Write the checkpoint if acks are unwritten (timer).
    FlushCheckpoint,
    /// Retry the events in flight for longer than `message_timeout` (timer).
    Sweep,
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
    sweep_scheduled: bool,
    /// Per subscriber, how often it was paused (see [`Delivery::epoch`]).
    epochs: HashMap<u64, u64>,
    paused: HashSet<u64>,
    /// Parked events after the checkpoint: finished, so skipped when read again.
    parked: BTreeSet<u64>,
    /// Parked events to replay not yet read into the replay lane, with their retry counts.
    replay_pending: VecDeque<(u64, u32)>,
    /// Replayed parked events that were acked or skipped: their rows go with the next write.
    cleared: Vec<u64>,
    /// Retry counts may be stored for events the checkpoint has passed.
    forget_retries: bool,
    /// Highest `$all` position of a live range seen while catching up.
    live_to: u64,
    /// The backlog ends here; `CaughtUp` is sent once it has all been delivered.
    caught_up_at: Option<u64>,
    /// A catch-up read is due once the queue has room.
    catch_up_stalled: bool,
    /// A catch-up read failed and waits for its retry.
    catch_up_retry: bool,
    acquire_failures: u32,
    /// The latest scheduled ownership attempt; earlier timers are stale.
    acquire_attempt: u64,
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
            sweep_scheduled: false,
            epochs: HashMap::new(),
            paused: HashSet::new(),
            parked: BTreeSet::new(),
            replay_pending: VecDeque::new(),
            cleared: Vec::new(),
            forget_retries: false,
            live_to: 0,
            caught_up_at: None,
            catch_up_stalled: false,
            catch_up_retry: false,
            acquire_failures: 0,
            acquire_attempt: 0,
        };
        myself.cast(SubscriptionMsg::Acquire(0))?;
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
                    state.send(&consumer, SubscriptionMessage::Subscribed, Vec::new());
                }
                state.consumers.push(consumer);
            }
            SubscriptionMsg::Disconnect(id) => state.disconnect(&myself, id),
            SubscriptionMsg::Ack { consumer, incarnation, acks, reply } => {
                // Answered at once: the checkpoint it moves (if due) is written soon after, with
                // those of the other subscriptions, and before the subscription stops.
                let outcome = state.ack(consumer, incarnation, &acks);
                let booked = outcome.is_ok();
                let _ = reply.send(outcome);
                if booked {
                    state.checkpoint_soon(&myself, false).await;
                }
            }
            SubscriptionMsg::Nack { consumer, incarnation, number, action, reason, reply } => {
                let outcome = state.nack(&myself, consumer, incarnation, number, action, reason).await;
                let _ = reply.send(outcome);
            }
            SubscriptionMsg::Pause { consumer, incarnation, retry, reply } => {
                let epoch = state.pause(&myself, consumer, incarnation, retry).await;
                let _ = reply.send(Ok(epoch));
            }
            SubscriptionMsg::Resume { consumer, reply } => {
                state.paused.remove(&consumer);
                let _ = reply.send(Ok(()));
            }
            SubscriptionMsg::ReplayParked { id, reply } => {
                let outcome = state.replay_parked(&myself, id).await;
                if let Some(reply) = reply {
                    let _ = reply.send(outcome);
                }
            }
            SubscriptionMsg::FillReplay => state.fill_replay(&myself).await,
            SubscriptionMsg::Sweep => {
                state.sweep_scheduled = false;
                state.sweep(&myself).await;
            }
            SubscriptionMsg::Live(feed) => state.take_live(&myself, feed),
            SubscriptionMsg::Acquire(attempt) if attempt == state.acquire_attempt => state.acquire(&myself).await,
            SubscriptionMsg::Acquire(_) => {}
            SubscriptionMsg::CatchUp => state.catch_up(&myself).await,
            SubscriptionMsg::RetryCatchUp if state.catch_up_retry => {
                state.catch_up_retry = false;
                state.catch_up(&myself).await;
            }
            SubscriptionMsg::RetryCatchUp => {}
            SubscriptionMsg::DatabaseBack => state.database_back(&myself).await,
            SubscriptionMsg::LockLost => state.lock_lost(&myself),
            SubscriptionMsg::FlushCheckpoint => {
                state.flush_scheduled = false;
                state.checkpoint_soon(&myself, true).await;
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

impl SubscriptionState {
    fn is_all(&self) -> bool {
        self.key.stream == ALL
    }

    /// Sends a subscriber a message of this incarnation; whether its handle is still there.
    fn send(&self, consumer: &Consumer, message: SubscriptionMessage, retries: Vec<(u64, u32)>) -> bool {
        let epoch = self.epochs.get(&consumer.id).copied().unwrap_or(0);
        consumer.tx.send(Delivery { incarnation: self.incarnation, epoch, retries, message }).is_ok()
    }

    fn broadcast(&self, message: SubscriptionMessage) {
        for consumer in &self.consumers {
            self.send(consumer, message.clone(), Vec::new());
        }
    }

    /// Takes ownership (the lock, or nothing for a transient subscription) and starts catching
    /// up after the checkpoint.
    async fn acquire(&mut self, myself: &ActorRef<SubscriptionMsg>) {
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
    fn schedule_acquire(&mut self, myself: &ActorRef<SubscriptionMsg>, after: std::time::Duration) {
        self.acquire_attempt += 1;
        let attempt = self.acquire_attempt;
        if after.is_zero() {
            let _ = myself.cast(SubscriptionMsg::Acquire(attempt));
        } else {
            myself.send_after(after, move || SubscriptionMsg::Acquire(attempt));
        }
    }

    /// The database is back: what waits for a retry because of the outage is done now.
    async fn database_back(&mut self, myself: &ActorRef<SubscriptionMsg>) {
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
    fn reset(&mut self, checkpoint: u64) {
        self.tracker = Tracker::new(self.options.buffer_size, checkpoint);
        self.unpersisted_acks = 0;
        self.parked.clear();
        self.replay_pending.clear();
        self.cleared.clear();
        self.forget_retries = false;
        self.caught_up_at = None;
    }

    /// Takes back what a previous owner recorded about one event.
    fn restore(&mut self, nack: StoredNack) {
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
    async fn try_acquire(&mut self, myself: &ActorRef<SubscriptionMsg>) -> Result<Option<(u64, Vec<StoredNack>)>> {
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
        let keeper = self.ctx.lock_keeper()?;
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

    /// A stalled catch-up reads again once the queue is down to this many events.
    fn low_water(&self) -> usize {
        self.options.max_size / 2
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
        self.reset(self.persisted);
        // After a retry interval, so that another node may take it over meanwhile (after a
        // database outage, `DatabaseBack` comes sooner).
        self.schedule_acquire(myself, self.ctx.retry_interval);
    }

    /// Reads the next part of the backlog into the queue (as much as it has room for).
    async fn catch_up(&mut self, myself: &ActorRef<SubscriptionMsg>) {
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
    fn disconnect(&mut self, myself: &ActorRef<SubscriptionMsg>, id: u64) {
        self.consumers.retain(|c| c.id != id);
        self.paused.remove(&id);
        self.epochs.remove(&id);
        self.release(myself, id);
    }

    /// Takes back the events in flight at a subscriber.
    fn release(&mut self, myself: &ActorRef<SubscriptionMsg>, id: u64) {
        if self.tracker.release(id, self.options.max_size) && self.phase == SubscriptionPhase::Live {
            self.fall_behind(myself);
        }
    }

    /// Queues an event, or skips it if it is parked or the selector rejects it.
    fn take(&mut self, event: RecordedEvent) {
        if !self.parked.contains(&event.event_number) && self.options.selects(&event) {
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

    /// Books an ack; [`checkpoint_soon`](Self::checkpoint_soon) then writes what it moved.
    fn ack(&mut self, consumer: u64, incarnation: u64, acks: &Acks) -> Result<()> {
        if incarnation != self.incarnation {
            tracing::debug!(subscription = %self.key, "ack of a previous ownership ignored");
            return Ok(());
        }
        let finished = self.tracker.ack(consumer, acks)?;
        self.book(&finished);
        Ok(())
    }

    /// Books events that left for good (acked, skipped or parked).
    fn book(&mut self, finished: &[Finished]) {
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
    async fn finished(&mut self, myself: &ActorRef<SubscriptionMsg>, finished: &[Finished]) {
        self.book(finished);
        if self.unpersisted_acks >= self.options.checkpoint_threshold {
            self.persist(myself).await;
        }
    }

    /// Writes the checkpoint past the threshold (or, with `timer`, whatever moved) without
    /// waiting for it: a checkpoint that only moved is handed to the lock keeper, which writes
    /// the latest of every subscription in one round trip. Anything more (rows of replayed
    /// events, retry counts to forget) is written at once, as [`persist`](Self::persist) does.
    async fn checkpoint_soon(&mut self, myself: &ActorRef<SubscriptionMsg>, timer: bool) {
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
        let (Some(id), Ok(keeper)) = (self.row, self.ctx.lock_keeper()) else {
            // Restarting: the next ack or the timer writes it.
            return;
        };
        if keeper.cast(LockMsg::Checkpoint { id, owner: myself.clone(), checkpoint }).is_err() {
            return;
        }
        // Handed over: the keeper writes it, or tells this actor its lock is gone.
        self.persisted = checkpoint;
        self.unpersisted_acks = 0;
        self.parked = self.parked.split_off(&(checkpoint + 1));
    }

    async fn nack(
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
    async fn retry(&mut self, myself: &ActorRef<SubscriptionMsg>, numbers: Vec<u64>, reason: &str) -> Result<()> {
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
        for n in again {
            let_go |= self.tracker.retry(n, self.options.max_size);
        }
        if let_go && self.phase == SubscriptionPhase::Live {
            self.fall_behind(myself);
        }
        if parks.is_empty() { Ok(()) } else { self.park(myself, parks).await }
    }

    /// Records events as parked, then lets them go: they no longer hold the checkpoint back.
    async fn park(&mut self, myself: &ActorRef<SubscriptionMsg>, parks: Vec<(u64, String)>) -> Result<()> {
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
        for (n, reason) in &parks {
            tracing::warn!(subscription = %self.key, event_number = n, reason, "event parked");
            self.parked.insert(*n);
            // A replayed event parked again keeps its row (now parked again, not replaying).
            self.tracker.finish(*n);
        }
        self.unpersisted_acks += parks.len() as u64;
        if self.unpersisted_acks >= self.options.checkpoint_threshold {
            self.persist(myself).await;
        }
        Ok(())
    }

    /// Stops delivering to a subscriber and takes its events back; the subscriber's new epoch.
    async fn pause(
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
    async fn sweep(&mut self, myself: &ActorRef<SubscriptionMsg>) {
        if self.phase == SubscriptionPhase::Waiting {
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
    async fn replay_parked(&mut self, myself: &ActorRef<SubscriptionMsg>, id: i32) -> Result<()> {
        if self.row != Some(id) || self.phase == SubscriptionPhase::Waiting {
            // Not this one, or not owned yet: taking ownership loads the requests.
            return Ok(());
        }
        let requests = self.ctx.storage.replay_requests(id).await?;
        for request in requests {
            let n = request.event_number;
            // Already replaying, or replayed and acked with its row not yet deleted.
            if self.tracker.is_replaying(n) || self.cleared.contains(&n) || self.replay_pending.iter().any(|p| p.0 == n)
            {
                continue;
            }
            self.replay_pending.push_back((n, request.retry_count));
        }
        self.fill_replay(myself).await;
        Ok(())
    }

    /// Reads parked events to replay into the replay lane, up to `READ_BATCH` at a time.
    async fn fill_replay(&mut self, myself: &ActorRef<SubscriptionMsg>) {
        while self.phase != SubscriptionPhase::Waiting
            && self.tracker.replay_queued() < READ_BATCH
            && !self.replay_pending.is_empty()
        {
            let take = self.replay_pending.len().min(READ_BATCH);
            let chunk: Vec<(u64, u32)> = self.replay_pending.drain(..take).collect();
            let numbers: Vec<u64> = chunk.iter().map(|c| c.0).collect();
            let events = match self.ctx.storage.read_numbers(&self.key.stream, &numbers).await {
                Ok(events) => events,
                Err(e) => {
                    tracing::warn!(subscription = %self.key, error = %e, "cannot read parked events to replay; retrying");
                    for item in chunk.into_iter().rev() {
                        self.replay_pending.push_front(item);
                    }
                    myself.send_after(self.ctx.retry_interval, || SubscriptionMsg::FillReplay);
                    return;
                }
            };
            let found: HashSet<u64> = events.iter().map(|e| e.event_number).collect();
            for (n, retries) in chunk {
                if !found.contains(&n) {
                    // Hard-deleted since it was parked: nothing to replay, its row can go.
                    self.cleared.push(n);
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

    /// Hands queued events to subscribers with room, says `CaughtUp` once the backlog is out,
    /// resumes a stalled catch-up or replay, and arms the checkpoint and message timers.
    fn deliver(&mut self, myself: &ActorRef<SubscriptionMsg>) {
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

    /// Writes the checkpoint if it moved (with the rows of replayed events that were acked).
    /// Failures leave it to the next ack or timer.
    async fn persist(&mut self, myself: &ActorRef<SubscriptionMsg>) {
        let checkpoint = self.tracker.acked();
        let moved = checkpoint > self.persisted;
        if (!moved && self.cleared.is_empty()) || self.phase == SubscriptionPhase::Waiting {
            return;
        }
        if self.options.transient {
            self.persisted = checkpoint;
            self.unpersisted_acks = 0;
            self.cleared.clear();
            return;
        }
        let write = SubscriptionWrite {
            checkpoint: moved.then_some(checkpoint),
            nacks: Vec::new(),
            cleared: self.cleared.clone(),
            forget_retries_upto: (moved && self.forget_retries).then_some(checkpoint),
        };
        match self.write(myself, write).await {
            WriteOutcome::Saved | WriteOutcome::RowGone => {
                self.persisted = checkpoint;
                self.unpersisted_acks = 0;
                self.cleared.clear();
                self.forget_retries &= !moved;
                self.parked = self.parked.split_off(&(checkpoint + 1));
            }
            WriteOutcome::NotOwner => {}
            WriteOutcome::Failed(e) => {
                tracing::warn!(subscription = %self.key, error = %e, "checkpoint write failed; retrying later");
            }
        }
    }

    /// Writes through the lock keeper, on the connection holding this subscription's lock. A
    /// lost lock sends the subscription back to waiting.
    async fn write(&mut self, myself: &ActorRef<SubscriptionMsg>, write: SubscriptionWrite) -> WriteOutcome {
        let Some(id) = self.row else { return WriteOutcome::NotOwner };
        let keeper = match self.ctx.lock_keeper() {
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
            replaying: self.tracker.replaying() + self.replay_pending.len(),
            paused: self.paused.len(),
        }
    }
}
