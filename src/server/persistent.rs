//! The `PersistentSubscriptions` service: KurrentDB's persistent subscription groups served by
//! chronik's named subscriptions. A group is the named subscription of the same name on the
//! same stream (or `$all`); a consumer's `Read` call is one subscriber of it, its acks and nacks
//! go to the library as they come. The library keeps everything else: the checkpoint, retries,
//! parking, the consumer strategy, one owner node at a time.
//!
//! Settings: `max_subscriber_count` is `concurrency_limit` (0, unlimited, is
//! [`UNLIMITED_CONSUMERS`]), `live_buffer_size` is `max_size`, `min_checkpoint_count` is
//! `checkpoint_threshold`, `checkpoint_after`, `message_timeout`, `max_retry_count` and the
//! consumer strategy are the same; the in-flight limit per consumer is the group's
//! `buffer_size`, [`CONSUMER_BUFFER`] at creation (the buffer size a consumer asks for does not
//! change it). Events reached through links (`$ce-`, `$et-`, linked streams) always come with
//! the link, as with `resolve_links`. A start revision or position is the first event
//! delivered, as KurrentDB counts for groups. `RestartSubsystem` drops the consumers connected
//! to this server.

use std::collections::HashMap;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::Stopping;
use super::mapping::{self, UuidForm, WireEvent};
use super::proto::persistent::{
    CreateReq, CreateResp, DeleteReq, DeleteResp, GetInfoReq, GetInfoResp, ListReq, ListResp, ReadReq, ReadResp,
    ReplayParkedReq, ReplayParkedResp, SubscriptionInfo as WireInfo, UpdateReq, UpdateResp, create_req, list_req,
    persistent_subscriptions_server, read_req, read_resp, replay_parked_req, subscription_info, update_req,
};
use super::streams::ResponseStream;
use crate::{
    ALL, ConsumerStrategy, Error, EventFilter, EventStore, NackAction, RecordedEvent, StartFrom, Subscription,
    SubscriptionInfo, SubscriptionMessage, SubscriptionOptions,
};

/// `concurrency_limit` of a group whose `max_subscriber_count` is 0 (KurrentDB: no limit).
pub(crate) const UNLIMITED_CONSUMERS: usize = 10_000;

/// Events in flight per consumer of a group created over the protocol (KurrentDB clients ask
/// for 10 by default).
pub(crate) const CONSUMER_BUFFER: usize = 10;

/// The `PersistentSubscriptions` service over one store.
pub(crate) struct PersistentService {
    store: EventStore,
    /// Bumped by `RestartSubsystem`: every consumer connected here is dropped when it moves.
    restarts: tokio::sync::watch::Sender<u64>,
    stopping: Stopping,
}

impl PersistentService {
    pub(crate) fn new(store: EventStore, stopping: Stopping) -> Self {
        PersistentService { store, restarts: tokio::sync::watch::Sender::new(0), stopping }
    }
}

#[tonic::async_trait]
impl persistent_subscriptions_server::PersistentSubscriptions for PersistentService {
    type ReadStream = ResponseStream<ReadResp>;

