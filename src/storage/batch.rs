//! Deciding a batch of writes in memory, the same on every backend: each request is checked,
//! part by part, against the state of its streams as the batch found them and as the requests
//! (and the request's own parts) before it left them, and the accepted ones become column
//! arrays to insert. A refused request changes nothing: when a part of a multi-part request is
//! refused, what its earlier parts did to the plan is taken back (see [`Mark`]), so the next
//! request sees only the versions the accepted ones produced.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use uuid::Uuid;

use super::{StreamWrite, WriteOp, WriteOutcome, WriteRequest, unsigned};
use crate::error::{Error, Result};
use crate::event::{AppendResult, EventData};
use crate::index::{Indexed, category_of};

/// A stream's state while a batch is being decided.
pub(crate) struct StreamState {
    pub(crate) id: Option<i64>,
    /// The version as read by the lock statement (the compare-and-set's expected value).
    pub(crate) read_version: i64,
    /// The version up to which a recreatable delete removed the stream's entries, as read (0
    /// if it never had one); the compare-and-set checks that it did not change either.
    pub(crate) read_deleted_version: i64,
    pub(crate) version: i64,
    /// Soft-deleted: refused whatever the expected version.
    pub(crate) deleted: bool,
    /// Deleted recreatably and not written to since: it has a row, but expected versions see it
    /// as absent. Its next write continues its numbering, after which it is a stream like any
    /// other.
    pub(crate) deleted_recreatably: bool,
    /// The batch writes to it.
    pub(crate) touched: bool,
    /// The batch created its row (already at its final version).
    pub(crate) created: bool,
}

impl StreamState {
    /// A stream with no row (yet).
    pub(crate) fn absent() -> StreamState {
        StreamState {
            id: None,
            read_version: 0,
            read_deleted_version: 0,
            version: 0,
            deleted: false,
            deleted_recreatably: false,
            touched: false,
            created: false,
        }
    }

    /// A stream as its row says: version, soft-deleted, and the version a recreatable delete
    /// set (`deleted_version`).
    pub(crate) fn read(id: i64, version: i64, deleted: bool, deleted_version: i64) -> StreamState {
        StreamState {
            id: Some(id),
            read_version: version,
            read_deleted_version: deleted_version,
            version,
            deleted,
            deleted_recreatably: deleted_version > 0 && version == deleted_version,
            touched: false,
            created: false,
        }
    }

    /// The version an expected version is checked against: `None` while the stream is absent.
    fn current(&self) -> Option<u64> {
        (self.version > 0 && !self.deleted_recreatably).then_some(self.version as u64)
    }
}

/// The streams a batch writes, each with its slot (its index in the batch's arrays): the
/// requests' own (over every part of every request) and the index streams of the events they
/// append (`$ce-<category>`, `$et-<type>`), in first-seen order.
pub(crate) struct Slots<'a> {
    names: Vec<Cow<'a, str>>,
    by_name: HashMap<Cow<'a, str>, usize>,
    categories: HashMap<&'a str, usize>,
    event_types: HashMap<&'a str, usize>,
}

impl<'a> Slots<'a> {
    /// The streams of `requests`.
    pub(crate) fn of(requests: &'a [Arc<WriteRequest>]) -> Slots<'a> {
        let mut slots = Slots {
            names: Vec::new(),
            by_name: HashMap::new(),
            categories: HashMap::new(),
            event_types: HashMap::new(),
        };
        for part in requests.iter().flat_map(|r| &r.parts) {
            slots.add(Cow::Borrowed(part.stream.as_str()));
            let WriteOp::Append(events) = &part.op else { continue };
            if let Some(category) = category_of(&part.stream)
                && !slots.categories.contains_key(category)
            {
                let slot = slots.add(Cow::Owned(Indexed::Category(category).stream()));
                slots.categories.insert(category, slot);
            }
            for event in events {
                if !slots.event_types.contains_key(event.event_type.as_str()) {
                    let slot = slots.add(Cow::Owned(Indexed::EventType(&event.event_type).stream()));
                    slots.event_types.insert(&event.event_type, slot);
                }
            }
        }
        slots
    }

    fn add(&mut self, name: Cow<'a, str>) -> usize {
        if let Some(&slot) = self.by_name.get(name.as_ref()) {
            return slot;
        }
        self.names.push(name.clone());
        self.by_name.insert(name, self.names.len() - 1);
        self.names.len() - 1
    }

    /// Every stream's name, by slot.
    pub(crate) fn names(&self) -> Vec<&str> {
        self.names.iter().map(AsRef::as_ref).collect()
    }

    /// The slot of a stream of the batch, by name.
    pub(crate) fn get(&self, name: &str) -> Option<usize> {
        self.by_name.get(name).copied()
    }

    /// The slot of a stream the batch's requests write (it has one: `of` gave it).
    fn of_stream(&self, name: &str) -> usize {
        self.by_name[name]
    }
}

/// A decided batch: each request's outcome and what to write for the accepted ones.
pub(crate) struct Plan<'a> {
    pub(crate) outcomes: Vec<WriteOutcome>,
    pub(crate) events: EventColumns<'a>,
    pub(crate) links: LinkColumns,
    pub(crate) streams: Vec<StreamState>,
    /// The `$all` head after the batch.
    pub(crate) position: i64,
}

