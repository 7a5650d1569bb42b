//! `chronik stats`: the store's figures as its database knows them (head position, streams,
//! the rate of appends, named subscriptions with their lag and parked events, the nodes), once
//! or, with `--watch`, refreshed until Ctrl-C. The figures a running process keeps in memory
//! (group-commit batch sizes, its writer) are its `/metrics` and its admin UI's.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use chronik::EventStore;
use clap::Args;
use serde_json::{Value, json};

use crate::admin::place;
use crate::output::{new_table, print_line};
use crate::{Context, Failure, Outcome};

/// Examples shown by `chronik stats --help`.
pub(crate) const EXAMPLES: &str = "\
Examples:
  chronik stats                       head, streams, subscriptions (lag, parked), nodes
  chronik stats --watch               the same every 2 s with the append rate, until Ctrl-C
  chronik stats --watch 5 --count 3   three refreshes, 5 s apart
  chronik --json stats --watch        one JSON object per line per refresh";

/// `chronik stats`'s options.
#[derive(Debug, Args)]
pub(crate) struct StatsArgs {
    /// Refresh every SECONDS (default 2) until Ctrl-C, with the rate of appends between
    /// refreshes.
    #[arg(long, value_name = "SECONDS", num_args = 0..=1, default_missing_value = "2")]
    watch: Option<f64>,
    /// With --watch, stop after this many refreshes.
    #[arg(long, value_name = "N", requires = "watch")]
    count: Option<u64>,
}

/// One look at the store.
struct Sample {
    at: Instant,
    head: u64,
    figures: Value,
}

pub(crate) async fn stats(store: &EventStore, args: &StatsArgs, json: bool) -> Outcome {
    let Some(seconds) = args.watch else {
        let sample = sample(store, None).await?;
        show(store, &sample.figures, json, false)?;
        return Ok(ExitCode::SUCCESS);
    };
    if !(seconds.is_finite() && seconds >= 0.1) {
        return Err(Failure::new(format!("--watch takes a number of seconds of at least 0.1, not {seconds}")));
    }
    let every = Duration::from_secs_f64(seconds);
    let clear = !json && std::io::stdout().is_terminal();
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let mut previous: Option<Sample> = None;
    let mut shown = 0;
    loop {
        let sample = sample(store, previous.as_ref()).await?;
        show(store, &sample.figures, json, clear)?;
        shown += 1;
        if args.count.is_some_and(|count| shown >= count) {
            return Ok(ExitCode::SUCCESS);
        }
        previous = Some(sample);
        tokio::select! {
            signal = &mut ctrl_c => {
                signal.map_err(|e| Failure::new(format!("cannot wait for Ctrl-C: {e}")))?;
                return Ok(ExitCode::SUCCESS);
            }
            () = tokio::time::sleep(every) => {}
        }
    }
}

/// The figures now; the append rate since `previous`, if given.
async fn sample(store: &EventStore, previous: Option<&Sample>) -> Result<Sample, Failure> {
    let at = Instant::now();
    let newest = store.read_all_backward(None, 1).await.context(|| "cannot read the head".into())?;
    let head = newest.first().map_or(0, |e| e.global_position);
    let streams = store.stream_count().await.context(|| "cannot count the streams".into())?;
    let subscriptions = store.list_subscriptions().await.context(|| "cannot list the subscriptions".into())?;
    let nodes = store.cluster_members().await.context(|| "cannot list the nodes".into())?;
    let rate = previous.map(|p| {
        let seconds = at.duration_since(p.at).as_secs_f64().max(f64::EPSILON);
        head.saturating_sub(p.head) as f64 / seconds
    });
    let figures = json!({
        "store": chronik::metrics::store_label(store.config()),
        "head_position": head,
        "streams": streams,
        "appended_per_second": rate,
        "subscriptions": subscriptions.iter().map(|s| {
            let mut value = chronik::json::subscription(s);
            value["parked"] = json!(s.parked);
            value
        }).collect::<Vec<_>>(),
        "lag_total": subscriptions.iter().map(|s| s.lag).sum::<u64>(),
        "parked_total": subscriptions.iter().map(|s| s.parked).sum::<u64>(),
        "nodes": nodes.iter().map(|n| json!({
            "address": n.address, "port": n.port, "leader": n.leader, "joined_at": n.joined_at, "seen_at": n.seen_at,
        })).collect::<Vec<_>>(),
    });
    Ok(Sample { at, head, figures })
}

fn show(store: &EventStore, figures: &Value, json: bool, clear: bool) -> Result<(), Failure> {
    if json {
        // One line per refresh, so `--watch` makes JSON lines.
        return print_line(&figures.to_string());
    }
    let mut out = String::new();
    if clear {
        out.push_str("\x1b[2J\x1b[H");
    }
    let rate = match figures["appended_per_second"].as_f64() {
        Some(rate) => format!("{rate:.1}/s"),
        None => "– (--watch measures it)".into(),
    };
    let mut table = new_table(["figure", "value"]);
    table.add_row(vec!["store".to_string(), place(store.config())]);
    table.add_row(vec!["head position".to_string(), figures["head_position"].to_string()]);
    table.add_row(vec!["streams".to_string(), figures["streams"].to_string()]);
    table.add_row(vec!["appended".to_string(), rate]);
    let subscriptions = figures["subscriptions"].as_array().map_or(0, Vec::len);
    table.add_row(vec!["subscriptions".to_string(), subscriptions.to_string()]);
    table.add_row(vec!["lag (all subscriptions)".to_string(), figures["lag_total"].to_string()]);
    table.add_row(vec!["parked (all subscriptions)".to_string(), figures["parked_total"].to_string()]);
    let nodes = figures["nodes"].as_array().map_or(0, Vec::len);
    table.add_row(vec!["nodes".to_string(), nodes.to_string()]);
    out.push_str(&table.to_string());
    if let Some(list) = figures["subscriptions"].as_array().filter(|l| !l.is_empty()) {
        let mut table = new_table(["stream", "name", "checkpoint", "lag", "parked", "owner"]);
        for s in list {
            let text = |key: &str| s[key].as_str().map_or_else(|| s[key].to_string(), str::to_string);
            let owner = match s["owner_pid"].as_i64() {
                Some(pid) => format!("pid {pid}"),
                None => "-".to_string(),
            };
            table.add_row(vec![text("stream"), text("name"), text("checkpoint"), text("lag"), text("parked"), owner]);
        }
        out.push('\n');
        out.push_str(&table.to_string());
    }
    print_line(&out)
}
