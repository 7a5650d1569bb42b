//! The storage layer: SQL and nothing else. Plain async functions over a connection pool; it
//! knows nothing of actors. Each backend lives in its own module (`postgres/`); the runtime and
//! the facade call the backend through [`Storage`] and the request types below.

pub mod postgres;

use std::sync::{Mutex, PoisonError};

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

/// How far the writer got with a request, so a caller whose reply was lost can learn the
/// outcome from the database instead of guessing.
#[derive(Debug, Default)]
pub struct WriteProgress(Mutex<Attempt>);

/// The writer's latest attempt at a request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Attempt {
    /// Not sent to the database yet (or only in a transaction that never reached the `$all`
    /// lock, which cannot commit: every path to COMMIT goes through that lock).
    #[default]
    NotStarted,
    /// Sent in a one-statement fast-path batch that gives the request these positions.
    Fast {
        /// Global position of the request's first event.
        first_position: i64,
    },
    /// In the transaction with this id, which holds the `$all` lock.
    Locked {
        /// `txid_current()` of the transaction.
        txid: i64,
    },
}

impl WriteProgress {
    /// Records the writer's latest attempt.
    pub fn record(&self, attempt: Attempt) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = attempt;
    }

    /// The writer's latest attempt.
    pub fn attempt(&self) -> Attempt {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