/// Decides every request in order against the streams' state, in memory.
pub(crate) fn decide<'a>(
    requests: &'a [Arc<WriteRequest>],
    slots: &Slots<'a>,
    streams: Vec<StreamState>,
    head: i64,
    taken_ids: HashSet<Uuid>,
    linkable: &HashMap<Uuid, (i64, i64)>,
    existing_links: HashSet<(usize, i64)>,
) -> Plan<'a> {
    let mut decider = Decider {
        slots,
        linkable,
        taken_ids,
        existing_links,
        streams,
        position: head,
        events: EventColumns::default(),
        links: LinkColumns::default(),
    };
    let outcomes = requests.iter().map(|request| decider.request(request)).collect();
    let Decider { streams, position, events, links, .. } = decider;
    Plan { outcomes, events, links, streams, position }
}

/// The plan while it is being decided, and what it is checked against.
struct Decider<'a, 'b> {
    slots: &'b Slots<'a>,
    /// Every event a link may name: id -> (position, stream id).
    linkable: &'b HashMap<Uuid, (i64, i64)>,
    /// Event ids stored already or taken by the plan.
    taken_ids: HashSet<Uuid>,
    /// Positions linked into each stream (by slot), stored already or by the plan.
    existing_links: HashSet<(usize, i64)>,
    streams: Vec<StreamState>,
    /// The `$all` head, with the plan's events.
    position: i64,
    events: EventColumns<'a>,
    links: LinkColumns,
}

/// The plan as it stood before a multi-part request: what deciding goes back to when one of
/// its parts is refused. Everything else a part changes is at the end of the column arrays,
/// so truncating them (and taking their ids and links out of the sets) undoes it.
struct Mark {
    position: i64,
    events: usize,
    links: usize,
    /// The request's streams (and the index streams of its events) as they were: (slot,
    /// version, deleted recreatably, touched).
    streams: Vec<(usize, i64, bool, bool)>,
}

