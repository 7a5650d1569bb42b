//! Scavenging on PostgreSQL: one session per store at a time (a session-level advisory lock
//! on a connection of its own), each batch one transaction that sets `chronik.scavenge` with
//! SET LOCAL, which the immutability triggers let through for that transaction only.
//!
//! A batch holds the metadata rows of its streams (`FOR SHARE`) from the moment it reads their
//! retention until it commits, so a metadata write that would make removed events readable
//! again waits for it. What else moves meanwhile only hides more: appends raise a stream's
//! version (and with `max_count` its floor), a recreatable delete raises `deleted_version`. No
//! batch takes the `$all` lock or a stream row's lock, so writers never wait for a scavenge.

use sqlx::{Connection, PgConnection};

use super::PgStorage;
use crate::error::{Error, Result};
use crate::storage::scavenge::{self as backend, Removed, Scavenging, windows};
use crate::storage::{HIDES_ANYTHING, INFO_FROM, RETENTION_COLUMNS, RetentionRow, unsigned};

/// The advisory lock of a store's scavenge: the schema's oid in the high half, 0 in the low
/// half (subscription locks have their row id there, which is never 0).
const TRY_LOCK: &str = "SELECT pg_try_advisory_lock(to_regnamespace(current_schema())::oid::bigint << 32)";

const ALLOW: &str = "SELECT set_config('chronik.scavenge', 'on', true)";

const HOLD_METADATA: &str = "SELECT 1 FROM stream_metadata m JOIN streams s ON s.stream_uuid = m.stream_uuid \
     WHERE s.stream_id = ANY($1) ORDER BY m.stream_uuid FOR SHARE OF m";

/// The windows of the streams a batch works on: `$1` ids, `$2` floors, `$3` cutoffs.
const WINDOWS: &str =
    "w AS (SELECT * FROM UNNEST($1::bigint[], $2::bigint[], $3::timestamptz[]) AS w(stream_id, floor, cutoff))";

/// The events the windows hide (their row addresses and positions), at most `$4`: per stream
/// an index range below the floor, and (only with a cutoff) the entries above it committed
/// before the cutoff. A batch deletes them by row address (events are never updated, so it is
/// theirs within the statement): three times faster than looking each up again by position.
const HIDDEN_EVENTS: &str = "hidden AS (SELECT h.ctid, h.position FROM w CROSS JOIN LATERAL ( \
         (SELECT ctid, position FROM events WHERE stream_id = w.stream_id AND stream_version < w.floor \
          ORDER BY stream_version LIMIT $4) \
         UNION ALL \
         (SELECT ctid, position FROM events WHERE w.cutoff IS NOT NULL AND stream_id = w.stream_id \
            AND stream_version >= w.floor AND created_at < w.cutoff ORDER BY stream_version LIMIT $4) \
     ) h LIMIT $4)";

/// The keys of the links the windows hide in streams of links, at most `$4`.
const HIDDEN_LINKS: &str = "hidden_links AS (SELECT h.stream_id, h.link_version FROM w CROSS JOIN LATERAL ( \
         SELECT stream_id, link_version FROM links WHERE stream_id = w.stream_id \
           AND (link_version < w.floor OR (w.cutoff IS NOT NULL AND created_at < w.cutoff)) \
         ORDER BY link_version LIMIT $4) h LIMIT $4)";

const DELETE_LINKS_TO: &str = "DELETE FROM links WHERE position = ANY($1)";

/// A scavenge session: its own connection, which holds the store's scavenge lock.
pub struct ScavengeSession {
    conn: PgConnection,
}

impl Scavenging for PgStorage {
    type ScavengeSession = ScavengeSession;

    async fn open_scavenge(&self) -> Result<ScavengeSession> {
        let mut conn = super::connect_within(&self.connect_options, self.connect_timeout).await?;
        let locked: bool = sqlx::query_scalar(TRY_LOCK).fetch_one(&mut conn).await?;
        if !locked {
            conn.close().await.ok();
            return Err(Error::Unavailable(
                "a scavenge of this store is already running (in this or another process); let it finish".into(),
            ));
        }
        Ok(ScavengeSession { conn })
    }
}

