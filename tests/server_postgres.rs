//! `chronik serve` on PostgreSQL, driven by the official KurrentDB Rust client (`kurrentdb`):
//! the tests in `server/` are written once and run here and in `server_sqlite.rs`; each test's
//! store is a fresh schema, its server listens on 127.0.0.1 on a port the system picks.

mod common;

/// The backend of every store in this binary.
const BACKEND: common::Backend = common::Backend::Postgres;

#[path = "server/served.rs"]
mod served;

#[path = "server/cluster.rs"]
mod cluster;
#[path = "server/http.rs"]
mod http;
#[path = "server/persistent.rs"]
mod persistent;
#[path = "server/streams.rs"]
mod streams;
#[path = "server/subscriptions.rs"]
mod subscriptions;
