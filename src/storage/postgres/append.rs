//! The writer's batch: many appends and links committed in ONE transaction.
//!
//! **Fast path: one round trip.** The writer remembers (in its [`WriterSession`]) the `$all` head,
//! its fencing `revision`, and the id, version and deleted version of every live stream it has
//! written. A batch of appends to remembered streams is decided in memory and sent as ONE
//! autocommitted statement that compare-and-sets all of it: the `$all` row (head and revision;
//! this takes the `$all` row lock that serialises every appender, held until the statement
//! commits, so positions stay gap-free in commit order) and each stream's version, deleted flag
//! and deleted version. Anything that changed (another node appended, a stream was deleted
//! softly or recreatably, an event id is taken, a caller fenced the revision) makes
//! `batch_check` abort the whole statement, and the batch takes the slow path.
//!
//! **Slow path: four round trips** (five when it creates streams): BEGIN; lock `$all` and read
//! the streams involved; write (new streams, then events, links, version bumps and NOTIFY in one
//! statement of data-modifying CTEs over UNNEST arrays); COMMIT. It is taken for links, for
//! streams the writer has not seen, after a rejection, and whenever the fast path bounces. Stream
//! rows are not locked when read: other appenders wait for `$all`, and what else can change a
//! stream (a delete, or rows that committed after the lock statement's snapshot on a node that
//! waited for another node) is caught by compare-and-set bumps and `ON CONFLICT DO NOTHING`
//! stream creation, after which the batch is decided again on a fresh snapshot.
//!
//! Both paths decide requests in order, in memory (`storage::batch`): a request is all of its
//! parts or none, a rejected request changes nothing, the next one sees the versions the
//! accepted ones produced. Duplicate event ids are caught by `ON CONFLICT DO NOTHING`; fewer
//! events in than sent sends the batch to a slow path that looks the stored ids up first.
//!
//! Statements find rows by `= ANY(array)` or LATERAL lookups rather than joins with the arrays,
//! so their plans stay index probes however large the store grows.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use sqlx::{Connection, PgConnection};
use uuid::Uuid;

use super::PgStorage;
use crate::error::{Error, Result};
use crate::event::AppendResult;
use crate::storage::backend::{self, Appends};
use crate::storage::batch::{
    self, LinkLookups, Plan, Slots, StreamState, appended_ids, appends_of, decide, link_targets, linked_ids, result_of,
};
use crate::storage::{Attempt, WriteOutcome, WriteRequest};

/// Locks `$all` and reads the streams named in `$1`. The stream subquery refers to the outer row
/// so that it runs after `$all` is locked (a lateral nested loop). The stream rows are not
/// locked: the version bump in `WRITE` is a compare-and-set on the versions (and deleted
/// versions) read here.
const LOCK: &str = "SELECT a.stream_version, a.revision, a.txid, \
         s.stream_id, s.stream_uuid, s.stream_version, s.deleted, s.deleted_version \
     FROM (SELECT stream_version, revision, txid_current() AS txid FROM streams WHERE stream_id = 0 FOR UPDATE) a \
     LEFT JOIN LATERAL (SELECT stream_id, stream_uuid, stream_version, deleted_at IS NOT NULL AS deleted, \
             deleted_version \
         FROM streams WHERE stream_uuid = ANY($1) AND a.txid IS NOT NULL) s ON true";

/// Takes the `$all` lock alone. A batch decided again because its streams changed takes it
/// first, so that `LOCK`, a statement of its own, reads the streams on a snapshot taken with the
/// lock held: every append that committed before is in it, and none can commit meanwhile.
const LOCK_ALL: &str = "SELECT 1 FROM streams WHERE stream_id = 0 FOR UPDATE";

const STORED_EVENT_IDS: &str = "SELECT event_id FROM events WHERE event_id = ANY($1)";

const LINKABLE_EVENTS: &str = "SELECT event_id, position, stream_id FROM events WHERE event_id = ANY($1)";

