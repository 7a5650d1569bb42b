//! The `SubscriptionRegistry` actor: which named subscriptions run on this node, and who is
//! connected to each.
//!
//! - **Owns** per subscription: its options (those the first subscriber here gave, with the
//!   stored settings the facade read for it, then the settings its actor adopted), its
//!   subscribers' channels, its actor (a linked child) and the `watch` slot through which
//!   handles find the current actor for acks.
//! - **Receives** `Subscribe` (enforcing `concurrency_limit`), `Disconnect`, `Unsubscribe`,
//!   `Actor` (for status), `Settings` (from a subscription actor that adopted stored settings),
//!   `ReplayRequested` and `SettingsChanged` (notifications, passed on to the subscriptions),
//!   `DatabaseBack` (the notifier reconnected after an outage: passed on, after the lock keeper
//!   checked its connection), `LocksReset` (the lock keeper was restarted), `PublisherLost`
//!   (from the hub: the subscriptions of that stream listen again), `RetentionChanged` (a
//!   notification: passed on to the subscriptions of that stream) and `Shutdown`.
//! - **Persists** nothing itself; subscription actors write their checkpoints.
//! - **When a subscription actor crashes** it releases the actor's lock (another node may take
//!   over meanwhile), keeps its subscribers and starts a new actor for them after a backoff (within a restart budget); the new one resumes from the persisted
//!   checkpoint. Past the budget, the subscribers are dropped with the reason.

use std::collections::HashMap;
use std::time::Duration;

use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};

use super::Context;
use super::locks::LockMsg;
use super::restart::{RestartBudget, stopped_child};
use super::slot::{ActorSlot, SlotSender};
use super::subscription::{Consumer, Delivery, Inbox, SubscriptionActor, SubscriptionArgs, SubscriptionMsg};
use crate::error::{Error, Result};
use crate::subscription::{DropReason, SubscriptionKey, SubscriptionMessage, SubscriptionOptions};

/// How long the registry waits for a subscription to write its checkpoint and stop.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the registry waits for the lock keeper to check its connection.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// What a new subscriber gets.
pub struct Connected {
    /// Its id.
    pub consumer: u64,
    /// Where the subscription's current actor is found.
    pub actor: ActorSlot<SubscriptionMsg>,
}

/// Messages of the registry.
pub enum RegistryMsg {
    /// Connect a subscriber, starting the subscription if it is not running here.
    Subscribe {
        /// Which subscription.
        key: SubscriptionKey,
        /// Its options (those of the first subscriber hold).
        options: SubscriptionOptions,
        /// Where the new subscriber's deliveries go.
        inbox: Inbox,
        /// The new subscriber's connection.
        reply: RpcReplyPort<Result<Connected>>,
    },
    /// Disconnect a subscriber; the last one stops the subscription.
    Disconnect {
        /// Which subscription.
        key: SubscriptionKey,
        /// Which subscriber.
        consumer: u64,
        /// What the subscriber is told, if it is to be told ([`DropReason::Stopped`]).
        reason: Option<DropReason>,
        /// Answered once done, if given.
        reply: Option<RpcReplyPort<()>>,
    },
    /// Stop the subscription on this node, dropping every subscriber with `reason`.
    Unsubscribe {
        /// Which subscription.
        key: SubscriptionKey,
        /// What the subscribers are told.
        reason: DropReason,
        /// Whether it was running here.
        reply: RpcReplyPort<bool>,
    },
    /// The subscription's current actor, if it runs here.
    Actor {
        /// Which subscription.
        key: SubscriptionKey,
        /// The actor.
        reply: RpcReplyPort<Option<ActorRef<SubscriptionMsg>>>,
    },
    /// The subscriptions this node runs (or restarts).
    Running(RpcReplyPort<Vec<SubscriptionKey>>),
    /// Parked events of subscription row `id` were marked for replay (a notification): tell
    /// the subscription, if it runs here.
    ReplayRequested(i32),
    /// The stored settings of subscription row `id` changed (a notification): tell the
    /// subscription, if it runs here, to adopt them.
    SettingsChanged(i32),
    /// A subscription's actor adopted these settings: later subscribers are checked against
    /// them, and a restarted actor starts with them.
    Settings {
        /// Which subscription.
        key: SubscriptionKey,
        /// The actor that adopted them (a stopped one's news is stale).
        actor: ActorId,
        /// The settings it runs with now.
        options: SubscriptionOptions,
    },
    /// Start a crashed subscription's new actor (sent to itself after a backoff).
    Restart(SubscriptionKey),
    /// The lock keeper restarted: every lock this node held is gone.
    LocksReset,
    /// The publisher of this stream was lost with its listeners: its subscriptions listen
    /// again.
    PublisherLost(String),
    /// The database accepts connections again after an outage (from the notifier).
    DatabaseBack,
    /// What hides entries of this stream changed (a notification): its subscriptions drop
    /// what they queued and may no longer deliver.
    RetentionChanged(String),
    /// Stop every subscription (writing checkpoints), then reply.
    Shutdown(RpcReplyPort<()>),
}

