//! The `Streams.Read` call: a read of a stream or of `$all` (at most `count` events, either
//! direction, optionally filtered), or a catch-up subscription (the stored events after a
//! point, then live ones). A subscription is one of chronik's transient named subscriptions,
//! acked as each batch is handed to the connection: the library catches up, switches to live,
//! filters in the database, and the connection's flow control holds it back.
//!
//! Positions: a read forward from a position or revision includes it; a read backward from a
//! revision includes it, from a `$all` position starts before it; a subscription from a
//! revision or position delivers what comes after it.

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

use super::Stopping;
use super::mapping::{self, UuidForm};
use super::metadata_stream;
use super::proto::streams::read_req::options::{self as opts, AllOptions, FilterOptions, StreamOptions};
use super::proto::streams::read_resp::{self, ReadEvent};
use super::proto::streams::{ReadReq, ReadResp};
use crate::{ALL, Error, EventFilter, EventStore, RecordedEvent, StartFrom, SubscriptionMessage, SubscriptionOptions};

/// How many events one storage read asks for.
const PAGE: u64 = 512;

/// How often a filtered subscription reports how far it got through events that did not pass.
const FILTERED_PROGRESS: std::time::Duration = std::time::Duration::from_secs(1);

/// How many responses wait for the connection before the reader waits too.
const QUEUE: usize = 256;

/// Responses go out through this.
type Responses = mpsc::Sender<Result<ReadResp, Status>>;

/// Where a read or subscription of a stream starts.
#[derive(Debug, Clone, Copy)]
enum StreamFrom {
    Start,
    End,
    Revision(u64),
}

/// Where a read or subscription of `$all` starts.
#[derive(Debug, Clone, Copy)]
enum AllFrom {
    Start,
    End,
    Position(u64),
}

/// What is read.
#[derive(Debug, Clone)]
enum Source {
    Stream { name: String, from: StreamFrom },
    All { from: AllFrom },
}

/// A validated `Read` request.
#[derive(Debug, Clone)]
struct Plan {
    source: Source,
    backward: bool,
    resolve_links: bool,
    /// `None`: a subscription.
    count: Option<u64>,
    filter: Option<EventFilter>,
    /// A filtered subscription reports a checkpoint after this many events.
    checkpoint_every: u64,
    form: UuidForm,
}

/// Starts serving `request`; a request that cannot be served is refused before any response.
pub(crate) async fn read(
    store: EventStore,
    request: ReadReq,
    deadline: Option<std::time::Duration>,
    mut stopping: Stopping,
) -> Result<ReceiverStream<Result<ReadResp, Status>>, Status> {
    let plan = Plan::of(request)?;
    if let Some(filter) = &plan.filter {
        // A regular expression that does not compile is the request's error.
        store.read_all_filtered(filter, 0, 0).await.map_err(|e| mapping::status_of(&e, ALL))?;
    }
    let (tx, rx) = mpsc::channel(QUEUE);
    tokio::spawn(async move {
        let work = async {
            match plan.count {
                Some(count) => plan.read(&store, count, &tx).await,
                None => plan.subscribe(&store, &tx).await,
            }
        };
        // A server that stops ends reads and subscriptions in progress; a deadline, its call.
        let expired = async {
            match deadline {
                Some(deadline) => tokio::time::sleep(deadline).await,
                None => std::future::pending().await,
            }
        };
        let outcome = tokio::select! {
            outcome = work => outcome,
            () = super::stopped(&mut stopping) => Err(Status::unavailable("the server is shutting down")),
            () = expired => Err(mapping::deadline_exceeded()),
        };
        if let Err(status) = outcome {
            let _ = tx.send(Err(status)).await;
        }
    });
    Ok(ReceiverStream::new(rx))
}