const EXISTING_LINKS: &str = "SELECT stream_id, position FROM links WHERE stream_id = ANY($1) AND position = ANY($2)";

/// Creates the streams a batch appends to first. A stream that exists after all (created by a
/// transaction that committed after the lock statement's snapshot) comes back missing from
/// RETURNING, and the batch is decided again.
const INSERT_STREAMS: &str = "INSERT INTO streams (stream_uuid, stream_version) \
     SELECT * FROM UNNEST($1::text[], $2::bigint[]) ON CONFLICT (stream_uuid) DO NOTHING \
     RETURNING stream_id, stream_uuid";

/// Everything a batch writes (after creating its new streams), in one statement, on both paths.
///
/// - `fence` compare-and-sets the `$all` row (head and revision). On the fast path this takes the
///   `$all` lock; on the slow path the transaction holds it already, so the check holds by
///   construction. The other parts wait for it through `EXISTS`, evaluated once before they
///   touch a row.
/// - events and links skip any unique conflict; fewer in than sent, with the versions holding,
///   means an event id was taken.
/// - `bumped` compare-and-sets each stream's version, deleted flag and deleted version (a
///   recreatable delete from another connection changes only the latter, and makes the stream
///   absent to expected versions the batch checked against it). It finds its rows with
///   `stream_id = ANY(..)` rather than a join with the arrays, so the plan is index lookups
///   whatever the planner thinks of the table (a hash join would read the whole primary key on
///   every batch).
/// - events carry their numbers in their category's and their type's index (`$15`-`$17`); the
///   index streams' rows are bumped with the other streams'.
/// - with `$25` (the fast path, autocommitted) `batch_check` aborts the whole statement unless
///   every part did all it was meant to; the slow path reads the counts and decides itself.
const WRITE: &str = "WITH fence AS ( \
         UPDATE streams SET stream_version = $1 WHERE stream_id = 0 AND stream_version = $2 AND revision = $3 \
         RETURNING 1), \
     inserted_events AS ( \
         INSERT INTO events (position, event_id, stream_id, stream_uuid, stream_version, event_type, content_type, \
             correlation_id, causation_id, data, metadata, category, category_number, type_number) \
         SELECT * FROM UNNEST($4::bigint[], $5::uuid[], $6::bigint[], $7::text[], $8::bigint[], $9::text[], \
             $10::text[], $11::uuid[], $12::uuid[], $13::bytea[], $14::bytea[], $15::text[], $16::bigint[], \
             $17::bigint[]) \
         WHERE EXISTS (SELECT 1 FROM fence) \
         ON CONFLICT DO NOTHING \
         RETURNING 1), \
     inserted_links AS ( \
         INSERT INTO links (stream_id, link_version, position) \
         SELECT * FROM UNNEST($18::bigint[], $19::bigint[], $20::bigint[]) \
         WHERE EXISTS (SELECT 1 FROM fence) \
         ON CONFLICT DO NOTHING \
         RETURNING 1), \
     bumped AS ( \
         UPDATE streams SET stream_version = ($23::bigint[])[array_position($21::bigint[], stream_id)] \
         WHERE stream_id = ANY($21) AND deleted_at IS NULL \
           AND stream_version = ($22::bigint[])[array_position($21::bigint[], stream_id)] \
           AND deleted_version = ($24::bigint[])[array_position($21::bigint[], stream_id)] \
           AND EXISTS (SELECT 1 FROM fence) \
         RETURNING 1), \
     counts AS ( \
         SELECT (SELECT count(*) FROM fence) AS fence, (SELECT count(*) FROM inserted_events) AS events, \
             (SELECT count(*) FROM inserted_links) AS links, (SELECT count(*) FROM bumped) AS bumped) \
     SELECT fence, events, links, bumped, \
         CASE WHEN $25 THEN batch_check(fence = 1 AND events = cardinality($4::bigint[]) \
             AND links = cardinality($18::bigint[]) AND bumped = cardinality($21::bigint[])) END, \
         pg_notify($26, $27) \
     FROM counts";

