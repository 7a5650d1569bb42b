//! The task that keeps this process a member of the store's cluster
//! ([`EventStore::join_cluster`](crate::EventStore::join_cluster)).
//!
//! - Owns: the member's session (on PostgreSQL, a dedicated connection holding its row and,
//!   once taken, the leader's lock).
//! - Does: beats every second (renews the row, takes the lead if nobody holds it) and says
//!   whether it leads.
//! - Persists: the member's row.
//! - When the session fails (the database restarted, the connection dropped): it logs, and
//!   joins again with the same id after a pause; meanwhile the member is not listed (and not
//!   the leader: the lock went with the session).
//! - When its handle leaves or is dropped: it removes the row and ends the session.
//!
//! A task rather than an actor: it holds nothing any other part of the runtime asks for.

use std::time::Duration;

use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::storage::members::MemberEntry;
use crate::storage::{MemberSession, Storage};

/// How often a member says it is alive (members not seen for five seconds are not listed).
const BEAT: Duration = Duration::from_secs(1);

/// How long a member whose session failed waits before joining again.
const REJOIN: Duration = Duration::from_secs(1);

/// This process's membership of a store's cluster; dropping it (or [`leave`](Self::leave))
/// takes the member out.
#[derive(Debug)]
pub struct ClusterMembership {
    id: Uuid,
    leading: watch::Receiver<bool>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl ClusterMembership {
    /// The member's id in [`cluster_members`](crate::EventStore::cluster_members).
    pub fn id(&self) -> Uuid {
        self.id
    }

    /// Whether this member leads the cluster now.
    pub fn is_leader(&self) -> bool {
        *self.leading.borrow()
    }

    /// Leaves the cluster: the member is no longer listed once this returns.
    pub async fn leave(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for ClusterMembership {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Starts the task for a member that has joined through `session`.
pub(crate) fn spawn(storage: Storage, entry: MemberEntry, session: MemberSession, leading: bool) -> ClusterMembership {
    let (leads, leading_rx) = watch::channel(leading);
    let (stop, stopped) = oneshot::channel();
    let id = entry.id;
    let task = tokio::spawn(run(storage, entry, session, leads, stopped));
    ClusterMembership { id, leading: leading_rx, stop: Some(stop), task: Some(task) }
}

async fn run(
    storage: Storage,
    entry: MemberEntry,
    session: MemberSession,
    leads: watch::Sender<bool>,
    mut stopped: oneshot::Receiver<()>,
) {
    let mut session = Some(session);
    let mut tick = tokio::time::interval(BEAT);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = &mut stopped => break,
            _ = tick.tick() => {}
        }
        let Some(current) = session.as_mut() else {
            match storage.join(&entry).await {
                Ok(joined) => {
                    tracing::info!(member = %entry.id, "joined the cluster again");
                    session = Some(joined);
                }
                Err(error) => {
                    tracing::warn!(member = %entry.id, %error, "cannot join the cluster; trying again");
                    tokio::time::sleep(REJOIN).await;
                }
            }
            continue;
        };
        match current.beat().await {
            Ok(leading) => {
                leads.send_if_modified(|was| std::mem::replace(was, leading) != leading);
            }
            Err(error) => {
                tracing::warn!(member = %entry.id, %error, "the member's session failed; joining again");
                leads.send_replace(false);
                if let Some(failed) = session.take() {
                    failed.leave().await;
                }
            }
        }
    }
    if let Some(session) = session {
        session.leave().await;
    }
}
