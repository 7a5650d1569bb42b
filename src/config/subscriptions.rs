//! `[[subscriptions]]` entries: subscriptions the application runs as Subscriber actors.

use std::time::Duration;

use super::parse::{SUBSCRIPTION_KEYS, boolean, duration, integer, start_from, string, type_error, unknown_key};
use crate::error::{Error, Result};
use crate::subscription::{StartFrom, SubscriptionOptions};

/// One `[[subscriptions]]` entry: a named subscription the application runs as a
/// [`Subscriber`](crate::Subscriber) actor, with its options.
///
/// ```
/// use chronik::{Config, StartFrom};
///
/// let config = Config::from_toml_str(r#"
///     [[subscriptions]]
///     name = "projector"
///     start_from = "origin"
///     buffer_size = 50
///
///     [[subscriptions]]
///     name = "mailer"
///     stream = "$all"
///     start_from = "current"
///     max_retry_count = 3
///     message_timeout = "10s"
/// "#)?;
/// assert_eq!(config.subscriptions[0].buffer_size, 50);
/// assert_eq!(config.subscriptions[1].start_from, StartFrom::Current);
/// let options = config.subscriptions[1].options();
/// assert_eq!(options.max_retry_count, 3);
/// # Ok::<(), chronik::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SubscriptionConfig {
    /// The subscription's name, which the application maps to its implementation.
    pub name: String,
    /// The subscribed stream; default `$all`.
    pub stream: String,
    /// `"origin"`, `"current"`, or an event number to start after; default `"origin"`.
    pub start_from: StartFrom,
    /// See [`SubscriptionOptions::buffer_size`].
    pub buffer_size: usize,
    /// See [`SubscriptionOptions::max_size`].
    pub max_size: usize,
    /// See [`SubscriptionOptions::concurrency_limit`].
    pub concurrency_limit: usize,
    /// See [`SubscriptionOptions::checkpoint_threshold`].
    pub checkpoint_threshold: u64,
    /// See [`SubscriptionOptions::checkpoint_after`].
    pub checkpoint_after: Duration,
    /// See [`SubscriptionOptions::message_timeout`].
    pub message_timeout: Duration,
    /// See [`SubscriptionOptions::max_retry_count`].
    pub max_retry_count: u32,
    /// See [`SubscriptionOptions::transient`].
    pub transient: bool,
}

impl SubscriptionConfig {
    /// An entry for subscription `name` of `stream`, with the default options.
    pub fn new(stream: impl Into<String>, name: impl Into<String>) -> Self {
        let defaults = SubscriptionOptions::default();
        SubscriptionConfig {
            name: name.into(),
            stream: stream.into(),
            start_from: defaults.start_from,
            buffer_size: defaults.buffer_size,
            max_size: defaults.max_size,
            concurrency_limit: defaults.concurrency_limit,
            checkpoint_threshold: defaults.checkpoint_threshold,
            checkpoint_after: defaults.checkpoint_after,
            message_timeout: defaults.message_timeout,
            max_retry_count: defaults.max_retry_count,
            transient: defaults.transient,
        }
    }

    /// The entry's options.
    pub fn options(&self) -> SubscriptionOptions {
        SubscriptionOptions::default()
            .start_from(self.start_from)
            .buffer_size(self.buffer_size)
            .max_size(self.max_size)
            .concurrency_limit(self.concurrency_limit)
            .checkpoint_threshold(self.checkpoint_threshold)
            .checkpoint_after(self.checkpoint_after)
            .message_timeout(self.message_timeout)
            .max_retry_count(self.max_retry_count)
            .transient(self.transient)
    }

    pub(super) fn from_toml(index: usize, value: &toml::Value) -> Result<Self> {
        let at = |key: &str| format!("subscriptions[{index}].{key}");
        let table = value.as_table().ok_or_else(|| type_error(&format!("subscriptions[{index}]"), "a table", value))?;
        let name = table.get("name").ok_or_else(|| Error::config(at("name"), "is missing"))?;
        let mut entry = SubscriptionConfig::new(crate::event::ALL, string(&at("name"), name)?);
        for (key, value) in table {
            let key_at = at(key);
            let k = key_at.as_str();
            match key.as_str() {
                "name" => {}
                "stream" => entry.stream = string(k, value)?,
                "start_from" => entry.start_from = start_from(k, value)?,
                "buffer_size" => entry.buffer_size = integer(k, value)?,
                "max_size" => entry.max_size = integer(k, value)?,
                "concurrency_limit" => entry.concurrency_limit = integer(k, value)?,
                "checkpoint_threshold" => entry.checkpoint_threshold = integer(k, value)?,
                "checkpoint_after" => entry.checkpoint_after = duration(k, value)?,
                "message_timeout" => entry.message_timeout = duration(k, value)?,
                "max_retry_count" => entry.max_retry_count = integer(k, value)?,
                "transient" => entry.transient = boolean(k, value)?,
                _ => return Err(unknown_key(k, SUBSCRIPTION_KEYS)),
            }
        }
        Ok(entry)
    }

    pub(super) fn validate(&self, index: usize) -> Result<()> {
        let at = |key: &str| format!("subscriptions[{index}].{key}");
        for (key, value) in [("name", &self.name), ("stream", &self.stream)] {
            crate::validate::validate_name(key, value).map_err(|e| match e {
                Error::InvalidArgument(reason) => Error::config(at(key), reason),
                other => other,
            })?;
        }
        self.options().validate().map_err(|e| match e {
            Error::InvalidArgument(reason) => Error::config(format!("subscriptions[{index}]"), reason),
            other => other,
        })
    }
}
