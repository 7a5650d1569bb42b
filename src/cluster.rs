//! The members of a store's cluster as gossip lists them: plain values.

use chrono::{DateTime, Utc};
use uuid::Uuid;

/// A member of a store's cluster: a process that serves the store to clients
/// ([`EventStore::join_cluster`](crate::EventStore::join_cluster)), alive when listed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClusterMember {
    /// The member's id, new each time it joins.
    pub id: Uuid,
    /// Where clients reach it.
    pub address: String,
    /// Its port.
    pub port: u16,
    /// Whether it leads the cluster (exactly one live member does, once it has taken the lead).
    pub leader: bool,
    /// When it joined.
    pub joined_at: DateTime<Utc>,
    /// When it last said it is alive.
    pub seen_at: DateTime<Utc>,
}
