//! The per-store `Supervisor` actor: parent of every runtime actor of one store.
//!
//! - **Owns** its children: the `Writer`, the `Notifier`, the `LockKeeper`, the
//!   `SubscriptionRegistry` (which in turn supervises the subscription actors) and, with
//!   `scavenge_interval`, the `Scavenger`; and the
//!   application's subscriber actors and the hub's publishers (linked to it, not restarted by
//!   it: a lost publisher is forgotten and the next listener starts a new one; a subscriber
//!   actor is never restarted, see `subscriber.rs`). The
//!   writer's, the lock keeper's and the registry's current incarnations are published in
//!   their [`ActorSlot`]s, so callers always reach the live one.
//! - **Receives** supervision events of its children (a publisher's stop is passed to the
//!   hub), `Restart` (sent to itself after a
//!   backoff) and `Shutdown`.
//! - **Persists** nothing itself; children rebuild their state from the database.
//! - **On a child's crash**: restarts it after an exponential backoff within a restart budget
//!   per child (see [`RestartBudget`]). Past the budget it gives up and stops, and the store
//!   answers `Error::Unavailable` until it is started again. A restarted lock keeper holds no
//!   locks, so the registry tells every subscription it lost its own. ractor's default is to
//!   stop a supervisor when a child fails; this actor overrides that.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};

use super::Context;
use super::locks::{LockKeeper, LockKeeperArgs, LockMsg};
use super::notifier::{Notifier, NotifierArgs};
use super::publisher::Hub;
use super::registry::{RegistryMsg, SubscriptionRegistry};
use super::restart::{RestartBudget, stopped_child};
use super::scavenger::{Scavenger, ScavengerArgs};
use super::slot::{ActorSlot, SlotSender};
use super::writer::{BatchLimits, Writer, WriterArgs, WriterMsg};
use crate::metrics::StoreMetrics;
use crate::storage::Storage;

/// How long shutdown waits for each child to finish.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// The supervisor's children.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Child {
    /// The writer.
    Writer,
    /// The notifier.
    Notifier,
    /// The lock keeper.
    Locks,
    /// The subscription registry.
    Registry,
    /// The scheduled scavenge (only with `scavenge_interval`).
    Scavenger,
}

/// Messages of the supervisor.
pub enum SupervisorMsg {
    /// Start a new child (after a crash and its backoff).
    Restart(Child),
    /// Stop the subscriptions (writing checkpoints), drain the writer, stop the children, then
    /// reply.
    Shutdown(RpcReplyPort<()>),
}

/// The supervisor actor.
pub struct Supervisor;

/// Arguments of the supervisor.
pub struct SupervisorArgs {
    /// The store's storage, handed to children.
    pub storage: Storage,
    /// The writer's batch limits.
    pub limits: BatchLimits,
    /// How long the writer waits for the database to tell an in-doubt outcome.
    pub in_doubt_timeout: Duration,
    /// The publishers.
    pub hub: Arc<Hub>,
    /// How often subscriptions retry ownership and failed reads.
    pub retry_interval: Duration,
    /// How often the notifier reads without a notification.
    pub poll_interval: Duration,
    /// Pause between scheduled scavenges; `None`: none are scheduled.
    pub scavenge_interval: Option<Duration>,
    /// Where the current writer is published (`None` while it is restarting).
    pub writer_slot: SlotSender<WriterMsg>,
    /// Where the current registry is published.
    pub registry_slot: SlotSender<RegistryMsg>,
    /// The current registry, as those who talk to it find it.
    pub registry: ActorSlot<RegistryMsg>,
    /// See [`Context::read_from_storage`].
    pub read_from_storage: Arc<std::sync::atomic::AtomicU64>,
    /// The store's metrics.
    pub metrics: StoreMetrics,
}

/// The supervisor's state.
pub struct SupervisorState {
    args: SupervisorArgs,
    locks_slot: SlotSender<LockMsg>,
    locks: ActorSlot<LockMsg>,
    children: HashMap<Child, ActorCell>,
    budgets: HashMap<Child, RestartBudget>,
    shutting_down: bool,
}

impl Actor for Supervisor {
    type Msg = SupervisorMsg;
    type State = SupervisorState;
    type Arguments = SupervisorArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<SupervisorMsg>,
        args: SupervisorArgs,
    ) -> Result<SupervisorState, ActorProcessingErr> {
        args.hub.adopt(myself.get_cell());
        let (locks_slot, locks) = ActorSlot::channel("lock keeper");
        let mut state = SupervisorState {
            args,
            locks_slot,
            locks,
            children: HashMap::new(),
            budgets: HashMap::new(),
            shutting_down: false,
        };
        for child in [Child::Writer, Child::Locks, Child::Notifier, Child::Registry] {
            state.spawn(&myself, child).await?;
        }
        if state.args.scavenge_interval.is_some() {
            state.spawn(&myself, Child::Scavenger).await?;
        }
        Ok(state)
    }

    async fn handle(
        &self,
        myself: ActorRef<SupervisorMsg>,
        msg: SupervisorMsg,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            SupervisorMsg::Restart(child) if !state.shutting_down => {
                state.spawn(&myself, child).await?;
                if child == Child::Writer {
                    state.args.metrics.writer_restarted();
                }
                if child == Child::Locks {
                    state.tell_registry(RegistryMsg::LocksReset);
                }
            }
            SupervisorMsg::Restart(_) => {}
            SupervisorMsg::Shutdown(reply) => {
                state.shutting_down = true;
                state.shutdown().await;
                let _ = reply.send(());
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<SupervisorMsg>,
        event: SupervisionEvent,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        let Some((cell, reason)) = stopped_child(event) else { return Ok(()) };
        if state.shutting_down {
            return Ok(());
        }
        let Some(child) = state.children.iter().find(|(_, c)| c.get_id() == cell.get_id()).map(|(k, _)| *k) else {
            // A publisher (restarted on demand by the hub) or a subscriber actor (never
            // restarted: see `subscriber.rs`).
            state.args.hub.forget(cell.get_id()).await;
            return Ok(());
        };
        state.children.remove(&child);
        state.clear_slot(child);
        match state.budgets.entry(child).or_default().next_backoff() {
            Some(backoff) => {
                tracing::error!(?child, reason, ?backoff, "runtime actor stopped unexpectedly; restarting");
                myself.send_after(backoff, move || SupervisorMsg::Restart(child));
            }
            None => {
                tracing::error!(?child, reason, "runtime actor keeps failing; giving up");
                myself.stop(Some(format!("{child:?} restart budget exhausted")));
            }
        }
        Ok(())
    }
}

