//! The runtime: ractor actors, supervised per store, behind one face, [`Runtime`]. Nothing here
//! speaks SQL; actors call the storage layer.
//!
//! - [`supervisor`]: the per-store supervisor, restarting children with backoff.
//! - [`writer`]: group commit of appends and links; [`write`]: a caller's write, resubmitted
//!   after a writer restart and resolved from the database when its outcome is in doubt.
//! - [`notifier`]: hears of commits (PostgreSQL: LISTEN; SQLite: from the writer), reads each
//!   new `$all` range once and routes it to the publishers.
//! - [`publisher`]: live fan-out per stream and for `$all`, spawned on demand.
//! - [`registry`]: which named subscriptions run on this node and who is connected.
//! - [`subscription`]: one actor per named subscription (the catch-up/live state machine).
//! - [`locks`]: the node's ownership of subscriptions (PostgreSQL: advisory locks), and
//!   checkpoint writes.
//! - [`subscriber`]: one actor per [`Subscriber`](crate::Subscriber) the application started.
//! - [`scavenger`]: the scheduled scavenge (with `scavenge_interval`).
//! - [`slot`]: where the current incarnation of a restartable actor is found.
//! - [`handles`]: what the application holds: [`Subscription`], [`LiveSubscription`],
//!   [`SubscriberHandle`].

pub mod handles;
pub mod locks;
pub mod member;
pub mod notifier;
pub mod publisher;
pub mod registry;
pub mod restart;
pub mod scavenger;
pub mod slot;
pub mod subscriber;
pub mod subscription;
pub mod supervisor;
pub mod write;
pub mod writer;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use ractor::{Actor, ActorCell, ActorRef, SpawnErr};

use self::locks::LockMsg;
use self::publisher::{Hub, Listener};
use self::registry::RegistryMsg;
use self::slot::ActorSlot;
use self::subscriber::{Runner, RunnerArgs};
use self::subscription::{Inbox, SubscriptionMsg};
use self::supervisor::{Supervisor, SupervisorArgs, SupervisorMsg};
use self::writer::{BatchLimits, WriterMsg};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::event::ALL;
use crate::metrics::{StoreMetrics, StoreStatistics};
use crate::storage::Storage;
use crate::subscriber::Subscriber;
use crate::subscription::{
    DropReason, LIVE_BUFFER, SubscriptionKey, SubscriptionOptions, SubscriptionStatistics, SubscriptionStatus,
};

pub use handles::{LiveSubscription, SubscriberHandle, Subscription};
pub use member::ClusterMembership;

/// How long shutdown waits for the supervisor to stop its children.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(10);

/// What every subscription-side actor of one store shares.
#[derive(Clone)]
pub struct Context {
    /// The store's storage.
    pub storage: Storage,
    /// The publishers.
    pub hub: Arc<Hub>,
    /// The lock keeper.
    pub locks: ActorSlot<LockMsg>,
    /// How often ownership and failed reads are retried.
    pub retry_interval: Duration,
    /// How many entries the store's subscriptions have looked at in storage while catching up
    /// (positions of `$all` a filtered scan passed over count too), for chronik's own tests.
    pub read_from_storage: Arc<AtomicU64>,
    /// The store's metrics (subscriptions take theirs with its `store` label).
    pub metrics: StoreMetrics,
}

/// A store's running actors, as the facade sees them: one cheap `Clone` handle that starts the
/// supervision tree, finds the live incarnation of each actor it talks to, and hides their
/// messages. The last handle dropped without [`shutdown`](Self::shutdown) stops the tree.
#[derive(Clone)]
pub struct Runtime {
    inner: Arc<Inner>,
}

struct Inner {
    storage: Storage,
    supervisor: ActorRef<SupervisorMsg>,
    writer: ActorSlot<WriterMsg>,
    registry: ActorSlot<RegistryMsg>,
    hub: Arc<Hub>,
    /// See [`Context::read_from_storage`].
    read_from_storage: Arc<AtomicU64>,
    /// How long a caller waits for a restarting writer.
    connect_timeout: Duration,
    /// How long an in-doubt write waits for the database to tell its outcome.
    in_doubt_timeout: Duration,
    metrics: StoreMetrics,
    shut_down: AtomicBool,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The last handle is gone without `shutdown`: stop the actors so no task outlives the
        // store. Queued writes have no caller left to answer.
        if !self.shut_down.load(Ordering::SeqCst) {
            self.supervisor.stop(Some("last EventStore handle dropped".into()));
        }
    }
}

