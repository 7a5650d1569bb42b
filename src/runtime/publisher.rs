//! `Publisher` actors: the live fan-out, one per listened stream and one for `$all`, and the
//! [`Hub`] that spawns them on demand (linked to the store's supervisor) and stops them when
//! their last listener leaves.
//!
//! - **Owns** its listeners, and is the only one who does: subscription actors (which bound
//!   their own queues) and live-only listeners (bounded channels: a full one loses events and
//!   is told how many, never blocking the publisher or growing memory). The hub only knows
//!   which publisher serves which stream.
//! - **Receives** `Add`/`Remove` of listeners (`Remove` answers how many are left) and
//!   `Publish` of what the notifier read.
//! - **Persists** nothing: a live feed is a wake-up with data attached, never the only copy. A
//!   listener that misses something re-reads it from storage.
//! - **On a crash**: it does no I/O and nothing in it should fail; if it stops anyway, its
//!   listeners go with it. The hub forgets it (told by the supervisor, or on finding it dead)
//!   and has the registry tell the subscriptions of its stream, which listen again and re-read
//!   storage for what they may have missed; a live-only listener sees its channel close and
//!   listens again itself, reporting [`LiveMessage::Lagged`] with an unknown count. The next
//!   `listen` for the stream starts a new publisher.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use ractor::rpc::CallResult;
use ractor::{Actor, ActorCell, ActorId, ActorProcessingErr, ActorRef, ActorStatus, RpcReplyPort};
use tokio::sync::{Mutex, mpsc};

