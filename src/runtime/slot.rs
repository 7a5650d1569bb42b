//! [`ActorSlot`]: where the current incarnation of one supervised actor is found.
//!
//! A parent that restarts a child publishes each new `ActorRef` through the sending half
//! ([`SlotSender`]) and clears it while the child is down; everyone who talks to the child holds
//! an `ActorSlot` and asks it for the live one, instead of keeping an `ActorRef` that a restart
//! makes stale. The writer, the lock keeper, the registry and every named subscription's actor
//! are reached this way.

use std::fmt;
use std::time::Duration;

use ractor::rpc::CallResult;
use ractor::{ActorCell, ActorId, ActorRef, ActorStatus, RpcReplyPort};
use tokio::sync::watch;

use crate::error::{Error, Result};

/// The parent's half of a slot: `send_replace(Some(actor))` when a child starts,
/// `send_replace(None)` when it stops. Dropping it tells waiting callers the parent is gone.
pub type SlotSender<M> = watch::Sender<Option<ActorRef<M>>>;

/// The current incarnation of an actor with messages `M` (`None` while it restarts). Cheap to
/// clone.
pub struct ActorSlot<M> {
    rx: watch::Receiver<Option<ActorRef<M>>>,
    /// What the actor is, for errors ("the writer").
    what: &'static str,
}

impl<M> Clone for ActorSlot<M> {
    fn clone(&self) -> Self {
        ActorSlot { rx: self.rx.clone(), what: self.what }
    }
}

impl<M> fmt::Debug for ActorSlot<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ActorSlot").field("what", &self.what).finish_non_exhaustive()
    }
}

impl<M: ractor::Message> ActorSlot<M> {
    /// An empty slot for the actor named `what`, and its parent's half.
    pub fn channel(what: &'static str) -> (SlotSender<M>, ActorSlot<M>) {
        let (tx, rx) = watch::channel(None);
        (tx, ActorSlot { rx, what })
    }

    /// Another reader of the slot `sender` publishes to.
    pub fn of(sender: &SlotSender<M>, what: &'static str) -> ActorSlot<M> {
        ActorSlot { rx: sender.subscribe(), what }
    }

    /// The actor now, if one runs.
    pub fn current(&self) -> Option<ActorRef<M>> {
        self.rx.borrow().clone()
    }

    /// The actor now, or [`Error::Unavailable`] while it restarts.
    pub fn get(&self) -> Result<ActorRef<M>> {
        self.current().ok_or_else(|| Error::Unavailable(format!("the {} is restarting", self.what)))
    }

    /// The actor's cell now, if one runs (for tests that kill it).
    pub fn cell(&self) -> Option<ActorCell> {
        self.rx.borrow().as_ref().map(ActorRef::get_cell)
    }

    /// Casts `msg` to the actor now, if one runs; a message for a restarting actor is dropped
    /// (its successor rebuilds from the database).
    pub fn tell(&self, msg: M) {
        if let Some(actor) = self.current() {
            let _ = actor.cast(msg);
        }
    }

    /// Asks the actor now and waits for its answer; [`Error::Unavailable`] if none runs or it
    /// stops before answering.
    pub async fn ask<T: Send + 'static>(&self, request: impl FnOnce(RpcReplyPort<T>) -> M) -> Result<T> {
        match self.get()?.call(request, None).await {
            Ok(CallResult::Success(answer)) => Ok(answer),
            _ => Err(Error::Unavailable(format!("the {} stopped before answering", self.what))),
        }
    }

    /// The running actor, waiting up to `timeout` while its parent restarts it. `dead` is an
    /// incarnation the caller saw fail: it is not handed out again, so callers wait for its
    /// successor instead of spinning on it.
    pub async fn wait(&self, dead: Option<ActorId>, timeout: Duration) -> Result<ActorRef<M>> {
        let usable = |actor: &Option<ActorRef<M>>| {
            actor.as_ref().is_some_and(|a| {
                Some(a.get_id()) != dead
                    && matches!(a.get_status(), ActorStatus::Running | ActorStatus::Starting | ActorStatus::Upgrading)
            })
        };
        let mut rx = self.rx.clone();
        match tokio::time::timeout(timeout, rx.wait_for(usable)).await {
            Ok(Ok(actor)) => {
                actor.clone().ok_or_else(|| Error::Unavailable(format!("the {} is restarting", self.what)))
            }
            Ok(Err(_)) => Err(Error::Unavailable("the store's runtime has stopped".into())),
            Err(_) => Err(Error::Unavailable(format!(
                "no running {} within {timeout:?}: the store's runtime is restarting or has given up",
                self.what
            ))),
        }
    }
}
