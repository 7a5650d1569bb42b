//! The subscriber actor: runs one application [`Subscriber`] on a named subscription, as one of
//! its subscribers.
//!
//! - **Owns** the application's value, its connection to the subscription (a [`Subscription`]
//!   it makes as it starts, whose deliveries come straight into this actor's mailbox), and its
//!   pause, backoff and narrowing state.
//! - **Receives** `Delivery` (from the subscription actor), `Closed` (nobody can deliver any
//!   more: the subscription's registry let go of it), `BackoffOver` (its timer), and `Pause`,
//!   `Resume` and `Stop` (from a [`SubscriberHandle`]).
//! - **Persists** nothing itself: `Ok` from the application acks the batch, and the subscription
//!   actor writes the checkpoint.
//! - **When the application fails** (an `Err` or a panic, caught here): the events not yet
//!   acked go back to the subscription (a pause, so deliveries already on their way are
//!   discarded); if the failed event is known, that counts a retry (the subscription parks it
//!   past `max_retry_count`); after a backoff delivery resumes, from the oldest unacked event,
//!   in order. A failed batch of several events is then handed over one event at a time until
//!   its end, so the event that fails is found. The value keeps running: it is the
//!   application's state, and a restart could not rebuild it.
//! - **On its own crash** (a defect of chronik, not of the application) it stops and its
//!   subscription disconnects it; the value is gone with it, so nothing restarts it. Its
//!   supervisor (the store's) logs it.
//!
//! [`SubscriberHandle`]: crate::SubscriberHandle

use std::marker::PhantomData;
use std::panic::AssertUnwindSafe;
use tracing::Instrument;

use super::Subscription;
use super::registry::RegistryMsg;
use super::restart::backoff;
use super::slot::ActorSlot;
use super::subscription::{Delivery, Inbox};
use crate::error::{Error, Result};
use crate::event::RecordedEvent;
use crate::subscriber::Subscriber;
use crate::subscription::{NackAction, SubscriptionKey, SubscriptionMessage, SubscriptionOptions};
use futures::FutureExt;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

/// Messages of a subscriber actor.
pub enum RunnerMsg {
    /// A delivery from the subscription.
    Delivery(Delivery),
    /// Nobody can deliver any more (the registry let go of this subscriber).
    Closed,
    /// The backoff after a failure is over (its timer).
    BackoffOver,
    /// Stop delivery, keeping ownership.
    Pause(RpcReplyPort<Result<()>>),
    /// Resume delivery.
    Resume(RpcReplyPort<Result<()>>),
    /// Disconnect and stop.
    Stop(RpcReplyPort<Result<()>>),
}

/// The subscriber actor, for an application type `S`.
pub struct Runner<S>(PhantomData<fn() -> S>);

impl<S> Runner<S> {
    /// The actor.
    pub fn new() -> Self {
        Runner(PhantomData)
    }
}

impl<S> Default for Runner<S> {
    fn default() -> Self {
        Runner::new()
    }
}

/// Arguments of a subscriber actor.
pub struct RunnerArgs<S> {
    /// The application's value.
    pub subscriber: S,
    /// The named subscription it consumes.
    pub key: SubscriptionKey,
    /// Its options.
    pub options: SubscriptionOptions,
    /// The registry it subscribes through.
    pub registry: ActorSlot<RegistryMsg>,
}

/// A subscriber actor's state.
pub struct RunnerState<S> {
    subscriber: S,
    /// `None` once stopped.
    subscription: Option<Subscription>,
    /// Paused by the application.
    paused: bool,
    /// Waiting out a backoff after a failure.
    backing_off: bool,
    /// Failures in a row.
    failures: usize,
    /// A batch failed without saying where: up to this event, events go one at a time.
    narrow_until: Option<u64>,
    label: String,
}

/// Why the application could not process events.
struct Failure {
    /// The event it named, if any.
    event: Option<u64>,
    /// Park that event at once.
    park: bool,
    reason: String,
}

impl<S: Subscriber> Actor for Runner<S> {
    type Msg = RunnerMsg;
    type State = RunnerState<S>;
    type Arguments = RunnerArgs<S>;

