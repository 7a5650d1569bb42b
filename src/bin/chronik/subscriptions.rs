//! Named subscriptions: `subscriptions` (the list) and its subcommands: `info` (one
//! subscription with its settings), `parked` (list or replay parked events), `checkpoint` (show
//! or move a checkpoint) and `delete`.

use std::process::ExitCode;

use chronik::{Config, EventStore, SubscriptionInfo};
use chrono::SecondsFormat;
use clap::{Args, Subcommand, ValueEnum};
use serde_json::{Value, json};

use crate::admin::{Confirm, confirm, place};
use crate::output::{REASON_CELL_WIDTH, new_table, one_line, print_json, print_line, shell_word, truncate};
use crate::{Context, Failure, Outcome, with_reader, with_store};

/// Examples shown by `chronik subscriptions --help`.
pub(crate) const EXAMPLES: &str = "\
Examples:
  chronik subscriptions                                  every subscription: checkpoint, lag, owner
  chronik subscriptions info '$all' projector            one subscription: settings, checkpoint, parked events
  chronik subscriptions parked '$all' projector          its parked events
  chronik subscriptions parked '$all' projector replay   deliver them again
  chronik subscriptions checkpoint '$all' projector      its checkpoint and what it is behind
  chronik subscriptions checkpoint '$all' projector --set 0   process everything again (stop it first)
  chronik subscriptions delete '$all' projector --yes    forget it: the next subscriber starts afresh";

/// Arguments of `subscriptions`: without a subcommand, the list of subscriptions.
#[derive(Debug, Args)]
pub(crate) struct SubscriptionsArgs {
    /// Instead of listing the subscriptions.
    #[command(subcommand)]
    pub(crate) command: Option<SubscriptionsCommand>,
}

/// The subcommands of `subscriptions`.
#[derive(Debug, Subcommand)]
pub(crate) enum SubscriptionsCommand {
    /// Show a subscription: its stored settings, checkpoint, head, lag, owner and parked count.
    Info(InfoArgs),
    /// List the parked events of a named subscription, or mark them for replay (`... NAME replay`).
    Parked(ParkedArgs),
    /// Show a subscription's checkpoint, or move it with `--set N` (while no node runs it).
    Checkpoint(CheckpointArgs),
    /// Delete a subscription: its checkpoint, retry counts and parked events. Asks for
    /// confirmation.
    Delete(DeleteArgs),
}

/// Arguments of `subscriptions info`.
#[derive(Debug, Args)]
pub(crate) struct InfoArgs {
    /// The subscription's stream, or `$all`.
    pub(crate) stream: String,
    /// The subscription's name.
    pub(crate) name: String,
}

/// Arguments of `subscriptions parked`.
#[derive(Debug, Args)]
pub(crate) struct ParkedArgs {
    /// The subscription's stream, or `$all`.
    pub(crate) stream: String,
    /// The subscription's name.
    pub(crate) name: String,
    /// `replay`: mark every parked event for replay instead of listing them.
    ///
    /// The subscription delivers them again, ahead of new events (once it runs, if it runs
    /// nowhere now).
    // A value rather than a subcommand: a subcommand would shadow a stream named `replay`.
    #[arg(value_enum, value_name = "replay", hide_possible_values = true)]
    pub(crate) action: Option<ParkedAction>,
    /// With `replay`: only the first N events of the parked list (as listed); the rest stay
    /// parked.
    #[arg(long, value_name = "N", requires = "action")]
    pub(crate) first: Option<u64>,
}

/// What `subscriptions parked` does besides listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ParkedAction {
    /// Mark every parked event for replay: the subscription delivers them again, ahead of new
    /// events (once it runs, if it runs nowhere now).
    Replay,
}

/// Arguments of `subscriptions checkpoint`.
#[derive(Debug, Args)]
pub(crate) struct CheckpointArgs {
    /// The subscription's stream, or `$all`.
    pub(crate) stream: String,
    /// The subscription's name.
    pub(crate) name: String,
    /// Move the checkpoint here: the next subscriber gets the events after it (0: everything
    /// again). Refused while a node runs the subscription.
    #[arg(long, value_name = "N")]
    pub(crate) set: Option<u64>,
}

/// Arguments of `subscriptions delete`.
#[derive(Debug, Args)]
pub(crate) struct DeleteArgs {
    /// The subscription's stream, or `$all`.
    stream: String,
    /// The subscription's name.
    name: String,
    #[command(flatten)]
    confirm: Confirm,
}

