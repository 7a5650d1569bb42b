//! The writer's batch: many appends and links committed in ONE transaction.
//!
//! Order of work inside the transaction, and why:
//! 1. lock the `$all` row first (`FOR UPDATE`): it holds the last global position, and holding
//!    it until commit serialises every appender of every node, so positions are handed out
//!    gap-free in commit order. Taking it first also fixes the lock order (`$all`, then
//!    streams), so writers never deadlock each other;
//! 2. lock the rows of the streams involved and read their versions;
//! 3. look up which event ids already exist (and, for links, the linked events);
//! 4. decide every request in order, in memory: a rejected request changes nothing, the next
//!    one sees the versions the accepted ones produced;
//! 5. insert new streams, events and links with one statement each (UNNEST arrays: one SQL text
//!    for any batch size), bump versions, NOTIFY, commit.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use sqlx::PgConnection;
use uuid::Uuid;

use super::{PgStorage, unsigned};
use crate::error::{Error, Result};
use crate::event::AppendResult;
use crate::storage::{WriteOp, WriteRequest};

const LOCK_ALL: &str = "SELECT stream_version, txid_current() FROM streams WHERE stream_id = 0 FOR UPDATE";

const LOCK_STREAMS: &str = "SELECT stream_id, stream_uuid, stream_version, deleted_at IS NOT NULL \
     FROM streams WHERE stream_uuid = ANY($1) FOR UPDATE";

const STORED_EVENT_IDS: &str = "SELECT event_id FROM events WHERE event_id = ANY($1)";

const LINKABLE_EVENTS: &str = "SELECT event_id, position, stream_id FROM events WHERE event_id = ANY($1)";

const EXISTING_LINKS: &str = "SELECT stream_id, position FROM links WHERE stream_id = ANY($1) AND position = ANY($2)";

const INSERT_STREAMS: &str = "INSERT INTO streams (stream_uuid, stream_version) \
     SELECT * FROM UNNEST($1::text[], $2::bigint[]) RETURNING stream_id, stream_uuid";

const INSERT_EVENTS: &str = "INSERT INTO events (position, event_id, stream_id, stream_uuid, stream_version, \
     event_type, content_type, correlation_id, causation_id, data, metadata) \
     SELECT * FROM UNNEST($1::bigint[], $2::uuid[], $3::bigint[], $4::text[], $5::bigint[], \
     $6::text[], $7::text[], $8::uuid[], $9::uuid[], $10::bytea[], $11::bytea[])";

const INSERT_LINKS: &str = "INSERT INTO links (stream_id, link_version, position) \
     SELECT * FROM UNNEST($1::bigint[], $2::bigint[], $3::bigint[])";

/// Bumps stream versions (and the `$all` head, as stream 0) and notifies, in one round trip.
/// A data-modifying CTE always runs to completion, even though the SELECT does not read it.
const BUMP_VERSIONS_AND_NOTIFY: &str = "WITH bumped AS ( \
     UPDATE streams s SET stream_version = u.version \
     FROM UNNEST($1::bigint[], $2::bigint[]) AS u(stream_id, version) WHERE s.stream_id = u.stream_id) \
     SELECT pg_notify($3, $4)";

const TXID_STATUS: &str = "SELECT txid_status($1)";

const ROWS_OF_APPEND: &str = "SELECT position, stream_version FROM events \
     WHERE event_id = ANY($1) AND xmin::text::bigint = $2 ORDER BY position";

const ROWS_OF_LINK: &str = "SELECT l.link_version, l.position FROM links l \
     JOIN streams s ON s.stream_id = l.stream_id JOIN events e ON e.position = l.position \
     WHERE s.stream_uuid = $1 AND e.event_id = ANY($2) AND l.xmin::text::bigint = $3 ORDER BY l.link_version";

/// Whether a decided batch has anything to commit.
enum Written {
    Nothing,
    Something,
}

/// A stream's state while a batch is being decided.
struct StreamState {
    id: Option<i64>,
    version: i64,
    deleted: bool,
    touched: bool,
}

