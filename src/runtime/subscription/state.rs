//! The subscription actor's state: its [`Phase`] (each carrying what only it needs), the
//! delivery bookkeeping ([`Tracker`]), what it owes the database ([`Ledger`]), and its
//! subscribers.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use ractor::ActorRef;

use super::rates::Rates;
use super::{Consumer, Delivery, INCARNATIONS, Ledger, SubscriptionArgs, SubscriptionMsg, Tracker};
use crate::event::ALL;
use crate::metrics::{SubscriptionFigures, SubscriptionMetrics};
use crate::runtime::Context;
use crate::runtime::locks::LockMsg;
use crate::runtime::publisher::ListenerId;
use crate::runtime::registry::RegistryMsg;
use crate::subscription::{
    DropReason, SubscriptionKey, SubscriptionMessage, SubscriptionOptions, SubscriptionPhase, SubscriptionStatus,
};

/// Tells ownership attempts apart, so that a timer of an earlier one is recognised as stale.
static ATTEMPTS: AtomicU64 = AtomicU64::new(1);

/// Where a subscription is, with what only that phase needs.
///
/// ```text
///   Waiting ──lock taken──► CatchingUp ──short read──► Live
///      ▲                      ▲   │                     │
///      └──── lock lost ───────┴───┴── gap, Missed, or queue at max_size
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    /// Not owned (another node has it, or the lock was lost): waiting to take it.
    Waiting {
        /// Failed attempts in a row (the next one backs off).
        failures: u32,
        /// The latest scheduled attempt: a timer of any other is stale.
        attempt: u64,
    },
    /// Owned, reading the backlog from storage.
    CatchingUp {
        /// Highest `$all` position of a live range seen meanwhile.
        live_to: u64,
        /// A read is due once the queue has room.
        stalled: bool,
        /// A read failed and waits for its retry timer.
        retry_due: bool,
    },
    /// Owned, taking live events from the publisher.
    Live {
        /// The backlog ended here: `CaughtUp` goes out once all of it is delivered (then `None`).
        caught_up_at: Option<u64>,
    },
}

impl Phase {
    /// Waiting, with the first attempt due as the actor starts (attempt 0).
    pub(super) const START: Phase = Phase::Waiting { failures: 0, attempt: 0 };

    /// Catching up from the checkpoint or, after falling behind, from what was received, with
    /// `live_to` of the live ranges seen so far.
    pub(super) fn catching_up(live_to: u64) -> Phase {
        Phase::CatchingUp { live_to, stalled: false, retry_due: false }
    }

    /// A fresh id for the next ownership attempt.
    pub(super) fn next_attempt() -> u64 {
        ATTEMPTS.fetch_add(1, Ordering::Relaxed)
    }

    /// Whether this node owns the subscription (catching up or live).
    pub(super) fn is_owned(self) -> bool {
        !matches!(self, Phase::Waiting { .. })
    }

    /// The phase as [`SubscriptionStatus`] reports it.
    pub(super) fn public(self) -> SubscriptionPhase {
        match self {
            Phase::Waiting { .. } => SubscriptionPhase::Waiting,
            Phase::CatchingUp { .. } => SubscriptionPhase::CatchingUp,
            Phase::Live { .. } => SubscriptionPhase::Live,
        }
    }
}

/// A subscription actor's state.
pub struct SubscriptionState {
    pub(super) ctx: Context,
    pub(super) key: SubscriptionKey,
    pub(super) options: SubscriptionOptions,
    pub(super) consumers: Vec<Consumer>,
    pub(super) listener: ListenerId,
    pub(super) phase: Phase,
    /// What is queued, in flight and acked, under the current ownership.
    pub(super) tracker: Tracker,
    /// What the current ownership owes the database, and its parked events.
    pub(super) ledger: Ledger,
    /// Deliveries and acks of the last minute of the current ownership.
    pub(super) rates: Rates,
    /// The registry running it.
    pub(super) registry: ActorRef<RegistryMsg>,
    /// The row's id once known (persistent subscriptions only).
    pub(super) row: Option<i32>,
    pub(super) incarnation: u64,
    pub(super) flush_scheduled: bool,
    pub(super) sweep_scheduled: bool,
    /// Per subscriber, how often it was paused (see [`Delivery::epoch`]).
    pub(super) epochs: HashMap<u64, u64>,
    pub(super) paused: HashSet<u64>,
    /// The newest event number (position, for `$all`) of its stream it has heard of: what its
    /// lag is measured against.
    pub(super) head: u64,
    pub(super) metrics: SubscriptionMetrics,
}