/// Runs `subscriptions` and its subcommands: those that only read open the store read-only.
pub(crate) async fn run(config: Config, args: SubscriptionsArgs, json: bool) -> Outcome {
    match args.command {
        None => with_reader(config, async |store| subscriptions(store, json).await).await,
        Some(SubscriptionsCommand::Info(args)) => {
            with_reader(config, async |store| info(store, &args, json).await).await
        }
        Some(SubscriptionsCommand::Parked(args)) => match args.action {
            None => with_reader(config, async |store| parked(store, &args, json).await).await,
            Some(ParkedAction::Replay) => {
                with_store(config, true, async |store| replay_parked(store, &args, json).await).await
            }
        },
        Some(SubscriptionsCommand::Checkpoint(args)) => match args.set {
            None => with_reader(config, async |store| show_checkpoint(store, &args, json).await).await,
            Some(to) => with_store(config, true, async |store| set_checkpoint(store, &args, to, json).await).await,
        },
        Some(SubscriptionsCommand::Delete(args)) => {
            let what = format!("Delete subscription `{}` on `{}` of the store in", args.name, args.stream);
            confirm(&config, &what, args.confirm.yes).await?;
            with_store(config, true, async |store| delete(store, &args, json).await).await
        }
    }
}

/// The stored state of one subscription (from the list of all).
async fn find(store: &EventStore, stream: &str, name: &str) -> Result<SubscriptionInfo, Failure> {
    let list = store.list_subscriptions().await.context(|| "cannot list subscriptions".into())?;
    list.into_iter().find(|s| s.stream == stream && s.name == name).ok_or_else(|| {
        Failure::from(chronik::Error::SubscriptionNotFound)
            .with_message(&format!("no subscription `{name}` on `{stream}`"))
    })
}