struct Entry {
    options: SubscriptionOptions,
    consumers: Vec<Consumer>,
    actor: Option<ActorRef<SubscriptionMsg>>,
    listener: super::publisher::ListenerId,
    slot: SlotSender<SubscriptionMsg>,
    budget: RestartBudget,
}

/// The registry actor.
pub struct SubscriptionRegistry;

/// The registry's state.
pub struct RegistryState {
    ctx: Context,
    entries: HashMap<SubscriptionKey, Entry>,
    next_consumer: u64,
    shutting_down: bool,
}

impl Actor for SubscriptionRegistry {
    type Msg = RegistryMsg;
    type State = RegistryState;
    type Arguments = Context;

    async fn pre_start(
        &self,
        _myself: ActorRef<RegistryMsg>,
        ctx: Context,
    ) -> Result<RegistryState, ActorProcessingErr> {
        Ok(RegistryState { ctx, entries: HashMap::new(), next_consumer: 0, shutting_down: false })
    }

    async fn handle(
        &self,
        myself: ActorRef<RegistryMsg>,
        msg: RegistryMsg,
        state: &mut RegistryState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            RegistryMsg::Subscribe { key, options, inbox, reply } => {
                let _ = reply.send(state.subscribe(&myself, key, options, inbox).await);
            }
            RegistryMsg::Disconnect { key, consumer, reason, reply } => {
                state.disconnect(&key, consumer, reason).await;
                if let Some(reply) = reply {
                    let _ = reply.send(());
                }
            }
            RegistryMsg::Unsubscribe { key, reason, reply } => {
                let running = state.stop(&key, reason).await;
                let _ = reply.send(running);
            }
            RegistryMsg::Actor { key, reply } => {
                let _ = reply.send(state.entries.get(&key).and_then(|e| e.actor.clone()));
            }
            RegistryMsg::Running(reply) => {
                let _ = reply.send(state.entries.keys().cloned().collect());
            }
            RegistryMsg::Restart(key) => {
                if !state.shutting_down
                    && state.entries.get(&key).is_some_and(|e| e.actor.is_none())
                    && let Err(e) = state.spawn(&myself, &key).await
                {
                    tracing::error!(subscription = %key, error = %e, "cannot restart subscription");
                    state.give_up(&key, &e.to_string());
                }
            }
            RegistryMsg::ReplayRequested(id) => {
                // Only the subscription whose row it is acts on it.
                for actor in state.entries.values().filter_map(|e| e.actor.as_ref()) {
                    let _ = actor.cast(SubscriptionMsg::ReplayParked { id, reply: None });
                }
            }
            RegistryMsg::SettingsChanged(id) => {
                // Only the subscription whose row it is acts on it.
                for actor in state.entries.values().filter_map(|e| e.actor.as_ref()) {
                    let _ = actor.cast(SubscriptionMsg::Reload { id, reply: None });
                }
            }
            RegistryMsg::Settings { key, actor, options } => {
                if let Some(entry) = state.entries.get_mut(&key)
                    && entry.actor.as_ref().is_some_and(|current| current.get_id() == actor)
                {
                    entry.options = options;
                }
            }
            RegistryMsg::DatabaseBack => {
                // The keeper first finds out whether its connection (and the locks) survived, so
                // that every subscription that lost its lock hears so before it is told to retry.
                if let Ok(keeper) = state.ctx.locks.get()
                    && let Err(e) = keeper.call(LockMsg::Check, Some(CHECK_TIMEOUT)).await
                {
                    tracing::debug!(error = %e, "lock keeper did not check its connection");
                }
                for actor in state.entries.values().filter_map(|e| e.actor.as_ref()) {
                    let _ = actor.cast(SubscriptionMsg::DatabaseBack);
                }
            }
            RegistryMsg::RetentionChanged(stream) => {
                let affected = state.entries.iter().filter(|(key, _)| key.stream == stream);
                for actor in affected.filter_map(|(_, e)| e.actor.as_ref()) {
                    let _ = actor.cast(SubscriptionMsg::RetentionChanged);
                }
            }
            RegistryMsg::PublisherLost(stream) => {
                let listening = state.entries.iter().filter(|(key, _)| key.stream == stream);
                for actor in listening.filter_map(|(_, e)| e.actor.as_ref()) {
                    let _ = actor.cast(SubscriptionMsg::Relisten);
                }
            }
            RegistryMsg::LocksReset => {
                for actor in state.entries.values().filter_map(|e| e.actor.as_ref()) {
                    let _ = actor.cast(SubscriptionMsg::LockLost);
                }
            }
            RegistryMsg::Shutdown(reply) => {
                state.shutting_down = true;
                let keys: Vec<SubscriptionKey> = state.entries.keys().cloned().collect();
                for key in keys {
                    state.stop(&key, DropReason::Shutdown).await;
                }
                let _ = reply.send(());
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<RegistryMsg>,
        event: SupervisionEvent,
        state: &mut RegistryState,
    ) -> Result<(), ActorProcessingErr> {
        let Some((cell, reason)) = stopped_child(event) else { return Ok(()) };
        // Subscriptions stopped on purpose were removed first; this one died.
        let Some((key, entry)) =
            state.entries.iter_mut().find(|(_, e)| e.actor.as_ref().is_some_and(|a| a.get_id() == cell.get_id()))
        else {
            return Ok(());
        };
        let key = key.clone();
        entry.actor = None;
        entry.slot.send_replace(None);
        state.ctx.hub.unlisten(&key.stream, entry.listener).await;
        // Its lock goes with it: while it waits for its restart, another node may take over.
        if let Ok(keeper) = state.ctx.locks.get() {
            let _ = keeper.cast(LockMsg::Release { owner: cell.get_id(), done: None });
        }
        if state.shutting_down {
            return Ok(());
        }
        match entry.budget.next_backoff() {
            Some(backoff) => {
                tracing::error!(subscription = %key, reason, ?backoff, "subscription actor died; restarting it from its checkpoint");
                myself.send_after(backoff, move || RegistryMsg::Restart(key));
            }
            None => {
                tracing::error!(subscription = %key, reason, "subscription actor keeps dying; giving up");
                state.give_up(&key, &reason);
            }
        }
        Ok(())
    }
}

impl RegistryState {
    async fn subscribe(
        &mut self,
        myself: &ActorRef<RegistryMsg>,
        key: SubscriptionKey,
        options: SubscriptionOptions,
        inbox: Inbox,
    ) -> Result<Connected> {
        if self.shutting_down {
            return Err(Error::Unavailable("the store is shutting down".into()));
        }
        options.validate()?;
        self.next_consumer += 1;
        let consumer = Consumer { id: self.next_consumer, inbox, buffer_size: options.subscriber_buffer_size };
        if let Some(entry) = self.entries.get_mut(&key) {
            if entry.options.concurrency_limit <= 1 {
                return Err(Error::SubscriptionAlreadyExists);
            }
            if entry.consumers.len() >= entry.options.concurrency_limit {
                return Err(Error::TooManySubscribers);
            }
            entry.consumers.push(consumer.clone());
            if let Some(actor) = &entry.actor {
                let _ = actor.cast(SubscriptionMsg::Connect(consumer));
            }
            return Ok(Connected { consumer: self.next_consumer, actor: ActorSlot::of(&entry.slot, "subscription") });
        }
        let (slot, actor) = ActorSlot::channel("subscription");
        let entry = Entry {
            options,
            consumers: vec![consumer],
            actor: None,
            listener: 0,
            slot,
            budget: RestartBudget::default(),
        };
        self.entries.insert(key.clone(), entry);
        if let Err(e) = self.spawn(myself, &key).await {
            self.entries.remove(&key);
            return Err(e);
        }
        Ok(Connected { consumer: self.next_consumer, actor })
    }

