//! The `Writer` actor: owns appends and links (group commit).
//!
//! - **Owns** the queue of write requests not yet committed, up to `MAX_IN_FLIGHT` batches
//!   being committed (each a task on its own database connection), and the idle connections.
//! - **Receives** `Write` (one request, answered through its reply port), `Flush` (sent to
//!   itself), `BatchDone` (a batch task finished and hands its connection back), `Drain` (on
//!   shutdown: commit everything queued, then answer).
//! - **Persists before acknowledging**: every reply is sent after the batch's transaction has
//!   committed (or has been rolled back, for rejected requests).
//! - **On a crash** (a panic, a kill): the batch tasks live in a `JoinSet` owned by the actor's
//!   state, so they are aborted with it: their transactions roll back with their connections,
//!   their reply ports are dropped, and every caller resolves its outcome from the database
//!   (see [`Runtime::write`](super::Runtime::write)). The supervisor starts a new writer.
//! - **When a batch's transaction fails** (a lost connection, a restarted database), a request
//!   may have committed although its reply never came: [`resolve`] (in `write.rs`, beside the
//!   caller's side of the same story) asks the database.
//!
//! Group commit falls out of the mailbox: a `Write` only queues the request and, if none is
//! pending, sends `Flush` to itself. Every `Write` that arrives while batches are being
//! committed waits in the queue, so the next transaction takes them all.
//!
//! Batches run as tasks on the writer's own connections, so the actor keeps taking requests
//! into its queue while one commits. `MAX_IN_FLIGHT` is 1: a second batch in flight (waiting on
//! the `$all` lock while the first commits) measured about 15% slower on 2 cores, where its
//! backend competes with the committing one for CPU, and it would make each connection's
//! memory of the store (the fast path) go stale on the other's commits.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use tokio::task::JoinSet;

use super::write::resolve;
use crate::error::{Error, Result};
use crate::metrics::StoreMetrics;
use crate::storage::{Storage, WriteOutcome, WriteRequest, WriterSession};
use tracing::Instrument;

/// Batches committed at the same time (see the module docs for why 1).
pub const MAX_IN_FLIGHT: usize = 1;

/// Most requests/events/bytes one transaction takes.
#[derive(Debug, Clone, Copy)]
pub struct BatchLimits {
    /// Most requests.
    pub appends: usize,
    /// Most events, over every part of every request (a larger single request still goes
    /// alone).
    pub events: usize,
    /// Most payload bytes (a larger single request still goes alone).
    pub bytes: usize,
}

type Pending = (Arc<WriteRequest>, RpcReplyPort<WriteOutcome>);

/// Messages of the writer.
pub enum WriterMsg {
    /// Commit this request with the next batch and reply with its outcome (one result per
    /// part).
    Write(Arc<WriteRequest>, RpcReplyPort<WriteOutcome>),
    /// Start batches for what is queued (sent by the writer to itself).
    Flush,
    /// A batch task finished; its connection, if still usable.
    BatchDone(Option<WriterSession>),
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
    /// How long an in-doubt request waits for the database to tell its outcome.
    pub in_doubt_timeout: Duration,
    /// The store's metrics (batch sizes, in-doubt outcomes).
    pub metrics: StoreMetrics,
}

/// The writer's state.
pub struct WriterState {
    storage: Storage,
    limits: BatchLimits,
    in_doubt_timeout: Duration,
    metrics: StoreMetrics,
    queue: VecDeque<Pending>,
    /// Connections of the writer not in use by a batch (not from the pool: no acquire/release
    /// round trips).
    idle: Vec<WriterSession>,
    /// The batch tasks; dropping the set (with the state, when the actor dies) aborts them.
    batches: JoinSet<()>,
    in_flight: usize,
    flush_scheduled: bool,
    drained: Vec<RpcReplyPort<()>>,
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
            limits: args.limits,
            in_doubt_timeout: args.in_doubt_timeout,
            metrics: args.metrics,
            queue: VecDeque::new(),
            idle: Vec::new(),
            batches: JoinSet::new(),
            in_flight: 0,
            flush_scheduled: false,
            drained: Vec::new(),
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
                start_batches(&myself, state);
            }
            WriterMsg::BatchDone(conn) => {
                state.in_flight = state.in_flight.saturating_sub(1);
                state.idle.extend(conn);
                // Reap finished tasks; a panic inside one was already answered by its guard.
                while let Some(joined) = state.batches.try_join_next() {
                    if let Err(e) = joined {
                        tracing::error!(error = %e, "a batch task failed");
                    }
                }
                start_batches(&myself, state);
            }
            WriterMsg::Drain(reply) => {
                state.drained.push(reply);
                start_batches(&myself, state);
            }
        }
        if state.queue.is_empty() && state.in_flight == 0 {
            for reply in state.drained.drain(..) {
                // The caller may have given up waiting; nothing is left to tell it.
                let _ = reply.send(());
            }
        }
        Ok(())
    }

    async fn post_stop(&self, _myself: ActorRef<WriterMsg>, state: &mut WriterState) -> Result<(), ActorProcessingErr> {
        for session in state.idle.drain(..) {
            session.close().await;
        }
        Ok(())
    }
}

