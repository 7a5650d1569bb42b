//! The facade's named subscriptions, subscriber actors and live listeners: validation, then one
//! request to the subscription registry (or a storage call for what is only stored).

use std::collections::BTreeMap;
use std::sync::Arc;

use ractor::rpc::CallResult;
use ractor::{Actor, ActorCell, ActorRef, RpcReplyPort};

use super::EventStore;
use crate::error::{Error, Result};
use crate::event::ALL;
use crate::runtime::publisher::Listener;
use crate::runtime::registry::{Connected, RegistryMsg};
use crate::runtime::subscriber::{Runner, RunnerArgs};
use crate::runtime::subscription::SubscriptionMsg;
use crate::runtime::{LiveSubscription, SubscriberHandle, Subscription};
use crate::store::Subscribers;
use crate::subscriber::Subscriber;
use crate::subscription::{
    DropReason, LIVE_BUFFER, ParkedEvent, SubscriptionInfo, SubscriptionKey, SubscriptionOptions, SubscriptionStatus,
};
use crate::validate;

impl EventStore {
    /// Connects to the named subscription `name` of `stream` (starting it on this node if
    /// needed). The first message is [`SubscriptionMessage::Subscribed`](crate::SubscriptionMessage),
    /// once this node owns the subscription (another node may own it: this one then waits and
    /// takes over when it goes).
    ///
    /// Errors: [`Error::SubscriptionAlreadyExists`] if it has a subscriber and its
    /// `concurrency_limit` is 1, [`Error::TooManySubscribers`] past the limit,
    /// [`Error::InvalidArgument`] for invalid options or stream ids.
    pub async fn subscribe_to_stream(
        &self,
        stream: &str,
        name: &str,
        options: SubscriptionOptions,
    ) -> Result<Subscription> {
        self.ensure_writable("run named subscriptions (they keep checkpoints); live listeners work")?;
        let key = self.subscription_key(stream, name)?;
        let request = key.clone();
        let connected: Connected =
            self.ask_registry(|reply| RegistryMsg::Subscribe { key: request, options, reply }).await??;
        Ok(Subscription::new(key, connected.consumer, connected.rx, connected.actor, self.registry()?))
    }

    /// Connects to the named subscription `name` of `$all` (see
    /// [`subscribe_to_stream`](Self::subscribe_to_stream)).
    pub async fn subscribe_to_all_streams(&self, name: &str, options: SubscriptionOptions) -> Result<Subscription> {
        self.subscribe_to_stream(ALL, name, options).await
    }

    /// Stops the named subscription on this node: writes its checkpoint, releases its lock
    /// (another node may take it over) and drops its subscribers with
    /// [`DropReason::Unsubscribed`]. Its checkpoint stays. Not running here is not an error.
    pub async fn unsubscribe_from_stream(&self, stream: &str, name: &str) -> Result<()> {
        self.stop_subscription(stream, name, DropReason::Unsubscribed).await.map(|_| ())
    }

    /// Stops the named subscription of `$all` on this node (see
    /// [`unsubscribe_from_stream`](Self::unsubscribe_from_stream)).
    pub async fn unsubscribe_from_all_streams(&self, name: &str) -> Result<()> {
        self.unsubscribe_from_stream(ALL, name).await
    }

    /// Deletes the named subscription: stops it on this node (subscribers get
    /// [`DropReason::Deleted`]) and deletes its checkpoint, so subscribing again starts from
    /// `start_from`. [`Error::SubscriptionNotFound`] if it neither runs here nor is stored.
    pub async fn delete_subscription(&self, stream: &str, name: &str) -> Result<()> {
        self.ensure_writable("delete subscriptions")?;
        let running = self.stop_subscription(stream, name, DropReason::Deleted).await?;
        let stored = self.inner.storage.delete_subscription(stream, name).await?;
        if running || stored { Ok(()) } else { Err(Error::SubscriptionNotFound) }
    }

    async fn stop_subscription(&self, stream: &str, name: &str, reason: DropReason) -> Result<bool> {
        let key = self.subscription_key(stream, name)?;
        self.ask_registry(|reply| RegistryMsg::Unsubscribe { key, reason, reply }).await
    }

    /// Moves the checkpoint of a named subscription that runs nowhere: the next subscriber
    /// resumes after `checkpoint` (back, to process events again; forward, to skip them). Retry
    /// counts of events it passes are forgotten; parked events stay parked.
    ///
    /// [`Error::SubscriptionInUse`] while a node (this one or another) runs the subscription:
    /// unsubscribe it everywhere first. [`Error::SubscriptionNotFound`] if it does not exist.
    pub async fn set_subscription_checkpoint(&self, stream: &str, name: &str, checkpoint: u64) -> Result<()> {
        self.ensure_writable("move checkpoints")?;
        self.subscription_key(stream, name)?;
        if self.running_subscription(stream, name).await?.is_some() {
            return Err(Error::SubscriptionInUse);
        }
        if self.inner.storage.set_checkpoint(stream, name, checkpoint).await? {
            Ok(())
        } else {
            Err(Error::SubscriptionNotFound)
        }
    }

