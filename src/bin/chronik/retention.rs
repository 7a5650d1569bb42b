//! Retention: `metadata` (show or change a stream's metadata) and `scavenge` (remove what it
//! hides, with a progress bar).

use std::process::ExitCode;
use std::time::Duration;

use chronik::{Config, EventStore, ExpectedVersion, ScavengeOptions, ScavengeReport, StreamMetadata};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};

use crate::output::{new_table, print_json, print_line};
use crate::streams::parse_expected;
use crate::{Context, Failure, Outcome, with_reader, with_store};

/// Examples shown by `chronik metadata --help`.
pub(crate) const METADATA_EXAMPLES: &str = "\
Examples:
  chronik metadata account-1                                  show it
  chronik metadata account-1 --max-count 1000                 keep only the newest 1,000 events readable
  chronik metadata session-9 --max-age 1d --custom '{\"owner\": \"web\"}'
  chronik metadata account-1 --truncate-before 42             hide versions 1-41 (e.g. after a snapshot at 41)
  chronik metadata account-1 --max-count none                 drop one rule, keep the others

Options not given keep their current value. What the rules hide stays in `$all` until
`chronik scavenge` removes it.";

/// Examples shown by `chronik scavenge --help`.
pub(crate) const SCAVENGE_EXAMPLES: &str = "\
Examples:
  chronik scavenge --dry-run      what a scavenge would remove
  chronik scavenge                remove it, showing progress

Safe while applications append and subscribe (on PostgreSQL; an SQLite file is written by one
process, so there set scavenge_interval in the application's configuration instead). A
scavenge that was stopped is finished by the next one.";

/// Arguments of `metadata`.
#[derive(Debug, Args)]
pub(crate) struct MetadataArgs {
    /// The stream (it need not exist yet).
    stream: String,
    /// Keep only the newest N events readable (`none`: no limit).
    #[arg(long, value_name = "N|none", value_parser = parse_count)]
    max_count: Option<Change<u64>>,
    /// Hide events older than this, e.g. `90s`, `12h`, `30d` (`none`: no limit).
    #[arg(long, value_name = "DURATION|none", value_parser = parse_age)]
    max_age: Option<Change<Duration>>,
    /// Hide the versions below this one (`none`: no truncation).
    #[arg(long, value_name = "VERSION|none", value_parser = parse_version)]
    truncate_before: Option<Change<u64>>,
    /// Custom JSON object kept with the metadata (`none`: remove it).
    #[arg(long, value_name = "JSON|none", value_parser = parse_custom)]
    custom: Option<Change<Value>>,
    /// The metadata version to change: any, no-stream (none set yet), exists or a number
    /// (default: the version just read, so a concurrent change is not overwritten).
    #[arg(long, value_name = "VERSION", value_parser = parse_expected)]
    expected: Option<ExpectedVersion>,
}

/// Arguments of `scavenge`.
#[derive(Debug, Args)]
pub(crate) struct ScavengeArgs {
    /// Only report what would be removed.
    #[arg(long)]
    dry_run: bool,
    /// Most events removed per transaction.
    #[arg(long, value_name = "N", default_value_t = ScavengeOptions::DEFAULT_BATCH_SIZE as u64,
          value_parser = clap::value_parser!(u64).range(1..))]
    batch_size: u64,
}

/// A new value for one metadata field, or its removal.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Change<T> {
    Set(T),
    Remove,
}

impl<T> Change<T> {
    fn apply(self, field: &mut Option<T>) {
        *field = match self {
            Change::Set(value) => Some(value),
            Change::Remove => None,
        };
    }
}

fn or_none<T>(text: &str, parse: impl FnOnce(&str) -> Result<T, String>) -> Result<Change<T>, String> {
    if text.trim().eq_ignore_ascii_case("none") { Ok(Change::Remove) } else { parse(text.trim()).map(Change::Set) }
}

fn parse_count(text: &str) -> Result<Change<u64>, String> {
    or_none(text, |t| match t.parse::<u64>() {
        Ok(0) => Err("must be at least 1 (a stream keeps its newest event), or none".into()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("`{t}` is not a count: give a number of events, or none")),
    })
}