    async fn spawn(&mut self, myself: &ActorRef<RegistryMsg>, key: &SubscriptionKey) -> Result<()> {
        let Some(entry) = self.entries.get_mut(key) else { return Ok(()) };
        entry.listener = self.ctx.hub.next_id();
        let args = SubscriptionArgs {
            ctx: self.ctx.clone(),
            key: key.clone(),
            options: entry.options.clone(),
            consumers: entry.consumers.clone(),
            listener: entry.listener,
            registry: myself.clone(),
        };
        let (actor, _) = Actor::spawn_linked(None, SubscriptionActor, args, myself.get_cell())
            .await
            .map_err(|e| Error::Unavailable(format!("cannot start subscription {key}: {e}")))?;
        entry.slot.send_replace(Some(actor.clone()));
        entry.actor = Some(actor);
        Ok(())
    }

    async fn disconnect(&mut self, key: &SubscriptionKey, consumer: u64, reason: Option<DropReason>) {
        let Some(entry) = self.entries.get_mut(key) else { return };
        let Some(index) = entry.consumers.iter().position(|c| c.id == consumer) else { return };
        let leaving = entry.consumers.remove(index);
        if entry.consumers.is_empty() {
            // The subscription stops with it, and tells it why.
            self.stop(key, reason.unwrap_or(DropReason::Unsubscribed)).await;
            return;
        }
        if let Some(reason) = reason {
            let _ = leaving.inbox.deliver(Delivery::last_word(SubscriptionMessage::Dropped(reason)));
        }
        if let Some(actor) = &entry.actor {
            let _ = actor.cast(SubscriptionMsg::Disconnect(consumer));
        }
    }