impl Runtime {
    /// Starts the supervision tree of a store whose storage is open.
    pub async fn start(config: &Config, storage: Storage) -> Result<Runtime> {
        let (writer_slot, writer) = ActorSlot::channel("writer");
        let (registry_slot, registry) = ActorSlot::channel("subscription registry");
        let hub = Arc::new(Hub::new(registry.clone()));
        let read_from_storage = Arc::new(AtomicU64::new(0));
        let metrics = StoreMetrics::new(config);
        let args = SupervisorArgs {
            metrics: metrics.clone(),
            read_from_storage: Arc::clone(&read_from_storage),
            storage: storage.clone(),
            limits: BatchLimits {
                appends: config.writer_max_batch_appends,
                events: config.writer_max_batch_events,
                bytes: config.writer_max_batch_bytes,
            },
            in_doubt_timeout: config.in_doubt_timeout,
            hub: Arc::clone(&hub),
            retry_interval: config.subscription_retry_interval,
            poll_interval: config.notification_poll_interval,
            scavenge_interval: config.scavenge_interval.filter(|_| !config.read_only),
            writer_slot,
            registry_slot,
            registry: registry.clone(),
        };
        let (supervisor, _handle) = Actor::spawn(None, Supervisor, args)
            .await
            .map_err(|e| Error::Unavailable(format!("cannot start the store's supervisor: {e}")))?;
        Ok(Runtime {
            inner: Arc::new(Inner {
                storage,
                supervisor,
                writer,
                registry,
                hub,
                read_from_storage,
                connect_timeout: config.connect_timeout,
                in_doubt_timeout: config.in_doubt_timeout,
                metrics,
                shut_down: AtomicBool::new(false),
            }),
        })
    }

    /// Whether [`shutdown`](Self::shutdown) was called (on any clone).
    pub fn is_shut_down(&self) -> bool {
        self.inner.shut_down.load(Ordering::SeqCst)
    }

    /// Stops the subscriptions (writing their checkpoints), commits what is queued, stops the
    /// actors and closes the storage; `false` if it had already been called.
    pub async fn shutdown(&self) -> bool {
        if self.inner.shut_down.swap(true, Ordering::SeqCst) {
            return false;
        }
        let supervisor = &self.inner.supervisor;
        if let Err(e) = ractor::call!(supervisor, SupervisorMsg::Shutdown) {
            tracing::warn!(error = %e, "supervisor did not confirm shutdown");
        }
        supervisor.stop_and_wait(None, Some(SHUTDOWN_WAIT)).await.ok();
        self.inner.storage.close().await;
        true
    }

    /// Connects a subscriber to a named subscription, starting it on this node if needed.
    pub async fn subscribe(&self, key: SubscriptionKey, options: SubscriptionOptions) -> Result<Subscription> {
        let (inbox, rx) = Inbox::channel();
        let request = key.clone();
        let connected =
            self.inner.registry.ask(|reply| RegistryMsg::Subscribe { key: request, options, inbox, reply }).await??;
        Ok(Subscription::new(key, connected.consumer, Some(rx), connected.actor, self.inner.registry.clone()))
    }

    /// Stops a named subscription on this node, dropping its subscribers with `reason`;
    /// whether it was running here.
    pub async fn stop_subscription(&self, key: SubscriptionKey, reason: DropReason) -> Result<bool> {
        self.inner.registry.ask(|reply| RegistryMsg::Unsubscribe { key, reason, reply }).await
    }

    /// Whether a named subscription runs on this node.
    pub async fn is_running(&self, key: SubscriptionKey) -> Result<bool> {
        Ok(self.running(key).await?.is_some())
    }

    /// The in-memory state of a named subscription running on this node;
    /// [`Error::SubscriptionNotFound`] if it does not run here.
    pub async fn subscription_status(&self, key: SubscriptionKey) -> Result<SubscriptionStatus> {
        let actor = self.running(key).await?.ok_or(Error::SubscriptionNotFound)?;
        match actor.call(SubscriptionMsg::Status, None).await {
            Ok(ractor::rpc::CallResult::Success(status)) => Ok(status),
            _ => Err(Error::Unavailable("the subscription is restarting".into())),
        }
    }

    /// Tells a named subscription running here that the parked events of its row `id` were
    /// marked for replay, and waits until they are queued (so they come before anything
    /// appended after this returns). Not running here is not an error: whoever runs it hears
    /// of it through the database.
    pub async fn replay_parked(&self, key: SubscriptionKey, id: i32) -> Result<()> {
        if let Some(actor) = self.running(key).await?
            && let Ok(ractor::rpc::CallResult::Success(queued)) =
                actor.call(|reply| SubscriptionMsg::ReplayParked { id, reply: Some(reply) }, None).await
        {
            queued?;
        }
        Ok(())
    }

    /// What a named subscription is doing, if this node owns it (`None` if it does not run here,
    /// waits for another node, or is restarting).
    pub async fn subscription_statistics(&self, key: SubscriptionKey) -> Result<Option<SubscriptionStatistics>> {
        let Some(actor) = self.running(key).await? else { return Ok(None) };
        match actor.call(SubscriptionMsg::Statistics, None).await {
            Ok(ractor::rpc::CallResult::Success(statistics)) => Ok(statistics),
            _ => Ok(None),
        }
    }

