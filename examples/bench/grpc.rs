//! `chronik serve` (the KurrentDB protocol), PostgreSQL: gRPC calls to a server in this process
//! on 127.0.0.1, each workload beside the same workload in process (chronik's own calls), in
//! the same run, alternating which goes first.
//!
//! The calls are made with the protocol's generated client over tonic channels with
//! `TCP_NODELAY`, the messages KurrentDB's clients send. The official Rust client (`kurrentdb`,
//! which the tests use) does not set `TCP_NODELAY` on its connections: its small requests wait
//! for the server's delayed acknowledgement, about 40 ms per call on Linux, which would measure
//! the client rather than the server (the Python and Node.js clients do not have it).
//!
//!
//! - **appends**: 1 client appending 100 events per call, and 100 clients (100 connections)
//!   appending 1 event per call, each to a stream of its own with the exact expected revision.
//!   The 100-client shape is also held against raw one-row `INSERT`s, one transaction each:
//!   group commit must still apply behind the protocol (at least 3×). The same 100 callers
//!   sharing one client (one connection) show what HTTP/2's multiplexing saves.
//! - **`$all` read**: the first events of `$all` in reads of 1,000 (`max_count`), by position.
//! - **catch-up subscription**: `subscribe_to_all` from the start until it has delivered the
//!   same number of events; in process, a transient `$all` subscription acking each batch.
//! - **persistent subscription**: a group on `$all` from the start, its consumer acking every
//!   event; in process, a named subscription with the same 10 events in flight, acking each.
//! - **live latency**: one event appended per millisecond by one client, received by another
//!   client's `$all` subscription; latency from the append call to the receipt. In process:
//!   the subscriptions workload of the same name.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use chronik::server::proto::StreamIdentifier;
use chronik::server::proto::event_store::client::Uuid as WireUuid;
use chronik::server::proto::event_store::client::uuid::Value as WireUuidValue;
use chronik::server::proto::persistent::persistent_subscriptions_client::PersistentSubscriptionsClient;
use chronik::server::proto::persistent::{self as wire_persistent, create_req, read_req as p_read_req};
use chronik::server::proto::streams::streams_client::StreamsClient;
use chronik::server::proto::streams::{AppendReq, ReadReq, ReadResp, append_req, append_resp, read_req, read_resp};
use chronik::server::{Server, ServerOptions};
use chronik::{StartFrom, SubscriptionMessage, SubscriptionOptions};
use tokio_stream::StreamExt;
use tonic::transport::{Channel, Endpoint};

use crate::append::{Workload, alternate, own_streams_raw, stream_appends};
use crate::measure::{Group, Measured, Op, Row, Target, Workers};
use crate::payload::{CONTENT_TYPE, EVENT_TYPE, payload};
use crate::subscribe::live_latency;
use crate::{Bench, BoxError, Result};

pub const STEPS: usize = 7;

/// Events the reads and subscriptions move (a tenth with `--quick`).
const EVENTS: u64 = 200_000;

/// A subscription that delivers nothing for this long is stuck.
const STUCK: Duration = Duration::from_secs(60);

pub async fn run(bench: &Bench) -> Result<Vec<Row>> {
    let server = Server::start(bench.store.clone(), ServerOptions::insecure(([127, 0, 0, 1], 0).into())).await?;
    let endpoint = Endpoint::from_shared(format!("http://{}", server.local_addr()))?.tcp_nodelay(true);
    let outcome = workloads(bench, &endpoint).await;
    server.shutdown().await?;
    outcome
}

