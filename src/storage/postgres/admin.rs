//! Creating, migrating and dropping a store. Migrations are embedded (`migrations/postgres`)
//! and run with the store's schema as `search_path`, so the `_sqlx_migrations` table that
//! records the schema version lives inside the store's schema too.
//!
//! sqlx's own migration lock is per database; it is replaced by an advisory lock per schema so
//! that stores in different schemas migrate in parallel while two processes migrating the same
//! store still take turns.

use chrono::{DateTime, Utc};
use sqlx::migrate::Migrator;
use sqlx::{Connection, PgConnection};

use super::{maintenance_options, store_connect_options};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::storage::MigrationStatus;

/// The migrations compiled into this build.
fn migrator() -> Migrator {
    let mut migrator = sqlx::migrate!("./migrations/postgres");
    migrator.set_locking(false);
    migrator
}

async fn connect(config: &Config) -> Result<PgConnection> {
    Ok(PgConnection::connect_with(&store_connect_options(config)?).await?)
}

fn lock_key(schema: &str) -> String {
    format!("chronik:migrate:{schema}")
}

async fn schema_exists(conn: &mut PgConnection, schema: &str) -> Result<bool> {
    Ok(sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)")
        .bind(schema)
        .fetch_one(&mut *conn)
        .await?)
}

async fn applied_versions(conn: &mut PgConnection) -> Result<Vec<(i64, DateTime<Utc>)>> {
    let has_table: bool =
        sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL").fetch_one(&mut *conn).await?;
    if !has_table {
        return Ok(Vec::new());
    }
    Ok(sqlx::query_as("SELECT version, installed_on FROM _sqlx_migrations WHERE success ORDER BY version")
        .fetch_all(&mut *conn)
        .await?)
}

/// Creates the database named in the URL if it does not exist. Returns whether it was created.
pub async fn create_database(config: &Config) -> Result<bool> {
    let options = config.connect_options()?;
    let name = options.get_database().unwrap_or("postgres").to_string();
    let mut conn = PgConnection::connect_with(&maintenance_options(config)?).await?;
    let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
        .bind(&name)
        .fetch_one(&mut conn)
        .await?;
    if exists {
        return Ok(false);
    }
    let quoted = format!("\"{}\"", name.replace('"', "\"\""));
    match sqlx::query(&format!("CREATE DATABASE {quoted}")).execute(&mut conn).await {
        Ok(_) => Ok(true),
        // Someone else created it between our check and our statement.
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42P04") => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Creates the store's schema if needed and applies every pending migration.
/// Returns how many migrations were applied.
pub async fn init_store(config: &Config) -> Result<usize> {
    let mut conn = connect(config).await?;
    lock(&mut conn, &config.schema).await?;
    let outcome = init_locked(&mut conn, &config.schema).await;
    unlock(&mut conn, &config.schema, outcome).await
}

async fn init_locked(conn: &mut PgConnection, schema: &str) -> Result<usize> {
    sqlx::query(&format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\"")).execute(&mut *conn).await?;
    run_pending(conn).await
}

/// Applies pending migrations to an existing store. Returns how many were applied.
pub async fn migrate_store(config: &Config) -> Result<usize> {
    let mut conn = connect(config).await?;
    lock(&mut conn, &config.schema).await?;
    let outcome = migrate_locked(&mut conn, &config.schema).await;
    unlock(&mut conn, &config.schema, outcome).await
}

async fn migrate_locked(conn: &mut PgConnection, schema: &str) -> Result<usize> {
    if !schema_exists(conn, schema).await? || applied_versions(conn).await?.is_empty() {
        return Err(Error::Migration(format!(
            "schema `{schema}` holds no chronik store; run `chronik init` (or start with auto_init = true)"
        )));
    }
    run_pending(conn).await
}

/// Every migration of this build and whether the store has it.
pub async fn migration_status(config: &Config) -> Result<Vec<MigrationStatus>> {
    let mut conn = connect(config).await?;
    let applied =
        if schema_exists(&mut conn, &config.schema).await? { applied_versions(&mut conn).await? } else { Vec::new() };
    Ok(MigrationStatus::of(&migrator(), &applied))
}

/// Removes the store: its whole schema, or, for `public`, the store's objects only.
/// Returns whether there was anything to remove.
pub async fn drop_store(config: &Config) -> Result<bool> {
    let mut conn = connect(config).await?;
    lock(&mut conn, &config.schema).await?;
    let outcome = drop_locked(&mut conn, &config.schema).await;
    unlock(&mut conn, &config.schema, outcome).await
}

async fn drop_locked(conn: &mut PgConnection, schema: &str) -> Result<bool> {
    if !schema_exists(conn, schema).await? {
        return Ok(false);
    }
    if schema != "public" {
        sqlx::query(&format!("DROP SCHEMA \"{schema}\" CASCADE")).execute(&mut *conn).await?;
        return Ok(true);
    }
    let had_store = !applied_versions(conn).await?.is_empty();
    sqlx::raw_sql(
        "DROP TABLE IF EXISTS events, links, streams, snapshots, subscription_nacks, subscriptions, _sqlx_migrations CASCADE; \
         DROP FUNCTION IF EXISTS forbid_event_changes() CASCADE; \
         DROP FUNCTION IF EXISTS batch_check(boolean) CASCADE",
    )
    .execute(&mut *conn)
    .await?;
    Ok(had_store)
}

async fn run_pending(conn: &mut PgConnection) -> Result<usize> {
    let before = applied_versions(conn).await?.len();
    // Boxed with an explicit `Send` bound: `Migrator::run` is generic over `Acquire`, and
    // without this the compiler cannot prove the admin futures `Send` for `tokio::spawn`.
    let migrator = migrator();
    let run: std::pin::Pin<Box<dyn Future<Output = Result<(), sqlx::migrate::MigrateError>> + Send + '_>> =
        Box::pin(migrator.run_direct(&mut *conn));
    run.await.map_err(|e| Error::Migration(format!("applying migrations failed: {e}")))?;
    Ok(applied_versions(conn).await?.len().saturating_sub(before))
}

/// Takes the schema's migration lock (a session advisory lock).
async fn lock(conn: &mut PgConnection, schema: &str) -> Result<()> {
    sqlx::query("SELECT pg_advisory_lock(hashtext($1))").bind(lock_key(schema)).execute(&mut *conn).await?;
    Ok(())
}

/// Releases the migration lock, then hands back the outcome of the locked work.
async fn unlock<T>(conn: &mut PgConnection, schema: &str, outcome: Result<T>) -> Result<T> {
    let unlocked =
        sqlx::query("SELECT pg_advisory_unlock(hashtext($1))").bind(lock_key(schema)).execute(&mut *conn).await;
    let value = outcome?;
    unlocked?;
    Ok(value)
}

/// Checks that the store exists and has every migration of this build (for `auto_init = false`).
pub(crate) async fn check_up_to_date(config: &Config) -> Result<()> {
    let status = migration_status(config).await?;
    crate::storage::require_up_to_date(&status, &format!("schema `{}`", config.schema))
}