/// Column arrays of the events to insert. `stream_slot` points into the list of streams so that
/// ids of streams created by this batch can be filled in once they are known.
#[derive(Default)]
struct EventColumns<'a> {
    position: Vec<i64>,
    event_id: Vec<Uuid>,
    stream_slot: Vec<usize>,
    stream_uuid: Vec<&'a str>,
    stream_version: Vec<i64>,
    event_type: Vec<&'a str>,
    content_type: Vec<&'a str>,
    correlation_id: Vec<Option<Uuid>>,
    causation_id: Vec<Option<Uuid>>,
    data: Vec<&'a [u8]>,
    metadata: Vec<Option<&'a [u8]>>,
}

#[derive(Default)]
struct LinkColumns {
    stream_slot: Vec<usize>,
    link_version: Vec<i64>,
    position: Vec<i64>,
}

impl PgStorage {
    /// Commits `requests` in one transaction. The outer `Err` means the transaction failed and
    /// nothing was written; otherwise each request has its own outcome, in order.
    pub async fn write_batch(&self, requests: &[Arc<WriteRequest>]) -> Result<Vec<Result<AppendResult>>> {
        let mut tx = self.pool.begin().await?;
        match self.decide_and_insert(&mut tx, requests).await {
            Ok((outcomes, Written::Something)) => {
                tx.commit().await?;
                Ok(outcomes)
            }
            Ok((outcomes, Written::Nothing)) => {
                tx.rollback().await?;
                Ok(outcomes)
            }
            Err(e) => {
                // Roll back right away rather than when the pool next touches the connection:
                // until then the `$all` lock would stay held.
                tx.rollback().await.ok();
                Err(e)
            }
        }
    }