async fn workloads(bench: &Bench, endpoint: &Endpoint) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    let events = if bench.quick { EVENTS / 10 } else { EVENTS };
    let channel = endpoint.connect().await?;

    let name = "gRPC: 1 client x 100-event appends";
    bench.step(name);
    let appends = if bench.quick { 60 } else { 300 };
    let clients = vec![channel.clone()];
    let (grpc, local) = alternate(bench, appends, |bench, appends| Workload {
        chronik: grpc_appends(bench, &clients, 100, appends),
        raw: stream_appends(bench, fresh_streams(bench, 1), 100, appends),
    })
    .await?;
    rows.push(Row::compared(Group::Grpc, name, grpc, "the same appends in process", local).concurrency(1));

    let name = "gRPC: 100 clients x 1-event appends";
    bench.step(name);
    let appends = if bench.quick { 20 } else { 100 };
    let mut clients = Vec::with_capacity(100);
    for _ in 0..100 {
        clients.push(endpoint.connect().await?);
    }
    let (grpc, raw) = alternate(bench, appends, |bench, appends| Workload {
        chronik: grpc_appends(bench, &clients, 1, appends),
        raw: own_streams_raw(bench, 100, 1, appends),
    })
    .await?;
    rows.push(
        Row::compared(Group::Grpc, name, grpc.clone(), "1-row INSERT per append", raw)
            .concurrency(100)
            .target(Target::RatioAtLeast(3.0)),
    );
    let (grpc_again, local) = alternate(bench, appends, |bench, appends| Workload {
        chronik: grpc_appends(bench, &clients, 1, appends),
        raw: stream_appends(bench, fresh_streams(bench, 100), 1, appends),
    })
    .await?;
    let mut both = grpc;
    both.add(grpc_again);
    rows.push(Row::compared(Group::Grpc, name, both, "the same appends in process", local).concurrency(100));
    drop(clients);

    // One client shared by 100 concurrent callers (an application's one connection): HTTP/2
    // carries the calls side by side, and their frames share writes.
    let name = "gRPC: 1 client, 100 concurrent calls x 1-event appends";
    bench.step(name);
    let shared = vec![channel.clone(); 100];
    let (grpc, raw) = alternate(bench, appends, |bench, appends| Workload {
        chronik: grpc_appends(bench, &shared, 1, appends),
        raw: own_streams_raw(bench, 100, 1, appends),
    })
    .await?;
    rows.push(Row::compared(Group::Grpc, name, grpc, "1-row INSERT per append", raw).concurrency(100));

    // With `--only grpc`, `$all` may hold fewer events than the reads want.
    let head = bench.store.read_all_backward(None, 1).await?.first().map_or(0, |e| e.global_position);
    if head < events {
        crate::read::seeded_stream(bench, events - head).await?;
    }

    let name = format!("gRPC: $all read of {events} events, 1,000 per read");
    bench.step(&name);
    let (grpc, local) = alternately(|| grpc_read_all(&channel, events), || local_read_all(bench, events)).await?;
    rows.push(Row::compared(Group::Grpc, name, grpc, "the same reads in process", local));

    let name = format!("gRPC: catch-up subscription to $all, {events} events");
    bench.step(&name);
    let (grpc, local) = alternately(|| grpc_catch_up(&channel, events), || local_catch_up(bench, events)).await?;
    rows.push(Row::compared(Group::Grpc, name, grpc, "a transient subscription in process", local));

    let name = format!("gRPC: persistent subscription on $all, {} events, each acked", events / 2);
    bench.step(&name);
    let (grpc, local) =
        alternately(|| grpc_persistent(&channel, events / 2), || local_persistent(bench, events / 2)).await?;
    rows.push(Row::compared(Group::Grpc, name, grpc, "a named subscription in process", local));

    let name = "gRPC: live latency at 1,000 events/s";
    bench.step(name);
    let total = if bench.quick { 2_000 } else { 10_000 };
    let local = live_latency(bench, total).await?;
    let grpc = grpc_latency(bench, &channel, &endpoint.connect().await?, total).await?;
    rows.push(Row::compared(Group::Grpc, name, grpc, "the same in process", local).target(Target::P99BelowMs(10.0)));
    Ok(rows)
}

/// Runs both sides twice, alternating which goes first: `(grpc, local)`.
async fn alternately<G, L, GF, LF>(grpc: G, local: L) -> Result<(Measured, Measured)>
where
    G: Fn() -> GF,
    L: Fn() -> LF,
    GF: Future<Output = Result<Measured>>,
    LF: Future<Output = Result<Measured>>,
{
    let (mut g, mut l) = (Measured::default(), Measured::default());
    g.add(grpc().await?);
    l.add(local().await?);
    l.add(local().await?);
    g.add(grpc().await?);
    Ok((g, l))
}

fn fresh_streams(bench: &Bench, count: usize) -> Vec<String> {
    (0..count).map(|_| bench.fresh_stream().1).collect()
}

fn wire_uuid(id: uuid::Uuid) -> WireUuid {
    WireUuid { value: Some(WireUuidValue::String(id.to_string())) }
}