impl Plan {
    fn of(request: ReadReq) -> Result<Plan, Status> {
        let options = request.options.ok_or_else(|| Status::invalid_argument("a read needs options"))?;
        let backward = options.read_direction == opts::ReadDirection::Backwards as i32;
        let source = match options.stream_option {
            Some(opts::StreamOption::Stream(StreamOptions { stream_identifier, revision_option })) => {
                let name = mapping::stream_name(stream_identifier)?;
                let from = match revision_option {
                    Some(opts::stream_options::RevisionOption::Revision(r)) => StreamFrom::Revision(r),
                    Some(opts::stream_options::RevisionOption::End(())) => StreamFrom::End,
                    Some(opts::stream_options::RevisionOption::Start(())) | None => StreamFrom::Start,
                };
                if name == ALL {
                    return Err(Status::invalid_argument("read `$all` with the `all` option, not as a stream"));
                }
                Source::Stream { name, from }
            }
            Some(opts::StreamOption::All(AllOptions { all_option })) => Source::All {
                from: match all_option {
                    Some(opts::all_options::AllOption::Position(p)) => AllFrom::Position(p.commit_position),
                    Some(opts::all_options::AllOption::End(())) => AllFrom::End,
                    Some(opts::all_options::AllOption::Start(())) | None => AllFrom::Start,
                },
            },
            None => return Err(Status::invalid_argument("a read names a stream or `$all`")),
        };
        let count = match options.count_option {
            Some(opts::CountOption::Count(n)) => Some(n),
            Some(opts::CountOption::Subscription(_)) => None,
            None => return Err(Status::invalid_argument("a read gives a count or asks for a subscription")),
        };
        let (filter, checkpoint_every) = match options.filter_option {
            Some(opts::FilterOption::Filter(f)) => {
                if matches!(source, Source::Stream { .. }) {
                    return Err(Status::invalid_argument("filters apply to `$all` only"));
                }
                filter_of(f)?
            }
            _ => (None, 0),
        };
        let form = match options.uuid_option.and_then(|u| u.content) {
            Some(opts::uuid_option::Content::Structured(())) => UuidForm::Structured,
            _ => UuidForm::String,
        };
        if count.is_none() && backward {
            return Err(Status::invalid_argument("a subscription reads forward"));
        }
        Ok(Plan { source, backward, resolve_links: options.resolve_links, count, filter, checkpoint_every, form })
    }

    /// A read of at most `count` events.
    async fn read(&self, store: &EventStore, count: u64, tx: &Responses) -> Result<(), Status> {
        match &self.source {
            Source::Stream { name, from } => self.read_stream(store, name, *from, count, tx).await,
            Source::All { from } => self.read_all(store, *from, count, tx).await,
        }
    }

    async fn read_stream(
        &self,
        store: &EventStore,
        name: &str,
        from: StreamFrom,
        count: u64,
        tx: &Responses,
    ) -> Result<(), Status> {
        if let Some(target) = name.strip_prefix(mapping::METADATA_STREAM_PREFIX) {
            let Some(event) = metadata_stream::latest_event(store, target).await? else {
                return not_found(name, tx).await;
            };
            let wanted = match (from, self.backward) {
                (StreamFrom::End, false) => false,
                (StreamFrom::Revision(r), false) => r <= mapping::revision_of(event.stream_version),
                _ => true,
            };
            if wanted && count > 0 {
                send(tx, self.event(&event, name)).await?;
            }
            return Ok(());
        }
        let next = match (from, self.backward) {
            (StreamFrom::End, false) => return self.check_stream(store, name, tx).await,
            (StreamFrom::End, true) => i64::MAX as u64,
            (StreamFrom::Start, _) => 1,
            (StreamFrom::Revision(r), _) => mapping::version_of(r)?,
        };
        let backward = self.backward;
        self.send_pages(name, next, count, tx, |from, n| async move {
            if backward {
                store.read_stream_backward(name, Some(from), n).await
            } else {
                store.read_stream_forward(name, from, n).await
            }
        })
        .await
    }

    /// A forward read from the end gives nothing, but still says when the stream is missing.
    async fn check_stream(&self, store: &EventStore, name: &str, tx: &Responses) -> Result<(), Status> {
        match store.stream_info(name).await {
            Ok(_) => Ok(()),
            Err(Error::StreamNotFound) => not_found(name, tx).await,
            Err(e) => Err(mapping::status_of(&e, name)),
        }
    }