    /// Stops a subscription here (its actor writes its checkpoint and drops its subscribers);
    /// whether it was running.
    async fn stop(&mut self, key: &SubscriptionKey, reason: DropReason) -> bool {
        let Some(entry) = self.entries.remove(key) else { return false };
        entry.slot.send_replace(None);
        let stopped = match &entry.actor {
            Some(actor) => {
                let reason = reason.clone();
                let call = actor.call(|reply| SubscriptionMsg::Stop(reason, reply), Some(STOP_TIMEOUT)).await;
                matches!(call, Ok(ractor::rpc::CallResult::Success(())))
            }
            None => false,
        };
        if !stopped {
            // Dead, restarting, or stuck: the registry tells the subscribers itself.
            if let Some(actor) = &entry.actor {
                actor.stop(Some("stopped by the registry".into()));
                self.ctx.hub.unlisten(&key.stream, entry.listener).await;
                if let Ok(keeper) = self.ctx.locks.get() {
                    let _ = keeper.cast(LockMsg::Release { owner: actor.get_id(), done: None });
                }
            }
            for consumer in &entry.consumers {
                let _ = consumer.inbox.deliver(Delivery::last_word(SubscriptionMessage::Dropped(reason.clone())));
            }
        }
        true
    }

    fn give_up(&mut self, key: &SubscriptionKey, reason: &str) {
        if let Some(entry) = self.entries.remove(key) {
            entry.slot.send_replace(None);
            let message = SubscriptionMessage::Dropped(DropReason::Failed(reason.to_string()));
            for consumer in &entry.consumers {
                let _ = consumer.inbox.deliver(Delivery::last_word(message.clone()));
            }
        }
    }
}
