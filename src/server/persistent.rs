//! The `PersistentSubscriptions` service: KurrentDB's persistent subscription groups served by
//! chronik's named subscriptions. A group is the named subscription of the same name on the
//! same stream (or `$all`); a consumer's `Read` call is one subscriber of it, its acks and nacks
//! go to the library as they come. The library keeps everything else: the checkpoint, retries,
//! parking, the consumer strategy, one owner node at a time.
//!
//! Settings: `max_subscriber_count` is `concurrency_limit` (0, unlimited, is
//! [`UNLIMITED_CONSUMERS`]), `live_buffer_size` is `max_size`, `min_checkpoint_count` is
//! `checkpoint_threshold`, `checkpoint_after`, `message_timeout`, `max_retry_count` and the
//! consumer strategy are the same. The events in flight at a consumer are at most the buffer
//! size it asks for (`subscriber_buffer_size`; [`CONSUMER_BUFFER`] if it asks for none), within
//! the group's `buffer_size`, [`GROUP_BUFFER`] for groups created over the protocol. Events reached through links (`$ce-`, `$et-`, linked streams) always come with
//! the link, as with `resolve_links`. A start revision or position is the first event
//! delivered, as KurrentDB counts for groups. `RestartSubsystem` drops the consumers connected
//! to this server.

use std::collections::HashMap;

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::Stopping;
use super::groups::{
    CONSUMER_BUFFER, GROUP_BUFFER, all_start, apply, filter_of, group_name, settings_of, strategy_of, stream_start,
    wire_info,
};
use super::mapping::{self, UuidForm};
use super::proto::persistent::{
    CreateReq, CreateResp, DeleteReq, DeleteResp, GetInfoReq, GetInfoResp, ListReq, ListResp, ReadReq, ReadResp,
    ReplayParkedReq, ReplayParkedResp, UpdateReq, UpdateResp, create_req, list_req, persistent_subscriptions_server,
    read_req, read_resp, replay_parked_req, update_req,
};
use super::streams::ResponseStream;
use crate::{
    ALL, ConsumerStrategy, Error, EventStore, NackAction, RecordedEvent, StartFrom, Subscription, SubscriptionInfo,
    SubscriptionMessage, SubscriptionOptions,
};

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
        let mut subscription = SubscriptionOptions::default().start_from(start).buffer_size(GROUP_BUFFER);
        subscription = apply(subscription, settings_of!(settings, create_req, strategy));
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
        let updated = apply(info.settings.unwrap_or_default(), settings_of!(settings, update_req, strategy));
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
        let buffer = usize::try_from(options.buffer_size).ok().filter(|n| *n > 0).unwrap_or(CONSUMER_BUFFER);
        // A group must be created first; subscribing would create it.
        self.info(&stream, &group).await?;
        let subscription = self
            .store
            .subscribe_to_stream(&stream, &group, SubscriptionOptions::default().subscriber_buffer_size(buffer))
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
        // KurrentDB stops at a revision of the group's parked-message stream; chronik's parked
        // list counts from 0 on every call, so `stop_at` is how many of its first events go.
        let limit = match options.stop_at_option {
            Some(StopAtOption::StopAt(n)) => Some(
                u64::try_from(n)
                    .map_err(|_| Status::invalid_argument(format!("stop_at must be 0 or more, not {n}")))?,
            ),
            Some(StopAtOption::NoLimit(())) | None => None,
        };
        let group = group_name(options.group_name)?;
        let marked = match limit {
            Some(count) => self.store.replay_parked_first(&stream, &group, count).await,
            None => self.store.replay_parked(&stream, &group).await,
        };
        marked.map_err(|e| self.status(&e, &stream, &group))?;
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
            (mapping::wire_event(event, self.form).into(), Some(link.into()), id)
        } else {
            (mapping::wire_event(event, self.form).into(), None, event.event_id)
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