impl SubscriptionState {
    pub(super) fn new(args: SubscriptionArgs) -> Self {
        let metrics = SubscriptionMetrics::new(&args.ctx.metrics, &args.key.stream, &args.key.name);
        let mut state = SubscriptionState {
            head: 0,
            metrics,
            tracker: Tracker::new(args.options.buffer_size, 0),
            ledger: Ledger::new(0),
            rates: Rates::new(Instant::now()),
            registry: args.registry,
            ctx: args.ctx,
            key: args.key,
            options: args.options,
            consumers: args.consumers,
            listener: args.listener,
            phase: Phase::START,
            row: None,
            incarnation: INCARNATIONS.fetch_add(1, Ordering::Relaxed),
            flush_scheduled: false,
            sweep_scheduled: false,
            epochs: HashMap::new(),
            paused: HashSet::new(),
        };
        state.reset(0);
        state
    }

    pub(super) fn is_all(&self) -> bool {
        self.key.stream == ALL
    }

    /// A subscriber joined: told `Subscribed` at once if this node owns the subscription (else
    /// when it takes it).
    pub(super) fn connect(&mut self, consumer: Consumer) {
        if self.phase.is_owned() {
            self.send(&consumer, SubscriptionMessage::Subscribed, Vec::new());
        }
        self.tracker.join(consumer.id, consumer.buffer_size);
        self.consumers.push(consumer);
    }

    /// Sends a subscriber a message of this incarnation; whether its handle is still there.
    pub(super) fn send(&self, consumer: &Consumer, message: SubscriptionMessage, retries: Vec<(u64, u32)>) -> bool {
        let epoch = self.epochs.get(&consumer.id).copied().unwrap_or(0);
        consumer.inbox.deliver(Delivery { incarnation: self.incarnation, epoch, retries, message })
    }

    pub(super) fn broadcast(&self, message: SubscriptionMessage) {
        for consumer in &self.consumers {
            self.send(consumer, message.clone(), Vec::new());
        }
    }

    /// Forgets everything delivered under the previous ownership: it all comes again after
    /// `checkpoint`.
    pub(super) fn reset(&mut self, checkpoint: u64) {
        self.tracker = Tracker::new(self.options.buffer_size, checkpoint);
        let options = &self.options;
        self.tracker.set_strategy(options.consumer_strategy, |e| options.partition_of(e));
        for consumer in &self.consumers {
            self.tracker.join(consumer.id, consumer.buffer_size);
        }
        self.ledger = Ledger::new(checkpoint);
        self.rates = Rates::new(Instant::now());
    }

    pub(super) async fn stop(&mut self, myself: &ActorRef<SubscriptionMsg>, reason: DropReason) {
        self.persist(myself).await;
        if let Ok(keeper) = self.ctx.locks.get() {
            // A checkpoint handed to the keeper may still be pending: it is written before the
            // lock goes, and before this returns (`unsubscribe` promises it).
            let owner = myself.get_id();
            let _ = ractor::call!(keeper, |done| LockMsg::Release { owner, done: Some(done) });
        }
        self.broadcast(SubscriptionMessage::Dropped(reason));
        self.consumers.clear();
        self.ctx.hub.unlisten(&self.key.stream, self.listener).await;
        self.phase = Phase::Waiting { failures: 0, attempt: Phase::next_attempt() };
        self.observe();
    }

    /// Shows its state in its gauges: while it is owned here, its lag, queue, events in flight,
    /// subscribers and checkpoint; zeros (but the checkpoint) while another node has it.
    pub(super) fn observe(&self) {
        let owned = self.phase.is_owned();
        let acked = self.tracker.acked();
        self.metrics.show(&SubscriptionFigures {
            lag: if owned { self.head.max(self.tracker.received()).saturating_sub(acked) } else { 0 },
            queued: if owned { self.tracker.queued() } else { 0 },
            in_flight: if owned { self.tracker.in_flight() } else { 0 },
            consumers: if owned { self.consumers.len() } else { 0 },
            checkpoint: acked,
        });
    }

    pub(super) fn status(&self) -> SubscriptionStatus {
        SubscriptionStatus {
            phase: self.phase.public(),
            subscribers: self.consumers.len(),
            queued: self.tracker.queued(),
            peak_queued: self.tracker.peak_queued(),
            in_flight: self.tracker.in_flight(),
            last_received: self.tracker.received(),
            acked: self.tracker.acked(),
            persisted: self.ledger.persisted(),
            replaying: self.tracker.replaying() + self.ledger.replays_pending(),
            paused: self.paused.len(),
        }
    }
}
