//! Snapshots: the latest state of one source (usually an aggregate), stored beside its stream
//! so that rebuilding it does not need to replay every event.

use chrono::{DateTime, SubsecRound, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::Result;
use crate::serializer::{self, JsonSerializer, Serializer};

/// A snapshot, as recorded and as read back. Recording one for a `source_uuid` that already
/// has one replaces it.
///
/// ```
/// use chronik::SnapshotData;
/// let s = SnapshotData::json("account-1", 42, "Account", &serde_json::json!({ "balance": 10 }))?;
/// assert_eq!(s.decode::<serde_json::Value>()?["balance"], 10);
/// # Ok::<(), chronik::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SnapshotData {
    /// The source this snapshot belongs to (usually a stream id).
    pub source_uuid: String,
    /// The source's version the snapshot reflects.
    pub source_version: u64,
    /// The source's type, e.g. `"Account"`.
    pub source_type: String,
    /// Content type of `data`.
    pub content_type: String,
    /// The encoded state.
    pub data: Vec<u8>,
    /// JSON metadata, if any.
    pub metadata: Option<Vec<u8>>,
    /// When the snapshot was taken (microsecond precision, as stored).
    pub created_at: DateTime<Utc>,
}

impl SnapshotData {
    /// A snapshot with an already encoded state.
    pub fn new(
        source_uuid: impl Into<String>,
        source_version: u64,
        source_type: impl Into<String>,
        content_type: impl Into<String>,
        data: impl Into<Vec<u8>>,
    ) -> Self {
        SnapshotData {
            source_uuid: source_uuid.into(),
            source_version,
            source_type: source_type.into(),
            content_type: content_type.into(),
            data: data.into(),
            metadata: None,
            created_at: Utc::now().trunc_subsecs(6),
        }
    }

    /// A snapshot whose state is `state` as JSON.
    pub fn json<T: Serialize + ?Sized>(
        source_uuid: impl Into<String>,
        source_version: u64,
        source_type: impl Into<String>,
        state: &T,
    ) -> Result<Self> {
        Self::serialize_with(source_uuid, source_version, source_type, &JsonSerializer, state)
    }

    /// A snapshot whose state is encoded by `serializer`.
    pub fn serialize_with<S: Serializer, T: Serialize + ?Sized>(
        source_uuid: impl Into<String>,
        source_version: u64,
        source_type: impl Into<String>,
        serializer: &S,
        state: &T,
    ) -> Result<Self> {
        let data = serializer.serialize(state)?;
        Ok(Self::new(source_uuid, source_version, source_type, serializer.content_type(), data))
    }

    /// Sets the metadata to `value` as JSON.
    pub fn with_metadata_json<T: Serialize + ?Sized>(mut self, value: &T) -> Result<Self> {
        self.metadata = Some(JsonSerializer.serialize(value)?);
        Ok(self)
    }

    /// Decodes the state with the built-in serializer for its content type.
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T> {
        serializer::decode_builtin(&self.content_type, &self.data)
    }
}