/// SQLSTATE raised by `batch_check`.
const STALE_BATCH: &str = "CH001";

/// Fences off a fast-path statement that may still be in flight (see `resolve_in_doubt`).
const FENCE: &str = "UPDATE streams SET revision = revision + 1 WHERE stream_id = 0";

const ROWS_OF_EVENTS: &str = "SELECT position, stream_version FROM events WHERE event_id = ANY($1) ORDER BY position";

const TXID_STATUS: &str = "SELECT txid_status($1)";

const ROWS_OF_APPEND: &str = "SELECT position, stream_version FROM events \
     WHERE event_id = ANY($1) AND xmin::text::bigint = $2 ORDER BY position";

const ROWS_OF_LINK: &str = "SELECT l.link_version, l.position FROM links l \
     JOIN streams s ON s.stream_id = l.stream_id JOIN events e ON e.position = l.position \
     WHERE s.stream_uuid = $1 AND e.event_id = ANY($2) AND l.xmin::text::bigint = $3 ORDER BY l.link_version";

/// How a batch finds out about event ids that are already stored.
#[derive(Clone, Copy, PartialEq, Eq)]
enum DuplicateCheck {
    /// Let `ON CONFLICT` find them (no lookup; the common case).
    OnInsert,
    /// Look them up before deciding (after `OnInsert` found some).
    Lookup,
}

/// What deciding and writing a batch came to.
enum Decided {
    /// Something was written: commit.
    Written(Vec<WriteOutcome>),
    /// Every request was rejected: roll back.
    NothingToWrite(Vec<WriteOutcome>),
    /// An event id was already stored: roll back and decide again with `Lookup`.
    DuplicatesFound,
    /// A stream changed between reading and writing it (created, appended to or deleted by a
    /// transaction that committed meanwhile): roll back and decide again on a fresh snapshot.
    StreamsChanged,
}

/// How often a batch is decided again because its streams changed before giving up.
const MAX_REDECISIONS: usize = 3;

/// The writer's own connection (not from the pool: no acquire/release round trips) and what the
/// writer remembers of the store on it, for the fast path.
#[derive(Debug)]
pub struct WriterSession {
    storage: Box<PgStorage>,
    conn: PgConnection,
    cache: WriterCache,
}

impl backend::WriterSession for WriterSession {
    async fn write_batch(&mut self, requests: &[Arc<WriteRequest>]) -> Result<Vec<WriteOutcome>> {
        let WriterSession { storage, conn, cache } = self;
        match storage.try_fast_path(conn, cache, requests).await {
            Ok(Some(outcomes)) => return Ok(outcomes),
            Ok(None) => {}
            Err(e) => {
                cache.clear();
                return Err(e);
            }
        }
        let outcome = storage.slow_path(conn, cache, requests).await;
        if outcome.is_err() {
            cache.clear();
        }
        outcome
    }

    async fn close(self) {
        self.conn.close().await.ok();
    }
}

/// What a writer remembers between batches. Only what it read or wrote itself; a stale entry is
/// harmless (the fast path's compare-and-set bounces) and is dropped.
#[derive(Debug, Default)]
struct WriterCache {
    /// `$all`: (head position, revision).
    all: Option<(i64, i64)>,
    /// Streams the writer saw live (neither deleted softly nor absent after a recreatable
    /// delete): name -> what it saw.
    streams: HashMap<String, KnownStream>,
}

/// A live stream as the writer last saw it: what the fast path compare-and-sets.
#[derive(Debug, Clone, Copy)]
struct KnownStream {
    id: i64,
    version: i64,
    /// The version of its last recreatable delete (0 if none); a new one changes it.
    deleted_version: i64,
}

