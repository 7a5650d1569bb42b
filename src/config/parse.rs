//! Reading values out of the TOML file: each value's type, the keys there are (and the one a
//! misspelt key probably meant), and where in the text a key is written.

use std::time::Duration;

use crate::error::{Error, Result};
use crate::subscription::StartFrom;

/// The keys of the configuration file's top level.
pub(super) const CONFIG_KEYS: &[&str] = &[
    "database_url",
    "schema",
    "pool_size",
    "auto_init",
    "enable_hard_deletes",
    "read_only",
    "max_event_size",
    "connect_timeout",
    "in_doubt_timeout",
    "subscription_retry_interval",
    "notification_poll_interval",
    "writer_max_batch_appends",
    "writer_max_batch_events",
    "writer_max_batch_bytes",
    "subscriptions",
];

/// The keys of a `[[subscriptions]]` entry.
pub(super) const SUBSCRIPTION_KEYS: &[&str] = &[
    "name",
    "stream",
    "start_from",
    "buffer_size",
    "max_size",
    "concurrency_limit",
    "checkpoint_threshold",
    "checkpoint_after",
    "message_timeout",
    "max_retry_count",
    "transient",
];

/// `key` is not one of `known`: the error says which known key it resembles, if one does.
pub(super) fn unknown_key(key: &str, known: &[&str]) -> Error {
    let last = key.rsplit('.').next().unwrap_or(key);
    let closest = known
        .iter()
        .map(|k| (strsim::damerau_levenshtein(last, k), *k))
        .filter(|(distance, k)| *distance <= (k.len() / 3).max(2))
        .min();
    match closest {
        Some((_, k)) => Error::config(key, format!("unknown key; did you mean `{k}`?")),
        None => Error::config(key, format!("unknown key; the keys are {}", known.join(", "))),
    }
}

/// `line L, column C` (both from 1) of a byte offset in `text`.
pub(super) fn line_and_column(text: &str, offset: usize) -> String {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    format!("line {line}, column {column}")
}

/// Where the key a configuration error names (`pool_size`, `subscriptions[1].start_from`,
/// `subscriptions[1]`) is written in `text`, if it is.
pub(super) fn key_offset(text: &str, key: &str) -> Option<usize> {
    use toml::de::{DeTable, DeValue};
    let root = DeTable::parse(text).ok()?;
    let (top, rest) = match key.split_once('[') {
        Some((top, rest)) => (top, Some(rest)),
        None => (key, None),
    };
    let (name, value) = root.get_ref().iter().find(|(name, _)| name.get_ref().as_ref() == top)?;
    let Some(rest) = rest else { return Some(name.span().start) };
    let (index, field) = rest.split_once(']')?;
    let DeValue::Array(entries) = value.get_ref() else { return Some(name.span().start) };
    let entry = entries.get(index.parse::<usize>().ok()?)?;
    let field = field.trim_start_matches('.');
    match entry.get_ref() {
        DeValue::Table(table) if !field.is_empty() => table
            .iter()
            .find(|(name, _)| name.get_ref().as_ref() == field)
            .map(|(name, _)| name.span().start)
            .or(Some(entry.span().start)),
        _ => Some(entry.span().start),
    }
}

pub(super) fn type_error(key: &str, expected: &str, value: &toml::Value) -> Error {
    Error::config(key, format!("expected {expected}, found {} `{value}`", value.type_str()))
}

pub(super) fn string(key: &str, value: &toml::Value) -> Result<String> {
    value.as_str().map(str::to_string).ok_or_else(|| type_error(key, "a string", value))
}

pub(super) fn boolean(key: &str, value: &toml::Value) -> Result<bool> {
    value.as_bool().ok_or_else(|| type_error(key, "true or false", value))
}

pub(super) fn integer<T: TryFrom<i64>>(key: &str, value: &toml::Value) -> Result<T> {
    let n = value.as_integer().ok_or_else(|| type_error(key, "an integer", value))?;
    T::try_from(n).map_err(|_| Error::config(key, format!("{n} is out of range")))
}

/// `"origin"`, `"current"`, or an event number to start after.
pub(super) fn start_from(key: &str, value: &toml::Value) -> Result<StartFrom> {
    match value {
        toml::Value::String(s) if s == "origin" => Ok(StartFrom::Origin),
        toml::Value::String(s) if s == "current" => Ok(StartFrom::Current),
        toml::Value::Integer(_) => integer(key, value).map(StartFrom::After),
        other => Err(type_error(key, "\"origin\", \"current\" or an event number", other)),
    }
}

/// A duration is an integer of milliseconds or a string with a unit (`"250ms"`, `"2s"`).
pub(super) fn duration(key: &str, value: &toml::Value) -> Result<Duration> {
    match value {
        toml::Value::Integer(ms) => {
            u64::try_from(*ms).map(Duration::from_millis).map_err(|_| Error::config(key, format!("{ms} is negative")))
        }
        toml::Value::String(s) => humantime::parse_duration(s)
            .map_err(|e| Error::config(key, format!("`{s}` is not a duration ({e}); write e.g. \"500ms\" or \"2s\""))),
        other => Err(type_error(key, "milliseconds or a duration string like \"500ms\"", other)),
    }
}
