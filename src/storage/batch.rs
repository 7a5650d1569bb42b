//! Deciding a batch of writes in memory, the same on every backend: each request is checked
//! against the state of its stream as the batch found it and as the requests before it in the
//! batch left it, and the accepted ones become column arrays to insert. A rejected request
//! changes nothing; the next one sees the versions the accepted ones produced.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use uuid::Uuid;

use super::{WriteOp, WriteRequest, unsigned};
use crate::error::{Error, Result};
use crate::event::AppendResult;

/// A stream's state while a batch is being decided.
pub(crate) struct StreamState {
    pub(crate) id: Option<i64>,
    /// The version as read by the lock statement (the compare-and-set's expected value).
    pub(crate) read_version: i64,
    pub(crate) version: i64,
    pub(crate) deleted: bool,
    /// The batch writes to it.
    pub(crate) touched: bool,
    /// The batch created its row (already at its final version).
    pub(crate) created: bool,
}

impl StreamState {
    pub(crate) fn absent() -> StreamState {
        StreamState { id: None, read_version: 0, version: 0, deleted: false, touched: false, created: false }
    }

    pub(crate) fn read(id: i64, version: i64, deleted: bool) -> StreamState {
        StreamState { id: Some(id), read_version: version, version, deleted, touched: false, created: false }
    }
}

/// The distinct streams of a batch, in first-seen order, and each name's index.
pub(crate) fn stream_slots(requests: &[Arc<WriteRequest>]) -> (Vec<&str>, HashMap<&str, usize>) {
    let mut slots: HashMap<&str, usize> = HashMap::new();
    let mut names: Vec<&str> = Vec::new();
    for request in requests {
        slots.entry(request.stream.as_str()).or_insert_with(|| {
            names.push(request.stream.as_str());
            names.len() - 1
        });
    }
    (names, slots)
}

/// A decided batch: each request's outcome and what to write for the accepted ones.
pub(crate) struct Plan<'a> {
    pub(crate) outcomes: Vec<Result<AppendResult>>,
    pub(crate) events: EventColumns<'a>,
    pub(crate) links: LinkColumns,
    pub(crate) streams: Vec<StreamState>,
    /// The `$all` head after the batch.
    pub(crate) position: i64,
}

/// Decides every request in order against the streams' state, in memory.
pub(crate) fn decide<'a>(
    requests: &'a [Arc<WriteRequest>],
    slots: &HashMap<&str, usize>,
    mut streams: Vec<StreamState>,
    head: i64,
    mut taken_ids: HashSet<Uuid>,
    linkable: &HashMap<Uuid, (i64, i64)>,
    mut existing_links: HashSet<(usize, i64)>,
) -> Plan<'a> {
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
            WriteOp::Link(ids) => decide_link(ids, slot, state, linkable, &mut existing_links, &mut links),
        };
        outcomes.push(outcome);
    }
    Plan { outcomes, events, links, streams, position }
}

/// Column arrays of the events to insert.
#[derive(Default)]
pub(crate) struct EventColumns<'a> {
    pub(crate) position: Vec<i64>,
    pub(crate) event_id: Vec<Uuid>,
    pub(crate) stream_slot: Vec<usize>,
    pub(crate) stream_version: Vec<i64>,
    pub(crate) event_type: Vec<&'a str>,
    pub(crate) content_type: Vec<&'a str>,
    pub(crate) correlation_id: Vec<Option<Uuid>>,
    pub(crate) causation_id: Vec<Option<Uuid>>,
    pub(crate) data: Vec<&'a [u8]>,
    pub(crate) metadata: Vec<Option<&'a [u8]>>,
}

/// Column arrays of the links to insert.
#[derive(Default)]
pub(crate) struct LinkColumns {
    pub(crate) stream_slot: Vec<usize>,
    pub(crate) link_version: Vec<i64>,
    pub(crate) position: Vec<i64>,
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
pub(crate) fn result_of<R>(
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

pub(crate) fn appended_ids(requests: &[Arc<WriteRequest>]) -> impl Iterator<Item = Uuid> + '_ {
    requests
        .iter()
        .filter_map(|r| match &r.op {
            WriteOp::Append(events) => Some(events.iter().map(|e| e.event_id)),
            WriteOp::Link(_) => None,
        })
        .flatten()
}

/// What a batch with links needs to know before deciding them: each linked event (id ->
/// position, stream) and which of their positions the target streams already link.
pub(crate) type LinkLookups = (HashMap<Uuid, (i64, i64)>, HashSet<(usize, i64)>);

/// The ids of every event the batch links, in order.
pub(crate) fn linked_ids(requests: &[Arc<WriteRequest>]) -> Vec<Uuid> {
    requests
        .iter()
        .filter_map(|r| match &r.op {
            WriteOp::Link(ids) => Some(ids.iter().copied()),
            WriteOp::Append(_) => None,
        })
        .flatten()
        .collect()
}

/// The ids of the existing streams the batch links into.
pub(crate) fn link_targets(
    requests: &[Arc<WriteRequest>],
    slots: &HashMap<&str, usize>,
    streams: &[StreamState],
) -> Vec<i64> {
    requests
        .iter()
        .filter(|r| matches!(r.op, WriteOp::Link(_)))
        .filter_map(|r| streams[slots[r.stream.as_str()]].id)
        .collect()
}

/// [`LinkLookups`] from the rows of the linked events (id, position, stream id) and of the
/// existing links (stream id, position).
pub(crate) fn link_lookups(
    linkable: Vec<(Uuid, i64, i64)>,
    existing: Vec<(i64, i64)>,
    streams: &[StreamState],
) -> LinkLookups {
    let linkable = linkable.into_iter().map(|(id, pos, sid)| (id, (pos, sid))).collect();
    let existing = existing
        .into_iter()
        .filter_map(|(sid, pos)| streams.iter().position(|s| s.id == Some(sid)).map(|slot| (slot, pos)))
        .collect();
    (linkable, existing)
}
