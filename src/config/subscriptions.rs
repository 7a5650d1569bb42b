//! `[[subscriptions]]` entries: subscriptions the application runs as Subscriber actors.
//!
//! An entry is a name, a stream and [`SubscriptionOptions`], written side by side in one table.
//! Its options are read by their own `Deserialize`, so the keys an entry takes are the options'
//! (plus `name` and `stream`) and nothing here lists them.

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::OnceLock;

use serde::de::value::StrDeserializer;
use serde::de::{self, Deserialize, DeserializeSeed, Deserializer, MapAccess, Visitor};

use crate::error::{Error, Result};
use crate::subscription::SubscriptionOptions;
use crate::subscription::stored::KnownKeys;

/// One `[[subscriptions]]` entry: a named subscription the application runs as a
/// [`Subscriber`](crate::Subscriber) actor, with its options.
///
/// An entry reads as its options (it dereferences to them): `entry.buffer_size` is
/// [`SubscriptionOptions::buffer_size`]. In the file, an entry takes `name` (required),
/// `stream` (default `$all`) and every key of [`SubscriptionOptions`] except the functions.
///
/// ```
/// use chronik::{Config, ConsumerStrategy, StartFrom};
///
/// let config = Config::from_toml_str(r#"
///     [[subscriptions]]
///     name = "projector"
///     start_from = "origin"
///     buffer_size = 50
///     concurrency_limit = 4
///     consumer_strategy = "pinned"
///
///     [[subscriptions]]
///     name = "mailer"
///     stream = "$all"
///     start_from = "current"
///     max_retry_count = 3
///     message_timeout = "10s"
/// "#)?;
/// assert_eq!(config.subscriptions[0].buffer_size, 50);
/// assert_eq!(config.subscriptions[0].consumer_strategy, ConsumerStrategy::Pinned);
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
    options: SubscriptionOptions,
}

impl SubscriptionConfig {
    /// An entry for subscription `name` of `stream`, with the default options.
    pub fn new(stream: impl Into<String>, name: impl Into<String>) -> Self {
        SubscriptionConfig { name: name.into(), stream: stream.into(), options: SubscriptionOptions::default() }
    }

    /// Sets the entry's options.
    #[must_use]
    pub fn with_options(mut self, options: SubscriptionOptions) -> Self {
        self.options = options;
        self
    }

    /// The entry's options.
    pub fn options(&self) -> SubscriptionOptions {
        self.options.clone()
    }

    pub(super) fn validate(&self, index: usize) -> Result<()> {
        let at = |key: &str| format!("subscriptions[{index}].{key}");
        for (key, value) in [("name", &self.name), ("stream", &self.stream)] {
            crate::validate::validate_name(key, value).map_err(|e| match e {
                Error::InvalidArgument(reason) => Error::config(at(key), reason),
                other => other,
            })?;
        }
        self.options.validate().map_err(|e| match e {
            Error::InvalidArgument(reason) => Error::config(format!("subscriptions[{index}]"), reason),
            other => other,
        })
    }
}

impl Deref for SubscriptionConfig {
    type Target = SubscriptionOptions;

    fn deref(&self) -> &SubscriptionOptions {
        &self.options
    }
}

impl DerefMut for SubscriptionConfig {
    fn deref_mut(&mut self) -> &mut SubscriptionOptions {
        &mut self.options
    }
}

/// A table with `name`, optionally `stream`, and the options' keys. (serde's `flatten` would
/// read the options from a copy of the table, losing each key's errors and the refusal of
/// unknown keys; here the options read the entry's own keys.)
impl<'de> Deserialize<'de> for SubscriptionConfig {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        deserializer.deserialize_map(EntryVisitor)
    }
}

struct EntryVisitor;

impl<'de> Visitor<'de> for EntryVisitor {
    type Value = SubscriptionConfig;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a table")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> std::result::Result<SubscriptionConfig, A::Error> {
        let mut entry = OptionKeys { map, name: None, stream: None };
        let options = SubscriptionOptions::deserialize(de::value::MapAccessDeserializer::new(&mut entry))?;
        let name = entry.name.ok_or_else(|| de::Error::missing_field("name"))?;
        let stream = entry.stream.unwrap_or_else(|| crate::event::ALL.to_string());
        Ok(SubscriptionConfig { name, stream, options })
    }
}

/// An entry's keys as its options see them: `name` and `stream` are taken out on the way.
struct OptionKeys<A> {
    map: A,
    name: Option<String>,
    stream: Option<String>,
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for OptionKeys<A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> std::result::Result<Option<K::Value>, A::Error> {
        loop {
            let Some(key) = self.map.next_key::<String>()? else { return Ok(None) };
            match key.as_str() {
                "name" => self.name = Some(self.map.next_value()?),
                "stream" => self.stream = Some(self.map.next_value()?),
                _ => {
                    // The options refuse a key they do not know, naming theirs; the entry's
                    // error names all of an entry's keys.
                    return match seed.deserialize(StrDeserializer::<KnownKeys>::new(&key)) {
                        Ok(field) => Ok(Some(field)),
                        Err(KnownKeys(known)) => Err(de::Error::unknown_field(&key, entry_keys(known))),
                    };
                }
            }
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> std::result::Result<V::Value, A::Error> {
        self.map.next_value_seed(seed)
    }
}

/// `name`, `stream`, then the options' keys (always the same, so they are joined once).
fn entry_keys(option_keys: &'static [&'static str]) -> &'static [&'static str] {
    static KEYS: OnceLock<Vec<&'static str>> = OnceLock::new();
    if option_keys.is_empty() {
        return &["name", "stream"];
    }
    KEYS.get_or_init(|| ["name", "stream"].iter().chain(option_keys).copied().collect())
}