impl backend::ScavengeSession for ScavengeSession {
    async fn count_candidates(&mut self) -> Result<u64> {
        let sql = format!("SELECT count(*) FROM {INFO_FROM} WHERE {HIDES_ANYTHING}");
        unsigned("count", sqlx::query_scalar(&sql).fetch_one(&mut self.conn).await?)
    }

    async fn candidates(&mut self, after: i64, limit: i64) -> Result<Vec<i64>> {
        let sql = format!(
            "SELECT s.stream_id FROM {INFO_FROM} WHERE s.stream_id > $1 AND {HIDES_ANYTHING} ORDER BY s.stream_id LIMIT $2"
        );
        Ok(sqlx::query_scalar(&sql).bind(after).bind(limit).fetch_all(&mut self.conn).await?)
    }

    async fn remove(&mut self, ids: &[i64], limit: i64) -> Result<Removed> {
        let mut tx = self.conn.begin().await?;
        let outcome = remove_in(&mut tx, ids, limit).await;
        crate::storage::commit_or_rollback(tx, outcome).await
    }

    async fn measure(&mut self, ids: &[i64]) -> Result<Removed> {
        let rows = retentions(&mut self.conn, ids).await?;
        let (ids, floors, cutoffs) = windows(&rows);
        let sql = format!(
            "WITH {WINDOWS}, {HIDDEN_EVENTS}, {HIDDEN_LINKS} SELECT \
                 (SELECT count(*) FROM hidden), \
                 (SELECT COALESCE(sum(octet_length(e.data) + COALESCE(octet_length(e.metadata), 0)), 0)::bigint \
                    FROM hidden JOIN events e ON e.position = hidden.position), \
                 (SELECT count(*) FROM (SELECT stream_id, link_version FROM links \
                      WHERE position IN (SELECT position FROM hidden) \
                  UNION SELECT stream_id, link_version FROM hidden_links) l)"
        );
        let (events, bytes, links): (i64, i64, i64) = sqlx::query_as(&sql)
            .bind(&ids)
            .bind(&floors)
            .bind(&cutoffs)
            .bind(i64::MAX)
            .fetch_one(&mut self.conn)
            .await?;
        Removed::measured(events, links, bytes)
    }

    async fn close(self) {
        // Closing the connection lets go of the lock.
        self.conn.close().await.ok();
    }
}

/// The retention of streams `ids` as it stands now (their metadata rows held when in a
/// transaction that asked for it).
async fn retentions(conn: &mut PgConnection, ids: &[i64]) -> Result<Vec<RetentionRow>> {
    let sql = format!("SELECT {RETENTION_COLUMNS} FROM {INFO_FROM} WHERE s.stream_id = ANY($1)");
    Ok(sqlx::query_as(&sql).bind(ids).fetch_all(&mut *conn).await?)
}

async fn remove_in(conn: &mut PgConnection, ids: &[i64], limit: i64) -> Result<Removed> {
    sqlx::query(ALLOW).execute(&mut *conn).await?;
    sqlx::query(HOLD_METADATA).bind(ids).execute(&mut *conn).await?;
    let rows = retentions(conn, ids).await?;
    let (ids, floors, cutoffs) = windows(&rows);
    let events = format!(
        "WITH {WINDOWS}, {HIDDEN_EVENTS} DELETE FROM events WHERE ctid = ANY(ARRAY(SELECT ctid FROM hidden)) \
         RETURNING position, stream_id, (octet_length(data) + COALESCE(octet_length(metadata), 0))::bigint"
    );
    let removed: Vec<(i64, i64, i64)> =
        sqlx::query_as(&events).bind(&ids).bind(&floors).bind(&cutoffs).bind(limit).fetch_all(&mut *conn).await?;
    let positions: Vec<i64> = removed.iter().map(|(position, _, _)| *position).collect();
    let links_to = sqlx::query(DELETE_LINKS_TO).bind(&positions).execute(&mut *conn).await?.rows_affected();
    let own = format!(
        "WITH {WINDOWS}, {HIDDEN_LINKS} \
         DELETE FROM links WHERE (stream_id, link_version) IN (SELECT stream_id, link_version FROM hidden_links)"
    );
    let own_links = sqlx::query(&own)
        .bind(&ids)
        .bind(&floors)
        .bind(&cutoffs)
        .bind(limit)
        .execute(&mut *conn)
        .await?
        .rows_affected();
    Removed::batch(&removed, links_to, own_links, limit)
}