    async fn pre_start(
        &self,
        myself: ActorRef<RunnerMsg>,
        args: RunnerArgs<S>,
    ) -> Result<RunnerState<S>, ActorProcessingErr> {
        // Subscribing here, so that a refusal (a name already taken, too many subscribers) fails
        // the start and reaches the caller as the subscription's own error.
        let inbox = Inbox::actor(myself.clone(), RunnerMsg::Delivery, || RunnerMsg::Closed);
        let RunnerArgs { subscriber, key, options, registry } = args;
        let request = key.clone();
        let connected = registry.ask(|reply| RegistryMsg::Subscribe { key: request, options, inbox, reply }).await??;
        let label = key.to_string();
        let subscription = Subscription::new(key, connected.consumer, None, connected.actor, registry);
        Ok(RunnerState {
            subscriber,
            subscription: Some(subscription),
            paused: false,
            backing_off: false,
            failures: 0,
            narrow_until: None,
            label,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<RunnerMsg>,
        msg: RunnerMsg,
        state: &mut RunnerState<S>,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            RunnerMsg::Delivery(delivery) => state.receive(&myself, delivery).await,
            RunnerMsg::Closed => myself.stop(Some("subscription channel closed".into())),
            RunnerMsg::BackoffOver => {
                state.backing_off = false;
                if !state.paused {
                    state.resume().await;
                }
            }
            RunnerMsg::Pause(reply) => {
                if !state.paused && !state.backing_off {
                    state.pause(None).await;
                }
                state.paused = true;
                let _ = reply.send(Ok(()));
            }
            RunnerMsg::Resume(reply) => {
                if state.paused && !state.backing_off {
                    state.resume().await;
                }
                state.paused = false;
                let _ = reply.send(Ok(()));
            }
            RunnerMsg::Stop(reply) => {
                let outcome = match state.subscription.take() {
                    Some(subscription) => subscription.unsubscribe().await,
                    None => Ok(()),
                };
                let _ = reply.send(outcome);
                myself.stop(Some("stopped by its handle".into()));
            }
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<RunnerMsg>,
        state: &mut RunnerState<S>,
    ) -> Result<(), ActorProcessingErr> {
        tracing::debug!(subscriber = %state.label, "subscriber actor stopped");
        Ok(())
    }
}

impl<S: Subscriber> RunnerState<S> {
    async fn receive(&mut self, myself: &ActorRef<RunnerMsg>, delivery: Delivery) {
        let Some(message) = self.subscription.as_mut().and_then(|s| s.accept(delivery)) else { return };
        match message {
            SubscriptionMessage::Subscribed => {
                // A new ownership (or a restarted subscription actor) knows nothing of a pause.
                if self.paused || self.backing_off {
                    self.pause(None).await;
                }
            }
            SubscriptionMessage::Events(batch) => {
                if self.paused || self.backing_off {
                    // Sent before the pause took effect: give it back.
                    self.pause(None).await;
                } else {
                    self.process(myself, &batch).await;
                }
            }
            SubscriptionMessage::CaughtUp => {
                if AssertUnwindSafe(self.subscriber.caught_up()).catch_unwind().await.is_err() {
                    tracing::error!(subscription = %self.label, "subscriber panicked in caught_up");
                }
            }
            SubscriptionMessage::Dropped(reason) => {
                tracing::info!(subscription = %self.label, %reason, "subscriber disconnected; its actor stops");
                myself.stop(Some(reason.to_string()));
            }
        }
    }

    /// Hands a batch to the application (one event at a time while narrowing down a failure),
    /// acking what it processed.
    async fn process(&mut self, myself: &ActorRef<RunnerMsg>, batch: &[RecordedEvent]) {
        let mut rest = batch;
        while let Some(first) = rest.first() {
            let take = match self.narrow_until {
                Some(end) if first.event_number <= end => 1,
                _ => rest.len(),
            };
            let chunk = &rest[..take];
            let failure = match self.run(chunk).await {
                Ok(()) => {
                    self.ack(chunk).await;
                    self.failures = 0;
                    let last = chunk[chunk.len() - 1].event_number;
                    if self.narrow_until.is_some_and(|end| last >= end) {
                        self.narrow_until = None;
                    }
                    rest = &rest[take..];
                    continue;
                }
                Err(failure) => failure,
            };
            let at = failure.event.and_then(|n| chunk.iter().position(|e| e.event_number == n));
            if let Some(i) = at {
                // The application says the events before this one were processed.
                self.ack(&chunk[..i]).await;
            }
            if let (true, Some(i)) = (failure.park, at) {
                self.park(&chunk[i], &failure.reason).await;
                rest = &rest[i + 1..];
                continue;
            }
            let failed = match at {
                Some(i) => Some(&chunk[i]),
                None if chunk.len() == 1 => Some(&chunk[0]),
                None => None,
            };
            match failed {
                Some(event) => {
                    tracing::error!(subscription = %self.label, event_number = event.event_number, error = %failure.reason, "subscriber failed; retrying the event after a backoff");
                    self.back_off(myself, Some((event.event_number, failure.reason))).await;
                }
                None => {
                    let (first, last) = (chunk[0].event_number, chunk[chunk.len() - 1].event_number);
                    tracing::error!(subscription = %self.label, first, last, error = %failure.reason, "subscriber failed on a batch; retrying it one event at a time after a backoff");
                    self.narrow_until = Some(last);
                    self.back_off(myself, None).await;
                }
            }
            // What is left of the batch went back to the subscription with the pause.
            return;
        }
    }

    /// Runs the application on a chunk, catching a panic.
    async fn run(&mut self, chunk: &[RecordedEvent]) -> std::result::Result<(), Failure> {
        let span = crate::spans::deliver(&self.label, chunk);
        #[cfg(feature = "otel")]
        crate::otel::continue_trace(&span, chunk);
        let handled = AssertUnwindSafe(self.subscriber.handle(chunk)).catch_unwind().instrument(span).await;
        match handled {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(Failure { event: e.event_number(), park: e.parks(), reason: e.to_string() }),
            Err(panic) => {
                let message = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a panic with no message".to_string());
                Err(Failure { event: None, park: false, reason: format!("panicked: {message}") })
            }
        }
    }

    // `&mut self`: a shared reference would need the application's type to be `Sync`.
    async fn ack(&mut self, events: &[RecordedEvent]) {
        let Some(subscription) = &self.subscription else { return };
        match subscription.ack(events).await {
            Ok(()) => {}
            // Taken back meanwhile (a message timeout): it comes again.
            Err(Error::UnexpectedAck) => {
                tracing::debug!(subscription = %self.label, "ack of events no longer in flight here ignored");
            }
            Err(e) => tracing::warn!(subscription = %self.label, error = %e, "ack failed; the events come again"),
        }
    }

    async fn park(&mut self, event: &RecordedEvent, reason: &str) {
        let Some(subscription) = &self.subscription else { return };
        tracing::warn!(subscription = %self.label, event_number = event.event_number, reason, "subscriber parks an event");
        if let Err(e) = subscription.nack(event, NackAction::Park, reason).await {
            tracing::warn!(subscription = %self.label, error = %e, "park failed; the event comes again");
        }
    }

    /// Gives the events back (counting a retry of the failed one, if known) and resumes after
    /// a backoff.
    async fn back_off(&mut self, myself: &ActorRef<RunnerMsg>, failed: Option<(u64, String)>) {
        self.pause(failed).await;
        self.backing_off = true;
        let wait = backoff(self.failures);
        self.failures += 1;
        myself.send_after(wait, || RunnerMsg::BackoffOver);
    }

    async fn pause(&mut self, retry: Option<(u64, String)>) {
        if let Some(subscription) = self.subscription.as_mut()
            && let Err(e) = subscription.pause(retry).await
        {
            tracing::warn!(subscription = %self.label, error = %e, "cannot pause the subscriber");
        }
    }

    async fn resume(&mut self) {
        if let Some(subscription) = &self.subscription
            && let Err(e) = subscription.resume().await
        {
            tracing::warn!(subscription = %self.label, error = %e, "cannot resume the subscriber");
        }
    }
}
