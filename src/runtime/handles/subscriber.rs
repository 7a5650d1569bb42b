//! [`SubscriberHandle`]: the application's control of a running subscriber actor
//! (`runtime/subscriber.rs`): pause, resume, stop.

use std::fmt;

use ractor::ActorRef;
use ractor::rpc::CallResult;

use crate::error::{Error, Result};
use crate::runtime::subscriber::RunnerMsg;

/// How long [`SubscriberHandle::stop`] waits for the actor to end.
const STOP_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Controls a running [`Subscriber`](crate::Subscriber) actor. Cheap to clone; dropping it does not stop the actor
/// (the store's shutdown does).
#[derive(Clone)]
pub struct SubscriberHandle {
    stream: String,
    name: String,
    actor: ActorRef<RunnerMsg>,
}

impl fmt::Debug for SubscriberHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SubscriberHandle").field("stream", &self.stream).field("name", &self.name).finish()
    }
}

impl SubscriberHandle {
    pub(crate) fn new(stream: String, name: String, actor: ActorRef<RunnerMsg>) -> Self {
        SubscriberHandle { stream, name, actor }
    }

    /// The subscribed stream (or `$all`).
    pub fn stream(&self) -> &str {
        &self.stream
    }

    /// The subscription's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Stops delivery: the events not yet handled go back to the subscription (its other
    /// subscribers, or this one on [`resume`](Self::resume)). This node keeps ownership of the
    /// subscription, and the checkpoint stays where the acks left it; appends go on.
    pub async fn pause(&self) -> Result<()> {
        self.ask(RunnerMsg::Pause).await
    }

    /// Resumes delivery after [`pause`](Self::pause): the backlog comes in order.
    pub async fn resume(&self) -> Result<()> {
        self.ask(RunnerMsg::Resume).await
    }

    /// Stops the actor and disconnects it from the subscription (the last subscriber to leave
    /// stops the subscription on this node, writing its checkpoint). Stopping a stopped actor is
    /// not an error.
    pub async fn stop(&self) -> Result<()> {
        let outcome = match self.actor.call(RunnerMsg::Stop, None).await {
            Ok(CallResult::Success(result)) => result,
            // Already stopped.
            _ => Ok(()),
        };
        // The actor replies before it ends: return once it has.
        if self.actor.wait(Some(STOP_WAIT)).await.is_err() {
            return Err(Error::Unavailable(format!(
                "subscriber {}/{} did not stop within {STOP_WAIT:?}",
                self.stream, self.name
            )));
        }
        outcome
    }

    /// Whether the actor still runs (it stops on [`stop`](Self::stop), when the store shuts
    /// down, or when the subscription is deleted or unsubscribed).
    pub fn is_running(&self) -> bool {
        matches!(self.actor.get_status(), ractor::ActorStatus::Running | ractor::ActorStatus::Starting)
    }

    async fn ask(&self, request: fn(ractor::RpcReplyPort<Result<()>>) -> RunnerMsg) -> Result<()> {
        match self.actor.call(request, None).await {
            Ok(CallResult::Success(result)) => result,
            _ => Err(Error::Unavailable(format!("subscriber {}/{} has stopped", self.stream, self.name))),
        }
    }
}