impl<'a> Decider<'a, '_> {
    /// Decides one request: every part accepted, or none (the refused part's error).
    fn request(&mut self, request: &'a WriteRequest) -> WriteOutcome {
        // A part checks everything before it changes anything, so a request of one part has
        // nothing to undo: no mark.
        let mark = (request.parts.len() > 1).then(|| self.mark(request));
        let mut results = Vec::with_capacity(request.parts.len());
        for part in &request.parts {
            match self.part(part) {
                Ok(result) => results.push(result),
                Err(error) => {
                    if let Some(mark) = mark {
                        self.rewind(mark);
                    }
                    return Err(request.refusal(part, error));
                }
            }
        }
        Ok(results)
    }

    fn mark(&self, request: &WriteRequest) -> Mark {
        let mut slots = HashSet::new();
        for part in &request.parts {
            slots.insert(self.slots.of_stream(&part.stream));
            if let WriteOp::Append(events) = &part.op {
                slots.extend(category_of(&part.stream).map(|c| self.slots.categories[c]));
                slots.extend(events.iter().map(|e| self.slots.event_types[e.event_type.as_str()]));
            }
        }
        let streams = slots
            .into_iter()
            .map(|slot| {
                let state = &self.streams[slot];
                (slot, state.version, state.deleted_recreatably, state.touched)
            })
            .collect();
        Mark { position: self.position, events: self.events.len(), links: self.links.len(), streams }
    }

    /// Takes back everything done since `mark`.
    fn rewind(&mut self, mark: Mark) {
        for id in &self.events.event_id[mark.events..] {
            self.taken_ids.remove(id);
        }
        self.events.truncate(mark.events);
        let links = &self.links;
        for link in links.stream_slot[mark.links..].iter().copied().zip(links.position[mark.links..].iter().copied()) {
            self.existing_links.remove(&link);
        }
        self.links.truncate(mark.links);
        self.position = mark.position;
        for (slot, version, deleted_recreatably, touched) in mark.streams {
            let state = &mut self.streams[slot];
            (state.version, state.deleted_recreatably, state.touched) = (version, deleted_recreatably, touched);
        }
    }

    /// Decides one part: checks everything first, then adds it to the plan.
    fn part(&mut self, part: &'a StreamWrite) -> Result<AppendResult> {
        let slot = self.slots.of_stream(&part.stream);
        let state = &self.streams[slot];
        part.expected.check(state.current(), state.deleted)?;
        match &part.op {
            WriteOp::Append(events) => self.append(slot, &part.stream, events),
            WriteOp::Link(ids) => self.link(slot, ids),
        }
    }

    /// Appends `batch` to the stream in `slot`, numbering each event in its category's index
    /// (if the stream has a category) and in its type's.
    fn append(&mut self, slot: usize, stream: &'a str, batch: &'a [EventData]) -> Result<AppendResult> {
        let mut seen = HashSet::with_capacity(batch.len());
        if let Some(dup) = batch.iter().find(|e| self.taken_ids.contains(&e.event_id) || !seen.insert(e.event_id)) {
            return Err(Error::DuplicateEvent(dup.event_id));
        }
        self.taken_ids.extend(seen);
        let category = category_of(stream);
        let category_slot = category.map(|c| self.slots.categories[c]);
        let first_position = self.position + 1;
        for e in batch {
            self.position += 1;
            let version = self.next(slot);
            let category_number = category_slot.map(|s| self.next(s));
            let type_number = self.next(self.slots.event_types[e.event_type.as_str()]);
            let events = &mut self.events;
            events.position.push(self.position);
            events.event_id.push(e.event_id);
            events.stream_slot.push(slot);
            events.stream_version.push(version);
            events.event_type.push(&e.event_type);
            events.content_type.push(&e.content_type);
            events.correlation_id.push(e.correlation_id);
            events.causation_id.push(e.causation_id);
            events.data.push(&e.data);
            events.metadata.push(e.metadata.as_deref());
            events.category.push(category);
            events.category_number.push(category_number);
            events.type_number.push(type_number);
        }
        let state = &mut self.streams[slot];
        state.deleted_recreatably = false;
        Ok(AppendResult {
            stream_version: state.version as u64,
            first_position: first_position as u64,
            last_position: self.position as u64,
        })
    }

    /// The next version of the stream in `slot`, which the batch now writes.
    fn next(&mut self, slot: usize) -> i64 {
        let state = &mut self.streams[slot];
        state.version += 1;
        state.touched = true;
        state.version
    }

    fn link(&mut self, slot: usize, ids: &[Uuid]) -> Result<AppendResult> {
        let state = &mut self.streams[slot];
        let mut positions = Vec::with_capacity(ids.len());
        let mut seen = HashSet::with_capacity(ids.len());
        for id in ids {
            let &(position, source_stream) = self.linkable.get(id).ok_or(Error::NotFound)?;
            let own_event = state.id == Some(source_stream);
            if own_event || self.existing_links.contains(&(slot, position)) || !seen.insert(position) {
                return Err(Error::DuplicateEvent(*id));
            }
            positions.push(position);
        }
        for &position in &positions {
            state.version += 1;
            self.existing_links.insert((slot, position));
            self.links.stream_slot.push(slot);
            self.links.link_version.push(state.version);
            self.links.position.push(position);
        }
        state.touched = true;
        state.deleted_recreatably = false;
        Ok(AppendResult {
            stream_version: state.version as u64,
            first_position: positions.first().copied().unwrap_or_default() as u64,
            last_position: positions.last().copied().unwrap_or_default() as u64,
        })
    }
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
    /// The category of the event's stream, if it has one.
    pub(crate) category: Vec<Option<&'a str>>,
    /// The event's number in its category's index.
    pub(crate) category_number: Vec<Option<i64>>,
    /// The event's number in its type's index.
    pub(crate) type_number: Vec<i64>,
}

