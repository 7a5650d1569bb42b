//! The admin UI's JSON API: the store's figures, streams and their events and metadata,
//! named subscriptions with their parked events. Every answer is JSON; a failure is
//! `{"error": {"kind": ..., "message": ...}}` (the kind as [`Error::kind`] names it) with the
//! status that fits it.

use std::sync::Arc;

use axum::extract::{FromRequestParts, Query, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::Shared;
use crate::event::ALL;
use crate::{Error, ExpectedVersion, PageRequest, RecordedEvent, StreamMetadata, json};

/// Most events one page of a stream holds.
const MAX_EVENTS: u64 = 500;
/// Most streams one page of the stream list holds.
const MAX_STREAMS: u64 = 200;
/// Parked events shown with their event (the count is always complete).
const PARKED_SHOWN: usize = 200;

type Shares = State<Arc<Shared>>;
type Answer = Result<Json<Value>, Response>;

pub(super) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/api/overview", get(overview))
        .route("/api/streams", get(streams))
        .route("/api/stream", get(stream))
        .route("/api/event", get(event))
        .route("/api/metadata", get(metadata).put(set_metadata))
        .route("/api/live", get(super::live::follow))
        .route("/api/subscriptions", get(subscriptions))
        .route("/api/subscription", get(subscription).delete(delete_subscription))
        .route("/api/parked", get(parked))
        .route("/api/replay", axum::routing::post(replay))
}

/// The query string as `T`; one that does not fit is a JSON failure (400) naming the problem
/// (`missing field `stream``, `invalid digit found in string`, ...).
pub(super) struct Q<T>(pub(super) T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Q<T> {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Response> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(value)) => Ok(Q(value)),
            Err(rejection) => Err(failure(StatusCode::BAD_REQUEST, "invalid_argument", rejection.body_text())),
        }
    }
}

/// A JSON failure with `status`.
pub(super) fn failure(status: StatusCode, kind: &str, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": { "kind": kind, "message": message.into() } }))).into_response()
}

/// A library error as the API answers it.
pub(super) fn error(e: Error) -> Response {
    let status = match &e {
        Error::Config(_)
        | Error::InvalidArgument(_)
        | Error::CannotAppendToAllStream
        | Error::CannotDeleteAllStream
        | Error::Serialization(_) => StatusCode::BAD_REQUEST,
        Error::StreamNotFound | Error::NotFound | Error::SnapshotNotFound | Error::SubscriptionNotFound => {
            StatusCode::NOT_FOUND
        }
        Error::StreamDeleted => StatusCode::GONE,
        Error::WrongExpectedVersion { .. }
        | Error::StreamExists
        | Error::DuplicateEvent(_)
        | Error::SubscriptionAlreadyExists
        | Error::SubscriptionInUse
        | Error::TooManySubscribers => StatusCode::CONFLICT,
        Error::ReadOnly(_) | Error::Refused(_) | Error::NotSupported => StatusCode::FORBIDDEN,
        Error::Unavailable(_) | Error::Database(_) | Error::InDoubt(_) => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    failure(status, e.kind(), e.to_string())
}

/// `GET /api/overview`: the dashboard's figures.
async fn overview(State(shared): Shares) -> Answer {
    let store = &shared.store;
    let s = store.statistics();
    let streams = shared.streams.get(store).await.map_err(error)?;
    let subscriptions = store.list_subscriptions().await.map_err(error)?;
    let nodes = store.cluster_members().await.map_err(error)?;
    let uptime = (chrono::Utc::now() - s.started_at).num_milliseconds().max(0) as f64 / 1000.0;
    Ok(Json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "store": s.store,
        "backend": s.backend,
        "read_only": store.config().read_only,
        "head_position": s.head_position,
        "notifier_lag": s.notifier_lag,
        "streams": streams,
        "subscriptions": subscriptions.len(),
        "writer": {
            "state": if s.writer_running { "running" } else { "restarting" },
            "restarts": s.writer_restarts,
        },
        "appends": { "ok": s.appends_ok, "rejected": s.appends_rejected, "failed": s.appends_failed },
        "events_appended": s.events_appended,
        "batches": s.batches,
        "batch_appends": s.batch_appends,
        "batch_events": s.batch_events,
        "connections": {
            "clients": shared.clients(),
            "database": { "size": s.database_connections, "idle": s.database_idle },
            "nodes": nodes.iter().map(|n| json!({
                "id": n.id, "address": n.address, "port": n.port, "leader": n.leader,
                "joined_at": n.joined_at, "seen_at": n.seen_at,
            })).collect::<Vec<_>>(),
        },
        "started_at": s.started_at,
        "uptime_seconds": uptime,
    })))
}

