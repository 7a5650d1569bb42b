//! The facade's input checks: stream ids, subscription names, events. Each error names what is
//! wrong (and which event), and comes before anything is written.

use std::collections::HashMap;

use crate::error::{Error, Result};
use crate::event::{ALL, EventData, StreamAppend};

/// Longest accepted stream id, in bytes.
pub const MAX_STREAM_ID_BYTES: usize = 1024;
/// Longest accepted event type, in bytes.
pub const MAX_EVENT_TYPE_BYTES: usize = 1024;

/// Checks every event of an append, and that no id comes twice.
pub(crate) fn events(events: &[EventData], max_event_size: usize) -> Result<()> {
    let mut ids = HashMap::with_capacity(events.len());
    for (index, event) in events.iter().enumerate() {
        event_of(index, event, max_event_size)?;
        if let Some(first) = ids.insert(event.event_id, index) {
            return Err(Error::invalid(format!(
                "events {first} and {index} have the same event_id {}: each event of an append needs its own id",
                event.event_id
            )));
        }
    }
    Ok(())
}

/// Checks the parts of an `append_to_streams` call as `append_to_stream` checks one append, and
/// that no event id comes twice in the call. A part's error is [`Error::AppendFailed`] naming
/// its stream (for an id that comes twice: the stream of its later place).
pub(crate) fn stream_appends(appends: &[StreamAppend], max_event_size: usize) -> Result<()> {
    if appends.is_empty() {
        return Err(Error::invalid("no streams to append to: the list of stream appends is empty"));
    }
    let mut ids: HashMap<_, (usize, usize)> = HashMap::with_capacity(appends.iter().map(|a| a.events.len()).sum());
    for (part, append) in appends.iter().enumerate() {
        let failed = |source: Error| Error::AppendFailed { stream: append.stream.clone(), source: Box::new(source) };
        if append.stream == ALL {
            return Err(failed(Error::CannotAppendToAllStream));
        }
        writable_stream(&append.stream).map_err(failed)?;
        if append.events.is_empty() {
            return Err(failed(Error::invalid(format!(
                "no events to append to stream `{}` (part {part}): its event list is empty",
                append.stream
            ))));
        }
        events(&append.events, max_event_size).map_err(failed)?;
        for (index, event) in append.events.iter().enumerate() {
            if let Some((first_part, first_index)) = ids.insert(event.event_id, (part, index)) {
                return Err(failed(Error::invalid(format!(
                    "event {index} of part {part} (stream `{}`) has the same event_id {} as event {first_index} \
                     of part {first_part} (stream `{}`): each event of a call needs its own id",
                    append.stream, event.event_id, appends[first_part].stream
                ))));
            }
        }
    }
    Ok(())
}

/// Checks event `index` of an append.
fn event_of(index: usize, event: &EventData, max_event_size: usize) -> Result<()> {
    let name = |what: &str| format!("event {index} ({}): {what}", event.event_id);
    if event.event_type.is_empty() {
        return Err(Error::invalid(name("event_type is empty")));
    }
    if event.event_type.len() > MAX_EVENT_TYPE_BYTES {
        return Err(Error::invalid(name(&format!("event_type is longer than {MAX_EVENT_TYPE_BYTES} bytes"))));
    }
    if event.event_type.contains('\0') {
        return Err(Error::invalid(name("event_type contains a NUL character")));
    }
    if event.content_type.is_empty() || event.content_type.contains('\0') {
        return Err(Error::invalid(name("content_type is empty or contains a NUL character")));
    }
    if let Some(metadata) = &event.metadata
        && let Err(e) = check_json(metadata)
    {
        return Err(Error::invalid(name(&format!("metadata is not JSON ({e}); metadata must be a JSON document"))));
    }
    if is_json(&event.content_type)
        && let Err(e) = check_json(&event.data)
    {
        return Err(Error::invalid(name(&format!(
            "data is labelled `{}` but is not JSON ({e}); send JSON or label it with its own content type",
            event.content_type
        ))));
    }
    let size = event.payload_size();
    if size > max_event_size {
        return Err(Error::invalid(name(&format!(
            "data + metadata is {size} bytes, over max_event_size ({} bytes)",
            max_event_size
        ))));
    }
    Ok(())
}

/// Checks that `bytes` are one JSON document in UTF-8 (as RFC 8259 requires), without building it.
fn check_json(bytes: &[u8]) -> std::result::Result<(), String> {
    let text = std::str::from_utf8(bytes).map_err(|e| format!("not UTF-8: {e}"))?;
    serde_json::from_str::<serde::de::IgnoredAny>(text).map(|_| ()).map_err(|e| e.to_string())
}

/// Whether a content type says JSON: `application/json` or a `+json` type such as
/// `application/vnd.acme+json`, with or without parameters (`; charset=utf-8`).
fn is_json(content_type: &str) -> bool {
    let media = content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    media == crate::JSON_CONTENT_TYPE || (media.starts_with("application/") && media.ends_with("+json"))
}

pub(crate) fn subscription_name(name: &str) -> Result<()> {
    validate_name("subscription name", name)
}

pub(crate) fn stream_id(stream: &str) -> Result<()> {
    validate_name("stream id", stream)
}

/// A stream an application writes (appends, links, deletes): a valid id that does not start
/// with `$`, which marks the store's own streams (`$all`, and the `$ce-…` and `$et-…` indexes
/// it writes itself).
pub(crate) fn writable_stream(stream: &str) -> Result<()> {
    stream_id(stream)?;
    if stream.starts_with('$') {
        return Err(Error::invalid(format!(
            "stream `{stream}`: streams whose id starts with `$` are the store's own ($all, and the \
             $ce-<category> and $et-<type> indexes it keeps itself); write to a stream of your own"
        )));
    }
    Ok(())
}

/// A stream id or subscription name: not empty, at most `MAX_STREAM_ID_BYTES`, no NUL.
pub(crate) fn validate_name(what: &str, name: &str) -> Result<()> {
    if name.is_empty() {
        return Err(Error::invalid(format!("{what} is empty")));
    }
    if name.len() > MAX_STREAM_ID_BYTES {
        return Err(Error::invalid(format!(
            "{what} is {} bytes long, over the limit of {MAX_STREAM_ID_BYTES}",
            name.len()
        )));
    }
    if name.contains('\0') {
        return Err(Error::invalid(format!("{what} contains a NUL character")));
    }
    Ok(())
}
