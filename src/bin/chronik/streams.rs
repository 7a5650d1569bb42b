//! Streams: `append`, `read`, `info`, `streams`, `delete` and `tail`.

use std::process::ExitCode;

use chronik::{
    AppendResult, DeleteMode, EventData, EventStore, ExpectedVersion, JSON_CONTENT_TYPE, LiveMessage, Page,
    PageRequest, RecordedEvent, SortBy, SortDirection, StreamInfo, StreamStatus,
};
use chrono::SecondsFormat;
use clap::{Args, ValueEnum};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::output::shell_word;
use crate::output::{
    DATA_CELL_WIDTH, data_text, event_json, new_table, print_json, print_line, print_live_line, truncate,
};
use crate::{Context, Failure, Outcome};

/// Examples shown by `chronik append --help`.
pub(crate) const APPEND_EXAMPLES: &str = "\
Examples:
  chronik append account-1 Opened '{\"owner\": \"ana\"}' --expected no-stream
  chronik append account-1 Deposited '{\"amount\": 10}' --expected 1 --metadata '{\"user\": \"ana\"}'
  echo '{\"amount\": 5}' | chronik append account-1 Withdrawn -";

/// Examples shown by `chronik read --help`.
pub(crate) const READ_EXAMPLES: &str = "\
Examples:
  chronik read account-1                        its first 20 events
  chronik read account-1 --from 21 --count 100  the next ones
  chronik read '$all' --backward --count 5      the five newest events of the store
  chronik --json read account-1                 every field, payloads decoded";

/// Arguments of `append`.
#[derive(Debug, Args)]
pub(crate) struct AppendArgs {
    /// The stream to append to.
    stream: String,
    /// The event's type, e.g. `Deposited`.
    event_type: String,
    /// The event's payload: a JSON document (`-` reads it from stdin).
    data: String,
    /// JSON metadata of the event.
    #[arg(long, value_name = "JSON")]
    metadata: Option<String>,
    /// The version the stream must be at: any, no-stream, exists or a number.
    #[arg(long, value_name = "VERSION", default_value = "any", value_parser = parse_expected)]
    expected: ExpectedVersion,
    /// The event's id (default: a new random UUID); makes a retried append idempotent.
    #[arg(long, value_name = "UUID")]
    event_id: Option<Uuid>,
    /// Correlation id of the event.
    #[arg(long, value_name = "UUID")]
    correlation_id: Option<Uuid>,
    /// Causation id of the event.
    #[arg(long, value_name = "UUID")]
    causation_id: Option<Uuid>,
}

/// Arguments of `read`.
#[derive(Debug, Args)]
pub(crate) struct ReadArgs {
    /// The stream to read, or `$all` for every event by global position.
    stream: String,
    /// Read newest first.
    #[arg(long)]
    backward: bool,
    /// First version (global position for `$all`) to read; backward: the last one
    /// (default: the start, or the end when reading backward).
    #[arg(long, value_name = "N")]
    from: Option<u64>,
    /// Most events to read.
    #[arg(long, value_name = "N", default_value_t = 20)]
    count: u64,
}

/// Arguments of `info`.
#[derive(Debug, Args)]
pub(crate) struct InfoArgs {
    /// The stream, or `$all`.
    stream: String,
}

/// Arguments of `streams`.
#[derive(Debug, Args)]
pub(crate) struct StreamsArgs {
    /// Only streams whose name contains this text (case-insensitive).
    #[arg(long, value_name = "TEXT")]
    search: Option<String>,
    /// Page number, from 1.
    #[arg(long, value_name = "N", default_value_t = 1)]
    page: u64,
    /// Streams per page (1 to 1000).
    #[arg(long, value_name = "N", default_value_t = 50)]
    page_size: u64,
    /// Ordering column.
    #[arg(long, value_enum, default_value_t = SortKey::Id)]
    sort: SortKey,
    /// Largest first.
    #[arg(long)]
    desc: bool,
    /// Leave out soft-deleted streams.
    #[arg(long)]
    exclude_deleted: bool,
}

/// Ordering columns of `streams`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum SortKey {
    /// Creation order (internal stream id).
    Id,
    /// Stream name.
    Name,
    /// Stream version.
    Version,
    /// Creation time.
    Created,
}

