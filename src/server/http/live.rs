//! `GET /api/live?stream=S`: a stream (or `$all`) followed live, as server-sent events. Each
//! commit comes as an `events` event (a JSON array of events); a follower that fell behind gets
//! `lagged` (`{"missed": N|null}`) and goes on with newer events: following never slows writers.
//! The follow ends when the browser goes away or the server stops.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::Stream;
use serde::Deserialize;
use serde_json::{Value, json};

use super::Shared;
use super::api::{Q, error};
use crate::event::ALL;
use crate::{LiveMessage, LiveSubscription, json};

/// A comment line this often keeps proxies from closing a quiet follow.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

#[derive(Deserialize)]
pub(super) struct LiveQuery {
    stream: Option<String>,
}

pub(super) async fn follow(State(shared): State<Arc<Shared>>, Q(q): Q<LiveQuery>) -> Response {
    let stream = q.stream.unwrap_or_else(|| ALL.to_string());
    match shared.store.subscribe(&stream).await {
        Ok(live) => Sse::new(events(live, shared.stopping.clone()))
            .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
            .into_response(),
        Err(e) => error(e),
    }
}

/// The listener's messages as server-sent events, until it or the server ends.
fn events(live: LiveSubscription, stopping: super::Stopping) -> impl Stream<Item = Result<Event, Infallible>> {
    futures::stream::unfold((live, stopping), |(mut live, mut stopping)| async move {
        let message = tokio::select! {
            message = live.recv() => message?,
            () = crate::server::stopped(&mut stopping) => return None,
        };
        let event = match message {
            LiveMessage::Events(events) => {
                let batch = Value::Array(events.iter().map(json::event).collect());
                Event::default().event("events").data(batch.to_string())
            }
            LiveMessage::Lagged { missed } => {
                Event::default().event("lagged").data(json!({ "missed": missed }).to_string())
            }
        };
        Some((Ok(event), (live, stopping)))
    })
}
