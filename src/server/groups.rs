//! Persistent subscription groups as the protocol describes them, mapped to chronik's named
//! subscriptions: the settings of create and update, where a group starts, its filter, and the
//! figures `GetInfo` and `List` report. Plain functions; the service is `persistent.rs`.

use std::time::Duration;

use tonic::Status;

use super::mapping;
use super::proto::persistent::{SubscriptionInfo as WireInfo, create_req, subscription_info};
use crate::{ALL, ConsumerStrategy, EventFilter, StartFrom, SubscriptionInfo, SubscriptionOptions};

/// `concurrency_limit` of a group whose `max_subscriber_count` is 0 (KurrentDB: no limit).
pub(crate) const UNLIMITED_CONSUMERS: usize = 10_000;

/// Events in flight at a consumer that asks for no buffer size (KurrentDB clients ask for 10
/// by default).
pub(crate) const CONSUMER_BUFFER: usize = 10;

/// The `buffer_size` of a group created over the protocol: the ceiling of its consumers' own
/// buffer sizes (KurrentDB has none but the consumer's).
pub(crate) const GROUP_BUFFER: usize = 1_000;

/// The [`Settings`] of a create or an update request (`$module` is `create_req` or
/// `update_req`: two message types with the same fields), with `$strategy`.
macro_rules! settings_of {
    ($settings:expr, $module:ident, $strategy:expr) => {{
        use super::groups::{Millis, Settings, Ticks, timeout_of};
        use $module::settings::{CheckpointAfter, MessageTimeout};
        Settings {
            max_retry_count: $settings.max_retry_count,
            min_checkpoint_count: $settings.min_checkpoint_count,
            max_subscriber_count: $settings.max_subscriber_count,
            live_buffer_size: $settings.live_buffer_size,
            message_timeout: timeout_of($settings.message_timeout.map(|t| match t {
                MessageTimeout::MessageTimeoutTicks(t) => Ticks(t),
                MessageTimeout::MessageTimeoutMs(ms) => Millis(ms),
            })),
            checkpoint_after: timeout_of($settings.checkpoint_after.map(|t| match t {
                CheckpointAfter::CheckpointAfterTicks(t) => Ticks(t),
                CheckpointAfter::CheckpointAfterMs(ms) => Millis(ms),
            })),
            strategy: $strategy,
        }
    }};
}
pub(crate) use settings_of;

/// The settings both create and update carry.
pub(crate) struct Settings {
    pub(crate) max_retry_count: i32,
    pub(crate) min_checkpoint_count: i32,
    pub(crate) max_subscriber_count: i32,
    pub(crate) live_buffer_size: i32,
    pub(crate) message_timeout: Option<Duration>,
    pub(crate) checkpoint_after: Option<Duration>,
    pub(crate) strategy: ConsumerStrategy,
}

/// A duration as KurrentDB sends it.
pub(crate) enum Wire {
    Ticks(i64),
    Millis(i32),
}
pub(crate) use Wire::{Millis, Ticks};

pub(crate) fn timeout_of(wire: Option<Wire>) -> Option<Duration> {
    match wire? {
        Ticks(t) => u64::try_from(t).ok().map(|t| Duration::from_nanos(t.saturating_mul(100))),
        Millis(ms) => u64::try_from(ms).ok().map(Duration::from_millis),
    }
    .filter(|d| !d.is_zero())
}

/// `options` with KurrentDB's settings applied (values of 0 keep chronik's).
pub(crate) fn apply(mut options: SubscriptionOptions, settings: Settings) -> SubscriptionOptions {
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
pub(crate) fn strategy_of(name: &str, deprecated: i32) -> Result<ConsumerStrategy, Status> {
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

pub(crate) fn strategy_name(strategy: ConsumerStrategy) -> &'static str {
    match strategy {
        ConsumerStrategy::DispatchToSingle => "DispatchToSingle",
        ConsumerStrategy::Pinned => "Pinned",
        ConsumerStrategy::PinnedByCorrelation => "PinnedByCorrelation",
        _ => "RoundRobin",
    }
}

/// Where a group of a stream starts: `None` the start, `Some(u64::MAX)` the end, else this
/// revision (the first delivered).
pub(crate) fn stream_start(revision: Option<Option<u64>>) -> StartFrom {
    match revision.flatten() {
        None => StartFrom::Origin,
        Some(u64::MAX) => StartFrom::Current,
        // Revision r is version r + 1: deliver from it, i.e. after version r.
        Some(revision) => StartFrom::After(revision),
    }
}

/// Where a group of `$all` starts: the position given is the first delivered.
pub(crate) fn all_start(position: Option<Option<u64>>) -> StartFrom {
    match position.flatten() {
        None | Some(0) => StartFrom::Origin,
        Some(u64::MAX) => StartFrom::Current,
        Some(position) => StartFrom::After(position - 1),
    }
}

pub(crate) fn filter_of(options: create_req::all_options::FilterOptions) -> Result<EventFilter, Status> {
    use create_req::all_options::filter_options::Filter;
    match options.filter {
        Some(Filter::StreamIdentifier(e)) => mapping::expression_filter(e.prefix, e.regex, true),
        Some(Filter::EventType(e)) => mapping::expression_filter(e.prefix, e.regex, false),
        None => Err(Status::invalid_argument("a filter matches the stream or the event type")),
    }
}

pub(crate) fn group_name(name: String) -> Result<String, Status> {
    if name.is_empty() {
        return Err(Status::invalid_argument("the group name is empty"));
    }
    Ok(name)
}

/// A group as KurrentDB's clients show it.
pub(crate) fn wire_info(info: &SubscriptionInfo) -> WireInfo {
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
                    available_slots: wide(c.buffer_size.saturating_sub(c.in_flight)),
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