/// Streams remembered at most; past that the cache starts over.
const MAX_CACHED_STREAMS: usize = 100_000;

impl WriterCache {
    fn clear(&mut self) {
        self.all = None;
        self.streams.clear();
    }

    fn remember(&mut self, name: &str, known: KnownStream) {
        if self.streams.len() >= MAX_CACHED_STREAMS && !self.streams.contains_key(name) {
            self.streams.clear();
        }
        self.streams.insert(name.to_string(), known);
    }

    /// Remembers the state a committed plan leaves behind: the streams it left live.
    fn record(&mut self, names: &[&str], plan: &Plan<'_>, revision: i64) {
        self.all = Some((plan.position, revision));
        for (name, state) in names.iter().zip(&plan.streams) {
            match state.id {
                Some(id) if !state.deleted && !state.deleted_recreatably => self.remember(
                    name,
                    KnownStream { id, version: state.version, deleted_version: state.read_deleted_version },
                ),
                _ => {
                    self.streams.remove(*name);
                }
            }
        }
    }
}

/// How much of a plan the write statement applied.
struct Applied {
    fence: i64,
    events: i64,
    links: i64,
    bumped: i64,
}

impl Appends for PgStorage {
    type WriterSession = WriterSession;

    /// Its own connection, with nothing remembered yet.
    async fn open_writer_session(&self) -> Result<WriterSession> {
        let conn = super::connect_within(&self.connect_options, self.connect_timeout).await?;
        Ok(WriterSession { storage: Box::new(self.clone()), conn, cache: WriterCache::default() })
    }

    async fn resolve_in_doubt(&self, request: &WriteRequest) -> Result<Option<Vec<AppendResult>>> {
        let txid = match request.progress.attempt() {
            // `Embedded` is the SQLite backend's; it never reaches PostgreSQL.
            Attempt::NotStarted | Attempt::Embedded { .. } => return Ok(None),
            Attempt::Fast { first_position } => return self.resolve_fast(request, first_position).await,
            Attempt::Locked { txid } => txid,
        };
        let status = loop {
            let status: Option<String> = match sqlx::query_scalar(TXID_STATUS).bind(txid).fetch_one(&self.pool).await {
                Ok(status) => status,
                // The server crashed before anything of the transaction reached its WAL, so it
                // does not even know the id was handed out: it cannot have committed.
                Err(e) if is_future_txid(&e) => return Ok(None),
                Err(e) => return Err(e.into()),
            };
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
        if let Some((stream, ids)) = request.link() {
            let rows: Vec<(i64, i64)> =
                sqlx::query_as(ROWS_OF_LINK).bind(stream).bind(ids).bind(xid32).fetch_all(&self.pool).await?;
            return Ok(result_of(&rows, ids.len(), |(_, pos)| *pos, |(v, _)| *v)?.map(|result| vec![result]));
        }
        let ids: Vec<Uuid> = request.appended_ids().collect();
        let rows: Vec<(i64, i64)> = sqlx::query_as(ROWS_OF_APPEND).bind(&ids).bind(xid32).fetch_all(&self.pool).await?;
        // The transaction committed: the rows it wrote are the request's, at the positions it
        // gave them.
        match rows.first() {
            Some(&(first, _)) => appends_of(request, &rows, first),
            None => Ok(None),
        }
    }
}

/// Whether `txid_status` refused an id as "in the future": after a crash, the id of a
/// transaction none of whose records were written before it (PostgreSQL's
/// `invalid_parameter_value`).
fn is_future_txid(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(e)
        if e.code().as_deref() == Some("22023") && e.message().contains("in the future"))
}