impl EventColumns<'_> {
    fn len(&self) -> usize {
        self.position.len()
    }

    /// Keeps the first `len` events.
    fn truncate(&mut self, len: usize) {
        self.position.truncate(len);
        self.event_id.truncate(len);
        self.stream_slot.truncate(len);
        self.stream_version.truncate(len);
        self.event_type.truncate(len);
        self.content_type.truncate(len);
        self.correlation_id.truncate(len);
        self.causation_id.truncate(len);
        self.data.truncate(len);
        self.metadata.truncate(len);
        self.category.truncate(len);
        self.category_number.truncate(len);
        self.type_number.truncate(len);
    }
}

/// Column arrays of the links to insert.
#[derive(Default)]
pub(crate) struct LinkColumns {
    pub(crate) stream_slot: Vec<usize>,
    pub(crate) link_version: Vec<i64>,
    pub(crate) position: Vec<i64>,
}

impl LinkColumns {
    fn len(&self) -> usize {
        self.position.len()
    }

    /// Keeps the first `len` links.
    fn truncate(&mut self, len: usize) {
        self.stream_slot.truncate(len);
        self.link_version.truncate(len);
        self.position.truncate(len);
    }
}

/// Builds the result of a committed write from its rows, or `None` if they are not all there.
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

/// The results of a committed request of appends, from the rows of its events found in the
/// store ((position, version), in position order), or `None` unless every event is there, at
/// contiguous positions from `first` on: its transaction put the events of all its parts
/// there, in order, so the rows are split by the parts' lengths.
pub(crate) fn appends_of(request: &WriteRequest, rows: &[(i64, i64)], first: i64) -> Result<Option<Vec<AppendResult>>> {
    let in_place =
        rows.len() == request.len() && rows.iter().enumerate().all(|(i, (position, _))| *position == first + i as i64);
    if !in_place {
        return Ok(None);
    }
    let mut results = Vec::with_capacity(request.parts.len());
    let mut rest = rows;
    for part in &request.parts {
        let (own, after) = rest.split_at(part.op.len());
        match result_of(own, part.op.len(), |(position, _)| *position, |(_, version)| *version)? {
            Some(result) => results.push(result),
            None => return Ok(None),
        }
        rest = after;
    }
    Ok(Some(results))
}

/// The ids of every event the requests append, in order.
pub(crate) fn appended_ids(requests: &[Arc<WriteRequest>]) -> impl Iterator<Item = Uuid> + '_ {
    requests.iter().flat_map(|r| r.appended_ids())
}

/// What a batch with links needs to know before deciding them: each linked event (id ->
/// position, stream) and which of their positions the target streams already link.
pub(crate) type LinkLookups = (HashMap<Uuid, (i64, i64)>, HashSet<(usize, i64)>);

/// The ids of every event the batch links, in order.
pub(crate) fn linked_ids(requests: &[Arc<WriteRequest>]) -> Vec<Uuid> {
    requests
        .iter()
        .flat_map(|r| &r.parts)
        .filter_map(|p| match &p.op {
            WriteOp::Link(ids) => Some(ids.iter().copied()),
            WriteOp::Append(_) => None,
        })
        .flatten()
        .collect()
}

/// The ids of the existing streams the batch links into.
pub(crate) fn link_targets(requests: &[Arc<WriteRequest>], slots: &Slots<'_>, streams: &[StreamState]) -> Vec<i64> {
    requests
        .iter()
        .flat_map(|r| &r.parts)
        .filter(|p| matches!(p.op, WriteOp::Link(_)))
        .filter_map(|p| streams[slots.of_stream(&p.stream)].id)
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

#[cfg(test)]
mod tests;