    async fn decide_and_insert(
        &self,
        tx: &mut PgConnection,
        requests: &[Arc<WriteRequest>],
    ) -> Result<(Vec<Result<AppendResult>>, Written)> {
        let (head, txid): (i64, i64) = sqlx::query_as(LOCK_ALL).fetch_one(&mut *tx).await?;
        for request in requests {
            request.progress.record_txid(txid);
        }

        let mut slots: HashMap<&str, usize> = HashMap::new();
        let mut names: Vec<&str> = Vec::new();
        for request in requests {
            slots.entry(request.stream.as_str()).or_insert_with(|| {
                names.push(request.stream.as_str());
                names.len() - 1
            });
        }
        let mut streams: Vec<StreamState> =
            names.iter().map(|_| StreamState { id: None, version: 0, deleted: false, touched: false }).collect();
        let locked: Vec<(i64, String, i64, bool)> =
            sqlx::query_as(LOCK_STREAMS).bind(&names).fetch_all(&mut *tx).await?;
        for (id, name, version, deleted) in locked {
            if let Some(&slot) = slots.get(name.as_str()) {
                streams[slot] = StreamState { id: Some(id), version, deleted, touched: false };
            }
        }

        let appended_ids: Vec<Uuid> = requests
            .iter()
            .filter_map(|r| match &r.op {
                WriteOp::Append(events) => Some(events.iter().map(|e| e.event_id)),
                WriteOp::Link(_) => None,
            })
            .flatten()
            .collect();
        let mut taken_ids: HashSet<Uuid> = if appended_ids.is_empty() {
            HashSet::new()
        } else {
            sqlx::query_scalar(STORED_EVENT_IDS).bind(&appended_ids).fetch_all(&mut *tx).await?.into_iter().collect()
        };

        let linked_ids: Vec<Uuid> = requests
            .iter()
            .filter_map(|r| match &r.op {
                WriteOp::Link(ids) => Some(ids.iter().copied()),
                WriteOp::Append(_) => None,
            })
            .flatten()
            .collect();
        let (linkable, mut existing_links) = if linked_ids.is_empty() {
            (HashMap::new(), HashSet::new())
        } else {
            let rows: Vec<(Uuid, i64, i64)> =
                sqlx::query_as(LINKABLE_EVENTS).bind(&linked_ids).fetch_all(&mut *tx).await?;
            let positions: Vec<i64> = rows.iter().map(|r| r.1).collect();
            let target_ids: Vec<i64> = requests
                .iter()
                .filter(|r| matches!(r.op, WriteOp::Link(_)))
                .filter_map(|r| streams[slots[r.stream.as_str()]].id)
                .collect();
            let existing: Vec<(i64, i64)> =
                sqlx::query_as(EXISTING_LINKS).bind(&target_ids).bind(&positions).fetch_all(&mut *tx).await?;
            let linkable: HashMap<Uuid, (i64, i64)> = rows.into_iter().map(|(id, pos, sid)| (id, (pos, sid))).collect();
            let existing: HashSet<(usize, i64)> = existing
                .into_iter()
                .filter_map(|(sid, pos)| streams.iter().position(|s| s.id == Some(sid)).map(|slot| (slot, pos)))
                .collect();
            (linkable, existing)
        };

        let mut position = head;
        let mut events = EventColumns::default();
        let mut links = LinkColumns::default();
        let mut outcomes = Vec::with_capacity(requests.len());
        for request in requests {
            let slot = slots[request.stream.as_str()];
            let state = &mut streams[slot];
            let current = (state.version > 0).then_some(state.version as u64);
            if let Err(e) = request.expected.check(current, state.deleted) {
                outcomes.push(Err(e));
                continue;
            }
            let outcome = match &request.op {
                WriteOp::Append(batch) => {
                    let mut seen = HashSet::with_capacity(batch.len());
                    match batch.iter().find(|e| taken_ids.contains(&e.event_id) || !seen.insert(e.event_id)) {
                        Some(dup) => Err(Error::DuplicateEvent(dup.event_id)),
                        None => {
                            taken_ids.extend(seen);
                            let first_position = position + 1;
                            for e in batch {
                                position += 1;
                                state.version += 1;
                                events.position.push(position);
                                events.event_id.push(e.event_id);
                                events.stream_slot.push(slot);
                                events.stream_uuid.push(&request.stream);
                                events.stream_version.push(state.version);
                                events.event_type.push(&e.event_type);
                                events.content_type.push(&e.content_type);
                                events.correlation_id.push(e.correlation_id);
                                events.causation_id.push(e.causation_id);
                                events.data.push(&e.data);
                                events.metadata.push(e.metadata.as_deref());
                            }
                            state.touched = true;
                            Ok(AppendResult {
                                stream_version: state.version as u64,
                                first_position: first_position as u64,
                                last_position: position as u64,
                            })
                        }
                    }
                }
                WriteOp::Link(ids) => decide_link(ids, slot, state, &linkable, &mut existing_links, &mut links),
            };
            outcomes.push(outcome);
        }

        if !streams.iter().any(|s| s.touched) {
            return Ok((outcomes, Written::Nothing));
        }

        let new_slots: Vec<usize> =
            (0..streams.len()).filter(|&i| streams[i].touched && streams[i].id.is_none()).collect();
        if !new_slots.is_empty() {
            let new_names: Vec<&str> = new_slots.iter().map(|&i| names[i]).collect();
            let new_versions: Vec<i64> = new_slots.iter().map(|&i| streams[i].version).collect();
            let created: Vec<(i64, String)> =
                sqlx::query_as(INSERT_STREAMS).bind(&new_names).bind(&new_versions).fetch_all(&mut *tx).await?;
            for (id, name) in created {
                streams[slots[name.as_str()]].id = Some(id);
            }
        }
        let stream_id =
            |slot: usize| streams[slot].id.ok_or_else(|| Error::Unavailable("stream row was not created".into()));

        if !events.position.is_empty() {
            let ids: Vec<i64> = events.stream_slot.iter().map(|&s| stream_id(s)).collect::<Result<_>>()?;
            sqlx::query(INSERT_EVENTS)
                .bind(&events.position)
                .bind(&events.event_id)
                .bind(&ids)
                .bind(&events.stream_uuid)
                .bind(&events.stream_version)
                .bind(&events.event_type)
                .bind(&events.content_type)
                .bind(&events.correlation_id)
                .bind(&events.causation_id)
                .bind(&events.data)
                .bind(&events.metadata)
                .execute(&mut *tx)
                .await?;
        }
        if !links.position.is_empty() {
            let ids: Vec<i64> = links.stream_slot.iter().map(|&s| stream_id(s)).collect::<Result<_>>()?;
            sqlx::query(INSERT_LINKS)
                .bind(&ids)
                .bind(&links.link_version)
                .bind(&links.position)
                .execute(&mut *tx)
                .await?;
        }

        let mut bump_ids = vec![0_i64];
        let mut bump_versions = vec![position];
        for (slot, state) in streams.iter().enumerate() {
            if state.touched && !new_slots.contains(&slot) {
                bump_ids.push(stream_id(slot)?);
                bump_versions.push(state.version);
            }
        }
        let payload = if position > head { format!("{},{}", head + 1, position) } else { String::new() };
        sqlx::query(BUMP_VERSIONS_AND_NOTIFY)
            .bind(&bump_ids)
            .bind(&bump_versions)
            .bind(self.channel())
            .bind(payload)
            .execute(&mut *tx)
            .await?;
        Ok((outcomes, Written::Something))
    }

