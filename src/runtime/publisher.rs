//! `Publisher` actors: the live fan-out, one per listened stream and one for `$all`, and the
//! [`Hub`] that spawns them on demand and stops them when their last listener leaves.
//!
//! - **Owns** its listeners: subscription actors (which bound their own queues) and live-only
//!   listeners (bounded channels: a full one loses events and is told how many, never blocking
//!   the publisher or growing memory).
//! - **Receives** `Add`/`Remove` of listeners and `Publish` of what the notifier read.
//! - **Persists** nothing: a live feed is a wake-up with data attached, never the only copy. A
//!   listener that misses something re-reads it from storage.
//! - **On a crash**: it does no I/O and nothing in it can fail. Should it stop anyway, the next
//!   `listen` for its stream replaces it; the hub keeps every listener, moves them to the new
//!   publisher and tells them events may have been missed, so subscriptions re-read storage.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::sync::{Mutex, mpsc};

use super::subscription::SubscriptionMsg;
use crate::error::{Error, Result};
use crate::event::{ALL, RecordedEvent};
use crate::subscription::LiveMessage;

/// Identifies a listener within the hub.
pub type ListenerId = u64;

/// What a publisher hands its listeners.
#[derive(Debug, Clone)]
pub enum LiveFeed {
    /// Events committed with global positions in `(after, to]`, in order. For `$all` these are
    /// all the events of that range; for a stream, its events of that range, numbered by
    /// stream version.
    Events {
        /// The position the notifier had read up to before this range.
        after: u64,
        /// The last position of the range.
        to: u64,
        /// The events.
        events: Arc<[RecordedEvent]>,
    },
    /// Events may have been missed (the notifier skipped ahead, restarted, or a batch linked
    /// events into streams): read from storage.
    Missed,
}

/// One listener of a publisher.
#[derive(Clone)]
pub enum Listener {
    /// A subscription actor.
    Subscription(ActorRef<SubscriptionMsg>),
    /// A live-only listener's channel.
    Live(mpsc::Sender<LiveMessage>),
}

/// Messages of a publisher.
pub enum PublisherMsg {
    /// Start handing events to this listener.
    Add(ListenerId, Listener),
    /// Stop handing events to this listener.
    Remove(ListenerId),
    /// Hand this to every listener.
    Publish(LiveFeed),
}

struct LiveListener {
    tx: mpsc::Sender<LiveMessage>,
    missed: u64,
    missed_unknown: bool,
}

/// A publisher's listeners.
#[derive(Default)]
pub struct PublisherState {
    subscriptions: HashMap<ListenerId, ActorRef<SubscriptionMsg>>,
    live: HashMap<ListenerId, LiveListener>,
}

/// The publisher actor.
pub struct Publisher;

impl Actor for Publisher {
    type Msg = PublisherMsg;
    type State = PublisherState;
    type Arguments = ();

    async fn pre_start(&self, _myself: ActorRef<PublisherMsg>, (): ()) -> Result<PublisherState, ActorProcessingErr> {
        Ok(PublisherState::default())
    }

    async fn handle(
        &self,
        _myself: ActorRef<PublisherMsg>,
        msg: PublisherMsg,
        state: &mut PublisherState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            PublisherMsg::Add(id, Listener::Subscription(actor)) => {
                state.subscriptions.insert(id, actor);
            }
            PublisherMsg::Add(id, Listener::Live(tx)) => {
                state.live.insert(id, LiveListener { tx, missed: 0, missed_unknown: false });
            }
            PublisherMsg::Remove(id) => {
                state.subscriptions.remove(&id);
                state.live.remove(&id);
            }
            PublisherMsg::Publish(feed) => {
                // A subscription actor that is gone is dropped from the list; its registry
                // restarts it with a new listener.
                state.subscriptions.retain(|_, actor| actor.cast(SubscriptionMsg::Live(feed.clone())).is_ok());
                state.live.retain(|_, listener| offer(listener, &feed));
            }
        }
        Ok(())
    }
}

/// Hands `feed` to a live listener without waiting: a full channel loses it (and says so with
/// the next message that fits). `false` once the listener is gone.
fn offer(listener: &mut LiveListener, feed: &LiveFeed) -> bool {
    use mpsc::error::TrySendError;
    let (events, count) = match feed {
        LiveFeed::Events { events, .. } if events.is_empty() => return !listener.tx.is_closed(),
        LiveFeed::Events { events, .. } => (Some(events), events.len() as u64),
        LiveFeed::Missed => (None, 0),
    };
    if listener.missed > 0 || listener.missed_unknown || events.is_none() {
        let missed = (!listener.missed_unknown && events.is_some()).then_some(listener.missed);
        match listener.tx.try_send(LiveMessage::Lagged { missed }) {
            Ok(()) => (listener.missed, listener.missed_unknown) = (0, false),
            Err(TrySendError::Closed(_)) => return false,
            Err(TrySendError::Full(_)) => {
                listener.missed += count;
                listener.missed_unknown |= events.is_none();
                return true;
            }
        }
    }
    let Some(events) = events else { return true };
    match listener.tx.try_send(LiveMessage::Events(events.to_vec())) {
        Ok(()) => true,
        Err(TrySendError::Closed(_)) => false,
        Err(TrySendError::Full(_)) => {
            listener.missed += count;
            true
        }
    }
}

