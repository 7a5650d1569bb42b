-- chronik store on SQLite, version 2: stream metadata, recreatable deletes and scavenging (see
-- migrations/postgres, version 5). `custom` is JSON text; `max_age_ms` milliseconds.
CREATE TABLE stream_metadata (
    stream_uuid      TEXT    PRIMARY KEY,
    metadata_version INTEGER NOT NULL CHECK (metadata_version > 0),
    max_count        INTEGER CHECK (max_count > 0),
    max_age_ms       INTEGER CHECK (max_age_ms > 0),
    truncate_before  INTEGER CHECK (truncate_before >= 0),
    custom           TEXT    CHECK (custom IS NULL OR json_type(custom) = 'object'),
    updated_at       TEXT    NOT NULL
) STRICT, WITHOUT ROWID;

ALTER TABLE streams ADD COLUMN deleted_version INTEGER NOT NULL DEFAULT 0 CHECK (deleted_version >= 0);

