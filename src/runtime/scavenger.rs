//! The `Scavenger` actor: runs a scavenge every `scavenge_interval` (it only exists when that
//! is set), so that what stream retention hides leaves the database without anyone asking.
//!
//! - **Owns** its timer and the task of the scavenge under way, if one is.
//! - **Receives** `Run` (its timer: start a scavenge unless one is under way) and `Done` (the
//!   task ended); the next run is due one interval after the last one ended, however long it
//!   took.
//! - **Persists** nothing itself: each batch of a scavenge commits on its own, and a scavenge
//!   keeps no state (see `storage/scavenge.rs`). Another node's (or a manual) scavenge running
//!   at the same time makes this run step aside until its next turn.
//! - **On a crash** (or at shutdown) the task is aborted with the state: the batch it was in
//!   rolls back and the next run, of the restarted actor, removes the rest.

use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::task::JoinSet;

use crate::error::Error;
use crate::metrics::StoreMetrics;
use crate::scavenge::ScavengeOptions;
use crate::storage::Storage;

/// Messages of the scavenger.
pub enum ScavengerMsg {
    /// Start a scavenge (its timer).
    Run,
    /// The scavenge task ended.
    Done,
}

/// The scavenger actor.
pub struct Scavenger;

/// Arguments of the scavenger.
pub struct ScavengerArgs {
    /// The store's storage.
    pub storage: Storage,
    /// Pause between the end of one scavenge and the start of the next.
    pub interval: Duration,
    /// The store's metrics (scavenge progress, events removed).
    pub metrics: StoreMetrics,
}

/// The scavenger's state.
pub struct ScavengerState {
    storage: Storage,
    interval: Duration,
    metrics: StoreMetrics,
    /// The scavenge under way; aborted with the state.
    task: JoinSet<()>,
}

impl Actor for Scavenger {
    type Msg = ScavengerMsg;
    type State = ScavengerState;
    type Arguments = ScavengerArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<ScavengerMsg>,
        args: ScavengerArgs,
    ) -> Result<ScavengerState, ActorProcessingErr> {
        myself.send_after(args.interval, || ScavengerMsg::Run);
        Ok(ScavengerState {
            storage: args.storage,
            interval: args.interval,
            metrics: args.metrics,
            task: JoinSet::new(),
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<ScavengerMsg>,
        msg: ScavengerMsg,
        state: &mut ScavengerState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            ScavengerMsg::Run if state.task.is_empty() => {
                let (storage, metrics) = (state.storage.clone(), state.metrics.clone());
                let me = myself.clone();
                state.task.spawn(async move {
                    match metrics.scavenge(&storage, ScavengeOptions::default()).await {
                        Ok(_) => {}
                        Err(Error::Unavailable(reason)) => {
                            tracing::debug!(reason, "scheduled scavenge skipped");
                        }
                        Err(e) => tracing::warn!(error = %e, "scheduled scavenge failed; the next run finishes it"),
                    }
                    let _ = me.cast(ScavengerMsg::Done);
                });
            }
            ScavengerMsg::Run => {}
            ScavengerMsg::Done => {
                while state.task.try_join_next().is_some() {}
                myself.send_after(state.interval, || ScavengerMsg::Run);
            }
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<ScavengerMsg>,
        state: &mut ScavengerState,
    ) -> Result<(), ActorProcessingErr> {
        state.task.abort_all();
        Ok(())
    }
}