fn identifier(stream: &str) -> Option<StreamIdentifier> {
    Some(StreamIdentifier { stream_name: stream.as_bytes().to_vec() })
}

/// The `n`th payload as a client proposes it, with this id.
fn proposed(n: u64, id: uuid::Uuid) -> AppendReq {
    let (data, metadata) = payload(n);
    let system = HashMap::from([
        ("type".to_string(), EVENT_TYPE.to_string()),
        ("content-type".to_string(), CONTENT_TYPE.to_string()),
    ]);
    AppendReq {
        content: Some(append_req::Content::ProposedMessage(append_req::ProposedMessage {
            id: Some(wire_uuid(id)),
            metadata: system,
            custom_metadata: metadata,
            data,
        })),
    }
}

/// One append call: options, then the events; `revision` is the expected one (`None`: no
/// stream, `Some(u64::MAX)`: any).
async fn append(channel: &Channel, stream: &str, revision: Option<u64>, events: Vec<AppendReq>) -> Result<()> {
    use append_req::options::ExpectedStreamRevision as Expected;
    let expected = match revision {
        None => Expected::NoStream(()),
        Some(u64::MAX) => Expected::Any(()),
        Some(r) => Expected::Revision(r),
    };
    let options = AppendReq {
        content: Some(append_req::Content::Options(append_req::Options {
            stream_identifier: identifier(stream),
            expected_stream_revision: Some(expected),
        })),
    };
    let requests = tokio_stream::iter(std::iter::once(options).chain(events));
    let response = StreamsClient::new(channel.clone()).append(requests).await?.into_inner();
    match response.result {
        Some(append_resp::Result::Success(_)) => Ok(()),
        other => Err(format!("append to {stream} refused: {other:?}").into()),
    }
}

/// One client per writer, each appending `appends` calls of `per_append` events to a fresh
/// stream of its own with the exact expected revision.
fn grpc_appends(bench: &Bench, clients: &[Channel], per_append: u64, appends: usize) -> Workers {
    let writers = clients.len();
    let streams: Arc<Vec<String>> = Arc::new(fresh_streams(bench, writers));
    let first = bench.payloads((writers * appends) as u64 * per_append);
    let clients: Arc<Vec<Channel>> = Arc::new(clients.to_vec());
    let op: Op = Arc::new(move |task, i| {
        let (channel, stream) = (clients[task].clone(), streams[task].clone());
        let payload = first + (task * appends + i) as u64 * per_append;
        Box::pin(async move {
            let revision = (i > 0).then(|| i as u64 * per_append - 1);
            let events = (payload..payload + per_append).map(|n| proposed(n, uuid::Uuid::new_v4())).collect();
            append(&channel, &stream, revision, events).await?;
            Ok(per_append)
        })
    });
    Workers { tasks: writers, per_task: appends, op }
}

/// A read of `$all` from `position`: `count` events, or a subscription (`None`).
fn read_all_request(position: Option<u64>, count: Option<u64>) -> ReadReq {
    use read_req::options::{self as o, all_options::AllOption};
    let all_option = match position {
        Some(p) => AllOption::Position(o::Position { commit_position: p, prepare_position: p }),
        None => AllOption::End(()),
    };
    ReadReq {
        options: Some(read_req::Options {
            stream_option: Some(o::StreamOption::All(o::AllOptions { all_option: Some(all_option) })),
            read_direction: o::ReadDirection::Forwards as i32,
            resolve_links: false,
            count_option: Some(match count {
                Some(n) => o::CountOption::Count(n),
                None => o::CountOption::Subscription(o::SubscriptionOptions {}),
            }),
            filter_option: Some(o::FilterOption::NoFilter(())),
            uuid_option: Some(o::UuidOption { content: Some(o::uuid_option::Content::String(())) }),
            control_option: Some(o::ControlOption { compatibility: 1 }),
        }),
    }
}

/// The first `count` events of `$all`, 1,000 per read; one latency per read.
async fn grpc_read_all(channel: &Channel, count: u64) -> Result<Measured> {
    let mut client = StreamsClient::new(channel.clone());
    let started = Instant::now();
    let (mut measured, mut next) = (Measured::default(), 0);
    while measured.events < count {
        let call = Instant::now();
        let mut read = client.read(read_all_request(Some(next), Some(1_000))).await?.into_inner();
        let mut got = 0;
        while let Some(response) = read.next().await {
            if let Some(read_resp::Content::Event(event)) = response?.content {
                next = event.event.ok_or("an event without its record")?.commit_position + 1;
                got += 1;
            }
        }
        if got == 0 {
            return Err("$all has fewer events than the read wants".into());
        }
        measured.events += got;
        measured.latencies.push(call.elapsed());
    }
    measured.elapsed = started.elapsed();
    Ok(measured)
}

