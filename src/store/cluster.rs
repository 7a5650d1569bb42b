//! The facade's cluster membership: joining the store's cluster and listing its members (what
//! `chronik serve`'s gossip answers).

use uuid::Uuid;

use super::EventStore;
use crate::cluster::ClusterMember;
use crate::error::{Error, Result};
use crate::runtime::member::{self, ClusterMembership};
use crate::storage::members::MemberEntry;

impl EventStore {
    /// Makes this process a member of the store's cluster, reachable by clients at
    /// `address:port`, until the returned membership is dropped or leaves. On PostgreSQL,
    /// every process that joins the same store is listed by
    /// [`cluster_members`](Self::cluster_members) on every node, and one of them leads (an
    /// advisory lock held by its membership session, so a member that dies gives up the lead
    /// at once); on SQLite the members are this process's.
    ///
    /// ```no_run
    /// # async fn demo(store: chronik::EventStore) -> chronik::Result<()> {
    /// let membership = store.join_cluster("node1.example.com", 2113).await?;
    /// for member in store.cluster_members().await? {
    ///     println!("{}:{} {}", member.address, member.port, if member.leader { "leader" } else { "follower" });
    /// }
    /// membership.leave().await;
    /// # Ok(()) }
    /// ```
    ///
    /// Errors: [`Error::InvalidArgument`] for an empty address or port 0,
    /// [`Error::Unavailable`] if the database cannot be reached.
    pub async fn join_cluster(&self, address: impl Into<String>, port: u16) -> Result<ClusterMembership> {
        self.ensure_writable("join a cluster (a member is a row it writes)")?;
        let address = address.into();
        if address.is_empty() || port == 0 {
            return Err(Error::invalid(format!("a member needs an address and a port, not `{address}:{port}`")));
        }
        let entry = MemberEntry { id: Uuid::new_v4(), address, port };
        let storage = &self.inner.storage;
        let mut session = storage.join(&entry).await?;
        let leading = session.beat().await?;
        Ok(member::spawn(storage.clone(), entry, session, leading))
    }

    /// The live members of the store's cluster, oldest first, the leader marked.
    pub async fn cluster_members(&self) -> Result<Vec<ClusterMember>> {
        self.ensure_open()?;
        self.inner.storage.members().await
    }
}
