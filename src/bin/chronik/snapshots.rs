//! Snapshots: `snapshot show SOURCE` and `snapshot delete SOURCE`.

use std::process::ExitCode;

use chronik::{Config, EventStore, JSON_CONTENT_TYPE, SnapshotData};
use chrono::SecondsFormat;
use clap::{Args, Subcommand};
use serde_json::json;

use crate::output::{new_table, payload_json, print_json, print_line};
use crate::{Context, Outcome, with_reader, with_store};

/// Examples shown by `chronik snapshot --help`.
pub(crate) const EXAMPLES: &str = "\
Examples:
  chronik snapshot show account-1            its version, type, time and state
  chronik --json snapshot show account-1     the state as JSON (or hex for other content types)
  chronik snapshot delete account-1          the next rebuild reads the whole stream";

/// Arguments of `snapshot`.
#[derive(Debug, Args)]
pub(crate) struct SnapshotArgs {
    #[command(subcommand)]
    command: SnapshotCommand,
}

/// The subcommands of `snapshot`.
#[derive(Debug, Subcommand)]
enum SnapshotCommand {
    /// Show the snapshot of a source (usually a stream id).
    Show {
        /// The source whose snapshot to show.
        source: String,
    },
    /// Delete the snapshot of a source; deleting one that does not exist is not an error.
    Delete {
        /// The source whose snapshot to delete.
        source: String,
    },
}

/// Runs `snapshot show` (read-only) or `snapshot delete`.
pub(crate) async fn run(config: Config, args: SnapshotArgs, json: bool) -> Outcome {
    match args.command {
        SnapshotCommand::Show { source } => with_reader(config, async |store| show(store, &source, json).await).await,
        SnapshotCommand::Delete { source } => {
            with_store(config, true, async |store| delete(store, &source, json).await).await
        }
    }
}

/// `snapshot show SOURCE`.
async fn show(store: &EventStore, source: &str, json: bool) -> Outcome {
    let snapshot: SnapshotData =
        store.read_snapshot(source).await.context(|| format!("cannot read the snapshot of `{source}`"))?;
    let (state, encoding) = payload_json(&snapshot.data, snapshot.content_type == JSON_CONTENT_TYPE);
    let metadata = snapshot.metadata.as_deref().map(|m| payload_json(m, true).0);
    if json {
        print_json(&json!({
            "source_uuid": snapshot.source_uuid,
            "source_version": snapshot.source_version,
            "source_type": snapshot.source_type,
            "content_type": snapshot.content_type,
            "created_at": snapshot.created_at,
            "data": state,
            "data_encoding": encoding,
            "metadata": metadata,
        }))?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut table = new_table(["key", "value"]);
    table.add_row(vec!["source_uuid".to_string(), snapshot.source_uuid.clone()]);
    table.add_row(vec!["source_version".to_string(), snapshot.source_version.to_string()]);
    table.add_row(vec!["source_type".to_string(), snapshot.source_type.clone()]);
    table.add_row(vec!["content_type".to_string(), snapshot.content_type.clone()]);
    table.add_row(vec!["created_at".to_string(), snapshot.created_at.to_rfc3339_opts(SecondsFormat::Micros, true)]);
    let shown = |value: &serde_json::Value| match value {
        serde_json::Value::String(hex) if encoding == "hex" => format!("{} bytes: {hex}", snapshot.data.len()),
        other => serde_json::to_string_pretty(other).unwrap_or_default(),
    };
    table.add_row(vec!["data".to_string(), shown(&state)]);
    table.add_row(vec![
        "metadata".to_string(),
        metadata.map_or_else(|| "-".to_string(), |m| serde_json::to_string_pretty(&m).unwrap_or_default()),
    ]);
    print_line(&table.to_string())?;
    Ok(ExitCode::SUCCESS)
}

/// `snapshot delete SOURCE`.
async fn delete(store: &EventStore, source: &str, json: bool) -> Outcome {
    store.delete_snapshot(source).await.context(|| format!("cannot delete the snapshot of `{source}`"))?;
    if json {
        print_json(&json!({ "source_uuid": source, "deleted": true }))?;
    } else {
        print_line(&format!("deleted the snapshot of `{source}` (if there was one)"))?;
    }
    Ok(ExitCode::SUCCESS)
}