    /// The in-memory state of a named subscription running on this node;
    /// [`Error::SubscriptionNotFound`] if it does not run here.
    pub async fn subscription_status(&self, stream: &str, name: &str) -> Result<SubscriptionStatus> {
        self.ensure_open()?;
        let actor = self.running_subscription(stream, name).await?.ok_or(Error::SubscriptionNotFound)?;
        match actor.call(SubscriptionMsg::Status, None).await {
            Ok(CallResult::Success(status)) => Ok(status),
            _ => Err(Error::Unavailable("the subscription is restarting".into())),
        }
    }

    /// Every named subscription stored in this store, with its checkpoint, its lag behind its
    /// stream and the database session that owns it (whichever node runs it).
    pub async fn list_subscriptions(&self) -> Result<Vec<SubscriptionInfo>> {
        self.ensure_open()?;
        self.inner.storage.list_subscriptions().await
    }

    /// Runs `subscriber` as a supervised actor consuming the named subscription `name` of
    /// `stream` (or [`ALL`]): one of its subscribers, like
    /// [`subscribe_to_stream`](Self::subscribe_to_stream) (same errors). `Ok` from
    /// [`Subscriber::handle`] acks the batch; an `Err` or a panic makes it back off and take
    /// the unacked events again, in order, parking an event that keeps failing past
    /// `max_retry_count` (see [`Subscriber`]). The actor stops with the store, on
    /// [`SubscriberHandle::stop`], or when the subscription is unsubscribed or deleted.
    ///
    /// ```no_run
    /// use chronik::{EventStore, HandlerError, RecordedEvent, Subscriber, SubscriptionOptions, ALL};
    ///
    /// struct Printer;
    /// impl Subscriber for Printer {
    ///     async fn handle(&mut self, events: &[RecordedEvent]) -> Result<(), HandlerError> {
    ///         for event in events {
    ///             println!("{} {}", event.event_number, event.event_type);
    ///         }
    ///         Ok(())
    ///     }
    /// }
    ///
    /// # async fn demo(store: EventStore) -> chronik::Result<()> {
    /// let printer = store.start_subscriber(ALL, "printer", SubscriptionOptions::default(), Printer).await?;
    /// printer.pause().await?;
    /// printer.resume().await?;
    /// printer.stop().await?;
    /// # Ok(()) }
    /// ```
    pub async fn start_subscriber<S: Subscriber>(
        &self,
        stream: &str,
        name: &str,
        options: SubscriptionOptions,
        subscriber: S,
    ) -> Result<SubscriberHandle> {
        let mut subscription = self.subscribe_to_stream(stream, name, options).await?;
        let rx = subscription
            .take_receiver()
            .ok_or_else(|| Error::Unavailable("the subscription's receiver is already taken".into()))?;
        let args = RunnerArgs { subscriber, subscription, rx };
        let (actor, _) = Actor::spawn_linked(None, Runner::<S>::new(), args, self.inner.supervisor.get_cell())
            .await
            .map_err(|e| Error::Unavailable(format!("cannot start subscriber {stream}/{name}: {e}")))?;
        Ok(SubscriberHandle::new(stream.to_string(), name.to_string(), actor))
    }

    /// Starts every subscription the configuration declares (`[[subscriptions]]`, see
    /// [`Config::subscriptions`](crate::Config::subscriptions)) with the implementation `subscribers` gives for its name, and
    /// returns their handles by name. A declared name with no implementation, or an
    /// implementation with no declaration, is an [`Error::Config`] and nothing is started; if
    /// one fails to start, those already started are stopped again.
    ///
    /// ```no_run
    /// use chronik::{Config, EventStore, HandlerError, RecordedEvent, Subscriber, Subscribers};
    ///
    /// struct Projector;
    /// impl Subscriber for Projector {
    ///     async fn handle(&mut self, _events: &[RecordedEvent]) -> Result<(), HandlerError> {
    ///         Ok(())
    ///     }
    /// }
    ///
    /// # async fn demo() -> chronik::Result<()> {
    /// // Usually a file (`Config::from_file`); its `[[subscriptions]]` entries declare the names.
    /// let config = Config::from_toml_str(
    ///     r#"
    ///     database_url = "sqlite:data/app.db"
    ///     [[subscriptions]]
    ///     name = "projector"
    ///     "#,
    /// )?;
    /// let store = EventStore::start(config).await?;
    /// let handles = store.start_subscribers(Subscribers::new().add("projector", Projector)).await?;
    /// handles["projector"].pause().await?;
    /// # Ok(()) }
    /// ```
    pub async fn start_subscribers(&self, mut subscribers: Subscribers) -> Result<BTreeMap<String, SubscriberHandle>> {
        self.ensure_open()?;
        let declared = &self.inner.config.subscriptions;
        subscribers.check(&declared.iter().map(|d| d.name.as_str()).collect::<Vec<_>>())?;
        let mut handles = BTreeMap::new();
        for entry in declared {
            let started = match subscribers.take(&entry.name) {
                Some(start) => start(self.clone(), entry.stream.clone(), entry.name.clone(), entry.options()).await,
                None => Err(Error::config("subscriptions", format!("no implementation for `{}`", entry.name))),
            };
            match started {
                Ok(handle) => {
                    handles.insert(entry.name.clone(), handle);
                }
                Err(e) => {
                    for handle in handles.values() {
                        let _ = handle.stop().await;
                    }
                    return Err(e);
                }
            }
        }
        Ok(handles)
    }