    // Clients before 21.10 send the stream, the start and the strategy in deprecated fields.
    #[allow(deprecated)]
    async fn create(&self, request: Request<CreateReq>) -> Result<Response<CreateResp>, Status> {
        let options = request.into_inner().options.ok_or_else(|| Status::invalid_argument("create needs options"))?;
        let settings = options.settings.unwrap_or_default();
        let (stream, start, filter) = match options.stream_option {
            Some(create_req::options::StreamOption::Stream(s)) => {
                let stream = mapping::stream_name(s.stream_identifier)?;
                (
                    stream,
                    stream_start(s.revision_option.map(|r| match r {
                        create_req::stream_options::RevisionOption::Revision(r) => Some(r),
                        create_req::stream_options::RevisionOption::Start(()) => None,
                        create_req::stream_options::RevisionOption::End(()) => Some(u64::MAX),
                    })),
                    None,
                )
            }
            Some(create_req::options::StreamOption::All(all)) => {
                let start = all_start(all.all_option.map(|a| match a {
                    create_req::all_options::AllOption::Position(p) => Some(p.commit_position),
                    create_req::all_options::AllOption::Start(()) => None,
                    create_req::all_options::AllOption::End(()) => Some(u64::MAX),
                }));
                let filter = match all.filter_option {
                    Some(create_req::all_options::FilterOption::Filter(f)) => Some(filter_of(f)?),
                    _ => None,
                };
                (ALL.to_string(), start, filter)
            }
            // Clients before 21.10 name the stream in the deprecated field, the start in the settings.
            None => {
                let stream = mapping::stream_name(options.stream_identifier)?;
                (stream, StartFrom::After(settings.revision), None)
            }
        };
        let strategy = strategy_of(&settings.consumer_strategy, settings.named_consumer_strategy)?;
        let mut subscription = SubscriptionOptions::default().start_from(start).buffer_size(CONSUMER_BUFFER);
        subscription = apply(
            subscription,
            Settings {
                max_retry_count: settings.max_retry_count,
                min_checkpoint_count: settings.min_checkpoint_count,
                max_subscriber_count: settings.max_subscriber_count,
                live_buffer_size: settings.live_buffer_size,
                message_timeout: timeout_of(settings.message_timeout.map(|t| match t {
                    create_req::settings::MessageTimeout::MessageTimeoutTicks(t) => Ticks(t),
                    create_req::settings::MessageTimeout::MessageTimeoutMs(ms) => Millis(ms),
                })),
                checkpoint_after: timeout_of(settings.checkpoint_after.map(|t| match t {
                    create_req::settings::CheckpointAfter::CheckpointAfterTicks(t) => Ticks(t),
                    create_req::settings::CheckpointAfter::CheckpointAfterMs(ms) => Millis(ms),
                })),
                strategy,
            },
        );
        if let Some(filter) = filter {
            subscription = subscription.filter(filter);
        }
        let group = group_name(options.group_name)?;
        match self.store.create_subscription(&stream, &group, subscription).await {
            Ok(()) => Ok(Response::new(CreateResp {})),
            Err(Error::SubscriptionAlreadyExists) => Err(mapping::with_trailers(
                Status::already_exists(format!("subscription group `{group}` on `{stream}` exists")),
                &[("exception", "persistent-subscription-exists"), ("stream-name", &stream), ("group-name", &group)],
            )),
            Err(e) => Err(mapping::status_of(&e, &stream)),
        }
    }

    #[allow(deprecated)]
    async fn update(&self, request: Request<UpdateReq>) -> Result<Response<UpdateResp>, Status> {
        let options = request.into_inner().options.ok_or_else(|| Status::invalid_argument("update needs options"))?;
        let stream = match options.stream_option {
            Some(update_req::options::StreamOption::Stream(s)) => mapping::stream_name(s.stream_identifier)?,
            Some(update_req::options::StreamOption::All(_)) => ALL.to_string(),
            None => mapping::stream_name(options.stream_identifier)?,
        };
        let group = group_name(options.group_name)?;
        let info = self.info(&stream, &group).await?;
        let settings = options.settings.unwrap_or_default();
        let strategy = match settings.named_consumer_strategy {
            0 => ConsumerStrategy::DispatchToSingle,
            2 => ConsumerStrategy::Pinned,
            _ => ConsumerStrategy::RoundRobin,
        };
        let updated = apply(
            info.settings.unwrap_or_default(),
            Settings {
                max_retry_count: settings.max_retry_count,
                min_checkpoint_count: settings.min_checkpoint_count,
                max_subscriber_count: settings.max_subscriber_count,
                live_buffer_size: settings.live_buffer_size,
                message_timeout: timeout_of(settings.message_timeout.map(|t| match t {
                    update_req::settings::MessageTimeout::MessageTimeoutTicks(t) => Ticks(t),
                    update_req::settings::MessageTimeout::MessageTimeoutMs(ms) => Millis(ms),
                })),
                checkpoint_after: timeout_of(settings.checkpoint_after.map(|t| match t {
                    update_req::settings::CheckpointAfter::CheckpointAfterTicks(t) => Ticks(t),
                    update_req::settings::CheckpointAfter::CheckpointAfterMs(ms) => Millis(ms),
                })),
                strategy,
            },
        );
        self.store.update_subscription(&stream, &group, updated).await.map_err(|e| self.status(&e, &stream, &group))?;
        Ok(Response::new(UpdateResp {}))
    }

