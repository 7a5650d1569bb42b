//! Scavenging on SQLite: one session per store at a time (the store's process holds the file,
//! and a flag keeps a second scavenge of the same store off it). Each batch takes its turn on
//! the write connection in one transaction that holds a row of `hard_delete_permits`, which the
//! immutability triggers let through, and takes it out again before committing; nothing else
//! writes meanwhile, so the retention it reads holds until it commits. Between batches the
//! writer gets the connection back.

use std::sync::atomic::Ordering;

use sqlx::{Connection, SqliteConnection};

use super::SqliteStorage;
use super::append::json;
use crate::error::{Error, Result};
use crate::storage::scavenge::{self as backend, Removed, Scavenging, windows};
use crate::storage::{HIDES_ANYTHING, INFO_FROM, RETENTION_COLUMNS, RetentionRow, commit_or_rollback, unsigned};

const PERMIT: &str = "INSERT INTO hard_delete_permits (permit) VALUES (1)";
const END_PERMIT: &str = "DELETE FROM hard_delete_permits";

/// The windows of the streams a batch works on: `?1` a JSON array of `[id, floor, cutoff]`.
const WINDOWS: &str = "w AS (SELECT json_extract(value, '$[0]') AS stream_id, json_extract(value, '$[1]') AS floor, \
         json_extract(value, '$[2]') AS cutoff FROM json_each(?1))";

/// The positions of the events the windows hide, at most `?2` (-1: all). `CROSS JOIN` keeps
/// the windows the outer loop, so each stream is an index range of `(stream_id, stream_version)`.
const HIDDEN_EVENTS: &str = "hidden AS (SELECT position FROM ( \
         SELECT e.position FROM w CROSS JOIN events e ON e.stream_id = w.stream_id AND e.stream_version < w.floor \
         UNION ALL \
         SELECT e.position FROM w CROSS JOIN events e ON e.stream_id = w.stream_id AND e.stream_version >= w.floor \
         WHERE w.cutoff IS NOT NULL AND julianday(e.created_at) < julianday(w.cutoff) \
     ) LIMIT ?2)";

/// The keys of the links the windows hide in streams of links, at most `?2`.
const HIDDEN_LINKS: &str = "hidden_links AS (SELECT l.stream_id, l.link_version \
         FROM w CROSS JOIN links l ON l.stream_id = w.stream_id \
         WHERE l.link_version < w.floor OR (w.cutoff IS NOT NULL AND julianday(l.created_at) < julianday(w.cutoff)) \
         LIMIT ?2)";

const DELETE_LINKS_TO: &str = "DELETE FROM links WHERE position IN (SELECT value FROM json_each(?1))";

/// A scavenge session: the store, claimed for the session's life.
#[derive(Debug)]
pub struct ScavengeSession {
    storage: SqliteStorage,
}

impl Drop for ScavengeSession {
    /// Also when the scavenge is cancelled half-way: the claim goes with the session.
    fn drop(&mut self) {
        self.storage.inner.scavenging.store(false, Ordering::SeqCst);
    }
}

impl Scavenging for SqliteStorage {
    type ScavengeSession = ScavengeSession;

    async fn open_scavenge(&self) -> Result<ScavengeSession> {
        if self.inner.scavenging.swap(true, Ordering::SeqCst) {
            return Err(Error::Unavailable("a scavenge of this store is already running; let it finish".into()));
        }
        Ok(ScavengeSession { storage: self.clone() })
    }
}

impl backend::ScavengeSession for ScavengeSession {
    async fn count_candidates(&mut self) -> Result<u64> {
        let sql = format!("SELECT count(*) FROM {INFO_FROM} WHERE {HIDES_ANYTHING}");
        unsigned("count", sqlx::query_scalar(&sql).fetch_one(&self.storage.inner.pool).await?)
    }

