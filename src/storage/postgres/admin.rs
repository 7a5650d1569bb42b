//! Creating, migrating and dropping a store. Migrations are embedded (`migrations/postgres`)
//! and run with the store's schema as `search_path`, so the `_sqlx_migrations` table that
//! records the schema version lives inside the store's schema too.
//!
//! sqlx's own migration lock is per database; it is replaced by an advisory lock per schema so
//! that stores in different schemas migrate in parallel while two processes migrating the same
//! store still take turns.

use chrono::{DateTime, Utc};
use sqlx::migrate::Migrator;
use sqlx::{Connection, Executor, PgConnection};

use super::{PgStorage, connect_options, connect_within, maintenance_options, store_connect_options};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::storage::MigrationStatus;
use crate::storage::backend::Admin;

/// The migrations compiled into this build.
fn migrator() -> Migrator {
    let mut migrator = sqlx::migrate!("./migrations/postgres");
    migrator.set_locking(false);
    migrator
}

async fn connect(config: &Config) -> Result<PgConnection> {
    connect_within(&store_connect_options(config)?, config.connect_timeout).await
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
    Ok(applied(conn).await?.into_iter().map(|(version, at, _)| (version, at)).collect())
}

/// The store's applied migrations (version, when, checksum); none without a migration table.
async fn applied(conn: &mut PgConnection) -> Result<Vec<(i64, DateTime<Utc>, Vec<u8>)>> {
    let has_table: bool =
        sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL").fetch_one(&mut *conn).await?;
    if !has_table {
        return Ok(Vec::new());
    }
    Ok(sqlx::query_as("SELECT version, installed_on, checksum FROM _sqlx_migrations WHERE success ORDER BY version")
        .fetch_all(&mut *conn)
        .await?)
}

