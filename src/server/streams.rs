//! The `Streams` service's writes: appends (streamed and batched), deletes and tombstones, each
//! one call of the library. Reads and catch-up subscriptions are in `read.rs`; writes to
//! `$$<stream>` (a stream's metadata) in `metadata_stream.rs`.

use std::pin::Pin;

use futures::Stream;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::mapping::{self, Current, Expected, Proposed};
use super::metadata_stream;
use super::proto::event_store::client as shared;
use super::proto::streams::{
    AppendReq, AppendResp, BatchAppendReq, BatchAppendResp, DeleteReq, DeleteResp, ReadReq, ReadResp, TombstoneReq,
    TombstoneResp, append_req, append_resp, batch_append_req, batch_append_resp, delete_req, delete_resp,
    streams_server, tombstone_req, tombstone_resp,
};
use super::proto::{AllStreamPosition, google};
use super::{Stopping, read};
use crate::{DeleteMode, Error, EventData, EventStore};

/// The `Streams` service over one store.
pub(crate) struct StreamsService {
    store: EventStore,
    stopping: Stopping,
}

impl StreamsService {
    pub(crate) fn new(store: EventStore, stopping: Stopping) -> Self {
        StreamsService { store, stopping }
    }
}

/// A stream of responses, as tonic wants it.
pub(crate) type ResponseStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

#[tonic::async_trait]
impl streams_server::Streams for StreamsService {
    type ReadStream = ResponseStream<ReadResp>;
    type BatchAppendStream = ResponseStream<BatchAppendResp>;

    async fn read(&self, request: Request<ReadReq>) -> Result<Response<Self::ReadStream>, Status> {
        let deadline = mapping::deadline_of(request.metadata());
        let responses = read::read(self.store.clone(), request.into_inner(), deadline, self.stopping.clone()).await?;
        Ok(Response::new(Box::pin(responses)))
    }

    async fn append(&self, request: Request<Streaming<AppendReq>>) -> Result<Response<AppendResp>, Status> {
        let mut incoming = request.into_inner();
        let options = match incoming.message().await? {
            Some(AppendReq { content: Some(append_req::Content::Options(options)) }) => options,
            _ => return Err(Status::invalid_argument("an append starts with its options message")),
        };
        let stream = mapping::stream_name(options.stream_identifier)?;
        let expected = append_expected(options.expected_stream_revision)?;
        let mut events = Vec::new();
        while let Some(message) = incoming.message().await? {
            match message.content {
                Some(append_req::Content::ProposedMessage(m)) => events.push(mapping::event_data(Proposed {
                    id: m.id,
                    metadata: m.metadata,
                    custom_metadata: m.custom_metadata,
                    data: m.data,
                })?),
                _ => return Err(Status::invalid_argument("an append sends its options once, first")),
            }
        }
        let outcome = append(&self.store, &stream, expected, events).await?;
        Ok(Response::new(AppendResp { result: Some(append_result(outcome)) }))
    }

    async fn delete(&self, request: Request<DeleteReq>) -> Result<Response<DeleteResp>, Status> {
        let options = request.into_inner().options.ok_or_else(|| Status::invalid_argument("a delete needs options"))?;
        let stream = mapping::stream_name(options.stream_identifier)?;
        let expected = delete_expected(options.expected_stream_revision.map(|e| match e {
            delete_req::options::ExpectedStreamRevision::Revision(r) => Expected::Revision(r),
            delete_req::options::ExpectedStreamRevision::NoStream(_) => Expected::NoStream,
            delete_req::options::ExpectedStreamRevision::Any(_) => Expected::Any,
            delete_req::options::ExpectedStreamRevision::StreamExists(_) => Expected::StreamExists,
        }))?;
        delete(&self.store, &stream, expected, DeleteMode::Recreatable).await?;
        Ok(Response::new(DeleteResp { position_option: Some(delete_resp::PositionOption::NoPosition(())) }))
    }