fn parse_version(text: &str) -> Result<Change<u64>, String> {
    or_none(text, |t| t.parse::<u64>().map_err(|_| format!("`{t}` is not a version: give a number, or none")))
}

fn parse_age(text: &str) -> Result<Change<Duration>, String> {
    or_none(text, |t| {
        humantime::parse_duration(t)
            .map_err(|e| format!("`{t}` is not a duration ({e}): write e.g. 90s, 12h, 30d, or none"))
    })
}

fn parse_custom(text: &str) -> Result<Change<Value>, String> {
    or_none(text, |t| match serde_json::from_str::<Value>(t) {
        Ok(value @ Value::Object(_)) => Ok(value),
        Ok(_) => Err("must be a JSON object, e.g. '{\"owner\": \"billing\"}'".into()),
        Err(e) => Err(format!("is not JSON: {e}")),
    })
}

impl MetadataArgs {
    fn changes_anything(&self) -> bool {
        self.max_count.is_some() || self.max_age.is_some() || self.truncate_before.is_some() || self.custom.is_some()
    }
}

/// `metadata`: shows it, or changes the fields given.
pub(crate) async fn metadata(config: Config, args: MetadataArgs, json: bool) -> Outcome {
    if !args.changes_anything() {
        if args.expected.is_some() {
            return Err(Failure::new("--expected only goes with a change (--max-count, --max-age, ...)"));
        }
        return with_reader(config, async |store| show(store, &args.stream, json).await).await;
    }
    with_store(config, true, async |store| change(store, args, json).await).await
}

async fn show(store: &EventStore, stream: &str, json: bool) -> Outcome {
    let current = store.stream_metadata(stream).await.context(|| format!("cannot read the metadata of `{stream}`"))?;
    print_metadata(stream, current.as_ref(), json)?;
    Ok(ExitCode::SUCCESS)
}

async fn change(store: &EventStore, args: MetadataArgs, json: bool) -> Outcome {
    let stream = args.stream.clone();
    let current = store.stream_metadata(&stream).await.context(|| format!("cannot read the metadata of `{stream}`"))?;
    let (read_version, mut metadata) = current.unwrap_or_default();
    let expected = args.expected.unwrap_or(ExpectedVersion::Exact(read_version));
    if let Some(change) = args.max_count {
        change.apply(&mut metadata.max_count);
    }
    if let Some(change) = args.max_age {
        change.apply(&mut metadata.max_age);
    }
    if let Some(change) = args.truncate_before {
        change.apply(&mut metadata.truncate_before);
    }
    if let Some(change) = args.custom {
        change.apply(&mut metadata.custom);
    }
    let version = store.set_stream_metadata(&stream, expected, metadata.clone()).await.map_err(|e| {
        let concurrent = args.expected.is_none() && matches!(e, chronik::Error::WrongExpectedVersion { .. });
        let failure = Failure::from(e);
        if concurrent {
            failure.with_message(&format!(
                "the metadata of `{stream}` changed while this command ran (it read version {read_version}); run it again"
            ))
        } else {
            let message = format!("cannot set the metadata of `{stream}`: {}", failure.message());
            failure.with_message(&message)
        }
    })?;
    print_metadata(&stream, Some(&(version, metadata)), json)?;
    Ok(ExitCode::SUCCESS)
}

/// The fields of `metadata` as `(key, value)` rows for a table.
pub(crate) fn metadata_rows(metadata: &StreamMetadata) -> Vec<(&'static str, String)> {
    let or_dash = |value: Option<String>| value.unwrap_or_else(|| "-".to_string());
    vec![
        ("max_count", or_dash(metadata.max_count.map(|n| n.to_string()))),
        ("max_age", or_dash(metadata.max_age.map(|d| humantime::format_duration(d).to_string()))),
        ("truncate_before", or_dash(metadata.truncate_before.map(|v| v.to_string()))),
        ("custom", or_dash(metadata.custom.as_ref().map(Value::to_string))),
    ]
}

