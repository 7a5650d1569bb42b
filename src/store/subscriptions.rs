//! The facade's named subscriptions, subscriber actors and live listeners: validation, then one
//! call to the runtime (or to storage, for what is only stored).

use std::collections::BTreeMap;

use super::EventStore;
use crate::error::{Error, Result};
use crate::event::ALL;
use crate::filter::EventFilter;
use crate::runtime::{LiveSubscription, SubscriberHandle, Subscription};
use crate::store::Subscribers;
use crate::subscriber::Subscriber;
use crate::subscription::{
    DropReason, ParkedEvent, SubscriptionInfo, SubscriptionKey, SubscriptionOptions, SubscriptionStatus,
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
        self.inner.runtime.subscribe(key, options).await
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
        self.inner.runtime.stop_subscription(key, reason).await
    }

    /// Moves the checkpoint of a named subscription that runs nowhere: the next subscriber
    /// resumes after `checkpoint` (back, to process events again; forward, to skip them). Retry
    /// counts of events it passes are forgotten; parked events stay parked.
    ///
    /// [`Error::SubscriptionInUse`] while a node (this one or another) runs the subscription:
    /// unsubscribe it everywhere first. [`Error::SubscriptionNotFound`] if it does not exist.
    pub async fn set_subscription_checkpoint(&self, stream: &str, name: &str, checkpoint: u64) -> Result<()> {
        self.ensure_writable("move checkpoints")?;
        let key = self.subscription_key(stream, name)?;
        if self.inner.runtime.is_running(key).await? {
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
        let key = SubscriptionKey { stream: stream.to_string(), name: name.to_string() };
        self.inner.runtime.subscription_status(key).await
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
        self.ensure_writable("run named subscriptions (they keep checkpoints); live listeners work")?;
        let key = self.subscription_key(stream, name)?;
        self.inner.runtime.start_subscriber(key, options, subscriber).await
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
        let key = self.subscription_key(stream, name)?;
        let (id, marked) = self.inner.storage.request_replay(stream, name).await?.ok_or(Error::SubscriptionNotFound)?;
        self.inner.runtime.replay_parked(key, id).await?;
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
    /// no acks, no checkpoint. It never slows writers: if it falls [`LIVE_BUFFER`](crate::LIVE_BUFFER) messages
    /// behind, it drops events and says so ([`LiveMessage::Lagged`](crate::LiveMessage)).
    pub async fn subscribe(&self, stream: &str) -> Result<LiveSubscription> {
        self.ensure_open()?;
        validate::stream_id(stream)?;
        self.inner.runtime.listen(stream).await
    }

    /// A transient, live-only listener on `stream` (or [`ALL`]) that only gets the events
    /// `filter` passes; otherwise like [`subscribe`](Self::subscribe). A regular expression
    /// that does not compile is [`Error::InvalidArgument`] naming it.
    pub async fn subscribe_filtered(&self, stream: &str, filter: EventFilter) -> Result<LiveSubscription> {
        self.ensure_open()?;
        validate::stream_id(stream)?;
        filter.check()?;
        Ok(self.inner.runtime.listen(stream).await?.filtered(filter))
    }

    /// The key of a named subscription, once the store is open and both names are valid.
    fn subscription_key(&self, stream: &str, name: &str) -> Result<SubscriptionKey> {
        self.ensure_open()?;
        validate::stream_id(stream)?;
        validate::subscription_name(name)?;
        Ok(SubscriptionKey { stream: stream.to_string(), name: name.to_string() })
    }

    /// The runtime, for the test hooks.
    pub(crate) fn runtime(&self) -> &crate::runtime::Runtime {
        &self.inner.runtime
    }
}
