//! Cluster membership on SQLite: one process holds the store's file, so its members (the
//! servers it runs on the store, usually one) live in its memory; the first to join leads.

use std::sync::{Arc, Mutex, PoisonError};

use chrono::Utc;

use super::SqliteStorage;
use crate::cluster::ClusterMember;
use crate::error::Result;
use crate::storage::members::{self, MemberEntry};

/// The members of this process, oldest first.
pub(super) type Members = Arc<Mutex<Vec<ClusterMember>>>;

impl members::Membership for SqliteStorage {
    type MemberSession = MemberSession;

    async fn join(&self, member: &MemberEntry) -> Result<MemberSession> {
        let now = Utc::now();
        let mut members = self.inner.members.lock().unwrap_or_else(PoisonError::into_inner);
        let leader = members.is_empty();
        members.push(ClusterMember {
            id: member.id,
            address: member.address.clone(),
            port: member.port,
            leader,
            joined_at: now,
            seen_at: now,
        });
        Ok(MemberSession { members: Arc::clone(&self.inner.members), id: member.id })
    }

    async fn members(&self) -> Result<Vec<ClusterMember>> {
        Ok(self.inner.members.lock().unwrap_or_else(PoisonError::into_inner).clone())
    }
}

/// A member of this process.
#[derive(Debug)]
pub struct MemberSession {
    members: Members,
    id: uuid::Uuid,
}

impl members::MemberSession for MemberSession {
    async fn beat(&mut self) -> Result<bool> {
        let mut members = self.members.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(me) = members.iter_mut().find(|m| m.id == self.id) else { return Ok(false) };
        me.seen_at = Utc::now();
        Ok(me.leader)
    }

    async fn leave(self) {
        let mut members = self.members.lock().unwrap_or_else(PoisonError::into_inner);
        members.retain(|m| m.id != self.id);
        // The oldest remaining member leads.
        if let Some(first) = members.first_mut() {
            first.leader = true;
        }
    }
}