impl PgStorage {
    /// Commits the batch with one statement if the writer knows every stream in it and every
    /// request is accepted; `Ok(None)` sends the batch to the slow path.
    async fn try_fast_path(
        &self,
        conn: &mut PgConnection,
        cache: &mut WriterCache,
        requests: &[Arc<WriteRequest>],
    ) -> Result<Option<Vec<WriteOutcome>>> {
        let Some((head, revision)) = cache.all else { return Ok(None) };
        if requests.iter().any(|r| r.link().is_some()) {
            return Ok(None);
        }
        let slots = Slots::of(requests);
        let names = slots.names();
        let mut streams = Vec::with_capacity(names.len());
        for name in &names {
            let Some(known) = cache.streams.get(*name) else { return Ok(None) };
            streams.push(StreamState::read(known.id, known.version, false, known.deleted_version));
        }
        let plan = decide(requests, &slots, streams, head, HashSet::new(), &HashMap::new(), HashSet::new());
        if plan.outcomes.iter().any(Result::is_err) {
            // A rejection may come from a stale cache: let the slow path check it for real.
            return Ok(None);
        }
        for (request, outcome) in requests.iter().zip(&plan.outcomes) {
            // A request's events, over all its parts, are contiguous from its first part's.
            if let Some(first) = outcome.as_ref().ok().and_then(|results| results.first()) {
                request.progress.record(Attempt::Fast { first_position: first.first_position as i64 });
            }
        }
        match self.apply(conn, &plan, &names, head, revision, true).await {
            Ok(_) => {
                cache.record(&names, &plan, revision);
                Ok(Some(plan.outcomes))
            }
            Err(Error::Database(sqlx::Error::Database(e))) if e.code().as_deref() == Some(STALE_BATCH) => {
                tracing::debug!("fast path bounced: the store changed since the writer last saw it");
                for request in requests {
                    request.progress.record(Attempt::NotStarted);
                }
                cache.clear();
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Runs `WRITE` for a decided plan. With `abort_on_mismatch` the statement aborts itself
    /// (SQLSTATE `CH001`) unless it applied everything.
    async fn apply(
        &self,
        conn: &mut PgConnection,
        plan: &Plan<'_>,
        names: &[&str],
        head: i64,
        revision: i64,
        abort_on_mismatch: bool,
    ) -> Result<Applied> {
        let stream_id = |slot: usize| {
            plan.streams[slot].id.ok_or_else(|| Error::Unavailable(format!("stream `{}` has no row", names[slot])))
        };
        let events = &plan.events;
        let event_stream_ids: Vec<i64> = events.stream_slot.iter().map(|&s| stream_id(s)).collect::<Result<_>>()?;
        let event_stream_names: Vec<&str> = events.stream_slot.iter().map(|&s| names[s]).collect();
        let link_stream_ids: Vec<i64> = plan.links.stream_slot.iter().map(|&s| stream_id(s)).collect::<Result<_>>()?;
        // Streams the batch created are already at their final version.
        let bumps: Vec<&StreamState> = plan.streams.iter().filter(|s| s.touched && !s.created).collect();
        let bump_ids: Vec<i64> = bumps.iter().filter_map(|s| s.id).collect();
        let bump_read: Vec<i64> = bumps.iter().map(|s| s.read_version).collect();
        let bump_new: Vec<i64> = bumps.iter().map(|s| s.version).collect();
        let bump_read_deleted: Vec<i64> = bumps.iter().map(|s| s.read_deleted_version).collect();
        // `first,last,links` (see `subscriptions::parse_payload`): the positions the batch took
        // (`0,0` for links only) and whether it linked events into streams.
        let links = u8::from(!plan.links.link_version.is_empty());
        let payload = if plan.position > head {
            format!("{},{},{links}", head + 1, plan.position)
        } else {
            format!("0,0,{links}")
        };
        let (fence, events_in, links_in, bumped, _, ()): (i64, i64, i64, i64, Option<bool>, ()) = sqlx::query_as(WRITE)
            .bind(plan.position)
            .bind(head)
            .bind(revision)
            .bind(&events.position)
            .bind(&events.event_id)
            .bind(&event_stream_ids)
            .bind(&event_stream_names)
            .bind(&events.stream_version)
            .bind(&events.event_type)
            .bind(&events.content_type)
            .bind(&events.correlation_id)
            .bind(&events.causation_id)
            .bind(&events.data)
            .bind(&events.metadata)
            .bind(&events.category)
            .bind(&events.category_number)
            .bind(&events.type_number)
            .bind(&link_stream_ids)
            .bind(&plan.links.link_version)
            .bind(&plan.links.position)
            .bind(&bump_ids)
            .bind(&bump_read)
            .bind(&bump_new)
            .bind(&bump_read_deleted)
            .bind(abort_on_mismatch)
            .bind(self.channel())
            .bind(payload)
            .fetch_one(&mut *conn)
            .await?;
        Ok(Applied { fence, events: events_in, links: links_in, bumped })
    }

    async fn slow_path(
        &self,
        conn: &mut PgConnection,
        cache: &mut WriterCache,
        requests: &[Arc<WriteRequest>],
    ) -> Result<Vec<WriteOutcome>> {
        let mut check = DuplicateCheck::OnInsert;
        let mut redecided = 0;
        loop {
            let mut tx = conn.begin().await?;
            let decided = self.decide_and_write(&mut tx, cache, requests, check, redecided > 0).await;
            match decided {
                Ok(Decided::Written(outcomes)) => {
                    tx.commit().await?;
                    return Ok(outcomes);
                }
                Ok(Decided::NothingToWrite(outcomes)) => {
                    tx.rollback().await?;
                    return Ok(outcomes);
                }
                Ok(Decided::DuplicatesFound) if check == DuplicateCheck::OnInsert => {
                    tx.rollback().await?;
                    check = DuplicateCheck::Lookup;
                }
                Ok(Decided::DuplicatesFound) => {
                    tx.rollback().await?;
                    return Err(Error::Unavailable("an event id was stored concurrently; retry".into()));
                }
                Ok(Decided::StreamsChanged) if redecided < MAX_REDECISIONS => {
                    tx.rollback().await?;
                    redecided += 1;
                }
                Ok(Decided::StreamsChanged) => {
                    tx.rollback().await?;
                    return Err(Error::Unavailable("the streams kept changing under the batch; retry".into()));
                }
                Err(e) => {
                    tx.rollback().await.ok();
                    return Err(e);
                }
            }
        }
    }

    async fn decide_and_write(
        &self,
        tx: &mut PgConnection,
        cache: &mut WriterCache,
        requests: &[Arc<WriteRequest>],
        check: DuplicateCheck,
        lock_first: bool,
    ) -> Result<Decided> {
        if lock_first {
            sqlx::query(LOCK_ALL).execute(&mut *tx).await?;
        }
        let slots = Slots::of(requests);
        let names = slots.names();
        let mut streams: Vec<StreamState> = names.iter().map(|_| StreamState::absent()).collect();

        type LockRow = (i64, i64, i64, Option<i64>, Option<String>, Option<i64>, Option<bool>, Option<i64>);
        let locked: Vec<LockRow> = sqlx::query_as(LOCK).bind(&names).fetch_all(&mut *tx).await?;
        let (head, revision, txid) = locked
            .first()
            .map(|r| (r.0, r.1, r.2))
            .ok_or_else(|| Error::Migration("the `$all` row (stream_id 0) is missing from the streams table".into()))?;
        for request in requests {
            request.progress.record(Attempt::Locked { txid });
        }
        for row in locked {
            if let (_, _, _, Some(id), Some(name), Some(version), Some(deleted), Some(deleted_version)) = row
                && let Some(slot) = slots.get(name.as_str())
            {
                streams[slot] = StreamState::read(id, version, deleted, deleted_version);
            }
        }

        let taken_ids: HashSet<Uuid> = match check {
            DuplicateCheck::OnInsert => HashSet::new(),
            DuplicateCheck::Lookup => {
                let ids: Vec<Uuid> = appended_ids(requests).collect();
                sqlx::query_scalar(STORED_EVENT_IDS).bind(&ids).fetch_all(&mut *tx).await?.into_iter().collect()
            }
        };
        let (linkable, existing_links) = self.link_lookups(tx, requests, &slots, &streams).await?;
        let mut plan = decide(requests, &slots, streams, head, taken_ids, &linkable, existing_links);

        if !plan.streams.iter().any(|s| s.touched) {
            return Ok(Decided::NothingToWrite(plan.outcomes));
        }

        let is_new = |s: &StreamState| s.touched && s.id.is_none();
        let new_names: Vec<&str> =
            names.iter().zip(&plan.streams).filter(|(_, s)| is_new(s)).map(|(n, _)| *n).collect();
        if !new_names.is_empty() {
            let new_versions: Vec<i64> = plan.streams.iter().filter(|s| is_new(s)).map(|s| s.version).collect();
            let created: Vec<(i64, String)> =
                sqlx::query_as(INSERT_STREAMS).bind(&new_names).bind(&new_versions).fetch_all(&mut *tx).await?;
            if created.len() < new_names.len() {
                return Ok(Decided::StreamsChanged);
            }
            for (id, name) in created {
                let Some(slot) = slots.get(name.as_str()) else { continue };
                let state = &mut plan.streams[slot];
                state.id = Some(id);
                state.created = true;
            }
        }

        let applied = self.apply(tx, &plan, &names, head, revision, false).await?;
        let bumps = plan.streams.iter().filter(|s| s.touched && !s.created).count();
        if applied.fence != 1
            || applied.bumped as usize != bumps
            || (applied.links as usize) < plan.links.position.len()
        {
            return Ok(Decided::StreamsChanged);
        }
        if (applied.events as usize) < plan.events.position.len() {
            // The versions held, so a skipped event collided on its id.
            return Ok(Decided::DuplicatesFound);
        }
        // Remembered for the fast path once the transaction commits (a failed commit clears it).
        cache.record(&names, &plan, revision);
        Ok(Decided::Written(plan.outcomes))
    }

    /// For batches with links: the linked events (id -> position, stream) and which of their
    /// positions the target streams already link.
    async fn link_lookups(
        &self,
        tx: &mut PgConnection,
        requests: &[Arc<WriteRequest>],
        slots: &Slots<'_>,
        streams: &[StreamState],
    ) -> Result<LinkLookups> {
        let linked = linked_ids(requests);
        if linked.is_empty() {
            return Ok(LinkLookups::default());
        }
        let rows: Vec<(Uuid, i64, i64)> = sqlx::query_as(LINKABLE_EVENTS).bind(&linked).fetch_all(&mut *tx).await?;
        let positions: Vec<i64> = rows.iter().map(|r| r.1).collect();
        let existing: Vec<(i64, i64)> = sqlx::query_as(EXISTING_LINKS)
            .bind(link_targets(requests, slots, streams))
            .bind(&positions)
            .fetch_all(&mut *tx)
            .await?;
        Ok(batch::link_lookups(rows, existing, streams))
    }
}

impl PgStorage {
    /// A fast-path statement commits or not as a whole, by itself, even when its writer is gone.
    /// Bumping the `$all` revision first fences it: if it has not reached the `$all` row yet, its
    /// compare-and-set now fails; if it holds the row, the bump waits for it to finish. After
    /// that, the request committed exactly when its events are at the positions it was given.
    async fn resolve_fast(&self, request: &WriteRequest, first_position: i64) -> Result<Option<Vec<AppendResult>>> {
        sqlx::query(FENCE).execute(&self.pool).await?;
        let ids: Vec<Uuid> = request.appended_ids().collect();
        let rows: Vec<(i64, i64)> = sqlx::query_as(ROWS_OF_EVENTS).bind(&ids).fetch_all(&self.pool).await?;
        appends_of(request, &rows, first_position)
    }
}
