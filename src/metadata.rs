//! Stream metadata: the retention rules of a stream (how many events, how old, from which
//! version on stay readable) and any JSON an application keeps beside them. A plain value; the
//! store keeps the latest one per stream with a version of its own (see
//! [`EventStore::set_stream_metadata`](crate::EventStore::set_stream_metadata)).
//!
//! Retention only hides: stream reads, stream subscriptions and `stream_info` honour it at once,
//! `$all` keeps showing the events until a scavenge removes them, and versions and positions are
//! never renumbered or reused.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A stream's metadata: retention rules and custom JSON. Each builder method sets one field;
/// a field left `None` sets no rule.
///
/// ```
/// use std::time::Duration;
/// use chronik::StreamMetadata;
///
/// let meta = StreamMetadata::default()
///     .max_count(1_000)
///     .max_age(Duration::from_secs(86_400))
///     .truncate_before(42)
///     .custom(serde_json::json!({ "owner": "billing" }));
/// assert_eq!(meta.max_count, Some(1_000));
/// // In settings and JSON a duration is milliseconds or a string with a unit.
/// let read: StreamMetadata = serde_json::from_str(r#"{ "max_age": "1d", "max_count": 10 }"#)?;
/// assert_eq!(read.max_age, Some(Duration::from_secs(86_400)));
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct StreamMetadata {
    /// Only the newest `max_count` entries of the stream stay readable (at least 1).
    pub max_count: Option<u64>,
    /// Entries older than this (by the time they were committed) are no longer readable.
    #[serde(with = "crate::duration::optional")]
    pub max_age: Option<Duration>,
    /// Versions below this one are no longer readable (`0` and `1` hide nothing).
    pub truncate_before: Option<u64>,
    /// Any JSON object, kept and given back as set.
    pub custom: Option<serde_json::Value>,
}

impl StreamMetadata {
    /// Keeps only the newest `count` entries readable.
    #[must_use]
    pub fn max_count(mut self, count: u64) -> Self {
        self.max_count = Some(count);
        self
    }

    /// Hides entries older than `age`.
    #[must_use]
    pub fn max_age(mut self, age: Duration) -> Self {
        self.max_age = Some(age);
        self
    }

    /// Hides versions below `version`.
    #[must_use]
    pub fn truncate_before(mut self, version: u64) -> Self {
        self.truncate_before = Some(version);
        self
    }

    /// Sets the custom JSON object.
    #[must_use]
    pub fn custom(mut self, value: serde_json::Value) -> Self {
        self.custom = Some(value);
        self
    }

    /// Whether it sets any retention rule (custom JSON alone hides nothing).
    pub fn has_retention(&self) -> bool {
        self.max_count.is_some() || self.max_age.is_some() || self.truncate_before.is_some_and(|v| v > 1)
    }

    /// Checks the values a store accepts: a `max_count` of at least 1, a `max_age` of at least a
    /// millisecond, numbers a database holds, and a JSON object as `custom` of at most
    /// `max_bytes` once encoded.
    pub(crate) fn validate(&self, max_bytes: usize) -> Result<()> {
        let too_large = |what: &str, value: u64| {
            (value > i64::MAX as u64)
                .then(|| Error::invalid(format!("stream metadata: {what} {value} is larger than {}", i64::MAX)))
        };
        if let Some(count) = self.max_count {
            if count == 0 {
                return Err(Error::invalid(
                    "stream metadata: max_count must be at least 1 (a stream keeps its newest event)",
                ));
            }
            if let Some(e) = too_large("max_count", count) {
                return Err(e);
            }
        }
        if let Some(age) = self.max_age {
            if age < Duration::from_millis(1) {
                return Err(Error::invalid("stream metadata: max_age must be at least 1ms"));
            }
            if let Some(e) = too_large("max_age (ms)", u64::try_from(age.as_millis()).unwrap_or(u64::MAX)) {
                return Err(e);
            }
        }
        if let Some(e) = self.truncate_before.and_then(|v| too_large("truncate_before", v)) {
            return Err(e);
        }
        if let Some(custom) = &self.custom {
            if !custom.is_object() {
                return Err(Error::invalid(format!(
                    "stream metadata: custom must be a JSON object, not {}",
                    json_kind(custom)
                )));
            }
            let size = custom.to_string().len();
            if size > max_bytes {
                return Err(Error::invalid(format!(
                    "stream metadata: custom is {size} bytes, over max_event_size ({max_bytes} bytes)"
                )));
            }
        }
        Ok(())
    }

    /// `max_age` in whole milliseconds, as stored.
    pub(crate) fn max_age_ms(&self) -> Option<i64> {
        self.max_age.map(|age| i64::try_from(age.as_millis()).unwrap_or(i64::MAX))
    }
}

fn json_kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_methods_set_one_field_each() {
        let meta = StreamMetadata::default().max_count(3).truncate_before(7);
        assert_eq!(meta.max_count, Some(3));
        assert_eq!(meta.truncate_before, Some(7));
        assert_eq!(meta.max_age, None);
        assert!(meta.has_retention());
        assert!(!StreamMetadata::default().custom(serde_json::json!({})).has_retention());
    }

    #[test]
    fn values_a_store_cannot_hold_are_refused_naming_the_field() {
        let refused = |meta: StreamMetadata, word: &str| match meta.validate(1_000) {
            Err(Error::InvalidArgument(m)) => assert!(m.contains(word), "{m}"),
            other => panic!("{word}: {other:?}"),
        };
        refused(StreamMetadata::default().max_count(0), "max_count");
        refused(StreamMetadata::default().max_count(u64::MAX), "max_count");
        refused(StreamMetadata::default().max_age(Duration::from_micros(10)), "max_age");
        refused(StreamMetadata::default().truncate_before(u64::MAX), "truncate_before");
        refused(StreamMetadata::default().custom(serde_json::json!([1, 2])), "an array");
        refused(StreamMetadata::default().custom(serde_json::json!({ "x": "y".repeat(2_000) })), "over max_event_size");
        assert!(StreamMetadata::default().max_count(1).max_age(Duration::from_millis(1)).validate(1_000).is_ok());
    }

    #[test]
    fn serde_round_trips_and_reads_durations_with_units() -> serde_json::Result<()> {
        let meta = StreamMetadata::default().max_age(Duration::from_millis(1_500)).custom(serde_json::json!({"a": 1}));
        let text = serde_json::to_string(&meta)?;
        assert_eq!(serde_json::from_str::<StreamMetadata>(&text)?, meta);
        let read: StreamMetadata = serde_json::from_str(r#"{ "max_age": "2h" }"#)?;
        assert_eq!(read.max_age, Some(Duration::from_secs(7_200)));
        assert!(serde_json::from_str::<StreamMetadata>(r#"{ "max_cont": 1 }"#).is_err());
        Ok(())
    }
}