    async fn read_all(&self, store: &EventStore, from: AllFrom, count: u64, tx: &Responses) -> Result<(), Status> {
        let next = match (from, self.backward) {
            (AllFrom::End, false) => return Ok(()),
            (AllFrom::End, true) => i64::MAX as u64,
            (AllFrom::Start, false) => 0,
            (AllFrom::Start, true) => return Ok(()),
            (AllFrom::Position(p), false) => p,
            (AllFrom::Position(p), true) => match p.checked_sub(1) {
                Some(p) => p,
                None => return Ok(()),
            },
        };
        let (filter, backward) = (self.filter.as_ref(), self.backward);
        self.send_pages(ALL, next, count, tx, |from, n| async move {
            match (filter, backward) {
                (Some(f), false) => store.read_all_filtered(f, from, n).await,
                (Some(f), true) => store.read_all_filtered_backward(f, Some(from), n).await,
                (None, false) => store.read_all_forward(from, n).await,
                (None, true) => store.read_all_backward(Some(from), n).await,
            }
        })
        .await
    }

    /// Sends up to `count` entries of `name` (a stream or `$all`), read a page at a time by
    /// `read(from, count)` starting at event number `next`, in the plan's direction. A stream
    /// that does not exist is said in a response, as KurrentDB does, not as an error.
    async fn send_pages<F, Fut>(
        &self,
        name: &str,
        mut next: u64,
        count: u64,
        tx: &Responses,
        read: F,
    ) -> Result<(), Status>
    where
        F: Fn(u64, u64) -> Fut,
        Fut: Future<Output = crate::Result<Vec<RecordedEvent>>>,
    {
        let mut left = count;
        while left > 0 {
            let ask = left.min(PAGE);
            let page = match read(next, ask).await {
                Ok(page) => page,
                Err(Error::StreamNotFound) => return not_found(name, tx).await,
                Err(e) => return Err(mapping::status_of(&e, name)),
            };
            let Some(last) = page.last().map(|e| e.event_number) else { break };
            for event in &page {
                send(tx, self.event(event, name)).await?;
            }
            left -= page.len() as u64;
            if (page.len() as u64) < ask {
                break;
            }
            next = if self.backward {
                match last.checked_sub(1) {
                    Some(n) if n > 0 => n,
                    _ => break,
                }
            } else {
                last + 1
            };
        }
        Ok(())
    }