/// Starts batch tasks for the queue while fewer than `MAX_IN_FLIGHT` are running.
fn start_batches(myself: &ActorRef<WriterMsg>, state: &mut WriterState) {
    while state.in_flight < MAX_IN_FLIGHT && !state.queue.is_empty() {
        let batch = next_batch(state);
        let span = crate::spans::batch(batch.len(), batch.iter().map(|(r, _)| r.len()).sum());
        let conn = state.idle.pop();
        let storage = state.storage.clone();
        let (in_doubt_timeout, metrics) = (state.in_doubt_timeout, state.metrics.clone());
        let done = BatchDone { writer: myself.clone(), conn: None };
        state.in_flight += 1;
        state.batches.spawn(
            async move {
                let conn = commit_batch(&storage, conn, batch, in_doubt_timeout, &metrics).await;
                done.with_connection(conn);
            }
            .instrument(span),
        );
    }
}

/// Tells the writer a batch task ended, also when it panicked or was aborted.
struct BatchDone {
    writer: ActorRef<WriterMsg>,
    conn: Option<WriterSession>,
}

impl BatchDone {
    /// Hands the connection back (sent when `self` drops, right here).
    fn with_connection(mut self, conn: Option<WriterSession>) {
        self.conn = conn;
    }
}

impl Drop for BatchDone {
    fn drop(&mut self) {
        // Fails only when the writer is gone, and then nobody needs the news.
        let _ = self.writer.cast(WriterMsg::BatchDone(self.conn.take()));
    }
}

/// Takes the next batch off the queue within the limits (at least one request), and counts
/// it.
fn next_batch(state: &mut WriterState) -> Vec<Pending> {
    let mut batch = Vec::new();
    let (mut events, mut bytes) = (0, 0);
    while let Some((request, _)) = state.queue.front() {
        let (n, b) = (request.len(), request.payload_bytes());
        let fits =
            batch.len() < state.limits.appends && events + n <= state.limits.events && bytes + b <= state.limits.bytes;
        if !batch.is_empty() && !fits {
            break;
        }
        events += n;
        bytes += b;
        batch.extend(state.queue.pop_front());
    }
    state.metrics.batch(batch.len(), events);
    batch
}

/// Commits one batch and replies to each caller; returns the connection if it is still usable.
async fn commit_batch(
    storage: &Storage,
    conn: Option<WriterSession>,
    batch: Vec<Pending>,
    in_doubt_timeout: Duration,
    metrics: &StoreMetrics,
) -> Option<WriterSession> {
    let requests: Vec<Arc<WriteRequest>> = batch.iter().map(|(r, _)| Arc::clone(r)).collect();
    let reused = conn.is_some();
    let mut conn = conn;
    match write(storage, &mut conn, &requests).await {
        Ok(outcomes) => {
            for ((_, reply), outcome) in batch.into_iter().zip(outcomes) {
                // A caller that stopped waiting (its task was cancelled) needs no answer.
                let _ = reply.send(outcome);
            }
        }
        Err(err) => {
            tracing::warn!(error = %err, requests = batch.len(), "batch transaction failed");
            // A request alone in its batch gets the batch's error if it did not commit; one that
            // shared it is tried again alone first, and so is one whose kept connection had died
            // meanwhile (a restarted database): a fresh connection may well work.
            let stale_connection = reused && matches!(err, Error::Unavailable(_));
            let mut err = (batch.len() == 1 && !stale_connection).then_some(err);
            for (request, reply) in batch {
                let outcome = settle_failed(storage, &mut conn, &request, err.take(), in_doubt_timeout, metrics).await;
                let _ = reply.send(outcome);
            }
        }
    }
    conn
}

/// The outcome of one request whose batch transaction failed.
///
/// The failure may have hit after COMMIT reached the server (a connection lost while waiting
/// for its answer), so the database is asked first. A request that did not commit is retried
/// alone (on a fresh connection if the old one broke) unless `alone_error` says it already was:
/// one request may have poisoned a shared transaction with an error the checks did not
/// foresee. That attempt is settled the same way; a request tried alone gets the error that
/// stopped it.
async fn settle_failed(
    storage: &Storage,
    conn: &mut Option<WriterSession>,
    request: &Arc<WriteRequest>,
    mut alone_error: Option<Error>,
    in_doubt_timeout: Duration,
    metrics: &StoreMetrics,
) -> WriteOutcome {
    loop {
        if let Some(committed) = resolve(storage, request, in_doubt_timeout, metrics).await? {
            return Ok(committed);
        }
        if let Some(error) = alone_error.take() {
            return Err(error);
        }
        match write(storage, conn, std::slice::from_ref(request)).await {
            Ok(mut outcomes) => return outcomes.pop().unwrap_or_else(|| Err(no_outcome())),
            Err(e) => alone_error = Some(e),
        }
    }
}

/// Commits requests on a writer connection, opening one first if needed. A failed batch drops
/// the connection: it may be broken, and a fresh one costs little next to the failure.
async fn write(
    storage: &Storage,
    slot: &mut Option<WriterSession>,
    requests: &[Arc<WriteRequest>],
) -> Result<Vec<WriteOutcome>> {
    let mut session = match slot.take() {
        Some(session) => session,
        None => storage.open_writer_session().await?,
    };
    let outcome = session.write_batch(requests).await;
    if outcome.is_ok() {
        *slot = Some(session);
    }
    outcome
}

fn no_outcome() -> Error {
    Error::Unavailable("the batch returned no outcome for the request".into())
}
