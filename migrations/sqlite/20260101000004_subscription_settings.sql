-- chronik store on SQLite, version 4: the settings of named subscriptions, as JSON text (see
-- migrations/postgres, version 7).
ALTER TABLE subscriptions ADD COLUMN settings TEXT;
