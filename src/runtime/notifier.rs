//! The `Notifier` actor: turns the writer's announcement of a commit into ONE read of the new
//! `$all` range per node, routed in memory to the publishers. On PostgreSQL the announcement is
//! a NOTIFY heard on a LISTEN connection (from any node); on SQLite the writer of this process
//! hands it over in memory. The storage's `NotificationListener` hides which.
//!
//! - **Owns** the position it has read `$all` up to (`cursor`) (each event read with its
//!   numbers in the category and event-type indexes, for the listeners of `$ce-…` and
//!   `$et-…` streams), a task that LISTENs on the
//!   store's channel and forwards each wake-up, and the retention of the streams it routes
//!   events to (read when first needed, forgotten when a wake-up says it changed): a stream's
//!   listeners only get the events its retention leaves readable.
//! - **Receives** `Wake` (a notification), `Reconnected` (the LISTEN connection is back after
//!   failing: the database is reachable again, which the registry passes on so subscriptions
//!   waiting out a backoff resume at once) and `Poll` (every `notification_poll_interval`). A
//!   replay request for parked events, a subscription's changed settings and a stream's changed
//!   retention are passed to the subscription registry.
//! - **Persists** nothing. A notification is only a wake-up: on every wake it reads from its
//!   own cursor, so events committed while the LISTEN connection was down are read when it is
//!   back (or at the next poll), without waiting for another append. When nobody listens it
//!   reads nothing and only follows the positions the notifications announce.
//! - **On a crash**: the supervisor starts a new one, which starts at the current head and tells
//!   every listener that events may have been missed, so subscriptions re-read from storage.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::task::JoinSet;

use super::publisher::Hub;
use super::registry::RegistryMsg;
use super::slot::ActorSlot;
use crate::error::Result;
use crate::metrics::StoreMetrics;
use crate::storage::retention::{Retention, Window};
use crate::storage::{IndexedEvent, Storage, Wake};

/// Most events one read takes; a wider range is read in pages.
const PAGE: u64 = 1_000;
/// Past this many events behind, the notifier skips ahead and lets subscriptions catch up from
/// storage themselves (a node that fell far behind should not replay the backlog live).
const MAX_BEHIND: u64 = 10_000;
/// Retentions remembered before those of streams nobody listens to any more are forgotten.
const MAX_RETENTIONS: usize = 4_096;

/// Messages of the notifier.
pub enum NotifierMsg {
    /// What the LISTEN task heard.
    Wake(Wake),
    /// The LISTEN task is listening again after its connection failed: the database is back.
    Reconnected,
    /// The poll interval elapsed.
    Poll,
}

/// Longest pause between attempts to LISTEN again after a failure: the store notices a database
/// that is back within this (or the retry interval, if shorter), and tells the subscriptions.
const RELISTEN: Duration = Duration::from_millis(250);

/// The notifier actor.
pub struct Notifier;

/// Arguments of the notifier.
pub struct NotifierArgs {
    /// The store's storage.
    pub storage: Storage,
    /// Where it routes what it reads.
    pub hub: Arc<Hub>,
    /// How often it reads without a notification.
    pub poll_interval: Duration,
    /// How long it waits before re-opening a failed LISTEN connection.
    pub retry_interval: Duration,
    /// Where replay requests go.
    pub registry: ActorSlot<RegistryMsg>,
    /// The store's metrics (head position, lag).
    pub metrics: StoreMetrics,
}

/// The notifier's state.
pub struct NotifierState {
    storage: Storage,
    hub: Arc<Hub>,
    registry: ActorSlot<RegistryMsg>,
    /// Every position up to this one has been routed (or skipped with a `Missed`); `None` until
    /// the head could be read.
    cursor: Option<u64>,
    /// The retention of streams it routed events to, as last read.
    retentions: HashMap<String, Retention>,
    /// The LISTEN task; aborted with the state.
    tasks: JoinSet<()>,
    metrics: StoreMetrics,
}

