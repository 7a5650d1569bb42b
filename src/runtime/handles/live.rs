//! [`LiveSubscription`]: a transient, live-only listener on a stream or `$all`.

use std::fmt;
use std::sync::Arc;

use tokio::sync::mpsc;

use crate::runtime::publisher::{Hub, ListenerId};
use crate::subscription::LiveMessage;

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
        LiveSubscription { stream, id, rx, hub, after }
    }

    /// The stream listened to (or `$all`).
    pub fn stream(&self) -> &str {
        &self.stream
    }

    /// The next message; `None` once the store has shut down.
    pub async fn recv(&mut self) -> Option<LiveMessage> {
        loop {
            match self.rx.recv().await? {
                LiveMessage::Events(mut events) => {
                    events.retain(|e| e.global_position > self.after);
                    if !events.is_empty() {
                        return Some(LiveMessage::Events(events));
                    }
                }
                other => return Some(other),
            }
        }
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