    /// Finds out what became of a request whose writer stopped before replying.
    ///
    /// `Ok(Some(result))`: it committed. `Ok(None)`: nothing of it was stored. `Err`: the
    /// outcome could not be learned (the database is unreachable).
    pub async fn resolve_in_doubt(&self, request: &WriteRequest) -> Result<Option<AppendResult>> {
        let Some(txid) = request.progress.txid() else {
            // The transaction never held the `$all` lock, so it cannot have committed: every
            // path to COMMIT goes through that lock.
            return Ok(None);
        };
        let status = loop {
            let status: Option<String> = sqlx::query_scalar(TXID_STATUS).bind(txid).fetch_one(&self.pool).await?;
            match status.as_deref() {
                Some("in progress") => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
                other => break other.map(str::to_string),
            }
        };
        if status.as_deref() != Some("committed") {
            return Ok(None);
        }
        // xmin holds the 32-bit xid of the inserting transaction.
        let xid32 = txid & 0xFFFF_FFFF;
        match &request.op {
            WriteOp::Append(events) => {
                let ids: Vec<Uuid> = events.iter().map(|e| e.event_id).collect();
                let rows: Vec<(i64, i64)> =
                    sqlx::query_as(ROWS_OF_APPEND).bind(&ids).bind(xid32).fetch_all(&self.pool).await?;
                Ok(result_of(&rows, events.len(), |(pos, _)| *pos, |(_, v)| *v)?)
            }
            WriteOp::Link(ids) => {
                let rows: Vec<(i64, i64)> = sqlx::query_as(ROWS_OF_LINK)
                    .bind(&request.stream)
                    .bind(ids)
                    .bind(xid32)
                    .fetch_all(&self.pool)
                    .await?;
                Ok(result_of(&rows, ids.len(), |(_, pos)| *pos, |(v, _)| *v)?)
            }
        }
    }
}

/// Decides one link request against the batch state.
fn decide_link(
    ids: &[Uuid],
    slot: usize,
    state: &mut StreamState,
    linkable: &HashMap<Uuid, (i64, i64)>,
    existing: &mut HashSet<(usize, i64)>,
    links: &mut LinkColumns,
) -> Result<AppendResult> {
    let mut positions = Vec::with_capacity(ids.len());
    let mut seen = HashSet::with_capacity(ids.len());
    for id in ids {
        let &(position, source_stream) = linkable.get(id).ok_or(Error::NotFound)?;
        let own_event = state.id == Some(source_stream);
        if own_event || existing.contains(&(slot, position)) || !seen.insert(position) {
            return Err(Error::DuplicateEvent(*id));
        }
        positions.push(position);
    }
    for &position in &positions {
        state.version += 1;
        existing.insert((slot, position));
        links.stream_slot.push(slot);
        links.link_version.push(state.version);
        links.position.push(position);
    }
    state.touched = true;
    Ok(AppendResult {
        stream_version: state.version as u64,
        first_position: positions.first().copied().unwrap_or_default() as u64,
        last_position: positions.last().copied().unwrap_or_default() as u64,
    })
}

/// Builds the result of a committed request from its rows, or `None` if they are not all there.
fn result_of<R>(
    rows: &[R],
    expected: usize,
    position: impl Fn(&R) -> i64,
    version: impl Fn(&R) -> i64,
) -> Result<Option<AppendResult>> {
    match (rows.first(), rows.last()) {
        (Some(first), Some(last)) if rows.len() == expected => Ok(Some(AppendResult {
            stream_version: unsigned("stream_version", rows.iter().map(&version).max().unwrap_or_default())?,
            first_position: unsigned("position", position(first))?,
            last_position: unsigned("position", position(last))?,
        })),
        _ => Ok(None),
    }
}
