//! The `Subscription` actor: one per named subscription running on this node. Its state
//! machine (`state.rs`: each phase carries what only it needs):
//!
//! ```text
//!   Waiting ──lock taken──► CatchingUp ──short read──► Live
//!      ▲                      ▲   │                     │
//!      └──── lock lost ───────┴───┴── gap, Missed, or queue at max_size
//! ```
//!
//! - **Owns** the settings it runs with (the stored ones, see `settings.rs`), the subscribers'
//!   channels, the queue of events not yet delivered (at most `max_size`), the events in flight
//!   per subscriber and key (at most `buffer_size` each) and who gets what by the consumer
//!   strategy, and the checkpoint (see [`tracker`] and [`pins`]); what it owes the database,
//!   the parked events after the checkpoint (skipped when read again) and the parked events
//!   asked for again (see [`ledger`]); the rates of the last minute (see [`rates`]).
//! - **Receives** `Connect`/`Disconnect` of subscribers (from the registry), `Ack`, `Nack`,
//!   `Pause`/`Resume` (from a subscriber actor), `Live` feeds (from its publisher), `Acquire`,
//!   `CatchUp` and `FillReplay` (sent to itself), `ReplayParked` and `Reload` (from the facade
//!   or, through the registry, a notification), `RetentionChanged` (through the registry, a notification:
//!   queued events the stream's retention now hides are dropped), `LockLost` (from the lock
//!   keeper), `DatabaseBack` (from the
//!   registry, after an outage: retries waiting out a backoff are made at once),
//!   `FlushCheckpoint`, `Sweep` and `RetryCatchUp` (its timers), `Status`, `Statistics` and
//!   `Stop`.
//! - **Persists** through the lock keeper (on the connection that holds its lock): retry
//!   counts and parks before it answers the nack that caused them; the checkpoint when
//!   `checkpoint_threshold` events were finished or `checkpoint_after` after an unwritten one
//!   (handed over without waiting when only it moved, for the keeper to write with the other
//!   subscriptions'; written at once with the rows of acked replayed events), and before it
//!   stops. The timers only write and retry; they never change the phase.
//! - **On a crash**: the registry restarts it with the same subscribers; it retakes the lock
//!   and resumes after the persisted checkpoint with the stored settings, retry counts and
//!   parks, so subscribers see `Subscribed` and the unacked events again (at-least-once, never
//!   a gap).
//!
//! This file holds the messages and the actor shell, which only dispatches; `state.rs` the
//! phases and the state; the state machine's work is in `ownership.rs` (taking and losing the
//! lock), `feed.rs` (catch-up reads, live feeds, delivery), `nacks.rs` (retries, parks, pauses,
//! timeouts, replays), `checkpoint.rs` (acks and checkpoint writes) and `settings.rs` (the
//! settings it runs with, and its statistics); `delivery.rs` what goes to subscribers.
//! [`tracker`], [`pins`], [`ledger`] and [`rates`] are the I/O-free bookkeeping they share.
//!
//! Live feeds bound nothing by themselves (mailboxes are unbounded), so the actor takes live
//! events only while its queue has room; past `max_size` it drops them and reads from storage
//! as the queue drains, which is what keeps a subscriber that never acks from growing memory.

mod checkpoint;
mod delivery;
mod feed;
pub mod ledger;
mod nacks;
mod ownership;
pub mod pins;
pub mod rates;
mod settings;
mod state;
pub mod tracker;

use std::sync::atomic::AtomicU64;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

pub use self::delivery::{Consumer, Delivery, Inbox};
pub use self::ledger::Ledger;
use self::state::SubscriptionState;
pub use self::tracker::{Acks, Finished, Tracker};
use super::Context;
use super::publisher::{Listener, ListenerId, LiveFeed};
use super::registry::RegistryMsg;

use crate::error::Result;
use crate::subscription::{
    DropReason, NackAction, SubscriptionKey, SubscriptionOptions, SubscriptionStatistics, SubscriptionStatus,
};

/// Most events one catch-up read takes.
const READ_BATCH: usize = 1_000;
/// After errors, attempts to take the lock back off up to this many retry intervals.
const MAX_BACKOFF_INTERVALS: u32 = 8;

/// Tells deliveries of one ownership apart from another's, across actors and restarts.
static INCARNATIONS: AtomicU64 = AtomicU64::new(1);

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
    /// The stored settings of subscription row `id` changed: read and adopt them (ignored by
    /// the other subscriptions).
    Reload {
        /// The subscription's row id.
        id: i32,
        /// Answered once they are adopted, if given.
        reply: Option<RpcReplyPort<Result<()>>>,
    },
    /// What the publisher saw committed.
    Live(LiveFeed),
    /// The publisher was lost with its listeners: listen again, and re-read what may have been
    /// missed meanwhile.
    Relisten,
    /// What hides entries of the subscription's stream changed (its metadata, or a recreatable
    /// delete): drop the queued events it hides now.
    RetentionChanged,
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
    /// What it is doing, if this node owns it.
    Statistics(RpcReplyPort<Option<SubscriptionStatistics>>),
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
    /// The registry that runs it, told the settings it adopts.
    pub registry: ActorRef<RegistryMsg>,
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
        let state = SubscriptionState::new(args);
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
            SubscriptionMsg::Connect(consumer) => state.connect(consumer),
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
            SubscriptionMsg::Reload { id, reply } => {
                let outcome = state.reload(&myself, id).await;
                if let Some(reply) = reply {
                    let _ = reply.send(outcome);
                } else if let Err(e) = outcome {
                    tracing::warn!(subscription = %state.key, error = %e, "cannot read the changed settings; keeping these");
                }
            }
            SubscriptionMsg::Sweep => {
                state.sweep_scheduled = false;
                state.sweep(&myself).await;
            }
            SubscriptionMsg::Live(feed) => state.take_live(&myself, feed),
            SubscriptionMsg::Relisten => {
                let listener = Listener::Subscription(myself.clone());
                state.ctx.hub.listen(&state.key.stream, state.listener, listener).await?;
                state.take_live(&myself, LiveFeed::Missed);
            }
            SubscriptionMsg::RetentionChanged => state.retention_changed().await,
            SubscriptionMsg::Acquire(attempt) => state.acquire(&myself, attempt).await,
            SubscriptionMsg::CatchUp => state.catch_up(&myself).await,
            SubscriptionMsg::RetryCatchUp => state.retry_catch_up(&myself).await,
            SubscriptionMsg::DatabaseBack => state.database_back(&myself).await,
            SubscriptionMsg::LockLost => state.lock_lost(&myself),
            SubscriptionMsg::FlushCheckpoint => {
                state.flush_scheduled = false;
                state.checkpoint_soon(&myself, true).await;
            }
            SubscriptionMsg::Status(reply) => {
                let _ = reply.send(state.status());
            }
            SubscriptionMsg::Statistics(reply) => {
                let _ = reply.send(state.statistics());
            }
            SubscriptionMsg::Stop(reason, reply) => {
                state.stop(&myself, reason).await;
                let _ = reply.send(());
                myself.stop(None);
                return Ok(());
            }
        }
        state.deliver(&myself);
        state.observe();
        Ok(())
    }
}