#[derive(Deserialize)]
struct StreamsQuery {
    search: Option<String>,
    page: Option<u64>,
    page_size: Option<u64>,
}

/// `GET /api/streams?search=&page=&page_size=`: a page of streams, by id.
async fn streams(State(shared): Shares, Q(q): Q<StreamsQuery>) -> Answer {
    let mut request = PageRequest::default()
        .page(q.page.unwrap_or(1).max(1))
        .page_size(q.page_size.unwrap_or(25).clamp(1, MAX_STREAMS));
    if let Some(search) = q.search.filter(|s| !s.trim().is_empty()) {
        request = request.search(search.trim());
    }
    let page = shared.store.paginate_streams(request).await.map_err(error)?;
    Ok(Json(json!({
        "entries": page.entries.iter().map(json::stream).collect::<Vec<_>>(),
        "page_number": page.page_number,
        "page_size": page.page_size,
        "total_entries": page.total_entries,
        "total_pages": page.total_pages,
    })))
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
enum Direction {
    Forward,
    #[default]
    Backward,
}

#[derive(Deserialize)]
struct StreamQuery {
    stream: String,
    from: Option<u64>,
    count: Option<u64>,
    #[serde(default)]
    direction: Direction,
}

/// `GET /api/stream?stream=&from=&count=&direction=`: a page of a stream's events (of `$all`
/// by position), and where the next page starts (`null` at the end).
async fn stream(State(shared): Shares, Q(q): Q<StreamQuery>) -> Answer {
    let store = &shared.store;
    let count = q.count.unwrap_or(20).clamp(1, MAX_EVENTS);
    let info = if q.stream == ALL { None } else { Some(store.stream_info(&q.stream).await.map_err(error)?) };
    let (events, next) = match q.direction {
        Direction::Forward => {
            let events = store.read_stream_forward(&q.stream, q.from.unwrap_or(0), count).await.map_err(error)?;
            let next = full_page(&events, count).map(|last| last.event_number + 1);
            (events, next)
        }
        Direction::Backward => {
            let events = store.read_stream_backward(&q.stream, q.from, count).await.map_err(error)?;
            let next = full_page(&events, count).and_then(|last| last.event_number.checked_sub(1)).filter(|n| *n > 0);
            (events, next)
        }
    };
    Ok(Json(json!({
        "stream": q.stream,
        "info": info.as_ref().map(json::stream),
        "events": events.iter().map(json::event).collect::<Vec<_>>(),
        "next": next,
    })))
}

/// The last event of a page that came back full (so more may follow).
fn full_page(events: &[RecordedEvent], count: u64) -> Option<&RecordedEvent> {
    if events.len() as u64 == count { events.last() } else { None }
}

#[derive(Deserialize)]
struct EventQuery {
    stream: String,
    number: u64,
}

/// `GET /api/event?stream=&number=`: one event (of `$all`, by position).
async fn event(State(shared): Shares, Q(q): Q<EventQuery>) -> Answer {
    let events = shared.store.read_stream_forward(&q.stream, q.number, 1).await.map_err(error)?;
    match events.into_iter().next().filter(|e| e.event_number == q.number) {
        Some(event) => Ok(Json(json::event(&event))),
        None => Err(failure(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("`{}` has no event {} (never written, or removed by retention)", q.stream, q.number),
        )),
    }
}

#[derive(Deserialize)]
struct StreamOnly {
    stream: String,
}

/// `GET /api/metadata?stream=`: the stream's metadata and its version (both `null` if none).
async fn metadata(State(shared): Shares, Q(q): Q<StreamOnly>) -> Answer {
    let found = shared.store.stream_metadata(&q.stream).await.map_err(error)?;
    Ok(Json(json!({
        "version": found.as_ref().map(|(version, _)| version),
        "metadata": found.as_ref().map(|(_, metadata)| json::stream_metadata(metadata)),
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MetadataChange {
    /// The version read before the change; `null` when the stream had none.
    expected_version: Option<u64>,
    metadata: StreamMetadata,
}

/// `PUT /api/metadata?stream=` with `{"expected_version": N|null, "metadata": {...}}`: sets
/// the metadata if it is still at that version; answers the new version.
async fn set_metadata(State(shared): Shares, Q(q): Q<StreamOnly>, body: axum::body::Bytes) -> Answer {
    let change: MetadataChange = serde_json::from_slice(&body).map_err(|e| {
        failure(StatusCode::BAD_REQUEST, "invalid_argument", format!("the metadata change cannot be read: {e}"))
    })?;
    let expected = change.expected_version.map_or(ExpectedVersion::NoStream, ExpectedVersion::Exact);
    let version = shared.store.set_stream_metadata(&q.stream, expected, change.metadata).await.map_err(error)?;
    Ok(Json(json!({ "version": version })))
}

/// `GET /api/subscriptions`: every named subscription stored, with settings and parked count.
async fn subscriptions(State(shared): Shares) -> Answer {
    let list = shared.store.list_subscriptions().await.map_err(error)?;
    Ok(Json(Value::Array(list.iter().map(json::subscription_details).collect())))
}

#[derive(Deserialize)]
struct SubscriptionQuery {
    stream: String,
    name: String,
    count: Option<u64>,
}

/// `GET /api/subscription?stream=&name=`: one subscription, with what it is doing if it runs
/// in this process.
async fn subscription(State(shared): Shares, Q(q): Q<SubscriptionQuery>) -> Answer {
    let info = shared.store.subscription_info(&q.stream, &q.name).await.map_err(error)?;
    Ok(Json(json::subscription_details(&info)))
}

/// `DELETE /api/subscription?stream=&name=`.
async fn delete_subscription(State(shared): Shares, Q(q): Q<SubscriptionQuery>) -> Answer {
    shared.store.delete_subscription(&q.stream, &q.name).await.map_err(error)?;
    Ok(Json(json!({ "deleted": true })))
}

/// `GET /api/parked?stream=&name=`: the parked events, oldest first, the first ones with
/// their event.
async fn parked(State(shared): Shares, Q(q): Q<SubscriptionQuery>) -> Answer {
    let store = &shared.store;
    let list = store.parked_events(&q.stream, &q.name).await.map_err(error)?;
    let shown: Vec<u64> = list.iter().take(PARKED_SHOWN).map(|p| p.event_number).collect();
    let events = store.read_numbers(&q.stream, &shown).await.map_err(error)?;
    let out = list
        .iter()
        .map(|p| {
            let mut value = json::parked(p);
            value["event"] = events.iter().find(|e| e.event_number == p.event_number).map_or(Value::Null, json::event);
            value
        })
        .collect();
    Ok(Json(Value::Array(out)))
}

/// `POST /api/replay?stream=&name=[&count=N]`: asks for the parked events (the first N) again.
async fn replay(State(shared): Shares, Q(q): Q<SubscriptionQuery>) -> Answer {
    let store = &shared.store;
    let replayed = match q.count {
        Some(count) => store.replay_parked_first(&q.stream, &q.name, count).await,
        None => store.replay_parked(&q.stream, &q.name).await,
    }
    .map_err(error)?;
    Ok(Json(json!({ "replayed": replayed })))
}
