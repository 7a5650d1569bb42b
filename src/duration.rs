//! How settings write a duration, for every settings type read through serde (`Config`,
//! `SubscriptionOptions`): an integer of milliseconds, or a string with a unit (which is how
//! stored settings write it).

use std::fmt;
use std::time::Duration;

use serde::Serializer;
use serde::de::{self, Deserializer, Visitor};

/// Writes a duration as a string with units (`"1s 500ms"`), which [`deserialize`] reads back
/// exactly. For `#[serde(serialize_with = ..)]` on `Duration` fields.
pub(crate) fn serialize<S: Serializer>(duration: &Duration, serializer: S) -> std::result::Result<S::Ok, S::Error> {
    serializer.serialize_str(&humantime::format_duration(*duration).to_string())
}

/// Reads a duration as settings write it: an integer of milliseconds, or a string with a unit
/// (`"250ms"`, `"2s"`, `"1m"`). For `#[serde(deserialize_with = ..)]` on `Duration` fields.
pub(crate) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Duration, D::Error> {
    struct Millis;
    impl Visitor<'_> for Millis {
        type Value = Duration;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("milliseconds or a duration string like \"500ms\"")
        }

        fn visit_u64<E: de::Error>(self, ms: u64) -> std::result::Result<Duration, E> {
            Ok(Duration::from_millis(ms))
        }

        fn visit_i64<E: de::Error>(self, ms: i64) -> std::result::Result<Duration, E> {
            u64::try_from(ms).map(Duration::from_millis).map_err(|_| E::custom(format!("{ms} is negative")))
        }

        fn visit_str<E: de::Error>(self, s: &str) -> std::result::Result<Duration, E> {
            humantime::parse_duration(s)
                .map_err(|e| E::custom(format!("`{s}` is not a duration ({e}); write e.g. \"500ms\" or \"2s\"")))
        }
    }
    deserializer.deserialize_any(Millis)
}

/// An optional duration in a settings file, which has no `null`: `"off"` is `None`, anything
/// else is read as [`deserialize`] reads it. For `#[serde(deserialize_with = ..)]` on
/// `Option<Duration>` fields of settings.
pub(crate) fn deserialize_off<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> std::result::Result<Option<Duration>, D::Error> {
    struct OffOrMillis;
    impl Visitor<'_> for OffOrMillis {
        type Value = Option<Duration>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("\"off\", milliseconds or a duration string like \"1h\"")
        }

        fn visit_u64<E: de::Error>(self, ms: u64) -> std::result::Result<Self::Value, E> {
            Ok(Some(Duration::from_millis(ms)))
        }

        fn visit_i64<E: de::Error>(self, ms: i64) -> std::result::Result<Self::Value, E> {
            u64::try_from(ms)
                .map(|ms| Some(Duration::from_millis(ms)))
                .map_err(|_| E::custom(format!("{ms} is negative")))
        }

        fn visit_str<E: de::Error>(self, s: &str) -> std::result::Result<Self::Value, E> {
            if s.eq_ignore_ascii_case("off") {
                return Ok(None);
            }
            humantime::parse_duration(s).map(Some).map_err(|e| {
                E::custom(format!("`{s}` is neither \"off\" nor a duration ({e}); write e.g. \"off\" or \"6h\""))
            })
        }
    }
    deserializer.deserialize_any(OffOrMillis)
}

/// An optional duration as settings write it: `None` is absent or `null`; written back as a
/// string with units (`"1day 2h"`), which [`deserialize`] reads. For `#[serde(with = ..)]` on
/// `Option<Duration>` fields.
pub(crate) mod optional {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(value: &Option<Duration>, serializer: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(d) => serializer.serialize_str(&humantime::format_duration(*d).to_string()),
            None => serializer.serialize_none(),
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Duration>, D::Error> {
        #[derive(Deserialize)]
        struct Wrapped(#[serde(deserialize_with = "super::deserialize")] Duration);
        Ok(Option::<Wrapped>::deserialize(deserializer)?.map(|Wrapped(d)| d))
    }
}