async fn local_read_all(bench: &Bench, count: u64) -> Result<Measured> {
    let started = Instant::now();
    let (mut measured, mut next) = (Measured::default(), 0);
    while measured.events < count {
        let call = Instant::now();
        let page = bench.store.read_all_forward(next, 1_000).await?;
        let Some(last) = page.last() else { return Err("$all has fewer events than the read wants".into()) };
        next = last.global_position + 1;
        measured.events += page.len() as u64;
        measured.latencies.push(call.elapsed());
    }
    measured.elapsed = started.elapsed();
    Ok(measured)
}

/// The next message of a read, failing if it ended or nothing came for a minute.
async fn next_response(read: &mut tonic::Streaming<ReadResp>) -> Result<read_resp::Content> {
    let response = tokio::time::timeout(STUCK, read.next()).await?.ok_or("the subscription ended")??;
    response.content.ok_or_else(|| "an empty response".into())
}

/// A subscription to `$all` from the start until `count` events came; one latency per 1,000.
async fn grpc_catch_up(channel: &Channel, count: u64) -> Result<Measured> {
    let started = Instant::now();
    let mut read = StreamsClient::new(channel.clone()).read(read_all_request(Some(0), None)).await?.into_inner();
    let (mut measured, mut mark) = (Measured::default(), Instant::now());
    while measured.events < count {
        if let read_resp::Content::Event(_) = next_response(&mut read).await? {
            measured.events += 1;
            if measured.events % 1_000 == 0 {
                measured.latencies.push(mark.elapsed());
                mark = Instant::now();
            }
        }
    }
    measured.elapsed = started.elapsed();
    Ok(measured)
}

async fn local_catch_up(bench: &Bench, count: u64) -> Result<Measured> {
    let started = Instant::now();
    let options = SubscriptionOptions::default().transient(true).buffer_size(1_000).max_size(1_000);
    let name = format!("bench-grpc-local-{}", uuid::Uuid::new_v4().simple());
    let mut subscription = bench.store.subscribe_to_all_streams(&name, options).await?;
    let (mut measured, mut mark) = (Measured::default(), Instant::now());
    while measured.events < count {
        let message = tokio::time::timeout(STUCK, subscription.recv()).await?.ok_or("the subscription ended")?;
        if let SubscriptionMessage::Events(batch) = message {
            measured.events += batch.len() as u64;
            subscription.ack(&batch).await?;
            measured.latencies.push(mark.elapsed());
            mark = Instant::now();
        }
    }
    measured.elapsed = started.elapsed();
    subscription.unsubscribe().await?;
    Ok(measured)
}

/// A new group on `$all` from the start, consumed until `count` events were acked one by one
/// (each ack its own message, as the clients send them); one latency per event, receipt to
/// ack sent.
async fn grpc_persistent(channel: &Channel, count: u64) -> Result<Measured> {
    let mut client = PersistentSubscriptionsClient::new(channel.clone());
    let group = format!("bench-grpc-{}", uuid::Uuid::new_v4().simple());
    let create = wire_persistent::CreateReq {
        options: Some(create_req::Options {
            stream_option: Some(create_req::options::StreamOption::All(create_req::AllOptions {
                all_option: Some(create_req::all_options::AllOption::Start(())),
                filter_option: Some(create_req::all_options::FilterOption::NoFilter(())),
            })),
            group_name: group.clone(),
            settings: Some(create_req::Settings {
                max_retry_count: 10,
                message_timeout: Some(create_req::settings::MessageTimeout::MessageTimeoutMs(30_000)),
                consumer_strategy: "RoundRobin".into(),
                ..Default::default()
            }),
            ..Default::default()
        }),
    };
    client.create(create).await?;
    let started = Instant::now();
    let (acks, requests) = tokio::sync::mpsc::unbounded_channel();
    acks.send(wire_persistent::ReadReq {
        content: Some(p_read_req::Content::Options(p_read_req::Options {
            stream_option: Some(p_read_req::options::StreamOption::All(())),
            group_name: group.clone(),
            buffer_size: 10,
            uuid_option: Some(p_read_req::options::UuidOption {
                content: Some(p_read_req::options::uuid_option::Content::String(())),
            }),
        })),
    })?;
    let mut read = client.read(tokio_stream::wrappers::UnboundedReceiverStream::new(requests)).await?.into_inner();
    let mut measured = Measured::default();
    while measured.events < count {
        let response = tokio::time::timeout(STUCK, read.next()).await?.ok_or("the consumer ended")??;
        if let Some(wire_persistent::read_resp::Content::Event(event)) = response.content {
            let call = Instant::now();
            let id = event.event.and_then(|e| e.id).ok_or("an event without its id")?;
            acks.send(wire_persistent::ReadReq {
                content: Some(p_read_req::Content::Ack(p_read_req::Ack { id: Vec::new(), ids: vec![id] })),
            })?;
            measured.latencies.push(call.elapsed());
            measured.events += 1;
        }
    }
    measured.elapsed = started.elapsed();
    drop((acks, read));
    let delete = wire_persistent::DeleteReq {
        options: Some(wire_persistent::delete_req::Options {
            stream_option: Some(wire_persistent::delete_req::options::StreamOption::All(())),
            group_name: group,
        }),
    };
    client.delete(delete).await?;
    Ok(measured)
}