use super::registry::RegistryMsg;
use super::slot::ActorSlot;
use super::subscription::SubscriptionMsg;
use crate::error::{Error, Result};
use crate::event::{ALL, RecordedEvent};
use crate::index::{Indexed, category_of};
use crate::storage::IndexedEvent;
use crate::storage::retention::Window;
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
    /// Stop handing events to this listener; answers how many listeners are left.
    Remove(ListenerId, RpcReplyPort<usize>),
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
            PublisherMsg::Remove(id, reply) => {
                state.subscriptions.remove(&id);
                state.live.remove(&id);
                let _ = reply.send(state.subscriptions.len() + state.live.len());
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

/// The store's publishers by stream (`$all` included), shared by the notifier (which routes
/// what it reads) and the listeners (which come and go). It outlives notifier restarts.
pub struct Hub {
    publishers: Mutex<HashMap<String, ActorRef<PublisherMsg>>>,
    /// How many publishers run (the map's size, readable without its lock).
    running: AtomicUsize,
    next_id: AtomicU64,
    /// The store's supervisor, parent of every publisher (set when it starts).
    parent: OnceLock<ActorCell>,
    /// Told when a publisher is lost, so the subscriptions of its stream listen again.
    registry: ActorSlot<RegistryMsg>,
    stopped: AtomicBool,
}

impl Hub {
    /// A hub whose lost publishers are reported to `registry`.
    pub fn new(registry: ActorSlot<RegistryMsg>) -> Self {
        Hub {
            publishers: Mutex::new(HashMap::new()),
            running: AtomicUsize::new(0),
            next_id: AtomicU64::new(0),
            parent: OnceLock::new(),
            registry,
            stopped: AtomicBool::new(false),
        }
    }

    /// Makes `supervisor` the parent of the publishers spawned from now on.
    pub fn adopt(&self, supervisor: ActorCell) {
        let _ = self.parent.set(supervisor);
    }

    /// A fresh listener id.
    pub fn next_id(&self) -> ListenerId {
        self.next_id.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Whether anyone listens (if nobody does, the notifier reads nothing).
    pub fn has_listeners(&self) -> bool {
        self.running.load(Ordering::SeqCst) > 0
    }

    /// Whether the store shut its publishers down for good.
    pub fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::SeqCst)
    }

    /// Adds a listener to `stream`'s publisher, spawning it if needed.
    pub async fn listen(&self, stream: &str, id: ListenerId, listener: Listener) -> Result<()> {
        if self.is_stopped() {
            return Err(Error::Unavailable("the store has been shut down".into()));
        }
        let mut publishers = self.publishers.lock().await;
        // A publisher just spawned is still `Starting`; only a stopped one is replaced.
        let dead = publishers
            .get(stream)
            .is_some_and(|p| matches!(p.get_status(), ActorStatus::Stopping | ActorStatus::Stopped));
        if dead {
            publishers.remove(stream);
            self.lost(stream);
        }
        if !publishers.contains_key(stream) {
            let parent =
                self.parent.get().cloned().ok_or_else(|| Error::Unavailable("the runtime is starting".into()))?;
            let (publisher, _) = Actor::spawn_linked(None, Publisher, (), parent)
                .await
                .map_err(|e| Error::Unavailable(format!("cannot start a publisher for `{stream}`: {e}")))?;
            publishers.insert(stream.to_string(), publisher);
        }
        self.running.store(publishers.len(), Ordering::SeqCst);
        let publisher = publishers.get(stream).ok_or_else(|| Error::Unavailable("publisher vanished".into()))?;
        publisher
            .cast(PublisherMsg::Add(id, listener))
            .map_err(|e| Error::Unavailable(format!("publisher for `{stream}` stopped: {e}")))
    }

    /// Removes a listener (a no-op for one already removed); a publisher left without listeners
    /// stops.
    pub async fn unlisten(&self, stream: &str, id: ListenerId) {
        let mut publishers = self.publishers.lock().await;
        let Some(publisher) = publishers.get(stream) else { return };
        let left = match publisher.call(|reply| PublisherMsg::Remove(id, reply), None).await {
            Ok(CallResult::Success(left)) => left,
            _ => {
                // It died: the others that listened to it must hear of it.
                publishers.remove(stream);
                self.lost(stream);
                0
            }
        };
        if left == 0
            && let Some(publisher) = publishers.remove(stream)
        {
            publisher.stop(None);
        }
        self.running.store(publishers.len(), Ordering::SeqCst);
    }

    /// Forgets the publisher `actor` if it still serves a stream (it stopped without being
    /// asked: its supervisor says so), and has the subscriptions of that stream listen again.
    pub async fn forget(&self, actor: ActorId) {
        let mut publishers = self.publishers.lock().await;
        let Some(stream) = publishers.iter().find(|(_, p)| p.get_id() == actor).map(|(s, _)| s.clone()) else {
            return;
        };
        publishers.remove(&stream);
        self.running.store(publishers.len(), Ordering::SeqCst);
        tracing::error!(stream, "publisher stopped unexpectedly; its listeners listen again");
        self.lost(&stream);
    }

    fn lost(&self, stream: &str) {
        self.registry.tell(RegistryMsg::PublisherLost(stream.to_string()));
    }

    /// The streams among `streams` that have a publisher (`$all` left out), each once.
    pub async fn listened<'a>(&self, streams: impl Iterator<Item = &'a str>) -> Vec<String> {
        let publishers = self.publishers.lock().await;
        let listened: HashSet<&str> = streams.filter(|s| *s != ALL && publishers.contains_key(*s)).collect();
        listened.into_iter().map(str::to_string).collect()
    }

    /// Every stream that has a publisher.
    pub async fn streams(&self) -> HashSet<String> {
        self.publishers.lock().await.keys().cloned().collect()
    }

    /// Routes a range the notifier read: all of it to `$all`'s publisher; each stream's events
    /// (numbered by stream version) to that stream's publisher, leaving out those its retention
    /// (its window in `windows`, if it has one) hides; and each event to the publishers of its
    /// category's and its type's index streams (numbered in them), when they have listeners.
    pub async fn publish(&self, after: u64, to: u64, events: Vec<IndexedEvent>, windows: &HashMap<String, Window>) {
        let publishers = self.publishers.lock().await;
        let indexes_listened = publishers.keys().any(|stream| Indexed::of(stream).is_some());
        let mut by_stream: HashMap<String, Vec<RecordedEvent>> = HashMap::new();
        let mut route = |stream: &str, event: &RecordedEvent, number: u64| {
            if publishers.contains_key(stream) {
                let mut own = event.clone();
                own.event_number = number;
                match by_stream.get_mut(stream) {
                    Some(routed) => routed.push(own),
                    None => drop(by_stream.insert(stream.to_string(), vec![own])),
                }
            }
        };
        for IndexedEvent { event, category_number, type_number } in &events {
            let hidden = windows
                .get(&event.stream_uuid)
                .is_some_and(|w| !w.shows(i64::try_from(event.stream_version).unwrap_or(i64::MAX), event.created_at));
            if !hidden {
                route(&event.stream_uuid, event, event.stream_version);
            }
            if indexes_listened {
                if let (Some(category), Some(number)) = (category_of(&event.stream_uuid), category_number) {
                    route(&Indexed::Category(category).stream(), event, *number);
                }
                if let Some(number) = type_number {
                    route(&Indexed::EventType(&event.event_type).stream(), event, *number);
                }
            }
        }
        for (stream, events) in by_stream {
            send(&publishers, &stream, LiveFeed::Events { after, to, events: events.into() });
        }
        let all: Vec<RecordedEvent> = events.into_iter().map(|e| e.event).collect();
        send(&publishers, ALL, LiveFeed::Events { after, to, events: all.into() });
    }

    /// Tells listeners that events may have been missed: every publisher's, or only those of
    /// streams (after a batch of links, which never enter `$all`).
    pub async fn publish_missed(&self, streams_only: bool) {
        let publishers = self.publishers.lock().await;
        for (stream, publisher) in publishers.iter() {
            if !(streams_only && stream == ALL) {
                let _ = publisher.cast(PublisherMsg::Publish(LiveFeed::Missed));
            }
        }
    }

    /// The publisher of `stream` (for tests that kill it).
    pub async fn publisher_cell(&self, stream: &str) -> Option<ActorCell> {
        self.publishers.lock().await.get(stream).map(ActorRef::get_cell)
    }

    /// Stops every publisher for good (store shutdown); live listeners see their channel close.
    pub async fn stop_all(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        let mut publishers = self.publishers.lock().await;
        for (_, publisher) in publishers.drain() {
            publisher.stop(None);
        }
        self.running.store(0, Ordering::SeqCst);
    }
}

fn send(publishers: &HashMap<String, ActorRef<PublisherMsg>>, stream: &str, feed: LiveFeed) {
    if let Some(publisher) = publishers.get(stream)
        && let Err(e) = publisher.cast(PublisherMsg::Publish(feed))
    {
        tracing::warn!(stream, error = %e, "publisher stopped; its listeners recover from storage");
    }
}