    async fn candidates(&mut self, after: i64, limit: i64) -> Result<Vec<i64>> {
        let sql = format!(
            "SELECT s.stream_id FROM {INFO_FROM} WHERE s.stream_id > ?1 AND {HIDES_ANYTHING} ORDER BY s.stream_id LIMIT ?2"
        );
        Ok(sqlx::query_scalar(&sql).bind(after).bind(limit).fetch_all(&self.storage.inner.pool).await?)
    }

    async fn remove(&mut self, ids: &[i64], limit: i64) -> Result<Removed> {
        let mut conn = self.storage.write_connection().await?;
        let mut tx = Connection::begin(&mut *conn).await?;
        let outcome = remove_in(&mut tx, ids, limit).await;
        commit_or_rollback(tx, outcome).await
    }

    async fn measure(&mut self, ids: &[i64]) -> Result<Removed> {
        let mut conn = self.storage.inner.pool.acquire().await?;
        let windows = windows_json(&retentions(&mut conn, ids).await?);
        let sql = format!(
            "WITH {WINDOWS}, {HIDDEN_EVENTS}, {HIDDEN_LINKS} SELECT \
                 (SELECT count(*) FROM hidden), \
                 (SELECT COALESCE(sum(length(e.data) + COALESCE(length(e.metadata), 0)), 0) \
                    FROM hidden JOIN events e ON e.position = hidden.position), \
                 (SELECT count(*) FROM (SELECT stream_id, link_version FROM links \
                      WHERE position IN (SELECT position FROM hidden) \
                  UNION SELECT stream_id, link_version FROM hidden_links))"
        );
        let (events, bytes, links): (i64, i64, i64) =
            sqlx::query_as(&sql).bind(windows).bind(-1_i64).fetch_one(&mut *conn).await?;
        Removed::measured(events, links, bytes)
    }

    async fn close(self) {}
}

async fn retentions(conn: &mut SqliteConnection, ids: &[i64]) -> Result<Vec<RetentionRow>> {
    let sql =
        format!("SELECT {RETENTION_COLUMNS} FROM {INFO_FROM} WHERE s.stream_id IN (SELECT value FROM json_each(?1))");
    Ok(sqlx::query_as(&sql).bind(json(ids)).fetch_all(&mut *conn).await?)
}

/// The windows of `rows` now, as the JSON array `WINDOWS` reads.
fn windows_json(rows: &[RetentionRow]) -> String {
    let (ids, floors, cutoffs) = windows(rows);
    let triples: Vec<serde_json::Value> = ids
        .iter()
        .zip(&floors)
        .zip(&cutoffs)
        .map(|((id, floor), cutoff)| serde_json::json!([id, floor, cutoff]))
        .collect();
    json(&triples)
}

async fn remove_in(conn: &mut SqliteConnection, ids: &[i64], limit: i64) -> Result<Removed> {
    let windows = windows_json(&retentions(conn, ids).await?);
    sqlx::query(PERMIT).execute(&mut *conn).await?;
    let events = format!(
        "WITH {WINDOWS}, {HIDDEN_EVENTS} DELETE FROM events WHERE position IN (SELECT position FROM hidden) \
         RETURNING position, stream_id, length(data) + COALESCE(length(metadata), 0)"
    );
    let removed: Vec<(i64, i64, i64)> =
        sqlx::query_as(&events).bind(&windows).bind(limit).fetch_all(&mut *conn).await?;
    let positions: Vec<i64> = removed.iter().map(|(position, _, _)| *position).collect();
    let links_to = sqlx::query(DELETE_LINKS_TO).bind(json(&positions)).execute(&mut *conn).await?.rows_affected();
    let own = format!(
        "WITH {WINDOWS}, {HIDDEN_LINKS} \
         DELETE FROM links WHERE (stream_id, link_version) IN (SELECT stream_id, link_version FROM hidden_links)"
    );
    let own_links = sqlx::query(&own).bind(&windows).bind(limit).execute(&mut *conn).await?.rows_affected();
    sqlx::query(END_PERMIT).execute(&mut *conn).await?;
    Removed::batch(&removed, links_to, own_links, limit)
}
