//! The conformance suite on PostgreSQL. The tests in `conformance/` are written once and say
//! what every backend does, call for call; here each test's store is a fresh schema of the
//! database at `CHRONIK_DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/test`).
//! `conformance_sqlite.rs` runs the same tests on SQLite: the two binaries differ only in
//! `BACKEND`.

mod common;

/// The backend of every store in this binary.
const BACKEND: common::Backend = common::Backend::Postgres;

#[path = "conformance/append.rs"]
mod append;
#[path = "conformance/categories.rs"]
mod categories;
#[path = "conformance/competing_consumers.rs"]
mod competing_consumers;
#[path = "conformance/consumer_strategies.rs"]
mod consumer_strategies;
#[path = "conformance/filters.rs"]
mod filters;
#[path = "conformance/links_and_deletes.rs"]
mod links_and_deletes;
#[path = "conformance/metrics.rs"]
mod metrics;
#[path = "conformance/multi_append.rs"]
mod multi_append;
#[path = "conformance/nacks.rs"]
mod nacks;
#[path = "conformance/read.rs"]
mod read;
#[path = "conformance/retention.rs"]
mod retention;
#[path = "conformance/scavenge.rs"]
mod scavenge;
#[path = "conformance/subscribers.rs"]
mod subscribers;
#[path = "conformance/subscription_management.rs"]
mod subscription_management;
#[path = "conformance/subscriptions.rs"]
mod subscriptions;
#[path = "conformance/writer_failure.rs"]
mod writer_failure;