impl SupervisorState {
    fn context(&self) -> Context {
        Context {
            storage: self.args.storage.clone(),
            hub: Arc::clone(&self.args.hub),
            locks: self.locks.clone(),
            retry_interval: self.args.retry_interval,
            read_from_storage: Arc::clone(&self.args.read_from_storage),
            metrics: self.args.metrics.clone(),
        }
    }

    async fn spawn(&mut self, myself: &ActorRef<SupervisorMsg>, child: Child) -> Result<(), ActorProcessingErr> {
        let parent = myself.get_cell();
        let storage = self.args.storage.clone();
        let cell = match child {
            Child::Writer => {
                let args = WriterArgs {
                    storage,
                    limits: self.args.limits,
                    in_doubt_timeout: self.args.in_doubt_timeout,
                    metrics: self.args.metrics.clone(),
                };
                let (writer, _) = Actor::spawn_linked(None, Writer, args, parent).await?;
                self.args.writer_slot.send_replace(Some(writer.clone()));
                writer.get_cell()
            }
            Child::Notifier => {
                let args = NotifierArgs {
                    storage,
                    hub: Arc::clone(&self.args.hub),
                    poll_interval: self.args.poll_interval,
                    retry_interval: self.args.retry_interval,
                    registry: self.args.registry.clone(),
                    metrics: self.args.metrics.clone(),
                };
                Actor::spawn_linked(None, Notifier, args, parent).await?.0.get_cell()
            }
            Child::Locks => {
                let args = LockKeeperArgs { storage, ping_interval: self.args.retry_interval };
                let (keeper, _) = Actor::spawn_linked(None, LockKeeper, args, parent).await?;
                self.locks_slot.send_replace(Some(keeper.clone()));
                keeper.get_cell()
            }
            Child::Registry => {
                let (registry, _) = Actor::spawn_linked(None, SubscriptionRegistry, self.context(), parent).await?;
                self.args.registry_slot.send_replace(Some(registry.clone()));
                registry.get_cell()
            }
            Child::Scavenger => {
                let interval = self.args.scavenge_interval.unwrap_or(Duration::MAX);
                let args = ScavengerArgs { storage, interval, metrics: self.args.metrics.clone() };
                Actor::spawn_linked(None, Scavenger, args, parent).await?.0.get_cell()
            }
        };
        tracing::debug!(?child, actor = %cell.get_id(), "runtime actor started");
        self.children.insert(child, cell);
        Ok(())
    }

    fn clear_slot(&self, child: Child) {
        match child {
            Child::Writer => drop(self.args.writer_slot.send_replace(None)),
            Child::Locks => drop(self.locks_slot.send_replace(None)),
            Child::Registry => drop(self.args.registry_slot.send_replace(None)),
            Child::Notifier | Child::Scavenger => {}
        }
    }

    fn tell_registry(&self, msg: RegistryMsg) {
        self.args.registry.tell(msg);
    }

    /// Subscriptions first (their checkpoints go through the lock keeper), then the lock
    /// keeper, the notifier and the publishers, and the writer last, after committing what
    /// callers already queued.
    async fn shutdown(&mut self) {
        let registry = self.args.registry_slot.send_replace(None);
        if let Some(registry) = registry
            && let Err(e) = ractor::call!(registry, RegistryMsg::Shutdown)
        {
            tracing::warn!(error = %e, "subscriptions did not confirm shutdown");
        }
        for child in [Child::Scavenger, Child::Registry, Child::Locks, Child::Notifier] {
            if let Some(cell) = self.children.remove(&child) {
                cell.stop_and_wait(None, Some(STOP_TIMEOUT)).await.ok();
            }
        }
        self.locks_slot.send_replace(None);
        self.args.hub.stop_all().await;
        self.args.writer_slot.send_replace(None);
        if let Some(cell) = self.children.remove(&Child::Writer) {
            let writer: ActorRef<WriterMsg> = cell.clone().into();
            if let Err(e) = ractor::call!(writer, WriterMsg::Drain) {
                tracing::warn!(error = %e, "writer could not drain its queue at shutdown");
            }
            cell.stop_and_wait(None, Some(STOP_TIMEOUT)).await.ok();
        }
    }
}
