//! A caller's write, from the facade's call to a known outcome: [`Runtime::write`] hands the
//! request to the live writer, hands it to the restarted writer again if the old one lost it
//! before it reached the database, and otherwise asks the database what became of it
//! ([`resolve`], which the writer also uses for a batch whose transaction failed). Never a
//! false `Ok`, never a false error: `Error::Unavailable` means nothing was stored, and an
//! outcome that could not be learned within `in_doubt_timeout` is `Error::InDoubt`.

use std::sync::Arc;
use std::time::Duration;

use ractor::rpc::CallResult;
use tokio::time::Instant;
use tracing::Instrument;

use super::Runtime;
use super::writer::WriterMsg;
use crate::error::{Error, Result};
use crate::event::AppendResult;
use crate::metrics::StoreMetrics;
use crate::storage::{Attempt, Storage, WriteOutcome, WriteRequest};

/// Most times one request is handed to a writer: a request that keeps killing writers before it
/// reaches the database fails instead of killing them forever.
const MAX_SUBMISSIONS: usize = 3;

impl Runtime {
    /// Commits one request (an append, a link, or the appends of one `append_to_streams` call)
    /// through the writer's group commit and returns its outcome: one result per part.
    pub async fn write(&self, request: WriteRequest) -> WriteOutcome {
        let (started, entries) = (Instant::now(), request.len() as u64);
        let span = crate::spans::append(&request);
        let outcome = self.submit(request).instrument(span.clone()).await;
        let stored = outcome.as_ref().map(|_| entries);
        self.inner.metrics.write_ended(started.elapsed(), stored);
        match &outcome {
            Ok(results) => {
                span.record("outcome", "ok");
                if let Some(last) = results.iter().map(|r| r.last_position).max() {
                    span.record("position", last);
                }
            }
            Err(e) => {
                span.record("outcome", e.kind());
            }
        }
        outcome
    }

    /// [`write`](Self::write), unmeasured.
    async fn submit(&self, request: WriteRequest) -> WriteOutcome {
        let request = Arc::new(request);
        // A request the writer lost before its transaction reached the `$all` lock cannot have
        // committed (every commit goes through that lock), so it is handed to the restarted
        // writer again.
        let mut submissions = 0;
        let mut dead = None;
        let lost = loop {
            submissions += 1;
            let writer = self.inner.writer.wait(dead, self.inner.connect_timeout).await?;
            let lost = match writer.call(|reply| WriterMsg::Write(Arc::clone(&request), reply), None).await {
                Ok(CallResult::Success(outcome)) => return outcome,
                Ok(_) => "the writer stopped before answering".to_string(),
                Err(e) => format!("the writer could not be reached: {e}"),
            };
            if submissions >= MAX_SUBMISSIONS || request.progress.attempt() != Attempt::NotStarted {
                break lost;
            }
            tracing::debug!(reason = %lost, "write lost before it reached the database; resubmitting");
            dead = Some(writer.get_id());
        };
        // The writer stopped (crash, kill, shutdown) with the request in its hands.
        match resolve(&self.inner.storage, &request, self.inner.in_doubt_timeout, &self.inner.metrics).await? {
            Some(results) => Ok(results),
            None => Err(Error::Unavailable(format!("{lost}; nothing of this write was stored, retry it"))),
        }
    }

    /// Commits a request of one part (an append or a link) and returns its one result.
    pub async fn write_one(&self, request: WriteRequest) -> Result<AppendResult> {
        self.write(request)
            .await?
            .pop()
            .ok_or_else(|| Error::Unavailable("the writer returned no result for the write".into()))
    }
}

/// What became of a request the database may have committed: `Some` if it did, `None` if
/// nothing of it is stored. While the database cannot be reached (it restarts, the network is
/// down) the question is asked again, for up to `timeout`; an outcome that cannot be learned is
/// [`Error::InDoubt`], never a guess.
pub(super) async fn resolve(
    storage: &Storage,
    request: &WriteRequest,
    timeout: Duration,
    metrics: &StoreMetrics,
) -> Result<Option<Vec<AppendResult>>> {
    let outcome = ask(storage, request, timeout).await;
    // A request that never reached the database was never in doubt.
    if request.progress.attempt() != Attempt::NotStarted {
        metrics.in_doubt(match &outcome {
            Ok(committed) => Some(committed.is_some()),
            Err(_) => None,
        });
    }
    outcome
}

/// [`resolve`], uncounted.
async fn ask(storage: &Storage, request: &WriteRequest, timeout: Duration) -> Result<Option<Vec<AppendResult>>> {
    let deadline = Instant::now() + timeout;
    let mut failures = 0;
    loop {
        let error = match storage.resolve_in_doubt(request).await {
            Ok(outcome) => return Ok(outcome),
            Err(e @ Error::Unavailable(_)) => e,
            Err(e) => return Err(in_doubt(request, &e, timeout)),
        };
        let now = Instant::now();
        if now >= deadline {
            return Err(in_doubt(request, &error, timeout));
        }
        if failures == 0 {
            tracing::warn!(
                streams = %request.streams(),
                error = %error,
                "the outcome of an append is in doubt; waiting for the database to tell it"
            );
        }
        // Short waits, so that the answer comes soon after the database is back.
        let wait = RESOLVE_RETRY.saturating_mul(1 << failures.min(3)).min(deadline - now);
        failures += 1;
        tokio::time::sleep(wait).await;
    }
}

/// The first pause between attempts to learn an in-doubt outcome (doubling up to 8 times it).
const RESOLVE_RETRY: Duration = Duration::from_millis(50);

fn in_doubt(request: &WriteRequest, error: &Error, timeout: Duration) -> Error {
    Error::InDoubt(format!(
        "the write to {} was sent to the database, which did not tell whether it committed within \
         in_doubt_timeout ({timeout:?}): {error}",
        request.streams()
    ))
}
