//! Reading the parsed TOML file into the config's types through their `Deserialize`.
//!
//! `toml` parses the text (syntax errors are its own); [`Value`] then hands the parsed values to
//! the derived `Deserialize` of [`Config`](super::Config) and what it holds, knowing the key of
//! every value as it goes. So an error names the key (`subscriptions[1].buffer_sise`), says what
//! was expected and what was found in TOML's words, and for an unknown key names the known key
//! it resembles: serde's own messages (`expected u32`, no key) would say less. Also here: where
//! in the text a key is.
//!
//! Not here: which values are allowed (`Config::validate`), the file and the environment
//! (`mod.rs`).

use std::fmt;

use serde::de::value::BorrowedStrDeserializer;
use serde::de::{self, DeserializeOwned, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use crate::error::{Error, Result};

/// What reading one value gives: the value, or why not.
type Read<T> = std::result::Result<T, ReadError>;

/// Reads `value` (the whole file) as a `T`; an error is [`Error::Config`] naming the key.
pub(super) fn from_toml<T: DeserializeOwned>(value: &toml::Value) -> Result<T> {
    T::deserialize(Value { value, key: String::new() }).map_err(|e| {
        let key = e.key.unwrap_or_else(|| "<file>".to_string());
        Error::config(key, e.reason)
    })
}

/// One parsed TOML value and the key it is written under (`""` for the whole file).
struct Value<'de> {
    value: &'de toml::Value,
    key: String,
}

impl Value<'_> {
    fn expected(&self, what: &str) -> ReadError {
        let value = self.value;
        ReadError::at(&self.key, format!("expected {what}, found {} `{value}`", value.type_str()))
    }

    fn integer<T: TryFrom<i64>>(&self) -> Read<T> {
        let toml::Value::Integer(n) = *self.value else { return Err(self.expected("an integer")) };
        T::try_from(n).map_err(|_| ReadError::at(&self.key, format!("{n} is out of range")))
    }
}

/// The typed `deserialize_*` methods check the TOML type themselves, so that a wrong one is
/// said in TOML's words ("expected an integer, found string `"ten"`").
macro_rules! integers {
    ($($method:ident => $visit:ident),* $(,)?) => {
        $(
            fn $method<V: Visitor<'de>>(self, visitor: V) -> Read<V::Value> {
                let n = self.integer()?;
                visitor.$visit::<ReadError>(n).map_err(|e| e.under(&self.key))
            }
        )*
    };
}

