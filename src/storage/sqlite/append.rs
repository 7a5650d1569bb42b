//! The writer's batch on SQLite: many appends and links committed in ONE transaction on the
//! store's write connection.
//!
//! The connection is the only writer (see the module docs of `sqlite`), so the batch reads the
//! `$all` head and its streams, decides every request in memory (`storage::batch`, the same
//! rules as PostgreSQL), and writes what it decided with nothing to compare-and-set: no other
//! write can come between. Events and links go in as multi-row `INSERT`s of at most
//! `ROWS_PER_INSERT` rows, so a batch costs a handful of statements whatever its size.

use std::sync::Arc;

use chrono::Utc;
use sqlx::{Connection, SqliteConnection};
use uuid::Uuid;

use super::SqliteStorage;
use crate::error::{Error, Result};
use crate::event::AppendResult;
use crate::storage::backend::{self, Appends};
use crate::storage::batch::{
    self, LinkLookups, Plan, Slots, StreamState, appended_ids, appends_of, decide, link_targets, linked_ids, result_of,
};
use crate::storage::{Attempt, Wake, WriteOutcome, WriteRequest};

const HEAD: &str = "SELECT stream_version FROM streams WHERE stream_id = 0";

const STREAMS: &str = "SELECT stream_id, stream_uuid, stream_version, deleted_at IS NOT NULL, deleted_version \
     FROM streams WHERE stream_uuid IN (SELECT value FROM json_each(?1))";

const STORED_EVENT_IDS: &str = "SELECT event_id FROM events WHERE event_id IN (SELECT unhex(value) FROM json_each(?1))";

const LINKABLE_EVENTS: &str =
    "SELECT event_id, position, stream_id FROM events WHERE event_id IN (SELECT unhex(value) FROM json_each(?1))";

const EXISTING_LINKS: &str = "SELECT stream_id, position FROM links \
     WHERE stream_id IN (SELECT value FROM json_each(?1)) AND position IN (SELECT value FROM json_each(?2))";

const INSERT_STREAM: &str =
    "INSERT INTO streams (stream_uuid, stream_version, created_at) VALUES (?1, ?2, ?3) RETURNING stream_id";

const BUMP: &str = "UPDATE streams SET stream_version = ?2 WHERE stream_id = ?1";

const EVENT_INSERT: &str = "INSERT INTO events (position, event_id, stream_id, stream_uuid, stream_version, \
     event_type, content_type, correlation_id, causation_id, data, metadata, created_at, category, category_number, \
     type_number) VALUES ";
const EVENT_PARAMS: usize = 15;

const LINK_INSERT: &str = "INSERT INTO links (stream_id, link_version, position, created_at) VALUES ";
const LINK_PARAMS: usize = 4;

/// Rows per multi-row `INSERT` (15 × 128 parameters, far below SQLite's 32,766). Each row count
/// up to this one is a statement of its own in the connection's cache.
const ROWS_PER_INSERT: usize = 128;

const ROWS_OF_EVENTS: &str = "SELECT position, stream_version FROM events \
     WHERE event_id IN (SELECT unhex(value) FROM json_each(?1)) ORDER BY position";

const ROWS_OF_LINKS: &str = "SELECT l.link_version, l.position, e.event_id FROM links l \
     JOIN streams s ON s.stream_id = l.stream_id JOIN events e ON e.position = l.position \
     WHERE s.stream_uuid = ?1 AND l.link_version >= ?2 AND l.link_version < ?2 + ?3 ORDER BY l.link_version";

/// The writer's session on SQLite: nothing to keep, every batch takes its turn on the store's
/// write connection.
#[derive(Debug)]
pub struct WriterSession {
    storage: SqliteStorage,
}

/// What a committed batch announces.
struct Written {
    outcomes: Vec<WriteOutcome>,
    wake: Option<Wake>,
}

impl backend::WriterSession for WriterSession {
    async fn write_batch(&mut self, requests: &[Arc<WriteRequest>]) -> Result<Vec<WriteOutcome>> {
        let written = {
            let mut conn = self.storage.write_connection().await?;
            let mut tx = Connection::begin(&mut *conn).await?;
            match write_locked(&mut tx, requests).await {
                Ok(written) if written.wake.is_some() => {
                    tx.commit().await?;
                    written
                }
                Ok(written) => {
                    tx.rollback().await?;
                    written
                }
                Err(e) => {
                    tx.rollback().await.ok();
                    return Err(e);
                }
            }
        };
        if let Some(wake) = written.wake {
            self.storage.announce(wake);
        }
        Ok(written.outcomes)
    }