    async fn delete(&self, request: Request<DeleteReq>) -> Result<Response<DeleteResp>, Status> {
        use super::proto::persistent::delete_req::options::StreamOption;
        let options = request.into_inner().options.ok_or_else(|| Status::invalid_argument("delete needs options"))?;
        let stream = match options.stream_option {
            Some(StreamOption::StreamIdentifier(id)) => mapping::stream_name(Some(id))?,
            Some(StreamOption::All(())) => ALL.to_string(),
            None => return Err(Status::invalid_argument("delete names a stream or `$all`")),
        };
        let group = group_name(options.group_name)?;
        self.store.delete_subscription(&stream, &group).await.map_err(|e| self.status(&e, &stream, &group))?;
        Ok(Response::new(DeleteResp {}))
    }

    async fn read(&self, request: Request<Streaming<ReadReq>>) -> Result<Response<Self::ReadStream>, Status> {
        let deadline = mapping::deadline_of(request.metadata()).map(|d| tokio::time::Instant::now() + d);
        let mut incoming = request.into_inner();
        let options = match incoming.message().await? {
            Some(ReadReq { content: Some(read_req::Content::Options(options)) }) => options,
            _ => return Err(Status::invalid_argument("a persistent subscription's call starts with its options")),
        };
        let stream = match options.stream_option {
            Some(read_req::options::StreamOption::StreamIdentifier(id)) => mapping::stream_name(Some(id))?,
            Some(read_req::options::StreamOption::All(())) => ALL.to_string(),
            None => return Err(Status::invalid_argument("the subscription names a stream or `$all`")),
        };
        let group = group_name(options.group_name)?;
        let form = match options.uuid_option.and_then(|u| u.content) {
            Some(read_req::options::uuid_option::Content::Structured(())) => UuidForm::Structured,
            _ => UuidForm::String,
        };
        // A group must be created first; subscribing would create it.
        self.info(&stream, &group).await?;
        let subscription = self
            .store
            .subscribe_to_stream(&stream, &group, SubscriptionOptions::default())
            .await
            .map_err(|e| self.status(&e, &stream, &group))?;
        let (tx, rx) = mpsc::channel(64);
        let confirmation = ReadResp {
            content: Some(read_resp::Content::SubscriptionConfirmation(read_resp::SubscriptionConfirmation {
                subscription_id: format!("{stream}::{group}"),
            })),
        };
        let _ = tx.send(Ok(confirmation)).await;
        let restarts = self.restarts.subscribe();
        let stopping = self.stopping.clone();
        let consumer = Consumer { subscription, stream, form, in_flight: HashMap::new(), restarts, stopping, deadline };
        tokio::spawn(consumer.run(incoming, tx));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn get_info(&self, request: Request<GetInfoReq>) -> Result<Response<GetInfoResp>, Status> {
        use super::proto::persistent::get_info_req::options::StreamOption;
        let options = request.into_inner().options.ok_or_else(|| Status::invalid_argument("get info needs options"))?;
        let stream = match options.stream_option {
            Some(StreamOption::StreamIdentifier(id)) => mapping::stream_name(Some(id))?,
            Some(StreamOption::All(())) => ALL.to_string(),
            None => return Err(Status::invalid_argument("get info names a stream or `$all`")),
        };
        let group = group_name(options.group_name)?;
        let info = self.info(&stream, &group).await?;
        Ok(Response::new(GetInfoResp { subscription_info: Some(wire_info(&info)) }))
    }

    async fn replay_parked(&self, request: Request<ReplayParkedReq>) -> Result<Response<ReplayParkedResp>, Status> {
        use replay_parked_req::options::{StopAtOption, StreamOption};
        let options = request.into_inner().options.ok_or_else(|| Status::invalid_argument("replay needs options"))?;
        let stream = match options.stream_option {
            Some(StreamOption::StreamIdentifier(id)) => mapping::stream_name(Some(id))?,
            Some(StreamOption::All(())) => ALL.to_string(),
            None => return Err(Status::invalid_argument("replay names a stream or `$all`")),
        };
        if let Some(StopAtOption::StopAt(n)) = options.stop_at_option {
            return Err(Status::invalid_argument(format!(
                "chronik replays every parked event of a group; a limit ({n}) is not supported"
            )));
        }
        let group = group_name(options.group_name)?;
        self.store.replay_parked(&stream, &group).await.map_err(|e| self.status(&e, &stream, &group))?;
        Ok(Response::new(ReplayParkedResp {}))
    }

    async fn list(&self, request: Request<ListReq>) -> Result<Response<ListResp>, Status> {
        let only = match request.into_inner().options.and_then(|o| o.list_option) {
            Some(list_req::options::ListOption::ListForStream(s)) => match s.stream_option {
                Some(list_req::stream_option::StreamOption::Stream(id)) => Some(mapping::stream_name(Some(id))?),
                Some(list_req::stream_option::StreamOption::All(())) => Some(ALL.to_string()),
                None => None,
            },
            _ => None,
        };
        let all = self.store.list_subscriptions().await.map_err(|e| mapping::status_of(&e, ALL))?;
        let subscriptions =
            all.iter().filter(|s| only.as_ref().is_none_or(|stream| &s.stream == stream)).map(wire_info).collect();
        Ok(Response::new(ListResp { subscriptions }))
    }

    /// Drops every consumer connected to this server (their events in flight go back to their
    /// groups, which keep their checkpoints); clients connect again, as after KurrentDB's
    /// restart of its persistent subscriptions. Groups consumed elsewhere (by the embedding
    /// application, or through another server) go on.
    async fn restart_subsystem(&self, _request: Request<()>) -> Result<Response<()>, Status> {
        self.restarts.send_modify(|generation| *generation += 1);
        Ok(Response::new(()))
    }
}

impl PersistentService {
    /// The group's stored state; a missing group is KurrentDB's "does not exist".
    async fn info(&self, stream: &str, group: &str) -> Result<SubscriptionInfo, Status> {
        self.store.subscription_info(stream, group).await.map_err(|e| self.status(&e, stream, group))
    }