impl Admin for PgStorage {
    async fn create_database(config: &Config) -> Result<bool> {
        let options = connect_options(config)?;
        let name = options.get_database().unwrap_or("postgres").to_string();
        let mut conn = connect_within(&maintenance_options(config)?, config.connect_timeout).await?;
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

    async fn init_store(config: &Config) -> Result<usize> {
        let mut conn = connect(config).await?;
        lock(&mut conn, &config.schema).await?;
        let outcome = init_locked(&mut conn, &config.schema).await;
        unlock(&mut conn, &config.schema, outcome).await
    }

    async fn migrate_store(config: &Config) -> Result<usize> {
        let mut conn = connect(config).await?;
        lock(&mut conn, &config.schema).await?;
        let outcome = migrate_locked(&mut conn, &config.schema).await;
        unlock(&mut conn, &config.schema, outcome).await
    }

    async fn migration_status(config: &Config) -> Result<Vec<MigrationStatus>> {
        let mut conn = connect(config).await?;
        let applied = if schema_exists(&mut conn, &config.schema).await? {
            applied_versions(&mut conn).await?
        } else {
            Vec::new()
        };
        Ok(MigrationStatus::of(&migrator(), &applied))
    }

    /// On PostgreSQL: chronik's own tables and functions, and the schema too if chronik created
    /// it and nothing else is left in it. A schema without chronik's migrations is not a store
    /// (nothing is touched); migrations of another tool in the store's migration table, or
    /// objects of the application that depend on the store's tables (a view, a foreign key),
    /// are refused.
    async fn drop_store(config: &Config) -> Result<bool> {
        let mut conn = connect(config).await?;
        lock(&mut conn, &config.schema).await?;
        let outcome = drop_locked(&mut conn, &config.schema).await;
        unlock(&mut conn, &config.schema, outcome).await
    }
}

async fn init_locked(conn: &mut PgConnection, schema: &str) -> Result<usize> {
    if !schema_exists(conn, schema).await? {
        // Created here, so marked as chronik's: `drop` may remove it again (see `drop_locked`).
        let mut tx = conn.begin().await?;
        sqlx::query(&format!("CREATE SCHEMA \"{schema}\"")).execute(&mut *tx).await?;
        sqlx::query(&format!("COMMENT ON SCHEMA \"{schema}\" IS '{SCHEMA_MARK}'")).execute(&mut *tx).await?;
        tx.commit().await?;
    }
    run_pending(conn).await
}

async fn migrate_locked(conn: &mut PgConnection, schema: &str) -> Result<usize> {
    if !schema_exists(conn, schema).await? || applied_versions(conn).await?.is_empty() {
        return Err(Error::Migration(format!(
            "schema `{schema}` holds no chronik store; run `chronik init` (or start with auto_init = true)"
        )));
    }
    run_pending(conn).await
}

/// The comment `init` puts on a schema it creates: only such a schema is ever dropped.
const SCHEMA_MARK: &str = "chronik store: created by chronik, removed by chronik drop once empty";

/// The tables and functions chronik's migrations create (indexes, constraints, triggers and
/// identity sequences belong to the tables and go with them).
const TABLES: &str = "cluster_members, subscription_nacks, subscriptions, snapshots, stream_metadata, links, events, streams, \
     _sqlx_migrations";
const FUNCTIONS: &str = "forbid_event_changes(), batch_check(boolean)";

/// SQLSTATE `dependent_objects_still_exist`: something outside the store depends on it.
const DEPENDENT_OBJECTS: &str = "2BP01";

async fn drop_locked(conn: &mut PgConnection, schema: &str) -> Result<bool> {
    if !schema_exists(conn, schema).await? {
        return Ok(false);
    }
    let applied: Vec<(i64, Vec<u8>)> = applied(conn).await?.into_iter().map(|(v, _, checksum)| (v, checksum)).collect();
    if applied.is_empty() {
        return Ok(false);
    }
    let foreign = crate::storage::foreign_migrations(&migrator(), &applied);
    if !foreign.is_empty() {
        return Err(Error::Refused(format!(
            "schema `{schema}`'s _sqlx_migrations table records migrations that are not chronik's ({}): \
             another tool shares it, so chronik removes nothing there",
            foreign.join(", ")
        )));
    }
    // Only chronik's own objects, named one by one, and RESTRICT: anything of the application's
    // that depends on them makes this fail and the transaction undoes it (tests/schema.rs:
    // `drop_refuses_when_the_applications_objects_depend_on_the_store`).
    let mut tx = conn.begin().await?;
    // Through `Executor::execute`, whose future is boxed and `Send`: `RawSql::execute`'s is not
    // provably `Send` (a higher-ranked lifetime the compiler cannot see through).
    let drop_objects = format!("DROP TABLE IF EXISTS {TABLES} RESTRICT; DROP FUNCTION IF EXISTS {FUNCTIONS} RESTRICT");
    let dropped = (&mut *tx).execute(sqlx::raw_sql(&drop_objects)).await;
    match dropped {
        Ok(_) => {}
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some(DEPENDENT_OBJECTS) => {
            let detail = e.try_downcast_ref::<sqlx::postgres::PgDatabaseError>().and_then(|e| e.detail());
            return Err(Error::Refused(format!(
                "the store in schema `{schema}` cannot be removed without removing objects chronik did not create \
                 ({}); drop or change those first. Nothing was removed",
                detail.unwrap_or_else(|| e.message()).replace('\n', "; ")
            )));
        }
        Err(e) => return Err(e.into()),
    }
    // The schema goes only if chronik made it (its mark) and nothing else lives in it (RESTRICT);
    // a savepoint keeps a refusal from undoing the drop above (tests/schema.rs:
    // `a_schema_that_existed_before_init_is_kept_by_drop`,
    // `a_schema_chronik_created_is_kept_by_drop_once_the_application_put_a_table_in_it`).
    let marked: Option<String> =
        sqlx::query_scalar("SELECT obj_description(oid, 'pg_namespace') FROM pg_namespace WHERE nspname = $1")
            .bind(schema)
            .fetch_optional(&mut *tx)
            .await?
            .flatten();
    if schema != "public" && marked.as_deref() == Some(SCHEMA_MARK) {
        let mut savepoint = tx.begin().await?;
        match sqlx::query(&format!("DROP SCHEMA \"{schema}\" RESTRICT")).execute(&mut *savepoint).await {
            Ok(_) => savepoint.commit().await?,
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some(DEPENDENT_OBJECTS) => {
                tracing::info!(schema, "schema kept: it holds objects chronik did not create");
                savepoint.rollback().await?;
            }
            Err(e) => return Err(e.into()),
        }
    }
    tx.commit().await?;
    Ok(true)
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
pub(super) async fn check_up_to_date(config: &Config) -> Result<()> {
    let status = PgStorage::migration_status(config).await?;
    crate::storage::require_up_to_date(&status, &format!("schema `{}`", config.schema))
}