impl From<SortKey> for SortBy {
    fn from(key: SortKey) -> SortBy {
        match key {
            SortKey::Id => SortBy::StreamId,
            SortKey::Name => SortBy::StreamUuid,
            SortKey::Version => SortBy::StreamVersion,
            SortKey::Created => SortBy::CreatedAt,
        }
    }
}

/// Arguments of `delete`.
#[derive(Debug, Args)]
pub(crate) struct DeleteArgs {
    /// The stream to delete.
    stream: String,
    /// Remove the stream's events everywhere (needs `enable_hard_deletes = true`).
    #[arg(long, conflicts_with = "recreatable")]
    hard: bool,
    /// Delete it so that it can be recreated: reads say it is not found, and the next append
    /// continues its versions (KurrentDB's delete). Without this or --hard: a tombstone.
    #[arg(long)]
    recreatable: bool,
    /// The version the stream must be at: any, no-stream, exists or a number.
    #[arg(long, value_name = "VERSION", default_value = "any", value_parser = parse_expected)]
    expected: ExpectedVersion,
}

/// Arguments of `tail`.
#[derive(Debug, Args)]
pub(crate) struct TailArgs {
    /// The stream to follow, or `$all` for every stream.
    stream: String,
    /// Exit after this many events (default: run until Ctrl-C).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    count: Option<u64>,
}

/// Parses `any`, `no-stream`, `exists` (or `stream-exists`) or a version number.
pub(crate) fn parse_expected(text: &str) -> Result<ExpectedVersion, String> {
    match text.trim().to_ascii_lowercase().replace('_', "-").as_str() {
        "any" => Ok(ExpectedVersion::Any),
        "no-stream" => Ok(ExpectedVersion::NoStream),
        "exists" | "stream-exists" => Ok(ExpectedVersion::StreamExists),
        other => other
            .parse::<u64>()
            .map(ExpectedVersion::Exact)
            .map_err(|_| format!("`{text}` is not a version: use any, no-stream, exists or a number")),
    }
}

/// Checks the JSON payload and metadata of `append` and builds the event.
pub(crate) fn build_event(args: &AppendArgs) -> Result<EventData, Failure> {
    let data = if args.data == "-" {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
            .map_err(|e| Failure::new(format!("cannot read the event data from stdin: {e}")))?;
        text
    } else {
        args.data.clone()
    };
    serde_json::from_str::<Value>(&data).map_err(|e| Failure::new(format!("event data is not valid JSON: {e}")))?;
    let mut event = EventData::from_bytes(args.event_type.as_str(), JSON_CONTENT_TYPE, data.trim().as_bytes());
    if let Some(metadata) = &args.metadata {
        serde_json::from_str::<Value>(metadata)
            .map_err(|e| Failure::new(format!("--metadata is not valid JSON: {e}")))?;
        event = event.with_metadata_bytes(metadata.trim().as_bytes());
    }
    if let Some(id) = args.event_id {
        event = event.with_event_id(id);
    }
    Ok(event.with_correlation_id(args.correlation_id).with_causation_id(args.causation_id))
}