    /// Tells a named subscription running here that the stored settings of its row `id`
    /// changed, and waits until it adopted them (so they hold for whatever is delivered after
    /// this returns). Not running here is not an error: whoever runs it hears of it through the
    /// database.
    pub async fn reload_settings(&self, key: SubscriptionKey, id: i32) -> Result<()> {
        if let Some(actor) = self.running(key).await?
            && let Ok(ractor::rpc::CallResult::Success(adopted)) =
                actor.call(|reply| SubscriptionMsg::Reload { id, reply: Some(reply) }, None).await
        {
            adopted?;
        }
        Ok(())
    }

    /// Runs `subscriber` as a supervised actor, one of the named subscription's subscribers.
    pub async fn start_subscriber<S: Subscriber>(
        &self,
        key: SubscriptionKey,
        options: SubscriptionOptions,
        subscriber: S,
    ) -> Result<SubscriberHandle> {
        let args = RunnerArgs { subscriber, key: key.clone(), options, registry: self.inner.registry.clone() };
        let (actor, _) =
            match Actor::spawn_linked(None, Runner::<S>::new(), args, self.inner.supervisor.get_cell()).await {
                Ok(started) => started,
                // The actor subscribes as it starts: a refusal is the subscription's own error.
                Err(SpawnErr::StartupFailed(e)) => match e.downcast::<Error>() {
                    Ok(refused) => return Err(*refused),
                    Err(e) => return Err(Error::Unavailable(format!("cannot start subscriber {key}: {e}"))),
                },
                Err(e) => return Err(Error::Unavailable(format!("cannot start subscriber {key}: {e}"))),
            };
        Ok(SubscriberHandle::new(key.stream, key.name, actor))
    }

    /// A live-only listener on `stream` (or `$all`): events committed from now on.
    pub async fn listen(&self, stream: &str) -> Result<LiveSubscription> {
        let hub = &self.inner.hub;
        let (tx, rx) = tokio::sync::mpsc::channel(LIVE_BUFFER);
        let id = hub.next_id();
        // Listening first, then reading the head: every event committed after the head was read
        // reaches the listener, and everything at or below it is filtered out (the notifier
        // routes what it reads from its own cursor, which may still be behind the head).
        hub.listen(stream, id, Listener::Live(tx)).await?;
        let after = match self.inner.storage.head(ALL).await {
            Ok(head) => head,
            Err(e) => {
                hub.unlisten(stream, id).await;
                return Err(e);
            }
        };
        Ok(LiveSubscription::new(stream.to_string(), id, rx, Arc::clone(hub), after))
    }

    /// The publisher of `stream`, if one runs (for tests that kill it).
    pub async fn publisher_cell(&self, stream: &str) -> Option<ActorCell> {
        self.inner.hub.publisher_cell(stream).await
    }

    /// How many entries the subscriptions have looked at in storage (for chronik's tests).
    pub fn read_from_storage(&self) -> u64 {
        self.inner.read_from_storage.load(Ordering::Relaxed)
    }

    /// The store's counts since it started here, whether the writer runs, and its read pool.
    pub fn statistics(&self, store: String, started_at: chrono::DateTime<chrono::Utc>) -> StoreStatistics {
        let (database_connections, database_idle) = self.inner.storage.pool_status();
        let mut statistics = StoreStatistics {
            store,
            backend: self.inner.storage.backend_name(),
            started_at,
            appends_ok: 0,
            appends_rejected: 0,
            appends_failed: 0,
            events_appended: 0,
            batches: 0,
            batch_appends: 0,
            batch_events: 0,
            writer_restarts: 0,
            in_doubt_committed: 0,
            in_doubt_not_committed: 0,
            in_doubt_unknown: 0,
            writer_running: self.inner.writer.current().is_some_and(|w| w.get_status() == ractor::ActorStatus::Running),
            head_position: 0,
            notifier_lag: 0,
            database_connections,
            database_idle,
        };
        self.inner.metrics.tally.fill(&mut statistics);
        statistics
    }

    /// Runs a scavenge, recorded in the store's metrics.
    pub async fn scavenge(
        &self,
        storage: &Storage,
        options: crate::scavenge::ScavengeOptions,
    ) -> Result<crate::ScavengeReport> {
        self.inner.metrics.scavenge(storage, options).await
    }

    /// The subscriptions this node runs (or restarts after a crash).
    pub async fn running_subscriptions(&self) -> Result<Vec<SubscriptionKey>> {
        self.inner.registry.ask(RegistryMsg::Running).await
    }

    /// The writer's cell now (for tests that kill it).
    pub fn writer_cell(&self) -> Option<ActorCell> {
        self.inner.writer.cell()
    }

    /// A named subscription's actor cell, if it runs here (for tests that kill it).
    pub async fn subscription_cell(&self, key: SubscriptionKey) -> Option<ActorCell> {
        self.running(key).await.ok().flatten().map(|actor| actor.get_cell())
    }

    async fn running(&self, key: SubscriptionKey) -> Result<Option<ActorRef<SubscriptionMsg>>> {
        self.inner.registry.ask(|reply| RegistryMsg::Actor { key, reply }).await
    }
}