impl Actor for Notifier {
    type Msg = NotifierMsg;
    type State = NotifierState;
    type Arguments = NotifierArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<NotifierMsg>,
        args: NotifierArgs,
    ) -> Result<NotifierState, ActorProcessingErr> {
        let mut tasks = JoinSet::new();
        tasks.spawn(listen(args.storage.clone(), myself.clone(), args.retry_interval));
        myself.send_interval(args.poll_interval, || NotifierMsg::Poll);
        let mut state = NotifierState {
            storage: args.storage,
            hub: args.hub,
            registry: args.registry,
            cursor: None,
            retentions: HashMap::new(),
            tasks,
            metrics: args.metrics,
        };
        // A predecessor may have died between reading and routing: listeners re-check storage.
        if state.start_at_head().await {
            state.hub.publish_missed(false).await;
        }
        Ok(state)
    }

    async fn handle(
        &self,
        _myself: ActorRef<NotifierMsg>,
        msg: NotifierMsg,
        state: &mut NotifierState,
    ) -> Result<(), ActorProcessingErr> {
        let outcome = match msg {
            NotifierMsg::Wake(Wake::Committed { last, links }) => {
                if links {
                    state.hub.publish_missed(true).await;
                }
                state.advance(Some(last)).await
            }
            NotifierMsg::Wake(Wake::Resync) => {
                // Wake-ups may have been missed, retention changes among them.
                state.retentions.clear();
                state.advance(None).await
            }
            NotifierMsg::Reconnected => {
                tracing::info!("LISTEN connection re-established; resuming subscriptions");
                state.retentions.clear();
                state.registry.tell(RegistryMsg::DatabaseBack);
                state.advance(None).await
            }
            NotifierMsg::Wake(Wake::Replay(id)) => {
                state.registry.tell(RegistryMsg::ReplayRequested(id));
                Ok(())
            }
            NotifierMsg::Wake(Wake::Settings(id)) => {
                state.registry.tell(RegistryMsg::SettingsChanged(id));
                Ok(())
            }
            NotifierMsg::Wake(Wake::Retention(stream)) => {
                state.retentions.remove(&stream);
                state.registry.tell(RegistryMsg::RetentionChanged(stream));
                Ok(())
            }
            NotifierMsg::Poll if state.hub.has_listeners() => state.advance(None).await,
            NotifierMsg::Poll => Ok(()),
        };
        if let Err(e) = outcome {
            // The next wake or poll reads from the same cursor: nothing is lost.
            tracing::warn!(error = %e, "notifier could not read new events; retrying at the next wake");
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<NotifierMsg>,
        state: &mut NotifierState,
    ) -> Result<(), ActorProcessingErr> {
        state.tasks.abort_all();
        Ok(())
    }
}

impl NotifierState {
    /// Sets the cursor to the current head; whether it could.
    async fn start_at_head(&mut self) -> bool {
        match self.storage.head(crate::event::ALL).await {
            Ok(head) => {
                self.cursor = Some(head);
                self.routed(head, head);
                true
            }
            Err(e) => {
                tracing::debug!(error = %e, "notifier cannot read the head yet");
                false
            }
        }
    }

