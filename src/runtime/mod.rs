//! The runtime: ractor actors, supervised per store. Nothing here speaks SQL; actors call the
//! storage layer.
//!
//! - [`supervisor`]: the per-store supervisor, restarting children with backoff.
//! - [`writer`]: group commit of appends and links.

pub mod supervisor;
pub mod writer;
