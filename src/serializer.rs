//! How payloads become bytes: JSON (`serde_json`), binary (bincode 2 in serde mode), or any
//! format an application brings through the [`Serializer`] trait.
//!
//! The store itself never looks inside payloads; it keeps the bytes and their content type,
//! and [`crate::RecordedEvent::decode`] picks the decoder from that content type.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};

/// Content type of payloads written by [`JsonSerializer`].
pub const JSON_CONTENT_TYPE: &str = "application/json";
/// Content type of payloads written by [`BincodeSerializer`].
pub const BINCODE_CONTENT_TYPE: &str = "application/x-bincode";

/// Turns values into payload bytes and back; implement it for a custom format and use
/// [`crate::EventData::serialize_with`] and [`crate::RecordedEvent::decode_with`].
///
/// ```
/// use chronik::{Error, Serializer};
///
/// /// Stores values as `Debug`-free pretty JSON, under its own content type.
/// struct PrettyJson;
/// impl Serializer for PrettyJson {
///     fn content_type(&self) -> &str { "application/vnd.pretty+json" }
///     fn serialize<T: serde::Serialize + ?Sized>(&self, value: &T) -> Result<Vec<u8>, Error> {
///         serde_json::to_vec_pretty(value).map_err(|e| Error::Serialization(e.to_string()))
///     }
///     fn deserialize<T: serde::de::DeserializeOwned>(&self, bytes: &[u8]) -> Result<T, Error> {
///         serde_json::from_slice(bytes).map_err(|e| Error::Serialization(e.to_string()))
///     }
/// }
/// let e = chronik::EventData::serialize_with("Opened", &PrettyJson, &42)?;
/// assert_eq!(e.content_type, "application/vnd.pretty+json");
/// # Ok::<(), Error>(())
/// ```
pub trait Serializer {
    /// The content type stored with payloads of this format.
    fn content_type(&self) -> &str;
    /// Encodes a value.
    fn serialize<T: Serialize + ?Sized>(&self, value: &T) -> Result<Vec<u8>>;
    /// Decodes a value.
    fn deserialize<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<T>;
}

/// JSON through `serde_json` (content type `application/json`).
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonSerializer;

impl Serializer for JsonSerializer {
    fn content_type(&self) -> &str {
        JSON_CONTENT_TYPE
    }
    fn serialize<T: Serialize + ?Sized>(&self, value: &T) -> Result<Vec<u8>> {
        serde_json::to_vec(value).map_err(|e| Error::Serialization(format!("JSON encoding: {e}")))
    }
    fn deserialize<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<T> {
        serde_json::from_slice(bytes).map_err(|e| Error::Serialization(format!("JSON decoding: {e}")))
    }
}

/// bincode 2 in serde mode with its standard configuration (content type
/// `application/x-bincode`). Compact, but not self-describing: decode into the same type.
#[derive(Debug, Clone, Copy, Default)]
pub struct BincodeSerializer;

impl Serializer for BincodeSerializer {
    fn content_type(&self) -> &str {
        BINCODE_CONTENT_TYPE
    }
    fn serialize<T: Serialize + ?Sized>(&self, value: &T) -> Result<Vec<u8>> {
        bincode::serde::encode_to_vec(value, bincode::config::standard())
            .map_err(|e| Error::Serialization(format!("bincode encoding: {e}")))
    }
    fn deserialize<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<T> {
        let (value, read) = bincode::serde::decode_from_slice(bytes, bincode::config::standard())
            .map_err(|e| Error::Serialization(format!("bincode decoding: {e}")))?;
        if read != bytes.len() {
            return Err(Error::Serialization(format!(
                "bincode decoding: {} trailing bytes after the value",
                bytes.len() - read
            )));
        }
        Ok(value)
    }
}

/// Decodes bytes with the built-in serializer for `content_type`.
pub(crate) fn decode_builtin<T: DeserializeOwned>(content_type: &str, bytes: &[u8]) -> Result<T> {
    match content_type {
        JSON_CONTENT_TYPE => JsonSerializer.deserialize(bytes),
        BINCODE_CONTENT_TYPE => BincodeSerializer.deserialize(bytes),
        other => Err(Error::Serialization(format!(
            "content type `{other}` has no built-in decoder; use decode_with(&your_serializer)"
        ))),
    }
}