fn print_metadata(stream: &str, current: Option<&(u64, StreamMetadata)>, json: bool) -> Result<(), Failure> {
    if json {
        let value = match current {
            Some((version, metadata)) => json!({ "stream": stream, "version": version, "metadata": metadata }),
            None => json!({ "stream": stream, "version": 0, "metadata": null }),
        };
        return print_json(&value);
    }
    let Some((version, metadata)) = current else {
        return print_line(&format!("`{stream}` has no metadata"));
    };
    let mut table = new_table(["key", "value"]);
    table.add_row(vec!["stream".to_string(), stream.to_string()]);
    table.add_row(vec!["version".to_string(), version.to_string()]);
    for (key, value) in metadata_rows(metadata) {
        table.add_row(vec![key.to_string(), value]);
    }
    print_line(&table.to_string())
}

/// `scavenge`.
pub(crate) async fn scavenge(config: Config, args: ScavengeArgs, json: bool) -> Outcome {
    let run = async |store: &EventStore| {
        // Drawn on stderr, and only on a terminal (a pipe or a file gets the report alone).
        let bar = if json { ProgressBar::hidden() } else { ProgressBar::new(0) };
        bar.set_style(
            ProgressStyle::with_template("{spinner} {wide_bar} {pos}/{len} streams  {msg}  {elapsed}")
                .map_err(|e| Failure::new(e.to_string()))?,
        );
        let progress = bar.clone();
        let options = ScavengeOptions::default()
            .dry_run(args.dry_run)
            .batch_size(usize::try_from(args.batch_size).unwrap_or(usize::MAX))
            .on_progress(move |p| {
                progress.set_length(p.streams_total);
                progress.set_position(p.streams_done);
                progress.set_message(format!("{} events, {}", p.events_removed, bytes(p.bytes_removed)));
            });
        let report = store.scavenge_with(options).await;
        bar.finish_and_clear();
        let report = report.context(|| "cannot scavenge".into())?;
        print_report(&report, json)?;
        Ok(ExitCode::SUCCESS)
    };
    if args.dry_run { with_reader(config, run).await } else { with_store(config, true, run).await }
}

fn print_report(report: &ScavengeReport, json: bool) -> Result<(), Failure> {
    if json {
        return print_json(&serde_json::to_value(report).map_err(|e| Failure::new(e.to_string()))?);
    }
    let verb = if report.dry_run { "would remove" } else { "removed" };
    print_line(&format!(
        "{verb} {} event{} and {} link{} ({}) from {} stream{} with retention, in {:.1?}",
        report.events_removed,
        plural(report.events_removed),
        report.links_removed,
        plural(report.links_removed),
        bytes(report.bytes_removed),
        report.streams_scanned,
        plural(report.streams_scanned),
        report.elapsed
    ))
}

fn plural(n: u64) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// A byte count for people: `512 B`, `3.4 KiB`, `1.2 MiB`, ...
fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 { format!("{n} B") } else { format!("{value:.1} {}", UNITS[unit]) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_values_parse_or_say_what_is_wrong() {
        assert_eq!(parse_count("5"), Ok(Change::Set(5)));
        assert_eq!(parse_count("None"), Ok(Change::Remove));
        assert!(parse_count("0").unwrap_err().contains("at least 1"));
        assert_eq!(parse_age("1d"), Ok(Change::Set(Duration::from_secs(86_400))));
        assert!(parse_age("soon").unwrap_err().contains("not a duration"));
        assert_eq!(parse_version("42"), Ok(Change::Set(42)));
        assert_eq!(parse_custom("{\"a\": 1}"), Ok(Change::Set(json!({ "a": 1 }))));
        assert!(parse_custom("[1]").unwrap_err().contains("JSON object"));
        assert!(parse_custom("{").unwrap_err().contains("not JSON"));
    }

    #[test]
    fn byte_counts_read_as_people_write_them() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(3_500), "3.4 KiB");
        assert_eq!(bytes(5 * 1024 * 1024), "5.0 MiB");
    }
}