    async fn close(self) {}
}

impl Appends for SqliteStorage {
    type WriterSession = WriterSession;

    async fn open_writer_session(&self) -> Result<WriterSession> {
        Ok(WriterSession { storage: self.clone() })
    }

    /// Taking the write connection waits for whatever the writer left in flight on it, so the
    /// answer is final: the request committed exactly when its entries are where its
    /// transaction put them.
    async fn resolve_in_doubt(&self, request: &WriteRequest) -> Result<Option<Vec<AppendResult>>> {
        let Attempt::Embedded { first } = request.progress.attempt() else { return Ok(None) };
        let mut conn = self.write_connection().await?;
        if let Some((stream, ids)) = request.link() {
            let rows: Vec<(i64, i64, Uuid)> = sqlx::query_as(ROWS_OF_LINKS)
                .bind(stream)
                .bind(first)
                .bind(ids.len() as i64)
                .fetch_all(&mut *conn)
                .await?;
            if !rows.iter().map(|r| r.2).eq(ids.iter().copied()) {
                return Ok(None);
            }
            return Ok(result_of(&rows, ids.len(), |(_, pos, _)| *pos, |(v, _, _)| *v)?.map(|result| vec![result]));
        }
        let ids = hex_ids(request.appended_ids());
        let rows: Vec<(i64, i64)> = sqlx::query_as(ROWS_OF_EVENTS).bind(ids).fetch_all(&mut *conn).await?;
        appends_of(request, &rows, first)
    }
}

/// Decides and writes a batch inside its transaction; `wake` is `None` when every request was
/// rejected (nothing to commit).
async fn write_locked(conn: &mut SqliteConnection, requests: &[Arc<WriteRequest>]) -> Result<Written> {
    let slots = Slots::of(requests);
    let names = slots.names();
    let head: i64 = sqlx::query_scalar(HEAD)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| Error::Migration("the `$all` row (stream_id 0) is missing from the streams table".into()))?;
    let mut streams: Vec<StreamState> = names.iter().map(|_| StreamState::absent()).collect();
    let rows: Vec<(i64, String, i64, bool, i64)> =
        sqlx::query_as(STREAMS).bind(json(&names)).fetch_all(&mut *conn).await?;
    for (id, name, version, deleted, deleted_version) in rows {
        if let Some(slot) = slots.get(name.as_str()) {
            streams[slot] = StreamState::read(id, version, deleted, deleted_version);
        }
    }
    let taken: Vec<Uuid> =
        sqlx::query_scalar(STORED_EVENT_IDS).bind(hex_ids(appended_ids(requests))).fetch_all(&mut *conn).await?;
    let (linkable, existing_links) = link_lookups(conn, requests, &slots, &streams).await?;
    let mut plan = decide(requests, &slots, streams, head, taken.into_iter().collect(), &linkable, existing_links);
    if !plan.streams.iter().any(|s| s.touched) {
        return Ok(Written { outcomes: plan.outcomes, wake: None });
    }
    for (request, outcome) in requests.iter().zip(&plan.outcomes) {
        if let Some(r) = outcome.as_ref().ok().and_then(|results| results.first()) {
            // A request's events, over all its parts, are contiguous from its first part's.
            let first = match request.link() {
                Some((_, ids)) => r.stream_version as i64 - ids.len() as i64 + 1,
                None => r.first_position as i64,
            };
            request.progress.record(Attempt::Embedded { first });
        }
    }
    let now = Utc::now();
    for (slot, state) in plan.streams.iter_mut().enumerate() {
        if state.touched && state.id.is_none() {
            let id: i64 = sqlx::query_scalar(INSERT_STREAM)
                .bind(names[slot])
                .bind(state.version)
                .bind(now)
                .fetch_one(&mut *conn)
                .await?;
            state.id = Some(id);
            state.created = true;
        }
    }
    insert_events(conn, &plan, &names, now).await?;
    insert_links(conn, &plan, now).await?;
    for state in plan.streams.iter().filter(|s| s.touched && !s.created) {
        sqlx::query(BUMP).bind(state.id).bind(state.version).execute(&mut *conn).await?;
    }
    if plan.position > head {
        sqlx::query(BUMP).bind(0_i64).bind(plan.position).execute(&mut *conn).await?;
    }
    let last = if plan.position > head { plan.position as u64 } else { 0 };
    let wake = Wake::Committed { last, links: !plan.links.position.is_empty() };
    Ok(Written { outcomes: plan.outcomes, wake: Some(wake) })
}