    /// Delivers the parked events of a named subscription again, ahead of new events, once
    /// each: a replayed event leaves the parked list when it is acked or skipped (nacked with
    /// [`NackAction::Park`](crate::NackAction) it stays parked). Works from any process: the
    /// events are marked for replay in the database and the node that owns the subscription,
    /// wherever it runs, is notified (a subscription that runs nowhere replays them when it
    /// next starts). Returns how many parked events are marked;
    /// [`Error::SubscriptionNotFound`] if the subscription does not exist.
    pub async fn replay_parked(&self, stream: &str, name: &str) -> Result<u64> {
        self.ensure_writable("replay parked events")?;
        self.subscription_key(stream, name)?;
        let (id, marked) = self.inner.storage.request_replay(stream, name).await?.ok_or(Error::SubscriptionNotFound)?;
        // Running here: wait until the events are queued, so that they come before anything
        // appended after this call returns.
        if let Some(actor) = self.running_subscription(stream, name).await?
            && let Ok(CallResult::Success(queued)) =
                actor.call(|reply| SubscriptionMsg::ReplayParked { id, reply: Some(reply) }, None).await
        {
            queued?;
        }
        Ok(marked)
    }

    /// The parked events of a named subscription, oldest first (see
    /// [`NackAction::Park`](crate::NackAction)); [`Error::SubscriptionNotFound`] if it does not
    /// exist.
    pub async fn parked_events(&self, stream: &str, name: &str) -> Result<Vec<ParkedEvent>> {
        self.subscription_key(stream, name)?;
        self.inner.storage.parked_events(stream, name).await?.ok_or(Error::SubscriptionNotFound)
    }

    /// A transient, live-only listener on `stream` (or [`ALL`]): events committed from now on,
    /// no acks, no checkpoint. It never slows writers: if it falls [`LIVE_BUFFER`] messages
    /// behind, it drops events and says so ([`LiveMessage::Lagged`](crate::LiveMessage)).
    pub async fn subscribe(&self, stream: &str) -> Result<LiveSubscription> {
        self.ensure_open()?;
        validate::stream_id(stream)?;
        let (tx, rx) = tokio::sync::mpsc::channel(LIVE_BUFFER);
        let id = self.inner.hub.next_id();
        // Listening first, then reading the head: every event committed after the head was read
        // reaches the listener, and everything at or below it is filtered out (the notifier
        // routes what it reads from its own cursor, which may still be behind the head).
        self.inner.hub.listen(stream, id, Listener::Live(tx)).await?;
        let after = match self.inner.storage.head(ALL).await {
            Ok(head) => head,
            Err(e) => {
                self.inner.hub.unlisten(stream, id).await;
                return Err(e);
            }
        };
        Ok(LiveSubscription::new(stream.to_string(), id, rx, Arc::clone(&self.inner.hub), after))
    }

    /// The key of a named subscription, once the store is open and both names are valid.
    fn subscription_key(&self, stream: &str, name: &str) -> Result<SubscriptionKey> {
        self.ensure_open()?;
        validate::stream_id(stream)?;
        validate::subscription_name(name)?;
        Ok(SubscriptionKey { stream: stream.to_string(), name: name.to_string() })
    }

    fn registry(&self) -> Result<ActorRef<RegistryMsg>> {
        self.inner
            .registry
            .borrow()
            .clone()
            .ok_or_else(|| Error::Unavailable("the subscription registry is restarting".into()))
    }

    /// Sends the registry a request and waits for its answer.
    async fn ask_registry<T: Send + 'static>(&self, request: impl FnOnce(RpcReplyPort<T>) -> RegistryMsg) -> Result<T> {
        match self.registry()?.call(request, None).await {
            Ok(CallResult::Success(answer)) => Ok(answer),
            _ => Err(Error::Unavailable("the subscription registry stopped".into())),
        }
    }

    /// The actor of a named subscription, if it runs on this node.
    async fn running_subscription(&self, stream: &str, name: &str) -> Result<Option<ActorRef<SubscriptionMsg>>> {
        let key = SubscriptionKey { stream: stream.to_string(), name: name.to_string() };
        self.ask_registry(|reply| RegistryMsg::Actor { key, reply }).await
    }

    /// The actor of a named subscription running on this node, for tests that kill it to
    /// exercise supervision.
    pub(crate) async fn subscription_actor(&self, stream: &str, name: &str) -> Option<ActorCell> {
        self.running_subscription(stream, name).await.ok().flatten().map(|a| a.get_cell())
    }

    /// The writer actor, for tests that kill it to exercise supervision.
    pub(crate) fn writer_actor(&self) -> Option<ActorCell> {
        self.inner.writer.borrow().as_ref().map(ActorRef::get_cell)
    }
}
