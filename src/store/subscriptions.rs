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
    DropReason, ParkedEvent, SubscriptionInfo, SubscriptionKey, SubscriptionOptions, SubscriptionStatistics,
    SubscriptionStatus,
};
use crate::validate;

impl EventStore {
    /// Connects to the named subscription `name` of `stream` (starting it on this node if
    /// needed). The first message is [`SubscriptionMessage::Subscribed`](crate::SubscriptionMessage),
    /// once this node owns the subscription (another node may own it: this one then waits and
    /// takes over when it goes).
    ///
    /// A subscription that exists already runs with its stored settings, not with `options`
    /// (stored settings win; see [`SubscriptionOptions`]): only the functions of `options`
    /// (`partition_by`, `selector`) count, if this subscriber starts it on this node. A new
    /// subscription is created with `options` as its settings.
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
        let options = self.with_stored_settings(stream, name, options).await?;
        self.inner.runtime.subscribe(key, options).await
    }

    /// `options` (once valid) with the settings stored for the subscription instead, keeping
    /// the functions of `options`; a subscription that does not exist yet is created here with
    /// `options` as its settings, so it exists once the subscriber has its handle. A transient
    /// subscription is not stored. When the database cannot be asked now, `options` stand: the
    /// subscription is created, or adopts its stored settings, as it takes ownership.
    async fn with_stored_settings(
        &self,
        stream: &str,
        name: &str,
        options: SubscriptionOptions,
    ) -> Result<SubscriptionOptions> {
        options.validate()?;
        if options.transient {
            return Ok(options);
        }
        let storage = &self.inner.storage;
        let row = async {
            let start = storage.start_position(stream, options.start_from).await?;
            storage.subscription_row(stream, name, start, &options).await
        };
        match row.await {
            Ok(row) => Ok(match row.settings {
                Some(stored) => stored.with_functions_of(&options),
                None => options,
            }),
            Err(e @ (Error::Unavailable(_) | Error::Database(_))) => {
                tracing::warn!(stream, name, error = %e, "cannot read the stored settings now; the subscription adopts them once it runs");
                Ok(options)
            }
            Err(e) => Err(e),
        }
    }

    /// Creates the named subscription `name` of `stream` (or [`ALL`]) with `options` as its
    /// settings, without subscribing: subscribers that connect later (on any node) get these
    /// settings, and it starts from `options.start_from`. This is how KurrentDB's persistent
    /// subscription groups are created.
    ///
    /// ```no_run
    /// use chronik::{ALL, EventStore, StartFrom, SubscriptionOptions};
    /// # async fn demo(store: EventStore) -> chronik::Result<()> {
    /// store.create_subscription(ALL, "mailer", SubscriptionOptions::default().start_from(StartFrom::Current)).await?;
    /// # Ok(()) }
    /// ```
    ///
    /// Errors: [`Error::SubscriptionAlreadyExists`] if it is stored already (its settings are
    /// left as they are: see [`update_subscription`](Self::update_subscription));
    /// [`Error::InvalidArgument`] for invalid options, `transient(true)` or invalid names.
    pub async fn create_subscription(&self, stream: &str, name: &str, options: SubscriptionOptions) -> Result<()> {
        self.ensure_writable("create subscriptions")?;
        self.subscription_key(stream, name)?;
        options.validate()?;
        if options.transient {
            return Err(Error::invalid("a transient subscription is not stored, so it cannot be created ahead"));
        }
        let storage = &self.inner.storage;
        let start = storage.start_position(stream, options.start_from).await?;
        if storage.create_subscription(stream, name, start, &options).await? {
            Ok(())
        } else {
            Err(Error::SubscriptionAlreadyExists)
        }
    }

    /// Changes the settings of an existing named subscription: they are stored (a subscriber
    /// that joins later, on any node, gets them) and take effect for its running subscribers,
    /// wherever it runs. On this node they hold before this returns; on another node (PostgreSQL)
    /// the owner is notified and adopts them moments later.
    ///
    /// What changes on a running subscription:
    /// - `buffer_size`, `max_size`, `checkpoint_threshold`, `checkpoint_after`,
    ///   `message_timeout`, `max_retry_count`: at once, for what is not yet delivered. Events in
    ///   flight stay where they are: a subscriber over a smaller `buffer_size` gets nothing more
    ///   until it is under it; past a smaller `max_size` the newest queued events are read again
    ///   later.
    /// - `consumer_strategy`: for every event not yet delivered (events in flight are not waited
    ///   for, so the order of a stream may not hold across the change).
    /// - `concurrency_limit`: for subscribers that join from now on; subscribers already
    ///   connected stay even when there are more of them than the new limit.
    /// - `start_from` is kept as stored: it applied when the subscription was created, and its
    ///   checkpoint decides since (move it with
    ///   [`set_subscription_checkpoint`](Self::set_subscription_checkpoint)).
    /// - `partition_by` and `selector` are not stored and not changed: each node keeps the
    ///   functions it started the subscription with.
    ///
    /// ```no_run
    /// use chronik::{ALL, ConsumerStrategy, EventStore, SubscriptionOptions};
    /// # async fn demo(store: EventStore) -> chronik::Result<()> {
    /// let info = store.subscription_info(ALL, "projector").await?;
    /// let settings = info.settings.unwrap_or_default().buffer_size(20).consumer_strategy(ConsumerStrategy::Pinned);
    /// store.update_subscription(ALL, "projector", settings).await?;
    /// # Ok(()) }
    /// ```
    ///
    /// Errors: [`Error::SubscriptionNotFound`] if it is not stored (a transient subscription
    /// never is); [`Error::InvalidArgument`] for invalid options, `transient(true)` (a stored
    /// subscription cannot become transient) or another `filter` than the stored one (what it
    /// skipped is behind its checkpoint): for either, delete it and subscribe again.
    pub async fn update_subscription(&self, stream: &str, name: &str, options: SubscriptionOptions) -> Result<()> {
        self.ensure_writable("update subscriptions")?;
        let key = self.subscription_key(stream, name)?;
        options.validate()?;
        if options.transient {
            return Err(Error::invalid(
                "a stored subscription cannot become transient: delete it, then subscribe with transient(true)",
            ));
        }
        let storage = &self.inner.storage;
        let stored = storage.find_subscription(stream, name).await?.ok_or(Error::SubscriptionNotFound)?;
        if let Some(stored) = &stored.settings
            && stored.filter != options.filter
        {
            // What it skipped under the old filter is behind its checkpoint, and what it queued
            // was chosen by it: a new filter would deliver neither one way nor the other.
            return Err(Error::invalid(format!(
                "the filter of subscription `{name}` on `{stream}` cannot change (it is {:?}): delete the \
                 subscription and subscribe again with the new filter",
                stored.filter
            )));
        }
        let start_from = stored.settings.map_or(options.start_from, |settings| settings.start_from);
        let settings = options.start_from(start_from);
        let id = storage.update_settings(stream, name, &settings).await?.ok_or(Error::SubscriptionNotFound)?;
        self.inner.runtime.reload_settings(key, id).await
    }

    /// A named subscription: its stored settings, checkpoint, head, lag, owner and parked count
    /// and, when this node owns it, what it is doing now ([`SubscriptionInfo::live`]:
    /// subscribers with their events in flight, queue, events being retried, rates). On another
    /// node than the owner, `live` is `None` and the stored figures are there.
    ///
    /// [`Error::SubscriptionNotFound`] if it is not stored (a transient subscription never is:
    /// see [`subscription_status`](Self::subscription_status)).
    ///
    /// ```no_run
    /// use chronik::{ALL, EventStore};
    /// # async fn demo(store: EventStore) -> chronik::Result<()> {
    /// let info = store.subscription_info(ALL, "projector").await?;
    /// println!("checkpoint {}, {} behind, {} parked", info.checkpoint, info.lag, info.parked);
    /// if let Some(live) = info.live {
    ///     println!("{} subscribers, {} in flight", live.consumers.len(), live.status.in_flight);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn subscription_info(&self, stream: &str, name: &str) -> Result<SubscriptionInfo> {
        let key = self.subscription_key(stream, name)?;
        let mut info = self.inner.storage.subscription_info(stream, name).await?.ok_or(Error::SubscriptionNotFound)?;
        info.live = self.inner.runtime.subscription_statistics(key).await?;
        Ok(info)
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

    /// The entries of `stream` (or `$all`) with these numbers, in one read (for the admin
    /// UI's parked events); numbers with no entry are left out.
    #[cfg_attr(not(feature = "server"), allow(dead_code))]
    pub(crate) async fn read_numbers(&self, stream: &str, numbers: &[u64]) -> Result<Vec<crate::RecordedEvent>> {
        self.ensure_open()?;
        self.inner.storage.read_numbers(stream, numbers).await
    }

    /// The named subscriptions running on this node, with what each is doing (`None` while it
    /// waits for its lock or restarts).
    #[cfg_attr(not(feature = "server"), allow(dead_code))]
    pub(crate) async fn running_subscriptions(&self) -> Result<Vec<(SubscriptionKey, Option<SubscriptionStatistics>)>> {
        self.ensure_open()?;
        let mut running = Vec::new();
        for key in self.inner.runtime.running_subscriptions().await? {
            let statistics = self.inner.runtime.subscription_statistics(key.clone()).await?;
            running.push((key, statistics));
        }
        Ok(running)
    }

    /// Every named subscription stored in this store, with its settings, checkpoint, lag behind
    /// its stream, parked count and the database session that owns it (whichever node runs it).
    /// The live figures are [`subscription_info`](Self::subscription_info)'s: here `live` is
    /// always `None`.
    pub async fn list_subscriptions(&self) -> Result<Vec<SubscriptionInfo>> {
        self.ensure_open()?;
        self.inner.storage.list_subscriptions().await
    }

    /// Runs `subscriber` as a supervised actor consuming the named subscription `name` of
    /// `stream` (or [`ALL`]): one of its subscribers, like
    /// [`subscribe_to_stream`](Self::subscribe_to_stream) (same errors, and stored settings win
    /// over `options` likewise). `Ok` from
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
        let options = self.with_stored_settings(stream, name, options).await?;
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
        self.request_replay(stream, name, None).await
    }

    /// Like [`replay_parked`](Self::replay_parked), for the first `count` events of the parked
    /// list only (in the order [`parked_events`](Self::parked_events) lists them); the rest stay
    /// parked. Returns how many are marked (fewer when fewer are parked).
    pub async fn replay_parked_first(&self, stream: &str, name: &str, count: u64) -> Result<u64> {
        self.request_replay(stream, name, Some(count)).await
    }

    async fn request_replay(&self, stream: &str, name: &str, limit: Option<u64>) -> Result<u64> {
        self.ensure_writable("replay parked events")?;
        let key = self.subscription_key(stream, name)?;
        let (id, marked) =
            self.inner.storage.request_replay(stream, name, limit).await?.ok_or(Error::SubscriptionNotFound)?;
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
