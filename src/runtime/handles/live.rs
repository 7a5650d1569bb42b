//! [`LiveSubscription`]: a transient, live-only listener on a stream or `$all`.

use std::fmt;
use std::sync::Arc;

use tokio::sync::mpsc;

use crate::filter::EventFilter;
use crate::runtime::publisher::{Hub, Listener, ListenerId};
use crate::subscription::{LIVE_BUFFER, LiveMessage};

/// A transient, live-only listener (`store.subscribe(stream)`): events committed after it was
/// created, no acks, no checkpoint. It holds at most `LIVE_BUFFER` undelivered messages and
/// reports [`LiveMessage::Lagged`] instead of growing. Dropping it stops it.
pub struct LiveSubscription {
    stream: String,
    id: ListenerId,
    rx: mpsc::Receiver<LiveMessage>,
    hub: Arc<Hub>,
    /// The `$all` head when the listener was created: events at or below it were committed
    /// before, and are not the listener's (the notifier may not have routed them yet).
    after: u64,
    /// Only the events this passes are the listener's.
    filter: Option<EventFilter>,
}

impl fmt::Debug for LiveSubscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LiveSubscription").field("stream", &self.stream).finish_non_exhaustive()
    }
}

impl LiveSubscription {
    pub(crate) fn new(
        stream: String,
        id: ListenerId,
        rx: mpsc::Receiver<LiveMessage>,
        hub: Arc<Hub>,
        after: u64,
    ) -> Self {
        LiveSubscription { stream, id, rx, hub, after, filter: None }
    }

    /// The same listener, keeping only the events `filter` passes.
    pub(crate) fn filtered(mut self, filter: EventFilter) -> Self {
        self.filter = Some(filter);
        self
    }

    /// The stream listened to (or `$all`).
    pub fn stream(&self) -> &str {
        &self.stream
    }

    /// The next message; `None` once the store has shut down.
    ///
    /// Should the stream's publisher fail (a defect: it does no I/O), the listener listens to
    /// its successor and says [`LiveMessage::Lagged`] with an unknown count: events may have
    /// been missed meanwhile.
    pub async fn recv(&mut self) -> Option<LiveMessage> {
        loop {
            let Some(message) = self.rx.recv().await else {
                return self.listen_again().await;
            };
            match message {
                LiveMessage::Events(mut events) => {
                    let filter = self.filter.as_ref();
                    events.retain(|e| e.global_position > self.after && filter.is_none_or(|f| f.admits(e)));
                    if !events.is_empty() {
                        return Some(LiveMessage::Events(events));
                    }
                }
                other => return Some(other),
            }
        }
    }
}

impl LiveSubscription {
    /// The channel closed: the store shut down (`None`), or the publisher was lost and the
    /// listener moves to a new one.
    async fn listen_again(&mut self) -> Option<LiveMessage> {
        if self.hub.is_stopped() {
            return None;
        }
        let (tx, rx) = mpsc::channel(LIVE_BUFFER);
        if let Err(e) = self.hub.listen(&self.stream, self.id, Listener::Live(tx)).await {
            tracing::debug!(stream = %self.stream, error = %e, "live listener cannot listen again; it ends");
            return None;
        }
        self.rx = rx;
        Some(LiveMessage::Lagged { missed: None })
    }
}

impl Drop for LiveSubscription {
    fn drop(&mut self) {
        let (hub, stream, id) = (Arc::clone(&self.hub), std::mem::take(&mut self.stream), self.id);
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move { hub.unlisten(&stream, id).await });
        }
    }
}
