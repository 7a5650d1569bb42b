//! `/health/live` (the process answers) and `/health` = `/health/ready`: whether this node can
//! do its work, as a load balancer or an orchestrator asks. Ready (200) when the database
//! answers a read within [`DATABASE_CHECK`], the writer actor runs, and no running
//! subscription holds events without an ack for longer than the stall time; else 503. Either
//! way the body says which checks failed and why:
//!
//! ```json
//! {"status": "unready", "checks": {
//!   "database": {"ok": false, "error": "..."},
//!   "writer": {"ok": true},
//!   "subscriptions": {"ok": true, "running": 2, "stalled": []}}}
//! ```

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::Shared;

/// How long the database has to answer the readiness read.
pub const DATABASE_CHECK: Duration = Duration::from_secs(3);

/// `GET /health/live`.
pub(super) async fn live() -> Response {
    Json(json!({ "status": "alive" })).into_response()
}

/// `GET /health`, `GET /health/ready`.
pub(super) async fn ready(State(shared): State<Arc<Shared>>) -> Response {
    let store = &shared.store;
    let database = match tokio::time::timeout(DATABASE_CHECK, store.read_all_backward(None, 1)).await {
        Ok(Ok(_)) => json!({ "ok": true }),
        Ok(Err(e)) => json!({ "ok": false, "error": e.to_string() }),
        Err(_) => json!({ "ok": false, "error": format!("no answer within {DATABASE_CHECK:?}") }),
    };
    let writer = if store.statistics().writer_running {
        json!({ "ok": true })
    } else {
        json!({ "ok": false, "error": "the writer actor is restarting" })
    };
    let subscriptions = match store.running_subscriptions().await {
        Ok(running) => {
            let stall_after = shared.options.stall_after;
            let stalled: Vec<Value> = running
                .iter()
                .filter_map(|(key, statistics)| {
                    let s = statistics.as_ref()?;
                    let waiting = s.status.queued + s.status.in_flight;
                    (waiting > 0 && s.since_last_ack >= stall_after).then(|| {
                        json!({
                            "stream": key.stream, "name": key.name, "waiting": waiting,
                            "seconds_since_ack": s.since_last_ack.as_secs(),
                        })
                    })
                })
                .collect();
            json!({ "ok": stalled.is_empty(), "running": running.len(), "stalled": stalled })
        }
        Err(e) => json!({ "ok": false, "error": e.to_string() }),
    };
    let ok = [&database, &writer, &subscriptions].iter().all(|check| check["ok"] == true);
    let status = if ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let body = json!({
        "status": if ok { "ready" } else { "unready" },
        "checks": { "database": database, "writer": writer, "subscriptions": subscriptions },
    });
    (status, Json(body)).into_response()
}
