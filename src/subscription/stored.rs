//! A subscription's settings as the database keeps them: its [`SubscriptionOptions`] (without
//! the functions) as JSON text, in the `settings` column of its row.
//!
//! A settings file is read strictly (an unknown key is an error: it is probably a typo). Stored
//! settings are read tolerantly, because another version of chronik may have written them (nodes
//! are upgraded one at a time): a key this version does not know is left out, and a value it
//! cannot read (a strategy added later, say) is left at its default, each with a log line. What
//! cannot be read at all (not a JSON object, or settings that fail validation) is no settings,
//! with a warning: the node then runs the subscription with the options it was given.

use std::fmt;

use serde::Deserialize;
use serde::de::value::{MapAccessDeserializer, StrDeserializer};
use serde::de::{self, DeserializeSeed, MapAccess};
use serde_json::{Map, Value};

use super::SubscriptionOptions;
use crate::error::{Error, Result};

/// The settings of `options` as stored: JSON text of every option but the functions.
pub(crate) fn to_json(options: &SubscriptionOptions) -> Result<String> {
    serde_json::to_string(&options.settings())
        .map_err(|e| Error::Serialization(format!("subscription settings as JSON: {e}")))
}

/// Stored settings read back, tolerating what another version wrote; `None` (with a warning) if
/// they cannot be read at all.
pub(crate) fn from_json(text: &str) -> Option<SubscriptionOptions> {
    let map = match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => map,
        Ok(_) | Err(_) => {
            tracing::warn!(settings = text, "stored subscription settings are not a JSON object; ignored");
            return None;
        }
    };
    let known = option_keys();
    let mut readable = Map::new();
    for (key, value) in map {
        if !known.contains(&key.as_str()) {
            tracing::debug!(key, "stored subscription setting unknown to this version (a newer one wrote it); ignored");
            continue;
        }
        let alone = Value::Object(Map::from_iter([(key.clone(), value.clone())]));
        match SubscriptionOptions::deserialize(alone) {
            Ok(_) => {
                readable.insert(key, value);
            }
            Err(e) => tracing::warn!(key, error = %e, "stored subscription setting unreadable; its default is used"),
        }
    }
    match SubscriptionOptions::deserialize(Value::Object(readable)).map_err(|e| Error::invalid(e.to_string())) {
        Ok(options) => match options.validate() {
            Ok(()) => Some(options),
            Err(e) => {
                tracing::warn!(settings = text, error = %e, "stored subscription settings invalid; ignored");
                None
            }
        },
        Err(e) => {
            tracing::warn!(settings = text, error = %e, "stored subscription settings unreadable; ignored");
            None
        }
    }
}

/// The keys of [`SubscriptionOptions`] (those its `Deserialize` takes), as its derived
/// `Deserialize` lists them when it meets a key it does not know.
fn option_keys() -> &'static [&'static str] {
    match SubscriptionOptions::deserialize(MapAccessDeserializer::new(OneUnknownKey)) {
        Err(KnownKeys(keys)) => keys,
        Ok(_) => &[],
    }
}

/// A map of one key no option has.
struct OneUnknownKey;

impl<'de> MapAccess<'de> for OneUnknownKey {
    type Error = KnownKeys;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> std::result::Result<Option<K::Value>, KnownKeys> {
        seed.deserialize(StrDeserializer::<KnownKeys>::new("")).map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, _seed: V) -> std::result::Result<V::Value, KnownKeys> {
        Err(KnownKeys(&[]))
    }
}

/// What the options answer to a key they do not know: the keys they do (also for the
/// `[[subscriptions]]` entries of a configuration, which name them in their errors).
#[derive(Debug)]
pub(crate) struct KnownKeys(pub(crate) &'static [&'static str]);

impl de::Error for KnownKeys {
    fn custom<T: fmt::Display>(_: T) -> Self {
        KnownKeys(&[])
    }

    fn unknown_field(_: &str, known: &'static [&'static str]) -> Self {
        KnownKeys(known)
    }
}

impl fmt::Display for KnownKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the keys are {}", self.0.join(", "))
    }
}

impl std::error::Error for KnownKeys {}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::subscription::{ConsumerStrategy, StartFrom};

    #[test]
    fn settings_survive_the_round_trip_without_their_functions() -> Result<()> {
        let options = SubscriptionOptions::default()
            .start_from(StartFrom::After(7))
            .buffer_size(3)
            .concurrency_limit(4)
            .consumer_strategy(ConsumerStrategy::PinnedByCorrelation)
            .checkpoint_after(Duration::from_micros(1_500))
            .message_timeout(Duration::from_secs(90))
            .max_retry_count(2)
            .selector(|e| e.event_type != "Noise");
        let text = to_json(&options)?;
        assert!(text.contains(r#""consumer_strategy":"pinned_by_correlation""#), "{text}");
        assert_eq!(from_json(&text), Some(options.settings()));
        Ok(())
    }

    #[test]
    fn keys_and_values_of_a_newer_version_are_left_out() {
        let text = r#"{"buffer_size": 5, "consumer_strategy": "pinned_by_moon_phase", "shiny_new_key": {"a": 1}}"#;
        let options = from_json(text).expect("readable");
        assert_eq!(options.buffer_size, 5);
        assert_eq!(options.consumer_strategy, ConsumerStrategy::RoundRobin, "unreadable value: its default");
    }

    #[test]
    fn settings_that_cannot_be_read_or_are_invalid_are_none() {
        assert_eq!(from_json("[1, 2]"), None);
        assert_eq!(from_json("not json"), None);
        assert_eq!(from_json(r#"{"buffer_size": 0}"#), None);
    }

    #[test]
    fn every_option_key_is_known() {
        let keys = option_keys();
        assert!(keys.contains(&"consumer_strategy") && keys.contains(&"start_from"), "{keys:?}");
    }
}