    /// Reads and routes everything committed after the cursor, up to `announced` (or the
    /// current head when the wake-up did not say).
    async fn advance(&mut self, announced: Option<u64>) -> Result<()> {
        if !self.hub.has_listeners() {
            // Nobody listens: read no events, just follow the head, so that a listener that
            // joins gets everything committed after it joined.
            match (announced, self.cursor) {
                (Some(last), Some(cursor)) => {
                    self.cursor = Some(cursor.max(last));
                    self.routed(cursor.max(last), cursor.max(last));
                }
                (_, previous) => {
                    self.start_at_head().await;
                    // A listener that joined while the head was read may have been promised
                    // events up to it: keep reading from where routing stood (listeners drop
                    // what came before them).
                    if previous.is_some() && self.hub.has_listeners() {
                        self.cursor = previous;
                    }
                }
            }
            return Ok(());
        }
        let Some(mut cursor) = self.cursor else {
            if self.start_at_head().await {
                self.hub.publish_missed(false).await;
            }
            return Ok(());
        };
        let target = match announced {
            Some(last) => last,
            None => self.storage.head(crate::event::ALL).await?,
        };
        if target <= cursor {
            return Ok(());
        }
        self.routed(cursor, target);
        if target - cursor > MAX_BEHIND {
            self.cursor = Some(target);
            self.routed(target, target);
            self.hub.publish_missed(false).await;
            return Ok(());
        }
        while cursor < target {
            let count = (target - cursor).min(PAGE);
            let events = self.storage.read_all_indexed(cursor + 1, count).await?;
            // A short page means every position up to `target` was read (the rest are holes
            // left by hard deletes): positions up to an announced head are all committed.
            let to = if (events.len() as u64) < count {
                target
            } else {
                events.last().map_or(target, |e| e.event.event_number)
            };
            let windows = self.windows(&events).await?;
            self.hub.publish(cursor, to, events, &windows).await;
            cursor = to;
            self.cursor = Some(cursor);
            self.routed(cursor, target);
        }
        Ok(())
    }

    /// Records that positions up to `cursor` are routed and the head is at least `head`.
    fn routed(&self, cursor: u64, head: u64) {
        self.metrics.routed(cursor, head);
    }
}

impl NotifierState {
    /// The readable window of each listened stream among `events` whose retention hides
    /// anything, reading the retentions it does not know yet. A stream's window is taken at
    /// its newest version in `events` (later appends only hide more, and reach its listeners
    /// as a gap, which they re-read from storage).
    async fn windows(&mut self, events: &[IndexedEvent]) -> Result<HashMap<String, Window>> {
        let listened = self.hub.listened(events.iter().map(|e| e.event.stream_uuid.as_str())).await;
        let unknown: Vec<&str> =
            listened.iter().map(String::as_str).filter(|s| !self.retentions.contains_key(*s)).collect();
        if !unknown.is_empty() {
            if self.retentions.len() + unknown.len() > MAX_RETENTIONS {
                let streams = self.hub.streams().await;
                self.retentions.retain(|stream, _| streams.contains(stream));
            }
            let rows = self.storage.retentions(&unknown).await?;
            for stream in unknown {
                self.retentions.insert(stream.to_string(), Retention::default());
            }
            for row in rows {
                self.retentions.insert(row.stream_uuid, row.retention);
            }
        }
        let now = Utc::now();
        let mut windows = HashMap::new();
        for stream in listened {
            let Some(retention) = self.retentions.get(&stream).filter(|r| r.hides_anything()) else { continue };
            let newest = events.iter().filter(|e| e.event.stream_uuid == stream).map(|e| e.event.stream_version).max();
            let version = i64::try_from(newest.unwrap_or_default()).unwrap_or(i64::MAX);
            windows.insert(stream, retention.window(version, now));
        }
        Ok(windows)
    }
}

/// The LISTEN loop: forwards every wake-up, re-opening the connection when it fails, and says
/// when it is back.
async fn listen(storage: Storage, notifier: ActorRef<NotifierMsg>, retry_interval: Duration) {
    let mut failed = false;
    loop {
        match storage.listen().await {
            Ok(mut listener) => {
                // Anything committed before LISTEN took effect is read on this wake.
                let wake = if failed { NotifierMsg::Reconnected } else { NotifierMsg::Wake(Wake::Resync) };
                if notifier.cast(wake).is_err() {
                    return;
                }
                loop {
                    match listener.recv().await {
                        Ok(wake) => {
                            if notifier.cast(NotifierMsg::Wake(wake)).is_err() {
                                return;
                            }
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "LISTEN connection failed; re-opening it");
                            break;
                        }
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot LISTEN for new events; retrying"),
        }
        failed = true;
        tokio::time::sleep(retry_interval.min(RELISTEN)).await;
    }
}