/// `subscriptions checkpoint STREAM NAME`.
async fn show_checkpoint(store: &EventStore, args: &CheckpointArgs, json: bool) -> Outcome {
    let s = find(store, &args.stream, &args.name).await?;
    if json {
        print_json(&chronik::json::subscription(&s))?;
    } else {
        print_line(&format!(
            "subscription `{}` on `{}`: checkpoint {}, head {}, {} behind",
            s.name, s.stream, s.checkpoint, s.head, s.lag
        ))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `subscriptions checkpoint STREAM NAME --set N`.
async fn set_checkpoint(store: &EventStore, args: &CheckpointArgs, to: u64, json: bool) -> Outcome {
    let (stream, name) = (&args.stream, &args.name);
    let before = find(store, stream, name).await?.checkpoint;
    store
        .set_subscription_checkpoint(stream, name, to)
        .await
        .context(|| format!("cannot move the checkpoint of subscription `{name}` on `{stream}`"))?;
    if json {
        print_json(&json!({ "stream": stream, "name": name, "checkpoint": to, "previous": before }))?;
    } else {
        print_line(&format!(
            "moved the checkpoint of subscription `{name}` on `{stream}` from {before} to {to}: \
             its next subscriber gets the events after {to}"
        ))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `subscriptions delete STREAM NAME`.
async fn delete(store: &EventStore, args: &DeleteArgs, json: bool) -> Outcome {
    let (stream, name) = (&args.stream, &args.name);
    store
        .delete_subscription(stream, name)
        .await
        .context(|| format!("cannot delete subscription `{name}` on `{stream}`"))?;
    if json {
        print_json(&json!({ "stream": stream, "name": name, "deleted": true }))?;
    } else {
        print_line(&format!("deleted subscription `{name}` on `{stream}`: its checkpoint and parked events are gone"))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `subscriptions`.
pub(crate) async fn subscriptions(store: &EventStore, json: bool) -> Outcome {
    let list = store.list_subscriptions().await.context(|| "cannot list subscriptions".into())?;
    if json {
        print_json(&Value::Array(list.iter().map(chronik::json::subscription).collect()))?;
        return Ok(ExitCode::SUCCESS);
    }
    if list.is_empty() {
        print_line(&format!("no subscriptions in {}", place(store.config())))?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut table = new_table(["stream", "name", "checkpoint", "head", "lag", "owner", "updated_at"]);
    for s in &list {
        table.add_row(vec![
            s.stream.clone(),
            s.name.clone(),
            s.checkpoint.to_string(),
            s.head.to_string(),
            s.lag.to_string(),
            owner(s),
            s.updated_at.to_rfc3339_opts(SecondsFormat::Micros, true),
        ]);
    }
    print_line(&table.to_string())?;
    Ok(ExitCode::SUCCESS)
}

/// Who runs a subscription, for a table.
fn owner(s: &SubscriptionInfo) -> String {
    match (s.owner_pid, &s.owner_application) {
        (Some(pid), Some(application)) if !application.is_empty() => format!("pid {pid} ({application})"),
        (Some(pid), _) => format!("pid {pid}"),
        (None, _) => "-".to_string(),
    }
}

/// `subscriptions info STREAM NAME`: what is stored. The live figures (subscribers, events in
/// flight, rates) are only known to the node that runs the subscription, never this process.
async fn info(store: &EventStore, args: &InfoArgs, json: bool) -> Outcome {
    let (stream, name) = (&args.stream, &args.name);
    let s = store
        .subscription_info(stream, name)
        .await
        .context(|| format!("cannot show subscription `{name}` on `{stream}`"))?;
    let settings = match &s.settings {
        Some(settings) => serde_json::to_value(settings)
            .map_err(|e| Failure::new(format!("cannot show the settings of `{name}` on `{stream}`: {e}")))?,
        None => Value::Null,
    };
    if json {
        let mut value = chronik::json::subscription(&s);
        value["parked"] = json!(s.parked);
        value["settings"] = settings;
        return print_json(&value).map(|()| ExitCode::SUCCESS);
    }
    let mut table = new_table(["field", "value"]);
    let stored = [
        ("stream", s.stream.clone()),
        ("name", s.name.clone()),
        ("checkpoint", s.checkpoint.to_string()),
        ("head", s.head.to_string()),
        ("lag", s.lag.to_string()),
        ("parked", s.parked.to_string()),
        ("owner", owner(&s)),
        ("created_at", s.created_at.to_rfc3339_opts(SecondsFormat::Micros, true)),
        ("updated_at", s.updated_at.to_rfc3339_opts(SecondsFormat::Micros, true)),
    ];
    for (field, value) in stored {
        table.add_row(vec![field.to_string(), value]);
    }
    match settings {
        Value::Object(settings) => {
            for (key, value) in settings {
                let value = value.as_str().map_or_else(|| value.to_string(), str::to_string);
                table.add_row(vec![key, value]);
            }
        }
        _ => {
            table.add_row(vec![
                "settings".to_string(),
                "not stored yet (its next owner stores its options)".to_string(),
            ]);
        }
    }
    print_line(&table.to_string())?;
    print_line("subscribers, events in flight and rates: EventStore::subscription_info on the node that runs it")?;
    Ok(ExitCode::SUCCESS)
}

/// `subscriptions parked STREAM NAME`.
pub(crate) async fn parked(store: &EventStore, args: &ParkedArgs, json: bool) -> Outcome {
    let (stream, name) = (&args.stream, &args.name);
    let list = store
        .parked_events(stream, name)
        .await
        .context(|| format!("cannot list the parked events of subscription `{name}` on `{stream}`"))?;
    if json {
        print_json(&Value::Array(list.iter().map(chronik::json::parked).collect()))?;
        return Ok(ExitCode::SUCCESS);
    }
    if list.is_empty() {
        print_line(&format!("no parked events in subscription `{name}` on `{stream}`"))?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut table = new_table(["event_number", "retry_count", "reason", "parked_at", "replay_requested"]);
    for p in &list {
        table.add_row(vec![
            p.event_number.to_string(),
            p.retry_count.to_string(),
            truncate(&one_line(&p.reason), REASON_CELL_WIDTH),
            p.parked_at.to_rfc3339_opts(SecondsFormat::Micros, true),
            if p.replay_requested { "yes" } else { "no" }.to_string(),
        ]);
    }
    print_line(&table.to_string())?;
    let requested = list.iter().filter(|p| p.replay_requested).count();
    let plural = if list.len() == 1 { "" } else { "s" };
    let summary = format!("{} parked event{plural} in subscription `{name}` on `{stream}`", list.len());
    if requested == list.len() {
        print_line(&format!("{summary}, all marked for replay"))?;
    } else {
        let command = format!("chronik subscriptions parked {} {} replay", shell_word(stream), shell_word(name));
        let marked = if requested == 0 { String::new() } else { format!(", {requested} marked for replay") };
        print_line(&format!("{summary}{marked}; `{command}` delivers them again"))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `subscriptions parked STREAM NAME replay`.
pub(crate) async fn replay_parked(store: &EventStore, args: &ParkedArgs, json: bool) -> Outcome {
    let (stream, name) = (&args.stream, &args.name);
    let marked = match args.first {
        Some(count) => store.replay_parked_first(stream, name, count).await,
        None => store.replay_parked(stream, name).await,
    };
    let marked =
        marked.context(|| format!("cannot replay the parked events of subscription `{name}` on `{stream}`"))?;
    if json {
        print_json(&json!({ "stream": stream, "name": name, "marked": marked }))?;
    } else if marked == 0 {
        print_line(&format!("no parked events in subscription `{name}` on `{stream}`: nothing to replay"))?;
    } else {
        let plural = if marked == 1 { "" } else { "s" };
        let them = if marked == 1 { "it" } else { "them" };
        print_line(&format!(
            "{marked} parked event{plural} of subscription `{name}` on `{stream}` marked for replay; \
             the subscription's owner delivers {them} again (once it runs, if it runs nowhere now)"
        ))?;
    }
    Ok(ExitCode::SUCCESS)
}