    fn status(&self, error: &Error, stream: &str, group: &str) -> Status {
        match error {
            Error::SubscriptionNotFound => mapping::with_trailers(
                Status::not_found(format!("subscription group `{group}` on `{stream}` does not exist")),
                &[
                    ("exception", "persistent-subscription-does-not-exist"),
                    ("stream-name", stream),
                    ("group-name", group),
                ],
            ),
            Error::TooManySubscribers | Error::SubscriptionAlreadyExists => mapping::with_trailers(
                Status::failed_precondition(format!(
                    "subscription group `{group}` on `{stream}` has its maximum number of consumers"
                )),
                &[("exception", "maximum-subscribers-reached"), ("stream-name", stream), ("group-name", group)],
            ),
            other => mapping::status_of(other, stream),
        }
    }
}

/// One consumer's call: events out, acks and nacks in.
struct Consumer {
    subscription: Subscription,
    stream: String,
    form: UuidForm,
    /// Events delivered and not yet acked, by the id the consumer acks them with (the link's
    /// for an event reached through one, else the event's).
    in_flight: HashMap<uuid::Uuid, RecordedEvent>,
    /// Moves when the subsystem is restarted.
    restarts: tokio::sync::watch::Receiver<u64>,
    /// Says when the server stops.
    stopping: Stopping,
    /// When the consumer's call ends, if it gave a deadline.
    deadline: Option<tokio::time::Instant>,
}

impl Consumer {
    async fn run(mut self, mut incoming: Streaming<ReadReq>, tx: mpsc::Sender<Result<ReadResp, Status>>) {
        let (mut stopping, mut restarts) = (self.stopping.clone(), self.restarts.clone());
        let deadline = self.deadline;
        let expired = async move {
            match deadline {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(expired);
        loop {
            tokio::select! {
                () = &mut expired => {
                    let _ = tx.send(Err(mapping::deadline_exceeded())).await;
                    return;
                }
                () = super::stopped(&mut stopping) => {
                    let _ = tx.send(Err(Status::unavailable("the server is shutting down"))).await;
                    return;
                }
                _ = restarts.changed() => {
                    let status = mapping::with_trailers(
                        Status::unavailable("the persistent subscriptions were restarted: connect again"),
                        &[("exception", "persistent-subscription-dropped")],
                    );
                    let _ = tx.send(Err(status)).await;
                    return;
                }
                request = incoming.message() => match request {
                    Ok(Some(request)) => {
                        if let Err(status) = self.answer(request).await {
                            let _ = tx.send(Err(status)).await;
                            return;
                        }
                    }
                    // The consumer went: its events in flight go to the others.
                    Ok(None) | Err(_) => return,
                },
                message = self.subscription.recv() => match message {
                    Some(SubscriptionMessage::Events(batch)) => {
                        for event in batch {
                            let (response, id) = self.delivery(&event);
                            self.in_flight.insert(id, event);
                            if tx.send(Ok(response)).await.is_err() {
                                return;
                            }
                        }
                    }
                    Some(SubscriptionMessage::Dropped(reason)) => {
                        let status = mapping::with_trailers(
                            Status::cancelled(format!("the persistent subscription was dropped: {reason}")),
                            &[("exception", "persistent-subscription-dropped")],
                        );
                        let _ = tx.send(Err(status)).await;
                        return;
                    }
                    Some(_) => {}
                    None => {
                        let _ = tx.send(Err(Status::unavailable("the store is shutting down"))).await;
                        return;
                    }
                },
            }
        }
    }

    /// Acks or nacks what the consumer names.
    async fn answer(&mut self, request: ReadReq) -> Result<(), Status> {
        match request.content {
            Some(read_req::Content::Ack(ack)) => {
                let events = self.take(ack.ids)?;
                self.subscription.ack(&events).await.map_err(|e| mapping::status_of(&e, &self.stream))
            }
            Some(read_req::Content::Nack(nack)) => {
                use read_req::nack::Action;
                let action = match Action::try_from(nack.action) {
                    Ok(Action::Park) => NackAction::Park,
                    Ok(Action::Skip) => NackAction::Skip,
                    Ok(Action::Stop) => NackAction::Stop,
                    // KurrentDB retries an event whose action it does not know.
                    Ok(Action::Retry | Action::Unknown) | Err(_) => NackAction::Retry,
                };
                for event in self.take(nack.ids)? {
                    self.subscription
                        .nack(&event, action, nack.reason.clone())
                        .await
                        .map_err(|e| mapping::status_of(&e, &self.stream))?;
                }
                Ok(())
            }
            _ => Err(Status::invalid_argument("after its options, a consumer sends only acks and nacks")),
        }
    }

    /// The events in flight with these ids (ids not in flight are ignored, as KurrentDB does:
    /// an ack may cross a timeout's retry).
    fn take(&mut self, ids: Vec<super::proto::ProtoUuid>) -> Result<Vec<RecordedEvent>, Status> {
        let mut events = Vec::with_capacity(ids.len());
        for id in ids {
            let id = mapping::uuid_of(Some(id), "an acked event id")?;
            if let Some(event) = self.in_flight.remove(&id) {
                events.push(event);
            }
        }
        Ok(events)
    }

    /// The response delivering `event`, and the id the consumer will ack it with.
    fn delivery(&self, event: &RecordedEvent) -> (ReadResp, uuid::Uuid) {
        let retry_count = self.subscription.retry_count(event);
        let (message, link, id) = if mapping::is_linked(event, &self.stream) {
            let link = mapping::wire_link(event, &self.stream, self.form);
            let id = mapping::uuid_of(Some(link.id.clone()), "link id").unwrap_or(event.event_id);
            (recorded(mapping::wire_event(event, self.form)), Some(recorded(link)), id)
        } else {
            (recorded(mapping::wire_event(event, self.form)), None, event.event_id)
        };
        let response = ReadResp {
            content: Some(read_resp::Content::Event(read_resp::ReadEvent {
                event: Some(message),
                link,
                position: Some(read_resp::read_event::Position::CommitPosition(event.global_position)),
                count: Some(read_resp::read_event::Count::RetryCount(i32::try_from(retry_count).unwrap_or(i32::MAX))),
            })),
        };
        (response, id)
    }
}

fn recorded(event: WireEvent) -> read_resp::read_event::RecordedEvent {
    read_resp::read_event::RecordedEvent {
        id: Some(event.id),
        stream_identifier: Some(event.stream),
        stream_revision: event.revision,
        prepare_position: event.position,
        commit_position: event.position,
        metadata: event.metadata,
        custom_metadata: event.custom_metadata,
        data: event.data,
    }
}

/// The settings both create and update carry.
struct Settings {
    max_retry_count: i32,
    min_checkpoint_count: i32,
    max_subscriber_count: i32,
    live_buffer_size: i32,
    message_timeout: Option<Duration>,
    checkpoint_after: Option<Duration>,
    strategy: ConsumerStrategy,
}

/// A duration as KurrentDB sends it.
enum Wire {
    Ticks(i64),
    Millis(i32),
}
use Wire::{Millis, Ticks};

fn timeout_of(wire: Option<Wire>) -> Option<Duration> {
    match wire? {
        Ticks(t) => u64::try_from(t).ok().map(|t| Duration::from_nanos(t.saturating_mul(100))),
        Millis(ms) => u64::try_from(ms).ok().map(Duration::from_millis),
    }
    .filter(|d| !d.is_zero())
}

/// `options` with KurrentDB's settings applied (values of 0 keep chronik's).
fn apply(mut options: SubscriptionOptions, settings: Settings) -> SubscriptionOptions {
    let positive = |n: i32| usize::try_from(n).ok().filter(|n| *n > 0);
    if let Ok(n) = u32::try_from(settings.max_retry_count) {
        options = options.max_retry_count(n);
    }
    if let Some(n) = positive(settings.min_checkpoint_count) {
        options = options.checkpoint_threshold(n as u64);
    }
    options = options.concurrency_limit(positive(settings.max_subscriber_count).unwrap_or(UNLIMITED_CONSUMERS));
    if let Some(n) = positive(settings.live_buffer_size) {
        options = options.max_size(n);
    }
    if let Some(d) = settings.message_timeout {
        options = options.message_timeout(d);
    }
    if let Some(d) = settings.checkpoint_after {
        options = options.checkpoint_after(d);
    }
    options.consumer_strategy(settings.strategy)
}

/// The consumer strategy by name (newer clients) or by the deprecated enum.
fn strategy_of(name: &str, deprecated: i32) -> Result<ConsumerStrategy, Status> {
    Ok(match name {
        "RoundRobin" => ConsumerStrategy::RoundRobin,
        "DispatchToSingle" => ConsumerStrategy::DispatchToSingle,
        "Pinned" => ConsumerStrategy::Pinned,
        "PinnedByCorrelation" => ConsumerStrategy::PinnedByCorrelation,
        "" => match deprecated {
            0 => ConsumerStrategy::DispatchToSingle,
            2 => ConsumerStrategy::Pinned,
            _ => ConsumerStrategy::RoundRobin,
        },
        other => {
            return Err(Status::invalid_argument(format!(
                "unknown consumer strategy `{other}` (RoundRobin, DispatchToSingle, Pinned, PinnedByCorrelation)"
            )));
        }
    })
}

fn strategy_name(strategy: ConsumerStrategy) -> &'static str {
    match strategy {
        ConsumerStrategy::DispatchToSingle => "DispatchToSingle",
        ConsumerStrategy::Pinned => "Pinned",
        ConsumerStrategy::PinnedByCorrelation => "PinnedByCorrelation",
        _ => "RoundRobin",
    }
}

/// Where a group of a stream starts: `None` the start, `Some(u64::MAX)` the end, else this
/// revision (the first delivered).
fn stream_start(revision: Option<Option<u64>>) -> StartFrom {
    match revision.flatten() {
        None => StartFrom::Origin,
        Some(u64::MAX) => StartFrom::Current,
        // Revision r is version r + 1: deliver from it, i.e. after version r.
        Some(revision) => StartFrom::After(revision),
    }
}

/// Where a group of `$all` starts: the position given is the first delivered.
fn all_start(position: Option<Option<u64>>) -> StartFrom {
    match position.flatten() {
        None | Some(0) => StartFrom::Origin,
        Some(u64::MAX) => StartFrom::Current,
        Some(position) => StartFrom::After(position - 1),
    }
}

fn filter_of(options: create_req::all_options::FilterOptions) -> Result<EventFilter, Status> {
    use create_req::all_options::filter_options::Filter;
    match options.filter {
        Some(Filter::StreamIdentifier(e)) => mapping::expression_filter(e.prefix, e.regex, true),
        Some(Filter::EventType(e)) => mapping::expression_filter(e.prefix, e.regex, false),
        None => Err(Status::invalid_argument("a filter matches the stream or the event type")),
    }
}

fn group_name(name: String) -> Result<String, Status> {
    if name.is_empty() {
        return Err(Status::invalid_argument("the group name is empty"));
    }
    Ok(name)
}

/// A group as KurrentDB's clients show it.
fn wire_info(info: &SubscriptionInfo) -> WireInfo {
    let settings = info.settings.clone().unwrap_or_default();
    // Nothing (0) is an empty string, which clients read as "none".
    let position = |n: u64| match n {
        0 => String::new(),
        n if info.stream == ALL => format!("C:{n}/P:{n}"),
        n => mapping::revision_of(n).to_string(),
    };
    let clamp = |n: u64| i32::try_from(n).unwrap_or(i32::MAX);
    let wide = |n: usize| i32::try_from(n).unwrap_or(i32::MAX);
    let live = info.live.as_ref();
    let connections = live
        .map(|l| {
            l.consumers
                .iter()
                .map(|c| subscription_info::ConnectionInfo {
                    from: format!("consumer {}", c.id),
                    username: String::new(),
                    in_flight_messages: wide(c.in_flight),
                    available_slots: wide(l.settings.buffer_size.saturating_sub(c.in_flight)),
                    connection_name: format!("consumer {}", c.id),
                    ..Default::default()
                })
                .collect()
        })
        .unwrap_or_default();
    WireInfo {
        event_source: info.stream.clone(),
        group_name: info.name.clone(),
        status: match live.map(|l| l.status.phase) {
            Some(crate::SubscriptionPhase::Live) => "Live",
            Some(crate::SubscriptionPhase::CatchingUp) => "CatchingUp",
            Some(_) => "NotReady",
            None => "Idle",
        }
        .to_string(),
        connections,
        average_per_second: live.map_or(0, |l| l.acked_per_second() as i32),
        total_items: live.map_or(0, |l| l.status.acked as i64),
        count_since_last_measurement: live.map_or(0, |l| l.acked_recently as i64),
        last_checkpointed_event_position: position(info.checkpoint),
        last_known_event_position: position(info.head),
        resolve_link_tos: true,
        start_from: match settings.start_from {
            StartFrom::Origin => "0".to_string(),
            StartFrom::Current => "-1".to_string(),
            StartFrom::After(n) if info.stream == ALL => position(n + 1),
            StartFrom::After(n) => n.to_string(),
        },
        message_timeout_milliseconds: i32::try_from(settings.message_timeout.as_millis()).unwrap_or(i32::MAX),
        extra_statistics: false,
        max_retry_count: i32::try_from(settings.max_retry_count).unwrap_or(i32::MAX),
        live_buffer_size: wide(settings.max_size),
        buffer_size: wide(settings.buffer_size),
        read_batch_size: wide(settings.buffer_size),
        check_point_after_milliseconds: i32::try_from(settings.checkpoint_after.as_millis()).unwrap_or(i32::MAX),
        min_check_point_count: clamp(settings.checkpoint_threshold),
        max_check_point_count: clamp(settings.checkpoint_threshold),
        read_buffer_count: 0,
        live_buffer_count: live.map_or(0, |l| l.status.queued as i64),
        retry_buffer_count: live.map_or(0, |l| wide(l.retrying.len())),
        total_in_flight_messages: live.map_or(0, |l| wide(l.status.in_flight)),
        outstanding_messages_count: live.map_or(0, |l| wide(l.status.in_flight)),
        named_consumer_strategy: strategy_name(settings.consumer_strategy).to_string(),
        max_subscriber_count: if settings.concurrency_limit >= UNLIMITED_CONSUMERS {
            0
        } else {
            wide(settings.concurrency_limit)
        },
        parked_message_count: info.parked as i64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_group_start_is_the_first_event_delivered() {
        assert_eq!(stream_start(Some(Some(0))), StartFrom::After(0), "revision 0 is version 1");
        assert_eq!(stream_start(Some(Some(4))), StartFrom::After(4));
        assert_eq!(stream_start(None), StartFrom::Origin);
        assert_eq!(all_start(Some(Some(10))), StartFrom::After(9));
        assert_eq!(all_start(Some(Some(u64::MAX))), StartFrom::Current);
    }

    #[test]
    fn durations_come_in_ticks_or_milliseconds() {
        assert_eq!(timeout_of(Some(Ticks(10_000_000))), Some(Duration::from_secs(1)));
        assert_eq!(timeout_of(Some(Millis(250))), Some(Duration::from_millis(250)));
        assert_eq!(timeout_of(Some(Millis(0))), None);
    }

    #[test]
    fn strategies_by_name_or_number() {
        assert_eq!(strategy_of("Pinned", 1).unwrap(), ConsumerStrategy::Pinned);
        assert_eq!(strategy_of("", 0).unwrap(), ConsumerStrategy::DispatchToSingle);
        assert!(strategy_of("Random", 1).unwrap_err().message().contains("Random"));
    }

    #[test]
    fn zero_subscribers_means_no_limit() {
        let options = apply(
            SubscriptionOptions::default(),
            Settings {
                max_retry_count: 3,
                min_checkpoint_count: 0,
                max_subscriber_count: 0,
                live_buffer_size: 0,
                message_timeout: None,
                checkpoint_after: None,
                strategy: ConsumerStrategy::RoundRobin,
            },
        );
        assert_eq!(options.concurrency_limit, UNLIMITED_CONSUMERS);
        assert_eq!(options.max_retry_count, 3);
    }
}