    /// A catch-up subscription, until the client goes or the store stops it.
    async fn subscribe(&self, store: &EventStore, tx: &Responses) -> Result<(), Status> {
        let (stream, start) = match &self.source {
            Source::Stream { name, .. } if name.starts_with(mapping::METADATA_STREAM_PREFIX) => {
                return Err(Status::invalid_argument(format!(
                    "`{name}` holds a stream's metadata; chronik cannot subscribe to it"
                )));
            }
            Source::Stream { name, from } => (
                name.as_str(),
                match from {
                    StreamFrom::Start => StartFrom::Origin,
                    StreamFrom::End => StartFrom::Current,
                    StreamFrom::Revision(r) => StartFrom::After(mapping::version_of(*r)?),
                },
            ),
            Source::All { from } => (
                ALL,
                match from {
                    AllFrom::Start => StartFrom::Origin,
                    AllFrom::End => StartFrom::Current,
                    AllFrom::Position(p) => StartFrom::After(*p),
                },
            ),
        };
        let id = uuid::Uuid::new_v4();
        let mut options = SubscriptionOptions::default().transient(true).start_from(start);
        if let Some(filter) = &self.filter {
            options = options.filter(filter.clone());
        }
        let mut subscription = store
            .subscribe_to_stream(stream, &format!("grpc-{id}"), options)
            .await
            .map_err(|e| mapping::status_of(&e, stream))?;
        send(
            tx,
            ReadResp {
                content: Some(read_resp::Content::Confirmation(read_resp::SubscriptionConfirmation {
                    subscription_id: id.to_string(),
                })),
            },
        )
        .await?;
        let name = format!("grpc-{id}");
        let mut delivered_since_checkpoint = 0u64;
        let mut last_event: Option<(u64, u64)> = None;
        // What the last checkpoint said; a filtered subscription also reports, once a second,
        // how far it got through events that did not pass (its acked position, which moves
        // past them), so a client resuming from it does not scan them again.
        let mut reported = 0u64;
        let mut progress = tokio::time::interval(FILTERED_PROGRESS);
        progress.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            // A client that goes away ends the subscription at once, not at the next event.
            let message = tokio::select! {
                message = subscription.recv() => message,
                () = tx.closed() => return Err(Status::cancelled("the client went away")),
                _ = progress.tick(), if self.filter.is_some() => {
                    if let Ok(status) = store.subscription_status(stream, &name).await
                        && status.in_flight == 0
                        && status.acked > reported
                    {
                        reported = status.acked;
                        send(tx, checkpoint(reported)).await?;
                    }
                    continue;
                }
            };
            let Some(message) = message else { break };
            match message {
                SubscriptionMessage::Events(batch) => {
                    for event in &batch {
                        send(tx, self.event(event, stream)).await?;
                        last_event = Some((event.event_number, event.global_position));
                        delivered_since_checkpoint += 1;
                        if self.filter.is_some() && delivered_since_checkpoint >= self.checkpoint_every {
                            delivered_since_checkpoint = 0;
                            reported = event.global_position;
                            send(tx, checkpoint(reported)).await?;
                        }
                    }
                    subscription.ack(&batch).await.map_err(|e| mapping::status_of(&e, stream))?;
                }
                SubscriptionMessage::CaughtUp => {
                    let (stream_revision, position) = match (&self.source, last_event) {
                        (Source::Stream { .. }, Some((number, _))) => (Some(mapping::revision_of(number) as i64), None),
                        (Source::All { .. }, Some((_, p))) => {
                            (None, Some(read_resp::Position { commit_position: p, prepare_position: p }))
                        }
                        _ => (None, None),
                    };
                    let caught_up =
                        read_resp::CaughtUp { timestamp: Some(mapping::timestamp_now()), stream_revision, position };
                    send(tx, ReadResp { content: Some(read_resp::Content::CaughtUp(caught_up)) }).await?;
                }
                SubscriptionMessage::Dropped(reason) => {
                    return Err(Status::unavailable(format!("the subscription was dropped: {reason}")));
                }
                _ => {}
            }
        }
        Err(Status::unavailable("the store is shutting down"))
    }

    /// One event as the protocol sends it: through a link (a linked or index stream) it is the
    /// link, with the event it points at when links are resolved.
    fn event(&self, event: &RecordedEvent, stream: &str) -> ReadResp {
        let (event_message, link) = if mapping::is_linked(event, stream) {
            let link = mapping::wire_link(event, stream, self.form).into();
            if self.resolve_links { (mapping::wire_event(event, self.form).into(), Some(link)) } else { (link, None) }
        } else {
            (mapping::wire_event(event, self.form).into(), None)
        };
        // Clients expect a position with every event (the metadata of `$$<stream>`, not in
        // `$all`, has 0).
        let position = read_resp::read_event::Position::CommitPosition(event.global_position);
        ReadResp {
            content: Some(read_resp::Content::Event(ReadEvent {
                event: Some(event_message),
                link,
                position: Some(position),
            })),
        }
    }
}

/// The protocol's filter for `$all`, and after how many events a subscription reports a
/// checkpoint (`max` times the multiplier, as KurrentDB counts).
fn filter_of(options: FilterOptions) -> Result<(Option<EventFilter>, u64), Status> {
    use opts::filter_options::{Filter, Window};
    let filter = match options.filter {
        Some(Filter::StreamIdentifier(e)) => mapping::expression_filter(e.prefix, e.regex, true)?,
        Some(Filter::EventType(e)) => mapping::expression_filter(e.prefix, e.regex, false)?,
        None => return Err(Status::invalid_argument("a filter matches the stream or the event type")),
    };
    let window = match options.window {
        Some(Window::Max(max)) => u64::from(max.max(1)),
        _ => 32,
    };
    let every = window.saturating_mul(u64::from(options.checkpoint_interval_multiplier.max(1)));
    Ok((Some(filter), every))
}

fn checkpoint(position: u64) -> ReadResp {
    ReadResp {
        content: Some(read_resp::Content::Checkpoint(read_resp::Checkpoint {
            commit_position: position,
            prepare_position: position,
            timestamp: Some(mapping::timestamp_now()),
        })),
    }
}

async fn not_found(stream: &str, tx: &Responses) -> Result<(), Status> {
    send(
        tx,
        ReadResp {
            content: Some(read_resp::Content::StreamNotFound(read_resp::StreamNotFound {
                stream_identifier: Some(mapping::stream_identifier(stream)),
            })),
        },
    )
    .await
}

/// Sends one response; the client having gone ends the read.
async fn send(tx: &Responses, response: ReadResp) -> Result<(), Status> {
    tx.send(Ok(response)).await.map_err(|_| Status::cancelled("the client went away"))
}
