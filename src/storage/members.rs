//! The storage contract of cluster membership: how a member joins and says it is alive, and
//! who the live members are. PostgreSQL keeps members in `cluster_members`, each held by a
//! session of its own, the leader chosen by an advisory lock; SQLite, whose file one process
//! holds, keeps its members in memory.

use uuid::Uuid;

use crate::cluster::ClusterMember;
use crate::error::Result;

/// A member as it joins.
#[derive(Debug, Clone)]
pub(crate) struct MemberEntry {
    pub(crate) id: Uuid,
    pub(crate) address: String,
    pub(crate) port: u16,
}

/// The room of the backend contract for cluster membership.
pub(crate) trait Membership {
    /// The session that keeps one member in the cluster.
    type MemberSession: MemberSession;

    /// Joins `member` through a session of its own, which holds its membership.
    fn join(&self, member: &MemberEntry) -> impl Future<Output = Result<Self::MemberSession>> + Send;

    /// The live members, oldest first, the leader marked.
    fn members(&self) -> impl Future<Output = Result<Vec<ClusterMember>>> + Send;
}

/// One member's membership.
pub(crate) trait MemberSession: Send {
    /// Says the member is alive and takes the lead if nobody holds it; whether it leads.
    fn beat(&mut self) -> impl Future<Output = Result<bool>> + Send;

    /// Leaves the cluster and ends the session.
    fn leave(self) -> impl Future<Output = ()> + Send;
}
