//! Appends: on PostgreSQL, 1, 10 and 100 concurrent writers, each on its own stream, appending
//! 1 or 100 events per call, and 100 writers contending on 10 streams with
//! `ExpectedVersion::Any`; on SQLite, 1 and 100 writers appending 1 or 100 events per call. On
//! both, 10 writers appending to several streams at once (`append_to_streams`), one event to
//! each of 2 or 10 streams of their own per call.
//!
//! Baseline: the same rows inserted into a copy of chronik's `events` table on the same
//! database. On PostgreSQL one autocommitted statement per append (a one-row `INSERT`, or a
//! 100-row `INSERT … SELECT * FROM UNNEST`), by as many tasks over a pool of the same size; on
//! SQLite one transaction per append (a one-row or a 100-row `INSERT … VALUES`), every task
//! taking its turn on one connection (see `sqlite`). A multi-stream append's baseline is its
//! rows (one per stream) inserted the same way, one statement (transaction) per call. Timed work
//! alternates chronik and raw over three rounds, so load that drifts during the run hits both
//! alike.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use chronik::{ExpectedVersion, StreamAppend};

use crate::measure::{Backend, Group, Measured, Op, Row, Target, Workers};
use crate::payload::{Rows, event, events};
use crate::{Bench, Result};

/// Timed rounds per side (after one warm-up round).
pub const ROUNDS: usize = 3;

/// Writers, events per append, and appends per writer over all rounds in a full run.
type Shape = (usize, u64, usize);

const POSTGRES_SHAPES: [Shape; 6] =
    [(1, 1, 1_500), (10, 1, 300), (100, 1, 100), (1, 100, 300), (10, 100, 60), (100, 100, 9)];

/// SQLite: no batching across transactions on the raw side, one writer at a time.
const SQLITE_SHAPES: [Shape; 4] = [(1, 1, 1_500), (100, 1, 100), (1, 100, 300), (100, 100, 9)];

/// Writers and streams of the contended workload (PostgreSQL only).
const CONTENDED: (usize, usize) = (100, 10);

/// Writers, streams per call (one event each), and calls per writer over all rounds in a full
/// run, of the multi-stream workloads.
const MULTI_STREAM_SHAPES: [(usize, usize, usize); 2] = [(10, 2, 300), (10, 10, 60)];

fn shapes(backend: Backend) -> &'static [Shape] {
    match backend {
        Backend::Postgres => &POSTGRES_SHAPES,
        Backend::Sqlite => &SQLITE_SHAPES,
    }
}

pub fn steps(backend: Backend) -> usize {
    shapes(backend).len() + usize::from(backend == Backend::Postgres) + MULTI_STREAM_SHAPES.len()
}

pub async fn run(bench: &Bench) -> Result<Vec<Row>> {
    let backend = bench.backend();
    let mut rows = Vec::new();
    for &(writers, per_append, appends) in shapes(backend) {
        let appends = if bench.quick { (appends / 5).max(3) } else { appends };
        let name = format!("{writers} writers x {per_append}-event appends");
        bench.step(&name);
        let (chronik, raw) =
            alternate(bench, appends, |bench, appends| own_streams(bench, writers, per_append, appends)).await?;
        let baseline = match (backend, per_append) {
            (Backend::Postgres, 1) => "1-row INSERT per append",
            (Backend::Postgres, _) => "UNNEST INSERT per append",
            (Backend::Sqlite, 1) => "1-row INSERT, 1 tx per append",
            (Backend::Sqlite, _) => "multi-row INSERT, 1 tx per append",
        };
        let mut row = Row::compared(Group::Append, name, chronik, baseline, raw).concurrency(writers);
        row = match (backend, writers, per_append) {
            (_, 1, 100) => row.target(Target::RatioAtLeast(0.5)),
            (Backend::Postgres, 100, 1) => row.target(Target::RatioAtLeast(3.0)),
            _ => row,
        };
        rows.push(row);
    }
    if backend == Backend::Postgres {
        let (writers, streams) = CONTENDED;
        let name = format!("{writers} writers on {streams} streams, Any, 1-event appends");
        bench.step(&name);
        let appends = if bench.quick { 6 } else { 30 };
        let (chronik, raw) =
            alternate(bench, appends, |bench, appends| contended(bench, writers, streams, appends)).await?;
        rows.push(Row::compared(Group::Append, name, chronik, "1-row INSERT per append", raw));
    }
    for (writers, streams, calls) in MULTI_STREAM_SHAPES {
        let calls = if bench.quick { (calls / 5).max(3) } else { calls };
        let name = format!("{writers} writers x {streams}-stream appends, 1 event each");
        bench.step(&name);
        let (chronik, raw) =
            alternate(bench, calls, |bench, calls| multi_stream(bench, writers, streams, calls)).await?;
        let baseline = match backend {
            Backend::Postgres => format!("{streams}-row UNNEST INSERT per call"),
            Backend::Sqlite => format!("{streams}-row INSERT, 1 tx per call"),
        };
        rows.push(Row::compared(Group::Append, name, chronik, &baseline, raw));
    }
    Ok(rows)
}