/// For batches with links: the linked events and the links that exist already.
async fn link_lookups(
    conn: &mut SqliteConnection,
    requests: &[Arc<WriteRequest>],
    slots: &Slots<'_>,
    streams: &[StreamState],
) -> Result<LinkLookups> {
    let linked = linked_ids(requests);
    if linked.is_empty() {
        return Ok(LinkLookups::default());
    }
    let rows: Vec<(Uuid, i64, i64)> =
        sqlx::query_as(LINKABLE_EVENTS).bind(hex_ids(linked.into_iter())).fetch_all(&mut *conn).await?;
    let positions: Vec<i64> = rows.iter().map(|r| r.1).collect();
    let existing: Vec<(i64, i64)> = sqlx::query_as(EXISTING_LINKS)
        .bind(json(&link_targets(requests, slots, streams)))
        .bind(json(&positions))
        .fetch_all(&mut *conn)
        .await?;
    Ok(batch::link_lookups(rows, existing, streams))
}

async fn insert_events(
    conn: &mut SqliteConnection,
    plan: &Plan<'_>,
    names: &[&str],
    now: chrono::DateTime<Utc>,
) -> Result<()> {
    let e = &plan.events;
    let rows: Vec<usize> = (0..e.position.len()).collect();
    for chunk in rows.chunks(ROWS_PER_INSERT) {
        let sql = values_sql(EVENT_INSERT, EVENT_PARAMS, chunk.len());
        let mut query = sqlx::query(&sql);
        for &i in chunk {
            let slot = e.stream_slot[i];
            query = query
                .bind(e.position[i])
                .bind(e.event_id[i])
                .bind(plan.streams[slot].id)
                .bind(names[slot])
                .bind(e.stream_version[i])
                .bind(e.event_type[i])
                .bind(e.content_type[i])
                .bind(e.correlation_id[i])
                .bind(e.causation_id[i])
                .bind(e.data[i])
                .bind(e.metadata[i])
                .bind(now)
                .bind(e.category[i])
                .bind(e.category_number[i])
                .bind(e.type_number[i]);
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

async fn insert_links(conn: &mut SqliteConnection, plan: &Plan<'_>, now: chrono::DateTime<Utc>) -> Result<()> {
    let l = &plan.links;
    let rows: Vec<usize> = (0..l.position.len()).collect();
    for chunk in rows.chunks(ROWS_PER_INSERT) {
        let sql = values_sql(LINK_INSERT, LINK_PARAMS, chunk.len());
        let mut query = sqlx::query(&sql);
        for &i in chunk {
            query = query.bind(plan.streams[l.stream_slot[i]].id).bind(l.link_version[i]).bind(l.position[i]).bind(now);
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

/// `insert` followed by `rows` groups of `params` placeholders.
fn values_sql(insert: &str, params: usize, rows: usize) -> String {
    let group = format!("({})", vec!["?"; params].join(", "));
    let mut sql = String::with_capacity(insert.len() + rows * (group.len() + 2));
    sql.push_str(insert);
    for row in 0..rows {
        if row > 0 {
            sql.push_str(", ");
        }
        sql.push_str(&group);
    }
    sql
}

/// A JSON array, for `json_each` (SQLite has no array parameters).
pub(super) fn json<T: serde::Serialize>(values: &[T]) -> String {
    serde_json::to_string(values).unwrap_or_else(|_| "[]".into())
}

/// Event ids as a JSON array of hex strings, for `unhex(value)` over `json_each`.
fn hex_ids(ids: impl Iterator<Item = Uuid>) -> String {
    json(&ids.map(|id| id.simple().to_string()).collect::<Vec<_>>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_row_inserts_have_one_group_per_row() {
        assert_eq!(
            values_sql("INSERT INTO t (a, b) VALUES ", 2, 3),
            "INSERT INTO t (a, b) VALUES (?, ?), (?, ?), (?, ?)"
        );
    }

    #[test]
    fn ids_are_sent_as_hex_for_unhex() {
        let id = Uuid::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef);
        assert_eq!(hex_ids([id].into_iter()), "[\"0123456789abcdef0123456789abcdef\"]");
    }
}
