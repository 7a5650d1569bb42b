//! Cluster membership on PostgreSQL: a member is a row of `cluster_members` held by a
//! dedicated session; the session holding the cluster's advisory lock leads. A member is listed
//! while its session is connected (`pg_stat_activity`) and it beat within `ALIVE_WITHIN`, so a
//! killed process drops out as soon as the server sees its connection close, and one cut off
//! from the database within seconds.

use sqlx::{Connection, PgConnection};

use super::PgStorage;
use crate::cluster::ClusterMember;
use crate::error::Result;
use crate::storage::members::{self, MemberEntry};
use crate::storage::unsigned;

/// The advisory lock of the cluster's leader: the schema's oid in the high half and, in the
/// low half, a number no subscription id reaches (subscription ids are `integer`s; the scavenge
/// lock is 0).
macro_rules! leader_key {
    () => {
        "((to_regnamespace(current_schema())::oid::bigint << 32) | 4294967295)"
    };
}

const JOIN: &str = "INSERT INTO cluster_members (member_id, address, port, backend_pid) \
     VALUES ($1, $2, $3, pg_backend_pid()) \
     ON CONFLICT (member_id) DO UPDATE SET address = $2, port = $3, backend_pid = pg_backend_pid(), seen_at = now()";

/// Renews the member's row (written again if a member that beat removed it as stale) and
/// removes the rows of members whose sessions are gone.
const BEAT: &str = "WITH renewed AS ( \
         INSERT INTO cluster_members (member_id, address, port, backend_pid) \
         VALUES ($1, $2, $3, pg_backend_pid()) \
         ON CONFLICT (member_id) DO UPDATE SET seen_at = now(), backend_pid = pg_backend_pid() \
         RETURNING member_id) \
     DELETE FROM cluster_members m \
     WHERE m.member_id <> (SELECT member_id FROM renewed) \
       AND NOT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.pid = m.backend_pid) \
       AND m.seen_at < now() - interval '1 minute'";

const TRY_LEAD: &str = concat!("SELECT pg_try_advisory_lock(", leader_key!(), ")");

const LEAVE: &str = "DELETE FROM cluster_members WHERE member_id = $1";

/// Live members, oldest first, with whether each holds the leader's lock.
const MEMBERS: &str = concat!(
    "SELECT m.member_id, m.address, m.port, m.joined_at, m.seen_at, \
         EXISTS (SELECT 1 FROM pg_locks l \
             WHERE l.locktype = 'advisory' AND l.granted AND l.pid = m.backend_pid AND l.objsubid = 1 \
               AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
               AND l.classid = to_regnamespace(current_schema())::oid \
               AND l.objid = (",
    leader_key!(),
    " & 4294967295)::oid) \
     FROM cluster_members m \
     WHERE m.seen_at > now() - interval '5 seconds' \
       AND EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.pid = m.backend_pid) \
     ORDER BY m.joined_at, m.member_id"
);

type MemberRow = (uuid::Uuid, String, i32, chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>, bool);

impl members::Membership for PgStorage {
    type MemberSession = MemberSession;

    async fn join(&self, member: &MemberEntry) -> Result<MemberSession> {
        let mut conn = super::connect_within(&self.connect_options, self.connect_timeout).await?;
        sqlx::query(JOIN).bind(member.id).bind(&member.address).bind(i32::from(member.port)).execute(&mut conn).await?;
        Ok(MemberSession { conn, member: member.clone(), leading: false })
    }

    async fn members(&self) -> Result<Vec<ClusterMember>> {
        let rows: Vec<MemberRow> = sqlx::query_as(MEMBERS).fetch_all(&self.pool).await?;
        rows.into_iter()
            .map(|(id, address, port, joined_at, seen_at, leader)| {
                let port = u16::try_from(unsigned("port", i64::from(port))?).unwrap_or_default();
                Ok(ClusterMember { id, address, port, leader, joined_at, seen_at })
            })
            .collect()
    }
}

/// The dedicated connection that holds a member (and, once it has it, the lead).
#[derive(Debug)]
pub struct MemberSession {
    conn: PgConnection,
    member: MemberEntry,
    /// It holds the leader's lock (held until the session ends).
    leading: bool,
}

impl members::MemberSession for MemberSession {
    async fn beat(&mut self) -> Result<bool> {
        let member = &self.member;
        sqlx::query(BEAT)
            .bind(member.id)
            .bind(&member.address)
            .bind(i32::from(member.port))
            .execute(&mut self.conn)
            .await?;
        if !self.leading {
            let (took,): (bool,) = sqlx::query_as(TRY_LEAD).fetch_one(&mut self.conn).await?;
            self.leading = took;
        }
        Ok(self.leading)
    }

    async fn leave(mut self) {
        if let Err(e) = sqlx::query(LEAVE).bind(self.member.id).execute(&mut self.conn).await {
            tracing::debug!(error = %e, "a member's row could not be removed; it drops out once its session ends");
        }
        if let Err(e) = self.conn.close().await {
            tracing::debug!(error = %e, "the member's connection did not close cleanly");
        }
    }
}
