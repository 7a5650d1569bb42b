//! The per-store `Supervisor` actor: parent of every runtime actor of one store.
//!
//! - **Owns** the writer's current `ActorRef`, published through a `watch` channel so the
//!   facade always talks to the live writer.
//! - **Receives** supervision events of its children, `RestartWriter` (sent to itself after a
//!   backoff) and `Shutdown`.
//! - **Persists** nothing itself; children rebuild their state from the database.
//! - **On a child's crash**: restarts it after an exponential backoff (50 ms doubling up to
//!   5 s), within a budget of `RESTART_BUDGET` restarts per `RESTART_WINDOW`. Past the budget it
//!   gives up and stops, and the store answers `Error::Unavailable` until it is started again.
//!   ractor's default is to stop a supervisor when a child fails; this actor overrides that.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use tokio::sync::watch;

use super::writer::{BatchLimits, Writer, WriterArgs, WriterMsg};
use crate::storage::Storage;

/// Most restarts of one child within `RESTART_WINDOW` before the supervisor gives up.
pub const RESTART_BUDGET: usize = 20;
/// The window of the restart budget.
pub const RESTART_WINDOW: Duration = Duration::from_secs(60);
const FIRST_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Messages of the supervisor.
pub enum SupervisorMsg {
    /// Start a new writer (after a crash and its backoff).
    RestartWriter,
    /// Drain and stop the children, then reply.
    Shutdown(RpcReplyPort<()>),
}

/// The supervisor actor.
pub struct Supervisor;

/// Arguments of the supervisor.
pub struct SupervisorArgs {
    /// The store's storage, handed to children.
    pub storage: Storage,
    /// The writer's batch limits.
    pub limits: BatchLimits,
    /// Where the current writer is published (`None` while it is restarting).
    pub writer_slot: watch::Sender<Option<ActorRef<WriterMsg>>>,
}

/// The supervisor's state.
pub struct SupervisorState {
    args: SupervisorArgs,
    writer: Option<ActorRef<WriterMsg>>,
    restarts: VecDeque<Instant>,
    shutting_down: bool,
}

impl Actor for Supervisor {
    type Msg = SupervisorMsg;
    type State = SupervisorState;
    type Arguments = SupervisorArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<SupervisorMsg>,
        args: SupervisorArgs,
    ) -> Result<SupervisorState, ActorProcessingErr> {
        let mut state = SupervisorState { args, writer: None, restarts: VecDeque::new(), shutting_down: false };
        spawn_writer(&myself, &mut state).await?;
        Ok(state)
    }

    async fn handle(
        &self,
        myself: ActorRef<SupervisorMsg>,
        msg: SupervisorMsg,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            SupervisorMsg::RestartWriter if !state.shutting_down => spawn_writer(&myself, state).await?,
            SupervisorMsg::RestartWriter => {}
            SupervisorMsg::Shutdown(reply) => {
                state.shutting_down = true;
                state.args.writer_slot.send_replace(None);
                if let Some(writer) = state.writer.take() {
                    // Commit what callers already queued before stopping the writer.
                    let drained = ractor::call!(writer, WriterMsg::Drain);
                    if let Err(e) = drained {
                        tracing::warn!(error = %e, "writer could not drain its queue at shutdown");
                    }
                    writer.stop_and_wait(None, Some(Duration::from_secs(10))).await.ok();
                }
                let _ = reply.send(());
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<SupervisorMsg>,
        event: SupervisionEvent,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        let (cell, reason) = match event {
            SupervisionEvent::ActorFailed(cell, err) => (cell, err.to_string()),
            SupervisionEvent::ActorTerminated(cell, _, reason) => (cell, reason.unwrap_or_else(|| "stopped".into())),
            _ => return Ok(()),
        };
        let is_writer = state.writer.as_ref().is_some_and(|w| w.get_id() == cell.get_id());
        if !is_writer || state.shutting_down {
            return Ok(());
        }
        state.writer = None;
        state.args.writer_slot.send_replace(None);
        let now = Instant::now();
        state.restarts.retain(|t| now.duration_since(*t) < RESTART_WINDOW);
        state.restarts.push_back(now);
        if state.restarts.len() > RESTART_BUDGET {
            tracing::error!(reason, "writer failed {RESTART_BUDGET} times within {RESTART_WINDOW:?}; giving up");
            myself.stop(Some("writer restart budget exhausted".into()));
            return Ok(());
        }
        let exponent = u32::try_from(state.restarts.len() - 1).unwrap_or(u32::MAX).min(16);
        let backoff = FIRST_BACKOFF.saturating_mul(2_u32.saturating_pow(exponent)).min(MAX_BACKOFF);
        tracing::error!(reason, ?backoff, "writer stopped unexpectedly; restarting");
        myself.send_after(backoff, || SupervisorMsg::RestartWriter);
        Ok(())
    }
}

async fn spawn_writer(myself: &ActorRef<SupervisorMsg>, state: &mut SupervisorState) -> Result<(), ActorProcessingErr> {
    let args = WriterArgs { storage: state.args.storage.clone(), limits: state.args.limits };
    let (writer, _handle) = Actor::spawn_linked(None, Writer, args, myself.get_cell()).await?;
    tracing::debug!(writer = %writer.get_id(), "writer started");
    state.args.writer_slot.send_replace(Some(writer.clone()));
    state.writer = Some(writer);
    Ok(())
}