/// The two sides of one workload: `(chronik, raw)`.
pub type Sides = (Measured, Measured);

/// Runs a warm-up round, then `ROUNDS` timed rounds of both sides in alternating order, each
/// round doing its share of `appends` per writer.
pub async fn alternate<F>(bench: &Bench, appends: usize, workload: F) -> Result<Sides>
where
    F: Fn(&Bench, usize) -> Workload,
{
    let warm_up = workload(bench, (appends / 10).max(1));
    warm_up.chronik.run().await?;
    warm_up.raw.run().await?;
    let (mut chronik, mut raw) = (Measured::default(), Measured::default());
    for round in 0..ROUNDS {
        let share = appends / ROUNDS + usize::from(round < appends % ROUNDS);
        let sides = workload(bench, share.max(1));
        if round % 2 == 0 {
            raw.add(sides.raw.run().await?);
            chronik.add(sides.chronik.run().await?);
        } else {
            chronik.add(sides.chronik.run().await?);
            raw.add(sides.raw.run().await?);
        }
    }
    Ok((chronik, raw))
}

/// Both sides of one round.
pub struct Workload {
    pub chronik: Workers,
    pub raw: Workers,
}

/// `writers` writers, each appending `appends` calls of `per_append` events to a fresh stream of
/// its own, with the exact expected version.
fn own_streams(bench: &Bench, writers: usize, per_append: u64, appends: usize) -> Workload {
    let names = (0..writers).map(|_| bench.fresh_stream().1).collect();
    let chronik = stream_appends(bench, names, per_append, appends);
    Workload { chronik, raw: own_streams_raw(bench, writers, per_append, appends) }
}

/// The raw side of [`own_streams`]: `writers` writers, each inserting `appends` calls of
/// `per_append` rows into a fresh stream of its own.
pub fn own_streams_raw(bench: &Bench, writers: usize, per_append: u64, appends: usize) -> Workers {
    let streams: Arc<Vec<(i64, String)>> = Arc::new((0..writers).map(|_| bench.fresh_stream()).collect());
    let raw_first = bench.payloads((writers * appends) as u64 * per_append);
    let raw = raw_appends(bench, per_append, move |task, i| {
        let (id, name) = streams[task].clone();
        (id, name, i as i64 * per_append as i64, raw_first + (task * appends + i) as u64 * per_append)
    });
    Workers { tasks: writers, per_task: appends, op: raw }
}

/// One writer per stream of `streams` (each new, or at version 0), each appending `appends`
/// calls of `per_append` events to its own with the exact expected version.
pub fn stream_appends(bench: &Bench, streams: Vec<String>, per_append: u64, appends: usize) -> Workers {
    let writers = streams.len();
    let first = bench.payloads((writers * appends) as u64 * per_append);
    let (store, streams) = (bench.store.clone(), Arc::new(streams));
    let op: Op = Arc::new(move |task, i| {
        let (store, stream) = (store.clone(), streams[task].clone());
        let payload = first + (task * appends + i) as u64 * per_append;
        Box::pin(async move {
            let expected = ExpectedVersion::Exact(i as u64 * per_append);
            store.append_to_stream(&stream, expected, events(payload, per_append)).await?;
            Ok(per_append)
        })
    });
    Workers { tasks: writers, per_task: appends, op }
}

