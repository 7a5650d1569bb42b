//! What a subscription actor sends its subscribers: [`Delivery`]s, through each one's [`Inbox`].

use std::fmt;
use std::sync::Arc;

use ractor::ActorRef;
use tokio::sync::mpsc;

use crate::subscription::SubscriptionMessage;

/// A message on a subscriber's channel, tagged with the incarnation that sent it so acks of a
/// previous one can be ignored, and with the subscriber's epoch so deliveries taken back by a
/// pause can be told from the ones after it.
#[derive(Debug)]
pub struct Delivery {
    /// The ownership that sent it.
    pub incarnation: u64,
    /// The subscriber's pause count within the incarnation when it was sent.
    pub epoch: u64,
    /// Retry counts of the delivered events that were retried before.
    pub retries: Vec<(u64, u32)>,
    /// The message.
    pub message: SubscriptionMessage,
}

impl Delivery {
    /// A message outside any incarnation (the registry's last word to a subscriber).
    pub fn last_word(message: SubscriptionMessage) -> Self {
        Delivery { incarnation: 0, epoch: 0, retries: Vec::new(), message }
    }
}

/// A connected subscriber, as the actor sees it.
#[derive(Debug, Clone)]
pub struct Consumer {
    /// Its id within the registry.
    pub id: u64,
    /// Where its deliveries go (bounded in practice by `buffer_size` in flight).
    pub inbox: Inbox,
    /// Its own most events in flight, if it asked for fewer than the subscription's.
    pub buffer_size: Option<usize>,
}

/// Where a subscriber's deliveries go: the channel of a [`Subscription`] the application reads,
/// or straight into a subscriber actor's mailbox (no task in between copying from one to the
/// other). Either way the subscriber hears when the last holder of its inbox (the registry's
/// entry and the subscription actor) lets go: the channel ends, or the actor gets its `closed`
/// message.
///
/// [`Subscription`]: crate::Subscription
#[derive(Clone)]
pub struct Inbox(Arc<dyn Sink>);

trait Sink: Send + Sync {
    fn deliver(&self, delivery: Delivery) -> bool;
}

impl Sink for mpsc::UnboundedSender<Delivery> {
    fn deliver(&self, delivery: Delivery) -> bool {
        self.send(delivery).is_ok()
    }
}

struct Mailbox<M: ractor::Message> {
    actor: ActorRef<M>,
    wrap: fn(Delivery) -> M,
    closed: fn() -> M,
}

impl<M: ractor::Message> Sink for Mailbox<M> {
    fn deliver(&self, delivery: Delivery) -> bool {
        self.actor.cast((self.wrap)(delivery)).is_ok()
    }
}

impl<M: ractor::Message> Drop for Mailbox<M> {
    fn drop(&mut self) {
        // An actor that is gone needs no news.
        let _ = self.actor.cast((self.closed)());
    }
}

impl fmt::Debug for Inbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Inbox")
    }
}

impl Inbox {
    /// An inbox that is a channel, and its receiving end.
    pub fn channel() -> (Inbox, mpsc::UnboundedReceiver<Delivery>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Inbox(Arc::new(tx)), rx)
    }

    /// An inbox that is an actor's mailbox: `wrap` makes the actor's message of a delivery, and
    /// `closed` the message it gets once nobody can deliver any more.
    pub fn actor<M: ractor::Message>(actor: ActorRef<M>, wrap: fn(Delivery) -> M, closed: fn() -> M) -> Inbox {
        Inbox(Arc::new(Mailbox { actor, wrap, closed }))
    }

    /// Hands over a delivery; `false` once the subscriber is gone.
    pub fn deliver(&self, delivery: Delivery) -> bool {
        self.0.deliver(delivery)
    }
}