struct Entry {
    publisher: ActorRef<PublisherMsg>,
    listeners: HashMap<ListenerId, Listener>,
}

/// The store's publishers by stream (`$all` included), shared by the notifier (which routes
/// what it reads) and the listeners (which come and go). It outlives notifier restarts.
#[derive(Default)]
pub struct Hub {
    publishers: Mutex<HashMap<String, Entry>>,
    listening: AtomicUsize,
    next_id: AtomicU64,
}

impl Hub {
    /// A fresh listener id.
    pub fn next_id(&self) -> ListenerId {
        self.next_id.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Whether anyone listens (if nobody does, the notifier reads nothing).
    pub fn has_listeners(&self) -> bool {
        self.listening.load(Ordering::SeqCst) > 0
    }

    /// Adds a listener to `stream`'s publisher, spawning it if needed.
    pub async fn listen(&self, stream: &str, id: ListenerId, listener: Listener) -> Result<()> {
        let mut publishers = self.publishers.lock().await;
        // A publisher just spawned is still `Starting`; only a stopped one is replaced.
        let alive = publishers.get(stream).is_some_and(|e| {
            !matches!(e.publisher.get_status(), ractor::ActorStatus::Stopping | ractor::ActorStatus::Stopped)
        });
        if !alive {
            let (publisher, _) = Actor::spawn(None, Publisher, ())
                .await
                .map_err(|e| Error::Unavailable(format!("cannot start a publisher for `{stream}`: {e}")))?;
            let listeners = publishers.remove(stream).map(|stale| stale.listeners).unwrap_or_default();
            // The listeners of a publisher that stopped move to its successor, told that events
            // may have been missed meanwhile.
            for (id, listener) in &listeners {
                let _ = publisher.cast(PublisherMsg::Add(*id, listener.clone()));
            }
            if !listeners.is_empty() {
                let _ = publisher.cast(PublisherMsg::Publish(LiveFeed::Missed));
            }
            publishers.insert(stream.to_string(), Entry { publisher, listeners });
        }
        let entry = publishers.get_mut(stream).ok_or_else(|| Error::Unavailable("publisher vanished".into()))?;
        let listener_copy = listener.clone();
        entry
            .publisher
            .cast(PublisherMsg::Add(id, listener))
            .map_err(|e| Error::Unavailable(format!("publisher for `{stream}` stopped: {e}")))?;
        if entry.listeners.insert(id, listener_copy).is_none() {
            self.listening.fetch_add(1, Ordering::SeqCst);
        }
        Ok(())
    }

    /// Removes a listener (a no-op for one already removed); a publisher left without listeners
    /// stops.
    pub async fn unlisten(&self, stream: &str, id: ListenerId) {
        let mut publishers = self.publishers.lock().await;
        let Some(entry) = publishers.get_mut(stream) else { return };
        if entry.listeners.remove(&id).is_none() {
            return;
        }
        self.listening.fetch_sub(1, Ordering::SeqCst);
        if entry.listeners.is_empty() {
            if let Some(entry) = publishers.remove(stream) {
                entry.publisher.stop(None);
            }
        } else {
            let _ = entry.publisher.cast(PublisherMsg::Remove(id));
        }
    }

    /// Routes a range the notifier read: all of it to `$all`'s publisher, each stream's events
    /// (numbered by stream version) to that stream's publisher.
    pub async fn publish(&self, after: u64, to: u64, events: Vec<RecordedEvent>) {
        let publishers = self.publishers.lock().await;
        let mut by_stream: HashMap<&str, Vec<RecordedEvent>> = HashMap::new();
        for event in &events {
            if publishers.contains_key(event.stream_uuid.as_str()) {
                let mut own = event.clone();
                own.event_number = own.stream_version;
                by_stream.entry(event.stream_uuid.as_str()).or_default().push(own);
            }
        }
        for (stream, events) in by_stream {
            send(&publishers, stream, LiveFeed::Events { after, to, events: events.into() });
        }
        send(&publishers, ALL, LiveFeed::Events { after, to, events: events.into() });
    }

    /// Tells listeners that events may have been missed: every publisher's, or only those of
    /// streams (after a batch of links, which never enter `$all`).
    pub async fn publish_missed(&self, streams_only: bool) {
        let publishers = self.publishers.lock().await;
        for (stream, entry) in publishers.iter() {
            if !(streams_only && stream == ALL) {
                let _ = entry.publisher.cast(PublisherMsg::Publish(LiveFeed::Missed));
            }
        }
    }

    /// Stops every publisher (store shutdown); live listeners see their channel close.
    pub async fn stop_all(&self) {
        let mut publishers = self.publishers.lock().await;
        for (_, entry) in publishers.drain() {
            entry.publisher.stop(None);
        }
        self.listening.store(0, Ordering::SeqCst);
    }
}

fn send(publishers: &HashMap<String, Entry>, stream: &str, feed: LiveFeed) {
    if let Some(entry) = publishers.get(stream)
        && let Err(e) = entry.publisher.cast(PublisherMsg::Publish(feed))
    {
        tracing::warn!(stream, error = %e, "publisher stopped; its listeners recover from storage");
    }
}