impl<'de> Deserializer<'de> for Value<'de> {
    type Error = ReadError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Read<V::Value> {
        let key = &self.key;
        let read = match self.value {
            toml::Value::String(s) => visitor.visit_borrowed_str(s),
            toml::Value::Integer(n) => visitor.visit_i64(*n),
            toml::Value::Float(x) => visitor.visit_f64(*x),
            toml::Value::Boolean(b) => visitor.visit_bool(*b),
            toml::Value::Datetime(d) => visitor.visit_string(d.to_string()),
            toml::Value::Array(items) => visitor.visit_seq(Items { items: items.iter().enumerate(), key }),
            toml::Value::Table(table) => visitor.visit_map(Entries { entries: table.iter(), key, value: None }),
        };
        read.map_err(|e| e.under(key))
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Read<V::Value> {
        match self.value {
            toml::Value::Boolean(_) => self.deserialize_any(visitor),
            _ => Err(self.expected("true or false")),
        }
    }

    integers! {
        deserialize_i8 => visit_i8, deserialize_i16 => visit_i16, deserialize_i32 => visit_i32,
        deserialize_i64 => visit_i64, deserialize_u8 => visit_u8, deserialize_u16 => visit_u16,
        deserialize_u32 => visit_u32, deserialize_u64 => visit_u64,
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Read<V::Value> {
        match self.value {
            toml::Value::String(_) => self.deserialize_any(visitor),
            _ => Err(self.expected("a string")),
        }
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Read<V::Value> {
        self.deserialize_str(visitor)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Read<V::Value> {
        match self.value {
            toml::Value::Array(_) => self.deserialize_any(visitor),
            _ => {
                let name = self.key.rsplit('.').next().unwrap_or_default();
                Err(self.expected(&format!("an array (for tables, write each entry as [[{name}]])")))
            }
        }
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Read<V::Value> {
        match self.value {
            toml::Value::Table(_) => self.deserialize_any(visitor),
            _ => Err(self.expected("a table")),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Read<V::Value> {
        self.deserialize_map(visitor)
    }

    /// TOML has no null: a value that is written is `Some`.
    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Read<V::Value> {
        let key = self.key.clone();
        visitor.visit_some(self).map_err(|e| e.under(&key))
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(self, _name: &'static str, visitor: V) -> Read<V::Value> {
        let key = self.key.clone();
        visitor.visit_newtype_struct(self).map_err(|e| e.under(&key))
    }

    /// An enum of unit variants is written as the variant's name.
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Read<V::Value> {
        match self.value {
            toml::Value::String(s) => {
                visitor.visit_enum(BorrowedStrDeserializer::<ReadError>::new(s)).map_err(|e| e.under(&self.key))
            }
            _ => Err(self.expected("a string")),
        }
    }

    serde::forward_to_deserialize_any! {
        i128 u128 f32 f64 char bytes byte_buf unit unit_struct tuple tuple_struct identifier ignored_any
    }
}

/// The entries of an array, each keyed `key[index]`.
struct Items<'de, 'k> {
    items: std::iter::Enumerate<std::slice::Iter<'de, toml::Value>>,
    key: &'k str,
}

impl<'de> SeqAccess<'de> for Items<'de, '_> {
    type Error = ReadError;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Read<Option<T::Value>> {
        let Some((index, value)) = self.items.next() else { return Ok(None) };
        seed.deserialize(Value { value, key: format!("{}[{index}]", self.key) }).map(Some)
    }
}

/// The keys and values of a table, each value keyed `key.name`.
struct Entries<'de, 'k> {
    entries: toml::map::Iter<'de, String, toml::Value>,
    key: &'k str,
    value: Option<(&'de str, &'de toml::Value)>,
}

impl<'de> MapAccess<'de> for Entries<'de, '_> {
    type Error = ReadError;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Read<Option<K::Value>> {
        let Some((name, value)) = self.entries.next() else { return Ok(None) };
        self.value = Some((name, value));
        seed.deserialize(BorrowedStrDeserializer::new(name.as_str())).map(Some)
    }

    fn next_value_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Read<T::Value> {
        let (name, value) = self.value.take().ok_or_else(|| de::Error::custom("a value was read before its key"))?;
        seed.deserialize(Value { value, key: joined(self.key, name) })
    }
}

/// What went wrong, and, once known, the key it is about.
#[derive(Debug)]
struct ReadError {
    key: Option<String>,
    /// The key inside the table being read that the error is about (an unknown or a missing
    /// one), until the table's own key is known.
    field: Option<String>,
    reason: String,
}

impl ReadError {
    fn at(key: &str, reason: String) -> Self {
        ReadError { key: Some(key.to_string()), field: None, reason }
    }

    /// The error, keyed under `key` unless a value further in already named its key.
    fn under(mut self, key: &str) -> Self {
        if self.key.is_none() {
            self.key = Some(match self.field.take() {
                Some(field) => joined(key, &field),
                None => key.to_string(),
            });
        }
        self
    }
}

/// A value a type refused, said the way [`Value::expected`] says it: string `"now"`, float `1.5`.
fn in_toml_words(found: de::Unexpected<'_>) -> String {
    match found {
        de::Unexpected::Str(s) => format!("string `{}`", toml::Value::from(s)),
        de::Unexpected::Float(x) => format!("float `{x}`"),
        de::Unexpected::Seq => "an array".to_string(),
        de::Unexpected::Map => "a table".to_string(),
        other => other.to_string(),
    }
}

fn joined(key: &str, name: &str) -> String {
    if key.is_empty() { name.to_string() } else { format!("{key}.{name}") }
}

impl de::Error for ReadError {
    fn custom<T: fmt::Display>(reason: T) -> Self {
        ReadError { key: None, field: None, reason: reason.to_string() }
    }

    fn invalid_type(found: de::Unexpected<'_>, expected: &dyn de::Expected) -> Self {
        Self::custom(format!("expected {expected}, found {}", in_toml_words(found)))
    }

    fn invalid_value(found: de::Unexpected<'_>, expected: &dyn de::Expected) -> Self {
        Self::custom(format!("expected {expected}, found {}", in_toml_words(found)))
    }

    /// Says which known key `key` resembles, if one does.
    fn unknown_field(key: &str, known: &'static [&'static str]) -> Self {
        let closest = known
            .iter()
            .map(|k| (strsim::damerau_levenshtein(key, k), *k))
            .filter(|(distance, k)| *distance <= (k.len() / 3).max(2))
            .min();
        let reason = match closest {
            Some((_, k)) => format!("unknown key; did you mean `{k}`?"),
            None => format!("unknown key; the keys are {}", known.join(", ")),
        };
        ReadError { key: None, field: Some(key.to_string()), reason }
    }

    fn missing_field(key: &'static str) -> Self {
        ReadError { key: None, field: Some(key.to_string()), reason: "is missing".to_string() }
    }
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.key {
            Some(key) => write!(f, "`{key}`: {}", self.reason),
            None => f.write_str(&self.reason),
        }
    }
}

impl std::error::Error for ReadError {}

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