/// `writers` writers appending single events to `streams` shared streams with
/// `ExpectedVersion::Any`; the raw side numbers each stream's rows from a shared counter.
fn contended(bench: &Bench, writers: usize, streams: usize, appends: usize) -> Workload {
    let names: Arc<Vec<(i64, String)>> = Arc::new((0..streams).map(|_| bench.fresh_stream()).collect());
    let first = bench.payloads(2 * (writers * appends) as u64);
    let store = bench.store.clone();
    let chronik_names = Arc::clone(&names);
    let chronik: Op = Arc::new(move |task, i| {
        let (store, stream) = (store.clone(), chronik_names[(task + i) % chronik_names.len()].1.clone());
        let payload = first + (task * appends + i) as u64;
        Box::pin(async move {
            store.append_to_stream(&stream, ExpectedVersion::Any, vec![event(payload)]).await?;
            Ok(1)
        })
    });
    let versions: Arc<Vec<std::sync::atomic::AtomicI64>> =
        Arc::new((0..streams).map(|_| std::sync::atomic::AtomicI64::new(0)).collect());
    let raw_first = first + (writers * appends) as u64;
    let raw = raw_appends(bench, 1, move |task, i| {
        let slot = (task + i) % names.len();
        let (id, name) = names[slot].clone();
        (id, name, versions[slot].fetch_add(1, Ordering::Relaxed), raw_first + (task * appends + i) as u64)
    });
    Workload {
        chronik: Workers { tasks: writers, per_task: appends, op: chronik },
        raw: Workers { tasks: writers, per_task: appends, op: raw },
    }
}

/// `writers` writers, each making `calls` calls of `append_to_streams` that append one event to
/// each of `streams` fresh streams of its own, with the exact expected versions; the raw side
/// inserts the same rows, one statement (transaction) per call.
fn multi_stream(bench: &Bench, writers: usize, streams: usize, calls: usize) -> Workload {
    let names: Arc<Vec<Vec<(i64, String)>>> =
        Arc::new((0..writers).map(|_| (0..streams).map(|_| bench.fresh_stream()).collect()).collect());
    let per_call = streams as u64;
    let first = bench.payloads(2 * (writers * calls) as u64 * per_call);
    let store = bench.store.clone();
    let chronik_names = Arc::clone(&names);
    let chronik: Op = Arc::new(move |task, i| {
        let payload = first + (task * calls + i) as u64 * per_call;
        let parts: Vec<StreamAppend> = chronik_names[task]
            .iter()
            .zip(payload..)
            .map(|((_, stream), n)| {
                StreamAppend::new(stream.as_str(), ExpectedVersion::Exact(i as u64), vec![event(n)])
            })
            .collect();
        let store = store.clone();
        Box::pin(async move {
            store.append_to_streams(parts).await?;
            Ok(per_call)
        })
    });
    let raw_first = first + (writers * calls) as u64 * per_call;
    let (raw, positions) = (bench.raw.clone(), Arc::clone(&bench.raw_positions));
    let raw_op: Op = Arc::new(move |task, i| {
        let first = positions.fetch_add(per_call as i64, Ordering::Relaxed) + 1;
        let payload = raw_first + (task * calls + i) as u64 * per_call;
        let mut rows = Rows::default();
        for (k, (stream_id, stream)) in names[task].iter().enumerate() {
            rows.push(first + k as i64, *stream_id, stream, i as i64 + 1, payload + k as u64);
        }
        let raw = raw.clone();
        Box::pin(async move {
            raw.append(&rows).await?;
            Ok(per_call)
        })
    });
    Workload {
        chronik: Workers { tasks: writers, per_task: calls, op: chronik },
        raw: Workers { tasks: writers, per_task: calls, op: raw_op },
    }
}

/// Raw appends of `per_append` rows per call (see [`Raw::append`]); `place(task, i)` gives the
/// stream id and name, the version before the call and the first payload number.
pub fn raw_appends<P>(bench: &Bench, per_append: u64, place: P) -> Op
where
    P: Fn(usize, usize) -> (i64, String, i64, u64) + Send + Sync + 'static,
{
    let raw = bench.raw.clone();
    let positions = Arc::clone(&bench.raw_positions);
    let place = Arc::new(place);
    Arc::new(move |task, i| {
        let (raw, positions, place) = (raw.clone(), Arc::clone(&positions), Arc::clone(&place));
        Box::pin(async move {
            let (stream_id, stream, version, payload) = place(task, i);
            let first = positions.fetch_add(per_append as i64, Ordering::Relaxed) + 1;
            let mut rows = Rows::default();
            for k in 0..per_append {
                rows.push(first + k as i64, stream_id, &stream, version + k as i64 + 1, payload + k);
            }
            raw.append(&rows).await?;
            Ok(per_append)
        })
    })
}