async fn local_persistent(bench: &Bench, count: u64) -> Result<Measured> {
    let name = format!("bench-grpc-local-{}", uuid::Uuid::new_v4().simple());
    let options = SubscriptionOptions::default().start_from(StartFrom::Origin).buffer_size(10);
    let started = Instant::now();
    let mut subscription = bench.store.subscribe_to_all_streams(&name, options).await?;
    let mut measured = Measured::default();
    while measured.events < count {
        let message = tokio::time::timeout(STUCK, subscription.recv()).await?.ok_or("the subscription ended")?;
        if let SubscriptionMessage::Events(batch) = message {
            for event in batch {
                let call = Instant::now();
                subscription.ack(std::slice::from_ref(&event)).await?;
                measured.latencies.push(call.elapsed());
                measured.events += 1;
            }
        }
    }
    measured.elapsed = started.elapsed();
    subscription.unsubscribe().await?;
    bench.store.delete_subscription(chronik::ALL, &name).await?;
    Ok(measured)
}

/// One event per millisecond appended over `writer` to a fresh stream, received by a live
/// `$all` subscription over `reader`; latency from the append call to the receipt.
async fn grpc_latency(bench: &Bench, reader: &Channel, writer: &Channel, total: u64) -> Result<Measured> {
    let mut read = StreamsClient::new(reader.clone()).read(read_all_request(None, None)).await?.into_inner();
    while !matches!(next_response(&mut read).await?, read_resp::Content::CaughtUp(_)) {}
    let sent: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let stream = bench.fresh_stream().1;
    let first = bench.payloads(total);
    let started = Instant::now();
    let appender = {
        let (writer, sent) = (writer.clone(), Arc::clone(&sent));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(1));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            let mut pending = Vec::with_capacity(total as usize);
            for n in 0..total {
                tick.tick().await;
                let (writer, sent, stream) = (writer.clone(), Arc::clone(&sent), stream.clone());
                pending.push(tokio::spawn(async move {
                    let id = uuid::Uuid::new_v4();
                    sent.lock().unwrap_or_else(PoisonError::into_inner).insert(id.to_string(), Instant::now());
                    append(&writer, &stream, Some(u64::MAX), vec![proposed(first + n, id)]).await
                }));
            }
            for append in pending {
                append.await??;
            }
            Ok::<_, BoxError>(())
        })
    };
    let mut latencies = Vec::with_capacity(total as usize);
    while (latencies.len() as u64) < total {
        if let read_resp::Content::Event(event) = next_response(&mut read).await? {
            let id = match event.event.and_then(|e| e.id).and_then(|id| id.value) {
                Some(WireUuidValue::String(id)) => id,
                _ => continue,
            };
            if let Some(at) = sent.lock().unwrap_or_else(PoisonError::into_inner).remove(&id) {
                latencies.push(at.elapsed());
            }
        }
    }
    let elapsed = started.elapsed();
    appender.await??;
    Ok(Measured { events: total, elapsed, latencies, cpu: None })
}