    async fn tombstone(&self, request: Request<TombstoneReq>) -> Result<Response<TombstoneResp>, Status> {
        let options =
            request.into_inner().options.ok_or_else(|| Status::invalid_argument("a tombstone needs options"))?;
        let stream = mapping::stream_name(options.stream_identifier)?;
        let expected = delete_expected(options.expected_stream_revision.map(|e| match e {
            tombstone_req::options::ExpectedStreamRevision::Revision(r) => Expected::Revision(r),
            tombstone_req::options::ExpectedStreamRevision::NoStream(_) => Expected::NoStream,
            tombstone_req::options::ExpectedStreamRevision::Any(_) => Expected::Any,
            tombstone_req::options::ExpectedStreamRevision::StreamExists(_) => Expected::StreamExists,
        }))?;
        delete(&self.store, &stream, expected, DeleteMode::Soft).await?;
        Ok(Response::new(TombstoneResp { position_option: Some(tombstone_resp::PositionOption::NoPosition(())) }))
    }

    async fn batch_append(
        &self,
        request: Request<Streaming<BatchAppendReq>>,
    ) -> Result<Response<Self::BatchAppendStream>, Status> {
        let incoming = request.into_inner();
        let (tx, rx) = mpsc::channel(64);
        tokio::spawn(batch_appends(self.store.clone(), incoming, tx));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

/// What became of an append.
pub(crate) enum AppendOutcome {
    /// Stored (or, for no events, checked): the stream's revision after it, the last position.
    Done { current: Current, position: Option<u64> },
    /// The expected state did not hold.
    WrongExpectedVersion { expected: Expected, current: Current },
}

/// Appends `events` to `stream` (or, for `$$<stream>`, sets that stream's metadata), answering
/// a wrong expected state as an outcome and every other refusal as a status.
pub(crate) async fn append(
    store: &EventStore,
    stream: &str,
    expected: Expected,
    events: Vec<EventData>,
) -> Result<AppendOutcome, Status> {
    if let Some(target) = stream.strip_prefix(mapping::METADATA_STREAM_PREFIX) {
        return metadata_stream::append(store, target, expected, events).await;
    }
    if events.is_empty() {
        // KurrentDB accepts an empty append: it only checks the expected state.
        let current = current_state(store, stream).await?;
        return Ok(if expected.holds_for(current) {
            AppendOutcome::Done { current, position: None }
        } else {
            AppendOutcome::WrongExpectedVersion { expected, current }
        });
    }
    let ids: Vec<uuid::Uuid> = events.iter().map(|e| e.event_id).collect();
    match store.append_to_stream(stream, expected.to_version()?, events).await {
        Ok(result) => Ok(AppendOutcome::Done {
            current: Current::of_version(result.stream_version),
            position: Some(result.last_position),
        }),
        // The expected state is checked before the ids: a repeated append meets either.
        Err(e @ (Error::DuplicateEvent(_) | Error::WrongExpectedVersion { .. } | Error::StreamExists)) => {
            match already_appended(store, stream, expected, &ids).await? {
                Some(done) => Ok(done),
                None => refusal(store, stream, expected, &e).await,
            }
        }
        Err(e) => refusal(store, stream, expected, &e).await,
    }
}

/// How far back an append with `Any` looks for its own events when they are already stored.
const IDEMPOTENCE_WINDOW: u64 = 1_000;

/// An append whose events are all stored already, in order, where the append would have put
/// them, is a success, as in KurrentDB: a client that retries an append whose answer it lost
/// gets the outcome of the first. Where to look: after the expected revision, or (for `Any`
/// and `StreamExists`) among the stream's last events. `None`: not this append's events.
async fn already_appended(
    store: &EventStore,
    stream: &str,
    expected: Expected,
    ids: &[uuid::Uuid],
) -> Result<Option<AppendOutcome>, Status> {
    let count = ids.len() as u64;
    let stored = match expected {
        Expected::Revision(r) => store.read_stream_forward(stream, mapping::version_of(r)? + 1, count).await,
        Expected::NoStream => store.read_stream_forward(stream, 1, count).await,
        Expected::Any | Expected::StreamExists => {
            let window = store.read_stream_backward(stream, None, IDEMPOTENCE_WINDOW.max(count)).await.map(|mut w| {
                w.reverse();
                w
            });
            window.map(|w| {
                let at = w.iter().position(|e| e.event_id == ids[0]).unwrap_or(w.len());
                w.into_iter().skip(at).take(ids.len()).collect()
            })
        }
    };
    let stored = match stored {
        Ok(stored) => stored,
        Err(Error::StreamNotFound | Error::StreamDeleted) => return Ok(None),
        Err(e) => return Err(mapping::status_of(&e, stream)),
    };
    let same = stored.len() == ids.len() && stored.iter().zip(ids).all(|(e, id)| e.event_id == *id);
    Ok(same.then(|| {
        let last = &stored[stored.len() - 1];
        AppendOutcome::Done { current: Current::of_version(last.stream_version), position: Some(last.global_position) }
    }))
}

/// A refused write as the protocol reports it: a wrong expected state with the stream's
/// current state (looked up now if the error does not carry it), else a status.
pub(crate) async fn refusal(
    store: &EventStore,
    stream: &str,
    expected: Expected,
    error: &Error,
) -> Result<AppendOutcome, Status> {
    let current = match error {
        Error::WrongExpectedVersion { actual, .. } => Current::of_version(*actual),
        Error::StreamNotFound => Current::NoStream,
        Error::StreamExists => current_state(store, stream).await?,
        _ => return Err(mapping::status_of(error, stream)),
    };
    Ok(AppendOutcome::WrongExpectedVersion { expected, current })
}

/// The state of `stream` as a write sees it (a tombstone is a status).
pub(crate) async fn current_state(store: &EventStore, stream: &str) -> Result<Current, Status> {
    match store.stream_info(stream).await {
        Ok(info) => Ok(Current::of_version(info.stream_version)),
        Err(Error::StreamNotFound) => Ok(Current::NoStream),
        Err(e) => Err(mapping::status_of(&e, stream)),
    }
}

/// Deletes `stream` (KurrentDB's delete: `Recreatable`; its tombstone: `Soft`).
async fn delete(store: &EventStore, stream: &str, expected: Expected, mode: DeleteMode) -> Result<(), Status> {
    if stream.starts_with(mapping::METADATA_STREAM_PREFIX) {
        return Err(Status::invalid_argument(format!(
            "`{stream}` holds a stream's metadata and cannot be deleted: delete the stream itself"
        )));
    }
    match store.delete_stream(stream, expected.to_version()?, mode).await {
        Ok(()) => Ok(()),
        Err(e) => match refusal(store, stream, expected, &e).await? {
            AppendOutcome::WrongExpectedVersion { expected, current } => {
                Err(mapping::wrong_expected_version(stream, expected, current))
            }
            AppendOutcome::Done { .. } => Ok(()),
        },
    }
}

fn append_expected(option: Option<append_req::options::ExpectedStreamRevision>) -> Result<Expected, Status> {
    use append_req::options::ExpectedStreamRevision as E;
    match option {
        Some(E::Revision(r)) => Ok(Expected::Revision(r)),
        Some(E::NoStream(_)) => Ok(Expected::NoStream),
        Some(E::Any(_)) => Ok(Expected::Any),
        Some(E::StreamExists(_)) => Ok(Expected::StreamExists),
        None => Err(Status::invalid_argument("the append's options carry no expected stream revision")),
    }
}

fn delete_expected(option: Option<Expected>) -> Result<Expected, Status> {
    option.ok_or_else(|| Status::invalid_argument("the request carries no expected stream revision"))
}

fn append_result(outcome: AppendOutcome) -> append_resp::Result {
    use append_resp::success::{CurrentRevisionOption, PositionOption};
    use append_resp::wrong_expected_version as wev;
    match outcome {
        AppendOutcome::Done { current, position } => append_resp::Result::Success(append_resp::Success {
            current_revision_option: Some(match current {
                Current::Revision(r) => CurrentRevisionOption::CurrentRevision(r),
                Current::NoStream => CurrentRevisionOption::NoStream(()),
            }),
            position_option: Some(match position {
                Some(p) => PositionOption::Position(append_resp::Position { commit_position: p, prepare_position: p }),
                None => PositionOption::NoPosition(()),
            }),
        }),
        AppendOutcome::WrongExpectedVersion { expected, current } => {
            append_resp::Result::WrongExpectedVersion(append_resp::WrongExpectedVersion {
                current_revision_option_20_6_0: Some(match current {
                    Current::Revision(r) => wev::CurrentRevisionOption2060::CurrentRevision2060(r),
                    Current::NoStream => wev::CurrentRevisionOption2060::NoStream2060(()),
                }),
                expected_revision_option_20_6_0: match expected {
                    Expected::Revision(r) => Some(wev::ExpectedRevisionOption2060::ExpectedRevision2060(r)),
                    Expected::Any => Some(wev::ExpectedRevisionOption2060::Any2060(())),
                    Expected::StreamExists => Some(wev::ExpectedRevisionOption2060::StreamExists2060(())),
                    Expected::NoStream => None,
                },
                current_revision_option: Some(match current {
                    Current::Revision(r) => wev::CurrentRevisionOption::CurrentRevision(r),
                    Current::NoStream => wev::CurrentRevisionOption::CurrentNoStream(()),
                }),
                expected_revision_option: Some(match expected {
                    Expected::Revision(r) => wev::ExpectedRevisionOption::ExpectedRevision(r),
                    Expected::Any => wev::ExpectedRevisionOption::ExpectedAny(()),
                    Expected::StreamExists => wev::ExpectedRevisionOption::ExpectedStreamExists(()),
                    Expected::NoStream => wev::ExpectedRevisionOption::ExpectedNoStream(()),
                }),
            })
        }
    }
}

/// Serves one batch-append call: parts are gathered per correlation id until their final part,
/// then appended as one append; each append is answered on its own, in completion order. Each
/// append runs as its own task, so the writer's group commit can put many in one transaction.
async fn batch_appends(
    store: EventStore,
    mut incoming: Streaming<BatchAppendReq>,
    tx: mpsc::Sender<Result<BatchAppendResp, Status>>,
) {
    let mut pending: std::collections::HashMap<uuid::Uuid, PendingBatch> = std::collections::HashMap::new();
    loop {
        let part = match incoming.message().await {
            Ok(Some(part)) => part,
            Ok(None) => return,
            Err(status) => {
                tracing::debug!(%status, "batch append call ended");
                return;
            }
        };
        let correlation = match mapping::uuid_of(part.correlation_id.clone(), "the batch's correlation id") {
            Ok(id) => id,
            Err(status) => {
                let _ = tx.send(Err(status)).await;
                return;
            }
        };
        let entry = pending.entry(correlation).or_insert_with(|| PendingBatch {
            correlation_id: part.correlation_id.clone(),
            options: None,
            events: Ok(Vec::new()),
        });
        if part.options.is_some() {
            entry.options = part.options;
        }
        if let Ok(events) = &mut entry.events {
            for m in part.proposed_messages {
                match mapping::event_data(Proposed {
                    id: m.id,
                    metadata: m.metadata,
                    custom_metadata: m.custom_metadata,
                    data: m.data,
                }) {
                    Ok(event) => events.push(event),
                    Err(status) => {
                        entry.events = Err(status);
                        break;
                    }
                }
            }
        }
        if part.is_final {
            let Some(batch) = pending.remove(&correlation) else { continue };
            let (store, tx) = (store.clone(), tx.clone());
            tokio::spawn(async move {
                let response = batch.complete(&store).await;
                let _ = tx.send(Ok(response)).await;
            });
        }
    }
}

/// The parts of one batch append received so far.
struct PendingBatch {
    correlation_id: Option<super::proto::ProtoUuid>,
    options: Option<batch_append_req::Options>,
    /// The events, or why one of them was refused.
    events: Result<Vec<EventData>, Status>,
}

impl PendingBatch {
    /// Appends the batch and says how it went.
    async fn complete(self, store: &EventStore) -> BatchAppendResp {
        use batch_append_req::options::{DeadlineOption, ExpectedStreamPosition as In};
        use batch_append_resp::ExpectedStreamPosition as Out;
        let mut response = BatchAppendResp { correlation_id: self.correlation_id, ..Default::default() };
        let Some(options) = self.options else {
            response.result = Some(error_result(Status::invalid_argument("the batch append sent no options")));
            return response;
        };
        response.stream_identifier = options.stream_identifier.clone();
        let expected = match options.expected_stream_position {
            Some(In::StreamPosition(r)) => Expected::Revision(r),
            Some(In::NoStream(())) => Expected::NoStream,
            Some(In::Any(())) => Expected::Any,
            Some(In::StreamExists(())) => Expected::StreamExists,
            None => Expected::Any,
        };
        response.expected_stream_position = Some(match expected {
            Expected::Revision(r) => Out::StreamPosition(r),
            Expected::NoStream => Out::NoStream(()),
            Expected::Any => Out::Any(()),
            Expected::StreamExists => Out::StreamExists(()),
        });
        let deadline = match options.deadline_option {
            Some(DeadlineOption::Deadline(d)) => std::time::Duration::try_from(d).ok(),
            _ => None,
        };
        let attempt = async {
            let stream = mapping::stream_name(options.stream_identifier)?;
            let events = self.events?;
            append(store, &stream, expected, events).await
        };
        let outcome = match deadline {
            // The deadline bounds the wait: an append already sent may still commit, so the
            // answer says the outcome is unknown rather than that it failed.
            Some(limit) => match tokio::time::timeout(limit, attempt).await {
                Ok(outcome) => outcome,
                Err(_) => Err(Status::deadline_exceeded("the batch append's deadline passed; its outcome is unknown")),
            },
            None => attempt.await,
        };
        response.result = Some(match outcome {
            Ok(AppendOutcome::Done { current, position }) => batch_success(current, position),
            Ok(AppendOutcome::WrongExpectedVersion { expected, current }) => {
                batch_wrong_expected_version(expected, current)
            }
            Err(status) => error_result(status),
        });
        response
    }
}

fn batch_success(current: Current, position: Option<u64>) -> batch_append_resp::Result {
    use batch_append_resp::success::{CurrentRevisionOption, PositionOption};
    batch_append_resp::Result::Success(batch_append_resp::Success {
        current_revision_option: Some(match current {
            Current::Revision(r) => CurrentRevisionOption::CurrentRevision(r),
            Current::NoStream => CurrentRevisionOption::NoStream(()),
        }),
        position_option: Some(match position {
            Some(p) => PositionOption::Position(AllStreamPosition { commit_position: p, prepare_position: p }),
            None => PositionOption::NoPosition(()),
        }),
    })
}

/// A refused batch append, in the `google.rpc.Status` the response carries (a deleted stream
/// with the `StreamDeleted` details KurrentDB packs in).
fn error_result(status: Status) -> batch_append_resp::Result {
    let details = match status.metadata().get("exception").and_then(|e| e.to_str().ok()) {
        Some("stream-deleted") => {
            let stream = status.metadata().get("stream-name").and_then(|s| s.to_str().ok()).unwrap_or_default();
            Some(packed(
                "StreamDeleted",
                &shared::StreamDeleted { stream_identifier: Some(mapping::stream_identifier(stream)) },
            ))
        }
        _ => None,
    };
    batch_append_resp::Result::Error(google::rpc::Status {
        code: status.code() as i32,
        message: status.message().to_string(),
        details,
    })
}

/// A wrong expected state of a batch append, with both states in its details.
fn batch_wrong_expected_version(expected: Expected, current: Current) -> batch_append_resp::Result {
    use shared::wrong_expected_version::{CurrentStreamRevisionOption as C, ExpectedStreamPositionOption as E};
    let details = shared::WrongExpectedVersion {
        current_stream_revision_option: Some(match current {
            Current::Revision(r) => C::CurrentStreamRevision(r),
            Current::NoStream => C::CurrentNoStream(()),
        }),
        expected_stream_position_option: Some(match expected {
            Expected::Revision(r) => E::ExpectedStreamPosition(r),
            Expected::Any => E::ExpectedAny(()),
            Expected::StreamExists => E::ExpectedStreamExists(()),
            Expected::NoStream => E::ExpectedNoStream(()),
        }),
    };
    batch_append_resp::Result::Error(google::rpc::Status {
        code: google::rpc::Code::FailedPrecondition as i32,
        message: format!("wrong expected version: expected {}, actual {}", expected.trailer(), current.trailer()),
        details: Some(packed("WrongExpectedVersion", &details)),
    })
}

/// `message` packed in a `google.protobuf.Any` under its name in `event_store.client`.
fn packed(name: &str, message: &impl prost::Message) -> prost_types::Any {
    prost_types::Any {
        type_url: format!("type.googleapis.com/event_store.client.{name}"),
        value: message.encode_to_vec(),
    }
}
