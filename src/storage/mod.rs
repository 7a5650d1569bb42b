//! The storage layer: SQL and nothing else. Plain async functions over a connection pool; it
//! knows nothing of actors. Each backend lives in its own module (`postgres/`); the runtime and
//! the facade call the backend through [`Storage`] and the request types below.

pub mod postgres;

use std::sync::atomic::{AtomicI64, Ordering};

use uuid::Uuid;

use crate::event::{EventData, ExpectedVersion};

pub use postgres::PgStorage as Storage;

/// One write the writer commits as part of a batch.
#[derive(Debug)]
pub struct WriteRequest {
    /// Target stream.
    pub stream: String,
    /// Optimistic-concurrency expectation, checked under the stream's row lock.
    pub expected: ExpectedVersion,
    /// What to write.
    pub op: WriteOp,
    /// Where the writing transaction is, so a caller whose reply was lost can learn the outcome.
    pub progress: WriteProgress,
}

/// The two kinds of writes that move a stream's version.
#[derive(Debug)]
pub enum WriteOp {
    /// Append new events (they also enter `$all`).
    Append(Vec<EventData>),
    /// Link already stored events, by id, into the stream.
    Link(Vec<Uuid>),
}

impl WriteOp {
    /// Number of entries this write adds to its stream.
    pub fn len(&self) -> usize {
        match self {
            WriteOp::Append(events) => events.len(),
            WriteOp::Link(ids) => ids.len(),
        }
    }

    /// Whether the write adds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Payload bytes carried by the write.
    pub fn payload_bytes(&self) -> usize {
        match self {
            WriteOp::Append(events) => events.iter().map(EventData::payload_size).sum(),
            WriteOp::Link(ids) => ids.len() * 16,
        }
    }
}

/// The id of the database transaction that took the request, once it holds the `$all` lock.
///
/// A request whose writer died before replying is resolved from it: a transaction that never
/// got this far cannot commit, and one that did can be asked about with `txid_status`.
#[derive(Debug, Default)]
pub struct WriteProgress(AtomicI64);

impl WriteProgress {
    /// Records the transaction id (called by storage once the `$all` lock is held).
    pub fn record_txid(&self, txid: i64) {
        self.0.store(txid, Ordering::SeqCst);
    }

    /// The transaction id, if the request reached the `$all` lock.
    pub fn txid(&self) -> Option<i64> {
        match self.0.load(Ordering::SeqCst) {
            0 => None,
            txid => Some(txid),
        }
    }
}
