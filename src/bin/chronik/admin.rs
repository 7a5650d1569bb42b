//! Administration of the store's database objects: `create`, `init`, `migrate`, `migrations`,
//! `drop`, `reset`, `setup`, with the confirmation that `drop` and `reset` ask for.

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

use chronik::{Config, admin};
use chrono::SecondsFormat;
use clap::Args;
use serde_json::json;

use crate::output::{new_table, print_json, print_line};
use crate::{Context, Failure, Outcome};

/// Confirmation of a destructive command.
#[derive(Debug, Args)]
pub(crate) struct Confirm {
    /// Do not ask for confirmation.
    #[arg(long, short = 'y')]
    pub(crate) yes: bool,
}

/// `create`.
pub(crate) async fn create(config: &Config, json: bool) -> Outcome {
    let database = database_name(&config.database_url);
    let created = admin::create(config).await.context(|| format!("cannot create database `{database}`"))?;
    if json {
        print_json(&json!({ "database": database, "created": created }))?;
    } else if created {
        print_line(&format!("created database `{database}`"))?;
    } else {
        print_line(&format!("database `{database}` already exists"))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `init`.
pub(crate) async fn init(config: &Config, json: bool) -> Outcome {
    let applied = admin::init(config).await.context(|| format!("cannot initialize {}", place(config)))?;
    report_migrated(config, "initialized", applied, json)
}

/// `migrate`.
pub(crate) async fn migrate(config: &Config, json: bool) -> Outcome {
    let applied = admin::migrate(config).await.context(|| format!("cannot migrate {}", place(config)))?;
    report_migrated(config, "migrated", applied, json)
}

/// Prints the result of `init`, `migrate` or `setup`.
pub(crate) fn report_migrated(config: &Config, what: &str, applied: usize, json: bool) -> Outcome {
    if json {
        print_json(&json!({ "schema": config.schema, "applied_migrations": applied }))?;
    } else if applied == 0 {
        print_line(&format!("store in {} is up to date", place(config)))?;
    } else {
        let plural = if applied == 1 { "" } else { "s" };
        print_line(&format!("{what} store in {} ({applied} migration{plural} applied)", place(config)))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `migrations`: exit status 1 when any migration is pending.
pub(crate) async fn migrations(config: &Config, json: bool) -> Outcome {
    let status =
        admin::migrations(config).await.context(|| format!("cannot read the migrations of {}", place(config)))?;
    if json {
        print_json(&serde_json::to_value(&status).map_err(|e| Failure::new(e.to_string()))?)?;
    } else {
        let mut table = new_table(["version", "description", "applied_at"]);
        for m in &status {
            let applied = m
                .applied_at
                .map_or_else(|| "pending".to_string(), |at| at.to_rfc3339_opts(SecondsFormat::Micros, true));
            table.add_row(vec![m.version.to_string(), m.description.clone(), applied]);
        }
        print_line(&table.to_string())?;
    }
    let pending = status.iter().filter(|m| !m.is_applied()).count();
    if pending > 0 {
        if !json {
            let plural = if pending == 1 { "" } else { "s" };
            eprintln!("{pending} migration{plural} pending: run `chronik migrate` (or `chronik init`)");
        }
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// `drop`.
pub(crate) async fn drop_store(config: &Config, yes: bool, json: bool) -> Outcome {
    confirm(config, "Drop store in", yes).await?;
    let dropped = admin::drop(config).await.context(|| format!("cannot drop the store in `{}`", config.schema))?;
    if json {
        print_json(&json!({ "schema": config.schema, "dropped": dropped }))?;
    } else if dropped && !config.is_sqlite() {
        print_line(&format!(
            "dropped the store in {}: chronik's own tables and functions (anything else there is kept)",
            place(config)
        ))?;
    } else if dropped {
        print_line(&format!("dropped the store in {}", place(config)))?;
    } else {
        print_line(&format!("no store in {}: nothing to drop", place(config)))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `reset`.
pub(crate) async fn reset(config: &Config, yes: bool, json: bool) -> Outcome {
    confirm(config, "Reset store in", yes).await?;
    admin::reset(config).await.context(|| format!("cannot reset the store in `{}`", config.schema))?;
    if json {
        print_json(&json!({ "schema": config.schema, "reset": true }))?;
    } else {
        print_line(&format!("reset the store in {}: it is empty now", place(config)))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `setup`: `create` then `init`.
pub(crate) async fn setup(config: &Config, json: bool) -> Outcome {
    let database = database_name(&config.database_url);
    let created = admin::create(config).await.context(|| format!("cannot create database `{database}`"))?;
    let applied = admin::init(config).await.context(|| format!("cannot initialize {}", place(config)))?;
    if json {
        print_json(&json!({
            "database": database,
            "created": created,
            "schema": config.schema,
            "applied_migrations": applied,
        }))?;
        return Ok(ExitCode::SUCCESS);
    }
    if created {
        print_line(&format!("created database `{database}`"))?;
    }
    report_migrated(config, "initialized", applied, false)
}

/// Asks `<what> schema X of database Y? [y/N]` on stderr unless `yes`; anything but
/// `y`/`yes` (including a closed stdin) aborts.
pub(crate) async fn confirm(config: &Config, what: &str, yes: bool) -> Result<(), Failure> {
    if yes {
        return Ok(());
    }
    let question = format!("{what} {}? [y/N] ", place_in_database(config));
    let answer = tokio::task::spawn_blocking(move || {
        let mut stderr = std::io::stderr();
        // The prompt is best effort: a closed stderr must not stop the answer being read.
        let _ = stderr.write_all(question.as_bytes()).and_then(|()| stderr.flush());
        let mut line = String::new();
        match std::io::stdin().lock().read_line(&mut line) {
            Ok(0) | Err(_) => None,
            Ok(_) => Some(line),
        }
    })
    .await
    .map_err(|e| Failure::new(format!("cannot read the confirmation: {e}")))?;
    let Some(answer) = answer else {
        eprintln!();
        return Err(Failure::new(format!(
            "aborted: no confirmation on stdin (pass --yes); {} left unchanged",
            place(config)
        )));
    };
    if !std::io::stdin().is_terminal() {
        // The answer came from a pipe, so no echo ended the prompt's line.
        eprintln!();
    }
    confirmed(&answer, config)
}

/// Whether `answer` is `y` or `yes` (any case).
pub(crate) fn confirmed(answer: &str, config: &Config) -> Result<(), Failure> {
    match answer.trim().to_ascii_lowercase().as_str() {
        "y" | "yes" => Ok(()),
        _ => Err(Failure::new(format!("aborted; {} left unchanged", place(config)))),
    }
}

/// Where the store is, for messages: its schema on PostgreSQL, its file on SQLite.
pub(crate) fn place(config: &Config) -> String {
    if config.is_sqlite() {
        format!("`{}`", database_name(&config.database_url))
    } else {
        format!("schema `{}`", config.schema)
    }
}

/// [`place`] with the database of a schema too, for the confirmation question.
pub(crate) fn place_in_database(config: &Config) -> String {
    if config.is_sqlite() {
        format!("file {}", database_name(&config.database_url))
    } else {
        format!("schema {} of database {}", config.schema, database_name(&config.database_url))
    }
}

/// The database of a URL, for messages (never the password): the database name of a
/// PostgreSQL URL, the file of an SQLite one.
pub(crate) fn database_name(url: &str) -> String {
    if let Some(file) = url.strip_prefix("sqlite:") {
        let file = file.trim_start_matches("//");
        return file.split('?').next().unwrap_or_default().to_string();
    }
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let rest = rest.split(['?', '#']).next().unwrap_or_default();
    let after_user = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    match after_user.split_once('/') {
        Some((_, name)) if !name.is_empty() => name.to_string(),
        _ => "(default)".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_names_hide_credentials() {
        assert_eq!(database_name("postgres://u:secret@h:5432/test?sslmode=disable"), "test");
        assert_eq!(database_name("postgres://h"), "(default)");
        assert_eq!(database_name("postgresql://u@h/db"), "db");
    }
}