/// `append`.
pub(crate) async fn append(store: &EventStore, args: &AppendArgs, event: EventData, json: bool) -> Outcome {
    let event_id = event.event_id;
    let result: AppendResult = store
        .append_to_stream(&args.stream, args.expected, vec![event])
        .await
        .context(|| format!("cannot append to stream `{}`", args.stream))?;
    if json {
        print_json(&json!({
            "stream": args.stream,
            "event_id": event_id,
            "stream_version": result.stream_version,
            "first_position": result.first_position,
            "last_position": result.last_position,
        }))?;
    } else {
        print_line(&format!(
            "appended event {event_id} to `{}`: stream version {}, position {}",
            args.stream,
            result.stream_version,
            if result.first_position == result.last_position {
                result.first_position.to_string()
            } else {
                format!("{}..{}", result.first_position, result.last_position)
            }
        ))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `read`: up to `--count` events, and whether more follow (one more is read to know).
pub(crate) async fn read(store: &EventStore, args: &ReadArgs, json: bool) -> Outcome {
    let ask = args.count.saturating_add(1);
    let mut events = if args.backward {
        store.read_stream_backward(&args.stream, args.from, ask).await
    } else {
        store.read_stream_forward(&args.stream, args.from.unwrap_or(0), ask).await
    }
    .context(|| format!("cannot read stream `{}`", args.stream))?;
    let more = events.len() as u64 > args.count;
    events.truncate(usize::try_from(args.count).unwrap_or(usize::MAX));
    let next = events.last().and_then(|last| {
        if args.backward { last.event_number.checked_sub(1) } else { last.event_number.checked_add(1) }
    });
    let hint = match next.filter(|_| more) {
        Some(n) => {
            let backward = if args.backward { " --backward" } else { "" };
            format!(
                "more events follow: `chronik read {}{backward} --from {n}` shows the next {}",
                shell_word(&args.stream),
                args.count
            )
        }
        None => String::new(),
    };
    if json {
        print_json(&Value::Array(events.iter().map(event_json).collect()))?;
        if !hint.is_empty() {
            eprintln!("{hint}");
        }
        return Ok(ExitCode::SUCCESS);
    }
    if events.is_empty() {
        let from = args.from.map(|n| format!(" from {n}")).unwrap_or_default();
        print_line(&format!("no events in `{}`{from}", args.stream))?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut table = new_table(["event_number", "event_type", "stream", "position", "created_at", "data"]);
    for e in &events {
        table.add_row(vec![
            e.event_number.to_string(),
            e.event_type.clone(),
            format!("{}@{}", e.stream_uuid, e.stream_version),
            e.global_position.to_string(),
            e.created_at.to_rfc3339_opts(SecondsFormat::Micros, true),
            truncate(&data_text(e), DATA_CELL_WIDTH),
        ]);
    }
    print_line(&table.to_string())?;
    if !hint.is_empty() {
        print_line(&hint)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `info`.
pub(crate) async fn info(store: &EventStore, args: &InfoArgs, json: bool) -> Outcome {
    let info: StreamInfo =
        store.stream_info(&args.stream).await.context(|| format!("cannot read stream `{}`", args.stream))?;
    if json {
        print_json(&serde_json::to_value(&info).map_err(|e| Failure::new(e.to_string()))?)?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut table = new_table(["key", "value"]);
    table.add_row(vec!["stream_uuid".to_string(), info.stream_uuid.clone()]);
    table.add_row(vec!["stream_id".to_string(), info.stream_id.to_string()]);
    table.add_row(vec!["stream_version".to_string(), info.stream_version.to_string()]);
    table.add_row(vec!["status".to_string(), status_text(&info).to_string()]);
    table.add_row(vec!["created_at".to_string(), info.created_at.to_rfc3339_opts(SecondsFormat::Micros, true)]);
    table.add_row(vec![
        "deleted_at".to_string(),
        info.deleted_at.map_or_else(|| "-".to_string(), |t| t.to_rfc3339_opts(SecondsFormat::Micros, true)),
    ]);
    match &info.metadata {
        Some((version, metadata)) => {
            table.add_row(vec!["metadata_version".to_string(), version.to_string()]);
            for (key, value) in crate::retention::metadata_rows(metadata) {
                table.add_row(vec![format!("metadata.{key}"), value]);
            }
        }
        None => {
            table.add_row(vec!["metadata".to_string(), "-".to_string()]);
        }
    }
    print_line(&table.to_string())?;
    Ok(ExitCode::SUCCESS)
}

/// `streams`.
pub(crate) async fn streams(store: &EventStore, args: &StreamsArgs, json: bool) -> Outcome {
    let mut request = PageRequest::default()
        .page(args.page)
        .page_size(args.page_size)
        .sort_by(args.sort.into())
        .sort_direction(if args.desc { SortDirection::Descending } else { SortDirection::Ascending })
        .include_deleted(!args.exclude_deleted);
    if let Some(search) = &args.search {
        request = request.search(search.as_str());
    }
    let page: Page<StreamInfo> = store.paginate_streams(request).await.context(|| "cannot list streams".into())?;
    if json {
        print_json(&serde_json::to_value(&page).map_err(|e| Failure::new(e.to_string()))?)?;
        return Ok(ExitCode::SUCCESS);
    }
    if !page.entries.is_empty() {
        let mut table = new_table(["stream_uuid", "stream_id", "version", "status", "created_at", "deleted_at"]);
        for s in &page.entries {
            table.add_row(vec![
                s.stream_uuid.clone(),
                s.stream_id.to_string(),
                s.stream_version.to_string(),
                status_text(s).to_string(),
                s.created_at.to_rfc3339_opts(SecondsFormat::Micros, true),
                s.deleted_at.map_or_else(|| "-".to_string(), |t| t.to_rfc3339_opts(SecondsFormat::Micros, true)),
            ]);
        }
        print_line(&table.to_string())?;
    }
    let plural = if page.total_entries == 1 { "" } else { "s" };
    print_line(&format!(
        "page {} of {} ({} stream{plural})",
        page.page_number,
        page.total_pages.max(1),
        page.total_entries
    ))?;
    Ok(ExitCode::SUCCESS)
}

/// `delete`.
pub(crate) async fn delete(store: &EventStore, args: &DeleteArgs, json: bool) -> Outcome {
    let (mode, name) = match (args.hard, args.recreatable) {
        (true, _) => (DeleteMode::Hard, "hard"),
        (_, true) => (DeleteMode::Recreatable, "recreatable"),
        _ => (DeleteMode::Soft, "soft"),
    };
    store
        .delete_stream(&args.stream, args.expected, mode)
        .await
        .context(|| format!("cannot delete stream `{}`", args.stream))?;
    if json {
        print_json(&json!({ "stream": args.stream, "deleted": true, "mode": name }))?;
    } else {
        print_line(&format!("deleted stream `{}` ({name} delete)", args.stream))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `tail`: prints each event committed to the stream from now on, one line each, until Ctrl-C,
/// `--count` events, or a closed stdout.
pub(crate) async fn tail(store: &EventStore, args: &TailArgs, json: bool) -> Outcome {
    let mut live = store.subscribe(&args.stream).await.context(|| format!("cannot follow stream `{}`", args.stream))?;
    // Tests and scripts wait for this line before appending.
    eprintln!("following `{}`: waiting for new events (Ctrl-C to stop)", args.stream);
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let mut printed = 0;
    loop {
        let message = tokio::select! {
            signal = &mut ctrl_c => {
                signal.map_err(|e| Failure::new(format!("cannot wait for Ctrl-C: {e}")))?;
                return Ok(ExitCode::SUCCESS);
            }
            message = live.recv() => message,
        };
        match message {
            Some(LiveMessage::Events(events)) => {
                for e in &events {
                    let line = if json {
                        serde_json::to_string(&event_json(e)).map_err(|e| Failure::new(e.to_string()))?
                    } else {
                        tail_line(e)
                    };
                    if !print_live_line(&line)? {
                        // Nobody reads any more (`chronik tail x | head -3`).
                        return Ok(ExitCode::SUCCESS);
                    }
                    printed += 1;
                    if args.count.is_some_and(|count| printed >= count) {
                        return Ok(ExitCode::SUCCESS);
                    }
                }
            }
            Some(LiveMessage::Lagged { missed }) => match missed {
                Some(n) => eprintln!(
                    "warning: fell behind and missed {n} event{}; `chronik read` shows them",
                    if n == 1 { "" } else { "s" }
                ),
                None => eprintln!("warning: events may have been missed; `chronik read` shows them"),
            },
            Some(_) => {}
            None => return Err(Failure::new(format!("stopped following `{}`: the store shut down", args.stream))),
        }
    }
}

/// One event as a `tail` line: `<event_number> <stream>@<version> <type> <data>`.
pub(crate) fn tail_line(e: &RecordedEvent) -> String {
    format!("{} {}@{} {} {}", e.event_number, e.stream_uuid, e.stream_version, e.event_type, data_text(e))
}

/// `created` or `deleted`.
pub(crate) fn status_text(info: &StreamInfo) -> &'static str {
    match info.status {
        StreamStatus::Deleted => "deleted",
        _ => "created",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expected_versions_parse() {
        assert_eq!(parse_expected("any"), Ok(ExpectedVersion::Any));
        assert_eq!(parse_expected("no-stream"), Ok(ExpectedVersion::NoStream));
        assert_eq!(parse_expected("no_stream"), Ok(ExpectedVersion::NoStream));
        assert_eq!(parse_expected("exists"), Ok(ExpectedVersion::StreamExists));
        assert_eq!(parse_expected("7"), Ok(ExpectedVersion::Exact(7)));
        assert!(parse_expected("-1").is_err());
        assert!(parse_expected("soon").is_err());
    }
}
