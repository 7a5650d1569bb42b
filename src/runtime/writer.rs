//! The `Writer` actor: owns appends and links (group commit).
//!
//! - **Owns** the queue of write requests that arrived since the last commit.
//! - **Receives** `Write` (one request, answered through its reply port), `Flush` (sent to
//!   itself), `Drain` (on shutdown: commit everything queued, then answer).
//! - **Persists before acknowledging**: every reply is sent after the batch's transaction has
//!   committed (or has been rolled back, for rejected requests).
//! - **On a crash** (a panic, a kill): the queued reply ports are dropped, so every caller whose
//!   request was queued or in flight sees its reply channel close and resolves the outcome from
//!   the database (see `EventStore::append_to_stream`); the supervisor starts a new writer.
//!
//! Group commit falls out of the mailbox: a `Write` only queues the request and, if none is
//! pending, sends `Flush` to itself. Every `Write` that arrives while a batch is being committed
//! sits in the mailbox ahead of the next `Flush`, so the next transaction takes them all.

use std::collections::VecDeque;
use std::sync::Arc;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use sqlx::{Connection, PgConnection};

use crate::error::Result;
use crate::event::AppendResult;
use crate::storage::{Storage, WriteRequest};

/// Most requests/events/bytes one transaction takes.
#[derive(Debug, Clone, Copy)]
pub struct BatchLimits {
    /// Most requests.
    pub appends: usize,
    /// Most events (a larger single request still goes alone).
    pub events: usize,
    /// Most payload bytes (a larger single request still goes alone).
    pub bytes: usize,
}

/// Messages of the writer.
pub enum WriterMsg {
    /// Commit this request with the next batch and reply with its outcome.
    Write(Arc<WriteRequest>, RpcReplyPort<Result<AppendResult>>),
    /// Commit what is queued (sent by the writer to itself).
    Flush,
    /// Commit everything queued, then reply (used by shutdown).
    Drain(RpcReplyPort<()>),
}

/// The writer actor.
pub struct Writer;

/// Arguments of the writer.
pub struct WriterArgs {
    /// The storage it commits to.
    pub storage: Storage,
    /// Batch limits.
    pub limits: BatchLimits,
}

/// The writer's state.
pub struct WriterState {
    storage: Storage,
    /// The writer's own connection (not from the pool: no acquire/release round trips);
    /// `None` after a failure, reopened by the next batch.
    connection: Option<PgConnection>,
    limits: BatchLimits,
    queue: VecDeque<(Arc<WriteRequest>, RpcReplyPort<Result<AppendResult>>)>,
    flush_scheduled: bool,
}

impl Actor for Writer {
    type Msg = WriterMsg;
    type State = WriterState;
    type Arguments = WriterArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<WriterMsg>,
        args: WriterArgs,
    ) -> Result<WriterState, ActorProcessingErr> {
        Ok(WriterState {
            storage: args.storage,
            connection: None,
            limits: args.limits,
            queue: VecDeque::new(),
            flush_scheduled: false,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<WriterMsg>,
        msg: WriterMsg,
        state: &mut WriterState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            WriterMsg::Write(request, reply) => {
                state.queue.push_back((request, reply));
                if !state.flush_scheduled {
                    state.flush_scheduled = true;
                    myself.cast(WriterMsg::Flush)?;
                }
            }
            WriterMsg::Flush => {
                state.flush_scheduled = false;
                commit_next_batch(state).await;
                if !state.queue.is_empty() {
                    state.flush_scheduled = true;
                    myself.cast(WriterMsg::Flush)?;
                }
            }
            WriterMsg::Drain(reply) => {
                while !state.queue.is_empty() {
                    commit_next_batch(state).await;
                }
                // The caller may have given up waiting; nothing is left to tell it.
                let _ = reply.send(());
            }
        }
        Ok(())
    }

    async fn post_stop(&self, _myself: ActorRef<WriterMsg>, state: &mut WriterState) -> Result<(), ActorProcessingErr> {
        if let Some(conn) = state.connection.take() {
            conn.close().await.ok();
        }
        Ok(())
    }
}

/// Takes the next batch off the queue within the limits, commits it, replies to each caller.
async fn commit_next_batch(state: &mut WriterState) {
    let mut batch = Vec::new();
    let (mut events, mut bytes) = (0, 0);
    while let Some((request, _)) = state.queue.front() {
        let (n, b) = (request.op.len(), request.op.payload_bytes());
        let fits =
            batch.len() < state.limits.appends && events + n <= state.limits.events && bytes + b <= state.limits.bytes;
        if !batch.is_empty() && !fits {
            break;
        }
        events += n;
        bytes += b;
        batch.extend(state.queue.pop_front());
    }
    if batch.is_empty() {
        return;
    }
    let requests: Vec<Arc<WriteRequest>> = batch.iter().map(|(r, _)| Arc::clone(r)).collect();
    match write(state, &requests).await {
        Ok(outcomes) => {
            for ((_, reply), outcome) in batch.into_iter().zip(outcomes) {
                // A caller that stopped waiting (its task was cancelled) needs no answer.
                let _ = reply.send(outcome);
            }
        }
        Err(err) => {
            tracing::warn!(error = %err, requests = batch.len(), "batch transaction failed");
            let alone = batch.len() == 1;
            let mut err = Some(err);
            for (request, reply) in batch {
                let outcome = settle_failed(state, &request, alone, &mut err).await;
                let _ = reply.send(outcome);
            }
        }
    }
}

/// The outcome of one request whose batch transaction failed.
///
/// The failure may have hit after COMMIT reached the server (a connection lost while waiting
/// for its answer), so the database is asked first. A request that did not commit is retried
/// alone when it shared the batch with others (one request may have poisoned the transaction
/// with an error the checks did not foresee), or gets the batch's error when it was alone.
async fn settle_failed(
    state: &mut WriterState,
    request: &Arc<WriteRequest>,
    alone: bool,
    batch_error: &mut Option<crate::Error>,
) -> Result<AppendResult> {
    match state.storage.resolve_in_doubt(request).await {
        Ok(Some(committed)) => Ok(committed),
        Ok(None) if !alone => write(state, std::slice::from_ref(request))
            .await
            .and_then(|mut outcomes| outcomes.pop().unwrap_or_else(|| Err(no_outcome()))),
        Ok(None) => Err(batch_error.take().unwrap_or_else(no_outcome)),
        Err(e) => Err(crate::Error::Unavailable(format!(
            "the append's transaction failed ({}) and its outcome cannot be checked ({e}); read the stream before retrying",
            batch_error.as_ref().map_or_else(String::new, ToString::to_string)
        ))),
    }
}

/// Commits requests on the writer's connection, opening it first if needed. A failed batch
/// drops the connection: it may be broken, and a fresh one costs little next to the failure.
async fn write(state: &mut WriterState, requests: &[Arc<WriteRequest>]) -> Result<Vec<Result<AppendResult>>> {
    let mut conn = match state.connection.take() {
        Some(conn) => conn,
        None => state.storage.connect_writer().await?,
    };
    let outcome = state.storage.write_batch(&mut conn, requests).await;
    if outcome.is_ok() {
        state.connection = Some(conn);
    }
    outcome
}

fn no_outcome() -> crate::Error {
    crate::Error::Unavailable("the batch returned no outcome for the request".into())
}
